//! The shared-memory backend: a directory of namespaces on a tmpfs, and
//! every operation on it.
//!
//! ```text
//! <store>/brain.ctl          capacity and usage (see format/control.rs)
//! <store>/ns/<hash>/         one directory per namespace, named by a hash of its name
//! <store>/ns/<hash>/.namespace    the namespace's name
//! <store>/ns/<hash>/<key>    one sealed file per object, named by its key
//! <store>/ns/<hash>/.tmp.*   a writer's file between link and seal (gc removes strays)
//! <store>/trash/             namespaces being removed
//! <store>/locks/<key>        per-name lock files (see lock.rs)
//! <store>/pool/<len>.<ms>.*  files of replaced objects, kept for reuse (see pool.rs)
//! ```
//!
//! Modules: `dirs` (directories and listings), `capacity` (the usage
//! counters and reservations), `reader` and `cache` (gets), `writer` and
//! `pool` (puts and recycling), `watch`, `lock`, `maintenance` (gc, fsck).

mod cache;
pub(crate) mod capacity;
mod dirs;
pub use dirs::{store_url_scheme, STORE_SCHEMES};
pub(crate) mod fill;
mod lock;
mod maintenance;
mod pool;
mod reader;
mod small;
mod sweeper;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::io::Errno;

use self::cache::MappingCache;
use self::capacity::Control;
use self::dirs::{ensure_private_dir, object_files, read_dir};
use self::pool::{DEFAULT_IDLE, POOL_DIR};
use self::reader::{read_meta_at, Read, FIRST_READ};
use self::small::SmallTable;
use self::writer::ShmWriter;
use crate::api::error::{Error, Location, Result};
use crate::api::names::{validate_description, validate_name, validate_namespace};
use crate::api::store::{
    DamagedObject, FsckReport, GcReport, NameLock, NamespaceStats, ObjectStore, ObjectWriter,
    Payload, Usage, UsageDetail, Watcher,
};
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::control::UNLIMITED;
use crate::format::{accounted, namespace_dir_name, Codec, ObjectKey};
use crate::sys::held;
use crate::sys::io::os;
use crate::sys::names::unique_tmp_name;
use crate::sys::SharedBytes;

/// Store directories: the user's alone.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Sealed objects: readable by the user only, and not writable, so an
/// accidental truncating open fails.
pub(crate) const FILE_MODE: u32 = 0o400;
/// The control file, updated in place through a shared mapping.
const CONTROL_MODE: u32 = 0o600;
/// The directory of a store's namespaces: one directory each, named by
/// the namespace's hash.
pub(crate) const NAMESPACES_DIR: &str = "ns";
/// The store's control file (capacity and usage).
pub(crate) const CONTROL_FILE: &str = "brain.ctl";
/// Where namespaces go while they are removed.
pub(crate) const TRASH_DIR: &str = "trash";
/// The directory of the table of small objects.
pub(crate) const SMALL_DIR: &str = "small";
/// The directory of per-name lock files.
pub(crate) const LOCKS_DIR: &str = "locks";

/// `statfs`'s filesystem type of a tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Objects up to this size are read into memory; larger ones are mapped.
const DEFAULT_SMALL_OBJECT_LIMIT: usize = 64 * 1024;
/// How many mappings a process keeps for repeated gets. Linux allows about
/// 65,000 mappings per process; this leaves room for everything else.
const DEFAULT_MAPPING_CACHE: usize = 4096;

/// The store used when no path is given: `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
pub fn default_store_path() -> PathBuf {
    match std::env::var_os("BRAIN_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => user_root().join("default"),
    }
}

/// The per-user directory that holds the default store: `/dev/shm/brain-<uid>`.
pub fn user_root() -> PathBuf {
    PathBuf::from(format!(
        "/dev/shm/brain-{}",
        rustix::process::getuid().as_raw()
    ))
}

/// Options for opening a [`Store`]; finish with [`StoreBuilder::open`].
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    path: Option<PathBuf>,
    capacity: Option<u64>,
    mapping_cache: usize,
    small_object_limit: usize,
    small_object_table: bool,
    recycle_limit: Option<u64>,
    recycle_idle: Duration,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            path: None,
            capacity: None,
            mapping_cache: DEFAULT_MAPPING_CACHE,
            small_object_limit: DEFAULT_SMALL_OBJECT_LIMIT,
            small_object_table: true,
            recycle_limit: None,
            recycle_idle: DEFAULT_IDLE,
        }
    }
}

