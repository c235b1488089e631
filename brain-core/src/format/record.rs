//! A small object as the store's table holds it (docs/FORMAT.md, "The
//! table of small objects"): what an object file's header holds beside
//! the names, then the payload.
//!
//! ```text
//! offset size field
//!      0    1 record layout version (1)
//!      1    1 reserved, zero
//!      2    2 codec tag (u16 LE)
//!      4    4 description length in bytes (u32 LE)
//!      8    8 creation time, nanoseconds since the Unix epoch (i64 LE)
//!     16    8 payload checksum, xxh3-64 over 1 MiB chunks (u64 LE)
//!     24    . description (UTF-8), then the payload
//! ```

use super::{Codec, FormatError};

/// The record layout version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// The length of a record's fixed fields.
pub const RECORD_FIXED_LEN: usize = 24;

/// A small object's record, borrowing its strings and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallRecord<'a> {
    /// The payload's codec.
    pub codec: Codec,
    /// Creation time in nanoseconds since the Unix epoch.
    pub created_unix_nanos: i64,
    /// xxh3-64 of the payload over 1 MiB chunks, combined (as an object
    /// file's chunked checksum).
    pub checksum: u64,
    /// The description (empty when none was given).
    pub description: &'a str,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> SmallRecord<'a> {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(RECORD_FIXED_LEN + self.description.len() + self.payload.len());
        out.push(RECORD_VERSION);
        out.push(0);
        out.extend_from_slice(&self.codec.tag().to_le_bytes());
        out.extend_from_slice(&(self.description.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.created_unix_nanos.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
        out.extend_from_slice(self.description.as_bytes());
        out.extend_from_slice(self.payload);
        out
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`FormatError::Version`] for another layout version;
    /// [`FormatError::Malformed`] for bytes that are not a record.
    pub fn decode(bytes: &'a [u8]) -> Result<SmallRecord<'a>, FormatError> {
        if bytes.len() < RECORD_FIXED_LEN {
            return Err(FormatError::malformed(format!(
                "a record of {} bytes is shorter than its {RECORD_FIXED_LEN} bytes of fixed fields",
                bytes.len()
            )));
        }
        if bytes[0] != RECORD_VERSION {
            return Err(FormatError::Version {
                found: u16::from(bytes[0]),
                supported: u16::from(RECORD_VERSION),
            });
        }
        if bytes[1] != 0 {
            return Err(FormatError::malformed(
                "a record's reserved byte is not zero",
            ));
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let description_len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        let rest = &bytes[RECORD_FIXED_LEN..];
        if description_len > rest.len() {
            return Err(FormatError::malformed(format!(
                "a description of {description_len} bytes runs past the record's {} bytes",
                bytes.len()
            )));
        }
        let description = std::str::from_utf8(&rest[..description_len])
            .map_err(|_| FormatError::malformed("a record's description is not UTF-8"))?;
        Ok(SmallRecord {
            codec: Codec::from_tag(u16::from_le_bytes([bytes[2], bytes[3]])),
            created_unix_nanos: word(8) as i64,
            checksum: word(16),
            description,
            payload: &rest[description_len..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_short_or_damaged_record_is_an_error() {
        let record = SmallRecord {
            codec: Codec::Text,
            created_unix_nanos: 1_700_000_000_000_000_000,
            checksum: 7,
            description: "desc",
            payload: b"payload",
        };
        let bytes = record.encode();
        assert_eq!(SmallRecord::decode(&bytes), Ok(record));
        for len in 0..RECORD_FIXED_LEN {
            assert!(SmallRecord::decode(&bytes[..len]).is_err(), "{len} bytes");
        }
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(matches!(
            SmallRecord::decode(&other_version),
            Err(FormatError::Version { found: 2, .. })
        ));
        let mut reserved = bytes.clone();
        reserved[1] = 1;
        assert!(SmallRecord::decode(&reserved).is_err());
        let mut long_description = bytes.clone();
        long_description[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SmallRecord::decode(&long_description).is_err());
        let mut not_utf8 = bytes;
        not_utf8[RECORD_FIXED_LEN] = 0xff;
        assert!(SmallRecord::decode(&not_utf8).is_err());
    }

    proptest! {
        #[test]
        fn records_round_trip(desc in ".{0,40}", payload in proptest::collection::vec(any::<u8>(), 0..300),
                              created in any::<i64>(), checksum in any::<u64>(), tag in 0u16..20) {
            let record = SmallRecord {
                codec: Codec::from_tag(tag),
                created_unix_nanos: created,
                checksum,
                description: &desc,
                payload: &payload,
            };
            let bytes = record.encode();
            prop_assert_eq!(SmallRecord::decode(&bytes), Ok(record));
        }
    }
}
