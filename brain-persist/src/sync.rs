//! `sync`: a live mirror of a store in a dump directory, written as the
//! store changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use brain_core::{ObjectKey, ObjectMeta, ObjectStore, ObjectView, WatchEvent, Watcher};
use rustix::fs::FlockOperation;
use rustix::io::Errno;
use xxhash_rust::xxh3::xxh3_64;

use crate::dump::writer_name;
use crate::error::{Error, Result};
use crate::format::{
    self, index_dir_name, sync_filesystem, unix_nanos, DumpKind, Entry, IndexRef, Manifest,
    DATA_DIR, LOCK_FILE, MAGIC, MANIFEST_FILE, SYNC_LOCK_FILE, UNPACKED_VERSION,
};
use crate::reader::DumpReader;
use crate::restore::{
    finish_interrupted_restore, is_restore_mark, own_namespaces, store_is_empty,
    try_lock_for_restore, RestoreMark, Unfinished,
};
use crate::writer::{new_dump_id, FrameWriter, IndexWriter, PayloadFiles};

/// How often the loop wakes to check its timers.
const TICK: Duration = Duration::from_millis(50);
/// A change is written once no other change came for this long...
const SETTLE: Duration = Duration::from_millis(100);
/// ...and deletions wait at most this long for changes to settle, so a
/// store being wiped is seen empty before its deletions would be written.
const DELETE_HOLD_MAX: Duration = Duration::from_secs(10);
/// How often, once a restore's mark is gone, the sync looks whether the
/// restore is over (its lock free).
const RESTORE_LOOK: Duration = Duration::from_millis(200);
/// How long after failing to finish an interrupted restore it is tried again.
const RESTORE_RETRY: Duration = Duration::from_secs(5);
/// How often the loop checks that it still watches the store's directory.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// A commit is made at least every this many objects or bytes written.
const COMMIT_OBJECTS: usize = 512;
const COMMIT_BYTES: u64 = 1 << 30;

/// A function that receives the sync's log lines.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// How a sync runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The longest a change waits before it is written while the store
    /// keeps changing (default 500 ms). A change followed by quiet is
    /// written after 100 ms.
    pub interval: Duration,
    /// How often the whole store is compared with the mirror, to catch what
    /// events cannot tell (default 60 s).
    pub rescan: Duration,
    /// Mirror an empty or missing store as the deletion of everything
    /// (default: no, the mirror keeps its objects and says so).
    pub mirror_deletes_on_wipe: bool,
    /// The zstd level (default 3).
    pub level: i32,
    /// Receives a line for each commit and for what the sync decided
    /// (default: none).
    pub log: Option<LogFn>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            interval: Duration::from_millis(500),
            rescan: Duration::from_secs(60),
            mirror_deletes_on_wipe: false,
            level: crate::dump::DEFAULT_LEVEL,
            log: None,
        }
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("interval", &self.interval)
            .field("rescan", &self.rescan)
            .field("mirror_deletes_on_wipe", &self.mirror_deletes_on_wipe)
            .field("level", &self.level)
            .field("log", &self.log.as_ref().map(|_| ".."))
            .finish()
    }
}

impl SyncOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the longest a change waits while the store keeps changing.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets how often the whole store is compared with the mirror.
    #[must_use]
    pub fn rescan(mut self, rescan: Duration) -> Self {
        self.rescan = rescan;
        self
    }

    /// Sets whether an empty store is mirrored as deletions.
    #[must_use]
    pub fn mirror_deletes_on_wipe(mut self, on: bool) -> Self {
        self.mirror_deletes_on_wipe = on;
        self
    }

    /// Sets the zstd level.
    #[must_use]
    pub fn level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Sets the log function.
    #[must_use]
    pub fn log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.log = Some(Arc::new(log));
        self
    }
}

/// What a sync has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Commits of the mirror's index.
    pub commits: u64,
    /// Objects whose payload was written.
    pub objects_written: u64,
    /// Payload bytes written (uncompressed).
    pub bytes_written: u64,
    /// Objects whose payload was already mirrored under another creation
    /// time (after a restore, say): only their index entry was rewritten.
    pub objects_relinked: u64,
    /// Objects deleted from the mirror.
    pub objects_deleted: u64,
    /// Objects found already mirrored when the sync started.
    pub objects_unchanged_at_start: u64,
    /// Times the store was found empty while the mirror was not, and the
    /// mirror kept its objects.
    pub wipes_ignored: u64,
    /// Objects the mirror holds.
    pub mirrored_objects: u64,
    /// Whether the first comparison of the store with the mirror is done.
    pub started: bool,
    /// When the last commit was written.
    pub last_commit: Option<SystemTime>,
}

/// Tells a running sync to stop (it writes what is pending first).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the sync to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the sync was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Mirrors `store` into the directory `dir` until `stop` is raised.
///
/// The directory holds a dump in the same format as [`crate::dump`] (its
/// kind is `sync`), so [`crate::restore`] and
/// [`crate::auto_restore`] read it, even while the sync runs. It is
/// created when missing; an existing dump or mirror is taken over; anything
/// else is refused.
///
/// On start the store is compared with the mirror by creation time and
/// size, and only the differences are written (objects whose creation time
/// changed but whose bytes did not, as after a restore, only get a new
/// index entry). Then changes are taken from brain-core's [`Watcher`]:
/// a change is on disk 100 ms after the store settles, and at most
/// `interval` later while it keeps changing. Deleted objects and removed
/// namespaces are deleted from the mirror. Every `rescan`, and whenever the
/// store's directory was replaced, the whole store is compared again. The
/// namespaces of a host's read cache of a Redis server
/// ([`brain_core::is_host_cache_namespace`]) are not mirrored.
///
/// A store that is empty or missing while the mirror holds objects (a
/// wiped `/dev/shm`, a reboot) is not mirrored as the deletion of
/// everything unless `mirror_deletes_on_wipe` is set: the mirror keeps
/// those objects, logs that it did, and goes on mirroring new writes.
///
/// Each commit writes the payloads first, then a new generation of the
/// index, then the manifest; a sync killed at any point leaves the last
/// commit intact.
///
/// # Errors
/// [`Error::SyncRunning`] when another sync mirrors into `dir`;
/// [`Error::NotADump`] and the other errors of a damaged dump when `dir`
/// holds something else; I/O errors writing the mirror. Errors reading one
/// object of the store are logged and that object skipped.
pub fn sync(
    store: &dyn ObjectStore,
    dir: impl AsRef<Path>,
    options: &SyncOptions,
    stop: &StopFlag,
) -> Result<SyncStats> {
    let stats = Arc::new(Mutex::new(SyncStats::default()));
    run(store, dir.as_ref(), options, stop, stats, None)
}

