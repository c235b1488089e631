//! Memory mappings of object files and of the store's control file.
//!
//! # The sharing contract
//!
//! Every mapping in brain rests on one contract, kept by the store's writers:
//! the bytes of an object file never change while brain maps it. A file is
//! written in full through a file descriptor *before* it gets a name, it is
//! created mode 0400 so an ordinary open cannot truncate it, and brain never
//! truncates, rewrites or extends a file that has an object's name: replacing
//! an object renames a new file over the old one, deleting unlinks it, and
//! the kernel keeps the old pages alive for as long as any mapping holds them.
//!
//! One writer does rewrite files: recycling (`shm/pool.rs`) refills the file
//! of a replaced object, after it has left every name. It first takes an
//! exclusive `flock` on it without waiting, and every mapping of a file of
//! recyclable size is made through a descriptor holding a shared `flock`,
//! which the mapping keeps (the lock belongs to the open file, and the
//! mapping holds the open file until munmap). So the exclusive lock is only
//! granted when no mapping of the file exists anywhere, and no mapping can
//! be made until the writer is done. A read-only mapping therefore sees bytes
//! that no one changes for the mapping's whole life, and handing out `&[u8]`
//! into it is sound.
//!
//! What the contract cannot stop is another process of the same user writing
//! to the file on purpose (it owns the file and can `chmod` it). That is the
//! same trust boundary as the user's own memory, and outside what brain can
//! defend; the file mode guards against accidents, not malice.
//!
//! The control file is the one mutable shared file: it is only ever accessed
//! through atomics.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow_buffer::Buffer;
use rustix::fs::FlockOperation;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// An object file open for reading on which this process holds a shared
/// `flock` (through this open file), and its size when the lock was taken.
///
/// The only way to make a [`Mapping`] of an object: a writer rewrites a
/// file only under an exclusive lock taken without waiting, which the
/// kernel refuses while this lock, or any mapping made through this open
/// file (which keeps the open file, and with it the lock), exists. So the
/// bytes a mapping shows never change while it lives.
#[derive(Debug)]
pub(crate) struct SharedLocked<'a> {
    fd: BorrowedFd<'a>,
    stat: rustix::fs::Stat,
}

impl<'a> SharedLocked<'a> {
    /// Takes a shared lock on `fd` without waiting. `None` when a writer
    /// holds the file exclusively (it is being rewritten).
    pub(crate) fn try_lock(fd: BorrowedFd<'a>) -> io::Result<Option<SharedLocked<'a>>> {
        match rustix::fs::flock(fd, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        let stat = rustix::fs::fstat(fd)?;
        Ok(Some(SharedLocked { fd, stat }))
    }

    /// The file's status when the lock was taken; under the lock, no writer
    /// following the store's rules changes its size.
    pub(crate) fn stat(&self) -> &rustix::fs::Stat {
        &self.stat
    }

    fn size(&self) -> u64 {
        self.stat.st_size as u64
    }
}

/// A read-only, shared mapping of a whole sealed object file.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only memory that nothing mutates while it is
// mapped (the sharing contract above), so it can be shared and sent between
// threads like an immutable byte slice.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: concurrent reads of immutable memory are race-free.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of a shared-locked file read-only.
    ///
    /// # Errors
    /// `InvalidInput` when `len` is zero or past the file's end (a page past
    /// the end would raise SIGBUS when read); the error of `mmap`.
    pub(crate) fn map_readonly(file: &SharedLocked<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 || len as u64 > file.size() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {len} bytes of a file of {} bytes", file.size()),
            ));
        }
        // SAFETY: a null hint lets the kernel choose a fresh range, so no
        // existing Rust object is aliased. The fd is open for reading, len is
        // non-zero and within the file (checked above against the size read
        // under the lock, which writers do not change while it is held), so
        // every mapped page is backed. The file holds the shared lock that
        // keeps writers away for as long as the mapping holds the open file
        // (SharedLocked). The mapping is private to this struct and
        // unmapped exactly once, in Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                file.fd,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Ok(Mapping { ptr, len })
    }

    /// The whole mapping as an Arrow buffer that owns it: the buffer, its
    /// slices and everything built on them keep the mapping alive.
    pub(crate) fn into_buffer(self) -> Buffer {
        let (ptr, len) = (self.ptr, self.len);
        let owner: Arc<dyn arrow_buffer::alloc::Allocation> = Arc::new(self);
        // SAFETY: ptr is the start of a live read-only mapping of len bytes,
        // and `owner` is that mapping: the Buffer keeps it alive (and so
        // mapped) for as long as the Buffer or any slice of it exists. The
        // bytes never change while mapped (the sharing contract above),
        // which is what an immutable Buffer requires.
        unsafe { Buffer::from_custom_allocation(ptr, len, owner) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr and len are exactly what mmap returned and was given,
        // and no reference into the mapping outlives self: every view holds
        // an Arc<Mapping>, so the last view is gone when Drop runs.
        let result = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert!(result.is_ok(), "munmap failed: {result:?}");
    }
}

