//! The store: a directory of namespaces on a tmpfs, and every operation on it.
//!
//! ```text
//! <store>/brain.ctl          capacity and usage (see capacity.rs)
//! <store>/ns/<hash>/         one directory per namespace, named by a hash of its name
//! <store>/ns/<hash>/.namespace    the namespace's name
//! <store>/ns/<hash>/<key>    one sealed file per object, named by its key
//! <store>/ns/<hash>/.tmp.*   a writer's file between link and seal (gc removes strays)
//! <store>/trash/             namespaces being removed
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_buffer::{Buffer, MutableBuffer};
use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use xxhash_rust::xxh3::Xxh3;

use crate::capacity::{accounted, Control, UNLIMITED};
use crate::codec::Codec;
use crate::error::{os, Error, Result, UnsafePathReason};
use crate::format::Header;
use crate::key::{
    namespace_dir_name, validate_description, validate_name, validate_namespace, ObjectKey,
};
use crate::namespace::Namespace;
use crate::object_store::{ObjectStore, Payload};
use crate::sys::Mapping;
use crate::view::{ObjectMeta, ObjectView};

/// Objects up to this size are read into memory; larger ones are mapped.
const DEFAULT_SMALL_OBJECT_LIMIT: usize = 64 * 1024;
/// How many mappings a process keeps for repeated gets. Linux allows about
/// 65,000 mappings per process; this leaves room for everything else.
const DEFAULT_MAPPING_CACHE: usize = 4096;
/// A get first reads this much, which holds the header and most small payloads.
const FIRST_READ: usize = 4096;
/// Writes of at least this many bytes are split across threads.
const PARALLEL_WRITE_MIN: usize = 64 * 1024 * 1024;
const NAMESPACE_FILE: &str = ".namespace";
const TMP_PREFIX: &str = ".tmp.";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses: pid, a per-process counter and the clock.
fn unique_tmp_name(kind: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{TMP_PREFIX}{}.{kind}{n}.{nanos:x}", std::process::id())
}

/// The store used when no path is given: `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
pub fn default_store_path() -> PathBuf {
    match std::env::var_os("BRAIN_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => user_root().join("default"),
    }
}

/// The per-user directory that holds the default store: `/dev/shm/brain-<uid>`.
pub fn user_root() -> PathBuf {
    PathBuf::from(format!("/dev/shm/brain-{}", rustix::process::getuid().as_raw()))
}

/// Options for opening a [`Store`]; finish with [`StoreBuilder::open`].
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    path: Option<PathBuf>,
    capacity: Option<u64>,
    group_shared: bool,
    checksums: bool,
    mapping_cache: usize,
    small_object_limit: usize,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            path: None,
            capacity: None,
            group_shared: false,
            checksums: false,
            mapping_cache: DEFAULT_MAPPING_CACHE,
            small_object_limit: DEFAULT_SMALL_OBJECT_LIMIT,
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

    /// Lets the owner's group read and write the store (directories 0770,
    /// objects 0440). Default: off, the store is the user's alone (0700, 0400).
    #[must_use]
    pub fn group_shared(mut self, shared: bool) -> Self {
        self.group_shared = shared;
        self
    }

    /// Stores an xxh3 checksum of each payload written by this process in its
    /// header, checked by `fsck`. Costs a pass over the data. Default: off.
    #[must_use]
    pub fn checksums(mut self, on: bool) -> Self {
        self.checksums = on;
        self
    }

    /// How many mappings of large objects this process keeps, so a repeated
    /// get costs one `stat`. 0 turns the cache off. Default: 4096.
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

    /// Opens the store, creating it (and, for the default path, the per-user
    /// root) when it does not exist.
    ///
    /// # Errors
    /// [`Error::UnsafePath`] when the directory is a symlink, not a directory,
    /// owned by another user or writable by others; [`Error::PermissionDenied`]
    /// or [`Error::Io`] when it cannot be created or read; [`Error::Corrupt`]
    /// when its control file is damaged.
    pub fn open(self) -> Result<Store> {
        let root = self.path.clone().unwrap_or_else(default_store_path);
        let (dir_mode, file_mode) = if self.group_shared { (0o770, 0o440) } else { (0o700, 0o400) };
        if self.path.is_none() && std::env::var_os("BRAIN_PATH").is_none_or(|p| p.is_empty()) {
            ensure_private_dir(&user_root(), dir_mode, self.group_shared)?;
        } else if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the directory", parent, e))?;
            }
        }
        ensure_private_dir(&root, dir_mode, self.group_shared)?;
        for sub in ["ns", "trash"] {
            ensure_private_dir(&root.join(sub), dir_mode, self.group_shared)?;
        }
        let control = Control::open_or_create(&root, file_mode | 0o200)?;
        if let Some(capacity) = self.capacity {
            control.set_capacity(capacity);
        }
        Ok(Store {
            inner: Arc::new(Inner {
                ns_root: root.join("ns"),
                trash: root.join("trash"),
                root,
                control,
                dir_mode,
                file_mode,
                checksums: self.checksums,
                small_object_limit: self.small_object_limit,
                cache: Mutex::new(MappingCache::new(self.mapping_cache)),
            }),
        })
    }
}

