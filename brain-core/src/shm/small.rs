//! Small objects: entries of one table in shared memory instead of a file
//! each (docs/ARCHITECTURE.md, "Small objects").
//!
//! The table is an LMDB environment in the store's `small/` directory
//! (`sys/lmdb.rs`): a B-tree in a shared map, written by one process at a
//! time under a lock that is given back when its holder dies, read by any
//! number without locks, and crash-safe (a commit is one switch of a meta
//! page). A set is one write transaction; a get reads one entry and copies
//! its few bytes out.
//!
//! Keys are the namespace's 128-bit hash (as its directory is named)
//! followed by the name, so one namespace's names are one range of the
//! tree. An entry (a record, `format/record.rs`) holds what an object
//! file's header holds beside the names, then the payload.
//!
//! A second table maps a namespace's hash to its name, so a namespace with
//! only small objects is listed; a third keeps the last events for watchers;
//! a fourth marks every name that has an object file, so a set of a new
//! name knows there is none without looking in the filesystem.
//!
//! An object is small when its entry fits in an LMDB page beside others
//! ([`fits`]); anything larger is a file, as before. A name lives in one
//! place: a set of either kind removes the other (the writer's commit,
//! [`SmallTable::change_file`] and [`SmallTable::while_entry`]), and a
//! reader asks the table first, so while both exist for a moment the
//! table's entry is the newer one.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_buffer::{Buffer, MutableBuffer};

use crate::api::error::{Error, Result};
use crate::api::store::DamagedObject;
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::checksum::payload_checksum;
use crate::format::record::{SmallRecord, RECORD_FIXED_LEN};
use crate::format::{namespace_hash, stored_size, Codec, Header, ObjectKey, PayloadChecksum};
use crate::sys::fork;
use crate::sys::lmdb::{Db, Env, LmdbError, ReadTxn, WriteTxn};

use super::NAMESPACES_DIR;

const OBJECTS: Db = Db::at(0);
const NAMESPACES: Db = Db::at(1);
const EVENTS: Db = Db::at(2);
const META: Db = Db::at(3);
const FILES: Db = Db::at(4);
const DATABASES: [&str; 5] = ["objects", "namespaces", "events", "meta", "files"];
/// Set in META once FILES marks every object file of the store: a table
/// made before FILES existed is marked from the files at its first open.
const FILES_MARKED: &[u8] = b"files_marked";

/// LMDB's data file in the table's directory (`SMALL_DIR`).
pub(crate) const DATA_FILE: &str = "data.mdb";
const PREFIX: usize = 16;
/// LMDB's longest key.
const MAX_KEY: usize = 511;
/// The most an entry (key, record and LMDB's 8-byte node header) may take
/// to stay in a page of 4 KiB beside others; LMDB moves larger values to
/// pages of their own.
const MAX_ENTRY: usize = 2000;
/// How many events the table keeps for watchers that fall behind.
pub(crate) const EVENTS_KEPT: u64 = 65_536;
/// Where the number of the next event is kept in META.
const NEXT_EVENT: &[u8] = b"next_event";
/// The file writers touch when a watcher waits for their change.
pub(crate) const SIGNAL_FILE: &str = "signal";
/// Registered watchers in META: this prefix, then the process identity.
const WATCHER: &[u8] = b"watcher/";

/// Whether an object of these names and sizes is kept in the table.
pub(crate) fn fits(namespace: &str, name: &str, description: &str, payload_len: u64) -> bool {
    let key = PREFIX + name.len();
    key <= MAX_KEY
        && 8 + key as u64 + (RECORD_FIXED_LEN + description.len()) as u64 + payload_len
            <= MAX_ENTRY as u64
        && !namespace.is_empty()
}

/// The table's key of `name` in `namespace`.
pub(crate) fn key(namespace: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(PREFIX + name.len());
    key.extend_from_slice(&namespace_hash(namespace).to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// The key of the mark of `key`'s object file in `namespace`: the
/// namespace's hash (so one namespace's marks are one range), then the
/// file's key (its name).
fn file_mark(namespace: &str, key: ObjectKey) -> [u8; 32] {
    mark_of(namespace_hash(namespace), key)
}

fn mark_of(namespace_hash: u128, key: ObjectKey) -> [u8; 32] {
    let mut mark = [0; 32];
    mark[..PREFIX].copy_from_slice(&namespace_hash.to_be_bytes());
    mark[PREFIX..].copy_from_slice(&key.0.to_be_bytes());
    mark
}

/// The object file's key in a mark made by [`mark_of`].
fn marked_key(mark: &[u8]) -> ObjectKey {
    ObjectKey(u128::from_be_bytes(
        mark[PREFIX..].try_into().expect("a mark is 32 bytes"),
    ))
}

/// A small object as the table holds it (format/record.rs).
pub(crate) type Record<'a> = SmallRecord<'a>;

/// A new record of `payload`, created now.
pub(crate) fn new_record<'a>(codec: Codec, description: &'a str, payload: &'a [u8]) -> Record<'a> {
    SmallRecord {
        codec,
        created_unix_nanos: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64),
        checksum: payload_checksum(payload),
        description,
        payload,
    }
}

/// A record's metadata, as of `name` in `namespace`.
pub(crate) fn record_meta(record: &Record<'_>, namespace: &str, name: &str) -> ObjectMeta {
    let created = if record.created_unix_nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(record.created_unix_nanos as u64)
    } else {
        UNIX_EPOCH
    };
    ObjectMeta {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        codec: record.codec,
        size: record.payload.len() as u64,
        stored_size: stored_size(
            namespace,
            name,
            record.description,
            record.payload.len() as u64,
        ),
        created,
        description: record.description.to_owned(),
    }
}

