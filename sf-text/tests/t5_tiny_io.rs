//! The umT5 encoder against `t5_tiny_io.safetensors`: f32 weights (`t5_tiny.safetensors`) and
//! bf16 weights (`t5_tiny.pth`, upcast exactly) give `out`, `out_wan_zeroed`, every
//! `inter.blocks.{i}` and `out_bf16_weights`, resident and layer-streaming, on Flex and wgpu.
//! The configuration comes from the fixtures' metadata.

use crate::common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};
use sf_text::{
    Dtype, LayerStreamingEncoder, Precision, TextError, Tokenized, UmT5Config, UmT5Encoder,
    config_from_safetensors_metadata, zero_padding,
};

struct Io {
    fx: Fixture,
    config: UmT5Config,
}

fn io() -> Io {
    let fx = Fixture::open(common::fixture("t5_tiny_io.safetensors")).unwrap();
    let config = config_from_safetensors_metadata(common::fixture("t5_tiny.safetensors")).unwrap();
    Io { fx, config }
}

impl Io {
    fn inputs(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        (
            self.fx.int_tensor::<2>("ids", device).unwrap(),
            self.fx.int_tensor::<2>("mask", device).unwrap(),
        )
    }

    fn lengths(&self) -> Vec<usize> {
        let l = self.fx.shape("mask").unwrap()[1];
        let mask = self.fx.i64s("mask").unwrap();
        mask.chunks(l)
            .map(|r| r.iter().filter(|&&m| m != 0).count())
            .collect()
    }

    fn check(&self, label: &str, out: Tensor<3>, name: &str, tol: Tolerance) -> CheckResult {
        let r = compare_f32(
            label,
            name,
            &to_f32s(out),
            &self.fx.f32s(name).unwrap(),
            tol,
        );
        println!("{r}");
        r
    }
}

fn pass(results: &[CheckResult]) {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

const F32: Precision = Precision::uniform(Dtype::F32);
const BF16_STORED: Precision = Precision {
    storage: Dtype::Bf16,
    compute: Dtype::F32,
};

/// Every f32 check of one device: resident and streaming, f32 and bf16 weights.
fn f32_checks(io: &Io, device: &Device, bf16_storage: bool) -> Vec<CheckResult> {
    let weights = common::fixture("t5_tiny.safetensors");
    let pth = common::fixture(io.fx.config()["bf16_checkpoint"].as_str().unwrap());
    let mut results = Vec::new();
    let (ids, mask) = io.inputs(device);

    let enc = UmT5Encoder::load(&weights, &io.config, device, F32).unwrap();
    let (out, inter) = enc
        .forward_with_intermediates(ids.clone(), mask.clone(), true)
        .unwrap();
    assert_eq!(inter.len(), io.config.num_layers);
    for (i, h) in inter.into_iter().enumerate() {
        results.push(io.check(
            "resident f32",
            h,
            &format!("inter.blocks.{i}"),
            Tolerance::F32,
        ));
    }
    results.push(io.check("resident f32", out.clone(), "out", Tolerance::F32));
    let zeroed = zero_padding(out, &io.lengths());
    results.push(io.check("resident f32", zeroed, "out_wan_zeroed", Tolerance::F32));

    // Tokenized prompts built from the fixture rows go through `encode`.
    let l = io.fx.shape("ids").unwrap()[1];
    let batch: Vec<Tokenized> = io
        .fx
        .i64s("ids")
        .unwrap()
        .chunks(l)
        .zip(io.fx.i64s("mask").unwrap().chunks(l))
        .map(|(ids, mask)| Tokenized {
            cleaned: String::new(),
            ids: ids.iter().map(|&i| i as u32).collect(),
            mask: mask.iter().map(|&m| m as u8).collect(),
            len: mask.iter().filter(|&&m| m != 0).count(),
            truncated_from: None,
        })
        .collect();
    let encoded = enc.encode(&batch).unwrap();
    results.push(io.check("encode()", encoded, "out_wan_zeroed", Tolerance::F32));
    drop(enc);

    let storage = if bf16_storage { BF16_STORED } else { F32 };
    let enc = UmT5Encoder::load(&pth, &io.config, device, storage).unwrap();
    let out = enc.forward(ids.clone(), mask.clone()).unwrap();
    results.push(io.check("resident .pth", out, "out_bf16_weights", Tolerance::F32));

    // f32 weights stay f32 (rounding them to bf16 would move the output by ~2e-2).
    for (label, path, want, precision) in [
        ("streaming safetensors", &weights, "out", F32),
        ("streaming .pth", &pth, "out_bf16_weights", storage),
    ] {
        let enc = LayerStreamingEncoder::open(path, &io.config, device, precision).unwrap();
        let (out, inter) = enc
            .forward_with_intermediates(ids.clone(), mask.clone(), true)
            .unwrap();
        results.push(io.check(label, out, want, Tolerance::F32));
        if want == "out" {
            let last = format!("inter.blocks.{}", io.config.num_layers - 1);
            results.push(io.check(label, inter.last().unwrap().clone(), &last, Tolerance::F32));
        }
        let encoded = enc.encode(&batch).unwrap();
        if want == "out" {
            results.push(io.check(label, encoded, "out_wan_zeroed", Tolerance::F32));
        }
    }
    results
}

#[test]
fn f32_parity_on_flex() {
    let io = io();
    pass(&f32_checks(&io, &Device::flex(), true));
}

#[test]
fn bf16_compute_on_flex_meets_the_bf16_bound() {
    let io = io();
    let device = Device::flex();
    let pth = common::fixture("t5_tiny.pth");
    let (ids, mask) = io.inputs(&device);
    let enc =
        UmT5Encoder::load(&pth, &io.config, &device, Precision::uniform(Dtype::Bf16)).unwrap();
    let out = to_f32s(enc.forward(ids, mask).unwrap());
    let reference = io.fx.f32s("out_bf16_weights").unwrap();
    let r = compare_f32(
        "bf16 compute",
        "out_bf16_weights",
        &out,
        &reference,
        Tolerance::BF16_COMPUTE,
    );
    println!("{r}");
    assert!(r.passed, "{r}");
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mean = out
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / out.len() as f32;
    assert!(mean <= 5e-3 * max_ref, "mean |diff| {mean}");
}

#[test]
fn bad_inputs_are_errors() {
    let io = io();
    let device = Device::flex();
    let enc = UmT5Encoder::load(
        common::fixture("t5_tiny.safetensors"),
        &io.config,
        &device,
        F32,
    )
    .unwrap();
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(vec![5i64, io.config.vocab as i64], [1, 2]),
        &device,
    );
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1], [1, 2]), &device);
    assert!(matches!(
        enc.forward(ids, mask.clone()),
        Err(TextError::InvalidInput(_))
    ));
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7], [1, 3]), &device);
    assert!(matches!(
        enc.forward(ids, mask),
        Err(TextError::InvalidInput(_))
    ));
    assert!(matches!(enc.encode(&[]), Err(TextError::InvalidInput(_))));
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn f32_parity_on_wgpu() {
    let Some(device) = common::wgpu_device() else {
        return;
    };
    let io = io();
    // wgpu has no bf16: the .pth weights are upcast on the host and stored in f32.
    pass(&f32_checks(&io, &device, false));
    let err = UmT5Encoder::load(
        common::fixture("t5_tiny.pth"),
        &io.config,
        &device,
        BF16_STORED,
    );
    assert!(
        matches!(err, Err(TextError::UnsupportedDtype { .. })),
        "{err:?}"
    );
}