/// Creates `path` as a directory with `mode` if it is missing, then checks
/// that it is a real directory, owned by this user, and not writable by others.
fn ensure_private_dir(path: &Path, mode: u32, group_shared: bool) -> Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            // The umask may have taken bits away; the mode is part of the contract.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions on", path, e))?;
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(Error::io("create the directory", path, err)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    let refuse = |reason| Err(Error::UnsafePath { path: path.to_owned(), reason });
    if meta.file_type().is_symlink() {
        return refuse(UnsafePathReason::Symlink);
    }
    if !meta.is_dir() {
        return refuse(UnsafePathReason::NotADirectory);
    }
    let current = rustix::process::getuid().as_raw();
    if meta.uid() != current {
        return refuse(UnsafePathReason::OwnedByOtherUser { owner: meta.uid(), current });
    }
    let forbidden = if group_shared { 0o002 } else { 0o022 };
    if meta.mode() & forbidden != 0 {
        return refuse(UnsafePathReason::TooPermissive { mode: meta.mode() & 0o7777 });
    }
    Ok(())
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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    ns_root: PathBuf,
    trash: PathBuf,
    control: Control,
    dir_mode: u32,
    file_mode: u32,
    checksums: bool,
    small_object_limit: usize,
    cache: Mutex<MappingCache>,
}

/// Capacity and usage of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The store's own limit in bytes, or `None` when only the filesystem limits it.
    pub capacity: Option<u64>,
    /// Bytes in use by objects, as accounted (whole pages, headers included).
    pub used: u64,
    /// The filesystem's size in bytes.
    pub filesystem_size: u64,
    /// Bytes free on the filesystem.
    pub filesystem_free: u64,
}

impl Usage {
    /// Bytes that can still be written: the smaller of what the capacity and
    /// the filesystem leave.
    pub fn free(&self) -> u64 {
        let by_capacity = self.capacity.map_or(u64::MAX, |c| c.saturating_sub(self.used));
        by_capacity.min(self.filesystem_free)
    }
}

/// The object count and size of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceStats {
    /// The namespace.
    pub namespace: String,
    /// How many objects it holds.
    pub objects: u64,
    /// Bytes they take, as accounted.
    pub bytes: u64,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Files left by writers that died before sealing.
    pub stray_files: u64,
    /// Namespace directories left half-created or half-removed.
    pub stray_dirs: u64,
    /// Bytes those files held.
    pub bytes_freed: u64,
}

