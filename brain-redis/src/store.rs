//! [`RedisStore`]: brain's [`ObjectStore`] on Redis or Redis Cluster.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime};

use arrow_buffer::{Buffer, MutableBuffer};
use brain_core::format::checksum::{ChunkDigests, CHECKSUM_CHUNK};
use brain_core::format::PAYLOAD_ALIGN;
use brain_core::hash::Xxh3Stream;
use brain_core::{
    stored_size, validate_description, validate_name, validate_namespace, Codec, CorruptObject,
    Error, FsckReport, GcReport, Location, NameLock, ObjectKey, ObjectMeta, ObjectStore,
    ObjectView, ObjectWriter, Payload, Result, SharedBytes, Usage, UsageDetail, Watcher,
    WriteObject,
};
use redis::Value;

use crate::bulk::{BulkConn, BulkPool};
use crate::cache::{HostCache, Sink};
use crate::config::{Consistency, RedisConfig};
use crate::conn::{bytes_of, keys_matching, lock, redis_error, Conn, Connector, Pool};
use crate::keys::{new_version, Keys, NewVersion, Pointer, META_FIELDS, VERSION_FIELDS};
use crate::locks::{HeldLocks, RedisLock};
use crate::scripts;
use crate::tracker::{Binding, Tracker};

/// Payloads up to this size are stored inline in their pointer (one key,
/// one round trip); larger ones as chunks.
pub const INLINE_MAX: usize = 256 * 1024;
/// Inline payloads from this size up go to the server as a staged pointer
/// ahead of the publish script, not as one of its arguments (scripts.rs,
/// `PUBLISH`: arguments cost the server about 1 µs per KiB).
const STAGED_MIN: usize = 16 * 1024;
/// How long the chunks of a write in progress live unless it publishes them.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(600);
/// The least time a replaced version's chunks stay when a fetch of them is
/// in progress (more for large objects: twice the time to read them at
/// 100 MB/s); scripts.rs, `retire!`.
pub(crate) const GRACE: Duration = Duration::from_secs(60);
/// How long a fetch of `len` bytes keeps its version's chunks from being
/// deleted: the grace they then get (`retire!`'s formula).
fn grace_ms(len: u64) -> u64 {
    (GRACE.as_millis() as u64).max(2 * len / 100_000)
}
/// Bytes of chunks sent or asked for in one pipelined batch: the server
/// answers a batch in one go, and other clients wait while it copies the
/// replies.
const BATCH_BYTES: u64 = 8 << 20;
/// The bytes of a batch of whole chunks of `chunk_size` (at least one).
fn batch_bytes(chunk_size: usize) -> usize {
    (BATCH_BYTES as usize / chunk_size).max(1) * chunk_size
}
/// A fetch's first batch of chunks, asked for on `conn`, its replies unread
/// ([`RedisStore::ask_first_batch`]). Dropped, it closes the connection.
pub(crate) struct Asked {
    conn: BulkConn,
    /// `conn` waited in the pool (and may have been closed meanwhile).
    idle: bool,
    /// How the request went: a failure is reported (or, on an idle
    /// connection found closed, the request sent again) when the replies
    /// are read, as if it had happened then.
    sent: redis::RedisResult<()>,
    /// The version asked for.
    version: String,
    /// The fetch's mark on it, sent with the request.
    lease: Lease,
}

/// A fetch's mark on the version it reads (scripts.rs, `retire!`): its
/// token, in the version's set of fetches in progress from before the first
/// chunk is asked for until the last is, keeps the chunks when the name is
/// replaced or deleted meanwhile. Sent in the same pipelines as the chunks'
/// `GET`s: no round trip of its own. A fetch that fails leaves its token,
/// which goes with the set's expiry.
///
/// Only a courtesy to the fetch: a server that refuses it (an ACL user
/// that may only read, a server over its `maxmemory`, a cluster slot on
/// its way to another node) leaves the read as it was without it. A
/// refusal for want of rights stops this handle's fetches from asking
/// again ([`Inner::leases_refused`]).
pub(crate) struct Lease {
    readers: String,
    token: String,
    ttl_ms: u64,
    /// Still asked for (the server has refused none of its commands).
    on: std::cell::Cell<bool>,
    /// What a release that lets a replaced version go needs: the name's
    /// pointer key, the version, its chunk count and chunk key prefix.
    pointer_key: String,
    version: String,
    chunks: u64,
    chunk_prefix: String,
}

impl Lease {
    fn new(inner: &Inner, key: ObjectKey, pointer: &Pointer) -> Lease {
        Lease {
            readers: inner.keys.readers(key, &pointer.version),
            token: new_version(),
            ttl_ms: grace_ms(pointer.len),
            on: std::cell::Cell::new(!inner.leases_refused.load(Ordering::Relaxed)),
            pointer_key: inner.keys.pointer(key),
            version: pointer.version.clone(),
            chunks: pointer.chunks,
            chunk_prefix: format!("{}{}:", inner.keys.chunk_prefix(key), pointer.version),
        }
    }

    /// The command that gives the lease back. A fetch of one batch (up to
    /// `BATCH_BYTES`) sends `SREM`, and a version replaced while it read
    /// stays the rest of its grace; a longer one sends
    /// [`scripts::RELEASE`], which lets such a version go within a second
    /// of the last fetch's end. The script costs the server about 10 µs
    /// more (on a raw socket, a 1 MiB `GET` alone took 271 and 297 µs, with
    /// `SADD` and `SREM` 274 and 299 µs, with `SADD` and the script 285
    /// and 311 µs), which only a fetch of several batches makes small.
    fn give_back(&self, several_batches: bool) -> redis::Cmd {
        if !several_batches {
            let mut remove = redis::cmd("SREM");
            remove.arg(&self.readers).arg(&self.token);
            return remove;
        }
        let mut release = redis::cmd("EVAL");
        release
            .arg(scripts::RELEASE)
            .arg(2)
            .arg(&self.readers)
            .arg(&self.pointer_key)
            .arg(&self.token)
            .arg(&self.version)
            .arg(self.chunks)
            .arg(&self.chunk_prefix);
        release
    }

    /// The commands sent with the batch of chunks `batch` of a version of
    /// `chunks`, before its `GET`s and after; each answers an integer.
    /// The first batch takes the lease; every batch renews its expiry (a
    /// fetch slower than the expiry keeps it); the last gives it back.
    fn around(
        &self,
        batch: &std::ops::Range<u64>,
        chunks: u64,
    ) -> (Vec<redis::Cmd>, Vec<redis::Cmd>) {
        if !self.on.get() {
            return (Vec::new(), Vec::new());
        }
        let mut before = Vec::with_capacity(2);
        if batch.start == 0 {
            let mut add = redis::cmd("SADD");
            add.arg(&self.readers).arg(&self.token);
            before.push(add);
        }
        let mut expire = redis::cmd("PEXPIRE");
        expire.arg(&self.readers).arg(self.ttl_ms);
        before.push(expire);
        let mut after = Vec::new();
        if batch.end == chunks {
            after.push(self.give_back(batch.start > 0));
        }
        (before, after)
    }

    /// The server refused one of its commands with `code`: the fetch goes
    /// on without it, and a refusal for want of rights holds for the handle.
    fn refused(&self, inner: &Inner, code: &str) {
        self.on.set(false);
        if code == "NOPERM" {
            inner.leases_refused.store(true, Ordering::Relaxed);
        }
    }
}

/// The command that stores a chunk of a write in progress: it expires
/// unless the write is published. `NX`: sent again (a call run again after
/// its reply was lost, `Pool::run`), it leaves a chunk stored already as it
/// is, with no expiry if the first run's publish removed it. A version's
/// chunk keys are new, so a chunk there holds these very bytes.
fn set_pending<'a>(key: &'a str, piece: &'a [u8]) -> [&'a [u8]; 6] {
    [
        b"SET",
        key.as_bytes(),
        piece,
        b"PX",
        PENDING_TTL_MS.as_bytes(),
        b"NX",
    ]
}
/// [`PENDING_TTL`] in milliseconds, as a command's argument.
const PENDING_TTL_MS: &str = "600000";
const _: () = assert!(
    PENDING_TTL.as_millis() == 600_000,
    "PENDING_TTL_MS says otherwise"
);
/// A whole pointer of `new` with its inline payload, to be staged under
/// `key` (scripts.rs, `PUBLISH`).
struct StagedPointer<'a> {
    key: String,
    new: &'a NewVersion<'a>,
    /// `new.field_values()`, which the publish sends too.
    fields: &'a [String; 8],
    data: std::borrow::Cow<'a, [u8]>,
}

impl<'a> StagedPointer<'a> {
    fn new(
        key: String,
        new: &'a NewVersion<'a>,
        fields: &'a [String; 8],
        parts: &'a [&'a [u8]],
    ) -> StagedPointer<'a> {
        let data = match parts {
            [one] => std::borrow::Cow::Borrowed(*one),
            _ => std::borrow::Cow::Owned(parts.concat()),
        };
        StagedPointer {
            key,
            new,
            fields,
            data,
        }
    }

    /// The commands that stage it, expiring unless it is published: one
    /// `HSET` of every field, so that the script, finding its version
    /// there, knows it whole (a server out of memory refuses it whole, and
    /// an eviction takes it whole), then its expiry. A writer killed with
    /// the request sent only up to the expiry leaves a staged pointer with
    /// none, which `gc` removes (maintenance.rs).
    fn commands(&self) -> [Vec<&[u8]>; 2] {
        let key = self.key.as_bytes();
        let mut whole = vec![
            &b"HSET"[..],
            key,
            b"v",
            self.new.version.as_bytes(),
            b"ns",
            self.new.namespace.as_bytes(),
            b"name",
            self.new.name.as_bytes(),
        ];
        for (field, value) in VERSION_FIELDS.iter().zip(self.fields) {
            whole.extend([field.as_bytes(), value.as_bytes()]);
        }
        whole.extend([&b"data"[..], &self.data]);
        let expiry = vec![&b"PEXPIRE"[..], key, PENDING_TTL_MS.as_bytes()];
        [whole, expiry]
    }
}

/// Tries of a read that meets a replaced version before giving up.
const READ_TRIES: usize = 8;

/// Where the host's read cache is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheSetting {
    /// The host's default shared-memory store (`$BRAIN_PATH`, else
    /// `/dev/shm/brain-<uid>/default`).
    #[default]
    Default,
    /// The shared-memory store in this directory.
    Path(PathBuf),
    /// No cache: every read fetches from the server.
    Off,
}

/// Options of a Redis store beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Where fetched objects are cached on this host.
    pub cache: CacheSetting,
    /// How cached reads are validated; default: what the URL says
    /// (`consistency=`), else tracked.
    pub consistency: Option<Consistency>,
}

/// A brain store on Redis or Redis Cluster.
///
/// Objects are published atomically under random versions; each host
/// caches what it reads in its shared memory (see the crate docs for what
/// each consistency mode guarantees). Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    pub(crate) url: String,
    pub(crate) keys: Keys,
    pub(crate) pool: Pool,
    /// Connections that read chunks straight into their destination.
    pub(crate) bulk: BulkPool,
    pub(crate) cache: Option<HostCache>,
    pub(crate) consistency: Consistency,
    pub(crate) tracker: Tracker,
    pub(crate) held: HeldLocks,
    /// The servers' `maxmemory-policy` when it evicts keys (`allkeys-*`,
    /// or `volatile-*`, which evicts keys with an expiry: a write's chunks
    /// until it is published), which turns a missing chunk into an evicted
    /// one rather than a race.
    pub(crate) evicting_policy: Mutex<Option<String>>,
    /// Compare-and-set expectations of threads of this process, by name.
    expectations: Mutex<HashMap<(String, String, ThreadId), Arc<Expectation>>>,
    /// The server refused a fetch's mark on its version for want of rights
    /// (an ACL user that may only read): fetches go without ([`Lease`]).
    pub(crate) leases_refused: AtomicBool,
}