impl StoreBuilder {
    /// A builder with every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store directory. Default: [`default_store_path`].
    #[must_use]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the store's capacity in bytes, like Plasma's `-m`. It is stored
    /// with the store, so it applies to every process. Default: keep the
    /// capacity the store has; a new store has no limit but its filesystem.
    #[must_use]
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Does nothing: every write stores its payload's checksum, computed by
    /// the copy itself (a few percent of a large write; see
    /// docs/BENCHMARKS.md), checked by `fsck`, dumps and verified reads.
    /// Kept so that code written when checksums were optional compiles.
    #[must_use]
    pub fn checksums(self, on: bool) -> Self {
        let _ = on;
        self
    }

    /// How many objects this process keeps for repeated gets (mappings of
    /// large objects, and copies of small ones read more than once, up to
    /// 8 MiB of them), so a repeated get costs one `stat`. 0 turns the cache
    /// off. Default: 4096.
    #[must_use]
    pub fn mapping_cache(mut self, entries: usize) -> Self {
        self.mapping_cache = entries;
        self
    }

    /// Objects up to this many bytes are read into memory on get; larger ones
    /// are mapped. Default: 64 KiB.
    #[must_use]
    pub fn small_object_limit(mut self, bytes: usize) -> Self {
        self.small_object_limit = bytes.max(FIRST_READ);
        self
    }

    /// Whether this process writes objects small enough (an entry of up to
    /// 2,000 bytes with its name, description and payload) into the
    /// store's table of small objects (see docs/ARCHITECTURE.md, "Small
    /// objects") rather than a file each. Default: on. Reads find objects
    /// of either kind whatever this says; off keeps every new object a
    /// file, for tools that read object files themselves.
    #[must_use]
    pub fn small_object_table(mut self, on: bool) -> Self {
        self.small_object_table = on;
        self
    }

    /// The most bytes of replaced objects this process keeps in the store's
    /// pool for later writes to reuse (see [`Store::recycle_limit`]); 0 turns
    /// recycling off. Default: an eighth of the filesystem's size or of the
    /// store's capacity, whichever is smaller.
    #[must_use]
    pub fn recycle_limit(mut self, bytes: u64) -> Self {
        self.recycle_limit = Some(bytes);
        self
    }

    /// How long a replaced object's file waits in the pool for a write to
    /// reuse it before it is deleted. Default: 60 seconds.
    #[must_use]
    pub fn recycle_idle(mut self, idle: Duration) -> Self {
        self.recycle_idle = idle;
        self
    }

