//! Loading DiT weights from Wan safetensors, diffusers safetensors or a Self-Forcing / LongLive
//! `.pt`, optionally with a LoRA merged in ([`DitLora`], LongLive's `lora.pt`).
//!
//! This file holds the key table ([`expected_keys`], original Wan names), the remaps from each
//! format's names to it ([`CheckpointFormat`]) and from it to the [`WanModel`] paths
//! ([`module_path`]); [`sf_device::Checkpoint`] checks and loads with them (every missing,
//! unexpected and mis-shaped tensor in one [`ModelError::Checkpoint`], Linear weights transposed,
//! parameters cast to the requested dtype).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sf_device::Dtype;
use sf_device::checkpoint::{self, Checkpoint, TensorFile};

use crate::ModelError;
use crate::config::WanConfig;
use crate::model::WanModel;

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// Original Wan names in safetensors (`diffusion_pytorch_model.safetensors`).
    WanSafetensors,
    /// diffusers `WanTransformer3DModel` names in safetensors.
    DiffusersSafetensors,
    /// A Self-Forcing `torch.save` pickle: the state dict under `top_level_key`
    /// (`generator_ema` or `generator`), keys prefixed `model.`.
    SelfForcingPt {
        /// The entry of the top-level dict.
        top_level_key: String,
    },
}

impl CheckpointFormat {
    /// The Self-Forcing checkpoint's EMA weights (what the demos load).
    pub fn self_forcing_ema() -> Self {
        CheckpointFormat::SelfForcingPt {
            top_level_key: "generator_ema".into(),
        }
    }

    /// The Self-Forcing checkpoint's raw generator weights (`inference.py` without `--use_ema`).
    pub fn self_forcing_generator() -> Self {
        CheckpointFormat::SelfForcingPt {
            top_level_key: "generator".into(),
        }
    }

    /// LongLive's `longlive_base.pt`: the Self-Forcing layout, read from `generator` (LongLive's
    /// `use_ema: false`; `generator_ema` is [`CheckpointFormat::self_forcing_ema`]).
    pub fn longlive_base() -> Self {
        Self::self_forcing_generator()
    }

    /// Regex remaps from this format's names to original Wan names.
    fn to_wan_patterns(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            CheckpointFormat::WanSafetensors => vec![],
            CheckpointFormat::SelfForcingPt { .. } => {
                vec![(r"^model\.", ""), (r"_fsdp_wrapped_module\.", "")]
            }
            CheckpointFormat::DiffusersSafetensors => vec![
                (
                    r"^blocks\.(\d+)\.attn1\.to_([qkv])\.",
                    "blocks.${1}.self_attn.${2}.",
                ),
                (
                    r"^blocks\.(\d+)\.attn1\.to_out\.0\.",
                    "blocks.${1}.self_attn.o.",
                ),
                (
                    r"^blocks\.(\d+)\.attn1\.norm_([qk])\.",
                    "blocks.${1}.self_attn.norm_${2}.",
                ),
                (
                    r"^blocks\.(\d+)\.attn2\.to_([qkv])\.",
                    "blocks.${1}.cross_attn.${2}.",
                ),
                (
                    r"^blocks\.(\d+)\.attn2\.to_out\.0\.",
                    "blocks.${1}.cross_attn.o.",
                ),
                (
                    r"^blocks\.(\d+)\.attn2\.norm_([qk])\.",
                    "blocks.${1}.cross_attn.norm_${2}.",
                ),
                (r"^blocks\.(\d+)\.norm2\.", "blocks.${1}.norm3."),
                (
                    r"^blocks\.(\d+)\.scale_shift_table$",
                    "blocks.${1}.modulation",
                ),
                (r"^blocks\.(\d+)\.ffn\.net\.0\.proj\.", "blocks.${1}.ffn.0."),
                (r"^blocks\.(\d+)\.ffn\.net\.2\.", "blocks.${1}.ffn.2."),
                (
                    r"^condition_embedder\.text_embedder\.linear_1\.",
                    "text_embedding.0.",
                ),
                (
                    r"^condition_embedder\.text_embedder\.linear_2\.",
                    "text_embedding.2.",
                ),
                (
                    r"^condition_embedder\.time_embedder\.linear_1\.",
                    "time_embedding.0.",
                ),
                (
                    r"^condition_embedder\.time_embedder\.linear_2\.",
                    "time_embedding.2.",
                ),
                (r"^condition_embedder\.time_proj\.", "time_projection.1."),
                (r"^scale_shift_table$", "head.modulation"),
                (r"^proj_out\.", "head.head."),
            ],
        }
    }
}

