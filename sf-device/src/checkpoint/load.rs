//! The one checked load of every model crate: a [`Checkpoint`] says what a file must hold and
//! where each tensor goes; [`Checkpoint::load`] checks the keys and shapes (every problem in one
//! error), applies the tensors through `burn::store` (Linear weights transposed by its PyTorch
//! adapter), refuses a module left partly uninitialised, casts to the policy's dtype and moves
//! the module to the device.
//!
//! Three names are involved: the file's (diffusers, `model.`-prefixed, ...), the canonical one
//! the key table lists (the upstream checkpoint's) and the module path. A model declares the
//! remaps between them ([`Checkpoint::file_names`], [`Checkpoint::module_paths`]), an optional
//! part of the file it reads ([`Checkpoint::only`]) and the tensors whose extra leading rows are
//! dropped ([`Checkpoint::keep_last_rows`]); nothing else.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::store::burn_pack::{Error as PackError, Tensor as PackTensor};
use burn::store::{
    KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, bridge,
};
use burn::tensor::{DType, Device, TensorData};

use super::lora::{self, CheckedLora, Lora};
use super::{
    CheckpointError, CheckpointProblems, TensorFile, compare_keys, list_tensors, remapper, rename,
};
use crate::{Dtype, cast_module};

/// Which canonical names a load reads.
type Keep<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// A checkpoint file as one model reads it (see the module docs).
pub struct Checkpoint<'a> {
    path: PathBuf,
    file: TensorFile,
    expected: BTreeMap<String, Vec<usize>>,
    to_canonical: Vec<(String, String)>,
    to_module: Vec<(String, String)>,
    keep: Option<Keep<'a>>,
    last_rows: Vec<String>,
    lora: Option<Lora>,
}

/// What [`Checkpoint::check`] found besides a match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// [`Checkpoint::keep_last_rows`] tensors that have more rows in the file than expected,
    /// whose last rows are loaded (canonical names).
    pub trimmed: Vec<String>,
}

fn owned<S: Into<String>>(patterns: impl IntoIterator<Item = (S, S)>) -> Vec<(String, String)> {
    patterns
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect()
}

impl<'a> Checkpoint<'a> {
    /// The file at `path`, stored as `file`, which must hold exactly `expected`: canonical names
    /// with their PyTorch shapes.
    pub fn new(
        path: impl AsRef<Path>,
        file: TensorFile,
        expected: impl IntoIterator<Item = (String, Vec<usize>)>,
    ) -> Self {
        Checkpoint {
            path: path.as_ref().to_path_buf(),
            file,
            expected: expected.into_iter().collect(),
            to_canonical: Vec::new(),
            to_module: Vec::new(),
            keep: None,
            last_rows: Vec::new(),
            lora: None,
        }
    }

