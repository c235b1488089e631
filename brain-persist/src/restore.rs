//! `restore`: a dump back into a store, checked whole before anything is
//! written; and opening a store that restores itself when it is empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brain_core::frames::{self, part_owner};
use brain_core::{Codec, ObjectStore};

use crate::error::{Error, Result};
use crate::format::{Entry, MANIFEST_FILE};
use crate::progress::{Phase, Progress, Reporter};
use crate::reader::{DumpReader, Scratch};

/// What a restore does with an object whose name already exists in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnConflict {
    /// Replaces the object in the store with the dump's.
    Overwrite,
    /// Keeps the object in the store; the dump's is not restored.
    Skip,
    /// Refuses the whole restore before writing anything (the default).
    #[default]
    Fail,
}

/// What to restore, and how.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Only this namespace of the dump; `None` (the default) for all.
    pub namespace: Option<String>,
    /// What to do with names that already exist (default: fail).
    pub on_conflict: OnConflict,
    /// How to report progress (default: not at all).
    pub progress: Progress,
}

impl RestoreOptions {
    /// The defaults: every namespace, fail on conflicts, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores only `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets what to do with names that already exist.
    #[must_use]
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        self.on_conflict = on_conflict;
        self
    }

    /// Sets how progress is reported.
    #[must_use]
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The dump's directory.
    pub path: PathBuf,
    /// Names written into the store (a frame in parts counts once, its
    /// parts with it).
    pub restored: u64,
    /// Names left out because they existed ([`OnConflict::Skip`]).
    pub skipped: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Restores the dump at `path` into `store`.
///
/// Nothing is written until the whole dump has been checked: its manifest
/// and format version, every index entry, and every payload file (its
/// length, and each frame's compressed bytes against the checksum the
/// index records; read, not decompressed). Then conflicts are resolved and
/// the room needed is compared with the store's free space. Only then are
/// objects written, each decompressed on one thread per core (checking
/// zstd's frame checksums and the payload's own checksum again), streamed
/// into an [`ObjectStore::writer`] frame by frame in order, and published
/// atomically. Memory stays a few frames.
///
/// Objects keep their namespace, name, codec and description; their
/// creation time is the time of the restore (the dump's is shown by
/// [`crate::list_dump`]).
///
/// One restore of a store runs at a time: this waits while another holds
/// the store's lock on `brain-persist/auto-restore`.
///
/// While objects are written, the dump's directory holds a mark naming the
/// store (see "Restore marks" in docs/FORMAT.md), removed once every object
/// is in. A restore killed part-way leaves it: [`auto_restore`] finishes
/// such a restore, and a [`crate::sync`] of the store into the directory
/// finishes it before it mirrors any deletion, instead of taking the
/// objects not restored yet for deleted ones. A directory that cannot be
/// written to gets no mark.
///
/// # Errors
/// Before anything is written: [`Error::DumpNotFound`], [`Error::NotADump`],
/// [`Error::MissingManifest`], [`Error::CorruptManifest`],
/// [`Error::UnsupportedVersion`], [`Error::CorruptIndex`],
/// [`Error::MissingPayload`], [`Error::TruncatedPayload`],
/// [`Error::CorruptPayload`], [`Error::ChecksumMismatch`],
/// [`Error::NamespaceNotInDump`], [`Error::Conflict`], [`Error::StoreFull`].
/// While writing: [`Error::Store`] (another process filled the store in the
/// meantime, say), or a payload damaged since it was checked; the objects
/// written before stay.
pub fn restore(
    store: &dyn ObjectStore,
    path: impl AsRef<Path>,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    // One restore of a store at a time, and a sign to a sync that finds its
    // mark that it is running: the sync holds its deletions back instead of
    // taking the mark for one a killed process left and running a second
    // restore beside it.
    let _lock = lock_for_restore(store)?;
    restore_locked(store, path.as_ref(), options)
}

