//! Reader for the golden-fixture format (`fixtures/FORMAT.md`).
//!
//! A fixture is a safetensors file whose `__metadata__` has one entry, `fixture`, holding a JSON
//! object with the configuration needed to rebuild the model that produced its tensors.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use sf_device::safetensors;

/// Errors reading a fixture or its metadata.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixture {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid safetensors or its metadata is not the fixture JSON.
    #[error("{path} is not a fixture file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A tensor the check needs is absent.
    #[error("{path} has no tensor '{name}'")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor has a dtype or rank the check cannot use.
    #[error("{path}: tensor '{name}': {reason}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// The metadata lacks a field or holds a configuration the models refuse.
    #[error("{origin}: {reason}")]
    Config {
        /// The file (or other source) of the configuration.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

struct RawTensor {
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// One fixture file, fully read into memory.
pub struct Fixture {
    path: PathBuf,
    meta: serde_json::Value,
    tensors: HashMap<String, RawTensor>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Fixture {
    /// Reads a fixture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FixtureError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| FixtureError::Io {
            path: path.clone(),
            source,
        })?;
        let format = |reason: String| FixtureError::Format {
            path: path.clone(),
            reason,
        };
        // The whole header is checked (offsets, sizes, overlaps, the file's length), so every
        // tensor's byte range below lies inside the file.
        let header = safetensors::parse(&bytes).map_err(format)?;
        let meta = match header.metadata.get("fixture") {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format(format!("metadata 'fixture' is not JSON: {e}")))?,
            None => serde_json::Value::Null,
        };
        let tensors = header
            .tensors
            .iter()
            .map(|t| {
                let start = header.start(t) as usize;
                let raw = RawTensor {
                    dtype: t.dtype.clone(),
                    shape: t.shape.clone(),
                    bytes: bytes[start..start + t.byte_len() as usize].to_vec(),
                };
                (t.name.clone(), raw)
            })
            .collect();
        Ok(Fixture {
            path,
            meta,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file name, for reports.
    pub fn file_name(&self) -> String {
        file_name(&self.path)
    }

    /// A file in the same folder.
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(name)
    }

    /// The whole metadata object (`generator`, `versions`, `config`, `notes`).
    pub fn metadata(&self) -> &serde_json::Value {
        &self.meta
    }

    /// The `config` object of the metadata (`Null` if absent).
    pub fn config(&self) -> &serde_json::Value {
        &self.meta["config"]
    }

    /// `config[key]`, or an error naming the file and the key.
    pub fn config_field(&self, key: &str) -> Result<&serde_json::Value, FixtureError> {
        let value = &self.config()[key];
        if value.is_null() {
            return Err(FixtureError::Config {
                origin: self.file_name(),
                reason: format!("its metadata config has no '{key}'"),
            });
        }
        Ok(value)
    }

    /// `config[key]` as an unsigned integer.
    pub fn config_usize(&self, key: &str) -> Result<usize, FixtureError> {
        let value = self.config_field(key)?;
        value
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| FixtureError::Config {
                origin: self.file_name(),
                reason: format!("config '{key}' is {value}, not an unsigned integer"),
            })
    }

    /// `config[key]` as a string.
    pub fn config_str(&self, key: &str) -> Result<&str, FixtureError> {
        let value = self.config_field(key)?;
        value.as_str().ok_or_else(|| FixtureError::Config {
            origin: self.file_name(),
            reason: format!("config '{key}' is {value}, not a string"),
        })
    }

    /// Whether the file has a tensor.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn raw(&self, name: &str) -> Result<&RawTensor, FixtureError> {
        self.tensors.get(name).ok_or_else(|| FixtureError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    fn bad(&self, name: &str, reason: String) -> FixtureError {
        FixtureError::Tensor {
            path: self.path.clone(),
            name: name.to_string(),
            reason,
        }
    }

    /// A tensor's shape.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, FixtureError> {
        Ok(self.raw(name)?.shape.clone())
    }

    /// A float tensor's values as f64 (exact for every stored float dtype).
    pub fn f64s(&self, name: &str) -> Result<Vec<f64>, FixtureError> {
        let raw = self.raw(name)?;
        let b = &raw.bytes;
        Ok(match raw.dtype.as_str() {
            "F64" => chunks::<8>(b).map(f64::from_le_bytes).collect(),
            "F32" => chunks::<4>(b)
                .map(|c| f32::from_le_bytes(c) as f64)
                .collect(),
            "F16" => chunks::<2>(b)
                .map(|c| half::f16::from_le_bytes(c).to_f64())
                .collect(),
            "BF16" => chunks::<2>(b)
                .map(|c| half::bf16::from_le_bytes(c).to_f64())
                .collect(),
            other => {
                return Err(self.bad(name, format!("expected a float tensor, found {other}")));
            }
        })
    }

    /// A float tensor's values as f32.
    pub fn f32s(&self, name: &str) -> Result<Vec<f32>, FixtureError> {
        Ok(self.f64s(name)?.into_iter().map(|v| v as f32).collect())
    }

    /// An integer or boolean tensor's values as i64.
    pub fn i64s(&self, name: &str) -> Result<Vec<i64>, FixtureError> {
        let raw = self.raw(name)?;
        let b = &raw.bytes;
        Ok(match raw.dtype.as_str() {
            "I64" => chunks::<8>(b).map(i64::from_le_bytes).collect(),
            "I32" => chunks::<4>(b)
                .map(|c| i32::from_le_bytes(c) as i64)
                .collect(),
            "U8" | "BOOL" => b.iter().map(|v| *v as i64).collect(),
            other => {
                return Err(self.bad(name, format!("expected an integer tensor, found {other}")));
            }
        })
    }

    /// A float tensor on `device` as f32, checking its rank.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<Tensor<D>, FixtureError> {
        let shape = self.shape(name)?;
        if shape.len() != D {
            return Err(self.bad(name, format!("expected rank {D}, found shape {shape:?}")));
        }
        Ok(Tensor::from_data(
            TensorData::new(self.f32s(name)?, shape),
            device,
        ))
    }

    /// An integer tensor on `device`, checking its rank.
    pub fn int_tensor<const D: usize>(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<Tensor<D, Int>, FixtureError> {
        let shape = self.shape(name)?;
        if shape.len() != D {
            return Err(self.bad(name, format!("expected rank {D}, found shape {shape:?}")));
        }
        Ok(Tensor::from_data(
            TensorData::new(self.i64s(name)?, shape),
            device,
        ))
    }
}

fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// A path's file name, for reports (empty when it has none).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads any float tensor back as f32 values (whatever its dtype).
pub fn to_f32s<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The workspace's vendored fixture folder, for the workspace's own tests.
pub fn workspace_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A file of the workspace's fixture folder.
pub fn workspace_fixture(name: &str) -> PathBuf {
    workspace_fixtures().join(name)
}

/// Opens a file of the workspace's fixture folder; panics (for tests) when it cannot.
pub fn open_workspace_fixture(name: &str) -> Fixture {
    Fixture::open(workspace_fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The wgpu device for backend tests (software Vulkan in CI), or `None` with a printed reason
/// when there is no adapter. With `SF_REQUIRE_WGPU` set, a missing adapter panics instead.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub fn wgpu_test_device() -> Option<Device> {
    use sf_device::{BackendKind, DeviceRequest, select};
    match select(&DeviceRequest::backend(BackendKind::Wgpu)) {
        Ok(selected) => {
            println!("wgpu device: {}", selected.info);
            Some(selected.device)
        }
        Err(err) if std::env::var("SF_REQUIRE_WGPU").is_err() => {
            println!("skipping: no wgpu adapter ({err}); set SF_REQUIRE_WGPU=1 to fail instead");
            None
        }
        Err(err) => panic!("SF_REQUIRE_WGPU is set but no wgpu adapter is usable: {err}"),
    }
}
