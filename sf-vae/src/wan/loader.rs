//! Loading `Wan2.1_VAE.pth` (a `torch.save` state dict) or a safetensors file with the same
//! names.
//!
//! This file holds the key table ([`expected_keys`]), the remaps to the module's paths
//! ([`module_path`]: the `Sequential` indices `residual.{0,2,3,6}`, `head.{0,2}` and `resample.1`
//! get names) and the decoder half ([`is_decoder_key`]); [`sf_device::Checkpoint`] checks and
//! loads with them (every missing, unexpected and mis-shaped tensor in one
//! [`VaeError::Checkpoint`], parameters cast on the host, then moved). The RMS-norm gains keep
//! their checkpoint name `gamma`; burn's PyTorch adapter leaves them alone because the norm
//! structs are not named like burn's own norms.

use std::path::Path;

use burn::tensor::Device;
use sf_device::Dtype;
use sf_device::checkpoint::{self, Checkpoint, TensorFile};

use super::blocks::VaeBlock;
use super::causal_conv::CausalConv3d;
use super::config::WanVaeConfig;
use super::model::{VaeParts, WanVae};
use crate::VaeError;

/// Regex remaps from checkpoint names to [`WanVae`] parameter paths.
const CHECKPOINT_TO_MODULE: [(&str, &str); 7] = [
    (r"\.residual\.0\.", ".norm1."),
    (r"\.residual\.2\.", ".conv1."),
    (r"\.residual\.3\.", ".norm2."),
    (r"\.residual\.6\.", ".conv2."),
    (r"^(encoder|decoder)\.head\.0\.", "${1}.head_norm."),
    (r"^(encoder|decoder)\.head\.2\.", "${1}.head_conv."),
    (r"\.resample\.1\.", ".resample."),
];

/// The [`WanVae`] parameter path of a checkpoint key.
pub fn module_path(key: &str) -> String {
    checkpoint::renamed(&CHECKPOINT_TO_MODULE, key)
}

/// Whether a checkpoint key belongs to the decoder half: `decoder.*` or the top-level `conv2.*`.
/// (The demo's substring test `'conv2' in k` would also keep the encoder's residual
/// `…conv2…` tensors, which the decoder does not use.)
pub fn is_decoder_key(key: &str) -> bool {
    key.starts_with("decoder.") || key.starts_with("conv2.")
}

fn push_conv(keys: &mut Vec<(String, Vec<usize>)>, name: &str, conv: &CausalConv3d) {
    keys.push((
        format!("{name}.weight"),
        conv.weight.lazy_shape().dims::<5>().to_vec(),
    ));
    keys.push((
        format!("{name}.bias"),
        conv.bias.lazy_shape().dims::<1>().to_vec(),
    ));
}

fn push_blocks(keys: &mut Vec<(String, Vec<usize>)>, prefix: &str, blocks: &[VaeBlock]) {
    for (i, block) in blocks.iter().enumerate() {
        let p = format!("{prefix}.{i}");
        match block {
            VaeBlock::Residual(r) => {
                let c_in = r.norm1.gamma.lazy_shape().dims::<4>()[0];
                let c_out = r.norm2.gamma.lazy_shape().dims::<4>()[0];
                keys.push((format!("{p}.residual.0.gamma"), vec![c_in, 1, 1, 1]));
                push_conv(keys, &format!("{p}.residual.2"), &r.conv1);
                keys.push((format!("{p}.residual.3.gamma"), vec![c_out, 1, 1, 1]));
                push_conv(keys, &format!("{p}.residual.6"), &r.conv2);
                if let Some(s) = &r.shortcut {
                    push_conv(keys, &format!("{p}.shortcut"), s);
                }
            }
            VaeBlock::Attention(a) => {
                let c = a.norm.gamma.lazy_shape().dims::<3>()[0];
                keys.push((format!("{p}.norm.gamma"), vec![c, 1, 1]));
                for (name, layer) in [("to_qkv", &a.to_qkv), ("proj", &a.proj)] {
                    let w = layer.weight.lazy_shape().dims::<4>().to_vec();
                    keys.push((format!("{p}.{name}.weight"), w.clone()));
                    keys.push((format!("{p}.{name}.bias"), vec![w[0]]));
                }
            }
            VaeBlock::Resample(r) => {
                let w = r.resample.weight.lazy_shape().dims::<4>().to_vec();
                keys.push((format!("{p}.resample.1.weight"), w.clone()));
                keys.push((format!("{p}.resample.1.bias"), vec![w[0]]));
                if let Some(t) = &r.time_conv {
                    push_conv(keys, &format!("{p}.time_conv"), t);
                }
            }
        }
    }
}

