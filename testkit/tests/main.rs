//! The testkit's own tests, in one binary (each test binary links burn): the tolerance rule, the
//! fixture reader, the configurations, and the parity runner's verdicts.

mod compare;
mod configs;
mod fixture;
mod runner;
