//! The sf-pipeline integration tests, in one binary: every test
//! binary links the whole burn stack, so each package has one.

mod common;
#[path = "support/hub_server.rs"]
mod hub_server;

use sf_testkit::{mp4, tiny_models};

mod end_to_end;
mod endless;
mod live_switch;
mod rollout;
mod rollout_dit;
mod scheduler_parity;
mod switch;
mod truncated_weights;
mod video;
mod weights;