    /// Regex remaps `(pattern, replacement)`, applied in order, from the file's names to the
    /// canonical ones (none: the file uses the canonical names).
    pub fn file_names<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = (S, S)>,
    ) -> Self {
        self.to_canonical = owned(patterns);
        self
    }

    /// Regex remaps, applied in order, from canonical names to module paths (none: the module's
    /// paths are the canonical names).
    pub fn module_paths<S: Into<String>>(
        mut self,
        patterns: impl IntoIterator<Item = (S, S)>,
    ) -> Self {
        self.to_module = owned(patterns);
        self
    }

    /// Reads only the tensors whose canonical name `keep` accepts (the decoder half of a VAE,
    /// one encoder block): the others are neither expected nor loaded.
    pub fn only(mut self, keep: impl Fn(&str) -> bool + 'a) -> Self {
        self.keep = Some(Box::new(keep));
        self
    }

    /// Lets these tensors (canonical names) have more rows (first dimension) in the file than
    /// expected, the rest of the shape equal: their last rows are loaded.
    pub fn keep_last_rows(mut self, keys: impl IntoIterator<Item = String>) -> Self {
        self.last_rows = keys.into_iter().collect();
        self
    }

    /// Merges `lora`'s adapters into their weights while loading (see [`super::lora`]); its
    /// targets are canonical names.
    pub fn lora(mut self, lora: Lora) -> Self {
        self.lora = Some(lora);
        self
    }

    fn keeps(&self, canonical: &str) -> bool {
        self.keep.as_ref().is_none_or(|keep| keep(canonical))
    }

    fn mismatch(&self, problems: CheckpointProblems) -> CheckpointError {
        CheckpointError::Mismatch {
            path: self.path.clone(),
            problems,
        }
    }

    /// The expected tensors [`Checkpoint::only`] keeps.
    fn kept_expected(&self) -> BTreeMap<&str, &Vec<usize>> {
        self.expected
            .iter()
            .filter(|(k, _)| self.keeps(k))
            .map(|(k, s)| (k.as_str(), s))
            .collect()
    }

    /// The expected shape of `canonical` when the file's `shape` has extra rows to drop.
    fn trim_to<'s>(&'s self, canonical: &str, shape: &[usize]) -> Option<&'s Vec<usize>> {
        let want = self.expected.get(canonical)?;
        let trims = self.last_rows.iter().any(|k| k == canonical)
            && shape.len() == want.len()
            && shape
                .first()
                .zip(want.first())
                .is_some_and(|(have, want)| have > want)
            && shape[1..] == want[1..];
        trims.then_some(want)
    }

    /// Compares the file's tensors with the expected ones; every problem in one
    /// [`CheckpointError::Mismatch`]. Then the LoRA's adapters with their targets, every problem
    /// in one [`CheckpointError::Adapters`]. Reads no tensor data.
    pub fn check(&self) -> Result<Checked, CheckpointError> {
        Ok(self.check_all()?.0)
    }

    fn check_all(&self) -> Result<(Checked, Option<CheckedLora>), CheckpointError> {
        let checked = self.check_base()?;
        let lora = self.lora.as_ref().map(Lora::check).transpose()?;
        Ok((checked, lora))
    }

    fn check_base(&self) -> Result<Checked, CheckpointError> {
        let to_canonical = remapper(&self.to_canonical)?;
        let mut found = BTreeMap::new();
        let mut canonical = BTreeMap::new();
        let mut trimmed = Vec::new();
        for (name, mut shape) in list_tensors(&self.path, &self.file)? {
            let key = rename(&to_canonical, &name);
            if !self.keeps(&key) {
                continue;
            }
            if let Some(want) = self.trim_to(&key, &shape) {
                shape.clone_from(want);
                trimmed.push(key.clone());
            }
            found.insert(name.clone(), shape);
            canonical.insert(name, key);
        }
        trimmed.sort_by_key(|k| self.last_rows.iter().position(|r| r == k));
        let expected: BTreeMap<String, Vec<usize>> = self
            .kept_expected()
            .into_iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect();
        let problems = compare_keys(&found, &expected, |name| canonical[name].clone());
        if problems.is_empty() {
            Ok(Checked { trimmed })
        } else {
            Err(self.mismatch(problems))
        }
    }

    /// Checks the file ([`Checkpoint::check`]), applies its tensors to `module` (built on the
    /// host, `Device::flex()`, its parameters uninitialised), casts the parameters to `dtype`
    /// and moves the module to `device`. Casting on the host matters: burn keeps a checkpoint's
    /// dtype on load, and that dtype (bf16) may be one the device cannot run (wgpu).
    pub fn load<M: ModuleSnapshot>(
        &self,
        mut module: M,
        dtype: Dtype,
        device: &Device,
    ) -> Result<M, CheckpointError> {
        let (_, lora) = self.check_all()?;
        let tensors = self.module_tensors(lora.as_ref())?;
        // PyTorch names carry no enum variants; the adapter transposes Linear weights.
        let result = module.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
        // The key check makes these empty; kept so no parameter can stay uninitialised.
        let problems = CheckpointProblems {
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            unexpected: result.unused,
            mismatched: Vec::new(),
            other: result.errors.iter().map(ToString::to_string).collect(),
        };
        if !problems.is_empty() {
            return Err(self.mismatch(problems));
        }
        let module = cast_module(module, dtype);
        Ok(if *device == Device::flex() {
            module
        } else {
            module.to_device(device)
        })
    }

    /// The kept tensors of the file, lazily read, named by module path, trimmed and merged with
    /// their adapters.
    fn module_tensors(
        &self,
        lora: Option<&CheckedLora>,
    ) -> Result<Vec<PackTensor>, CheckpointError> {
        let all = file_tensors(&self.path, &self.file)?;
        let mut factors: BTreeMap<String, PackTensor> = match (lora, &self.lora) {
            (Some(checked), Some(file)) => file_tensors(file.path(), checked.file())?
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            _ => BTreeMap::new(),
        };
        let to_canonical = remapper(&self.to_canonical)?;
        let to_module = remapper(&self.to_module)?;
        let mut placed = Vec::new();
        for tensor in all {
            let canonical = rename(&to_canonical, &tensor.name);
            let adapter = lora.zip(self.lora.as_ref()).and_then(|(checked, file)| {
                let adapter = checked.adapter(&canonical)?;
                Some((adapter, file.scale(adapter.rank())))
            });
            let Some(mut tensor) = self.place(tensor, &canonical, &to_module) else {
                continue;
            };
            if let Some((adapter, scale)) = adapter {
                let (a, b) = adapter.factors();
                let factor = |name: &str, factors: &mut BTreeMap<String, PackTensor>| {
                    factors.remove(name).ok_or_else(|| {
                        CheckpointError::read(&self.path, format!("LoRA factor {name} vanished"))
                    })
                };
                let (a, b) = (factor(a, &mut factors)?, factor(b, &mut factors)?);
                tensor = lora::merged(tensor, a, b, scale);
            }
            placed.push(tensor);
        }
        Ok(placed)
    }

    /// `tensor` renamed to its module path and trimmed, `None` when it is not read.
    fn place(
        &self,
        tensor: PackTensor,
        canonical: &str,
        to_module: &KeyRemapper,
    ) -> Option<PackTensor> {
        if !self.keeps(canonical) {
            return None;
        }
        let path = rename(to_module, canonical);
        Some(match self.trim_to(canonical, &tensor.shape) {
            Some(want) => last_rows(tensor, path, want),
            None => {
                let mut tensor = tensor;
                tensor.name = path;
                tensor
            }
        })
    }
}

