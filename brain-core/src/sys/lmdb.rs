//! LMDB, fenced: the B-tree in a shared memory map that holds a store's
//! small objects (`shm/small.rs`).
//!
//! Every call into LMDB is here, behind an interface whose soundness rests
//! on this module alone:
//!
//! - A transaction exists only inside a closure given to [`Env::read`] or
//!   [`Env::write`]: it cannot outlive its environment, move to another
//!   thread, or be used after it ended, and a value borrowed from the map
//!   lives no longer than the closure's borrow of the transaction.
//! - The map is remapped (grown) only while no transaction of this process
//!   is open: every outermost transaction of a thread holds a lock shared,
//!   and a resize takes it exclusively.
//! - An environment opened before a `fork` is never used by the child
//!   (LMDB forbids it: its reader slots carry the parent's pid); every call
//!   checks the fork generation, and the child's copy is leaked, not closed.
//! - With `MDB_WRITEMAP`, LMDB writes straight into the shared map, and a
//!   store on a full tmpfs would kill the process with SIGBUS on a page it
//!   cannot allocate. So the data file is allocated (`fallocate`) up to the
//!   map's size before the map grows, and a full filesystem is an error at
//!   that moment. LMDB truncates the file to the map size it is given; every
//!   map size set here is at least the file's size, read under an `flock`
//!   every process takes to open or grow, so the file never shrinks under
//!   another process's map.

use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use lmdb_master_sys as ffi;
use rustix::fs::{FallocateFlags, FlockOperation};

use super::fork;

/// The data file's size when a store's table is first made.
const INITIAL_MAP: usize = 64 << 10;
/// The most readers a table has at once (processes' and threads' read
/// transactions), and room for LMDB's lock file with that many: 64 bytes
/// a reader and a header.
const MAX_READERS: u32 = 1024;
const LOCK_FILE_ROOM: u64 = MAX_READERS as u64 * 64 + (64 << 10);

/// What went wrong in LMDB.
#[derive(Debug)]
pub(crate) enum LmdbError {
    /// The filesystem has no room to grow the table.
    NoSpace,
    /// An LMDB error code and its message.
    Lmdb(i32, String),
    /// A system call failed.
    Io(io::Error),
    /// Misuse this module refuses instead of deadlocking: a write begun
    /// inside a write on the same thread.
    Nested,
    /// The closure gave up the transaction (it is aborted).
    Cancelled,
}

impl std::fmt::Display for LmdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmdbError::NoSpace => f.write_str("the filesystem is full"),
            LmdbError::Lmdb(code, message) => write!(f, "{message} (LMDB error {code})"),
            LmdbError::Io(err) => err.fmt(f),
            LmdbError::Nested => f.write_str("a write transaction was begun inside another"),
            LmdbError::Cancelled => f.write_str("the transaction was cancelled"),
        }
    }
}

impl From<io::Error> for LmdbError {
    fn from(err: io::Error) -> Self {
        LmdbError::Io(err)
    }
}

/// Whether `code`, returned for the environment in `dir`, says its data
/// file is damaged (a page missing or malformed, or neither meta page a
/// table's), as opposed to a failure of the moment or another LMDB's files
/// (`MDB_VERSION_MISMATCH`; `MDB_INVALID` for a lock file).
pub(crate) fn is_damage(dir: &Path, code: i32) -> bool {
    match code {
        ffi::MDB_CORRUPTED | ffi::MDB_PAGE_NOTFOUND => true,
        ffi::MDB_INVALID => !meta_magic_in(&dir.join("data.mdb")),
        _ => false,
    }
}

/// Whether either meta page of the data file at `path` starts with LMDB's
/// magic (after its 16-byte page header).
fn meta_magic_in(path: &Path) -> bool {
    const MDB_MAGIC: u32 = 0xBEEF_C0DE;
    let Ok(file) = File::open(path) else {
        return false;
    };
    [0, page_size() as u64].iter().any(|page| {
        let mut magic = [0u8; 4];
        file.read_exact_at(&mut magic, page + 16).is_ok() && u32::from_ne_bytes(magic) == MDB_MAGIC
    })
}

