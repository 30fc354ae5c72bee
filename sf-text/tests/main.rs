//! The sf-text integration tests, in one binary: every test
//! binary links the whole burn stack, so each package has one.

mod common;

mod cache;
mod ftfy_golden;
mod keys;
mod real_sizes;
mod t5_tiny_io;
mod tokenizer_golden;