/// A sync running in a thread of its own; see [`spawn_sync`].
#[derive(Debug)]
pub struct SyncHandle {
    stop: StopFlag,
    stats: Arc<Mutex<SyncStats>>,
    thread: Option<JoinHandle<Result<SyncStats>>>,
}

impl SyncHandle {
    /// What the sync has done so far.
    pub fn stats(&self) -> SyncStats {
        self.stats.lock().expect("sync stats").clone()
    }

    /// True when the sync thread ended (it failed, or was stopped).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The flag that stops the sync.
    pub fn stop_flag(&self) -> &StopFlag {
        &self.stop
    }

    /// Stops the sync (after it writes what is pending) and waits for it.
    ///
    /// # Errors
    /// The error that ended the sync, if one did.
    pub fn stop(mut self) -> Result<SyncStats> {
        self.stop.stop();
        self.join()
    }

    fn join(&mut self) -> Result<SyncStats> {
        match self.thread.take() {
            Some(thread) => thread.join().expect("the sync thread panicked"),
            None => Ok(self.stats()),
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop.stop();
        let _ = self.join();
    }
}

/// Starts [`sync`] in a new thread and returns once the mirror is open and
/// the store has been compared with it once (so the mirror is up to date
/// with the store as it was then).
///
/// # Errors
/// As [`sync`], for failures while starting.
pub fn spawn_sync(
    store: Arc<dyn ObjectStore>,
    dir: impl Into<PathBuf>,
    options: SyncOptions,
) -> Result<SyncHandle> {
    let dir = dir.into();
    let stop = StopFlag::new();
    let stats = Arc::new(Mutex::new(SyncStats::default()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = {
        let (stop, stats) = (stop.clone(), stats.clone());
        std::thread::Builder::new()
            .name("brain-sync".into())
            .spawn(move || run(&*store, &dir, &options, &stop, stats, Some(ready_tx)))
            .map_err(|e| Error::io("start a thread for", "brain sync", e))?
    };
    let mut handle = SyncHandle {
        stop,
        stats,
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(()) => Ok(handle),
        // The thread ended before it was ready: its result says why.
        Err(_) => match handle.join() {
            Err(err) => Err(err),
            Ok(_) => Ok(handle),
        },
    }
}

fn run(
    store: &dyn ObjectStore,
    dir: &Path,
    options: &SyncOptions,
    stop: &StopFlag,
    stats: Arc<Mutex<SyncStats>>,
    ready: Option<mpsc::Sender<()>>,
) -> Result<SyncStats> {
    crate::dump::refuse_inside_store(store, dir)?;
    let mirror = Mirror::open(dir, options.level)?;
    let mut syncer = Syncer {
        store,
        restore_mark: RestoreMark::of(dir, store),
        restore_noted: false,
        restore_error_noted: false,
        restore_failed_at: None,
        held_for_restore: BTreeSet::new(),
        restored_scope: None,
        reconcile_due: false,
        mirror,
        options,
        stats,
        watcher: None,
        wipe_noted: false,
        protected: HashSet::new(),
        watch_error_noted: false,
        damaged: HashMap::new(),
        damaged_noted: HashSet::new(),
    };
    syncer.update_stats(|s| s.mirrored_objects = syncer.mirror.entries.len() as u64);
    syncer.log(&format!(
        "mirroring {} into {} ({} mirrored)",
        store.location(),
        dir.display(),
        objects(syncer.mirror.entries.len() as u64)
    ));
    syncer.try_watch();
    let mirrored = syncer.reconcile(true).and_then(|()| {
        syncer.update_stats(|s| s.started = true);
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
        syncer.event_loop(stop)
    });
    if let Err(err) = mirrored {
        // What the failed commit wrote is of no use, and on a full disk it
        // is what fills it: the mirror is left as its last commit.
        syncer.mirror.discard_uncommitted();
        return Err(err);
    }
    let stats = syncer.stats.lock().expect("sync stats").clone();
    Ok(stats)
}

type Key = (String, String);

/// The namespaces restored by the restores a sync saw under way.
#[derive(Default)]
struct RestoredScope {
    all: bool,
    namespaces: BTreeSet<String>,
}

fn key_of(meta: &ObjectMeta) -> Key {
    (meta.namespace.clone(), meta.name.clone())
}

/// True when the mirror's entry is the object as the store has it now.
fn same(entry: &Entry, meta: &ObjectMeta) -> bool {
    entry.created_unix_ns == unix_nanos(meta.created)
        && entry.size == meta.size
        && entry.codec == meta.codec.tag()
        && entry.description == meta.description
}

struct Syncer<'a> {
    store: &'a dyn ObjectStore,
    /// Set while a restore of the store from the mirror's directory has not
    /// finished: the objects not yet restored are not deletions.
    restore_mark: RestoreMark,
    /// The log told why deletions wait for that restore.
    restore_noted: bool,
    /// The log told why that restore cannot be finished.
    restore_error_noted: bool,
    /// When finishing it last failed.
    restore_failed_at: Option<Instant>,
    /// Deletions seen while a restore was under way, decided once it is over.
    held_for_restore: BTreeSet<Key>,
    /// What the restores seen under way restore.
    restored_scope: Option<RestoredScope>,
    /// The store is to be compared with the mirror (a restore is over).
    reconcile_due: bool,
    mirror: Mirror,
    options: &'a SyncOptions,
    stats: Arc<Mutex<SyncStats>>,
    watcher: Option<Watcher>,
    wipe_noted: bool,
    /// Objects the mirror kept when the store was found empty: they are not
    /// deleted because the store lacks them, only if they come back and go.
    protected: HashSet<Key>,
    watch_error_noted: bool,
    /// Objects the store holds but cannot read, by namespace and key
    /// (their names may be unreadable too), with what is wrong, as of the
    /// last listing: the mirror keeps its copies of them.
    damaged: HashMap<(String, ObjectKey), String>,
    /// Those already told of in the log.
    damaged_noted: HashSet<(String, ObjectKey)>,
}

impl Syncer<'_> {
    fn log(&self, line: &str) {
        if let Some(log) = &self.options.log {
            log(line);
        }
    }

    fn update_stats(&self, f: impl FnOnce(&mut SyncStats)) {
        f(&mut self.stats.lock().expect("sync stats"));
    }

    /// Starts watching the store; true on success. A store replaced or
    /// wiped while watched is the watcher's to follow: it reports what
    /// went and what came as events.
    fn try_watch(&mut self) -> bool {
        match self.store.watch(None) {
            Ok(watcher) => {
                self.watcher = Some(watcher);
                self.watch_error_noted = false;
                true
            }
            Err(err) => {
                if !self.watch_error_noted {
                    self.log(&format!("cannot watch the store (will retry): {err}"));
                    self.watch_error_noted = true;
                }
                false
            }
        }
    }

    /// Queues the object of `event`. An object the mirror kept through a
    /// wipe that is set again is the store's once more: a deletion of it
    /// from now on is mirrored, even one that comes before its set is.
    fn note_event(&mut self, event: &WatchEvent, pending: &mut BTreeSet<Key>) {
        if brain_core::is_host_cache_namespace(event.namespace()) {
            return;
        }
        let key = event_key(event);
        if matches!(event, WatchEvent::Set { .. }) {
            self.protected.remove(&key);
        }
        pending.insert(key);
    }

    fn event_loop(&mut self, stop: &StopFlag) -> Result<()> {
        let mut pending: BTreeSet<Key> = BTreeSet::new();
        let mut first_pending = Instant::now();
        let mut last_event = Instant::now();
        let mut last_rescan = Instant::now();
        let mut last_health = Instant::now();
        let mut last_restore_look = Instant::now();
        while !stop.is_stopped() {
            match self.watcher.as_mut().map(|w| w.next_event(Some(TICK))) {
                Some(Ok(Some(event))) => {
                    if pending.is_empty() {
                        first_pending = Instant::now();
                    }
                    last_event = Instant::now();
                    self.note_event(&event, &mut pending);
                    // Take what else is queued without waiting.
                    while let Some(Ok(Some(event))) = self
                        .watcher
                        .as_mut()
                        .map(|w| w.next_event(Some(Duration::ZERO)))
                    {
                        self.note_event(&event, &mut pending);
                        if pending.len() >= 100_000 {
                            break;
                        }
                    }
                }
                Some(Ok(None)) => {}
                Some(Err(err)) => {
                    self.log(&format!("watching the store failed (will rescan): {err}"));
                    self.watcher = None;
                }
                None => std::thread::sleep(TICK),
            }
            let settled = last_event.elapsed() >= SETTLE;
            if !pending.is_empty() && (settled || first_pending.elapsed() >= self.options.interval)
            {
                let hold_deletes = !settled && first_pending.elapsed() < DELETE_HOLD_MAX;
                let keys = std::mem::take(&mut pending);
                let held = self.apply(keys, Vec::new(), hold_deletes)?;
                if !held.is_empty() {
                    pending.extend(held);
                } else {
                    first_pending = Instant::now();
                }
            }
            // A restore into the store from the mirror's directory: seen by
            // its mark (a look at one file each turn), and once it is over
            // the deletions held meanwhile are decided.
            if self.restore_mark.is_set() {
                self.note_restore_scope();
            } else if (self.restored_scope.is_some() || !self.held_for_restore.is_empty())
                && last_restore_look.elapsed() >= RESTORE_LOOK
            {
                last_restore_look = Instant::now();
                if self.no_restore_under_way().is_some() && !self.held_for_restore.is_empty() {
                    if pending.is_empty() {
                        first_pending = Instant::now();
                    }
                    pending.extend(std::mem::take(&mut self.held_for_restore));
                }
            }
            // Files a commit dropped while a reader held the mirror: gone
            // once the reader is, not left until the next change.
            self.mirror.collect_garbage();
            if last_health.elapsed() >= HEALTH_EVERY {
                last_health = Instant::now();
                if self.watcher.is_none() && self.try_watch() {
                    self.reconcile(false)?;
                    last_rescan = Instant::now();
                }
            }
            if self.reconcile_due || last_rescan.elapsed() >= self.options.rescan {
                self.reconcile_due = false;
                last_rescan = Instant::now();
                self.reconcile(false)?;
            }
        }
        if !pending.is_empty() {
            self.apply(pending, Vec::new(), false)?;
        }
        Ok(())
    }

    /// Every object of the store, by key; empty when the store is missing.
    /// Also notes the objects the store holds but cannot read
    /// (`self.damaged`).
    fn list_store(&mut self) -> Result<BTreeMap<Key, ObjectMeta>> {
        let mut out = BTreeMap::new();
        let namespaces = own_namespaces(self.store)?;
        self.damaged.clear();
        for ns in namespaces {
            match self.store.list(&ns) {
                Ok(metas) => out.extend(metas.into_iter().map(|m| (key_of(&m), m))),
                Err(brain_core::Error::NamespaceNotFound { .. }) => continue,
                Err(e) => return Err(Error::store_ns("list", &ns, e)),
            }
            match self.store.damaged(&ns) {
                Ok(damaged) => self.damaged.extend(
                    damaged
                        .into_iter()
                        .map(|d| ((ns.clone(), d.key), format!("{}: {}", d.location, d.reason))),
                ),
                Err(brain_core::Error::NamespaceNotFound { .. }) => {}
                Err(e) => return Err(Error::store_ns("list", &ns, e)),
            }
        }
        Ok(out)
    }

    /// Whether the store holds `key` but cannot read it: its mirrored copy
    /// is kept, not deleted as if the object were gone (told once in the log).
    fn keeps_damaged(&mut self, key: &Key) -> bool {
        let damaged = (key.0.clone(), ObjectKey::new(&key.0, &key.1));
        let Some(reason) = self.damaged.get(&damaged) else {
            return false;
        };
        if self.damaged_noted.insert(damaged) {
            let line = format!(
                "keeping {:?} of namespace {:?} in the mirror: the store's copy cannot be read ({reason}); `brain fsck` reports it, and `brain restore` from this mirror brings it back",
                key.1, key.0
            );
            self.log(&line);
        }
        true
    }

    /// Finishes a restore of the store from the mirror's directory that a
    /// killed process left part-way, so that the objects it had not
    /// restored yet are not mirrored as deleted. Must not be called with
    /// the restore lock held. A restore that fails is logged, and its mark
    /// keeps deletions from being mirrored.
    fn finish_restore(&mut self) {
        if !self.restore_mark.is_set() {
            return;
        }
        // A restore that failed is tried again at most every few seconds.
        if self
            .restore_failed_at
            .is_some_and(|at| at.elapsed() < RESTORE_RETRY)
        {
            return;
        }
        self.restore_failed_at = None;
        match finish_interrupted_restore(self.store, &self.mirror.dir) {
            Ok(Unfinished::Finished(report)) => {
                self.restore_noted = false;
                self.restore_error_noted = false;
                self.restored_scope.get_or_insert_with(Default::default).all = true;
                self.restore_over();
                self.log(&format!(
                    "finished a restore of {} from {} that had been interrupted: restored {}, {} there already",
                    self.store.location(),
                    self.mirror.dir.display(),
                    objects(report.restored),
                    report.skipped
                ));
            }
            // A restore that is running is left to itself; its mark holds
            // deletions back meanwhile.
            Ok(Unfinished::Running) | Ok(Unfinished::None) => {}
            Err(err) => {
                self.restore_failed_at = Some(Instant::now());
                if !self.restore_error_noted {
                    self.restore_error_noted = true;
                    self.log(&format!(
                        "cannot finish the interrupted restore of {} from {} (deletions are not mirrored until it is; trying again every {} s while deletions wait; to give up on it, remove its mark, restoring-* in that directory): {err}",
                        self.store.location(),
                        self.mirror.dir.display(),
                        RESTORE_RETRY.as_secs()
                    ));
                }
            }
        }
    }

    /// The store's restore lock, taken without waiting, when no restore of
    /// the store is under way: none holds the lock, and none from the
    /// mirror's directory was left unfinished (one that was is finished
    /// first, when it can be). `None` while one is under way. `Some(None)`
    /// when the store has no lock to take (its directory is gone): no
    /// restore can be writing into it either.
    fn no_restore_under_way(&mut self) -> Option<Option<brain_core::NameLock>> {
        self.finish_restore();
        if self.restore_mark.is_set() {
            self.note_restore_scope();
            return None;
        }
        let lock = match try_lock_for_restore(self.store) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => return None,
            Err(_) => None,
        };
        // A restore that took the lock and wrote its mark just before.
        if self.restore_mark.is_set() {
            self.note_restore_scope();
            return None;
        }
        self.restore_over();
        // The restore is over: the next one is told of again.
        self.restore_noted = false;
        self.restore_error_noted = false;
        Some(lock)
    }