/// What a thread expects a name to hold when it next writes it.
#[derive(Debug)]
struct Expectation {
    /// The version, or `None` for "no object".
    version: Option<String>,
    conflicted: AtomicBool,
}

/// A compare-and-set in force, from [`RedisStore::expect_version`]: while
/// it lives, this thread's writes and deletes of the name are published
/// only if the name still holds the version expected; one refused for
/// that reason fails and sets [`ExpectVersion::conflicted`].
#[derive(Debug)]
pub struct ExpectVersion {
    store: std::sync::Weak<Inner>,
    key: (String, String, ThreadId),
    expectation: Arc<Expectation>,
}

impl ExpectVersion {
    /// Whether a write was refused because another writer got there first.
    pub fn conflicted(&self) -> bool {
        self.expectation.conflicted.load(Ordering::SeqCst)
    }
}

impl Drop for ExpectVersion {
    fn drop(&mut self) {
        if let Some(inner) = self.store.upgrade() {
            let mut expectations = lock(&inner.expectations);
            if expectations
                .get(&self.key)
                .is_some_and(|e| Arc::ptr_eq(e, &self.expectation))
            {
                expectations.remove(&self.key);
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url)
            .field("cache", &self.inner.cache.as_ref().map(HostCache::path))
            .field("consistency", &self.inner.consistency)
            .finish_non_exhaustive()
    }
}

fn validate_object(namespace: &str, name: &str) -> Result<()> {
    validate_namespace(namespace)?;
    validate_name(name)
}

/// A payload copied into a 64-byte aligned buffer, as every backend hands out.
pub(crate) fn aligned(parts: &[&[u8]]) -> Buffer {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut bytes = MutableBuffer::with_capacity(len + PAYLOAD_ALIGN);
    let pad = bytes.as_ptr().align_offset(PAYLOAD_ALIGN);
    bytes.extend_zeros(pad);
    for part in parts {
        bytes.extend_from_slice(part);
    }
    Buffer::from(bytes).slice(pad)
}

fn checksum(parts: &[&[u8]]) -> u64 {
    let mut hasher = Xxh3Stream::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.digest()
}

/// The outcome of the publish script.
enum Published {
    Ok {
        old_stored: u64,
    },
    Locked,
    Conflict,
    /// Chunk `i` is not on the server (`None`: the staged pointer).
    Missing(Option<u64>),
    Full {
        used: u64,
        capacity: u64,
        /// The stored size of the object the write replaces (0 for a new name).
        replacing: u64,
    },
    /// The old object's description, to be kept: nothing was written.
    Described(String),
    /// Published by a run of the call before this one (whose reply was
    /// lost), and replaced or deleted since by another writer: nothing was
    /// written, and the bookkeeping of a publish is not done again.
    Superseded,
}

/// A fetch whose chunks hold more bytes than the version's pointer says.
fn too_long(pointer: &Pointer) -> FetchError {
    FetchError::Mismatch(format!(
        "its chunks hold more than the {} bytes its pointer says",
        pointer.len
    ))
}

/// How a fetch checks the bytes it read against the pointer's checksum
/// (xxh3-64 of the whole payload).
enum FetchCheck {
    /// Hashed here, as they are read.
    Hash(Box<Xxh3Stream>),
    /// By the checksum the sink computes as they go in. For a payload of one
    /// checksum chunk (docs/FORMAT.md) the store's checksum is the xxh3-64 of
    /// that chunk's digest, which is the pointer's: one pass over the bytes
    /// instead of two (measured in docs/BENCHMARKS.md, "brain on Redis").
    BySink,
}

impl FetchCheck {
    fn for_fetch(pointer: &Pointer, sink: &dyn Sink) -> FetchCheck {
        let one_chunk = (1..=CHECKSUM_CHUNK as u64).contains(&pointer.len);
        if one_chunk && sink.hashes_as_it_writes() {
            FetchCheck::BySink
        } else {
            FetchCheck::Hash(Box::default())
        }
    }

    /// Notes bytes that were read (and went into the sink).
    fn update(&mut self, bytes: &[u8]) {
        if let FetchCheck::Hash(hasher) = self {
            hasher.update(bytes);
        }
    }

