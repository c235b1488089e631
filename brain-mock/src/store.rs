//! [`MockStore`]: an in-memory [`ObjectStore`] with the real store's semantics.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arrow_buffer::{Buffer, MutableBuffer};
use brain_core::format::PAYLOAD_ALIGN;
pub use brain_core::stored_size;
use brain_core::{
    validate_description, validate_name, validate_namespace, Codec, Error, Location, NameLock,
    ObjectMeta, ObjectStore, ObjectView, ObjectWriter, Payload, Result, Usage, UsageDetail,
    WatchEvent, Watcher, WriteObject,
};

use crate::events::{lock_location, Locks, Subscribers};
use crate::fault::{FaultPlan, Faults, PutFault};

/// The filesystem size a mock store reports unless told otherwise: 1 TiB.
pub const DEFAULT_FILESYSTEM_SIZE: u64 = 1 << 40;

fn validate_object(namespace: &str, name: &str) -> Result<()> {
    validate_namespace(namespace)?;
    validate_name(name)
}

/// A snapshot of how many calls a [`MockStore`] has answered, failed ones
/// (and ones refused for invalid names) included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// `put` calls (the typed `put_*` calls included).
    pub puts: u64,
    /// Puts that published an object.
    pub puts_committed: u64,
    /// `get` calls (the typed `get_*` calls included).
    pub gets: u64,
    /// `metadata` calls.
    pub metadata: u64,
    /// `contains` calls.
    pub contains: u64,
    /// `delete` calls.
    pub deletes: u64,
    /// `list`, `names` and `namespaces` calls.
    pub lists: u64,
    /// `remove_namespace` calls.
    pub namespace_removals: u64,
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    puts_committed: AtomicU64,
    gets: AtomicU64,
    metadata: AtomicU64,
    contains: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    namespace_removals: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn all(&self) -> [&AtomicU64; 8] {
        [
            &self.puts,
            &self.puts_committed,
            &self.gets,
            &self.metadata,
            &self.contains,
            &self.deletes,
            &self.lists,
            &self.namespace_removals,
        ]
    }

    fn snapshot(&self) -> Counts {
        let [puts, puts_committed, gets, metadata, contains, deletes, lists, namespace_removals] =
            self.all().map(|c| c.load(Ordering::Relaxed));
        Counts {
            puts,
            puts_committed,
            gets,
            metadata,
            contains,
            deletes,
            lists,
            namespace_removals,
        }
    }

    fn reset(&self) {
        for counter in self.all() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// Options for a [`MockStore`]; finish with [`MockStoreBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct MockStoreBuilder {
    name: Option<String>,
    capacity: Option<u64>,
    filesystem_size: Option<u64>,
    faults: FaultPlan,
}

impl MockStoreBuilder {
    /// The store's name: its URL, which errors name, is `memory://NAME`.
    /// Default: `mock`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The store's capacity in bytes, as accounted by [`stored_size`].
    /// Default: no limit but the simulated filesystem.
    #[must_use]
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Simulates a filesystem of this size under the store: a put that
    /// would take the usage past it fails with `StoreFull { filesystem_full:
    /// true, .. }`, and [`ObjectStore::usage`] reports it as a real store
    /// reports its tmpfs. Default: [`DEFAULT_FILESYSTEM_SIZE`], not reported.
    #[must_use]
    pub fn filesystem_size(mut self, bytes: u64) -> Self {
        self.filesystem_size = Some(bytes);
        self
    }

    /// The faults to inject from the start (more can be added at run time
    /// through [`MockStore::faults`]).
    #[must_use]
    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = plan;
        self
    }

    /// Builds the (empty) store.
    pub fn build(self) -> MockStore {
        let name = self.name.unwrap_or_else(|| "mock".to_owned());
        MockStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    namespaces: BTreeMap::new(),
                    used: 0,
                    capacity: self.capacity,
                }),
                faults: Faults::new(self.faults),
                counters: Counters::default(),
                filesystem_size: self.filesystem_size.unwrap_or(DEFAULT_FILESYSTEM_SIZE),
                simulated_filesystem: self.filesystem_size.is_some(),
                url: format!("memory://{name}"),
                subscribers: Subscribers::default(),
                locks: Arc::new(Locks::default()),
            }),
        }
    }
}