/// Regex remaps from original Wan names to [`WanModel`] paths (the Sequential indices).
const WAN_TO_MODULE: [(&str, &str); 7] = [
    (r"^text_embedding\.0\.", "text_embedding.fc1."),
    (r"^text_embedding\.2\.", "text_embedding.fc2."),
    (r"^time_embedding\.0\.", "time_embedding.fc1."),
    (r"^time_embedding\.2\.", "time_embedding.fc2."),
    (r"^time_projection\.1\.", "time_projection.linear."),
    (r"^blocks\.(\d+)\.ffn\.0\.", "blocks.${1}.ffn.fc1."),
    (r"^blocks\.(\d+)\.ffn\.2\.", "blocks.${1}.ffn.fc2."),
];

/// The [`WanModel`] parameter path of an original Wan checkpoint key.
pub fn module_path(wan_key: &str) -> String {
    checkpoint::renamed(&WAN_TO_MODULE, wan_key)
}

fn push_linear(keys: &mut Vec<(String, Vec<usize>)>, name: &str, d_in: usize, d_out: usize) {
    keys.push((format!("{name}.weight"), vec![d_out, d_in]));
    keys.push((format!("{name}.bias"), vec![d_out]));
}

/// Every tensor of an original-name Wan checkpoint for `config`, with its PyTorch shape, in the
/// order of `WanModel.state_dict()`.
pub fn expected_keys(config: &WanConfig) -> Vec<(String, Vec<usize>)> {
    let c = config;
    let d = c.dim;
    let [pt, ph, pw] = c.patch_size;
    let mut keys: Vec<(String, Vec<usize>)> = Vec::new();
    keys.push((
        "patch_embedding.weight".into(),
        vec![d, c.in_dim, pt, ph, pw],
    ));
    keys.push(("patch_embedding.bias".into(), vec![d]));
    push_linear(&mut keys, "text_embedding.0", c.text_dim, d);
    push_linear(&mut keys, "text_embedding.2", d, d);
    push_linear(&mut keys, "time_embedding.0", c.freq_dim, d);
    push_linear(&mut keys, "time_embedding.2", d, d);
    push_linear(&mut keys, "time_projection.1", d, 6 * d);
    for i in 0..c.num_layers {
        let p = format!("blocks.{i}");
        keys.push((format!("{p}.modulation"), vec![1, 6, d]));
        for attn in ["self_attn", "cross_attn"] {
            for proj in ["q", "k", "v", "o"] {
                push_linear(&mut keys, &format!("{p}.{attn}.{proj}"), d, d);
            }
            if c.qk_norm {
                keys.push((format!("{p}.{attn}.norm_q.weight"), vec![d]));
                keys.push((format!("{p}.{attn}.norm_k.weight"), vec![d]));
            }
            if attn == "self_attn" && c.cross_attn_norm {
                keys.push((format!("{p}.norm3.weight"), vec![d]));
                keys.push((format!("{p}.norm3.bias"), vec![d]));
            }
        }
        push_linear(&mut keys, &format!("{p}.ffn.0"), d, c.ffn_dim);
        push_linear(&mut keys, &format!("{p}.ffn.2"), c.ffn_dim, d);
    }
    keys.push(("head.modulation".into(), vec![1, 2, d]));
    push_linear(&mut keys, "head.head", d, c.head_out_dim());
    keys
}

impl CheckpointFormat {
    /// How the file stores its tensors.
    fn tensor_file(&self) -> TensorFile {
        match self {
            CheckpointFormat::WanSafetensors | CheckpointFormat::DiffusersSafetensors => {
                TensorFile::Safetensors
            }
            CheckpointFormat::SelfForcingPt { top_level_key } => TensorFile::Pickle {
                top_level_key: Some(top_level_key.clone()),
            },
        }
    }
}

