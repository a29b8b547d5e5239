//! Pins the outputs of a tiny experiment that uses this plugin (tests/tiny.yaml). After an
//! intended change, `cargo insta review` shows what moved and accepts it.
//!
//! The file is the same in every example crate: copied into a plugin crate of your own, it
//! builds and loads that crate's library (named after the package, `-` written `_`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ticketlab_core::plugin::dynamic::register_library;
use ticketlab_core::plugin::registry::Registry;
use ticketlab_core::testing::{SnapshotOptions, snapshot};
use ticketlab_plugins as _; // the built-in plugins the experiment also uses

/// Builds this crate's library (`cargo test` does not build a `cdylib`) and returns its path.
fn build_plugin() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"), "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the plugin failed");
    let name = env!("CARGO_PKG_NAME").replace('-', "_");
    let file = format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    target.join("debug").join(file)
}

#[test]
fn tiny_experiment() {
    // What `--plugin PATH` does: the built-ins plus this library.
    let mut registry = Registry::builtin().unwrap();
    register_library(&mut registry, &build_plugin()).unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tiny.yaml");
    let ir = ticketlab_dsl::load(&file, &registry, &[]).unwrap_or_else(|d| panic!("{}", d.render()));
    let options = SnapshotOptions { base_dir: file.parent().unwrap().to_path_buf() };
    insta::assert_yaml_snapshot!(snapshot(&ir, &registry, &options).unwrap());
}
