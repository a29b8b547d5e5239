//! ticketlab-testing: snapshot testing of whole pipelines, for ticketlab's own tests and for
//! plugin authors.
//!
//! [`snapshot`] runs a checked experiment on the CPU in a fresh temporary store and returns a
//! [`Snapshot`]: a plain, serialisable value meant to be pinned with
//! [insta](https://insta.rs) (`insta::assert_yaml_snapshot!(snap)`) or committed as YAML
//! (`ticketlab snapshot FILE`). It contains
//!
//! - the plan: every stage's name, kind, plugin, parameters (exactly as checked, defaults
//!   filled), inputs and a *snapshot key* (below);
//! - per trained arm (train stage): its summary metrics (t_mem, t_gen, tau_grok, final
//!   accuracies and losses, density, norms) and its number of evaluations;
//! - per mask (prune stage): global and per-layer kept/total counts and density, and a hash of
//!   the mask of every layer and of the whole mask.
//!
//! Stability is part of the API:
//!
//! - every computed float is rounded to [`SIGNIFICANT_DIGITS`] significant digits with
//!   [`round_sig`] (parameters are inputs and are kept exactly). Results are bit for bit the same
//!   for the same thread count; across thread counts the matrix kernels reduce every output in
//!   the same order, so they agree too, and the rounding absorbs last-bit differences of
//!   anything else;
//! - nothing time-, path- or version-dependent is included: no timings, no store or file paths,
//!   and snapshot keys are cache keys computed with every version redacted
//!   ([`KeyVersions::redacted`]), so they change when what a stage computes changes, not when
//!   ticketlab or a plugin is released;
//! - every map is sorted by name; stages are in plan order.
//!
//! [`round_floats`] applies the same rounding to any JSON value, for users who pin values of
//! their own (e.g. an analysis' output), and [`REDACTED`] is the text used for redactions.
//!
//! This crate takes a checked IR and does not read experiment files: the `ticketlab snapshot
//! FILE` command loads the file with the front end (`ticketlab-dsl`) and calls [`snapshot`] with
//! the checked IR, which keeps this crate free of the front end's dependencies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use ticketlab_api::Result;
use ticketlab_api::artifact::{Artifact, MaskArtifact, RunArtifact};
use ticketlab_api::ir::{ExperimentIr, StageKind};
use ticketlab_api::metrics::RunSummary;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::tensor::MaskSet;
use ticketlab_engine::key::KeyVersions;
use ticketlab_engine::plan::Plan;
use ticketlab_engine::planner::{plan, plan_with};
use ticketlab_engine::{ExecOptions, Execution, NoEvents, RunEvents, Store, execute};

/// Significant digits kept by [`round_sig`] in every computed float of a [`Snapshot`].
pub const SIGNIFICANT_DIGITS: usize = 4;

/// Hex digits of the snapshot keys and mask hashes shown in a [`Snapshot`].
pub const HASH_DIGITS: usize = 16;

/// What replaces redacted values (versions inside snapshot keys).
pub const REDACTED: &str = "[redacted]";

/// How to take a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// How stages run: the directory relative data paths resolve against (the experiment
    /// file's), plugin isolation; a snapshot does not depend on the rest.
    pub runtime: ticketlab_api::runtime::Runtime,
}

/// A snapshot-ready summary of an executed experiment (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The experiment's name.
    pub experiment: String,
    /// Its root seed.
    pub seed: u64,
    /// The plan, in execution order.
    pub stages: Vec<StageSnapshot>,
    /// Per train stage.
    pub runs: BTreeMap<String, RunSnapshot>,
    /// Per prune stage.
    pub masks: BTreeMap<String, MaskSnapshot>,
}

/// One planned stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSnapshot {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: StageKind,
    /// Plugin name (no version), if any.
    pub plugin: Option<String>,
    /// Parameters, defaults filled.
    pub params: BTreeMap<String, Value>,
    /// Inputs by port.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// The stage's cache key with versions redacted, first [`HASH_DIGITS`] hex digits.
    pub key: String,
}

