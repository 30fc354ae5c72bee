//! Precision policy: the storage and compute dtype of each component, with defaults per backend.
//!
//! Norm statistics, modulation, RoPE angles and scheduler sigma arithmetic are not governed by
//! the policy: the model crates always compute them in f32 or better.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{BackendKind, Capabilities, DeviceError};

/// A floating-point dtype a component can be stored or computed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The burn dtype.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Dtype::F32 => FloatDType::F32,
            Dtype::F16 => FloatDType::F16,
            Dtype::Bf16 => FloatDType::BF16,
        }
    }

    /// Lowercase name (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dtype {
    type Err = DeviceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Dtype::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Dtype::F16),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            _ => Err(DeviceError::InvalidPrecision {
                input: input.to_string(),
                reason: "expected f32, f16 or bf16".into(),
            }),
        }
    }
}

/// A component whose precision the policy decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The causal Wan DiT weights and activations.
    Dit,
    /// The DiT's self- and cross-attention KV cache.
    KvCache,
    /// The umT5-XXL text encoder.
    TextEncoder,
    /// The Wan2.1 VAE.
    WanVae,
    /// The TAEHV decoder.
    Taehv,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 5] = [
        Component::Dit,
        Component::KvCache,
        Component::TextEncoder,
        Component::WanVae,
        Component::Taehv,
    ];

    /// Name used in override strings (`dit`, `kv_cache`, `text_encoder`, `wan_vae`, `taehv`).
    pub fn name(self) -> &'static str {
        match self {
            Component::Dit => "dit",
            Component::KvCache => "kv_cache",
            Component::TextEncoder => "text_encoder",
            Component::WanVae => "wan_vae",
            Component::Taehv => "taehv",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "dit" | "transformer" => Some(Component::Dit),
            "kv" | "kv_cache" | "cache" => Some(Component::KvCache),
            "t5" | "text" | "text_encoder" => Some(Component::TextEncoder),
            "vae" | "wan_vae" => Some(Component::WanVae),
            "taehv" | "tae" => Some(Component::Taehv),
            _ => None,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one component's weights are stored and in which dtype it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precision {
    /// Weights at rest (what memory holds between uses).
    pub storage: Dtype,
    /// Activations and the dtype weights are cast to for the matmuls.
    pub compute: Dtype,
}

impl Precision {
    /// Storage and compute in the same dtype.
    pub const fn uniform(dtype: Dtype) -> Self {
        Precision {
            storage: dtype,
            compute: dtype,
        }
    }
}

/// `f32`, or `bf16 at rest, f32 compute` when they differ.
impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.storage == self.compute {
            write!(f, "{}", self.compute)
        } else {
            write!(f, "{} at rest, {} compute", self.storage, self.compute)
        }
    }
}

/// Storage and compute dtype of every component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecisionPolicy {
    /// The DiT.
    pub dit: Precision,
    /// The KV cache (storage = compute).
    pub kv_cache: Precision,
    /// The text encoder.
    pub text_encoder: Precision,
    /// The Wan VAE.
    pub wan_vae: Precision,
    /// TAEHV.
    pub taehv: Precision,
}

/// `dit f32, kv cache f32, text encoder bf16 at rest, f32 compute, wan-vae f32, taehv f32`.
impl fmt::Display for PrecisionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dit {}, kv cache {}, text encoder {}, wan-vae {}, taehv {}",
            self.dit, self.kv_cache, self.text_encoder, self.wan_vae, self.taehv
        )
    }
}

impl PrecisionPolicy {
    /// f32 everywhere.
    pub const fn f32() -> Self {
        let p = Precision::uniform(Dtype::F32);
        PrecisionPolicy {
            dit: p,
            kv_cache: p,
            text_encoder: p,
            wan_vae: p,
            taehv: p,
        }
    }

