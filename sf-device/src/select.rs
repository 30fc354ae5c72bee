//! Device selection: parse a request (`cpu`, `metal`, `cuda[:N]`, `vulkan`, `wgpu`), probe what is
//! compiled in and present, and pick in the order Metal, CUDA, other GPUs through wgpu, CPU.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::DeviceError;

/// Environment variable that overrides automatic device selection.
pub const DEVICE_ENV: &str = "SF_DEVICE";

/// A compute backend this workspace can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Apple GPUs through wgpu's Metal backend (MSL).
    Metal,
    /// NVIDIA GPUs through CUDA.
    Cuda,
    /// Any GPU through wgpu on the API it settles on (Vulkan, DX12, Metal).
    Wgpu,
    /// GPUs through wgpu pinned to Vulkan (SPIR-V).
    Vulkan,
    /// The CPU through burn's Flex backend.
    Cpu,
}

impl BackendKind {
    /// Every backend, in automatic selection order.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Metal,
        BackendKind::Cuda,
        BackendKind::Wgpu,
        BackendKind::Vulkan,
        BackendKind::Cpu,
    ];

    /// The name used by `SF_DEVICE` and `--device`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Metal => "metal",
            BackendKind::Cuda => "cuda",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Vulkan => "vulkan",
            BackendKind::Cpu => "cpu",
        }
    }

    /// The cargo feature that compiles this backend in (`None` for the always-present CPU).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            BackendKind::Cpu => None,
            other => Some(other.name()),
        }
    }

    /// Whether this build contains the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Metal => cfg!(feature = "metal"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Wgpu => cfg!(any(feature = "wgpu", feature = "metal", feature = "vulkan")),
            BackendKind::Vulkan => cfg!(feature = "vulkan"),
            BackendKind::Cpu => true,
        }
    }

    /// Whether the backend runs on a GPU-style device whose memory is separate from system RAM
    /// (Metal is unified memory, the CPU uses system RAM).
    pub fn discrete_memory(self) -> bool {
        matches!(
            self,
            BackendKind::Cuda | BackendKind::Wgpu | BackendKind::Vulkan
        )
    }

    /// Whether the backend is one of burn's cubecl runtimes (fusion and autotune apply).
    pub fn is_cubecl(self) -> bool {
        self != BackendKind::Cpu
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceRequest {
    /// Metal, then CUDA, then a hardware GPU through wgpu, then the CPU.
    #[default]
    Auto,
    /// One backend, optionally the N-th device of it.
    Backend {
        /// The backend.
        kind: BackendKind,
        /// Index among that backend's devices (`cuda:1`); `None` = the first.
        index: Option<usize>,
    },
}

impl DeviceRequest {
    /// A request for one backend's first device.
    pub fn backend(kind: BackendKind) -> Self {
        DeviceRequest::Backend { kind, index: None }
    }

    /// Reads `SF_DEVICE`; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, DeviceError> {
        match std::env::var(DEVICE_ENV) {
            Ok(value) if !value.trim().is_empty() => {
                value
                    .parse()
                    .map(Some)
                    .map_err(|err: DeviceError| DeviceError::Env {
                        var: DEVICE_ENV,
                        source: Box::new(err),
                    })
            }
            _ => Ok(None),
        }
    }

    /// The effective request: the caller's explicit choice, else `SF_DEVICE`, else automatic.
    pub fn resolve(explicit: Option<DeviceRequest>) -> Result<Self, DeviceError> {
        match explicit {
            Some(request) => Ok(request),
            None => Ok(Self::from_env()?.unwrap_or_default()),
        }
    }
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim().to_ascii_lowercase();
        let unknown = || DeviceError::Unknown {
            input: input.to_string(),
        };
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => {
                let index: usize = index.trim().parse().map_err(|_| unknown())?;
                (name.trim().to_string(), Some(index))
            }
            None => (text.clone(), None),
        };
        let kind = match name.as_str() {
            "auto" if index.is_none() => return Ok(DeviceRequest::Auto),
            "cpu" | "flex" if index.is_none() || index == Some(0) => BackendKind::Cpu,
            "metal" | "mps" => BackendKind::Metal,
            "cuda" | "gpu" => BackendKind::Cuda,
            "vulkan" => BackendKind::Vulkan,
            "wgpu" => BackendKind::Wgpu,
            _ => return Err(unknown()),
        };
        Ok(DeviceRequest::Backend { kind, index })
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Backend { kind, index: None } => write!(f, "{kind}"),
            DeviceRequest::Backend {
                kind,
                index: Some(i),
            } => write!(f, "{kind}:{i}"),
        }
    }
}

