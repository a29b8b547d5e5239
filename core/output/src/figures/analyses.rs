//! The figures analyze and report stages hand over: each stage's plugin describes the figures of
//! its value ([`FigureSpec`]s), drawn here as curves ([`super::lines`]) or heatmaps
//! ([`super::heatmap`]). Output knows no analysis by name; a plugin that hands over nothing
//! (or a value of another shape than it computes) has no figure.

use ticketlab_api::Result;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::figure::{FigureContext, FigureSpec, Plot};

use super::{Figure, file_safe, heatmap, lines};
use crate::rundir::RunOutputs;
use crate::summary::Summary;

/// The figures of every analyze and report stage of `outputs`, in IR order, each stage's in the
/// order its plugin hands them over.
pub(super) fn figures(outputs: &RunOutputs<'_>, summary: &Summary) -> Result<Vec<Figure>> {
    let arms: Vec<(&str, _)> = summary.arms.iter().map(|a| (a.arm.as_str(), &a.run)).collect();
    let mut out = Vec::new();
    for stage in &outputs.ir.stages {
        let Some(Artifact::Analysis(a)) = outputs.artifacts.get(&stage.name) else { continue };
        let plugin = stage
            .kind
            .plugin_kind()
            .zip(stage.plugin.as_deref())
            .and_then(|(kind, name)| outputs.registry.get(kind, name));
        let Some(plugin) = plugin else { continue };
        let ctx = FigureContext { stage: &stage.name, arms: arms.clone() };
        for spec in plugin.instance.figures(&a.value, &ctx) {
            out.push(draw(&stage.name, &spec, summary)?);
        }
    }
    Ok(out)
}

/// Draws `spec`, a figure of stage `stage`: its file name is its parts made safe and joined
/// with `-` (the stage's name when it has none), then `.svg`.
fn draw(stage: &str, spec: &FigureSpec, summary: &Summary) -> Result<Figure> {
    let parts: Vec<String> = match spec.file.as_slice() {
        [] => vec![file_safe(stage)],
        parts => parts.iter().map(|p| file_safe(p)).collect(),
    };
    let file = format!("{}.svg", parts.join("-"));
    let svg = match &spec.plot {
        Plot::Lines(l) => lines::draw(&file, l, summary)?,
        Plot::Heatmap(h) => heatmap::draw(&file, h)?,
    };
    Ok(Figure {
        file,
        title: spec.title.clone(),
        caption: spec.caption.clone(),
        from_metrics: false,
        svg,
    })
}
