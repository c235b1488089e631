//! The host's read cache: objects fetched from the servers land in a
//! shared-memory store of this host, keyed by (name, version), so every
//! process on the host shares one copy and reads it zero-copy. One process
//! fetches a version while the others wait for it on the cache store's
//! lock of that name (an `flock`, released by the kernel if the fetcher dies).
//!
//! A cached copy is an ordinary object of the cache store, in a namespace
//! of its own per (server, namespace) (`redis-cache-<hash>`), named as the
//! object, with the version as its description. Replacing it with a newer
//! version is the cache store's atomic replace; readers of the old copy keep
//! their views. When the cache store is full, older cached copies are
//! deleted to make room, and failing that the object is read into private
//! memory: a cache miss, never an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_buffer::{Buffer, MutableBuffer};
use brain_core::format::PAYLOAD_ALIGN;
use brain_core::{Codec, Error, ObjectKey, ObjectStore, ObjectWriter, Result, Store};
use xxhash_rust::xxh3::xxh3_128;

use crate::keys::Pointer;
use crate::store::{CacheSetting, FetchError, RedisStore};

/// The prefix of the cache store's namespaces that hold cached copies
/// (brain-core's, which dumps and syncs of the cache store leave out).
pub const CACHE_NAMESPACE_PREFIX: &str = brain_core::HOST_CACHE_NAMESPACE_PREFIX;
/// How long a reader waits for another process of the host to fetch a version.
const FETCH_WAIT: Duration = Duration::from_secs(600);

/// Where fetched bytes go.
pub(crate) trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Appends `len` bytes that `fill` writes in place (in one or more
    /// consecutive slices, each filled whole).
    fn write_with(&mut self, len: u64, fill: &mut dyn FnMut(&mut [u8]) -> Result<()>)
        -> Result<()>;

    /// Whether the sink computes the store's payload checksum as the bytes
    /// go in ([`ObjectWriter::hashes_as_it_writes`]).
    fn hashes_as_it_writes(&self) -> bool {
        false
    }

    /// The store's payload checksum of what went in, when the sink computes
    /// one ([`ObjectWriter::payload_checksum`]); nothing goes in after it.
    fn payload_checksum(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A private, 64-byte aligned buffer.
pub(crate) struct MemorySink {
    bytes: MutableBuffer,
    pad: usize,
}

impl MemorySink {
    pub(crate) fn with_capacity(len: usize) -> MemorySink {
        let mut bytes = MutableBuffer::with_capacity(len + PAYLOAD_ALIGN);
        let pad = bytes.as_ptr().align_offset(PAYLOAD_ALIGN);
        bytes.extend_zeros(pad);
        MemorySink { bytes, pad }
    }

    pub(crate) fn finish(self) -> Buffer {
        Buffer::from(self.bytes).slice(self.pad)
    }
}

impl Sink for MemorySink {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn write_with(
        &mut self,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let at = self.bytes.len();
        let len = usize::try_from(len).expect("a chunk's length fits in memory");
        self.bytes.extend_zeros(len);
        fill(&mut self.bytes.as_slice_mut()[at..])
    }
}

impl Sink for ObjectWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_payload(bytes)
    }

    fn write_with(
        &mut self,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        ObjectWriter::write_with(self, len, fill)
    }

    fn hashes_as_it_writes(&self) -> bool {
        ObjectWriter::hashes_as_it_writes(self)
    }

    fn payload_checksum(&mut self) -> Result<Option<u64>> {
        ObjectWriter::payload_checksum(self)
    }
}

/// The cache store of this host, and the namespace prefix of one server.
#[derive(Debug)]
pub(crate) struct HostCache {
    store: Store,
    /// Hashed with a namespace into the cache namespace's name.
    server: String,
}

