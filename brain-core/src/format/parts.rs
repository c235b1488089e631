//! The parts layout: a payload made of several aligned byte ranges.
//!
//! Used by the ndarray codec (part 0: JSON metadata, part 1: the data, see
//! [`super::ndarray`]) and the pickle-5 codec (part 0: the pickle stream, parts 1..: out-of-band buffers).
//!
//! ```text
//! offset      size   field
//!      0         4   part count n (u32 LE)
//!      4         4   reserved, zero
//!      8      16*n   per part: offset from the payload start (u64 LE), length (u64 LE)
//!      .         .   the parts, each starting at a multiple of 64, zero padding between
//! ```

use super::header::align_up;
use arrow_buffer::Buffer;

static ZEROS: [u8; 64] = [0; 64];

/// Where each part of a payload goes: the table, and the segments to write in order.
#[derive(Debug)]
pub struct PartsLayout {
    table: Vec<u8>,
    padding: Vec<usize>,
    total: usize,
}

impl PartsLayout {
    /// Lays out parts of the given lengths.
    pub fn new(lengths: &[usize]) -> PartsLayout {
        let table_len = 8 + 16 * lengths.len();
        let mut table = Vec::with_capacity(table_len);
        table.extend_from_slice(&(lengths.len() as u32).to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        let mut at = align_up(table_len);
        let mut padding = vec![at - table_len];
        for (i, &len) in lengths.iter().enumerate() {
            table.extend_from_slice(&(at as u64).to_le_bytes());
            table.extend_from_slice(&(len as u64).to_le_bytes());
            let end = at + len;
            at = if i + 1 == lengths.len() {
                end
            } else {
                align_up(end)
            };
            padding.push(at - end);
        }
        PartsLayout {
            table,
            padding,
            total: at,
        }
    }

    /// The payload's total length.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when the layout has no bytes (never: the table is always there).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The segments to write, in order, for `parts` (the lengths given to [`PartsLayout::new`]).
    pub fn segments<'a>(&'a self, parts: &[&'a [u8]]) -> Vec<&'a [u8]> {
        assert_eq!(
            parts.len() + 1,
            self.padding.len(),
            "parts do not match the layout"
        );
        let mut out = Vec::with_capacity(parts.len() * 2 + 2);
        out.push(&self.table[..]);
        out.push(&ZEROS[..self.padding[0]]);
        for (part, &pad) in parts.iter().zip(&self.padding[1..]) {
            out.push(part);
            out.push(&ZEROS[..pad]);
        }
        out
    }
}

impl PartsLayout {
    /// As [`PartsLayout::segments`], for parts of any type that a slice of
    /// the layout's own bytes converts into (bytes another thread may write,
    /// say).
    pub fn segments_of<'a, T: Copy + From<&'a [u8]>>(&'a self, parts: &[T]) -> Vec<T> {
        assert_eq!(
            parts.len() + 1,
            self.padding.len(),
            "parts do not match the layout"
        );
        let mut out = Vec::with_capacity(parts.len() * 2 + 2);
        out.push(T::from(&self.table[..]));
        out.push(T::from(&ZEROS[..self.padding[0]]));
        for (part, &pad) in parts.iter().zip(&self.padding[1..]) {
            out.push(*part);
            out.push(T::from(&ZEROS[..pad]));
        }
        out
    }
}

/// Splits a payload in the parts layout into zero-copy slices.
///
/// # Errors
/// A description of what is malformed.
pub fn split(payload: &Buffer) -> Result<Vec<Buffer>, String> {
    let bytes = payload.as_slice();
    if bytes.len() < 8 {
        return Err(format!(
            "{} bytes is too short for a parts table",
            bytes.len()
        ));
    }
    let count = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let table_end = count
        .checked_mul(16)
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "a table of {count} parts does not fit in {} bytes",
                bytes.len()
            )
        })?;
    (0..count)
        .map(|i| {
            let at = 8 + 16 * i;
            let offset = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
            let end = offset
                .checked_add(len)
                .filter(|&end| end <= bytes.len() as u64);
            match end {
                Some(_) if offset as usize >= table_end => {
                    Ok(payload.slice_with_length(offset as usize, len as usize))
                }
                _ => Err(format!(
                    "part {i} ({offset}+{len}) lies outside the payload"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parts_round_trip_aligned(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6)) {
            let slices: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            let layout = PartsLayout::new(&slices.iter().map(|p| p.len()).collect::<Vec<_>>());
            let bytes: Vec<u8> = layout.segments(&slices).concat();
            prop_assert_eq!(bytes.len(), layout.len());
            let buffer = Buffer::from_vec(bytes);
            let split = split(&buffer).unwrap();
            prop_assert_eq!(split.len(), parts.len());
            for (got, want) in split.iter().zip(&parts) {
                prop_assert_eq!(got.as_slice(), &want[..]);
                prop_assert_eq!((got.as_ptr() as usize - buffer.as_ptr() as usize) % 64, 0);
            }
        }

        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = split(&Buffer::from_vec(bytes));
        }
    }
}