    /// Opens the store, creating it (and, for the default path, the per-user
    /// root) when it does not exist.
    ///
    /// # Errors
    /// [`Error::UnsafePath`] when the directory is a symlink, not a directory,
    /// owned by another user or writable by others, or the path (given, or
    /// `$BRAIN_PATH`) is empty or a store URL; [`Error::PermissionDenied`]
    /// or [`Error::Io`] when it cannot be created or read; [`Error::Corrupt`]
    /// when its control file or its small-object table is damaged.
    pub fn open(self) -> Result<Store> {
        let root = self.path.clone().unwrap_or_else(default_store_path);
        // The path given, or $BRAIN_PATH's (where a URL meant for
        // $BRAIN_URL is the likely mistake).
        dirs::refuse_non_path(&root)?;
        // A relative path is the store in the directory of the moment: kept
        // absolute, so a handle reopened or sent to another process after a
        // `chdir` (a notebook's `%cd`, gunicorn's `--chdir`) finds the same
        // store, not a new empty one.
        let root = std::path::absolute(&root)
            .map_err(|e| Error::io("find the absolute path of", &root, e))?;
        if self.path.is_none() && std::env::var_os("BRAIN_PATH").is_none_or(|p| p.is_empty()) {
            ensure_private_dir(&user_root())?;
        } else if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the directory", parent, e))?;
            }
        }
        ensure_private_dir(&root)?;
        dirs::refuse_other_files(&root)?;
        for sub in [NAMESPACES_DIR, TRASH_DIR, POOL_DIR] {
            ensure_private_dir(&root.join(sub))?;
        }
        let control = Control::open_or_create(&root, CONTROL_MODE)?;
        if let Some(capacity) = self.capacity {
            control.set_capacity(capacity);
        }
        // Recycling needs `flock` to last as long as a mapping: true of
        // local filesystems, not promised by network ones. Stores live on
        // tmpfs, where it is needed; elsewhere it stays off.
        let recycling_allowed = rustix::fs::statfs(&root).is_ok_and(|st| st.f_type == TMPFS_MAGIC);
        let store = Store {
            inner: Arc::new(Inner {
                ns_root: root.join(NAMESPACES_DIR),
                trash: root.join(TRASH_DIR),
                pool: root.join(POOL_DIR),
                root,
                control,
                small_object_limit: self.small_object_limit,
                small_object_table: self.small_object_table,
                recycle_limit: self.recycle_limit,
                recycle_idle: self.recycle_idle,
                recycling_allowed,
                filesystem_size: pool::FilesystemSize::default(),
                cache: Mutex::new(MappingCache::new(self.mapping_cache)),
                warm: Mutex::new(pool::WarmFiles::default()),
                prealloc: pool::Prealloc::default(),
                small: Mutex::new(None),
                idle_sweeps: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        // The table exists from the first open on, so a reader that finds
        // none knows the store was removed.
        store.small_table()?;
        // Opening changes nothing else: a process that only reads never takes a
        // writer slot (idle pool files go at the next large write, or gc).
        Ok(store)
    }
}

/// An object found by [`Store::read_any`]: a table entry (its metadata,
/// its view when asked for, the table), or an object file.
enum Found {
    Entry(ObjectMeta, Option<ObjectView>, Arc<SmallTable>),
    File(Read),
}

/// How long a process trusts that the store's table is the one it opened
/// before it looks again (a `stat`): a store removed and made again is
/// noticed within this.
pub(crate) const TABLE_RECHECK: Duration = Duration::from_millis(50);

/// The table this process opened, and when it last made sure it is the store's.
#[derive(Debug)]
pub(crate) struct OpenTable {
    generation: u64,
    table: Arc<SmallTable>,
    identity: (u64, u64),
    checked: std::time::Instant,
}

/// A store of named objects in shared memory. Cheap to clone; every clone
/// (and every process that opens the same path) sees the same objects.
///
/// ```
/// use brain_core::ObjectStore; // put, get, names, ... on the store itself
/// # let dir = tempfile::tempdir()?;
/// let store = brain_core::Store::builder().path(dir.path().join("store")).open()?;
/// store.put("default", "greeting", &brain_core::Payload::bytes(b"hello"))?;
/// let view = store.get("default", "greeting")?.expect("set above");
/// assert_eq!(&*view, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) ns_root: PathBuf,
    pub(crate) trash: PathBuf,
    pub(crate) pool: PathBuf,
    pub(crate) control: Arc<Control>,
    pub(crate) small_object_limit: usize,
    /// Whether small objects this process writes go into the table.
    pub(crate) small_object_table: bool,
    pub(crate) recycle_limit: Option<u64>,
    pub(crate) recycle_idle: Duration,
    /// Whether the store is on a tmpfs, where recycling's locks hold.
    pub(crate) recycling_allowed: bool,
    /// The filesystem's size, for the pool's default limit.
    pub(crate) filesystem_size: pool::FilesystemSize,
    pub(crate) cache: Mutex<MappingCache>,
    /// Writable mappings of files this process wrote (see pool.rs).
    pub(crate) warm: Mutex<pool::WarmFiles>,
    /// What this process preallocates in the pool (see pool.rs).
    pub(crate) prealloc: pool::Prealloc,
    /// The table of small objects, once this process (of this fork
    /// generation) opened it.
    pub(crate) small: Mutex<Option<OpenTable>>,
    /// The fork mark of the process whose thread sweeps this store while it
    /// is idle (sweeper.rs; 0: none yet).
    pub(crate) idle_sweeps: std::sync::atomic::AtomicU64,
}