fn check(code: i32) -> Result<(), LmdbError> {
    if code == 0 {
        return Ok(());
    }
    if code > 0 {
        return Err(LmdbError::Io(io::Error::from_raw_os_error(code)));
    }
    // SAFETY: mdb_strerror returns a pointer to a static NUL-terminated
    // string for every code (a generic one for codes it does not know).
    let message = unsafe { ffi::mdb_strerror(code) };
    // SAFETY: as above: non-null, NUL-terminated, never freed.
    let text = unsafe { CStr::from_ptr(message) };
    Err(LmdbError::Lmdb(code, text.to_string_lossy().into_owned()))
}

thread_local! {
    /// Per environment (by id): how many transactions this thread has
    /// open in it, and whether one is a write.
    static OPEN: RefCell<Vec<(u64, usize, bool)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's open transactions in environment `id`: (count, writing).
fn open_here(id: u64) -> (usize, bool) {
    OPEN.with(|open| {
        open.borrow()
            .iter()
            .find(|(env, _, _)| *env == id)
            .map_or((0, false), |(_, count, writing)| (*count, *writing))
    })
}

fn set_open_here(id: u64, count: usize, writing: bool) {
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        open.retain(|(env, _, _)| *env != id);
        if count > 0 {
            open.push((id, count, writing));
        }
    });
}

static NEXT_ENV_ID: AtomicU64 = AtomicU64::new(0);

/// An LMDB environment: one data file and its lock file in a directory.
pub(crate) struct Env {
    env: NonNull<ffi::MDB_env>,
    /// Tells this environment's transactions from others' in [`OPEN`].
    id: u64,
    /// The fork generation that opened it: any other never touches it.
    generation: u64,
    /// Shared by every thread's outermost transaction, exclusive to a resize.
    txns: RwLock<()>,
    /// Read transactions reset after use, renewed by the next read (cheaper
    /// than a new one: the reader slot is kept).
    idle_reads: Mutex<Vec<IdleRead>>,
    dbs: Vec<ffi::MDB_dbi>,
    /// Taken with `flock` around every change of the map's size.
    map_lock: File,
    data_path: PathBuf,
}

struct IdleRead(NonNull<ffi::MDB_txn>);

// SAFETY: an LMDB environment may be used from any thread (LMDB's documented
// contract for MDB_env); the handles here are only used through it.
unsafe impl Send for Env {}
// SAFETY: as above: LMDB synchronises access to the environment itself, and
// the Rust-side state is behind a RwLock and a Mutex.
unsafe impl Sync for Env {}
// SAFETY: the environment is opened with MDB_NOTLS, so a reset read
// transaction is not tied to the thread that made it.
unsafe impl Send for IdleRead {}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("data", &self.data_path)
            .finish_non_exhaustive()
    }
}

/// A database of an environment, by its index in the names given to [`Env::open`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Db(usize);

impl Db {
    /// The database named `names[index]` at open.
    pub(crate) const fn at(index: usize) -> Db {
        Db(index)
    }
}

