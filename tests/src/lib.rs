//! What the end-to-end tests and their helper process share: self-describing
//! values, the sizes the tests write, the exit codes of the helper, a
//! sample of Arrow record batches, child processes ([`child`]), and the
//! conformance suite every backend passes ([`conformance`]).

#![forbid(unsafe_code)]

pub mod child;
pub mod conformance;
pub mod redis_server;

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Exit codes of `brain-test-helper`, one per kind of outcome a test checks.
pub mod exit {
    /// A failure that none of the codes below describes.
    pub const OTHER: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// `Error::StoreFull`.
    pub const STORE_FULL: i32 = 3;
    /// `Error::InvalidName`.
    pub const INVALID_NAME: i32 = 4;
    /// `Error::Corrupt`.
    pub const CORRUPT: i32 = 5;
    /// `Error::Timeout` (or a helper-side wait that ran out).
    pub const TIMEOUT: i32 = 6;
    /// The object asked for does not exist.
    pub const MISSING: i32 = 7;
    /// A value read back was not the value written: torn, mixed or changed.
    pub const MISMATCH: i32 = 8;
    /// `Error::LockLost`.
    pub const LOCK_LOST: i32 = 9;
}

/// Magic bytes at the start of every test value.
pub const VALUE_MAGIC: [u8; 8] = *b"E2EVALUE";
/// Bytes of the value header: magic, seed, total length, checksum.
pub const VALUE_HEADER_LEN: usize = 32;

/// The seed of value number `seq` written by writer `writer`.
pub fn seed_of(writer: u32, seq: u32) -> u64 {
    (u64::from(writer) << 32) | u64::from(seq)
}

/// The writer id of a seed made by [`seed_of`].
pub fn writer_of(seed: u64) -> u32 {
    (seed >> 32) as u32
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The body word at index `i` of the value with `seed`.
fn word(seed: u64, i: usize) -> u64 {
    splitmix64(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d))
}

/// A self-describing value of exactly `len` bytes (at least
/// [`VALUE_HEADER_LEN`]): a header holding `seed`, `len` and a checksum of
/// the body, then a body that is a pure function of `seed`. Any mix of two
/// values, truncation or changed byte is caught by [`check_value`].
pub fn make_value(seed: u64, len: usize) -> Vec<u8> {
    assert!(
        len >= VALUE_HEADER_LEN,
        "a test value needs at least {VALUE_HEADER_LEN} bytes, not {len}"
    );
    let mut out = vec![0u8; len];
    let mut sum = 0u64;
    for (i, chunk) in out[VALUE_HEADER_LEN..].chunks_mut(8).enumerate() {
        let w = word(seed, i);
        sum = sum.rotate_left(5) ^ w;
        chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
    }
    out[0..8].copy_from_slice(&VALUE_MAGIC);
    out[8..16].copy_from_slice(&seed.to_le_bytes());
    out[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    out[24..32].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Checks a value made by [`make_value`] and returns its seed, or says what
/// is wrong with it.
pub fn check_value(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < VALUE_HEADER_LEN {
        return Err(format!(
            "value is {} bytes, shorter than its header",
            bytes.len()
        ));
    }
    if bytes[0..8] != VALUE_MAGIC {
        return Err(format!("bad magic bytes {:02x?}", &bytes[0..8]));
    }
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let (seed, len, stored_sum) = (field(8), field(16), field(24));
    if len != bytes.len() as u64 {
        return Err(format!(
            "value of seed {seed:#x} says it is {len} bytes, but {} were read",
            bytes.len()
        ));
    }
    let mut sum = 0u64;
    for (i, chunk) in bytes[VALUE_HEADER_LEN..].chunks(8).enumerate() {
        let w = word(seed, i);
        sum = sum.rotate_left(5) ^ w;
        if chunk != &w.to_le_bytes()[..chunk.len()] {
            return Err(format!(
                "value of seed {seed:#x} ({len} bytes) differs from its pattern at byte {}",
                VALUE_HEADER_LEN + i * 8
            ));
        }
    }
    if sum != stored_sum {
        return Err(format!("value of seed {seed:#x}: checksum mismatch"));
    }
    Ok(seed)
}

/// The size of object number `i` written by `write-many`: small ones read
/// into memory, large ones mapped.
pub fn size_for(i: usize) -> usize {
    const SIZES: [usize; 6] = [40, 4_000, 60_000, 300_000, 2 << 20, 5 << 20];
    SIZES[i % SIZES.len()] + i
}

/// The sizes a racing writer cycles through: small (read) and 1-4 MiB (mapped).
pub const RACE_SIZES: [usize; 5] = [100, 5_000, 1 << 20, 70_000, 3 << 20];

/// Sizes `race-small` writes: entries of the table of small objects, and
/// (1,990 bytes with their header) files, so names also move between them.
pub const SMALL_RACE_SIZES: [usize; 4] = [32, 300, 1_200, 1_990];
/// How many names `race-small` and `read-small-loop` share.
pub const SMALL_RACE_NAMES: u32 = 8;

/// The record batches `write-arrow` stores: `rows` rows split in two batches.
pub fn sample_batches(rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Float64, false),
        Field::new("qty", DataType::Int64, true),
        Field::new("sku", DataType::Utf8, false),
    ]));
    let batch = |from: usize, to: usize| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from_iter_values(
                    (from..to).map(|i| i as f64 * 0.25),
                )),
                Arc::new(Int64Array::from_iter(
                    (from..to).map(|i| (i % 5 != 0).then_some(i as i64 * 3)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (from..to).map(|i| format!("sku-{i:06}")),
                )),
            ],
        )
        .expect("columns match the schema")
    };
    let half = rows / 2;
    let batches = vec![batch(0, half), batch(half, rows)];
    (schema, batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_check_and_mixes_are_caught() {
        for len in [32, 33, 100, 4097] {
            let v = make_value(seed_of(3, 9), len);
            assert_eq!(check_value(&v), Ok(seed_of(3, 9)));
        }
        let a = make_value(1, 1000);
        let b = make_value(2, 1000);
        let mut mixed = a.clone();
        mixed[500..].copy_from_slice(&b[500..]);
        assert!(check_value(&mixed).is_err());
        assert!(check_value(&a[..999]).is_err());
    }
}
