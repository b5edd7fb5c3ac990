//! DET curves, the picture biometrics people read: FNIR against FPIR, both on log axes, one curve per
//! decision mode and list size. Drawn with `plotters` into an SVG (text as SVG `<text>`, so no font
//! files are needed).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One curve: (FPIR, FNIR) points, FPIR ascending.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Writes the curves to `file` (SVG). Points with a zero rate cannot sit on a log axis and are left
/// out.
pub fn write_svg(
    file: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> anyhow::Result<()> {
    let svg = render(title, x_label, y_label, curves)?;
    lanewatch::fsio::write_atomically(file, svg.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))
}

/// The SVG text of the plot.
pub fn render(
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> anyhow::Result<String> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let all: Vec<(f64, f64)> = curves
        .iter()
        .flat_map(|c| c.points.iter().copied())
        .filter(|(x, y)| positive(*x) && positive(*y))
        .collect();
    anyhow::ensure!(
        !all.is_empty(),
        "no DET point with both rates above zero to draw"
    );
    let decade_below = |v: f64| 10f64.powf(v.log10().floor());
    let x_min = decade_below(all.iter().map(|p| p.0).fold(1.0, f64::min));
    let y_min = decade_below(all.iter().map(|p| p.1).fold(1.0, f64::min));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min..1.0).log_scale(), (y_min..1.0).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(draw_err)?;
        for (i, c) in curves.iter().enumerate() {
            let color = PALETTE[(i / 2) % PALETTE.len()];
            let style = ShapeStyle {
                color: color.to_rgba(),
                filled: false,
                stroke_width: if c.dashed { 1 } else { 2 },
            };
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .copied()
                .filter(|(x, y)| positive(*x) && positive(*y))
                .collect();
            let series = if c.dashed {
                chart.draw_series(DashedLineSeries::new(pts, 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(pts, style))
            };
            series
                .map_err(draw_err)?
                .label(c.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the DET plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_log_axes_curves_and_legend() {
        let curve = |label: &str, k: f64, dashed| Curve {
            label: label.into(),
            points: (1..40)
                .map(|i| {
                    let x = 10f64.powf(-3.0 + i as f64 * 0.075);
                    (x, (k * x.powf(-0.3)).min(1.0))
                })
                .collect(),
            dashed,
        };
        let svg = render(
            "t",
            "FPIR",
            "FNIR",
            &[curve("frame", 0.2, true), curve("passage", 0.1, false)],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("passage") && svg.contains("frame") && svg.contains("FNIR"));
        assert!(svg.matches("<polyline").count() >= 2 || svg.matches("<path").count() >= 2);
        assert!(render("t", "x", "y", &[]).is_err());
    }
}
