//! Training curves: accuracy, loss and weight norms against step (log axis from the first
//! evaluation). With seed repeats each arm is the mean over its seeds with a band from the
//! lowest to the highest seed.

use plotters::prelude::*;

use super::{
    ACCURACY, Area, ArmSeries, Drawn, FONT, Figure, LOSS, LegendEntry, Mark, NORMS, SIZE,
    beside_legend, fmt_num, legend_width, log_tick_formatter, over_seeds_name, padded, render,
    step_range,
};
use crate::summary::{Spread, Summary};
use ticketlab_api::metrics::EvalRecord;

/// The legend of a curves figure: one entry per arm (test solid), and how train is drawn.
fn curve_legend(arms: &[ArmSeries<'_>], with_train: bool) -> Vec<LegendEntry> {
    let seeds = arms.iter().map(|a| a.runs.len()).max().unwrap_or(1);
    let mut out: Vec<LegendEntry> = arms
        .iter()
        .map(|a| LegendEntry { label: a.label.clone(), colour: a.colour, mark: Mark::Line })
        .collect();
    if with_train {
        out.push(LegendEntry { label: "train (dashed)".into(), colour: BLACK, mark: Mark::Dashed });
    }
    if seeds > 1 {
        out.push(LegendEntry {
            label: format!("mean of {seeds} seeds; band: min to max"),
            colour: RGBColor(0xBB, 0xBB, 0xBB),
            mark: Mark::Bar,
        });
    }
    out
}

/// Draws an arm's mean (dashed or solid) and, with several seeds, its band.
fn draw_mean<DB: DrawingBackend, CT: plotters::coord::CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    arm: &ArmSeries<'_>,
    band: &[(f64, f64, f64, f64)],
    dashed: bool,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    if band.is_empty() {
        return Ok(());
    }
    if arm.runs.len() > 1 && !dashed {
        let mut outline: Vec<(f64, f64)> = band.iter().map(|p| (p.0, p.3)).collect();
        outline.extend(band.iter().rev().map(|p| (p.0, p.2)));
        chart.draw_series(std::iter::once(Polygon::new(outline, arm.colour.mix(0.15).filled())))?;
    }
    let line: Vec<(f64, f64)> = band.iter().map(|p| (p.0, p.1)).collect();
    if dashed {
        chart.draw_series(DashedLineSeries::new(line, 6, 4, arm.colour.stroke_width(2)))?;
    } else {
        chart.draw_series(LineSeries::new(line, arm.colour.stroke_width(2)))?;
    }
    Ok(())
}

/// The median over an arm's seeds of a step (t_mem or t_gen) read from its summary rows.
fn median_step(
    summary: &Summary,
    arm: &str,
    pick: impl Fn(&crate::summary::SummaryRow) -> Option<u64>,
) -> Option<f64> {
    let values: Vec<Option<f64>> = summary
        .arms
        .iter()
        .filter(|r| over_seeds_name(&r.arm) == arm)
        .map(|r| pick(r).map(|t| t.max(1) as f64))
        .collect();
    Spread::of(&values).filter(|s| s.never == 0).map(|s| s.median)
}

/// Text rows for marker labels, so that labels at nearby steps never overlap: each label goes
/// to the lowest row with no label within `min_gap` (in log10 of the step) before it.
fn label_rows(xs: &[f64], min_gap: f64) -> Vec<usize> {
    let mut last_in_row: Vec<f64> = Vec::new();
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|a, b| xs[*a].total_cmp(&xs[*b]));
    let mut rows = vec![0; xs.len()];
    for i in order {
        let x = xs[i].log10();
        let row = last_in_row.iter().position(|l| x - l >= min_gap).unwrap_or(last_in_row.len());
        if row == last_in_row.len() {
            last_in_row.push(x);
        } else {
            last_in_row[row] = x;
        }
        rows[i] = row;
    }
    rows
}

/// Train (dashed) and test (solid) accuracy per arm, with t_mem/t_gen marked.
pub(super) fn accuracy(
    summary: &Summary,
    arms: &[ArmSeries<'_>],
) -> ticketlab_api::Result<Option<Figure>> {
    let has_acc =
        arms.iter().any(|a| a.records().any(|r| r.test_acc.is_some() || r.train_acc.is_some()));
    if !has_acc {
        return Ok(None);
    }
    let (xmin, xmax) = step_range(arms);
    let legend = curve_legend(arms, true);
    // Markers: (step, label, colour, dashed) of every arm's median t_mem and t_gen, drawn no
    // further left than the axis starts.
    let mut markers: Vec<(f64, &str, RGBColor, bool)> = Vec::new();
    for arm in arms {
        if let Some(t) = median_step(summary, &arm.name, |r| r.run.t_mem) {
            markers.push((t.max(xmin), "t_mem", arm.colour, true));
        }
        if let Some(t) = median_step(summary, &arm.name, |r| r.run.t_gen) {
            markers.push((t.max(xmin), "t_gen", arm.colour, false));
        }
    }
    let xs: Vec<f64> = markers.iter().map(|m| m.0).collect();
    // A label is about 35 px wide on a plot of about 650 px.
    let rows = label_rows(&xs, 40.0 / 650.0 * (xmax / xmin).log10());
    let size = (SIZE.0 + legend_width(&legend), SIZE.1);
    let svg = render(ACCURACY, size, |root: &Area<'_>| -> Drawn {
        let plot = beside_legend(root, &legend)?;
        let mut chart = ChartBuilder::on(&plot)
            .caption("Accuracy (train dashed, test solid)", (FONT, 18))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((xmin..xmax).log_scale(), 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc("step (log scale)")
            .y_desc("accuracy")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        if let Some(t) = summary.arms.first().map(|a| a.run.threshold) {
            chart.draw_series(DashedLineSeries::new(
                vec![(xmin, t), (xmax, t)],
                4,
                4,
                BLACK.mix(0.35).stroke_width(1),
            ))?;
        }
        for arm in arms {
            draw_mean(&mut chart, arm, &arm.mean_band(true, |r| r.train_acc), true)?;
            draw_mean(&mut chart, arm, &arm.mean_band(true, |r| r.test_acc), false)?;
        }
        for (&(x, label, c, dashed), row) in markers.iter().zip(&rows) {
            let style = c.mix(0.6).stroke_width(1);
            if dashed {
                chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, 1.02)], 3, 3, style))?;
            } else {
                chart.draw_series(LineSeries::new(vec![(x, 0.0), (x, 1.02)], style))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                label.to_string(),
                (x, 0.03 + 0.045 * *row as f64),
                (FONT, 11).into_font().color(&c),
            )))?;
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: ACCURACY.into(),
        title: "Accuracy against step".into(),
        caption: "Train (dashed) and test (solid) accuracy of each arm on a log step axis from the first evaluation; with seed repeats, the mean over the seeds with a band from the lowest to the highest. Vertical lines mark t_mem (dashed) and t_gen (solid), the median over the seeds when every seed reached it; the grey dashed line is the accuracy threshold.".into(),
        from_metrics: true,
        svg,
    }))
}

