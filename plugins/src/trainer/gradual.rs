//! Gradual magnitude pruning during training (Zhu and Gupta 2017, "To prune, or not to prune"):
//! `prune_schedule: { start, end, every, final_rate, initial_rate, power }`. At every
//! `every`-th step from `start` to `end` the arm's mask keeps the largest-magnitude weights
//! (over all prunable layers, among those it still keeps) so that its rate is
//!
//! `s_t = s_f + (s_i − s_f) (1 − (t − start) / (end − start))^power`,
//!
//! from `initial_rate` s_i at `start` to `final_rate` s_f at `end` (power 3, as the paper). The
//! mask is updated inside the compiled graph ([`TrainingSession::set_mask`]): removed weights are
//! exactly 0 from then on and their optimizer moments are zeroed.
//!
//! [`TrainingSession::set_mask`]: ticketlab_tensor::TrainingSession::set_mask

use ticketlab_api::plugin::{ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result};

/// The fields of `prune_schedule`.
const FIELDS: &[ParamSpec] = &[
    ParamSpec::new(
        "final_rate",
        ParamType::Float,
        "the pruning rate reached at `end` (0 = no gradual pruning)",
    )
    .default("0.0")
    .range_exclusive(0.0, 1.0),
    ParamSpec::new("initial_rate", ParamType::Float, "the pruning rate at `start`")
        .default("0.0")
        .range_exclusive(0.0, 1.0),
    ParamSpec::new("start", ParamType::Int, "the first step the mask is updated at")
        .default("0")
        .min(0.0),
    ParamSpec::new("end", ParamType::Int, "the step the final rate is reached at")
        .default("1000")
        .min(1.0),
    ParamSpec::new("every", ParamType::Int, "steps between two updates").default("100").min(1.0),
    ParamSpec::new("power", ParamType::Float, "the exponent of the schedule (3 in Zhu and Gupta)")
        .default("3.0")
        .min(0.0),
];

/// The trainer's `prune_schedule` parameter.
pub(crate) const PRUNE_SCHEDULE: ParamSpec = ParamSpec::new(
    "prune_schedule",
    ParamType::Record(FIELDS),
    "gradual magnitude pruning while training (Zhu and Gupta 2017): every `every` steps from `start` to `end` the mask keeps the largest weights so that its rate follows s_t = s_f + (s_i - s_f)(1 - (t - start)/(end - start))^power: `{ start: 1000, end: 10000, every: 500, final_rate: 0.8 }`",
)
.default(r#"{"end": 1000, "every": 100, "final_rate": 0.0, "initial_rate": 0.0, "power": 3.0, "start": 0}"#)
.in_key_unless_default();

/// A gradual pruning schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gradual {
    initial_rate: f64,
    final_rate: f64,
    start: u64,
    end: u64,
    every: u64,
    power: f64,
}

impl Gradual {
    /// The schedule of `params`; `None` when `final_rate` is 0 (no gradual pruning).
    pub(crate) fn from_params(p: &Params) -> Result<Option<Self>> {
        let Some(record) = p.0.get("prune_schedule") else { return Ok(None) };
        let field = |name: &str| record.get(name).and_then(serde_json::Value::as_f64);
        let final_rate = field("final_rate").unwrap_or(0.0);
        if final_rate == 0.0 {
            return Ok(None);
        }
        let g = Self {
            initial_rate: field("initial_rate").unwrap_or(0.0),
            final_rate,
            start: field("start").unwrap_or(0.0) as u64,
            end: field("end").unwrap_or(1000.0) as u64,
            every: (field("every").unwrap_or(100.0) as u64).max(1),
            power: field("power").unwrap_or(3.0),
        };
        if g.end <= g.start {
            return Err(Error::param(
                "prune_schedule",
                format!("`end` ({}) must come after `start` ({})", g.end, g.start),
            ));
        }
        if g.initial_rate > g.final_rate {
            return Err(Error::param(
                "prune_schedule",
                "`initial_rate` must be at most `final_rate`: a mask only loses weights",
            ));
        }
        Ok(Some(g))
    }

