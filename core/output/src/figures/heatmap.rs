//! Heatmaps a plugin hands over ([`Heatmap`]): one cell per value, coloured on a sequential
//! scale from dark blue (0) to yellow (1), columns numbered from 1 and rows from 0 at the
//! bottom; the figure grows taller with its rows.

use plotters::prelude::*;
use ticketlab_api::figure::Heatmap;

use super::{Area, Drawn, FONT, SIZE, fmt_num, render};

/// The SVG of `map`, written as `file`.
pub(super) fn draw(file: &str, map: &Heatmap) -> ticketlab_api::Result<String> {
    let rows = &map.rows;
    let k = rows.iter().map(Vec::len).max().unwrap_or(0);
    let n = rows.len();
    let size = (SIZE.0, SIZE.1.max(200 + 3 * n as u32).min(700));
    render(file, size, |root: &Area<'_>| -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption(&map.heading, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.5f64..k as f64 + 0.5, 0f64..n as f64)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&map.x_label)
            .y_desc(&map.y_label)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()?;
        chart.draw_series(rows.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(f, v)| {
                let x = f as f64 + 1.0;
                Rectangle::new([(x - 0.5, r as f64), (x + 0.5, r as f64 + 1.0)], heat(*v).filled())
            })
        }))?;
        Ok(())
    })
}

/// The colour of `v` on the scale from dark blue (0) to yellow (1); a value outside is clamped,
/// one that is not finite is 0.
fn heat(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f64;
    let i = (v.floor() as usize).min(STOPS.len() - 2);
    let t = v - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_scale_ends() {
        assert_eq!(heat(0.0), RGBColor(68, 1, 84));
        assert_eq!(heat(1.0), RGBColor(253, 231, 37));
        assert_eq!(heat(f64::NAN), heat(0.0));
    }

    #[test]
    fn one_cell_per_value() {
        let map = Heatmap {
            heading: "h".into(),
            x_label: "k".into(),
            y_label: "neuron".into(),
            rows: vec![vec![0.0, 1.0], vec![0.5]],
        };
        let svg = draw("x.svg", &map).unwrap();
        assert!(svg.contains("#FDE725") && svg.contains("#440154"), "both ends of the scale");
    }
}