/// Names and shapes of the tensors in a checkpoint file, as stored.
pub fn list_tensors(
    path: &Path,
    format: &CheckpointFormat,
) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
    Ok(checkpoint::list_tensors(path, &format.tensor_file())?)
}

/// A LoRA merged into the DiT's weights at load: PEFT adapters on every Linear of every block
/// (LongLive's `lora.pt`, bare or under `generator_lora`), `W + (alpha / r)·B·A` in f32 before
/// the cast to the requested dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct DitLora {
    /// The LoRA file (`.pt` or `.safetensors`).
    pub path: PathBuf,
    /// PEFT's `lora_alpha`, which the file does not store; `None` = the rank (scale 1, as
    /// LongLive's rank 256 / alpha 256).
    pub alpha: Option<f64>,
}

impl DitLora {
    /// `path` with alpha = rank.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DitLora {
            path: path.into(),
            alpha: None,
        }
    }

    /// Sets alpha.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = Some(alpha);
        self
    }
}

/// The weights a LoRA adapts: every Linear inside a block (`self_attn` / `cross_attn` `q`, `k`,
/// `v`, `o`, `ffn.0`, `ffn.2`; LongLive's `utils/lora_utils.py` targets), original Wan names with
/// their PyTorch shapes `[out, in]`.
pub fn lora_targets(config: &WanConfig) -> Vec<(String, [usize; 2])> {
    expected_keys(config)
        .into_iter()
        .filter(|(name, shape)| {
            name.starts_with("blocks.") && name.ends_with(".weight") && shape.len() == 2
        })
        .map(|(name, shape)| (name, [shape[0], shape[1]]))
        .collect()
}

/// What a DiT for `config` reads from a file in `format`, with `lora` merged.
fn checkpoint(
    path: &Path,
    format: &CheckpointFormat,
    config: &WanConfig,
    lora: Option<&DitLora>,
) -> Checkpoint<'static> {
    let checkpoint = Checkpoint::new(path, format.tensor_file(), expected_keys(config))
        .file_names(format.to_wan_patterns())
        .module_paths(WAN_TO_MODULE);
    match lora {
        Some(lora) => checkpoint.lora(checkpoint::Lora::new(
            &lora.path,
            lora_targets(config),
            lora.alpha,
        )),
        None => checkpoint,
    }
}

/// Compares a file's tensors with [`expected_keys`]; all problems in one error.
pub fn check_checkpoint(
    path: &Path,
    format: &CheckpointFormat,
    config: &WanConfig,
) -> Result<(), ModelError> {
    check_checkpoint_with_lora(path, format, None, config)
}

/// [`check_checkpoint`], then `lora`'s adapters against [`lora_targets`] (every missing,
/// unexpected or mis-shaped adapter in one [`ModelError::Lora`]). Reads no tensor data.
pub fn check_checkpoint_with_lora(
    path: &Path,
    format: &CheckpointFormat,
    lora: Option<&DitLora>,
    config: &WanConfig,
) -> Result<(), ModelError> {
    checkpoint(path, format, config, lora).check()?;
    Ok(())
}

/// Loads a DiT for `config` from `path`, then casts its parameters to `dtype`.
pub fn load_wan_model(
    path: impl AsRef<Path>,
    format: &CheckpointFormat,
    config: &WanConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<WanModel, ModelError> {
    load_wan_model_with_lora(path, format, None, config, device, dtype)
}

/// [`load_wan_model`] with `lora` merged into the block Linears (on the host, in f32, one weight
/// at a time) before the cast to `dtype`.
pub fn load_wan_model_with_lora(
    path: impl AsRef<Path>,
    format: &CheckpointFormat,
    lora: Option<&DitLora>,
    config: &WanConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<WanModel, ModelError> {
    config.validate()?;
    let model = WanModel::new(config, &Device::flex())?;
    Ok(checkpoint(path.as_ref(), format, config, lora).load(model, dtype, device)?)
}