/// The file length an object file of this record would have: what the
/// capacity counts (every backend counts objects alike).
fn record_file_len(record: &Record<'_>, namespace: &str, name: &str) -> u64 {
    (Header::encoded_len_for(namespace, name, record.description) + record.payload.len()) as u64
}

/// [`record_file_len`] of an entry's bytes; 0 for an entry that does not
/// decode (it counts for nothing: `fsck` reports it and recounts).
fn entry_file_len(bytes: &[u8], namespace: &str, name: &str) -> u64 {
    Record::decode(bytes).map_or(0, |r| record_file_len(&r, namespace, name))
}

/// A change the table recorded, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableEvent {
    pub seq: u64,
    pub set: bool,
    pub namespace: String,
    pub name: String,
}

/// One store's table of small objects, shared by every `Store` of this
/// process that opened the same directory.
#[derive(Debug)]
pub(crate) struct SmallTable {
    /// Closed under the registry's lock (see `Drop`); `None` only then.
    env: Option<Env>,
    dir: PathBuf,
    /// Touched (its change time) after a change a watcher waits for.
    signal: std::fs::File,
}

type Registry = Mutex<Vec<((u64, u64, u64), Weak<SmallTable>)>>;
static OPEN_TABLES: Registry = Mutex::new(Vec::new());

/// The table of the store at `root`: the one this process has open, or
/// opened now. LMDB allows one environment per file in a process, and
/// none opened before a fork in the child.
pub(crate) fn open_table(root: &Path, mode: u32) -> Result<Arc<SmallTable>> {
    let dir = root.join(super::SMALL_DIR);
    super::dirs::ensure_private_dir(&dir)?;
    let stat = rustix::fs::stat(&dir).map_err(|e| Error::io("stat", &dir, e.into()))?;
    let id = (stat.st_dev, stat.st_ino, fork::generation());
    let mut tables = crate::sys::fork::lock(&OPEN_TABLES);
    if let Some(table) = tables
        .iter()
        .find(|(at, _)| *at == id)
        .and_then(|(_, t)| t.upgrade())
    {
        return Ok(table);
    }
    let env = Env::open(&dir, &DATABASES, mode).map_err(|e| table_error(&dir, "open", e))?;
    mark_files_once(&env, &root.join(NAMESPACES_DIR)).map_err(|e| table_error(&dir, "open", e))?;
    let signal_path = dir.join(SIGNAL_FILE);
    let signal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&signal_path)
        .map_err(|e| Error::io("open", &signal_path, e))?;
    let table = Arc::new(SmallTable {
        env: Some(env),
        dir,
        signal,
    });
    tables.retain(|(at, weak)| weak.strong_count() > 0 && *at != id);
    tables.push((id, Arc::downgrade(&table)));
    Ok(table)
}

/// Marks every object file under `ns_root` in FILES, unless the table
/// says that was done: under the writer lock, which every publish and
/// delete of a file by this build takes, so none is missed meanwhile.
/// (Processes of a build before the marks, still sharing the store, leave
/// the files they publish unmarked, as a writer killed mid-publish does:
/// `gc` marks them.)
fn mark_files_once(env: &Env, ns_root: &Path) -> std::result::Result<(), LmdbError> {
    let marked = |txn: &ReadTxn<'_>| Ok(txn.get(META, FILES_MARKED)?.is_some());
    if env.read(marked)? {
        return Ok(());
    }
    env.write(|txn| {
        if marked(txn)? {
            return Ok(());
        }
        for (namespace_hash, key) in object_files_under(ns_root).map_err(LmdbError::Io)? {
            txn.put(FILES, &mark_of(namespace_hash, key), &[])?;
        }
        txn.put(META, FILES_MARKED, &[1])
    })
}

/// Every object file under `ns_root`, by its namespace's hash (the
/// directory's name) and its key (the file's name).
fn object_files_under(ns_root: &Path) -> std::io::Result<Vec<(u128, ObjectKey)>> {
    let mut found = Vec::new();
    let dirs = match std::fs::read_dir(ns_root) {
        Ok(dirs) => dirs,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err),
    };
    for dir in dirs {
        let dir = dir?;
        let Some(namespace_hash) = dir
            .file_name()
            .to_str()
            .and_then(ObjectKey::from_hex)
            .map(|k| k.0)
        else {
            continue;
        };
        let files = match std::fs::read_dir(dir.path()) {
            Ok(files) => files,
            // Removed meanwhile (a namespace's removal moves it away first).
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for file in files {
            if let Some(key) = file?.file_name().to_str().and_then(ObjectKey::from_hex) {
                found.push((namespace_hash, key));
            }
        }
    }
    Ok(found)
}

