//! Test scaffolding of the Self-Forcing workspace (not published): everything the crates'
//! tests, the benches and the `parity` example share, so the published crates hold no fixture
//! code.
//!
//! - [`fixture`]: the reader of the golden-fixture format (`fixtures/FORMAT.md`);
//! - [`compare`]: its tolerance rule and the result of one comparison;
//! - [`configs`]: model and rollout configurations from a fixture's metadata;
//! - [`checks`]: every comparison against the fixtures, once, for the tests and the runner;
//! - [`runner`]: the parity runner over a directory of fixtures;
//! - [`replay`]: a rollout fixture's stored noise and model calls as the rollout's inputs;
//! - [`manifest`]: the real checkpoints' key lists and the comparison of a key table with them;
//! - [`tiny_models`], [`mp4`]: a tiny model directory in the upstream layout and an MP4 reader.
//!
//! Use it from integration tests, benches and examples only: a crate's unit tests in `src/`
//! would see a second copy of the crate's own types.

pub mod checks;
pub mod compare;
pub mod configs;
pub mod fixture;
pub mod manifest;
pub mod mp4;
pub mod replay;
pub mod runner;
pub mod tiny_models;

pub use checks::{CheckError, Checks, Skipped};
pub use compare::{
    Aggregate, CheckResult, Tolerance, compare, compare_exact, compare_f32, compare_tensor,
};
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub use fixture::wgpu_test_device;
pub use fixture::{
    Fixture, FixtureError, open_workspace_fixture, to_f32s, workspace_fixture, workspace_fixtures,
};
pub use manifest::Manifest;
pub use runner::{ParityReport, run_dir, run_file};
