//! Stop rules: a training that ends when its answer is known, at an evaluation step.
//!
//! `stop: { when: generalised, patience: 2000 }` ends an arm once its train and test accuracy
//! have both been at or above the trainer's `threshold` at every evaluation for `patience`
//! steps; `when: plateau` once `metric` has not improved by more than `min_delta` for
//! `patience` steps; `when: diverged` once the train loss is not finite or above `factor` times
//! the lowest seen, keeping the arm's results up to there instead of failing it. `max_seconds`
//! (with any `when`) ends it at the first evaluation after that much wall time: the one rule
//! whose stopping step depends on the machine.
//!
//! Rules are judged at evaluations only, so the last evaluation of a stopped arm is at its stop
//! and every step before it is the step the arm takes without the rule: t_mem and t_gen are the
//! same as without it when they come before the stop.

use std::time::Instant;

use ticketlab_api::metrics::EvalRecord;
use ticketlab_api::plugin::{ParamSpec, ParamType, Params};
use ticketlab_api::{Error, Result};

const WHEN: &[&str] = &["never", "generalised", "plateau", "diverged"];
const METRICS: &[&str] = &["test_loss", "train_loss", "test_acc", "train_acc"];

/// The fields of a trainer's `stop` parameter.
pub(crate) const FIELDS: &[ParamSpec] = &[
    ParamSpec::new("when", ParamType::Choice(WHEN), "`generalised`: train and test accuracy at or above `threshold` for `patience` steps; `plateau`: `metric` not better by more than `min_delta` for `patience` steps; `diverged`: train loss not finite or above `factor` x its lowest; `never`: only `max_seconds`").default("\"never\""),
    ParamSpec::new("patience", ParamType::Int, "steps the condition must hold (counted between evaluations; 0 = at the first evaluation where it holds)").default("0").min(0.0),
    ParamSpec::new("metric", ParamType::Choice(METRICS), "`plateau`: the evaluation's metric to watch (losses must fall, accuracies rise)").default("\"test_loss\""),
    ParamSpec::new("min_delta", ParamType::Float, "`plateau`: the least change that counts as better").default("0.0").min(0.0),
    ParamSpec::new("factor", ParamType::Float, "`diverged`: how many times its lowest the train loss may reach").default("10.0").min(1.0),
    ParamSpec::new("max_seconds", ParamType::Float, "end at the first evaluation after this much wall time of this training (0 = no limit); the stopping step then depends on the machine").default("0.0").min(0.0),
];

/// The trainer's `stop` parameter.
pub(crate) const STOP: ParamSpec = ParamSpec::new(
    "stop",
    ParamType::Record(FIELDS),
    "end the training early, at an evaluation, when its answer is known: `{ when: generalised, patience: 2000 }`, `{ when: plateau, metric: test_loss, patience: 5000, min_delta: 0.001 }`, `{ when: diverged }`, `{ max_seconds: 600 }`; the arm's summary says why and where it stopped",
)
.default(
    r#"{"factor": 10.0, "max_seconds": 0.0, "metric": "test_loss", "min_delta": 0.0, "patience": 0, "when": "never"}"#,
)
.in_key_unless_default();

#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Never,
    Generalised,
    Plateau,
    Diverged,
}

/// A parsed `stop` parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StopRule {
    when: When,
    patience: u64,
    metric: &'static str,
    min_delta: f64,
    factor: f64,
    max_seconds: f64,
}

impl StopRule {
    /// The rule of `params` (defaults filled by the checker).
    pub(crate) fn from_params(params: &Params) -> Result<Self> {
        let value = STOP
            .normalised(params.get("stop").unwrap_or(&STOP.default_value().unwrap_or_default()));
        STOP.check(&value).map_err(|e| Error::param("stop", e))?;
        let field = |name: &str| value.get(name).cloned().unwrap_or_default();
        let text = |name: &str| field(name).as_str().unwrap_or_default().to_string();
        let number = |name: &str| field(name).as_f64().unwrap_or_default();
        let when = match text("when").as_str() {
            "generalised" => When::Generalised,
            "plateau" => When::Plateau,
            "diverged" => When::Diverged,
            _ => When::Never,
        };
        let metric = METRICS.iter().copied().find(|m| *m == text("metric")).unwrap_or(METRICS[0]);
        Ok(Self {
            when,
            patience: field("patience").as_u64().unwrap_or_default(),
            metric,
            min_delta: number("min_delta"),
            factor: number("factor"),
            max_seconds: number("max_seconds"),
        })
    }

