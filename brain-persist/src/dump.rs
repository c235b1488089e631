//! `dump`: a consistent copy of a store (or one namespace) on disk, written
//! beside the target and swapped into place.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use brain_core::frames::{is_frame_part, table_from_view, StoredTable};
use brain_core::{Codec, ObjectStore};
use rustix::fs::{FlockOperation, RenameFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::format::{
    self, index_dir_name, sync_dir, sync_filesystem, unix_nanos, DumpKind, IndexRef, Manifest,
    DATA_DIR, LOCK_FILE, MAGIC, MANIFEST_FILE, SYNC_LOCK_FILE,
};
use crate::progress::{Phase, Progress, Reporter};
use crate::writer::{new_dump_id, FrameWriter, IndexWriter, PayloadFiles};

/// The zstd level used unless another is given.
pub const DEFAULT_LEVEL: i32 = 3;

/// What to dump, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Only this namespace; `None` (the default) for every namespace.
    pub namespace: Option<String>,
    /// The zstd compression level (1 to 22, or negative for faster; default
    /// 3). A frame of 128 KiB or more that this level shrinks by less than
    /// 1/8 is stored at level -1 instead, which decodes several times
    /// faster (see the dump format in `docs/FORMAT.md`). Four 32 KiB
    /// samples of each frame are tried first, so a frame of random floats
    /// costs the level's work on the samples only.
    pub level: i32,
    /// How to report progress (default: not at all).
    pub progress: Progress,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            namespace: None,
            level: DEFAULT_LEVEL,
            progress: Progress::Hidden,
        }
    }
}

impl DumpOptions {
    /// The defaults: every namespace, level 3, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dumps only `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the zstd level.
    #[must_use]
    pub fn level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Sets how progress is reported.
    #[must_use]
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
}

/// What a dump wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpReport {
    /// The dump's directory.
    pub path: PathBuf,
    /// Names dumped (a frame changed in place counts once, its parts with it).
    pub objects: u64,
    /// Namespaces dumped (those with at least one object).
    pub namespaces: u64,
    /// Uncompressed payload bytes.
    pub payload_bytes: u64,
    /// Bytes of the payload files.
    pub compressed_bytes: u64,
    /// Objects listed but deleted before they could be read (not in the dump).
    pub vanished: u64,
    /// Namespaces of a host's read cache of a Redis server, left out of a
    /// dump of every namespace: their objects are copies of what the server
    /// holds ([`brain_core::is_host_cache_namespace`]). Naming one in
    /// [`DumpOptions::namespace`] dumps it.
    pub cache_namespaces_left_out: Vec<String>,
    /// Where the previous dump was left, when a reader still held it open
    /// (it is removed by the next dump once no one reads it) or it could
    /// not be removed.
    pub previous_kept_at: Option<PathBuf>,
    /// Why the previous dump was left there, and what to do.
    pub previous_kept_because: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Writes a dump of `store` (every namespace, or `options.namespace`) to
