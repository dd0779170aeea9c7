//! A tiny deterministic generator whose whole state is one `u64`, so the loader's position and the
//! trainer's randomness serialise into `trainer.json` and replay identically on any machine.

use serde::{Deserialize, Serialize};

/// SplitMix64 (Steele, Lea & Flood 2014): fast, good enough for shuffling, trivially resumable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent stream for a sub-task, derived from this seed and a label.
    pub fn derive(seed: u64, labels: &[u64]) -> Self {
        let mut rng = Self::new(seed ^ 0x5EED_5EED_5EED_5EED);
        for &label in labels {
            rng.state ^= label.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; `n` must be positive. Multiply-shift keeps the bias below 2^-32.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A stable 64-bit hash of a string, for id-based hold-out that survives reordering: FNV-1a,
/// then one SplitMix64 round so that ids differing in their last byte differ in the high bits.
pub fn stable_hash(text: &str) -> u64 {
    let fnv = text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    Rng::new(fnv).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_below_is_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_ne!(
            Rng::derive(1, &[2]).next_u64(),
            Rng::derive(1, &[3]).next_u64()
        );
    }
}