/// The summary metrics of one trained arm (floats rounded) and how many evaluations it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    /// The run's summary, every float rounded with [`round_sig`].
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Evaluations recorded.
    pub evaluations: usize,
}

/// Kept/total counts and the hash of one layer's mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSnapshot {
    /// Weights kept.
    pub kept: usize,
    /// Weights in the layer.
    pub total: usize,
    /// kept / total (rounded).
    pub density: f64,
    /// Hash of the layer's mask ([`mask_hash`]).
    pub hash: String,
}

/// Statistics of one mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskSnapshot {
    /// Weights kept.
    pub kept: usize,
    /// Prunable weights.
    pub total: usize,
    /// kept / total (rounded).
    pub density: f64,
    /// Hash of the whole mask ([`mask_hash`]).
    pub hash: String,
    /// Per layer.
    pub layers: BTreeMap<String, LayerSnapshot>,
}

/// Rounds `x` to [`SIGNIFICANT_DIGITS`] significant digits (NaN, infinities and 0 unchanged;
/// `-0` becomes `0`).
pub fn round_sig(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return if x == 0.0 { 0.0 } else { x };
    }
    // Decimal rounding through the shortest scientific notation: exact to the printed digit,
    // unlike scaling by powers of ten.
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, x).parse().unwrap_or(x)
}

/// Rounds every non-integer number inside `v` with [`round_sig`].
pub fn round_floats(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(r) = n.as_f64().map(round_sig).and_then(serde_json::Number::from_f64) {
                *n = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round_floats),
        Value::Object(map) => map.values_mut().for_each(round_floats),
        _ => {}
    }
}