    /// Notes which namespaces the restore under way restores, from its mark.
    fn note_restore_scope(&mut self) {
        let scope = self.restored_scope.get_or_insert_with(Default::default);
        match self.restore_mark.namespace() {
            Some(Some(namespace)) => {
                scope.namespaces.insert(namespace);
            }
            Some(None) => scope.all = true,
            // A mark that cannot be read: nothing is assumed restored.
            None => {}
        }
    }

    /// A restore from the mirror's directory is over: every object of the
    /// namespaces it restored is the store's again (those kept through a
    /// wipe included), so a deletion of any of them is mirrored, even one
    /// made before this sync saw the object come back; the store is then
    /// compared with the mirror, which catches those.
    fn restore_over(&mut self) {
        let Some(scope) = self.restored_scope.take() else {
            return;
        };
        self.protected
            .retain(|(namespace, _)| !scope.all && !scope.namespaces.contains(namespace));
        self.reconcile_due = true;
    }

    fn note_unfinished_restore(&mut self, kept: usize) {
        if !self.restore_noted {
            self.restore_noted = true;
            self.log(&format!(
                "a restore of {} from {} is under way or was interrupted: keeping the mirror's objects ({kept} deletions not mirrored until it is done; this sync finishes an interrupted one)",
                self.store.location(),
                self.mirror.dir.display(),
            ));
        }
    }

