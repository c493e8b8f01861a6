//! A tiny deterministic PRNG (SplitMix64) for the service allocator's random band and for tests.
//! Randomness here only spreads dynamic service IPs; it is not security-relevant, so a seeded
//! non-cryptographic generator is enough and keeps the crate free of an RNG dependency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64 (Steele, Lea, Flood 2014): one add and two multiply-xorshifts per output.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Seed from the clock, the process id and a counter, so two allocators created in the same
    /// nanosecond (or in two processes) still pick different sequences.
    pub(crate) fn from_entropy() -> SplitMix64 {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut mix = SplitMix64(nanos ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17));
        SplitMix64(mix.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for the
    /// bitmap sizes used here). `n` must be non-zero.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_stay_in_bounds() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for n in 1..2000u64 {
            let x = a.below(n);
            assert_eq!(x, b.below(n));
            assert!(x < n);
        }
        assert_ne!(SplitMix64::from_entropy().next_u64(), SplitMix64::from_entropy().next_u64());
    }
}
