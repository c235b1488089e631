//! Watching a store: `Set` and `Deleted` events from inotify, and `wait_for`.
//!
//! The inotify mask holds only renames, creations and deletions. It must not
//! include opens or reads: every reader's get would then wake every watcher
//! (measured: a get three times slower with one watcher). Objects appear by
//! rename (the seal), so `MOVED_TO` on an object's key is a set; a key that
//! is moved away or unlinked and no longer exists is a delete.
//!
//! A directory that appears is scanned as well as watched, because files
//! created in the moment between its creation and the watch are not reported.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags};

use super::reader::read_meta_at;
use super::small::SmallTable;
use super::Store;
use crate::api::error::{Error, Result};
use crate::api::names::validate_name;
use crate::api::store::{ObjectStore, WatchEvent, WatchEvents};
use crate::api::view::ObjectView;
use crate::format::{namespace_dir_name, ObjectKey};
use crate::sys::io::os;
use std::sync::Arc;

/// How often a watcher checks that the store's `ns` directory is still the
/// one it watches (a store removed and made again, a wiped `/dev/shm`).
const ROOT_CHECK_EVERY: Duration = Duration::from_secs(1);

const DIR_MASK: WatchMask = WatchMask::MOVED_TO
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::CREATE);

struct WatchedDir {
    namespace: String,
    dir_name: String,
    path: PathBuf,
    /// Object key hex -> (name, inode) of what is known to be there.
    known: HashMap<String, (String, u64)>,
}

/// The shared-memory store's [`WatchEvents`]: inotify on the namespace
/// directories.
pub(crate) struct InotifyWatcher {
    inotify: Inotify,
    store: Store,
    only: Option<String>,
    root_wd: WatchDescriptor,
    /// Device and inode of the `ns` directory watched.
    root_identity: (u64, u64),
    root_checked: Instant,
    dirs: HashMap<WatchDescriptor, WatchedDir>,
    pending: VecDeque<WatchEvent>,
    buffer: Vec<u8>,
    /// The small-object table with this watcher's registration, the watch
    /// on its signal file, and the number of the next event to read from it.
    registered: Registered,
    table_wd: WatchDescriptor,
    next_table_event: u64,
    /// The table's files were removed; its objects were reported deleted.
    table_gone: bool,
    /// The small objects of the watched namespaces as this watcher knows
    /// them (from a listing at its start, then from the events it read):
    /// when it falls behind what the table keeps, the ones gone meanwhile
    /// are found by comparing this with the table.
    known_small: HashMap<String, HashSet<String>>,
}

impl std::fmt::Debug for InotifyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InotifyWatcher")
            .field("namespace", &self.only)
            .finish_non_exhaustive()
    }
}

/// Device and inode of a directory.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    rustix::fs::stat(path).ok().map(|st| (st.st_dev, st.st_ino))
}

impl InotifyWatcher {
    /// Watches one namespace (creating it, so it can be watched before its
    /// first object).
    pub(crate) fn namespace(store: &Store, namespace: &str) -> Result<InotifyWatcher> {
        store.ensure_namespace(namespace)?;
        Self::new(store, Some(namespace.to_owned()))
    }

    /// Watches every namespace of the store, including ones created later.
    pub(crate) fn all(store: &Store) -> Result<InotifyWatcher> {
        Self::new(store, None)
    }

    fn new(store: &Store, only: Option<String>) -> Result<InotifyWatcher> {
        let root = store.namespaces_root().to_owned();
        let inotify = Inotify::init().map_err(|e| Error::io("start inotify for", &root, e))?;
        let (root_wd, root_identity) = watch_root(&inotify, &root)?;
        // Registered before the first event is read, so no change after
        // this point goes untold.
        let table = store.small_table_for_writing()?;
        let (table_wd, registration, next_table_event) = watch_table(&inotify, &table)?;
        let mut watcher = InotifyWatcher {
            inotify,
            store: store.clone(),
            only,
            root_wd,
            root_identity,
            root_checked: Instant::now(),
            dirs: HashMap::new(),
            pending: VecDeque::new(),
            buffer: vec![0; 64 * 1024],
            registered: Registered {
                table,
                registration,
            },
            table_wd,
            next_table_event,
            table_gone: false,
            known_small: HashMap::new(),
        };
        watcher.known_small = watcher.small_now()?;
        watcher.add_namespace_dirs(false)?;
        Ok(watcher)
    }

