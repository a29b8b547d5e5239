//! Per-layer density of every mask, as grouped bars.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{Area, Drawn, FONT, Figure, MASKS, SIZE, arm_colour, fmt_num, render};
use crate::artifact::{Artifact, MaskArtifact};
use crate::ir::ExperimentIr;

/// One group of bars per layer, one bar per mask stage (in IR order); `None` without masks.
pub(super) fn densities(
    ir: &ExperimentIr,
    artifacts: &BTreeMap<String, Artifact>,
) -> crate::Result<Option<Figure>> {
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
    let n = layers.len().max(1) as f64;
    let width = (SIZE.0).max(120 + 70 * layers.len() as u32);
    let svg = render(MASKS, (width, SIZE.1), |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
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
        let bar = 0.8 / masks.len() as f64;
        for (j, (name, m)) in masks.iter().enumerate() {
            let c = arm_colour(j);
            let bars = layers.iter().enumerate().filter_map(|(i, l)| {
                let d = m.report.layers.get(*l)?.density;
                let x0 = i as f64 - 0.4 + j as f64 * bar;
                Some(Rectangle::new([(x0, 0.0), (x0 + bar * 0.9, d)], c.filled()))
            });
            chart
                .draw_series(bars)?
                .label(format!(
                    "{name} (rate {}, global density {})",
                    fmt_num(m.rate),
                    fmt_num(m.report.density)
                ))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })?;
    Ok(Some(Figure {
        file: MASKS.into(),
        title: "Mask density per layer".into(),
        caption: "Fraction of each prunable layer's weights kept by each mask; a bar at 0 is a collapsed layer.".into(),
        from_metrics: false,
        svg,
    }))
}