/// An in-memory store of named objects with the same semantics as
/// [`brain_core::Store`], plus fault injection and call counters.
///
/// Cheap to clone; clones share the objects, the faults and the counters,
/// as clones of the real store (and processes opening the same path) do.
#[derive(Clone)]
pub struct MockStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    faults: Faults,
    counters: Counters,
    filesystem_size: u64,
    /// Whether the filesystem size was set, and so is reported by `usage`.
    simulated_filesystem: bool,
    url: String,
    subscribers: Subscribers,
    locks: Arc<Locks>,
}

struct State {
    /// Namespace → name → object; the maps keep both sorted.
    namespaces: BTreeMap<String, BTreeMap<String, Entry>>,
    used: u64,
    capacity: Option<u64>,
}

struct Entry {
    meta: ObjectMeta,
    payload: Buffer,
}

impl Default for MockStore {
    fn default() -> Self {
        MockStore::new()
    }
}

impl fmt::Debug for MockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MockStore")
            .field("namespaces", &state.namespaces.len())
            .field(
                "objects",
                &state.namespaces.values().map(BTreeMap::len).sum::<usize>(),
            )
            .field("used", &state.used)
            .field("capacity", &state.capacity)
            .field("faults", &self.inner.faults)
            .finish()
    }
}

impl MockStore {
    /// An empty store with no capacity limit and no faults.
    pub fn new() -> MockStore {
        MockStore::builder().build()
    }

    /// A builder for a store with options.
    pub fn builder() -> MockStoreBuilder {
        MockStoreBuilder::default()
    }

    /// An empty store with a capacity of `bytes`.
    pub fn with_capacity(bytes: u64) -> MockStore {
        MockStore::builder().capacity(bytes).build()
    }

    /// An empty store that injects the faults of `plan`.
    pub fn with_faults(plan: FaultPlan) -> MockStore {
        MockStore::builder().faults(plan).build()
    }

    /// The live fault plan: change it at any time, from any thread.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// How many calls the store has answered so far.
    pub fn counts(&self) -> Counts {
        self.inner.counters.snapshot()
    }

    /// Sets every call counter back to zero.
    pub fn reset_counts(&self) {
        self.inner.counters.reset();
    }

    /// The store's URL, `memory://NAME`, which errors name as its location.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the store down with it; every
        // update below leaves the state consistent before it can panic.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where an object is, for errors: `memory://NAME/"namespace"/"name"`.
    fn object_location(&self, namespace: &str, name: &str) -> Location {
        self.location().join(format!("{namespace:?}/{name:?}"))
    }

    fn full_error(&self, namespace: &str, name: &str, needed: u64, used: u64, fs: bool) -> Error {
        let (used, capacity) = if fs {
            (
                used.min(self.inner.filesystem_size),
                self.inner.filesystem_size,
            )
        } else {
            (used, self.state().capacity.unwrap_or(u64::MAX))
        };
        // The object replaced stays counted until the new one is in.
        let replacing = self
            .state()
            .namespaces
            .get(namespace)
            .and_then(|objects| objects.get(name))
            .map_or(0, |entry| entry.meta.stored_size);
        Error::StoreFull {
            namespace: namespace.into(),
            name: name.into(),
            needed,
            used,
            capacity,
            location: self.location(),
            filesystem_full: fs,
            replacing,
            held: 0,
            holders: String::new(),
        }
    }

    /// Applies the read delay and read faults to a `get` or `metadata`.
    fn read_faults(&self, namespace: &str, name: &str) -> Result<()> {
        let (delay, fault) = self.inner.faults.on_read(namespace, name);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        match fault {
            Some(fault) => Err(Error::io(
                "read",
                self.object_location(namespace, name),
                fault.to_io_error(),
            )),
            None => Ok(()),
        }
    }

    fn list_faults(&self, namespace: &str) -> Result<()> {
        match self.inner.faults.on_list(namespace) {
            Some(fault) => Err(Error::io(
                "list",
                self.location().join(format!("{namespace:?}")),
                fault.to_io_error(),
            )),
            None => Ok(()),
        }
    }

