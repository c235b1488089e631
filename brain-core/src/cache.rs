//! The per-process cache of mappings of large objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::key::ObjectKey;
use crate::view::ObjectView;

pub(crate) struct CacheEntry {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) path: PathBuf,
    pub(crate) view: ObjectView,
}

/// Mappings of large objects this process has read, so repeated gets skip
/// open and mmap. Bounded; stale entries are swept a few at a time.
pub(crate) struct MappingCache {
    pub(crate) limit: usize,
    pub(crate) entries: HashMap<ObjectKey, CacheEntry>,
    pub(crate) sweep_from: usize,
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
        self.sweep(8);
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

    /// Drops up to `n` entries whose file was replaced or deleted, so the
    /// cache does not keep dead objects' memory alive for long.
    fn sweep(&mut self, n: usize) {
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
