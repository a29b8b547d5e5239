//! SVG figures of a run, drawn with plotters' SVG backend (text stays `<text>`; no fonts needed).
//!
//! Two families, so a report can be regenerated from the run directory alone:
//! - [`metric_figures`], from `summary.json` and `metrics.jsonl`: accuracy against step
//!   ([`ACCURACY`]), loss ([`LOSS`]), weight norms ([`NORMS`]) and, when more than one arm
//!   trained under a mask, t_gen and tau_grok against the pruning rate ([`RATE`]);
//! - [`artifact_figures`], from the artifacts: per-layer mask density ([`MASKS`]) and the
//!   figures each analyze and report stage's plugin hands over for its value
//!   ([`FigureSpec`](ticketlab_api::figure::FigureSpec)s, drawn as curves or heatmaps).
//!
//! Each arm keeps one colour ([`arm_colour`]) across figures, in summary order. Figures are
//! listed in `figures/index.json` ([`FigureIndex`]), in the order the report shows them.

mod analyses;
mod curves;
mod heatmap;
mod lines;
mod masks;
mod sweep;

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::files;
use super::files::{file_safe, is_plain_file_name};
use super::rundir::{MetricLine, RunOutputs};
use super::summary::Summary;
use ticketlab_api::metrics::EvalRecord;
use ticketlab_api::{Error, Result};

/// File name of the accuracy figure.
pub const ACCURACY: &str = "accuracy.svg";
/// File name of the loss figure.
pub const LOSS: &str = "loss.svg";
/// File name of the weight-norm figure.
pub const NORMS: &str = "norms.svg";
/// File name of the t_gen / tau_grok against pruning rate figure.
pub const RATE: &str = "rate.svg";
/// File name of the mask density figure.
pub const MASKS: &str = "masks.svg";
/// The index of the figures folder.
pub const INDEX: &str = "index.json";

/// One figure: its SVG text and how the report presents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// File name under `figures/`.
    pub file: String,
    /// Title shown above it.
    pub title: String,
    /// One-sentence caption: what is drawn and how to read it.
    pub caption: String,
    /// Whether it is drawn from `metrics.jsonl`/`summary.json` (and so redrawn by
    /// regeneration) rather than from artifacts.
    pub from_metrics: bool,
    /// The SVG document (not stored in the index).
    #[serde(skip)]
    pub svg: String,
}

/// `figures/index.json`: the figures in report order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FigureIndex {
    /// Figures in order; their `svg` is empty until loaded.
    pub figures: Vec<Figure>,
}

/// The figures drawn from the summary and the evaluation records.
pub fn metric_figures(summary: &Summary, metrics: &[MetricLine]) -> Result<Vec<Figure>> {
    let arms = arm_series(summary, metrics);
    let mut out = Vec::new();
    out.extend(curves::accuracy(summary, &arms)?);
    out.extend(curves::loss(&arms)?);
    out.extend(curves::norms(&arms)?);
    out.extend(sweep::rate(summary)?);
    Ok(out)
}

/// The figures drawn from the artifacts of `outputs`: mask densities, then the figures of
/// every analyze and report stage (in IR order) that its plugin hands over.
pub fn artifact_figures(outputs: &RunOutputs<'_>, summary: &Summary) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    out.extend(masks::densities(outputs.ir, outputs.artifacts)?);
    out.extend(analyses::figures(outputs, summary)?);
    Ok(out)
}

/// Every figure of the finished run `run`: those drawn from its metrics and summary drawn
/// again, those drawn from artifacts read back from its `figures/` folder.
pub fn of_run(run: &crate::rundir::RunFiles) -> Result<Vec<Figure>> {
    let mut figures = metric_figures(&run.summary, &run.metrics)?;
    figures.extend(read_artifact_figures(&run.dir)?);
    Ok(figures)
}

/// Writes every figure under `dir/figures/` and the index listing them in order.
pub fn write_figures(dir: &Path, figures: &[Figure]) -> Result<()> {
    let folder = dir.join(crate::names::FIGURES);
    for f in figures {
        files::write(&folder.join(&f.file), &f.svg)?;
    }
    files::write_json(&folder.join(INDEX), &FigureIndex { figures: figures.to_vec() })
}

