//! The store's control file: its capacity and usage counters.
//!
//! ```text
//! offset size field
//!      0    8 magic b"BRAINCTL"
//!      8    8 control format version (u64 LE)
//!     16    8 capacity in bytes (u64 LE, u64::MAX = no limit but the filesystem's)
//!     24    8 bytes in use (u64 LE), updated with atomic read-modify-writes
//!     32    8 bytes of replaced objects kept for reuse in `pool/` (u64 LE), likewise
//!     40 4056 reserved, zero
//! ```
//!
//! Every process maps the file and updates the counters with atomics; this
//! module only says where they are and checks a file's fixed fields.

use super::FormatError;

/// The first eight bytes of a control file.
pub const CONTROL_MAGIC: [u8; 8] = *b"BRAINCTL";
/// The control format version this build writes. 2 since recycling: builds
/// of version 1 map files without the shared lock that keeps a recycling
/// writer away, so they must not open a store where one writes.
pub const CONTROL_VERSION: u64 = 2;
/// The version before recycling, which this build upgrades in place.
pub const CONTROL_VERSION_BEFORE_RECYCLING: u64 = 1;
/// The control file's length.
pub const CONTROL_LEN: usize = 4096;
/// Where the version is.
pub const VERSION_AT: usize = 8;
/// Where the capacity is.
pub const CAPACITY_AT: usize = 16;
/// Where the bytes in use are.
pub const USED_AT: usize = 24;
/// Where the pool's bytes are.
pub const POOLED_AT: usize = 32;
/// The capacity stored when the store has no limit of its own.
pub const UNLIMITED: u64 = u64::MAX;

/// The bytes of a new control file: no limit, nothing used.
pub fn new_control_file() -> Vec<u8> {
    let mut bytes = vec![0u8; CONTROL_LEN];
    bytes[0..8].copy_from_slice(&CONTROL_MAGIC);
    bytes[VERSION_AT..VERSION_AT + 8].copy_from_slice(&CONTROL_VERSION.to_le_bytes());
    bytes[CAPACITY_AT..CAPACITY_AT + 8].copy_from_slice(&UNLIMITED.to_le_bytes());
    bytes
}

/// Checks the fixed fields of a control file's bytes and returns its version
/// (this build's, or the one before recycling, which it upgrades).
///
/// # Errors
/// [`FormatError::Malformed`] for a wrong length or magic;
/// [`FormatError::Version`] for a version this build does not read.
pub fn check_control_file(bytes: &[u8]) -> Result<u64, FormatError> {
    if bytes.len() != CONTROL_LEN {
        return Err(FormatError::malformed(format!(
            "control file is {} bytes, expected {CONTROL_LEN}",
            bytes.len()
        )));
    }
    if bytes[0..8] != CONTROL_MAGIC {
        return Err(FormatError::malformed(
            "not a brain control file (bad magic bytes)",
        ));
    }
    let version = u64::from_le_bytes(
        bytes[VERSION_AT..VERSION_AT + 8]
            .try_into()
            .expect("8 bytes"),
    );
    match version {
        CONTROL_VERSION | CONTROL_VERSION_BEFORE_RECYCLING => Ok(version),
        other => Err(FormatError::Version {
            found: other.min(u16::MAX as u64) as u16,
            supported: CONTROL_VERSION as u16,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_checks_and_damage_is_named() {
        let fresh = new_control_file();
        assert_eq!(check_control_file(&fresh), Ok(CONTROL_VERSION));
        assert!(check_control_file(&fresh[..100]).is_err());
        let mut bad = fresh.clone();
        bad[0] = b'X';
        assert!(check_control_file(&bad).is_err());
        let mut newer = fresh;
        newer[VERSION_AT] = 9;
        assert_eq!(
            check_control_file(&newer),
            Err(FormatError::Version {
                found: 9,
                supported: CONTROL_VERSION as u16
            })
        );
    }
}
