//! # brain-redis
//!
//! brain's store past one host: a [`brain_core::ObjectStore`] on Redis (or
//! Redis Cluster, or Valkey), with each host's shared memory as a zero-copy
//! read cache. There is no server of brain's own: the Redis you run is the
//! shared store, and every process on every host opens it by URL:
//!
//! ```text
//! redis://[USER:PASSWORD@]HOST:PORT[/DB]        one server
//! rediss://...                                  the same over TLS (?ca=PATH)
//! redis+cluster://HOST:PORT,HOST:PORT,...       a Redis Cluster (seed nodes)
//! ```
//!
//! ## How an object is stored
//!
//! A name's *pointer* (a hash) says which version it holds: a random
//! 128-bit id, the length, the xxh3 checksum, the codec, description and
//! creation time. A payload up to [`INLINE_MAX`] lives in the pointer; a
//! larger one is uploaded as chunks (1 MiB − 4 KiB by default) under its
//! new version, each with a pending expiry, and then one Lua script
//! publishes it: it checks the lock token (if the writer holds the name's
//! lock) and the expected version, makes the new chunks permanent, points
//! the name at the new version and gives the old version's chunks an
//! expiry: a second, or, while a fetch of them is in progress (each fetch
//! marks the version it reads), a grace of at least a minute. All of an
//! object's keys share a hash tag, so on a cluster they live on one slot.
//!
//! A reader checks length and checksum. A chunk missing mid-read means the
//! version was replaced before the read marked it, and the read starts again
//! on the new version; if the name still points at the version whose chunk
//! is gone, the object is lost (evicted, flushed) and the read fails with
//! a `Corrupt` error that says "object lost" and why. Opening a store warns
//! when a server's `maxmemory-policy` may evict brain's keys.
//!
//! ## The host cache
//!
//! A chunked object read on a host is written into that host's
//! shared-memory store (by default the host's default store), keyed by
//! (name, version): every process on the host then maps the same copy. One
//! process fetches while the others wait on a lock of the cache store.
//! Each process also keeps a *binding* of name to version and view; with
//! [`Consistency::Tracked`] (the default) a binding is used with no round
//! trip while the process's tracking connections (RESP3 `CLIENT TRACKING`
//! in broadcast mode on the pointer keys) are up and have said nothing
//! about the name. [`Consistency::Strict`] asks the server for the
//! version on every read.
//!
//! What each mode guarantees is in docs/ARCHITECTURE.md ("Past one host").

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bulk;
mod cache;
mod config;
mod conn;
mod keys;
mod locks;
mod maintenance;
mod scripts;
mod store;
mod tracker;

pub use cache::{default_cache_path, CACHE_NAMESPACE_PREFIX};
pub use config::{
    redact, Consistency, RedisConfig, DEFAULT_CHUNK_SIZE, DEFAULT_IO_TIMEOUT, DEFAULT_LOCK_TTL,
};
pub use store::{CacheSetting, ExpectVersion, RedisOptions, RedisStore, INLINE_MAX};

impl RedisStore {
    /// Whether this process's tracking connections are up (warm reads then
    /// need no round trip).
    pub fn tracking(&self) -> bool {
        self.inner.tracker.healthy()
    }
}
