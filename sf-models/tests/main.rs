//! The sf-models integration tests, in one binary: every test
//! binary links the whole burn stack, so each package has one.

mod common;

mod checkpoints;
mod dit_tiny_io;
mod keys;
mod lora;
mod real_sizes;
mod rollout_teacher_forced;
