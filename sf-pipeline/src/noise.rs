//! Noise sources for the rollout: a seeded host-side Gaussian generator (the same noise for the
//! same seed on every device) and an injectable trait so tests can feed stored noise.

use burn::tensor::{Device, Tensor, TensorData};

use crate::PipelineError;

/// Where the rollout gets its Gaussian noise.
pub trait NoiseSource {
    /// Initial noise of the generated frames, `[B, C, F, H, W]`.
    fn initial(&mut self, shape: [usize; 5], device: &Device) -> Result<Tensor<5>, PipelineError>;
    /// Fresh noise that re-noises generated chunk `chunk` after denoising step `step`.
    fn renoise(
        &mut self,
        chunk: usize,
        step: usize,
        shape: [usize; 5],
        device: &Device,
    ) -> Result<Tensor<5>, PipelineError>;
}

/// Standard normal noise from a seeded xoshiro256** stream with Box-Muller, generated on the
/// host: the same seed gives the same video on every backend.
#[derive(Clone, Debug)]
pub struct SeededNoise {
    state: [u64; 4],
    spare: Option<f32>,
}

impl SeededNoise {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededNoise {
            state: [next(), next(), next(), next()],
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// One standard normal sample.
    pub fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }

    fn tensor(&mut self, shape: [usize; 5], device: &Device) -> Tensor<5> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.normal()).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

impl NoiseSource for SeededNoise {
    fn initial(&mut self, shape: [usize; 5], device: &Device) -> Result<Tensor<5>, PipelineError> {
        Ok(self.tensor(shape, device))
    }

    fn renoise(
        &mut self,
        _chunk: usize,
        _step: usize,
        shape: [usize; 5],
        device: &Device,
    ) -> Result<Tensor<5>, PipelineError> {
        Ok(self.tensor(shape, device))
    }
}

/// A random seed (from the process's random hasher state and the clock), for `--seed -1`.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_standard_moments() {
        let mut a = SeededNoise::new(42);
        let mut b = SeededNoise::new(42);
        let mut c = SeededNoise::new(43);
        let xs: Vec<f32> = (0..20_000).map(|_| a.normal()).collect();
        let ys: Vec<f32> = (0..20_000).map(|_| b.normal()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[..8], (0..8).map(|_| c.normal()).collect::<Vec<_>>()[..]);
        let mean = xs.iter().map(|v| *v as f64).sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