    fn note_wipe(&mut self, kept: usize) {
        self.protected.extend(self.mirror.entries.keys().cloned());
        if !self.wipe_noted {
            self.wipe_noted = true;
            self.update_stats(|s| s.wipes_ignored += 1);
            self.log(&format!(
                "the store at {} is empty or missing while the mirror holds {}: keeping them ({kept} deletions not mirrored); restore the store with `brain restore {}`, or run sync with --mirror-deletes-on-wipe to mirror an emptied store",
                self.store.location(),
                objects(self.mirror.entries.len() as u64),
                self.mirror.dir.display(),
            ));
        }
    }

    /// Compares the whole store with the mirror and writes the differences.
    fn reconcile(&mut self, at_start: bool) -> Result<()> {
        // A store being restored lacks the objects not restored yet: `apply`
        // decides deletions only while no restore is under way.
        let objects = self.list_store()?;
        let allow_wipe = self.options.mirror_deletes_on_wipe;
        if objects.is_empty() && !self.mirror.entries.is_empty() && !allow_wipe {
            self.note_wipe(self.mirror.entries.len());
            return Ok(());
        }
        let mut changed = Vec::new();
        let mut unchanged = 0;
        for (key, meta) in &objects {
            match self.mirror.entries.get(key) {
                Some(entry) if same(entry, meta) => unchanged += 1,
                _ => changed.push(key.clone()),
            }
        }
        let missing: Vec<Key> = self
            .mirror
            .entries
            .keys()
            .filter(|k| !objects.contains_key(*k) && !self.protected.contains(*k))
            .cloned()
            .collect();
        let gone: Vec<Key> = missing
            .into_iter()
            .filter(|k| !self.keeps_damaged(k))
            .collect();
        if at_start {
            self.update_stats(|s| s.objects_unchanged_at_start = unchanged);
            self.log(&format!(
                "{} in the store: {unchanged} already mirrored, {} to write, {} to delete",
                self::objects(objects.len() as u64),
                changed.len(),
                gone.len()
            ));
        }
        self.apply(changed.into_iter().collect(), gone, false)?;
        Ok(())
    }