/// Reads the figures of `dir/figures/index.json` that were drawn from artifacts (those cannot
/// be redrawn from the run directory), with their SVG; a listed file that is missing is an error
/// naming it.
pub fn read_artifact_figures(dir: &Path) -> Result<Vec<Figure>> {
    let folder = dir.join(crate::names::FIGURES);
    let index = folder.join(INDEX);
    if !index.exists() {
        return Ok(Vec::new());
    }
    let idx: FigureIndex = files::read_json(&index)?;
    let mut figures: Vec<Figure> = idx.figures.into_iter().filter(|f| !f.from_metrics).collect();
    for f in &mut figures {
        if !is_plain_file_name(&f.file) {
            return Err(Error::data(
                &index,
                format!(
                    "lists `{}`, which is not a file of the figures folder; rerun the experiment to rewrite it",
                    f.file
                ),
            ));
        }
        f.svg = files::read(&folder.join(&f.file))?;
    }
    Ok(figures)
}

/// Colours of arms, in summary order (cycled past the end).
pub const PALETTE: [(u8, u8, u8); 10] = [
    (0x1F, 0x77, 0xB4),
    (0xFF, 0x7F, 0x0E),
    (0x2C, 0xA0, 0x2C),
    (0xD6, 0x27, 0x28),
    (0x94, 0x67, 0xBD),
    (0x8C, 0x56, 0x4B),
    (0xE3, 0x77, 0xC2),
    (0x7F, 0x7F, 0x7F),
    (0xBC, 0xBD, 0x22),
    (0x17, 0xBE, 0xCF),
];

/// The colour of the `i`-th arm.
pub fn arm_colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// The colour of the `i`-th arm as written in the SVG (`#RRGGBB`, upper case).
pub fn arm_colour_hex(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// The colour of `arm` in every figure of a report: that of its seed group (the arm over its
/// seeds) by the group's place among the summary's arms.
pub(crate) fn colour_of(summary: &Summary, arm: &str) -> RGBColor {
    let mut groups: Vec<&str> = Vec::new();
    for a in &summary.arms {
        let group = over_seeds_name(&a.arm);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let group = over_seeds_name(arm);
    arm_colour(groups.iter().position(|g| *g == group).unwrap_or(groups.len()))
}

/// One arm over its seed repeats (`dense@seed0`, `dense@seed1` are the arm `dense`): its
/// colour and each seed's records in step order.
pub(crate) struct ArmSeries<'a> {
    /// The arm's name without its seed repeat.
    pub name: String,
    /// What the legend calls it: [`SummaryRow::display_name`](crate::summary::SummaryRow::display_name)
    /// unless another arm shows the same, then `name`.
    pub label: String,
    pub colour: RGBColor,
    pub runs: Vec<Vec<&'a EvalRecord>>,
}

impl ArmSeries<'_> {
    /// Every evaluation of every seed.
    pub(crate) fn records(&self) -> impl Iterator<Item = &EvalRecord> {
        self.runs.iter().flatten().copied()
    }

    /// `(step, mean, min, max)` of `value` over the seeds, at each step every seed evaluated
    /// with a finite value (and, for a log step axis, `step > 0`).
    pub(crate) fn mean_band(
        &self,
        positive_steps: bool,
        value: impl Fn(&EvalRecord) -> Option<f64>,
    ) -> Vec<(f64, f64, f64, f64)> {
        let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for run in &self.runs {
            for r in run.iter().filter(|r| !positive_steps || r.step > 0) {
                if let Some(v) = value(r).filter(|v| v.is_finite()) {
                    by_step.entry(r.step).or_default().push(v);
                }
            }
        }
        by_step
            .into_iter()
            .filter(|(_, vs)| vs.len() == self.runs.len())
            .map(|(step, vs)| {
                let mean = vs.iter().sum::<f64>() / vs.len() as f64;
                let (lo, hi) = vs
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
                (step as f64, mean, lo, hi)
            })
            .collect()
    }
}

/// An arm's name without its seed repeat's `@seedN`.
pub(crate) fn over_seeds_name(arm: &str) -> &str {
    match crate::summary::repeat_seed(arm) {
        Some(_) => arm.rsplit_once("@seed").map_or(arm, |(name, _)| name),
        None => arm,
    }
}

