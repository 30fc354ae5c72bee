//! The umT5 encoder against `t5_tiny_io.safetensors` ([`sf_testkit::checks::text`]): f32
//! weights (`t5_tiny.safetensors`) and bf16 weights (`t5_tiny.pth`, upcast exactly) give `out`,
//! `out_wan_zeroed`, every `inter.blocks.{i}` and `out_bf16_weights`, resident and
//! layer-streaming, on Flex and wgpu, and bf16 compute meets the bf16 bound on Flex; bad inputs
//! are errors and f16 compute clamps like Wan. The configuration comes from the fixtures'
//! metadata.

use crate::common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sf_testkit::checks::text;
use sf_testkit::{Fixture, open_workspace_fixture, to_f32s};
use sf_text::{Dtype, Precision, TextError, UmT5Encoder};

const F32: Precision = Precision::uniform(Dtype::F32);
const BF16_STORED: Precision = Precision {
    storage: Dtype::Bf16,
    compute: Dtype::F32,
};

#[test]
fn parity_on_flex() {
    let fx = open_workspace_fixture("t5_tiny_io.safetensors");
    // Flex has bf16: nothing is skipped, the bf16-compute check included.
    text::io(&fx, &Device::flex()).assert_complete();
}

#[test]
fn bad_inputs_are_errors() {
    let config = common::tiny_config();
    let device = Device::flex();
    let enc = UmT5Encoder::load(
        common::fixture("t5_tiny.safetensors"),
        &config,
        &device,
        F32,
    )
    .unwrap();
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(vec![5i64, config.vocab as i64], [1, 2]),
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
fn parity_on_wgpu() {
    let Some(device) = common::wgpu_device() else {
        return;
    };
    // wgpu has no bf16: the .pth weights are upcast on the host and stored in f32, and the
    // bf16-compute check is skipped.
    let checks = text::io(&open_workspace_fixture("t5_tiny_io.safetensors"), &device);
    checks.assert_passed();
    assert_eq!(checks.skipped.len(), 1, "{:?}", checks.skipped);
    let err = UmT5Encoder::load(
        common::fixture("t5_tiny.pth"),
        &common::tiny_config(),
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
    let fx = open_workspace_fixture("t5_tiny_io.safetensors");
    let config = common::tiny_config();
    let device = Device::flex();
    // Weights f16 can hold (3e4), whose products it cannot.
    let path = scaled_ffn_checkpoint(3e4);
    let ids = fx.int_tensor::<2>("ids", &device).unwrap();
    let mask = fx.int_tensor::<2>("mask", &device).unwrap();
    // In f32 the scaled block produces values f16 cannot hold: the overflow is real.
    let f32_enc = UmT5Encoder::load(&path, &config, &device, F32).unwrap();
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
    let enc = UmT5Encoder::load(&path, &config, &device, precision).unwrap();
    let (out, inter) = enc.forward_with_intermediates(ids, mask, true).unwrap();
    let block0 = to_f32s(inter[0].clone());
    let largest = block0.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        (largest - sf_text::FP16_CLAMP).abs() < 1.0,
        "block 0 peaks at {largest}"
    );
    let out = to_f32s(out);
    assert!(out.iter().all(|v| v.is_finite()), "non-finite f16 output");
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}
