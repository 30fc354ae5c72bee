//! umT5 fixtures: `t5_<x>_io.safetensors` (against the weights `t5_<x>.safetensors` and the
//! bf16 checkpoint its config names), the weight files, and `t5_<x>.pth`.

use std::path::Path;

use burn::tensor::{DType, Device, Int, Tensor};
use sf_device::{Dtype, Precision};
use sf_text::{
    LayerStreamingEncoder, Tokenized, UmT5Config, UmT5Encoder, check_checkpoint, zero_padding,
};

use super::{CheckError, Checks};
use crate::compare::{CheckResult, Tolerance, compare_tensor};
use crate::configs;
use crate::fixture::{Fixture, file_name};

const F32: Precision = Precision::uniform(Dtype::F32);

/// f32 compute; weights stored in bf16 where the device has it (else upcast on the host).
fn bf16_weights(device: &Device) -> Precision {
    let storage = if device.supports_dtype(DType::BF16) {
        Dtype::Bf16
    } else {
        Dtype::F32
    };
    Precision {
        storage,
        compute: Dtype::F32,
    }
}

struct Io<'a> {
    fx: &'a Fixture,
    config: UmT5Config,
    ids: Tensor<2, Int>,
    mask: Tensor<2, Int>,
    lengths: Vec<usize>,
    /// The fixture rows as tokenized prompts, for `encode`.
    batch: Vec<Tokenized>,
}

impl Io<'_> {
    fn check(&self, c: &mut Checks, label: &str, out: Tensor<3>, name: &str, tol: Tolerance) {
        let check = if label.is_empty() {
            name.to_string()
        } else {
            format!("{label}: {name}")
        };
        c.push(
            compare_tensor(self.fx, &check, out, name, tol)
                .unwrap_or_else(|e| CheckResult::error(&self.fx.file_name(), &check, e)),
        );
    }
}

fn open_io<'a>(fx: &'a Fixture, device: &Device) -> Result<Io<'a>, CheckError> {
    let weights = fx.sibling(&fx.file_name().replace("_io.safetensors", ".safetensors"));
    let len = *fx
        .shape("ids")?
        .get(1)
        .ok_or_else(|| CheckError::Other("ids must be [batch, length]".into()))?;
    let (ids, mask) = (fx.i64s("ids")?, fx.i64s("mask")?);
    let batch: Vec<Tokenized> = ids
        .chunks(len.max(1))
        .zip(mask.chunks(len.max(1)))
        .map(|(ids, mask)| Tokenized {
            cleaned: String::new(),
            ids: ids.iter().map(|&i| i as u32).collect(),
            mask: mask.iter().map(|&m| u8::from(m != 0)).collect(),
            len: mask.iter().filter(|&&m| m != 0).count(),
            truncated_from: None,
        })
        .collect();
    Ok(Io {
        fx,
        config: configs::umt5(&weights)?,
        ids: fx.int_tensor::<2>("ids", device)?,
        mask: fx.int_tensor::<2>("mask", device)?,
        lengths: batch.iter().map(|t| t.len).collect(),
        batch,
    })
}

/// `t5_<x>_io.safetensors`: resident and layer-streaming forwards and `encode` with the f32
/// weights against `inter.blocks.{i}`, `out`, `out_wan_zeroed`; the bf16 `.pth` (upcast to
/// f32 compute) against `out_bf16_weights`; on a device with bf16, bf16 compute within the
/// bf16 bound.
pub fn io(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run_io(fx, device, c))
}

