//! Cache keys: what makes two stages "the same computation".
//!
//! A stage's key is the SHA-256 (lowercase hex) of one line of canonical JSON:
//!
//! ```text
//! {"backend":"cpu","core":"0.1.0","format":1,"kind":"train",
//!  "params":{...},"plugin":"trainer/standard@1.0.0","precision":"f32",
//!  "seed":123,"upstream":{"data":["<key>"],"model":["<key>"]}}
//! ```
//!
//! - `kind`: the stage kind;
//! - `plugin`: the plugin's [fingerprint](ticketlab_api::plugin::registry::PluginEntry::fingerprint)
//!   (kind, name, version and, for a dynamic plugin, the SHA-256 of its library), `null` for
//!   rewind stages, which call no plugin;
//! - `params`: every parameter that can change the result, defaults filled by the checker
//!   (parameters marked [`not_in_key`](ticketlab_api::plugin::ParamSpec::not_in_key), such as how
//!   often a trainer saves a resumable state, are left out);
//! - `upstream`: for each connected input port, the keys of the producing stages in the order
//!   they are connected (so a key changes whenever anything upstream changes);
//! - `seed`: the stage's derived seed (see [`ticketlab_api::seed`]), or `null` when the stage
//!   draws no random numbers with its parameters (its plugin's `uses_seed`; a rewind stage unless
//!   it re-initialises): a sweep or seed-repeat copy of such a stage with the same parameters
//!   and inputs is the same computation and reuses the stored result;
//! - `files`: only for a stage that reads files of the user's (a `file` dataset's data), the
//!   SHA-256 of each file's content, so that an edited file gives a new key while a moved one
//!   keeps it;
//! - `input_names`: for analyze and report stages only, the names of the stages connected to
//!   each port, because their results name the runs they read (a seed repeat's first copy,
//!   `dense@seed0`, trains with the same key as `dense`, but its analyses must say
//!   `dense@seed0`);
//! - `backend`, `precision`, `core`: where and how the numbers are computed, and the version of
//!   ticketlab-engine (a new version may compute differently, so it never reuses old results);
//! - `format`: the version of this recipe ([`KEY_FORMAT`]).
//!
//! Canonical JSON means: object keys sorted at every depth, no whitespace, and numbers written
//! the same whatever way they were spelled: an integral float such as `1.0` or `1e3` is written
//! as the integer `1` or `1000`, so `lr: 1` and `lr: 1.0` give the same key. The stage's *name*
//! is not hashed directly, only through its seed (and, for analyses, its inputs' names); a stage
//! that uses its seed gets a new key when renamed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value, json};
use sha2::{Digest, Sha256};

use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::runtime::Device;

/// Version of the key recipe; bumping it invalidates every stored result.
pub const KEY_FORMAT: u32 = 2;

/// Version of ticketlab-engine, hashed into every key.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A stage's content key: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageKey(String);

impl StageKey {
    /// Length of [`StageKey::short`].
    pub const SHORT_LEN: usize = 12;

    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first [`StageKey::SHORT_LEN`] hex digits, for display.
    pub fn short(&self) -> &str {
        &self.0[..Self::SHORT_LEN.min(self.0.len())]
    }

    /// Parses a key read back from the store; `None` unless it is 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| StageKey(s.to_string()))
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where and how numbers are computed; part of every key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The device graphs compile for.
    pub device: Device,
    /// Floating-point precision of weights and arithmetic.
    pub precision: String,
}

impl Backend {
    /// The backend of a runtime's device, in f32, so results computed on different devices
    /// never share a cache key.
    pub fn of(device: Device) -> Self {
        Self { device, precision: "f32".into() }
    }

    /// The CPU backend in f32, ticketlab's default.
    pub fn cpu() -> Self {
        Self::of(Device::Cpu)
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::cpu()
    }
}

/// The versions hashed into keys. [`KeyVersions::current`] for cache keys; snapshot keys
/// ([`crate::testing`]) use [`KeyVersions::redacted`] so they survive version bumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersions {
    /// The core version string.
    pub core: String,
    /// Whether plugin fingerprints are used as they are (`true`) or reduced to `kind/name`.
    pub plugin_versions: bool,
}

impl KeyVersions {
    /// This build's versions: what the store uses.
    pub fn current() -> Self {
        Self { core: CORE_VERSION.to_string(), plugin_versions: true }
    }

    /// No versions at all: the core version becomes `[redacted]` and plugin fingerprints are
    /// reduced to `kind/name` (no version, no library hash).
    pub fn redacted() -> Self {
        Self { core: "[redacted]".to_string(), plugin_versions: false }
    }
}