fn table_error(dir: &Path, action: &'static str, err: LmdbError) -> Error {
    match err {
        LmdbError::Lmdb(code, _) if crate::sys::lmdb::is_damage(dir, code) => Error::corrupt(
            dir.join(DATA_FILE),
            format!("the small-object table, at its {action}: {err}"),
        ),
        LmdbError::Io(err) => Error::io(action, dir, err),
        LmdbError::NoSpace => {
            Error::io(action, dir, std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        other => Error::io(
            action,
            dir,
            std::io::Error::other(format!("the small-object table: {other}")),
        ),
    }
}

/// An entry as `fsck` checked it.
#[derive(Debug)]
pub(crate) struct CheckedEntry {
    pub namespace: String,
    pub name: String,
    /// What the entry counts for (as an object file of it would).
    pub file_len: u64,
    /// What is wrong with it, if anything.
    pub problem: Option<String>,
}

impl Drop for SmallTable {
    fn drop(&mut self) {
        // Closing an environment closes its lock file, which drops every
        // `fcntl` lock this process holds on it, a newer environment's of
        // the same store included: so no other is opened meanwhile.
        let _tables = crate::sys::fork::lock(&OPEN_TABLES);
        drop(self.env.take());
    }
}

/// What a set of a small object replaced.
#[derive(Debug)]
pub(crate) struct Replaced {
    /// The replaced object's file length (as the capacity counts it).
    pub file_len: u64,
}

/// What [`SmallTable::put`] did.
#[derive(Debug)]
pub(crate) struct Put {
    /// The entry replaced, if any.
    pub replaced: Option<Replaced>,
    /// With no entry replaced: whether an object file of the name is marked.
    pub file_marked: bool,
    /// The replaced entry's description, when the entry written took it.
    pub kept: Option<String>,
}

impl SmallTable {
    fn env(&self) -> &Env {
        self.env
            .as_ref()
            .expect("the table is open until it is dropped")
    }

    fn error(&self, action: &'static str, err: LmdbError) -> Error {
        table_error(&self.dir, action, err)
    }

    /// The object `name` in `namespace`, copied out of the table: its view
    /// (`whole`) or only its metadata.
    pub(crate) fn get(
        &self,
        namespace: &str,
        name: &str,
        whole: bool,
    ) -> Result<Option<(ObjectMeta, Option<ObjectView>)>> {
        let key = key(namespace, name);
        let found = self.env().read(|txn| {
            let Some(bytes) = txn.get(OBJECTS, &key)? else {
                return Ok(None);
            };
            Ok(Some(match Record::decode(bytes) {
                Ok(record) => {
                    let meta = record_meta(&record, namespace, name);
                    let view = whole.then(|| {
                        // Payloads are 64-byte aligned, as in an object file.
                        let mut payload = MutableBuffer::with_capacity(record.payload.len());
                        payload.extend_from_slice(record.payload);
                        ObjectView::new(meta.clone(), Buffer::from(payload))
                            .with_checksum(Some(PayloadChecksum::Chunked(record.checksum)))
                    });
                    Ok((meta, view))
                }
                Err(why) => Err(why.to_string()),
            }))
        });
        match found.map_err(|e| self.error("read", e))? {
            None => Ok(None),
            Some(Ok((meta, view))) => {
                // A few bytes: checked on every read, so a changed one is
                // an error, never data (the check again, for its error).
                if let Some(view) = view.as_ref().filter(|v| !v.matches_checksum()) {
                    view.verify(self.location(namespace, name))?;
                }
                Ok(Some((meta, view)))
            }
            Some(Err(why)) => Err(self.damaged(namespace, name, why)),
        }
    }

    /// The error for the damaged entry of `name` in `namespace`.
    fn damaged(&self, namespace: &str, name: &str, why: impl std::fmt::Display) -> Error {
        Error::corrupt(
            &self.dir,
            format!("the small object {name:?} in namespace {namespace:?}: {why}; delete it, or run `brain fsck --delete-corrupt`"),
        )
    }

    /// What a set of `name` replaces: the metadata of its entry, if any,
    /// else whether an object file of the name is marked. Files are marked
    /// under the writer lock that publishes and deletes them, so without a
    /// mark there is no file (or one a writer killed mid-publish left
    /// behind an entry, which `gc` removes).
    pub(crate) fn meta_and_file_mark(
        &self,
        namespace: &str,
        name: &str,
        file: ObjectKey,
    ) -> Result<(Option<ObjectMeta>, bool)> {
        let key = key(namespace, name);
        let mark = file_mark(namespace, file);
        let found = self.env().read(|txn| {
            let meta = txn
                .get(OBJECTS, &key)?
                .map(|bytes| Record::decode(bytes).map(|r| record_meta(&r, namespace, name)));
            // A file's publish removes the entry: with one, there is no file.
            let marked = meta.is_none() && txn.get(FILES, &mark)?.is_some();
            Ok((meta, marked))
        });
        match found.map_err(|e| self.error("read", e))? {
            (Some(Err(why)), _) => Err(self.damaged(namespace, name, why)),
            (meta, marked) => Ok((meta.map(|m| m.expect("errors returned above")), marked)),
        }
    }

    /// Whether `name` is in the table.
    pub(crate) fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        let key = key(namespace, name);
        self.env()
            .read(|txn| Ok(txn.get(OBJECTS, &key)?.is_some()))
            .map_err(|e| self.error("read", e))
    }

    /// Sets `name` to `record`, atomically; returns what it replaced, and
    /// when that was no entry, whether an object file of the name (`file`)
    /// is marked (see [`SmallTable::meta_and_file_mark`]).
    ///
    /// With `keep`, a record without a description takes the description
    /// of the entry it replaces, read in the same transaction, when `keep`
    /// accepts it (the entry still fits, and counts the bytes reserved for
    /// it). Nothing is written, and `None` returned, when the description to
    /// keep is not the table's to give: an object file of the name is
    /// marked, or `keep` refused the entry's. A damaged entry to keep a
    /// description from is an error, as for
    /// [`SmallTable::meta_and_file_mark`].
    pub(crate) fn put(
        &self,
        namespace: &str,
        name: &str,
        file: ObjectKey,
        record: &Record<'_>,
        keep: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Option<Put>> {
        let key = key(namespace, name);
        let ns_key = &key[..PREFIX];
        let mark = mark_of(
            u128::from_be_bytes(ns_key.try_into().expect("a prefix")),
            file,
        );
        let keep = keep.filter(|_| record.description.is_empty());
        let written = self
            .env()
            .write(|txn| {
                let old = txn.get(OBJECTS, &key)?;
                let mut kept = None;
                if let Some(accepts) = keep {
                    match old.map(Record::decode) {
                        Some(Ok(old)) if old.description.is_empty() => {}
                        Some(Ok(old)) if accepts(old.description) => {
                            kept = Some(old.description.to_owned());
                        }
                        Some(Ok(_)) => return Ok(Err(None)),
                        Some(Err(why)) => return Ok(Err(Some(why.to_string()))),
                        None if txn.get(FILES, &mark)?.is_some() => return Ok(Err(None)),
                        None => {}
                    }
                }
                let replaced = old.map(|old| Replaced {
                    file_len: entry_file_len(old, namespace, name),
                });
                let value = match &kept {
                    Some(description) => Record {
                        description,
                        ..*record
                    }
                    .encode(),
                    None => record.encode(),
                };
                txn.put(OBJECTS, &key, &value)?;
                if txn.get(NAMESPACES, ns_key)?.is_none() {
                    txn.put(NAMESPACES, ns_key, namespace.as_bytes())?;
                }
                let file_marked = replaced.is_none() && txn.get(FILES, &mark)?.is_some();
                let signal = record_event(txn, true, namespace, name)?;
                Ok(Ok((
                    Put {
                        replaced,
                        file_marked,
                        kept,
                    },
                    signal,
                )))
            })
            .map_err(|e| self.error("write", e))?;
        match written {
            Ok((put, signal)) => {
                self.signal_if(signal);
                Ok(Some(put))
            }
            Err(None) => Ok(None),
            Err(Some(why)) => Err(self.damaged(namespace, name, why)),
        }
    }

    /// Wakes watchers after a change they were told of.
    fn signal_if(&self, recorded: bool) {
        if recorded {
            // Setting both times is an inotify IN_ATTRIB (one alone is an
            // IN_MODIFY or IN_ACCESS, which readers' opens would also make
            // elsewhere). A failure
            // costs watchers only their wake-up (they also poll).
            let _ = rustix::fs::futimens(
                &self.signal,
                &rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_NOW,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_NOW,
                    },
                },
            );
        }
    }

    /// Runs `f` under the table's writer lock (in a write transaction that
    /// writes nothing), which every publish and delete of an object file
    /// holds: a file at a name stays the same while `f` runs.
    pub(crate) fn with_writer_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let mut f = Some(f);
        let mut out = None;
        self.env()
            .write(|_txn| {
                // Once: a retry of the transaction must not run it again.
                if let Some(f) = f.take() {
                    out = Some(f());
                }
                Ok(())
            })
            .map_err(|e| self.error("lock", e))?;
        Ok(out.expect("the transaction ran"))
    }

    /// Runs `change` (a rename that puts a file at the name, or takes it
    /// away) inside a write transaction that also removes the name's entry,
    /// so no set of a small object interleaves with it: every change of a
    /// name, file or entry, happens under the table's writer lock. When
    /// `change` fails, nothing changes. When `deleting`, an entry removed
    /// is told to watchers as deleted (a file's rename tells of itself).
    /// Returns the file length the removed entry counted for, and what
    /// `change` returned.
    ///
    /// Every change to the table is made before `change` runs, so only the
    /// commit can fail after it; then the entry is removed in a transaction
    /// of its own, and if that fails too it stays, shadowing the file (what
    /// a writer killed at that point leaves, which readers see as the old
    /// value and `gc` clears).
    pub(crate) fn change_file<R>(
        &self,
        namespace: &str,
        name: &str,
        deleting: bool,
        mut change: impl FnMut() -> Result<R>,
    ) -> Result<(Option<u64>, R)> {
        let key = key(namespace, name);
        let mark = file_mark(namespace, ObjectKey::new(namespace, name));
        let mut outcome: Option<Result<R>> = None;
        let remove_entry =
            |txn: &mut WriteTxn<'_>| -> std::result::Result<(Option<u64>, bool), LmdbError> {
                if deleting {
                    txn.delete(FILES, &mark)?;
                } else if txn.get(FILES, &mark)?.is_none() {
                    // A file replacing a file keeps its mark: no page written.
                    txn.put(FILES, &mark, &[])?;
                }
                let Some(old) = txn.get(OBJECTS, &key)? else {
                    return Ok((None, false));
                };
                let file_len = entry_file_len(old, namespace, name);
                txn.delete(OBJECTS, &key)?;
                let signal = deleting && record_event(txn, false, namespace, name)?;
                Ok((Some(file_len), signal))
            };
        let done = self.env().write(|txn| {
            let removed = remove_entry(txn)?;
            // Run once: a retry (the table grew) must not repeat the rename.
            if outcome.is_none() {
                outcome = Some(change());
            }
            match &outcome {
                Some(Ok(_)) => Ok(removed),
                _ => Err(LmdbError::Cancelled),
            }
        });
        let value = match outcome {
            Some(Ok(value)) => value,
            Some(Err(err)) => return Err(err),
            None => return Err(self.error("write", done.err().unwrap_or(LmdbError::Cancelled))),
        };
        let (old, signal) = match done {
            Ok(removed) => removed,
            Err(_) => self.env().write(remove_entry).unwrap_or((None, false)),
        };
        self.signal_if(signal);
        Ok((old, value))
    }

    /// Runs `change` (the removal of `name`'s object file) under the
    /// table's writer lock when `name` has an entry: a file's publish
    /// removes the entry under the same lock, so a file beside an entry is
    /// older than it, whoever wrote either. `None` when there is no entry.
    pub(crate) fn while_entry<R>(
        &self,
        namespace: &str,
        name: &str,
        mut change: impl FnMut() -> Result<R>,
    ) -> Result<Option<R>> {
        let key = key(namespace, name);
        let mark = file_mark(namespace, ObjectKey::new(namespace, name));
        let mut outcome: Option<Result<R>> = None;
        let done = self.env().write(|txn| {
            if txn.get(OBJECTS, &key)?.is_some() {
                if outcome.is_none() {
                    outcome = Some(change());
                }
                if matches!(outcome, Some(Ok(_))) {
                    txn.delete(FILES, &mark)?;
                }
            }
            Ok(())
        });
        match (done, outcome) {
            (_, Some(Err(err))) => Err(err),
            (Ok(()), outcome) => Ok(outcome.map(|o| o.expect("errors returned above"))),
            (Err(err), _) => Err(self.error("write", err)),
        }
    }

    /// Makes the marks of the object files of the namespace whose hash is
    /// `namespace_hash` match `files`, its files as listed without a lock:
    /// each difference is checked again under the writer lock (`exists`)
    /// before it is written. Marks go missing only when a writer is killed
    /// between a file's publish and its commit (or by a build that did not
    /// mark files).
    pub(crate) fn mark_files(
        &self,
        namespace_hash: u128,
        files: &[ObjectKey],
        exists: impl Fn(ObjectKey) -> bool,
    ) -> Result<()> {
        let prefix = namespace_hash.to_be_bytes();
        let listed: std::collections::HashSet<[u8; 32]> =
            files.iter().map(|&k| mark_of(namespace_hash, k)).collect();
        // The marks missing, then the marks of files not listed.
        let differences = |txn: &ReadTxn<'_>| {
            let mut marked = std::collections::HashSet::new();
            txn.for_each_prefixed(FILES, &prefix, |mark, _| {
                if let Ok(mark) = <[u8; 32]>::try_from(mark) {
                    marked.insert(mark);
                }
                true
            })?;
            let missing: Vec<[u8; 32]> = listed.difference(&marked).copied().collect();
            let stale: Vec<[u8; 32]> = marked.difference(&listed).copied().collect();
            Ok::<_, LmdbError>((missing, stale))
        };
        let (missing, stale) = self
            .env()
            .read(|txn| differences(txn))
            .map_err(|e| self.error("read", e))?;
        if missing.is_empty() && stale.is_empty() {
            return Ok(());
        }
        self.env()
            .write(|txn| {
                let (missing, stale) = differences(txn)?;
                for mark in missing.iter().filter(|m| exists(marked_key(&m[..]))) {
                    txn.put(FILES, mark, &[])?;
                }
                for mark in stale.iter().filter(|m| !exists(marked_key(&m[..]))) {
                    txn.delete(FILES, mark)?;
                }
                Ok(())
            })
            .map_err(|e| self.error("write", e))
    }

    /// The entries of `namespace` that cannot be read, which
    /// [`SmallTable::list`] leaves out.
    pub(crate) fn damaged_entries(&self, namespace: &str) -> Result<Vec<DamagedObject>> {
        let prefix = namespace_hash(namespace).to_be_bytes();
        self.env()
            .read(|txn| {
                let mut out = Vec::new();
                txn.for_each_prefixed(OBJECTS, &prefix, |key, value| {
                    let name = std::str::from_utf8(key.get(PREFIX..).unwrap_or_default());
                    let reason = match (name, Record::decode(value)) {
                        (Ok(_), Ok(_)) => return true,
                        (Err(_), _) => "its name is not UTF-8".to_owned(),
                        (Ok(_), Err(why)) => why.to_string(),
                    };
                    let name = name.ok().map(str::to_owned);
                    let shown = name.clone().unwrap_or_else(|| {
                        String::from_utf8_lossy(key.get(PREFIX..).unwrap_or_default()).into_owned()
                    });
                    out.push(DamagedObject {
                        key: ObjectKey::new(namespace, &shown),
                        location: self.location(namespace, &shown),
                        name,
                        reason,
                    });
                    true
                })?;
                Ok(out)
            })
            .map_err(|e| self.error("list", e))
    }

    /// The metadata of every object of `namespace` in the table, by name.
    /// A damaged entry is left out (`fsck` reports it).
    pub(crate) fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = namespace_hash(namespace).to_be_bytes();
        self.env()
            .read(|txn| {
                let mut out = Vec::new();
                txn.for_each_prefixed(OBJECTS, &prefix, |key, value| {
                    if let (Ok(name), Ok(record)) = (
                        std::str::from_utf8(key.get(PREFIX..).unwrap_or_default()),
                        Record::decode(value),
                    ) {
                        out.push(record_meta(&record, namespace, name));
                    }
                    true
                })?;
                Ok(out)
            })
            .map_err(|e| self.error("list", e))
    }

    /// The names of `namespace` in the table, sorted (by bytes, as `str` sorts).
    pub(crate) fn names(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self.names_as_of(namespace)?.0)
    }

    /// [`SmallTable::names`], and the number of the table's last write
    /// they reflect ([`SmallTable::version`]).
    pub(crate) fn names_as_of(&self, namespace: &str) -> Result<(Vec<String>, u64)> {
        self.env()
            .read(|txn| Ok((names_in(txn, namespace)?, txn.id())))
            .map_err(|e| self.error("list", e))
    }

    /// The names of the small objects of `only` (every namespace when
    /// `None`), by namespace, and the number of the next event the table
    /// records, read in one transaction: what a watcher that fell behind
    /// knows now, and where its events go on from.
    pub(crate) fn names_and_next_event(
        &self,
        only: Option<&str>,
    ) -> Result<(HashMap<String, std::collections::HashSet<String>>, u64)> {
        self.env()
            .read(|txn| {
                let namespaces = match only {
                    Some(ns) => vec![ns.to_owned()],
                    None => namespaces_in(txn)?,
                };
                let mut out = HashMap::new();
                for namespace in namespaces {
                    let names = names_in(txn, &namespace)?;
                    if !names.is_empty() {
                        out.insert(namespace, names.into_iter().collect());
                    }
                }
                Ok((out, next_event_of(txn)?))
            })
            .map_err(|e| self.error("list", e))
    }

    /// The number of the table's last write. An object file's publish and
    /// delete are writes of the table too (`change_file`), so a name moving
    /// between an entry and a file changes it.
    pub(crate) fn version(&self) -> Result<u64> {
        self.env()
            .read(|txn| Ok(txn.id()))
            .map_err(|e| self.error("read", e))
    }

    /// The namespaces that have (or had) small objects.
    pub(crate) fn namespaces(&self) -> Result<Vec<String>> {
        self.env()
            .read(namespaces_in)
            .map_err(|e| self.error("list", e))
    }

    /// Removes `namespace` and its objects from the table in one
    /// transaction, and the marks of its object files that are not in
    /// `dir` (the namespace's directory, already moved away: a file there
    /// now was published into the namespace made anew meanwhile); returns
    /// whether it was there, and the file lengths of the objects removed.
    pub(crate) fn remove_namespace(&self, namespace: &str, dir: &Path) -> Result<(bool, Vec<u64>)> {
        let prefix = namespace_hash(namespace).to_be_bytes();
        self.env()
            .write(|txn| {
                let known = txn.delete(NAMESPACES, &prefix)?;
                let mut doomed = Vec::new();
                txn.for_each_prefixed(OBJECTS, &prefix, |key, value| {
                    let name =
                        String::from_utf8_lossy(key.get(PREFIX..).unwrap_or_default()).into_owned();
                    let file_len = entry_file_len(value, namespace, &name);
                    doomed.push((key.to_vec(), name, file_len));
                    true
                })?;
                let mut signal = false;
                for (key, name, _) in &doomed {
                    txn.delete(OBJECTS, key)?;
                    signal |= record_event(txn, false, namespace, name)?;
                }
                let mut marks = Vec::new();
                txn.for_each_prefixed(FILES, &prefix, |mark, _| {
                    marks.push(mark.to_vec());
                    true
                })?;
                for mark in &marks {
                    // Files are published under this lock: one there now stays.
                    if std::fs::symlink_metadata(dir.join(marked_key(mark).to_hex())).is_err() {
                        txn.delete(FILES, mark)?;
                    }
                }
                let lens: Vec<u64> = doomed.into_iter().map(|(_, _, len)| len).collect();
                Ok((known || !lens.is_empty(), lens, signal))
            })
            .map(|(known, lens, signal)| {
                self.signal_if(signal);
                (known, lens)
            })
            .map_err(|e| self.error("remove the namespace", e))
    }

    /// Every entry, checked: `(namespace, name, file length, problem)`.
    /// The namespace comes from the namespace table (an entry whose
    /// namespace is not there is a problem too).
    pub(crate) fn check_all(&self) -> Result<Vec<CheckedEntry>> {
        self.env()
            .read(|txn| {
                let mut namespaces = HashMap::new();
                txn.for_each_prefixed(NAMESPACES, &[], |key, value| {
                    namespaces.insert(key.to_vec(), String::from_utf8_lossy(value).into_owned());
                    true
                })?;
                let mut out = Vec::new();
                txn.for_each_prefixed(OBJECTS, &[], |key, value| {
                    let namespace = namespaces.get(&key[..PREFIX.min(key.len())]).cloned();
                    let name =
                        String::from_utf8_lossy(key.get(PREFIX..).unwrap_or_default()).into_owned();
                    let (file_len, problem) = match (&namespace, Record::decode(value)) {
                        (None, _) => (0, Some("its namespace is not in the table".to_owned())),
                        (Some(ns), Ok(record)) => {
                            let len = record_file_len(&record, ns, &name);
                            if payload_checksum(record.payload) == record.checksum {
                                (len, None)
                            } else {
                                (
                                    len,
                                    Some("its payload does not match its checksum".to_owned()),
                                )
                            }
                        }
                        (Some(_), Err(why)) => (0, Some(why.to_string())),
                    };
                    out.push(CheckedEntry {
                        namespace: namespace.unwrap_or_default(),
                        name,
                        file_len,
                        problem,
                    });
                    true
                })?;
                Ok(out)
            })
            .map_err(|e| self.error("check", e))
    }

    /// Deletes an entry `fsck` found damaged (by namespace and name).
    pub(crate) fn delete_damaged(&self, namespace: &str, name: &str) -> Result<bool> {
        let key = key(namespace, name);
        self.env()
            .write(|txn| txn.delete(OBJECTS, &key))
            .map_err(|e| self.error("delete", e))
    }

    /// Clears reader slots of processes that died; returns how many.
    pub(crate) fn clear_stale_readers(&self) -> Result<usize> {
        self.env()
            .clear_stale_readers()
            .map_err(|e| self.error("check the readers of", e))
    }

    /// Device and inode of the table's data file as this process maps it,
    /// and whether the file still has a name.
    pub(crate) fn identity(&self) -> Result<((u64, u64), bool)> {
        self.env()
            .data_identity()
            .map_err(|e| self.error("stat", e))
    }

    /// The table file's size in bytes.
    pub(crate) fn file_len(&self) -> u64 {
        self.env().file_len()
    }

    /// Where an entry is, for a report: the table's directory.
    pub(crate) fn location(&self, _namespace: &str, _name: &str) -> crate::api::error::Location {
        self.dir.clone().into()
    }

    /// The events numbered from `from` on (at most `limit`), the number
    /// after the last, and whether events older than the table keeps were
    /// lost on the way.
    pub(crate) fn events_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<TableEvent>, u64, bool)> {
        self.env()
            .read(|txn| {
                let next = next_event_of(txn)?;
                let first = from.max(next.saturating_sub(EVENTS_KEPT));
                let mut out = Vec::new();
                let mut seq = first;
                while seq < next && out.len() < limit {
                    if let Some(bytes) = txn.get(EVENTS, &(seq % EVENTS_KEPT).to_be_bytes())? {
                        if let Some(event) = decode_event(bytes).filter(|e| e.seq == seq) {
                            out.push(event);
                        }
                    }
                    seq += 1;
                }
                Ok((out, seq, first > from))
            })
            .map_err(|e| self.error("read", e))
    }

    /// Records a watcher of this process, so writers record events and
    /// signal; returns its registration. Watchers of processes that are
    /// gone are removed on the way.
    /// Also returns the number of the first event it will read, from the
    /// same transaction: no event falls between the two.
    pub(crate) fn add_watcher(&self) -> Result<(u64, u64)> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let registration = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = watcher_key(registration);
        self.prune_watchers()?;
        let next = self
            .env()
            .write(|txn| {
                txn.put(META, &key, &[])?;
                next_event_of(txn)
            })
            .map_err(|e| self.error("register a watcher in", e))?;
        Ok((registration, next))
    }

    /// Removes a watcher's registration.
    pub(crate) fn remove_watcher(&self, registration: u64) -> Result<()> {
        let key = watcher_key(registration);
        self.env()
            .write(|txn| txn.delete(META, &key).map(drop))
            .map_err(|e| self.error("unregister a watcher in", e))
    }

    /// Removes the watchers of processes that are gone.
    pub(crate) fn prune_watchers(&self) -> Result<usize> {
        self.env()
            .write(|txn| {
                let mut dead = Vec::new();
                txn.for_each_prefixed(META, WATCHER, |key, _| {
                    let word = |at: usize| {
                        key.get(WATCHER.len() + at..WATCHER.len() + at + 8)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, u64::from_be_bytes)
                    };
                    if !super::capacity::identity_alive(word(0), word(8)) {
                        dead.push(key.to_vec());
                    }
                    true
                })?;
                for key in &dead {
                    txn.delete(META, key)?;
                }
                Ok(dead.len())
            })
            .map_err(|e| self.error("check the watchers of", e))
    }

    /// The file whose change time writers touch when there are watchers.
    pub(crate) fn signal_path(&self) -> PathBuf {
        self.dir.join(SIGNAL_FILE)
    }
}

