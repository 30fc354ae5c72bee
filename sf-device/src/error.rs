//! [`DeviceError`]: the errors a user can cause in this crate.

use crate::precision::{Component, Dtype};

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
    /// One tensor larger than the device's largest buffer ([`crate::max_buffer_bytes`]).
    #[error(
        "{what} needs one buffer of {} but {device} allocates at most {} per buffer",
        crate::human_bytes(*bytes),
        crate::human_bytes(*limit)
    )]
    BufferTooLarge {
        /// The tensor.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The device's limit in bytes.
        limit: u64,
        /// The device.
        device: String,
    },
    /// The backend reported an execution failure while synchronising.
    #[error("the device failed while executing queued work: {0}")]
    Execution(String),
}