/// A file this process may write into: an unnamed file (`O_TMPFILE`, not
/// linked anywhere, so no other process can open it), or a file on which
/// this open file holds an exclusive `flock`, taken without waiting (granted
/// only while no other open file, hence no reader's mapping, holds a lock).
/// The only way to write through a [`WritableMapping`]; released by
/// [`WritableFile::release`], after which the mapping cannot be written.
#[derive(Debug)]
pub(crate) struct WritableFile {
    fd: OwnedFd,
    identity: (u64, u64),
    locked: bool,
    len: u64,
}

impl WritableFile {
    /// An unnamed file: refused (`InvalidInput`) if it has a name.
    pub(crate) fn unnamed(fd: OwnedFd) -> io::Result<WritableFile> {
        let st = rustix::fs::fstat(&fd)?;
        if st.st_nlink != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the file has a name: claim it with an exclusive lock instead",
            ));
        }
        Ok(WritableFile {
            fd,
            identity: (st.st_dev, st.st_ino),
            locked: false,
            len: st.st_size as u64,
        })
    }

    /// Locks `fd` exclusively without waiting; `None` when any other open
    /// file holds a lock on it (a reader maps it, or another writer has it).
    pub(crate) fn claim(fd: OwnedFd) -> io::Result<Option<WritableFile>> {
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        let st = rustix::fs::fstat(&fd)?;
        Ok(Some(WritableFile {
            fd,
            identity: (st.st_dev, st.st_ino),
            locked: true,
            len: st.st_size as u64,
        }))
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Device and inode: which file this is.
    pub(crate) fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The file's length, as this process set it.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Truncates or extends the file (holes, for an extension).
    pub(crate) fn set_len(&mut self, len: u64) -> io::Result<()> {
        rustix::fs::ftruncate(&self.fd, len)?;
        self.len = len;
        Ok(())
    }

    /// Allocates the pages of `from..to` (extending the file to `to` if it
    /// is shorter), so writing them later cannot fail for want of space.
    pub(crate) fn allocate(&mut self, from: u64, to: u64) -> rustix::io::Result<()> {
        rustix::fs::fallocate(
            &self.fd,
            rustix::fs::FallocateFlags::empty(),
            from,
            to - from,
        )?;
        self.len = self.len.max(to);
        Ok(())
    }

    /// Gives up the right to write: unlocks (with `LOCK_UN`, not by closing,
    /// which would leave the lock with a child forked meanwhile) and returns
    /// the file.
    pub(crate) fn release(mut self) -> OwnedFd {
        self.unlock();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the fd is moved
        // out exactly once (Drop, which only unlocks, has run its part above).
        unsafe { std::ptr::read(&this.fd) }
    }

    fn unlock(&mut self) {
        if std::mem::take(&mut self.locked) {
            let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
        }
    }
}

impl Drop for WritableFile {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// A read-write shared mapping of a file this process writes objects into.
/// It may outlive the right to write (a writer keeps it for the next write
/// into the same file), but its bytes are reachable only through
/// [`WritableMapping::bytes_mut`], which needs the [`WritableFile`] of the
/// same file: so it never writes a file another process may map.
#[derive(Debug)]
pub(crate) struct WritableMapping {
    ptr: NonNull<u8>,
    len: usize,
    identity: (u64, u64),
}

// SAFETY: the memory is reached only through `bytes_mut(&mut self, ..)`, a
// unique borrow, so moving the mapping to another thread or sharing `&self`
// (which gives no access to the bytes) cannot race.
unsafe impl Send for WritableMapping {}
// SAFETY: see Send.
unsafe impl Sync for WritableMapping {}

impl WritableMapping {
    /// Maps the first `len` bytes of `file` read-write, shared.
    ///
    /// # Errors
    /// `InvalidInput` when `len` is zero or past the file's end; `mmap`'s.
    pub(crate) fn map(file: &WritableFile, len: usize) -> io::Result<WritableMapping> {
        check_within(file, len)?;
        // SAFETY: a null hint lets the kernel choose a fresh range, aliasing
        // nothing. The file is open read-write and at least len bytes long
        // (checked), so every page is backed; this process may write it
        // (WritableFile). Unmapped exactly once, in Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file.fd(),
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Ok(WritableMapping {
            ptr,
            len,
            identity: file.identity,
        })
    }

    /// Which file this maps: device and inode.
    pub(crate) fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The mapped length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Makes the mapping `len` bytes long (it may move).
    ///
    /// # Errors
    /// `InvalidInput` when `file` is another file or shorter than `len`;
    /// `mremap`'s.
    pub(crate) fn resize(&mut self, file: &WritableFile, len: usize) -> io::Result<()> {
        self.check_file(file)?;
        check_within(file, len)?;
        // SAFETY: ptr and self.len are what the mapping holds; no reference
        // into it exists (bytes_mut borrows self mutably, and no borrow is
        // live during this &mut self call). MAYMOVE lets the kernel move it
        // rather than overwrite a neighbour. The new length is within the
        // file (checked), so every page is backed.
        let moved = unsafe {
            rustix::mm::mremap(
                self.ptr.as_ptr().cast(),
                self.len,
                len,
                rustix::mm::MremapFlags::MAYMOVE,
            )
        }?;
        self.ptr = NonNull::new(moved.cast::<u8>()).expect("mremap never returns null");
        self.len = len;
        Ok(())
    }

