//! The sf-pipeline integration tests, in one binary: every test
//! binary links the whole burn stack, so each package has one.

mod common;
#[path = "support/hub_server.rs"]
mod hub_server;
#[path = "support/mp4.rs"]
mod mp4;
#[path = "support/tiny_models.rs"]
#[allow(dead_code)]
mod tiny_models;

mod all_fixtures;
mod end_to_end;
mod rollout;
mod rollout_dit;
mod scheduler_parity;
mod truncated_weights;
mod video;
mod weights;
