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
//! once: only replaced objects are kept, except in a process that
//! preallocates (`Store::preallocate`, like Plasma's `-m`), where a deleted
//! object's file takes the place of a preallocated file a write took, so
//! the memory kept ready is not made again from fresh pages. Recycling is on
//! only on a tmpfs.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use super::capacity::Exclusive;
use super::dirs::read_dir;
use super::Store;
use crate::api::error::Result;
use crate::format::accounted;
use crate::sys::names::{now_ms, tmp_owner, unique_suffix, unique_tmp_name};
use crate::sys::{WritableFile, WritableMapping};

/// At most this many writable mappings are kept per process (the
/// preallocated files' among them: 24 at most, two of each size).
const WARM_MAX: usize = 32;
/// Room for an object's header above a preallocated file's power of two.
const PREALLOC_SLACK: u64 = 64 << 10;
/// The largest preallocated file: 2 GiB and its slack.
const PREALLOC_LARGEST: u32 = 11;

/// What this process was asked to preallocate, and whether a thread is
/// filling the pool now.
#[derive(Debug, Default)]
pub(crate) struct Prealloc {
    target: AtomicU64,
    filling: AtomicBool,
    /// Moves on each time the pool is emptied (`gc`, a full filesystem): a
    /// filling that began before stops, instead of making it all again.
    drained: AtomicU64,
}

/// Whether a pool file was made by preallocation (`<len>.<ms>.<pid>~<ns>.pre<n>.<nanos>`).
fn is_preallocated(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.split('.').nth(3))
        .is_some_and(|kind| kind.starts_with("pre"))
}

/// The files that preallocating `bytes` makes: one of each size from 1 MiB
/// to 2 GiB (doubling, each with room for a header) that fits, then again,
/// until the next would pass `bytes`. A write takes a pooled file from half
/// to twice its size, trimming a larger one: so every object size up to
/// 2 GiB finds one, and the common ones (a few sizes written again and
/// again) find one each time.
fn prealloc_sizes(bytes: u64) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut total = 0;
    loop {
        let before = sizes.len();
        for len in slot_sizes() {
            if total + accounted(len) <= bytes {
                sizes.push(len);
                total += accounted(len);
            }
        }
        if sizes.len() == before {
            sizes.sort_unstable();
            return sizes;
        }
    }
}

/// The sizes a preallocated file may have, smallest first: each power of
/// two from 1 MiB to 2 GiB, with room for a header.
fn slot_sizes() -> impl Iterator<Item = u64> {
    (0..=PREALLOC_LARGEST).map(|k| (1u64 << (20 + k)) + PREALLOC_SLACK)
}

/// The preallocated size a pooled file of `len` bytes stands in for: the
/// smallest of [`slot_sizes`] that holds it (`None` past 2 GiB).
fn slot_of(len: u64) -> Option<u64> {
    slot_sizes().find(|&slot| slot >= len)
}

/// What happened to the object whose file a writer or a delete hands to
/// [`Store::retire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Left {
    /// A write replaced it: its pages wait in the pool for the next write.
    Replaced,
    /// It was deleted: its memory goes back at once, unless it refills
    /// memory this process preallocates.
    Deleted,
}

/// Whether [`Store::preallocate_file`] made its file.
enum Made {
    Yes,
    /// A file that came back to the pool meanwhile fills its place.
    NotNeeded,
    /// The pool, the store or the filesystem has no room for it.
    NoRoom,
}

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
    pub(crate) file: WritableFile,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    /// This process's mapping of the file from an earlier write, pages
    /// still mapped: the copy goes at memory speed.
    pub(crate) warm: Option<WritableMapping>,
    /// Preallocated memory: the writer has it made again once it is done
    /// (`Store::refill_in_background`).
    pub(crate) preallocated: bool,
}

/// Writable mappings this process made of files it wrote, kept after the
/// write so that when the file comes back from the pool, the next write
/// finds its pages mapped. A mapping is never written until its file is
/// claimed again (`WritableMapping::bytes_mut` needs the claim), and one
/// whose file was deleted is dropped at the next write, `gc` or
/// `clear_cache`, giving its memory back.
#[derive(Debug, Default)]
pub(crate) struct WarmFiles {
    files: Vec<(WritableMapping, OwnedFd)>,
}