    /// Checks that the `done` bytes read are the pointer's payload.
    fn finish(
        self,
        done: u64,
        pointer: &Pointer,
        sink: &mut dyn Sink,
    ) -> std::result::Result<(), FetchError> {
        if done != pointer.len {
            return Err(FetchError::Mismatch(format!(
                "its chunks hold {done} bytes, but its pointer says {}",
                pointer.len
            )));
        }
        let matches = match self {
            FetchCheck::Hash(hasher) => hasher.digest() == pointer.checksum,
            FetchCheck::BySink => {
                let mut expected = ChunkDigests::default();
                expected.push(pointer.checksum);
                sink.payload_checksum()? == Some(expected.finish())
            }
        };
        if !matches {
            return Err(FetchError::Mismatch(
                "its chunks do not match the checksum in its pointer".into(),
            ));
        }
        Ok(())
    }
}

fn int(value: &Value) -> u64 {
    match value {
        Value::Int(i) => (*i).max(0) as u64,
        other => bytes_of(other.clone())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

fn word(value: &Value) -> String {
    bytes_of(value.clone())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Why a fetch of chunks stopped.
pub(crate) enum FetchError {
    /// Chunk `i` of the version is gone (replaced and expired, or evicted).
    Missing(u64),
    /// The bytes do not match the pointer's length or checksum.
    Mismatch(String),
    Other(Error),
}

impl From<Error> for FetchError {
    fn from(err: Error) -> Self {
        FetchError::Other(err)
    }
}

impl RedisStore {
    /// Opens the store at a `redis://`, `rediss://`, `redis+cluster://` or
    /// `rediss+cluster://` URL.
    ///
    /// Connects once to check the server (and warns on standard error when
    /// its `maxmemory-policy` may evict brain's keys).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]; [`Error::PermissionDenied`] for a refused
    /// password or user; an I/O error when no server answers.
    pub fn open(url: &str, options: &RedisOptions) -> Result<RedisStore> {
        let config = RedisConfig::parse(url)?;
        let shown = config.to_string();
        let location = Location::Url(shown.clone());
        let connector =
            Connector::new(&config).map_err(|e| redis_error("connect to", &location, &e))?;
        let pool = Pool::new(connector);
        let bulk = BulkPool::new(&config);
        let consistency = options.consistency.unwrap_or(config.consistency);
        let mut store = RedisStore {
            inner: Arc::new(Inner {
                keys: Keys {
                    prefix: config.prefix.clone(),
                },
                url: shown.clone(),
                pool,
                bulk,
                cache: None,
                consistency,
                tracker: Tracker::default(),
                held: HeldLocks::default(),
                evicting_policy: Mutex::new(None),
                expectations: Mutex::new(HashMap::new()),
                leases_refused: AtomicBool::new(false),
                config,
            }),
        };
        store.check_server()?;
        // The host's cache store is opened (made, the first time) only for
        // a server that answers.
        if !matches!(options.cache, CacheSetting::Off) {
            let cache = HostCache::open(&options.cache, &shown)?;
            Arc::get_mut(&mut store.inner)
                .expect("nothing else holds a store being opened")
                .cache = Some(cache);
        }
        Ok(store)
    }

    /// The URL, without the password.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The host cache's directory, if there is a cache.
    pub fn cache_path(&self) -> Option<&std::path::Path> {
        self.inner.cache.as_ref().map(HostCache::path)
    }

    /// How cached reads are validated.
    pub fn consistency(&self) -> Consistency {
        self.inner.consistency
    }

    /// The primaries' `host:port` (the one server, or each shard's primary).
    ///
    /// # Errors
    /// I/O with the servers.
    pub fn primaries(&self) -> Result<Vec<String>> {
        crate::tracker::primaries(&self.inner).map_err(|e| self.err("find the primaries of", &e))
    }

    pub(crate) fn err(&self, op: &'static str, e: &redis::RedisError) -> Error {
        redis_error(op, &self.location(), e)
    }

    fn object_location(&self, namespace: &str, name: &str) -> Location {
        self.location().join(format!("{namespace:?}/{name:?}"))
    }

    fn single(&self) -> bool {
        !self.inner.config.cluster
    }

    /// Pings the servers and reads their eviction policy.
    fn check_server(&self) -> Result<()> {
        let single = !self.inner.config.cluster;
        let replies: Vec<(String, bool)> = self
            .on_primaries(|conn| {
                let reply: std::result::Result<HashMap<String, String>, _> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query(conn);
                // A node of a cluster opened as one server would answer MOVED
                // for most names, and refuse the scripts' keys of several slots.
                let in_a_cluster = single
                    && redis::cmd("INFO")
                        .arg("cluster")
                        .query::<String>(conn)
                        .is_ok_and(|info| info.contains("cluster_enabled:1"));
                // A managed server may refuse CONFIG: then nothing is known.
                let policy = reply
                    .ok()
                    .and_then(|mut r| r.remove("maxmemory-policy"))
                    .unwrap_or_default();
                Ok((policy, in_a_cluster))
            })
            .map_err(|e| self.err("open", &e))?;
        if replies.iter().any(|(_, in_a_cluster)| *in_a_cluster) {
            return Err(Error::InvalidUrl {
                url: self.inner.url.clone(),
                reason: "the server is a node of a Redis Cluster: open it with redis+cluster://HOST:PORT (one or more of its nodes)".into(),
            });
        }
        // volatile-* evicts only keys with an expiry: a write's chunks until
        // it is published, a replaced version's during their grace, locks;
        // allkeys-* evicts published objects and names too. The worst of
        // the primaries' policies is kept.
        let evicting = ["allkeys-", "volatile-"].iter().find_map(|kind| {
            replies
                .iter()
                .map(|(policy, _)| policy)
                .find(|p| p.starts_with(kind))
                .cloned()
        });
        if let Some(policy) = evicting.as_ref().filter(|p| p.starts_with("allkeys-")) {
            eprintln!(
                "brain: warning: {} has maxmemory-policy {policy}, which may evict brain's objects and names when memory runs short (reads then fail with \"object lost\", or find no such name); set maxmemory-policy to noeviction or a volatile-* policy",
                self.inner.url
            );
        }
        *lock(&self.inner.evicting_policy) = evicting;
        Ok(())
    }

    /// Runs `f` on a connection to each primary (the one server, or every
    /// shard's primary), in turn.
    pub(crate) fn on_primaries<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<Vec<T>> {
        if !self.inner.config.cluster {
            // The one server: a pooled connection, not a new one.
            return self.inner.pool.run(|c| match c {
                Conn::Single(conn) => f(conn).map(|v| vec![v]),
                Conn::Cluster(_) => Err(redis::RedisError::from(io::Error::other(
                    "a cluster connection in a single server's pool",
                ))),
            });
        }
        let nodes = crate::tracker::primaries(&self.inner)?;
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let mut conn = Connector::node(&self.inner.config, &node)?;
            out.push(f(&mut conn)?);
        }
        Ok(out)
    }

    fn run<T>(
        &self,
        op: &'static str,
        f: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.inner.pool.run(f).map_err(|e| self.err(op, &e))
    }

    /// As [`RedisStore::run`], for a command that stores part of the object
    /// `name`, `needed` bytes in all: a server that refuses it for its
    /// memory limit (`OOM`, under `maxmemory` with a policy that does not
    /// evict) makes it a full store, with the server's figures.
    fn run_write<T>(
        &self,
        op: &'static str,
        (namespace, name, needed): (&str, &str, u64),
        f: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.inner.pool.run(f).map_err(|e| {
            if !crate::conn::is_out_of_memory(&e) {
                return self.err(op, &e);
            }
            let (used, capacity) = self.fullest_server().unwrap_or((0, 0));
            self.full(namespace, name, needed, (used, capacity), true)
        })
    }

    /// The `StoreFull` of a write of `name` that needs `needed` bytes, with
    /// `(used, capacity)`: the store's, or with `server_full` the server's
    /// memory. The object it replaces stays until the new one is in: its
    /// size tells the user why (a look that fails only loses the hint).
    fn full(
        &self,
        namespace: &str,
        name: &str,
        needed: u64,
        (used, capacity): (u64, u64),
        server_full: bool,
    ) -> Error {
        let replacing = self
            .read_meta(namespace, name)
            .ok()
            .flatten()
            .map_or(0, |pointer| pointer.meta.stored_size);
        Error::StoreFull {
            namespace: namespace.into(),
            name: name.into(),
            needed,
            used,
            capacity,
            location: self.location(),
            filesystem_full: server_full,
            replacing,
            held: 0,
            holders: String::new(),
        }
    }

    /// `used_memory` and `maxmemory` of the primary nearest its limit.
    fn fullest_server(&self) -> Option<(u64, u64)> {
        let figures = self
            .on_primaries(|conn| {
                let info: String = redis::cmd("INFO").arg("memory").query(conn)?;
                let field = |name: &str| {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                        .and_then(|value| value.trim().parse::<u64>().ok())
                };
                Ok(field("used_memory").zip(field("maxmemory")))
            })
            .ok()?;
        figures
            .into_iter()
            .flatten()
            .filter(|&(_, max)| max > 0)
            .max_by(|a, b| (a.0 as f64 / a.1 as f64).total_cmp(&(b.0 as f64 / b.1 as f64)))
    }

    /// Changes the usage count (scripts.rs, `RESERVE`, which says what
    /// each [`CountChange`] does with `id` and `bytes`).
    fn change_count(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
        bytes: i64,
        change: CountChange,
    ) -> Result<()> {
        self.change_count_with(namespace, name, id, bytes, change, &new_version(), &[])
            .map(drop)
    }

    /// [`RedisStore::change_count`], with `with` sent in the same pipeline
    /// after it (on a cluster each node's part goes at once: one round
    /// trip for all); their answers. A server's error answer to any is the
    /// call's error. The call is marked by `mark`, a fresh
    /// [`new_version`]: a run again after its connection closed under it
    /// changes the count no more, and [`RedisStore::counted_already`]
    /// tells afterwards whether it changed the count.
    #[allow(clippy::too_many_arguments)]
    fn change_count_with(
        &self,
        namespace: &str,
        name: &str,
        id: &str,
        bytes: i64,
        change: CountChange,
        mark: &str,
        with: &[redis::Cmd],
    ) -> Result<Vec<Value>> {
        if id.is_empty() && bytes == 0 && with.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.inner.keys;
        let counted = keys.counted(mark);
        let object = (namespace, name, bytes.max(0) as u64);
        let (mode, counted_outside) = match change {
            CountChange::Set => ("", 0),
            CountChange::Settle { counted } => ("settle", counted),
            CountChange::Open => ("open", 0),
            CountChange::Done => ("done", 0),
        };
        let script_keys = [
            keys.used(),
            keys.cfg(),
            counted,
            keys.held(),
            keys.leases(),
            keys.changing(),
        ];
        let script_args = [
            id.to_owned(),
            bytes.to_string(),
            mode.to_owned(),
            PENDING_TTL_MS.to_owned(),
            counted_outside.to_string(),
            CHANGE_LEASE_MS.to_string(),
        ];
        let mut replies: Vec<Value> = self.run_write("reserve capacity in", object, |c| {
            if with.is_empty() {
                let mut invocation = scripts::reserve().prepare_invoke();
                for key in &script_keys {
                    invocation.key(key);
                }
                for arg in &script_args {
                    invocation.arg(arg);
                }
                return Ok(vec![invocation.invoke(c.like())?]);
            }
            // `EVAL`: a cluster pipeline routes it by its first key, and a
            // server never lacks its body.
            let mut eval = redis::cmd("EVAL");
            eval.arg(scripts::RESERVE)
                .arg(script_keys.len())
                .arg(&script_keys[..])
                .arg(&script_args[..]);
            let commands: Vec<redis::Cmd> =
                std::iter::once(eval).chain(with.iter().cloned()).collect();
            c.pipeline(commands)
        })?;
        let with_replies = replies.split_off(replies.len().min(1));
        let reply: Vec<Value> = match replies.pop() {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        if reply.first().map(int) == Some(0) {
            let figures = (reply.get(1).map_or(0, int), reply.get(2).map_or(0, int));
            let wanted = reply.get(3).map_or(bytes.max(0) as u64, int);
            return Err(self.full(namespace, name, wanted, figures, false));
        }
        Ok(with_replies)
    }

    /// Whether the call marked `mark` changed the count (its mark lasts a
    /// minute). `None` when the server could not be asked.
    fn counted_already(&self, mark: &str) -> Option<bool> {
        let key = self.inner.keys.counted(mark);
        self.run("read the usage of", |c| {
            redis::cmd("EXISTS").arg(&key).query::<bool>(c.like())
        })
        .ok()
    }

    /// Reserves (or gives back, negative) bytes of the capacity, with no
    /// lease.
    fn reserve(&self, namespace: &str, name: &str, delta: i64) -> Result<()> {
        self.change_count(namespace, name, "", delta, CountChange::Set)
    }

    /// Sets the reservation of the write `id` to `total` bytes, and renews
    /// its lease: if the write dies, they are given back when the lease
    /// lapses (scripts.rs, `reap` in `accounting!`).
    fn hold(&self, namespace: &str, name: &str, id: &str, total: u64) -> Result<()> {
        self.change_count(namespace, name, id, total as i64, CountChange::Set)
    }

    /// Ends the reservation of the write `id`, whatever it holds, whatever
    /// happens: a failure leaves it to its lease. Safe after a publish that
    /// ended it (there is nothing left to give back).
    fn end_reservation(&self, id: &str) {
        let _ = self.change_count("", "", id, 0, CountChange::Set);
    }

    /// Closes the cluster's change `id` (`CountChange::Done`), changing the
    /// count by `delta` and giving back any reservation under `id`, with
    /// `with` in the same pipeline, whatever happens: a failure leaves the
    /// change to its lease, and the count high until `fsck`, never low.
    fn close_change(&self, id: &str, delta: i64, with: &[redis::Cmd]) {
        let _ = self.change_count_with("", "", id, delta, CountChange::Done, &new_version(), with);
    }

    /// Gives back bytes, whatever happens: a failure to do so only leaves
    /// the count high until `fsck`.
    fn release(&self, bytes: u64) {
        if bytes > 0 {
            let _ = self.reserve("", "", -(bytes as i64));
        }
    }

    /// On a cluster, the catalog entry and the namespace are written apart
    /// from the pointer (another slot): with the settle before the publish,
    /// and again after it (a delete in between may have removed the
    /// entry); and back when a delete finds the name written again.
    fn catalog_add(&self, namespace: &str, name: &str, key: ObjectKey) -> Result<()> {
        let commands = self.catalog_entry(namespace, name, key);
        self.run("write the catalog of", |c| c.pipeline(commands.to_vec()))
    }

    /// The commands that write `name`'s catalog entry and its namespace.
    fn catalog_entry(&self, namespace: &str, name: &str, key: ObjectKey) -> [redis::Cmd; 2] {
        let keys = &self.inner.keys;
        let mut entry = redis::cmd("HSET");
        entry
            .arg(keys.catalog(namespace))
            .arg(name)
            .arg(key.to_hex());
        let mut listed = redis::cmd("SADD");
        listed.arg(keys.namespaces()).arg(namespace);
        [entry, listed]
    }

    /// Runs the publish script for `new`; `tail` (the last batch of a
    /// chunked write's chunks, keys and bytes) goes up in the same pipeline,
    /// just before the script, which finds them there: one round trip.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        new: &NewVersion<'_>,
        key: ObjectKey,
        inline: Option<&[&[u8]]>,
        tail: &[(String, &[u8])],
        (count_here, reservation): (i64, &str),
        expected: &str,
        keep_description: bool,
    ) -> Result<Published> {
        let keys = &self.inner.keys;
        let token = self.inner.held.token(new.namespace, new.name);
        let mut invocation = scripts::publish().prepare_invoke();
        invocation.key(keys.pointer(key)).key(keys.lock(key));
        if self.single() {
            invocation
                .key(keys.used())
                .key(keys.cfg())
                .key(keys.catalog(new.namespace))
                .key(keys.namespaces())
                .key(keys.held())
                .key(keys.leases());
        }
        invocation
            .arg(expected)
            .arg(token.as_deref().unwrap_or(""))
            .arg(new.version)
            .arg(new.chunks)
            .arg(GRACE.as_millis() as u64)
            .arg(keys.chunk_prefix(key))
            .arg(count_here)
            .arg(new.name)
            .arg(key.to_hex())
            .arg(new.namespace)
            .arg(if keep_description { "1" } else { "0" })
            .arg(keys.readers_prefix(key))
            .arg(keys.deleted(key));
        let fields = new.field_values();
        for value in &fields {
            invocation.arg(value);
        }
        // What goes up in the same pipeline ahead of the script: the last
        // chunks, or a staged pointer.
        let chunks: Vec<[&[u8]; 6]> = tail
            .iter()
            .map(|(key, piece)| set_pending(key, piece))
            .collect();
        let staged = match inline {
            Some(parts) if parts.iter().map(|part| part.len()).sum::<usize>() >= STAGED_MIN => {
                Some(StagedPointer::new(
                    keys.staged(key, new.version),
                    new,
                    &fields,
                    parts,
                ))
            }
            _ => None,
        };
        let staging = staged.as_ref().map(StagedPointer::commands);
        let ahead: Vec<&[&[u8]]> = chunks
            .iter()
            .map(|args| &args[..])
            .chain(staging.iter().flatten().map(|args| &args[..]))
            .collect();
        invocation.arg(staged.as_ref().map_or("", |staged| staged.key.as_str()));
        invocation.arg(reservation);
        if let (Some(parts), None) = (inline, &staged) {
            invocation.arg(parts.concat());
        }
        let needed = stored_size(new.namespace, new.name, new.description, new.len);
        let op = match tail.is_empty() {
            true => "publish an object in",
            false => "write the last chunks and publish an object in",
        };
        let reply: Vec<Value> = self.run_write(op, (new.namespace, new.name, needed), |c| {
            if ahead.is_empty() {
                return invocation.invoke(c.like());
            }
            let script = [redis::Cmd::invoke_script(&invocation)];
            match c.pipeline_raw::<Vec<Value>>(&ahead, &script) {
                Ok(mut replies) => {
                    redis::from_redis_value(replies.pop().unwrap_or(Value::Nil)).map_err(Into::into)
                }
                // The script is the only command that can answer
                // NOSCRIPT, and a chunk (or staged pointer) refused before
                // it would be the first failure: they are up. The server
                // restarted, or its scripts were flushed: load it and run it.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation.invoke(c.like())
                }
                // A chunk refused (the server's memory is full) is the
                // write's error: the script then found it missing.
                Err(e) => Err(e),
            }
        })?;
        let status = reply.first().map(word).unwrap_or_default();
        Ok(match status.as_str() {
            "OK" => Published::Ok {
                old_stored: reply.get(2).map_or(0, int),
            },
            "LOCKED" => Published::Locked,
            "SUPERSEDED" => Published::Superseded,
            "CONFLICT" => Published::Conflict,
            // A chunk's index, or -1: the staged pointer.
            "MISSING" => Published::Missing(match reply.get(1) {
                Some(Value::Int(i)) if *i >= 0 => Some(*i as u64),
                _ => None,
            }),
            "DESCRIBED" => Published::Described(
                String::from_utf8_lossy(
                    &reply.get(1).cloned().and_then(bytes_of).unwrap_or_default(),
                )
                .into_owned(),
            ),
            "FULL" => Published::Full {
                used: reply.get(1).map_or(0, int),
                capacity: reply.get(2).map_or(0, int),
                replacing: reply.get(3).map_or(0, int),
            },
            other => {
                return Err(Error::io(
                    "publish an object in",
                    self.location(),
                    io::Error::other(format!("the publish script answered {other:?}")),
                ))
            }
        })
    }
}

/// What a call of the `RESERVE` script does (scripts.rs says each in full).
#[derive(Debug, Clone, Copy)]
enum CountChange {
    /// Sets a write's reservation to a total (0 ends it), or, with no id,
    /// changes the count.
    Set,
    /// A cluster's write, before its publish: counts the object (less its
    /// reservation and the bytes `counted` for it already), ends the
    /// reservation, and opens a change.
    Settle { counted: u64 },
    /// A cluster's delete, before its script: opens a change.
    Open,
    /// Closes a change, giving back any reservation under its id.
    Done,
}

/// How long a cluster's change stays open (`CountChange`) if the process
/// that opened it dies before closing it: a recount waits for it.
const CHANGE_LEASE_MS: u64 = 60_000;

/// What a write holds of the usage count when it comes to be published.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Held<'a> {
    /// A writer's reservation, under its id (the new version), with a lease.
    Reservation(&'a str),
    /// Bytes counted for the object already, with no lease: none for a put,
    /// the object's size for a cluster's reservation settled before its
    /// publish.
    Counted(u64),
}

impl RedisStore {
    /// Publishes a complete version and does the bookkeeping around it;
    /// `held` is what the write holds of the count already. With
    /// `keep_description` (and an empty description in `new`), the old
    /// object's description is kept: the script finds it, and the version
    /// is sent again with it (a second round trip only when there is one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_write(
        &self,
        new: &NewVersion<'_>,
        inline: Option<&[&[u8]]>,
        tail: &[(String, &[u8])],
        held: Held<'_>,
        expected: &str,
        keep_description: bool,
    ) -> Result<ObjectMeta> {
        let key = ObjectKey::new(new.namespace, new.name);
        let needed = stored_size(new.namespace, new.name, new.description, new.len);
        let single = self.single();
        let (mut reservation, mut counted) = match held {
            Held::Reservation(id) => (id, 0),
            Held::Counted(bytes) => ("", bytes),
        };
        // On a single server the publish script counts the object, less
        // what the write's reservation holds, and ends the reservation, in
        // the same atomic step. On a cluster it runs on the object's slot,
        // away from the count: the reservation is settled first (set to
        // the object's size and ended), and given back if the publish fails.
        // A write killed between the two leaves the count high until
        // `fsck`, never low.
        // The settle opens a change under the version, which a recount
        // waits for (scripts.rs, `RESERVE`), until the count is done with
        // (`close_change`): the replaced object's bytes given back, or the
        // write's if it was not published.
        // The catalog's entry goes up in the same round trip as the settle
        // (another slot, maybe another server). A write that then fails
        // leaves an entry with no pointer, which listings skip and `gc`
        // removes.
        if !single {
            let settle = CountChange::Settle { counted };
            let mark = new_version();
            let entry = self.catalog_entry(new.namespace, new.name, key);
            let settled = self.change_count_with(
                new.namespace,
                new.name,
                new.version,
                needed as i64,
                settle,
                &mark,
                &entry,
            );
            if let Err(err) = settled {
                // The settle may have counted the object when the catalog's
                // server refused its entry: its mark tells. Unknown, less
                // is given back (the count high until `fsck`, never low).
                let give = match self.counted_already(&mark) {
                    Some(true) => needed,
                    _ => counted,
                };
                self.close_change(new.version, -(give as i64), &[]);
                return Err(err);
            }
            (reservation, counted) = ("", needed);
        }
        let count_here = match single {
            true => needed as i64 - counted as i64,
            false => 0,
        };
        // What a write that did not publish gives back: its reservation,
        // which a publish that ran ended already, so ending it again is
        // safe; bytes counted, only when the pointer shows another version
        // (a publish whose reply was lost may have run: they are then the
        // object's, and the count may be high until `fsck`, never low).
        let give_back = |maybe_published: bool| {
            let not_published = || match self.read_meta(new.namespace, new.name) {
                Ok(pointer) => pointer.is_none_or(|p| p.version != new.version),
                Err(_) => false,
            };
            let give = counted > 0 && (!maybe_published || not_published());
            if !single {
                self.close_change(new.version, if give { -(counted as i64) } else { 0 }, &[]);
                return;
            }
            if !reservation.is_empty() {
                self.end_reservation(reservation);
            }
            if give {
                self.release(counted);
            }
        };
        let outcome = match self.publish(
            new,
            key,
            inline,
            tail,
            (count_here, reservation),
            expected,
            keep_description,
        ) {
            Ok(outcome) => outcome,
            Err(err) => {
                give_back(true);
                return Err(err);
            }
        };
        match outcome {
            Published::Described(old) => {
                // What a corrupt pointer holds is not passed on.
                let old = if validate_description(&old).is_ok() {
                    old
                } else {
                    String::new()
                };
                let described = NewVersion {
                    description: &old,
                    ..*new
                };
                // What the write holds carries over (nothing was
                // written): only the difference is counted again.
                // The chunks went up with the first publish.
                let held = match reservation {
                    "" => Held::Counted(counted),
                    id => Held::Reservation(id),
                };
                self.finish_write(&described, inline, &[], held, expected, false)
            }
            Published::Ok { .. } | Published::Superseded => {
                if !single {
                    let old_stored = match outcome {
                        Published::Ok { old_stored } => old_stored,
                        _ => 0,
                    };
                    // A delete racing this write may have removed the
                    // entry: written again, in the same round trip.
                    let entry = self.catalog_entry(new.namespace, new.name, key);
                    self.close_change(new.version, -(old_stored as i64), &entry);
                }
                let meta = ObjectMeta {
                    namespace: new.namespace.to_owned(),
                    name: new.name.to_owned(),
                    codec: new.codec,
                    size: new.len,
                    stored_size: needed,
                    created: new.created,
                    description: new.description.to_owned(),
                };
                self.inner.tracker.forget_everywhere(&self.inner, key);
                Ok(meta)
            }
            other => {
                give_back(false);
                Err(match other {
                    Published::Full {
                        used,
                        capacity,
                        replacing,
                    } => Error::StoreFull {
                        namespace: new.namespace.into(),
                        name: new.name.into(),
                        needed,
                        used,
                        capacity,
                        location: self.location(),
                        filesystem_full: false,
                        replacing,
                        held: 0,
                        holders: String::new(),
                    },
                    Published::Locked => Error::LockLost {
                        namespace: new.namespace.into(),
                        name: new.name.into(),
                        ttl: self.inner.config.lock_ttl,
                        location: self.object_location(new.namespace, new.name),
                    },
                    Published::Conflict => {
                        self.note_conflict(new.namespace, new.name);
                        Error::io(
                        "publish",
                        self.object_location(new.namespace, new.name),
                        io::Error::other(
                            "another writer changed the name since it was read, so nothing was written: read it again and retry",
                        ),
                    )
                    }
                    Published::Missing(i) => self
                        .evicted_for_room(new.namespace, new.name, needed)
                        .unwrap_or_else(|| {
                            self.lost_error(new.namespace, new.name, i, " before it was published")
                        }),
                    Published::Ok { .. } | Published::Superseded | Published::Described(_) => {
                        unreachable!("handled above")
                    }
                })
            }
        }
    }

    /// Whether `namespace` is in the set of namespaces.
    fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        let keys = &self.inner.keys;
        self.run("read the namespaces of", |c| {
            redis::cmd("SISMEMBER")
                .arg(keys.namespaces())
                .arg(namespace)
                .query(c.like())
        })
    }