impl Env {
    /// Opens (creating when needed) the environment in `dir`, with the
    /// named databases `names`; files are made with `mode`.
    pub(crate) fn open(dir: &Path, names: &[&str], mode: u32) -> Result<Env, LmdbError> {
        let map_lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(dir.join("map.lock"))?;
        let data_path = dir.join("data.mdb");
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer; LMDB allocates the handle.
        check(unsafe { ffi::mdb_env_create(&mut raw) })?;
        let env = NonNull::new(raw)
            .ok_or_else(|| LmdbError::Io(io::Error::other("mdb_env_create returned null")))?;
        let mut opened = Env {
            env,
            id: NEXT_ENV_ID.fetch_add(1, Ordering::Relaxed),
            generation: fork::generation(),
            txns: RwLock::new(()),
            idle_reads: Mutex::new(Vec::new()),
            dbs: Vec::new(),
            map_lock,
            data_path,
        };
        // SAFETY: a fresh, unopened environment handle.
        check(unsafe { ffi::mdb_env_set_maxdbs(opened.env.as_ptr(), names.len() as u32) })?;
        // SAFETY: as above.
        check(unsafe { ffi::mdb_env_set_maxreaders(opened.env.as_ptr(), MAX_READERS) })?;
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| LmdbError::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
        {
            let _flock = FlockGuard::exclusive(&opened.map_lock)?;
            let size = file_len(&opened.data_path)?
                .max(INITIAL_MAP)
                .next_multiple_of(page_size());
            // SAFETY: not yet opened: the size is only recorded.
            check(unsafe { ffi::mdb_env_set_mapsize(opened.env.as_ptr(), size) })?;
            // LMDB makes its lock file (the reader table) by `ftruncate`,
            // sparse: its pages are allocated first. Only before LMDB opens
            // it: closing any descriptor of the file drops the `fcntl`
            // locks by which LMDB tells this process alive.
            allocate_ahead(&dir.join("lock.mdb"), LOCK_FILE_ROOM, mode)?;
            let flags = ffi::MDB_WRITEMAP
                | ffi::MDB_NOSYNC
                | ffi::MDB_NOMETASYNC
                | ffi::MDB_NORDAHEAD
                | ffi::MDB_NOTLS;
            // SAFETY: `path` is a NUL-terminated directory name that lives
            // across the call; the handle is created and not yet opened.
            check(unsafe { ffi::mdb_env_open(opened.env.as_ptr(), path.as_ptr(), flags, mode) })?;
            // A new file is sparse past LMDB's first pages: allocate it.
            opened.allocate(size)?;
        }
        // Databases that exist are opened in a read transaction: opening a
        // store then takes no writer lock. The first opener makes them.
        let existing = loop {
            match opened.open_existing_dbs(names) {
                // Another process grew the map since its size was read
                // above: take the new size, as every read does.
                Err(err) if is_resized(&err) => opened.grow(false)?,
                other => break other?,
            }
        };
        let dbs = match existing {
            Some(dbs) => dbs,
            None => {
                let mut dbs = Vec::with_capacity(names.len());
                opened.write(|txn| {
                    dbs.clear();
                    for name in names {
                        dbs.push(txn.open_db(name)?);
                    }
                    Ok(())
                })?;
                dbs
            }
        };
        opened.dbs = dbs;
        // Reader slots of processes killed in a read would fill the table
        // (and pin old pages): every opener clears them.
        opened.clear_stale_readers()?;
        Ok(opened)
    }

