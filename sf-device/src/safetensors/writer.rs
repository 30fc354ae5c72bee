//! A safetensors writer that streams one tensor at a time, so files larger than memory (the
//! real-size umT5 benchmark) and small ones (the prompt cache, test checkpoints) are written the
//! same way.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::dtype_bits;

/// A safetensors file that cannot be written as asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// Writes a safetensors file one tensor at a time, in the order declared: the header is written
/// first from the declared names, dtypes and shapes, then [`Writer::write`] appends each
/// tensor's little-endian bytes.
pub struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    pending: std::vec::IntoIter<(String, u64)>,
}

impl Writer {
    /// Creates `path` for `tensors` (`name`, dtype name, shape), with string metadata.
    pub fn create(
        path: &Path,
        tensors: &[(String, &str, Vec<usize>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, WriteError> {
        let err = |message: String| WriteError {
            path: path.to_path_buf(),
            message,
        };
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), serde_json::json!(metadata));
        }
        let mut offset = 0u64;
        let mut pending = Vec::new();
        for (name, dtype, shape) in tensors {
            let bits = dtype_bits(dtype)
                .filter(|b| b % 8 == 0)
                .ok_or_else(|| err(format!("'{name}': unknown dtype '{dtype}'")))?;
            let len = shape
                .iter()
                .try_fold(bits / 8, |n, &d| n.checked_mul(d as u64))
                .and_then(|len| offset.checked_add(len).map(|_| len))
                .ok_or_else(|| err(format!("'{name}': shape {shape:?} is too large")))?;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
            );
            pending.push((name.clone(), len));
            offset += len;
        }
        let mut json = serde_json::to_vec(&header).map_err(|e| err(e.to_string()))?;
        // Pad the header with spaces to 8 bytes, as the reference writer does.
        json.resize(json.len().div_ceil(8) * 8, b' ');
        let io = |e: std::io::Error| err(e.to_string());
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        out.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(Writer {
            path: path.to_path_buf(),
            out,
            pending: pending.into_iter(),
        })
    }

    fn error(&self, message: String) -> WriteError {
        WriteError {
            path: self.path.clone(),
            message,
        }
    }

    /// Appends the next declared tensor's bytes.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        self.write_chunks(name, bytes.len() as u64, |out| out.write_all(bytes))
    }

    /// Appends the next declared tensor, produced by `fill` (which must write exactly `len`
    /// bytes): lets a caller stream tensors larger than memory.
    pub fn write_chunks(
        &mut self,
        name: &str,
        len: u64,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), WriteError> {
        let Some((expected, want)) = self.pending.next() else {
            return Err(self.error(format!("'{name}' was not declared")));
        };
        if expected != name || want != len {
            return Err(self.error(format!(
                "expected '{expected}' ({want} bytes), got '{name}' ({len} bytes)"
            )));
        }
        fill(&mut self.out).map_err(|e| self.error(e.to_string()))
    }

    /// Flushes the file; every declared tensor must have been written.
    pub fn finish(mut self) -> Result<(), WriteError> {
        if let Some((name, _)) = self.pending.next() {
            return Err(self.error(format!("'{name}' was not written")));
        }
        self.out.flush().map_err(|e| self.error(e.to_string()))
    }
}
