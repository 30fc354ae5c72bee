//! The sf-vae integration tests, in one binary: every test
//! binary links the whole burn stack, so each package has one.

mod common;

mod decoders;
mod taehv;
mod wan_vae;
mod wan_vae_loading;
mod wan_vae_strategies;
