//! Capacity accounting: the one owner of a store's usage counters.
//!
//! The counters live in the store's control file (`format/control.rs`),
//! which every process maps and updates with atomics: a reservation costs
//! nanoseconds and needs no lock.
//!
//! # The rule
//!
//! - Objects and the recycling pool together stay within the capacity:
//!   `used + pooled <= capacity` whenever a byte is added to either
//!   ([`Control::reserve`], [`Control::pool_admit`] refuse otherwise).
//! - Every accounted byte is released exactly once. Bytes being written are
//!   held by a [`Reservation`], which gives them back when dropped, or keeps
//!   them as the published object's ([`Reservation::publish`], which
//!   consumes it). An object's bytes leave the count when its file leaves
//!   its name ([`Control::object_left`]), and only the process whose rename
//!   took the file off its name (exactly one can) calls it. Pool bytes
//!   likewise leave when a file leaves the pool ([`Control::pool_left`]),
//!   called only by the process whose rename or unlink removed it.
//!
//! A writer killed while it holds a reservation leaves the count too high;
//! `fsck` rebuilds it by scanning the store.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::error::{Error, Result};
use crate::format::accounted;
use crate::format::control::{
    check_control_file, new_control_file, CAPACITY_AT, CONTROL_LEN, CONTROL_VERSION,
    CONTROL_VERSION_BEFORE_RECYCLING, POOLED_AT, USED_AT, VERSION_AT,
};
use crate::sys::names::unique_tmp_name;
use crate::sys::SharedCounters;

/// The mapped control file: capacity, objects' bytes, the pool's bytes.
#[derive(Debug)]
pub(crate) struct Control {
    counters: SharedCounters,
    path: PathBuf,
}

/// A refused reservation: what was in use and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub used: u64,
    pub capacity: u64,
}

