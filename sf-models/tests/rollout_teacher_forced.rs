//! Teacher-forced replay of the `rollout_*` fixtures ([`sf_testkit::checks::rollout`]): every
//! DiT call of the Self-Forcing KV-cache inference, fed its stored input, reproduces the stored
//! flow and the cache bookkeeping (`calls.meta`, `calls.attended_frames`,
//! `calls.cache_frames_after`) exactly.

use crate::common::fixture;

use burn::tensor::Device;
use sf_testkit::checks::rollout::teacher_forced;

fn replay(name: &str) {
    let checks = teacher_forced(
        &fixture(&format!("rollout_{name}.safetensors")),
        &Device::flex(),
    );
    checks.assert_complete();
    // The flow of every call, the write plans, the slots' frames, the attended frames.
    assert_eq!(checks.results.len(), 4, "{name}");
}

#[test]
fn rollout_global() {
    replay("global");
}

#[test]
fn rollout_rolling() {
    replay("rolling");
}

#[test]
fn rollout_first_frame() {
    replay("first_frame");
}

#[test]
fn rollout_i2v() {
    replay("i2v");
}
