//! Per-layer density of every mask (over its seed repeats), as grouped bars.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{
    Area, Drawn, FONT, Figure, LegendEntry, MASKS, Mark, SIZE, arm_colour, beside_legend, fmt_num,
    legend_width, over_seeds_name, render,
};
use ticketlab_api::artifact::{Artifact, MaskArtifact};
use ticketlab_api::ir::ExperimentIr;

/// One group of bars per layer, one bar per mask stage (in IR order); `None` without masks.
pub(super) fn densities(
    ir: &ExperimentIr,
    artifacts: &BTreeMap<String, Artifact>,
) -> ticketlab_api::Result<Option<Figure>> {
    let masks: Vec<(&str, &MaskArtifact)> = ir
        .stages
        .iter()
        .filter_map(|s| match artifacts.get(&s.name) {
            Some(Artifact::Mask(m)) => Some((s.name.as_str(), m.as_ref())),
            _ => None,
        })
        .collect();
    if masks.is_empty() {
        return Ok(None);
    }
    let mut layers: Vec<&str> = Vec::new();
    for (_, m) in &masks {
        for l in m.report.layers.keys() {
            if !layers.contains(&l.as_str()) {
                layers.push(l);
            }
        }
    }
    // Masks grouped over their seed repeats, in IR order.
    let mut groups: Vec<(&str, Vec<&MaskArtifact>)> = Vec::new();
    for (name, m) in &masks {
        let group = over_seeds_name(name);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, ms)) => ms.push(m),
            None => groups.push((group, vec![m])),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let legend: Vec<LegendEntry> = groups
        .iter()
        .enumerate()
        .map(|(j, (name, ms))| {
            let density: Vec<f64> = ms.iter().map(|m| m.report.density).collect();
            let seeds =
                if ms.len() > 1 { format!(", mean of {} seeds", ms.len()) } else { String::new() };
            LegendEntry {
                label: format!(
                    "{name} (rate {}, density {}{seeds})",
                    fmt_num(ms[0].rate),
                    fmt_num(mean(&density))
                ),
                colour: arm_colour(j),
                mark: Mark::Bar,
            }
        })
        .collect();
    let n = layers.len().max(1) as f64;
    let width = (SIZE.0).max(120 + 70 * layers.len() as u32) + legend_width(&legend);
    let svg = render(MASKS, (width, SIZE.1), |root: &Area<'_>| -> Drawn {
        let plot = beside_legend(root, &legend)?;
        let mut chart = ChartBuilder::on(&plot)
            .caption("Mask density per layer", (FONT, 18))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..1.05f64)?;
        let names = layers.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(layers.len() + 1)
            .x_label_formatter(&move |v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).map(|s| s.to_string()).unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("fraction kept")
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        let bar = 0.8 / groups.len() as f64;
        for (j, (_, ms)) in groups.iter().enumerate() {
            let c = arm_colour(j);
            for (i, l) in layers.iter().enumerate() {
                let d: Vec<f64> =
                    ms.iter().filter_map(|m| m.report.layers.get(*l).map(|x| x.density)).collect();
                if d.is_empty() {
                    continue;
                }
                let x0 = i as f64 - 0.4 + j as f64 * bar;
                let mid = x0 + bar * 0.45;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + bar * 0.9, mean(&d))],
                    c.filled(),
                )))?;
                let (lo, hi) = d
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
                if hi > lo {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(mid, lo), (mid, hi)],
                        BLACK.stroke_width(1),
                    )))?;
                }
            }
        }
        Ok(())
    })?;
    Ok(Some(Figure {
        file: MASKS.into(),
        title: "Mask density per layer".into(),
        caption: "Fraction of each prunable layer's weights kept by each mask; with seed repeats, the mean over the seeds with a line from the lowest to the highest. A bar at 0 is a collapsed layer.".into(),
        from_metrics: false,
        svg,
    }))
}