impl Store {
    /// A builder for opening a store with options.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::new()
    }

    /// Opens (or creates) the default store: `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
    ///
    /// # Errors
    /// As [`StoreBuilder::open`].
    pub fn open_default() -> Result<Store> {
        StoreBuilder::new().open()
    }

    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    /// As [`StoreBuilder::open`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Store> {
        StoreBuilder::new().path(path).open()
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The path of the control file, for diagnostics.
    pub fn control_path(&self) -> &Path {
        self.inner.control.path()
    }

    pub(crate) fn ns_dir(&self, namespace: &str) -> PathBuf {
        self.inner.ns_root.join(namespace_dir_name(namespace))
    }

    pub(crate) fn object_path(&self, namespace: &str, key: ObjectKey) -> PathBuf {
        let mut path = self.ns_dir(namespace);
        path.push(key.to_hex());
        path
    }

    pub(crate) fn namespaces_root(&self) -> &Path {
        &self.inner.ns_root
    }

    /// Validates the namespace and creates its directory if it is missing.
    pub(crate) fn ensure_namespace(&self, namespace: &str) -> Result<PathBuf> {
        validate_namespace(namespace)?;
        self.make_namespace_dir(namespace)
    }

    /// The store's table of small objects (small.rs), or `None` when the
    /// store was removed (a wiped `/dev/shm`) since it was opened. A table
    /// made anew (the store removed and made again) is noticed within
    /// [`TABLE_RECHECK`]: until then, this process may still see the old one.
    pub(crate) fn small_table(&self) -> Result<Option<Arc<SmallTable>>> {
        self.table_checked(false)
    }

    /// [`Store::small_table`]; `always` checks that the table is the
    /// store's whatever the time since the last check (a `fstat`), as a
    /// write must: one into a removed table would be lost.
    fn table_checked(&self, always: bool) -> Result<Option<Arc<SmallTable>>> {
        let generation = crate::sys::fork::generation();
        let mut slot = crate::sys::fork::lock(&self.inner.small);
        if let Some(open) = slot.as_mut().filter(|open| open.generation == generation) {
            if !always && open.checked.elapsed() < TABLE_RECHECK {
                return Ok(Some(open.table.clone()));
            }
            let data = self.inner.root.join(SMALL_DIR).join(small::DATA_FILE);
            let named = if always {
                open.table.identity()?.1
            } else {
                rustix::fs::stat(&data).is_ok_and(|st| (st.st_dev, st.st_ino) == open.identity)
            };
            if named {
                open.checked = std::time::Instant::now();
                return Ok(Some(open.table.clone()));
            }
        }
        *slot = None;
        if !self.inner.root.join(CONTROL_FILE).exists() {
            // The store was removed: no table, no small objects.
            return Ok(None);
        }
        let table = small::open_table(&self.inner.root, CONTROL_MODE)?;
        let (identity, _) = table.identity()?;
        *slot = Some(OpenTable {
            generation,
            table: table.clone(),
            identity,
            checked: std::time::Instant::now(),
        });
        Ok(Some(table))
    }

    /// The description of the object a set of `name` would replace, looked
    /// up as `metadata` would, but without looking in the filesystem for a
    /// name the table marks no object file for (a new name). An object
    /// file that cannot be read (corrupt, or of an unknown format version)
    /// passes nothing on; a damaged entry is an error, as for `metadata`.
    fn old_description(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        if let Some(table) = self.small_table()? {
            let file = ObjectKey::new(namespace, name);
            match table.meta_and_file_mark(namespace, name, file)? {
                (Some(meta), _) => return Ok(Some(meta.description)),
                (None, false) => return Ok(None),
                (None, true) => {}
            }
        }
        match self.read_object(namespace, name, false) {
            Ok(Some(read)) => Ok(Some(read.into_meta().description)),
            Ok(None) | Err(Error::Corrupt { .. }) | Err(Error::UnsupportedVersion { .. }) => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Reads `name` wherever it is: the table's entry, else its object
    /// file, else the table again (a small set that replaced the file
    /// between the two looks committed its entry before the file went).
    fn read_any(&self, namespace: &str, name: &str, whole: bool) -> Result<Option<Found>> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let table = self.small_table()?;
        let in_table = |table: &Arc<SmallTable>| -> Result<Option<Found>> {
            Ok(table
                .get(namespace, name, whole)?
                .map(|(meta, view)| Found::Entry(meta, view, table.clone())))
        };
        if let Some(table) = &table {
            if let Some(found) = in_table(table)? {
                return Ok(Some(found));
            }
        }
        if let Some(read) = self.read_object(namespace, name, whole)? {
            return Ok(Some(Found::File(read)));
        }
        let Some(table) = &table else {
            return Ok(None);
        };
        look_while_moving(table, || {
            if let Some(found) = in_table(table)? {
                return Ok(Some(found));
            }
            if let Some(read) = self.read_object(namespace, name, whole)? {
                return Ok(Some(Found::File(read)));
            }
            in_table(table)
        })
    }

    /// The metadata of `namespace`'s object files, read from their headers.
    fn file_metas(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self.read_files(namespace)?.0)
    }

    /// The metadata of `namespace`'s object files, and the files that
    /// cannot be read. A damaged object, or one from a newer format, has no
    /// name this build can read: listings leave it out (fsck reports it) so
    /// it does not hide the rest of the namespace.
    fn read_files(&self, namespace: &str) -> Result<(Vec<ObjectMeta>, Vec<DamagedObject>)> {
        let (mut metas, mut damaged) = (Vec::new(), Vec::new());
        for (key, path) in object_files(&self.ns_dir(namespace))? {
            let reason = match read_meta_at(&path) {
                Ok(Some(meta)) if meta.namespace == namespace && key_matches(key, &meta) => {
                    metas.push(meta);
                    continue;
                }
                // Gone since the directory was read.
                Ok(None) => continue,
                Ok(Some(meta)) => format!(
                    "its header is of {:?} in namespace {:?}, which its file name is not the key of",
                    meta.name, meta.namespace
                ),
                Err(Error::Corrupt { reason, .. }) => reason,
                Err(err @ Error::UnsupportedVersion { .. }) => err.to_string(),
                Err(err) => return Err(err),
            };
            damaged.push(DamagedObject {
                name: None,
                key,
                location: Location::Path(path),
                reason,
            });
        }
        Ok((metas, damaged))
    }

    /// The table, for a change: a store removed since it was opened is an error.
    pub(crate) fn small_table_for_writing(&self) -> Result<Arc<SmallTable>> {
        self.table_checked(true)?
            .ok_or_else(|| self.removed_since_opened("write"))
    }

    /// The error for an `op` that found the store's directory gone.
    pub(crate) fn removed_since_opened(&self, op: &'static str) -> Error {
        Error::io(
            op,
            &self.inner.root,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the store was removed since it was opened; open it again",
            ),
        )
    }

    /// Deletes the object file of `name` (not a small object); `false`
    /// when there is none. The caller counts itself in flight (`entered`):
    /// entering again here could wait for a recount that waits for it.
    pub(crate) fn delete_file(
        &self,
        namespace: &str,
        name: &str,
        _entered: &capacity::Entered,
    ) -> Result<bool> {
        // Reading the header first makes a key collision an error instead of
        // deleting someone else's object. A corrupt file, or one from a newer
        // format, cannot be checked, and deleting it is the repair its error
        // message advises: it goes.
        match self.read_object(namespace, name, false) {
            Ok(None) => return Ok(false),
            Ok(Some(_)) | Err(Error::Corrupt { .. }) | Err(Error::UnsupportedVersion { .. }) => {}
            Err(err) => return Err(err),
        }
        let key = ObjectKey::new(namespace, name);
        let path = self.object_path(namespace, key);
        let tmp = self.ns_dir(namespace).join(unique_tmp_name("del"));
        match rustix::fs::rename(&path, &tmp) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(err) => return Err(Error::io("delete", &path, os(err))),
        }
        let len = std::fs::symlink_metadata(&tmp).map_or(0, |m| m.len());
        self.inner.control.object_left(len);
        self.forget_cached(key);
        // Deleted, or kept as preallocated memory (and then a mapping this
        // process kept of the file stays for the next write).
        self.retire(&tmp, len, pool::Left::Deleted)
            .map_err(|e| Error::io("delete", &tmp, e))?;
        Ok(true)
    }

    /// A concrete writer, for `put` (which needs no box) and `writer`.
    fn shm_writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ShmWriter> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        validate_description(description)?;
        ShmWriter::create(self, namespace, name, codec, description, expected_len)
    }

    /// The usage figures, read from the control file and the filesystem.
    fn read_usage(&self) -> Result<Usage> {
        let stat = rustix::fs::statvfs(&self.inner.root)
            .map_err(|e| Error::io("stat the filesystem of", &self.inner.root, os(e)))?;
        let control = &self.inner.control;
        let capacity = control.capacity();
        let (used, recycled) = (control.used(), control.pooled());
        let filesystem_size = stat.f_blocks * stat.f_frsize;
        let filesystem_free = stat.f_bavail * stat.f_frsize;
        // The pool's pages are given back whenever a write needs them.
        let free = capacity
            .saturating_sub(used)
            .min(filesystem_free.saturating_add(recycled));
        Ok(Usage {
            capacity: (capacity != UNLIMITED).then_some(capacity),
            used,
            recycled,
            free,
            details: vec![
                UsageDetail {
                    key: "filesystem_size",
                    label: "filesystem",
                    bytes: filesystem_size,
                },
                UsageDetail {
                    key: "filesystem_free",
                    label: "fs free",
                    bytes: filesystem_free,
                },
                UsageDetail {
                    key: "small_table",
                    label: "table",
                    bytes: self.small_table()?.map_or(0, |t| t.file_len()),
                },
                UsageDetail {
                    key: "held_by_views",
                    label: "held",
                    bytes: held::deleted_mappings_under(&self.inner.root).0,
                },
            ],
        })
    }

    /// The error for a write of `needed` bytes that did not fit: in the
    /// capacity, or (`fs`) on the filesystem.
    pub(crate) fn full_error(&self, namespace: &str, name: &str, needed: u64, fs: bool) -> Error {
        let (used, capacity) = if fs {
            let usage = self.read_usage().ok();
            let size = usage
                .as_ref()
                .and_then(|u| u.detail("filesystem_size"))
                .unwrap_or(0);
            let free = usage
                .as_ref()
                .and_then(|u| u.detail("filesystem_free"))
                .unwrap_or(0);
            (size - free.min(size), size)
        } else {
            (self.inner.control.used(), self.inner.control.capacity())
        };
        self.store_full(namespace, name, needed, used, capacity, fs)
    }

    /// The error for a write refused with `used` of `capacity` bytes in
    /// use, saying what else explains it: the object it replaces (which
    /// stays until the new one is published) and, when the filesystem ran
    /// out, memory that processes still map in objects already gone.
    pub(crate) fn store_full(
        &self,
        namespace: &str,
        name: &str,
        needed: u64,
        used: u64,
        capacity: u64,
        filesystem_full: bool,
    ) -> Error {
        // The object replaced, a file or an entry of the table (a look that
        // fails only loses the hint).
        let key = ObjectKey::new(namespace, name);
        let replacing = match std::fs::symlink_metadata(self.object_path(namespace, key)) {
            Ok(file) => accounted(file.len()),
            Err(_) => self
                .metadata(namespace, name)
                .ok()
                .flatten()
                .map_or(0, |meta| meta.stored_size),
        };
        let (held, holders) = if filesystem_full {
            held::deleted_mappings_under(&self.inner.root)
        } else {
            (0, Vec::new())
        };
        Error::StoreFull {
            namespace: namespace.into(),
            name: name.into(),
            needed,
            used,
            capacity,
            location: self.inner.root.clone().into(),
            filesystem_full,
            replacing,
            held,
            holders: holders
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// How many times a lookup of one name reads the table and its file again
/// when the table was written while it looked (see `look_while_moving`).
const CONSISTENT_READ_ATTEMPTS: u32 = 8;

/// Runs `look` (for one name, in the table and in the files) until it finds
/// something, or the table was not written while it looked, at most
/// [`CONSISTENT_READ_ATTEMPTS`] times. A name moving between an entry and a
/// file (twice, between the looks of one run) may be in neither place when
/// looked at; a move is a write of the table, so a look that saw no write
/// is sure.
fn look_while_moving<T>(
    table: &SmallTable,
    mut look: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    for _ in 0..CONSISTENT_READ_ATTEMPTS {
        let before = table.version()?;
        if let Some(found) = look()? {
            return Ok(Some(found));
        }
        if table.version()? == before {
            break;
        }
    }
    Ok(None)
}

/// How many times a listing reads the files (see `names`): a listing reads
/// every file's header, and any write of the table makes it read again.
const LISTING_ATTEMPTS: u32 = 2;

fn key_matches(key: ObjectKey, meta: &ObjectMeta) -> bool {
    ObjectKey::new(&meta.namespace, &meta.name) == key
}

impl ObjectStore for Store {
    fn location(&self) -> Location {
        Location::Path(self.inner.root.clone())
    }

    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let len = payload.len() as u64;
        let mut writer = self.shm_writer(
            namespace,
            name,
            payload.codec,
            payload.description,
            Some(len),
        )?;
        for segment in payload.parts() {
            writer.write_payload(segment)?;
        }
        writer.commit()
    }

    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        let writer = self.shm_writer(namespace, name, codec, description, expected_len)?;
        Ok(ObjectWriter::new(Box::new(writer)))
    }

    fn put_shared_keeping_description(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let len: u64 = segments.iter().map(|s| s.len() as u64).sum();
        if description.is_empty()
            && self.inner.small_object_table
            && small::fits(namespace, name, "", len)
        {
            // A small object's entry takes the description of the entry it
            // replaces in the transaction that writes it: no lookup before.
            let mut writer = self.shm_writer(namespace, name, codec, "", Some(len))?;
            writer.keep_description();
            writer.write_gathered(segments)?;
            return writer.commit();
        }
        let kept = if description.is_empty() {
            self.old_description(namespace, name)?
        } else {
            None
        };
        let description = kept.as_deref().unwrap_or(description);
        self.put_shared(namespace, name, codec, description, segments)
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        match self.read_any(namespace, name, true)? {
            Some(Found::Entry(_, Some(view), _)) | Some(Found::File(Read::View(view))) => {
                Ok(Some(view))
            }
            Some(_) => unreachable!("a whole read returns a view"),
            None => Ok(None),
        }
    }

    fn get_verified(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        let (view, location) = match self.read_any(namespace, name, true)? {
            Some(Found::Entry(_, Some(view), table)) => {
                let location = table.location(namespace, name);
                (view, location)
            }
            Some(Found::File(Read::View(view))) => {
                let path = self.object_path(namespace, ObjectKey::new(namespace, name));
                (view, path.into())
            }
            Some(_) => unreachable!("a whole read returns a view"),
            None => return Ok(None),
        };
        view.verify(location)?;
        Ok(Some(view))
    }

    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        match self.read_any(namespace, name, false)? {
            Some(Found::Entry(meta, _, _)) => Ok(Some(meta)),
            Some(Found::File(read)) => Ok(Some(read.into_meta())),
            None => Ok(None),
        }
    }

    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let table = self.small_table()?;
        if let Some(table) = &table {
            if table.contains(namespace, name)? {
                return Ok(true);
            }
        }
        let path = self.object_path(namespace, ObjectKey::new(namespace, name));
        let in_files = || match rustix::fs::stat(&path) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(err) => Err(Error::io("stat", &path, os(err))),
        };
        if in_files()? {
            return Ok(true);
        }
        let Some(table) = &table else {
            return Ok(false);
        };
        // A small set may have replaced the file since the table was asked.
        let found = look_while_moving(table, || {
            let there = table.contains(namespace, name)?
                || in_files()?
                || table.contains(namespace, name)?;
            Ok(there.then_some(()))
        })?;
        Ok(found.is_some())
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let _entered = self.inner.control.enter()?;
        // The file and the entry go under the table's writer lock, so a set
        // of a small object cannot slip in between.
        let Some(table) = self.small_table()? else {
            return self.delete_file(namespace, name, &_entered);
        };
        let (entry, file) = table.change_file(namespace, name, true, || {
            self.delete_file(namespace, name, &_entered)
        })?;
        if let Some(file_len) = entry {
            self.inner.control.object_left(file_len);
        }
        Ok(entry.is_some() || file)
    }

    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        validate_namespace(namespace)?;
        let table = self.small_table()?;
        let mut files: Vec<ObjectMeta> = Vec::new();
        let mut small: Vec<ObjectMeta> = Vec::new();
        // As `names`: read again when the table was written meanwhile,
        // keeping what each read found.
        for _ in 0..LISTING_ATTEMPTS {
            let before = table.as_ref().map(|t| t.version()).transpose()?;
            files.extend(self.file_metas(namespace)?);
            let Some(table) = &table else { break };
            small.extend(table.list(namespace)?);
            if Some(table.version()?) == before {
                break;
            }
        }
        // A name in the table and in a file (for a moment, or left by a
        // writer that died) is the table's: the newer. A name that moved
        // while it was listed is listed once, as one of the reads found it.
        let mut by_name: std::collections::BTreeMap<String, ObjectMeta> =
            std::collections::BTreeMap::new();
        for meta in files {
            by_name.insert(meta.name.clone(), meta);
        }
        for meta in small {
            by_name.insert(meta.name.clone(), meta);
        }
        Ok(by_name.into_values().collect())
    }

    fn damaged(&self, namespace: &str) -> Result<Vec<DamagedObject>> {
        validate_namespace(namespace)?;
        let (_, mut damaged) = self.read_files(namespace)?;
        if let Some(table) = self.small_table()? {
            // A file beside an entry of its name is shadowed by the entry
            // (a writer killed between the two left it): nothing is lost
            // with it, and `gc` removes it.
            let names = table.names(namespace)?;
            let shadowed: std::collections::HashSet<ObjectKey> = names
                .iter()
                .map(|name| ObjectKey::new(namespace, name))
                .collect();
            damaged.retain(|d| !shadowed.contains(&d.key));
            damaged.extend(table.damaged_entries(namespace)?);
        }
        Ok(damaged)
    }

    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        validate_namespace(namespace)?;
        let Some(table) = self.small_table()? else {
            let mut names: Vec<String> = self
                .file_metas(namespace)?
                .into_iter()
                .map(|meta| meta.name)
                .collect();
            names.sort_unstable();
            return Ok(names);
        };
        // The table and the files are read one after the other: a name that
        // moved between an entry and a file meanwhile could be in neither
        // read. Such a move is a write of the table, so reads that saw no
        // write in between are whole; otherwise they are made again (a few
        // times at most: any write of the table counts), and what each read
        // found is kept, so a name moving while it is listed is listed.
        let (mut names, mut seen) = table.names_as_of(namespace)?;
        for _ in 0..LISTING_ATTEMPTS {
            // Files hold their names in their headers only: each is read.
            names.extend(
                self.file_metas(namespace)?
                    .into_iter()
                    .map(|meta| meta.name),
            );
            if table.version()? == seen {
                break;
            }
            // A name moved into the table meanwhile is there now.
            let (entries, now) = table.names_as_of(namespace)?;
            names.extend(entries);
            seen = now;
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn namespaces(&self) -> Result<Vec<String>> {
        let mut all = self.list_namespaces()?;
        if let Some(table) = self.small_table()? {
            all.extend(table.namespaces()?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn create_namespace(&self, namespace: &str) -> Result<()> {
        self.ensure_namespace(namespace).map(drop)
    }

    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        validate_namespace(namespace)?;
        let dir = self.ns_dir(namespace);
        let doomed = self.inner.trash.join(unique_tmp_name("ns"));
        let _entered = self.inner.control.enter()?;
        let had_dir = match rustix::fs::rename(&dir, &doomed) {
            Ok(()) => true,
            Err(Errno::NOENT) => false,
            Err(err) => return Err(Error::io("remove the namespace", &dir, os(err))),
        };
        let (in_table, small_lens) = match self.small_table()? {
            Some(table) => table.remove_namespace(namespace, &dir)?,
            None => (false, Vec::new()),
        };
        let mut removed = small_lens.len() as u64;
        for file_len in small_lens {
            self.inner.control.object_left(file_len);
        }
        match (had_dir, in_table) {
            (true, _) => {}
            (false, true) => return Ok(removed),
            (false, false) => {
                return Err(Error::NamespaceNotFound {
                    namespace: namespace.to_owned(),
                })
            }
        }
        for entry in read_dir(&doomed)? {
            let path = entry.path();
            let is_object = ObjectKey::from_hex(&entry.file_name().to_string_lossy()).is_some();
            let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            if std::fs::remove_file(&path).is_ok() && is_object {
                removed += 1;
                self.inner.control.object_left(len);
            }
        }
        let _ = std::fs::remove_dir_all(&doomed);
        self.clear_cache();
        self.sweep_warm();
        Ok(removed)
    }

    fn usage(&self) -> Result<Usage> {
        self.read_usage()
    }

    fn namespace_stats(&self) -> Result<Vec<NamespaceStats>> {
        self.stat_namespaces()
    }

    fn watch(&self, namespace: Option<&str>) -> Result<Watcher> {
        let watcher = match namespace {
            Some(namespace) => watch::InotifyWatcher::namespace(self, namespace)?,
            None => watch::InotifyWatcher::all(self)?,
        };
        Ok(Watcher::new(Box::new(watcher)))
    }

    fn wait_for(&self, namespace: &str, name: &str, timeout: Duration) -> Result<ObjectView> {
        watch::wait_for(self, namespace, name, timeout)
    }

    fn lock(&self, namespace: &str, name: &str, timeout: Option<Duration>) -> Result<NameLock> {
        self.lock_name(namespace, name, timeout)
    }

    fn set_capacity(&self, capacity: Option<u64>) -> Result<()> {
        self.inner
            .control
            .set_capacity(capacity.unwrap_or(UNLIMITED));
        Ok(())
    }

    fn gc(&self) -> Result<GcReport> {
        self.collect_garbage()
    }

    fn fsck(&self, delete_corrupt: bool) -> Result<FsckReport> {
        self.check_objects(delete_corrupt)
    }

    fn preallocate(&self, bytes: u64, wait: bool) -> Result<u64> {
        if wait {
            Store::preallocate(self, bytes)
        } else {
            self.preallocate_in_background(bytes);
            Ok(0)
        }
    }

    fn clear_cache(&self) {
        Store::clear_cache(self);
    }
}
