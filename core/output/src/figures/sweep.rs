//! t_gen and tau_grok against the pruning rate, when several arms trained under masks: one
//! line per pruner (or control stage) and value of any other swept parameter (a width, a
//! learning rate), each point the mean over its seeds with an error bar from the lowest to the
//! highest, arms that never reached the threshold marked "never" at the top.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{
    Area, Drawn, FONT, Figure, LegendEntry, Mark, RATE, SIZE, arm_colour, beside_legend, fmt_num,
    legend_width, linear_tick_formatter, padded, render,
};
use crate::summary::{Spread, Summary, SummaryRow};

/// The dense baseline's colour when no line shares its variant, and the "never" label's.
const GREY: RGBColor = RGBColor(0x70, 0x70, 0x70);

/// Reads the plotted value of an arm.
type Value = dyn Fn(&SummaryRow) -> Option<f64>;

/// The values of one line at each rate, one per seed (`None`: never reached).
type Line = BTreeMap<u64, (f64, Vec<Option<f64>>)>;

/// The arm's swept values other than its mask's rate and level (which the rate axis shows) and
/// its pruner (which the line's name shows), such as `init.width=192`: arms that differ in them
/// get their own line and baseline rather than being averaged as if they were seeds.
#[derive(Debug, Clone, PartialEq)]
struct Variant(Vec<(String, serde_json::Value)>);

