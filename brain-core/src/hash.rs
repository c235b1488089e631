//! Hashing on the vector kernels: the standard xxh3-64 of a stream,
//! computed by the stripe loop the writer's copy uses (`sys/copy.rs`) over
//! the state machine of `format/checksum.rs`.

use xxhash_rust::xxh3::xxh3_64;

use crate::format::checksum::{ChunkHasher, MID_SIZE_MAX, STRIPE};
use crate::sys::copy::hash_stripes;

/// The standard xxh3-64 (seed 0) of bytes that arrive in pieces of any
/// size, as `xxhash_rust::xxh3::Xxh3` computes it, on the widest vector
/// kernel this processor runs (that crate picks its SIMD when it is
/// compiled: SSE2 on a baseline x86-64 build, about 5 GB/s here; see
/// docs/BENCHMARKS.md, "Checking what a fetch read").
#[derive(Debug, Clone)]
pub struct Xxh3Stream {
    hasher: ChunkHasher,
    /// Bytes hashed or held so far.
    len: u64,
    /// The first 240 bytes: xxh3 hashes an input that short whole.
    head: [u8; MID_SIZE_MAX],
    /// The bytes after the last stripe consumed (1 to 64 of them once any
    /// came): a stripe is consumed only when a byte after it is known, as
    /// the last one is hashed differently.
    held: [u8; STRIPE],
    held_len: usize,
    /// The last stripe consumed, for the last 64 bytes of an input whose
    /// held tail is shorter.
    consumed: [u8; STRIPE],
}

impl Default for Xxh3Stream {
    fn default() -> Self {
        Xxh3Stream {
            hasher: ChunkHasher::default(),
            len: 0,
            head: [0; MID_SIZE_MAX],
            held: [0; STRIPE],
            held_len: 0,
            consumed: [0; STRIPE],
        }
    }
}

impl Xxh3Stream {
    /// A hasher of no bytes yet.
    pub fn new() -> Xxh3Stream {
        Xxh3Stream::default()
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.len < MID_SIZE_MAX as u64 {
            let at = self.len as usize;
            let n = bytes.len().min(MID_SIZE_MAX - at);
            self.head[at..at + n].copy_from_slice(&bytes[..n]);
        }
        self.len += bytes.len() as u64;
        if self.held_len > 0 {
            let n = bytes.len().min(STRIPE - self.held_len);
            self.held[self.held_len..self.held_len + n].copy_from_slice(&bytes[..n]);
            self.held_len += n;
            bytes = &bytes[n..];
            if bytes.is_empty() {
                return;
            }
            // A byte follows the held stripe: it is not the last.
            let stripe = self.held;
            self.hasher.stripe(&stripe);
            self.consumed = stripe;
            self.held_len = 0;
        }
        if bytes.is_empty() {
            return;
        }
        // Every whole stripe with a byte after it, in one run of the kernel.
        let run = (bytes.len() - 1) / STRIPE * STRIPE;
        if run > 0 {
            hash_stripes(&bytes[..run], &mut self.hasher);
            self.consumed.copy_from_slice(&bytes[run - STRIPE..run]);
        }
        let tail = &bytes[run..];
        self.held[..tail.len()].copy_from_slice(tail);
        self.held_len = tail.len();
    }

    /// The xxh3-64 of every byte given so far.
    pub fn digest(&self) -> u64 {
        if self.len <= MID_SIZE_MAX as u64 {
            return xxh3_64(&self.head[..self.len as usize]);
        }
        let mut last = [0u8; STRIPE];
        let from_consumed = STRIPE - self.held_len;
        last[..from_consumed].copy_from_slice(&self.consumed[self.held_len..]);
        last[from_consumed..].copy_from_slice(&self.held[..self.held_len]);
        self.hasher.finish_long(self.len, &last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::checksum::tests::bytes;
    use crate::format::checksum::CHECKSUM_CHUNK;
    use proptest::prelude::*;

    /// Feeds `data` to a stream in pieces cut at `cuts` (offsets, any order).
    fn streamed(data: &[u8], cuts: &[usize]) -> u64 {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut stream = Xxh3Stream::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            stream.update(&data[at..cut]);
            at = cut;
        }
        stream.digest()
    }

    #[test]
    fn a_stream_of_megabytes_hashes_as_xxh3() {
        // Smaller under miri, which takes minutes a megabyte.
        let unit = if cfg!(miri) { 4096 } else { CHECKSUM_CHUNK };
        let data = bytes(3 * unit + 4093, 9);
        let expected = xxh3_64(&data);
        assert_eq!(streamed(&data, &[]), expected);
        // Pieces the size a fetch reads them in (a chunk less a page), and
        // ones that end a byte short of a stripe or past one.
        let pieces: Vec<usize> = (1..4).map(|i| i * (unit - unit / 256)).collect();
        assert_eq!(streamed(&data, &pieces), expected);
        let odd: Vec<usize> = (1..200).map(|i| i * (unit / 64 + 63) + i % 3).collect();
        assert_eq!(streamed(&data, &odd), expected);
        let mut flipped = data.clone();
        flipped[data.len() - 1] ^= 1;
        assert_ne!(streamed(&flipped, &odd), expected);
        flipped = data.clone();
        flipped[unit] ^= 1;
        assert_ne!(streamed(&flipped, &pieces), expected);
    }

    proptest! {
        #[test]
        fn a_stream_in_any_pieces_hashes_as_xxh3(
            len in 0usize..5000,
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let data = bytes(len, seed);
            prop_assert_eq!(streamed(&data, &cuts), xxh3_64(&data));
        }
    }
}