    /// Whether a non-finite step loss ends the arm as stopped rather than failed.
    pub(crate) fn stops_on_divergence(&self) -> bool {
        self.when == When::Diverged
    }
}

/// A rule applied to one arm's evaluations as they come.
#[derive(Debug, Clone)]
pub(crate) struct StopWatch {
    rule: StopRule,
    threshold: f64,
    started: Instant,
    /// `generalised`: the first step of the current run of evaluations at or above the threshold.
    held_since: Option<u64>,
    /// `plateau`: the best value and the step it was reached; `diverged`: the lowest train loss.
    best: Option<(f64, u64)>,
}

impl StopWatch {
    /// A watch for `rule`, with the trainer's accuracy `threshold`, over `earlier` evaluations
    /// (those of a resumed state, replayed so the rule continues where it was).
    pub(crate) fn new(rule: StopRule, threshold: f64, earlier: &[EvalRecord]) -> Self {
        let mut watch =
            Self { rule, threshold, started: Instant::now(), held_since: None, best: None };
        for record in earlier {
            watch.judge(record);
        }
        watch
    }

    /// Why the arm stops after `record`, if it does.
    pub(crate) fn after(&mut self, record: &EvalRecord) -> Option<String> {
        let reason = self.judge(record);
        let elapsed = self.started.elapsed().as_secs_f64();
        match reason {
            Some(reason) => Some(reason),
            None if self.rule.max_seconds > 0.0 && elapsed >= self.rule.max_seconds => {
                Some(format!("max_seconds: {elapsed:.0} s of at most {}", self.rule.max_seconds))
            }
            None => None,
        }
    }

    /// The rule's condition at `record`, updating what it remembers.
    fn judge(&mut self, record: &EvalRecord) -> Option<String> {
        let patience = self.rule.patience;
        match self.rule.when {
            When::Never => None,
            When::Generalised => {
                let reached = |acc: Option<f64>| acc.is_some_and(|a| a >= self.threshold);
                if !(reached(record.train_acc) && reached(record.test_acc)) {
                    self.held_since = None;
                    return None;
                }
                let since = *self.held_since.get_or_insert(record.step);
                (record.step - since >= patience).then(|| {
                    format!(
                        "generalised: train and test accuracy at or above {} since step {since}",
                        self.threshold
                    )
                })
            }
            When::Plateau => {
                let value = metric(record, self.rule.metric)?;
                // Losses fall and accuracies rise: compare on a scale where lower is better.
                let score = if self.rule.metric.ends_with("_acc") { -value } else { value };
                match self.best {
                    Some((best, _)) if score >= best - self.rule.min_delta => {}
                    _ => self.best = Some((score, record.step)),
                }
                let (_, at) = self.best?;
                (record.step - at >= patience && record.step > at).then(|| {
                    format!(
                        "plateau: {} not better by more than {} since step {at}",
                        self.rule.metric, self.rule.min_delta
                    )
                })
            }
            When::Diverged => {
                let loss = record.train_loss;
                if !loss.is_finite() {
                    return Some(format!("diverged: train loss {loss}"));
                }
                let lowest = self.best.map_or(loss, |(b, _)| b.min(loss));
                self.best = Some((lowest, record.step));
                (loss > self.rule.factor * lowest).then(|| {
                    format!(
                        "diverged: train loss {loss:.4} above {} x its lowest {lowest:.4}",
                        self.rule.factor
                    )
                })
            }
        }
    }
}