/// A stable hash of a mask (or of one layer): SHA-256 over, for each entry in name order, the
/// name, its shape and one bit per weight (kept or not), shown as [`HASH_DIGITS`] hex digits.
pub fn mask_hash(masks: &MaskSet) -> String {
    let mut h = Sha256::new();
    for (name, m) in masks {
        h.update(name.as_bytes());
        h.update([0]);
        for d in &m.shape {
            h.update((*d as u64).to_le_bytes());
        }
        let mut bits = vec![0u8; m.data.len().div_ceil(8)];
        for (i, v) in m.data.iter().enumerate() {
            if *v != 0.0 {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        h.update(&bits);
    }
    hex::encode(h.finalize())[..HASH_DIGITS].to_string()
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary store removed when dropped.
struct TempStore(PathBuf);

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ir` in a fresh temporary store (nothing cached, nothing left behind) and returns its
/// [`Snapshot`]. Fails with the first stage error.
pub fn snapshot(
    ir: &ExperimentIr,
    registry: &Registry,
    options: &SnapshotOptions,
) -> Result<Snapshot> {
    snapshot_with_events(ir, registry, options, &mut NoEvents)
}

/// [`snapshot`], reporting progress to `events`.
pub fn snapshot_with_events(
    ir: &ExperimentIr,
    registry: &Registry,
    options: &SnapshotOptions,
    events: &mut dyn RunEvents,
) -> Result<Snapshot> {
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = TempStore(
        std::env::temp_dir().join(format!("ticketlab-snapshot-{}-{n}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    let store = Store::new(&dir.0);
    let run_plan = plan(ir, registry, Some(&store), &options.runtime)?;
    let exec = execute(
        &run_plan,
        registry,
        &store,
        &ExecOptions { jobs: 1, runtime: options.runtime.clone(), ..ExecOptions::default() },
        events,
    );
    if let Some(e) = exec.error {
        return Err(e);
    }
    let keys = plan_with(ir, registry, None, &options.runtime, &KeyVersions::redacted())?;
    Ok(Snapshot::from_execution(ir, &keys, &exec))
}

impl Snapshot {
    /// Builds the snapshot of an execution. `plan` supplies the keys shown (plan it with
    /// [`KeyVersions::redacted`] for version-independent keys).
    pub fn from_execution(ir: &ExperimentIr, plan: &Plan, exec: &Execution) -> Self {
        let stages = plan
            .stages
            .iter()
            .map(|ps| StageSnapshot {
                name: ps.stage.name.clone(),
                kind: ps.stage.kind,
                plugin: ps.stage.plugin.clone(),
                params: ps.stage.params.clone(),
                inputs: ps.stage.inputs.clone(),
                key: ps.key.as_str()[..HASH_DIGITS].to_string(),
            })
            .collect();
        let mut runs = BTreeMap::new();
        let mut masks = BTreeMap::new();
        for (name, a) in &exec.artifacts {
            match a {
                Artifact::Run(r) => {
                    runs.insert(name.clone(), RunSnapshot::of(r));
                }
                Artifact::Mask(m) => {
                    masks.insert(name.clone(), MaskSnapshot::of(m));
                }
                _ => {}
            }
        }
        Self { experiment: ir.name.clone(), seed: ir.seed, stages, runs, masks }
    }

    /// The snapshot as YAML (what `ticketlab snapshot` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the snapshot: {e}\n"))
    }
}

impl RunSnapshot {
    fn of(r: &RunArtifact) -> Self {
        let s = &r.summary;
        let summary = RunSummary {
            threshold: round_sig(s.threshold),
            tau_grok: s.tau_grok.map(round_sig),
            final_train_acc: s.final_train_acc.map(round_sig),
            final_test_acc: s.final_test_acc.map(round_sig),
            final_train_loss: round_sig(s.final_train_loss),
            final_test_loss: round_sig(s.final_test_loss),
            density: round_sig(s.density),
            l1: round_sig(s.l1),
            l2: round_sig(s.l2),
            ..s.clone()
        };
        Self { summary, evaluations: r.records.len() }
    }
}

impl MaskSnapshot {
    fn of(m: &MaskArtifact) -> Self {
        let layers = m
            .report
            .layers
            .iter()
            .map(|(name, l)| {
                let one: MaskSet = m
                    .masks
                    .get(name)
                    .map(|t| BTreeMap::from([(name.clone(), t.clone())]))
                    .unwrap_or_default();
                (
                    name.clone(),
                    LayerSnapshot {
                        kept: l.kept,
                        total: l.total,
                        density: round_sig(l.density),
                        hash: mask_hash(&one),
                    },
                )
            })
            .collect();
        Self {
            kept: m.report.kept,
            total: m.report.total,
            density: round_sig(m.report.density),
            hash: mask_hash(&m.masks),
            layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::tensor::HostTensor;

    #[test]
    fn rounding_keeps_four_significant_digits() {
        assert_eq!(round_sig(0.123456), 0.1235);
        assert_eq!(round_sig(123456.0), 123500.0);
        assert_eq!(round_sig(-0.0), 0.0);
        assert_eq!(round_sig(1e-9 * 1.23456), 1.235e-9);
        assert!(round_sig(f64::NAN).is_nan());
        let mut v = serde_json::json!({"a": [0.333333, 3], "b": {"c": 5.43216}});
        round_floats(&mut v);
        assert_eq!(v, serde_json::json!({"a": [0.3333, 3], "b": {"c": 5.432}}));
    }

    #[test]
    fn mask_hash_sees_every_bit_and_name() {
        let m = |v: Vec<f32>, name: &str| {
            BTreeMap::from([(name.to_string(), HostTensor::new(vec![v.len()], v))])
        };
        let a = mask_hash(&m(vec![1.0, 0.0, 1.0], "w"));
        assert_eq!(a, mask_hash(&m(vec![1.0, 0.0, 1.0], "w")));
        assert_ne!(a, mask_hash(&m(vec![1.0, 1.0, 1.0], "w")));
        assert_ne!(a, mask_hash(&m(vec![1.0, 0.0, 1.0], "v")));
        assert_eq!(a.len(), HASH_DIGITS);
    }
}
