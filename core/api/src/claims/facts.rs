//! What a run answers about its arms: the [`Facts`] the evaluator asks.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A sweep point: axis (`STAGE.PARAM`) to its value.
pub type Point = BTreeMap<String, Value>;

/// What the run knows about one metric of one arm.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The metric's value.
    Value(f64),
    /// A threshold the arm never reached: `t_mem`/`t_gen` absent from the summary, and so
    /// `tau_grok` and `speedup_t_gen` of an arm that never generalised.
    Never,
    /// No value: the arm is missing or failed, or the metric was not recorded. The reason is
    /// shown in the verdict.
    Missing(String),
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Value(x) => write!(f, "{x}"),
            Fact::Never => write!(f, "never"),
            Fact::Missing(reason) => write!(f, "missing: {reason}"),
        }
    }
}

/// The results of a run, as the evaluator asks for them. Implementations must not panic; an
/// arm they cannot answer for is a [`Fact::Missing`].
pub trait Facts {
    /// The value of `metric` of the arm of `stage` (its written name) at `point`, on `seed`.
    /// `point` holds exactly the axes the stage is swept on ([`StageSchema::swept_on`]), with
    /// the values as the [`Schema`] lists them (empty for a stage that is not swept).
    ///
    /// [`StageSchema::swept_on`]: super::StageSchema::swept_on
    /// [`Schema`]: super::Schema
    fn metric(&self, stage: &str, point: &Point, metric: &str, seed: u64) -> Fact;

    /// The seeds the experiment ran (the root seed of each repeat), in order.
    fn seeds(&self) -> Vec<u64>;
}

/// `stage[axis=value,...].metric`, values as compact JSON (the engine's copy names).
pub fn reference_name(stage: &str, point: &Point, metric: &str) -> String {
    if point.is_empty() {
        return format!("{stage}.{metric}");
    }
    let coords: Vec<String> = point
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{stage}[{}].{metric}", coords.join(","))
}
