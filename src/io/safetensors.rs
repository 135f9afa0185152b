//! The safetensors format, written and read by hand.
//!
//! A safetensors file (<https://github.com/huggingface/safetensors>) is:
//!
//! ```text
//! [8 bytes]  N, the header length, unsigned 64-bit little-endian
//! [N bytes]  a UTF-8 JSON object (this writer pads it with spaces to a multiple of 8,
//!            as the reference implementation does, so the data is 8-byte aligned):
//!            { "__metadata__": { "key": "value", ... },          (optional, strings only)
//!              "<tensor name>": { "dtype": "F32" | "F64",
//!                                 "shape": [rows, cols],
//!                                 "data_offsets": [begin, end] },  (into the data section)
//!              ... }
//! [rest]     the data section: each tensor's elements, row-major, little-endian,
//!            back to back with no gaps
//! ```
//!
//! So `safetensors.torch.load_file("model.safetensors")` in Python gives a dict of
//! tensors with the names and 2-D shapes written here.
//!
//! # Tensor names written by gumbelgrad
//!
//! Parameters are named after their place in the model, `"<module>.<layer>.<role>"`:
//! an `nn::Mlp` called `encoder` has `encoder.0.weight`,
//! `encoder.0.bias`, `encoder.1.weight`, ... A weight is stored `[in, out]` (gumbelgrad
//! computes `x W`), the *transpose* of PyTorch's `nn.Linear.weight` `[out, in]`; a
//! bias is `[1, out]` (PyTorch's is `[out]`: take `b[0]`). A trainer's checkpoint
//! prefixes the weights with `model.`, adds the optimiser's moments under `optim.`
//! (`optim.adam.m.<parameter>`) and keeps scalars, the estimator's state and a JSON
//! description of the model in `__metadata__` (see `models::training`).
//!
//! # Reading
//!
//! The reader checks everything the reference implementation checks: the header fits
//! in the file, is valid JSON, every entry has a known dtype, a shape and offsets
//! matching `elements * dtype size`, and the entries tile the data section exactly
//! (no gaps, no overlaps, nothing left over). Any violation is an
//! [`Error::BadFile`] naming the file and the problem. Tensors of rank 0 and 1 read
//! as `[1, 1]` and `[1, n]`; rank > 2 and dtypes other than F32/F64 are rejected.
//!
//! # Checked against the reference implementation
//!
//! Files from this writer (a 784-512-256-200 MLP in F32 with metadata containing
//! quotes, backslashes and non-ASCII text; an F64 file with an empty `[0, 3]` tensor)
//! were read by Python `safetensors` 0.8.0 (`safetensors.numpy.load_file`, the same
//! Rust parser `safetensors.torch.load_file` uses) with identical names, shapes,
//! values and metadata, and a file written by its `save_file` (F32 and F64, shapes
//! `[3]`, `[2, 2]` and `[]`) was read back here. The script is
//! `docs/interop/check_safetensors.py`; see `docs/nn-and-data.md`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::atomic::write_atomic;
use crate::io::json::Json;
use crate::tensor::Tensor;

/// Largest header accepted (the reference reader's limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Element types this module reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit IEEE float, `"F32"`.
    F32,
    /// 64-bit IEEE float, `"F64"`.
    F64,
}

impl Dtype {
    /// The header spelling, `"F32"` or `"F64"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// The dtype that stores `T` exactly.
    pub fn of<T: Float>() -> Dtype {
        if std::mem::size_of::<T>() == 4 {
            Dtype::F32
        } else {
            Dtype::F64
        }
    }
}

/// The contents of a safetensors file: named tensors (in data order) and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsFile<T: Float> {
    /// `(name, tensor)` pairs.
    pub tensors: Vec<(String, Tensor<T>)>,
    /// The `__metadata__` map (empty if absent).
    pub metadata: BTreeMap<String, String>,
}

impl<T: Float> Default for SafetensorsFile<T> {
    fn default() -> Self {
        SafetensorsFile {
            tensors: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }
}

impl<T: Float> SafetensorsFile<T> {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Encodes as safetensors bytes, every tensor with `T`'s dtype, in the given order.
    /// Errors on an empty or duplicated name, or a name `"__metadata__"`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let dtype = Dtype::of::<T>();
        let mut header = Vec::new();
        if !self.metadata.is_empty() {
            let map = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect();
            header.push(("__metadata__".to_string(), Json::Object(map)));
        }
        let mut offset = 0u64;
        for (index, (name, tensor)) in self.tensors.iter().enumerate() {
            if name.is_empty()
                || name == "__metadata__"
                || self.tensors[..index].iter().any(|(n, _)| n == name)
            {
                return Err(Error::invalid_argument(
                    "safetensors",
                    format!("tensor name `{name}` is empty, reserved or repeated"),
                ));
            }
            let end = offset + (tensor.len() * dtype.size()) as u64;
            let entry = Json::Object(vec![
                ("dtype".to_string(), Json::String(dtype.name().to_string())),
                (
                    "shape".to_string(),
                    Json::Array(vec![
                        Json::from_u64(tensor.rows() as u64),
                        Json::from_u64(tensor.cols() as u64),
                    ]),
                ),
                (
                    "data_offsets".to_string(),
                    Json::Array(vec![Json::from_u64(offset), Json::from_u64(end)]),
                ),
            ]);
            header.push((name.clone(), entry));
            offset = end;
        }
        let mut header = Json::Object(header).to_string().into_bytes();
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let mut bytes = Vec::with_capacity(8 + header.len() + offset as usize);
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        for (_, tensor) in &self.tensors {
            for &x in tensor.as_slice() {
                match dtype {
                    Dtype::F32 => bytes.extend_from_slice(&(x.to_f64() as f32).to_le_bytes()),
                    Dtype::F64 => bytes.extend_from_slice(&x.to_f64().to_le_bytes()),
                }
            }
        }
        Ok(bytes)
    }