    /// Writes the current state of the objects `keys` (set or deleted) and
    /// deletes `gone`. With `hold_deletes`, deletions are not written but
    /// returned, to be tried again once changes settle.
    fn apply(
        &mut self,
        keys: BTreeSet<Key>,
        gone: Vec<Key>,
        hold_deletes: bool,
    ) -> Result<Vec<Key>> {
        let mut batch = Batch::default();
        let mut deletes: Vec<Key> = gone;
        for key in keys {
            let (ns, name) = (&key.0, &key.1);
            match self.store.get(ns, name) {
                Ok(Some(view)) => {
                    self.protected.remove(&key);
                    self.stage_write(&mut batch, key.clone(), &view)?;
                    if batch.upserts.len() >= COMMIT_OBJECTS || batch.bytes >= COMMIT_BYTES {
                        self.commit(std::mem::take(&mut batch), Vec::new())?;
                    }
                }
                Ok(None) => {
                    if self.mirror.entries.contains_key(&key) && !self.protected.contains(&key) {
                        deletes.push(key);
                    }
                }
                Err(err) => self.log(&format!(
                    "cannot read {name:?} in namespace {ns:?}, not mirrored this time: {err}"
                )),
            }
        }
        let mut held = Vec::new();
        // Kept until the deletions are decided: no restore can start meanwhile.
        let mut _no_restore = None;
        if !deletes.is_empty() {
            if hold_deletes {
                held = deletes;
                deletes = Vec::new();
            } else {
                match self.no_restore_under_way() {
                    None => {
                        // A restore is running or unfinished: the objects it
                        // has not written yet are not deletions. Decided
                        // again once it is done.
                        self.note_unfinished_restore(deletes.len());
                        self.held_for_restore.extend(deletes);
                        deletes = Vec::new();
                    }
                    Some(lock) => {
                        _no_restore = lock;
                        // Seen missing before the lock was taken: a restore
                        // may have put them back since.
                        let mut still_gone = Vec::with_capacity(deletes.len());
                        for key in deletes {
                            // A host cache's copy in a mirror made before
                            // such namespaces were left out: not the store's.
                            if brain_core::is_host_cache_namespace(&key.0) {
                                still_gone.push(key);
                                continue;
                            }
                            match self.store.metadata(&key.0, &key.1) {
                                Ok(None) => still_gone.push(key),
                                Ok(Some(_)) => {}
                                Err(err) => self.log(&format!(
                                    "cannot read {:?} in namespace {:?}, its deletion not mirrored this time: {err}",
                                    key.1, key.0
                                )),
                            }
                        }
                        deletes = still_gone;
                        if !deletes.is_empty()
                            && !self.options.mirror_deletes_on_wipe
                            && store_is_empty(self.store)?
                        {
                            self.note_wipe(deletes.len());
                            deletes.clear();
                        }
                    }
                }
            }
        }
        if !batch.upserts.is_empty() || !deletes.is_empty() {
            self.commit(batch, deletes)?;
        }
        if self.wipe_noted && !store_is_empty(self.store)? {
            self.wipe_noted = false;
        }
        Ok(held)
    }

    /// Writes `view`'s payload into the mirror for the next commit, unless
    /// the mirror has it already.
    fn stage_write(&mut self, batch: &mut Batch, key: Key, view: &ObjectView) -> Result<()> {
        let meta = view.meta();
        let existing = self.mirror.entries.get(&key);
        if existing.is_some_and(|e| same(e, meta)) {
            return Ok(());
        }
        // The same bytes under a new creation time (a restore): relink.
        if let Some(entry) = existing.filter(|e| {
            e.size == meta.size
                && e.codec == meta.codec.tag()
                && e.description == meta.description
                && xxh3_64(view.bytes()) == e.checksum()
        }) {
            let mut entry = entry.clone();
            entry.created_unix_ns = unix_nanos(meta.created);
            batch.relinked += 1;
            batch.upserts.push(entry);
            return Ok(());
        }
        let entry = self.mirror.write_payload(view)?;
        batch.written += 1;
        batch.bytes += entry.size;
        batch.upserts.push(entry);
        Ok(())
    }

    fn commit(&mut self, batch: Batch, deletes: Vec<Key>) -> Result<()> {
        let deleted = deletes
            .iter()
            .filter(|k| self.mirror.entries.contains_key(*k))
            .count() as u64;
        self.mirror.commit(batch.upserts, &deletes)?;
        for note in std::mem::take(&mut self.mirror.notes) {
            self.log(&note);
        }
        // Mappings of objects mirrored are not needed any more.
        self.store.clear_cache();
        let mirrored = self.mirror.entries.len() as u64;
        self.update_stats(|s| {
            s.commits += 1;
            s.objects_written += batch.written;
            s.bytes_written += batch.bytes;
            s.objects_relinked += batch.relinked;
            s.objects_deleted += deleted;
            s.mirrored_objects = mirrored;
            s.last_commit = Some(SystemTime::now());
        });
        self.log(&format!(
            "commit {}: wrote {} ({} bytes), relinked {}, deleted {}; {} mirrored",
            self.mirror.manifest.generation,
            objects(batch.written),
            batch.bytes,
            batch.relinked,
            deleted,
            objects(mirrored)
        ));
        Ok(())
    }
}

