//! A small line plot, as SVG ([`LinePlot::to_svg`]: title, axis titles, tick labels
//! and a legend, as text) or drawn by hand on an RGB raster ([`LinePlot::render`]:
//! axes and the minimum and maximum values in a built-in 3x5-pixel digit font, no
//! words). No font or plotting dependency.
//!
//! Series are coloured in order from [`PALETTE`] (blue, orange, green, red, purple,
//! ...), in both forms.
//!
//! ```
//! use gumbelgrad::io::{LinePlot, Series};
//! let losses: Vec<(f64, f64)> = (0..100).map(|t| (t as f64, 200.0 * (-0.03 * t as f64).exp() + 100.0)).collect();
//! let plot = LinePlot::new(480, 320)
//!     .title("Training loss")
//!     .x_label("step")
//!     .y_label("loss (nats)")
//!     .series(Series::new("train", losses));
//! let image = plot.render()?;
//! assert_eq!((image.width, image.height), (480, 320));
//! let svg = plot.to_svg()?;
//! assert!(svg.contains(">loss (nats)</text>") && svg.contains(">train</text>"));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::path::Path;

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::png::RgbImage;
use crate::io::svg::escape;

/// Colours given to series in order (the matplotlib "tab10" cycle).
pub const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

const BLACK: [u8; 3] = [0, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];
const GRID: [u8; 3] = [225, 225, 225];
/// Each font pixel becomes a `SCALE x SCALE` block.
const SCALE: i64 = 2;

/// One named line: `(x, y)` points joined in order. Non-finite points break the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// A name, shown in the SVG's legend.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from its points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }

    /// A series from y values at x = 0, 1, 2, ...
    pub fn from_values(name: impl Into<String>, values: &[f64]) -> Self {
        Self::new(
            name,
            values
                .iter()
                .enumerate()
                .map(|(i, &y)| (i as f64, y))
                .collect(),
        )
    }
}

/// A line plot of one or more series.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    width: usize,
    height: usize,
    series: Vec<Series>,
    title: String,
    x_label: String,
    y_label: String,
}

impl LinePlot {
    /// An empty plot of `width x height` pixels.
    pub fn new(width: usize, height: usize) -> Self {
        LinePlot {
            width,
            height,
            series: Vec::new(),
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
        }
    }

    /// The title above the plot (SVG only).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The horizontal axis' title, with its unit (SVG only).
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// The vertical axis' title, with its unit (SVG only).
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Adds a series (coloured `PALETTE[index % 6]`).
    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The ranges of the finite points, `((x_min, x_max), (y_min, y_max))`, each
    /// widened if it is a single value. Errors if there is no finite point.
    fn ranges(&self) -> Result<((f64, f64), (f64, f64))> {
        let finite: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if finite.is_empty() {
            return Err(Error::invalid_argument(
                "LinePlot::render",
                "no finite point to plot",
            ));
        }
        let range = |values: &mut dyn Iterator<Item = f64>| {
            let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            if high > low {
                (low, high)
            } else {
                let pad = low.abs().max(1.0) * 0.5;
                (low - pad, high + pad)
            }
        };
        Ok((
            range(&mut finite.iter().map(|p| p.0)),
            range(&mut finite.iter().map(|p| p.1)),
        ))
    }