impl WarmFiles {
    /// Drops the mappings whose file is gone (unlinked): only this process
    /// keeps its memory alive.
    fn sweep(&mut self) {
        self.files
            .retain(|(_, fd)| rustix::fs::fstat(fd).is_ok_and(|st| st.st_nlink > 0));
    }

    fn take(&mut self, identity: (u64, u64)) -> Option<WritableMapping> {
        let at = self
            .files
            .iter()
            .position(|(m, _)| m.identity() == identity)?;
        Some(self.files.swap_remove(at).0)
    }

    fn contains(&self, identity: (u64, u64)) -> bool {
        self.files.iter().any(|(m, _)| m.identity() == identity)
    }
}

/// One file in the pool, as its name describes it: `<len>.<unix ms>.<unique>`.
struct Pooled {
    len: u64,
    since: u64,
    path: PathBuf,
    /// Made by preallocation, not by a replace.
    preallocated: bool,
}

/// The size of the store's filesystem, which the pool's default limit
/// follows. It is read again at most once a second: every replacing write
/// asks for the limit twice (to keep its mapping, and to pool the file it
/// replaced), and a tmpfs changes size only when it is remounted.
#[derive(Debug, Default)]
pub(crate) struct FilesystemSize {
    /// The size, and when it was read.
    read: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl FilesystemSize {
    /// How often the size is read again.
    const FRESH: Duration = Duration::from_secs(1);

    fn read(&self, root: &Path) -> u64 {
        let mut read = crate::sys::fork::lock(&self.read);
        if let Some((at, bytes)) = *read {
            if at.elapsed() < Self::FRESH {
                return bytes;
            }
        }
        let bytes =
            rustix::fs::statvfs(root).map_or(0, |st| st.f_blocks.saturating_mul(st.f_frsize));
        *read = Some((Instant::now(), bytes));
        bytes
    }
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
        let limit = self.inner.recycle_limit.unwrap_or_else(|| {
            let filesystem = self.inner.filesystem_size.read(&self.inner.root);
            filesystem.min(self.inner.control.capacity()) / 8
        });
        // Memory preallocated on purpose is the pool's too.
        limit.max(self.inner.prealloc.target.load(Ordering::Relaxed))
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
            // Preallocated files wait as long as it takes: they are there to be used.
            let idles = !is_preallocated(&name);
            if all || (idles && now.saturating_sub(since) >= idle) {
                // Exactly one of this unlink and a writer's claiming rename
                // succeeds, so the bytes are released once.
                if std::fs::remove_file(&path).is_ok() {
                    self.inner.control.pool_left(len);
                    files += 1;
                    bytes += accounted(len);
                }
                continue;
            }
            let preallocated = !idles;
            kept.push(Pooled {
                len,
                since,
                path,
                preallocated,
            });
        }
        Ok((kept, files, bytes))
    }

    /// Deletes every pooled file (`gc`, or a full filesystem), and ends this
    /// process's preallocation: a refill under way stops, and nothing that
    /// leaves its name is kept for it, until `preallocate` is called again.
    /// Returns (files, bytes).
    pub(crate) fn drain_pool(&self) -> (u64, u64) {
        let Ok(_entered) = self.inner.control.enter() else {
            return (0, 0);
        };
        self.inner.prealloc.target.store(0, Ordering::Relaxed);
        self.inner.prealloc.drained.fetch_add(1, Ordering::AcqRel);
        let drained = self
            .scan_pool(true)
            .map_or((0, 0), |(_, files, bytes)| (files, bytes));
        // Mappings this process kept of what was just deleted would hold its memory.
        self.sweep_warm();
        drained
    }

    /// Deletes pooled files until `needed` bytes are freed (a reservation
    /// the pool's bytes stand in the way of): replaced objects' files first,
    /// oldest first, then preallocated ones, smallest first, so a write that
    /// needs a little room does not throw away all the memory kept ready.
    /// Returns (files, bytes).
    pub(crate) fn drain_pool_for(&self, needed: u64) -> (u64, u64) {
        let Ok(_entered) = self.inner.control.enter() else {
            return (0, 0);
        };
        let Ok((mut kept, mut files, mut bytes)) = self.scan_pool(false) else {
            return (0, 0);
        };
        kept.sort_by_key(|p| (p.preallocated, if p.preallocated { p.len } else { p.since }));
        for pooled in kept {
            if bytes >= needed {
                break;
            }
            // Exactly one of this unlink and a writer's claiming rename succeeds.
            if std::fs::remove_file(&pooled.path).is_ok() {
                self.inner.control.pool_left(pooled.len);
                files += 1;
                bytes += accounted(pooled.len);
            }
        }
        self.sweep_warm();
        (files, bytes)
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
        // A file this process mapped before comes first: its pages are
        // mapped here already, which saves more than any fit.
        let warm = crate::sys::fork::lock(&self.inner.warm);
        let cold = |p: &Pooled| {
            warm.files.is_empty()
                || !rustix::fs::stat(&p.path).is_ok_and(|st| warm.contains((st.st_dev, st.st_ino)))
        };
        let mut keyed: Vec<_> = candidates
            .into_iter()
            .map(|p| {
                (
                    (
                        cold(&p),
                        p.len < file_len,
                        p.len.abs_diff(file_len),
                        p.since,
                    ),
                    p,
                )
            })
            .collect();
        drop(warm);
        keyed.sort_by_key(|(key, _)| *key);
        let candidates = keyed.into_iter().map(|(_, p)| p);
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
        let file = WritableFile::claim(fd).ok()??;
        let claimed = self.pool_dir().join(unique_tmp_name("claim"));
        // Exactly one claimer's rename succeeds; a loser sees the file gone
        // (or an idle sweep deleted it).
        rustix::fs::rename(path, &claimed).ok()?;
        self.inner.control.pool_left(pooled.len);
        // Before any byte of the new object: a reader holding a descriptor
        // from the file's old life must not take what follows for the old
        // object, even if this writer dies part-way.
        if rustix::io::pwrite(file.fd(), &[0u8; 8], 0).is_err() {
            let _ = std::fs::remove_file(&claimed);
            return None;
        }
        let warm = crate::sys::fork::lock(&self.inner.warm).take(file.identity());
        // The name's length is the file's: `retire` took it from the file.
        Some(Reused {
            file,
            path: claimed,
            len: pooled.len,
            warm,
            preallocated: pooled.preallocated,
        })
    }

    /// Keeps the mapping of a file this process just wrote, for the next
    /// write into it. At most [`WARM_MAX`] are kept, and none once
    /// recycling is off: a kept mapping holds its file's memory even after
    /// the file is deleted, until the next sweep.
    pub(crate) fn keep_warm(&self, map: WritableMapping, fd: OwnedFd) {
        if self.recycle_limit() == 0 {
            return;
        }
        let mut warm = crate::sys::fork::lock(&self.inner.warm);
        warm.sweep();
        if warm.files.len() >= WARM_MAX {
            warm.files.remove(0);
        }
        warm.files.push((map, fd));
        drop(warm);
        self.sweep_while_idle();
    }

    /// Keeps `bytes` of memory allocated in the pool for this process's
    /// writes (like Plasma's `-m` or Ray's `object_store_memory`): files of
    /// one of each size from 1 MiB to 2 GiB (doubling), repeated until
    /// `bytes` is reached, are allocated, mapped and faulted in now, so a
    /// write of a new name takes one and copies at the speed of a replacing
    /// write; a file taken is made again in the background, unless the
    /// object the write replaced, or a deleted one, takes its place. The
    /// pool's limit rises to `bytes`, and the files count in the store's
    /// capacity as the pool does (free for writes, shown as `recycled`);
    /// `brain gc` gives them back. Returns the bytes the pool gained.
    ///
    /// # Errors
    /// An I/O error making a file. A full store or filesystem stops the
    /// filling without an error.
    pub fn preallocate(&self, bytes: u64) -> Result<u64> {
        self.inner.prealloc.target.store(bytes, Ordering::Relaxed);
        if !self.inner.recycling_allowed {
            return Ok(0);
        }
        self.fill_pool(self.inner.prealloc.drained.load(Ordering::Acquire), false)
    }

    /// As [`Store::preallocate`], on a thread of its own: returns at once.
    pub fn preallocate_in_background(&self, bytes: u64) {
        self.inner.prealloc.target.store(bytes, Ordering::Relaxed);
        self.refill_in_background();
    }

    /// Starts a thread that makes the preallocated files missing from the
    /// pool, unless one is running. It holds the store weakly and ends when
    /// the pool is full: an idle process keeps no thread (a thread makes
    /// every system call of a process a little slower). A writer that took
    /// a preallocated file calls it once it is done, after the object it
    /// replaced went to the pool: that file usually takes the place of the
    /// one taken, and nothing needs making.
    pub(crate) fn refill_in_background(&self) {
        let prealloc = &self.inner.prealloc;
        if prealloc.target.load(Ordering::Relaxed) == 0
            || prealloc.filling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        // An emptying after this call and before the thread runs stops it too.
        let drained = prealloc.drained.load(Ordering::Acquire);
        let spawned = std::thread::Builder::new()
            .name("brain-prealloc".into())
            .spawn(move || {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let store = Store { inner };
                let filling = &store.inner.prealloc.filling;
                loop {
                    let _ = store.fill_pool(drained, true);
                    filling.store(false, Ordering::Release);
                    // A writer done after the last look, while this thread
                    // still counted as filling, was not heard: look again.
                    let missing = store.missing_slots().is_ok_and(|m| !m.is_empty());
                    let emptied = store.inner.prealloc.drained.load(Ordering::Acquire) != drained;
                    if !missing
                        || emptied
                        || store.abandoned()
                        || filling.swap(true, Ordering::AcqRel)
                    {
                        break;
                    }
                }
            });
        if spawned.is_err() {
            prealloc.filling.store(false, Ordering::Release);
        }
    }

    /// Whether this handle is the store's last: for the background refill,
    /// whose own handle this is, that every user's handle is gone. It then
    /// stops making files in a directory its owner may be removing (a
    /// test's temporary store), instead of racing the removal with new
    /// files for as long as the pool takes to fill.
    fn abandoned(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// The preallocated sizes the pool lacks, smallest first: every size of
    /// [`prealloc_sizes`] that no preallocated file of the pool stands in
    /// for (a replaced or deleted object's file takes the place of one
    /// taken, see `retire`).
    fn missing_slots(&self) -> Result<Vec<u64>> {
        let mut missing = prealloc_sizes(self.inner.prealloc.target.load(Ordering::Relaxed));
        if missing.is_empty() {
            return Ok(missing);
        }
        for entry in read_dir(self.pool_dir())? {
            let name = entry.file_name();
            if !is_preallocated(&name) {
                continue;
            }
            let len = name
                .to_str()
                .and_then(|n| n.split('.').next()?.parse().ok());
            if let Some(at) = len
                .and_then(slot_of)
                .and_then(|slot| missing.iter().position(|&l| l == slot))
            {
                missing.remove(at);
            }
        }
        Ok(missing)
    }

    /// Makes the preallocated files missing from the pool, largest first
    /// (the sizes that cost most to fault in on a write), unless the pool is
    /// emptied after the count `drained` was read; returns their bytes.
    fn fill_pool(&self, drained: u64, background: bool) -> Result<u64> {
        let mut made = 0;
        // Each round makes a file or finds one fewer missing; the bound only
        // stops a pool that writers keep emptying from holding the thread.
        let rounds = 2 * prealloc_sizes(self.inner.prealloc.target.load(Ordering::Relaxed)).len();
        for _ in 0..rounds {
            if background && self.abandoned() {
                break;
            }
            let Some(&len) = self.missing_slots()?.last() else {
                break;
            };
            match self.preallocate_file(len, drained, background)? {
                Made::Yes => made += accounted(len),
                Made::NotNeeded => {}
                Made::NoRoom => break,
            }
        }
        Ok(made)
    }

    /// Makes one preallocated file of `len` bytes in the pool, mapped and
    /// faulted in by this process. Allocates in steps, and stops when a file
    /// that came back to the pool meanwhile fills the size (a delete right
    /// after a write of a new name): fresh pages are the cost preallocation
    /// exists to keep away from writes, on this core or the other.
    fn preallocate_file(&self, len: u64, drained: u64, background: bool) -> Result<Made> {
        const STEP: u64 = 256 << 20;
        let io =
            |e: std::io::Error| crate::api::error::Error::io("preallocate in", self.pool_dir(), e);
        let tmp = self.pool_dir().join(unique_tmp_name("pre"));
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&tmp, flags, Mode::from_bits_truncate(POOL_MODE))
            .map_err(|e| io(e.into()))?;
        let made = (|| -> Result<Made> {
            let Some(mut file) = WritableFile::claim(fd).map_err(io)? else {
                return Ok(Made::NoRoom);
            };
            // Emptied (by gc), or, for the background refill, left by every
            // user: it stops, and the file being made goes.
            let emptied = || {
                self.inner.prealloc.drained.load(Ordering::Acquire) != drained
                    || (background && self.abandoned())
            };
            let mut from = 0;
            while from < len {
                if emptied() {
                    return Ok(Made::NoRoom);
                }
                if from > 0 && !self.missing_slots()?.contains(&len) {
                    return Ok(Made::NotNeeded);
                }
                let to = (from + STEP).min(len);
                match file.allocate(from, to) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::NOSPC) | Err(rustix::io::Errno::OPNOTSUPP) => {
                        return Ok(Made::NoRoom)
                    }
                    Err(e) => return Err(io(e.into())),
                }
                from = to;
            }
            let size = usize::try_from(len).map_err(|_| io(std::io::Error::other("too large")))?;
            let mut map = WritableMapping::map(&file, size).map_err(io)?;
            crate::sys::populate_for_write(map.bytes_mut(&file).map_err(io)?);
            let fd = file.release();
            let _entered = self.inner.control.enter()?;
            if emptied() {
                return Ok(Made::NoRoom);
            }
            if !self.missing_slots()?.contains(&len) {
                return Ok(Made::NotNeeded);
            }
            if !self.inner.control.pool_admit(len, self.recycle_limit()) {
                return Ok(Made::NoRoom);
            }
            let name = self
                .pool_dir()
                .join(format!("{len}.{}.{}", now_ms(), unique_suffix("pre")));
            if rustix::fs::rename(&tmp, &name).is_err() {
                self.inner.control.pool_left(len);
                return Ok(Made::NoRoom);
            }
            // Emptied while this file was named (the accounting lock is
            // shared with the emptying): it goes too. Exactly one of this
            // unlink and the emptying's succeeds.
            if emptied() {
                if std::fs::remove_file(&name).is_ok() {
                    self.inner.control.pool_left(len);
                }
                return Ok(Made::NoRoom);
            }
            crate::sys::fork::lock(&self.inner.warm)
                .files
                .push((map, fd));
            self.sweep_while_idle();
            Ok(Made::Yes)
        })();
        if !matches!(made, Ok(Made::Yes)) {
            let _ = std::fs::remove_file(&tmp);
        }
        made
    }

    /// Drops every kept mapping (`clear_cache`), and with them the memory
    /// of files deleted since.
    pub(crate) fn forget_warm(&self) {
        crate::sys::fork::lock(&self.inner.warm).files.clear();
    }

    /// Drops kept mappings whose file was deleted.
    pub(crate) fn sweep_warm(&self) {
        crate::sys::fork::lock(&self.inner.warm).sweep();
    }

    /// Moves the object that left its name and now lies at `tmp` (`len`
    /// bytes) into the pool, or deletes it. A replaced object goes to the
    /// pool unless it is too small, recycling is off or the pool is full. A
    /// deleted one goes only where it takes the place of a preallocated
    /// file a write took (and so counts as preallocated): the memory was to
    /// be kept anyway, and the pages are there already. Otherwise a delete
    /// gives its memory back at once. The error is that of deleting the file.
    pub(crate) fn retire(&self, tmp: &Path, len: u64, left: Left) -> std::io::Result<()> {
        if recyclable(len) {
            let fills_slot = slot_of(len).is_some_and(|slot| {
                self.inner.prealloc.target.load(Ordering::Relaxed) > 0
                    && self.missing_slots().is_ok_and(|m| m.contains(&slot))
            });
            if (fills_slot || left == Left::Replaced) && self.pool_accepts(len) {
                let kind = if fills_slot { "pre" } else { "pool" };
                let name = format!("{len}.{}.{}", now_ms(), unique_suffix(kind));
                // Writable by the owner, so a claim needs no change of mode on a
                // shared path. The name is this writer's alone until the rename.
                let writable = rustix::fs::chmod(tmp, Mode::from_bits_truncate(POOL_MODE));
                if writable.is_ok() && rustix::fs::rename(tmp, self.pool_dir().join(name)).is_ok() {
                    return Ok(());
                }
                self.inner.control.pool_left(len);
            }
        }
        let removed = std::fs::remove_file(tmp);
        if recyclable(len) {
            // This process may keep a mapping of the file for its next write.
            self.sweep_warm();
        }
        removed
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
