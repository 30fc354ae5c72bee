//! System and device memory figures.

use serde::{Deserialize, Serialize};

use crate::SelectedDevice;

/// Environment variable giving the GPU memory in GiB where the backend does not report it.
pub const GPU_MEMORY_ENV: &str = "SF_GPU_MEMORY_GB";

/// System RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMemory {
    /// Installed RAM, bytes.
    pub total: u64,
    /// RAM the OS can hand out now without swapping, bytes.
    pub available: u64,
}

/// Reads the system's RAM figures; `None` where the OS does not report them.
pub fn system_memory() -> Option<SystemMemory> {
    let mut sys = sysinfo::System::new().ok()?;
    sys.refresh_memory();
    let total = sys.total_memory();
    (total > 0).then(|| SystemMemory {
        total,
        available: sys.available_memory(),
    })
}

/// Memory of the device tensors live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// Capacity in bytes, where known: system RAM for the CPU and unified-memory Metal; for a
    /// discrete GPU, `SF_GPU_MEMORY_GB` (burn 0.22 does not expose the card's capacity).
    pub total: Option<u64>,
    /// Bytes the device allocator hands out now (live tensors), where the backend reports it.
    pub in_use: Option<u64>,
    /// Bytes the allocator holds, including pages kept for reuse.
    pub reserved: Option<u64>,
    /// Device memory is system RAM (CPU, Apple unified memory).
    pub unified: bool,
}

impl DeviceMemory {
    /// Bytes a generation may plan with: available RAM for unified memory, else the capacity
    /// minus what the allocator already holds.
    pub fn budget(&self, system: &SystemMemory) -> Option<u64> {
        if self.unified {
            Some(system.available)
        } else {
            self.total
                .map(|t| t.saturating_sub(self.reserved.unwrap_or(0)))
        }
    }
}

/// Reads the device's memory figures.
pub fn device_memory(selected: &SelectedDevice) -> DeviceMemory {
    let usage = selected.device.memory_pool_usage();
    let unified = !selected.kind().discrete_memory() || selected.info.software;
    let total = if unified {
        system_memory().map(|m| m.total)
    } else {
        std::env::var(GPU_MEMORY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|gb| *gb > 0.0)
            .map(|gb| (gb * GIB) as u64)
    };
    DeviceMemory {
        total,
        in_use: usage.map(|u| u.bytes_in_use),
        reserved: usage.map(|u| u.bytes_reserved),
        unified,
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The largest single buffer `device` allocates, in bytes: cubecl's page limit (wgpu: the
/// smaller of the adapter's `max_buffer_size` and `max_storage_buffer_binding_size`; Vulkan with
/// 64-bit shader indexing: the first device-local heap). `None` where there is no such limit
/// (Flex: host memory). A larger tensor is refused by the allocator, so callers check first
/// ([`check_buffer`]) and split or refuse with a clear message.
pub fn max_buffer_bytes(device: &burn::tensor::Device) -> Option<u64> {
    match device.as_dispatch() {
        #[cfg(any(
            feature = "wgpu",
            feature = "metal",
            feature = "vulkan",
            feature = "cuda"
        ))]
        burn::backend::DispatchDevice::Cube(cube) => {
            Some(cube.client().properties().memory.max_page_size)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// `Ok` when one buffer of `bytes` fits `device` ([`max_buffer_bytes`]); otherwise an error
/// naming `what`, both sizes and the device.
pub fn check_buffer(
    device: &burn::tensor::Device,
    bytes: u64,
    what: &str,
) -> Result<(), crate::DeviceError> {
    match max_buffer_bytes(device) {
        Some(limit) if bytes > limit => Err(crate::DeviceError::BufferTooLarge {
            what: what.to_string(),
            bytes,
            limit,
            device: format!("{device:?}"),
        }),
        _ => Ok(()),
    }
}

/// The process's peak resident set size in bytes (Linux `VmHWM`), `None` where unavailable.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory of this process now (`VmRSS`, Linux only; `None` elsewhere).
pub fn current_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Formats bytes as GiB/MiB for messages.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_memory_is_plausible() {
        let m = system_memory().unwrap();
        assert!(m.total > 256 * 1024 * 1024, "{m:?}");
        assert!(m.available <= m.total, "{m:?}");
    }

    #[test]
    fn cpu_memory_is_unified_and_budgeted_from_ram() {
        let dm = device_memory(&SelectedDevice::cpu());
        assert!(dm.unified);
        let sys = SystemMemory {
            total: 100,
            available: 40,
        };
        assert_eq!(dm.budget(&sys), Some(40));
        let discrete = DeviceMemory {
            total: Some(1000),
            in_use: Some(10),
            reserved: Some(100),
            unified: false,
        };
        assert_eq!(discrete.budget(&sys), Some(900));
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(6 << 30), "6.00 GiB");
        assert_eq!(human_bytes(6_038_323_200), "5.62 GiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_reported_on_linux() {
        assert!(peak_rss_bytes().unwrap() > 0);
        assert!(current_rss_bytes().unwrap() <= peak_rss_bytes().unwrap());
    }
}
