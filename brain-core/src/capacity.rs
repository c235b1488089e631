//! The store's byte capacity and usage, kept in a small shared control file.
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
//! Every process maps the file and updates the counters with atomics, so a
//! reservation costs nanoseconds and needs no lock. A writer killed between
//! reserving and releasing leaves the count too high; `fsck` rebuilds it by
//! scanning the store.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::sys::SharedCounters;

const MAGIC: [u8; 8] = *b"BRAINCTL";
/// 2 since recycling: builds of version 1 map files without the shared
/// lock that keeps a recycling writer away, so they must not open a store
/// where one writes. A version-1 store is upgraded in place when opened.
const VERSION: u64 = 2;
const VERSION_BEFORE_RECYCLING: u64 = 1;
const VERSION_AT: usize = 8;
const LEN: usize = 4096;
const CAPACITY_AT: usize = 16;
const USED_AT: usize = 24;
const POOLED_AT: usize = 32;
/// The capacity stored when the store has no limit of its own.
pub const UNLIMITED: u64 = u64::MAX;

/// Objects are accounted in whole pages, as tmpfs allocates them.
pub(crate) fn accounted(file_len: u64) -> u64 {
    file_len.div_ceil(4096) * 4096
}

/// The bytes an object takes in a store, as its capacity counts them: the
/// header (with the namespace, name and description) plus the payload,
/// rounded up to whole 4096-byte pages. This is [`crate::ObjectMeta::stored_size`].
pub fn stored_size(namespace: &str, name: &str, description: &str, payload_len: u64) -> u64 {
    let header = crate::format::Header::encoded_len_for(namespace, name, description) as u64;
    accounted(header + payload_len)
}

/// The mapped control file.
#[derive(Debug)]
pub(crate) struct Control {
    counters: SharedCounters,
    path: PathBuf,
}

/// A refused reservation: what was in use and the limit.
pub(crate) struct Refused {
    pub used: u64,
    pub capacity: u64,
}

impl Control {
    /// Opens the control file of the store at `root`, creating it atomically
    /// (with `capacity`, or no limit) when it does not exist yet.
    pub(crate) fn open_or_create(root: &Path, file_mode: u32) -> Result<Control> {
        let path = root.join("brain.ctl");
        let file = match open_rw(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                create(root, &path, file_mode)?;
                open_rw(&path).map_err(|e| Error::io("open the control file", &path, e))?
            }
            Err(err) => return Err(Error::io("open the control file", &path, err)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        if len != LEN as u64 {
            return Err(Error::corrupt(
                &path,
                format!("control file is {len} bytes, expected {LEN}"),
            ));
        }
        let counters = SharedCounters::map(&file, LEN)
            .map_err(|e| Error::io("map the control file", &path, e))?;
        let head = counters.bytes();
        if head[0..8] != MAGIC {
            return Err(Error::corrupt(
                &path,
                "not a brain control file (bad magic bytes)",
            ));
        }
        let mut version = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        if version == VERSION_BEFORE_RECYCLING {
            // Another opener may upgrade it at the same moment: either wins.
            let _ = counters.counter(VERSION_AT).compare_exchange(
                VERSION_BEFORE_RECYCLING,
                VERSION,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            version = counters.counter(VERSION_AT).load(Ordering::Acquire);
        }
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                path,
                found: version.min(u16::MAX as u64) as u16,
                supported: VERSION as u16,
            });
        }
        Ok(Control { counters, path })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.counters.counter(CAPACITY_AT).load(Ordering::Acquire)
    }

    pub(crate) fn set_capacity(&self, capacity: u64) {
        self.counters
            .counter(CAPACITY_AT)
            .store(capacity, Ordering::Release);
    }

    pub(crate) fn used(&self) -> u64 {
        self.counters.counter(USED_AT).load(Ordering::Acquire)
    }

    pub(crate) fn set_used(&self, used: u64) {
        self.counters
            .counter(USED_AT)
            .store(used, Ordering::Release);
    }

    /// Adds `bytes` to the usage unless that, with the pool, would pass the
    /// capacity (the caller may empty the pool and try again).
    pub(crate) fn reserve(&self, bytes: u64) -> std::result::Result<(), Refused> {
        let capacity = self.capacity();
        let room = capacity.saturating_sub(self.pooled());
        add_within(self.counters.counter(USED_AT), bytes, room)
            .map_err(|used| Refused { used, capacity })
    }

    /// Takes `bytes` off the usage (never below zero: after a crash the
    /// count may be behind until the next `fsck`).
    pub(crate) fn release(&self, bytes: u64) {
        subtract(self.counters.counter(USED_AT), bytes);
    }

    /// Bytes held by files in the recycling pool.
    pub(crate) fn pooled(&self) -> u64 {
        self.counters.counter(POOLED_AT).load(Ordering::Acquire)
    }

    pub(crate) fn set_pooled(&self, pooled: u64) {
        self.counters
            .counter(POOLED_AT)
            .store(pooled, Ordering::Release);
    }

    /// Adds `bytes` to the pool's count unless that would pass `limit`.
    pub(crate) fn reserve_pooled(&self, bytes: u64, limit: u64) -> bool {
        add_within(self.counters.counter(POOLED_AT), bytes, limit).is_ok()
    }

    /// Takes `bytes` off the pool's count (never below zero).
    pub(crate) fn release_pooled(&self, bytes: u64) {
        subtract(self.counters.counter(POOLED_AT), bytes);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Adds `bytes` to `counter` unless the sum would pass `limit`; on refusal,
/// returns the count seen.
fn add_within(counter: &AtomicU64, bytes: u64, limit: u64) -> std::result::Result<(), u64> {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        let next = current.saturating_add(bytes);
        if next > limit {
            return Err(current);
        }
        match counter.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

fn subtract(counter: &AtomicU64, bytes: u64) {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        let next = current.saturating_sub(bytes);
        match counter.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Writes a complete control file under a temporary name and links it into
/// place, so a concurrent opener sees either nothing or a whole file.
fn create(root: &Path, path: &Path, file_mode: u32) -> Result<()> {
    // A name no other thread or process uses, created exclusively: another
    // opener racing this one can never truncate a file already linked.
    let tmp = root.join(crate::writer::unique_tmp_name("ctl"));
    let mut bytes = vec![0u8; LEN];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&VERSION.to_le_bytes());
    bytes[CAPACITY_AT..CAPACITY_AT + 8].copy_from_slice(&UNLIMITED.to_le_bytes());
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(file_mode))?;
        file.write_all(&bytes)?;
        Ok(())
    };
    write().map_err(|e| Error::io("create the control file", &tmp, e))?;
    // link() fails with EEXIST when another process won the race; its file is as good.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::io("create the control file", path, err)),
    }
}
