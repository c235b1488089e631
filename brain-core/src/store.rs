//! The store: a directory of namespaces on a tmpfs, and every operation on it.
//!
//! ```text
//! <store>/brain.ctl          capacity and usage (see capacity.rs)
//! <store>/ns/<hash>/         one directory per namespace, named by a hash of its name
//! <store>/ns/<hash>/.namespace    the namespace's name
//! <store>/ns/<hash>/<key>    one sealed file per object, named by its key
//! <store>/ns/<hash>/.tmp.*   a writer's file between link and seal (gc removes strays)
//! <store>/trash/             namespaces being removed
//! <store>/pool/<len>.<ms>.*  files of replaced objects, kept for reuse (see recycle.rs)
//! ```

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_buffer::{Buffer, MutableBuffer};
use rustix::fs::{Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use crate::cache::{MappingCache, Stamp};
use crate::recycle::{lock_shared, recyclable, replaced_under, DEFAULT_IDLE, POOL_DIR};
use crate::writer::{unique_tmp_name, ObjectWriter};

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

/// Store directories: the user's alone.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Sealed objects: readable by the user only, and not writable, so an
/// accidental truncating open fails.
pub(crate) const FILE_MODE: u32 = 0o400;
/// The control file, updated in place through a shared mapping.
const CONTROL_MODE: u32 = 0o600;

/// `statfs`'s filesystem type of a tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Objects up to this size are read into memory; larger ones are mapped.
const DEFAULT_SMALL_OBJECT_LIMIT: usize = 64 * 1024;
/// How many mappings a process keeps for repeated gets. Linux allows about
/// 65,000 mappings per process; this leaves room for everything else.
const DEFAULT_MAPPING_CACHE: usize = 4096;
/// A get first reads this much, which holds the header and most small payloads.
const FIRST_READ: usize = 4096;
/// How often a get opens a name again when the file it opened was replaced
/// and recycled while it read (each retry needs another whole write to race it).
const MAX_READ_ATTEMPTS: usize = 8;
const NAMESPACE_FILE: &str = ".namespace";

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
    checksums: bool,
    mapping_cache: usize,
    small_object_limit: usize,
    recycle_limit: Option<u64>,
    recycle_idle: Duration,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            path: None,
            capacity: None,
            checksums: false,
            mapping_cache: DEFAULT_MAPPING_CACHE,
            small_object_limit: DEFAULT_SMALL_OBJECT_LIMIT,
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

    /// Stores an xxh3 checksum of each payload written by this process in its
    /// header, checked by `fsck`. Costs a pass over the data. Default: off.
    #[must_use]
    pub fn checksums(mut self, on: bool) -> Self {
        self.checksums = on;
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
    /// owned by another user or writable by others; [`Error::PermissionDenied`]
    /// or [`Error::Io`] when it cannot be created or read; [`Error::Corrupt`]
    /// when its control file is damaged.
    pub fn open(self) -> Result<Store> {
        let root = self.path.clone().unwrap_or_else(default_store_path);
        if self.path.is_none() && std::env::var_os("BRAIN_PATH").is_none_or(|p| p.is_empty()) {
            ensure_private_dir(&user_root())?;
        } else if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the directory", parent, e))?;
            }
        }
        ensure_private_dir(&root)?;
        for sub in ["ns", "trash", POOL_DIR] {
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
                ns_root: root.join("ns"),
                trash: root.join("trash"),
                pool: root.join(POOL_DIR),
                root,
                control,
                checksums: self.checksums,
                small_object_limit: self.small_object_limit,
                recycle_limit: self.recycle_limit,
                recycle_idle: self.recycle_idle,
                recycling_allowed,
                cache: Mutex::new(MappingCache::new(self.mapping_cache)),
            }),
        };
        store.trim_pool();
        Ok(store)
    }
}

