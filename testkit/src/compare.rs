//! The tolerance rule of `fixtures/FORMAT.md` §1 and the results of comparisons.
//!
//! Every comparison is bounded by its own reference: `max|out − ref| ≤ rel · max|ref| + abs`
//! (plus `mean|out − ref| ≤ mean_rel · max|ref|` for bf16 compute). A NaN anywhere, in the
//! output or in the reference, fails; so does a comparison of nothing.

use std::fmt;

use burn::tensor::Tensor;

use crate::fixture::{Fixture, FixtureError, to_f32s};

/// The tolerance rule `max|out − ref| ≤ rel · max|ref| + abs`, with an optional mean bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative part, scaled by the reference's largest magnitude.
    pub rel: f64,
    /// Absolute part.
    pub abs: f64,
    /// Bound on `mean|out − ref|`, relative to `max|ref|`, if any.
    pub mean_rel: Option<f64>,
}

impl Tolerance {
    /// The rule for every f32 computation (FORMAT.md §1).
    pub const F32: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-6,
        mean_rel: None,
    };
    /// The bound FORMAT.md §1 gives for a single forward computed in bf16, with its mean bound.
    pub const BF16_COMPUTE: Tolerance = Tolerance {
        rel: 5e-2,
        abs: 1e-3,
        mean_rel: Some(5e-3),
    };
    /// Integer and bookkeeping tensors: exact.
    pub const EXACT: Tolerance = Tolerance {
        rel: 0.0,
        abs: 0.0,
        mean_rel: None,
    };
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The fixture file.
    pub file: String,
    /// What was compared.
    pub check: String,
    /// `max|out − ref|` (NaN when a NaN was met).
    pub max_abs_diff: f64,
    /// The bound it had to stay under.
    pub bound: f64,
    /// Whether it did (and the shapes agreed).
    pub passed: bool,
    /// Details: why it failed beyond the numbers, the mean difference, the worst call.
    pub note: Option<String>,
}

impl CheckResult {
    /// A check that could not run: counts as failed.
    pub fn error(file: &str, check: &str, error: impl fmt::Display) -> Self {
        CheckResult {
            file: file.to_string(),
            check: check.to_string(),
            max_abs_diff: f64::NAN,
            bound: f64::NAN,
            passed: false,
            note: Some(error.to_string()),
        }
    }

    /// A check with no numbers (a load, a key check) that passed.
    pub fn ok(file: &str, check: &str) -> Self {
        CheckResult {
            file: file.to_string(),
            check: check.to_string(),
            max_abs_diff: 0.0,
            bound: 0.0,
            passed: true,
            note: None,
        }
    }

    /// [`CheckResult::ok`] or [`CheckResult::error`].
    pub fn from_outcome<E: fmt::Display>(file: &str, check: &str, outcome: Result<(), E>) -> Self {
        match outcome {
            Ok(()) => Self::ok(file, check),
            Err(e) => Self::error(file, check, e),
        }
    }

    /// How far into its bound the difference went (∞ for a failure without numbers).
    pub fn ratio(&self) -> f64 {
        let over = self.max_abs_diff > self.bound;
        if !self.passed && !over {
            f64::INFINITY
        } else if self.bound > 0.0 {
            self.max_abs_diff / self.bound
        } else if self.max_abs_diff == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<34} {:<52} max|diff| {:>10.3e}  bound {:>10.3e}  {}",
            self.file,
            self.check,
            self.max_abs_diff,
            self.bound,
            if self.passed { "PASS" } else { "FAIL" }
        )?;
        if let Some(note) = &self.note {
            write!(f, "  ({note})")?;
        }
        Ok(())
    }
}