    /// The default for a backend and what the device supports:
    /// - Metal: f32 everywhere (as the Apple Silicon guide does);
    /// - CUDA: bf16 DiT, KV cache and text encoder, f16 VAE and TAEHV;
    /// - wgpu / Vulkan: f16 where the device supports it, else f32; never bf16;
    /// - CPU: f32 compute everywhere; the text encoder keeps its bf16 weights at rest (the real
    ///   encoder is 22.7 GB in f32) and is upcast layer by layer.
    pub fn default_for(kind: BackendKind, caps: &Capabilities) -> Self {
        match kind {
            BackendKind::Metal => Self::f32(),
            BackendKind::Cuda => {
                let bf16 = Precision::uniform(Dtype::Bf16);
                let f16 = Precision::uniform(Dtype::F16);
                PrecisionPolicy {
                    dit: bf16,
                    kv_cache: bf16,
                    text_encoder: bf16,
                    wan_vae: f16,
                    taehv: f16,
                }
            }
            BackendKind::Wgpu | BackendKind::Vulkan => {
                let half = if caps.f16 { Dtype::F16 } else { Dtype::F32 };
                let p = Precision::uniform(half);
                PrecisionPolicy {
                    dit: p,
                    kv_cache: p,
                    text_encoder: p,
                    wan_vae: p,
                    taehv: p,
                }
            }
            BackendKind::Cpu => {
                let mut policy = Self::f32();
                if caps.bf16 {
                    policy.text_encoder.storage = Dtype::Bf16;
                }
                policy
            }
        }
    }

    /// The precision of one component.
    pub fn get(&self, component: Component) -> Precision {
        match component {
            Component::Dit => self.dit,
            Component::KvCache => self.kv_cache,
            Component::TextEncoder => self.text_encoder,
            Component::WanVae => self.wan_vae,
            Component::Taehv => self.taehv,
        }
    }

    /// Replaces one component's precision.
    pub fn with(mut self, component: Component, precision: Precision) -> Self {
        *match component {
            Component::Dit => &mut self.dit,
            Component::KvCache => &mut self.kv_cache,
            Component::TextEncoder => &mut self.text_encoder,
            Component::WanVae => &mut self.wan_vae,
            Component::Taehv => &mut self.taehv,
        } = precision;
        self
    }