/// Creates `path` as a directory with `mode` if it is missing, then checks
/// that it is a real directory, owned by this user, and not writable by others.
fn ensure_private_dir(path: &Path) -> Result<()> {
    let mode = DIR_MODE;
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
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    if meta.file_type().is_symlink() {
        return refuse(UnsafePathReason::Symlink);
    }
    if !meta.is_dir() {
        return refuse(UnsafePathReason::NotADirectory);
    }
    let current = rustix::process::getuid().as_raw();
    if meta.uid() != current {
        return refuse(UnsafePathReason::OwnedByOtherUser {
            owner: meta.uid(),
            current,
        });
    }
    let forbidden = 0o022;
    if meta.mode() & forbidden != 0 {
        return refuse(UnsafePathReason::TooPermissive {
            mode: meta.mode() & 0o7777,
        });
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
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) ns_root: PathBuf,
    pub(crate) trash: PathBuf,
    pub(crate) pool: PathBuf,
    pub(crate) control: Control,
    pub(crate) checksums: bool,
    pub(crate) small_object_limit: usize,
    pub(crate) recycle_limit: Option<u64>,
    pub(crate) recycle_idle: Duration,
    /// Whether the store is on a tmpfs, where recycling's locks hold.
    pub(crate) recycling_allowed: bool,
    pub(crate) cache: Mutex<MappingCache>,
}

/// Capacity and usage of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The store's own limit in bytes, or `None` when only the filesystem limits it.
    pub capacity: Option<u64>,
    /// Bytes in use by objects, as accounted (whole pages, headers included).
    pub used: u64,
    /// Bytes of replaced objects kept for later writes to reuse. They count
    /// on the filesystem but are given back whenever a write needs the room.
    pub pooled: u64,
    /// The filesystem's size in bytes.
    pub filesystem_size: u64,
    /// Bytes free on the filesystem.
    pub filesystem_free: u64,
}