/// the directory `path`. A dump of every namespace leaves out those of a
/// host's read cache ([`DumpReport::cache_namespaces_left_out`]).
///
/// Each object is dumped from one [`brain_core::ObjectView`], so it is a
/// complete value as of one moment even while writers replace it; objects
/// are read one after the other, so the dump as a whole is not a snapshot
/// of one instant. The dump is written into `PATH.tmp-<pid>-<time>` beside
/// `path`, flushed to disk, and swapped into place in one atomic rename:
/// a process killed at any point leaves the previous dump intact at `path`
/// (and the next dump removes the leftover temporary directory).
///
/// Memory stays bounded whatever the objects' sizes: payloads are
/// compressed from the zero-copy view in frames of a few MiB, on one
/// thread per core with a few frames in flight (eight, on up to seven
/// cores). Each payload file
/// is flushed to disk in the background as it is written, so the final
/// flush before the swap finds little left to write.
///
/// # Errors
/// [`Error::RefusedTarget`] when `path` holds something that is not a dump;
/// [`Error::SyncRunning`] when a `brain sync` mirrors into it;
/// [`Error::Store`] when the store fails (for a namespace that does not
/// exist, with [`brain_core::Error::NamespaceNotFound`]); I/O errors. On any
/// error the previous dump at `path` is left as it was.
pub fn dump(
    store: &dyn ObjectStore,
    path: impl AsRef<Path>,
    options: &DumpOptions,
) -> Result<DumpReport> {
    let started = Instant::now();
    let path = path.as_ref();
    let (parent, base) = split_path(path)?;
    check_target(path)?;
    refuse_inside_store(store, path)?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("create the directory", &parent, e))?;
    clean_leftovers(&parent, &base);

    let namespaces = store
        .namespaces()
        .map_err(|e| Error::store("list the namespaces of", e))?;
    let namespaces = match &options.namespace {
        Some(ns) if namespaces.contains(ns) => vec![ns.clone()],
        Some(ns) => {
            return Err(Error::store_ns(
                "dump",
                ns,
                brain_core::Error::NamespaceNotFound {
                    namespace: ns.clone(),
                },
            ))
        }
        None => namespaces,
    };
    let (cache_namespaces, namespaces): (Vec<String>, Vec<String>) = match &options.namespace {
        Some(_) => (Vec::new(), namespaces),
        None => namespaces
            .into_iter()
            .partition(|ns| brain_core::is_host_cache_namespace(ns)),
    };
    let mut metas = Vec::new();
    for ns in &namespaces {
        metas.extend(store.list(ns).map_err(|e| Error::store_ns("list", ns, e))?);
        refuse_damaged(store, ns)?;
    }

    let tmp = TempDir::create(parent.join(format!(
        "{base}.tmp-{}-{:x}",
        std::process::id(),
        unix_nanos(SystemTime::now())
    )))?;
    let data = tmp.path.join(DATA_DIR);
    format::create_private_dir(&data)?;
    let generation = 1;
    let dump_id = new_dump_id(path);
    let index_dir = index_dir_name(generation);
    let index = IndexWriter::create(&tmp.path.join(&index_dir), &dump_id)?;
    let mut frames = FrameWriter::new(options.level)?;
    let total = metas.iter().map(|m| m.size).sum();
    // A frame's parts are dumped with its manifest, as read together: parts
    // listed on their own could be of another version than the manifest read
    // later, and parts no manifest references are not worth keeping.
    metas.retain(|m| !is_frame_part(&m.name));
    let mut reporter =
        Reporter::start(&options.progress, Phase::Dumping, total, metas.len() as u64);
    let mut files = PayloadFiles::new(data.clone(), generation);
    let mut packed = false;
    // Entries of the index (a frame changed in place is one per part, and
    // one for its manifest), and names dumped.
    let (mut entries, mut objects) = (0, 0);
    let (mut payload_bytes, mut compressed_bytes, mut vanished) = (0, 0, 0);
    let mut dumped_namespaces = std::collections::BTreeSet::new();
    for meta in &metas {
        // Checked against the checksum its writer stored: a payload damaged
        // in memory is refused, not written into the dump as if it were good.
        let read_error = |e| Error::store_obj("read", &meta.namespace, &meta.name, e);
        let view = store
            .get_verified(&meta.namespace, &meta.name)
            .map_err(read_error)?;
        let Some(view) = view else {
            vanished += 1;
            reporter.object();
            continue;
        };
        let views = if view.meta().codec == Codec::FrameParts {
            match table_from_view(store, view) {
                Ok(StoredTable::Parts(frame)) => {
                    frame.verify(&store.location()).map_err(read_error)?;
                    std::iter::once(frame.view().clone())
                        .chain(frame.parts().iter().cloned())
                        .collect()
                }
                Ok(StoredTable::Whole(view)) => vec![view],
                // Deleted while it was read.
                Err(brain_core::Error::NotFound { .. }) => {
                    vanished += 1;
                    reporter.object();
                    continue;
                }
                // Replaced by something other than a table while it was read.
                Err(brain_core::Error::CodecMismatch { .. }) => {
                    match store
                        .get_verified(&meta.namespace, &meta.name)
                        .map_err(read_error)?
                    {
                        Some(view) if view.meta().codec != Codec::FrameParts => vec![view],
                        _ => {
                            vanished += 1;
                            reporter.object();
                            continue;
                        }
                    }
                }
                Err(err) => return Err(read_error(err)),
            }
        } else {
            vec![view]
        };
        for view in views {
            let entry = frames.write(&mut files, &view, |n| reporter.bytes(n))?;
            packed |= entry.offset.is_some();
            drop(view);
            index.insert(&entry)?;
            entries += 1;
            payload_bytes += entry.size;
            compressed_bytes += entry.file_len;
            dumped_namespaces.insert(entry.namespace);
        }
        objects += 1;
        reporter.object();
    }
    drop(reporter);
    frames.flushed()?;
    let format_version = format::format_version(packed);
    let index_files = index.finish(format_version)?;
    let manifest = Manifest {
        magic: MAGIC.into(),
        format_version,
        kind: DumpKind::Dump,
        dump_id,
        generation,
        written_unix_ns: unix_nanos(SystemTime::now()),
        writer: writer_name(),
        namespace: options.namespace.clone(),
        objects: entries,
        payload_bytes,
        compressed_bytes,
        index: IndexRef {
            dir: index_dir,
            files: index_files,
        },
    };
    manifest.write(&tmp.path)?;
    sync_filesystem(&tmp.path)?;
    swap_into_place(&tmp.path, path)?;
    // The temporary name now holds the previous dump, or nothing.
    let (previous_kept_at, previous_kept_because) = tmp.remove()?.unzip();
    sync_dir(&parent)?;
    Ok(DumpReport {
        path: path.to_owned(),
        objects,
        namespaces: dumped_namespaces.len() as u64,
        payload_bytes,
        compressed_bytes,
        vanished,
        cache_namespaces_left_out: cache_namespaces,
        previous_kept_at,
        previous_kept_because,
        elapsed: started.elapsed(),
    })
}