/// "1 object", "2 objects".
fn objects(n: u64) -> String {
    format!("{n} object{}", if n == 1 { "" } else { "s" })
}

fn event_key(event: &WatchEvent) -> Key {
    (event.namespace().to_owned(), event.name().to_owned())
}

/// Index entries waiting for a commit.
#[derive(Default)]
struct Batch {
    upserts: Vec<Entry>,
    written: u64,
    bytes: u64,
    relinked: u64,
}

/// The sync directory: its manifest and index entries in memory, and the
/// files no commit refers to any more, waiting for readers to let go.
struct Mirror {
    dir: PathBuf,
    manifest: Manifest,
    entries: BTreeMap<Key, Entry>,
    garbage: Vec<PathBuf>,
    frames: FrameWriter,
    /// Names the next commit's payload files.
    files: PayloadFiles,
    /// What the entries hold of the payload files.
    file_use: FileUse,
    /// What the last commit has to tell the sync's log.
    notes: Vec<String>,
    _sync_lock: File,
}

/// A commit moves every payload that lies in an earlier commit's pack file
/// into new packs when the packs hold more bytes that no entry refers to
/// than bytes that one does, and more than this: so the packs take about
/// twice what their payloads need at most (beside what one commit writes),
/// and a payload is copied again only after as many bytes were written.
const PACK_WASTE_ALLOWED: u64 = 4 << 20;

/// What a mirror's entries hold of its payload files: how many entries
/// lie in each (a pack file holds many payloads; a file goes to the
/// garbage when none does), and each pack file's length against the bytes
/// of the payloads still in it.
#[derive(Default)]
struct FileUse {
    entries_in: HashMap<String, usize>,
    packs: HashMap<String, PackUse>,
}

#[derive(Default)]
struct PackUse {
    /// The file's length, once it is written (`None` until the commit
    /// that writes it is done).
    len: Option<u64>,
    /// The compressed bytes of the payloads that lie in it.
    live: u64,
    /// A payload in it could not be moved (unreadable, or damaged): the
    /// pack stays, and counts as all live.
    pinned: bool,
}

impl FileUse {
    fn add(&mut self, entry: &Entry) {
        *self.entries_in.entry(entry.file.clone()).or_insert(0) += 1;
        if entry.offset.is_some() {
            self.packs.entry(entry.file.clone()).or_default().live += entry.file_len;
        }
    }

    /// Counts `entry` out; returns its file when no entry lies in it any more.
    fn remove(&mut self, entry: &Entry) -> Option<String> {
        if let Some(pack) = self.packs.get_mut(&entry.file) {
            pack.live = pack.live.saturating_sub(entry.file_len);
        }
        match self.entries_in.get_mut(&entry.file) {
            Some(count) if *count > 1 => {
                *count -= 1;
                None
            }
            _ => {
                self.entries_in.remove(&entry.file);
                self.packs.remove(&entry.file);
                Some(entry.file.clone())
            }
        }
    }

    /// Records the length of pack file `name` in `data`, once written.
    fn note_pack(&mut self, data: &Path, name: &str) {
        if let Some(pack) = self.packs.get_mut(name).filter(|p| p.len.is_none()) {
            if let Ok(meta) = std::fs::metadata(data.join(name)) {
                pack.len = Some(meta.len());
            }
        }
    }

    /// Keeps pack file `name` out of compaction's count: a payload in it
    /// cannot be moved.
    fn pin(&mut self, name: &str) {
        if let Some(pack) = self.packs.get_mut(name) {
            pack.pinned = true;
        }
    }

    fn pinned(&self, name: &str) -> bool {
        self.packs.get(name).is_some_and(|p| p.pinned)
    }

    /// Whether the pack files written so far hold too many bytes no entry
    /// refers to.
    fn packs_wasteful(&self) -> bool {
        let (mut waste, mut live) = (0u64, 0u64);
        for pack in self.packs.values().filter(|p| !p.pinned) {
            if let Some(len) = pack.len {
                waste += len.saturating_sub(pack.live);
                live += pack.live;
            }
        }
        waste > live.max(PACK_WASTE_ALLOWED)
    }
}

