//! The plugin registry: built-ins collected from inventory plus loaded dynamic plugins.
//!
//! Built once per process, sorted by (kind, name); a second plugin with the same kind and name
//! is refused with an error naming both origins.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{
    AnalysisPlugin, ArchitecturePlugin, Comparison, DatasetPlugin, ParamSpec, Params, PluginCtor,
    PluginDescriptor, PluginKind, PrunerPlugin, ReportPlugin, TrainerPlugin,
};
use crate::figure::{FigureContext, FigureSpec};
use crate::{Error, Result};

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into ticketlab.
    BuiltIn,
    /// Loaded from a shared library.
    Dynamic {
        /// The library's path as loaded.
        path: PathBuf,
        /// SHA-256 of the library file (enters cache keys).
        sha256: String,
    },
}

impl Origin {
    /// `built-in` or `dynamic`.
    pub fn label(&self) -> &'static str {
        match self {
            Origin::BuiltIn => "built-in",
            Origin::Dynamic { .. } => "dynamic",
        }
    }

    /// Where the plugin comes from, for messages: `built into ticketlab` (with the module that
    /// registered it, when known) or `loaded from PATH`.
    fn describe(&self, module: Option<&str>) -> String {
        match (self, module) {
            (Origin::BuiltIn, Some(module)) => format!("built into ticketlab by `{module}`"),
            (Origin::BuiltIn, None) => "built into ticketlab".into(),
            (Origin::Dynamic { path, .. }, _) => format!("loaded from {}", path.display()),
        }
    }
}

/// A plugin instance of any kind.
#[derive(Clone)]
pub enum PluginInstance {
    /// A dataset plugin.
    Dataset(Arc<dyn DatasetPlugin>),
    /// An architecture plugin.
    Architecture(Arc<dyn ArchitecturePlugin>),
    /// A trainer plugin.
    Trainer(Arc<dyn TrainerPlugin>),
    /// A pruner plugin.
    Pruner(Arc<dyn PrunerPlugin>),
    /// An analysis plugin.
    Analysis(Arc<dyn AnalysisPlugin>),
    /// A report plugin.
    Report(Arc<dyn ReportPlugin>),
}

impl PluginInstance {
    /// The plugin's own check of a stage's values (see [`DatasetPlugin::check`]); kinds
    /// without one accept everything.
    pub fn check(&self, params: &Params) -> Result<()> {
        match self {
            PluginInstance::Dataset(d) => d.check(params),
            _ => Ok(()),
        }
    }

    /// Whether the plugin's result depends on the stage's seed with `params` (see
    /// [`DatasetPlugin::uses_seed`]); kinds that cannot say are assumed to.
    pub fn uses_seed(&self, params: &Params) -> bool {
        match self {
            PluginInstance::Dataset(d) => d.uses_seed(params),
            PluginInstance::Trainer(t) => t.uses_seed(params),
            PluginInstance::Pruner(p) => p.uses_seed(params),
            _ => true,
        }
    }

    /// Whether a pruner reads the stage's dataset with `params` (see
    /// [`PrunerPlugin::needs_data`]); other kinds say nothing here (`false`).
    pub fn needs_data(&self, params: &Params) -> bool {
        match self {
            PluginInstance::Pruner(p) => p.needs_data(params),
            _ => false,
        }
    }

    /// The files a dataset plugin reads with `params` ([`DatasetPlugin::input_files`]); other
    /// kinds read none.
    pub fn input_files(
        &self,
        params: &Params,
        base_dir: &std::path::Path,
    ) -> Vec<std::path::PathBuf> {
        match self {
            PluginInstance::Dataset(d) => d.input_files(params, base_dir),
            _ => Vec::new(),
        }
    }

    /// The run directory's figures of `value`, a value this analysis or report plugin computed
    /// (see [`AnalysisPlugin::figures`]); other kinds draw none.
    pub fn figures(&self, value: &serde_json::Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        match self {
            PluginInstance::Analysis(a) => a.figures(value, ctx),
            PluginInstance::Report(r) => r.figures(value, ctx),
            _ => Vec::new(),
        }
    }

    /// The arms `value`, a value this report plugin built, measures against a baseline (see
    /// [`ReportPlugin::comparisons`]); other kinds compare none.
    pub fn comparisons(&self, value: &serde_json::Value) -> Vec<Comparison> {
        match self {
            PluginInstance::Report(r) => r.comparisons(value),
            _ => Vec::new(),
        }
    }