pub(crate) fn writer_name() -> String {
    format!("brain-persist {}", env!("CARGO_PKG_VERSION"))
}

/// Stops a dump of a namespace that holds objects no one can read
/// (`ObjectStore::damaged`): a dump without them would look whole and not be.
fn refuse_damaged(store: &dyn ObjectStore, ns: &str) -> Result<()> {
    let damaged = store
        .damaged(ns)
        .map_err(|e| Error::store_ns("list", ns, e))?;
    let Some(first) = damaged.first() else {
        return Ok(());
    };
    let more = match damaged.len() {
        1 => String::new(),
        n => format!(" (and {} more damaged objects)", n - 1),
    };
    Err(Error::store_ns(
        "dump",
        ns,
        brain_core::Error::Corrupt {
            location: first.location.clone(),
            reason: format!(
                "{}{more}; the dump stopped rather than leave it out: `brain fsck` lists the damaged objects and `brain fsck --delete-corrupt` removes them (bring them back from an earlier dump first if you have one), then dump again",
                first.reason
            ),
        },
    ))
}

/// The parent directory (`.` when none) and the final name of `path`.
fn split_path(path: &Path) -> Result<(PathBuf, String)> {
    let refuse = |reason: &str| Error::RefusedTarget {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let base = path
        .file_name()
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| refuse("it has no final name (give a path like ./backup)"))?
        .to_str()
        .ok_or_else(|| refuse("its final name is not UTF-8 (give a name in UTF-8)"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((parent, base.to_owned()))
}

/// Refuses a dump or mirror at `path` inside the directory of the store it
/// copies: it would live in the store's own memory (a tmpfs), and a reboot
/// or a wipe of the store would take it along.
pub(crate) fn refuse_inside_store(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    let Some(root) = store.location().path().map(Path::to_owned) else {
        return Ok(());
    };
    let Ok(root) = root.canonicalize() else {
        return Ok(());
    };
    // The path as given, its `..` taken lexically (it may not exist yet),
    // then its deepest existing ancestor resolved (symbolic links) and the
    // rest put back.
    let absolute = std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))?;
    let mut lexical = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(resolved) => break resolved,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => return Ok(()),
            },
        }
    };
    let target = rest.iter().rev().fold(resolved, |at, name| at.join(name));
    if target.starts_with(&root) {
        return Err(Error::RefusedTarget {
            path: path.to_owned(),
            reason: format!(
                "it lies inside the store it would copy ({}), in the same memory: a reboot or a wipe of the store would take it along; give a directory on disk",
                root.display()
            ),
        });
    }
    Ok(())
}

/// Refuses to replace anything but a dump (intact or damaged) or an empty
/// directory, and a directory a running sync mirrors into.
fn check_target(path: &Path) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::RefusedTarget {
            path: path.to_owned(),
            reason: reason.into(),
        })
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::io("inspect", path, err)),
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link");
    }
    if !meta.is_dir() {
        return refuse("it exists and is not a directory");
    }
    if sync_running(path) {
        return Err(Error::SyncRunning {
            path: path.to_owned(),
        });
    }
    match Manifest::read(path, None) {
        Ok(Some(_)) | Err(Error::CorruptManifest { .. }) => return Ok(()),
        Err(Error::UnsupportedVersion { found, .. }) => {
            return refuse(&format!(
                "it holds a dump in format version {found}, which this build cannot read"
            ))
        }
        Err(Error::NotADump { reason, .. }) => return refuse(&reason),
        Err(err) => return Err(err),
        Ok(None) => {}
    }
    let names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| Error::io("list", path, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let ours = |n: &String| {
        n == DATA_DIR
            || n == LOCK_FILE
            || n == SYNC_LOCK_FILE
            || crate::restore::is_restore_mark(n)
            || n.starts_with(MANIFEST_FILE)
            || format::is_index_dir_name(n)
    };
    if names.iter().all(ours) {
        Ok(())
    } else {
        refuse("it is a directory that holds other files than a brain dump")
    }
}

