//! PNG output: grayscale image grids (digits, reconstructions, samples) and RGB
//! rasters (plots), encoded with the `png` crate and written atomically.
//!
//! ```
//! use gumbelgrad::io::image_grid;
//! use gumbelgrad::Tensor;
//! // three 28x28 images, one per row of the tensor
//! let images = Tensor::<f32>::from_vec(3, 784, (0..3 * 784).map(|i| (i % 784) as f32 / 784.0).collect())?;
//! let grid = image_grid(&images, 28, 28, 2, 1)?;
//! // two columns, two rows of cells, 1-pixel padding around and between cells
//! assert_eq!((grid.width, grid.height), (2 * 28 + 3, 2 * 28 + 3));
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::atomic::write_atomic;
use crate::tensor::Tensor;

/// Gray level of the padding between cells (mid-gray, so black and white digits both
/// stand out from it).
pub const PADDING_GRAY: u8 = 128;

/// An 8-bit grayscale raster, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` gray levels, 0 black to 255 white.
    pub pixels: Vec<u8>,
}

/// An 8-bit RGB raster, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` pixels, three bytes each.
    pub pixels: Vec<[u8; 3]>,
}

impl GrayImage {
    /// Encodes as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode(
            self.width,
            self.height,
            png::ColorType::Grayscale,
            &self.pixels,
        )
    }

    /// Writes a PNG file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_png()?)
    }
}

impl RgbImage {
    /// A `width x height` image filled with one colour.
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        RgbImage {
            width,
            height,
            pixels: vec![fill; width * height],
        }
    }

    /// Sets a pixel; coordinates outside the image are ignored (clipping).
    pub fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    /// The pixel at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        self.pixels[y * self.width + x]
    }

    /// Encodes as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let flat: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        encode(self.width, self.height, png::ColorType::Rgb, &flat)
    }

    /// Writes a PNG file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_png()?)
    }
}

fn encode(width: usize, height: usize, colour: png::ColorType, data: &[u8]) -> Result<Vec<u8>> {
    let fail = |message: String| Error::invalid_argument("png", message);
    if width == 0 || height == 0 || width > u32::MAX as usize || height > u32::MAX as usize {
        return Err(fail(format!("cannot encode a {width}x{height} image")));
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    writer
        .write_image_data(data)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Lays out the rows of `images` (each one `height * width` values in `[0, 1]`,
/// 1 = white) as a grid with `columns` cells per row and `padding` gray pixels around
/// and between cells. Values are clamped to `[0, 1]`; NaN is an error.
pub fn image_grid<T: Float>(
    images: &Tensor<T>,
    height: usize,
    width: usize,
    columns: usize,
    padding: usize,
) -> Result<GrayImage> {
    let op = "image_grid";
    if height == 0 || width == 0 || columns == 0 {
        return Err(Error::invalid_argument(
            op,
            "height, width and columns must be > 0",
        ));
    }
    if images.cols() != height * width {
        return Err(Error::invalid_argument(
            op,
            format!(
                "each image needs {height}x{width} = {} values, the tensor has {} columns",
                height * width,
                images.cols()
            ),
        ));
    }
    if images.rows() == 0 {
        return Err(Error::invalid_argument(op, "no images to lay out"));
    }
    if let Some(index) = images.as_slice().iter().position(|x| x.to_f64().is_nan()) {
        return Err(Error::NonFiniteInput {
            what: format!(
                "image {} pixel {} passed to image_grid",
                index / images.cols(),
                index % images.cols()
            ),
        });
    }
    let columns = columns.min(images.rows());
    let rows = images.rows().div_ceil(columns);
    let grid_width = columns * (width + padding) + padding;
    let grid_height = rows * (height + padding) + padding;
    let mut pixels = vec![PADDING_GRAY; grid_width * grid_height];
    for index in 0..images.rows() {
        let left = padding + (index % columns) * (width + padding);
        let top = padding + (index / columns) * (height + padding);
        for (y, line) in images.row(index).chunks_exact(width).enumerate() {
            let start = (top + y) * grid_width + left;
            for (pixel, &value) in pixels[start..start + width].iter_mut().zip(line) {
                *pixel = (value.to_f64().clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Ok(GrayImage {
        width: grid_width,
        height: grid_height,
        pixels,
    })
}

/// [`image_grid`] then [`GrayImage::save`]: one PNG file, written atomically.
pub fn save_image_grid<T: Float>(
    path: impl AsRef<Path>,
    images: &Tensor<T>,
    height: usize,
    width: usize,
    columns: usize,
    padding: usize,
) -> Result<()> {
    image_grid(images, height, width, columns, padding)?.save(path)
}
