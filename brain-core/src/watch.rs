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

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags};

use crate::error::{Error, Result};
use crate::key::{namespace_dir_name, validate_name, ObjectKey};
use crate::object_store::ObjectStore;
use crate::store::{read_meta_at, Store};
use crate::view::ObjectView;

/// Something that happened to a name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// An object was written (created or replaced).
    Set {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An object was deleted, alone or with its namespace.
    Deleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl WatchEvent {
    /// The namespace of the object concerned.
    pub fn namespace(&self) -> &str {
        match self {
            WatchEvent::Set { namespace, .. } | WatchEvent::Deleted { namespace, .. } => namespace,
        }
    }

    /// The name of the object concerned.
    pub fn name(&self) -> &str {
        match self {
            WatchEvent::Set { name, .. } | WatchEvent::Deleted { name, .. } => name,
        }
    }
}

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

/// A stream of [`WatchEvent`]s for one namespace or for the whole store.
///
/// Iterate it to block for each event, or call [`Watcher::next_event`] with
/// a timeout.
pub struct Watcher {
    inotify: Inotify,
    store: Store,
    only: Option<String>,
    root_wd: WatchDescriptor,
    dirs: HashMap<WatchDescriptor, WatchedDir>,
    pending: VecDeque<WatchEvent>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("namespace", &self.only)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watches one namespace (creating it, so it can be watched before its
    /// first object).
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an I/O error setting up inotify (for
    /// example, the per-user limit of watches reached).
    pub fn namespace(store: &Store, namespace: &str) -> Result<Watcher> {
        store.ensure_namespace(namespace)?;
        Self::new(store, Some(namespace.to_owned()))
    }

    /// Watches every namespace of the store, including ones created later.
    ///
    /// # Errors
    /// An I/O error setting up inotify.
    pub fn all(store: &Store) -> Result<Watcher> {
        Self::new(store, None)
    }

    fn new(store: &Store, only: Option<String>) -> Result<Watcher> {
        let root = store.namespaces_root().to_owned();
        let inotify = Inotify::init().map_err(|e| Error::io("start inotify for", &root, e))?;
        let root_wd = inotify
            .watches()
            .add(
                &root,
                WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::ONLYDIR,
            )
            .map_err(|e| Error::io("watch", &root, e))?;
        let mut watcher = Watcher {
            inotify,
            store: store.clone(),
            only,
            root_wd,
            dirs: HashMap::new(),
            pending: VecDeque::new(),
            buffer: vec![0; 64 * 1024],
        };
        let dir_names: Vec<String> = match &watcher.only {
            Some(ns) => vec![namespace_dir_name(ns)],
            None => std::fs::read_dir(&root)
                .map_err(|e| Error::io("list", &root, e))?
                .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
                .filter(|name| name.len() == 32)
                .collect(),
        };
        for dir_name in dir_names {
            watcher.add_dir(&dir_name, false)?;
        }
        Ok(watcher)
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
                    if announce {
                        let namespace = dir.namespace.clone();
                        self.pending
                            .push_back(WatchEvent::Deleted { namespace, name });
                    }
                }
            }
        }
        Ok(())
    }

    /// The next event, waiting at most `timeout` (`None`: forever).
    /// `Ok(None)` means the time ran out.
    ///
    /// # Errors
    /// An I/O error reading inotify.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(None);
            }
            if !wait_readable(&self.inotify, left)? {
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

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<String>) -> Result<()> {
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
            }
            return Ok(());
        }
        if ObjectKey::from_hex(&name).is_some() {
            self.check_entry(&wd, &name, true)?;
        }
        Ok(())
    }
}

impl Iterator for Watcher {
    type Item = Result<WatchEvent>;

    /// Blocks until the next event.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event(None).transpose()
    }
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
        Err(err) => Err(Error::io(
            "wait for inotify events",
            "inotify",
            crate::error::os(err),
        )),
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
    let dir = store.ensure_namespace(namespace)?;
    let inotify = Inotify::init().map_err(|e| Error::io("start inotify for", &dir, e))?;
    inotify
        .watches()
        .add(&dir, WatchMask::MOVED_TO | WatchMask::ONLYDIR)
        .map_err(|e| Error::io("watch", &dir, e))?;
    let started = Instant::now();
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