/// [`restore`], the store's restore lock held by the caller.
fn restore_locked(
    store: &dyn ObjectStore,
    path: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let dump = DumpReader::open(path)?;
    let selected: Vec<&Entry> = match &options.namespace {
        None => dump.entries.iter().collect(),
        Some(ns) => {
            let chosen: Vec<&Entry> = dump.entries.iter().filter(|e| e.namespace == *ns).collect();
            if chosen.is_empty() {
                return Err(Error::NamespaceNotInDump {
                    path: dump.path.clone(),
                    namespace: ns.clone(),
                });
            }
            chosen
        }
    };

    // Which names exist already, and what they would free when replaced.
    let mut plan = Vec::with_capacity(selected.len());
    let mut conflicts: Vec<&Entry> = Vec::new();
    let mut freed_by = Vec::with_capacity(selected.len());
    // A frame in parts restored over leaves its parts unreferenced: they
    // are swept once the restore is done.
    let mut replaced_frames = std::collections::BTreeSet::new();
    for entry in selected {
        let existing = store
            .metadata(&entry.namespace, &entry.name)
            .map_err(|e| Error::store_obj("check", &entry.namespace, &entry.name, e))?;
        match (existing, options.on_conflict) {
            (None, _) => {
                plan.push(entry);
                freed_by.push(0);
            }
            (Some(meta), OnConflict::Overwrite) => {
                if meta.codec == Codec::FrameParts {
                    replaced_frames.insert(entry.namespace.as_str());
                }
                plan.push(entry);
                freed_by.push(meta.stored_size);
                conflicts.push(entry);
            }
            (Some(_), _) => conflicts.push(entry),
        }
    }
    // Counts are of names: a frame's parts come and go with it.
    let names = |entries: &[&Entry]| {
        entries
            .iter()
            .filter(|e| part_owner(&e.name).is_none())
            .count() as u64
    };
    if options.on_conflict == OnConflict::Fail {
        if let Some(first) = conflicts.first() {
            // Named as users know it: a part by the frame it is of.
            let name = part_owner(&first.name).unwrap_or(&first.name);
            return Err(Error::Conflict {
                count: names(&conflicts).max(1),
                namespace: first.namespace.clone(),
                name: name.to_owned(),
                interrupted: RestoreMark::of(&dump.path, store).is_set(),
            });
        }
    }
    let skipped = if options.on_conflict == OnConflict::Skip {
        names(&conflicts)
    } else {
        0
    };
    // A frame in parts is its manifest and its parts: the parts of a frame
    // left as it is are not restored (nothing would reference them).
    let kept_frames: std::collections::BTreeSet<(&str, &str)> = conflicts
        .iter()
        .filter(|e| options.on_conflict == OnConflict::Skip && e.codec() == Codec::FrameParts)
        .map(|e| (e.namespace.as_str(), e.name.as_str()))
        .collect();
    let (plan, freed_by): (Vec<&Entry>, Vec<u64>) = plan
        .into_iter()
        .zip(freed_by)
        .filter(|(entry, _)| {
            part_owner(&entry.name)
                .is_none_or(|owner| !kept_frames.contains(&(entry.namespace.as_str(), owner)))
        })
        .unzip();

    // Room: each write reserves its whole size before the object it
    // replaces is released, so the peak along the way is what counts.
    let usage = store
        .usage()
        .map_err(|e| Error::store("read the usage of", e))?;
    let free = usage.free as i128;
    let (mut running, mut peak) = (0i128, 0i128);
    for (entry, freed) in plan.iter().zip(&freed_by) {
        let new = entry.stored_size() as i128;
        peak = peak.max(running + new);
        running += new - *freed as i128;
    }
    if peak > free {
        return Err(Error::StoreFull {
            store: store.location(),
            needed: peak as u64,
            free: free.max(0) as u64,
            used: usage.used,
            capacity: usage
                .capacity
                .unwrap_or(usage.used.saturating_add(usage.free)),
            // Names as listings count them: a frame with its parts is one.
            objects: plan
                .iter()
                .filter(|e| part_owner(&e.name).is_none())
                .count() as u64,
        });
    }

    // Told its length, a writer takes a replaced object's file from the
    // store's pool when one fits (its pages exist already), else allocates
    // every page up front, on this thread, before the first byte is copied.
    // Not told, it allocates pages as the copy reaches them, while the
    // workers decompress the next frames: faster when the pool is empty.
    // Room was checked above either way.
    let expected = usage.recycled > 0;
    let mut scratch = Scratch::new();
    dump.verify(&plan, &options.progress, &mut scratch)?;

    let bytes: u64 = plan.iter().map(|e| e.size).sum();
    // Until every object is in, the store lacks some of the dump's objects
    // that it did not delete: the mark says so to a sync into the dump, and
    // has the next automatic restore finish the job.
    let mark = RestoreMark::of(&dump.path, store);
    mark.set(store, options.namespace.as_deref())?;
    let mut reporter = Reporter::start(
        &options.progress,
        Phase::Restoring,
        bytes,
        plan.len() as u64,
    );
    for entry in &plan {
        let (ns, name) = (&entry.namespace, &entry.name);
        let store_err = |e| Error::store_obj("restore", ns, name, e);
        let mut writer = store
            .writer(
                ns,
                name,
                entry.codec(),
                &entry.description,
                expected.then_some(entry.size),
            )
            .map_err(store_err)?;
        dump.read_payload(entry, &mut scratch, false, |chunk| {
            writer.write_payload(chunk).map_err(store_err)?;
            reporter.bytes(chunk.len() as u64);
            Ok(())
        })?;
        writer.commit().map_err(store_err)?;
        reporter.object();
    }
    for ns in replaced_frames {
        frames::sweep_parts(store, ns, true)
            .map_err(|e| Error::store_ns("remove the replaced frames' parts in", ns, e))?;
    }
    mark.clear()?;
    Ok(RestoreReport {
        path: dump.path.clone(),
        restored: names(&plan),
        skipped,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// The store lock (namespace, name) held while an automatic restore runs.
pub(crate) const RESTORE_LOCK: (&str, &str) = ("brain-persist", "auto-restore");

/// The store's namespaces of its own: those of a host's read cache of a
/// Redis server hold copies of what the server holds, which a sync does not
/// mirror and which do not make a store worth an auto-restore less empty (a
/// reader may fill the cache before the restore runs).
pub(crate) fn own_namespaces(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let mut namespaces = store
        .namespaces()
        .map_err(|e| Error::store("list the namespaces of", e))?;
    namespaces.retain(|ns| !brain_core::is_host_cache_namespace(ns));
    Ok(namespaces)
}

/// True when the store holds no object of its own ([`own_namespaces`]).
pub(crate) fn store_is_empty(store: &dyn ObjectStore) -> Result<bool> {
    for ns in own_namespaces(store)? {
        match store.names(&ns) {
            Ok(names) if !names.is_empty() => return Ok(false),
            Ok(_) => {}
            // Removed while we looked.
            Err(brain_core::Error::NamespaceNotFound { .. }) => {}
            Err(e) => return Err(Error::store_ns("list", &ns, e)),
        }
    }
    Ok(true)
}

/// True when `dir` holds something to restore from (a manifest, or files
/// that make a damaged dump); false when it is missing or empty.
fn has_dump(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.any(|e| {
            e.ok().is_some_and(|e| {
                let name = e.file_name();
                // A sync that stopped before its first commit leaves its
                // locks and an empty data directory: nothing to restore.
                let empty_data = name == crate::format::DATA_DIR
                    && std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_none());
                name != crate::format::LOCK_FILE
                    && name != crate::format::SYNC_LOCK_FILE
                    && !empty_data
                    && !name.to_str().is_some_and(is_restore_mark)
            })
        })),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => Err(Error::io(
            "list",
            dir,
            std::io::Error::new(
                err.kind(),
                format!("{err}; give the directory of a dump or of a `brain sync` mirror (or a path where none is yet)"),
            ),
        )),
        Err(err) => Err(Error::io("list", dir, err)),
    }
}