    fn lookup<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.state()
            .namespaces
            .get(namespace)
            .and_then(|objects| objects.get(name))
            .map(f)
    }

    fn list_metas(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        Counters::bump(&self.inner.counters.lists);
        validate_namespace(namespace)?;
        self.list_faults(namespace)?;
        Ok(self
            .state()
            .namespaces
            .get(namespace)
            .map(|objects| objects.values().map(|e| e.meta.clone()).collect())
            .unwrap_or_default())
    }

    /// Reserves `needed` bytes against the capacity and the simulated
    /// filesystem, as the real writer does before copying (so a replace
    /// needs room for the old and the new object at once).
    fn reserve(&self, namespace: &str, name: &str, needed: u64) -> Result<()> {
        let mut state = self.state();
        let next = state.used.saturating_add(needed);
        if next > state.capacity.unwrap_or(u64::MAX) {
            let used = state.used;
            drop(state);
            return Err(self.full_error(namespace, name, needed, used, false));
        }
        if next > self.inner.filesystem_size {
            let used = state.used;
            drop(state);
            return Err(self.full_error(namespace, name, needed, used, true));
        }
        state.used = next;
        Ok(())
    }

    fn release(&self, bytes: u64) {
        let mut state = self.state();
        state.used = state.used.saturating_sub(bytes);
    }

    /// The error an injected put fault produces.
    fn put_fault_error(&self, namespace: &str, name: &str, needed: u64, fault: PutFault) -> Error {
        match fault {
            PutFault::Io(io_fault) => {
                let source = io_fault.to_io_error();
                if source.kind() == io::ErrorKind::StorageFull {
                    let used = self.state().used;
                    self.full_error(namespace, name, needed, used, true)
                } else {
                    let location = self.location().join(format!("{namespace:?}"));
                    Error::io("write an object in", location, source)
                }
            }
            PutFault::CrashBeforeSeal => Error::Io {
                op: "seal",
                location: self.object_location(namespace, name),
                source: io::Error::new(
                    io::ErrorKind::Interrupted,
                    "injected by brain-mock: the writer died after writing the payload \
                     and before sealing it; nothing was published",
                ),
            },
            PutFault::Full { filesystem_full } => {
                let used = self.state().used;
                self.full_error(namespace, name, needed, used, filesystem_full)
            }
        }
    }
}

/// Copies the segments into one buffer whose start is 64-byte aligned, as
/// the real store's payloads are (Arrow and SIMD loads rely on it).
fn aligned_copy(parts: &[&[u8]], len: usize) -> Buffer {
    let mut bytes = MutableBuffer::with_capacity(len + PAYLOAD_ALIGN);
    // Arrow aligns its allocations to 64 bytes or more on the usual targets;
    // pad on the others.
    let pad = bytes.as_ptr().align_offset(PAYLOAD_ALIGN);
    bytes.extend_zeros(pad);
    for part in parts {
        bytes.extend_from_slice(part);
    }
    Buffer::from(bytes).slice(pad)
}

impl MockStore {
    /// Checks a write's names and makes its namespace, as the real store
    /// creates the namespace's directory before anything else can fail (so
    /// even a refused first write leaves the namespace).
    fn begin_write(&self, namespace: &str, name: &str, description: &str) -> Result<()> {
        Counters::bump(&self.inner.counters.puts);
        validate_object(namespace, name)?;
        validate_description(description)?;
        self.state()
            .namespaces
            .entry(namespace.to_owned())
            .or_default();
        Ok(())
    }