    fn from_ctor(ctor: PluginCtor) -> Self {
        match ctor {
            PluginCtor::Dataset(f) => PluginInstance::Dataset(Arc::from(f())),
            PluginCtor::Architecture(f) => PluginInstance::Architecture(Arc::from(f())),
            PluginCtor::Trainer(f) => PluginInstance::Trainer(Arc::from(f())),
            PluginCtor::Pruner(f) => PluginInstance::Pruner(Arc::from(f())),
            PluginCtor::Analysis(f) => PluginInstance::Analysis(Arc::from(f())),
            PluginCtor::Report(f) => PluginInstance::Report(Arc::from(f())),
        }
    }
}

/// One registered plugin.
#[derive(Clone)]
pub struct PluginEntry {
    /// Kind.
    pub kind: PluginKind,
    /// Name, unique per kind.
    pub name: String,
    /// Version (enters cache keys).
    pub version: String,
    /// One-line summary.
    pub summary: String,
    /// Parameter schema.
    pub params: Vec<ParamSpec>,
    /// Built-in or dynamic.
    pub origin: Origin,
    /// The instance.
    pub instance: PluginInstance,
}

impl PluginEntry {
    /// `kind/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// The string hashed into cache keys: name, version and, for dynamic plugins, the
    /// library's content hash.
    pub fn fingerprint(&self) -> String {
        match &self.origin {
            Origin::BuiltIn => format!("{}/{}@{}", self.kind, self.name, self.version),
            Origin::Dynamic { sha256, .. } => {
                format!("{}/{}@{}#{}", self.kind, self.name, self.version, sha256)
            }
        }
    }

    /// The parameter spec called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// All plugins known to this process.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<(PluginKind, String), PluginEntry>,
    /// The module that registered each built-in (its `register_plugin!` call), for messages.
    modules: BTreeMap<(PluginKind, String), &'static str>,
}

impl Registry {
    /// The built-in plugins (every `register_plugin!` linked into the binary).
    pub fn builtin() -> Result<Self> {
        Self::from_descriptors(inventory::iter::<PluginDescriptor>)
    }

    /// A registry of built-in plugins from their descriptors, sorted by kind and name; two
    /// descriptors with the same kind and name are refused with an error naming the modules that
    /// registered them.
    pub fn from_descriptors<'a>(
        descriptors: impl IntoIterator<Item = &'a PluginDescriptor>,
    ) -> Result<Self> {
        let mut r = Registry::default();
        let mut descriptors: Vec<&PluginDescriptor> = descriptors.into_iter().collect();
        descriptors.sort_by_key(|d| (d.make.kind(), d.name, d.module));
        for d in descriptors {
            let entry = PluginEntry {
                kind: d.make.kind(),
                name: d.name.to_string(),
                version: d.version.to_string(),
                summary: d.summary.to_string(),
                params: d.params.to_vec(),
                origin: Origin::BuiltIn,
                instance: PluginInstance::from_ctor(d.make),
            };
            r.insert_from(entry, Some(d.module))?;
        }
        Ok(r)
    }

    /// Adds a plugin; refuses a second plugin with the same kind and name.
    ///
    /// Dynamic libraries are added with `ticketlab_engine::dylib::register_library`, which calls this.
    pub fn insert(&mut self, entry: PluginEntry) -> Result<()> {
        self.insert_from(entry, None)
    }

    /// [`Registry::insert`], remembering the module that registered a built-in.
    fn insert_from(&mut self, entry: PluginEntry, module: Option<&'static str>) -> Result<()> {
        self.check_free(&entry, module)?;
        let key = (entry.kind, entry.name.clone());
        if let Some(module) = module {
            self.modules.insert(key.clone(), module);
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Refuses `entry` (registered by `module`, if a built-in) if its kind and name are taken,
    /// with an error naming both origins.
    pub fn check_free(&self, entry: &PluginEntry, module: Option<&str>) -> Result<()> {
        let key = (entry.kind, entry.name.clone());
        match self.entries.get(&key) {
            None => Ok(()),
            Some(existing) => Err(Error::plugin(
                entry.id(),
                format!(
                    "registered twice: {} and {}; rename one of them",
                    existing.origin.describe(self.modules.get(&key).copied()),
                    entry.origin.describe(module)
                ),
            )),
        }
    }

    /// The plugin of `kind` called `name`.
    pub fn get(&self, kind: PluginKind, name: &str) -> Option<&PluginEntry> {
        self.entries.get(&(kind, name.to_string()))
    }

    /// Like [`Registry::get`], with an error that lists what exists and suggests the closest.
    pub fn require(&self, kind: PluginKind, name: &str) -> Result<&PluginEntry> {
        self.get(kind, name).ok_or_else(|| {
            let names = self.names(kind);
            let known = suggestion(name, &names, "known");
            Error::plugin(
                format!("{kind}/{name}"),
                format!(
                    "unknown {kind} `{name}`; {known}. If `{name}` comes from a plugin library, load it with `--plugin PATH` or list it under `plugins:` in the experiment file"
                ),
            )
        })
    }

    /// Names of every plugin of `kind`, sorted.
    pub fn names(&self, kind: PluginKind) -> Vec<&str> {
        self.entries.values().filter(|e| e.kind == kind).map(|e| e.name.as_str()).collect()
    }

    /// Every entry, sorted by kind then name.
    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.entries.values()
    }
}