    /// The small objects of the watched namespaces in the table now.
    fn small_now(&self) -> Result<HashMap<String, HashSet<String>>> {
        Ok(self
            .registered
            .table
            .names_and_next_event(self.only.as_deref())?
            .0)
    }

    /// Watches the namespace directories there are (only this watcher's one).
    fn add_namespace_dirs(&mut self, announce: bool) -> Result<()> {
        let root = self.store.namespaces_root().to_owned();
        let dir_names: Vec<String> = match &self.only {
            Some(ns) => vec![namespace_dir_name(ns)],
            None => std::fs::read_dir(&root)
                .map_err(|e| Error::io("list", &root, e))?
                .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
                .filter(|name| name.len() == 32)
                .collect(),
        };
        for dir_name in dir_names {
            self.add_dir(&dir_name, announce)?;
        }
        Ok(())
    }

    /// When the store's `ns` directory was replaced (the store removed and
    /// made again), reports every object known as deleted, then watches the
    /// new directory and reports what it holds as sets. A watcher of one
    /// namespace re-creates it, as watching it did.
    fn check_root(&mut self) -> Result<()> {
        self.root_checked = Instant::now();
        let root = self.store.namespaces_root().to_owned();
        let now = identity(&root);
        if now == Some(self.root_identity) {
            return Ok(());
        }
        // Gone or replaced: what this watcher knew is deleted.
        self.forget_all_dirs();
        if now.is_none() {
            // Keep looking for it to come back.
            return Ok(());
        }
        if let Some(ns) = &self.only {
            // Re-created, as watching it created it; a store being removed
            // again may refuse, and the next check tries again.
            if self.store.ensure_namespace(ns).is_err() {
                return Ok(());
            }
        }
        let Ok((root_wd, root_identity)) = watch_root(&self.inotify, &root) else {
            return Ok(());
        };
        self.root_wd = root_wd;
        self.root_identity = root_identity;
        self.follow_new_table()?;
        self.add_namespace_dirs(true)
    }

    /// After the store was made again: registers with its new table and
    /// reports the small objects already there as set.
    fn follow_new_table(&mut self) -> Result<()> {
        let Some(table) = self.store.small_table()? else {
            return Ok(());
        };
        if Arc::ptr_eq(&table, &self.registered.table) {
            return Ok(());
        }
        let (table_wd, registration, next) = watch_table(&self.inotify, &table)?;
        self.table_wd = table_wd;
        // The registration with the old table goes with it.
        self.registered = Registered {
            table,
            registration,
        };
        self.next_table_event = next;
        self.table_gone = false;
        self.known_small = self.small_now()?;
        self.announce_table()
    }

    /// The table's files were removed (the store wiped): every small
    /// object the removed table held is reported deleted, once, and the
    /// watcher follows the store's next table when it is made again.
    fn table_removed(&mut self) -> Result<()> {
        if self.table_gone {
            return Ok(());
        }
        self.table_gone = true;
        let _ = self.inotify.watches().remove(self.table_wd.clone());
        self.report_table(false)?;
        self.known_small.clear();
        self.follow_new_table()
    }

    /// Reports every small object of the watched namespaces as set.
    fn announce_table(&mut self) -> Result<()> {
        self.report_table(true)
    }

    /// Reports every small object of the watched namespaces in the table
    /// as set, or as deleted.
    fn report_table(&mut self, set: bool) -> Result<()> {
        let namespaces = match &self.only {
            Some(ns) => vec![ns.clone()],
            None => self.registered.table.namespaces()?,
        };
        for namespace in namespaces {
            for name in self.registered.table.names(&namespace)? {
                self.pending
                    .push_back(table_event(set, namespace.clone(), name));
            }
        }
        Ok(())
    }