/// The tiny encoder with block 0's feed-forward output matrix scaled so that its largest weight
/// is `largest` (f32 safetensors).
fn scaled_ffn_checkpoint(largest: f32) -> std::path::PathBuf {
    let source = Fixture::open(common::fixture("t5_tiny.safetensors")).unwrap();
    let scaled = "blocks.0.ffn.fc2.weight";
    let peak = source
        .f32s(scaled)
        .unwrap()
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let scale = largest / peak;
    let names: Vec<String> = source.names().into_iter().map(String::from).collect();
    let declared: Vec<(String, &str, Vec<usize>)> = names
        .iter()
        .map(|n| (n.clone(), "F32", source.shape(n).unwrap()))
        .collect();
    let path = common::temp_dir("fp16-overflow").join("t5_scaled.safetensors");
    let mut w =
        sf_device::safetensors::Writer::create(&path, &declared, &Default::default()).unwrap();
    for name in &names {
        let factor = if name == scaled { scale } else { 1.0 };
        let bytes: Vec<u8> = source
            .f32s(name)
            .unwrap()
            .into_iter()
            .flat_map(|v| (v * factor).to_le_bytes())
            .collect();
        w.write(name, &bytes).unwrap();
    }
    w.finish().unwrap();
    path
}

#[test]
fn f16_compute_clamps_like_wan_instead_of_overflowing() {
    let io = io();
    let device = Device::flex();
    // Weights f16 can hold (3e4), whose products it cannot.
    let path = scaled_ffn_checkpoint(3e4);
    let (ids, mask) = io.inputs(&device);
    // In f32 the scaled block produces values f16 cannot hold: the overflow is real.
    let f32_enc = UmT5Encoder::load(&path, &io.config, &device, F32).unwrap();
    let (_, inter) = f32_enc
        .forward_with_intermediates(ids.clone(), mask.clone(), true)
        .unwrap();
    let block0 = to_f32s(inter[0].clone());
    assert!(
        block0.iter().any(|v| v.abs() >= 65520.0),
        "the test needs a residual beyond f16's range"
    );
    // In f16 the residual is clamped after the feed-forward (Wan's fp16_clamp): finite output,
    // and block 0 ends within ±(f16::MAX - 1000).
    let precision = Precision {
        storage: Dtype::F32,
        compute: Dtype::F16,
    };
    let enc = UmT5Encoder::load(&path, &io.config, &device, precision).unwrap();
    let (out, inter) = enc.forward_with_intermediates(ids, mask, true).unwrap();
    let block0 = to_f32s(inter[0].clone());
    let largest = block0.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        (largest - sf_text::block::FP16_CLAMP).abs() < 1.0,
        "block 0 peaks at {largest}"
    );
    let out = to_f32s(out);
    assert!(out.iter().all(|v| v.is_finite()), "non-finite f16 output");
}