/// True when a sync holds the directory's sync lock.
pub(crate) fn sync_running(dir: &Path) -> bool {
    let Ok(file) = crate::format::open_lock(&dir.join(SYNC_LOCK_FILE)) else {
        return false;
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => false,
        Err(err) => err == Errno::WOULDBLOCK,
    }
}

/// Removes what dumps killed part-way left beside `base`: temporary
/// directories of processes that no longer run. A previous dump moved aside
/// by the fallback swap is moved back when the target is missing.
fn clean_leftovers(parent: &Path, base: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let target = parent.join(base);
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((kind, rest)) = name.strip_prefix(base).and_then(|r| {
            r.strip_prefix(".tmp-")
                .map(|r| ("tmp", r))
                .or_else(|| r.strip_prefix(".old-").map(|r| ("old", r)))
        }) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        if kind == "old" && !target.exists() && std::fs::rename(&path, &target).is_ok() {
            continue;
        }
        remove_if_unread(&path);
    }
}

/// What [`remove_if_unread`] did.
pub(crate) enum Removal {
    Removed,
    /// A reader holds the dump's lock: it stays.
    Read,
    /// It could not be removed (permissions, say).
    Failed(std::io::Error),
}

/// Removes a dump directory unless a reader holds its lock.
pub(crate) fn remove_if_unread(dir: &Path) -> Removal {
    if let Ok(lock) = crate::format::open_lock(&dir.join(LOCK_FILE)) {
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Removal::Read;
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Removal::Removed,
        Err(_) if !dir.exists() => Removal::Removed,
        Err(err) => Removal::Failed(err),
    }
}

/// Puts the finished dump at `tmp` in place at `path` in one atomic step;
/// what was at `path` ends up at `tmp`.
fn swap_into_place(tmp: &Path, path: &Path) -> Result<()> {
    loop {
        match rustix::fs::renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => {}
            Err(Errno::INVAL) | Err(Errno::NOSYS) => return swap_by_two_renames(tmp, path),
            Err(err) => return Err(Error::io("move the new dump to", path, err.into())),
        }
        match rustix::fs::renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // Removed between the two calls: the plain rename again.
            Err(Errno::NOENT) => continue,
            Err(Errno::INVAL) | Err(Errno::NOSYS) => return swap_by_two_renames(tmp, path),
            Err(err) => return Err(Error::io("swap the new dump into", path, err.into())),
        }
    }
}

/// For filesystems without `renameat2` flags: the old dump is renamed
/// aside, the new one into place, and the old one to the temporary name.
/// A crash between the first two renames leaves the old dump at
/// `PATH.old-<pid>-...`, which the next dump moves back.
fn swap_by_two_renames(tmp: &Path, path: &Path) -> Result<()> {
    let (parent, base) = split_path(path)?;
    let aside = parent.join(format!(
        "{base}.old-{}-{:x}",
        std::process::id(),
        unix_nanos(SystemTime::now())
    ));
    let moved = match std::fs::rename(path, &aside) {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(Error::io("move the previous dump aside from", path, err)),
    };
    if let Err(err) = std::fs::rename(tmp, path) {
        if moved {
            let _ = std::fs::rename(&aside, path);
        }
        return Err(Error::io("move the new dump to", path, err));
    }
    if moved {
        std::fs::rename(&aside, tmp).map_err(|e| Error::io("rename", &aside, e))?;
    }
    Ok(())
}

/// A directory removed on drop (unless readers hold it).
struct TempDir {
    path: PathBuf,
    done: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<TempDir> {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                let advice = "a dump is written beside its directory and swapped into place: give a path on a filesystem where you can create directories";
                Error::io(
                    "create the directory",
                    &path,
                    std::io::Error::new(e.kind(), format!("{e}; {advice}")),
                )
            })?;
        let dir = TempDir { path, done: false };
        let lock = dir.path.join(LOCK_FILE);
        File::create(&lock).map_err(|e| Error::io("create", &lock, e))?;
        Ok(dir)
    }

    /// Removes the directory now; returns its path and why, when it stays.
    fn remove(mut self) -> Result<Option<(PathBuf, String)>> {
        self.done = true;
        if !self.path.exists() {
            return Ok(None);
        }
        Ok(match remove_if_unread(&self.path) {
            Removal::Removed => None,
            Removal::Read => Some((
                self.path.clone(),
                "a reader still has it open; the next dump removes it".into(),
            )),
            Removal::Failed(err) => Some((
                self.path.clone(),
                format!("it could not be removed ({err}); remove it by hand"),
            )),
        })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.done {
            remove_if_unread(&self.path);
        }
    }
}