    /// Opens the named databases in a read transaction, committed so the
    /// handles stay with the environment; `None` when one does not exist.
    fn open_existing_dbs(&self, names: &[&str]) -> Result<Option<Vec<ffi::MDB_dbi>>, LmdbError> {
        let _guard = Entered::new(self, false)?;
        let mut raw = ptr::null_mut();
        // SAFETY: an open environment; `raw` is a valid out pointer.
        check(unsafe {
            ffi::mdb_txn_begin(
                self.env.as_ptr(),
                ptr::null_mut(),
                ffi::MDB_RDONLY,
                &mut raw,
            )
        })?;
        let txn = NonNull::new(raw)
            .ok_or_else(|| LmdbError::Io(io::Error::other("mdb_txn_begin returned null")))?;
        let mut dbs = Vec::with_capacity(names.len());
        for name in names {
            let name = CString::new(*name)
                .map_err(|_| LmdbError::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
            let mut dbi = 0;
            // SAFETY: a live read transaction of this environment, a
            // NUL-terminated name that outlives the call, no flags (no
            // create, which a read transaction may not), and a valid out pointer.
            let rc = unsafe { ffi::mdb_dbi_open(txn.as_ptr(), name.as_ptr(), 0, &mut dbi) };
            if rc != 0 {
                // SAFETY: the transaction is live and used no further.
                unsafe { ffi::mdb_txn_abort(txn.as_ptr()) };
                return if rc == ffi::MDB_NOTFOUND {
                    Ok(None)
                } else {
                    check(rc).map(|()| None)
                };
            }
            dbs.push(dbi);
        }
        // SAFETY: the transaction is live and nothing borrows from it;
        // committing a read transaction ends it and keeps the handles it
        // opened for the whole environment.
        check(unsafe { ffi::mdb_txn_commit(txn.as_ptr()) })?;
        Ok(Some(dbs))
    }

    fn owned_here(&self) -> bool {
        self.generation == fork::generation()
    }

    fn forked() -> LmdbError {
        LmdbError::Io(io::Error::other(
            "this table was opened before the process forked; open the store again",
        ))
    }

    /// Allocates the data file's pages up to `size` (the map never reaches past them).
    fn allocate(&self, size: usize) -> Result<(), LmdbError> {
        let fd = self.data_fd()?;
        match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, size as u64) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOSPC) => Err(LmdbError::NoSpace),
            Err(err) => Err(LmdbError::Io(err.into())),
        }
    }

    fn data_fd(&self) -> Result<BorrowedFd<'_>, LmdbError> {
        let mut fd: ffi::mdb_filehandle_t = -1;
        // SAFETY: an open environment; `fd` is a valid out pointer.
        check(unsafe { ffi::mdb_env_get_fd(self.env.as_ptr(), &mut fd) })?;
        // SAFETY: LMDB keeps its data file descriptor open until the
        // environment is closed, which needs `self`, outliving this borrow.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The map's size, in bytes. Only while no other thread may resize it
    /// (LMDB reads it from the map): under either half of `txns`.
    fn map_size_locked(&self) -> usize {
        let mut info = std::mem::MaybeUninit::<ffi::MDB_envinfo>::zeroed();
        // SAFETY: an open environment; `info` is a valid out pointer that
        // mdb_env_info fills entirely.
        let rc = unsafe { ffi::mdb_env_info(self.env.as_ptr(), info.as_mut_ptr()) };
        if rc != 0 {
            return 0;
        }
        // SAFETY: filled by the successful call above (and zeroed before).
        unsafe { info.assume_init() }.me_mapsize
    }

    /// Device and inode of the data file this environment maps, and whether
    /// it still has a name (a store removed has none).
    pub(crate) fn data_identity(&self) -> Result<((u64, u64), bool), LmdbError> {
        let st = rustix::fs::fstat(self.data_fd()?).map_err(|e| LmdbError::Io(e.into()))?;
        Ok(((st.st_dev, st.st_ino), st.st_nlink > 0))
    }

    /// The data file's size in bytes (all of it allocated).
    pub(crate) fn file_len(&self) -> u64 {
        file_len(&self.data_path).unwrap_or(0) as u64
    }

    /// Grows the map (and the file under it): by an eighth (at least
    /// [`INITIAL_MAP`], a table's first size) when `bigger`, else to what another process grew
    /// the file to. Only with no transaction of this process open.
    fn grow(&self, bigger: bool) -> Result<(), LmdbError> {
        if open_here(self.id).0 > 0 {
            // This thread's own transaction would wait for itself.
            return Err(LmdbError::Nested);
        }
        let _txns = self.txns.write().unwrap_or_else(PoisonError::into_inner);
        let _flock = FlockGuard::exclusive(&self.map_lock)?;
        let current = self.map_size_locked();
        let wanted = if bigger {
            current + (current / 8).max(INITIAL_MAP)
        } else {
            current
        };
        let size = file_len(&self.data_path)?
            .max(wanted)
            .next_multiple_of(page_size());
        self.allocate(size)?;
        // SAFETY: no transaction of this process is open (the write half of
        // `txns` is held, and every transaction holds the read half), and the
        // file is allocated up to `size`, so LMDB's truncate to it only grows.
        check(unsafe { ffi::mdb_env_set_mapsize(self.env.as_ptr(), size) })
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&ReadTxn<'_>) -> Result<R, LmdbError>,
    ) -> Result<R, LmdbError> {
        if !self.owned_here() {
            return Err(Self::forked());
        }
        let mut cleared = false;
        loop {
            let _guard = Entered::new(self, false)?;
            let idle = crate::sys::fork::lock(&self.idle_reads).pop();
            let txn = match idle {
                Some(IdleRead(txn)) => {
                    // SAFETY: a read transaction of this environment, reset
                    // (so not in use), taken out of the idle list by this thread.
                    match check(unsafe { ffi::mdb_txn_renew(txn.as_ptr()) }) {
                        Ok(()) => txn,
                        Err(err) => {
                            // SAFETY: the failed renew left it reset; aborting frees it.
                            unsafe { ffi::mdb_txn_abort(txn.as_ptr()) };
                            if is_resized(&err) {
                                drop(_guard);
                                self.grow(false)?;
                                continue;
                            }
                            return Err(err);
                        }
                    }
                }
                None => {
                    let mut raw = ptr::null_mut();
                    // SAFETY: an open environment; `raw` is a valid out pointer.
                    let begun = check(unsafe {
                        ffi::mdb_txn_begin(
                            self.env.as_ptr(),
                            ptr::null_mut(),
                            ffi::MDB_RDONLY,
                            &mut raw,
                        )
                    });
                    match begun {
                        Ok(()) => NonNull::new(raw).ok_or_else(|| {
                            LmdbError::Io(io::Error::other("mdb_txn_begin returned null"))
                        })?,
                        Err(err) if is_resized(&err) => {
                            drop(_guard);
                            self.grow(false)?;
                            continue;
                        }
                        Err(LmdbError::Lmdb(code, _))
                            if code == ffi::MDB_READERS_FULL && !cleared =>
                        {
                            // Slots of processes that died hold them: free those once.
                            cleared = true;
                            self.clear_stale_readers()?;
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                }
            };
            let read = ReadTxn {
                txn,
                env: self,
                _not_send: PhantomData,
            };
            // Reset and kept for the next read when `f` returns or panics.
            let _ends = EndRead(&read);
            return f(&read);
        }
    }

    /// Runs `f` in a write transaction and commits it when `f` returns
    /// `Ok`; aborts it otherwise. When the table is full, the map grows and
    /// `f` runs again in a new transaction.
    pub(crate) fn write<R>(
        &self,
        mut f: impl FnMut(&mut WriteTxn<'_>) -> Result<R, LmdbError>,
    ) -> Result<R, LmdbError> {
        if !self.owned_here() {
            return Err(Self::forked());
        }
        loop {
            match self.write_raw(&mut f) {
                Err(LmdbError::Lmdb(code, _)) if code == ffi::MDB_MAP_RESIZED => {
                    self.grow(false)?
                }
                Err(LmdbError::Lmdb(code, _)) if code == ffi::MDB_MAP_FULL => self.grow(true)?,
                other => return other,
            }
        }
    }

    fn write_raw<R>(
        &self,
        mut f: impl FnMut(&mut WriteTxn<'_>) -> Result<R, LmdbError>,
    ) -> Result<R, LmdbError> {
        if open_here(self.id).1 {
            return Err(LmdbError::Nested);
        }
        let _guard = Entered::new(self, true)?;
        let mut raw = ptr::null_mut();
        // SAFETY: an open environment, no write transaction of this thread
        // open (checked above: a second would deadlock on LMDB's writer lock).
        check(unsafe { ffi::mdb_txn_begin(self.env.as_ptr(), ptr::null_mut(), 0, &mut raw) })?;
        let txn = NonNull::new(raw)
            .ok_or_else(|| LmdbError::Io(io::Error::other("mdb_txn_begin returned null")))?;
        let mut write = WriteTxn {
            read: ReadTxn {
                txn,
                env: self,
                _not_send: PhantomData,
            },
            ended: false,
        };
        // When `f` fails or panics, dropping `write` aborts the transaction.
        let value = f(&mut write)?;
        write.ended = true;
        // SAFETY: the closure returned, nothing borrows from the
        // transaction; commit ends it (and frees it, even on error), and
        // `ended` keeps the drop from aborting it again.
        check(unsafe { ffi::mdb_txn_commit(txn.as_ptr()) })?;
        Ok(value)
    }

    /// Clears the reader slots of processes that died in a read; returns how many.
    pub(crate) fn clear_stale_readers(&self) -> Result<usize, LmdbError> {
        if !self.owned_here() {
            return Err(Self::forked());
        }
        let mut dead = 0;
        // SAFETY: an open environment; `dead` is a valid out pointer.
        check(unsafe { ffi::mdb_reader_check(self.env.as_ptr(), &mut dead) })?;
        Ok(dead.max(0) as usize)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.owned_here() {
            // A forked child's copy: LMDB must not touch the parent's slots.
            return;
        }
        for IdleRead(txn) in self
            .idle_reads
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            // SAFETY: reset transactions of this environment, unused.
            unsafe { ffi::mdb_txn_abort(txn.as_ptr()) };
        }
        // SAFETY: no transaction is open (each lives inside a borrow of
        // `self`), and the handle is not used again.
        unsafe { ffi::mdb_env_close(self.env.as_ptr()) };
    }
}

fn is_resized(err: &LmdbError) -> bool {
    matches!(err, LmdbError::Lmdb(code, _) if *code == ffi::MDB_MAP_RESIZED)
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

/// Allocates the first `room` bytes of the file at `path` (made with
/// `mode` when missing) without changing its length.
fn allocate_ahead(path: &Path, room: u64, mode: u32) -> Result<(), LmdbError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    match rustix::fs::fallocate(&file, FallocateFlags::KEEP_SIZE, 0, room) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSPC) => Err(LmdbError::NoSpace),
        Err(err) => Err(LmdbError::Io(err.into())),
    }
}

