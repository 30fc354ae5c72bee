//! Every comparison against the golden fixtures, once: the parity runner dispatches to these
//! functions and the crates' tests call them and assert that every result passed.
//!
//! Each function takes one fixture (and the device), reads the configuration from the file's
//! own metadata (or from the weights file it names), and returns [`Checks`]: one
//! [`CheckResult`] per comparison, and every optional reference it did not find as a
//! [`Skipped`] entry with the reason. An error (a missing tensor, a refused load) becomes a
//! failed result, never a panic.

use std::fmt;

use crate::compare::CheckResult;
use crate::fixture::FixtureError;

pub mod dit;
pub mod lora;
pub mod rollout;
pub mod scheduler;
pub mod switch;
pub mod taehv;
pub mod text;
pub mod tokenizer;
pub mod wan_vae;

/// A reference a check did not compare, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The fixture file.
    pub file: String,
    /// What was not compared.
    pub what: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped {}: {}: {}", self.file, self.what, self.reason)
    }
}

/// What the checks of one fixture file produced.
#[derive(Debug, Default)]
pub struct Checks {
    /// The fixture file.
    pub file: String,
    /// Every comparison that ran, in order.
    pub results: Vec<CheckResult>,
    /// Every reference that was not compared.
    pub skipped: Vec<Skipped>,
}

impl Checks {
    /// No results yet.
    pub fn new(file: impl Into<String>) -> Self {
        Checks {
            file: file.into(),
            ..Checks::default()
        }
    }

    /// Runs `body` on fresh checks of `file`; an error it returns becomes a failed result.
    pub fn run(file: &str, body: impl FnOnce(&mut Checks) -> Result<(), CheckError>) -> Self {
        let mut checks = Checks::new(file);
        if let Err(err) = body(&mut checks) {
            checks
                .results
                .push(CheckResult::error(file, "could not run", err));
        }
        checks
    }

    /// Adds a result.
    pub fn push(&mut self, result: CheckResult) {
        self.results.push(result);
    }

    /// Lists a reference as not compared.
    pub fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            file: self.file.clone(),
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Appends another file's checks.
    pub fn extend(&mut self, other: Checks) {
        self.results.extend(other.results);
        self.skipped.extend(other.skipped);
    }

    /// The failed results.
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.results.iter().filter(|r| !r.passed).collect()
    }

    /// Whether at least one comparison ran and every one passed.
    pub fn all_passed(&self) -> bool {
        !self.results.is_empty() && self.failures().is_empty()
    }

    /// Prints every line; panics (for tests) unless at least one comparison ran and every one
    /// passed.
    pub fn assert_passed(&self) {
        for r in &self.results {
            println!("{r}");
        }
        for s in &self.skipped {
            println!("{s}");
        }
        assert!(!self.results.is_empty(), "{}: no check ran", self.file);
        let failed: Vec<String> = self.failures().iter().map(ToString::to_string).collect();
        assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    }

    /// [`Checks::assert_passed`], and nothing skipped (for the workspace's complete fixtures).
    pub fn assert_complete(&self) {
        self.assert_passed();
        let skipped: Vec<String> = self.skipped.iter().map(ToString::to_string).collect();
        assert!(skipped.is_empty(), "skipped:\n{}", skipped.join("\n"));
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The fixture or its metadata.
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// The DiT refused its weights or inputs.
    #[error(transparent)]
    Model(#[from] sf_models::ModelError),
    /// The text encoder or tokenizer refused its weights or inputs.
    #[error(transparent)]
    Text(#[from] sf_text::TextError),
    /// A decoder refused its weights or inputs.
    #[error(transparent)]
    Vae(#[from] sf_vae::VaeError),
    /// The scheduler or the rollout refused its configuration or inputs.
    #[error(transparent)]
    Pipeline(Box<sf_pipeline::PipelineError>),
    /// Anything else (a JSON file that cannot be read, a tensor of the wrong size).
    #[error("{0}")]
    Other(String),
}

impl From<sf_pipeline::PipelineError> for CheckError {
    fn from(e: sf_pipeline::PipelineError) -> Self {
        CheckError::Pipeline(Box::new(e))
    }
}
