//! What the `generate` and `stream` examples share: the command line ([`args`]), the checks made
//! before any model is loaded ([`preflight`]), console output that never panics ([`console`])
//! `generate`'s prompt schedule files ([`schedule`]) and its signal handling ([`signals`]).
//!
//! Exit codes: 0 done; 2 a command line that cannot run (found before loading anything);
//! 1 a failure while loading or generating; 130 stopped by SIGINT / SIGTERM / SIGHUP.
// Each example uses a part of this module.
#![allow(dead_code)]

pub mod args;
pub mod console;
#[path = "measure.rs"]
pub mod measure;
pub mod preflight;
pub mod schedule;
pub mod signals;

use std::process::ExitCode;

/// Why an example stops, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line cannot run as given (exit code 2); nothing was loaded or written.
    #[error("{0}")]
    Usage(String),
    /// Loading or generating failed (exit code 1).
    #[error("{0}")]
    Failed(String),
    /// Stopped by a signal (exit code 130).
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
            CliError::Interrupted(_) => signals::INTERRUPTED,
        }
    }
}

/// Parses the command line (`--help` prints the options; a bad option exits with code 2) and
/// runs `run`, printing its error and exiting with the error's code.
pub fn main_with<A: clap::Parser>(
    run: impl FnOnce(A) -> Result<(), Box<dyn std::error::Error>>,
) -> ExitCode {
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // Help and version go to stdout, errors to stderr; a closed pipe is ignored.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<CliError>() {
                Some(CliError::Interrupted(message)) => console::note(message),
                _ => console::error(&e),
            }
            ExitCode::from(e.downcast_ref::<CliError>().map_or(1, CliError::exit_code))
        }
    }
}