/// What [`Store::fsck`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Objects whose headers were checked.
    pub objects: u64,
    /// Usage as it was in the control file.
    pub used_before: u64,
    /// Usage rebuilt from the objects present.
    pub used_after: u64,
    /// Object files that failed their checks, with the reason.
    pub corrupt: Vec<(PathBuf, String)>,
    /// How many of the corrupt files were deleted.
    pub deleted: u64,
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

    /// A handle on one namespace; it is created by its first write.
    ///
    /// # Errors
    /// [`Error::InvalidName`] when the namespace name is empty or too long.
    pub fn namespace(&self, namespace: &str) -> Result<Namespace> {
        validate_namespace(namespace)?;
        Ok(Namespace::new(self.clone(), namespace.to_owned()))
    }

    /// Sets the store's capacity in bytes, for every process (`None`: no limit
    /// but the filesystem's). Objects already stored stay even when they exceed it.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.inner.control.set_capacity(capacity.unwrap_or(UNLIMITED));
    }

    fn ns_dir(&self, namespace: &str) -> PathBuf {
        self.inner.ns_root.join(namespace_dir_name(namespace))
    }

    fn object_path(&self, namespace: &str, key: ObjectKey) -> PathBuf {
        let mut path = self.ns_dir(namespace);
        path.push(key.to_hex());
        path
    }

    /// Creates the namespace's directory if it does not exist. The directory
    /// is made complete (with its name file) under a temporary name and
    /// renamed into place, so no one sees a namespace without a name.
    fn create_namespace(&self, namespace: &str) -> Result<PathBuf> {
        let dir = self.ns_dir(namespace);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.inner.ns_root.join(unique_tmp_name("ns"));
        std::fs::DirBuilder::new()
            .mode(self.inner.dir_mode)
            .create(&tmp)
            .map_err(|e| Error::io("create a namespace directory", &tmp, e))?;
        let cleanup = |tmp: &Path| {
            let _ = std::fs::remove_file(tmp.join(NAMESPACE_FILE));
            let _ = std::fs::remove_dir(tmp);
        };
        let write_name = || -> io::Result<()> {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(self.inner.dir_mode))?;
            std::fs::write(tmp.join(NAMESPACE_FILE), namespace.as_bytes())
        };
        if let Err(err) = write_name() {
            cleanup(&tmp);
            return Err(Error::io("write the namespace name in", &tmp, err));
        }
        match rustix::fs::renameat_with(CWD, &tmp, CWD, &dir, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dir),
            // Another process created it first: theirs is as good as ours.
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => {
                cleanup(&tmp);
                Ok(dir)
            }
            Err(err) => {
                cleanup(&tmp);
                Err(Error::io("create the namespace directory", &dir, os(err)))
            }
        }
    }

    /// Starts writing an object whose payload is streamed in with
    /// [`io::Write`]; nothing is visible until [`ObjectWriter::commit`].
    ///
    /// `expected_len`, when known, reserves capacity and space up front, so
    /// a full store fails before any byte is copied.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::StoreFull`], or an I/O error.
    pub fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        validate_description(description)?;
        ObjectWriter::create(self, namespace, name, codec, description, expected_len)
    }

    /// Reads an object's header and, when `whole` or the object is small,
    /// its payload. Returns `None` when there is no such object.
    fn read_object(&self, namespace: &str, name: &str, whole: bool) -> Result<Option<Read_>> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let key = ObjectKey::new(namespace, name);
        let path = self.object_path(namespace, key);
        if whole {
            if let Some(view) = self.cached(key, &path) {
                return Ok(Some(Read_::View(view)));
            }
        }
        let fd = match rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(err) => return Err(Error::io("open", &path, os(err))),
        };
        let mut first = MutableBuffer::from_len_zeroed(FIRST_READ);
        let got = read_full(&fd, first.as_slice_mut(), 0).map_err(|e| Error::io("read", &path, e))?;
        let header_len = Header::needed_len(&first[..got], &path)?;
        let header = if header_len <= got {
            Header::decode(&first[..header_len], &path)?
        } else {
            let mut bytes = vec![0u8; header_len];
            let n = read_full(&fd, &mut bytes, 0).map_err(|e| Error::io("read", &path, e))?;
            Header::decode(&bytes[..n], &path)?
        };
        if header.key != key || header.namespace != namespace || header.name != name {
            return Err(Error::KeyCollision {
                path,
                namespace: namespace.into(),
                name: name.into(),
                found_namespace: header.namespace,
                found_name: header.name,
            });
        }
        let file_len = header.file_len();
        let meta = ObjectMeta::from_header(&header, accounted(file_len));
        if !whole {
            return Ok(Some(Read_::Meta(meta)));
        }
        let file_len = usize::try_from(file_len)
            .map_err(|_| Error::corrupt(&path, "payload length exceeds the address space"))?;
        if file_len <= self.inner.small_object_limit {
            let mut bytes = if file_len <= FIRST_READ {
                first.truncate(file_len);
                first
            } else {
                let mut bytes = MutableBuffer::from_len_zeroed(file_len);
                bytes.as_slice_mut()[..got].copy_from_slice(&first[..got]);
                let n = read_full(&fd, &mut bytes.as_slice_mut()[got..], got as u64)
                    .map_err(|e| Error::io("read", &path, e))?;
                bytes.truncate(got + n);
                bytes
            };
            if bytes.len() < file_len || got < FIRST_READ.min(file_len) {
                return Err(Error::corrupt(
                    &path,
                    format!("file is truncated: {} of {file_len} bytes", bytes.len().min(got)),
                ));
            }
            bytes.truncate(file_len);
            let payload = Buffer::from(bytes).slice(header_len);
            return Ok(Some(Read_::View(ObjectView::new(meta, payload))));
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", &path, os(e)))?;
        if stat.st_size as u64 != file_len as u64 {
            return Err(Error::corrupt(
                &path,
                format!("file is {} bytes, its header says {file_len}", stat.st_size),
            ));
        }
        let mapping =
            Mapping::map_readonly(&fd, file_len).map_err(|e| Error::io("map", &path, e))?;
        let view = ObjectView::from_mapping(meta, mapping, header_len);
        self.remember(key, &path, &stat, &view);
        Ok(Some(Read_::View(view)))
    }

    /// A cached view of the object at `path`, if the file there is still the one cached.
    fn cached(&self, key: ObjectKey, path: &Path) -> Option<ObjectView> {
        let cache = self.inner.cache.lock().expect("mapping cache lock");
        let entry = cache.entries.get(&key)?;
        let (dev, ino) = (entry.dev, entry.ino);
        let view = entry.view.clone();
        drop(cache);
        // The cached mapping keeps its inode alive, so the inode number cannot
        // be reused: a file at `path` with the same one is the same object.
        match rustix::fs::stat(path) {
            Ok(st) if st.st_dev == dev && st.st_ino == ino => Some(view),
            _ => {
                self.inner.cache.lock().expect("mapping cache lock").entries.remove(&key);
                None
            }
        }
    }

    fn remember(&self, key: ObjectKey, path: &Path, stat: &rustix::fs::Stat, view: &ObjectView) {
        let mut cache = self.inner.cache.lock().expect("mapping cache lock");
        cache.insert(key, path, stat, view.clone());
    }

    /// Drops every cached mapping, releasing memory of objects deleted since.
    pub fn clear_cache(&self) {
        self.inner.cache.lock().expect("mapping cache lock").entries.clear();
    }

    /// Namespace statistics: object count and bytes, for every namespace.
    ///
    /// # Errors
    /// An I/O error reading the store.
    pub fn namespace_stats(&self) -> Result<Vec<NamespaceStats>> {
        let mut out = Vec::new();
        for namespace in self.namespaces()? {
            let dir = self.ns_dir(&namespace);
            let (mut objects, mut bytes) = (0, 0);
            for (_, path) in object_files(&dir)? {
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    objects += 1;
                    bytes += accounted(meta.len());
                }
            }
            out.push(NamespaceStats { namespace, objects, bytes });
        }
        Ok(out)
    }

    /// Removes what writers that died before sealing left behind: temporary
    /// object files and half-made namespace directories whose process is gone,
    /// and namespaces left in the trash by an interrupted removal.
    ///
    /// # Errors
    /// An I/O error reading the store.
    pub fn gc(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        for entry in read_dir(&self.inner.ns_root)? {
            let name = entry.file_name();
            let path = entry.path();
            if let Some(pid) = tmp_owner(&name) {
                if !process_alive(pid) && remove_tree(&path, &mut report).is_ok() {
                    report.stray_dirs += 1;
                }
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            for entry in read_dir(&path)? {
                let name = entry.file_name();
                if tmp_owner(&name).is_some_and(|pid| !process_alive(pid)) {
                    let path = entry.path();
                    let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
                    if std::fs::remove_file(&path).is_ok() {
                        report.stray_files += 1;
                        report.bytes_freed += len;
                    }
                }
            }
        }
        for entry in read_dir(&self.inner.trash)? {
            let path = entry.path();
            if tmp_owner(&entry.file_name()).is_some_and(process_alive) {
                continue;
            }
            if remove_tree(&path, &mut report).is_ok() {
                report.stray_dirs += 1;
            }
        }
        Ok(report)
    }

    /// Checks every object's header and rebuilds the usage count from the
    /// objects present. With `delete_corrupt`, removes objects that fail.
    ///
    /// Run it when no writer is busy: a write in flight while it counts is
    /// left out of the rebuilt usage until it seals.
    ///
    /// # Errors
    /// An I/O error reading the store.
    pub fn fsck(&self, delete_corrupt: bool) -> Result<FsckReport> {
        let mut report = FsckReport { used_before: self.inner.control.used(), ..Default::default() };
        let mut used = 0;
        for entry in read_dir(&self.inner.ns_root)? {
            let dir = entry.path();
            if tmp_owner(&entry.file_name()).is_some() || !dir.is_dir() {
                continue;
            }
            for (key, path) in object_files(&dir)? {
                let checked = check_object(&path, key);
                let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
                match checked {
                    Ok(()) => {
                        report.objects += 1;
                        used += accounted(len);
                    }
                    Err(err) => {
                        let deleted = delete_corrupt && std::fs::remove_file(&path).is_ok();
                        if deleted {
                            report.deleted += 1;
                        } else {
                            used += accounted(len);
                        }
                        report.corrupt.push((path, err.to_string()));
                    }
                }
            }
        }
        self.inner.control.set_used(used);
        report.used_after = used;
        Ok(report)
    }

    fn full_error(&self, namespace: &str, name: &str, needed: u64, fs: bool) -> Error {
        let (used, capacity) = if fs {
            let usage = self.usage().ok();
            let size = usage.map_or(0, |u| u.filesystem_size);
            (size - usage.map_or(0, |u| u.filesystem_free).min(size), size)
        } else {
            (self.inner.control.used(), self.inner.control.capacity())
        };
        Error::StoreFull {
            namespace: namespace.into(),
            name: name.into(),
            needed,
            used,
            capacity,
            path: self.inner.root.clone(),
            filesystem_full: fs,
        }
    }
}