/// Every tensor of a `Wan2.1_VAE.pth`-style checkpoint for `config` (restricted to the decoder
/// half for [`VaeParts::DecoderOnly`]), with its PyTorch shape. Shapes are read from a module
/// built on the host, whose parameters stay uninitialised (nothing is allocated).
pub fn expected_keys(
    config: &WanVaeConfig,
    parts: VaeParts,
) -> Result<Vec<(String, Vec<usize>)>, VaeError> {
    let vae = WanVae::new(config, parts, &Device::flex())?;
    let mut keys = Vec::new();
    if let Some(enc) = &vae.encoder {
        push_conv(&mut keys, "encoder.conv1", &enc.conv1);
        push_blocks(&mut keys, "encoder.downsamples", &enc.downsamples);
        push_blocks(&mut keys, "encoder.middle", &enc.middle);
        keys.push((
            "encoder.head.0.gamma".into(),
            enc.head_norm.gamma.lazy_shape().dims::<4>().to_vec(),
        ));
        push_conv(&mut keys, "encoder.head.2", &enc.head_conv);
    }
    if let Some(conv1) = &vae.conv1 {
        push_conv(&mut keys, "conv1", conv1);
    }
    push_conv(&mut keys, "conv2", &vae.conv2);
    let dec = &vae.decoder;
    push_conv(&mut keys, "decoder.conv1", &dec.conv1);
    push_blocks(&mut keys, "decoder.middle", &dec.middle);
    push_blocks(&mut keys, "decoder.upsamples", &dec.upsamples);
    keys.push((
        "decoder.head.0.gamma".into(),
        dec.head_norm.gamma.lazy_shape().dims::<4>().to_vec(),
    ));
    push_conv(&mut keys, "decoder.head.2", &dec.head_conv);
    Ok(keys)
}

/// What a VAE for `config` reads from `path`: for [`VaeParts::DecoderOnly`] only the decoder
/// half (the file's encoder tensors are ignored).
fn checkpoint(
    path: &Path,
    config: &WanVaeConfig,
    parts: VaeParts,
) -> Result<Checkpoint<'static>, VaeError> {
    let weights = Checkpoint::new(
        path,
        TensorFile::from_extension(path),
        expected_keys(config, parts)?,
    )
    .module_paths(CHECKPOINT_TO_MODULE);
    Ok(match parts {
        VaeParts::Full => weights,
        VaeParts::DecoderOnly => weights.only(is_decoder_key),
    })
}

/// Compares a checkpoint's tensors with [`expected_keys`]; all problems in one error. For
/// [`VaeParts::DecoderOnly`] the file's encoder tensors are ignored.
pub fn check_checkpoint(
    path: &Path,
    config: &WanVaeConfig,
    parts: VaeParts,
) -> Result<(), VaeError> {
    checkpoint(path, config, parts)?.check()?;
    Ok(())
}

/// Loads a VAE for `config` from a `.pth` / `.pt` pickle or a `.safetensors` file (recognised
/// from its first bytes), casts its parameters to `dtype` on the host and moves it to `device`.
pub fn load_wan_vae(
    path: impl AsRef<Path>,
    config: &WanVaeConfig,
    parts: VaeParts,
    device: &Device,
    dtype: Dtype,
) -> Result<WanVae, VaeError> {
    let path = path.as_ref();
    config.validate()?;
    let vae = WanVae::new(config, parts, &Device::flex())?;
    Ok(checkpoint(path, config, parts)?.load(vae, dtype, device)?)
}