/// The tensors of a file (or of its pickle entry), each read when it is applied.
fn file_tensors(path: &Path, file: &TensorFile) -> Result<Vec<PackTensor>, CheckpointError> {
    Ok(match file {
        TensorFile::Safetensors => safetensors_tensors(path)?,
        TensorFile::Pickle { top_level_key } => {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            if let Some(key) = top_level_key {
                store = store.with_top_level_key(key.as_str());
            }
            let tensors = store
                .get_all_tensors()
                .map_err(|e| CheckpointError::read(path, e.to_string()))?;
            tensors.values().cloned().collect()
        }
    })
}

/// A safetensors file's tensors, each read when it is applied with one positioned read into its
/// own buffer. Not through a memory map (burn-store's reader): every page of a map that was read
/// counts in the process's resident set for as long as any tensor of the file is alive, which
/// doubled the loading peak (the 1.3B DiT: 10.7 GiB for 5.3 GiB of f32 weights).
fn safetensors_tensors(path: &Path) -> Result<Vec<PackTensor>, CheckpointError> {
    let header = crate::safetensors::read_header(path)?;
    let open = std::fs::File::open(path).map_err(|e| CheckpointError::read(path, e.to_string()))?;
    let file = Arc::new(Mutex::new(open));
    header
        .tensors
        .iter()
        .map(|t| {
            let dtype = safetensors_dtype(&t.dtype).ok_or_else(|| {
                CheckpointError::read(
                    path,
                    format!(
                        "tensor '{}' has dtype {}, which burn cannot load",
                        t.name, t.dtype
                    ),
                )
            })?;
            let (start, len) = (header.start(t), t.byte_len());
            let (shape, file) = (t.shape.clone(), file.clone());
            Ok(bridge::deferred(
                t.name.clone(),
                dtype,
                t.shape.clone().into(),
                None,
                move || {
                    let io = |e: std::io::Error| PackError::IoError(e.to_string());
                    let mut bytes = vec![0u8; len as usize];
                    let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    file.seek(SeekFrom::Start(start)).map_err(io)?;
                    file.read_exact(&mut bytes).map_err(io)?;
                    Ok(TensorData::from_bytes_vec(bytes, shape.clone(), dtype))
                },
            ))
        })
        .collect()
}

/// burn's dtype of a safetensors dtype name.
fn safetensors_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U64" => DType::U64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        "BOOL" => DType::Bool(burn::tensor::BoolStore::Native),
        _ => return None,
    })
}

/// `tensor` `[R, ...]` cut to its last `want[0]` rows (shape `want`), read lazily.
fn last_rows(tensor: PackTensor, name: String, want: &[usize]) -> PackTensor {
    let (dtype, have) = (tensor.dtype, tensor.shape[0]);
    let shape = want.to_vec();
    let rows = want[0];
    bridge::map_data(tensor, name, dtype, shape.clone().into(), move |data| {
        let bytes = data.as_bytes();
        let row = bytes.len() / have;
        TensorData::from_bytes_vec(bytes[(have - rows) * row..].to_vec(), shape.clone(), dtype)
    })
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