#[allow(non_camel_case_types)]
enum Read_ {
    Meta(ObjectMeta),
    View(ObjectView),
}

/// Verifies the header (and checksum, when present) of one object file.
fn check_object(path: &Path, key: ObjectKey) -> Result<()> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| Error::io("read", path, e))?;
    let header = Header::decode(&bytes, path)?;
    if header.key != key || ObjectKey::new(&header.namespace, &header.name) != key {
        return Err(Error::corrupt(path, "the file's name does not match the key in its header"));
    }
    if header.file_len() != bytes.len() as u64 {
        return Err(Error::corrupt(
            path,
            format!("file is {} bytes, its header says {}", bytes.len(), header.file_len()),
        ));
    }
    if let Some(expected) = header.payload_checksum {
        let actual = xxhash_rust::xxh3::xxh3_64(&bytes[header.encoded_len()..]);
        if actual != expected {
            return Err(Error::corrupt(path, "payload checksum mismatch"));
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io("list", dir, e)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::io("list", dir, err)),
    }
}

/// The sealed object files of a namespace directory, with their keys.
fn object_files(dir: &Path) -> Result<Vec<(ObjectKey, PathBuf)>> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter_map(|entry| {
            let key = ObjectKey::from_hex(entry.file_name().to_str()?)?;
            Some((key, entry.path()))
        })
        .collect())
}

