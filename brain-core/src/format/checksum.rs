//! The payload checksum: xxh3-64 over 1 MiB chunks, combined.
//!
//! A payload is cut into chunks of [`CHECKSUM_CHUNK`] bytes (the last one
//! shorter; an empty payload has none). Each chunk's digest is the standard
//! xxh3-64 (seed 0) of its bytes, and the payload's checksum is the xxh3-64
//! of the digests written one after another as little-endian u64.
//!
//! Why chunks rather than one xxh3 of the whole payload (the older kind,
//! flag bit 0): a writer computes the checksum while it copies, and splits
//! large copies across cores. With chunks, each thread hashes the chunks it
//! copies, and nothing has to be read twice. Each chunk is a standard xxh3,
//! so any xxh3 library can check an object.
//!
//! [`ChunkHasher`] is xxh3's long-input loop (inputs of more than 240
//! bytes) as a state machine over 64-byte stripes, so the writer can feed
//! it stripes as they are copied (`sys/copy.rs` has the vector version
//! fused with the copy, and one for bytes already in place, which keep
//! exactly this state); it is checked against the xxhash-rust crate by the
//! tests below.

use xxhash_rust::xxh3::xxh3_64;

/// The chunk the payload checksum is computed over: 1 MiB.
pub const CHECKSUM_CHUNK: usize = 1 << 20;

/// xxh3's default secret.
pub(crate) const SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

/// Bytes xxh3 consumes per accumulation step.
pub(crate) const STRIPE: usize = 64;
/// Stripes between two scrambles of the accumulators.
pub(crate) const STRIPES_PER_BLOCK: usize = 16;
/// Inputs up to this long take xxh3's short paths, not the stripe loop.
pub(crate) const MID_SIZE_MAX: usize = 240;
/// Where in the secret the scramble, the last stripe and the merge read.
pub(crate) const SCRAMBLE_SECRET: usize = SECRET.len() - STRIPE;
const LAST_STRIPE_SECRET: usize = SECRET.len() - STRIPE - 7;
const MERGE_SECRET: usize = 11;

const P32_1: u64 = 0x9E37_79B1;
const P32_2: u64 = 0x85EB_CA77;
const P32_3: u64 = 0xC2B2_AE3D;
const P64_1: u64 = 0x9E37_79B1_85EB_CA87;
const P64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P64_3: u64 = 0x1656_67B1_9E37_79F9;
const P64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const P64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// The checksum of a whole payload, as a writer stores it.
pub fn payload_checksum(payload: &[u8]) -> u64 {
    // One chunk, the usual case of a small object's every read and write:
    // its digest's digest, without a list of digests to allocate.
    if !payload.is_empty() && payload.len() <= CHECKSUM_CHUNK {
        return xxh3_64(&xxh3_64(payload).to_le_bytes());
    }
    let mut digests = ChunkDigests::default();
    for chunk in payload.chunks(CHECKSUM_CHUNK) {
        digests.push(xxh3_64(chunk));
    }
    digests.finish()
}

/// [`payload_checksum`] on every core, for a large payload (a verified
/// read, `fsck`): each thread hashes a run of whole chunks.
pub fn payload_checksum_parallel(payload: &[u8]) -> u64 {
    const PARALLEL_FROM: usize = 16 * CHECKSUM_CHUNK;
    // The size first: `available_parallelism` reads cgroup files on every
    // call, which costs a small payload many times its hashing.
    if payload.len() < PARALLEL_FROM {
        return payload_checksum(payload);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 {
        return payload_checksum(payload);
    }
    let chunks = payload.len().div_ceil(CHECKSUM_CHUNK);
    let per = chunks.div_ceil(threads) * CHECKSUM_CHUNK;
    let runs: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = payload
            .chunks(per)
            .map(|run| {
                scope.spawn(move || run.chunks(CHECKSUM_CHUNK).map(xxh3_64).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a checksum thread panicked"))
            .collect()
    });
    let mut digests = ChunkDigests::default();
    for run in runs {
        digests.extend(&run);
    }
    digests.finish()
}

/// The digests of a payload's chunks, in order; [`ChunkDigests::finish`]
/// combines them into the payload's checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkDigests {
    bytes: Vec<u8>,
}

impl ChunkDigests {
    /// Appends the next chunk's digest.
    pub fn push(&mut self, digest: u64) {
        self.bytes.extend_from_slice(&digest.to_le_bytes());
    }

    /// Appends digests computed elsewhere (another thread's chunks), in order.
    pub fn extend(&mut self, digests: &[u64]) {
        for &d in digests {
            self.push(d);
        }
    }

    /// How many chunks are in.
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// True before the first chunk.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The payload's checksum.
    pub fn finish(&self) -> u64 {
        xxh3_64(&self.bytes)
    }
}

/// xxh3-64's accumulators part-way through one chunk: the stripes consumed
/// so far. The last stripe of a chunk is consumed by [`ChunkHasher::finish`],
/// with a secret of its own, so a stripe may be fed only once at least one
/// byte after it is known to belong to the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHasher {
    /// The eight accumulators, in xxh3's order.
    pub acc: [u64; 8],
    /// Stripes consumed.
    pub stripes: usize,
}

impl Default for ChunkHasher {
    fn default() -> Self {
        ChunkHasher {
            acc: [P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1],
            stripes: 0,
        }
    }
}