fn file_len(path: &Path) -> Result<usize, LmdbError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len() as usize),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err.into()),
    }
}

/// An exclusive `flock` held until dropped.
struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    fn exclusive(file: &'a File) -> Result<FlockGuard<'a>, LmdbError> {
        loop {
            match rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive) {
                Ok(()) => return Ok(FlockGuard(file)),
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(LmdbError::Io(err.into())),
            }
        }
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0.as_fd(), FlockOperation::Unlock);
    }
}

/// This thread's count of open transactions, and the resize lock held
/// shared by its outermost one.
struct Entered<'a> {
    _shared: Option<RwLockReadGuard<'a, ()>>,
    id: u64,
    write: bool,
}

impl<'a> Entered<'a> {
    fn new(env: &'a Env, write: bool) -> Result<Entered<'a>, LmdbError> {
        let (open, writing) = open_here(env.id);
        // Only the outermost: a nested shared lock could wait behind a
        // resize that waits for the outer one.
        let shared = (open == 0).then(|| env.txns.read().unwrap_or_else(PoisonError::into_inner));
        set_open_here(env.id, open + 1, writing || write);
        Ok(Entered {
            _shared: shared,
            id: env.id,
            write,
        })
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let (open, writing) = open_here(self.id);
        set_open_here(self.id, open.saturating_sub(1), writing && !self.write);
    }
}

/// Resets a read transaction and keeps it for the next read, however its
/// closure ended.
struct EndRead<'t, 'env>(&'t ReadTxn<'env>);

impl Drop for EndRead<'_, '_> {
    fn drop(&mut self) {
        let txn = self.0.txn;
        // SAFETY: the closure that borrowed the transaction has ended (this
        // guard is dropped after it), so nothing borrows from it; reset
        // keeps its reader slot for the next renew.
        unsafe { ffi::mdb_txn_reset(txn.as_ptr()) };
        crate::sys::fork::lock(&self.0.env.idle_reads).push(IdleRead(txn));
    }
}

fn val(bytes: &[u8]) -> ffi::MDB_val {
    ffi::MDB_val {
        mv_size: bytes.len(),
        mv_data: bytes.as_ptr() as *mut c_void,
    }
}

fn empty_val() -> ffi::MDB_val {
    ffi::MDB_val {
        mv_size: 0,
        mv_data: ptr::null_mut(),
    }
}

/// A read transaction: a consistent snapshot of every database.
pub(crate) struct ReadTxn<'env> {
    txn: NonNull<ffi::MDB_txn>,
    env: &'env Env,
    /// A transaction belongs to the thread running the closure.
    _not_send: PhantomData<*mut ()>,
}