    /// The `StoreFull` of a write whose chunks the server evicted before it
    /// was published (they have an expiry until then, which `volatile-*`
    /// policies evict first): `None` when the server evicts nothing, has no
    /// memory limit or is far from it, and the chunks went some other way.
    fn evicted_for_room(&self, namespace: &str, name: &str, needed: u64) -> Option<Error> {
        lock(&self.inner.evicting_policy).as_ref()?;
        let (used, max) = self.fullest_server()?;
        // Eviction keeps a server just under its limit: one far from it
        // lost the chunks some other way (a flush, a restart).
        (used.saturating_add(needed) >= max / 10 * 9)
            .then(|| self.full(namespace, name, needed, (used, max), true))
    }

    /// The error of an object whose chunk `chunk` (`None`: its staged
    /// pointer) is gone from the server.
    fn lost_error(&self, namespace: &str, name: &str, chunk: Option<u64>, when: &str) -> Error {
        // volatile-* policies evict no published chunk: they have no expiry.
        let policy = lock(&self.inner.evicting_policy)
            .clone()
            .filter(|p| p.starts_with("allkeys-"));
        let why = match policy {
            Some(policy) => format!(
                "the server's maxmemory-policy is {policy}, which evicts keys brain needs: set it to noeviction or a volatile-* policy"
            ),
            None => "a key was removed behind brain's back (an eviction, FLUSHALL, or a server restarted without persistence)".to_owned(),
        };
        Error::corrupt(
            self.object_location(namespace, name),
            match chunk {
                Some(chunk) => {
                    format!("object lost: chunk {chunk} is gone from the server{when}; {why}")
                }
                None => {
                    format!("object lost: its staged pointer is gone from the server{when}; {why}")
                }
            },
        )
    }

    /// Reads a pointer whole (with an inline payload).
    fn read_pointer(&self, namespace: &str, name: &str, key: ObjectKey) -> Result<Option<Pointer>> {
        let pointer_key = self.inner.keys.pointer(key);
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self.run("read", |c| {
            redis::cmd("HGETALL").arg(&pointer_key).query(c.like())
        })?;
        let location = self.object_location(namespace, name);
        let pointer = Pointer::parse(fields, &location)?;
        if let Some(p) = &pointer {
            check_names(p, namespace, name, &location)?;
        }
        Ok(pointer)
    }

    /// Reads a pointer's fields but an inline payload.
    pub(crate) fn read_meta(&self, namespace: &str, name: &str) -> Result<Option<Pointer>> {
        let key = ObjectKey::new(namespace, name);
        let pointer_key = self.inner.keys.pointer(key);
        let values: Vec<Value> = self.run("read", |c| {
            redis::cmd("HMGET")
                .arg(&pointer_key)
                .arg(&META_FIELDS[..])
                .query(c.like())
        })?;
        let location = self.object_location(namespace, name);
        let pointer = Pointer::from_meta_reply(values, &location)?;
        if let Some(p) = &pointer {
            check_names(p, namespace, name, &location)?;
        }
        Ok(pointer)
    }