    /// Stops watching every namespace directory, reporting what it held as deleted.
    fn forget_all_dirs(&mut self) {
        let wds: Vec<_> = self.dirs.keys().cloned().collect();
        for wd in wds {
            self.forget_dir(wd);
        }
    }

    /// Stops watching one namespace directory, reporting what it held as deleted.
    fn forget_dir(&mut self, wd: WatchDescriptor) {
        if let Some(dir) = self.dirs.remove(&wd) {
            let _ = self.inotify.watches().remove(wd);
            let mut names: Vec<_> = dir.known.into_values().map(|(n, _)| n).collect();
            names.sort();
            for name in names {
                let namespace = dir.namespace.clone();
                self.pending
                    .push_back(WatchEvent::Deleted { namespace, name });
            }
        }
    }

    /// Starts watching the namespace directory `dir_name` and records what
    /// it holds; with `announce`, reports what it holds as sets.
    fn add_dir(&mut self, dir_name: &str, announce: bool) -> Result<()> {
        if self.dirs.values().any(|d| d.dir_name == dir_name) {
            return Ok(());
        }
        let path = self.store.namespaces_root().join(dir_name);
        let namespace = match std::fs::read_to_string(path.join(".namespace")) {
            Ok(namespace) if namespace_dir_name(&namespace) == dir_name => namespace,
            _ => return Ok(()), // not a namespace directory, or already gone
        };
        if self.only.as_ref().is_some_and(|only| *only != namespace) {
            return Ok(());
        }
        let wd = match self
            .inotify
            .watches()
            .add(&path, DIR_MASK | WatchMask::ONLYDIR)
        {
            Ok(wd) => wd,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(Error::io("watch", &path, err)),
        };
        self.dirs.insert(
            wd.clone(),
            WatchedDir {
                namespace,
                dir_name: dir_name.to_owned(),
                path,
                known: HashMap::new(),
            },
        );
        self.rescan(&wd, announce)
    }