/// The pid in a temporary name made by [`unique_tmp_name`].
fn tmp_owner(name: &OsStr) -> Option<u32> {
    let rest = name.as_bytes().strip_prefix(TMP_PREFIX.as_bytes())?;
    let pid = rest.split(|&b| b == b'.').next()?;
    std::str::from_utf8(pid).ok()?.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else { return false };
    // EPERM means the process exists but belongs to someone else: alive.
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

fn remove_tree(path: &Path, report: &mut GcReport) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        report.bytes_freed += entry.metadata().map_or(0, |m| m.len());
    }
    std::fs::remove_dir_all(path)
}

/// Reads from `offset` until `buf` is full or the file ends; returns bytes read.
fn read_full(fd: impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(&fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(err) => return Err(os(err)),
        }
    }
    Ok(done)
}

fn write_all_at(fd: impl AsFd, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pwrite(&fd, buf, offset) {
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(err) => return Err(os(err)),
        }
    }
    Ok(())
}

/// Writes `buf` at `offset`, split across threads when it is large: each
/// thread copies a disjoint range, so the copy runs at several cores' speed.
fn write_parallel_at(fd: impl AsFd + Sync, buf: &[u8], offset: u64) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if buf.len() < PARALLEL_WRITE_MIN || threads < 2 {
        return write_all_at(fd, buf, offset);
    }
    // Chunks end on page boundaries so no two threads fault in the same page.
    let chunk = buf.len().div_ceil(threads).div_ceil(4096) * 4096;
    std::thread::scope(|scope| {
        let handles: Vec<_> = buf
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let fd = &fd;
                scope.spawn(move || write_all_at(fd, part, offset + (i * chunk) as u64))
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("writer thread panicked"))
    })
}

struct CacheEntry {
    dev: u64,
    ino: u64,
    path: PathBuf,
    view: ObjectView,
}

/// Mappings of large objects this process has read, so repeated gets skip
/// open and mmap. Bounded; stale entries are swept a few at a time.
struct MappingCache {
    limit: usize,
    entries: HashMap<ObjectKey, CacheEntry>,
    sweep_from: usize,
}

impl std::fmt::Debug for MappingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappingCache({} of {})", self.entries.len(), self.limit)
    }
}

impl MappingCache {
    fn new(limit: usize) -> Self {
        MappingCache { limit, entries: HashMap::new(), sweep_from: 0 }
    }