    /// A version's chunks in the batches a fetch pipelines (about
    /// `BATCH_BYTES` each): each batch's indices and keys.
    fn chunk_batches<'a>(
        &'a self,
        key: ObjectKey,
        pointer: &'a Pointer,
    ) -> impl Iterator<Item = (std::ops::Range<u64>, Vec<String>)> + 'a {
        let chunk_size = self.inner.config.chunk_size;
        let batch = (batch_bytes(chunk_size) / chunk_size) as u64;
        (0..pointer.chunks)
            .step_by(batch as usize)
            .map(move |start| {
                let indices = start..(start + batch).min(pointer.chunks);
                let keys = indices
                    .clone()
                    .map(|i| self.inner.keys.chunk(key, &pointer.version, i))
                    .collect();
                (indices, keys)
            })
    }

    /// Asks for a chunked version's first batch of chunks on a bulk
    /// connection, before the place its bytes go is ready: the server
    /// prepares its reply meanwhile. `None` without bulk connections (or
    /// chunks).
    ///
    /// # Errors
    /// When no connection can be made.
    pub(crate) fn ask_first_batch(
        &self,
        key: ObjectKey,
        pointer: &Pointer,
    ) -> std::result::Result<Option<Asked>, FetchError> {
        let Some((batch, keys)) = self.chunk_batches(key, pointer).next() else {
            return Ok(None);
        };
        let Some(taken) = self.inner.bulk.take() else {
            return Ok(None);
        };
        let (mut conn, idle) = taken.map_err(|e| FetchError::Other(self.err("read", &e)))?;
        let lease = Lease::new(&self.inner, key, pointer);
        let (before, after) = lease.around(&batch, pointer.chunks);
        let sent = conn.send_gets(&before, &keys, &after);
        Ok(Some(Asked {
            conn,
            idle,
            sent,
            version: pointer.version.clone(),
            lease,
        }))
    }

    /// Fetches a chunked version's payload into `sink`, checking its
    /// length and checksum; `asked`: its first batch was asked for already
    /// ([`RedisStore::ask_first_batch`] for this pointer).
    pub(crate) fn fetch_into(
        &self,
        key: ObjectKey,
        pointer: &Pointer,
        sink: &mut dyn Sink,
        asked: Option<Asked>,
    ) -> std::result::Result<(), FetchError> {
        if let Some(asked) = asked {
            debug_assert_eq!(asked.version, pointer.version, "asked for another version");
            let first = Some((asked.sent, asked.lease));
            return self.fetch_bulk(asked.conn, asked.idle, first, key, pointer, sink);
        }
        if let Some(taken) = self.inner.bulk.take() {
            let (conn, idle) = taken.map_err(|e| FetchError::Other(self.err("read", &e)))?;
            return self.fetch_bulk(conn, idle, None, key, pointer, sink);
        }
        let lease = Lease::new(&self.inner, key, pointer);
        let mut check = FetchCheck::for_fetch(pointer, sink);
        let mut done = 0u64;
        for (batch, keys) in self.chunk_batches(key, pointer) {
            let (before, after) = lease.around(&batch, pointer.chunks);
            let gets: Vec<redis::Cmd> = keys
                .into_iter()
                .map(|chunk| {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(chunk);
                    cmd
                })
                .collect();
            let with_lease: Vec<redis::Cmd> =
                before.iter().chain(&gets).chain(&after).cloned().collect();
            let gets_at = before.len()..before.len() + gets.len();
            // Through the pool's `run`: a connection closed while idle, or a
            // slot moved meanwhile, and the batch is asked for again (the
            // lease's commands may run twice: they change nothing then).
            // A pipeline whose only failures are the lease's (rights, a
            // full server, a slot on its way) is sent again without it.
            let (values, skip): (Vec<Value>, usize) = self
                .inner
                .pool
                .run(|c| match c.pipeline::<Vec<Value>>(with_lease.clone()) {
                    Ok(values) => Ok((values, before.len())),
                    Err(err) => {
                        let failures = err.clone().into_server_errors();
                        let lease_only = failures.as_ref().is_some_and(|failures| {
                            !failures.is_empty()
                                && failures.iter().all(|(i, _)| !gets_at.contains(i))
                        });
                        if !lease_only {
                            return Err(err);
                        }
                        for (_, failure) in failures.iter().flat_map(|f| f.iter()) {
                            lease.refused(&self.inner, failure.code());
                        }
                        c.pipeline::<Vec<Value>>(gets.clone())
                            .map(|values| (values, 0))
                    }
                })
                .map_err(|e| FetchError::Other(self.err("read", &e)))?;
            for (i, value) in batch.zip(values.into_iter().skip(skip)) {
                let Some(bytes) = bytes_of(value) else {
                    return Err(FetchError::Missing(i));
                };
                check.update(&bytes);
                done += bytes.len() as u64;
                if done > pointer.len {
                    return Err(too_long(pointer));
                }
                sink.write(&bytes)?;
            }
        }
        check.finish(done, pointer, sink)
    }

    /// [`RedisStore::fetch_into`] on a bulk connection: each chunk's bytes
    /// are read from the socket straight into `sink`, and hashed there.
    /// `idle`: `conn` waited in the pool, and may have been closed by the
    /// server meanwhile (a restart, its `timeout`): then a closed connection
    /// found before the first reply is replaced once (not a timeout: a
    /// server that stalls is not asked twice). `first_sent`: the first
    /// batch was sent on `conn` already, with this outcome and lease.
    fn fetch_bulk(
        &self,
        mut conn: BulkConn,
        idle: bool,
        first_sent: Option<(redis::RedisResult<()>, Lease)>,
        key: ObjectKey,
        pointer: &Pointer,
        sink: &mut dyn Sink,
    ) -> std::result::Result<(), FetchError> {
        let other = |e: redis::RedisError| FetchError::Other(self.err("read", &e));
        let (mut first_sent, lease) = match first_sent {
            Some((sent, lease)) => (Some(sent), lease),
            None => (None, Lease::new(&self.inner, key, pointer)),
        };
        // The replies of the lease's commands: one refused is only a fetch
        // without its lease.
        let lease_replies = |conn: &mut BulkConn, commands: &[redis::Cmd]| {
            for _ in commands {
                if let Err(code) = conn.next_integer()? {
                    lease.refused(&self.inner, &code);
                }
            }
            Ok(())
        };
        // The replies of the lease's commands, then the first chunk's.
        let first_reply = |conn: &mut BulkConn, before: &[redis::Cmd]| {
            lease_replies(conn, before)?;
            conn.next_reply()
        };
        let mut check = FetchCheck::for_fetch(pointer, sink);
        let mut done = 0u64;
        for (batch, keys) in self.chunk_batches(key, pointer) {
            let (before, after) = lease.around(&batch, pointer.chunks);
            let mut first = match (batch.start, first_sent.take()) {
                (0, Some(sent)) => sent.and_then(|()| first_reply(&mut conn, &before)),
                _ => conn
                    .send_gets(&before, &keys, &after)
                    .and_then(|()| first_reply(&mut conn, &before)),
            };
            let closed = |e: &redis::RedisError| e.is_io_error() && !e.is_timeout();
            if batch.start == 0 && idle && first.as_ref().is_err_and(closed) {
                conn = self.inner.bulk.connect().map_err(other)?;
                first = conn
                    .send_gets(&before, &keys, &after)
                    .and_then(|()| first_reply(&mut conn, &before));
            }
            let mut first = Some(first);
            // On any early return the connection, with replies unread, is dropped.
            for i in batch {
                let reply = match first.take() {
                    Some(reply) => reply,
                    None => conn.next_reply(),
                };
                let Some(len) = reply.map_err(other)? else {
                    return Err(FetchError::Missing(i));
                };
                if len > pointer.len - done {
                    return Err(too_long(pointer));
                }
                if len == 0 {
                    conn.read_bulk(&mut [], true).map_err(other)?;
                    continue;
                }
                let mut left = len;
                sink.write_with(len, &mut |dst: &mut [u8]| {
                    left -= dst.len() as u64;
                    conn.read_bulk(dst, left == 0)
                        .map_err(|e| self.err("read", &e))?;
                    check.update(dst);
                    Ok(())
                })?;
                done += len;
            }
            lease_replies(&mut conn, &after).map_err(other)?;
        }
        self.inner.bulk.give(conn);
        check.finish(done, pointer, sink)
    }

    /// The payload of a version read from the server (inline, or fetched
    /// into the host cache or a private buffer).
    fn load(&self, key: ObjectKey, pointer: &Pointer) -> std::result::Result<Buffer, FetchError> {
        if let Some(data) = &pointer.data {
            if data.len() as u64 != pointer.len || checksum(&[data]) != pointer.checksum {
                return Err(FetchError::Mismatch(
                    "its inline payload does not match its length and checksum".into(),
                ));
            }
            return Ok(aligned(&[data]));
        }
        if pointer.chunks == 0 {
            return Err(FetchError::Mismatch(
                "it has neither chunks nor an inline payload".into(),
            ));
        }
        if let Some(cache) = &self.inner.cache {
            if let Some(buffer) = cache.fetch(self, key, pointer)? {
                return Ok(buffer);
            }
        }
        let mut sink = crate::cache::MemorySink::with_capacity(pointer.len as usize);
        self.fetch_into(key, pointer, &mut sink, None)?;
        Ok(sink.finish())
    }

    /// Reads `name`, through the tracked binding, the host cache, or the server.
    fn read(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        let strict = self.inner.consistency == Consistency::Strict;
        Ok(self.read_at(namespace, name, strict)?.map(|(view, _)| view))
    }

    /// Reads `name` with the server's word on its version (one round trip,
    /// whatever the store's consistency): the view and the version it is of,
    /// for a compare-and-set ([`RedisStore::expect_version`]) against it.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    pub fn get_versioned(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(ObjectView, String)>> {
        validate_object(namespace, name)?;
        self.read_at(namespace, name, true)
    }

    /// Reads `name` and the version it holds, through the tracked binding
    /// (unless `strict`), the host cache, or the server.
    fn read_at(
        &self,
        namespace: &str,
        name: &str,
        strict: bool,
    ) -> Result<Option<(ObjectView, String)>> {
        let key = ObjectKey::new(namespace, name);
        let cached = self.inner.cache.is_some();
        if cached && !strict {
            if let Some(bound) = self.inner.tracker.bound(&self.inner, key) {
                return Ok(Some(bound));
            }
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let epoch = if cached {
                self.inner.tracker.epoch(&self.inner)
            } else {
                None
            };
            let Some(pointer) = self.read_pointer(namespace, name, key)? else {
                self.inner.tracker.forget(&self.inner, key);
                if let Some(cache) = &self.inner.cache {
                    cache.drop_copy(namespace, name);
                }
                return Ok(None);
            };
            if cached {
                if let Some(view) =
                    self.inner
                        .tracker
                        .bound_version(&self.inner, key, &pointer.version, epoch)
                {
                    return Ok(Some((view, pointer.version)));
                }
            }
            match self.load(key, &pointer) {
                Ok(buffer) => {
                    let view = ObjectView::new(pointer.meta.clone(), buffer);
                    if cached {
                        self.inner.tracker.bind(
                            &self.inner,
                            key,
                            Binding {
                                version: pointer.version.clone(),
                                view: view.clone(),
                            },
                            epoch,
                        );
                    }
                    return Ok(Some((view, pointer.version)));
                }
                Err(FetchError::Other(err)) => return Err(err),
                Err(FetchError::Missing(i)) => {
                    // Replaced (or deleted) while we read? Then read again.
                    let now = self.read_meta(namespace, name)?;
                    match now {
                        Some(p) if p.version != pointer.version && tries < READ_TRIES => continue,
                        None => return Ok(None),
                        Some(p) if p.version != pointer.version => {
                            return Err(Error::io(
                                "read",
                                self.object_location(namespace, name),
                                io::Error::new(
                                    io::ErrorKind::Interrupted,
                                    format!("it was replaced {READ_TRIES} times while being read; try again"),
                                ),
                            ))
                        }
                        Some(_) => return Err(self.lost_error(namespace, name, Some(i), "")),
                    }
                }
                Err(FetchError::Mismatch(reason)) => {
                    let now = self.read_meta(namespace, name)?;
                    if now.as_ref().is_some_and(|p| p.version != pointer.version)
                        && tries < READ_TRIES
                    {
                        continue;
                    }
                    return Err(Error::corrupt(
                        self.object_location(namespace, name),
                        reason,
                    ));
                }
            }
        }
    }

    /// Deletes a name; returns the stored size it had, or `None`.
    fn remove(&self, namespace: &str, name: &str) -> Result<Option<u64>> {
        let key = ObjectKey::new(namespace, name);
        let keys = &self.inner.keys;
        // The call's token: a run again answers what the first run did. On
        // a cluster, also the id of the change it opens (`CountChange`).
        let call = new_version();
        let single = self.single();
        // A change that cannot be opened (the server of the count out of
        // memory, or away) does not stop the delete, which is how a user
        // makes room: its bytes then stay counted (high until `fsck`, never
        // low, as a recount could miss their release).
        let opened = !single
            && self
                .change_count(namespace, name, &call, 0, CountChange::Open)
                .is_ok();
        let token = self.inner.held.token(namespace, name);
        let mut invocation = scripts::delete().prepare_invoke();
        invocation
            .key(keys.pointer(key))
            .key(keys.lock(key))
            .key(keys.deleted(key));
        if single {
            invocation
                .key(keys.used())
                .key(keys.catalog(namespace))
                .key(keys.cfg());
        }
        invocation
            .arg(token.as_deref().unwrap_or(""))
            .arg(GRACE.as_millis() as u64)
            .arg(keys.chunk_prefix(key))
            .arg(name)
            .arg(self.expected(namespace, name).replace('-', "*"))
            .arg(&call)
            .arg(keys.readers_prefix(key))
            .arg(namespace);
        let reply = self.run("delete an object in", |c| {
            invocation.invoke::<Vec<Value>>(c.like())
        });
        let deleted = matches!(&reply, Ok(r) if r.first().map(word).as_deref() == Some("OK"));
        if opened && !deleted {
            // Nothing deleted, or a delete whose reply was lost: its object's
            // bytes stay counted (high until `fsck`, never low). A delete
            // closes its change with the catalog (`catalog_remove`).
            self.close_change(&call, 0, &[]);
        }
        let reply = reply?;
        self.inner.tracker.forget_everywhere(&self.inner, key);
        if let (Some(cache), Some("OK" | "NONE")) =
            (&self.inner.cache, reply.first().map(word).as_deref())
        {
            cache.drop_copy(namespace, name);
        }
        match reply.first().map(word).as_deref() {
            Some("OK") => {
                let old = reply.get(1).map_or(0, int);
                if !single {
                    // The change closes (the bytes given back) in the
                    // catalog's first round trip.
                    let given_back = if opened { -(old as i64) } else { 0 };
                    self.catalog_remove(namespace, name, key, (call.as_str(), given_back))?;
                }
                Ok(Some(old))
            }
            Some("NONE") => Ok(None),
            // A collision must not delete another object.
            Some("COLLISION") => {
                let text = |i: usize| {
                    String::from_utf8_lossy(
                        &reply.get(i).cloned().and_then(bytes_of).unwrap_or_default(),
                    )
                    .into_owned()
                };
                Err(Error::KeyCollision {
                    location: self.object_location(namespace, name),
                    namespace: namespace.into(),
                    name: name.into(),
                    found_namespace: text(1),
                    found_name: text(2),
                })
            }
            Some("CONFLICT") => {
                self.note_conflict(namespace, name);
                Err(Error::io(
                    "delete",
                    self.object_location(namespace, name),
                    io::Error::other("another writer changed the name since it was read, so nothing was deleted: read it again and retry"),
                ))
            }
            Some("LOCKED") => Err(Error::LockLost {
                namespace: namespace.into(),
                name: name.into(),
                ttl: self.inner.config.lock_ttl,
                location: self.object_location(namespace, name),
            }),
            other => Err(Error::io(
                "delete an object in",
                self.location(),
                io::Error::other(format!("the delete script answered {other:?}")),
            )),
        }
    }

    /// A cluster's catalog entry goes after its pointer; if a writer
    /// published again meanwhile, the entry is put back.
    fn catalog_remove(
        &self,
        namespace: &str,
        name: &str,
        key: ObjectKey,
        (change, delta): (&str, i64),
    ) -> Result<()> {
        let keys = &self.inner.keys;
        let mut remove = redis::cmd("HDEL");
        remove.arg(keys.catalog(namespace)).arg(name);
        // The delete's change closes in the same round trip; if either
        // failed, the entry is removed again (a change not closed lapses,
        // the count high until `fsck`, never low).
        let removed = self
            .change_count_with(
                "",
                "",
                change,
                delta,
                CountChange::Done,
                &new_version(),
                &[remove.clone()],
            )
            .is_ok();
        let exists: bool = self.run("write the catalog of", |c| {
            if !removed {
                remove.exec(c.like())?;
            }
            redis::cmd("EXISTS").arg(keys.pointer(key)).query(c.like())
        })?;
        if exists {
            self.catalog_add(namespace, name, key)?;
        }
        Ok(())
    }

    /// The catalog of a namespace: name and key of every entry.
    pub(crate) fn catalog_entries(&self, namespace: &str) -> Result<Vec<(String, ObjectKey)>> {
        let keys = &self.inner.keys;
        let entries: Vec<(Vec<u8>, String)> = self.run("list", |c| {
            redis::cmd("HGETALL")
                .arg(keys.catalog(namespace))
                .query(c.like())
        })?;
        Ok(entries
            .into_iter()
            .filter_map(|(name, hex)| {
                Some((String::from_utf8(name).ok()?, ObjectKey::from_hex(&hex)?))
            })
            .collect())
    }

    /// The pointers of these keys (metadata only), in one pipeline on a
    /// single server, routed by slot on a cluster.
    pub(crate) fn pointers(&self, keys: &[ObjectKey]) -> Result<Vec<Option<Pointer>>> {
        let names = &self.inner.keys;
        let mut out = Vec::with_capacity(keys.len());
        for batch in keys.chunks(512) {
            let replies: Vec<Vec<Value>> = if self.single() {
                self.run("list", |c| {
                    let mut pipe = redis::pipe();
                    for key in batch {
                        pipe.cmd("HMGET")
                            .arg(names.pointer(*key))
                            .arg(&META_FIELDS[..]);
                    }
                    pipe.query(c.like())
                })?
            } else {
                let mut replies = Vec::with_capacity(batch.len());
                for key in batch {
                    replies.push(self.run("list", |c| {
                        redis::cmd("HMGET")
                            .arg(names.pointer(*key))
                            .arg(&META_FIELDS[..])
                            .query(c.like())
                    })?);
                }
                replies
            };
            for (key, reply) in batch.iter().zip(replies) {
                out.push(Pointer::from_meta_reply(
                    reply,
                    &self.location().join(key.to_hex()),
                )?);
            }
        }
        Ok(out)
    }

    /// Scans every primary for keys matching `pattern`.
    pub(crate) fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let found = self
            .on_primaries(|conn| keys_matching::<Vec<u8>>(conn, pattern))
            .map_err(|e| self.err("scan", &e))?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Writes `payload` under `name` only if the name's current version is
    /// `expected` (`None`: only if the name does not exist). Returns the
    /// metadata, or `Ok(None)` when another writer got there first.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    pub fn put_if_version(
        &self,
        namespace: &str,
        name: &str,
        payload: &Payload<'_>,
        expected: Option<&str>,
    ) -> Result<Option<ObjectMeta>> {
        let expected = expected.unwrap_or("-");
        match self.put_expecting(namespace, name, payload, expected, false) {
            Ok(meta) => Ok(Some(meta)),
            Err(Error::Io {
                op: "publish",
                source,
                ..
            }) if source.to_string().starts_with("another writer") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Until the returned guard is dropped, this thread's writes and
    /// deletes of `name` are published only if it still holds `version`
    /// (`None`: only if it does not exist); a write refused for that reason
    /// fails, and the guard says so ([`ExpectVersion::conflicted`]). For
    /// an optimistic update through code that writes with the ordinary calls.
    pub fn expect_version(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> ExpectVersion {
        let key = (
            namespace.to_owned(),
            name.to_owned(),
            std::thread::current().id(),
        );
        let expectation = Arc::new(Expectation {
            version: version.map(str::to_owned),
            conflicted: AtomicBool::new(false),
        });
        lock(&self.inner.expectations).insert(key.clone(), expectation.clone());
        ExpectVersion {
            store: Arc::downgrade(&self.inner),
            key,
            expectation,
        }
    }

    /// What this thread's next write of the name must find: `*` for anything.
    fn expected(&self, namespace: &str, name: &str) -> String {
        let key = (
            namespace.to_owned(),
            name.to_owned(),
            std::thread::current().id(),
        );
        match lock(&self.inner.expectations).get(&key) {
            Some(e) => e.version.clone().unwrap_or_else(|| "-".to_owned()),
            None => "*".to_owned(),
        }
    }

    fn note_conflict(&self, namespace: &str, name: &str) {
        let key = (
            namespace.to_owned(),
            name.to_owned(),
            std::thread::current().id(),
        );
        if let Some(e) = lock(&self.inner.expectations).get(&key) {
            e.conflicted.store(true, Ordering::SeqCst);
        }
    }

    /// The version `name` holds now, or `None`.
    ///
    /// # Errors
    /// I/O with the server; [`Error::KeyCollision`].
    pub fn version(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        validate_object(namespace, name)?;
        Ok(self.read_meta(namespace, name)?.map(|p| p.version))
    }

    /// Writes `payload`, finding `expected` (see [`Self::expected`]); with
    /// `keep_description`, a small payload keeps the old description as
    /// [`ObjectStore::put_shared_keeping_description`] says, inside the
    /// publish script.
    fn put_expecting(
        &self,
        namespace: &str,
        name: &str,
        payload: &Payload<'_>,
        expected: &str,
        keep_description: bool,
    ) -> Result<ObjectMeta> {
        validate_object(namespace, name)?;
        validate_description(payload.description)?;
        let len = payload.len();
        if len <= INLINE_MAX {
            let version = new_version();
            let new = NewVersion {
                namespace,
                name,
                version: &version,
                codec: payload.codec,
                description: payload.description,
                len: len as u64,
                chunks: 0,
                chunk_size: 0,
                checksum: checksum(payload.parts()),
                created: SystemTime::now(),
            };
            return self.finish_write(
                &new,
                Some(payload.parts()),
                &[],
                Held::Counted(0),
                expected,
                keep_description && payload.description.is_empty(),
            );
        }
        let mut writer = RedisWriter::start(
            self.clone(),
            namespace,
            name,
            payload.codec,
            payload.description,
            Some(len as u64),
            expected.to_owned(),
        )?;
        for part in payload.parts() {
            writer.write_payload(part)?;
        }
        Box::new(writer).commit()
    }
    /// Writes the concatenation of `segments`; with `keep_description`, an
    /// empty description keeps the old object's.
    fn put_segments(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
        keep_description: bool,
    ) -> Result<ObjectMeta> {
        let len: usize = segments.iter().map(SharedBytes::len).sum();
        if len > INLINE_MAX {
            let mut writer = RedisWriter::start(
                self.clone(),
                namespace,
                name,
                codec,
                description,
                Some(len as u64),
                self.expected(namespace, name),
            )?;
            // The publish script finds the description to keep, as for an
            // inline write (a second publish only when there is one).
            writer.keep_description = keep_description && description.is_empty();
            for segment in segments {
                writer.write_shared(*segment)?;
            }
            return Box::new(writer).commit();
        }
        // A small payload goes up inline in one script: one round trip, with
        // the capacity reserved and the old description found inside it.
        let mut bytes = vec![0u8; len];
        let mut at = 0;
        for segment in segments {
            segment.copy_to(&mut bytes[at..at + segment.len()]);
            at += segment.len();
        }
        let payload = Payload::bytes(&bytes)
            .with_codec(codec)
            .with_description(description);
        let expected = self.expected(namespace, name);
        self.put_expecting(namespace, name, &payload, &expected, keep_description)
    }
}

fn check_names(pointer: &Pointer, namespace: &str, name: &str, location: &Location) -> Result<()> {
    if pointer.meta.namespace != namespace || pointer.meta.name != name {
        return Err(Error::KeyCollision {
            location: location.clone(),
            namespace: namespace.into(),
            name: name.into(),
            found_namespace: pointer.meta.namespace.clone(),
            found_name: pointer.meta.name.clone(),
        });
    }
    Ok(())
}

/// A streamed write: the payload goes up in chunks under a fresh version,
/// each with a pending expiry, and is published by the commit.
pub(crate) struct RedisWriter {
    store: RedisStore,
    namespace: String,
    name: String,
    codec: Codec,
    description: String,
    key: ObjectKey,
    version: String,
    expected: String,
    buffer: Vec<u8>,
    chunks: u64,
    len: u64,
    hasher: Xxh3Stream,
    reserved: u64,
    last_refresh: Instant,
    /// The publish keeps the old object's description (the new one is empty).
    keep_description: bool,
    /// The capacity is reserved by the publish script (see `reserve_for`).
    reserve_at_publish: bool,
    /// A batch of chunks failed part-way: the bytes sent are not known, so
    /// the writer refuses more writes and its commit.
    broken: bool,
}

impl fmt::Debug for RedisWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWriter")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("written", &self.len)
            .finish_non_exhaustive()
    }
}