    /// Writes the file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a file; F32 and F64 tensors are converted to `T` (exactly, except F64
    /// read as `f32`, which rounds).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes safetensors bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let bad = |message: String| Error::bad_file(path.as_ref(), message);
        if bytes.len() < 8 {
            return Err(bad(format!(
                "not a safetensors file: {} bytes, shorter than the 8-byte header length",
                bytes.len()
            )));
        }
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if header_len > MAX_HEADER_BYTES || 8 + header_len > bytes.len() as u64 {
            return Err(bad(format!(
                "header length {header_len} does not fit in a file of {} bytes \
                 (truncated, or not a safetensors file)",
                bytes.len()
            )));
        }
        let header_end = 8 + header_len as usize;
        let text = std::str::from_utf8(&bytes[8..header_end])
            .map_err(|_| bad("header is not UTF-8".to_string()))?;
        let header = Json::parse(text).map_err(|e| bad(format!("header: {e}")))?;
        let members = header
            .as_object()
            .ok_or_else(|| bad("header is not a JSON object".to_string()))?;
        let data = &bytes[header_end..];

        let mut file = SafetensorsFile::default();
        let mut spans = Vec::new();
        for (name, entry) in members {
            if name == "__metadata__" {
                let map = entry
                    .as_object()
                    .ok_or_else(|| bad("__metadata__ is not an object".to_string()))?;
                for (key, value) in map {
                    let value = value.as_str().ok_or_else(|| {
                        bad(format!("__metadata__ value of `{key}` is not a string"))
                    })?;
                    file.metadata.insert(key.clone(), value.to_string());
                }
                continue;
            }
            if file.tensors.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("tensor `{name}` appears twice")));
            }
            let (tensor, begin, end) = read_entry(name, entry, data).map_err(bad)?;
            spans.push((begin, end, name.clone()));
            file.tensors.push((name.clone(), tensor));
        }
        // The tensors must tile the data section exactly.
        spans.sort();
        let mut expected = 0;
        for (begin, end, name) in &spans {
            if *begin != expected {
                return Err(bad(format!(
                    "tensor `{name}` starts at data byte {begin}, expected {expected} \
                     (gap or overlap between tensors)"
                )));
            }
            expected = *end;
        }
        if expected != data.len() {
            return Err(bad(format!(
                "the tensors cover {expected} data bytes but the file has {} \
                 (truncated, or trailing bytes)",
                data.len()
            )));
        }
        // Present the tensors in data order.
        let order: Vec<&String> = spans.iter().map(|(_, _, n)| n).collect();
        file.tensors
            .sort_by_key(|(n, _)| order.iter().position(|o| *o == n));
        Ok(file)
    }
}

/// Parses one tensor entry and copies its data out.
fn read_entry<T: Float>(
    name: &str,
    entry: &Json,
    data: &[u8],
) -> std::result::Result<(Tensor<T>, usize, usize), String> {
    let dtype = match entry.get("dtype").and_then(Json::as_str) {
        Some("F32") => Dtype::F32,
        Some("F64") => Dtype::F64,
        Some(other) => {
            return Err(format!(
                "tensor `{name}` has dtype {other}; only F32 and F64 are supported"
            ));
        }
        None => return Err(format!("tensor `{name}` has no dtype")),
    };
    let shape: Vec<usize> = entry
        .get("shape")
        .and_then(Json::as_array)
        .and_then(|dims| {
            dims.iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect()
        })
        .ok_or_else(|| format!("tensor `{name}` has no valid shape"))?;
    let (rows, cols) = match shape[..] {
        [] => (1, 1),
        [cols] => (1, cols),
        [rows, cols] => (rows, cols),
        _ => {
            return Err(format!(
                "tensor `{name}` has shape {shape:?}; only ranks 0 to 2 are supported"
            ));
        }
    };
    let offsets: Vec<u64> = entry
        .get("data_offsets")
        .and_then(Json::as_array)
        .and_then(|o| o.iter().map(Json::as_u64).collect())
        .filter(|o: &Vec<u64>| o.len() == 2)
        .ok_or_else(|| format!("tensor `{name}` has no valid data_offsets"))?;
    let (begin, end) = (offsets[0], offsets[1]);
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| format!("tensor `{name}`: shape {shape:?} is too large"))?;
    if end < begin || end - begin != expected as u64 {
        return Err(format!(
            "tensor `{name}`: data_offsets [{begin}, {end}] do not hold {rows}x{cols} {} \
             elements ({expected} bytes)",
            dtype.name()
        ));
    }
    if end > data.len() as u64 {
        return Err(format!(
            "tensor `{name}` ends at data byte {end} but the data section has only {} bytes \
             (truncated file)",
            data.len()
        ));
    }
    let raw = &data[begin as usize..end as usize];
    let values: Vec<T> = match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| T::from_f64(f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| T::from_f64(f64::from_le_bytes(b.try_into().expect("8 bytes"))))
            .collect(),
    };
    let tensor = Tensor::from_vec(rows, cols, values).map_err(|e| e.to_string())?;
    Ok((tensor, begin as usize, end as usize))
}
