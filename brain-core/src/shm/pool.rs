//! Recycling the pages of replaced objects.
//!
//! Filling fresh tmpfs pages costs several times a copy into pages that are
//! already allocated: the kernel allocates and zeroes every page, and on a
//! virtual machine whose host reclaims freed memory, faults it in from the
//! host as well. A store whose large objects are replaced again and again
//! (a frame refreshed every minute) would pay that on every write. So when
//! a write replaces an object of at least [`RECYCLE_MIN`] bytes, the old
//! file is moved into `<store>/pool/` instead of being deleted, and the next
//! large write takes it back, overwrites it and publishes it under its own
//! name: its pages are reused.
//!
//! # Who may rewrite a file
//!
//! Readers map object files and hand out zero-copy views that must never
//! change (the sharing contract in `sys/mapping.rs`). Reuse keeps that with
//! `flock`:
//!
//! - A reader takes a shared lock on a file of recyclable size before it
//!   reads the payload, and maps it through the same open file: the lock
//!   belongs to the open file, which the mapping holds, so it lasts exactly
//!   as long as the mapping (a view, a cached mapping), even after the
//!   descriptor is closed.
//! - A writer may only reuse a pooled file it holds an *exclusive* lock on,
//!   taken without waiting: it fails while any process maps the file, and
//!   the writer then takes another file or fresh pages. It releases the lock
//!   with `LOCK_UN` once the object is whole, before publishing it (a close
//!   would leave the lock with any child forked meanwhile).
//! - A file reaches the pool only by leaving its name, so a reader can reach
//!   it only through a descriptor opened before: such a reader takes its lock
//!   without waiting, and when that fails (a writer holds the file) or the
//!   header it reads again under the lock differs from the one it read
//!   before, it opens the name again. The writer zeroes the header's magic
//!   before it writes, so a writer that dies part-way leaves a file no
//!   reader mistakes for an object.
//!
//! The pool holds at most [`Store::recycle_limit`] bytes (by default an
//! eighth of the filesystem or of the capacity), counted in the control
//! file, and objects and pool together stay within the capacity. Files idle
//! for longer than the idle time (a minute by default) are deleted by the
//! next large write, an open or `gc`. Deleting an object frees its memory at
//! once: only replaced objects are kept. Recycling is on only on a tmpfs.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::capacity::Exclusive;
use super::dirs::read_dir;
use super::Store;
use crate::api::error::Result;
use crate::format::accounted;
use crate::sys::names::{now_ms, tmp_owner, unique_suffix, unique_tmp_name};

/// Files of at least this many bytes are recycled, and their readers lock
/// them. Below it a fresh file costs little next to the system calls of a write.
pub(crate) const RECYCLE_MIN: u64 = 1 << 20;
/// The pool's directory in the store.
pub(crate) const POOL_DIR: &str = "pool";
/// Pooled files are writable by their owner, so a writer can claim one
/// without touching its mode; a writer seals its object read-only.
const POOL_MODE: u32 = 0o600;
/// How long a pooled file waits for a write before it is deleted.
pub(crate) const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// Whether a file of `file_len` bytes may be recycled, so that readers lock it.
pub(crate) fn recyclable(file_len: u64) -> bool {
    file_len >= RECYCLE_MIN
}

/// A pooled file taken for a write: exclusively locked, its magic zeroed,
/// renamed to `path`, a temporary name in the pool that no other writer
/// takes and `gc` leaves alone while this process lives. It moves into the
/// namespace only once the object is whole, like an unnamed fresh file.
pub(crate) struct Reused {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
}

/// One file in the pool, as its name describes it: `<len>.<unix ms>.<unique>`.
struct Pooled {
    len: u64,
    since: u64,
    path: PathBuf,
}

impl Store {
    pub(crate) fn pool_dir(&self) -> &Path {
        &self.inner.pool
    }

    /// The most bytes the pool may hold: the builder's limit, or by default
    /// an eighth of the filesystem or of the store's capacity, whichever is
    /// smaller. 0 when the store is not on a tmpfs: recycling relies on
    /// `flock` surviving `close` for as long as a mapping lives, which
    /// network filesystems do not promise.
    pub fn recycle_limit(&self) -> u64 {
        if !self.inner.recycling_allowed {
            return 0;
        }
        self.inner.recycle_limit.unwrap_or_else(|| {
            let filesystem = rustix::fs::statvfs(&self.inner.root)
                .map_or(0, |st| st.f_blocks.saturating_mul(st.f_frsize));
            filesystem.min(self.inner.control.capacity()) / 8
        })
    }

