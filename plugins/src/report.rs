//! The `compare` report: the headline table of the input runs against a baseline.
//!
//! JSON: `{"baseline": ARM, "threshold": P, "arms": [{"arm", "t_mem", "t_gen", "tau_grok",
//! "final_train_acc", "final_test_acc", "density", "l1", "l2", "speedup_t_gen",
//! "speedup_tau_grok"}, ..]}`; speed-ups are baseline / arm (> 1 = the arm generalises sooner),
//! null when either never reached the threshold (`speedup_t_gen` is [`speedup_t_gen`]). Each
//! arm's baseline and `speedup_t_gen` are its fields of `summary.json`
//! ([`ReportPlugin::comparisons`]).

use serde::Deserialize;
use serde_json::json;
use ticketlab_api::artifact::{AnalysisArtifact, RunArtifact};
use ticketlab_api::ir::written_name;
use ticketlab_api::metrics::speedup_t_gen;
use ticketlab_api::plugin::{
    AnalysisInputs, Comparison, ParamSpec, ParamType, Params, ReportPlugin,
};
use ticketlab_api::{Error, Result, register_plugin};

const PARAMS: &[ParamSpec] = &[ParamSpec::new(
    "baseline",
    ParamType::Str,
    "the arm (stage name) speed-ups are measured against; in a sweep, the file's name picks that stage's copy among the input runs; empty = the first input run",
)
.default("\"\"")];

/// The `compare` report.
#[derive(Default)]
struct Compare;

impl ReportPlugin for Compare {
    fn report(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let wanted = params.str("baseline")?;
        let (base_name, base) = match wanted {
            "" => inputs
                .runs
                .first()
                .copied()
                .ok_or_else(|| Error::param("runs", "compare needs at least one run"))?,
            name => baseline(inputs, name)?,
        };
        let ratio =
            |b: Option<f64>, a: Option<f64>| b.zip(a).filter(|(_, a)| *a > 0.0).map(|(b, a)| b / a);
        let arms: Vec<serde_json::Value> = inputs
            .runs
            .iter()
            .map(|(name, run)| {
                let s = &run.summary;
                json!({
                    "arm": name,
                    "t_mem": s.t_mem,
                    "t_gen": s.t_gen,
                    "tau_grok": s.tau_grok,
                    "final_train_acc": s.final_train_acc,
                    "final_test_acc": s.final_test_acc,
                    "density": s.density,
                    "l1": s.l1,
                    "l2": s.l2,
                    "speedup_t_gen": speedup_t_gen(base.summary.t_gen, s.t_gen),
                    "speedup_tau_grok": ratio(base.summary.tau_grok, s.tau_grok),
                })
            })
            .collect();
        Ok(AnalysisArtifact {
            analysis: "compare".into(),
            value: json!({"baseline": base_name, "threshold": base.summary.threshold, "arms": arms}),
        })
    }

    fn comparisons(&self, value: &serde_json::Value) -> Vec<Comparison> {
        let Ok(v) = serde_json::from_value::<CompareValue>(value.clone()) else {
            return Vec::new();
        };
        v.arms
            .into_iter()
            .map(|a| Comparison {
                arm: a.arm,
                baseline: v.baseline.clone(),
                speedup_t_gen: a.speedup_t_gen,
            })
            .collect()
    }
}

/// The parts of a `compare` value that are the arms' fields of `summary.json`.
#[derive(Deserialize)]
struct CompareValue {
    baseline: String,
    arms: Vec<CompareArm>,
}

/// One arm of a `compare` value.
#[derive(Deserialize)]
struct CompareArm {
    arm: String,
    speedup_t_gen: Option<f64>,
}

/// The input run `name` names: the run of that name, else the one sweep copy of the stage the
/// file calls `name` (`dense` is `dense[data.op="subtract"]` in that sweep point's compare).
fn baseline<'a>(inputs: &AnalysisInputs<'a>, name: &str) -> Result<(&'a str, &'a RunArtifact)> {
    if let Some(run) = inputs.runs.iter().find(|(n, _)| *n == name) {
        return Ok(*run);
    }
    let copies: Vec<(&'a str, &'a RunArtifact)> =
        inputs.runs.iter().filter(|(n, _)| written_name(n) == name).copied().collect();
    let names =
        |runs: &[(&str, &RunArtifact)]| runs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    match copies.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::param(
            "baseline",
            format!("`{name}` is not one of the input runs: {}", names(&inputs.runs)),
        )),
        several => Err(Error::param(
            "baseline",
            format!("`{name}` names several input runs ({}); name one of them", names(several)),
        )),
    }
}

register_plugin!(
    Report,
    "compare",
    "1.0.0",
    "Headline table of runs: t_mem, t_gen, tau_grok and speed-ups against a baseline",
    PARAMS,
    Compare
);
