//! The per-process cache of mappings of large objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::key::ObjectKey;
use crate::view::ObjectView;

pub(crate) struct CacheEntry {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) path: PathBuf,
    pub(crate) view: ObjectView,
}

/// How often the cache looks for entries whose object was replaced or
/// deleted, and how many it checks each time (a `stat` each).
const SWEEP_EVERY: Duration = Duration::from_millis(100);
const SWEEP_BATCH: usize = 128;

/// Mappings of large objects this process has read, so repeated gets skip
/// open and mmap. Bounded in entries. A mapping of a live object costs no
/// memory of its own (the pages are the file's), but one of a replaced or
/// deleted object keeps that object's memory allocated: so every get and
/// write, at most every [`SWEEP_EVERY`], checks a batch of entries and drops
/// those whose file is gone. Views the program still holds stay valid.
pub(crate) struct MappingCache {
    pub(crate) limit: usize,
    pub(crate) entries: HashMap<ObjectKey, CacheEntry>,
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
            sweep_from: 0,
            last_sweep: Instant::now(),
        }
    }

    pub(crate) fn insert(
        &mut self,
        key: ObjectKey,
        path: &Path,
        stat: &rustix::fs::Stat,
        view: ObjectView,
    ) {
        if self.limit == 0 {
            return;
        }
        if self.entries.len() >= self.limit {
            if let Some(&victim) = self.entries.keys().next() {
                self.entries.remove(&victim);
            }
        }
        let entry = CacheEntry {
            dev: stat.st_dev,
            ino: stat.st_ino,
            path: path.to_owned(),
            view,
        };
        self.entries.insert(key, entry);
    }

    /// Sweeps a batch of entries if the last sweep is old enough.
    pub(crate) fn maybe_sweep(&mut self) {
        if self.entries.is_empty() || self.last_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = Instant::now();
        self.sweep(SWEEP_BATCH);
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
            .filter(|(_, e)| {
                !matches!(rustix::fs::stat(&e.path), Ok(st) if st.st_dev == e.dev && st.st_ino == e.ino)
            })
            .map(|(k, _)| *k)
            .collect();
        self.sweep_from = start + n;
        for key in stale {
            self.entries.remove(&key);
        }
    }
}
