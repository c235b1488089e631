//! The store's control file: its capacity and usage counters.
//!
//! ```text
//! offset size field
//!      0    8 magic b"BRAINCTL"
//!      8    8 control format version (u64 LE)
//!     16    8 capacity in bytes (u64 LE, u64::MAX = no limit but the filesystem's)
//!     24    8 bytes in use (u64 LE), updated with atomic read-modify-writes
//!     32    8 bytes of replaced objects kept for reuse in `pool/` (u64 LE), likewise
//!     40    8 the process recounting (version 3), as a process identity
//!             (below); 0 when none
//!     48    8 its PID namespace (u64 LE; 0 while it is being recorded)
//!     56    8 reserved, zero
//!     64 4032 126 writer slots of 32 bytes (version 3):
//!               +0  8 the process, as a process identity (u64 LE; 0: free)
//!               +8  8 its PID namespace (u64 LE; 0 while the slot is being claimed)
//!              +16  8 bytes it has reserved and not yet published or given back (u64 LE)
//!              +24  8 how many of its threads are changing counters or counted files (u64 LE)
//! ```
//!
//! Every process maps the file and updates the counters with atomics; this
//! module only says where they are and checks a file's fixed fields.
//!
//! A writer slot lets any process see that a writer died with bytes
//! reserved (its pid is gone, or belongs to a later process): the store's
//! count is then rebuilt. A process identity is the pid in the low 22 bits
//! (Linux's `pid_max` is at most 2^22) and the process's start time above,
//! in clock ticks since boot (field 22 of `/proc/<pid>/stat`), so a later
//! process that reuses a dead one's pid is not taken for it; one word, so it
//! is claimed and compared atomically. A PID namespace is the low 32 bits
//! of the inode of `/proc/<pid>/ns/pid`: a process of another namespace
//! (another container sharing the store) cannot be looked up, so it counts
//! as alive. Version 3 also changes the rule every process
//! follows: it changes counters and the files they count only while its
//! slot counts it in flight and no process is recounting; a recount
//! announces itself and waits for every live slot to have nothing in
//! flight. A build of version 2 does neither, so it must not share a store
//! with one of version 3.

use super::FormatError;

/// The first eight bytes of a control file.
pub const CONTROL_MAGIC: [u8; 8] = *b"BRAINCTL";
/// The control format version this build writes. 2 since recycling: builds
/// of version 1 map files without the shared lock that keeps a recycling
/// writer away, so they must not open a store where one writes. 3 since
/// writer slots and the accounting lock, which builds of version 2 ignore.
/// 4 since the table of small objects (`small/`), which builds of version 3
/// do not read: they would miss those objects and overwrite their names.
pub const CONTROL_VERSION: u64 = 4;
/// Earlier versions this build reads, and upgrades in place.
pub const CONTROL_VERSIONS_UPGRADED: [u64; 3] = [1, 2, 3];
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
/// Where the writer slots start.
pub const SLOTS_AT: usize = 64;
/// The size of one writer slot.
pub const SLOT_LEN: usize = 32;
/// How many writer slots the file has.
pub const SLOTS: usize = (CONTROL_LEN - SLOTS_AT) / SLOT_LEN;
/// Where the recounting process is recorded.
pub const RECOUNTER_AT: usize = 40;
/// Where the recounting process's PID namespace is recorded.
pub const RECOUNTER_PID_NS_AT: usize = 48;
/// Within a slot: the process's identity, its PID namespace, its reserved
/// bytes, its threads in flight.
pub const SLOT_PROCESS: usize = 0;
/// See [`SLOT_PROCESS`].
pub const SLOT_PID_NS: usize = 8;
/// See [`SLOT_PROCESS`].
pub const SLOT_BYTES: usize = 16;
/// See [`SLOT_PROCESS`].
pub const SLOT_IN_FLIGHT: usize = 24;

/// The bytes of a new control file: no limit, nothing used.
pub fn new_control_file() -> Vec<u8> {
    let mut bytes = vec![0u8; CONTROL_LEN];
    bytes[0..8].copy_from_slice(&CONTROL_MAGIC);
    bytes[VERSION_AT..VERSION_AT + 8].copy_from_slice(&CONTROL_VERSION.to_le_bytes());
    bytes[CAPACITY_AT..CAPACITY_AT + 8].copy_from_slice(&UNLIMITED.to_le_bytes());
    bytes
}

/// Checks the fixed fields of a control file's bytes and returns its version
/// (this build's, or an earlier one it upgrades).
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
        v if v == CONTROL_VERSION || CONTROL_VERSIONS_UPGRADED.contains(&v) => Ok(version),
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
