//! The project's one way into safetensors files outside `burn::store` (which loads parameters
//! into modules): the checked header ([`read_header`], [`parse`]), tensors by name with their
//! absolute offsets ([`Header::tensor`], [`Header::start`]), byte-range reads ([`read_range`],
//! for embedding rows and the prompt cache) and a writer that streams one tensor at a time
//! ([`Writer`]). The checkpoint key listing, the fixture reader, the umT5 loaders and the prompt
//! cache all read through here.

mod header;
mod writer;

pub use header::{Header, HeaderTensor, MAX_HEADER_BYTES, MAX_RANK, dtype_bits, parse_header};
pub use writer::{WriteError, Writer};

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::checkpoint::CheckpointError;

/// Reads and checks the header of the safetensors file at `path` (see [`parse_header`]) without
/// reading the tensors. Allocates at most the header's length (bounded by the file's size) plus
/// the parsed entries.
pub fn read_header(path: &Path) -> Result<Header, CheckpointError> {
    let err = |message: String| CheckpointError::read(path, message);
    let not_st = |message: String| err(format!("not a safetensors file ({message})"));
    let mut file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let file_len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| not_st(format!("{e}; the file has {file_len} bytes")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(not_st(format!(
            "header length {n} does not fit a file of {file_len} bytes; is it truncated?"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| not_st(e.to_string()))?;
    parse_header(&header, 8 + n, file_len - 8 - n).map_err(err)
}

/// Parses and checks a whole safetensors file held in memory (see [`parse_header`]).
pub fn parse(bytes: &[u8]) -> Result<Header, String> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!(
            "not a safetensors file ({} bytes, shorter than the 8-byte header length)",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(*len);
    if n > MAX_HEADER_BYTES || n > rest.len() as u64 {
        return Err(format!(
            "not a safetensors file (header length {n} does not fit a file of {} bytes; is it \
             truncated?)",
            bytes.len()
        ));
    }
    let (header, data) = rest.split_at(n as usize);
    parse_header(header, 8 + n, data.len() as u64)
}

/// Reads `len` bytes at absolute offset `start` of `path`; a range past the end of the file is
/// an error, found before anything is allocated.
pub fn read_range(path: &Path, start: u64, len: u64) -> Result<Vec<u8>, CheckpointError> {
    let err = |message: String| CheckpointError::read(path, message);
    let mut file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let file_len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    if start.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(err(format!(
            "the file is truncated: bytes {start}..{} are past its end ({file_len} bytes)",
            start.saturating_add(len)
        )));
    }
    file.seek(SeekFrom::Start(start))
        .map_err(|e| err(e.to_string()))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| err(format!("the file is truncated ({e})")))?;
    Ok(bytes)
}

/// Bytes per element of a float dtype (`F32`, `F16`, `BF16`), `None` for others.
pub fn float_size(dtype: &str) -> Option<u64> {
    match dtype {
        "F32" => Some(4),
        "F16" | "BF16" => Some(2),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn written_tensors_read_back_by_name_and_range() {
        let dir = std::env::temp_dir().join(format!("sf-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let tensors = vec![
            ("x".to_string(), "F32", vec![2, 2]),
            ("y".to_string(), "BF16", vec![3]),
        ];
        let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut w = Writer::create(&path, &tensors, &meta).unwrap();
        assert!(w.write("y", &x).is_err(), "out of the declared order");
        let mut w = Writer::create(&path, &tensors, &meta).unwrap();
        w.write("x", &x).unwrap();
        let y: Vec<u8> = [0.5f32, -1.0, 8.0]
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        w.write("y", &y).unwrap();
        w.finish().unwrap();

        let header = read_header(&path).unwrap();
        assert_eq!(header.metadata, meta);
        assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap(), header);
        let t = header.tensor("y").unwrap();
        assert_eq!(
            (t.shape.clone(), t.byte_len(), float_size(&t.dtype)),
            (vec![3], 6, Some(2))
        );
        let bytes = read_range(&path, header.start(t) + 2, 4).unwrap();
        assert_eq!(floats_to_f32(&t.dtype, &bytes).unwrap(), [-1.0, 8.0]);
        let t = header.tensor("x").unwrap();
        let all = read_range(&path, header.start(t), t.byte_len()).unwrap();
        assert_eq!(floats_to_f32("F32", &all).unwrap(), [1.0, 2.0, 3.0, 4.0]);
        let e = read_range(&path, header.start(t), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(header.tensor("z").is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
