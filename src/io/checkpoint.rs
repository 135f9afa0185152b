//! Checkpoints: a named set of tensors plus a small metadata map, in one
//! safetensors file written atomically.
//!
//! Tensors hold model parameters and optimizer moments (see the naming in
//! [`safetensors`](super::safetensors)); the metadata holds scalars as strings. The
//! typed helpers store them so they read back *exactly*: integers in decimal, floats
//! as the hex of their bits, byte strings (a random generator's state) as hex.
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
