//! Dynamic sparse training, keeping each layer's density: the trainer's
//! `dynamic: { method, every, fraction, end }`.
//!
//! Every `every` steps (before `end`; 0: until the last step), in each prunable layer, the
//! `k = floor(f · n)` active weights of smallest magnitude are dropped (`n` the layer's active
//! count) and `k` inactive ones are grown, so the layer keeps `n`:
//!
//! - **SET** (Mocanu et al. 2018): `f` = `fraction` (their ζ), grown at random (seeded by the
//!   stage and the step);
//! - **RigL** (Evci et al. 2020): `f = fraction / 2 · (1 + cos(π t / end))` (their α with cosine
//!   decay), grown where the dense gradient `|∂L/∂w|` of the current batch is largest.
//!
//! Candidates for growing are the weights inactive after the drop, ties broken by position.
//! Grown weights start at 0 with no optimizer moments (a removed weight's are cleared, and a
//! weight that never trained has none); the mask changes inside the compiled graph.

use rand::{Rng, SeedableRng};
use ticketlab_api::plugin::{ParamSpec, ParamType, Params};
use ticketlab_api::seed;
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result};

/// The fields of `dynamic`.
const FIELDS: &[ParamSpec] = &[
    ParamSpec::new("method", ParamType::Choice(&["none", "set", "rigl"]), "`set`: drop the smallest weights, grow at random; `rigl`: drop the smallest, grow where the dense gradient is largest; `none`: a fixed mask").default("\"none\""),
    ParamSpec::new("every", ParamType::Int, "steps between two updates (ΔT)").default("100").min(1.0),
    ParamSpec::new("fraction", ParamType::Float, "the fraction of each layer's active weights replaced at an update (SET's ζ; RigL's α, decayed by a cosine to 0 at `end`)").default("0.3").range_exclusive(0.0, 1.0),
    ParamSpec::new("end", ParamType::Int, "the step updates stop at (RigL's T_end; 0 = the last step)").default("0").min(0.0),
];

/// The trainer's `dynamic` parameter.
pub(crate) const DYNAMIC: ParamSpec = ParamSpec::new(
    "dynamic",
    ParamType::Record(FIELDS),
    "dynamic sparse training keeping each layer's density: every `every` steps drop the smallest active weights and grow as many, at random (`set`, Mocanu et al. 2018) or where the dense gradient is largest (`rigl`, Evci et al. 2020): `{ method: rigl, every: 100, fraction: 0.3, end: 7500 }`; needs a sparse model (a ticket) or `prune_schedule`",
)
.default(r#"{"end": 0, "every": 100, "fraction": 0.3, "method": "none"}"#)
.in_key_unless_default();

/// How grown weights are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grow {
    /// At random (SET).
    Random,
    /// By the dense gradient's magnitude (RigL).
    Gradient,
}

/// A dynamic sparse training schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dynamic {
    pub(crate) grow: Grow,
    every: u64,
    fraction: f64,
    end: u64,
}

impl Dynamic {
    /// The schedule of `params` for a training of `steps`; `None` with `method: none`.
    pub(crate) fn from_params(p: &Params, steps: u64) -> Result<Option<Self>> {
        let Some(record) = p.0.get("dynamic") else { return Ok(None) };
        let grow = match record.get("method").and_then(serde_json::Value::as_str) {
            Some("set") => Grow::Random,
            Some("rigl") => Grow::Gradient,
            _ => return Ok(None),
        };
        let field = |name: &str, default: f64| {
            record.get(name).and_then(serde_json::Value::as_f64).unwrap_or(default)
        };
        let end = match field("end", 0.0) as u64 {
            0 => steps,
            end if end > steps => {
                return Err(Error::param(
                    "dynamic",
                    format!("`end` ({end}) is after the last step ({steps})"),
                ));
            }
            end => end,
        };
        Ok(Some(Self {
            grow,
            every: (field("every", 100.0) as u64).max(1),
            fraction: field("fraction", 0.3),
            end,
        }))
    }

