//! What the active device can do, so callers turn off what it lacks and tell the user why (the
//! Apple Silicon guide's "automatically disables incompatible features").

use serde::{Deserialize, Serialize};

use crate::{BackendKind, Dtype, SelectedDevice};

/// Capabilities of one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The backend.
    pub backend: BackendKind,
    /// The device's name, for messages.
    pub device_name: String,
    /// f16 tensors run.
    pub f16: bool,
    /// bf16 tensors run (never on wgpu: its shader compilers have no bf16 in burn 0.22).
    pub bf16: bool,
    /// Attention runs without materialising the score matrix (Flex's tiled kernel, cubecl's
    /// flash-attention kernels chosen by autotune).
    pub fused_attention: bool,
    /// burn's kernel fusion (the counterpart of torch.compile).
    pub fusion: bool,
    /// cubecl's kernel autotuning.
    pub autotune: bool,
    /// Quantized (FP8/int8) DiT weights.
    pub quantized_weights: bool,
    /// A software rasterizer such as lavapipe.
    pub software: bool,
}

/// A feature turned off on this device, with the reason to show the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledFeature {
    /// The feature.
    pub feature: String,
    /// Why it is off and what happens instead.
    pub reason: String,
}

impl Capabilities {
    /// Queries the device.
    pub fn detect(selected: &SelectedDevice) -> Self {
        use burn::tensor::DType;
        let kind = selected.kind();
        let device = &selected.device;
        let f16 = device.supports_dtype(DType::F16);
        let bf16 = device.supports_dtype(DType::BF16);
        let mut caps = Self::assumed(kind, &selected.info.name, f16, bf16);
        caps.software = selected.info.software;
        caps
    }

    /// Capabilities assumed for a backend without opening a device (planning, tests).
    pub fn assumed(kind: BackendKind, device_name: &str, f16: bool, bf16: bool) -> Self {
        let gpu = kind.is_cubecl();
        Capabilities {
            backend: kind,
            device_name: device_name.to_string(),
            f16,
            bf16: bf16 && !matches!(kind, BackendKind::Wgpu | BackendKind::Vulkan),
            fused_attention: true,
            fusion: gpu,
            autotune: gpu,
            quantized_weights: false,
            software: false,
        }
    }

    /// Why `dtype` cannot be used here, or `None` if it can.
    pub fn unsupported_reason(&self, dtype: Dtype) -> Option<String> {
        match dtype {
            Dtype::F32 => None,
            Dtype::F16 if !self.f16 => {
                Some("the device has no f16 support; use f32 (`--precision f32`)".into())
            }
            Dtype::Bf16 if !self.bf16 => Some(match self.backend {
                BackendKind::Wgpu | BackendKind::Vulkan => {
                    "wgpu has no bf16 (its shader compilers lack the type); use f16 or f32".into()
                }
                _ => "the device has no bf16 support; use f16 or f32".into(),
            }),
            _ => None,
        }
    }

    /// The features upstream offers that are off on this device, with the reason for each.
    pub fn disabled_features(&self) -> Vec<DisabledFeature> {
        let mut off = Vec::new();
        let mut push = |feature: &str, reason: &str| {
            off.push(DisabledFeature {
                feature: feature.to_string(),
                reason: reason.to_string(),
            })
        };
        if !self.fusion {
            push(
                "kernel fusion (torch.compile counterpart)",
                "the CPU backend (Flex) runs eagerly; fusion needs a cubecl GPU backend",
            );
        }
        if !self.autotune {
            push(
                "kernel autotuning",
                "only cubecl GPU backends autotune; Flex uses fixed SIMD kernels",
            );
        }
        if !self.quantized_weights {
            push(
                "FP8 / quantized DiT weights",
                "not implemented in this release; weights run in the precision policy's dtype",
            );
        }
        if !self.bf16 {
            push(
                "bf16",
                match self.backend {
                    BackendKind::Wgpu | BackendKind::Vulkan => {
                        "wgpu's shader compilers have no bf16; f16 or f32 is used instead"
                    }
                    _ => "the device does not support bf16; f16 or f32 is used instead",
                },
            );
        }
        if !self.f16 {
            push(
                "f16",
                "the device does not support f16; f32 is used instead",
            );
        }
        if !self.fused_attention {
            push(
                "fused attention",
                "attention falls back to query tiles, which is slower",
            );
        }
        if self.software {
            push(
                "hardware acceleration",
                "this adapter is a software rasterizer (e.g. lavapipe): expect it to run 10-40x \
                 slower than the CPU backend",
            );
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reports_fusion_and_quantization_off_with_reasons() {
        let caps = Capabilities::assumed(BackendKind::Cpu, "cpu", true, true);
        let off = caps.disabled_features();
        let names: Vec<&str> = off.iter().map(|d| d.feature.as_str()).collect();
        assert!(names.iter().any(|n| n.contains("fusion")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("FP8")), "{names:?}");
        assert!(!names.contains(&"bf16"), "{names:?}");
        assert!(off.iter().all(|d| !d.reason.is_empty()));
    }

    #[test]
    fn wgpu_never_claims_bf16() {
        let caps = Capabilities::assumed(BackendKind::Wgpu, "gpu", true, true);
        assert!(!caps.bf16);
        assert!(caps.fusion && caps.autotune);
        assert!(
            caps.unsupported_reason(Dtype::Bf16)
                .unwrap()
                .contains("wgpu")
        );
        assert!(caps.unsupported_reason(Dtype::F16).is_none());
        assert!(caps.disabled_features().iter().any(|d| d.feature == "bf16"));
    }

    #[test]
    fn detected_cpu_supports_half_types() {
        let caps = Capabilities::detect(&SelectedDevice::cpu());
        assert_eq!(caps.backend, BackendKind::Cpu);
        assert!(
            caps.f16 && caps.bf16,
            "Flex supports f16 and bf16: {caps:?}"
        );
    }
}
