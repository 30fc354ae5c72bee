//! Text-encoder fixtures: `t5_*_io.safetensors` (with the weights `t5_*.safetensors` and the bf16
//! checkpoint its config names), the weight files themselves, and the tokenizer golden file.

use std::path::Path;

use burn::tensor::{DType, Device};
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};
use sf_device::{Dtype, Precision};
use sf_text::{
    LayerStreamingEncoder, TextError, UmT5Encoder, UmT5Tokenizer, check_checkpoint, clean_prompt,
    config_from_safetensors_metadata, zero_padding,
};

use super::ParityReport;
use crate::PipelineError;

fn text(e: TextError) -> PipelineError {
    PipelineError::Config(e.to_string())
}

fn sibling(path: &Path, name: &str) -> std::path::PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(name)
}

fn passed(file: &str, check: &str) -> CheckResult {
    CheckResult {
        file: file.to_string(),
        check: check.to_string(),
        max_abs_diff: 0.0,
        bound: 0.0,
        passed: true,
        note: None,
    }
}

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

/// `t5_<x>_io.safetensors`: resident and streaming forwards against `out`, `out_wan_zeroed`,
/// `inter.blocks.{i}` (weights `t5_<x>.safetensors`) and `out_bf16_weights` (the `.pth`).
pub(super) fn io_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let weights = sibling(fx.path(), &file.replace("_io.safetensors", ".safetensors"));
    let config = config_from_safetensors_metadata(&weights).map_err(text)?;
    let ids = fx.int_tensor::<2>("ids", device)?;
    let mask = fx.int_tensor::<2>("mask", device)?;
    let len = fx.shape("mask")?[1];
    let lengths: Vec<usize> = fx
        .i64s("mask")?
        .chunks(len.max(1))
        .map(|row| row.iter().filter(|&&m| m != 0).count())
        .collect();
    let mut push = |check: String, values: Vec<f32>, name: &str| -> Result<(), PipelineError> {
        let reference = fx.f32s(name)?;
        report.results.push(compare_f32(
            &file,
            &check,
            &values,
            &reference,
            Tolerance::F32,
        ));
        Ok(())
    };

    let f32 = Precision::uniform(Dtype::F32);
    let encoder = UmT5Encoder::load(&weights, &config, device, f32).map_err(text)?;
    let (out, inter) = encoder
        .forward_with_intermediates(ids.clone(), mask.clone(), true)
        .map_err(text)?;
    drop(encoder);
    for (i, hidden) in inter.into_iter().enumerate() {
        let name = format!("inter.blocks.{i}");
        push(name.clone(), to_f32s(hidden), &name)?;
    }
    push("out".into(), to_f32s(out.clone()), "out")?;
    let zeroed = zero_padding(out, &lengths);
    push("out_wan_zeroed".into(), to_f32s(zeroed), "out_wan_zeroed")?;

    let streaming = LayerStreamingEncoder::open(&weights, &config, device, f32).map_err(text)?;
    let out = streaming.forward(ids.clone(), mask.clone()).map_err(text)?;
    push("streaming: out".into(), to_f32s(out), "out")?;

    if let Some(pth) = fx.config()["bf16_checkpoint"].as_str() {
        let pth = sibling(fx.path(), pth);
        let precision = bf16_weights(device);
        let encoder = UmT5Encoder::load(&pth, &config, device, precision).map_err(text)?;
        let out = encoder.forward(ids.clone(), mask.clone()).map_err(text)?;
        push(
            format!(
                "bf16 .pth ({} storage): out_bf16_weights",
                precision.storage
            ),
            to_f32s(out),
            "out_bf16_weights",
        )?;
        let streaming =
            LayerStreamingEncoder::open(&pth, &config, device, precision).map_err(text)?;
        let out = streaming.forward(ids, mask).map_err(text)?;
        push(
            "streaming bf16 .pth: out_bf16_weights".into(),
            to_f32s(out),
            "out_bf16_weights",
        )?;
    }
    Ok(())
}