impl Usage {
    /// Bytes that can still be written: the smaller of what the capacity and
    /// the filesystem (with the pool given back) leave.
    pub fn free(&self) -> u64 {
        let by_capacity = self
            .capacity
            .map_or(u64::MAX, |c| c.saturating_sub(self.used));
        by_capacity.min(self.filesystem_free.saturating_add(self.pooled))
    }
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
        self.inner
            .control
            .set_capacity(capacity.unwrap_or(UNLIMITED));
    }

    pub(crate) fn ns_dir(&self, namespace: &str) -> PathBuf {
        self.inner.ns_root.join(namespace_dir_name(namespace))
    }

    pub(crate) fn object_path(&self, namespace: &str, key: ObjectKey) -> PathBuf {
        let mut path = self.ns_dir(namespace);
        path.push(key.to_hex());
        path
    }

    /// Creates the namespace's directory if it does not exist. The directory
    /// is made complete (with its name file) under a temporary name and
    /// renamed into place, so no one sees a namespace without a name.
    pub(crate) fn create_namespace(&self, namespace: &str) -> Result<PathBuf> {
        let dir = self.ns_dir(namespace);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.inner.ns_root.join(unique_tmp_name("ns"));
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&tmp)
            .map_err(|e| Error::io("create a namespace directory", &tmp, e))?;
        let cleanup = |tmp: &Path| {
            let _ = std::fs::remove_file(tmp.join(NAMESPACE_FILE));
            let _ = std::fs::remove_dir(tmp);
        };
        let write_name = || -> io::Result<()> {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(DIR_MODE))?;
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
        for _ in 0..MAX_READ_ATTEMPTS {
            if let Some(read) = self.read_object_once(namespace, name, key, &path, whole)? {
                return Ok(read);
            }
        }
        Err(Error::io(
            "read",
            &path,
            io::Error::new(
                io::ErrorKind::Interrupted,
                format!("the object was replaced {MAX_READ_ATTEMPTS} times while being read; read it again"),
            ),
        ))
    }

    /// One attempt at [`Store::read_object`]: `None` when the file opened was
    /// replaced and recycled part-way through, and the name must be opened again.
    fn read_object_once(
        &self,
        namespace: &str,
        name: &str,
        key: ObjectKey,
        path: &Path,
        whole: bool,
    ) -> Result<Option<Option<Read_>>> {
        let Some(fd) = open_object(path)? else {
            return Ok(Some(None));
        };
        let mut first = MutableBuffer::from_len_zeroed(FIRST_READ);
        let (header, got) = match read_header(&fd, first.as_slice_mut(), path) {
            Ok(read) => read,
            // The file may have left its name and be being rewritten.
            Err(_) if replaced_under(&fd, path) => return Ok(None),
            Err(err) => return Err(err),
        };
        if header.key != key || header.namespace != namespace || header.name != name {
            if replaced_under(&fd, path) {
                return Ok(None);
            }
            return Err(Error::KeyCollision {
                path: path.to_owned(),
                namespace: namespace.into(),
                name: name.into(),
                found_namespace: header.namespace,
                found_name: header.name,
            });
        }
        if !whole {
            let meta = ObjectMeta::from_header(&header, accounted(header.file_len()));
            return Ok(Some(Some(Read_::Meta(meta))));
        }
        let view = self.read_payload(key, path, &fd, &header, first, got)?;
        Ok(view.map(|view| Some(Read_::View(view))))
    }

    /// Reads the payload of the object file open as `fd`, whose `header` was
    /// read before (with its first `got` bytes in `first`). `None` when the
    /// file was recycled in between and the name must be opened again.
    fn read_payload(
        &self,
        key: ObjectKey,
        path: &Path,
        fd: &rustix::fd::OwnedFd,
        header: &Header,
        mut first: MutableBuffer,
        got: usize,
    ) -> Result<Option<ObjectView>> {
        let header_len = header.encoded_len();
        let file_len = header.file_len();
        let meta = ObjectMeta::from_header(header, accounted(file_len));
        // A file that may be recycled is locked before its payload is read:
        // from then on no writer can rewrite it. What was read before the
        // lock is checked again under it.
        let locked = recyclable(file_len);
        if locked && (!lock_shared(fd, path)? || header_changed(fd, header, path)) {
            return Ok(None);
        }
        let file_len = usize::try_from(file_len)
            .map_err(|_| Error::corrupt(path, "payload length exceeds the address space"))?;
        if file_len <= self.inner.small_object_limit {
            let mut bytes = if file_len <= FIRST_READ {
                first.truncate(file_len);
                first
            } else {
                let mut bytes = MutableBuffer::from_len_zeroed(file_len);
                bytes.as_slice_mut()[..got].copy_from_slice(&first[..got]);
                let n = read_full(fd, &mut bytes.as_slice_mut()[got..], got as u64)
                    .map_err(|e| Error::io("read", path, e))?;
                bytes.truncate(got + n);
                bytes
            };
            if bytes.len() < file_len || got < FIRST_READ.min(file_len) {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "file is truncated: {} of {file_len} bytes",
                        bytes.len().min(got)
                    ),
                ));
            }
            bytes.truncate(file_len);
            let view = ObjectView::new(meta, Buffer::from(bytes).slice(header_len));
            if !locked {
                self.remember_copy(key, path, fd, &view);
            }
            return Ok(Some(view));
        }
        let stat = rustix::fs::fstat(fd).map_err(|e| Error::io("stat", path, os(e)))?;
        if stat.st_size as u64 != file_len as u64 {
            if replaced_under(fd, path) {
                return Ok(None);
            }
            return Err(Error::corrupt(
                path,
                format!("file is {} bytes, its header says {file_len}", stat.st_size),
            ));
        }
        // The mapping holds the open file, and with it the shared lock.
        let mapping = Mapping::map_readonly(fd, file_len).map_err(|e| Error::io("map", path, e))?;
        let view = ObjectView::from_mapping(meta, mapping, header_len);
        self.remember(key, path, &stat, &view);
        Ok(Some(view))
    }

    /// A cached view of the object at `path`, if the file there is still the one cached.
    fn cached(&self, key: ObjectKey, path: &Path) -> Option<ObjectView> {
        let mut cache = self.inner.cache.lock().expect("mapping cache lock");
        cache.maybe_sweep();
        let (stamp, view) = cache.get(key)?;
        drop(cache);
        match rustix::fs::stat(path) {
            Ok(st) if Stamp::of(&st) == stamp => Some(view),
            _ => {
                self.forget_cached(key);
                None
            }
        }
    }

    fn remember(&self, key: ObjectKey, path: &Path, stat: &rustix::fs::Stat, view: &ObjectView) {
        let mut cache = self.inner.cache.lock().expect("mapping cache lock");
        cache.insert(key, path, Stamp::of(stat), view.clone(), false);
    }

    /// Caches a copy of a small object read from `fd`, when it is read for
    /// the second time: a value read over and over then costs one `stat`.
    fn remember_copy(
        &self,
        key: ObjectKey,
        path: &Path,
        fd: &rustix::fd::OwnedFd,
        view: &ObjectView,
    ) {
        let mut cache = self.inner.cache.lock().expect("mapping cache lock");
        if !cache.read_again(key) {
            return;
        }
        if let Ok(stat) = rustix::fs::fstat(fd) {
            cache.insert(key, path, Stamp::of(&stat), view.clone(), true);
        }
    }

    /// Drops the cached view of `key` (its object was replaced or deleted
    /// by this process), and sweeps others when it is time.
    pub(crate) fn forget_cached(&self, key: ObjectKey) {
        let mut cache = self.inner.cache.lock().expect("mapping cache lock");
        cache.remove(key);
        cache.maybe_sweep();
    }

    /// Drops every cached view, releasing memory of objects deleted since.
    pub fn clear_cache(&self) {
        self.inner.cache.lock().expect("mapping cache lock").clear();
    }

    pub(crate) fn full_error(&self, namespace: &str, name: &str, needed: u64, fs: bool) -> Error {
        let (used, capacity) = if fs {
            let usage = self.usage().ok();
            let size = usage.map_or(0, |u| u.filesystem_size);
            (
                size - usage.map_or(0, |u| u.filesystem_free).min(size),
                size,
            )
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

pub(crate) fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io("list", dir, e)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::io("list", dir, err)),
    }
}

