//! A small seeded random number generator (SplitMix64): a campaign is
//! repeated exactly by passing the seed it printed.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration in `0..=max`, to the microsecond.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros().min(u64::MAX as u128) as u64;
        Duration::from_micros(self.below(micros + 1))
    }
}
