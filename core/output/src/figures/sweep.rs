//! t_gen and tau_grok against the pruning rate, when several arms trained under masks: one
//! line per pruner (or control stage), each point the mean over its seeds with an error bar
//! from the lowest to the highest, arms that never reached the threshold marked "never" at the
//! top.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{
    Area, Drawn, FONT, Figure, LegendEntry, Mark, RATE, SIZE, arm_colour, beside_legend, fmt_num,
    legend_width, linear_tick_formatter, padded, render,
};
use crate::summary::{Spread, Summary, SummaryRow};

/// Reads the plotted value of an arm.
type Value = dyn Fn(&SummaryRow) -> Option<f64>;

/// The values of one line at each rate, one per seed (`None`: never reached).
type Line = BTreeMap<u64, (f64, Vec<Option<f64>>)>;

/// A line's name: the arm's stage as the file names it, and its pruner.
fn line_name(row: &SummaryRow) -> String {
    match &row.pruner {
        Some(p) => format!("{} ({p})", row.stage),
        None => row.stage.clone(),
    }
}

/// Every line's values of `value`, lines in summary order (rates keyed by their bits).
fn lines(summary: &Summary, value: &dyn Fn(&SummaryRow) -> Option<f64>) -> Vec<(String, Line)> {
    let mut out: Vec<(String, Line)> = Vec::new();
    for row in &summary.arms {
        let Some(rate) = row.mask_rate else { continue };
        let name = line_name(row);
        let i = match out.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                out.push((name, Line::new()));
                out.len() - 1
            }
        };
        let v = value(row).filter(|v| v.is_finite());
        out[i].1.entry(rate.to_bits()).or_insert((rate, Vec::new())).1.push(v);
    }
    out
}

/// The dense baselines' values (one per seed): rows without a mask that some arm is measured
/// against.
fn baselines(summary: &Summary, value: &Value) -> Vec<Option<f64>> {
    summary
        .arms
        .iter()
        .filter(|r| r.mask_rate.is_none())
        .filter(|r| summary.arms.iter().any(|a| a.baseline.as_deref() == Some(r.arm.as_str())))
        .map(|r| value(r).filter(|v| v.is_finite()))
        .collect()
}