    /// Publishes the concatenation of `parts`, after the put faults; a
    /// `reserved` number of bytes was reserved for it already (a writer's).
    fn publish(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        parts: &[&[u8]],
        reserved: u64,
    ) -> Result<ObjectMeta> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let needed = stored_size(namespace, name, description, len as u64);
        let fault = self.inner.faults.on_put(namespace, name);
        if let Some(fault @ PutFault::Full { .. }) = fault {
            self.release(reserved);
            return Err(self.put_fault_error(namespace, name, needed, fault));
        }
        if needed > reserved {
            if let Err(err) = self.reserve(namespace, name, needed - reserved) {
                self.release(reserved);
                return Err(err);
            }
        } else {
            self.release(reserved - needed);
        }
        if let Some(fault) = fault {
            // An I/O error while writing, or death before the seal: the
            // reservation goes back and nothing is published.
            self.release(needed);
            return Err(self.put_fault_error(namespace, name, needed, fault));
        }
        let bytes = aligned_copy(parts, len);
        let meta = ObjectMeta {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            codec,
            size: len as u64,
            stored_size: needed,
            created: SystemTime::now(),
            description: description.to_owned(),
        };
        let entry = Entry {
            meta: meta.clone(),
            payload: bytes,
        };
        let mut state = self.state();
        let replaced = state
            .namespaces
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), entry);
        if let Some(old) = replaced {
            state.used = state.used.saturating_sub(old.meta.stored_size);
        }
        // Told while the state is locked, so watchers see changes in the order they happened.
        self.inner.subscribers.publish(&WatchEvent::Set {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        drop(state);
        Counters::bump(&self.inner.counters.puts_committed);
        Ok(meta)
    }
}

/// A streamed write into a [`MockStore`]: the payload gathers in memory and
/// is published (with the put faults) at commit.
struct MockWriter {
    store: MockStore,
    namespace: String,
    name: String,
    codec: Codec,
    description: String,
    payload: Vec<u8>,
    /// Bytes reserved against the capacity so far (given back if dropped).
    reserved: u64,
}

impl fmt::Debug for MockWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockWriter")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("written", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl MockWriter {
    /// Reserves room for a payload of `len` bytes, as the real writer does
    /// before its bytes land.
    fn reserve_for(&mut self, len: u64) -> Result<()> {
        let needed = stored_size(&self.namespace, &self.name, &self.description, len);
        if needed > self.reserved {
            self.store
                .reserve(&self.namespace, &self.name, needed - self.reserved)?;
            self.reserved = needed;
        }
        Ok(())
    }
}

impl WriteObject for MockWriter {
    fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        self.reserve_for((self.payload.len() + bytes.len()) as u64)?;
        self.payload.extend_from_slice(bytes);
        Ok(())
    }

    fn payload_len(&self) -> u64 {
        self.payload.len() as u64
    }

    fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        let reserved = std::mem::take(&mut self.reserved);
        let payload = std::mem::take(&mut self.payload);
        self.store.publish(
            &self.namespace,
            &self.name,
            self.codec,
            &self.description,
            &[&payload],
            reserved,
        )
    }
}

impl Drop for MockWriter {
    fn drop(&mut self) {
        self.store.release(self.reserved);
    }
}

