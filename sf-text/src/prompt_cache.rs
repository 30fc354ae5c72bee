//! An on-disk cache of prompt embeddings, so a prompt is encoded once per encoder.
//!
//! Each entry is a safetensors file `<key>.safetensors` holding one f32 tensor `embedding`
//! `[text_len, dim]` and, in its metadata, everything the key was made of. The key is the SHA-256
//! of the cleaned prompt, the text length, the encoder's identity ([`EncoderIdentity`]: which
//! weights) and the compute dtype. A file that is unreadable, truncated, or whose metadata does
//! not match its key counts as a miss and is overwritten by the next [`PromptCache::put`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use sf_device::Dtype;
use sf_device::safetensors::{self, floats_to_f32, read_range};
use sha2::{Digest, Sha256};

use crate::TextError;

const FORMAT: &str = "sf-text prompt cache v1";
const TENSOR: &str = "embedding";

fn cache_error(path: &Path, message: impl std::fmt::Display) -> TextError {
    TextError::Cache {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Which encoder weights an embedding came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncoderIdentity(String);

impl EncoderIdentity {
    /// A checkpoint file's identity: its canonical path, size, modification time and the SHA-256
    /// of its first 64 KiB (the safetensors header, or the start of a pickle). Replacing or
    /// rewriting the file changes it.
    pub fn of_file(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref();
        let err = |e: std::io::Error| cache_error(path, e);
        let canonical = path.canonicalize().map_err(err)?;
        let meta = std::fs::metadata(&canonical).map_err(err)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut head = Vec::new();
        std::fs::File::open(&canonical)
            .map_err(err)?
            .take(64 * 1024)
            .read_to_end(&mut head)
            .map_err(err)?;
        let digest = hex(&Sha256::digest(&head));
        Ok(EncoderIdentity(format!(
            "{}|{}|{mtime}|{digest}",
            canonical.display(),
            meta.len()
        )))
    }

    /// An identity given by the caller (for weights that are not a single file).
    pub fn named(name: impl Into<String>) -> Self {
        EncoderIdentity(name.into())
    }

    /// The identity string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A directory of cached prompt embeddings.
#[derive(Clone, Debug)]
pub struct PromptCache {
    dir: PathBuf,
}

/// The inputs of one cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// The SHA-256 (hex) of the fields below; the file name.
    pub hash: String,
    fields: BTreeMap<String, String>,
}

impl PromptCache {
    /// A cache in `dir` (created if absent).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, TextError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| cache_error(&dir, e))?;
        Ok(PromptCache { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of a cleaned prompt encoded to `text_len` tokens by `encoder` in `dtype`.
    pub fn key(
        &self,
        cleaned: &str,
        text_len: usize,
        encoder: &EncoderIdentity,
        dtype: Dtype,
    ) -> CacheKey {
        let fields = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("prompt".to_string(), cleaned.to_string()),
            ("text_len".to_string(), text_len.to_string()),
            ("encoder".to_string(), encoder.as_str().to_string()),
            ("dtype".to_string(), dtype.name().to_string()),
        ]);
        let canonical = serde_json::to_vec(&fields).unwrap_or_default();
        CacheKey {
            hash: hex(&Sha256::digest(&canonical)),
            fields,
        }
    }

    /// The file of a key.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.safetensors", key.hash))
    }

    /// The cached embedding `[text_len, dim]` (f32) on `device`, or `None` on a miss (no file,
    /// or a file that is corrupted or belongs to another key).
    pub fn get(&self, key: &CacheKey, device: &Device) -> Option<Tensor<2>> {
        let path = self.path(key);
        if !path.exists() {
            return None;
        }
        let header = safetensors::read_header(&path).ok()?;
        if key
            .fields
            .iter()
            .any(|(k, v)| header.metadata.get(k) != Some(v))
        {
            return None;
        }
        let entry = header.tensor(TENSOR)?;
        let [rows, dim] = entry.shape[..] else {
            return None;
        };
        if entry.dtype != "F32" || entry.byte_len() != (rows * dim * 4) as u64 {
            return None;
        }
        let bytes = read_range(&path, header.start(entry), entry.byte_len()).ok()?;
        let values = floats_to_f32("F32", &bytes)?;
        if values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some(Tensor::from_data(
            TensorData::new(values, [rows, dim]),
            device,
        ))
    }

    /// Stores an embedding `[text_len, dim]` under `key` (written to a temporary file, then
    /// renamed, so a reader never sees half a file).
    pub fn put(&self, key: &CacheKey, embedding: &Tensor<2>) -> Result<(), TextError> {
        let path = self.path(key);
        let shape = embedding.dims().to_vec();
        let values = embedding
            .clone()
            .cast(FloatDType::F32)
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| cache_error(&path, format!("{e:?}")))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.hash, std::process::id()));
        let written =
            safetensors::Writer::create(&tmp, &[(TENSOR.to_string(), "F32", shape)], &key.fields)
                .and_then(|mut writer| {
                    writer.write(TENSOR, &bytes)?;
                    writer.finish()
                });
        written.map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            cache_error(&path, e.message)
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            cache_error(&path, e)
        })
    }

    /// The cached embedding, or `encode()`'s result stored for next time. The flag says whether
    /// it was a hit.
    pub fn get_or_insert_with(
        &self,
        key: &CacheKey,
        device: &Device,
        encode: impl FnOnce() -> Result<Tensor<2>, TextError>,
    ) -> Result<(Tensor<2>, bool), TextError> {
        if let Some(hit) = self.get(key, device) {
            return Ok((hit, true));
        }
        let embedding = encode()?;
        self.put(key, &embedding)?;
        Ok((embedding, false))
    }
}
