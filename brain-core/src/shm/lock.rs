//! Per-name locks across processes, for read-modify-write.
//!
//! A lock is an `flock` on a file under `<store>/locks/`, named by the
//! object's key. The kernel releases it when the holder's file descriptor
//! closes, including when the holder dies, so a crashed process never leaves
//! a name locked. Lock files are tiny and kept for reuse (deleting one while
//! another process waits on it would let two processes hold "the" lock).

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::Store;
use crate::api::error::{Error, Result};
use crate::api::names::{validate_name, validate_namespace};
use crate::api::store::{LockGuard, NameLock};
use crate::format::ObjectKey;
use crate::sys::io::os;

/// The open lock file whose `flock` a [`NameLock`] holds, and the process
/// that took it ([`crate::fork_mark`]).
#[derive(Debug)]
struct HeldFlock {
    fd: OwnedFd,
    process: u64,
}

impl LockGuard for HeldFlock {}

impl Drop for HeldFlock {
    fn drop(&mut self) {
        // A child forked while the lock was held shares the open file, and
        // so the `flock`: its copy only closes, as unlocking it would
        // release the parent's lock under it. The holder unlocks, not only
        // closes: closing its copy would leave the lock held for as long as
        // such a child keeps its copy open.
        if self.process == crate::fork_mark() {
            let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
        }
    }
}

impl Store {
    /// Takes the lock on `name` in `namespace` (see [`crate::ObjectStore::lock`]).
    pub(crate) fn lock_name(
        &self,
        namespace: &str,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<NameLock> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let dir = self.path().join(super::LOCKS_DIR);
        let path = dir.join(ObjectKey::new(namespace, name).to_hex());
        let open = || {
            rustix::fs::open(
                &path,
                OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            )
        };
        // The directory is made by the first lock of the store, not tried
        // again by every one.
        let fd = match open() {
            Err(Errno::NOENT) => {
                match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(Error::io("create the lock directory", &dir, err)),
                }
                open()
            }
            other => other,
        }
        .map_err(|e| Error::io("open the lock file", &path, os(e)))?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            let operation = match timeout {
                None => FlockOperation::LockExclusive,
                Some(_) => FlockOperation::NonBlockingLockExclusive,
            };
            match rustix::fs::flock(&fd, operation) {
                Ok(()) => {
                    let held = HeldFlock {
                        fd,
                        process: crate::fork_mark(),
                    };
                    return Ok(NameLock::new(Box::new(held), path.into()));
                }
                Err(Errno::WOULDBLOCK) | Err(Errno::INTR) => {}
                Err(err) => return Err(Error::io("lock", &path, os(err))),
            }
            let waited = started.elapsed();
            if timeout.is_some_and(|t| waited >= t) {
                return Err(Error::LockTimeout {
                    namespace: namespace.into(),
                    name: name.into(),
                    waited,
                    location: path.into(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::store::ObjectStore;

    #[test]
    fn a_second_locker_waits_and_a_dropped_lock_is_free() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let held = store.lock("ns", "counter", None).unwrap();
        assert!(held
            .location()
            .path()
            .is_some_and(|p| p.starts_with(store.path())));
        let err = store
            .lock("ns", "counter", Some(Duration::from_millis(20)))
            .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        assert!(store.lock("ns", "other", Some(Duration::ZERO)).is_ok());
        drop(held);
        assert!(store.lock("ns", "counter", Some(Duration::ZERO)).is_ok());
    }
}
