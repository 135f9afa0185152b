//! Files in and out: atomic writes, safetensors weights and checkpoints, JSON, PNG
//! image grids, SVG line plots and captioned figures, a progress bar.
//!
//! Every file this crate writes goes through [`atomic::write_atomic`]: a crash or a
//! full disk leaves either the old file or the new one, never half of one.
//! This module uses only [`Tensor`](crate::Tensor) and the error type; it knows nothing
//! of models or optimizers.

pub mod atomic;
pub mod checkpoint;
pub mod json;
pub mod plot;
pub mod png;
pub mod progress;
pub mod safetensors;
pub mod svg;

pub use atomic::{write_atomic, write_atomic_with};
pub use checkpoint::Checkpoint;
pub use plot::{LinePlot, Series};
pub use png::{GrayImage, RgbImage, image_grid, save_image_grid};
pub use progress::ProgressBar;
pub use safetensors::{Dtype, SafetensorsFile};
pub use svg::GridFigure;