    /// Draws the plot. Errors if it is too small to draw in or has no finite point.
    pub fn render(&self) -> Result<RgbImage> {
        let (left, right, top, bottom) = (8 + 7 * 4 * SCALE, 12, 12, 12 + 6 * SCALE);
        let (width, height) = (self.width as i64, self.height as i64);
        if width < left + right + 20 || height < top + bottom + 20 {
            return Err(Error::invalid_argument(
                "LinePlot::render",
                format!("a {}x{} plot is too small", self.width, self.height),
            ));
        }
        let ((x_min, x_max), (y_min, y_max)) = self.ranges()?;

        let mut image = RgbImage::new(self.width, self.height, WHITE);
        let (x0, x1, y0, y1) = (left, width - right, height - bottom, top);
        let to_pixel = |x: f64, y: f64| {
            let px = x0 as f64 + (x - x_min) / (x_max - x_min) * (x1 - x0) as f64;
            let py = y0 as f64 - (y - y_min) / (y_max - y_min) * (y0 - y1) as f64;
            (px.round() as i64, py.round() as i64)
        };

        // Light grid lines at the quarters, then the axes.
        for quarter in 1..4 {
            let gx = x0 + (x1 - x0) * quarter / 4;
            let gy = y0 - (y0 - y1) * quarter / 4;
            line(&mut image, (gx, y0), (gx, y1), GRID, 1);
            line(&mut image, (x0, gy), (x1, gy), GRID, 1);
        }
        line(&mut image, (x0, y0), (x1, y0), BLACK, 1);
        line(&mut image, (x0, y0), (x0, y1), BLACK, 1);

        // Tick marks and labels at both ends of both axes.
        for (y, value) in [(y0, y_min), (y1, y_max)] {
            line(&mut image, (x0 - 4, y), (x0, y), BLACK, 1);
            let text = format_tick(value);
            let text_width = text_width(&text);
            draw_text(&mut image, x0 - 6 - text_width, y - 5 * SCALE / 2, &text);
        }
        for (x, value, align_right) in [(x0, x_min, false), (x1, x_max, true)] {
            line(&mut image, (x, y0), (x, y0 + 4), BLACK, 1);
            let text = format_tick(value);
            let start = if align_right {
                x - text_width(&text)
            } else {
                x
            };
            draw_text(&mut image, start, y0 + 6, &text);
        }

        for (index, series) in self.series.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            let mut previous: Option<(i64, i64)> = None;
            for &(x, y) in &series.points {
                if !(x.is_finite() && y.is_finite()) {
                    previous = None;
                    continue;
                }
                let point = to_pixel(x, y);
                match previous {
                    Some(from) => line(&mut image, from, point, colour, 2),
                    None => line(&mut image, point, point, colour, 2),
                }
                previous = Some(point);
            }
        }
        Ok(image)
    }

    /// Renders and writes a PNG file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.render()?.save(path)
    }

    /// The plot as an SVG document: title, axis titles, about five labelled ticks
    /// per axis at round values, a light grid, and a legend naming each series in its
    /// colour. Errors if it is too small to draw in or has no finite point.
    pub fn to_svg(&self) -> Result<String> {
        let (left, right, top, bottom) = (80.0, 20.0, 40.0, 56.0);
        let legend_height = 18.0 * self.series.len() as f64 + 8.0;
        let (width, height) = (self.width as f64, self.height as f64);
        if width < left + right + 40.0 || height < top + bottom + legend_height + 40.0 {
            return Err(Error::invalid_argument(
                "LinePlot::to_svg",
                format!("a {}x{} plot is too small", self.width, self.height),
            ));
        }
        let ((x_min, x_max), (y_min, y_max)) = self.ranges()?;
        // The vertical axis widens to round ticks; the horizontal one (steps, epochs)
        // spans the data exactly, with the round ticks inside it.
        let y_ticks = nice_ticks(y_min, y_max);
        let (y_min, y_max) = (y_min.min(y_ticks[0]), y_max.max(y_ticks[y_ticks.len() - 1]));
        let slack = 1e-9 * (x_max - x_min);
        let x_ticks: Vec<f64> = nice_ticks(x_min, x_max)
            .into_iter()
            .filter(|&t| t >= x_min - slack && t <= x_max + slack)
            .collect();
        let (x0, x1) = (left, width - right);
        let (y0, y1) = (height - bottom - legend_height, top);
        let px = |x: f64| x0 + (x - x_min) / (x_max - x_min) * (x1 - x0);
        let py = |y: f64| y0 - (y - y_min) / (y_max - y_min) * (y0 - y1);
        let colour = |index: usize| {
            let [r, g, b] = PALETTE[index % PALETTE.len()];
            format!("#{r:02x}{g:02x}{b:02x}")
        };

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{width}" height="{height}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            (x0 + x1) / 2.0,
            escape(&self.title)
        );
        for &tick in &x_ticks {
            let x = px(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#e1e1e1"/><line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + 5.0,
                y0 + 18.0,
                format_tick(tick)
            );
        }
        for &tick in &y_ticks {
            let y = py(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#e1e1e1"/><line x1="{:.1}" y1="{y:.1}" x2="{x0:.1}" y2="{y:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 5.0,
                x0 - 8.0,
                y + 4.0,
                format_tick(tick)
            );
        }
        let _ = writeln!(
            svg,
            r#"<polyline points="{x0:.1},{y1:.1} {x0:.1},{y0:.1} {x1:.1},{y0:.1}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            y0 + 38.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            escape(&self.y_label)
        );
        for (index, series) in self.series.iter().enumerate() {
            // Non-finite points break the line into separate polylines.
            for run in series
                .points
                .split(|(x, y)| !(x.is_finite() && y.is_finite()))
                .filter(|run| !run.is_empty())
            {
                let points: Vec<String> = run
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                    points.join(" "),
                    colour(index)
                );
                if run.len() == 1 {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        px(run[0].0),
                        py(run[0].1),
                        colour(index)
                    );
                }
            }
            let y = height - legend_height + 18.0 * index as f64 + 6.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                x0 + 24.0,
                colour(index),
                x0 + 30.0,
                y + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        Ok(svg)
    }

    /// Writes [`to_svg`](Self::to_svg) to a file atomically.
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path, self.to_svg()?.as_bytes())
    }
}