/// Compares `out` with `reference` under `tol`, bounded by this reference's own `max|ref|`.
pub fn compare(
    file: &str,
    check: &str,
    out: &[f64],
    reference: &[f64],
    tol: Tolerance,
) -> CheckResult {
    let fail = |max_abs_diff: f64, bound: f64, note: String| CheckResult {
        file: file.to_string(),
        check: check.to_string(),
        max_abs_diff,
        bound,
        passed: false,
        note: Some(note),
    };
    if reference.is_empty() {
        return fail(f64::NAN, f64::NAN, "the reference is empty".into());
    }
    if reference.iter().any(|v| !v.is_finite()) {
        return fail(f64::NAN, f64::NAN, "the reference holds NaN or Inf".into());
    }
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let bound = tol.rel * max_ref + tol.abs;
    if out.len() != reference.len() {
        let note = format!(
            "{} values against {} in the reference",
            out.len(),
            reference.len()
        );
        return fail(f64::INFINITY, bound, note);
    }
    let mut max_abs_diff = 0.0f64;
    let mut sum = 0.0f64;
    let mut nan = 0usize;
    for (a, b) in out.iter().zip(reference) {
        let d = (a - b).abs();
        if d.is_nan() {
            nan += 1;
        } else {
            max_abs_diff = max_abs_diff.max(d);
            sum += d;
        }
    }
    if nan > 0 {
        return fail(f64::NAN, bound, format!("{nan} NaN values in the output"));
    }
    let mut passed = max_abs_diff <= bound;
    let mut note = None;
    if let Some(mean_rel) = tol.mean_rel {
        let mean = sum / out.len() as f64;
        let mean_bound = mean_rel * max_ref;
        passed &= mean <= mean_bound;
        note = Some(format!(
            "mean|diff| {mean:.3e}, bound {mean_bound:.3e}{}",
            if mean <= mean_bound { "" } else { ": FAIL" }
        ));
    }
    CheckResult {
        file: file.to_string(),
        check: check.to_string(),
        max_abs_diff,
        bound,
        passed,
        note,
    }
}

/// [`compare`] for f32 values.
pub fn compare_f32(
    file: &str,
    check: &str,
    out: &[f32],
    reference: &[f32],
    tol: Tolerance,
) -> CheckResult {
    let widen = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    compare(file, check, &widen(out), &widen(reference), tol)
}

/// Exact comparison of integer values.
pub fn compare_exact(file: &str, check: &str, out: &[i64], reference: &[i64]) -> CheckResult {
    let widen = |v: &[i64]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    compare(
        file,
        check,
        &widen(out),
        &widen(reference),
        Tolerance::EXACT,
    )
}

/// Compares `out` with the fixture tensor `name`: the shapes must agree, then the values.
pub fn compare_tensor<const D: usize>(
    fx: &Fixture,
    check: &str,
    out: Tensor<D>,
    name: &str,
    tol: Tolerance,
) -> Result<CheckResult, FixtureError> {
    let file = fx.file_name();
    let shape = fx.shape(name)?;
    let dims = out.dims().to_vec();
    if dims != shape {
        return Ok(CheckResult {
            note: Some(format!("output shape {dims:?}, {name} is {shape:?}")),
            ..CheckResult::error(&file, check, "")
        });
    }
    Ok(compare_f32(
        &file,
        check,
        &to_f32s(out),
        &fx.f32s(name)?,
        tol,
    ))
}

/// Per-call comparisons summarised in one result. It passes only when at least one call (or
/// exactly the expected number) was compared and every call passed under its own bound; it
/// reports the call that came closest to (or furthest beyond) its bound.
#[derive(Debug)]
pub struct Aggregate {
    file: String,
    check: String,
    calls: usize,
    failed: Vec<String>,
    worst: Option<CheckResult>,
}

impl Aggregate {
    /// An empty summary.
    pub fn new(file: &str, check: &str) -> Self {
        Aggregate {
            file: file.to_string(),
            check: check.to_string(),
            calls: 0,
            failed: Vec::new(),
            worst: None,
        }
    }

    /// Adds one call's comparison (its `check` names the call).
    pub fn add(&mut self, result: CheckResult) {
        self.calls += 1;
        if !result.passed {
            self.failed.push(result.check.clone());
        }
        let worse = self.worst.as_ref().is_none_or(|w| {
            (w.passed && !result.passed)
                || (w.passed == result.passed && result.ratio() > w.ratio())
        });
        if worse {
            self.worst = Some(result);
        }
    }

    /// How many calls were added.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// The summary; with `expected`, a different number of compared calls fails.
    pub fn finish(self, expected: Option<usize>) -> CheckResult {
        let Some(worst) = self.worst else {
            return CheckResult::error(&self.file, &self.check, "no call was compared");
        };
        let mut notes = vec![format!(
            "{} calls, worst {}{}",
            self.calls,
            worst.check,
            worst.note.map(|n| format!(": {n}")).unwrap_or_default()
        )];
        if !self.failed.is_empty() {
            notes.push(format!("failed: {}", self.failed.join(", ")));
        }
        let count_ok = expected.is_none_or(|n| n == self.calls);
        if let Some(n) = expected.filter(|_| !count_ok) {
            notes.push(format!("expected {n} calls"));
        }
        CheckResult {
            file: self.file,
            check: self.check,
            max_abs_diff: worst.max_abs_diff,
            bound: worst.bound,
            passed: self.failed.is_empty() && count_ok,
            note: Some(notes.join("; ")),
        }
    }
}