impl Variant {
    fn of(row: &SummaryRow) -> Self {
        let shown = |key: &String, value: &serde_json::Value| {
            key.ends_with(".rate")
                || key.ends_with(".level")
                || key.ends_with(".uses") && value.as_str() == row.pruner.as_deref()
        };
        Self(
            row.sweep
                .iter()
                .filter(|(k, v)| !shown(k, v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// `name`, followed by the swept values in brackets when there are any.
    fn label(&self, name: String) -> String {
        if self.0.is_empty() {
            return name;
        }
        let values: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{name} [{}]", values.join(", "))
    }

    /// Numbers by value (a width of 48 before one of 384), anything else by its JSON text.
    fn order(&self, other: &Self) -> Ordering {
        let by_value =
            self.0.iter().zip(&other.0).map(|((_, a), (_, b))| match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.to_string().cmp(&b.to_string()),
            });
        by_value.fold(Ordering::Equal, Ordering::then).then(self.0.len().cmp(&other.0.len()))
    }
}

/// One line of the figure: an arm's stage and pruner at one variant, over the rates.
struct Curve {
    name: String,
    /// The rank of the line's stage and pruner among the summary's, for the line order.
    stage: usize,
    variant: Variant,
    values: Line,
}

/// Every line's values of `value`: stages in summary order, each stage's variants in value
/// order (rates keyed by their bits).
fn lines(summary: &Summary, value: &Value) -> Vec<Curve> {
    let mut stages: Vec<String> = Vec::new();
    let mut out: Vec<Curve> = Vec::new();
    for row in &summary.arms {
        let Some(rate) = row.mask_rate else { continue };
        let variant = Variant::of(row);
        let stage_name = match &row.pruner {
            Some(p) => format!("{} ({p})", row.stage),
            None => row.stage.clone(),
        };
        let stage = stages.iter().position(|s| *s == stage_name).unwrap_or_else(|| {
            stages.push(stage_name.clone());
            stages.len() - 1
        });
        let name = variant.label(stage_name);
        let i = match out.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                out.push(Curve { name, stage, variant, values: Line::new() });
                out.len() - 1
            }
        };
        let v = value(row).filter(|v| v.is_finite());
        out[i].values.entry(rate.to_bits()).or_insert((rate, Vec::new())).1.push(v);
    }
    out.sort_by(|a, b| a.stage.cmp(&b.stage).then_with(|| a.variant.order(&b.variant)));
    out
}

/// The dense baselines' values, one group per variant (in value order) with one value per
/// seed: rows without a mask that some arm is measured against.
fn baselines(summary: &Summary, value: &Value) -> Vec<(Variant, Vec<Option<f64>>)> {
    let mut out: Vec<(Variant, Vec<Option<f64>>)> = Vec::new();
    let measured_against =
        |r: &SummaryRow| summary.arms.iter().any(|a| a.baseline.as_deref() == Some(r.arm.as_str()));
    for row in summary.arms.iter().filter(|r| r.mask_rate.is_none() && measured_against(r)) {
        let variant = Variant::of(row);
        let v = value(row).filter(|v| v.is_finite());
        match out.iter_mut().find(|(w, _)| *w == variant) {
            Some((_, vs)) => vs.push(v),
            None => out.push((variant, vec![v])),
        }
    }
    out.sort_by(|a, b| a.0.order(&b.0));
    out
}

/// The colour of the baseline of `variant`: that of the first line at the same variant, grey
/// when no line shares it (a sweep without other axes).
fn baseline_colour(curves: &[Curve], variant: &Variant) -> RGBColor {
    curves
        .iter()
        .position(|c| !variant.0.is_empty() && c.variant == *variant)
        .map_or(GREY, arm_colour)
}

/// Two panels, t_gen and tau_grok against the rate; `None` unless more than one arm has a rate.
pub(super) fn rate(summary: &Summary) -> ticketlab_api::Result<Option<Figure>> {
    let masked = summary.arms.iter().filter(|a| a.mask_rate.is_some()).count();
    if masked < 2 {
        return Ok(None);
    }
    let t_gen = |a: &SummaryRow| a.run.t_gen.map(|t| t as f64);
    let tau = |a: &SummaryRow| a.run.tau_grok;
    let panels: [(&str, &Value); 2] =
        [("t_gen (steps)", &t_gen), ("tau_grok = t_gen / t_mem", &tau)];
    let curves = lines(summary, &t_gen);
    let mut legend: Vec<LegendEntry> = curves
        .iter()
        .enumerate()
        .map(|(i, c)| LegendEntry {
            label: c.name.clone(),
            colour: arm_colour(i),
            mark: Mark::Line,
        })
        .collect();
    for (variant, seeds) in baselines(summary, &t_gen) {
        let spread = match seeds.len() {
            1 => String::new(),
            n => format!(" (mean of {n}; band: min to max)"),
        };
        legend.push(LegendEntry {
            label: variant.label(format!("dense baseline{spread}")),
            colour: baseline_colour(&curves, &variant),
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
            let bases: Vec<(RGBColor, Spread)> = baselines(summary, value)
                .iter()
                .filter_map(|(variant, vs)| {
                    Spread::of(vs).map(|s| (baseline_colour(&curves, variant), s))
                })
                .collect();
            let spreads: Vec<Vec<(f64, Option<Spread>, usize)>> = lines
                .iter()
                .map(|curve| {
                    let mut pts: Vec<_> = curve
                        .values
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
                .chain(bases.iter().flat_map(|(_, b)| [b.min, b.max]))
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
            for (colour, b) in &bases {
                if b.n > 1 {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(rlo, b.min), (rhi, b.max)],
                        colour.mix(0.12).filled(),
                    )))?;
                }
                chart.draw_series(DashedLineSeries::new(
                    vec![(rlo, b.mean), (rhi, b.mean)],
                    5,
                    4,
                    colour.stroke_width(1),
                ))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                "never",
                (rlo, never_y),
                (FONT, 11).into_font().color(&GREY),
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
                // Never reached by at least one seed: a hollow triangle in the top row, the
                // lines' triangles side by side so that none hides another.
                let shift = (i as f64 - (spreads.len() - 1) as f64 / 2.0) * (rhi - rlo) * 0.012;
                chart.draw_series(pts.iter().filter(|p| p.2 > 0).map(|(r, _, _)| {
                    TriangleMarker::new((r + shift, never_y), 6, c.stroke_width(2))
                }))?;
            }
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: RATE.into(),
        title: "t_gen and tau_grok against pruning rate".into(),
        caption: "One line per pruner (or control stage), and per value of any other swept parameter, over the rate: each point the mean over its seeds, the error bar from the lowest to the highest seed. A triangle in the top row (\"never\") marks a rate where at least one seed never reached the accuracy threshold; a dashed line is a dense baseline (one per value of the other swept parameters, in the colour of its lines), with a band over its seeds.".into(),
        from_metrics: true,
        svg,
    }))
}
