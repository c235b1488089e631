//! The object header: fixed fields, then the namespace, name and description.
//!
//! ```text
//! offset size field
//!      0    8 magic  b"BRAINOBJ"
//!      8    2 format version (u16 LE)
//!     10    2 codec tag (u16 LE)
//!     12    4 flags (u32 LE): bit 0 = payload checksum, xxh3-64 of the whole
//!             payload; bit 1 = payload checksum, xxh3-64 over 1 MiB chunks
//!             (format/checksum.rs); never both
//!     16    4 header length = payload offset, a multiple of 64 (u32 LE)
//!     20    4 namespace length (u32 LE)
//!     24    4 name length (u32 LE)
//!     28    4 description length (u32 LE)
//!     32    8 payload length (u64 LE)
//!     40    8 creation time, nanoseconds since the Unix epoch (i64 LE)
//!     48   16 object key (u128 LE)
//!     64    8 payload checksum (u64 LE) of the kind the flags say, 0 when absent
//!     72    8 header checksum, xxh3-64 of bytes 0..72 and the three strings
//!     80    . namespace, name, description (UTF-8), zero padding to the header length
//! ```

use xxhash_rust::xxh3::Xxh3;

use super::checksum::payload_checksum;
use super::codec::Codec;
use super::key::{ObjectKey, MAX_DESCRIPTION_LEN, MAX_NAMESPACE_LEN, MAX_NAME_LEN};
use super::FormatError;

/// The first eight bytes of every object file.
pub const MAGIC: [u8; 8] = *b"BRAINOBJ";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The size of the fixed part of the header.
pub const HEADER_FIXED_LEN: usize = 80;
/// Payloads start at a multiple of this many bytes, enough for Arrow and SIMD loads.
pub const PAYLOAD_ALIGN: usize = 64;

/// The longest header the name limits allow: a damaged length field must not
/// make a reader allocate gigabytes before the checksum can refuse it.
const MAX_HEADER_LEN: usize =
    align_up_const(HEADER_FIXED_LEN + MAX_NAMESPACE_LEN + MAX_NAME_LEN + MAX_DESCRIPTION_LEN);

const fn align_up_const(len: usize) -> usize {
    len.div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN
}

/// Flag bit: the payload checksum field holds the xxh3-64 of the whole payload.
pub(crate) const FLAG_PAYLOAD_CHECKSUM: u32 = 1;
/// Flag bit: the payload checksum field holds the chunked checksum
/// (format/checksum.rs). Builds that predate it ignore the bit, and so the
/// checksum: they read such objects as objects without one.
pub const FLAG_CHUNKED_CHECKSUM: u32 = 2;

/// A payload's stored checksum, and which kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadChecksum {
    /// xxh3-64 of the whole payload (flag bit 0), written by older builds
    /// with checksums turned on.
    Whole(u64),
    /// xxh3-64 over 1 MiB chunks, combined (flag bit 1): what every writer
    /// stores now.
    Chunked(u64),
}

impl PayloadChecksum {
    /// The stored value.
    pub fn value(self) -> u64 {
        match self {
            PayloadChecksum::Whole(v) | PayloadChecksum::Chunked(v) => v,
        }
    }

    /// The checksum of `payload`, computed the same way.
    pub fn compute(self, payload: &[u8]) -> u64 {
        match self {
            PayloadChecksum::Whole(_) => xxhash_rust::xxh3::xxh3_64(payload),
            PayloadChecksum::Chunked(_) => payload_checksum(payload),
        }
    }

    /// `Ok` when `payload` has this checksum, else the one it has.
    ///
    /// # Errors
    /// The checksum `payload` gives, when it differs.
    pub fn check(self, payload: &[u8]) -> Result<(), u64> {
        let found = self.compute(payload);
        if found == self.value() {
            Ok(())
        } else {
            Err(found)
        }
    }
}