    /// The mapped bytes within the file, to write: only with the right to
    /// write this very file.
    ///
    /// # Errors
    /// `InvalidInput` when `file` is another file.
    pub(crate) fn bytes_mut<'a>(&'a mut self, file: &'a WritableFile) -> io::Result<&'a mut [u8]> {
        self.check_file(file)?;
        let len = self
            .len
            .min(usize::try_from(file.len).unwrap_or(usize::MAX));
        // SAFETY: ptr is a live read-write mapping of self.len >= len bytes,
        // all within the file (len is at most the file's length), so every
        // page is backed. No other reference into it exists (the borrow of
        // self is unique). No other process maps the file while `file` holds
        // it (WritableFile), and the borrow of `file` keeps it held for as
        // long as the slice lives.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) })
    }

    fn check_file(&self, file: &WritableFile) -> io::Result<()> {
        if file.identity != self.identity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mapping can only be written with the right to write its own file",
            ));
        }
        Ok(())
    }
}

impl Drop for WritableMapping {
    fn drop(&mut self) {
        // SAFETY: ptr and len are what mmap or mremap returned and were
        // given; no slice from bytes_mut outlives the borrow of self.
        let result = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert!(result.is_ok(), "munmap failed: {result:?}");
    }
}

fn check_within(file: &WritableFile, len: usize) -> io::Result<()> {
    if len == 0 || len as u64 > file.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot map {len} bytes of a file of {} bytes", file.len),
        ));
    }
    Ok(())
}

/// Faults in, writable, the pages under `bytes` (a range of a mapping), so
/// a copy into them does not stop at every page. Best effort: kernels
/// before 5.14 lack `MADV_POPULATE_WRITE`, and the copy then faults.
pub(crate) fn populate_for_write(bytes: &mut [u8]) {
    const PAGE: usize = 4096;
    // miri runs no system call; the memory it is given is plain allocations.
    if bytes.is_empty() || cfg!(miri) {
        return;
    }
    let start = bytes.as_mut_ptr() as usize;
    let aligned = start & !(PAGE - 1);
    let len = start + bytes.len() - aligned;
    // SAFETY: madvise with MADV_POPULATE_WRITE changes no byte of memory;
    // it only faults pages in, and on a range that is not a writable
    // mapping it fails (EFAULT, ENOMEM, EINVAL) without effect. The range
    // starts at the page holding `bytes` (a mapping is page-aligned, so
    // that page is in the same mapping) and ends at its end.
    let _ = unsafe {
        rustix::mm::madvise(
            aligned as *mut std::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}

/// A read-write shared mapping of the control file, accessed only through
/// 64-bit atomics at fixed, aligned offsets.
#[derive(Debug)]
pub(crate) struct SharedCounters {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the memory is only accessed through AtomicU64, which is Sync, and
// the pointer itself is never handed out.
unsafe impl Send for SharedCounters {}
// SAFETY: see Send.
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// Maps `len` bytes of `fd` (open read-write) shared.
    ///
    /// # Errors
    /// `InvalidData` when the file is shorter than `len`; the error of `mmap`.
    pub(crate) fn map(fd: impl AsFd, len: usize) -> std::io::Result<SharedCounters> {
        assert!(len > 0 && len.is_multiple_of(8));
        let size = rustix::fs::fstat(&fd)?.st_size as u64;
        if size < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the file is {size} bytes, shorter than {len}"),
            ));
        }
        // SAFETY: a null hint makes the kernel pick a fresh range, aliasing
        // nothing. The fd is open read-write and the file is at least `len`
        // bytes (checked above; the control file never shrinks), so every
        // page is backed. Unmapped once, in Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Ok(SharedCounters { ptr, len })
    }

    /// The counter at byte `offset`, which must be 8-aligned and in bounds.
    pub(crate) fn counter(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len,
            "counter offset {offset} out of range"
        );
        // SAFETY: offset + 8 <= len (asserted), so the result stays inside
        // the mapping that ptr starts.
        let at = unsafe { self.ptr.as_ptr().add(offset) }.cast::<AtomicU64>();
        // SAFETY: `at` is in bounds and 8-aligned (asserted; the mapping is
        // page-aligned), the memory lives as long as &self, and every process
        // touches these bytes only through atomic operations, so there is no
        // non-atomic access to race with.
        unsafe { &*at }
    }

    /// The mapped bytes, for reading the fixed fields written at creation.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        (0..self.len / 8)
            .flat_map(|i| {
                self.counter(i * 8)
                    .load(std::sync::atomic::Ordering::Acquire)
                    .to_le_bytes()
            })
            .collect()
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        // SAFETY: ptr and len are what mmap returned and was given; references
        // from counter() borrow self, so none outlives this call.
        let result = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert!(result.is_ok(), "munmap failed: {result:?}");
    }
}