impl RedisWriter {
    fn start(
        store: RedisStore,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
        expected: String,
    ) -> Result<RedisWriter> {
        validate_object(namespace, name)?;
        validate_description(description)?;
        let chunk_size = store.inner.config.chunk_size;
        let batch = batch_bytes(chunk_size);
        let mut writer = RedisWriter {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            codec,
            description: description.to_owned(),
            key: ObjectKey::new(namespace, name),
            version: new_version(),
            expected,
            buffer: Vec::with_capacity(expected_len.map_or(64 * 1024, |l| (l as usize).min(batch))),
            chunks: 0,
            len: 0,
            hasher: Xxh3Stream::new(),
            reserved: 0,
            last_refresh: Instant::now(),
            keep_description: false,
            reserve_at_publish: store.single() && expected_len.is_some(),
            broken: false,
            store,
        };
        if let Some(len) = expected_len {
            writer.reserve_for(len)?;
        }
        Ok(writer)
    }

    fn reserve_for(&mut self, len: u64) -> Result<()> {
        let needed = stored_size(&self.namespace, &self.name, &self.description, len);
        if needed <= self.reserved {
            return Ok(());
        }
        // On a single server, a write said to be of up to 8 MiB (whatever
        // the chunk size) reserves inside its publish script: a round trip
        // fewer. Its chunks go up before the capacity is checked; a write
        // refused then deletes them (`Drop`). A write of unknown length
        // reserves as it goes, so one past the capacity stops at once.
        if self.reserve_at_publish && self.reserved == 0 && needed <= BATCH_BYTES {
            return Ok(());
        }
        // A chunk's worth ahead: a round trip (and a mark, scripts.rs) a
        // chunk, not one per call of `write_payload`. What is over is given
        // back when the object is published; near the capacity, only what
        // is needed is asked for.
        // The reservation is the writer's, under its version, with a lease:
        // if the process dies, it is given back when the lease lapses.
        let chunk = self.store.inner.config.chunk_size as u64;
        let ahead = needed.max(self.reserved + chunk);
        let (namespace, name, id) = (&self.namespace, &self.name, &self.version);
        match self.store.hold(namespace, name, id, ahead) {
            Ok(()) => self.reserved = ahead,
            Err(Error::StoreFull { .. }) if ahead > needed => {
                self.store.hold(namespace, name, id, needed)?;
                self.reserved = needed;
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    fn chunk_key(&self, index: u64) -> String {
        self.store.inner.keys.chunk(self.key, &self.version, index)
    }

    /// The buffer's chunks, keys and bytes, numbered from `first`.
    fn buffered_chunks(&self, first: u64) -> Vec<(String, &[u8])> {
        self.buffer
            .chunks(self.store.inner.config.chunk_size)
            .zip(first..)
            .map(|(piece, index)| (self.chunk_key(index), piece))
            .collect()
    }

    /// Sends the buffer, a full batch, in one pipeline: a round trip a
    /// batch (`BATCH_BYTES`), not a chunk.
    fn flush_chunks(&mut self) -> Result<()> {
        let pieces = self.buffered_chunks(self.chunks);
        let needed = stored_size(&self.namespace, &self.name, &self.description, self.len)
            .max(self.reserved);
        let object = (self.namespace.as_str(), self.name.as_str(), needed);
        let commands: Vec<[&[u8]; 6]> = pieces
            .iter()
            .map(|(key, piece)| set_pending(key, piece))
            .collect();
        let commands: Vec<&[&[u8]]> = commands.iter().map(|args| &args[..]).collect();
        let sent_all = self.store.run_write("write a chunk to", object, |c| {
            c.pipeline_raw::<()>(&commands, &[])
        });
        // Counted even when some failed: the others are on the server, and
        // a writer dropped unpublished deletes what it counts.
        self.chunks += pieces.len() as u64;
        self.broken = sent_all.is_err();
        sent_all.map_err(|err| self.refused_for_room(err))?;
        // The buffer keeps its allocation for the next batch.
        self.buffer.clear();
        if self.last_refresh.elapsed() > PENDING_TTL / 3 {
            // A long write keeps its earlier chunks from expiring, and its
            // reservation's lease from lapsing.
            if self.reserved > 0 {
                let (namespace, name) = (&self.namespace, &self.name);
                self.store
                    .hold(namespace, name, &self.version, self.reserved)?;
            }
            let ttl = PENDING_TTL.as_millis() as u64;
            let keys: Vec<String> = (0..self.chunks).map(|i| self.chunk_key(i)).collect();
            self.store.run("write a chunk to", |c| {
                for key in &keys {
                    redis::cmd("PEXPIRE").arg(key).arg(ttl).exec(c.like())?;
                }
                Ok(())
            })?;
            self.last_refresh = Instant::now();
        }
        Ok(())
    }

    /// Appends `len` bytes to the payload: `push(range, buffer)` appends
    /// that range of them to the buffer of chunks, which holds a batch of
    /// whole chunks before they go up.
    fn append(
        &mut self,
        len: usize,
        mut push: impl FnMut(std::ops::Range<usize>, &mut Vec<u8>),
    ) -> Result<()> {
        self.usable()?;
        self.reserve_for(self.len + len as u64)?;
        self.len += len as u64;
        let batch = batch_bytes(self.store.inner.config.chunk_size);
        let mut at = 0;
        while at < len {
            // A full batch goes up when more bytes come: the last one goes
            // with the publish (`commit`).
            if self.buffer.len() >= batch {
                self.flush_chunks()?;
            }
            let take = (len - at).min(batch - self.buffer.len());
            let start = self.buffer.len();
            push(at..at + take, &mut self.buffer);
            self.hasher.update(&self.buffer[start..]);
            at += take;
        }
        Ok(())
    }

    /// Refuses a write or commit after a batch failed part-way.
    fn usable(&self) -> Result<()> {
        if !self.broken {
            return Ok(());
        }
        Err(Error::io(
            "write an object in",
            self.store.object_location(&self.namespace, &self.name),
            io::Error::other(
                "an earlier write into this object failed part-way, so its bytes are not whole: nothing was published; drop the writer and write the object again",
            ),
        ))
    }
}

impl WriteObject for RedisWriter {
    fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        self.append(bytes.len(), |range, buffer| {
            buffer.extend_from_slice(&bytes[range]);
        })
    }

    /// Copies straight into the buffer of chunks (the default stages each
    /// piece in a buffer of its own first); what is hashed is what the
    /// buffer holds: the bytes sent, whatever another thread writes
    /// meanwhile.
    fn write_shared(&mut self, bytes: SharedBytes<'_>) -> Result<()> {
        self.append(bytes.len(), |range, buffer| {
            let start = buffer.len();
            buffer.resize(start + range.len(), 0);
            bytes
                .slice(range.start, range.end)
                .copy_to(&mut buffer[start..]);
        })
    }

    fn payload_len(&self) -> u64 {
        self.len
    }

    fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        self.usable()?;
        let inline = self.chunks == 0 && self.buffer.len() <= INLINE_MAX;
        // The buffer holds less than a batch: its chunks go up with the
        // publish, in one pipeline. Counted first: a writer dropped
        // unpublished deletes what it counts.
        let chunk_size = self.store.inner.config.chunk_size;
        let first_of_tail = self.chunks;
        if !inline {
            self.chunks += self.buffer.len().div_ceil(chunk_size) as u64;
        }
        let held = match std::mem::take(&mut self.reserved) {
            0 => Held::Counted(0),
            _ => Held::Reservation(&self.version),
        };
        let store = self.store.clone();
        let new = NewVersion {
            namespace: &self.namespace,
            name: &self.name,
            version: &self.version,
            codec: self.codec,
            description: &self.description,
            len: self.len,
            chunks: self.chunks,
            chunk_size: if inline {
                0
            } else {
                store.inner.config.chunk_size as u64
            },
            checksum: self.hasher.digest(),
            created: SystemTime::now(),
        };
        let data = [self.buffer.as_slice()];
        let tail = match inline {
            true => Vec::new(),
            false => self.buffered_chunks(first_of_tail),
        };
        let result = store.finish_write(
            &new,
            inline.then_some(&data[..]),
            &tail,
            held,
            &self.expected,
            self.keep_description,
        );
        let may_be_published = match &result {
            Ok(_) => true,
            // A publish whose answer was lost may have run: its chunks are
            // then the name's. Unless the pointer says another version (or
            // none) is current, they are left to their pending expiry
            // instead of deleted.
            Err(_) if self.chunks > 0 => match store.read_meta(&self.namespace, &self.name) {
                Ok(Some(pointer)) => pointer.version == self.version,
                Ok(None) => false,
                Err(_) => true,
            },
            Err(_) => false,
        };
        if may_be_published {
            self.chunks = 0;
        }
        result.map_err(|err| self.refused_for_room(err))
    }
}

impl RedisWriter {
    /// Deletes the chunks this writer stored and did not publish (they
    /// would expire anyway).
    fn discard_chunks(&mut self) {
        if self.chunks > 0 {
            let keys: Vec<String> = (0..self.chunks).map(|i| self.chunk_key(i)).collect();
            let _ = self.store.inner.pool.run(|c| {
                for key in &keys {
                    redis::cmd("DEL").arg(key).exec(c.like())?;
                }
                Ok(())
            });
            self.chunks = 0;
        }
    }