/// Arms in summary order (then any arm only present in the metrics), seeds grouped.
fn arm_series<'a>(summary: &'a Summary, metrics: &'a [MetricLine]) -> Vec<ArmSeries<'a>> {
    let mut names: Vec<&str> = summary.arms.iter().map(|a| a.arm.as_str()).collect();
    for m in metrics {
        if !names.contains(&m.arm.as_str()) {
            names.push(&m.arm);
        }
    }
    let mut out: Vec<ArmSeries<'a>> = Vec::new();
    for name in names {
        let mut records: Vec<&EvalRecord> =
            metrics.iter().filter(|m| m.arm == name).map(|m| &m.record).collect();
        records.sort_by_key(|r| r.step);
        let group = over_seeds_name(name);
        match out.iter_mut().find(|a| a.name == group) {
            Some(a) => a.runs.push(records),
            None => {
                let colour = arm_colour(out.len());
                let label = summary.arm(name).map_or(group.to_string(), |r| r.display_name(true));
                out.push(ArmSeries { name: group.to_string(), label, colour, runs: vec![records] });
            }
        }
    }
    let labels: Vec<String> = out.iter().map(|a| a.label.clone()).collect();
    for a in &mut out {
        if labels.iter().filter(|l| **l == a.label).count() > 1 {
            a.label = a.name.clone();
        }
    }
    out
}

/// The first evaluated step after 0 (where a log step axis starts), and the last.
pub(crate) fn step_range(arms: &[ArmSeries<'_>]) -> (f64, f64) {
    let steps = || arms.iter().flat_map(|a| a.records().map(|r| r.step)).filter(|s| *s > 0);
    let first = steps().min().unwrap_or(1);
    let last = steps().max().unwrap_or(10).max(first * 10);
    (first as f64, last as f64)
}

/// One entry of a legend drawn beside the plot: a label and how its series is drawn.
pub(crate) struct LegendEntry {
    pub label: String,
    pub colour: RGBColor,
    pub mark: Mark,
}

/// How a legend entry draws its series' sample.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mark {
    Line,
    Dashed,
    Bar,
}

/// Width in pixels of a legend column holding `entries` (at most [`LEGEND_MAX`]).
pub(crate) fn legend_width(entries: &[LegendEntry]) -> u32 {
    let chars = entries.iter().map(|e| e.label.chars().count()).max().unwrap_or(0) as u32;
    if entries.is_empty() { 0 } else { (40 + chars * 11 / 2).min(LEGEND_MAX) }
}

/// The widest legend column; longer labels are cut with an ellipsis.
const LEGEND_MAX: u32 = 560;

/// Splits `root` into the plot (left) and a legend column of `entries` (right), drawn outside
/// the plot so it never covers data.
pub(crate) fn beside_legend<'a>(
    root: &Area<'a>,
    entries: &[LegendEntry],
) -> std::result::Result<Area<'a>, Box<dyn std::error::Error>> {
    let width = legend_width(entries);
    if width == 0 {
        return Ok(root.clone());
    }
    let (w, _) = root.dim_in_pixel();
    let (plot, side) = root.split_horizontally(w.saturating_sub(width));
    // Labels are cut only when the column is at its widest.
    let max_chars = if width < LEGEND_MAX { usize::MAX } else { ((width - 40) * 2 / 11) as usize };
    for (i, e) in entries.iter().enumerate() {
        let y = 50 + 17 * i as i32;
        let sample: Vec<(i32, i32)> = vec![(6, y), (28, y)];
        match e.mark {
            Mark::Line => side.draw(&PathElement::new(sample, e.colour.stroke_width(2)))?,
            Mark::Dashed => {
                side.draw(&PathElement::new(vec![(6, y), (13, y)], e.colour.stroke_width(2)))?;
                side.draw(&PathElement::new(vec![(19, y), (28, y)], e.colour.stroke_width(2)))?
            }
            Mark::Bar => {
                side.draw(&Rectangle::new([(10, y - 5), (24, y + 5)], e.colour.filled()))?
            }
        }
        let label = if e.label.chars().count() > max_chars {
            let cut: String = e.label.chars().take(max_chars.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            e.label.clone()
        };
        side.draw(&Text::new(label, (34, y - 6), (FONT, 11).into_font()))?;
    }
    Ok(plot)
}