/// The value of `name` in `record`, if it has one.
fn metric(record: &EvalRecord, name: &str) -> Option<f64> {
    match name {
        "train_loss" => Some(record.train_loss),
        "test_loss" => Some(record.test_loss),
        "train_acc" => record.train_acc,
        "test_acc" => record.test_acc,
        _ => None,
    }
    .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::metrics::Norms;

    fn record(step: u64, train_acc: f64, test_acc: f64, test_loss: f64) -> EvalRecord {
        EvalRecord {
            step,
            train_loss: 1.0 / (step + 1) as f64,
            train_acc: Some(train_acc),
            test_loss,
            test_acc: Some(test_acc),
            norms: Norms { l1: 0.0, l2: 0.0 },
            layers: Default::default(),
        }
    }

    fn rule(stop: serde_json::Value) -> StopRule {
        StopRule::from_params(&Params::new().with("stop", stop)).unwrap()
    }

    /// The step at which a watch over `records` stops, if it does.
    fn stops_at(rule: StopRule, records: &[EvalRecord]) -> Option<u64> {
        let mut watch = StopWatch::new(rule, 0.95, &[]);
        records.iter().find(|r| watch.after(r).is_some()).map(|r| r.step)
    }

    #[test]
    fn generalised_waits_for_patience_and_restarts_when_accuracy_drops() {
        let records: Vec<EvalRecord> = [
            (0, 0.1, 0.1),
            (100, 1.0, 0.96),
            (200, 1.0, 0.90),
            (300, 1.0, 0.97),
            (400, 1.0, 0.98),
            (500, 1.0, 0.99),
        ]
        .iter()
        .map(|&(s, a, b)| record(s, a, b, 1.0))
        .collect();
        let generalised = |patience: u64| {
            rule(serde_json::json!({ "when": "generalised", "patience": patience }))
        };
        assert_eq!(stops_at(generalised(0), &records), Some(100));
        // The drop at 200 restarts the count: held from 300, so 200 steps of patience end at 500.
        assert_eq!(stops_at(generalised(200), &records), Some(500));
        assert_eq!(stops_at(generalised(300), &records), None);
    }

    #[test]
    fn plateau_counts_from_the_last_improvement_beyond_min_delta() {
        let losses = [5.0, 4.0, 3.95, 3.9, 3.91, 3.92];
        let records: Vec<EvalRecord> =
            losses.iter().enumerate().map(|(i, &l)| record(i as u64 * 10, 0.0, 0.0, l)).collect();
        let plateau = |patience: u64, min_delta: f64| {
            rule(
                serde_json::json!({ "when": "plateau", "patience": patience, "min_delta": min_delta }),
            )
        };
        // Improvements of 0.05 count without a min_delta: the best is 3.9 at step 30.
        assert_eq!(stops_at(plateau(20, 0.0), &records), Some(50));
        // With min_delta 0.1 only the drop to 4.0 at step 10 counts.
        assert_eq!(stops_at(plateau(20, 0.1), &records), Some(30));
    }

    #[test]
    fn diverged_stops_on_a_loss_far_above_its_lowest() {
        let mut records: Vec<EvalRecord> = (0..4).map(|i| record(i * 10, 0.0, 0.0, 1.0)).collect();
        records[3].train_loss = 2.0; // lowest 1/21 at step 20: above 10 x.
        assert_eq!(stops_at(rule(serde_json::json!({ "when": "diverged" })), &records), Some(30));
        records[3].train_loss = 0.3;
        assert_eq!(stops_at(rule(serde_json::json!({ "when": "diverged" })), &records), None);
    }

    #[test]
    fn a_resumed_watch_continues_where_it_was() {
        let records: Vec<EvalRecord> = (0..6).map(|i| record(i * 100, 1.0, 1.0, 1.0)).collect();
        let generalised = rule(serde_json::json!({ "when": "generalised", "patience": 400 }));
        let mut resumed = StopWatch::new(generalised.clone(), 0.95, &records[..3]);
        let at = records[3..].iter().find(|r| resumed.after(r).is_some()).map(|r| r.step);
        assert_eq!(at, stops_at(generalised, &records));
        assert_eq!(at, Some(400));
    }

    #[test]
    fn the_default_rule_never_stops_and_unknown_fields_are_refused() {
        let generalising: Vec<EvalRecord> = (0..5).map(|i| record(i * 10, 1.0, 1.0, 0.1)).collect();
        assert_eq!(stops_at(StopRule::from_params(&Params::new()).unwrap(), &generalising), None);
        // Leaving a field out and writing its default are the same value, so the same key.
        assert_eq!(STOP.normalised(&serde_json::json!({})), STOP.default_value().unwrap());
        let err =
            STOP.check(&serde_json::json!({ "when": "generalised", "patiense": 5 })).unwrap_err();
        assert!(err.contains("did you mean `patience`"), "{err}");
        let err = STOP.check(&serde_json::json!({ "when": "soon" })).unwrap_err();
        assert!(err.contains("`stop.when`"), "{err}");
    }
}
