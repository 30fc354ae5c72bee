//! Vectorisable element-wise math for the Flex kernels: `2^x`, row max / sum, softmax rows and
//! GELU-tanh over `f32` slices.
//!
//! The bodies are plain loops over 16-lane chunks that LLVM turns into SIMD; on x86_64 they are
//! compiled a second time with AVX2 + FMA and picked at run time (`is_x86_feature_detected!`),
//! so a default `x86-64` build still runs 8-wide where the CPU can. On aarch64 NEON is baseline.

/// Lanes of the manual reductions (two AVX2 registers, four NEON registers).
const LANES: usize = 16;

/// `log2(e)`.
pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// `2^x` for `f32`, within ~2 ulp of the exact value for normal results; `x < -126` gives
/// `2^-126` (softmax weights that small are zero at f32 precision next to the row's maximum
/// of 1), `x > 127` gives `2^127`, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp2(x: f32) -> f32 {
    // Branch-free clamp that keeps NaN (both comparisons are false for NaN).
    let x = if x < -126.0 { -126.0 } else { x };
    let x = if x > 127.0 { 127.0 } else { x };
    // Round to nearest with the 1.5·2^23 trick: `t`'s low mantissa bits hold `n`.
    const MAGIC: f32 = 12_582_912.0;
    let t = x + MAGIC;
    let n = t - MAGIC;
    let f = x - n; // in [-0.5, 0.5]
    // 2^f = e^(f ln 2), Taylor to degree 7 (error < 1e-8 on [-0.5, 0.5]).
    const C: [f32; 8] = [
        1.0,
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
        0.000_154_035_3,
        0.000_015_252_734,
    ];
    let p = C[7];
    let p = p * f + C[6];
    let p = p * f + C[5];
    let p = p * f + C[4];
    let p = p * f + C[3];
    let p = p * f + C[2];
    let p = p * f + C[1];
    let p = p * f + C[0];
    // 2^n from the exponent bits: (0x4B40_0000 + n + 127) << 23 drops the magic's high bits.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    p * scale
}

/// Largest element (`-inf` for an empty slice; NaN elements are skipped unless all are NaN).
#[inline(always)]
fn max_body(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in acc.iter().chain(tail) {
        m = if x > m { x } else { m };
    }
    m
}

/// Replaces every `s` of `row` by `2^(s·c − m)` and returns their sum.
#[inline(always)]
fn exp2_row_body(row: &mut [f32], c: f32, m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (a, x) in acc.iter_mut().zip(chunk.iter_mut()) {
            let p = exp2(*x * c - m);
            *x = p;
            *a += p;
        }
    }
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        let p = exp2(*x * c - m);
        *x = p;
        sum += p;
    }
    acc.iter().sum::<f32>() + sum
}

/// `x · σ(2u)` with `u = √(2/π)(x + 0.044715x³)`, which is `0.5x(1 + tanh u)` without tanh.
#[inline(always)]
fn gelu_body(xs: &mut [f32]) {
    // 2·√(2/π)·log2(e): σ(2u) = 1 / (1 + 2^(−K·(x + 0.044715x³))).
    const K: f32 = 2.0 * 0.797_884_6 * LOG2_E;
    for x in xs.iter_mut() {
        let v = *x;
        let inner = v + 0.044_715 * v * v * v;
        *x = v / (1.0 + exp2(-K * inner));
    }
}

/// `x · σ(x) = x / (1 + 2^(−x·log2 e))`.
#[inline(always)]
fn silu_body(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        let v = *x;
        *x = v / (1.0 + exp2(-LOG2_E * v));
    }
}

/// Defines a slice function with a portable body and, on x86_64, an AVX2 + FMA copy picked once
/// per call by run-time detection.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

multiversion!(
    /// Largest element of `row` (`-inf` when empty).
    fn row_max(row: &[f32]) -> f32 = max_body
);

multiversion!(
    /// `row[j] ← 2^(row[j]·c − m)`; returns the sum of the new row.
    fn exp2_row(row: &mut [f32], c: f32, m: f32) -> f32 = exp2_row_body
);

multiversion!(
    /// GELU with the tanh approximation, in place.
    fn gelu_tanh_in_place(xs: &mut [f32]) -> () = gelu_body
);

multiversion!(
    /// SiLU (`x·σ(x)`), in place.
    fn silu_in_place(xs: &mut [f32]) -> () = silu_body
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_is_within_two_ulp_over_the_softmax_range() {
        let mut worst = 0.0f64;
        let mut x = -125.0f32;
        while x < 127.0 {
            let exact = (x as f64).exp2();
            let rel = ((exp2(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp2(0.0), 1.0);
        assert!(exp2(f32::NAN).is_nan());
        assert!(exp2(-1e30) <= f32::MIN_POSITIVE);
        assert!(exp2(f32::NEG_INFINITY) <= f32::MIN_POSITIVE);
    }

    #[test]
    fn row_helpers_match_scalar_code_for_every_tail_length() {
        for len in 0..70 {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            let expect = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&row), expect, "len {len}");
            let (c, m) = (0.3, 1.5);
            let mut got = row.clone();
            let sum = exp2_row(&mut got, c, m);
            let exact: Vec<f64> = row
                .iter()
                .map(|&s| (s as f64 * c as f64 - m as f64).exp2())
                .collect();
            for (g, e) in got.iter().zip(&exact) {
                assert!(((*g as f64) - e).abs() <= 3e-7 * e, "{g} vs {e}");
            }
            let exact_sum: f64 = exact.iter().sum();
            assert!((sum as f64 - exact_sum).abs() <= 1e-6 * exact_sum.max(1e-30));
        }
    }

    #[test]
    fn silu_matches_its_formula() {
        let xs: Vec<f32> = (-3000..3000)
            .map(|i| i as f32 * 0.01)
            .chain([-100.0, 100.0])
            .collect();
        let mut got = xs.clone();
        silu_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let x = x as f64;
            let exact = x / (1.0 + (-x).exp());
            assert!(
                (g as f64 - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "{x}: {g} vs {exact}"
            );
        }
    }

    #[test]
    fn gelu_matches_the_tanh_formula() {
        let xs: Vec<f32> = (-2000..2000)
            .map(|i| i as f32 * 0.005)
            .chain([-60.0, 60.0])
            .collect();
        let mut got = xs.clone();
        gelu_tanh_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let x = x as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
            let exact = 0.5 * x * (1.0 + u.tanh());
            assert!(
                (g as f64 - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "{x}: {g} vs {exact}"
            );
        }
    }
}