impl ReadTxn<'_> {
    fn dbi(&self, db: Db) -> ffi::MDB_dbi {
        self.env.dbs[db.0]
    }

    /// The number of the last write committed when this transaction began:
    /// two reads that see the same number see the same table.
    pub(crate) fn id(&self) -> u64 {
        // SAFETY: `txn` is a live transaction of this environment for as
        // long as `self` (the struct's invariant); mdb_txn_id only reads it.
        unsafe { ffi::mdb_txn_id(self.txn.as_ptr()) as u64 }
    }

    /// The value of `key`, borrowed from the map for as long as the transaction.
    pub(crate) fn get(&self, db: Db, key: &[u8]) -> Result<Option<&[u8]>, LmdbError> {
        let mut k = val(key);
        let mut v = empty_val();
        // SAFETY: a live transaction of this environment, a database handle
        // opened in it at open, and valid in/out pointers; LMDB does not
        // write through the key's pointer.
        let rc = unsafe { ffi::mdb_get(self.txn.as_ptr(), self.dbi(db), &mut k, &mut v) };
        if rc == ffi::MDB_NOTFOUND {
            return Ok(None);
        }
        check(rc)?;
        // SAFETY: LMDB returned a pointer to `mv_size` bytes in the map,
        // valid until the transaction ends, which the returned borrow of
        // `self` cannot outlive.
        Ok(Some(unsafe {
            std::slice::from_raw_parts(v.mv_data as *const u8, v.mv_size)
        }))
    }

    /// Calls `f` on each entry whose key starts with `prefix`, in key
    /// order, until it returns `false`.
    pub(crate) fn for_each_prefixed(
        &self,
        db: Db,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), LmdbError> {
        let mut cursor = ptr::null_mut();
        // SAFETY: a live transaction and a database opened in it; `cursor`
        // is a valid out pointer.
        check(unsafe { ffi::mdb_cursor_open(self.txn.as_ptr(), self.dbi(db), &mut cursor) })?;
        let cursor = CursorGuard(cursor);
        let mut k = val(prefix);
        let mut v = empty_val();
        // LMDB refuses an empty key: the whole table starts at its first entry.
        let mut op = if prefix.is_empty() {
            ffi::MDB_FIRST
        } else {
            ffi::MDB_SET_RANGE
        };
        loop {
            // SAFETY: an open cursor of this live transaction and valid
            // in/out pointers.
            let rc = unsafe { ffi::mdb_cursor_get(cursor.0, &mut k, &mut v, op) };
            if rc == ffi::MDB_NOTFOUND {
                return Ok(());
            }
            check(rc)?;
            // SAFETY: LMDB returned `mv_size` bytes in the map, valid until
            // the transaction ends or the cursor moves; used before either.
            let key = unsafe { std::slice::from_raw_parts(k.mv_data as *const u8, k.mv_size) };
            if !key.starts_with(prefix) {
                return Ok(());
            }
            // SAFETY: as for the key.
            let value = unsafe { std::slice::from_raw_parts(v.mv_data as *const u8, v.mv_size) };
            if !f(key, value) {
                return Ok(());
            }
            op = ffi::MDB_NEXT;
        }
    }
}

