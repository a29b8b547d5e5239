//! t_gen and tau_grok against the pruning rate, when several arms trained under masks: one
//! line per pruner (or control stage) and value of any other swept parameter (a width, a
//! learning rate), each point the mean over its seeds with an error bar from the lowest to the
//! highest, arms that never reached the threshold marked "never" at the top.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{
    Area, Drawn, FONT, Figure, LegendEntry, Mark, RATE, SIZE, arm_colour, beside_legend, colour_of,
    fmt_num, legend_width, linear_tick_formatter, padded, render,
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
        Self(row.other_swept().map(|(k, v)| (k.clone(), v.clone())).collect())
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
    /// The legend's name ([`SummaryRow::display_name`] without the rate).
    name: String,
    /// The stage and pruner, which with the variant tell the lines apart.
    stage_name: String,
    /// The rank of the line's stage and pruner among the summary's, for the line order.
    stage: usize,
    variant: Variant,
    /// The colour of the line's first arm in the other figures.
    colour: RGBColor,
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
        let i = match out.iter().position(|c| c.stage_name == stage_name && c.variant == variant) {
            Some(i) => i,
            None => {
                out.push(Curve {
                    name: row.display_name(false),
                    stage_name,
                    stage,
                    variant,
                    colour: colour_of(summary, &row.arm),
                    values: Line::new(),
                });
                out.len() - 1
            }
        };
        let v = value(row).filter(|v| v.is_finite());
        out[i].values.entry(rate.to_bits()).or_insert((rate, Vec::new())).1.push(v);
    }
    out.sort_by(|a, b| a.stage.cmp(&b.stage).then_with(|| a.variant.order(&b.variant)));
    out
}

/// A dense baseline of the figure: rows without a mask that some arm is measured against, at
/// one variant, with one value per seed.
struct Baseline {
    /// The legend's name of its first row.
    name: String,
    variant: Variant,
    /// The colour of its first row in the other figures.
    colour: RGBColor,
    values: Vec<Option<f64>>,
}

/// The dense baselines' values, in variant value order.
fn baselines(summary: &Summary, value: &Value) -> Vec<Baseline> {
    let mut out: Vec<Baseline> = Vec::new();
    let measured_against =
        |r: &SummaryRow| summary.arms.iter().any(|a| a.baseline.as_deref() == Some(r.arm.as_str()));
    for row in summary.arms.iter().filter(|r| r.mask_rate.is_none() && measured_against(r)) {
        let variant = Variant::of(row);
        let v = value(row).filter(|v| v.is_finite());
        match out.iter_mut().find(|b| b.variant == variant) {
            Some(b) => b.values.push(v),
            None => out.push(Baseline {
                name: row.display_name(false),
                variant,
                colour: colour_of(summary, &row.arm),
                values: vec![v],
            }),
        }
    }
    out.sort_by(|a, b| a.variant.order(&b.variant));
    out
}