    /// Brings a directory's known objects up to date with what is there,
    /// reporting differences when `announce` is set.
    fn rescan(&mut self, wd: &WatchDescriptor, announce: bool) -> Result<()> {
        let Some(dir) = self.dirs.get(wd) else {
            return Ok(());
        };
        let mut present = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir.path) {
            for entry in entries.flatten() {
                if let Some(hex) = entry.file_name().to_str() {
                    if ObjectKey::from_hex(hex).is_some() {
                        present.push(hex.to_owned());
                    }
                }
            }
        }
        let gone: Vec<String> = dir
            .known
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        for hex in gone {
            self.check_entry(wd, &hex, announce)?;
        }
        for hex in present {
            self.check_entry(wd, &hex, announce)?;
        }
        Ok(())
    }

    /// Compares what is at `dir/hex` with what was known, queueing an event
    /// for a change when `announce` is set.
    fn check_entry(&mut self, wd: &WatchDescriptor, hex: &str, announce: bool) -> Result<()> {
        let Some(dir) = self.dirs.get_mut(wd) else {
            return Ok(());
        };
        let path = dir.path.join(hex);
        match rustix::fs::stat(&path) {
            Ok(st) => {
                if dir.known.get(hex).is_some_and(|(_, ino)| *ino == st.st_ino) {
                    return Ok(());
                }
                // A corrupt file is not an event; fsck reports it.
                let Ok(Some(meta)) = read_meta_at(&path) else {
                    return Ok(());
                };
                if meta.namespace != dir.namespace {
                    return Ok(());
                }
                dir.known
                    .insert(hex.to_owned(), (meta.name.clone(), st.st_ino));
                if announce {
                    self.pending.push_back(WatchEvent::Set {
                        namespace: meta.namespace,
                        name: meta.name,
                    });
                }
            }
            Err(_) => {
                if let Some((name, _)) = dir.known.remove(hex) {
                    let namespace = dir.namespace.clone();
                    // A file that gave way to a small object of its name:
                    // the table told of that set.
                    if announce && !self.registered.table.contains(&namespace, &name)? {
                        self.pending
                            .push_back(WatchEvent::Deleted { namespace, name });
                    }
                }
            }
        }
        Ok(())
    }

    fn next(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.root_checked.elapsed() >= ROOT_CHECK_EVERY {
                self.check_root()?;
            }
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                // A last look without waiting: changes already made count,
                // also for a poll with a timeout of zero.
                if wait_readable(&self.inotify, Some(Duration::ZERO))? {
                    self.drain()?;
                }
                return Ok(self.pending.pop_front());
            }
            let wait = left.map_or(ROOT_CHECK_EVERY, |l| l.min(ROOT_CHECK_EVERY));
            if !wait_readable(&self.inotify, Some(wait))? {
                continue;
            }
            self.drain()?;
        }
    }

    fn drain(&mut self) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let read = self.inotify.read_events(&mut buffer);
        let mut todo = Vec::new();
        match read {
            Ok(events) => {
                for event in events {
                    let name = event.name.and_then(OsStr::to_str).map(str::to_owned);
                    todo.push((event.wd.clone(), event.mask, name));
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => {
                self.buffer = buffer;
                return Err(Error::io("read inotify events for", self.store.path(), err));
            }
        }
        self.buffer = buffer;
        for (wd, mask, name) in todo {
            self.handle(wd, mask, name)?;
        }
        Ok(())
    }

    /// Takes the table's events since the last read.
    fn read_table_events(&mut self) -> Result<()> {
        loop {
            let (events, next, lost) = self
                .registered
                .table
                .events_from(self.next_table_event, 4096)?;
            let more = next > self.next_table_event && !events.is_empty();
            self.next_table_event = next;
            if lost {
                // Fell behind what the table keeps: what went meanwhile (and
                // is not an object file now either) is reported deleted, and
                // every small object there is now as set (as an inotify
                // overflow rescans), from one listing; the events read go on
                // from where that listing was made.
                let (now, next) = self
                    .registered
                    .table
                    .names_and_next_event(self.only.as_deref())?;
                for (namespace, names) in &self.known_small {
                    for name in names {
                        let still = now.get(namespace).is_some_and(|n| n.contains(name));
                        if !still && !self.store.contains(namespace, name)? {
                            self.pending.push_back(table_event(
                                false,
                                namespace.clone(),
                                name.clone(),
                            ));
                        }
                    }
                }
                for (namespace, names) in &now {
                    for name in names {
                        self.pending
                            .push_back(table_event(true, namespace.clone(), name.clone()));
                    }
                }
                self.known_small = now;
                self.next_table_event = next;
                continue;
            }
            for event in events {
                if self.only.as_ref().is_some_and(|ns| *ns != event.namespace) {
                    continue;
                }
                let names = self.known_small.entry(event.namespace.clone()).or_default();
                if event.set {
                    names.insert(event.name.clone());
                } else {
                    names.remove(&event.name);
                }
                self.pending
                    .push_back(table_event(event.set, event.namespace, event.name));
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<String>) -> Result<()> {
        if wd == self.table_wd && (self.table_gone || !self.registered.table.signal_path().exists())
        {
            // The store was removed: its small objects went with it.
            return self.table_removed();
        }
        if wd == self.table_wd || mask.contains(EventMask::Q_OVERFLOW) {
            self.read_table_events()?;
        }
        if mask.contains(EventMask::Q_OVERFLOW) {
            let wds: Vec<_> = self.dirs.keys().cloned().collect();
            for wd in wds {
                self.rescan(&wd, true)?;
            }
            return Ok(());
        }
        let Some(name) = name else { return Ok(()) };
        if wd == self.root_wd {
            if mask.contains(EventMask::MOVED_TO) {
                return self.add_dir(&name, true);
            }
            if mask.contains(EventMask::MOVED_FROM) {
                let gone: Vec<_> = self
                    .dirs
                    .iter()
                    .filter(|(_, d)| d.dir_name == name)
                    .map(|(wd, _)| wd.clone())
                    .collect();
                for wd in gone {
                    self.forget_dir(wd);
                }
            }
            return Ok(());
        }
        if ObjectKey::from_hex(&name).is_some() {
            self.check_entry(&wd, &name, true)?;
        }
        Ok(())
    }
}

impl WatchEvents for InotifyWatcher {
    fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        self.next(timeout)
    }
}

/// Watches the table's signal file and registers with the table, so its
/// writers record events: the watch, the registration, and the number of
/// the first event to read.
fn watch_table(inotify: &Inotify, table: &SmallTable) -> Result<(WatchDescriptor, u64, u64)> {
    let signal = table.signal_path();
    let wd = inotify
        .watches()
        .add(&signal, WatchMask::ATTRIB)
        .map_err(|e| Error::io("watch", &signal, e))?;
    let (registration, next) = table.add_watcher()?;
    Ok((wd, registration, next))
}

/// A set (or a delete) of a small object, as a watch event.
fn table_event(set: bool, namespace: String, name: String) -> WatchEvent {
    if set {
        WatchEvent::Set { namespace, name }
    } else {
        WatchEvent::Deleted { namespace, name }
    }
}

/// Watches the store's `ns` directory for namespaces appearing and going.
fn watch_root(inotify: &Inotify, root: &std::path::Path) -> Result<(WatchDescriptor, (u64, u64))> {
    let wd = inotify
        .watches()
        .add(
            root,
            WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::ONLYDIR,
        )
        .map_err(|e| Error::io("watch", root, e))?;
    let id = identity(root).ok_or_else(|| {
        Error::io(
            "watch",
            root,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    Ok((wd, id))
}

/// Waits until `fd` is readable or `timeout` passes; true when readable.
fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> Result<bool> {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timespec = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos() as _,
    });
    match rustix::event::poll(&mut fds, timespec.as_ref()) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(err) => Err(Error::io("wait for inotify events", "inotify", os(err))),
    }
}

/// A registration with the table (a watcher, or a wait), removed when dropped.
struct Registered {
    table: Arc<SmallTable>,
    registration: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = self.table.remove_watcher(self.registration);
    }
}