    /// `err`, and when it is a server out of memory, first deletes the
    /// chunks this write stored, then reads the server's memory again: the
    /// figure the error gives is then what the server holds without them.
    fn refused_for_room(&mut self, mut err: Error) -> Error {
        if let Error::StoreFull {
            filesystem_full: true,
            used,
            ..
        } = &mut err
        {
            self.discard_chunks();
            if let Some((now, _)) = self.store.fullest_server() {
                *used = now;
            }
        }
        err
    }
}

impl Drop for RedisWriter {
    fn drop(&mut self) {
        if std::mem::take(&mut self.reserved) > 0 {
            self.store.end_reservation(&self.version);
        }
        self.discard_chunks();
    }
}

impl ObjectStore for RedisStore {
    fn location(&self) -> Location {
        Location::Url(self.inner.url.clone())
    }

    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let expected = self.expected(namespace, name);
        self.put_expecting(namespace, name, payload, &expected, false)
    }

    fn put_shared(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        self.put_segments(namespace, name, codec, description, segments, false)
    }

    fn put_shared_keeping_description(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        self.put_segments(namespace, name, codec, description, segments, true)
    }

    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        let writer = RedisWriter::start(
            self.clone(),
            namespace,
            name,
            codec,
            description,
            expected_len,
            self.expected(namespace, name),
        )?;
        Ok(ObjectWriter::new(Box::new(writer)))
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        validate_object(namespace, name)?;
        self.read(namespace, name)
    }

    fn get_current(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        validate_object(namespace, name)?;
        Ok(self.read_at(namespace, name, true)?.map(|(view, _)| view))
    }

    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        validate_object(namespace, name)?;
        Ok(self.read_meta(namespace, name)?.map(|p| p.meta))
    }

    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        validate_object(namespace, name)?;
        let key = self.inner.keys.pointer(ObjectKey::new(namespace, name));
        self.run("read", |c| redis::cmd("EXISTS").arg(&key).query(c.like()))
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        validate_object(namespace, name)?;
        Ok(self.remove(namespace, name)?.is_some())
    }

    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        validate_namespace(namespace)?;
        let entries = self.catalog_entries(namespace)?;
        let keys: Vec<ObjectKey> = entries.iter().map(|(_, k)| *k).collect();
        let pointers = self.pointers(&keys)?;
        let mut metas: Vec<ObjectMeta> = entries
            .into_iter()
            .zip(pointers)
            .filter_map(|((name, _), p)| {
                p.filter(|p| p.meta.namespace == namespace && p.meta.name == name)
                    .map(|p| p.meta)
            })
            .collect();
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(metas)
    }

    fn namespaces(&self) -> Result<Vec<String>> {
        let keys = &self.inner.keys;
        let mut names: Vec<String> = self.run("list the namespaces of", |c| {
            redis::cmd("SMEMBERS")
                .arg(keys.namespaces())
                .query(c.like())
        })?;
        names.sort();
        Ok(names)
    }

    fn create_namespace(&self, namespace: &str) -> Result<()> {
        validate_namespace(namespace)?;
        let keys = &self.inner.keys;
        let created = self.run("create a namespace in", |c| {
            redis::cmd("SADD")
                .arg(keys.namespaces())
                .arg(namespace)
                .exec(c.like())
        });
        match created {
            // A user allowed to read only opens a namespace that exists
            // (Brain() opens its namespace by creating it).
            Err(Error::PermissionDenied { .. }) if self.namespace_exists(namespace)? => Ok(()),
            other => other,
        }
    }

    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        validate_namespace(namespace)?;
        let keys = &self.inner.keys;
        if !self.namespace_exists(namespace)? {
            return Err(Error::NamespaceNotFound {
                namespace: namespace.to_owned(),
            });
        }
        let mut removed = 0;
        for (name, _) in self.catalog_entries(namespace)? {
            if self.remove(namespace, &name)?.is_some() {
                removed += 1;
            }
        }
        self.run("remove a namespace from", |c| {
            redis::cmd("DEL")
                .arg(keys.catalog(namespace))
                .exec(c.like())?;
            redis::cmd("SREM")
                .arg(keys.namespaces())
                .arg(namespace)
                .exec(c.like())
        })?;
        Ok(removed)
    }

    fn usage(&self) -> Result<Usage> {
        let keys = &self.inner.keys;
        // One round trip: the keys share the slot `{g}`.
        let mut used = redis::cmd("GET");
        used.arg(keys.used());
        let mut capacity = redis::cmd("HGET");
        capacity.arg(keys.cfg()).arg("capacity");
        let mut held = redis::cmd("HVALS");
        held.arg(keys.held());
        let (used, capacity, held): (Option<u64>, Option<u64>, Vec<u64>) = self
            .run("read the usage of", |c| {
                c.pipeline(vec![used.clone(), capacity.clone(), held.clone()])
            })?;
        let used = used.unwrap_or(0);
        let infos = self
            .on_primaries(|conn| {
                let info: String = redis::cmd("INFO").arg("memory").query(conn)?;
                Ok(info)
            })
            .map_err(|e| self.err("read the usage of", &e))?;
        let figure = |info: &str, name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
                .unwrap_or(0)
        };
        let (mut server_used, mut server_max, mut system) = (0u64, 0u64, 0u64);
        for info in &infos {
            server_used += figure(info, "used_memory");
            server_max += figure(info, "maxmemory");
            system = system.max(figure(info, "total_system_memory"));
        }
        let limit = if server_max > 0 {
            server_max
        } else {
            system.max(server_used)
        };
        let by_server = limit.saturating_sub(server_used);
        let free = match capacity {
            Some(c) => c.saturating_sub(used).min(by_server),
            None => by_server,
        };
        let mut details = vec![
            UsageDetail {
                key: "server_used_memory",
                label: "server used",
                bytes: server_used,
            },
            // Counted in `used`: what writes in progress reserved (a write
            // that died holds it until its lease lapses, scripts.rs, `reap` in `accounting!`).
            UsageDetail {
                key: "writes_in_progress",
                label: "writing",
                bytes: held.iter().sum(),
            },
        ];
        if server_max > 0 {
            details.push(UsageDetail {
                key: "server_maxmemory",
                label: "server max",
                bytes: server_max,
            });
        }
        if let Some(cache) = &self.inner.cache {
            details.push(UsageDetail {
                key: "host_cache_used",
                label: "host cache",
                bytes: cache.used(),
            });
        }
        Ok(Usage {
            capacity,
            used,
            recycled: 0,
            free,
            details,
        })
    }

    fn watch(&self, namespace: Option<&str>) -> Result<Watcher> {
        if let Some(namespace) = namespace {
            self.create_namespace(namespace)?;
        }
        crate::tracker::watch(self, namespace)
    }

    fn wait_for(&self, namespace: &str, name: &str, timeout: Duration) -> Result<ObjectView> {
        validate_object(namespace, name)?;
        let started = Instant::now();
        let mut waited = false;
        loop {
            let epoch = self.inner.tracker.epoch(&self.inner);
            // A server restarting or out of reach for a moment is waited
            // out, as the name is; still away at the end, it is the error.
            let mut away = None;
            match self.get(namespace, name) {
                Ok(Some(view)) => return Ok(view),
                Ok(None) => {}
                Err(err) if err.is_server_away() => away = Some(err),
                Err(err) => return Err(err),
            }
            if !waited && away.is_none() {
                // A wait makes its namespace, as a watch does (and as the
                // shared-memory store, which watches its directory, must).
                match self.create_namespace(namespace) {
                    Ok(()) => waited = true,
                    Err(err) if err.is_server_away() => away = Some(err),
                    Err(err) => return Err(err),
                }
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(match away {
                    Some(Error::Io {
                        op,
                        location,
                        source,
                    }) => Error::Io {
                        op,
                        location,
                        source: io::Error::new(
                            source.kind(),
                            format!(
                                "{source} (still, when the wait for {name:?} in namespace {namespace:?} ended)"
                            ),
                        ),
                    },
                    Some(other) => other,
                    None => Error::Timeout {
                        namespace: namespace.into(),
                        name: name.into(),
                        waited: timeout,
                    },
                });
            }
            if away.is_some() {
                // Asked again at this pace until the server is back.
                std::thread::sleep(left.min(Duration::from_millis(100)));
                continue;
            }
            // Woken by any change the tracker sees; re-checked every 200 ms
            // in any case (the tracker may be reconnecting).
            self.inner.tracker.wait_change(
                &self.inner,
                epoch,
                left.min(Duration::from_millis(200)),
            );
        }
    }

    fn lock(&self, namespace: &str, name: &str, timeout: Option<Duration>) -> Result<NameLock> {
        validate_object(namespace, name)?;
        RedisLock::acquire(self, namespace, name, timeout)
    }

    fn set_capacity(&self, capacity: Option<u64>) -> Result<()> {
        let keys = &self.inner.keys;
        self.run("set the capacity of", |c| match capacity {
            Some(bytes) => redis::cmd("HSET")
                .arg(keys.cfg())
                .arg("capacity")
                .arg(bytes)
                .exec(c.like()),
            None => redis::cmd("HDEL")
                .arg(keys.cfg())
                .arg("capacity")
                .exec(c.like()),
        })
    }

    fn gc(&self) -> Result<GcReport> {
        crate::maintenance::gc(self)
    }

    fn fsck(&self, delete_corrupt: bool) -> Result<FsckReport> {
        crate::maintenance::fsck(self, delete_corrupt)
    }

    fn clear_cache(&self) {
        self.inner.tracker.clear(&self.inner);
    }
}

