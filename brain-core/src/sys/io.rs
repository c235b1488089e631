//! File I/O through rustix, retrying interrupted calls.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// Converts a rustix error into a std one.
pub(crate) fn os(err: Errno) -> io::Error {
    io::Error::from(err)
}

/// Reads from `offset` until `buf` is full or the file ends; returns bytes read.
pub(crate) fn read_full(fd: impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(&fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(err) => return Err(os(err)),
        }
    }
    Ok(done)
}

/// One `pread` at offset 0, retried only when interrupted: a regular file's
/// read comes back short only at its end.
pub(crate) fn read_start(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::pread(&fd, &mut *buf, 0) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(err) => return Err(os(err)),
        }
    }
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_all_at(fd: impl AsFd, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pwrite(&fd, buf, offset) {
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(err) => return Err(os(err)),
        }
    }
    Ok(())
}

/// Opens a file for reading without following a symlink; `None` when it does not exist.
pub(crate) fn open_readonly(path: &Path) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(err) => Err(os(err)),
    }
}

/// Takes a shared `flock` without waiting; `false` when someone holds it exclusively.
pub(crate) fn try_lock_shared(fd: impl AsFd) -> io::Result<bool> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(err) => Err(os(err)),
    }
}

/// Whether the file open as `fd` is no longer the one at `path` (it was
/// replaced or deleted since it was opened).
pub(crate) fn replaced_under(fd: impl AsFd, path: &Path) -> bool {
    match (rustix::fs::fstat(fd), rustix::fs::stat(path)) {
        (Ok(open), Ok(named)) => open.st_dev != named.st_dev || open.st_ino != named.st_ino,
        _ => true,
    }
}

/// Whether `err` is "no space left on device".
pub(crate) fn is_enospc(err: &io::Error) -> bool {
    err.raw_os_error() == Some(Errno::NOSPC.raw_os_error())
}
