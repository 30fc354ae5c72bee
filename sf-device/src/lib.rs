//! Device selection, precision policy, capabilities, memory figures and timing for the
//! Self-Forcing crates.
//!
//! burn 0.22 has no backend generic: tensors live on a runtime [`burn::tensor::Device`]. This
//! crate decides *which* device (Metal, then CUDA, then a GPU through wgpu, then the CPU), *in
//! which dtypes* each component runs ([`PrecisionPolicy`]), *what the device can do*
//! ([`Capabilities`]), *how much memory there is* ([`system_memory`], [`device_memory`]) and *how
//! long each stage took* ([`StageTimer`]). It also holds what every model crate loads checkpoints
//! with ([`Checkpoint`], [`safetensors`]).

mod capabilities;
pub mod checkpoint;
mod error;
pub mod kernels;
mod memory;
mod precision;
mod row_blocks;
pub mod safetensors;
mod select;
mod timing;

pub use capabilities::{Capabilities, DisabledFeature};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointProblems, TensorFile};
pub use error::DeviceError;
pub use memory::{
    DeviceMemory, SystemMemory, check_buffer, current_rss_bytes, device_memory, human_bytes,
    max_buffer_bytes, peak_rss_bytes, system_memory,
};
pub use precision::{Component, Dtype, Precision, PrecisionPolicy, cast_module};
pub use row_blocks::RowBlocks;
pub use select::{
    BackendKind, DEVICE_ENV, DeviceInfo, DeviceRequest, SelectedDevice, choose, probe, select,
};
pub use timing::{StageTimer, Timings, sync};
