//! The top-level package's tests (CLI inputs, property tests, the web demo), in one binary:
//! every test binary links the whole burn stack, so each package has one.

#[path = "support/demo.rs"]
mod demo;

use sf_testkit::{mp4, tiny_models};

mod architecture;
mod bad_inputs;
mod browser;
mod browser_switch;
mod cli;
mod fuzz_inputs;
mod gpu_bench;
mod stream_server;
mod stream_switch;