impl Mirror {
    fn open(dir: &Path, level: i32) -> Result<Mirror> {
        // Before anything is written there: a mirror deletes what the
        // store lacks, and would delete what a one-off dump keeps.
        if Manifest::read(dir, None)?.is_some_and(|m| m.kind == DumpKind::Dump) {
            return Err(Error::NotAMirror {
                path: dir.to_owned(),
            });
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create the directory", dir, e))?;
        let lock_path = dir.join(SYNC_LOCK_FILE);
        let sync_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        match rustix::fs::flock(&sync_lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::SyncRunning {
                    path: dir.to_owned(),
                })
            }
            Err(err) => return Err(Error::io("lock", &lock_path, err.into())),
        }
        let reader_lock = dir.join(LOCK_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&reader_lock)
            .map_err(|e| Error::io("create", &reader_lock, e))?;
        let data = dir.join(DATA_DIR);
        format::create_private_dir(&data)?;
        let frames = FrameWriter::new(level)?;
        let (manifest, entries) = if dir.join(MANIFEST_FILE).exists() {
            let reader = DumpReader::open(dir)?;
            let entries = reader
                .entries
                .iter()
                .map(|e| ((e.namespace.clone(), e.name.clone()), e.clone()))
                .collect();
            (reader.manifest.clone(), entries)
        } else {
            let names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| Error::io("list", dir, e))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            let known = [LOCK_FILE, SYNC_LOCK_FILE, DATA_DIR];
            let known = |n: &String| known.contains(&n.as_str()) || is_restore_mark(n);
            if names.iter().any(|n| format::is_index_dir_name(n)) {
                return Err(Error::MissingManifest {
                    path: dir.to_owned(),
                });
            }
            if !names.iter().all(known) {
                return Err(Error::NotADump {
                    path: dir.to_owned(),
                    reason:
                        "it holds other files than a brain dump; give an empty or new directory"
                            .into(),
                });
            }
            let manifest = Manifest {
                magic: MAGIC.into(),
                format_version: UNPACKED_VERSION,
                kind: DumpKind::Sync,
                dump_id: new_dump_id(dir),
                generation: 0,
                written_unix_ns: 0,
                writer: writer_name(),
                namespace: None,
                objects: 0,
                payload_bytes: 0,
                compressed_bytes: 0,
                index: IndexRef {
                    dir: index_dir_name(0),
                    files: Vec::new(),
                },
            };
            (manifest, BTreeMap::new())
        };
        let mut file_use = FileUse::default();
        for entry in entries.values() {
            file_use.add(entry);
            file_use.note_pack(&data, &entry.file);
        }
        let mut mirror = Mirror {
            dir: dir.to_owned(),
            files: PayloadFiles::new(data, manifest.generation + 1),
            manifest,
            entries,
            file_use,
            notes: Vec::new(),
            garbage: Vec::new(),
            frames,
            _sync_lock: sync_lock,
        };
        if mirror.manifest.generation == 0 {
            // An empty mirror is a valid, empty dump from the start.
            if let Err(err) = mirror.commit(Vec::new(), &[]) {
                // Left, its index without a manifest would read as a
                // damaged dump, and its temporary manifest as a foreign file
                // (unless the manifest made it into place: then it is one).
                if !mirror.dir.join(MANIFEST_FILE).exists() {
                    remove_path(&mirror.dir.join(index_dir_name(1)));
                }
                remove_path(
                    &mirror
                        .dir
                        .join(format!("{MANIFEST_FILE}.tmp-{}", std::process::id())),
                );
                return Err(err);
            }
        }
        mirror.clean_orphans()?;
        Ok(mirror)
    }

    /// Removes what a sync killed mid-commit left (files of a generation
    /// never committed), and queues files older commits referred to.
    fn clean_orphans(&mut self) -> Result<()> {
        let (uncommitted, old) = self.files_not_current()?;
        for path in uncommitted {
            remove_path(&path);
        }
        self.garbage.extend(old);
        self.collect_garbage();
        Ok(())
    }

    /// Removes the files of the commit being written, after it failed,
    /// unless its manifest was renamed into place (a commit that failed
    /// after that point, flushing the directory, may be the current one):
    /// the next sync sorts those out.
    fn discard_uncommitted(&mut self) {
        let on_disk = Manifest::read(&self.dir, None).ok().flatten();
        if on_disk.is_none_or(|m| m.generation != self.manifest.generation) {
            return;
        }
        if let Ok((uncommitted, _)) = self.files_not_current() {
            for path in uncommitted {
                remove_path(&path);
            }
        }
    }

    /// The files of the dump's directory that its current commit does not
    /// refer to: those of a generation not committed (or a manifest not yet
    /// renamed into place), and those of older generations.
    fn files_not_current(&self) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
        let current = self.manifest.generation;
        let referenced: HashSet<&str> = self.entries.values().map(|e| e.file.as_str()).collect();
        let data = self.dir.join(DATA_DIR);
        let (mut uncommitted, mut old) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(&data).map_err(|e| Error::io("list", &data, e))? {
            let entry = entry.map_err(|e| Error::io("list", &data, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // By generation first: a commit that failed may have entered
            // its payloads in `entries` already, but no committed manifest
            // refers to a generation past the current one.
            match format::payload_generation(&name) {
                Some(g) if g > current => uncommitted.push(entry.path()),
                _ if referenced.contains(name.as_str()) => {}
                _ => old.push(entry.path()),
            }
        }
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{MANIFEST_FILE}.tmp")) {
                uncommitted.push(entry.path());
            } else if let Some(g) = format::index_dir_generation(&name) {
                if g > current {
                    uncommitted.push(entry.path());
                } else if g < current {
                    old.push(entry.path());
                }
            }
        }
        Ok((uncommitted, old))
    }

    /// Writes a payload for the next commit.
    fn write_payload(&mut self, view: &ObjectView) -> Result<Entry> {
        self.frames.write(&mut self.files, view, |_| {})
    }

    /// Moves every payload that lies in a pack file of an earlier commit
    /// into the packs of the commit being written (their compressed bytes,
    /// checked against the index, not compressed again), writing their
    /// entries to `index`. A payload that cannot be read or does not match
    /// stays where it is.
    fn compact_packs(
        &mut self,
        index: &IndexWriter,
        dropped: &mut Vec<String>,
        new_packs: &mut HashSet<String>,
    ) -> Result<()> {
        let data = self.dir.join(DATA_DIR);
        let mut packed: Vec<(Key, Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.offset.is_some() && !new_packs.contains(&e.file) && !self.file_use.pinned(&e.file)
            })
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        // Each pack read front to back.
        packed.sort_by(|(_, a), (_, b)| (&a.file, a.offset).cmp(&(&b.file, b.offset)));
        let mut open: Option<(String, File)> = None;
        let mut frames = Vec::new();
        let (mut moved_count, mut emptied) = (0, 0);
        for (key, entry) in packed {
            if open.as_ref().is_none_or(|(name, _)| *name != entry.file) {
                open = File::open(data.join(&entry.file))
                    .ok()
                    .map(|f| (entry.file.clone(), f));
            }
            let at = entry.offset.unwrap_or(0);
            frames.resize(entry.file_len as usize, 0);
            let read = match &open {
                Some((_, file)) => file.read_exact_at(&mut frames, at).is_ok(),
                None => false,
            };
            let offsets = entry.frame_offsets();
            let intact = read
                && (0..entry.frames.len()).all(|i| {
                    let start = (offsets[i] - at) as usize;
                    let end = start + entry.frames[i] as usize;
                    xxh3_64(&frames[start..end]) == entry.frame_checksum(i)
                });
            if !intact {
                self.file_use.pin(&entry.file);
                self.notes.push(format!(
                    "{:?} in namespace {:?} stays in pack {}: its payload there cannot be read or is damaged, and a restore from this mirror will report it",
                    entry.name, entry.namespace, entry.file
                ));
                continue;
            }
            let moved = self.frames.copy_packed(&mut self.files, &entry, &frames)?;
            index.insert(&moved)?;
            new_packs.insert(moved.file.clone());
            self.file_use.add(&moved);
            if let Some(file) = self.file_use.remove(&entry) {
                dropped.push(file);
                emptied += 1;
            }
            self.entries.insert(key, moved);
            moved_count += 1;
        }
        if moved_count > 0 {
            self.notes.push(format!(
                "moved {} out of {emptied} pack files that held mostly payloads no entry refers to",
                objects(moved_count)
            ));
        }
        Ok(())
    }

    /// Commits a new generation: the index with `upserts` and without
    /// `deletes`, then the manifest that makes it current.
    fn commit(&mut self, upserts: Vec<Entry>, deletes: &[Key]) -> Result<()> {
        let old_generation = self.manifest.generation;
        let generation = old_generation + 1;
        let old_dir = self.dir.join(index_dir_name(old_generation));
        let new_name = index_dir_name(generation);
        let new_dir = self.dir.join(&new_name);
        if new_dir.exists() {
            remove_path(&new_dir);
        }
        let index = if old_generation == 0 {
            IndexWriter::create(&new_dir, &self.manifest.dump_id)?
        } else {
            IndexWriter::copy_of(&old_dir, &new_dir)?
        };
        let mut dropped = Vec::new();
        let mut new_packs = HashSet::new();
        for entry in &upserts {
            index.insert(entry)?;
        }
        for (ns, name) in deletes {
            index.remove(&format::encode_key(ns, name))?;
        }
        // Once a payload file packs several, the mirror stays at that version.
        let packed = self.manifest.format_version > UNPACKED_VERSION
            || upserts.iter().any(|e| e.offset.is_some());
        let format_version = format::format_version(packed);
        for entry in upserts {
            let key = (entry.namespace.clone(), entry.name.clone());
            // Written by this commit (a relinked entry keeps an older file).
            if entry.offset.is_some() && format::payload_generation(&entry.file) == Some(generation)
            {
                new_packs.insert(entry.file.clone());
            }
            self.file_use.add(&entry);
            if let Some(old) = self.entries.insert(key, entry) {
                dropped.extend(self.file_use.remove(&old));
            }
        }
        for key in deletes {
            if let Some(old) = self.entries.remove(key) {
                dropped.extend(self.file_use.remove(&old));
            }
        }
        // After this commit's own changes: what it replaces is not moved.
        if self.file_use.packs_wasteful() {
            self.compact_packs(&index, &mut dropped, &mut new_packs)?;
        }
        let files = index.finish(format_version)?;
        let mut manifest = self.manifest.clone();
        manifest.format_version = format_version;
        manifest.kind = DumpKind::Sync;
        manifest.generation = generation;
        manifest.written_unix_ns = unix_nanos(SystemTime::now());
        manifest.writer = writer_name();
        manifest.namespace = None;
        manifest.objects = self.entries.len() as u64;
        manifest.payload_bytes = self.entries.values().map(|e| e.size).sum();
        manifest.compressed_bytes = self.entries.values().map(|e| e.file_len).sum();
        manifest.index = IndexRef {
            dir: new_name,
            files,
        };
        // Payloads and the new index reach the disk before the manifest
        // that refers to them.
        self.frames.flushed()?;
        sync_filesystem(&self.dir)?;
        manifest.write(&self.dir)?;
        self.manifest = manifest;
        let data = self.dir.join(DATA_DIR);
        for pack in &new_packs {
            self.file_use.note_pack(&data, pack);
        }
        self.files = PayloadFiles::new(self.dir.join(DATA_DIR), generation + 1);
        if old_generation > 0 {
            self.garbage.push(old_dir);
        }
        self.garbage
            .extend(dropped.into_iter().map(|file| data.join(file)));
        self.collect_garbage();
        Ok(())
    }

    /// Deletes files no commit refers to, unless a reader holds the dump
    /// (then they wait for the next call: the sync's loop calls it on every
    /// turn while any wait).
    fn collect_garbage(&mut self) {
        if self.garbage.is_empty() {
            return;
        }
        let Ok(lock) = crate::format::open_lock(&self.dir.join(LOCK_FILE)) else {
            return;
        };
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            return;
        }
        for path in self.garbage.drain(..) {
            remove_path(&path);
        }
    }
}

