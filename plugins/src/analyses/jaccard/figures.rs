//! The run directory's figures of a `jaccard` value: per analysed run, how far its magnitude
//! mask moves between checkpoints, one curve per layer and one over all layers, with the run's
//! t_gen marked.
//!
//! Reads `{"runs": {ARM: {"intervals": [[from, to], ..], "all": [..], "layers": {LAYER: [..]}}}}`
//! of the value the module above documents; a value of another shape draws nothing (the
//! analysis is still in the store; only its figures are missing).

use std::collections::BTreeMap;

use serde::Deserialize;
use ticketlab_api::figure::{Axis, Colour, FigureContext, FigureSpec, Lines, Plot, Range, Series};

#[derive(Deserialize)]
struct JaccardRun {
    #[serde(default)]
    intervals: Vec<(u64, u64)>,
    #[serde(default)]
    all: Vec<f64>,
    #[serde(default)]
    layers: BTreeMap<String, Vec<f64>>,
}

/// The figures of `value`: one per analysed run with a distance.
pub(super) fn of(value: &serde_json::Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
    let Some(runs) = super::super::runs_of::<JaccardRun>(value) else { return Vec::new() };
    runs.iter()
        .filter_map(|(arm, run)| distances(ctx.stage, arm, run, ctx.run(arm).and_then(|r| r.t_gen)))
        .collect()
}

/// The points of one curve: each distance at the middle of its interval, finite values only.
fn points(intervals: &[(u64, u64)], values: &[f64]) -> Vec<(f64, f64)> {
    intervals
        .iter()
        .zip(values)
        .filter(|(_, v)| v.is_finite())
        .map(|((a, b), v)| ((*a + *b) as f64 / 2.0, *v))
        .collect()
}

/// The figure of one run; `None` when it has no distance over all layers.
fn distances(stage: &str, arm: &str, run: &JaccardRun, t_gen: Option<u64>) -> Option<FigureSpec> {
    let all = points(&run.intervals, &run.all);
    if all.is_empty() {
        return None;
    }
    let mut series: Vec<Series> = run
        .layers
        .iter()
        .enumerate()
        .map(|(i, (name, values))| Series {
            label: name.clone(),
            colour: Colour::Nth(i),
            width: 1,
            dots: false,
            points: points(&run.intervals, values),
        })
        .collect();
    let xmax = run.intervals.iter().map(|(_, b)| *b as f64).fold(1f64, f64::max);
    let ymax = all
        .iter()
        .chain(series.iter().flat_map(|s| &s.points))
        .map(|p| p.1)
        .fold(0f64, f64::max)
        .max(1e-3)
        * 1.05;
    series.push(Series {
        label: "all layers".into(),
        colour: Colour::Black,
        width: 3,
        dots: true,
        points: all,
    });
    let marker = match t_gen {
        Some(t) => format!("; the dashed line marks the run's t\\_gen (step {t})"),
        None => String::new(),
    };
    Some(FigureSpec {
        file: vec!["jaccard".into(), stage.into(), arm.into()],
        title: format!("Jaccard distance of {arm}'s masks ({stage})"),
        caption: format!(
            "Jaccard distance between the magnitude masks of successive checkpoints, per layer (thin) and over all prunable weights (thick), drawn at the middle of each interval{marker}. A peak shows when the mask reorganises."
        ),
        plot: Plot::Lines(Lines {
            heading: format!("Mask movement between checkpoints: {arm}"),
            x: Axis {
                label: "step (middle of the checkpoint interval)".into(),
                range: Range::Fixed(0.0, xmax),
            },
            y: Axis { label: "Jaccard distance".into(), range: Range::Fixed(0.0, ymax) },
            series,
            marks: t_gen.map(|t| t as f64).into_iter().collect(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::metrics::RunSummary;

    #[test]
    fn points_sit_mid_interval_and_skip_non_finite_values() {
        assert_eq!(
            points(&[(0, 2000), (2000, 4000), (4000, 6000)], &[0.5, f64::NAN, 0.25]),
            vec![(1000.0, 0.5), (5000.0, 0.25)]
        );
    }

    #[test]
    fn one_figure_per_run_and_other_shapes_draw_nothing() {
        let dense = RunSummary {
            steps: 20,
            threshold: 0.9,
            t_mem: Some(5),
            t_gen: Some(15),
            tau_grok: Some(3.0),
            final_train_acc: None,
            final_test_acc: None,
            final_train_loss: 0.0,
            final_test_loss: 0.0,
            density: 1.0,
            l1: 0.0,
            l2: 0.0,
            stopped: None,
        };
        let ctx = FigureContext { stage: "j", arms: vec![("dense", &dense)] };
        assert!(of(&serde_json::json!({"unexpected": 1}), &ctx).is_empty());
        let v = serde_json::json!({"rate": 0.6, "runs": {"dense": {"intervals": [[0, 10], [10, 20]], "all": [0.4, 0.1], "layers": {"w": [0.5, 0.2]}}}});
        let figs = of(&v, &ctx);
        assert_eq!(figs.len(), 1);
        assert_eq!(figs[0].file, ["jaccard", "j", "dense"]);
        let Plot::Lines(lines) = &figs[0].plot else { panic!("distances are drawn as lines") };
        let labels: Vec<&str> = lines.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["w", "all layers"], "the legend names every curve");
        assert_eq!(lines.marks, [15.0], "the run's t_gen is marked");
        assert_eq!(lines.y.range, Range::Fixed(0.0, 0.5 * 1.05));
    }
}
