//! Figures of a `jaccard` analysis: how far the magnitude mask moves between checkpoints.
//!
//! Reads the analysis' JSON, `{"runs": {ARM: {"intervals": [[from, to], ..], "all": [..],
//! "layers": {LAYER: [..]}}}}`: one distance per pair of successive checkpoints. A value of
//! another shape draws nothing (the analysis is still in the store; only its figures are missing).

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde::Deserialize;

use super::{Area, Drawn, FONT, Figure, SIZE, arm_colour, file_safe, fmt_num, legend_line, render};
use crate::summary::Summary;

#[derive(Deserialize)]
struct JaccardRun {
    #[serde(default)]
    intervals: Vec<(u64, u64)>,
    #[serde(default)]
    all: Vec<f64>,
    #[serde(default)]
    layers: BTreeMap<String, Vec<f64>>,
}

#[derive(Deserialize)]
struct JaccardValue {
    runs: BTreeMap<String, JaccardRun>,
}

/// The figures of analysis stage `stage` with value `value`: one per analysed run.
pub(super) fn figures(
    stage: &str,
    value: &serde_json::Value,
    summary: &Summary,
) -> ticketlab_api::Result<Vec<Figure>> {
    let Ok(v) = serde_json::from_value::<JaccardValue>(value.clone()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (arm, run) in &v.runs {
        let t_gen = summary.arm(arm).and_then(|a| a.run.t_gen);
        if let Some(f) = distances(stage, arm, run, t_gen)? {
            out.push(f);
        }
    }
    Ok(out)
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

fn distances(
    stage: &str,
    arm: &str,
    run: &JaccardRun,
    t_gen: Option<u64>,
) -> ticketlab_api::Result<Option<Figure>> {
    let all = points(&run.intervals, &run.all);
    if all.is_empty() {
        return Ok(None);
    }
    let layers: Vec<(&str, Vec<(f64, f64)>)> =
        run.layers.iter().map(|(name, v)| (name.as_str(), points(&run.intervals, v))).collect();
    let xmax = run.intervals.iter().map(|(_, b)| *b as f64).fold(1f64, f64::max);
    let ymax = all
        .iter()
        .chain(layers.iter().flat_map(|(_, p)| p))
        .map(|p| p.1)
        .fold(0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let file = format!("jaccard-{}-{}.svg", file_safe(stage), file_safe(arm));
    let svg = render(&file, SIZE, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Mask movement between checkpoints: {arm}"), (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("step (middle of the checkpoint interval)")
            .y_desc("Jaccard distance")
            .x_labels(6)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        for (i, (name, pts)) in layers.iter().enumerate() {
            let c = arm_colour(i);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(1)))?
                .label(*name)
                .legend(legend_line(c.stroke_width(1)));
        }
        chart
            .draw_series(LineSeries::new(all.clone(), BLACK.stroke_width(3)))?
            .label("all layers")
            .legend(legend_line(BLACK.stroke_width(3)));
        chart.draw_series(all.iter().map(|p| Circle::new(*p, 3, BLACK.filled())))?;
        if let Some(t) = t_gen {
            let t = t as f64;
            chart.draw_series(DashedLineSeries::new(
                vec![(t, 0.0), (t, ymax)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))?;
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })?;
    let marker = match t_gen {
        Some(t) => format!("; the dashed line marks the run's t\\_gen (step {t})"),
        None => String::new(),
    };
    Ok(Some(Figure {
        title: format!("Jaccard distance of {arm}'s masks ({stage})"),
        caption: format!(
            "Jaccard distance between the magnitude masks of successive checkpoints, per layer (thin) and over all prunable weights (thick), drawn at the middle of each interval{marker}. A peak shows when the mask reorganises."
        ),
        file,
        from_metrics: false,
        svg,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_sit_mid_interval_and_skip_non_finite_values() {
        assert_eq!(
            points(&[(0, 2000), (2000, 4000), (4000, 6000)], &[0.5, f64::NAN, 0.25]),
            vec![(1000.0, 0.5), (5000.0, 0.25)]
        );
    }

    #[test]
    fn one_figure_per_run_and_other_shapes_draw_nothing() {
        let s = Summary { experiment: "e".into(), baseline: None, arms: vec![] };
        assert!(figures("j", &serde_json::json!({"unexpected": 1}), &s).unwrap().is_empty());
        let v = serde_json::json!({"rate": 0.6, "runs": {"dense": {"intervals": [[0, 10], [10, 20]], "all": [0.4, 0.1], "layers": {"w": [0.5, 0.2]}}}});
        let figs = figures("j", &v, &s).unwrap();
        assert_eq!(figs.len(), 1);
        assert_eq!(figs[0].file, "jaccard-j-dense.svg");
        assert!(
            figs[0].svg.contains("all layers") && figs[0].svg.contains("\nw\n"),
            "legend names every curve"
        );
    }
}
