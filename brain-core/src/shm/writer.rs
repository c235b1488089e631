//! Writing an object: a file filled in full, then renamed over the name.
//!
//! A small object (header and payload up to [`SMALL_OBJECT`] bytes) is
//! gathered in memory and written with one `pwritev` into a named temporary
//! file at commit: four system calls for a new name. A larger one goes
//! into an unnamed `O_TMPFILE` file as it is written, so a writer killed
//! part-way through a gigabyte leaves nothing behind; it gets a name only
//! just before the rename. A large write of known length first looks for a
//! replaced object's file in the store's pool to fill instead (pool.rs),
//! through a mapping; a new file up to [`STAGED_MAX`] is filled by `pwrite`
//! instead ([`Staged`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use super::capacity::{Entered, Reservation};
use super::fill::Fill;
use super::pool::{recyclable, Left};
use super::small;
use super::{Store, FILE_MODE};
use crate::api::error::{Error, Result};
use crate::api::store::WriteObject;
use crate::api::view::ObjectMeta;
use crate::format::checksum::{payload_checksum, CHECKSUM_CHUNK};
use crate::format::{accounted, Codec, Header, ObjectKey, FLAG_CHUNKED_CHECKSUM};
use crate::sys::io::{is_enospc, os, write_all_at};
use crate::sys::names::unique_tmp_name;
use crate::sys::{populate_for_write, SharedBytes, WritableFile, WritableMapping};

/// Objects up to this size (header included) are gathered in memory and
/// written with one system call at commit. A larger file that is mapped
/// gets its space allocated before the copy, so a full filesystem fails
/// before any byte is copied (a mapped write cannot fail cleanly); a small
/// or staged one fails as cleanly on a write.
const SMALL_OBJECT: u64 = 64 * 1024;
/// New files up to this long (header included) for a name that holds no
/// object file are filled by `pwrite` ([`Staged`]); longer ones through a
/// mapping, whose copy is split across the cores (measured the same at
/// 64 MiB, docs/ARCHITECTURE.md).
const STAGED_MAX: u64 = 64 << 20;
/// Stages kept for the next staged writes of this process (each is
/// [`CHECKSUM_CHUNK`] bytes): a new one would be faulted in page by page.
const STAGES_KEPT: usize = 4;
static STAGES: std::sync::Mutex<Vec<Box<[u8]>>> = std::sync::Mutex::new(Vec::new());
/// How long a refused write waits for the writes in flight before it
/// rebuilds counts that a writer which died left too high.
const HEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// An object being written into the shared-memory store: published by
/// `commit`, removed without a trace when dropped uncommitted.
pub(crate) struct ShmWriter {
    store: Store,
    dir: PathBuf,
    /// The file and its mapping, once the object outgrew memory (`None`
    /// while it is small, or written through `staged`).
    dest: Option<Dest>,
    /// A new file filled by `pwrite`, once the object outgrew memory.
    staged: Option<Staged>,
    /// The payload while the object is small.
    pending: Vec<u8>,
    /// The file's name while it is linked but not yet sealed (a small
    /// object's temporary file, the fallback when O_TMPFILE is unavailable,
    /// or a large object between link and rename).
    linked_as: Option<PathBuf>,
    /// A file taken from the pool: its name there while it is written. It
    /// moves into the namespace once the object is whole.
    claimed: Option<PathBuf>,
    header: Header,
    header_len: u64,
    written: u64,
    /// The capacity held for the file; given back if the writer is dropped.
    /// Declared before `entered`: it is given back while the lock is held.
    reservation: Option<Reservation>,
    /// The shared hold on the store's accounting lock, from the first
    /// reservation to the publish (see capacity.rs).
    entered: Option<Entered>,
    /// The payload's checksum, computed by the copy.
    fill: Fill,
    /// The file came from preallocated memory: it is made again once this
    /// writer is done (and the object it replaced is in the pool).
    refill: bool,
    /// Without a description of its own, the object keeps the description
    /// of the one it replaces (`ObjectStore::put_shared_keeping_description`).
    keep_description: bool,
    /// A write failed after it changed the object (part of its bytes went
    /// in): the payload is not whole, so later writes and the commit are
    /// refused rather than publish it.
    broken: bool,
    /// The payload's checksum, once [`ShmWriter::finish_checksum`] took it:
    /// the payload is final from then on.
    finished_checksum: Option<u64>,
}

/// A new large object's file, filled by `pwrite` from one checksum chunk
/// of private memory at a time. New tmpfs pages cost about half as much
/// when the kernel writes them as when they are faulted into a mapping
/// (docs/ARCHITECTURE.md, "Writes at memory speed"): a write allocates a
/// page it fills whole without zeroing it first, and takes no page fault.
/// The copy into the stage computes the checksum of the bytes as they are
/// written (`Fill`), as the copy into a mapping does, and the stage stays
/// in the CPU's caches for the kernel's copy.
///
/// Only a name without an object file is written this way: a file that
/// replaces one is written through a mapping this process keeps, so that
/// when it comes back through the pool (a name refreshed again and again)
/// the next write finds its pages mapped (pool.rs).
struct Staged {
    file: WritableFile,
    /// The file's length once written (header and payload).
    file_len: u64,
    /// The payload's current chunk, so far: its first `written - chunk_at` bytes.
    stage: Stage,
    /// The payload offset of the stage's first byte (a multiple of
    /// [`CHECKSUM_CHUNK`]): what came before is in the file.
    chunk_at: u64,
}

