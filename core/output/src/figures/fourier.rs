//! Figures of a `fourier_entropy` analysis: entropy over training and per-neuron spectra.
//!
//! Reads the analysis' JSON, `{"frequencies": K, "runs": {ARM: {"steps": [..], "shannon": [..],
//! "code_ce": [..], "spectrum": [[..K..] per neuron]}}}`. A value of another shape draws
//! nothing (the analysis is still in the store; only its figures are missing).

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde::Deserialize;

use super::{
    Area, Drawn, FONT, Figure, SIZE, arm_colour, file_safe, fmt_num, legend_line, padded, render,
};
use crate::summary::Summary;

/// At most this many neurons are drawn in a spectrum heatmap (the most peaked ones).
pub const MAX_NEURONS: usize = 128;

#[derive(Deserialize)]
struct FourierRun {
    #[serde(default)]
    steps: Vec<u64>,
    #[serde(default)]
    shannon: Vec<f64>,
    #[serde(default)]
    spectrum: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct FourierValue {
    runs: BTreeMap<String, FourierRun>,
}

/// The figures of analysis stage `stage` with value `value`.
pub(super) fn figures(
    stage: &str,
    value: &serde_json::Value,
    summary: &Summary,
) -> ticketlab_api::Result<Vec<Figure>> {
    let Ok(v) = serde_json::from_value::<FourierValue>(value.clone()) else {
        return Ok(Vec::new());
    };
    // Arms keep their summary colour; arms not in the summary come after.
    let mut order: Vec<(&str, &FourierRun)> = v.runs.iter().map(|(k, r)| (k.as_str(), r)).collect();
    let pos = |arm: &str| summary.arms.iter().position(|a| a.arm == arm).unwrap_or(usize::MAX);
    order.sort_by_key(|(arm, _)| pos(arm));
    let colour = |i: usize, arm: &str| {
        arm_colour(summary.arms.iter().position(|a| a.arm == arm).unwrap_or(summary.arms.len() + i))
    };
    let mut out = Vec::new();
    if let Some(f) = entropy(stage, &order, &colour)? {
        out.push(f);
    }
    for (arm, run) in &order {
        if let Some(f) = spectrum(stage, arm, &run.spectrum)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// One curve: the arm's index (its colour), its name and its points.
type Series<'a> = (usize, &'a str, Vec<(f64, f64)>);

fn entropy(
    stage: &str,
    runs: &[(&str, &FourierRun)],
    colour: &dyn Fn(usize, &str) -> RGBColor,
) -> ticketlab_api::Result<Option<Figure>> {
    let series: Vec<Series<'_>> = runs
        .iter()
        .enumerate()
        .map(|(i, (arm, r))| {
            (
                i,
                *arm,
                r.steps
                    .iter()
                    .zip(&r.shannon)
                    .filter(|(_, v)| v.is_finite())
                    .map(|(s, v)| (*s as f64, *v))
                    .collect(),
            )
        })
        .collect();
    if series.iter().all(|s| s.2.is_empty()) {
        return Ok(None);
    }
    let xmax = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(1f64, f64::max);
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = padded(lo, hi);
    let file = format!("fourier-{}.svg", file_safe(stage));
    let svg = render(&file, SIZE, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Fourier entropy over training ({stage})"), (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..xmax, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("mean Shannon entropy (nats)")
            .x_labels(6)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        for (i, arm, pts) in &series {
            let c = colour(*i, arm);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(*arm)
                .legend(legend_line(c.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })?;
    Ok(Some(Figure {
        title: format!("Fourier entropy ({stage})"),
        caption: "Mean Shannon entropy of the neurons' normalised frequency spectra at each checkpoint; it falls as neurons specialise to a few frequencies.".into(),
        file,
        from_metrics: false,
        svg,
    }))
}

/// A sequential colour scale from dark blue (0) to yellow (1).
fn heat(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f64;
    let i = (v.floor() as usize).min(STOPS.len() - 2);
    let t = v - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Rows to draw: each neuron's spectrum scaled to its maximum, the most peaked neurons first
/// selected, then ordered by dominant frequency.
fn heat_rows(spectrum: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let peak = |row: &Vec<f64>| {
        let max = row.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::max);
        let sum: f64 = row.iter().copied().filter(|v| v.is_finite()).sum();
        if sum > 0.0 { max / sum } else { 0.0 }
    };
    // Silent neurons (no positive amplitude) go last.
    let argmax = |row: &Vec<f64>| {
        row.iter()
            .enumerate()
            .fold((usize::MAX, 0f64), |b, (i, v)| if *v > b.1 { (i, *v) } else { b })
            .0
    };
    let mut idx: Vec<usize> = (0..spectrum.len()).collect();
    idx.sort_by(|a, b| peak(&spectrum[*b]).total_cmp(&peak(&spectrum[*a])).then(a.cmp(b)));
    idx.truncate(MAX_NEURONS);
    idx.sort_by_key(|i| (argmax(&spectrum[*i]), *i));
    idx.into_iter()
        .map(|i| {
            let row = &spectrum[i];
            let max = row.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::max);
            row.iter().map(|v| if max > 0.0 { v / max } else { 0.0 }).collect()
        })
        .collect()
}

fn spectrum(
    stage: &str,
    arm: &str,
    spectrum: &[Vec<f64>],
) -> ticketlab_api::Result<Option<Figure>> {
    let rows = heat_rows(spectrum);
    let k = rows.iter().map(Vec::len).max().unwrap_or(0);
    if rows.is_empty() || k == 0 {
        return Ok(None);
    }
    let n = rows.len();
    let file = format!("spectrum-{}-{}.svg", file_safe(stage), file_safe(arm));
    let svg = render(
        &file,
        (SIZE.0, SIZE.1.max(200 + 3 * n as u32).min(700)),
        |root: &Area<'_>| -> Drawn {
            let mut chart = ChartBuilder::on(root)
                .caption(format!("Per-neuron frequency spectrum: {arm}"), (FONT, 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0.5f64..k as f64 + 0.5, 0f64..n as f64)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("frequency k")
                .y_desc("neuron (sorted by dominant frequency)")
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .draw()?;
            chart.draw_series(rows.iter().enumerate().flat_map(|(r, row)| {
                row.iter().enumerate().map(move |(f, v)| {
                    let x = f as f64 + 1.0;
                    Rectangle::new(
                        [(x - 0.5, r as f64), (x + 0.5, r as f64 + 1.0)],
                        heat(*v).filled(),
                    )
                })
            }))?;
            Ok(())
        },
    )?;
    Ok(Some(Figure {
        title: format!("Frequency spectra of {arm} ({stage})"),
        caption: format!(
            "Amplitude of each frequency per neuron at the last checkpoint, scaled to each neuron's maximum (dark: 0, yellow: maximum); {n} of {} neurons shown (the most peaked, at most {MAX_NEURONS}).",
            spectrum.len()
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
    fn heat_rows_sort_by_dominant_frequency_and_scale() {
        let rows = heat_rows(&[vec![0.0, 2.0, 1.0], vec![4.0, 0.0, 0.0], vec![0.0, 0.0, 0.0]]);
        assert_eq!(rows, vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.5], vec![0.0, 0.0, 0.0]]);
    }

    #[test]
    fn heat_scale_ends() {
        assert_eq!(heat(0.0), RGBColor(68, 1, 84));
        assert_eq!(heat(1.0), RGBColor(253, 231, 37));
        assert_eq!(heat(f64::NAN), heat(0.0));
    }

    #[test]
    fn other_shapes_draw_nothing() {
        let s = Summary { experiment: "e".into(), baseline: None, arms: vec![] };
        assert!(figures("f", &serde_json::json!({"unexpected": 1}), &s).unwrap().is_empty());
    }
}