/// Tick labels for a linear axis reaching `hi`: with `hi` of 10,000 or more, every tick from
/// 1,000 up in thousands (`5k`, `10k`), so one axis never mixes `5000` and `10k`.
pub(crate) fn linear_tick_formatter(hi: f64) -> impl Fn(&f64) -> String {
    move |v: &f64| {
        if hi >= 1e4 && v.abs() >= 1e3 { format!("{}k", trim(v / 1e3)) } else { fmt_num(*v) }
    }
}

/// Tick labels for a log axis over `lo..hi` in one notation: powers of ten as `1e-3` when the
/// range reaches below 0.01 or above 10,000, else [`fmt_num`].
pub(crate) fn log_tick_formatter(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let scientific = lo < 0.01 || hi >= 1e4;
    move |v: &f64| {
        if scientific {
            let e = v.log10().floor();
            let m = v / 10f64.powf(e);
            if (m - 1.0).abs() < 1e-6 { format!("1e{e}") } else { format!("{}e{e}", trim(m)) }
        } else {
            fmt_num(*v)
        }
    }
}

/// The SVG drawing area figures draw on.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// What drawing code returns (plotters' errors, boxed).
pub(crate) type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

/// Figure width and height in pixels.
pub(crate) const SIZE: (u32, u32) = (760, 440);
/// Font family of every label.
pub(crate) const FONT: &str = "sans-serif";

/// A legend entry for a line series: a short line in the series' own style.
pub(crate) fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style)
}

/// Draws `chart`'s series labels in the figures' one legend style.
pub(crate) fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    font_size: u32,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(position)
        .draw()?;
    Ok(())
}

/// Draws with `draw` on a white SVG canvas of `size` and returns the document.
pub(crate) fn render(
    file: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(|e| e.into())
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| e.into()));
        result.map_err(|e: Box<dyn std::error::Error>| Error::Output {
            file: format!("figures/{file}"),
            message: format!("cannot draw it: {e}"),
        })?;
    }
    Ok(svg)
}

/// A compact axis label: integers without decimals, `12k`, `1.5M`, small values with 3 digits.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if a >= 0.01 {
        trim(v)
    } else {
        format!("{v:.1e}")
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `(lo, hi)` padded for an axis; a degenerate range is widened around its value.
pub(crate) fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * 0.05;
    (lo - d, hi + d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(fmt_num(25_000.0), "25k");
        assert_eq!(fmt_num(1_500_000.0), "1.5M");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(0.001), "1.0e-3");
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(file_safe("dense"), "dense");
        let a = file_safe("a[x=p q]");
        let b = file_safe("a[x=p_q]");
        assert!(a.starts_with("a_x_p_q_-") && b.starts_with("a_x_p_q_-") && a != b, "{a} {b}");
        let long = file_safe(&"n".repeat(300));
        assert_eq!(long.len(), 80 + 9);
        assert!(is_plain_file_name(&a) && is_plain_file_name(&long));
        assert!(
            !is_plain_file_name("../x.svg")
                && !is_plain_file_name("/etc/passwd")
                && !is_plain_file_name(".hidden")
        );
    }

    /// A log axis reaching below 0.01 labels every tick as a power of ten, one notation.
    #[test]
    fn log_ticks_use_one_notation() {
        let wide = log_tick_formatter(1e-6, 10.0);
        let ticks: Vec<String> = [1e-6, 1e-3, 0.1, 1.0, 10.0, 0.002].iter().map(&wide).collect();
        assert_eq!(ticks, ["1e-6", "1e-3", "1e-1", "1e0", "1e1", "2e-3"]);
        let thousands = linear_tick_formatter(20_000.0);
        assert_eq!(
            [0.0, 500.0, 5000.0, 15_000.0].iter().map(thousands).collect::<Vec<_>>(),
            ["0", "500", "5k", "15k"]
        );
        let narrow = log_tick_formatter(0.05, 5.0);
        assert_eq!([0.1, 1.0, 2.5].iter().map(narrow).collect::<Vec<_>>(), ["0.1", "1", "2.5"]);
    }

    #[test]
    fn colours_match_the_svg_spelling() {
        assert_eq!(arm_colour_hex(0), "#1F77B4");
        assert_eq!(arm_colour_hex(10), arm_colour_hex(0));
    }
}
