//! Minimal safetensors access for what `burn::store` does not offer: writing tensors one at a
//! time (files larger than memory, the prompt cache) and reading byte ranges of one tensor
//! (embedding rows) without mapping the file. Headers are parsed and checked by
//! [`sf_device::checkpoint::read_safetensors_header`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sf_device::checkpoint::{dtype_bits, read_safetensors_header};

use crate::TextError;

/// Where one tensor's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Safetensors dtype name (`F32`, `BF16`, `F16`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Absolute file offset of the first byte.
    pub start: u64,
    /// Byte length.
    pub len: u64,
}

impl TensorEntry {
    /// Bytes per element of a float dtype, `None` for others.
    pub fn float_size(&self) -> Option<u64> {
        match self.dtype.as_str() {
            "F32" => Some(4),
            "F16" | "BF16" => Some(2),
            _ => None,
        }
    }
}

fn load_error(path: &Path, message: impl Into<String>) -> TextError {
    TextError::Load {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The tensors of a safetensors file by name, and its `__metadata__`.
pub type Entries = (BTreeMap<String, TensorEntry>, BTreeMap<String, String>);

/// The tensors of a safetensors file and its `__metadata__` (data is not read). The header is
/// checked completely first ([`read_safetensors_header`]): every entry lies inside the file and
/// holds exactly the bytes its dtype and shape need.
pub fn entries(path: &Path) -> Result<Entries, TextError> {
    let header = read_safetensors_header(path).map_err(|e| load_error(&e.path, e.message))?;
    let tensors = header
        .tensors
        .into_iter()
        .map(|t| {
            let [begin, end] = t.data_offsets;
            let entry = TensorEntry {
                dtype: t.dtype,
                shape: t.shape,
                start: header.data_start + begin,
                len: end - begin,
            };
            (t.name, entry)
        })
        .collect();
    Ok((tensors, header.metadata))
}

/// Reads `len` bytes at absolute offset `start`; a range past the end of the file is an error
/// (found before anything is allocated).
pub fn read_range(path: &Path, start: u64, len: u64) -> Result<Vec<u8>, TextError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| load_error(path, e.to_string()))?;
    let file_len = file
        .metadata()
        .map_err(|e| load_error(path, e.to_string()))?
        .len();
    if start.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(load_error(
            path,
            format!(
                "the file is truncated: bytes {start}..{} are past its end ({file_len} bytes)",
                start.saturating_add(len)
            ),
        ));
    }
    file.seek(SeekFrom::Start(start))
        .map_err(|e| load_error(path, e.to_string()))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| load_error(path, format!("the file is truncated ({e})")))?;
    Ok(bytes)
}

/// Little-endian float bytes of `dtype` (`F32`, `F16`, `BF16`) as f32 values.
pub fn floats_to_f32(dtype: &str, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        "F32" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        "F16" => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        "BF16" => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Writes a safetensors file one tensor at a time, in the order declared: the header is written
/// first from the declared names, dtypes and shapes, then [`SafetensorsWriter::write`] appends
/// each tensor's little-endian bytes.
pub struct SafetensorsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    pending: std::vec::IntoIter<(String, u64)>,
}

impl SafetensorsWriter {
    /// Creates `path` for `tensors` (`name`, dtype name, shape), with string metadata.
    pub fn create(
        path: &Path,
        tensors: &[(String, &str, Vec<usize>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self, TextError> {
        let io = |e: std::io::Error| load_error(path, e.to_string());
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), serde_json::json!(metadata));
        }
        let mut offset = 0u64;
        let mut pending = Vec::new();
        for (name, dtype, shape) in tensors {
            let bits = dtype_bits(dtype)
                .filter(|b| b % 8 == 0)
                .ok_or_else(|| load_error(path, format!("'{name}': unknown dtype '{dtype}'")))?;
            let len = shape
                .iter()
                .try_fold(bits / 8, |n, &d| n.checked_mul(d as u64))
                .and_then(|len| offset.checked_add(len).map(|_| len))
                .ok_or_else(|| {
                    load_error(path, format!("'{name}': shape {shape:?} is too large"))
                })?;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
            );
            pending.push((name.clone(), len));
            offset += len;
        }
        let mut json = serde_json::to_vec(&header).map_err(|e| load_error(path, e.to_string()))?;
        // Pad the header with spaces to 8 bytes, as the reference writer does.
        json.resize(json.len().div_ceil(8) * 8, b' ');
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        out.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(SafetensorsWriter {
            path: path.to_path_buf(),
            out,
            pending: pending.into_iter(),
        })
    }

    /// Appends the next declared tensor's bytes.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), TextError> {
        self.write_chunks(name, bytes.len() as u64, |out| out.write_all(bytes))
    }

    /// Appends the next declared tensor, produced by `fill` (which must write exactly `len`
    /// bytes): lets a caller stream tensors larger than memory.
    pub fn write_chunks(
        &mut self,
        name: &str,
        len: u64,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), TextError> {
        let (expected, want) = self
            .pending
            .next()
            .ok_or_else(|| load_error(&self.path, format!("'{name}' was not declared")))?;
        if expected != name || want != len {
            return Err(load_error(
                &self.path,
                format!("expected '{expected}' ({want} bytes), got '{name}' ({len} bytes)"),
            ));
        }
        fill(&mut self.out).map_err(|e| load_error(&self.path, e.to_string()))
    }

    /// Flushes the file; every declared tensor must have been written.
    pub fn finish(mut self) -> Result<(), TextError> {
        if let Some((name, _)) = self.pending.next() {
            return Err(load_error(&self.path, format!("'{name}' was not written")));
        }
        self.out
            .flush()
            .map_err(|e| load_error(&self.path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("sf-text-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let tensors = vec![
            ("x".to_string(), "F32", vec![2, 2]),
            ("y".to_string(), "BF16", vec![3]),
        ];
        let mut w = SafetensorsWriter::create(&path, &tensors, &meta).unwrap();
        let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(w.write("y", &x).is_err());
        let mut w = SafetensorsWriter::create(&path, &tensors, &meta).unwrap();
        w.write("x", &x).unwrap();
        let y: Vec<u8> = [0.5f32, -1.0, 8.0]
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        w.write("y", &y).unwrap();
        w.finish().unwrap();

        let (entries, metadata) = entries(&path).unwrap();
        assert_eq!(metadata, meta);
        let e = &entries["y"];
        assert_eq!(
            (e.shape.clone(), e.len, e.float_size()),
            (vec![3], 6, Some(2))
        );
        let bytes = read_range(&path, e.start + 2, 4).unwrap();
        assert_eq!(floats_to_f32(&e.dtype, &bytes).unwrap(), [-1.0, 8.0]);
        let e = &entries["x"];
        let all = read_range(&path, e.start, e.len).unwrap();
        assert_eq!(floats_to_f32("F32", &all).unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert!(read_range(&path, e.start, 1 << 20).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