    /// Lists the pool, deleting files idle past the idle time (every file
    /// with `all`). Returns the files left and what was deleted (files, bytes).
    /// The caller holds the accounting lock (shared, or exclusively).
    fn scan_pool(&self, all: bool) -> Result<(Vec<Pooled>, u64, u64)> {
        let now = now_ms();
        let idle = self.inner.recycle_idle.as_millis().min(u64::MAX as u128) as u64;
        let (mut kept, mut files, mut bytes) = (Vec::new(), 0, 0);
        for entry in read_dir(self.pool_dir())? {
            let name = entry.file_name();
            let path = entry.path();
            if let Some(owner) = tmp_owner(&name) {
                // A file a writer claimed: its own until it is published,
                // garbage once that writer is gone.
                if !owner.alive() {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let mut fields = name.to_str().unwrap_or("").splitn(3, '.');
            let len = fields.next().and_then(|f| f.parse().ok());
            let since = fields.next().and_then(|f| f.parse().ok());
            let (Some(len), Some(since)) = (len, since) else {
                // Not a pool file (nothing else writes here): a stray of some kind.
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if all || now.saturating_sub(since) >= idle {
                // Exactly one of this unlink and a writer's claiming rename
                // succeeds, so the bytes are released once.
                if std::fs::remove_file(&path).is_ok() {
                    self.inner.control.pool_left(len);
                    files += 1;
                    bytes += accounted(len);
                }
                continue;
            }
            kept.push(Pooled { len, since, path });
        }
        Ok((kept, files, bytes))
    }

    /// Deletes every pooled file (`gc`, or a full filesystem). Returns (files, bytes).
    pub(crate) fn drain_pool(&self) -> (u64, u64) {
        let Ok(_entered) = self.inner.control.enter() else {
            return (0, 0);
        };
        self.scan_pool(true)
            .map_or((0, 0), |(_, files, bytes)| (files, bytes))
    }

    /// Deletes pooled files idle past the idle time.
    pub(crate) fn trim_pool(&self) {
        if let Ok(_entered) = self.inner.control.enter() {
            let _ = self.scan_pool(false);
        }
    }

    /// Rebuilds the pool's byte count from its files, under a recount.
    pub(crate) fn recount_pool(&self, exclusive: &Exclusive) -> Result<u64> {
        let (kept, _, _) = self.scan_pool(false)?;
        let pooled = kept.iter().map(|p| accounted(p.len)).sum();
        self.inner.control.pool_recount(pooled, exclusive);
        Ok(pooled)
    }

    /// Takes the pooled file that best fits a file of `file_len` bytes, or
    /// `None` when no file fits or every fitting one is still mapped by a reader.
    pub(crate) fn take_pooled(&self, file_len: u64) -> Result<Option<Reused>> {
        if !recyclable(file_len) || !self.inner.recycling_allowed {
            return Ok(None);
        }
        let (mut candidates, _, _) = self.scan_pool(false)?;
        // A file as large or up to twice as large is trimmed to size; one at
        // least half as large is extended. Best fit first, then oldest first,
        // so files cycle through the pool instead of idling out of it.
        candidates.retain(|p| p.len <= file_len.saturating_mul(2) && p.len >= file_len / 2);
        candidates.sort_by_key(|p| (p.len < file_len, p.len.abs_diff(file_len), p.since));
        for pooled in candidates {
            if let Some(reused) = self.claim(&pooled) {
                return Ok(Some(reused));
            }
        }
        Ok(None)
    }

    /// Claims one pooled file: lock it exclusively, then rename it to a name
    /// of this writer's. `None` when a reader maps it, another writer got it
    /// first, or anything else goes wrong with it (fresh pages will do).
    fn claim(&self, pooled: &Pooled) -> Option<Reused> {
        let path = &pooled.path;
        // Pooled files are left writable by their owner (see `retire`).
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
        rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
        let claimed = self.pool_dir().join(unique_tmp_name("claim"));
        // Exactly one claimer's rename succeeds; a loser sees the file gone
        // (or an idle sweep deleted it).
        rustix::fs::rename(path, &claimed).ok()?;
        self.inner.control.pool_left(pooled.len);
        // Before any byte of the new object: a reader holding a descriptor
        // from the file's old life must not take what follows for the old
        // object, even if this writer dies part-way.
        if rustix::io::pwrite(&fd, &[0u8; 8], 0).is_err() {
            let _ = std::fs::remove_file(&claimed);
            return None;
        }
        // The name's length is the file's: `retire` took it from the file.
        Some(Reused {
            fd,
            path: claimed,
            len: pooled.len,
        })
    }

    /// Moves the replaced object now at `tmp` (`len` bytes) into the pool,
    /// or deletes it when it is too small, recycling is off or the pool is full.
    pub(crate) fn retire(&self, tmp: &Path, len: u64) {
        if recyclable(len) && self.pool_accepts(len) {
            let name = format!("{len}.{}.{}", now_ms(), unique_suffix("pool"));
            // Writable by the owner, so a claim needs no change of mode on a
            // shared path. The name is this writer's alone until the rename.
            let writable = rustix::fs::chmod(tmp, Mode::from_bits_truncate(POOL_MODE));
            if writable.is_ok() && rustix::fs::rename(tmp, self.pool_dir().join(name)).is_ok() {
                return;
            }
            self.inner.control.pool_left(len);
        }
        let _ = std::fs::remove_file(tmp);
    }

    /// Counts a file of `file_len` bytes into the pool, deleting idle files
    /// once if that makes room. Objects and pool together stay within the
    /// capacity (the control file's rule).
    fn pool_accepts(&self, file_len: u64) -> bool {
        let control = &self.inner.control;
        let limit = self.recycle_limit();
        if accounted(file_len) > limit {
            return false;
        }
        control.pool_admit(file_len, limit) || {
            self.trim_pool();
            control.pool_admit(file_len, limit)
        }
    }
}
