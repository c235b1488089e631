//! # brain
//!
//! brain's Rust API in one crate: the [`ObjectStore`] trait and everything
//! it speaks (re-exported from brain-core), and [`open`], which opens any
//! backend from a URL:
//!
//! | URL | store |
//! |---|---|
//! | a path, or `shm://PATH` | the shared-memory store in that directory (on a tmpfs) |
//! | `shm://` | the default shared-memory store: `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default` |
//! | `memory://NAME` | this process's in-memory store of that name (for tests) |
//! | `redis://HOST:PORT[/DB]`, `rediss://...` | a store on a Redis server (TLS with `rediss`), shared by every host that reaches it |
//! | `redis+cluster://HOST:PORT,HOST:PORT,...` | a store on a Redis Cluster, given by seed nodes |
//!
//! A Redis store caches what a host reads in that host's shared memory
//! ([`OpenOptions::cache`]); see the `brain-redis` crate.
//!
//! Everything written through one backend reads the same through another:
//! names, namespaces, codecs, descriptions, watch events and locks behave
//! alike, and a capacity is counted the same way ([`stored_size`]).
//!
//! ```
//! use brain::{ObjectStore, ObjectStoreExt};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("shm://{}", dir.path().join("store").display());
//! let store = brain::open(&url)?;                 // or "memory://tests", or a plain path
//! store.put_text("default", "greeting", "hello")?;
//! assert_eq!(store.get_text("default", "greeting")?.as_deref(), Some("hello"));
//!
//! let scratch = brain::open("memory://doc-example")?; // shared by this process only
//! scratch.put_text("default", "greeting", "hi")?;
//! assert_eq!(brain::open("memory://doc-example")?.names("default")?, ["greeting"]);
//! # Ok::<(), brain::Error>(())
//! ```
//!
//! ## Crate features
//! None yet: the shared-memory, in-memory and Redis backends are always built.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod url;

pub use brain_core::*;
pub use brain_mock::{drop_memory_store, memory_store};
pub use brain_redis::{CacheSetting, Consistency, ExpectVersion, RedisOptions, RedisStore};
pub use url::{default_url, StoreUrl};

use std::sync::Arc;

/// How to open a store, beyond its URL; finish with [`OpenOptions::open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    capacity: Option<Option<u64>>,
    checksums: bool,
    read_cache: bool,
    cache: CacheSetting,
    consistency: Option<Consistency>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            capacity: None,
            checksums: false,
            read_cache: true,
            cache: CacheSetting::Default,
            consistency: None,
        }
    }
}

impl OpenOptions {
    /// Every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the store's capacity in bytes (`None`: no limit but what is
    /// under it) when it opens, for every user of the store. Default: keep
    /// the capacity it has.
    #[must_use]
    pub fn capacity(mut self, capacity: Option<u64>) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Stores a checksum of each payload this process writes, checked by
    /// `fsck` (shared-memory stores). Default: off.
    #[must_use]
    pub fn checksums(mut self, on: bool) -> Self {
        self.checksums = on;
        self
    }

    /// Keeps what this process reads for repeated reads (mappings, copies
    /// of small objects). Off for a process that reads everything once (a
    /// dump, a sync), where the cache would only keep deleted objects'
    /// memory alive. Default: on.
    #[must_use]
    pub fn read_cache(mut self, on: bool) -> Self {
        self.read_cache = on;
        self
    }

    /// Where a Redis store caches what this host reads: the host's default
    /// shared-memory store ([`CacheSetting::Default`], the default), the
    /// store in a directory ([`CacheSetting::Path`]), or nowhere
    /// ([`CacheSetting::Off`]: every read fetches from the server). Other
    /// stores ignore it.
    #[must_use]
    pub fn cache(mut self, cache: CacheSetting) -> Self {
        self.cache = cache;
        self
    }

    /// How a Redis store validates cached reads: [`Consistency::Tracked`]
    /// (no round trip while its invalidation stream is up) or
    /// [`Consistency::Strict`] (one round trip per read). Default: the
    /// URL's `consistency=`, else tracked. Other stores ignore it.
    #[must_use]
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }

    /// Opens the store at `url` (see the [crate docs](crate) for the URLs).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL of no known kind; as
    /// [`StoreBuilder::open`] for a shared-memory store.
    pub fn open(&self, url: &str) -> Result<Arc<dyn ObjectStore>> {
        self.open_parsed(&StoreUrl::parse(url)?)
    }

    /// Opens a Redis store (`redis://`, `rediss://`, `redis+cluster://`)
    /// as its own type, for the calls only it has
    /// ([`RedisStore::expect_version`], [`RedisStore::put_if_version`]).
    ///
    /// # Errors
    /// As [`RedisStore::open`].
    pub fn open_redis(&self, url: &str) -> Result<RedisStore> {
        let options = RedisOptions {
            cache: self.cache.clone(),
            consistency: self.consistency,
        };
        let store = RedisStore::open(url, &options)?;
        if let Some(capacity) = self.capacity {
            store.set_capacity(capacity)?;
        }
        Ok(store)
    }

    /// Opens the store `url` names.
    ///
    /// # Errors
    /// As [`OpenOptions::open`].
    pub fn open_parsed(&self, url: &StoreUrl) -> Result<Arc<dyn ObjectStore>> {
        let store: Arc<dyn ObjectStore> = match url {
            StoreUrl::Shm(path) => {
                let mut builder = Store::builder().checksums(self.checksums);
                if let Some(path) = path {
                    builder = builder.path(path);
                }
                if !self.read_cache {
                    builder = builder.mapping_cache(0);
                }
                if let Some(capacity) = self.capacity {
                    builder = builder.capacity(capacity.unwrap_or(UNLIMITED));
                }
                Arc::new(builder.open()?)
            }
            StoreUrl::Memory(name) => {
                let store = memory_store(name);
                if let Some(capacity) = self.capacity {
                    store.set_capacity(capacity)?;
                }
                Arc::new(store)
            }
            StoreUrl::Redis(url) => Arc::new(self.open_redis(url)?),
        };
        Ok(store)
    }
}

/// Opens the store at `url` with the default options (see the [crate
/// docs](crate) for the URLs).
///
/// # Errors
/// As [`OpenOptions::open`].
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    OpenOptions::new().open(url)
}

/// Opens the default store: `$BRAIN_URL`, else `$BRAIN_PATH`, else
/// `/dev/shm/brain-<uid>/default` (see [`default_url`]).
///
/// # Errors
/// As [`OpenOptions::open`].
pub fn open_default() -> Result<Arc<dyn ObjectStore>> {
    OpenOptions::new().open_parsed(&default_url()?)
}

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
