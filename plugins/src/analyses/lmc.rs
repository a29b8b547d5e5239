//! Linear mode connectivity (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery
//! Ticket Hypothesis"): the networks on the straight line between two trained states,
//! `w(α) = (1 − α) w_a + α w_b` for `points` values of α from 0 (run `a`) to 1 (run `b`), each
//! evaluated on the training and test splits. Where both runs train under the same mask the
//! line keeps it; otherwise the effective (masked) weights are interpolated as they are.
//!
//! The error barrier is the largest error along the line minus the mean of the two ends' errors
//! (error = 1 − accuracy), as Frankle et al. define instability; the loss barrier the same of the
//! loss. Two copies of a training from one rewind point that differ only in their minibatch order
//! (the trainer's `data_seed`) are *stable* when the test error barrier is near 0 (Frankle et al.
//! use 2%).
//!
//! JSON value:
//! ```text
//! {"a": ARM, "b": ARM, "at": "final", "masked": bool, "alpha": [α, ..],
//!  "train": {"loss": [..], "error": [..]}, "test": {"loss": [..], "error": [..]},
//!  "barrier": {"train_error": x, "test_error": x, "train_loss": x, "test_loss": x}}
//! ```
//! (errors and error barriers are `null` for regression tasks).

use serde::Deserialize;
use serde_json::json;
use ticketlab_api::artifact::{AnalysisArtifact, RunArtifact};
use ticketlab_api::data::{Split, Targets};
use ticketlab_api::figure::{Axis, Colour, FigureContext, FigureSpec, Lines, Plot, Range, Series};
use ticketlab_api::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{Architecture, HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result, register_plugin};
use ticketlab_tensor::{LossKind, evaluate};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("points", ParamType::Int, "networks evaluated on the line, both ends included (α = 0, 1/(N−1), ..., 1)").default("11").range(2.0, 1001.0),
    ParamSpec::new("at", ParamType::WeightsAt, "the weights of both runs to connect: `final`, `init`, or a checkpoint step both saved (the trainer's `checkpoint_steps`)").default("\"final\""),
    ParamSpec::new("loss", ParamType::Choice(&["auto", "cross_entropy", "mse"]), "the loss evaluated along the line (`auto`: cross-entropy for classes, mean squared error for regression)").default("\"auto\""),
];

/// The largest value along the line minus the mean of its two ends.
pub fn barrier(values: &[f64]) -> f64 {
    let (first, last) = (values[0], values[values.len() - 1]);
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max) - (first + last) / 2.0
}

/// `(1 − α) a + α b`, parameter by parameter.
fn interpolate(a: &NamedTensors, b: &NamedTensors, alpha: f64) -> NamedTensors {
    let (wa, wb) = ((1.0 - alpha) as f32, alpha as f32);
    a.iter()
        .map(|(name, x)| {
            let y = &b[name];
            let data = x.data.iter().zip(&y.data).map(|(p, q)| wa * p + wb * q).collect();
            (name.clone(), HostTensor::new(x.shape.clone(), data))
        })
        .collect()
}

/// Loss and error (1 − accuracy; `None` for regression) at each point of the line.
fn along(
    arch: &dyn Architecture,
    line: &[NamedTensors],
    mask: Option<&MaskSet>,
    split: &Split,
    loss: LossKind,
    inputs: &AnalysisInputs<'_>,
) -> Result<(Vec<f64>, Vec<Option<f64>>)> {
    let mut losses = Vec::with_capacity(line.len());
    let mut errors = Vec::with_capacity(line.len());
    for w in line {
        let r = evaluate(arch, w, mask, split, loss, inputs.ctx.runtime.device)?;
        losses.push(r.loss);
        errors.push(r.accuracy.map(|a| 1.0 - a));
    }
    Ok((losses, errors))
}

/// Refuses two runs whose weights cannot be interpolated.
fn check_same_shapes(a: (&str, &NamedTensors), b: (&str, &NamedTensors)) -> Result<()> {
    let shapes = |w: &NamedTensors| -> Vec<(String, Vec<usize>)> {
        w.iter().map(|(n, t)| (n.clone(), t.shape.clone())).collect()
    };
    if shapes(a.1) != shapes(b.1) {
        return Err(Error::param(
            "runs",
            format!(
                "`{}` and `{}` have different parameters or shapes: linear mode connectivity connects two states of one architecture",
                a.0, b.0
            ),
        ));
    }
    Ok(())
}

fn weights<'a>(run: &'a RunArtifact, at: &str) -> Result<&'a NamedTensors> {
    run.weights_at(at, "at").map(|(w, _)| w)
}

/// The `lmc` analysis.
#[derive(Default)]
struct Lmc;