    /// The fraction of each layer's active weights replaced at `step`, if the mask is updated
    /// there: every `every` steps after 0 and before `end`.
    pub(crate) fn fraction_at(&self, step: u64) -> Option<f64> {
        if step == 0 || step >= self.end || !step.is_multiple_of(self.every) {
            return None;
        }
        Some(match self.grow {
            Grow::Random => self.fraction,
            Grow::Gradient => {
                let t = step as f64 / self.end as f64;
                self.fraction / 2.0 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        })
    }
}

/// Scores to grow by at random: uniform in [0, 1), seeded by the stage, the step and the layer.
pub(crate) fn random_scores(mask: &MaskSet, stage_seed: u64, step: u64) -> NamedTensors {
    mask.iter()
        .enumerate()
        .map(|(i, (name, m))| {
            let s =
                seed::splitmix64(stage_seed ^ seed::splitmix64(step ^ seed::splitmix64(i as u64)));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            let data = (0..m.len()).map(|_| rng.r#gen::<f32>()).collect();
            (name.clone(), HostTensor::new(m.shape.clone(), data))
        })
        .collect()
}

/// `|scores|` of the parameters `mask` covers.
pub(crate) fn magnitudes(scores: &NamedTensors, mask: &MaskSet) -> NamedTensors {
    mask.keys()
        .map(|name| {
            let s = &scores[name];
            (
                name.clone(),
                HostTensor::new(s.shape.clone(), s.data.iter().map(|v| v.abs()).collect()),
            )
        })
        .collect()
}

/// The mask after one update: in each layer the `floor(fraction · n)` active weights of
/// smallest `|w|` dropped and as many of the then inactive ones with the largest `grow` score
/// grown (ties by position), so each layer keeps its count.
pub(crate) fn drop_and_grow(
    mask: &MaskSet,
    weights: &NamedTensors,
    grow: &NamedTensors,
    fraction: f64,
) -> MaskSet {
    mask.iter()
        .map(|(name, m)| {
            let (w, g) = (&weights[name].data, &grow[name].data);
            let mut active: Vec<usize> = (0..m.len()).filter(|&i| m.data[i] != 0.0).collect();
            let k = (fraction * active.len() as f64).floor() as usize;
            active.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b)));
            let mut next = m.data.clone();
            for &i in &active[..k] {
                next[i] = 0.0;
            }
            let mut inactive: Vec<usize> = (0..m.len()).filter(|&i| next[i] == 0.0).collect();
            inactive.sort_by(|&a, &b| g[b].total_cmp(&g[a]).then(a.cmp(&b)));
            for &i in inactive.iter().take(k) {
                next[i] = 1.0;
            }
            (name.clone(), HostTensor::new(m.shape.clone(), next))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(values: &[f32]) -> HostTensor {
        HostTensor::new(vec![values.len()], values.to_vec())
    }

    #[test]
    fn updates_follow_set_and_the_rigl_cosine() {
        let set = Dynamic { grow: Grow::Random, every: 100, fraction: 0.3, end: 1000 };
        assert_eq!(set.fraction_at(0), None);
        assert_eq!(set.fraction_at(150), None);
        assert_eq!(set.fraction_at(1000), None);
        assert_eq!(set.fraction_at(300), Some(0.3));
        let rigl = Dynamic { grow: Grow::Gradient, ..set };
        // alpha / 2 (1 + cos(pi t / T_end)): 0.3 at t = 0, 0.15 at T_end / 2, near 0 at T_end.
        assert!((rigl.fraction_at(500).unwrap() - 0.15).abs() < 1e-12);
        let at = |t: f64| 0.15 * (1.0 + (std::f64::consts::PI * t / 1000.0).cos());
        assert!((rigl.fraction_at(200).unwrap() - at(200.0)).abs() < 1e-12);
        assert!(rigl.fraction_at(900).unwrap() < rigl.fraction_at(100).unwrap());
    }

    #[test]
    fn drop_the_smallest_grow_the_best_scored_keep_the_count() {
        // Active: 0, 1, 2, 3 (|w| 0.5, 0.1, 0.9, 0.2); inactive: 4, 5.
        let mask: MaskSet = [("a".to_string(), layer(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))].into();
        let w: NamedTensors = [("a".to_string(), layer(&[0.5, -0.1, 0.9, 0.2, 0.0, 0.0]))].into();
        let g: NamedTensors = [("a".to_string(), layer(&[0.0, 0.0, 0.0, 0.0, 0.7, 0.3]))].into();
        // fraction 0.5 of 4 active: drop 1 and 3 (smallest), then grow the 2 best inactive of
        // 1, 3, 4, 5 by score: 4 (0.7) and 5 (0.3).
        let next = drop_and_grow(&mask, &w, &g, 0.5);
        assert_eq!(next["a"].data, vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        // A dropped weight can be grown again when it scores best.
        let g: NamedTensors = [("a".to_string(), layer(&[0.0, 0.9, 0.0, 0.0, 0.7, 0.3]))].into();
        let next = drop_and_grow(&mask, &w, &g, 0.5);
        assert_eq!(next["a"].data, vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn random_scores_are_seeded() {
        let mask: MaskSet = [("a".to_string(), layer(&[1.0; 8]))].into();
        assert_eq!(random_scores(&mask, 1, 100), random_scores(&mask, 1, 100));
        assert_ne!(random_scores(&mask, 1, 100), random_scores(&mask, 1, 200));
        assert_ne!(random_scores(&mask, 2, 100), random_scores(&mask, 1, 100));
    }
}