/// A watcher's key: its process's identity (pid and start time) and PID
/// namespace (one of another namespace cannot be looked up, and counts as
/// alive), then the registration's number in that process.
fn watcher_key(registration: u64) -> Vec<u8> {
    let mut key = WATCHER.to_vec();
    key.extend_from_slice(&super::capacity::my_identity().to_be_bytes());
    key.extend_from_slice(&u64::from(crate::sys::names::pid_namespace()).to_be_bytes());
    key.extend_from_slice(&registration.to_be_bytes());
    key
}

/// The names of `namespace`'s entries, as `txn` sees them.
fn names_in(txn: &ReadTxn<'_>, namespace: &str) -> std::result::Result<Vec<String>, LmdbError> {
    let mut out = Vec::new();
    txn.for_each_prefixed(
        OBJECTS,
        &namespace_hash(namespace).to_be_bytes(),
        |key, _| {
            if let Ok(name) = std::str::from_utf8(key.get(PREFIX..).unwrap_or_default()) {
                out.push(name.to_owned());
            }
            true
        },
    )?;
    Ok(out)
}

/// The namespaces that have (or had) entries, as `txn` sees them.
fn namespaces_in(txn: &ReadTxn<'_>) -> std::result::Result<Vec<String>, LmdbError> {
    let mut out = Vec::new();
    txn.for_each_prefixed(NAMESPACES, &[], |_, value| {
        if let Ok(name) = std::str::from_utf8(value) {
            out.push(name.to_owned());
        }
        true
    })?;
    Ok(out)
}