    /// Applies an override string: either one dtype for everything (`f16`) or a comma-separated
    /// list of `component=dtype` or `component=storage/compute` (`dit=bf16,text_encoder=bf16/f32`).
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, DeviceError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Ok(self);
        }
        if !spec.contains('=') {
            let dtype: Dtype = spec.parse()?;
            for component in Component::ALL {
                self = self.with(component, Precision::uniform(dtype));
            }
            return Ok(self);
        }
        for item in spec.split(',') {
            let invalid = |reason: &str| DeviceError::InvalidPrecision {
                input: item.trim().to_string(),
                reason: reason.to_string(),
            };
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| invalid("expected component=dtype"))?;
            let component = Component::parse(name).ok_or_else(|| {
                invalid("unknown component; expected dit, kv_cache, text_encoder, wan_vae or taehv")
            })?;
            let precision = match value.split_once('/') {
                Some((storage, compute)) => Precision {
                    storage: storage.parse()?,
                    compute: compute.parse()?,
                },
                None => Precision::uniform(value.parse()?),
            };
            self = self.with(component, precision);
        }
        Ok(self)
    }

    /// Checks every dtype against what the device supports.
    pub fn validate(&self, caps: &Capabilities) -> Result<(), DeviceError> {
        for component in Component::ALL {
            let p = self.get(component);
            for dtype in [p.storage, p.compute] {
                if let Some(reason) = caps.unsupported_reason(dtype) {
                    return Err(DeviceError::UnsupportedDType {
                        component,
                        dtype,
                        device: caps.device_name.clone(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Casts every float parameter of `module` to `dtype`. burn keeps a checkpoint's dtype on load,
/// and mixing dtypes in one op panics on Flex, so loaders call this with the policy's dtype.
pub fn cast_module<M: Module>(module: M, dtype: Dtype) -> M {
    struct Caster(FloatDType);
    impl ModuleMapper for Caster {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|tensor| {
                if tensor.dtype() == dtype.into() {
                    tensor
                } else {
                    tensor.cast(dtype)
                }
            })
        }
    }
    module.map(&mut Caster(dtype.float_dtype()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(kind: BackendKind, f16: bool, bf16: bool) -> Capabilities {
        Capabilities::assumed(kind, "test device", f16, bf16)
    }

    #[test]
    fn defaults_per_backend() {
        let metal =
            PrecisionPolicy::default_for(BackendKind::Metal, &caps(BackendKind::Metal, true, true));
        assert_eq!(metal, PrecisionPolicy::f32());

        let cuda =
            PrecisionPolicy::default_for(BackendKind::Cuda, &caps(BackendKind::Cuda, true, true));
        assert_eq!(cuda.dit, Precision::uniform(Dtype::Bf16));
        assert_eq!(cuda.kv_cache, Precision::uniform(Dtype::Bf16));
        assert_eq!(cuda.text_encoder, Precision::uniform(Dtype::Bf16));
        assert_eq!(cuda.wan_vae, Precision::uniform(Dtype::F16));
        assert_eq!(cuda.taehv, Precision::uniform(Dtype::F16));

        let wgpu =
            PrecisionPolicy::default_for(BackendKind::Wgpu, &caps(BackendKind::Wgpu, true, false));
        for c in Component::ALL {
            assert_eq!(wgpu.get(c), Precision::uniform(Dtype::F16), "{c}");
        }
        let wgpu_no_f16 = PrecisionPolicy::default_for(
            BackendKind::Vulkan,
            &caps(BackendKind::Vulkan, false, false),
        );
        assert_eq!(wgpu_no_f16, PrecisionPolicy::f32());
        // Never bf16 on wgpu, even where a driver claims it.
        let wgpu_bf16 =
            PrecisionPolicy::default_for(BackendKind::Wgpu, &caps(BackendKind::Wgpu, true, true));
        for c in Component::ALL {
            let p = wgpu_bf16.get(c);
            assert!(p.storage != Dtype::Bf16 && p.compute != Dtype::Bf16, "{c}");
        }

        let cpu =
            PrecisionPolicy::default_for(BackendKind::Cpu, &caps(BackendKind::Cpu, true, true));
        for c in Component::ALL {
            assert_eq!(cpu.get(c).compute, Dtype::F32, "{c}");
        }
        assert_eq!(cpu.text_encoder.storage, Dtype::Bf16);
        assert_eq!(cpu.dit.storage, Dtype::F32);
    }

    #[test]
    fn overrides_parse_and_apply() {
        let base = PrecisionPolicy::f32();
        let all_f16 = base.with_overrides("f16").unwrap();
        assert!(
            Component::ALL
                .iter()
                .all(|c| all_f16.get(*c) == Precision::uniform(Dtype::F16))
        );

        let mixed = base
            .with_overrides("dit=bf16, text_encoder=bf16/f32,vae=f16")
            .unwrap();
        assert_eq!(mixed.dit, Precision::uniform(Dtype::Bf16));
        assert_eq!(
            mixed.text_encoder,
            Precision {
                storage: Dtype::Bf16,
                compute: Dtype::F32
            }
        );
        assert_eq!(mixed.wan_vae, Precision::uniform(Dtype::F16));
        assert_eq!(mixed.taehv, Precision::uniform(Dtype::F32));

        for bad in ["f8", "dit=f64", "unet=f16", "dit"] {
            let err = base.with_overrides(bad).unwrap_err();
            assert!(
                matches!(err, DeviceError::InvalidPrecision { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn validation_refuses_bf16_on_wgpu() {
        let caps = caps(BackendKind::Wgpu, true, false);
        let policy = PrecisionPolicy::f32().with_overrides("dit=bf16").unwrap();
        let err = policy.validate(&caps).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("dit") && text.contains("bf16"), "{text}");
        assert!(
            PrecisionPolicy::default_for(BackendKind::Wgpu, &caps)
                .validate(&caps)
                .is_ok()
        );
    }

    #[test]
    fn cast_module_changes_every_float_parameter() {
        use burn::nn::{Linear, LinearConfig};
        use burn::tensor::{DType as BurnDType, Device};
        let device = Device::flex();
        let linear: Linear = LinearConfig::new(3, 2).init(&device);
        let half = cast_module(linear, Dtype::Bf16);
        assert_eq!(half.weight.val().dtype(), BurnDType::BF16);
        assert_eq!(half.bias.as_ref().unwrap().val().dtype(), BurnDType::BF16);
        let back = cast_module(half, Dtype::F32);
        assert_eq!(back.weight.val().dtype(), BurnDType::F32);
    }
}