/// Restores `store` from the dump (or sync mirror) in `persist_dir` when
/// the store holds no object and the directory holds a dump, or when a
/// restore of this store from it began and did not finish (a process killed
/// mid-restore). Returns what was restored, or `None` when nothing needed
/// to be (the store has objects, or there is no dump yet).
///
/// Processes that start together restore once: the check and the restore
/// run under the store's lock on the name `brain-persist/auto-restore`.
/// Objects written meanwhile by others are kept ([`OnConflict::Skip`]).
///
/// A restore killed part-way (this one or a [`restore`]) leaves a mark in
/// the directory: `auto_restore` then finishes it, the objects already
/// restored kept and the others written, although the store is not empty.
///
/// # Errors
/// As [`restore`]: a damaged or foreign directory is an error, not an
/// empty start.
pub fn auto_restore(
    store: &dyn ObjectStore,
    persist_dir: impl AsRef<Path>,
    progress: &Progress,
) -> Result<Option<RestoreReport>> {
    let dir = persist_dir.as_ref();
    if !has_dump(dir)? {
        return Ok(None);
    }
    if !dir.join(MANIFEST_FILE).exists() {
        // A foreign or damaged directory: say which.
        DumpReader::open(dir)?;
    }
    let _lock = lock_for_restore(store)?;
    let mark = RestoreMark::of(dir, store);
    if !mark.is_set() && !store_is_empty(store)? {
        return Ok(None);
    }
    restore_unrestored(store, dir, progress).map(Some)
}