/// `t5_<x>.safetensors`: every key and shape of its configuration; loads.
pub(super) fn weights_check(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let check = "loads: every key, every shape";
    let result = config_from_safetensors_metadata(fx.path()).and_then(|config| {
        UmT5Encoder::load(fx.path(), &config, device, Precision::uniform(Dtype::F32)).map(|_| ())
    });
    report.results.push(match result {
        Ok(()) => passed(&file, check),
        Err(err) => CheckResult::error(&file, check, err),
    });
    Ok(())
}

/// Files that are not safetensors fixtures: `t5_<x>.pth`, `umt5_tokenizer_golden.json`,
/// `umt5_tokenizer.json.xz`. Returns whether the file was recognised.
pub(super) fn run_other(path: &Path, name: &str, report: &mut ParityReport) -> bool {
    if name.starts_with("t5_") && name.ends_with(".pth") {
        let check = "key check: every key, every shape";
        let weights = sibling(path, &name.replace(".pth", ".safetensors"));
        let result = config_from_safetensors_metadata(&weights)
            .and_then(|config| check_checkpoint(path, &config));
        report.results.push(match result {
            Ok(_) => passed(name, check),
            Err(err) => CheckResult::error(name, check, err),
        });
        true
    } else if name == "umt5_tokenizer_golden.json" {
        if let Err(err) = tokenizer_golden(path, name, report) {
            report.results.push(CheckResult::error(name, "load", err));
        }
        true
    } else if name == "umt5_tokenizer.json.xz" {
        report.skipped.push((
            name.to_string(),
            "xz decoding needs lzma-rs, which only sf-text's tests depend on; its ids are checked \
             against umt5_tokenizer_golden.json by sf-text/tests/tokenizer_golden.rs"
                .into(),
        ));
        true
    } else {
        false
    }
}

/// Wan's cleaning for every golden case; the ids when an uncompressed `umt5_tokenizer.json` lies
/// next to the golden file.
fn tokenizer_golden(path: &Path, name: &str, report: &mut ParityReport) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let golden: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let cases = golden["cases"]
        .as_array()
        .ok_or("the golden file has no cases")?;
    let cleaned_wrong = cases
        .iter()
        .filter(|c| {
            let prompt = c["prompt"].as_str().unwrap_or_default();
            c["cleaned"].as_str() != Some(clean_prompt(prompt).as_str())
        })
        .count();
    report.results.push(CheckResult {
        passed: cleaned_wrong == 0,
        max_abs_diff: cleaned_wrong as f64,
        ..passed(
            name,
            &format!("cleaned text, {} cases (exact)", cases.len()),
        )
    });
    let json = sibling(path, "umt5_tokenizer.json");
    if !json.exists() {
        report.skipped.push((
            format!("{name}: token ids"),
            "no uncompressed umt5_tokenizer.json next to it (decompress the .json.xz there to \
             check the ids here; sf-text's tests check them)"
                .into(),
        ));
        return Ok(());
    }
    let max_length = golden["max_length"].as_u64().unwrap_or(512) as usize;
    let tokenizer = UmT5Tokenizer::from_file(&json, max_length).map_err(|e| e.to_string())?;
    let mut wrong = 0usize;
    for case in cases {
        let t = tokenizer
            .encode(case["prompt"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let want: Vec<u64> = case["ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        let got: Vec<u64> = t.ids[..t.len].iter().map(|&i| i as u64).collect();
        let truncated = case["truncated"].as_bool() == Some(t.truncated_from.is_some());
        if got != want || !truncated {
            wrong += 1;
        }
    }
    report.results.push(CheckResult {
        passed: wrong == 0,
        max_abs_diff: wrong as f64,
        ..passed(name, &format!("token ids, {} cases (exact)", cases.len()))
    });
    Ok(())
}