/// Computes a stage's key.
///
/// `fingerprint` is the plugin's [`PluginEntry::fingerprint`](ticketlab_api::plugin::registry::PluginEntry::fingerprint)
/// (`None` for rewind); `upstream` maps each input port to the keys of its producers, in the
/// order of `stage.inputs`.
pub fn stage_key(
    stage: &KeyedStage<'_>,
    fingerprint: Option<&str>,
    upstream: &BTreeMap<String, Vec<StageKey>>,
    backend: &Backend,
    versions: &KeyVersions,
) -> StageKey {
    StageKey(hex::encode(Sha256::digest(
        key_material(stage, fingerprint, upstream, backend, versions).as_bytes(),
    )))
}

/// The canonical JSON line that [`stage_key`] hashes (exposed for tests and debugging).
pub fn key_material(
    keyed: &KeyedStage<'_>,
    fingerprint: Option<&str>,
    upstream: &BTreeMap<String, Vec<StageKey>>,
    backend: &Backend,
    versions: &KeyVersions,
) -> String {
    let plugin = fingerprint
        .map(|f| if versions.plugin_versions { f.to_string() } else { strip_version(f) });
    let upstream: BTreeMap<&str, Vec<&str>> = upstream
        .iter()
        .map(|(port, keys)| (port.as_str(), keys.iter().map(StageKey::as_str).collect()))
        .collect();
    let stage = keyed.stage;
    let mut material = json!({
        "format": KEY_FORMAT,
        "kind": stage.kind,
        "plugin": plugin,
        "params": keyed.params,
        "upstream": upstream,
        "seed": keyed.seed,
        "backend": backend.device,
        "precision": backend.precision,
        "core": versions.core,
    });
    if matches!(stage.kind, StageKind::Analyze | StageKind::Report) {
        material["input_names"] = json!(stage.inputs);
    }
    if !keyed.files.is_empty() {
        material["files"] = json!(keyed.files);
    }
    canonical(&material).to_string()
}

/// What of a stage its key covers: the parameters that can change its result, and its seed if
/// it uses one.
#[derive(Debug, Clone)]
pub struct KeyedStage<'a> {
    /// The stage.
    pub stage: &'a StageIr,
    /// The parameters in the key.
    pub params: BTreeMap<String, Value>,
    /// The seed in the key; `None` for a stage that draws no random numbers.
    pub seed: Option<u64>,
    /// The SHA-256 of each file the stage reads, in the order its plugin lists them.
    pub files: Vec<String>,
}

impl<'a> KeyedStage<'a> {
    /// Every parameter and the seed.
    pub fn all(stage: &'a StageIr) -> Self {
        Self { stage, params: stage.params.clone(), seed: Some(stage.seed), files: Vec::new() }
    }
}

/// `kind/name@version#hash` → `kind/name`.
fn strip_version(fingerprint: &str) -> String {
    fingerprint.split(['@', '#']).next().unwrap_or(fingerprint).to_string()
}

/// A copy of `v` with object keys sorted at every depth and integral floats written as integers.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Number(n) => Value::Number(canonical_number(n)),
        other => other.clone(),
    }
}