/// What [`finish_interrupted_restore`] found.
pub(crate) enum Unfinished {
    /// No restore of the store from the directory is under way.
    None,
    /// One is running (it holds the restore lock).
    Running,
    /// One was interrupted, and this call finished it.
    Finished(RestoreReport),
}

/// Finishes a restore of `store` from `dir` that began and did not finish
/// (its mark is in `dir`, and no process holds the restore lock). Does not
/// wait for a restore that is running.
pub(crate) fn finish_interrupted_restore(
    store: &dyn ObjectStore,
    dir: &Path,
) -> Result<Unfinished> {
    let mark = RestoreMark::of(dir, store);
    if !mark.is_set() {
        return Ok(Unfinished::None);
    }
    let Some(_lock) = try_lock_for_restore(store).map_err(|e| Error::store("lock", e))? else {
        return Ok(Unfinished::Running);
    };
    if !mark.is_set() {
        // It finished between the two looks.
        return Ok(Unfinished::None);
    }
    restore_unrestored(store, dir, &Progress::Hidden).map(Unfinished::Finished)
}

fn lock_for_restore(store: &dyn ObjectStore) -> Result<brain_core::NameLock> {
    store
        .lock(RESTORE_LOCK.0, RESTORE_LOCK.1, None)
        .map_err(|e| Error::store("lock", e))
}