/// `did you mean `X`? WHAT: A, B, C` for `name` among `candidates` (without the question when
/// none is close): the one way every error of ticketlab suggests a name.
pub fn suggestion(name: &str, candidates: &[&str], what: &str) -> String {
    let list = if candidates.is_empty() { "none".to_string() } else { candidates.join(", ") };
    match closest(name, candidates) {
        Some(c) => format!("did you mean `{c}`? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}

/// The candidate closest to `name` by Jaro-Winkler similarity, if any is close enough.
pub fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

macro_rules! typed_getter {
    ($fn:ident, $variant:ident, $trait:ident) => {
        impl Registry {
            #[doc = concat!("The ", stringify!($variant), " plugin called `name`.")]
            pub fn $fn(&self, name: &str) -> Result<Arc<dyn $trait>> {
                match &self.require(PluginKind::$variant, name)?.instance {
                    PluginInstance::$variant(p) => Ok(p.clone()),
                    _ => unreachable!("registry entries are keyed by their instance's kind"),
                }
            }
        }
    };
}

typed_getter!(dataset, Dataset, DatasetPlugin);
typed_getter!(architecture, Architecture, ArchitecturePlugin);
typed_getter!(trainer, Trainer, TrainerPlugin);
typed_getter!(pruner, Pruner, PrunerPlugin);
typed_getter!(analysis, Analysis, AnalysisPlugin);
typed_getter!(report, Report, ReportPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::AnalysisArtifact;
    use crate::plugin::{AnalysisInputs, Params};

    struct Nothing;

    impl ReportPlugin for Nothing {
        fn report(&self, _: &Params, _: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
            Err(Error::Other("never called".into()))
        }
    }

    fn make() -> Box<dyn ReportPlugin> {
        Box::new(Nothing)
    }

    /// What `register_plugin!` would submit from `module`.
    fn descriptor(name: &'static str, module: &'static str) -> PluginDescriptor {
        PluginDescriptor {
            name,
            version: "1.0.0",
            summary: "test",
            params: &[],
            make: PluginCtor::Report(make),
            module,
        }
    }

    #[test]
    fn duplicate_built_ins_are_refused_naming_both_modules() {
        let (a, b, other) = (
            descriptor("same", "crate_a::reports"),
            descriptor("same", "crate_b::reports"),
            descriptor("other", "crate_b::more"),
        );
        // Whatever order inventory yields them in, the message is the same.
        for order in [[&a, &other, &b], [&b, &a, &other]] {
            let err = Registry::from_descriptors(order).err().expect("a duplicate").to_string();
            assert_eq!(
                err,
                "plugin `report/same`: registered twice: built into ticketlab by `crate_a::reports` and built into ticketlab by \
                 `crate_b::reports`; rename one of them"
            );
        }
        let r = Registry::from_descriptors([&b, &other]).unwrap();
        assert_eq!(r.names(PluginKind::Report), ["other", "same"]);
        assert_eq!(r.get(PluginKind::Report, "same").unwrap().origin, Origin::BuiltIn);

        // A library's plugin that takes a built-in's name is refused naming the module and the library.
        let mut dynamic = r.get(PluginKind::Report, "same").unwrap().clone();
        dynamic.origin =
            Origin::Dynamic { path: "/plugins/libsame.so".into(), sha256: "00".into() };
        let err = r.clone().insert(dynamic.clone()).unwrap_err().to_string();
        assert!(err.contains("registered twice: built into ticketlab by `crate_b::reports` and loaded from /plugins/libsame.so"), "{err}");
        // Entries added without a module (tests, libraries) are described by their origin alone.
        let mut plain = Registry::default();
        plain.insert(dynamic.clone()).unwrap();
        let mut builtin = dynamic;
        builtin.origin = Origin::BuiltIn;
        let err = plain.insert(builtin).unwrap_err().to_string();
        assert!(
            err.contains(
                "registered twice: loaded from /plugins/libsame.so and built into ticketlab;"
            ),
            "{err}"
        );
    }
}
