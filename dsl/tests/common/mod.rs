//! Shared test helpers: the real built-in registry, the workspace's files, and loading.
//!
//! The tests check files against `Registry::builtin()` with the plugins of `ticketlab-plugins`
//! linked in (a dev-dependency: the plugins crate does not depend on this crate),
//! so the diagnostics show the built-ins' real parameter schemas.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ticketlab_api::data::Dataset;
use ticketlab_api::plugin::registry::{Origin, PluginEntry, PluginInstance, Registry};
use ticketlab_api::plugin::{
    DatasetPlugin, ParamSpec, ParamType, Params, PluginKind, StageContext,
};
use ticketlab_api::{Error, Result};
// Links the built-in plugins into the test binary, so that `Registry::builtin` finds them.
use ticketlab_plugins as _;

/// The built-in registry, as the command line builds it.
pub fn registry() -> Registry {
    let r = Registry::builtin().expect("the built-in plugins register without conflicts");
    assert!(r.get(PluginKind::Dataset, "modular").is_some(), "the built-in plugins are linked");
    r
}

/// A dataset plugin that is only checked, never run.
struct CheckOnly;

impl DatasetPlugin for CheckOnly {
    fn build(&self, _: &Params, _: &StageContext) -> Result<Dataset> {
        Err(Error::plugin("dataset/tabular", "a test plugin for checking only"))
    }
}

/// The built-ins plus `dataset/tabular`, a test plugin with a required parameter `path` (no
/// built-in has a parameter without a default).
pub fn registry_with_required_param() -> Registry {
    let mut r = registry();
    r.insert(PluginEntry {
        kind: PluginKind::Dataset,
        name: "tabular".into(),
        version: "1.0.0".into(),
        summary: "a test plugin with a required parameter".into(),
        params: vec![ParamSpec::new("path", ParamType::Str, "CSV file with one example per row")],
        origin: Origin::BuiltIn,
        instance: PluginInstance::Dataset(Arc::new(CheckOnly)),
    })
    .expect("no built-in is called tabular");
    r
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dsl/ has a parent").to_path_buf()
}

/// Reads a file relative to the workspace root.
pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every experiment file in `experiments/` (`.yaml`, `.yml` and `.tlx`), as sorted paths
/// relative to the workspace root, found by listing the directory.
pub fn experiment_files() -> Vec<String> {
    let dir = root().join("experiments");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && ticketlab_dsl::Format::from_path(p).is_some())
        .map(|p| format!("experiments/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "experiments/ holds only {files:?}");
    files
}

/// The file name of `rel` without its extension (`experiments/quickstart.tlx` -> `quickstart`).
pub fn stem(rel: &str) -> String {
    Path::new(rel).file_stem().unwrap().to_string_lossy().into_owned()
}

/// Loads a file relative to the workspace root (shown under that relative path).
pub fn load(
    rel: &str,
    overrides: &[&str],
) -> std::result::Result<ticketlab_api::ir::ExperimentIr, ticketlab_dsl::Diagnostics> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ticketlab_dsl::load_source(rel, &read(rel), &registry(), &overrides)
}

/// Like [`load`], panicking with the rendered diagnostics.
pub fn load_ok(rel: &str, overrides: &[&str]) -> ticketlab_api::ir::ExperimentIr {
    load(rel, overrides).unwrap_or_else(|d| panic!("{}", d.render()))
}

/// Parses and checks text given inline, in the form of `name`'s extension, shown as `name`.
pub fn load_text(
    name: &str,
    text: &str,
) -> std::result::Result<ticketlab_api::ir::ExperimentIr, ticketlab_dsl::Diagnostics> {
    ticketlab_dsl::load_source(name, text.as_bytes(), &registry(), &[])
}
