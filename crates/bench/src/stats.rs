//! Latency summaries from raw samples (microseconds), and a small random number generator.

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Summarises `samples_us` (sorted in place). Empty input gives all zeros.
    pub fn from_micros(samples_us: &mut [u64]) -> Self {
        if samples_us.is_empty() {
            return Self::default();
        }
        samples_us.sort_unstable();
        let n = samples_us.len();
        let sum: u128 = samples_us.iter().map(|&v| u128::from(v)).sum();
        let ms = |us: u64| us as f64 / 1000.0;
        let mean_us = (sum as f64 / n as f64).round();
        Self {
            samples: n,
            p50_ms: ms(percentile(samples_us, 50.0)),
            p90_ms: ms(percentile(samples_us, 90.0)),
            p99_ms: ms(percentile(samples_us, 99.0)),
            max_ms: ms(samples_us[n - 1]),
            mean_ms: mean_us / 1000.0,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// xorshift64*: enough to pick job ids at random without another dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (zero is replaced, xorshift cannot leave it).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::{Latency, Rng, percentile};

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn summary_in_milliseconds() {
        let mut samples = vec![3000, 1000, 2000];
        let l = Latency::from_micros(&mut samples);
        assert_eq!(l.samples, 3);
        assert!((l.p50_ms - 2.0).abs() < 1e-9);
        assert!((l.max_ms - 3.0).abs() < 1e-9);
        assert!((l.mean_ms - 2.0).abs() < 1e-9);
        assert_eq!(Latency::from_micros(&mut []).samples, 0);
    }

    #[test]
    fn rng_stays_in_bounds() {
        let mut rng = Rng::new(0);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
