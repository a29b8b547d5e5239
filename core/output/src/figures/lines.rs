//! Curves a plugin hands over ([`Lines`]): two linear axes, each curve in its colour with its
//! legend entry (upper right), dots where asked, and dashed grey vertical marks.

use plotters::prelude::*;
use ticketlab_api::figure::{Colour, Lines, Range};

use super::{Area, Drawn, FONT, SIZE, arm_colour, fmt_num, legend_line, padded, render};
use crate::summary::Summary;

/// The SVG of `lines`, written as `file`; arms take their colour from `summary`'s order.
pub(super) fn draw(file: &str, lines: &Lines, summary: &Summary) -> ticketlab_api::Result<String> {
    let colours: Vec<RGBColor> =
        lines.series.iter().enumerate().map(|(i, s)| colour(&s.colour, summary, i)).collect();
    let points = || lines.series.iter().flat_map(|s| s.points.iter());
    let (xlo, xhi) = bounds(lines.x.range, points().map(|p| p.0));
    let (ylo, yhi) = bounds(lines.y.range, points().map(|p| p.1));
    render(file, SIZE, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption(&lines.heading, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
        chart
            .configure_mesh()
            .x_desc(&lines.x.label)
            .y_desc(&lines.y.label)
            .x_labels(6)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        for (s, c) in lines.series.iter().zip(&colours) {
            let style = c.stroke_width(s.width);
            chart
                .draw_series(LineSeries::new(s.points.clone(), style))?
                .label(s.label.as_str())
                .legend(legend_line(style));
            if s.dots {
                chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
            }
        }
        for x in &lines.marks {
            chart.draw_series(DashedLineSeries::new(
                vec![(*x, ylo), (*x, yhi)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))?;
        }
        super::legend(&mut chart, 12, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// The colour of the `i`-th curve: an arm's is its place in the summary, or for an arm not in
/// it the place after the summary's arms of the curve in the figure.
fn colour(colour: &Colour, summary: &Summary, i: usize) -> RGBColor {
    match colour {
        Colour::Arm(arm) => arm_colour(
            summary.arms.iter().position(|a| a.arm == *arm).unwrap_or(summary.arms.len() + i),
        ),
        Colour::Nth(n) => arm_colour(*n),
        Colour::Black => BLACK,
    }
}

/// The bounds of an axis showing `range` over the curves' `values` on it.
fn bounds(range: Range, values: impl Iterator<Item = f64>) -> (f64, f64) {
    match range {
        Range::Fixed(lo, hi) => (lo, hi),
        Range::Padded => {
            let (lo, hi) =
                values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            padded(lo, hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::figure::{Axis, Series};

    #[test]
    fn arms_keep_their_summary_colour_and_others_come_after() {
        let s = Summary { experiment: "e".into(), baseline: None, arms: vec![] };
        assert_eq!(colour(&Colour::Arm("x".into()), &s, 2), arm_colour(2));
        assert_eq!(colour(&Colour::Nth(1), &s, 5), arm_colour(1));
        assert_eq!(colour(&Colour::Black, &s, 0), BLACK);
    }

    #[test]
    fn padded_ranges_cover_the_values() {
        assert_eq!(bounds(Range::Fixed(0.0, 3.0), [9.0].into_iter()), (0.0, 3.0));
        assert_eq!(bounds(Range::Padded, [1.0, 3.0].into_iter()), (0.9, 3.1));
    }

    #[test]
    fn curves_and_marks_are_drawn_with_their_legend() {
        let s = Summary { experiment: "e".into(), baseline: None, arms: vec![] };
        let series = |label: &str, colour| Series {
            label: label.into(),
            colour,
            width: 3,
            dots: true,
            points: vec![(0.0, 0.5), (10.0, 0.25)],
        };
        let lines = Lines {
            heading: "h".into(),
            x: Axis { label: "step".into(), range: Range::Fixed(0.0, 10.0) },
            y: Axis { label: "v".into(), range: Range::Padded },
            series: vec![series("all layers", Colour::Black), series("w", Colour::Nth(0))],
            marks: vec![5.0],
        };
        let svg = draw("x.svg", &lines, &s).unwrap();
        assert!(
            svg.contains("all layers") && svg.contains("\nw\n"),
            "the legend names every curve"
        );
        assert_eq!(svg.matches("<circle").count(), 4, "a dot at every point");
        assert!(svg.contains("opacity=\"0.6\""), "the dashed mark");
    }
}