fn remove_path(path: &Path) {
    let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_leaves_none_of_its_files_even_those_entered_already() {
        let disk = tempfile::tempdir().unwrap();
        let dir = disk.path().join("mirror");
        let mut mirror = Mirror::open(&dir, 1).unwrap();
        let current = mirror.manifest.generation;
        let committed: Vec<String> = std::fs::read_dir(dir.join(DATA_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // What a commit that failed at its manifest leaves: a payload of the
        // next generation, already in `entries`, its index and manifest.
        let payload = format::payload_name(current + 1, 0);
        std::fs::write(dir.join(DATA_DIR).join(&payload), b"frames").unwrap();
        let entry = Entry {
            namespace: "ns".into(),
            name: "x".into(),
            codec: 0,
            description: String::new(),
            size: 6,
            created_unix_ns: 0,
            xxh3: "0".repeat(16),
            file: payload.clone(),
            offset: None,
            file_len: 6,
            frame_size: 4 << 20,
            frames: vec![6],
            frame_xxh3: vec!["0".repeat(16)],
        };
        mirror.entries.insert(("ns".into(), "x".into()), entry);
        std::fs::create_dir(dir.join(index_dir_name(current + 1))).unwrap();
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, b"{").unwrap();

        mirror.discard_uncommitted();
        let data: Vec<String> = std::fs::read_dir(dir.join(DATA_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(data, committed, "the failed commit's payload was left");
        assert!(!dir.join(index_dir_name(current + 1)).exists());
        assert!(!tmp.exists());
        assert!(
            dir.join(index_dir_name(current)).exists(),
            "the committed index stays"
        );
        DumpReader::open(&dir).unwrap();
    }
}