/// A decoded object header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The payload's codec.
    pub codec: Codec,
    /// Flag bits.
    pub flags: u32,
    /// The payload's length in bytes.
    pub payload_len: u64,
    /// Creation time in nanoseconds since the Unix epoch.
    pub created_unix_nanos: i64,
    /// The object's key.
    pub key: ObjectKey,
    /// The payload's xxh3-64 checksum, when the writer computed one.
    pub payload_checksum: Option<u64>,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The description (empty when none was given).
    pub description: String,
}

/// Rounds `len` up to the payload alignment.
pub(crate) fn align_up(len: usize) -> usize {
    len.div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN
}

/// The unit a store accounts objects in: tmpfs allocates whole pages.
pub const ACCOUNTING_PAGE: u64 = 4096;

/// The bytes an object file of `file_len` bytes counts against a store's
/// capacity: whole pages.
pub fn accounted(file_len: u64) -> u64 {
    file_len.div_ceil(ACCOUNTING_PAGE) * ACCOUNTING_PAGE
}

/// The bytes an object takes in a store, as its capacity counts them: the
/// header (with the namespace, name and description) plus the payload,
/// rounded up to whole pages. Every backend accounts objects this way, so a
/// capacity means the same on each. This is [`crate::ObjectMeta::stored_size`].
pub fn stored_size(namespace: &str, name: &str, description: &str, payload_len: u64) -> u64 {
    accounted(Header::encoded_len_for(namespace, name, description) as u64 + payload_len)
}

impl Header {
    /// The header's encoded length, which is also where the payload starts.
    pub fn encoded_len(&self) -> usize {
        Self::encoded_len_for(&self.namespace, &self.name, &self.description)
    }

    /// The encoded length of a header with these strings.
    pub fn encoded_len_for(namespace: &str, name: &str, description: &str) -> usize {
        align_up(HEADER_FIXED_LEN + namespace.len() + name.len() + description.len())
    }

    /// The payload's checksum and its kind, when the writer stored one.
    pub fn checksum(&self) -> Option<PayloadChecksum> {
        self.payload_checksum.map(|value| {
            if self.flags & FLAG_CHUNKED_CHECKSUM != 0 {
                PayloadChecksum::Chunked(value)
            } else {
                PayloadChecksum::Whole(value)
            }
        })
    }

    /// The whole file's length: header plus payload.
    pub fn file_len(&self) -> u64 {
        self.encoded_len() as u64 + self.payload_len
    }

