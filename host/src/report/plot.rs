//! Line plots as PNG files, with a system TrueType font for labels.

use std::{collections::BTreeMap, path::Path, sync::OnceLock};

use plotters::{
    prelude::*,
    style::{register_font, FontStyle},
};

use super::Size;
use crate::error::{Error, Result};

/// Common places of a sans-serif TrueType font (Debian's fonts-dejavu-core first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Registers a font for plot labels once per process.
pub fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = std::env::var("NEURON_REPORT_FONT").ok().into_iter().chain(FONTS.iter().map(|s| s.to_string())).find(|p| Path::new(p).is_file());
        let Some(path) = path else {
            return Err("no TrueType font found for report labels: install one (Debian: `sudo apt-get install fonts-dejavu-core`) or set NEURON_REPORT_FONT to a .ttf file".into());
        };
        let bytes: &'static [u8] = Box::leak(std::fs::read(&path).map_err(|e| format!("cannot read font {path}: {e}"))?.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{path} is not a usable TrueType font"))?;
        Ok(())
    })
    .clone()
    .map_err(Error::Config)
}

/// A high-contrast categorical palette (the "tab10" colours).
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Averages runs of points so a series has at most `max` of them.
fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            (c.iter().map(|p| p.0).sum::<f64>() / c.len() as f64, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64)
        })
        .collect()
}

/// One PNG: a line (with markers when short) per series, a legend, labelled axes.
pub fn lines(
    path: &Path,
    size: Size,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
) -> Result<()> {
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (size.width, size.height)).into_drawing_area();
        root.fill(&WHITE)?;
        let all: Vec<(f64, f64)> = series.values().flatten().copied().collect();
        let (mut x0, mut x1) =
            all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) =
            all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if x1 <= x0 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        y0 -= pad;
        y1 += pad;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 28))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        // Steps and epochs are whole numbers: no fractional ticks.
        let distinct_x = {
            let mut xs: Vec<i64> = all.iter().map(|p| p.0.round() as i64).collect();
            xs.sort_unstable();
            xs.dedup();
            xs.len()
        };
        chart
            .configure_mesh()
            .x_labels(distinct_x.clamp(2, 12))
            .x_label_formatter(&|x| format!("{}", x.round() as i64))
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            let color = RGBColor(r, g, b).to_rgba();
            let pts = downsample(points, 4000);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            if pts.len() <= 60 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Config(format!("cannot draw {}: {e}", path.display())))
}