fn canonical_number(n: &Number) -> Number {
    if n.is_i64() || n.is_u64() {
        return n.clone();
    }
    match n.as_f64() {
        // 2^53: every integer below it is exact in f64.
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => Number::from(f as i64),
        _ => n.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(params: Value) -> StageIr {
        StageIr {
            name: "mask".into(),
            kind: StageKind::Prune,
            plugin: Some("magnitude".into()),
            params: serde_json::from_value(params).unwrap(),
            inputs: BTreeMap::from([("from".into(), vec!["dense".into()])]),
            seed: 7,
            sweep: BTreeMap::new(),
        }
    }

    fn up(k: &str) -> BTreeMap<String, Vec<StageKey>> {
        BTreeMap::from([("from".to_string(), vec![StageKey(k.repeat(64))])])
    }

    fn key_of(s: &StageIr, upstream: &BTreeMap<String, Vec<StageKey>>) -> StageKey {
        stage_key(
            &KeyedStage::all(s),
            Some("pruner/magnitude@1.0.0"),
            upstream,
            &Backend::cpu(),
            &KeyVersions::current(),
        )
    }

    #[test]
    fn spelling_of_numbers_and_key_order_do_not_matter() {
        let a = stage(json!({"rate": 0.6, "lr": 1.0, "at": "final"}));
        let b = stage(json!({"at": "final", "lr": 1, "rate": 0.60}));
        assert_eq!(key_of(&a, &up("a")), key_of(&b, &up("a")));
    }

    #[test]
    fn every_input_of_the_key_changes_it() {
        let base = stage(json!({"rate": 0.6}));
        let k = key_of(&base, &up("a"));
        assert_ne!(k, key_of(&stage(json!({"rate": 0.5})), &up("a")), "params");
        assert_ne!(k, key_of(&base, &up("b")), "upstream");
        let mut seeded = base.clone();
        seeded.seed = 8;
        assert_ne!(k, key_of(&seeded, &up("a")), "seed");
        let v2 = stage_key(
            &KeyedStage::all(&base),
            Some("pruner/magnitude@1.0.1"),
            &up("a"),
            &Backend::cpu(),
            &KeyVersions::current(),
        );
        assert_ne!(k, v2, "plugin version");
        let cuda = Backend::of(Device::Cuda);
        assert_ne!(
            k,
            stage_key(
                &KeyedStage::all(&base),
                Some("pruner/magnitude@1.0.0"),
                &up("a"),
                &cuda,
                &KeyVersions::current()
            ),
            "backend"
        );
        // The name is not hashed except through the seed.
        let mut renamed = base.clone();
        renamed.name = "other".into();
        assert_eq!(k, key_of(&renamed, &up("a")));
        renamed.inputs = BTreeMap::from([("from".into(), vec!["dense@seed0".into()])]);
        assert_eq!(k, key_of(&renamed, &up("a")), "a pruner's result does not name its input");
    }

    #[test]
    fn an_analysis_key_changes_with_the_names_of_its_runs() {
        let mut analysis = stage(json!({}));
        analysis.kind = StageKind::Analyze;
        let k = key_of(&analysis, &up("a"));
        analysis.inputs = BTreeMap::from([("from".into(), vec!["dense@seed0".into()])]);
        assert_ne!(k, key_of(&analysis, &up("a")), "its result names the runs it read");
    }

    #[test]
    fn redacted_keys_ignore_versions() {
        let s = stage(json!({"rate": 0.6}));
        let r = KeyVersions::redacted();
        let a = stage_key(
            &KeyedStage::all(&s),
            Some("pruner/magnitude@1.0.0"),
            &up("a"),
            &Backend::cpu(),
            &r,
        );
        let b = stage_key(
            &KeyedStage::all(&s),
            Some("pruner/magnitude@2.0.0#abc"),
            &up("a"),
            &Backend::cpu(),
            &r,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn key_material_and_keys_of_a_small_pipeline() {
        // Three stages wired like a dataset -> model -> train pipeline; the snapshot pins the
        // recipe (any change to it must bump KEY_FORMAT).
        let mk = |name: &str, kind, plugin: &str, params: Value, inputs: &[(&str, &str)]| StageIr {
            name: name.into(),
            kind,
            plugin: Some(plugin.into()),
            params: serde_json::from_value(params).unwrap(),
            inputs: inputs.iter().map(|(p, s)| (p.to_string(), vec![s.to_string()])).collect(),
            seed: ticketlab_api::seed::derive(0, name),
            sweep: BTreeMap::new(),
        };
        let data = mk("data", StageKind::Dataset, "modular", json!({"op": "add", "p": 23}), &[]);
        let init =
            mk("init", StageKind::Model, "mlp_modular", json!({"width": 32}), &[("data", "data")]);
        let train = mk(
            "dense",
            StageKind::Train,
            "standard",
            json!({"steps": 10, "lr": 0.001}),
            &[("model", "init"), ("data", "data")],
        );
        let versions = KeyVersions { core: "0.0.0-test".into(), plugin_versions: true };
        let b = Backend::cpu();
        let k_data = stage_key(
            &KeyedStage::all(&data),
            Some("dataset/modular@1.0.0"),
            &BTreeMap::new(),
            &b,
            &versions,
        );
        let up_init = BTreeMap::from([("data".to_string(), vec![k_data.clone()])]);
        let k_init = stage_key(
            &KeyedStage::all(&init),
            Some("architecture/mlp_modular@1.0.0"),
            &up_init,
            &b,
            &versions,
        );
        let up_train = BTreeMap::from([
            ("data".to_string(), vec![k_data.clone()]),
            ("model".to_string(), vec![k_init.clone()]),
        ]);
        let material = key_material(
            &KeyedStage::all(&train),
            Some("trainer/standard@1.0.0"),
            &up_train,
            &b,
            &versions,
        );
        let k_train = stage_key(
            &KeyedStage::all(&train),
            Some("trainer/standard@1.0.0"),
            &up_train,
            &b,
            &versions,
        );
        insta::assert_snapshot!(format!(
            "data:  {k_data}\ninit:  {k_init}\ndense: {k_train}\n\n{material}"
        ));
    }
}