    /// Encodes the header, padded to its payload offset.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.encoded_len();
        let mut out = vec![0u8; len];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&self.codec.tag().to_le_bytes());
        let kinds = FLAG_PAYLOAD_CHECKSUM | FLAG_CHUNKED_CHECKSUM;
        let flags = match self.payload_checksum {
            Some(_) if self.flags & FLAG_CHUNKED_CHECKSUM != 0 => {
                (self.flags & !kinds) | FLAG_CHUNKED_CHECKSUM
            }
            Some(_) => (self.flags & !kinds) | FLAG_PAYLOAD_CHECKSUM,
            None => self.flags & !kinds,
        };
        out[12..16].copy_from_slice(&flags.to_le_bytes());
        out[16..20].copy_from_slice(&(len as u32).to_le_bytes());
        out[20..24].copy_from_slice(&(self.namespace.len() as u32).to_le_bytes());
        out[24..28].copy_from_slice(&(self.name.len() as u32).to_le_bytes());
        out[28..32].copy_from_slice(&(self.description.len() as u32).to_le_bytes());
        out[32..40].copy_from_slice(&self.payload_len.to_le_bytes());
        out[40..48].copy_from_slice(&self.created_unix_nanos.to_le_bytes());
        out[48..64].copy_from_slice(&self.key.0.to_le_bytes());
        out[64..72].copy_from_slice(&self.payload_checksum.unwrap_or(0).to_le_bytes());
        let mut at = HEADER_FIXED_LEN;
        for s in [&self.namespace, &self.name, &self.description] {
            out[at..at + s.len()].copy_from_slice(s.as_bytes());
            at += s.len();
        }
        let checksum = header_checksum(&out[..72], &out[HEADER_FIXED_LEN..at]);
        out[72..80].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// How many bytes must be read to decode the header that starts `prefix`,
    /// or an error when `prefix` is not the start of an object file.
    ///
    /// `prefix` must hold at least [`HEADER_FIXED_LEN`] bytes.
    ///
    /// # Errors
    /// [`FormatError::Malformed`] or [`FormatError::Version`].
    pub fn needed_len(prefix: &[u8]) -> Result<usize, FormatError> {
        if prefix.len() < HEADER_FIXED_LEN {
            return Err(FormatError::malformed(format!(
                "file is {} bytes, shorter than a header",
                prefix.len()
            )));
        }
        if prefix[0..8] != MAGIC {
            return Err(FormatError::malformed(
                "not a brain object file (bad magic bytes)",
            ));
        }
        let version = u16::from_le_bytes([prefix[8], prefix[9]]);
        if version != FORMAT_VERSION {
            return Err(FormatError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header_len = read_u32(prefix, 16) as usize;
        let strings =
            read_u32(prefix, 20) as u64 + read_u32(prefix, 24) as u64 + read_u32(prefix, 28) as u64;
        if !header_len.is_multiple_of(PAYLOAD_ALIGN)
            || (header_len as u64) < HEADER_FIXED_LEN as u64 + strings
            || header_len > MAX_HEADER_LEN
        {
            return Err(FormatError::malformed(format!(
                "impossible header length {header_len}"
            )));
        }
        Ok(header_len)
    }

    /// Decodes a header from the start of an object file.
    ///
    /// `bytes` must hold at least the header; a payload may follow.
    ///
    /// # Errors
    /// [`FormatError::Malformed`] for bad magic, lengths, UTF-8 or checksum;
    /// [`FormatError::Version`] for another format version.
    pub fn decode(bytes: &[u8]) -> Result<Header, FormatError> {
        let header_len = Self::needed_len(bytes)?;
        if bytes.len() < header_len {
            return Err(FormatError::malformed(format!(
                "header needs {header_len} bytes, only {} present",
                bytes.len()
            )));
        }
        let lens = [
            read_u32(bytes, 20),
            read_u32(bytes, 24),
            read_u32(bytes, 28),
        ];
        let strings_end = HEADER_FIXED_LEN + lens.iter().map(|&l| l as usize).sum::<usize>();
        let stored = u64::from_le_bytes(bytes[72..80].try_into().expect("8 bytes"));
        if header_checksum(&bytes[..72], &bytes[HEADER_FIXED_LEN..strings_end]) != stored {
            return Err(FormatError::malformed("header checksum mismatch"));
        }
        // No file is longer than i64::MAX bytes: a longer length is damage,
        // and the file's length and its accounted size would overflow.
        let payload_len = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"));
        if payload_len > i64::MAX as u64 - header_len as u64 {
            return Err(FormatError::malformed(format!(
                "impossible payload length {payload_len}"
            )));
        }
        let mut at = HEADER_FIXED_LEN;
        let mut strings = Vec::with_capacity(3);
        for len in lens {
            let raw = &bytes[at..at + len as usize];
            let s = std::str::from_utf8(raw)
                .map_err(|_| FormatError::malformed("a header string is not UTF-8"))?;
            strings.push(s.to_owned());
            at += len as usize;
        }
        let description = strings.pop().expect("three strings");
        let name = strings.pop().expect("three strings");
        let namespace = strings.pop().expect("three strings");
        let flags = read_u32(bytes, 12);
        if flags & FLAG_PAYLOAD_CHECKSUM != 0 && flags & FLAG_CHUNKED_CHECKSUM != 0 {
            return Err(FormatError::malformed(
                "the flags name two kinds of payload checksum",
            ));
        }
        let checksum = u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes"));
        let has_checksum = flags & (FLAG_PAYLOAD_CHECKSUM | FLAG_CHUNKED_CHECKSUM) != 0;
        Ok(Header {
            codec: Codec::from_tag(u16::from_le_bytes([bytes[10], bytes[11]])),
            flags: flags & !FLAG_PAYLOAD_CHECKSUM,
            payload_len,
            created_unix_nanos: i64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes")),
            key: ObjectKey(u128::from_le_bytes(
                bytes[48..64].try_into().expect("16 bytes"),
            )),
            payload_checksum: has_checksum.then_some(checksum),
            namespace,
            name,
            description,
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn header_checksum(fixed: &[u8], strings: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(fixed);
    hasher.update(strings);
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(namespace: &str, name: &str, description: &str) -> Header {
        Header {
            codec: Codec::ArrowIpc,
            flags: 0,
            payload_len: 12345,
            created_unix_nanos: 1_700_000_000_123_456_789,
            key: ObjectKey::new(namespace, name),
            payload_checksum: Some(42),
            namespace: namespace.into(),
            name: name.into(),
            description: description.into(),
        }
    }

    #[test]
    fn every_corrupted_byte_of_a_header_is_detected() {
        let header = sample("ns", "name", "desc");
        let bytes = header.encode();
        let used = HEADER_FIXED_LEN + 10;
        for i in 0..used {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                Header::decode(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn other_versions_are_named_in_the_error() {
        let mut bytes = sample("a", "b", "").encode();
        bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
        let err = Header::decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Version {
                    found: 7,
                    supported: FORMAT_VERSION,
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("version 7"), "{err}");
    }

    #[test]
    fn a_payload_length_no_file_can_have_is_refused() {
        // Found by the `header` fuzz target: a reader's file length and
        // accounted size of this header overflowed.
        let mut header = sample("ns", "n".repeat(100).as_str(), "dddddddddd");
        header.payload_len = 0xffff_ffff_ffff_f900;
        let err = Header::decode(&header.encode()).unwrap_err();
        assert!(
            err.to_string().contains("impossible payload length"),
            "{err}"
        );
        header.payload_len = i64::MAX as u64 - header.encoded_len() as u64 + 1;
        assert!(Header::decode(&header.encode()).is_err());
        header.payload_len -= 1;
        let longest = Header::decode(&header.encode()).unwrap();
        assert_eq!(longest.file_len(), i64::MAX as u64);
        assert_eq!(accounted(longest.file_len()), 1 << 63);
    }

    #[test]
    fn both_checksum_kinds_round_trip_and_never_together() {
        let mut chunked = sample("a", "b", "");
        chunked.flags = FLAG_CHUNKED_CHECKSUM;
        let bytes = chunked.encode();
        assert_eq!(read_u32(&bytes, 12), FLAG_CHUNKED_CHECKSUM);
        let back = Header::decode(&bytes).unwrap();
        assert_eq!(back.checksum(), Some(PayloadChecksum::Chunked(42)));
        let whole = Header::decode(&sample("a", "b", "").encode()).unwrap();
        assert_eq!(whole.checksum(), Some(PayloadChecksum::Whole(42)));
        let mut both = bytes.clone();
        both[12] |= FLAG_PAYLOAD_CHECKSUM as u8;
        let strings = HEADER_FIXED_LEN + 2;
        let fixed = header_checksum(&both[..72], &both[HEADER_FIXED_LEN..strings]);
        both[72..80].copy_from_slice(&fixed.to_le_bytes());
        assert!(Header::decode(&both).is_err());
    }

    proptest! {
        #[test]
        fn headers_round_trip(ns in ".{1,30}", name in ".{1,300}", desc in ".{0,50}", len in 0..i64::MAX as u64 / 2) {
            let mut header = sample(&ns, &name, &desc);
            header.payload_len = len;
            let bytes = header.encode();
            prop_assert_eq!(bytes.len() % PAYLOAD_ALIGN, 0);
            prop_assert_eq!(Header::decode(&bytes).unwrap(), header);
        }
    }
}
