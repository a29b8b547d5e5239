//! t_gen and tau_grok against the pruning rate, when several arms trained under masks.

use plotters::prelude::*;

use super::{
    Area, Drawn, FONT, Figure, RATE, SIZE, arm_colour, fmt_num, legend_line, padded, render,
};
use crate::summary::Summary;

/// Points `(rate, value)` of every arm with a mask rate and a value, sorted by rate.
fn points(
    summary: &Summary,
    value: impl Fn(&crate::summary::SummaryRow) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = summary
        .arms
        .iter()
        .filter_map(|a| Some((a.mask_rate?, value(a)?)))
        .filter(|p| p.1.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

/// One panel: its y-axis label, the points and the dense baseline's value.
type Panel<'a> = (&'a str, Vec<(f64, f64)>, Option<f64>);

/// Two panels, t_gen and tau_grok against the rate; `None` unless more than one arm has a rate.
pub(super) fn rate(summary: &Summary) -> crate::Result<Option<Figure>> {
    let masked = summary.arms.iter().filter(|a| a.mask_rate.is_some()).count();
    if masked < 2 {
        return Ok(None);
    }
    // A dense baseline (no mask) is drawn as a horizontal reference line.
    let base =
        summary.baseline.as_deref().and_then(|b| summary.arm(b)).filter(|a| a.mask_rate.is_none());
    // (axis label, one point per masked arm, the dense baseline's value)
    let panels: [Panel<'_>; 2] = [
        (
            "t_gen (steps)",
            points(summary, |a| a.run.t_gen.map(|t| t as f64)),
            base.and_then(|b| b.run.t_gen.map(|t| t as f64)),
        ),
        (
            "tau_grok = t_gen / t_mem",
            points(summary, |a| a.run.tau_grok),
            base.and_then(|b| b.run.tau_grok),
        ),
    ];
    let rates: Vec<f64> = summary.arms.iter().filter_map(|a| a.mask_rate).collect();
    let (rlo, rhi) = padded(
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let svg = render(RATE, SIZE, |root: &Area<'_>| -> Drawn {
        let root = root.titled("Grokking against pruning rate", (FONT, 18))?;
        for (panel, (label, pts, reference)) in root.split_evenly((1, 2)).iter().zip(panels.iter())
        {
            let values = pts.iter().map(|p| p.1).chain(*reference);
            let (lo, hi) = values
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = padded(lo, hi);
            let mut chart = ChartBuilder::on(panel)
                .caption(*label, (FONT, 14))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(55)
                .build_cartesian_2d(rlo..rhi, lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("pruning rate (fraction removed)")
                .x_labels(6)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| fmt_num(*v))
                .draw()?;
            if let Some(r) = reference {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(rlo, *r), (rhi, *r)],
                        5,
                        4,
                        BLACK.mix(0.5).stroke_width(1),
                    ))?
                    .label("dense baseline")
                    .legend(legend_line(BLACK.mix(0.5).stroke_width(1)));
            }
            let c = arm_colour(0);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label("masked arms")
                .legend(legend_line(c.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
            if pts.is_empty() {
                chart.draw_series(std::iter::once(Text::new(
                    "no arm reached the threshold",
                    (rlo + (rhi - rlo) * 0.1, (lo + hi) / 2.0),
                    (FONT, 13).into_font(),
                )))?;
            }
            super::legend(&mut chart, 11, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: RATE.into(),
        title: "t_gen and tau_grok against pruning rate".into(),
        caption: "Each point is one masked arm; arms that never reached the accuracy threshold are left out. The dashed line is the dense baseline, when the baseline is dense.".into(),
        from_metrics: true,
        svg,
    }))
}
