//! The tolerance rule of FORMAT.md §1: bounds, NaN, empty and mismatched references, the bf16
//! mean bound, and per-call summaries bounded by each call's own reference.

use sf_testkit::{Aggregate, CheckResult, Tolerance, compare, compare_exact, compare_f32};

#[test]
fn tolerance_rule_matches_format_md() {
    let r = compare("f", "c", &[1.0, -2.0], &[1.0, -2.0002], Tolerance::F32);
    assert!((r.bound - (1e-4 * 2.0002 + 1e-6)).abs() < 1e-15);
    assert!(r.passed, "{r}");
    let r = compare("f", "c", &[1.0, -2.0], &[1.0, -2.001], Tolerance::F32);
    assert!(!r.passed, "{r}");
    let r = compare("f", "c", &[1.0], &[1.0, 2.0], Tolerance::F32);
    assert!(!r.passed && r.note.is_some());
    assert!(compare_exact("f", "c", &[3, 4], &[3, 4]).passed);
    assert!(!compare_exact("f", "c", &[3, 4], &[3, 5]).passed);
}

#[test]
fn nan_anywhere_fails() {
    // In the output, in the reference, next to larger differences: never dropped by a max.
    for (out, reference) in [
        (vec![f64::NAN, 1.0], vec![0.0, 1.0]),
        (vec![0.0, 1.0], vec![f64::NAN, 1.0]),
        (vec![0.0, 5.0, f64::NAN], vec![0.0, 1.0, 2.0]),
        (vec![f64::INFINITY], vec![f64::INFINITY]),
    ] {
        let r = compare("f", "c", &out, &reference, Tolerance::F32);
        assert!(!r.passed, "{out:?} against {reference:?}: {r}");
        let loose = Tolerance {
            rel: 1e9,
            abs: 1e9,
            mean_rel: None,
        };
        assert!(!compare("f", "c", &out, &reference, loose).passed);
    }
    let r = compare_f32("f", "c", &[f32::NAN], &[0.0], Tolerance::F32);
    assert!(r.max_abs_diff.is_nan() && !r.passed, "{r}");
}

#[test]
fn comparing_nothing_fails() {
    assert!(!compare("f", "c", &[], &[], Tolerance::F32).passed);
    assert!(!compare_exact("f", "c", &[], &[]).passed);
}

#[test]
fn bf16_bound_includes_the_mean() {
    // One outlier within the max bound passes; the same error everywhere breaks the mean bound.
    let reference = vec![1.0; 100];
    let mut out = reference.clone();
    out[0] += 0.04;
    let r = compare("f", "c", &out, &reference, Tolerance::BF16_COMPUTE);
    assert!(r.passed, "{r}");
    let out: Vec<f64> = reference.iter().map(|v| v + 0.04).collect();
    let r = compare("f", "c", &out, &reference, Tolerance::BF16_COMPUTE);
    assert!(r.max_abs_diff <= r.bound, "{r}");
    assert!(!r.passed, "the mean bound must fail it: {r}");
    assert!(r.note.as_deref().unwrap().contains("mean|diff|"), "{r}");
}

fn call(name: &str, out: &[f64], reference: &[f64]) -> CheckResult {
    compare("f", name, out, reference, Tolerance::F32)
}

#[test]
fn every_call_is_bounded_by_its_own_reference() {
    // A large call and a tiny one: the tiny call's error (1e-5) is far below the bound of the
    // largest reference (1e-4 · 100) but above its own (1e-4 · 1e-3 + 1e-6).
    let large = call("c0.s0", &[100.0, 1.0], &[100.0, 1.0]);
    let tiny = call("c1.s0", &[1e-3 + 1e-5], &[1e-3]);
    assert!(large.passed && !tiny.passed, "{large}\n{tiny}");
    let global_bound = Tolerance::F32.rel * 100.0 + Tolerance::F32.abs;
    assert!(tiny.max_abs_diff <= global_bound);
    let mut every = Aggregate::new("f", "every call's flow");
    every.add(large);
    every.add(tiny);
    let r = every.finish(Some(2));
    assert!(!r.passed, "{r}");
    let note = r.note.clone().unwrap();
    assert!(
        note.contains("worst c1.s0") && note.contains("failed: c1.s0"),
        "{r}"
    );
    assert_eq!(r.bound, Tolerance::F32.rel * 1e-3 + Tolerance::F32.abs);
}

#[test]
fn summaries_fail_without_calls_or_with_the_wrong_count() {
    let r = Aggregate::new("f", "every call").finish(None);
    assert!(!r.passed, "{r}");
    assert!(r.note.unwrap().contains("no call"));
    let mut one = Aggregate::new("f", "every call");
    one.add(call("c0.s0", &[1.0], &[1.0]));
    assert!(!one.finish(Some(2)).passed, "one call of two expected");
    let mut one = Aggregate::new("f", "every call");
    one.add(call("c0.s0", &[1.0], &[1.0]));
    assert!(one.finish(Some(1)).passed);
}