/// One checksum chunk of private memory, kept for the next staged write
/// when it is dropped.
struct Stage(Box<[u8]>);

impl Stage {
    /// A stage this process used before, or a new one.
    fn take() -> Stage {
        let kept = crate::sys::fork::lock(&STAGES).pop();
        Stage(kept.unwrap_or_else(|| vec![0; CHECKSUM_CHUNK].into_boxed_slice()))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let stage = std::mem::take(&mut self.0);
        let mut stages = crate::sys::fork::lock(&STAGES);
        if stages.len() < STAGES_KEPT {
            stages.push(stage);
        }
    }
}

/// A large object's file, the right to write it, and a read-write mapping
/// of it that the payload is copied into.
struct Dest {
    file: WritableFile,
    map: WritableMapping,
    /// Whether this process wrote through the mapping before, so its pages
    /// are faulted in (no need to populate them).
    warm: bool,
}

impl ShmWriter {
    pub(crate) fn create(
        store: &Store,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ShmWriter> {
        let header_len = Header::encoded_len_for(namespace, name, description) as u64;
        let mut writer = ShmWriter {
            store: store.clone(),
            dir: store.ns_dir(namespace),
            dest: None,
            staged: None,
            pending: Vec::new(),
            linked_as: None,
            claimed: None,
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
            reservation: None,
            entered: Some(store.inner.control.enter()?),
            fill: Fill::default(),
            refill: false,
            keep_description: false,
            broken: false,
            finished_checksum: None,
        };
        if let Some(len) = expected_len {
            let file_len = header_len + len;
            // The pooled file first: its bytes leave the pool's count, so a
            // pool that fills the capacity (preallocated) makes room for the
            // reservation instead of being emptied by it.
            let reused = file_len > SMALL_OBJECT && writer.reuse_pooled(file_len)?;
            writer.reserve(file_len)?;
            if file_len > SMALL_OBJECT && !reused {
                if writer.stages(file_len) {
                    writer.open_staged(file_len)?;
                } else {
                    writer.open_large(file_len, file_len)?;
                }
            }
        }
        Ok(writer)
    }

    /// Takes a replaced object's file from the pool to write into, sized to
    /// `file_len`, so the copy lands in pages that are already allocated
    /// (and, when this process wrote the file before, already mapped).
    /// `false` when no pooled file fits or every one is still mapped.
    fn reuse_pooled(&mut self, file_len: u64) -> Result<bool> {
        let Some(reused) = self.store.take_pooled(file_len)? else {
            return Ok(false);
        };
        self.claimed = Some(reused.path);
        self.refill = reused.preallocated;
        let mut file = reused.file;
        if reused.len > file_len {
            // The tail's pages go back to the filesystem now.
            file.set_len(file_len)
                .map_err(|e| Error::io("trim a reused file in", &self.dir, e))?;
        }
        let map = match reused.warm {
            Some(map) if map.len() as u64 >= file_len.min(reused.len) => Some(map),
            _ => None,
        };
        let warm = map.is_some();
        let map = match map {
            Some(map) => map,
            None => self.map(&file, reused.len.min(file_len))?,
        };
        self.dest = Some(Dest { file, map, warm });
        // A pooled file was written whole, so its pages exist: only a longer
        // object needs more (fallocate walks every page, even allocated ones).
        if reused.len < file_len {
            self.grow_to(file_len, file_len)?;
        }
        Ok(true)
    }

    fn map(&self, file: &WritableFile, len: u64) -> Result<WritableMapping> {
        let len = usize::try_from(len)
            .map_err(|_| Error::io("map", &self.dir, io::Error::other("object too large")))?;
        WritableMapping::map(file, len)
            .map_err(|e| Error::io("map an object file in", &self.dir, e))
    }

    /// Opens the unnamed file a large object is written into (making the
    /// namespace's directory if it is missing), allocates `file_len` bytes
    /// (`needed`, when the filesystem has no room for more) and maps them.
    fn open_large(&mut self, file_len: u64, needed: u64) -> Result<()> {
        let mut file = self.open_file()?;
        // A streamed write asks for room to grow into; a filesystem with
        // less room but enough for the bytes so far still takes them.
        let file_len = match self.allocate(&mut file, 0, file_len) {
            Err(Error::StoreFull { .. }) if needed < file_len => {
                self.allocate(&mut file, 0, needed)?;
                needed
            }
            other => other.map(|()| file_len)?,
        };
        let map = self.map(&file, file_len)?;
        self.dest = Some(Dest {
            file,
            map,
            warm: false,
        });
        Ok(())
    }

    /// Whether a new file of `file_len` bytes (a write of known length) is
    /// written by `pwrite` ([`Staged`]): up to [`STAGED_MAX`], for a name
    /// that holds no object file (one stat: a large write's cost is in its
    /// bytes). A stream of unknown length is mapped: it may grow past the
    /// size where the mapped copy, on every core, is ahead.
    fn stages(&self, file_len: u64) -> bool {
        file_len <= STAGED_MAX
            && matches!(
                rustix::fs::lstat(self.dir.join(self.header.key.to_hex())),
                Err(Errno::NOENT)
            )
    }

    /// Opens the unnamed file a new large object of `file_len` bytes is
    /// written into by `pwrite`, with its stage. Nothing is allocated ahead
    /// (allocating zeroes every page, which is what writing saves): a
    /// filesystem that clearly lacks the room is refused here, before any
    /// byte is copied, and one filled meanwhile by others fails a write as
    /// cleanly (no mapping can meet a page that cannot be had), the
    /// unnamed file going with the writer.
    fn open_staged(&mut self, file_len: u64) -> Result<()> {
        let free = || {
            rustix::fs::statvfs(&self.store.inner.root)
                .map_or(u64::MAX, |st| st.f_bavail.saturating_mul(st.f_frsize))
        };
        // Pooled files hold pages this write needs more: give them back once.
        if free() < file_len && (self.store.drain_pool().0 == 0 || free() < file_len) {
            return Err(self.fs_full(file_len));
        }
        let file = self.open_file()?;
        self.staged = Some(Staged {
            file,
            file_len,
            stage: Stage::take(),
            chunk_at: self.written,
        });
        Ok(())
    }

    /// Opens an unnamed file in the namespace's directory (making the
    /// directory if it is missing) with the right to write it.
    fn open_file(&mut self) -> Result<WritableFile> {
        let mode = FILE_MODE;
        let (fd, linked_as) = match open_unnamed(&self.dir, mode) {
            Err(Errno::NOENT) => {
                self.dir = self.store.make_namespace_dir(&self.header.namespace)?;
                open_unnamed(&self.dir, mode)
            }
            other => other,
        }
        .map_err(|e| Error::io("create an object file in", &self.dir, os(e)))?;
        self.linked_as = linked_as;
        match self.linked_as {
            // Named (no O_TMPFILE here): only this writer knows the name, and
            // its exclusive lock says so.
            Some(_) => WritableFile::claim(fd).and_then(|f| {
                f.ok_or_else(|| io::Error::other("a new file is locked by someone else"))
            }),
            None => WritableFile::unnamed(fd),
        }
        .map_err(|e| Error::io("create an object file in", &self.dir, e))
    }

    /// Makes the file and its mapping at least `end` bytes long, allocating
    /// up to `target` (more than needed, for a streamed write that grows).
    fn grow_to(&mut self, end: u64, target: u64) -> Result<()> {
        let mut dest = self.dest.take().expect("a large object has its file");
        let grown = self.grow_dest(&mut dest, end, target);
        self.dest = Some(dest);
        grown
    }

    fn grow_dest(&self, dest: &mut Dest, end: u64, target: u64) -> Result<()> {
        let len = dest.file.len();
        if len < end {
            match self.allocate(&mut dest.file, len, target) {
                Err(Error::StoreFull { .. }) if target > end => {
                    self.allocate(&mut dest.file, len, end)?
                }
                other => other?,
            }
        }
        if (dest.map.len() as u64) < end {
            let len = usize::try_from(dest.file.len()).unwrap_or(usize::MAX);
            dest.map
                .resize(&dest.file, len)
                .map_err(|e| Error::io("map an object file in", &self.dir, e))?;
            dest.warm = false;
        }
        Ok(())
    }

    /// Creates a small object's file under a temporary name and writes all
    /// of it (`header` then the gathered payload) in one system call.
    fn write_small(&mut self, header: &[u8]) -> Result<PathBuf> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_bits_truncate(FILE_MODE);
        let mut attempts = 0;
        let (fd, path) = loop {
            let path = self.dir.join(unique_tmp_name("obj"));
            match rustix::fs::open(&path, flags, mode) {
                Ok(fd) => break (fd, path),
                Err(Errno::NOENT) if attempts < 3 => {
                    attempts += 1;
                    self.dir = self.store.make_namespace_dir(&self.header.namespace)?;
                }
                Err(e) => return Err(Error::io("create an object file in", &self.dir, os(e))),
            }
        };
        self.linked_as = Some(path.clone());
        let total = header.len() + self.pending.len();
        let mut done = 0;
        let mut drained = false;
        while done < total {
            let (head, body) = if done < header.len() {
                (&header[done..], &self.pending[..])
            } else {
                (&header[..0], &self.pending[done - header.len()..])
            };
            let parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
            match rustix::io::pwritev(&fd, &parts, done as u64) {
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                // Pooled files hold pages this write needs more: give them back once.
                Err(Errno::NOSPC) if !drained && self.store.drain_pool().0 > 0 => drained = true,
                Err(e) => return Err(self.map_write_error(os(e), total as u64)),
            }
        }
        Ok(path)
    }