struct CursorGuard(*mut ffi::MDB_cursor);

impl Drop for CursorGuard {
    fn drop(&mut self) {
        // SAFETY: a cursor opened by `for_each_prefixed` in a transaction
        // that is still live (the guard is dropped inside its borrow).
        unsafe { ffi::mdb_cursor_close(self.0) };
    }
}

/// A write transaction: reads see its own writes.
pub(crate) struct WriteTxn<'env> {
    read: ReadTxn<'env>,
    /// Committed: nothing to abort.
    ended: bool,
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // SAFETY: a live write transaction of this thread that was not
            // committed (its closure failed or panicked, and nothing borrows
            // from it any more); abort ends and frees it, releasing LMDB's
            // writer lock.
            unsafe { ffi::mdb_txn_abort(self.read.txn.as_ptr()) };
        }
    }
}

impl<'env> std::ops::Deref for WriteTxn<'env> {
    type Target = ReadTxn<'env>;
    fn deref(&self) -> &ReadTxn<'env> {
        &self.read
    }
}

impl WriteTxn<'_> {
    fn open_db(&mut self, name: &str) -> Result<ffi::MDB_dbi, LmdbError> {
        let name = CString::new(name)
            .map_err(|_| LmdbError::Io(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let mut dbi = 0;
        // SAFETY: a live write transaction, a NUL-terminated name that
        // outlives the call, and a valid out pointer.
        check(unsafe {
            ffi::mdb_dbi_open(
                self.read.txn.as_ptr(),
                name.as_ptr(),
                ffi::MDB_CREATE,
                &mut dbi,
            )
        })?;
        Ok(dbi)
    }

    /// Sets `key` to `value`.
    pub(crate) fn put(&mut self, db: Db, key: &[u8], value: &[u8]) -> Result<(), LmdbError> {
        let mut k = val(key);
        let mut v = val(value);
        // SAFETY: a live write transaction, a database opened in it, and
        // valid pointers; LMDB copies both into the map and does not write
        // through them (no MDB_RESERVE).
        check(unsafe { ffi::mdb_put(self.read.txn.as_ptr(), self.read.dbi(db), &mut k, &mut v, 0) })
    }

    /// Deletes `key`; `false` when it was not there.
    pub(crate) fn delete(&mut self, db: Db, key: &[u8]) -> Result<bool, LmdbError> {
        let mut k = val(key);
        // SAFETY: a live write transaction, a database opened in it, a
        // valid key pointer and no data (delete whatever the key holds).
        let rc = unsafe {
            ffi::mdb_del(
                self.read.txn.as_ptr(),
                self.read.dbi(db),
                &mut k,
                ptr::null_mut(),
            )
        };
        if rc == ffi::MDB_NOTFOUND {
            return Ok(false);
        }
        check(rc).map(|()| true)
    }
}