/// The store's restore lock without waiting: `None` while a restore holds it.
pub(crate) fn try_lock_for_restore(
    store: &dyn ObjectStore,
) -> std::result::Result<Option<brain_core::NameLock>, brain_core::Error> {
    match store.lock(RESTORE_LOCK.0, RESTORE_LOCK.1, Some(Duration::ZERO)) {
        Ok(lock) => Ok(Some(lock)),
        Err(brain_core::Error::LockTimeout { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Restores every object of the dump at `dir` that `store` lacks, from
/// every namespace of the dump: those deleted since the restore began come
/// back too. The caller holds the restore lock.
fn restore_unrestored(
    store: &dyn ObjectStore,
    dir: &Path,
    progress: &Progress,
) -> Result<RestoreReport> {
    let options = RestoreOptions {
        namespace: None,
        on_conflict: OnConflict::Skip,
        progress: progress.clone(),
    };
    restore_locked(store, dir, &options)
}

/// How a restore mark's first line starts: then the namespace restored, as
/// hex of its UTF-8, or `*` for every one.
const MARK_NAMESPACE: &str = "namespace=";

/// The start of the name of a restore mark in a dump directory.
const RESTORE_MARK_PREFIX: &str = "restoring-";

/// True for the file name of a restore mark.
pub(crate) fn is_restore_mark(name: &str) -> bool {
    name.strip_prefix(RESTORE_MARK_PREFIX)
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A dump directory's record that a restore of one store from it began
/// and has not finished: the file `restoring-<hash>`, the hash
/// being the xxh3 of the store's location, so that one directory may serve
/// several stores. Its first line names the namespace restored
/// ([`RestoreMark::namespace`]); the rest is for people.
pub(crate) struct RestoreMark {
    path: PathBuf,
}

impl RestoreMark {
    pub(crate) fn of(dir: &Path, store: &dyn ObjectStore) -> RestoreMark {
        let hash = xxhash_rust::xxh3::xxh3_64(store.location().to_string().as_bytes());
        RestoreMark {
            path: dir.join(format!("{RESTORE_MARK_PREFIX}{hash:016x}")),
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.path.symlink_metadata().is_ok()
    }

    /// The namespace the restore restores: `Some(None)` for every one,
    /// `None` when the mark is gone or says nothing readable.
    pub(crate) fn namespace(&self) -> Option<Option<String>> {
        let mut text = String::new();
        use std::io::Read;
        std::fs::File::open(&self.path)
            .ok()?
            .take(2 * brain_core::MAX_NAMESPACE_LEN as u64 + 64)
            .read_to_string(&mut text)
            .ok()?;
        let value = text.lines().next()?.strip_prefix(MARK_NAMESPACE)?;
        if value == "*" {
            return Some(None);
        }
        crate::format::unhex(value)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Some)
    }

    /// Writes the mark. A directory this process may not write to gets
    /// none: no sync can mirror into it either, so no mirror can lose the
    /// objects not yet restored.
    fn set(&self, store: &dyn ObjectStore, namespace: Option<&str>) -> Result<()> {
        // The first line is read back (`RestoreMark::namespace`); the rest
        // is for people.
        let text = format!(
            "{MARK_NAMESPACE}{}\n\
             A restore of the store at {} from this directory began (process {}, Unix time {}) and has not finished.\n\
             Opening the store with this directory as its persist directory (brain --persist, Brain(persist=...)), or `brain sync` of the store into it, finishes it.\n",
            namespace.map_or_else(|| "*".to_owned(), crate::format::hex_of),
            store.location(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        match written {
            Ok(()) => Ok(()),
            Err(err) if not_writable(&err) => Ok(()),
            Err(err) => Err(Error::io("write the restore mark", &self.path, err)),
        }
    }

    fn clear(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            // Gone, or in a directory made read-only since (no sync can
            // mirror into it either). Such a mark stays: the next automatic
            // restore runs again, skipping the names the store has.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound || not_writable(&err) => Ok(()),
            Err(err) => Err(Error::io("remove the restore mark", &self.path, err)),
        }
    }
}

/// Whether an error says the directory may not be written to, by this user
/// or at all (a read-only filesystem).
fn not_writable(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::PermissionDenied
        || err.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{hex, Manifest};
    use crate::writer::IndexWriter;
    use crate::{dump, verify_dump, DumpOptions};
    use brain_core::{ObjectStore, Payload, Store};

    #[test]
    fn dumps_are_version_1_unless_a_payload_is_packed_and_version_1_has_no_packs() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("s")).unwrap();
        store
            .put("ns", "large", &Payload::bytes(&vec![7; 100 << 10]))
            .unwrap();
        let path = disk.path().join("d");
        dump(&store, &path, &DumpOptions::new()).unwrap();
        assert_eq!(DumpReader::open(&path).unwrap().manifest.format_version, 1);
        store
            .put("ns", "small", &Payload::bytes(b"packed"))
            .unwrap();
        dump(&store, &path, &DumpOptions::new()).unwrap();
        let mut manifest = Manifest::read(&path, None).unwrap().unwrap();
        assert_eq!(manifest.format_version, 2);

        // The same dump, its manifest and index saying version 1.
        let index = path.join(&manifest.index.dir);
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("index");
        IndexWriter::copy_of(&index, &copy)
            .unwrap()
            .finish(1)
            .unwrap();
        std::fs::remove_dir_all(&index).unwrap();
        manifest.index.files = IndexWriter::copy_of(&copy, &index)
            .unwrap()
            .finish(1)
            .unwrap();
        manifest.format_version = 1;
        manifest.write(&path).unwrap();
        let err = DumpReader::open(&path).err().expect("refused");
        assert!(
            matches!(&err, Error::CorruptIndex { detail, .. } if detail.contains("pack file")),
            "{err}"
        );
    }

    /// The names a dump or mirror holds, in its order.
    fn mirrored_names(dir: &Path) -> Vec<String> {
        DumpReader::open(dir)
            .unwrap()
            .entries
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    #[test]
    fn a_sync_mirrors_no_deletion_while_an_interrupted_restore_cannot_be_finished() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("s")).unwrap();
        for name in ["a", "b", "c"] {
            store
                .put(
                    "ns",
                    name,
                    &Payload::bytes(&vec![name.as_bytes()[0]; 1 << 20]),
                )
                .unwrap();
        }
        let mirror = disk.path().join("mirror");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sync_once = || {
            let log = log.clone();
            let options = crate::SyncOptions::new().log(move |line| {
                let mut log = log.lock().unwrap();
                log.push_str(line);
                log.push('\n');
            });
            crate::spawn_sync(std::sync::Arc::new(store.clone()), &mirror, options)
                .unwrap()
                .stop()
                .unwrap()
        };
        sync_once();

        // A restore killed after writing "a": its mark stays, and the store
        // is too small for the rest, so finishing it fails.
        for name in ["b", "c"] {
            store.delete("ns", name).unwrap();
        }
        let mark = RestoreMark::of(&mirror, &store);
        mark.set(&store, None).unwrap();
        store
            .set_capacity(Some(store.usage().unwrap().used + 4096))
            .unwrap();
        sync_once();
        let text = log.lock().unwrap().clone();
        assert!(
            text.contains("cannot finish the interrupted restore"),
            "{text}"
        );
        assert!(text.contains("2 deletions not mirrored"), "{text}");
        assert_eq!(
            mirrored_names(&mirror),
            ["a", "b", "c"],
            "the mirror keeps them"
        );
        assert!(mark.is_set());

        // Given room, the next sync finishes the restore.
        store.set_capacity(None).unwrap();
        sync_once();
        assert!(!mark.is_set());
        assert_eq!(store.names("ns").unwrap(), ["a", "b", "c"]);
        assert_eq!(mirrored_names(&mirror), ["a", "b", "c"]);
        assert!(log.lock().unwrap().contains("finished a restore"));
    }

    #[test]
    fn a_sync_holds_deletions_while_a_restore_runs_and_mirrors_them_after() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("s")).unwrap();
        for name in ["a", "b", "c"] {
            store
                .put("ns", name, &Payload::bytes(name.as_bytes()))
                .unwrap();
        }
        let mirror = disk.path().join("mirror");
        let options = || {
            crate::SyncOptions::new()
                .interval(Duration::from_millis(100))
                .rescan(Duration::from_secs(3600))
        };
        crate::spawn_sync(std::sync::Arc::new(store.clone()), &mirror, options())
            .unwrap()
            .stop()
            .unwrap();
        let mirrored = || mirrored_names(&mirror);

        // A restore under way: its lock held, its mark written.
        let lock = lock_for_restore(&store).unwrap();
        let mark = RestoreMark::of(&mirror, &store);
        mark.set(&store, None).unwrap();
        let sync =
            crate::spawn_sync(std::sync::Arc::new(store.clone()), &mirror, options()).unwrap();
        store.delete("ns", "b").unwrap();
        store.put("ns", "d", &Payload::bytes(b"d")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !mirrored().contains(&"d".to_owned()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            mirrored(),
            ["a", "b", "c", "d"],
            "writes go on, the deletion waits"
        );
        let commits = sync.stats().commits;
        assert!(commits <= 3, "{commits} commits for one write");

        // The restore ends: the deletion is mirrored.
        mark.clear().unwrap();
        drop(lock);
        while mirrored().contains(&"b".to_owned()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        sync.stop().unwrap();
        assert_eq!(mirrored(), ["a", "c", "d"]);
    }

    /// Records a wrong checksum for frame 1 of `name` in the dump's index
    /// (rewriting the index and the manifest's record of it).
    fn tamper_frame_checksum(dump_dir: &Path, name: &str) {
        let reader = DumpReader::open(dump_dir).unwrap();
        let mut entry = reader
            .entries
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .clone();
        let index = dump_dir.join(&reader.manifest.index.dir);
        drop(reader);
        entry.frame_xxh3[1] = hex(!entry.frame_checksum(1));
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("index");
        let writer = IndexWriter::copy_of(&index, &copy).unwrap();
        writer.insert(&entry).unwrap();
        let mut manifest = Manifest::read(dump_dir, None).unwrap().unwrap();
        writer.finish(manifest.format_version).unwrap();
        std::fs::remove_dir_all(&index).unwrap();
        let files = IndexWriter::copy_of(&copy, &index)
            .unwrap()
            .finish(manifest.format_version)
            .unwrap();
        manifest.index.files = files;
        manifest.write(dump_dir).unwrap();
    }

    #[test]
    fn compressed_bytes_that_differ_from_the_index_are_refused_before_writing() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("source")).unwrap();
        // Three frames, each decoding cleanly: only the recorded checksum
        // of the compressed bytes tells frame 1 apart.
        let payload: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
        store.put("ns", "big", &Payload::bytes(&payload)).unwrap();
        store.put("ns", "small", &Payload::bytes(b"hello")).unwrap();
        let dump_dir = disk.path().join("dump");
        dump(&store, &dump_dir, &DumpOptions::new()).unwrap();
        tamper_frame_checksum(&dump_dir, "big");

        let target = Store::open(shm.path().join("target")).unwrap();
        let err = restore(&target, &dump_dir, &RestoreOptions::new()).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptPayload { name, frame: 1, detail, .. }
                if name == "big" && detail.contains("compressed bytes")),
            "{err:?}"
        );
        assert!(err.is_bad_dump());
        assert!(target.namespaces().unwrap().is_empty(), "nothing written");
        let err = verify_dump(&dump_dir, &Progress::Hidden).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptPayload { frame: 1, .. }),
            "{err:?}"
        );
    }
}