    /// Reserves capacity for a file of `file_len` bytes (beyond what is reserved).
    fn reserve(&mut self, file_len: u64) -> Result<()> {
        let needed = accounted(file_len);
        if self
            .reservation
            .as_ref()
            .is_some_and(|r| r.bytes() >= needed)
        {
            return Ok(());
        }
        let control = self.store.inner.control.clone();
        let attempt = |reservation: &mut Option<Reservation>| match reservation {
            Some(reservation) => reservation.grow_to(needed),
            None => control.reserve(needed).map(|r| *reservation = Some(r)),
        };
        let mut reserved = attempt(&mut self.reservation);
        // The pool counts against the capacity: give it back and try again.
        if reserved.is_err() && control.pooled() > 0 && self.store.drain_pool_for(needed).0 > 0 {
            reserved = attempt(&mut self.reservation);
        }
        // A writer that died may have left its reservation counted: rebuild
        // the count (outside the lock, which the recount takes exclusively;
        // this writer's own bytes go back first) and reserve again.
        if reserved.is_err() && control.dead_writers() > 0 {
            self.reservation = None;
            self.entered = None;
            let healed = self.store.heal(HEAL_WAIT);
            self.entered = Some(control.enter()?);
            healed?;
            reserved = attempt(&mut self.reservation);
        }
        // Parts of changed frames that no manifest references any more (a
        // changed frame replaced by another kind of value leaves its parts
        // to `gc`) are garbage: given back before the write is refused.
        // Outside the accounting lock, as above: the deletes take it.
        if reserved.is_err() {
            self.reservation = None;
            self.entered = None;
            crate::api::frames::sweep_parts_for_room(&self.store);
            self.entered = Some(control.enter()?);
            reserved = attempt(&mut self.reservation);
        }
        // What this writer holds already (the bytes a stream brought so
        // far) is its own, not other objects' use of the store.
        let own = self.reservation.as_ref().map_or(0, Reservation::bytes);
        reserved.map_err(|refused| {
            self.store.store_full(
                &self.header.namespace,
                &self.header.name,
                needed,
                refused.used.saturating_sub(own),
                refused.capacity,
                false,
            )
        })
    }

