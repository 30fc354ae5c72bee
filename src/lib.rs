//! The Self-Forcing Rust workspace's top-level package: its examples, benches and the streaming
//! web demo ([`server`]) that `examples/stream.rs` runs.
//!
//! The libraries are `sf-device`, `sf-models`, `sf-text`, `sf-vae` and `sf-pipeline`; programs
//! that generate video embed `sf-pipeline`.

pub mod server;