fn next_event_of(txn: &ReadTxn<'_>) -> std::result::Result<u64, LmdbError> {
    Ok(txn
        .get(META, NEXT_EVENT)?
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes))
}

/// Appends an event when a watcher is registered (none: nothing to do);
/// `true` when it did.
fn record_event(
    txn: &mut WriteTxn<'_>,
    set: bool,
    namespace: &str,
    name: &str,
) -> std::result::Result<bool, LmdbError> {
    let mut watched = false;
    txn.for_each_prefixed(META, WATCHER, |_, _| {
        watched = true;
        false
    })?;
    if !watched {
        return Ok(false);
    }
    let seq = next_event_of(txn)?;
    let mut event = Vec::with_capacity(13 + namespace.len() + name.len());
    event.extend_from_slice(&seq.to_be_bytes());
    event.push(u8::from(set));
    event.extend_from_slice(&(namespace.len() as u32).to_le_bytes());
    event.extend_from_slice(namespace.as_bytes());
    event.extend_from_slice(name.as_bytes());
    txn.put(EVENTS, &(seq % EVENTS_KEPT).to_be_bytes(), &event)?;
    txn.put(META, NEXT_EVENT, &(seq + 1).to_be_bytes())?;
    Ok(true)
}

fn decode_event(bytes: &[u8]) -> Option<TableEvent> {
    let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let set = *bytes.get(8)? != 0;
    let ns_len = u32::from_le_bytes(bytes.get(9..13)?.try_into().ok()?) as usize;
    let namespace = std::str::from_utf8(bytes.get(13..13 + ns_len)?)
        .ok()?
        .to_owned();
    let name = std::str::from_utf8(bytes.get(13 + ns_len..)?)
        .ok()?
        .to_owned();
    Some(TableEvent {
        seq,
        set,
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectStore, Payload, Store};

    /// A store holding one object file, `big` in namespace `n`, its table
    /// and the file's key.
    fn store_with_a_file() -> (tempfile::TempDir, Store, Arc<SmallTable>, ObjectKey) {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        store
            .put("n", "big", &Payload::bytes(&[1; 10_000]))
            .unwrap();
        let table = store.small_table().unwrap().unwrap();
        (dir, store, table, ObjectKey::new("n", "big"))
    }

    #[test]
    fn a_table_made_before_files_were_marked_marks_them_at_its_first_open() {
        let (dir, store, table, file) = store_with_a_file();
        let root = dir.path().join("store");
        let marked = || table.meta_and_file_mark("n", "big", file).unwrap().1;
        assert!(marked(), "a file published is marked");
        // As the table of a build that did not mark files leaves it.
        table
            .env()
            .write(|txn| {
                txn.delete(META, FILES_MARKED)?;
                txn.delete(FILES, &file_mark("n", file))?;
                Ok(())
            })
            .unwrap();
        assert!(!marked());
        mark_files_once(table.env(), &root.join(NAMESPACES_DIR)).unwrap();
        assert!(marked(), "marked at the first open of this build");
        // Once noted as done, an open does not scan again.
        table
            .env()
            .write(|txn| txn.delete(FILES, &file_mark("n", file)).map(drop))
            .unwrap();
        mark_files_once(table.env(), &root.join(NAMESPACES_DIR)).unwrap();
        assert!(!marked());
        assert!(store.delete("n", "big").unwrap());
    }

    #[test]
    fn a_namespace_removed_keeps_the_marks_of_files_published_into_it_anew() {
        let (_dir, store, table, file) = store_with_a_file();
        let marked = || table.meta_and_file_mark("n", "big", file).unwrap().1;
        // The namespace's directory holds the file: as when a writer
        // published it into the namespace made anew after the removal had
        // moved the old directory away.
        let ns_dir = store.ns_dir("n");
        table.remove_namespace("n", &ns_dir).unwrap();
        assert!(marked(), "the file there keeps its mark");
        std::fs::remove_file(ns_dir.join(file.to_hex())).unwrap();
        table.remove_namespace("n", &ns_dir).unwrap();
        assert!(!marked(), "a file gone takes its mark along");
    }
}