impl ObjectStore for MockStore {
    fn location(&self) -> Location {
        Location::Url(self.inner.url.clone())
    }

    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        self.begin_write(namespace, name, payload.description)?;
        self.publish(
            namespace,
            name,
            payload.codec,
            payload.description,
            payload.parts(),
            0,
        )
    }

    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        self.begin_write(namespace, name, description)?;
        let mut writer = MockWriter {
            store: self.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            codec,
            description: description.to_owned(),
            payload: Vec::with_capacity(expected_len.unwrap_or(0).min(1 << 30) as usize),
            reserved: 0,
        };
        if let Some(len) = expected_len {
            writer.reserve_for(len)?;
        }
        Ok(ObjectWriter::new(Box::new(writer)))
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        Counters::bump(&self.inner.counters.gets);
        validate_object(namespace, name)?;
        self.read_faults(namespace, name)?;
        Ok(self.lookup(namespace, name, |entry| {
            ObjectView::new(entry.meta.clone(), entry.payload.clone())
        }))
    }

    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        Counters::bump(&self.inner.counters.metadata);
        validate_object(namespace, name)?;
        self.read_faults(namespace, name)?;
        Ok(self.lookup(namespace, name, |entry| entry.meta.clone()))
    }

    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        Counters::bump(&self.inner.counters.contains);
        validate_object(namespace, name)?;
        Ok(self.lookup(namespace, name, |_| ()).is_some())
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        Counters::bump(&self.inner.counters.deletes);
        validate_object(namespace, name)?;
        let mut state = self.state();
        // The namespace stays, empty or not, as the real store's directory does.
        let removed = state
            .namespaces
            .get_mut(namespace)
            .and_then(|objects| objects.remove(name));
        match removed {
            Some(entry) => {
                state.used = state.used.saturating_sub(entry.meta.stored_size);
                self.inner.subscribers.publish(&WatchEvent::Deleted {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        self.list_metas(namespace)
    }

    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self
            .list_metas(namespace)?
            .into_iter()
            .map(|meta| meta.name)
            .collect())
    }

    fn namespaces(&self) -> Result<Vec<String>> {
        Counters::bump(&self.inner.counters.lists);
        self.list_faults("")?;
        Ok(self.state().namespaces.keys().cloned().collect())
    }

    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        Counters::bump(&self.inner.counters.namespace_removals);
        validate_namespace(namespace)?;
        let mut state = self.state();
        let Some(objects) = state.namespaces.remove(namespace) else {
            return Err(Error::NamespaceNotFound {
                namespace: namespace.to_owned(),
            });
        };
        let freed: u64 = objects.values().map(|e| e.meta.stored_size).sum();
        state.used = state.used.saturating_sub(freed);
        for name in objects.keys() {
            self.inner.subscribers.publish(&WatchEvent::Deleted {
                namespace: namespace.to_owned(),
                name: name.clone(),
            });
        }
        Ok(objects.len() as u64)
    }

    fn create_namespace(&self, namespace: &str) -> Result<()> {
        validate_namespace(namespace)?;
        self.state()
            .namespaces
            .entry(namespace.to_owned())
            .or_default();
        Ok(())
    }

    fn usage(&self) -> Result<Usage> {
        let state = self.state();
        let filesystem_free = if self.inner.faults.filesystem_full() {
            0
        } else {
            self.inner.filesystem_size.saturating_sub(state.used)
        };
        let by_capacity = state
            .capacity
            .map_or(u64::MAX, |c| c.saturating_sub(state.used));
        let details = if self.inner.simulated_filesystem {
            vec![
                UsageDetail {
                    key: "filesystem_size",
                    label: "filesystem",
                    bytes: self.inner.filesystem_size,
                },
                UsageDetail {
                    key: "filesystem_free",
                    label: "fs free",
                    bytes: filesystem_free,
                },
            ]
        } else {
            Vec::new()
        };
        Ok(Usage {
            capacity: state.capacity,
            used: state.used,
            // A replaced object is freed at once: nothing is kept for reuse.
            recycled: 0,
            free: by_capacity.min(filesystem_free),
            details,
        })
    }

    fn watch(&self, namespace: Option<&str>) -> Result<Watcher> {
        if let Some(namespace) = namespace {
            self.create_namespace(namespace)?;
        }
        Ok(Watcher::new(Box::new(
            self.inner.subscribers.subscribe(namespace),
        )))
    }

    fn lock(&self, namespace: &str, name: &str, timeout: Option<Duration>) -> Result<NameLock> {
        validate_object(namespace, name)?;
        let started = std::time::Instant::now();
        let location = lock_location(&self.location(), namespace, name);
        match self.inner.locks.acquire(namespace, name, timeout) {
            Some(held) => Ok(NameLock::new(Box::new(held), location)),
            None => Err(Error::LockTimeout {
                namespace: namespace.into(),
                name: name.into(),
                waited: started.elapsed(),
                location,
            }),
        }
    }

    fn set_capacity(&self, capacity: Option<u64>) -> Result<()> {
        self.state().capacity = capacity;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{IoFault, When};
    use brain_core::{Codec, NameKind, MAX_NAME_LEN};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn stored_size_rounds_header_and_payload_to_pages() {
        assert_eq!(stored_size("ns", "x", "", 0), 4096);
        assert_eq!(stored_size("ns", "x", "", 4096 - 128), 4096);
        assert_eq!(stored_size("ns", "x", "", 4096 - 127), 8192);
        // 80 + 4000 + 32 strings: a 4160-byte header alone needs two pages.
        assert_eq!(stored_size(&"n".repeat(4000), &"x".repeat(32), "", 0), 8192);
    }

    #[test]
    fn payloads_are_64_byte_aligned_and_concatenated() -> TestResult {
        let store = MockStore::new();
        let parts: [&[u8]; 3] = [b"ab", b"", b"cde"];
        store.put("ns", "x", &Payload::segments(Codec::Raw, &parts))?;
        let view = store.get("ns", "x")?.ok_or("stored above")?;
        assert_eq!(&*view, b"abcde");
        assert_eq!(view.as_ptr().align_offset(64), 0);
        assert_eq!(aligned_copy(&[], 0).len(), 0);
        Ok(())
    }

    #[test]
    fn validation_matches_the_real_limits() {
        assert!(validate_object("ns", &"x".repeat(MAX_NAME_LEN)).is_ok());
        let err = validate_object("ns", &"x".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        let err = validate_object("", "x").unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    kind: NameKind::Namespace,
                    len: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(validate_description("").is_ok());
    }

    #[test]
    fn usage_tracks_puts_replaces_deletes_and_removals() -> TestResult {
        let store = MockStore::new();
        store.put("a", "x", &Payload::bytes(&[1; 5000]))?;
        assert_eq!(store.usage()?.used, 8192);
        store.put("a", "x", &Payload::bytes(b"small"))?;
        assert_eq!(store.usage()?.used, 4096);
        store.put("a", "y", &Payload::bytes(b"small"))?;
        assert!(store.delete("a", "y")?);
        assert_eq!(store.usage()?.used, 4096);
        assert_eq!(store.remove_namespace("a")?, 1);
        let usage = store.usage()?;
        assert_eq!(usage.used, 0);
        assert_eq!(usage.free, DEFAULT_FILESYSTEM_SIZE);
        assert!(usage.details.is_empty(), "no filesystem was simulated");
        Ok(())
    }

    #[test]
    fn an_injected_failure_releases_its_reservation() -> TestResult {
        let store = MockStore::with_capacity(4096);
        store
            .faults()
            .fail_puts(When::nth(1), PutFault::Io(IoFault::Errno(5)));
        let err = store.put("a", "x", &Payload::bytes(b"1")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: "write an object in",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.usage()?.used, 0);
        store.put("a", "x", &Payload::bytes(b"1"))?;
        Ok(())
    }

    #[test]
    fn permission_and_enospc_faults_map_like_the_real_store() {
        let store = MockStore::new();
        store.faults().fail_puts(
            When::nth(1),
            PutFault::Io(IoFault::Kind(io::ErrorKind::PermissionDenied)),
        );
        store
            .faults()
            .fail_puts(When::nth(2), PutFault::Io(IoFault::Errno(28)));
        let err = store.put("a", "x", &Payload::bytes(b"1")).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
        let err = store.put("a", "x", &Payload::bytes(b"1")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::StoreFull {
                    filesystem_full: true,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn counters_count_calls_and_reset() -> TestResult {
        let store = MockStore::new();
        store.put("a", "x", &Payload::bytes(b"1"))?;
        let _ = store.put("", "x", &Payload::bytes(b"1"));
        store.get("a", "x")?;
        store.metadata("a", "x")?;
        store.contains("a", "x")?;
        store.names("a")?;
        store.namespaces()?;
        store.delete("a", "x")?;
        store.remove_namespace("a")?;
        let counts = store.counts();
        assert_eq!(
            counts,
            Counts {
                puts: 2,
                puts_committed: 1,
                gets: 1,
                metadata: 1,
                contains: 1,
                deletes: 1,
                lists: 2,
                namespace_removals: 1,
            }
        );
        store.reset_counts();
        assert_eq!(store.counts(), Counts::default());
        Ok(())
    }

    #[test]
    fn debug_summarises_instead_of_dumping_payloads() -> TestResult {
        let store = MockStore::new();
        store.put("a", "x", &Payload::bytes(&[7; 100]))?;
        let debug = format!("{store:?}");
        assert!(debug.contains("objects: 1"), "{debug}");
        assert!(debug.len() < 400, "{debug}");
        Ok(())
    }
}