/// Used by maintenance: what every pointer on the servers says.
pub(crate) fn all_pointers(store: &RedisStore) -> Result<Vec<(ObjectKey, Pointer)>> {
    let pattern = format!("{}*", store.inner.keys.pointer_prefix());
    let keys: Vec<ObjectKey> = store
        .scan(&pattern)?
        .iter()
        .filter_map(|k| store.inner.keys.key_of_pointer(k))
        .collect();
    let pointers = store.pointers(&keys)?;
    Ok(keys
        .into_iter()
        .zip(pointers)
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .collect())
}

pub(crate) fn corrupt(location: Location, reason: String) -> CorruptObject {
    CorruptObject { location, reason }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedisStore>();
    let _: HashMap<(), ()> = HashMap::new();
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, ServerErrorKind};

    fn mapped(err: redis::RedisError) -> Error {
        redis_error("read", &Location::from("redis://h:1"), &err)
    }

    #[test]
    fn a_wait_rides_out_what_a_restart_looks_like_and_nothing_else() {
        let loading = mapped(
            (
                ErrorKind::Server(ServerErrorKind::BusyLoading),
                "Redis is loading the dataset in memory",
            )
                .into(),
        );
        assert!(loading.is_server_away(), "{loading}");
        assert!(
            loading.to_string().contains("try again in a moment"),
            "{loading}"
        );
        let refused = mapped(io::Error::from(io::ErrorKind::ConnectionRefused).into());
        assert!(refused.is_server_away(), "{refused}");
        let dropped = mapped(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        assert!(dropped.is_server_away(), "{dropped}");
        for lasting in [
            mapped(io::Error::from(io::ErrorKind::PermissionDenied).into()),
            mapped(io::Error::new(io::ErrorKind::InvalidData, "bad certificate").into()),
            mapped((ErrorKind::Server(ServerErrorKind::NoPerm), "NOPERM").into()),
            mapped((ErrorKind::Server(ServerErrorKind::Moved), "MOVED 1 h:2").into()),
        ] {
            assert!(!lasting.is_server_away(), "{lasting}");
        }
    }

    #[test]
    fn hints_fit_the_failure() {
        let location = Location::Url("redis://h:1".into());
        // A server that is not there: nothing about the chunks' size, which
        // a connection closed mid-write may mean.
        let refused: redis::RedisError = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        let text = redis_error("write a chunk to", &location, &refused).to_string();
        assert!(
            text.contains("is the server running") && !text.contains("proto-max-bulk-len"),
            "{text}"
        );
        let reset: redis::RedisError = io::Error::from(io::ErrorKind::ConnectionReset).into();
        let text = redis_error("write a chunk to", &location, &reset).to_string();
        assert!(text.contains("proto-max-bulk-len"), "{text}");
        // A TLS URL on a server that does not answer the handshake.
        let silent: redis::RedisError = io::Error::from(io::ErrorKind::WouldBlock).into();
        let tls = Location::Url("rediss://h:1".into());
        let text = redis_error("open", &tls, &silent).to_string();
        assert!(
            text.contains("TLS handshake") && text.contains("redis://"),
            "{text}"
        );
        let text = redis_error("open", &location, &silent).to_string();
        assert!(!text.contains("TLS"), "{text}");
    }
}