/// Blocks until `name` exists in `namespace` (at most `timeout`), then reads it.
pub(crate) fn wait_for(
    store: &Store,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<ObjectView> {
    validate_name(name)?;
    let started = Instant::now();
    if let Some(view) = store.get(namespace, name)? {
        return Ok(view);
    }
    let dir = store.ensure_namespace(namespace)?;
    let inotify = Inotify::init().map_err(|e| Error::io("start inotify for", &dir, e))?;
    inotify
        .watches()
        .add(&dir, WatchMask::MOVED_TO | WatchMask::ONLYDIR)
        .map_err(|e| Error::io("watch", &dir, e))?;
    // A small object is an entry of the table, not a file in the directory:
    // its writers touch the table's signal file only while a watcher is
    // registered, so this wait registers as one until it returns.
    let _registered = match store.small_table()? {
        Some(table) => {
            let (_, registration, _) = watch_table(&inotify, &table)?;
            Some(Registered {
                table,
                registration,
            })
        }
        None => None,
    };
    let mut inotify = inotify;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // Checked after the watch is in place, so a write in between is not missed.
        if let Some(view) = store.get(namespace, name)? {
            return Ok(view);
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                namespace: namespace.into(),
                name: name.into(),
                waited: timeout,
            });
        }
        // Wake at least every 200 ms: if the namespace is removed and made
        // again, the watch is on the old directory and only a re-check sees it.
        if wait_readable(&inotify, Some(left.min(Duration::from_millis(200))))? {
            match inotify.read_events(&mut buffer) {
                Ok(events) => events.for_each(drop),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(Error::io("read inotify events for", &dir, err)),
            }
        }
    }
}