impl Control {
    /// Opens the control file of the store at `root`, creating it atomically
    /// (with no limit) when it does not exist yet, and upgrading a file of
    /// the version before recycling.
    pub(crate) fn open_or_create(root: &Path, file_mode: u32) -> Result<Arc<Control>> {
        let path = root.join("brain.ctl");
        let file = match open_rw(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                create(root, &path, file_mode)?;
                open_rw(&path).map_err(|e| Error::io("open the control file", &path, e))?
            }
            Err(err) => return Err(Error::io("open the control file", &path, err)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        if len != CONTROL_LEN as u64 {
            return Err(Error::corrupt(
                &path,
                format!("control file is {len} bytes, expected {CONTROL_LEN}"),
            ));
        }
        let counters = SharedCounters::map(&file, CONTROL_LEN)
            .map_err(|e| Error::io("map the control file", &path, e))?;
        let version =
            check_control_file(&counters.bytes()).map_err(|e| Error::from_format(e, &path))?;
        if version == CONTROL_VERSION_BEFORE_RECYCLING {
            // Another opener may upgrade it at the same moment: either wins.
            let _ = counters.counter(VERSION_AT).compare_exchange(
                CONTROL_VERSION_BEFORE_RECYCLING,
                CONTROL_VERSION,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        Ok(Arc::new(Control { counters, path }))
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.counters.counter(CAPACITY_AT).load(Ordering::Acquire)
    }

    pub(crate) fn set_capacity(&self, capacity: u64) {
        self.counters
            .counter(CAPACITY_AT)
            .store(capacity, Ordering::Release);
    }

    /// Bytes accounted to objects, published or being written.
    pub(crate) fn used(&self) -> u64 {
        self.counters.counter(USED_AT).load(Ordering::Acquire)
    }

    /// Bytes held by files in the recycling pool.
    pub(crate) fn pooled(&self) -> u64 {
        self.counters.counter(POOLED_AT).load(Ordering::Acquire)
    }

    /// Reserves `bytes` for an object about to be written, unless that,
    /// with the pool, would pass the capacity (the caller may empty the pool
    /// and try again).
    pub(crate) fn reserve(
        self: &Arc<Self>,
        bytes: u64,
    ) -> std::result::Result<Reservation, Refused> {
        let mut reservation = Reservation {
            control: self.clone(),
            bytes: 0,
        };
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }

    fn add_used(&self, bytes: u64) -> std::result::Result<(), Refused> {
        let capacity = self.capacity();
        let room = capacity.saturating_sub(self.pooled());
        add_within(self.counters.counter(USED_AT), bytes, room)
            .map_err(|used| Refused { used, capacity })
    }

    fn release_used(&self, bytes: u64) {
        subtract(self.counters.counter(USED_AT), bytes);
    }

    /// A published object's file of `file_len` bytes left its name (deleted,
    /// replaced, its namespace removed): its bytes leave the count. Only the
    /// process whose rename took the file off its name calls this.
    pub(crate) fn object_left(&self, file_len: u64) {
        self.release_used(accounted(file_len));
    }

    /// Sets the objects' count to a recount (`fsck`).
    pub(crate) fn recount(&self, used: u64) {
        self.counters
            .counter(USED_AT)
            .store(used, Ordering::Release);
    }

    /// Counts a file of `file_len` bytes into the pool unless the pool would
    /// pass `limit`, or objects and pool the capacity. False when it does not fit.
    pub(crate) fn pool_admit(&self, file_len: u64, limit: u64) -> bool {
        let room = self.capacity().saturating_sub(self.used());
        add_within(
            self.counters.counter(POOLED_AT),
            accounted(file_len),
            limit.min(room),
        )
        .is_ok()
    }

    /// A file of `file_len` bytes left the pool (claimed by a writer, or
    /// deleted): its bytes leave the pool's count. Only the process whose
    /// rename or unlink removed it calls this.
    pub(crate) fn pool_left(&self, file_len: u64) {
        subtract(self.counters.counter(POOLED_AT), accounted(file_len));
    }

    /// Sets the pool's count to a recount (`fsck`).
    pub(crate) fn pool_recount(&self, pooled: u64) {
        self.counters
            .counter(POOLED_AT)
            .store(pooled, Ordering::Release);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes reserved for an object being written. Dropped, it gives them back;
/// [`Reservation::publish`] keeps them as the published object's instead.
#[derive(Debug)]
pub(crate) struct Reservation {
    control: Arc<Control>,
    bytes: u64,
}

impl Reservation {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Grows the reservation to `bytes` (already accounted: whole pages);
    /// a no-op when it holds that much.
    pub(crate) fn grow_to(&mut self, bytes: u64) -> std::result::Result<(), Refused> {
        if bytes > self.bytes {
            self.control.add_used(bytes - self.bytes)?;
            self.bytes = bytes;
        }
        Ok(())
    }

    /// The object (a file of `file_len` bytes) was published: its accounted
    /// bytes stay counted, as the object's, and the rest goes back.
    pub(crate) fn publish(mut self, file_len: u64) {
        let kept = accounted(file_len).min(self.bytes);
        self.bytes -= kept;
        // Drop releases what is left.
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.control.release_used(self.bytes);
        }
    }
}

/// Adds `bytes` to `counter` unless the sum would pass `limit`; on refusal,
/// returns the count seen.
fn add_within(counter: &AtomicU64, bytes: u64, limit: u64) -> std::result::Result<(), u64> {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        let next = current.saturating_add(bytes);
        if next > limit {
            return Err(current);
        }
        match counter.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

/// Takes `bytes` off `counter`, never below zero (after a crash the count
/// may be behind until the next `fsck`).
fn subtract(counter: &AtomicU64, bytes: u64) {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        let next = current.saturating_sub(bytes);
        match counter.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Writes a complete control file under a temporary name and links it into
/// place, so a concurrent opener sees either nothing or a whole file.
fn create(root: &Path, path: &Path, file_mode: u32) -> Result<()> {
    // A name no other thread or process uses, created exclusively: another
    // opener racing this one can never truncate a file already linked.
    let tmp = root.join(unique_tmp_name("ctl"));
    let bytes = new_control_file();
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(file_mode))?;
        file.write_all(&bytes)?;
        Ok(())
    };
    write().map_err(|e| Error::io("create the control file", &tmp, e))?;
    // link() fails with EEXIST when another process won the race; its file is as good.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::io("create the control file", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(capacity: u64) -> (tempfile::TempDir, Arc<Control>) {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::open_or_create(dir.path(), 0o600).unwrap();
        control.set_capacity(capacity);
        (dir, control)
    }

    #[test]
    fn a_dropped_reservation_gives_its_bytes_back_and_a_published_one_keeps_the_object() {
        let (_dir, control) = control(10 * 4096);
        let mut writing = control.reserve(4096).unwrap();
        writing.grow_to(3 * 4096).unwrap();
        assert_eq!(control.used(), 3 * 4096);
        drop(writing);
        assert_eq!(control.used(), 0);
        let writing = control.reserve(3 * 4096).unwrap();
        // Published smaller than reserved: the object keeps its two pages.
        writing.publish(4097);
        assert_eq!(control.used(), 2 * 4096);
        control.object_left(4097);
        assert_eq!(control.used(), 0);
    }

    #[test]
    fn objects_and_pool_stay_within_the_capacity() {
        let (_dir, control) = control(4 * 4096);
        let object = control.reserve(2 * 4096).unwrap();
        assert!(control.pool_admit(4096, u64::MAX));
        // 2 pages used, 1 pooled: 2 more would pass 4.
        let refused = control.reserve(2 * 4096).unwrap_err();
        assert_eq!(
            refused,
            Refused {
                used: 2 * 4096,
                capacity: 4 * 4096
            }
        );
        control.pool_left(4096);
        let other = control.reserve(2 * 4096).unwrap();
        assert!(
            !control.pool_admit(1, u64::MAX),
            "the pool passed the capacity"
        );
        drop((object, other));
        assert!(control.pool_admit(4096, u64::MAX));
        assert!(
            !control.pool_admit(4096, 4096),
            "the pool passed its own limit"
        );
        assert_eq!(control.used(), 0);
    }

    #[test]
    fn releases_never_go_below_zero() {
        let (_dir, control) = control(u64::MAX);
        control.object_left(4096);
        control.pool_left(4096);
        assert_eq!((control.used(), control.pooled()), (0, 0));
    }
}
