//! The per-process cache of objects read: mappings of large objects, and
//! copies of small ones that are read again and again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::api::view::ObjectView;
use crate::format::ObjectKey;

/// What identifies one file at one moment: a cached object is served only
/// while a `stat` of its path gives the same stamp. A named object file is
/// never written again, so the same inode with the same size and times holds
/// the same bytes; a replaced object's path shows another inode (tmpfs
/// numbers inodes from a counter, which wraps only after 2^32 files, and
/// even then size and both times would have to match to the nanosecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, u64),
    ctime: (i64, u64),
}

impl Stamp {
    // rustix's raw Linux backend gives the nanoseconds unsigned, its libc
    // backend (under miri) signed.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn of(st: &rustix::fs::Stat) -> Stamp {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as u64),
            ctime: (st.st_ctime, st.st_ctime_nsec as u64),
        }
    }
}

pub(crate) struct CacheEntry {
    pub(crate) stamp: Stamp,
    pub(crate) path: PathBuf,
    pub(crate) view: ObjectView,
    /// A private copy of a small object (counted in the byte budget), not a mapping.
    copied: bool,
}

/// How often the cache looks for entries whose object was replaced or
/// deleted, and how many it checks each time (a `stat` each).
const SWEEP_EVERY: Duration = Duration::from_millis(100);
const SWEEP_BATCH: usize = 128;
/// How many entries an idle process's sweep checks (each second): a cache
/// at its limit of 4,096 mappings is checked whole in 8 s.
const IDLE_BATCH: usize = 512;
/// The most bytes of small objects' copies the cache keeps.
const COPIES_BUDGET: usize = 8 << 20;
/// How many keys the cache remembers having read once (see `read_again`).
const SEEN_LIMIT: usize = 4096;

/// Objects this process has read, so repeated gets skip open and read:
/// mappings of large objects, and copies of small objects read at least
/// twice (an object read once is not worth the `fstat` that caching it
/// costs). Bounded in entries and in copied bytes.
///
/// A mapping of a live object costs no memory of its own (the pages are the
/// file's), but one of a replaced or deleted object keeps that object's
/// memory allocated (and its file out of recycling): so every get and write,
/// at most every [`SWEEP_EVERY`], checks a batch of entries and drops those
/// whose file is gone. Views the program still holds stay valid.
pub(crate) struct MappingCache {
    pub(crate) limit: usize,
    entries: HashMap<ObjectKey, CacheEntry>,
    copied_bytes: usize,
    seen: HashSet<ObjectKey>,
    sweep_from: usize,
    last_sweep: Instant,
}

impl std::fmt::Debug for MappingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappingCache({} of {})", self.entries.len(), self.limit)
    }
}

impl MappingCache {
    pub(crate) fn new(limit: usize) -> Self {
        MappingCache {
            limit,
            entries: HashMap::new(),
            copied_bytes: 0,
            seen: HashSet::new(),
            sweep_from: 0,
            last_sweep: Instant::now(),
        }
    }

    /// The cached view of `key` and the stamp it was cached with.
    pub(crate) fn get(&self, key: ObjectKey) -> Option<(Stamp, ObjectView)> {
        self.entries.get(&key).map(|e| (e.stamp, e.view.clone()))
    }

    /// Caches a mapping (`copied` false) or a small object's copy.
    pub(crate) fn insert(
        &mut self,
        key: ObjectKey,
        path: &Path,
        stamp: Stamp,
        view: ObjectView,
        copied: bool,
    ) {
        if self.limit == 0 {
            return;
        }
        self.remove(key);
        if copied && self.copied_bytes + view.len() > COPIES_BUDGET {
            return;
        }
        if self.entries.len() >= self.limit {
            if let Some(&victim) = self.entries.keys().next() {
                self.remove(victim);
            }
        }
        if copied {
            self.copied_bytes += view.len();
        }
        let path = path.to_owned();
        let entry = CacheEntry {
            stamp,
            path,
            view,
            copied,
        };
        self.entries.insert(key, entry);
    }

    /// Whether `key` was read before (and remembers that it now has been).
    pub(crate) fn read_again(&mut self, key: ObjectKey) -> bool {
        if self.limit == 0 {
            return false;
        }
        if self.seen.len() >= SEEN_LIMIT {
            self.seen.clear();
        }
        !self.seen.insert(key)
    }

    pub(crate) fn remove(&mut self, key: ObjectKey) {
        if let Some(entry) = self.entries.remove(&key) {
            if entry.copied {
                self.copied_bytes -= entry.view.len();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.copied_bytes = 0;
    }

    /// Sweeps a batch of entries if the last sweep is old enough.
    pub(crate) fn maybe_sweep(&mut self) {
        self.sweep_when_due(SWEEP_BATCH);
    }

    /// The sweep of an idle process (sweeper.rs): a batch of
    /// [`IDLE_BATCH`] entries, unless a get or a write swept lately.
    pub(crate) fn sweep_idle(&mut self) {
        self.sweep_when_due(IDLE_BATCH);
    }

    /// Sweeps `batch` entries if the last sweep is [`SWEEP_EVERY`] old.
    fn sweep_when_due(&mut self, batch: usize) {
        if self.entries.is_empty() || self.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = Instant::now();
        self.sweep(batch);
    }

    /// Drops up to `n` entries whose file was replaced or deleted, so the
    /// cache does not keep dead objects' memory alive.
    pub(crate) fn sweep(&mut self, n: usize) {
        let len = self.entries.len();
        if len == 0 {
            return;
        }
        let start = self.sweep_from % len;
        let stale: Vec<ObjectKey> = self
            .entries
            .iter()
            .skip(start)
            .take(n)
            .filter(
                |(_, e)| !matches!(rustix::fs::stat(&e.path), Ok(st) if Stamp::of(&st) == e.stamp),
            )
            .map(|(k, _)| *k)
            .collect();
        self.sweep_from = start + n;
        for key in stale {
            self.remove(key);
        }
    }
}
