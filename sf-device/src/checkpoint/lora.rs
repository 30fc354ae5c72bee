//! LoRA adapters merged into a checkpoint's Linear weights while it loads (LongLive's
//! `lora.pt`): `W' = W + (alpha / r)·B·A` for every adapted weight, on the host in f32, before
//! [`Checkpoint::load`](super::Checkpoint::load) casts the module to the policy's dtype.
//!
//! The file holds PEFT's `get_peft_model_state_dict` names, `base_model.model.<module>.lora_A.weight`
//! (`[r, in]`) and `...lora_B.weight` (`[out, r]`), either as the whole state dict or under
//! `generator_lora` (LongLive's training checkpoint, which also holds `critic_lora` and `step`).
//! Every adapter is checked against the model's targets before any tensor is read: each target
//! needs both factors, of matching shapes and one rank; all problems are reported at once.
//!
//! Each merged weight is computed when `burn::store` applies it, from the base tensor and the two
//! factors read then, so the load never holds a second copy of the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::bridge;
use burn::store::burn_pack::{Error as PackError, Tensor as PackTensor};
use burn::tensor::{DType, TensorData};

use super::{CheckpointError, CheckpointProblems, TensorFile, list_tensors};

/// The prefix PEFT puts before a module path.
pub const PEFT_PREFIX: &str = "base_model.model.";
/// The entry of LongLive's training checkpoint that holds the generator's adapters.
pub const GENERATOR_LORA_ENTRY: &str = "generator_lora";

/// A LoRA file to merge, with the weights it must adapt ([`super::Checkpoint::lora`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Lora {
    path: PathBuf,
    targets: BTreeMap<String, [usize; 2]>,
    alpha: Option<f64>,
}

/// One adapter of a checked file: the file names of its factors and its rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Adapter {
    a: String,
    b: String,
    rank: usize,
}

/// What [`Lora::check`] found: the file's layout and every adapter by target name.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct CheckedLora {
    file: TensorFile,
    adapters: BTreeMap<String, Adapter>,
}

