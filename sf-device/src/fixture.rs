//! Reader for the golden-fixture format (`fixtures/FORMAT.md`) and its tolerance rule, shared by
//! every crate's parity tests and by the `parity` example.
//!
//! A fixture is a safetensors file whose `__metadata__` has one entry, `fixture`, holding a JSON
//! object with the configuration needed to rebuild the model that produced its tensors.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::checkpoint::parse_safetensors;

/// Errors reading a fixture.
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
}

struct RawTensor {
    dtype: StDtype,
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
        // The whole header is checked first (offsets, sizes, overlaps, the file's length), so
        // the safetensors crate below only ever sees a consistent file.
        let header = parse_safetensors(&bytes).map_err(format)?;
        let meta = match header.metadata.get("fixture") {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| format(format!("metadata 'fixture' is not JSON: {e}")))?,
            None => serde_json::Value::Null,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
        let tensors = st
            .iter()
            .map(|(name, view)| {
                (
                    name.to_string(),
                    RawTensor {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: view.data().to_vec(),
                    },
                )
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
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The whole metadata object (`generator`, `versions`, `config`, `notes`).
    pub fn metadata(&self) -> &serde_json::Value {
        &self.meta
    }

    /// The `config` object of the metadata (`Null` if absent).
    pub fn config(&self) -> &serde_json::Value {
        &self.meta["config"]
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
        Ok(match raw.dtype {
            StDtype::F64 => chunks::<8>(b).map(f64::from_le_bytes).collect(),
            StDtype::F32 => chunks::<4>(b)
                .map(|c| f32::from_le_bytes(c) as f64)
                .collect(),
            StDtype::F16 => chunks::<2>(b)
                .map(|c| half::f16::from_le_bytes(c).to_f64())
                .collect(),
            StDtype::BF16 => chunks::<2>(b)
                .map(|c| half::bf16::from_le_bytes(c).to_f64())
                .collect(),
            other => {
                return Err(self.bad(name, format!("expected a float tensor, found {other:?}")));
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
        Ok(match raw.dtype {
            StDtype::I64 => chunks::<8>(b).map(i64::from_le_bytes).collect(),
            StDtype::I32 => chunks::<4>(b)
                .map(|c| i32::from_le_bytes(c) as i64)
                .collect(),
            StDtype::U8 | StDtype::BOOL => b.iter().map(|v| *v as i64).collect(),
            other => {
                return Err(self.bad(name, format!("expected an integer tensor, found {other:?}")));
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

/// Reads any float tensor back as f32 values (whatever its dtype).
pub fn to_f32s<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The tolerance rule `max|out - ref| <= rel * max|ref| + abs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative part, scaled by the reference's largest magnitude.
    pub rel: f64,
    /// Absolute part.
    pub abs: f64,
}

impl Tolerance {
    /// The rule for every f32 computation (FORMAT.md §1).
    pub const F32: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-6,
    };
    /// The suggested bound for a single forward computed in bf16.
    pub const BF16_COMPUTE: Tolerance = Tolerance {
        rel: 5e-2,
        abs: 1e-3,
    };
    /// Integer and bookkeeping tensors: exact.
    pub const EXACT: Tolerance = Tolerance { rel: 0.0, abs: 0.0 };
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The fixture file.
    pub file: String,
    /// What was compared.
    pub check: String,
    /// `max|out - ref|`.
    pub max_abs_diff: f64,
    /// The bound it had to stay under.
    pub bound: f64,
    /// Whether it did (and the shapes agreed).
    pub passed: bool,
    /// Why it failed beyond the numbers (shape mismatch, error), if so.
    pub note: Option<String>,
}

impl CheckResult {
    /// A check that could not run: counts as failed.
    pub fn error(file: &str, check: &str, error: impl fmt::Display) -> Self {
        CheckResult {
            file: file.to_string(),
            check: check.to_string(),
            max_abs_diff: f64::NAN,
            bound: f64::NAN,
            passed: false,
            note: Some(error.to_string()),
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<34} {:<48} max|diff| {:>10.3e}  bound {:>10.3e}  {}",
            self.file,
            self.check,
            self.max_abs_diff,
            self.bound,
            if self.passed { "PASS" } else { "FAIL" }
        )?;
        if let Some(note) = &self.note {
            write!(f, "  ({note})")?;
        }
        Ok(())
    }
}

/// Compares `out` with `reference` under `tol`. NaN anywhere in `out` fails.
pub fn compare(
    file: &str,
    check: &str,
    out: &[f64],
    reference: &[f64],
    tol: Tolerance,
) -> CheckResult {
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = tol.rel * max_ref + tol.abs;
    if out.len() != reference.len() {
        return CheckResult {
            file: file.to_string(),
            check: check.to_string(),
            max_abs_diff: f64::INFINITY,
            bound,
            passed: false,
            note: Some(format!(
                "{} values against {} in the reference",
                out.len(),
                reference.len()
            )),
        };
    }
    let max_abs_diff = out
        .iter()
        .zip(reference)
        .map(|(a, b)| {
            if a.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0f64, f64::max);
    CheckResult {
        file: file.to_string(),
        check: check.to_string(),
        max_abs_diff,
        bound,
        passed: max_abs_diff <= bound,
        note: None,
    }
}

/// [`compare`] for f32 values.
pub fn compare_f32(
    file: &str,
    check: &str,
    out: &[f32],
    reference: &[f32],
    tol: Tolerance,
) -> CheckResult {
    let widen = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    compare(file, check, &widen(out), &widen(reference), tol)
}

/// Exact comparison of integer tensors.
pub fn compare_exact(file: &str, check: &str, out: &[i64], reference: &[i64]) -> CheckResult {
    let widen = |v: &[i64]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    compare(
        file,
        check,
        &widen(out),
        &widen(reference),
        Tolerance::EXACT,
    )
}

/// The workspace's vendored fixture folder, for the workspace's own tests.
pub fn workspace_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The wgpu device for backend tests (software Vulkan in CI), or `None` with a printed reason
/// when there is no adapter. With `SF_REQUIRE_WGPU` set, a missing adapter panics instead.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub fn wgpu_test_device() -> Option<burn::tensor::Device> {
    use crate::{BackendKind, DeviceRequest, select};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_rule_matches_format_md() {
        let r = compare("f", "c", &[1.0, -2.0], &[1.0, -2.0002], Tolerance::F32);
        assert!((r.bound - (1e-4 * 2.0002 + 1e-6)).abs() < 1e-15);
        assert!(r.passed, "{r}");
        let r = compare("f", "c", &[1.0, -2.0], &[1.0, -2.001], Tolerance::F32);
        assert!(!r.passed, "{r}");
        let r = compare("f", "c", &[f64::NAN], &[0.0], Tolerance::F32);
        assert!(!r.passed);
        let r = compare("f", "c", &[1.0], &[1.0, 2.0], Tolerance::F32);
        assert!(!r.passed && r.note.is_some());
        assert!(compare_exact("f", "c", &[3, 4], &[3, 4]).passed);
        assert!(!compare_exact("f", "c", &[3, 4], &[3, 5]).passed);
    }

    #[test]
    fn reads_the_scheduler_fixture() {
        let fx = Fixture::open(workspace_fixtures().join("scheduler.safetensors")).unwrap();
        assert_eq!(fx.config()["self_forcing"]["shift"], 5.0);
        assert_eq!(fx.shape("self_forcing.sigmas").unwrap(), [1000]);
        assert_eq!(fx.f64s("self_forcing.sigmas").unwrap()[0], 1.0);
        assert_eq!(
            fx.i64s("self_forcing.denoising_step_list").unwrap(),
            [1000, 750, 500, 250]
        );
        // The one F64 tensor of the format.
        assert_eq!(fx.f64s("self_forcing.query_sigma").unwrap().len(), 12);
        let t = fx
            .tensor::<5>("self_forcing.add_noise.x0", &Device::flex())
            .unwrap();
        assert_eq!(t.dims(), [1, 4, 3, 3, 3]);
        assert!(matches!(
            fx.tensor::<2>("self_forcing.add_noise.x0", &Device::flex()),
            Err(FixtureError::Tensor { .. })
        ));
        assert!(matches!(fx.f64s("nope"), Err(FixtureError::Missing { .. })));
        assert!(matches!(
            fx.f64s("self_forcing.query_index"),
            Err(FixtureError::Tensor { .. })
        ));
    }

    #[test]
    fn rejects_files_that_are_not_fixtures() {
        let dir = std::env::temp_dir().join(format!("sf-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.safetensors");
        std::fs::write(&bad, b"not a safetensors file").unwrap();
        assert!(matches!(
            Fixture::open(&bad),
            Err(FixtureError::Format { .. })
        ));
        assert!(matches!(
            Fixture::open(dir.join("absent.safetensors")),
            Err(FixtureError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