    /// The schedule, if it ends before a training of `steps` does (the last update is followed
    /// by training, as in Zhu and Gupta).
    pub(crate) fn within(self, steps: u64) -> Result<Self> {
        if self.end >= steps {
            return Err(Error::param(
                "prune_schedule",
                format!(
                    "`end` ({}) must come before `steps` ({steps}): the weights train on after the last update",
                    self.end
                ),
            ));
        }
        Ok(self)
    }

    /// The rate the mask takes at `step` if the mask is updated there: every `every` steps
    /// from `start`, and at `end`.
    pub(crate) fn rate_at(&self, step: u64) -> Option<f64> {
        if step < self.start || step > self.end {
            return None;
        }
        if !(step - self.start).is_multiple_of(self.every) && step != self.end {
            return None;
        }
        let progress = (step - self.start) as f64 / (self.end - self.start) as f64;
        Some(
            self.final_rate
                + (self.initial_rate - self.final_rate) * (1.0 - progress).powf(self.power),
        )
    }
}

/// The mask at `rate` of `weights` under the mask `alive`: the largest `|w|` among the weights
/// it keeps (exact count, deterministic ties), so a removed weight never comes back; the same
/// selection as the `jaccard` analysis's masks.
pub(crate) fn magnitude_mask(
    weights: &NamedTensors,
    alive: &MaskSet,
    rate: f64,
) -> Result<MaskSet> {
    let prunable: Vec<String> = alive.keys().cloned().collect();
    crate::analyses::magnitude_mask(weights, &prunable, Some(alive), rate)
}

/// An all-ones mask over `prunable` (what a dense model starts gradual pruning from).
pub(crate) fn full_mask(params: &NamedTensors, prunable: &[String]) -> MaskSet {
    prunable
        .iter()
        .map(|name| (name.clone(), HostTensor::full(params[name].shape.clone(), 1.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Gradual {
        Gradual { initial_rate: 0.0, final_rate: 0.8, start: 100, end: 500, every: 100, power: 3.0 }
    }

    #[test]
    fn the_rate_follows_zhu_and_gupta_at_update_steps_only() {
        let g = schedule();
        assert_eq!(g.rate_at(99), None);
        assert_eq!(g.rate_at(150), None);
        assert_eq!(g.rate_at(600), None);
        assert_eq!(g.rate_at(100), Some(0.0));
        // s_t = 0.8 + (0 - 0.8)(1 - (t - 100)/400)^3
        for (t, frac) in [(200, 0.25), (300, 0.5), (400, 0.75)] {
            let expected = 0.8 - 0.8 * (1.0f64 - frac).powi(3);
            assert!((g.rate_at(t).unwrap() - expected).abs() < 1e-12, "{t}");
        }
        assert_eq!(g.rate_at(500), Some(0.8));
        // `end` is an update step even off the `every` grid.
        let off = Gradual { end: 450, ..g };
        assert_eq!(off.rate_at(450), Some(0.8));
    }

    #[test]
    fn masks_keep_the_largest_alive_weights_and_never_regrow() {
        let w: NamedTensors = [
            ("a".to_string(), HostTensor::new(vec![4], vec![0.1, -5.0, 0.3, 0.2])),
            ("b".to_string(), HostTensor::new(vec![2], vec![9.0, -0.4])),
        ]
        .into();
        let full = full_mask(&w, &["a".to_string(), "b".to_string()]);
        let half = magnitude_mask(&w, &full, 0.5).unwrap();
        assert_eq!(half["a"].data, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(half["b"].data, vec![1.0, 1.0]);
        // 9.0 was removed before: a later, denser rate does not bring it back.
        let without_nine: MaskSet = [
            ("a".to_string(), HostTensor::new(vec![4], vec![1.0, 1.0, 1.0, 1.0])),
            ("b".to_string(), HostTensor::new(vec![2], vec![0.0, 1.0])),
        ]
        .into();
        let m = magnitude_mask(&w, &without_nine, 0.5).unwrap();
        assert_eq!(m["b"].data[0], 0.0);
        assert_eq!(m.values().flat_map(|t| &t.data).filter(|&&k| k == 1.0).count(), 3);
    }
}