/// About five round tick values (steps of 1, 2 or 5 times a power of ten) covering
/// `[low, high]`.
fn nice_ticks(low: f64, high: f64) -> Vec<f64> {
    let raw = (high - low) / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power);
    let first = (low / step).floor() as i64;
    let last = (high / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A short label for a tick value: up to 4 significant digits, scientific notation
/// for very large or very small magnitudes.
pub fn format_tick(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.1e}");
        return text.replace(".0e", "e");
    }
    let decimals = (3 - magnitude.log10().floor() as i64).clamp(0, 4) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A line of `thickness` pixels from `a` to `b` (Bresenham).
fn line(image: &mut RgbImage, a: (i64, i64), b: (i64, i64), colour: [u8; 3], thickness: i64) {
    let (mut x, mut y) = a;
    let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
    let (sx, sy) = ((b.0 - a.0).signum(), (b.1 - a.1).signum());
    let mut error = dx + dy;
    loop {
        for ox in 0..thickness {
            for oy in 0..thickness {
                image.put(x + ox, y + oy, colour);
            }
        }
        if (x, y) == b {
            break;
        }
        let doubled = 2 * error;
        if doubled >= dy {
            error += dy;
            x += sx;
        }
        if doubled <= dx {
            error += dx;
            y += sy;
        }
    }
}

/// 3x5 glyphs, one row of three bits per entry (bit 2 = left column).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => return None,
    })
}

/// Width in pixels of `text` drawn with [`draw_text`] (4 font columns a character).
fn text_width(text: &str) -> i64 {
    (text.chars().count() as i64 * 4 - 1) * SCALE
}

/// Draws `text` with its top-left corner at `(x, y)`; unknown characters are blanks.
fn draw_text(image: &mut RgbImage, x: i64, y: i64, text: &str) {
    for (index, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let left = x + index as i64 * 4 * SCALE;
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..3 {
                if bits & (0b100 >> column) != 0 {
                    for oy in 0..SCALE {
                        for ox in 0..SCALE {
                            image.put(
                                left + column * SCALE + ox,
                                y + row as i64 * SCALE + oy,
                                BLACK,
                            );
                        }
                    }
                }
            }
        }
    }
}