    fn insert(&mut self, key: ObjectKey, path: &Path, stat: &rustix::fs::Stat, view: ObjectView) {
        if self.limit == 0 {
            return;
        }
        self.sweep(8);
        if self.entries.len() >= self.limit {
            if let Some(&victim) = self.entries.keys().next() {
                self.entries.remove(&victim);
            }
        }
        let entry = CacheEntry { dev: stat.st_dev, ino: stat.st_ino, path: path.to_owned(), view };
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

/// An object being written. Write the payload with [`io::Write`], then
/// [`ObjectWriter::commit`] to publish it atomically; dropping it without
/// committing leaves nothing behind.
pub struct ObjectWriter {
    store: Store,
    dir: PathBuf,
    fd: OwnedFd,
    /// The file's name while it is linked but not yet sealed (fallback path
    /// when O_TMPFILE is unavailable, or between link and rename).
    linked_as: Option<PathBuf>,
    header: Header,
    header_len: u64,
    written: u64,
    reserved: u64,
    checksum: Option<Xxh3>,
}

impl ObjectWriter {
    fn create(
        store: &Store,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        let header_len = Header::encoded_len_for(namespace, name, description) as u64;
        let mut dir = store.ns_dir(namespace);
        let (fd, linked_as) = match open_unnamed(&dir, store.inner.file_mode) {
            Err(Errno::NOENT) => {
                dir = store.create_namespace(namespace)?;
                open_unnamed(&dir, store.inner.file_mode)
            }
            other => other,
        }
        .map_err(|e| Error::io("create an object file in", &dir, os(e)))?;
        let mut writer = ObjectWriter {
            store: store.clone(),
            dir,
            fd,
            linked_as,
            header: Header {
                codec,
                flags: 0,
                payload_len: 0,
                created_unix_nanos: 0,
                key: ObjectKey::new(namespace, name),
                payload_checksum: None,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                description: description.to_owned(),
            },
            header_len,
            written: 0,
            reserved: 0,
            checksum: store.inner.checksums.then(Xxh3::new),
        };
        if let Some(len) = expected_len {
            writer.reserve(header_len + len)?;
            writer.preallocate(header_len + len)?;
        }
        Ok(writer)
    }

    /// Reserves capacity for a file of `file_len` bytes (beyond what is reserved).
    fn reserve(&mut self, file_len: u64) -> Result<()> {
        let needed = accounted(file_len);
        if needed <= self.reserved {
            return Ok(());
        }
        let extra = needed - self.reserved;
        self.store.inner.control.reserve(extra).map_err(|refused| Error::StoreFull {
            namespace: self.header.namespace.clone(),
            name: self.header.name.clone(),
            needed,
            used: refused.used,
            capacity: refused.capacity,
            path: self.store.inner.root.clone(),
            filesystem_full: false,
        })?;
        self.reserved = needed;
        Ok(())
    }

    /// Allocates the file's pages now, so a full filesystem fails cleanly
    /// here instead of part-way through the copy.
    fn preallocate(&mut self, file_len: u64) -> Result<()> {
        match rustix::fs::fallocate(&self.fd, FallocateFlags::empty(), 0, file_len) {
            Ok(()) | Err(Errno::OPNOTSUPP) => Ok(()),
            Err(Errno::NOSPC) => Err(self.fs_full(file_len)),
            Err(err) => Err(Error::io("allocate space in", &self.dir, os(err))),
        }
    }

    fn fs_full(&self, file_len: u64) -> Error {
        self.store.full_error(&self.header.namespace, &self.header.name, file_len, true)
    }

    fn map_write_error(&self, err: io::Error) -> Error {
        if err.raw_os_error() == Some(libc_enospc()) {
            self.fs_full(self.header_len + self.written)
        } else {
            Error::io("write an object in", &self.dir, err)
        }
    }

    /// Appends `bytes` to the payload, copying large buffers with several threads.
    ///
    /// # Errors
    /// [`Error::StoreFull`] when the filesystem fills up, or another I/O error.
    pub fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        let at = self.header_len + self.written;
        write_parallel_at(&self.fd, bytes, at).map_err(|e| self.map_write_error(e))?;
        if let Some(hasher) = &mut self.checksum {
            hasher.update(bytes);
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes of payload written so far.
    pub fn payload_len(&self) -> u64 {
        self.written
    }

    /// Writes the header and publishes the object under its name, replacing
    /// any object of that name in one atomic step. Readers of the old object
    /// keep their views.
    ///
    /// # Errors
    /// [`Error::StoreFull`] when the final size passes the capacity, or an I/O error.
    pub fn commit(mut self) -> Result<ObjectMeta> {
        let file_len = self.header_len + self.written;
        self.reserve(file_len)?;
        self.header.payload_len = self.written;
        self.header.created_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        self.header.payload_checksum = self.checksum.take().map(|h| h.digest());
        let header = self.header.encode();
        debug_assert_eq!(header.len() as u64, self.header_len);
        write_all_at(&self.fd, &header, 0).map_err(|e| self.map_write_error(e))?;
        // A reservation from fallocate past the end would waste space; trim it.
        let size = rustix::fs::fstat(&self.fd).map_err(|e| Error::io("stat", &self.dir, os(e)))?;
        if size.st_size as u64 > file_len {
            rustix::fs::ftruncate(&self.fd, file_len)
                .map_err(|e| Error::io("trim an object in", &self.dir, os(e)))?;
        }
        let tmp = match self.linked_as.clone() {
            Some(path) => path,
            None => {
                let path = self.dir.join(unique_tmp_name("obj"));
                link_unnamed(&self.fd, &path)
                    .map_err(|e| Error::io("link an object into", &self.dir, os(e)))?;
                self.linked_as = Some(path.clone());
                path
            }
        };
        let target = self.dir.join(self.header.key.to_hex());
        let replaced = seal(&tmp, &target).map_err(|e| Error::io("publish", &target, os(e)))?;
        // The temporary name now holds the replaced object, or nothing.
        let _ = std::fs::remove_file(&tmp);
        self.linked_as = None;
        if let Some(old_len) = replaced {
            self.store.inner.control.release(accounted(old_len));
        }
        let actual = accounted(file_len);
        if self.reserved > actual {
            self.store.inner.control.release(self.reserved - actual);
        }
        self.reserved = 0;
        Ok(ObjectMeta::from_header(&self.header, actual))
    }
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("namespace", &self.header.namespace)
            .field("name", &self.header.name)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_payload(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(path) = &self.linked_as {
            let _ = std::fs::remove_file(path);
        }
        if self.reserved > 0 {
            self.store.inner.control.release(self.reserved);
        }
    }
}

fn libc_enospc() -> i32 {
    Errno::NOSPC.raw_os_error()
}

/// Opens a file with no name in `dir` (O_TMPFILE), or, where the filesystem
/// lacks that, a uniquely named temporary file.
fn open_unnamed(dir: &Path, mode: u32) -> rustix::io::Result<(OwnedFd, Option<PathBuf>)> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags | OFlags::TMPFILE, Mode::from_bits_truncate(mode)) {
        Ok(fd) => Ok((fd, None)),
        Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
            let path = dir.join(unique_tmp_name("obj"));
            let fd = rustix::fs::open(
                &path,
                flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                Mode::from_bits_truncate(mode),
            )?;
            Ok((fd, Some(path)))
        }
        Err(err) => Err(err),
    }
}