/// Colours the lines and baselines: each line as its first arm is in the other figures of the
/// report, each baseline as the first line at its variant (a sweep over widths pairs each
/// width's baseline with its lines), else as its own arm. Where two lines would share a colour
/// (more arms than the palette has colours), the lines take the palette in order instead and
/// a baseline no line shares a variant with turns grey.
fn colour(curves: &mut [Curve], bases: &mut [Baseline]) {
    let distinct = curves.iter().enumerate().all(|(i, c)| {
        curves[..i].iter().all(|d| d.colour != c.colour)
            && bases.iter().all(|b| b.colour != c.colour || b.variant == c.variant)
    });
    if !distinct {
        for (i, c) in curves.iter_mut().enumerate() {
            c.colour = arm_colour(i);
        }
    }
    for b in bases.iter_mut() {
        match curves.iter().find(|c| !b.variant.0.is_empty() && c.variant == b.variant) {
            Some(c) => b.colour = c.colour,
            None if !distinct => b.colour = GREY,
            None => {}
        }
    }
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
    let (mut curves, mut bases) = (lines(summary, &t_gen), baselines(summary, &t_gen));
    colour(&mut curves, &mut bases);
    let mut legend: Vec<LegendEntry> = curves
        .iter()
        .map(|c| LegendEntry { label: c.name.clone(), colour: c.colour, mark: Mark::Line })
        .collect();
    for b in &bases {
        let reached = b.values.iter().flatten().count();
        let what = match (reached, b.values.len()) {
            (0, _) => "never generalised, not drawn".to_string(),
            (1, 1) => String::new(),
            (r, n) if r == n => format!("mean of {n} seeds; band: min to max"),
            (r, n) => format!("mean of the {r} of {n} seeds that generalised; band: min to max"),
        };
        let label = match what.is_empty() {
            true => format!("{}, baseline", b.name),
            false => format!("{}, baseline ({what})", b.name),
        };
        legend.push(LegendEntry { label, colour: b.colour, mark: Mark::Dashed });
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
            let (mut lines, mut bases) = (lines(summary, value), baselines(summary, value));
            colour(&mut lines, &mut bases);
            let bases: Vec<(RGBColor, Spread)> =
                bases.iter().filter_map(|b| Spread::of(&b.values).map(|s| (b.colour, s))).collect();
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
            for (i, (pts, c)) in spreads.iter().zip(lines.iter().map(|l| l.colour)).enumerate() {
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
        caption: "One line per pruner (or control stage), and per value of any other swept parameter, over the rate: each point the mean over the seeds that reached the threshold, the error bar from the lowest to the highest of them. A triangle in the top row (\"never\") marks a rate where at least one seed never reached it (the seeds table of the report counts them); a dashed line is a dense baseline (one per value of the other swept parameters, in the colour of its lines), with a band over its seeds. Each line has the colour of its first arm in the other figures.".into(),
        from_metrics: true,
        svg,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::colour_of;

    /// A summary row from its arm name, pruner, rate and sweep point (seed in the name).
    fn row(arm: &str, pruner: Option<&str>, rate: Option<f64>, t_gen: Option<u64>) -> SummaryRow {
        serde_json::from_value(serde_json::json!({
            "arm": arm, "stage": ticketlab_api::ir::written_name(arm),
            "seed": crate::summary::repeat_seed(arm).unwrap_or(0),
            "sweep": rate.map_or(serde_json::json!({}), |r| serde_json::json!({ "mask.rate": r })),
            "pruner": pruner, "mask_rate": rate, "speedup_t_gen": null,
            "baseline": "dense", "steps": 1000, "threshold": 0.95, "t_mem": 50, "t_gen": t_gen,
            "tau_grok": null, "final_train_acc": 1.0, "final_test_acc": 1.0,
            "final_train_loss": 0.0, "final_test_loss": 0.1, "density": 1.0, "l1": 1.0, "l2": 1.0,
        }))
        .unwrap()
    }

    /// Each line of the rate figure has the colour its first arm has in the curves, and the
    /// dense baseline keeps its own; with more lines than colours the lines stay distinct.
    #[test]
    fn lines_keep_the_colour_of_their_arms() {
        let mut arms = vec![row("dense", None, None, Some(900))];
        for pruner in ["magnitude", "random"] {
            for rate in [0.2, 0.6] {
                let name = format!("ticket_train[mask.rate={rate},prune.uses={pruner}]");
                arms.push(row(&name, Some(pruner), Some(rate), Some(300)));
            }
        }
        let summary = Summary { experiment: "x".into(), baseline: Some("dense".into()), arms };
        let t_gen = |a: &SummaryRow| a.run.t_gen.map(|t| t as f64);
        let (mut curves, mut bases) = (lines(&summary, &t_gen), baselines(&summary, &t_gen));
        colour(&mut curves, &mut bases);
        let names: Vec<&str> = curves.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ticket (magnitude)", "ticket (random)"]);
        assert_eq!(curves[0].colour, colour_of(&summary, &summary.arms[1].arm));
        assert_eq!(curves[1].colour, colour_of(&summary, &summary.arms[3].arm));
        assert_eq!(bases[0].colour, colour_of(&summary, "dense"));
        assert_ne!(curves[0].colour, curves[1].colour);

        // Eleven lines over twelve arms: the palette of ten would repeat, so lines take it in
        // order and the baseline turns grey.
        let mut arms = vec![row("dense", None, None, Some(900))];
        for i in 0..11 {
            arms.push(row(&format!("t{i}_train"), Some("magnitude"), Some(0.5), Some(300)));
        }
        let summary = Summary { experiment: "x".into(), baseline: Some("dense".into()), arms };
        let (mut curves, mut bases) = (lines(&summary, &t_gen), baselines(&summary, &t_gen));
        colour(&mut curves, &mut bases);
        assert_eq!(curves[0].colour, arm_colour(0));
        assert_eq!(bases[0].colour, GREY);
    }
}