fn run_io(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let io = open_io(fx, device)?;
    let weights = fx.sibling(&fx.file_name().replace("_io.safetensors", ".safetensors"));
    let (ids, mask) = (io.ids.clone(), io.mask.clone());
    let tol = Tolerance::F32;

    let encoder = UmT5Encoder::load(&weights, &io.config, device, F32)?;
    let (out, inter) = encoder.forward_with_intermediates(ids.clone(), mask.clone(), true)?;
    for (i, hidden) in inter.into_iter().enumerate() {
        io.check(c, "", hidden, &format!("inter.blocks.{i}"), tol);
    }
    io.check(c, "", out.clone(), "out", tol);
    io.check(c, "", zero_padding(out, &io.lengths), "out_wan_zeroed", tol);
    io.check(
        c,
        "encode()",
        encoder.encode(&io.batch)?,
        "out_wan_zeroed",
        tol,
    );
    drop(encoder);

    let streaming = LayerStreamingEncoder::open(&weights, &io.config, device, F32)?;
    let (out, inter) = streaming.forward_with_intermediates(ids.clone(), mask.clone(), true)?;
    io.check(c, "streaming", out, "out", tol);
    let last = format!("inter.blocks.{}", io.config.num_layers.saturating_sub(1));
    match inter.last() {
        Some(hidden) => io.check(c, "streaming", hidden.clone(), &last, tol),
        None => c.push(CheckResult::error(
            &c.file.clone(),
            &last,
            "no block output",
        )),
    }
    let encoded = streaming.encode(&io.batch)?;
    io.check(c, "streaming encode()", encoded, "out_wan_zeroed", tol);
    drop(streaming);

    let Some(pth) = fx.config()["bf16_checkpoint"].as_str() else {
        c.skip("out_bf16_weights", "the config names no bf16_checkpoint");
        return Ok(());
    };
    let pth = fx.sibling(pth);
    let name = file_name(&pth);
    let precision = bf16_weights(device);
    let label = format!("{name} ({} storage)", precision.storage);
    let encoder = UmT5Encoder::load(&pth, &io.config, device, precision)?;
    let out = encoder.forward(ids.clone(), mask.clone())?;
    io.check(c, &label, out, "out_bf16_weights", tol);
    drop(encoder);
    let streaming = LayerStreamingEncoder::open(&pth, &io.config, device, precision)?;
    let out = streaming.forward(ids.clone(), mask.clone())?;
    io.check(
        c,
        &format!("streaming {label}"),
        out,
        "out_bf16_weights",
        tol,
    );
    drop(streaming);

    let label = format!("{name}, bf16 compute");
    if !device.supports_dtype(DType::BF16) {
        c.skip(
            format!("{label}: out_bf16_weights"),
            "the device has no bf16",
        );
        return Ok(());
    }
    let encoder = UmT5Encoder::load(&pth, &io.config, device, Precision::uniform(Dtype::Bf16))?;
    let out = encoder.forward(ids, mask)?;
    io.check(c, &label, out, "out_bf16_weights", Tolerance::BF16_COMPUTE);
    Ok(())
}

/// A `t5_<x>.safetensors` weight file: every key and shape of its configuration; it loads.
pub fn weights(fx: &Fixture, device: &Device) -> Checks {
    let file = fx.file_name();
    let outcome = configs::umt5(fx)
        .map_err(CheckError::from)
        .and_then(|config| {
            UmT5Encoder::load(fx.path(), &config, device, F32)
                .map(drop)
                .map_err(CheckError::from)
        });
    let mut c = Checks::new(&file);
    c.push(CheckResult::from_outcome(
        &file,
        "loads: every key, every shape",
        outcome,
    ));
    c
}

/// `t5_<x>.pth`: every key and shape of the configuration of `t5_<x>.safetensors`.
pub fn pth_keys(path: &Path) -> Checks {
    let file = file_name(path);
    let weights = path.with_extension("safetensors");
    let outcome = configs::umt5(&weights)
        .map_err(CheckError::from)
        .and_then(|config| Ok(check_checkpoint(path, &config).map(drop)?));
    let mut c = Checks::new(&file);
    c.push(CheckResult::from_outcome(
        &file,
        "key check: every key, every shape",
        outcome,
    ));
    c
}