/// One device that is compiled in and present on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Its backend.
    pub kind: BackendKind,
    /// Index among that backend's devices.
    pub index: usize,
    /// The name the driver reports (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// A software rasterizer (lavapipe, WARP): present, but never chosen automatically because
    /// the native CPU backend is faster.
    pub software: bool,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({}", self.kind, self.index, self.name)?;
        if self.software {
            f.write_str(", software")?;
        }
        f.write_str(")")
    }
}

/// The device the workspace will run on.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The burn device tensors are created on.
    pub device: Device,
    /// What it is.
    pub info: DeviceInfo,
}

impl SelectedDevice {
    /// The CPU (Flex) device, always available.
    pub fn cpu() -> Self {
        SelectedDevice {
            device: Device::flex(),
            info: cpu_info(),
        }
    }

    /// Its backend.
    pub fn kind(&self) -> BackendKind {
        self.info.kind
    }
}

fn cpu_info() -> DeviceInfo {
    DeviceInfo {
        kind: BackendKind::Cpu,
        index: 0,
        name: format!("CPU (Flex, {} threads)", rayon_threads()),
        software: false,
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Chooses among `available` (in preference order) for `request` and returns the position of
/// the pick: the pure decision behind [`select`], separate so that it can be tested without
/// hardware.
pub fn choose(request: &DeviceRequest, available: &[DeviceInfo]) -> Result<usize, DeviceError> {
    let listed = || {
        available
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_present = || DeviceError::NotPresent {
        requested: request.to_string(),
        available: listed(),
    };
    match request {
        DeviceRequest::Auto => BackendKind::ALL
            .iter()
            .find_map(|kind| {
                available
                    .iter()
                    .position(|d| d.kind == *kind && !d.software)
            })
            .ok_or_else(not_present),
        DeviceRequest::Backend { kind, index } => {
            if !kind.compiled() {
                return Err(DeviceError::NotCompiled {
                    requested: request.to_string(),
                    feature: kind.feature().unwrap_or("default"),
                    available: listed(),
                });
            }
            available
                .iter()
                .position(|d| d.kind == *kind && index.is_none_or(|i| d.index == i))
                .ok_or_else(not_present)
        }
    }
}

/// Every device this build can reach, in automatic selection order. Opens GPU devices to read
/// their identity; a backend whose driver is missing contributes nothing.
pub fn probe() -> Vec<SelectedDevice> {
    let mut found = Vec::new();
    for kind in BackendKind::ALL {
        if kind.compiled() {
            found.extend(probe_backend(kind));
        }
    }
    found
}

/// Resolves `request` (see [`DeviceRequest::resolve`] for the environment override) to a device.
pub fn select(request: &DeviceRequest) -> Result<SelectedDevice, DeviceError> {
    if let DeviceRequest::Backend {
        kind: BackendKind::Cpu,
        index,
    } = request
        && index.is_none_or(|i| i == 0)
    {
        return Ok(SelectedDevice::cpu());
    }
    let mut devices = probe();
    let infos: Vec<DeviceInfo> = devices.iter().map(|d| d.info.clone()).collect();
    let position = choose(request, &infos)?;
    Ok(devices.swap_remove(position))
}

#[allow(unused_variables)]
fn probe_backend(kind: BackendKind) -> Vec<SelectedDevice> {
    match kind {
        BackendKind::Cpu => vec![SelectedDevice::cpu()],
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => probe_cubecl(kind, burn::tensor::DeviceType::Cuda),
        #[cfg(feature = "metal")]
        BackendKind::Metal => probe_cubecl(kind, burn::tensor::DeviceType::Metal),
        #[cfg(feature = "vulkan")]
        BackendKind::Vulkan => probe_cubecl(kind, burn::tensor::DeviceType::Vulkan),
        #[cfg(any(feature = "wgpu", feature = "metal", feature = "vulkan"))]
        BackendKind::Wgpu => probe_cubecl(kind, burn::tensor::DeviceType::Wgpu),
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
}

/// Lists a cubecl runtime's devices. Driver problems (no Vulkan loader, no CUDA driver) surface
/// as panics inside the runtimes; they mean "not present" here.
#[cfg(any(
    feature = "wgpu",
    feature = "metal",
    feature = "vulkan",
    feature = "cuda"
))]
fn probe_cubecl(kind: BackendKind, device_type: burn::tensor::DeviceType) -> Vec<SelectedDevice> {
    let listed = std::panic::catch_unwind(|| {
        burn::tensor::Device::enumerate(device_type)
            .into_iter()
            .collect::<Vec<Device>>()
    });
    let Ok(devices) = listed else {
        return Vec::new();
    };
    devices
        .into_iter()
        .enumerate()
        .filter_map(|(index, device)| {
            let identity = std::panic::catch_unwind(|| device.identity()).ok()?;
            let (name, software) = match identity {
                Some(id) => (id.name, id.physical.is_none()),
                None => (kind.name().to_string(), false),
            };
            Some(SelectedDevice {
                device,
                info: DeviceInfo {
                    kind,
                    index,
                    name,
                    software,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: BackendKind, index: usize, software: bool) -> DeviceInfo {
        DeviceInfo {
            kind,
            index,
            name: format!("{kind} device {index}"),
            software,
        }
    }

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("cpu", DeviceRequest::backend(BackendKind::Cpu)),
            (" CPU ", DeviceRequest::backend(BackendKind::Cpu)),
            ("metal", DeviceRequest::backend(BackendKind::Metal)),
            ("cuda", DeviceRequest::backend(BackendKind::Cuda)),
            (
                "cuda:1",
                DeviceRequest::Backend {
                    kind: BackendKind::Cuda,
                    index: Some(1),
                },
            ),
            ("vulkan", DeviceRequest::backend(BackendKind::Vulkan)),
            ("wgpu", DeviceRequest::backend(BackendKind::Wgpu)),
            ("auto", DeviceRequest::Auto),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<DeviceRequest>().unwrap(), expected, "{text}");
        }
        for bad in ["", "tpu", "cuda:x", "cuda:-1", "cpu:3", "auto:1"] {
            let err = bad.parse::<DeviceRequest>().unwrap_err();
            assert!(err.to_string().contains("cuda[:N]"), "{bad}: {err}");
        }
        assert_eq!(
            "cuda:2".parse::<DeviceRequest>().unwrap().to_string(),
            "cuda:2"
        );
    }

    #[test]
    fn auto_prefers_metal_then_cuda_then_hardware_wgpu_then_cpu() {
        let cpu = info(BackendKind::Cpu, 0, false);
        let soft = info(BackendKind::Wgpu, 0, true);
        let gpu = info(BackendKind::Wgpu, 1, false);
        let cuda = info(BackendKind::Cuda, 0, false);
        let metal = info(BackendKind::Metal, 0, false);
        let auto = DeviceRequest::Auto;
        let all = vec![
            metal.clone(),
            cuda.clone(),
            soft.clone(),
            gpu.clone(),
            cpu.clone(),
        ];
        assert_eq!(all[choose(&auto, &all).unwrap()], metal);
        assert_eq!(all[1..][choose(&auto, &all[1..]).unwrap()], cuda);
        assert_eq!(all[2..][choose(&auto, &all[2..]).unwrap()], gpu);
        // A software rasterizer alone never wins over the CPU backend.
        let pair = [soft.clone(), cpu.clone()];
        assert_eq!(pair[choose(&auto, &pair).unwrap()], cpu);
    }

    #[test]
    fn explicit_requests_pick_the_named_device_or_explain() {
        let cpu = info(BackendKind::Cpu, 0, false);
        let soft = info(BackendKind::Wgpu, 0, true);
        let list = vec![soft.clone(), cpu.clone()];
        assert_eq!(
            list[choose(&DeviceRequest::backend(BackendKind::Cpu), &list).unwrap()],
            cpu
        );
        if BackendKind::Wgpu.compiled() {
            // Named explicitly, the software adapter is used.
            assert_eq!(
                list[choose(&DeviceRequest::backend(BackendKind::Wgpu), &list).unwrap()],
                soft
            );
            let missing = DeviceRequest::Backend {
                kind: BackendKind::Wgpu,
                index: Some(4),
            };
            let err = choose(&missing, &list).unwrap_err();
            assert!(matches!(err, DeviceError::NotPresent { .. }), "{err}");
            assert!(err.to_string().contains("wgpu:0"), "{err}");
        }
        if !BackendKind::Cuda.compiled() {
            let err = choose(&DeviceRequest::backend(BackendKind::Cuda), &list).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, DeviceError::NotCompiled { .. }), "{text}");
            assert!(text.contains("--features cuda"), "{text}");
            assert!(text.contains("cpu:0"), "{text}");
        }
    }

    #[test]
    fn cpu_is_always_selectable() {
        let selected = select(&DeviceRequest::backend(BackendKind::Cpu)).unwrap();
        assert_eq!(selected.kind(), BackendKind::Cpu);
        assert!(probe().iter().any(|d| d.kind() == BackendKind::Cpu));
    }

    #[test]
    fn a_backend_missing_from_the_build_is_a_clear_error() {
        for kind in [BackendKind::Metal, BackendKind::Cuda, BackendKind::Vulkan] {
            if kind.compiled() {
                continue;
            }
            let err = select(&DeviceRequest::backend(kind)).unwrap_err();
            assert!(
                err.to_string().contains(&format!("--features {kind}")),
                "{err}"
            );
        }
    }
}
