//! Figures an analysis hands the run directory: what to draw, without a plotting library.
//!
//! An analyze or report plugin describes the figures of its value with [`FigureSpec`]s
//! ([`AnalysisPlugin::figures`](crate::plugin::AnalysisPlugin::figures),
//! [`ReportPlugin::figures`](crate::plugin::ReportPlugin::figures)); `ticketlab-output` draws
//! them as SVG in the house style of every figure (size, fonts, margins, legend, each arm's
//! colour), lists them in `figures/index.json` and shows them in the report. A plugin reads
//! what it needs about the trained arms from the [`FigureContext`].

use crate::metrics::RunSummary;

/// What a plugin's figures may depend on besides its own value.
#[derive(Debug, Clone)]
pub struct FigureContext<'a> {
    /// The analyze or report stage's name.
    pub stage: &'a str,
    /// The trained arms in summary order (the order their colours follow), with their
    /// headline numbers.
    pub arms: Vec<(&'a str, &'a RunSummary)>,
}

impl FigureContext<'_> {
    /// The place of arm `arm` in summary order; `None` when it is not a trained arm.
    pub fn position(&self, arm: &str) -> Option<usize> {
        self.arms.iter().position(|(name, _)| *name == arm)
    }

    /// The headline numbers of arm `arm`.
    pub fn run(&self, arm: &str) -> Option<&RunSummary> {
        self.arms.iter().find(|(name, _)| *name == arm).map(|(_, run)| *run)
    }
}

/// One figure: its file, how the report presents it, and what it draws.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSpec {
    /// The parts of its file name under `figures/` (e.g. a prefix, the stage, an arm): each is
    /// made a safe file name, then they are joined with `-` and `.svg` is appended.
    pub file: Vec<String>,
    /// Title shown above it in the report.
    pub title: String,
    /// One-sentence caption: what is drawn and how to read it.
    pub caption: String,
    /// What it draws.
    pub plot: Plot,
}

/// What a figure draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Plot {
    /// Curves over two linear axes.
    Lines(Lines),
    /// A grid of cells coloured by value.
    Heatmap(Heatmap),
}

/// Curves over two linear axes, with a legend of the curves' labels in the upper right corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    /// Heading drawn above the plot.
    pub heading: String,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// The curves, drawn in order (later ones on top), each with its legend entry.
    pub series: Vec<Series>,
    /// Steps marked by a dashed grey vertical line across the plot (e.g. an arm's t_gen).
    pub marks: Vec<f64>,
}

/// An axis: its label and its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The label.
    pub label: String,
    /// The range it shows.
    pub range: Range,
}

/// The range an axis shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// From the first value to the second.
    Fixed(f64, f64),
    /// The range of the curves' values on this axis, padded by 5% on each side (a single value
    /// is widened around itself).
    Padded,
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub label: String,
    /// Its colour.
    pub colour: Colour,
    /// Stroke width in pixels.
    pub width: u32,
    /// Whether each point is also drawn as a dot.
    pub dots: bool,
    /// The points `(x, y)`, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A curve's colour.
#[derive(Debug, Clone, PartialEq)]
pub enum Colour {
    /// The colour of the trained arm of that name in every figure; an arm that is not trained
    /// takes a colour after the trained arms', by its curve's place in the figure.
    Arm(String),
    /// The `n`-th colour of the palette arms are coloured from (for curves that are not arms,
    /// such as layers).
    Nth(usize),
    /// Black.
    Black,
}

/// A grid of values in `[0, 1]`, coloured on a sequential scale from dark blue (0) to yellow
/// (1); its height grows with its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Heading drawn above the plot.
    pub heading: String,
    /// Label of the horizontal axis, whose columns are numbered from 1.
    pub x_label: String,
    /// Label of the vertical axis, whose rows are numbered from 0 at the bottom.
    pub y_label: String,
    /// The rows, bottom first; a row may be shorter than the widest.
    pub rows: Vec<Vec<f64>>,
}
