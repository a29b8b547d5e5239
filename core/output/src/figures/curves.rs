//! Training curves: accuracy and loss against step (log axes), weight norms over training.

use plotters::prelude::*;

use super::{
    ACCURACY, Area, ArmSeries, Drawn, FONT, Figure, LOSS, NORMS, SIZE, fmt_num, legend_line,
    padded, render,
};
use crate::summary::Summary;

/// Steps on a log axis: evaluations at step 0 cannot be drawn and are left out.
fn log_points(
    records: &[&crate::metrics::EvalRecord],
    value: impl Fn(&crate::metrics::EvalRecord) -> Option<f64>,
) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter(|r| r.step > 0)
        .filter_map(|r| value(r).filter(|v| v.is_finite()).map(|v| (r.step as f64, v)))
        .collect()
}

fn max_step(arms: &[ArmSeries<'_>]) -> f64 {
    arms.iter().flat_map(|a| a.records.iter().map(|r| r.step)).max().unwrap_or(1).max(10) as f64
}

/// Train (dashed) and test (solid) accuracy per arm, with t_mem/t_gen marked.
pub(super) fn accuracy(summary: &Summary, arms: &[ArmSeries<'_>]) -> crate::Result<Option<Figure>> {
    let has_acc = arms
        .iter()
        .any(|a| a.records.iter().any(|r| r.test_acc.is_some() || r.train_acc.is_some()));
    if !has_acc {
        return Ok(None);
    }
    let xmax = max_step(arms);
    let svg = render(ACCURACY, SIZE, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption("Accuracy (train dashed, test solid)", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((1f64..xmax).log_scale(), 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc("step (log scale)")
            .y_desc("accuracy")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        if let Some(t) = summary.arms.first().map(|a| a.run.threshold) {
            chart.draw_series(DashedLineSeries::new(
                vec![(1.0, t), (xmax, t)],
                4,
                4,
                BLACK.mix(0.35).stroke_width(1),
            ))?;
        }
        for arm in arms {
            let c = arm.colour;
            let train = log_points(&arm.records, |r| r.train_acc);
            let test = log_points(&arm.records, |r| r.test_acc);
            if !train.is_empty() {
                chart.draw_series(DashedLineSeries::new(train, 6, 4, c.stroke_width(2)))?;
            }
            chart
                .draw_series(LineSeries::new(test, c.stroke_width(2)))?
                .label(arm.name)
                .legend(legend_line(c.stroke_width(2)));
            if let Some(row) = summary.arm(arm.name) {
                for (t, label, dashed) in
                    [(row.run.t_mem, "t_mem", true), (row.run.t_gen, "t_gen", false)]
                {
                    if let Some(t) = t {
                        let x = (t.max(1)) as f64;
                        let style = c.mix(0.6).stroke_width(1);
                        if dashed {
                            chart.draw_series(DashedLineSeries::new(
                                vec![(x, 0.0), (x, 1.02)],
                                3,
                                3,
                                style,
                            ))?;
                        } else {
                            chart.draw_series(LineSeries::new(vec![(x, 0.0), (x, 1.02)], style))?;
                        }
                        chart.draw_series(std::iter::once(Text::new(
                            label.to_string(),
                            (x, if dashed { 0.04 } else { 0.10 }),
                            (FONT, 11).into_font().color(&c),
                        )))?;
                    }
                }
            }
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })?;
    Ok(Some(Figure {
        file: ACCURACY.into(),
        title: "Accuracy against step".into(),
        caption: "Train (dashed) and test (solid) accuracy of each arm on a log step axis; vertical lines mark t_mem (dashed) and t_gen (solid); the grey dashed line is the accuracy threshold. Evaluations at step 0 are not drawn.".into(),
        from_metrics: true,
        svg,
    }))
}

/// Train (dashed) and test (solid) loss per arm, log-log.
pub(super) fn loss(arms: &[ArmSeries<'_>]) -> crate::Result<Option<Figure>> {
    let positive = |v: f64| Some(v).filter(|v| *v > 0.0);
    let series: Vec<_> = arms
        .iter()
        .map(|a| {
            (
                a,
                log_points(&a.records, |r| positive(r.train_loss)),
                log_points(&a.records, |r| positive(r.test_loss)),
            )
        })
        .collect();
    let values = series.iter().flat_map(|(_, tr, te)| tr.iter().chain(te).map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return Ok(None);
    }
    let (lo, hi) = if hi / lo < 1.5 { (lo / 1.5, hi * 1.5) } else { (lo / 1.2, hi * 1.2) };
    let xmax = max_step(arms);
    let svg = render(LOSS, SIZE, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption("Loss (train dashed, test solid)", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..xmax).log_scale(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step (log scale)")
            .y_desc("loss (log scale)")
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        for (arm, train, test) in series {
            let c = arm.colour;
            if !train.is_empty() {
                chart.draw_series(DashedLineSeries::new(train, 6, 4, c.stroke_width(2)))?;
            }
            chart
                .draw_series(LineSeries::new(test, c.stroke_width(2)))?
                .label(arm.name)
                .legend(legend_line(c.stroke_width(2)));
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::LowerLeft)?;
        Ok(())
    })?;
    Ok(Some(Figure {
        file: LOSS.into(),
        title: "Loss against step".into(),
        caption: "Train (dashed) and test (solid) loss of each arm, both axes logarithmic.".into(),
        from_metrics: true,
        svg,
    }))
}

/// Global L1 (left) and L2 (right) norms of the weights over training, per arm.
pub(super) fn norms(arms: &[ArmSeries<'_>]) -> crate::Result<Option<Figure>> {
    if arms.iter().all(|a| a.records.is_empty()) {
        return Ok(None);
    }
    let xmax =
        arms.iter().flat_map(|a| a.records.iter().map(|r| r.step)).max().unwrap_or(1).max(1) as f64;
    let svg = render(NORMS, (SIZE.0, SIZE.1), |root: &Area<'_>| -> Drawn {
        let root = root.titled("Weight norms over training", (FONT, 18))?;
        let panels = root.split_evenly((1, 2));
        for (panel, (label, pick)) in panels.iter().zip([
            (
                "L1 norm",
                (|r: &crate::metrics::EvalRecord| r.norms.l1)
                    as fn(&crate::metrics::EvalRecord) -> f64,
            ),
            ("L2 norm", |r: &crate::metrics::EvalRecord| r.norms.l2),
        ]) {
            let values = arms
                .iter()
                .flat_map(|a| a.records.iter().map(|r| pick(r)))
                .filter(|v| v.is_finite());
            let (lo, hi) = values
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = padded(lo, hi);
            let mut chart = ChartBuilder::on(panel)
                .caption(label, (FONT, 14))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..xmax, lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .x_labels(5)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .draw()?;
            for arm in arms {
                let pts: Vec<(f64, f64)> = arm
                    .records
                    .iter()
                    .map(|r| (r.step as f64, pick(r)))
                    .filter(|p| p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, arm.colour.stroke_width(2)))?
                    .label(arm.name)
                    .legend(legend_line(arm.colour.stroke_width(2)));
            }
            super::legend(&mut chart, 11, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: NORMS.into(),
        title: "Weight norms".into(),
        caption: "Global L1 (left) and L2 (right) norm of all weights at each evaluation, per arm (masked weights count as 0).".into(),
        from_metrics: true,
        svg,
    }))
}
