//! [`MockStore`]: an in-memory [`ObjectStore`] with the real store's semantics.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use arrow_buffer::{Buffer, MutableBuffer};
use brain_core::format::PAYLOAD_ALIGN;
pub use brain_core::stored_size;
use brain_core::{
    validate_description, validate_name, validate_namespace, Error, ObjectMeta, ObjectStore,
    ObjectView, Payload, Result, Usage,
};

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
#[derive(Debug, Clone)]
pub struct MockStoreBuilder {
    capacity: Option<u64>,
    filesystem_size: u64,
    faults: FaultPlan,
}

impl Default for MockStoreBuilder {
    fn default() -> Self {
        MockStoreBuilder {
            capacity: None,
            filesystem_size: DEFAULT_FILESYSTEM_SIZE,
            faults: FaultPlan::new(),
        }
    }
}

impl MockStoreBuilder {
    /// The store's capacity in bytes, as accounted by [`stored_size`].
    /// Default: no limit but the simulated filesystem.
    #[must_use]
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// The size of the simulated filesystem under the store. A put that
    /// would take the usage past it fails with `StoreFull { filesystem_full:
    /// true, .. }`. Default: [`DEFAULT_FILESYSTEM_SIZE`].
    #[must_use]
    pub fn filesystem_size(mut self, bytes: u64) -> Self {
        self.filesystem_size = bytes;
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
        MockStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    namespaces: BTreeMap::new(),
                    used: 0,
                    capacity: self.capacity,
                }),
                faults: Faults::new(self.faults),
                counters: Counters::default(),
                filesystem_size: self.filesystem_size,
                path: PathBuf::from("mock://brain"),
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
    path: PathBuf,
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

    /// Sets the capacity (`None`: no limit but the simulated filesystem).
    /// Objects already stored stay even when they exceed it, as in the real store.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.state().capacity = capacity;
    }

    /// A made-up path (`mock://brain`) that errors name as the store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the store down with it; every
        // update below leaves the state consistent before it can panic.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn object_path(&self, namespace: &str, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{namespace}/{name}", self.inner.path.display()))
    }

    /// An OS error as the real store reports it: permission errors become
    /// [`Error::PermissionDenied`], the rest [`Error::Io`].
    fn io_error(&self, op: &'static str, path: PathBuf, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::PermissionDenied {
            Error::PermissionDenied { op, path }
        } else {
            Error::Io { op, path, source }
        }
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
        Error::StoreFull {
            namespace: namespace.into(),
            name: name.into(),
            needed,
            used,
            capacity,
            path: self.inner.path.clone(),
            filesystem_full: fs,
        }
    }

    /// Applies the read delay and read faults to a `get` or `metadata`.
    fn read_faults(&self, namespace: &str, name: &str) -> Result<()> {
        let (delay, fault) = self.inner.faults.on_read(namespace, name);
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        match fault {
            Some(fault) => Err(self.io_error(
                "read",
                self.object_path(namespace, name),
                fault.to_io_error(),
            )),
            None => Ok(()),
        }
    }

    fn list_faults(&self, namespace: &str) -> Result<()> {
        match self.inner.faults.on_list(namespace) {
            Some(fault) => Err(self.io_error(
                "list",
                PathBuf::from(format!("{}/{namespace}", self.inner.path.display())),
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
                    let path = PathBuf::from(format!("{}/{namespace}", self.inner.path.display()));
                    self.io_error("write an object in", path, source)
                }
            }
            PutFault::CrashBeforeSeal => Error::Io {
                op: "seal",
                path: self.object_path(namespace, name),
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

impl ObjectStore for MockStore {
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        Counters::bump(&self.inner.counters.puts);
        validate_object(namespace, name)?;
        validate_description(payload.description)?;
        let len = payload.len();
        let needed = stored_size(namespace, name, payload.description, len as u64);
        // The real store creates the namespace's directory before anything
        // else can fail, so even a refused first write leaves the namespace.
        self.state()
            .namespaces
            .entry(namespace.to_owned())
            .or_default();
        let fault = self.inner.faults.on_put(namespace, name);
        if let Some(fault @ PutFault::Full { .. }) = fault {
            return Err(self.put_fault_error(namespace, name, needed, fault));
        }
        self.reserve(namespace, name, needed)?;
        if let Some(fault) = fault {
            // An I/O error while writing, or death before the seal: the
            // reservation goes back and nothing is published.
            self.release(needed);
            return Err(self.put_fault_error(namespace, name, needed, fault));
        }
        let bytes = aligned_copy(payload.parts(), len);
        let meta = ObjectMeta {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            codec: payload.codec,
            size: len as u64,
            stored_size: needed,
            created: SystemTime::now(),
            description: payload.description.to_owned(),
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
        drop(state);
        Counters::bump(&self.inner.counters.puts_committed);
        Ok(meta)
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
        Ok(objects.len() as u64)
    }

    fn usage(&self) -> Result<Usage> {
        let state = self.state();
        let filesystem_free = if self.inner.faults.filesystem_full() {
            0
        } else {
            self.inner.filesystem_size.saturating_sub(state.used)
        };
        Ok(Usage {
            capacity: state.capacity,
            used: state.used,
            // The mock frees a replaced object at once: it recycles nothing.
            pooled: 0,
            filesystem_size: self.inner.filesystem_size,
            filesystem_free,
        })
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
        assert_eq!(usage.filesystem_free, DEFAULT_FILESYSTEM_SIZE);
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