/// Gives an O_TMPFILE file the name `path`.
fn link_unnamed(fd: &OwnedFd, path: &Path) -> rustix::io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
        Err(Errno::NOENT) => rustix::fs::linkat(fd, "", CWD, path, AtFlags::EMPTY_PATH),
        other => other,
    }
}

/// Renames `tmp` over `target` atomically. Returns the length of the file it
/// replaced, which is left at `tmp` (swapped in by RENAME_EXCHANGE) so its
/// size is known exactly; `None` when there was none.
fn seal(tmp: &Path, target: &Path) -> rustix::io::Result<Option<u64>> {
    loop {
        match rustix::fs::renameat_with(CWD, tmp, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(None),
            Err(Errno::EXIST) => {}
            Err(Errno::INVAL) => {
                // No renameat2 flags here: a plain rename, accounting the old size first.
                let old = rustix::fs::stat(target).map(|st| st.st_size as u64).ok();
                rustix::fs::rename(tmp, target)?;
                return Ok(old);
            }
            Err(err) => return Err(err),
        }
        match rustix::fs::renameat_with(CWD, tmp, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => {
                let old = rustix::fs::stat(tmp).map(|st| st.st_size as u64).unwrap_or(0);
                return Ok(Some(old));
            }
            // Deleted between the two calls: try the plain rename again.
            Err(Errno::NOENT) => continue,
            Err(err) => return Err(err),
        }
    }
}

