//! Device selection, precision policy, capabilities, memory figures and timing for the
//! Self-Forcing crates.
//!
//! burn 0.22 has no backend generic: tensors live on a runtime [`burn::tensor::Device`]. This
//! crate decides *which* device (Metal, then CUDA, then a GPU through wgpu, then the CPU), *in
//! which dtypes* each component runs ([`PrecisionPolicy`]), *what the device can do*
//! ([`Capabilities`]), *how much memory there is* ([`system_memory`], [`device_memory`]) and *how
//! long each stage took* ([`StageTimer`]). It also holds what every model crate loads checkpoints
//! with ([`Checkpoint`], [`safetensors`]).

pub mod capabilities;
pub mod checkpoint;
pub mod memory;
pub mod precision;
pub mod safetensors;
pub mod select;
pub mod timing;

pub use capabilities::{Capabilities, DisabledFeature};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointProblems, TensorFile};
pub use memory::{
    DeviceMemory, SystemMemory, current_rss_bytes, device_memory, human_bytes, peak_rss_bytes,
    system_memory,
};
pub use precision::{Component, Dtype, Precision, PrecisionPolicy, cast_module};
pub use select::{
    BackendKind, DEVICE_ENV, DeviceInfo, DeviceRequest, SelectedDevice, choose, probe, select,
};
pub use timing::{StageTimer, Timings, sync};

/// Errors a user can cause when choosing a device or a precision.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device string is not one this crate understands.
    #[error("unknown device '{input}': expected one of auto, cpu, metal, cuda[:N], vulkan, wgpu")]
    Unknown {
        /// What was given.
        input: String,
    },
    /// `SF_DEVICE` holds something invalid.
    #[error("environment variable {var}: {source}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Why its value was refused.
        #[source]
        source: Box<DeviceError>,
    },
    /// The backend was not compiled into this build.
    #[error(
        "device '{requested}' is not compiled into this build: rebuild with `--features {feature}`. \
         Available here: {available}"
    )]
    NotCompiled {
        /// The request.
        requested: String,
        /// The cargo feature that adds it.
        feature: &'static str,
        /// The devices that are available.
        available: String,
    },
    /// The backend is compiled in but no such device is present (or its driver is missing).
    #[error(
        "no '{requested}' device is present on this machine (or its driver is missing). \
         Available here: {available}"
    )]
    NotPresent {
        /// The request.
        requested: String,
        /// The devices that are available.
        available: String,
    },
    /// A precision the device cannot run.
    #[error("{component} cannot use {dtype} on {device}: {reason}")]
    UnsupportedDType {
        /// The component.
        component: Component,
        /// The dtype asked for.
        dtype: Dtype,
        /// The device.
        device: String,
        /// What to do instead.
        reason: String,
    },
    /// A precision string that does not parse.
    #[error("invalid precision '{input}': {reason}")]
    InvalidPrecision {
        /// What was given.
        input: String,
        /// What is expected.
        reason: String,
    },
    /// The backend reported an execution failure while synchronising.
    #[error("the device failed while executing queued work: {0}")]
    Execution(String),
}
