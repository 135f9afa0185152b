//! SVG figures with text: captioned image grids, and the text helpers that
//! [`LinePlot::to_svg`](crate::io::LinePlot::to_svg) shares.
//!
//! An image grid (a PNG made by [`image_grid`](crate::io::image_grid)) is embedded in
//! the SVG as a data URI and framed with a title, a caption, and a label for each row
//! and column, so the figure says what it shows without the program that drew it.
//!
//! ```
//! use gumbelgrad::io::{GridFigure, image_grid};
//! use gumbelgrad::Tensor;
//! let digits = Tensor::<f32>::zeros(4, 6);
//! let grid = image_grid(&digits, 2, 3, 2, 1)?;
//! let svg = GridFigure::new(grid, 2, 3, 1)
//!     .title("Two by two")
//!     .row_labels(["first", "second"])
//!     .column_labels(["left", "right"])
//!     .caption("Each cell is 2x3 pixels.")
//!     .to_svg()?;
//! assert!(svg.contains(">second</text>") && svg.contains("data:image/png;base64,"));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::io::png::GrayImage;

/// `text` with `&`, `<`, `>` and `"` escaped for SVG text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding), for data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An image grid with a title, row and column labels and a caption, as SVG.
#[derive(Debug, Clone)]
pub struct GridFigure {
    image: GrayImage,
    cell_height: usize,
    cell_width: usize,
    padding: usize,
    scale: usize,
    title: String,
    caption: Vec<String>,
    row_labels: Vec<String>,
    column_labels: Vec<String>,
}

impl GridFigure {
    /// Frames `image`, a grid of `cell_height x cell_width` cells with `padding`
    /// pixels around and between them (the arguments given to
    /// [`image_grid`](crate::io::image_grid)). Pixels are drawn 2x2 screen pixels each.
    pub fn new(image: GrayImage, cell_height: usize, cell_width: usize, padding: usize) -> Self {
        GridFigure {
            image,
            cell_height,
            cell_width,
            padding,
            scale: 2,
            title: String::new(),
            caption: Vec::new(),
            row_labels: Vec::new(),
            column_labels: Vec::new(),
        }
    }

    /// The title above the grid.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// A caption below the grid; each call adds a line.
    pub fn caption(mut self, line: impl Into<String>) -> Self {
        self.caption.push(line.into());
        self
    }

    /// A label left of each row of cells, top to bottom.
    pub fn row_labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.row_labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// A label above each column of cells, left to right.
    pub fn column_labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.column_labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Screen pixels per image pixel (default 2).
    pub fn scale(mut self, scale: usize) -> Self {
        self.scale = scale.max(1);
        self
    }

    /// The SVG document.
    pub fn to_svg(&self) -> Result<String> {
        const LINE: usize = 18;
        let png = self.image.to_png()?;
        let s = self.scale;
        let label_width = self
            .row_labels
            .iter()
            .map(|l| l.chars().count() * 7 + 12)
            .max()
            .unwrap_or(0);
        let left = 10 + label_width;
        let mut top = 10;
        if !self.title.is_empty() {
            top += 24;
        }
        if !self.column_labels.is_empty() {
            top += LINE;
        }
        let (grid_width, grid_height) = (self.image.width * s, self.image.height * s);
        let width = (left + grid_width + 10).max(
            self.caption
                .iter()
                .chain(std::iter::once(&self.title))
                .map(|l| l.chars().count() * 7 + 20)
                .max()
                .unwrap_or(0),
        );
        let height = top + grid_height + 10 + self.caption.len() * LINE;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{width}" height="{height}" fill="white"/>"#
        );
        if !self.title.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
                width / 2,
                escape(&self.title)
            );
        }
        let cell = |index: usize, size: usize| {
            (self.padding + index * (size + self.padding) + size / 2) * s
        };
        for (column, label) in self.column_labels.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                left + cell(column, self.cell_width),
                top - 5,
                escape(label)
            );
        }
        for (row, label) in self.row_labels.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
                left - 8,
                top + cell(row, self.cell_height),
                escape(label)
            );
        }
        let _ = writeln!(
            svg,
            r#"<image x="{left}" y="{top}" width="{grid_width}" height="{grid_height}" style="image-rendering:pixelated" href="data:image/png;base64,{}"/>"#,
            base64(&png)
        );
        for (index, line) in self.caption.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text x="10" y="{}">{}</text>"#,
                top + grid_height + 10 + (index + 1) * LINE - 4,
                escape(line)
            );
        }
        svg.push_str("</svg>\n");
        Ok(svg)
    }

    /// Writes the SVG file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path, self.to_svg()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn escape_makes_markup_text() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