    /// Allocates the file's pages from `from` to `file_len` now, so a full
    /// filesystem fails cleanly here instead of part-way through the copy
    /// (a write into a mapped page that cannot be allocated is a SIGBUS).
    fn allocate(&self, file: &mut WritableFile, from: u64, file_len: u64) -> Result<()> {
        let mut drained = false;
        loop {
            match file.allocate(from, file_len) {
                Ok(()) => return Ok(()),
                Err(Errno::OPNOTSUPP) => return self.allocate_by_writing(file, from, file_len),
                // Pooled files hold pages a write needs more: give them back once.
                Err(Errno::NOSPC) if !drained && self.store.drain_pool().0 > 0 => drained = true,
                Err(Errno::NOSPC) => return Err(self.fs_full(file_len)),
                Err(err) => return Err(Error::io("allocate space in", &self.dir, os(err))),
            }
        }
    }

    /// Where `fallocate` is not supported, pages are allocated by writing
    /// zeros: a mapped write must never meet a page that cannot be had.
    fn allocate_by_writing(&self, file: &mut WritableFile, from: u64, to: u64) -> Result<()> {
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            write_all_at(file.fd(), &zeros[..n], at).map_err(|e| self.map_write_error(e, to))?;
            at += n as u64;
        }
        file.set_len(file.len().max(to))
            .map_err(|e| Error::io("allocate space in", &self.dir, e))
    }

    fn fs_full(&self, file_len: u64) -> Error {
        self.store
            .full_error(&self.header.namespace, &self.header.name, file_len, true)
    }

    /// The error for a failed write that was to end at byte `end`.
    fn map_write_error(&self, err: io::Error, end: u64) -> Error {
        if is_enospc(&err) {
            self.fs_full(end)
        } else {
            Error::io("write an object in", &self.dir, err)
        }
    }

    /// Appends `bytes` to the payload.
    pub(crate) fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_shared(SharedBytes::from(bytes))
    }

    /// Makes the object, if it has no description, keep the description of
    /// the object it replaces (read when it is published).
    pub(crate) fn keep_description(&mut self) {
        self.keep_description = true;
    }

    /// Appends `bytes`, which another thread may be writing meanwhile, to
    /// the payload: they are read only by copies that allow it (sys/copy.rs).
    pub(crate) fn write_shared(&mut self, bytes: SharedBytes<'_>) -> Result<()> {
        self.write_gathered(&[bytes])
    }

    /// Appends `pieces`, one after another, as `write_shared` would; many
    /// small ones are copied as one copy split across cores (`Fill::copy_gathered`).
    pub(crate) fn write_gathered(&mut self, pieces: &[SharedBytes<'_>]) -> Result<()> {
        self.writable()?;
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let end = self.header_len + self.written + len as u64;
        // Capacity is claimed before the bytes land, so a streamed write
        // (one with no expected length) is refused as early as a sized one.
        self.reserve(end)?;
        if self.dest.is_none() && self.staged.is_none() && end <= SMALL_OBJECT {
            for bytes in pieces {
                let at = self.pending.len();
                self.pending.resize(at + bytes.len(), 0);
                bytes.copy_to(&mut self.pending[at..]);
            }
            self.written += len as u64;
            return Ok(());
        }
        if self.staged.is_some() {
            let staged = self.stage_in(pieces);
            return self.breaks_on_error(staged);
        }
        let copied = self
            .file_room(end)
            .and_then(|()| self.copy_in(pieces, self.written));
        self.breaks_on_error(copied)?;
        self.written += len as u64;
        Ok(())
    }

    /// Refuses a writer that a failed write left with part of its bytes.
    fn usable(&self) -> Result<()> {
        if self.broken {
            return Err(self.refused(
                "an earlier write into this object failed part-way, so its bytes are not whole: nothing was published; drop the writer and write the object again",
            ));
        }
        Ok(())
    }

    /// [`ShmWriter::usable`], and the payload not finished yet.
    fn writable(&self) -> Result<()> {
        self.usable()?;
        if self.finished_checksum.is_some() {
            return Err(self.refused(
                "the payload was finished (its checksum taken), so nothing more can be written to it; commit the writer, or drop it and write the object again",
            ));
        }
        Ok(())
    }

    /// The error of a write this writer refuses, and why.
    fn refused(&self, why: &str) -> Error {
        Error::io(
            "write an object in",
            &self.dir,
            io::Error::other(why.to_owned()),
        )
    }

    /// The payload's checksum (docs/FORMAT.md): what the copies computed as
    /// the bytes went in, finished over the last chunk. The payload is final
    /// from then on, and the commit stores this checksum.
    pub(crate) fn finish_checksum(&mut self) -> Result<u64> {
        self.usable()?;
        if let Some(checksum) = self.finished_checksum {
            return Ok(checksum);
        }
        let checksum = match (&mut self.dest, &self.staged) {
            (None, Some(staged)) => {
                let tail = (self.written - staged.chunk_at) as usize;
                self.fill.finish(&staged.stage.0[..tail])
            }
            (None, None) => payload_checksum(&self.pending),
            (Some(dest), _) => {
                let whole = dest
                    .map
                    .bytes_mut(&dest.file)
                    .map_err(|e| Error::io("write an object in", &self.dir, e))?;
                let payload = &whole[self.header_len as usize..][..self.written as usize];
                self.fill.finish(payload)
            }
        };
        self.finished_checksum = Some(checksum);
        Ok(checksum)
    }

    /// `result`, after marking the writer broken when it is an error: a
    /// write that got as far as the object's file may have changed it.
    fn breaks_on_error(&mut self, result: Result<()>) -> Result<()> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Appends `pieces` to a staged file: each is copied (and hashed) into
    /// the stage, which is written out as each chunk fills.
    fn stage_in(&mut self, pieces: &[SharedBytes<'_>]) -> Result<()> {
        for piece in pieces {
            let mut piece = *piece;
            while !piece.is_empty() {
                let staged = self.staged.as_mut().expect("a staged file");
                let in_chunk = (self.written - staged.chunk_at) as usize;
                let n = piece.len().min(CHECKSUM_CHUNK - in_chunk);
                self.fill
                    .copy(piece.slice(0, n), &mut staged.stage.0, in_chunk, false);
                self.written += n as u64;
                piece = piece.slice(n, piece.len());
                self.flush_whole_chunk()?;
            }
        }
        Ok(())
    }

    /// Writes the stage out when it holds a whole chunk, and starts the next.
    fn flush_whole_chunk(&mut self) -> Result<()> {
        let staged = self.staged.as_ref().expect("a staged file");
        if self.written - staged.chunk_at < CHECKSUM_CHUNK as u64 {
            return Ok(());
        }
        self.write_stage(CHECKSUM_CHUNK)?;
        let staged = self.staged.as_mut().expect("a staged file");
        staged.chunk_at += CHECKSUM_CHUNK as u64;
        Ok(())
    }

    /// Writes the stage's first `len` bytes into the file, where they belong.
    fn write_stage(&mut self, len: usize) -> Result<()> {
        let staged = self.staged.as_ref().expect("a staged file");
        let at = self.header_len + staged.chunk_at;
        let mut drained = false;
        loop {
            match write_all_at(staged.file.fd(), &staged.stage.0[..len], at) {
                Ok(()) => return Ok(()),
                // Pooled files hold pages this write needs more: give them back once.
                Err(e) if is_enospc(&e) && !drained && self.store.drain_pool().0 > 0 => {
                    drained = true
                }
                Err(e) => return Err(self.map_write_error(e, staged.file_len)),
            }
        }
    }

    /// Makes the object's file and mapping reach byte `end` (of the file):
    /// a small object that outgrew memory moves into a file, grown as the
    /// bytes come.
    fn file_room(&mut self, end: u64) -> Result<()> {
        if self.dest.is_none() {
            self.open_large(grown_len(end), end)?;
            let gathered = std::mem::take(&mut self.pending);
            self.copy_in(&[SharedBytes::from(&gathered[..])], 0)?;
        }
        let dest = self.dest.as_ref().expect("a large object has its file");
        if dest.file.len() < end || (dest.map.len() as u64) < end {
            self.grow_to(end, grown_len(end))?;
        }
        Ok(())
    }

    /// Appends `len` bytes that `fill` writes straight into the mapped
    /// file (or, for a small object, into the bytes gathered in memory).
    pub(crate) fn write_with(
        &mut self,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        self.writable()?;
        let end = (self.header_len + self.written)
            .checked_add(len)
            .ok_or_else(|| self.fs_full(u64::MAX))?;
        self.reserve(end)?;
        let n = usize::try_from(len).expect("a length that was reserved fits in memory");
        if self.dest.is_none() && self.staged.is_none() && end <= SMALL_OBJECT {
            let at = self.pending.len();
            self.pending.resize(at + n, 0);
            if let Err(err) = fill(&mut self.pending[at..]) {
                self.pending.truncate(at);
                return Err(err);
            }
            self.written += len;
            return Ok(());
        }
        if self.staged.is_some() {
            let staged = self.stage_with(n, fill);
            return self.breaks_on_error(staged);
        }
        let filled = self.file_room(end).and_then(|()| self.fill_mapped(n, fill));
        self.breaks_on_error(filled)
    }

    /// [`ShmWriter::write_with`] into the mapped file, which has room.
    fn fill_mapped(
        &mut self,
        n: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let header_len = self.header_len as usize;
        let at = usize::try_from(self.written).expect("within the mapping");
        let dest = self.dest.as_mut().expect("a large object has its file");
        let whole = dest
            .map
            .bytes_mut(&dest.file)
            .map_err(|e| Error::io("write an object in", &self.dir, e))?;
        let payload = &mut whole[header_len..];
        if !dest.warm {
            populate_for_write(&mut payload[at..at + n]);
        }
        fill(&mut payload[at..at + n])?;
        self.fill.absorb(payload, at, n);
        self.written += n as u64;
        Ok(())
    }

    /// [`ShmWriter::write_with`] into a staged file: `fill` fills the stage
    /// a piece at a time (up to the end of its chunk), each piece hashed
    /// where it lies.
    fn stage_with(
        &mut self,
        mut left: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        while left > 0 {
            let staged = self.staged.as_mut().expect("a staged file");
            let in_chunk = (self.written - staged.chunk_at) as usize;
            let n = left.min(CHECKSUM_CHUNK - in_chunk);
            fill(&mut staged.stage.0[in_chunk..in_chunk + n])?;
            self.fill.absorb(&staged.stage.0, in_chunk, n);
            self.written += n as u64;
            left -= n;
            self.flush_whole_chunk()?;
        }
        Ok(())
    }

    /// Copies `pieces`, one after another, into the mapped file from
    /// payload offset `at`.
    fn copy_in(&mut self, pieces: &[SharedBytes<'_>], at: u64) -> Result<()> {
        let header_len = self.header_len as usize;
        let dest = self.dest.as_mut().expect("a large object has its file");
        let whole = dest
            .map
            .bytes_mut(&dest.file)
            .map_err(|e| Error::io("write an object in", &self.dir, e))?;
        let at = usize::try_from(at).expect("within the mapping");
        self.fill
            .copy_gathered(pieces, &mut whole[header_len..], at, !dest.warm);
        Ok(())
    }

    /// Writes the header and publishes the object under its name, replacing
    /// any object of that name in one atomic step. Readers of the old object
    /// keep their views.
    pub(crate) fn commit(mut self) -> Result<ObjectMeta> {
        self.usable()?;
        let file_len = self.header_len + self.written;
        self.reserve(file_len)?;
        self.header.payload_len = self.written;
        self.header.created_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        if self.dest.is_none()
            && self.staged.is_none()
            && self.store.inner.small_object_table
            && small::fits(
                &self.header.namespace,
                &self.header.name,
                &self.header.description,
                self.written,
            )
        {
            return self.publish_small(file_len);
        }
        let checksum = self.finish_checksum()?;
        self.header.flags |= FLAG_CHUNKED_CHECKSUM;
        self.header.payload_checksum = Some(checksum);
        let header = self.header.encode();
        debug_assert_eq!(header.len() as u64, self.header_len);
        let (tmp, kept) = match self.dest.take() {
            None if self.staged.is_some() => (self.finish_staged(&header)?, None),
            None => (self.write_small(&header)?, None),
            Some(dest) => {
                let (tmp, kept) = self.finish_large(dest, &header, file_len)?;
                (tmp, Some(kept))
            }
        };
        let target = self.dir.join(self.header.key.to_hex());
        // Under the small-object table's writer lock, which also removes a
        // small object of this name: no set of one can interleave.
        let (small_left, (replaced, published)) =
            self.store.small_table_for_writing()?.change_file(
                &self.header.namespace,
                &self.header.name,
                false,
                || match seal(&tmp, &target) {
                    Ok(replaced) => Ok((replaced, true)),
                    // The namespace was removed between link and rename, taking the
                    // linked file with it: as if it was removed just after the write.
                    Err(Errno::NOENT) if std::fs::symlink_metadata(&tmp).is_err() => {
                        Ok((None, false))
                    }
                    Err(e) => Err(Error::io("publish", &target, os(e))),
                },
            )?;
        if let Some(small_len) = small_left {
            self.store.inner.control.object_left(small_len);
        }
        self.linked_as = None;
        let reservation = self.reservation.take();
        if let (true, Some(reservation)) = (published, reservation) {
            reservation.publish(file_len);
        }
        // The temporary name now holds the replaced object, or nothing. Its
        // bytes leave the usage first: the pool may take them within the capacity.
        if let Some(old_len) = replaced {
            self.store.inner.control.object_left(old_len);
            // A file left behind is a stray temporary file: `gc` removes it.
            let _ = self.store.retire(&tmp, old_len, Left::Replaced);
            self.store.forget_cached(self.header.key);
        }
        // The mapping stays with this process: when the file comes back from
        // the pool, the next write finds its pages mapped.
        if let (true, Some((map, fd))) = (published && recyclable(file_len), kept) {
            self.store.keep_warm(map, fd);
        }
        Ok(ObjectMeta::from_header(&self.header))
    }
}

impl ShmWriter {
    /// Publishes a small object (gathered in `pending`) as an entry of the
    /// store's table instead of a file, then removes an object file of the
    /// same name, which is older.
    fn publish_small(mut self, file_len: u64) -> Result<ObjectMeta> {
        let table = self.store.small_table_for_writing()?;
        let (namespace, name) = (&self.header.namespace, &self.header.name);
        let record = small::new_record(self.header.codec, &self.header.description, &self.pending);
        // A description kept from the entry replaced, read in the same
        // transaction, must leave the object small and counting the bytes
        // reserved for it.
        let written = self.written;
        let keeps = |description: &str| {
            small::fits(namespace, name, description, written)
                && accounted(Header::encoded_len_for(namespace, name, description) as u64 + written)
                    == accounted(file_len)
        };
        let keep: Option<&dyn Fn(&str) -> bool> = match self.keep_description {
            true => Some(&keeps),
            false => None,
        };
        let put = table
            .put(namespace, name, self.header.key, &record, keep)
            .map_err(|err| match &err {
                // The table could not grow: the filesystem is full.
                Error::Io { source, .. } if is_enospc(source) => self.fs_full(file_len),
                _ => err,
            })?;
        let Some(put) = put else {
            // The description to keep is an object file's, or changes what
            // the object counts: looked up first, and the object written
            // with it (as a file, if it no longer fits the table).
            let (namespace, name) = (namespace.clone(), name.clone());
            self.keep_description = false;
            if let Some(kept) = self.store.old_description(&namespace, &name)? {
                self.header_len = Header::encoded_len_for(&namespace, &name, &kept) as u64;
                self.header.description = kept;
            }
            return self.commit();
        };
        let record = match &put.kept {
            Some(description) => small::Record {
                description,
                ..record
            },
            None => record,
        };
        let super::small::Put {
            replaced,
            file_marked,
            ..
        } = put;
        if let Some(reservation) = self.reservation.take() {
            reservation.publish(file_len);
        }
        if let Some(replaced) = replaced {
            self.store.inner.control.object_left(replaced.file_len);
        }
        // The table marks every object file, under the lock that publishes
        // it: without a mark there is none to remove (a file a crash left
        // unmarked beside an entry is `gc`'s).
        if file_marked {
            // Under the writer lock, while an entry (this one, or a later
            // small set's) holds the name: the file is older than it.
            let entered = self
                .entered
                .as_ref()
                .expect("held until the writer is done");
            table.while_entry(namespace, name, || {
                self.store.delete_file(namespace, name, entered)
            })?;
        }
        Ok(small::record_meta(&record, namespace, name))
    }

    /// Writes a large object's header, trims what was allocated past its
    /// end, gives up the right to write it (unlocked and sealed read-only)
    /// and links the file (or moves a reused one) to a temporary name in the
    /// namespace. Returns that name, and the mapping with the file, for
    /// later writes.
    fn finish_large(
        &mut self,
        mut dest: Dest,
        header: &[u8],
        file_len: u64,
    ) -> Result<(PathBuf, (WritableMapping, OwnedFd))> {
        {
            let whole = dest
                .map
                .bytes_mut(&dest.file)
                .map_err(|e| Error::io("write an object in", &self.dir, e))?;
            whole[..header.len()].copy_from_slice(header);
        }
        if dest.file.len() > file_len {
            dest.file
                .set_len(file_len)
                .map_err(|e| Error::io("trim an object in", &self.dir, e))?;
        }
        if self.claimed.is_some() {
            // Sealed objects are read-only; pooled files are not.
            rustix::fs::fchmod(dest.file.fd(), Mode::from_bits_truncate(FILE_MODE))
                .map_err(|e| Error::io("seal an object in", &self.dir, os(e)))?;
        }
        // The object is whole: readers may lock it from now on.
        let Dest { file, map, .. } = dest;
        let fd = file.release();
        let path = self.link_temporary(&fd)?;
        Ok((path, (map, fd)))
    }

    /// Writes a staged object's last bytes and its header, gives up the
    /// right to write it and links it to a temporary name in the namespace,
    /// which it returns.
    fn finish_staged(&mut self, header: &[u8]) -> Result<PathBuf> {
        let staged = self.staged.as_ref().expect("a staged file");
        let tail = (self.written - staged.chunk_at) as usize;
        if tail > 0 {
            self.write_stage(tail)?;
        }
        let staged = self.staged.take().expect("a staged file");
        write_all_at(staged.file.fd(), header, 0).map_err(|e| self.map_write_error(e, 0))?;
        // The object is whole: readers may lock it from now on.
        let fd = staged.file.release();
        self.link_temporary(&fd)
    }

    /// Gives the object's file (open as `fd`) a temporary name in the
    /// namespace, unless it has one, and returns it. Another process may
    /// remove the namespace while this write runs: the object then goes
    /// into the namespace made anew.
    fn link_temporary(&mut self, fd: &OwnedFd) -> Result<PathBuf> {
        let mut attempts = 0;
        loop {
            if let Some(path) = self.linked_as.clone() {
                return Ok(path);
            }
            let path = self.dir.join(unique_tmp_name("obj"));
            let linked = match &self.claimed {
                Some(claimed) => rustix::fs::rename(claimed, &path),
                None => link_unnamed(fd, &path),
            };
            match linked {
                Ok(()) => {
                    self.claimed = None;
                    self.linked_as = Some(path.clone());
                    return Ok(path);
                }
                Err(Errno::NOENT) if attempts < 3 && !self.dir.is_dir() => {
                    attempts += 1;
                    self.dir = self.store.make_namespace_dir(&self.header.namespace)?;
                }
                Err(e) => return Err(Error::io("link an object into", &self.dir, os(e))),
            }
        }
    }
}

/// How long a streamed file grows to hold `end` bytes: twice what is
/// written, so a stream of pieces remaps a logarithmic number of times.
fn grown_len(end: u64) -> u64 {
    end.saturating_mul(2).max(4 << 20)
}

impl std::fmt::Debug for ShmWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmWriter")
            .field("namespace", &self.header.namespace)
            .field("name", &self.header.name)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl WriteObject for ShmWriter {
    fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        ShmWriter::write_payload(self, bytes)
    }

    fn write_shared(&mut self, bytes: SharedBytes<'_>) -> Result<()> {
        ShmWriter::write_shared(self, bytes)
    }

    fn write_gathered(&mut self, pieces: &[SharedBytes<'_>]) -> Result<()> {
        ShmWriter::write_gathered(self, pieces)
    }

    fn write_with(
        &mut self,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        ShmWriter::write_with(self, len, fill)
    }

    fn payload_len(&self) -> u64 {
        self.written
    }

    fn hashes_as_it_writes(&self) -> bool {
        true
    }

    fn payload_checksum(&mut self) -> Result<Option<u64>> {
        self.finish_checksum().map(Some)
    }

    fn commit(self: Box<Self>) -> Result<ObjectMeta> {
        ShmWriter::commit(*self)
    }
}

impl Drop for ShmWriter {
    fn drop(&mut self) {
        // The reservation, if still held, gives its bytes back by itself.
        for path in [&self.linked_as, &self.claimed].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
        if self.refill {
            self.store.refill_in_background();
        }
    }
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

/// Gives an O_TMPFILE file the name `path`: with `AT_EMPTY_PATH` (allowed to
/// the file's opener since Linux 6.10, and to CAP_DAC_READ_SEARCH before),
/// else through `/proc/self/fd`, whose lookup costs several µs.
fn link_unnamed(fd: &OwnedFd, path: &Path) -> rustix::io::Result<()> {
    match rustix::fs::linkat(fd, "", CWD, path, AtFlags::EMPTY_PATH) {
        Err(Errno::NOENT) | Err(Errno::PERM) => {
            let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rustix::fs::linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)
        }
        other => other,
    }
}

/// Renames `tmp` over `target` atomically. Returns the length of the file it
/// replaced, which is left at `tmp` (swapped in by RENAME_EXCHANGE); `None`
/// when there was none.
///
/// Runs under the small-object table's writer lock (`change_file`), as does
/// every publish and delete of an object file: the file measured before
/// the exchange is the one exchanged. Measured after it, by the temporary
/// name, the size would be lost when the namespace's directory is moved
/// away in between (its removal), and the usage would keep it counted.
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
        let old = match rustix::fs::stat(target) {
            Ok(st) => st.st_size as u64,
            // Gone since (its directory moved away): try the plain rename again.
            Err(Errno::NOENT) => continue,
            Err(err) => return Err(err),
        };
        match rustix::fs::renameat_with(CWD, tmp, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(Some(old)),
            // Deleted between the two calls: try the plain rename again.
            Err(Errno::NOENT) => continue,
            Err(err) => return Err(err),
        }
    }
}

// Embedders (the Python extension) allocate writers with 16-byte alignment.
const _: () = assert!(std::mem::align_of::<ShmWriter>() <= 16);