impl AnalysisPlugin for Lmc {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let [(name_a, a), (name_b, b)] = inputs.runs[..] else {
            return Err(Error::param(
                "runs",
                format!(
                    "lmc connects exactly two runs, got {}: give `runs: [a, b]` (an lmc stage per pair)",
                    inputs.runs.len()
                ),
            ));
        };
        let (Some(data), Some(arch)) = (inputs.data, inputs.arch) else {
            return Err(Error::param(
                "data",
                "lmc evaluates the networks along the line: connect the dataset as `data`",
            ));
        };
        let at = params.str("at")?;
        let (wa, wb) = (weights(a, at)?, weights(b, at)?);
        check_same_shapes((name_a, wa), (name_b, wb))?;
        let loss = match (params.str("loss")?, &data.train.y) {
            ("mse", _) | ("auto", Targets::Regression { .. }) => LossKind::Mse,
            _ => LossKind::CrossEntropy,
        };
        // The line keeps a mask both runs share; other weights are interpolated as trained.
        let mask = a.init.mask.as_ref().filter(|m| Some(*m) == b.init.mask.as_ref());
        let n = params.usize("points")?;
        let alpha: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let line: Vec<NamedTensors> = alpha.iter().map(|&t| interpolate(wa, wb, t)).collect();
        let (train_loss, train_error) = along(arch, &line, mask, &data.train, loss, inputs)?;
        let (test_loss, test_error) = along(arch, &line, mask, &data.test, loss, inputs)?;
        let error_barrier = |errors: &[Option<f64>]| {
            errors.iter().copied().collect::<Option<Vec<f64>>>().map(|e| barrier(&e))
        };
        Ok(AnalysisArtifact {
            analysis: "lmc".into(),
            value: json!({
                "a": name_a, "b": name_b, "at": at, "masked": mask.is_some(), "alpha": alpha,
                "train": {"loss": train_loss, "error": train_error},
                "test": {"loss": test_loss, "error": test_error},
                "barrier": {
                    "train_error": error_barrier(&train_error),
                    "test_error": error_barrier(&test_error),
                    "train_loss": barrier(&train_loss),
                    "test_loss": barrier(&test_loss),
                },
            }),
        })
    }

    fn figures(&self, value: &serde_json::Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        figure(value, ctx).into_iter().collect()
    }
}

#[derive(Deserialize)]
struct Curve {
    error: Vec<Option<f64>>,
    loss: Vec<f64>,
}

#[derive(Deserialize)]
struct Value {
    a: String,
    b: String,
    alpha: Vec<f64>,
    train: Curve,
    test: Curve,
    barrier: serde_json::Map<String, serde_json::Value>,
}

/// The error (or, for regression, the loss) along the line on both splits, with the barriers in
/// the caption; `None` for a value of another shape.
fn figure(value: &serde_json::Value, ctx: &FigureContext<'_>) -> Option<FigureSpec> {
    let v: Value = serde_json::from_value(value.clone()).ok()?;
    let classes = v.test.error.iter().all(Option::is_some);
    let (what, key) = if classes { ("error (%)", "error") } else { ("loss", "loss") };
    let points = |c: &Curve| -> Vec<(f64, f64)> {
        let ys: Vec<f64> = if classes {
            c.error.iter().map(|e| 100.0 * e.unwrap_or(f64::NAN)).collect()
        } else {
            c.loss.clone()
        };
        v.alpha.iter().copied().zip(ys).filter(|(_, y)| y.is_finite()).collect()
    };
    let series = vec![
        Series {
            label: "train".into(),
            colour: Colour::Nth(0),
            width: 2,
            dots: true,
            points: points(&v.train),
        },
        Series {
            label: "test".into(),
            colour: Colour::Nth(1),
            width: 2,
            dots: true,
            points: points(&v.test),
        },
    ];
    let barrier = |split: &str| {
        let x = v.barrier.get(&format!("{split}_{key}")).and_then(serde_json::Value::as_f64);
        x.map_or("-".into(), |x| {
            if classes { format!("{:.2} points", 100.0 * x) } else { format!("{x:.4}") }
        })
    };
    Some(FigureSpec {
        file: vec!["lmc".into(), ctx.stage.into()],
        title: format!("Linear mode connectivity: {} to {}", v.a, v.b),
        caption: format!(
            "The {what} of the networks on the straight line from `{}` (α = 0) to `{}` (α = 1); the {key} barrier (the largest value on the line minus the mean of its ends) is {} on train and {} on test.",
            v.a,
            v.b,
            barrier("train"),
            barrier("test")
        ),
        plot: Plot::Lines(Lines {
            heading: format!("{} to {}", v.a, v.b),
            x: Axis { label: "α".into(), range: Range::Fixed(0.0, 1.0) },
            y: Axis { label: what.into(), range: Range::Padded },
            series,
            marks: Vec::new(),
        }),
    })
}

register_plugin!(
    Analysis,
    "lmc",
    "1.0.0",
    "Linear mode connectivity: loss and error on the line between two trained states, and the error barrier",
    PARAMS,
    Lmc
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barrier_is_the_peak_over_the_mean_of_the_ends() {
        assert!((barrier(&[0.1, 0.5, 0.2]) - 0.35).abs() < 1e-12);
        // Ends of unequal error: half their difference, even when the line never rises.
        assert!((barrier(&[0.2, 0.1, 0.0]) - 0.1).abs() < 1e-12);
        assert_eq!(barrier(&[0.3, 0.3]), 0.0);
    }

    #[test]
    fn interpolation_starts_at_a_and_ends_at_b() {
        let a: NamedTensors = [("w".to_string(), HostTensor::new(vec![2], vec![1.0, -2.0]))].into();
        let b: NamedTensors = [("w".to_string(), HostTensor::new(vec![2], vec![3.0, 2.0]))].into();
        assert_eq!(interpolate(&a, &b, 0.0), a);
        assert_eq!(interpolate(&a, &b, 1.0), b);
        assert_eq!(interpolate(&a, &b, 0.5)["w"].data, vec![2.0, 0.0]);
    }
}