impl HostCache {
    pub(crate) fn open(setting: &CacheSetting, server: &str) -> Result<HostCache> {
        let mut builder = Store::builder();
        if let CacheSetting::Path(path) = setting {
            builder = builder.path(path);
        }
        // The advice for a refused directory is the cache's option, not the store's.
        let store = builder.open().map_err(|err| match err {
            Error::UnsafePath { path, reason } => Error::UnsafeCachePath { path, reason },
            Error::PermissionDenied {
                location: brain_core::Location::Path(path),
                ..
            } => Error::UnsafeCachePath {
                path,
                reason: brain_core::UnsafePathReason::NotWritable,
            },
            other => other,
        })?;
        Ok(HostCache {
            store,
            server: server.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.store.path()
    }

    /// The cache namespace of one of the server's namespaces.
    pub(crate) fn namespace(&self, namespace: &str) -> String {
        cache_namespace(&self.server, namespace)
    }

    /// Drops this host's copy of `name` (the server has it no more): a copy
    /// no read would use again otherwise stays until the cache is full.
    /// Processes that map it keep their views. Returns its stored size.
    pub(crate) fn drop_copy(&self, namespace: &str, name: &str) -> u64 {
        let cache_ns = self.namespace(namespace);
        let size = match self.store.metadata(&cache_ns, name) {
            Ok(Some(meta)) => meta.stored_size,
            _ => return 0,
        };
        match self.store.delete(&cache_ns, name) {
            Ok(true) => size,
            _ => 0,
        }
    }

    /// The host's copies of the server's namespace `namespace`: each name
    /// and the version it holds.
    pub(crate) fn copies(&self, namespace: &str) -> Result<Vec<(String, String)>> {
        match self.store.list(&self.namespace(namespace)) {
            Ok(metas) => Ok(metas
                .into_iter()
                .map(|meta| (meta.name, meta.description))
                .collect()),
            Err(Error::NamespaceNotFound { .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// Bytes the cache's copies take.
    pub(crate) fn used(&self) -> u64 {
        let Ok(stats) = self.store.namespace_stats() else {
            return 0;
        };
        stats
            .iter()
            .filter(|s| brain_core::is_host_cache_namespace(&s.namespace))
            .map(|s| s.bytes)
            .sum()
    }

    /// The cached copy of this exact version, if the host has it.
    fn lookup(&self, cache_ns: &str, name: &str, version: &str) -> Result<Option<Buffer>> {
        match self.store.get(cache_ns, name) {
            Ok(Some(view)) if view.meta().description == version => Ok(Some(view.buffer().clone())),
            Ok(_) => Ok(None),
            // A damaged copy is only a miss: it is fetched again over it.
            Err(Error::Corrupt { .. }) | Err(Error::KeyCollision { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The version's payload from this host's cache, fetched by this process
    /// if no other process of the host has it or is fetching it; in private
    /// memory when the cache has no room even after dropping older copies.
    /// `None` when the cached copy could not be published for want of room
    /// (the caller fetches it again into private memory).
    pub(crate) fn fetch(
        &self,
        store: &RedisStore,
        key: ObjectKey,
        pointer: &Pointer,
    ) -> std::result::Result<Option<Buffer>, FetchError> {
        let namespace = &pointer.meta.namespace;
        let name = &pointer.meta.name;
        let cache_ns = self.namespace(namespace);
        if let Some(buffer) = self.lookup(&cache_ns, name, &pointer.version)? {
            return Ok(Some(buffer));
        }
        // One fetcher per host: the others wait here, then find its copy.
        let _fetching = self.store.lock(&cache_ns, name, Some(FETCH_WAIT))?;
        if let Some(buffer) = self.lookup(&cache_ns, name, &pointer.version)? {
            return Ok(Some(buffer));
        }
        // Asked for now, the chunks are on their way while the cache's file
        // is made ready (a file from the pool), and are in the socket when
        // the read begins. Only the process that holds the lock asks: one
        // fetch per host.
        let asked = store.ask_first_batch(key, pointer)?;
        let mut writer = match self.writer(&cache_ns, name, &pointer.version, pointer.len) {
            Some(writer) => writer?,
            // No room: the bytes asked for go to private memory.
            None => {
                let mut sink = MemorySink::with_capacity(pointer.len as usize);
                store.fetch_into(key, pointer, &mut sink, asked)?;
                return Ok(Some(sink.finish()));
            }
        };
        store.fetch_into(key, pointer, &mut writer, asked)?;
        match writer.commit() {
            Ok(_) => {}
            Err(Error::StoreFull { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        Ok(self.lookup(&cache_ns, name, &pointer.version)?)
    }

    /// A writer of a cached copy; `None` when there is no room for it even
    /// after dropping other cached copies.
    fn writer(
        &self,
        cache_ns: &str,
        name: &str,
        version: &str,
        len: u64,
    ) -> Option<Result<ObjectWriter>> {
        for attempt in 0..2 {
            match self
                .store
                .writer(cache_ns, name, Codec::Raw, version, Some(len))
            {
                Ok(writer) => return Some(Ok(writer)),
                // Larger than the whole cache: dropping the other copies
                // would not make room for it.
                Err(Error::StoreFull {
                    needed, capacity, ..
                }) if capacity > 0 && needed > capacity => return None,
                Err(Error::StoreFull { .. }) if attempt == 0 => {
                    if self.evict(len).is_err() {
                        return None;
                    }
                }
                Err(Error::StoreFull { .. }) => return None,
                Err(err) => return Some(Err(err)),
            }
        }
        None
    }

    /// Deletes cached copies, oldest first, until `needed` bytes went.
    fn evict(&self, needed: u64) -> Result<()> {
        let mut copies = Vec::new();
        for namespace in self.store.namespaces()? {
            // Never a user's namespace that only starts like one.
            if brain_core::is_host_cache_namespace(&namespace) {
                copies.extend(self.store.list(&namespace)?);
            }
        }
        copies.sort_by_key(|m| m.created);
        let mut freed = 0;
        for meta in copies {
            if freed >= needed {
                break;
            }
            if self.store.delete(&meta.namespace, &meta.name)? {
                freed += meta.stored_size;
            }
        }
        Ok(())
    }
}

/// The cache namespace of `namespace` on `server`.
fn cache_namespace(server: &str, namespace: &str) -> String {
    let id = xxh3_128(format!("{server}\0{namespace}").as_bytes());
    format!("{CACHE_NAMESPACE_PREFIX}{id:032x}")
}

/// The host's default cache directory.
pub fn default_cache_path() -> PathBuf {
    brain_core::default_store_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_namespaces_are_what_dumps_and_syncs_leave_out() {
        for (server, namespace) in [("127.0.0.1:7000", "default"), ("", ""), ("h", "名前")] {
            let cache_ns = cache_namespace(server, namespace);
            assert!(brain_core::is_host_cache_namespace(&cache_ns), "{cache_ns}");
        }
    }
}