fn read64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn accumulate(acc: &mut [u64; 8], stripe: &[u8], secret_at: usize) {
    for i in 0..8 {
        let data = read64(stripe, 8 * i);
        let key = data ^ read64(&SECRET, secret_at + 8 * i);
        acc[i ^ 1] = acc[i ^ 1].wrapping_add(data);
        acc[i] = acc[i].wrapping_add((key & 0xFFFF_FFFF).wrapping_mul(key >> 32));
    }
}

fn scramble(acc: &mut [u64; 8]) {
    for (i, a) in acc.iter_mut().enumerate() {
        let key = read64(&SECRET, SCRAMBLE_SECRET + 8 * i);
        *a = ((*a ^ (*a >> 47)) ^ key).wrapping_mul(P32_1);
    }
}

fn mul128_fold64(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9E37_79F9);
    h ^ (h >> 32)
}

impl ChunkHasher {
    /// Consumes the next 64-byte stripe of the chunk.
    pub fn stripe(&mut self, stripe: &[u8]) {
        assert_eq!(stripe.len(), STRIPE, "a stripe is 64 bytes");
        accumulate(
            &mut self.acc,
            stripe,
            (self.stripes % STRIPES_PER_BLOCK) * 8,
        );
        self.stripes += 1;
        if self.stripes.is_multiple_of(STRIPES_PER_BLOCK) {
            scramble(&mut self.acc);
        }
    }

    /// The stripes of a chunk of `len` bytes consumed before its last one.
    pub fn stripes_before_last(len: usize) -> usize {
        len.saturating_sub(1) / STRIPE
    }

    /// The xxh3-64 of `chunk`, all of whose stripes but the last were fed
    /// (exactly [`ChunkHasher::stripes_before_last`] of them). A chunk of
    /// 240 bytes or less is hashed whole instead (xxh3's short paths).
    pub fn finish(&self, chunk: &[u8]) -> u64 {
        let len = chunk.len();
        if len <= MID_SIZE_MAX {
            return xxh3_64(chunk);
        }
        assert_eq!(
            self.stripes,
            Self::stripes_before_last(len),
            "every stripe but the last must be fed first"
        );
        self.finish_long(len as u64, &chunk[len - STRIPE..])
    }

    /// The xxh3-64 of an input of `len` (more than 240) bytes whose stripes
    /// before the last were fed, given its last 64 bytes.
    pub(crate) fn finish_long(&self, len: u64, last_stripe: &[u8]) -> u64 {
        let mut acc = self.acc;
        accumulate(&mut acc, last_stripe, LAST_STRIPE_SECRET);
        let mut result = len.wrapping_mul(P64_1);
        for i in 0..4 {
            result = result.wrapping_add(mul128_fold64(
                acc[2 * i] ^ read64(&SECRET, MERGE_SECRET + 16 * i),
                acc[2 * i + 1] ^ read64(&SECRET, MERGE_SECRET + 16 * i + 8),
            ));
        }
        avalanche(result)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_stripes(chunk: &[u8]) -> u64 {
        let mut hasher = ChunkHasher::default();
        if chunk.len() > MID_SIZE_MAX {
            for i in 0..ChunkHasher::stripes_before_last(chunk.len()) {
                hasher.stripe(&chunk[i * STRIPE..(i + 1) * STRIPE]);
            }
        }
        hasher.finish(chunk)
    }

    /// `len` bytes of a xorshift stream from `seed`: test data that no
    /// hash or copy can get right by accident.
    pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_stripe_loop_is_xxh3() {
        // Around every boundary: stripes, blocks, the short paths.
        let lens = [
            0, 1, 63, 64, 65, 240, 241, 255, 256, 1023, 1024, 1025, 2047, 2048, 4096, 65536,
        ];
        for len in lens {
            let data = bytes(len, len as u64 + 7);
            assert_eq!(by_stripes(&data), xxh3_64(&data), "len {len}");
        }
        if !cfg!(miri) {
            let data = bytes(CHECKSUM_CHUNK, 3);
            assert_eq!(by_stripes(&data), xxh3_64(&data));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "40 MiB hashed on several threads: hours under miri")]
    fn a_payload_checksum_combines_its_chunks() {
        assert_eq!(payload_checksum(b""), xxh3_64(b""));
        // One chunk, whole or not: the digest of its digest.
        for len in [1, 20, CHECKSUM_CHUNK - 1, CHECKSUM_CHUNK] {
            let one = bytes(len, 11);
            assert_eq!(
                payload_checksum(&one),
                xxh3_64(&xxh3_64(&one).to_le_bytes()),
                "len {len}"
            );
        }
        let data = bytes(CHECKSUM_CHUNK * 2 + 5, 9);
        let mut digests = Vec::new();
        for chunk in data.chunks(CHECKSUM_CHUNK) {
            digests.extend_from_slice(&xxh3_64(chunk).to_le_bytes());
        }
        assert_eq!(payload_checksum(&data), xxh3_64(&digests));
        assert_eq!(payload_checksum_parallel(&data), payload_checksum(&data));
        let big = bytes(CHECKSUM_CHUNK * 40 + 3, 5);
        assert_eq!(payload_checksum_parallel(&big), payload_checksum(&big));
        let mut flipped = data.clone();
        flipped[CHECKSUM_CHUNK + 17] ^= 1;
        assert_ne!(payload_checksum(&flipped), payload_checksum(&data));
    }

    proptest! {
        #[test]
        fn any_length_hashes_as_xxh3(len in 0usize..5000, seed in any::<u64>()) {
            let data = bytes(len, seed);
            prop_assert_eq!(by_stripes(&data), xxh3_64(&data));
        }
    }
}