impl Lora {
    /// The LoRA file at `path`, which must adapt exactly `targets`: canonical names of Linear
    /// weights with their PyTorch shapes `[out, in]`. `alpha` is PEFT's `lora_alpha` (the file
    /// does not store it); `None` takes the rank, a scale of 1.
    pub fn new(
        path: impl AsRef<Path>,
        targets: impl IntoIterator<Item = (String, [usize; 2])>,
        alpha: Option<f64>,
    ) -> Self {
        Lora {
            path: path.as_ref().to_path_buf(),
            targets: targets.into_iter().collect(),
            alpha,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The scale `alpha / rank` of an adapter of rank `rank`.
    pub fn scale(&self, rank: usize) -> f64 {
        self.alpha.unwrap_or(rank as f64) / rank as f64
    }

    fn mismatch(&self, problems: CheckpointProblems) -> CheckpointError {
        CheckpointError::Adapters {
            path: self.path.clone(),
            problems: Box::new(problems),
        }
    }

    /// The file's layout: a pickle whose tensors sit under `generator_lora` reads that entry,
    /// any other pickle or a safetensors file is the state dict itself.
    fn layout(&self) -> Result<(TensorFile, BTreeMap<String, Vec<usize>>), CheckpointError> {
        let whole = TensorFile::from_extension(&self.path);
        let found = list_tensors(&self.path, &whole)?;
        let entry = format!("{GENERATOR_LORA_ENTRY}.");
        if matches!(whole, TensorFile::Pickle { .. }) && found.keys().any(|k| k.starts_with(&entry))
        {
            let file = TensorFile::Pickle {
                top_level_key: Some(GENERATOR_LORA_ENTRY.into()),
            };
            let found = list_tensors(&self.path, &file)?;
            return Ok((file, found));
        }
        Ok((whole, found))
    }

    /// Checks every adapter of the file against the targets (reads no tensor data): a factor
    /// that adapts no target is unexpected, a target without both factors is missing, a factor
    /// of the wrong shape or a pair of different ranks is reported with the shapes; all at once.
    pub(super) fn check(&self) -> Result<CheckedLora, CheckpointError> {
        if let Some(alpha) = self.alpha.filter(|a| !a.is_finite() || *a <= 0.0) {
            return Err(CheckpointError::read(
                &self.path,
                format!("the LoRA alpha must be a positive number, got {alpha}"),
            ));
        }
        let (file, found) = self.layout()?;
        let mut problems = CheckpointProblems::default();
        let mut factors: BTreeMap<&str, [Option<Found>; 2]> = BTreeMap::new();
        for (name, shape) in &found {
            let parsed = parse_factor(name);
            match parsed.and_then(|(target, i)| self.targets.get_key_value(&target).zip(Some(i))) {
                Some(((target, _), i)) => {
                    factors.entry(target.as_str()).or_default()[i] = Some((name, shape));
                }
                None => problems.unexpected.push(name.clone()),
            }
        }
        let mut adapters = BTreeMap::new();
        for (target, [out, inner]) in &self.targets {
            let stem = target.strip_suffix(".weight").unwrap_or(target);
            let [a, b] = factors.get(target.as_str()).copied().unwrap_or_default();
            for (factor, present) in [("A", a.is_some()), ("B", b.is_some())] {
                if !present {
                    problems
                        .missing
                        .push(format!("{PEFT_PREFIX}{stem}.lora_{factor}.weight"));
                }
            }
            let (Some((a_name, a_shape)), Some((b_name, b_shape))) = (a, b) else {
                continue;
            };
            let rank = a_shape.first().copied().unwrap_or(0);
            let mut fits = true;
            if a_shape.len() != 2 || rank == 0 || a_shape[1] != *inner {
                problems.mismatched.push((
                    a_name.into(),
                    vec![rank.max(1), *inner],
                    a_shape.to_vec(),
                ));
                fits = false;
            }
            if b_shape.len() != 2 || b_shape[0] != *out {
                let b_rank = b_shape.get(1).copied().unwrap_or(rank);
                problems
                    .mismatched
                    .push((b_name.into(), vec![*out, b_rank], b_shape.to_vec()));
                fits = false;
            }
            if fits && b_shape[1] != rank {
                problems.other.push(format!(
                    "{stem}: lora_A has rank {rank} ({a_shape:?}) but lora_B rank {} ({b_shape:?})",
                    b_shape[1]
                ));
                fits = false;
            }
            if fits {
                adapters.insert(
                    target.clone(),
                    Adapter {
                        a: a_name.into(),
                        b: b_name.into(),
                        rank,
                    },
                );
            }
        }
        if problems.is_empty() {
            Ok(CheckedLora { file, adapters })
        } else {
            Err(self.mismatch(problems))
        }
    }
}

/// A factor found in the file: its name and shape.
type Found<'a> = (&'a str, &'a [usize]);

/// The target weight and the factor index (A = 0, B = 1) of a PEFT factor name.
fn parse_factor(name: &str) -> Option<(String, usize)> {
    let module = name.strip_prefix(PEFT_PREFIX)?;
    let (stem, i) = match module.strip_suffix(".lora_A.weight") {
        Some(stem) => (stem, 0),
        None => (module.strip_suffix(".lora_B.weight")?, 1),
    };
    Some((format!("{stem}.weight"), i))
}

impl Adapter {
    /// The rank `r`.
    pub(super) fn rank(&self) -> usize {
        self.rank
    }

    /// The file names of `lora_A` and `lora_B`.
    pub(super) fn factors(&self) -> (&str, &str) {
        (&self.a, &self.b)
    }
}

impl CheckedLora {
    /// The adapter of a canonical name, if it has one.
    pub(super) fn adapter(&self, canonical: &str) -> Option<&Adapter> {
        self.adapters.get(canonical)
    }

    /// The layout the factors are read from.
    pub(super) fn file(&self) -> &TensorFile {
        &self.file
    }
}

/// `base` (the weight `[out, in]`, any float dtype) as an f32 tensor `W + scale·B·A`, computed
/// when it is read from the factors `a` `[r, in]` and `b` `[out, r]`.
pub(super) fn merged(base: PackTensor, a: PackTensor, b: PackTensor, scale: f64) -> PackTensor {
    let shape = base.shape.clone();
    let (name, param_id) = (base.name.clone(), base.param_id);
    bridge::deferred(name, DType::F32, shape.clone(), param_id, move || {
        let f32s = |t: &PackTensor| -> Result<Vec<f32>, PackError> {
            let data = bridge::to_data(t)?.convert::<f32>();
            data.try_into_vec::<f32>()
                .map_err(|e| PackError::ValidationError(format!("{}: {e:?}", t.name)))
        };
        let (out, inner, rank) = (shape[0], shape[1], a.shape[0]);
        let mut w = f32s(&base)?;
        let (a, b) = (f32s(&a)?, f32s(&b)?);
        add_product(&mut w, &b, &a, [out, inner, rank], scale as f32);
        Ok(TensorData::new(w, shape.clone()))
    })
}

/// `w [m, n] += scale · b [m, k] · a [k, n]`, all row-major.
///
/// # Panics
/// When a slice's length is not its shape's.
pub(super) fn add_product(w: &mut [f32], b: &[f32], a: &[f32], [m, n, k]: [usize; 3], scale: f32) {
    assert!(w.len() == m * n && b.len() == m * k && a.len() == k * n);
    // SAFETY: the three slices hold exactly the elements the shapes and strides address;
    // gemm's convention is dst = alpha·dst + beta·lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            w.as_mut_ptr(),
            1,
            n as isize,
            true,
            b.as_ptr(),
            1,
            k as isize,
            a.as_ptr(),
            1,
            n as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_names_map_to_their_weights() {
        let name = "base_model.model.blocks.3.ffn.0.lora_B.weight";
        assert_eq!(
            parse_factor(name),
            Some(("blocks.3.ffn.0.weight".into(), 1))
        );
        let name = "base_model.model.blocks.0.self_attn.q.lora_A.weight";
        assert_eq!(
            parse_factor(name),
            Some(("blocks.0.self_attn.q.weight".into(), 0))
        );
        assert_eq!(parse_factor("blocks.0.self_attn.q.lora_A.weight"), None);
        assert_eq!(
            parse_factor("base_model.model.blocks.0.self_attn.q.weight"),
            None
        );
    }

    #[test]
    fn the_product_is_added_scaled() {
        let [m, n, k] = [5, 7, 3];
        let value = |i: usize, s: f32| ((i * 37 % 11) as f32 - 5.0) * s;
        let b: Vec<f32> = (0..m * k).map(|i| value(i, 0.25)).collect();
        let a: Vec<f32> = (0..k * n).map(|i| value(i + 3, 0.5)).collect();
        let w0: Vec<f32> = (0..m * n).map(|i| value(i + 7, 1.0)).collect();
        let mut w = w0.clone();
        add_product(&mut w, &b, &a, [m, n, k], 2.0);
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|r| b[i * k + r] * a[r * n + j]).sum();
                assert_eq!(w[i * n + j], w0[i * n + j] + 2.0 * dot, "({i}, {j})");
            }
        }
    }
}