/// Two panels, t_gen and tau_grok against the rate; `None` unless more than one arm has a rate.
pub(super) fn rate(summary: &Summary) -> crate::Result<Option<Figure>> {
    let masked = summary.arms.iter().filter(|a| a.mask_rate.is_some()).count();
    if masked < 2 {
        return Ok(None);
    }
    let t_gen = |a: &SummaryRow| a.run.t_gen.map(|t| t as f64);
    let tau = |a: &SummaryRow| a.run.tau_grok;
    let panels: [(&str, &Value); 2] =
        [("t_gen (steps)", &t_gen), ("tau_grok = t_gen / t_mem", &tau)];
    let names: Vec<String> = lines(summary, &t_gen).into_iter().map(|(n, _)| n).collect();
    let mut legend: Vec<LegendEntry> = names
        .iter()
        .enumerate()
        .map(|(i, n)| LegendEntry { label: n.clone(), colour: arm_colour(i), mark: Mark::Line })
        .collect();
    let base_seeds = baselines(summary, &t_gen).len();
    if base_seeds > 0 {
        legend.push(LegendEntry {
            label: if base_seeds > 1 {
                format!("dense baseline (mean of {base_seeds}; band: min to max)")
            } else {
                "dense baseline".into()
            },
            colour: RGBColor(0x70, 0x70, 0x70),
            mark: Mark::Dashed,
        });
    }
    let rates: Vec<f64> = summary.arms.iter().filter_map(|a| a.mask_rate).collect();
    let (rlo, rhi) = padded(
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let size = (SIZE.0 + legend_width(&legend), SIZE.1);
    let svg = render(RATE, size, |root: &Area<'_>| -> Drawn {
        let plot = beside_legend(root, &legend)?;
        let plot = plot.titled("Grokking against pruning rate", (FONT, 18))?;
        for (area, (label, value)) in plot.split_evenly((1, 2)).iter().zip(panels) {
            let lines = lines(summary, value);
            let base = Spread::of(&baselines(summary, value));
            let spreads: Vec<Vec<(f64, Option<Spread>, usize)>> = lines
                .iter()
                .map(|(_, line)| {
                    let mut pts: Vec<_> = line
                        .values()
                        .map(|(rate, vs)| {
                            let s = Spread::of(vs);
                            (*rate, s, s.map_or(vs.len(), |s| s.never))
                        })
                        .collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    pts
                })
                .collect();
            let reached = spreads.iter().flatten().filter_map(|p| p.1).flat_map(|s| [s.min, s.max]);
            let (lo, hi) = reached
                .chain(base.iter().flat_map(|b| [b.min, b.max]))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = padded(lo, hi);
            // A row above the values for the arms that never reached the threshold.
            let never_y = hi + (hi - lo) * 0.06;
            let top = hi + (hi - lo) * 0.14;
            let ticks = linear_tick_formatter(hi);
            let mut chart = ChartBuilder::on(area)
                .caption(label, (FONT, 14))
                .margin(8)
                .margin_right(18)
                .x_label_area_size(36)
                .y_label_area_size(55)
                .build_cartesian_2d(rlo..rhi, lo..top)?;
            chart
                .configure_mesh()
                .x_desc("pruning rate (fraction removed)")
                .x_labels(6)
                .x_label_formatter(&|v| fmt_num(*v))
                .y_label_formatter(&|v| if *v > hi { String::new() } else { ticks(v) })
                .draw()?;
            let grey = RGBColor(0x70, 0x70, 0x70);
            if let Some(b) = base {
                if b.n > 1 {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(rlo, b.min), (rhi, b.max)],
                        grey.mix(0.12).filled(),
                    )))?;
                }
                chart.draw_series(DashedLineSeries::new(
                    vec![(rlo, b.mean), (rhi, b.mean)],
                    5,
                    4,
                    grey.stroke_width(1),
                ))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                "never",
                (rlo, never_y),
                (FONT, 11).into_font().color(&grey),
            )))?;
            for (i, pts) in spreads.iter().enumerate() {
                let c = arm_colour(i);
                let means: Vec<(f64, f64)> =
                    pts.iter().filter_map(|(r, s, _)| s.map(|s| (*r, s.mean))).collect();
                chart.draw_series(LineSeries::new(means.clone(), c.stroke_width(2)))?;
                chart.draw_series(means.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
                for (r, s, _) in pts {
                    if let Some(s) = s.filter(|s| s.max > s.min) {
                        let cap = (rhi - rlo) * 0.01;
                        chart.draw_series(
                            [
                                vec![(*r, s.min), (*r, s.max)],
                                vec![(r - cap, s.min), (r + cap, s.min)],
                                vec![(r - cap, s.max), (r + cap, s.max)],
                            ]
                            .map(|p| PathElement::new(p, c.stroke_width(1))),
                        )?;
                    }
                }
                // Never reached by at least one seed: a hollow triangle in the top row.
                chart.draw_series(
                    pts.iter()
                        .filter(|p| p.2 > 0)
                        .map(|(r, _, _)| TriangleMarker::new((*r, never_y), 6, c.stroke_width(2))),
                )?;
            }
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: RATE.into(),
        title: "t_gen and tau_grok against pruning rate".into(),
        caption: "One line per pruner (or control stage) over the rate: each point the mean over its seeds, the error bar from the lowest to the highest seed. A triangle in the top row (\"never\") marks a rate where at least one seed never reached the accuracy threshold; the dashed line is the dense baseline, with a band over its seeds.".into(),
        from_metrics: true,
        svg,
    }))
}