/// The sealed object files of a namespace directory, with their keys.
pub(crate) fn object_files(dir: &Path) -> Result<Vec<(ObjectKey, PathBuf)>> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter_map(|entry| {
            let key = ObjectKey::from_hex(entry.file_name().to_str()?)?;
            Some((key, entry.path()))
        })
        .collect())
}

/// Reads from `offset` until `buf` is full or the file ends; returns bytes read.
pub(crate) fn read_full(fd: impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
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

impl ObjectStore for Store {
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let len = payload.len() as u64;
        let mut writer = self.writer(
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
        // deleting someone else's object. A corrupt file, or one from a newer
        // format, cannot be checked, and deleting it is the repair its error
        // message advises: it goes.
        match self.metadata(namespace, name) {
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
        std::fs::remove_file(&tmp).map_err(|e| Error::io("delete", &tmp, e))?;
        self.inner.control.release(accounted(len));
        self.forget_cached(key);
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
                // A damaged object, or one from a newer format, has no name
                // this build can read: it is left out (fsck reports it) so
                // it does not hide the rest of the namespace.
                Ok(_) | Err(Error::Corrupt { .. }) | Err(Error::UnsupportedVersion { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self
            .list(namespace)?
            .into_iter()
            .map(|meta| meta.name)
            .collect())
    }

    fn namespaces(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in read_dir(&self.inner.ns_root)? {
            let Some(dir) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if dir.len() != 32 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let name_file = entry.path().join(NAMESPACE_FILE);
            match std::fs::read(&name_file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(name) if namespace_dir_name(&name) == dir => out.push(name),
                    _ => return Err(Error::corrupt(name_file, "namespace name does not match")),
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
                return Err(Error::NamespaceNotFound {
                    namespace: namespace.to_owned(),
                })
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
            pooled: self.inner.control.pooled(),
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
    let mut attempts = 0;
    loop {
        let Some(fd) = open_object(path)? else {
            return Ok(None);
        };
        let named = path
            .file_name()
            .and_then(|name| ObjectKey::from_hex(name.to_str()?));
        let read = read_header(&fd, &mut [0u8; FIRST_READ], path);
        // Another key's header, or none, from a file that left its name (and
        // was recycled) while being read: the name holds another file now.
        let stale = match &read {
            Ok((header, _)) => named.is_some_and(|key| key != header.key),
            Err(_) => true,
        };
        if stale && attempts < MAX_READ_ATTEMPTS && replaced_under(&fd, path) {
            attempts += 1;
            continue;
        }
        let (header, _) = read?;
        return Ok(Some(ObjectMeta::from_header(
            &header,
            accounted(header.file_len()),
        )));
    }
}

/// Opens an object file for reading; `None` when it does not exist.
fn open_object(path: &Path) -> Result<Option<rustix::fd::OwnedFd>> {
    match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(err) => Err(Error::io("open", path, os(err))),
    }
}

/// Whether the file no longer holds `header`, read before its shared lock
/// was taken: it was recycled in between. Read again under the lock, where
/// it can no longer change, and before anything is checked against it.
fn header_changed(fd: &rustix::fd::OwnedFd, header: &Header, path: &Path) -> bool {
    let mut again = [0u8; FIRST_READ];
    !read_header(fd, &mut again, path).is_ok_and(|(now, _)| now == *header)
}

/// Reads the start of the file into `first` and decodes the header, reading
/// more when the header is longer. Returns the header and the bytes in `first`.
fn read_header(fd: impl AsFd, first: &mut [u8], path: &Path) -> Result<(Header, usize)> {
    // One pread: a regular file's read comes back short only at its end, and
    // reading on to prove it would cost a second system call on every get.
    let got = loop {
        match rustix::io::pread(&fd, &mut *first, 0) {
            Ok(n) => break n,
            Err(Errno::INTR) => {}
            Err(err) => return Err(Error::io("read", path, os(err))),
        }
    };
    let header_len = Header::needed_len(&first[..got], path)?;
    let header = if header_len <= got {
        Header::decode(&first[..header_len], path)?
    } else {
        let mut bytes = vec![0u8; header_len];
        let n = read_full(&fd, &mut bytes, 0).map_err(|e| Error::io("read", path, e))?;
        Header::decode(&bytes[..n], path)?
    };
    Ok((header, got))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that read a header, then lost a race to a writer that
    /// recycled the file, must not pair that header with the new bytes, nor
    /// take the new length for corruption, on the mapped path and on the
    /// read-into-memory one.
    #[test]
    fn a_header_read_before_the_file_was_recycled_is_not_trusted() {
        let len = 2 << 20;
        for small_object_limit in [DEFAULT_SMALL_OBJECT_LIMIT, 4 << 20] {
            for republished in [len, len * 3 / 4] {
                let dir = tempfile::Builder::new()
                    .prefix("brain-core-unit")
                    .tempdir_in("/dev/shm")
                    .unwrap();
                let store = Store::builder()
                    .path(dir.path().join("store"))
                    .mapping_cache(0)
                    .small_object_limit(small_object_limit)
                    .open()
                    .unwrap();
                let put = |byte: u8, len: usize| {
                    store
                        .put("n", "x", &Payload::bytes(&vec![byte; len]))
                        .unwrap()
                };
                put(1, len);
                let key = ObjectKey::new("n", "x");
                let path = store.object_path("n", key);
                let fd = open_object(&path).unwrap().unwrap();
                let mut first = MutableBuffer::from_len_zeroed(FIRST_READ);
                let (header, got) = read_header(&fd, first.as_slice_mut(), &path).unwrap();
                // The first file goes to the pool, and the next write refills it.
                put(2, len);
                put(3, republished);
                let (open, named) = (
                    rustix::fs::fstat(&fd).unwrap(),
                    rustix::fs::stat(&path).unwrap(),
                );
                assert_eq!(open.st_ino, named.st_ino, "the first file was not reused");
                let read = store.read_payload(key, &path, &fd, &header, first, got);
                assert!(
                    matches!(read, Ok(None)),
                    "limit {small_object_limit}, {republished} bytes: {read:?} instead of a retry"
                );
                let now = store.get("n", "x").unwrap().unwrap();
                assert_eq!((now[0], now.len()), (3, republished));
            }
        }
    }

    /// A writer that claims a pooled file zeroes its magic before anything
    /// else, so a reader holding a descriptor from the file's old life
    /// cannot read the old header over new bytes, even if the writer dies.
    #[test]
    fn a_claimed_file_stops_looking_like_its_old_object_at_once() {
        let dir = tempfile::Builder::new()
            .prefix("brain-core-unit")
            .tempdir_in("/dev/shm")
            .unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let len = 2usize << 20;
        store
            .put("n", "x", &Payload::bytes(&vec![1u8; len]))
            .unwrap();
        let path = store.object_path("n", ObjectKey::new("n", "x"));
        let stale = open_object(&path).unwrap().unwrap();
        store
            .put("n", "x", &Payload::bytes(&vec![2u8; len]))
            .unwrap();
        let mut writer = store
            .writer("n", "y", Codec::Raw, "", Some(len as u64))
            .unwrap();
        writer.write_payload(&vec![3u8; 4096]).unwrap();
        let mut first = [0u8; FIRST_READ];
        assert!(
            read_header(&stale, &mut first, &path).is_err(),
            "the claimed file still reads as the old object"
        );
        drop(writer);
        assert!(store.get("n", "y").unwrap().is_none());
    }
}