impl ObjectStore for Store {
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let len = payload.len() as u64;
        let mut writer =
            self.writer(namespace, name, payload.codec, payload.description, Some(len))?;
        for segment in payload.parts() {
            writer.write_payload(segment)?;
        }
        writer.commit()
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        match self.read_object(namespace, name, true)? {
            Some(Read_::View(view)) => Ok(Some(view)),
            Some(Read_::Meta(_)) => unreachable!("a whole read returns a view"),
            None => Ok(None),
        }
    }

    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        match self.read_object(namespace, name, false)? {
            Some(Read_::Meta(meta)) => Ok(Some(meta)),
            Some(Read_::View(view)) => Ok(Some(view.meta().clone())),
            None => Ok(None),
        }
    }

    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let path = self.object_path(namespace, ObjectKey::new(namespace, name));
        match rustix::fs::stat(&path) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(err) => Err(Error::io("stat", &path, os(err))),
        }
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        // Reading the header first makes a key collision an error instead of
        // deleting someone else's object.
        if self.metadata(namespace, name)?.is_none() {
            return Ok(false);
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
        std::fs::remove_file(&tmp).map_err(|e| Error::io("delete", &tmp, e))?;
        self.inner.control.release(accounted(len));
        self.inner.cache.lock().expect("mapping cache lock").entries.remove(&key);
        Ok(true)
    }

    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        validate_namespace(namespace)?;
        let mut out = Vec::new();
        for (key, path) in object_files(&self.ns_dir(namespace))? {
            match read_meta_at(&path) {
                Ok(Some(meta)) if meta.namespace == namespace && key_matches(key, &meta) => {
                    out.push(meta)
                }
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self.list(namespace)?.into_iter().map(|meta| meta.name).collect())
    }

    fn namespaces(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in read_dir(&self.inner.ns_root)? {
            let Some(dir) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if dir.len() != 32 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let name_file = entry.path().join(NAMESPACE_FILE);
            match std::fs::read(&name_file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(name) if namespace_dir_name(&name) == dir => out.push(name),
                    _ => {
                        return Err(Error::corrupt(name_file, "namespace name does not match"))
                    }
                },
                // Removed while we listed.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io("read", name_file, err)),
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        validate_namespace(namespace)?;
        let dir = self.ns_dir(namespace);
        let doomed = self.inner.trash.join(unique_tmp_name("ns"));
        match rustix::fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                return Err(Error::NamespaceNotFound { namespace: namespace.to_owned() })
            }
            Err(err) => return Err(Error::io("remove the namespace", &dir, os(err))),
        }
        let mut removed = 0;
        let mut freed = 0;
        for entry in read_dir(&doomed)? {
            let path = entry.path();
            let is_object = ObjectKey::from_hex(&entry.file_name().to_string_lossy()).is_some();
            let len = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            if std::fs::remove_file(&path).is_ok() && is_object {
                removed += 1;
                freed += accounted(len);
            }
        }
        self.inner.control.release(freed);
        let _ = std::fs::remove_dir_all(&doomed);
        self.clear_cache();
        Ok(removed)
    }

    fn usage(&self) -> Result<Usage> {
        let stat = rustix::fs::statvfs(&self.inner.root)
            .map_err(|e| Error::io("stat the filesystem of", &self.inner.root, os(e)))?;
        let capacity = self.inner.control.capacity();
        Ok(Usage {
            capacity: (capacity != UNLIMITED).then_some(capacity),
            used: self.inner.control.used(),
            filesystem_size: stat.f_blocks * stat.f_frsize,
            filesystem_free: stat.f_bavail * stat.f_frsize,
        })
    }
}

fn key_matches(key: ObjectKey, meta: &ObjectMeta) -> bool {
    ObjectKey::new(&meta.namespace, &meta.name) == key
}

/// Reads the header of the object file at `path`; `None` if it vanished.
pub(crate) fn read_meta_at(path: &Path) -> Result<Option<ObjectMeta>> {
    let fd = match rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(err) => return Err(Error::io("open", path, os(err))),
    };
    let mut first = [0u8; FIRST_READ];
    let got = read_full(&fd, &mut first, 0).map_err(|e| Error::io("read", path, e))?;
    let header_len = Header::needed_len(&first[..got], path)?;
    let header = if header_len <= got {
        Header::decode(&first[..header_len], path)?
    } else {
        let mut bytes = vec![0u8; header_len];
        let n = read_full(&fd, &mut bytes, 0).map_err(|e| Error::io("read", path, e))?;
        Header::decode(&bytes[..n], path)?
    };
    Ok(Some(ObjectMeta::from_header(&header, accounted(header.file_len()))))
}

/// Reads the header of a file in a namespace directory, for the watcher.
pub(crate) fn header_at(path: &Path) -> Result<Option<ObjectMeta>> {
    read_meta_at(path)
}

impl Store {
    pub(crate) fn namespaces_root(&self) -> &Path {
        &self.inner.ns_root
    }

    pub(crate) fn ensure_namespace(&self, namespace: &str) -> Result<PathBuf> {
        validate_namespace(namespace)?;
        self.create_namespace(namespace)
    }

    /// The path of the control file, for diagnostics.
    pub fn control_path(&self) -> &Path {
        self.inner.control.path()
    }
}
