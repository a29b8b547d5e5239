//! The run directory's figures of a `fourier_entropy` value: the input side's mean Shannon
//! entropy over training, one curve per run, and per run the spectra of its last checkpoint as
//! a heatmap (at most [`MAX_NEURONS`] neurons, the most peaked).
//!
//! Reads `{"runs": {ARM: {"steps": [..], "shannon": [..], "spectrum": [[..K..] per neuron]}}}`
//! of the value the module above documents; a value of another shape draws nothing (the
//! analysis is still in the store; only its figures are missing).

use serde::Deserialize;
use ticketlab_api::figure::{
    Axis, Colour, FigureContext, FigureSpec, Heatmap, Lines, Plot, Range, Series,
};

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

/// The figures of `value`: the entropy curves, then one spectrum per run, runs in summary
/// order (runs that are not trained arms after the others).
pub(super) fn of(value: &serde_json::Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
    let Some(runs) = super::super::runs_of::<FourierRun>(value) else { return Vec::new() };
    let mut order: Vec<(&str, &FourierRun)> = runs.iter().map(|(k, r)| (k.as_str(), r)).collect();
    order.sort_by_key(|(arm, _)| ctx.position(arm).unwrap_or(usize::MAX));
    let mut out: Vec<FigureSpec> = entropy(ctx.stage, &order).into_iter().collect();
    out.extend(order.iter().filter_map(|(arm, run)| spectrum(ctx.stage, arm, &run.spectrum)));
    out
}

/// Each run's mean Shannon entropy at its checkpoints; `None` when no run has a finite value.
fn entropy(stage: &str, runs: &[(&str, &FourierRun)]) -> Option<FigureSpec> {
    let series: Vec<Series> = runs
        .iter()
        .map(|(arm, r)| Series {
            label: arm.to_string(),
            colour: Colour::Arm(arm.to_string()),
            width: 2,
            dots: true,
            points: r
                .steps
                .iter()
                .zip(&r.shannon)
                .filter(|(_, v)| v.is_finite())
                .map(|(s, v)| (*s as f64, *v))
                .collect(),
        })
        .collect();
    if series.iter().all(|s| s.points.is_empty()) {
        return None;
    }
    let xmax = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1f64, f64::max);
    Some(FigureSpec {
        file: vec!["fourier".into(), stage.into()],
        title: format!("Fourier entropy ({stage})"),
        caption: "Mean Shannon entropy of the neurons' normalised frequency spectra at each checkpoint; it falls as neurons specialise to a few frequencies.".into(),
        plot: Plot::Lines(Lines {
            heading: format!("Fourier entropy over training ({stage})"),
            x: Axis { label: "step".into(), range: Range::Fixed(0.0, xmax) },
            y: Axis { label: "mean Shannon entropy (nats)".into(), range: Range::Padded },
            series,
            marks: Vec::new(),
        }),
    })
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

/// The heatmap of one run's spectra; `None` when there is nothing to draw.
fn spectrum(stage: &str, arm: &str, spectrum: &[Vec<f64>]) -> Option<FigureSpec> {
    let rows = heat_rows(spectrum);
    if rows.iter().all(Vec::is_empty) {
        return None;
    }
    let n = rows.len();
    Some(FigureSpec {
        file: vec!["spectrum".into(), stage.into(), arm.into()],
        title: format!("Frequency spectra of {arm} ({stage})"),
        caption: format!(
            "Amplitude of each frequency per neuron at the last checkpoint, scaled to each neuron's maximum (dark: 0, yellow: maximum); {n} of {} neurons shown (the most peaked, at most {MAX_NEURONS}).",
            spectrum.len()
        ),
        plot: Plot::Heatmap(Heatmap {
            heading: format!("Per-neuron frequency spectrum: {arm}"),
            x_label: "frequency k".into(),
            y_label: "neuron (sorted by dominant frequency)".into(),
            rows,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::metrics::RunSummary;

    fn run(t_gen: Option<u64>) -> RunSummary {
        RunSummary {
            steps: 20,
            threshold: 0.9,
            t_mem: None,
            t_gen,
            tau_grok: None,
            final_train_acc: None,
            final_test_acc: None,
            final_train_loss: 0.0,
            final_test_loss: 0.0,
            density: 1.0,
            l1: 0.0,
            l2: 0.0,
            stopped: None,
        }
    }

    #[test]
    fn heat_rows_sort_by_dominant_frequency_and_scale() {
        let rows = heat_rows(&[vec![0.0, 2.0, 1.0], vec![4.0, 0.0, 0.0], vec![0.0, 0.0, 0.0]]);
        assert_eq!(rows, vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.5], vec![0.0, 0.0, 0.0]]);
    }

    #[test]
    fn other_shapes_draw_nothing() {
        let ctx = FigureContext { stage: "f", arms: vec![] };
        assert!(of(&serde_json::json!({"unexpected": 1}), &ctx).is_empty());
    }

    /// Runs follow the summary's order, each coloured as its arm; a run with no spectrum has no
    /// heatmap.
    #[test]
    fn entropy_then_spectra_in_summary_order() {
        let (a, b) = (run(None), run(Some(10)));
        let ctx = FigureContext { stage: "f", arms: vec![("ticket", &a), ("dense", &b)] };
        let v = serde_json::json!({"frequencies": 2, "runs": {
            "dense": {"steps": [0, 10], "shannon": [0.7, 0.5], "spectrum": []},
            "ticket": {"steps": [0, 10], "shannon": [0.7], "spectrum": [[1.0, 0.5]]}}});
        let figs = of(&v, &ctx);
        let files: Vec<Vec<String>> = figs.iter().map(|f| f.file.clone()).collect();
        assert_eq!(files, [vec!["fourier", "f"], vec!["spectrum", "f", "ticket"]]);
        let Plot::Lines(lines) = &figs[0].plot else { panic!("entropy is drawn as lines") };
        let arms: Vec<&Colour> = lines.series.iter().map(|s| &s.colour).collect();
        assert_eq!(arms, [&Colour::Arm("ticket".into()), &Colour::Arm("dense".into())]);
        assert_eq!(lines.series[0].points, vec![(0.0, 0.7)], "a step without a value is left out");
        assert_eq!(lines.x.range, Range::Fixed(0.0, 10.0));
    }
}
