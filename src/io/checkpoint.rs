//! Checkpoints: a named set of tensors plus a small metadata map, in one
//! safetensors file written atomically.
//!
//! Tensors hold model parameters and optimizer moments (see the naming in
//! [`safetensors`](super::safetensors)); the metadata holds scalars as strings. The
//! typed helpers store them so they read back *exactly*: integers in decimal, floats
//! as the hex of their bits, byte strings (a random generator's state) as hex, and
//! small `f64` tensors (an estimator's state) as the hex of their bits.
//!
//! ```
//! use gumbelgrad::io::Checkpoint;
//! use gumbelgrad::Tensor;
//! let mut checkpoint = Checkpoint::<f32>::new();
//! checkpoint.push("encoder.0.weight", Tensor::ones(2, 3));
//! checkpoint.set_u64("step", 1500);
//! checkpoint.set_f64("temperature", 0.1f64.exp());
//! checkpoint.set_bytes("rng", &[0xde, 0xad]);
//! let path = std::env::temp_dir().join(format!("gumbelgrad-ckpt-{}.safetensors", std::process::id()));
//! checkpoint.save(&path)?;
//! let back = Checkpoint::<f32>::load(&path)?;
//! assert_eq!(back.u64("step")?, 1500);
//! assert_eq!(back.f64("temperature")?, 0.1f64.exp());
//! assert_eq!(back.bytes("rng")?, vec![0xde, 0xad]);
//! assert_eq!(back.tensor("encoder.0.weight")?, &Tensor::ones(2, 3));
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), gumbelgrad::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::safetensors::SafetensorsFile;
use crate::tensor::Tensor;

/// Named tensors and string metadata, saved as one safetensors file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checkpoint<T: Float> {
    file: SafetensorsFile<T>,
}

impl<T: Float> Checkpoint<T> {
    /// An empty checkpoint.
    pub fn new() -> Self {
        Checkpoint {
            file: SafetensorsFile::default(),
        }
    }

    /// Adds a tensor (names must be unique when saving).
    pub fn push(&mut self, name: impl Into<String>, tensor: Tensor<T>) {
        self.file.tensors.push((name.into(), tensor));
    }

    /// Adds many tensors.
    pub fn extend(&mut self, tensors: impl IntoIterator<Item = (String, Tensor<T>)>) {
        self.file.tensors.extend(tensors);
    }

    /// All tensors, in order.
    pub fn tensors(&self) -> &[(String, Tensor<T>)] {
        &self.file.tensors
    }

    /// The tensor called `name`; errors naming it if absent.
    pub fn tensor(&self, name: &str) -> Result<&Tensor<T>> {
        self.file.get(name).ok_or_else(|| missing("tensor", name))
    }

    /// The metadata map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.file.metadata
    }

    /// Sets a metadata string.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.file.metadata.insert(key.into(), value.into());
    }

    /// A metadata string; errors naming the key if absent.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.file
            .metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| missing("metadata key", key))
    }

    /// Stores an integer.
    pub fn set_u64(&mut self, key: impl Into<String>, value: u64) {
        self.set(key, value.to_string());
    }

    /// Reads an integer stored with [`Checkpoint::set_u64`].
    pub fn u64(&self, key: &str) -> Result<u64> {
        let text = self.get(key)?;
        text.parse()
            .map_err(|_| bad_value(key, text, "an unsigned integer"))
    }

    /// Stores a float exactly, as the 16 hex digits of its bits.
    pub fn set_f64(&mut self, key: impl Into<String>, value: f64) {
        self.set(key, format!("{:016x}", value.to_bits()));
    }

    /// Reads a float stored with [`Checkpoint::set_f64`], bit for bit.
    pub fn f64(&self, key: &str) -> Result<f64> {
        let text = self.get(key)?;
        u64::from_str_radix(text, 16)
            .ok()
            .filter(|_| text.len() == 16)
            .map(f64::from_bits)
            .ok_or_else(|| bad_value(key, text, "16 hex digits (the bits of an f64)"))
    }

    /// Stores bytes as lowercase hex.
    pub fn set_bytes(&mut self, key: impl Into<String>, bytes: &[u8]) {
        self.set(key, hex_encode(bytes));
    }

    /// Reads bytes stored with [`Checkpoint::set_bytes`].
    pub fn bytes(&self, key: &str) -> Result<Vec<u8>> {
        let text = self.get(key)?;
        hex_decode(text).ok_or_else(|| bad_value(key, text, "hex bytes"))
    }

    /// Stores an `f64` tensor exactly in the metadata (whatever `T` is), as
    /// `"{rows}x{cols}:"` followed by 16 hex digits of the bits of each value: for
    /// state that must survive bit for bit in an `f32` checkpoint (an estimator's).
    pub fn set_f64_tensor(&mut self, key: impl Into<String>, tensor: &Tensor<f64>) {
        let mut text = format!("{}x{}:", tensor.rows(), tensor.cols());
        for x in tensor.as_slice() {
            text.push_str(&format!("{:016x}", x.to_bits()));
        }
        self.set(key, text);
    }

    /// Reads a tensor stored with [`Checkpoint::set_f64_tensor`], bit for bit.
    pub fn f64_tensor(&self, key: &str) -> Result<Tensor<f64>> {
        let text = self.get(key)?;
        let expected = "`{rows}x{cols}:` and 16 hex digits per value";
        let head: String = text.chars().take(40).collect();
        let bad = || bad_value(key, &head, expected);
        let (shape, digits) = text.split_once(':').ok_or_else(bad)?;
        let (rows, cols) = shape.split_once('x').ok_or_else(bad)?;
        let rows: usize = rows.parse().map_err(|_| bad())?;
        let cols: usize = cols.parse().map_err(|_| bad())?;
        let len = rows.checked_mul(cols).ok_or_else(bad)?;
        if Some(digits.len()) != len.checked_mul(16) || !digits.is_ascii() {
            return Err(bad());
        }
        let values = (0..len)
            .map(|i| {
                u64::from_str_radix(&digits[16 * i..16 * (i + 1)], 16)
                    .map(f64::from_bits)
                    .map_err(|_| bad())
            })
            .collect::<Result<Vec<f64>>>()?;
        Tensor::from_vec(rows, cols, values)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.file.save(path)
    }

    /// Reads a checkpoint.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Checkpoint {
            file: SafetensorsFile::load(path)?,
        })
    }
}

fn missing(what: &str, name: &str) -> Error {
    Error::invalid_argument(
        "Checkpoint",
        format!("the checkpoint has no {what} `{name}`"),
    )
}

fn bad_value(key: &str, text: &str, expected: &str) -> Error {
    Error::invalid_argument(
        "Checkpoint",
        format!("metadata `{key}` = `{text}` is not {expected}"),
    )
}

/// Bytes as lowercase hex, two digits a byte.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex_encode`]; `None` on odd length or a non-hex digit.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