/// Train (dashed) and test (solid) loss per arm, log-log.
pub(super) fn loss(arms: &[ArmSeries<'_>]) -> ticketlab_api::Result<Option<Figure>> {
    let positive = |v: f64| Some(v).filter(|v| *v > 0.0);
    let series: Vec<_> = arms
        .iter()
        .map(|a| {
            (
                a,
                a.mean_band(true, |r| positive(r.train_loss)),
                a.mean_band(true, |r| positive(r.test_loss)),
            )
        })
        .collect();
    let values = series.iter().flat_map(|(_, tr, te)| tr.iter().chain(te).flat_map(|p| [p.2, p.3]));
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return Ok(None);
    }
    let (lo, hi) = if hi / lo < 1.5 { (lo / 1.5, hi * 1.5) } else { (lo / 1.2, hi * 1.2) };
    let (xmin, xmax) = step_range(arms);
    let legend = curve_legend(arms, true);
    let size = (SIZE.0 + legend_width(&legend), SIZE.1);
    let svg = render(LOSS, size, |root: &Area<'_>| -> Drawn {
        let plot = beside_legend(root, &legend)?;
        let mut chart = ChartBuilder::on(&plot)
            .caption("Loss (train dashed, test solid)", (FONT, 18))
            .margin(12)
            .margin_right(24)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin..xmax).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step (log scale)")
            .y_desc("loss (log scale)")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&log_tick_formatter(lo, hi))
            .draw()?;
        for (arm, train, test) in &series {
            draw_mean(&mut chart, arm, train, true)?;
            draw_mean(&mut chart, arm, test, false)?;
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: LOSS.into(),
        title: "Loss against step".into(),
        caption: "Train (dashed) and test (solid) loss of each arm, both axes logarithmic, the step axis from the first evaluation; with seed repeats, the mean over the seeds with a band from the lowest to the highest.".into(),
        from_metrics: true,
        svg,
    }))
}

/// Reads one value from an evaluation.
type Pick = fn(&EvalRecord) -> Option<f64>;

/// Global L1 (left) and L2 (right) norms of the weights over training, per arm.
pub(super) fn norms(arms: &[ArmSeries<'_>]) -> ticketlab_api::Result<Option<Figure>> {
    if arms.iter().all(|a| a.records().next().is_none()) {
        return Ok(None);
    }
    let (xmin, xmax) = step_range(arms);
    let legend = curve_legend(arms, false);
    let size = (SIZE.0 + legend_width(&legend), SIZE.1);
    let picks: [(&str, Pick); 2] =
        [("L1 norm", |r| Some(r.norms.l1)), ("L2 norm", |r| Some(r.norms.l2))];
    let svg = render(NORMS, size, |root: &Area<'_>| -> Drawn {
        let plot = beside_legend(root, &legend)?;
        let plot = plot.titled("Weight norms over training", (FONT, 18))?;
        for (panel, (label, pick)) in plot.split_evenly((1, 2)).iter().zip(picks) {
            let bands: Vec<_> = arms.iter().map(|a| a.mean_band(true, pick)).collect();
            let (lo, hi) = bands
                .iter()
                .flatten()
                .flat_map(|p| [p.2, p.3])
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = padded(lo, hi);
            let mut chart = ChartBuilder::on(panel)
                .caption(label, (FONT, 14))
                .margin(8)
                .margin_right(22)
                .x_label_area_size(36)
                .y_label_area_size(62)
                .build_cartesian_2d((xmin..xmax).log_scale(), lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("step (log scale)")
                .y_desc(label)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .draw()?;
            for (arm, band) in arms.iter().zip(&bands) {
                draw_mean(&mut chart, arm, band, false)?;
            }
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: NORMS.into(),
        title: "Weight norms".into(),
        caption: "Global L1 (left) and L2 (right) norm of all weights at each evaluation, per arm, on a log step axis from the first evaluation (masked weights count as 0); with seed repeats, the mean over the seeds with a band from the lowest to the highest.".into(),
        from_metrics: true,
        svg,
    }))
}

#[cfg(test)]
mod tests {
    use super::label_rows;

    /// Labels at nearby steps go to different rows; a label far enough along reuses row 0.
    #[test]
    fn nearby_marker_labels_get_their_own_rows() {
        let rows = label_rows(&[100.0, 110.0, 120.0, 10_000.0], 0.2);
        assert_eq!(rows, [0, 1, 2, 0]);
    }
}
