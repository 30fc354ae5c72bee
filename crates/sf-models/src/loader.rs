//! Loading DiT weights from Wan safetensors, diffusers safetensors or a Self-Forcing `.pt`.
//!
//! Every load first compares the file's tensor names and shapes with [`expected_keys`] and
//! reports all missing, unexpected and mis-shaped tensors in one [`ModelError::Checkpoint`].
//! Names are then remapped to the module's paths (see [`module_path`]) and applied through
//! `burn::store` (Linear weights are transposed by the PyTorch adapter); the loaded parameters
//! are finally cast to the requested dtype.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::module::Module;
use burn::store::pytorch_reader::PytorchReader;
use burn::store::{
    KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use sf_device::{Dtype, cast_module};

use crate::config::WanConfig;
use crate::model::WanModel;
use crate::{CheckpointProblems, ModelError};

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

fn remapper(patterns: &[(&str, &str)]) -> Result<KeyRemapper, ModelError> {
    KeyRemapper::from_patterns(patterns.to_vec())
        .map_err(|e| ModelError::Config(format!("invalid key pattern: {e}")))
}

fn rename(remapper: &KeyRemapper, name: &str) -> String {
    let mut out = name.to_string();
    for (re, replacement) in remapper.to_regex_pairs() {
        out = re.replace_all(&out, replacement.as_str()).into_owned();
    }
    out
}

/// The [`WanModel`] parameter path of an original Wan checkpoint key.
pub fn module_path(wan_key: &str) -> String {
    match remapper(&WAN_TO_MODULE) {
        Ok(r) => rename(&r, wan_key),
        Err(_) => wan_key.to_string(),
    }
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

/// Reads the JSON header of a safetensors file (without reading the tensors).
fn safetensors_header(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, ModelError> {
    let load = |message: String| ModelError::Load {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {message}"),
    };
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::Load {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| load(e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > 100 * 1024 * 1024 {
        return Err(load(format!("header of {n} bytes")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| load(e.to_string()))?;
    match serde_json::from_slice(&header).map_err(|e| load(e.to_string()))? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(load("the header is not a JSON object".into())),
    }
}

/// Names and shapes of the tensors in a checkpoint file, as stored.
pub fn list_tensors(
    path: &Path,
    format: &CheckpointFormat,
) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
    let load = |message: String| ModelError::Load {
        path: path.to_path_buf(),
        message,
    };
    match format {
        CheckpointFormat::WanSafetensors | CheckpointFormat::DiffusersSafetensors => {
            let header = safetensors_header(path)?;
            let mut out = BTreeMap::new();
            for (name, info) in header.iter().filter(|(k, _)| *k != "__metadata__") {
                let shape = info["shape"]
                    .as_array()
                    .and_then(|s| s.iter().map(|v| v.as_u64().map(|v| v as usize)).collect())
                    .ok_or_else(|| load(format!("tensor '{name}' has no valid shape")))?;
                out.insert(name.clone(), shape);
            }
            Ok(out)
        }
        CheckpointFormat::SelfForcingPt { top_level_key } => {
            let reader = PytorchReader::with_top_level_key(path, top_level_key)
                .map_err(|e| load(format!("cannot read entry '{top_level_key}': {e}")))?;
            Ok(reader
                .tensors()
                .iter()
                .map(|(name, t)| (name.clone(), t.shape().to_vec()))
                .collect())
        }
    }
}

/// Compares a file's tensors with [`expected_keys`]; all problems in one error.
pub fn check_checkpoint(
    path: &Path,
    format: &CheckpointFormat,
    config: &WanConfig,
) -> Result<(), ModelError> {
    let file = list_tensors(path, format)?;
    let to_wan = remapper(&format.to_wan_patterns())?;
    let expected: BTreeMap<String, Vec<usize>> = expected_keys(config).into_iter().collect();
    let mut problems = CheckpointProblems::default();
    let mut seen = std::collections::BTreeSet::new();
    for (name, shape) in &file {
        let wan = rename(&to_wan, name);
        match expected.get(&wan) {
            None => problems.unexpected.push(name.clone()),
            Some(want) => {
                if !seen.insert(wan.clone()) {
                    problems
                        .unexpected
                        .push(format!("{name} (duplicate of {wan})"));
                } else if want != shape {
                    problems
                        .mismatched
                        .push((name.clone(), want.clone(), shape.clone()));
                }
            }
        }
    }
    problems.missing = expected
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Loads a DiT for `config` from `path`, then casts its parameters to `dtype`.
pub fn load_wan_model(
    path: impl AsRef<Path>,
    format: &CheckpointFormat,
    config: &WanConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<WanModel, ModelError> {
    let path = path.as_ref();
    config.validate()?;
    check_checkpoint(path, format, config)?;
    // Read and cast on the host: burn keeps a checkpoint's dtype on load, and that dtype (bf16)
    // may be one the target device cannot run (wgpu has no bf16).
    let host = Device::flex();
    let mut model = WanModel::new(config, &host)?;
    let mut patterns = format.to_wan_patterns();
    patterns.extend(WAN_TO_MODULE);
    let load = |message: String| ModelError::Load {
        path: path.to_path_buf(),
        message,
    };
    let result = match format {
        CheckpointFormat::WanSafetensors | CheckpointFormat::DiffusersSafetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remapper(&patterns)?)
                .allow_partial(true)
                .validate(false);
            model
                .load_from(&mut store)
                .map_err(|e| load(e.to_string()))?
        }
        CheckpointFormat::SelfForcingPt { top_level_key } => {
            let mut store = PytorchStore::from_file(path)
                .with_top_level_key(top_level_key.as_str())
                .map_indices_contiguous(false)
                .remap(remapper(&patterns)?)
                .allow_partial(true)
                .validate(false);
            model
                .load_from(&mut store)
                .map_err(|e| load(e.to_string()))?
        }
    };
    // The key check above makes these empty; kept so no parameter can stay uninitialised.
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        let problems = CheckpointProblems {
            missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
            unexpected: result.unused.clone(),
            mismatched: Vec::new(),
            other: result.errors.iter().map(|e| e.to_string()).collect(),
        };
        return Err(ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems,
        });
    }
    let model = cast_module(model, dtype);
    Ok(if *device == host {
        model
    } else {
        model.to_device(device)
    })
}

/// The `WanModel` configuration stored in a safetensors file's metadata as the fixtures do it
/// (`__metadata__.fixture` = JSON with a `config` object). Reads only the header.
pub fn config_from_safetensors_metadata(path: impl AsRef<Path>) -> Result<WanConfig, ModelError> {
    let path = path.as_ref();
    let header = safetensors_header(path)?;
    let fixture = header
        .get("__metadata__")
        .and_then(|m| m.get("fixture"))
        .and_then(|f| f.as_str())
        .ok_or_else(|| ModelError::Load {
            path: path.to_path_buf(),
            message: "no __metadata__.fixture entry".into(),
        })?;
    let json: serde_json::Value = serde_json::from_str(fixture).map_err(|e| ModelError::Load {
        path: path.to_path_buf(),
        message: format!("__metadata__.fixture is not JSON: {e}"),
    })?;
    WanConfig::from_fixture_config(&json["config"])
}
