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

use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow_buffer::Buffer;
use rustix::mm::{MapFlags, ProtFlags};

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
    /// Maps the first `len` bytes of `fd` read-only. `len` must be non-zero
    /// and at most the file's size (a page past the end would SIGBUS).
    pub(crate) fn map_readonly(fd: impl AsFd, len: usize) -> std::io::Result<Mapping> {
        assert!(len > 0, "cannot map an empty file");
        // SAFETY: a null hint lets the kernel choose a fresh range, so no
        // existing Rust object is aliased. The fd is open for reading, and the
        // caller passes a length within the file (checked against fstat), so
        // every mapped page is backed. The mapping is private to this struct
        // and unmapped exactly once, in Drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                fd,
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
    /// Maps `len` bytes of `fd` (open read-write, at least `len` long) shared.
    pub(crate) fn map(fd: impl AsFd, len: usize) -> std::io::Result<SharedCounters> {
        assert!(len > 0 && len % 8 == 0);
        // SAFETY: a null hint makes the kernel pick a fresh range, aliasing
        // nothing. The fd is open read-write and the caller checked the file
        // is at least `len` bytes, so every page is backed. Unmapped once, in
        // Drop.
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
            offset % 8 == 0 && offset + 8 <= self.len,
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
