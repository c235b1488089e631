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
//! # Writers that die, and recounts
//!
//! A writer killed while it holds a reservation would leave the count too
//! high, and so would a process killed between deleting a file and
//! counting it gone. Each process records the bytes it has reserved and
//! not yet published or given back in a slot of the control file, with its
//! pid and start time, and how many of its threads are in flight (see
//! below); when a slot of a process that is gone shows either, the count
//! is rebuilt ([`Control::dead_writers`], and the store's heal).
//!
//! A recount must not race the writers it counts. Every change of the
//! counters, and of the files they count (a reservation, a publish, a
//! delete, a pool file's move), happens while its process's slot counts
//! it in flight ([`Control::enter`]); a recount records itself in the
//! control file, then waits until no live slot has anything in flight
//! ([`Control::exclusive`]), so it sets the counters to exactly what the
//! files say. Entering checks for a recount after counting itself in, and
//! a recount checks the slots after recording itself (both sequentially
//! consistent), so one of the two always sees the other. A recounter or a
//! writer that dies is seen dead by the others (its pid and start time),
//! so nothing waits for it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::error::{Error, Result};
use crate::format::accounted;
use crate::format::control::{
    check_control_file, new_control_file, CAPACITY_AT, CONTROL_LEN, CONTROL_VERSION,
    CONTROL_VERSIONS_UPGRADED, POOLED_AT, RECOUNTER_AT, RECOUNTER_PID_NS_AT, SLOTS, SLOTS_AT,
    SLOT_BYTES, SLOT_IN_FLIGHT, SLOT_LEN, SLOT_PID_NS, SLOT_PROCESS, USED_AT, VERSION_AT,
};
use crate::sys::fork;
use crate::sys::names::{pid_namespace, process_start_time, unique_tmp_name, Owner};
use crate::sys::SharedCounters;

/// How long a writer or a recount sleeps before it looks again.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// The mapped control file: capacity, objects' bytes, the pool's bytes,
/// the writer slots; and which slot is this process's.
#[derive(Debug)]
pub(crate) struct Control {
    counters: SharedCounters,
    path: PathBuf,
    mine: Mutex<Mine>,
}

/// This process's writer slot. It belongs to one process: a forked child
/// (another fork generation) claims its own.
#[derive(Debug, Default)]
struct Mine {
    generation: u64,
    slot: Option<usize>,
}

/// Bits of a process identity that hold the pid (`pid_max` is at most 2^22).
const PID_BITS: u32 = 22;

/// A process as a slot or the recounter field records it: pid in the low
/// 22 bits, start time (clock ticks since boot) above; never 0.
fn identity(pid: u32, start: u64) -> u64 {
    u64::from(pid) & ((1 << PID_BITS) - 1) | (start << PID_BITS)
}

/// This process's identity.
pub(crate) fn my_identity() -> u64 {
    let pid = crate::sys::fork::process_id();
    identity(pid, process_start_time(pid).unwrap_or(0))
}

/// Whether the process recorded as `identity` in PID namespace `pid_ns`
/// still runs. One of another namespace cannot be looked up: it counts as
/// running.
fn recorded_alive(identity: u64, pid_ns: u64) -> bool {
    let pid = (identity & ((1 << PID_BITS) - 1)) as u32;
    let owner = Owner {
        pid,
        pid_ns: pid_ns as u32,
    };
    identity != 0
        && (owner.foreign()
            || process_start_time(pid).is_some_and(|now| self::identity(pid, now) == identity))
}

/// Whether the process recorded as `identity` in PID namespace `pid_ns`
/// still runs (one of another namespace counts as running).
pub(crate) fn identity_alive(identity: u64, pid_ns: u64) -> bool {
    recorded_alive(identity, pid_ns)
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
        let path = root.join(super::CONTROL_FILE);
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
        if CONTROL_VERSIONS_UPGRADED.contains(&version) {
            // Another opener may upgrade it at the same moment: either wins.
            // The slots of an older file are zero: free.
            let _ = counters.counter(VERSION_AT).compare_exchange(
                version,
                CONTROL_VERSION,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        Ok(Arc::new(Control {
            counters,
            path,
            mine: Mutex::new(Mine::default()),
        }))
    }

    /// Counts this thread in flight in this process's slot until the guard
    /// is dropped: counters and the files they count may change meanwhile,
    /// and no recount runs. Waits while a recount runs.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<Entered> {
        let slot = self.my_slot();
        let generation = fork::generation();
        loop {
            self.wait_for_recount()?;
            let Some(slot) = slot else {
                // No slot: nothing can be counted in flight, so only a
                // recount in progress is waited for (a later one may race
                // this process: `fsck` by hand then counts right).
                return Ok(Entered {
                    control: self.clone(),
                    slot: None,
                    generation,
                });
            };
            let in_flight = self.slot_counter(slot, SLOT_IN_FLIGHT);
            in_flight.fetch_add(1, Ordering::SeqCst);
            if self.recounter().load(Ordering::SeqCst) == 0 {
                return Ok(Entered {
                    control: self.clone(),
                    slot: Some(slot),
                    generation,
                });
            }
            // A recount began meanwhile: step back and let it finish.
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn recounter(&self) -> &AtomicU64 {
        self.counters.counter(RECOUNTER_AT)
    }

    /// Whether the recounter recorded as `recounter` still runs. Its PID
    /// namespace is written just after it claims the field and cleared
    /// just before it gives it back: read as 0, it is looked up in this
    /// process's namespace (were it in another one, its mark could be
    /// cleared while it recounts: a narrow window, between processes of
    /// two containers only).
    fn recounter_alive(&self, recounter: u64) -> bool {
        let pid_ns = self
            .counters
            .counter(RECOUNTER_PID_NS_AT)
            .load(Ordering::SeqCst);
        recorded_alive(recounter, pid_ns)
    }

    /// Waits while a live process recounts; clears the mark of a dead one.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the control file was written over meanwhile.
    fn wait_for_recount(&self) -> Result<()> {
        self.wait_for_recount_until(None)
    }

    /// Recounts alone: records this process as the recounter, then waits
    /// until no live process has anything in flight. Waits at most `timeout`
    /// for both; `None` when that was not enough. Must not be called by a
    /// thread that holds an [`Entered`] guard of this store (it would wait
    /// for itself).
    pub(crate) fn exclusive(self: &Arc<Self>, timeout: Duration) -> Result<Option<Exclusive>> {
        let me = my_identity();
        let started = Instant::now();
        loop {
            self.wait_for_recount_until(started.checked_add(timeout))?;
            match self
                .recounter()
                .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(_) if started.elapsed() >= timeout => return Ok(None),
                Err(_) => {}
            }
        }
        self.counters
            .counter(RECOUNTER_PID_NS_AT)
            .store(u64::from(pid_namespace()), Ordering::SeqCst);
        let exclusive = Exclusive {
            control: self.clone(),
            identity: me,
        };
        loop {
            let busy = (0..SLOTS).any(|slot| {
                self.slot_counter(slot, SLOT_IN_FLIGHT)
                    .load(Ordering::SeqCst)
                    > 0
                    && self.slot_alive(slot)
            });
            if !busy {
                return Ok(Some(exclusive));
            }
            if started.elapsed() >= timeout {
                // Dropping `exclusive` lets the writers go on.
                return Ok(None);
            }
            std::thread::sleep(WAIT_STEP);
        }
    }

    /// As [`Control::wait_for_recount`], giving up at `deadline` if any.
    fn wait_for_recount_until(&self, deadline: Option<Instant>) -> Result<()> {
        while deadline.is_none_or(|at| Instant::now() < at) {
            let recounter = self.recounter().load(Ordering::SeqCst);
            if recounter == 0 {
                return Ok(());
            }
            // A file written over under this process holds a recounter
            // that may look alive forever: it is an error, not a wait.
            self.still_a_control_file()?;
            if !self.recounter_alive(recounter) {
                let _ = self.recounter().compare_exchange(
                    recounter,
                    0,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                continue;
            }
            std::thread::sleep(WAIT_STEP);
        }
        Ok(())
    }

    /// Whether the mapped file still passes the checks it passed when it
    /// was opened (`check_control_file`: its magic and version).
    fn still_a_control_file(&self) -> Result<()> {
        if check_control_file(&self.counters.bytes()).is_ok() {
            return Ok(());
        }
        Err(Error::corrupt(
            &self.path,
            "it was written over while this process had it open (it no longer holds a control file's magic bytes and version)",
        ))
    }

    fn slot_counter(&self, slot: usize, field: usize) -> &AtomicU64 {
        self.counters.counter(SLOTS_AT + slot * SLOT_LEN + field)
    }

    /// This process's writer slot, claimed on first use; `None` when every
    /// slot is taken (its reservations are then not watched, nor waited
    /// for: a recount by `fsck` by hand still counts right).
    fn my_slot(&self) -> Option<usize> {
        let mut mine = fork::lock(&self.mine);
        let generation = fork::generation();
        if mine.slot.is_none() || mine.generation != generation {
            mine.generation = generation;
            mine.slot = self.claim_slot(Owner::me());
        }
        mine.slot
    }

    fn claim_slot(&self, me: Owner) -> Option<usize> {
        let identity = identity(me.pid, process_start_time(me.pid).unwrap_or(0));
        let pid_ns = u64::from(me.pid_ns);
        // A slot left by a process that died is free too, once a recount
        // has given back what it had reserved; only a process of the same
        // PID namespace can tell, and takes it.
        (0..SLOTS).find(|&slot| {
            let owner = self
                .slot_counter(slot, SLOT_PROCESS)
                .load(Ordering::Acquire);
            let owner_ns = self.slot_counter(slot, SLOT_PID_NS).load(Ordering::Acquire);
            let reserved = self.slot_counter(slot, SLOT_BYTES).load(Ordering::Acquire);
            let free = owner == 0
                || (reserved == 0 && owner_ns == pid_ns && !recorded_alive(owner, owner_ns));
            let claimed = free
                && self
                    .slot_counter(slot, SLOT_PROCESS)
                    .compare_exchange(owner, identity, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if claimed {
                self.slot_counter(slot, SLOT_IN_FLIGHT)
                    .store(0, Ordering::Release);
                self.slot_counter(slot, SLOT_PID_NS)
                    .store(pid_ns, Ordering::Release);
            }
            claimed
        })
    }

    /// How many processes are gone (their pid is not alive, or belongs to
    /// a process started later) leaving the counts unsettled: with bytes
    /// reserved, or killed in flight, between a change of the files and
    /// the change of the counts (a delete, a namespace removal, a pool
    /// file claimed or deleted). A recount settles them.
    pub(crate) fn dead_writers(&self) -> usize {
        (0..SLOTS)
            .filter(|&slot| {
                let bytes = self.slot_counter(slot, SLOT_BYTES).load(Ordering::Acquire);
                let in_flight = self
                    .slot_counter(slot, SLOT_IN_FLIGHT)
                    .load(Ordering::Acquire);
                (bytes > 0 || in_flight > 0) && !self.slot_alive(slot)
            })
            .count()
    }

    /// Whether the process that claimed `slot` still runs.
    /// A slot being claimed (no namespace yet) counts as alive.
    fn slot_alive(&self, slot: usize) -> bool {
        let process = self
            .slot_counter(slot, SLOT_PROCESS)
            .load(Ordering::Acquire);
        let pid_ns = self.slot_counter(slot, SLOT_PID_NS).load(Ordering::Acquire);
        process != 0 && (pid_ns == 0 || recorded_alive(process, pid_ns))
    }

    /// Under a recount: no bytes are in flight, and the slots of processes
    /// that are gone are free again.
    pub(crate) fn reset_slots(&self, _exclusive: &Exclusive) {
        for slot in 0..SLOTS {
            self.slot_counter(slot, SLOT_BYTES)
                .store(0, Ordering::Release);
            if !self.slot_alive(slot) {
                self.slot_counter(slot, SLOT_IN_FLIGHT)
                    .store(0, Ordering::Release);
                self.slot_counter(slot, SLOT_PID_NS)
                    .store(0, Ordering::Release);
                // Last: a slot with a process and no namespace is being
                // claimed, and counts as alive meanwhile.
                self.slot_counter(slot, SLOT_PROCESS)
                    .store(0, Ordering::Release);
            }
        }
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
    /// and try again). The caller holds an [`Entered`] guard.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        bytes: u64,
    ) -> std::result::Result<Reservation, Refused> {
        let mut reservation = Reservation {
            control: self.clone(),
            bytes: 0,
            slot: self.my_slot(),
            generation: fork::generation(),
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

    /// Sets the objects' count to a recount (`fsck`), which holds the lock exclusively.
    pub(crate) fn recount(&self, used: u64, _exclusive: &Exclusive) {
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

    /// Sets the pool's count to a recount (`fsck`), which holds the lock exclusively.
    pub(crate) fn pool_recount(&self, pooled: u64, _exclusive: &Exclusive) {
        self.counters
            .counter(POOLED_AT)
            .store(pooled, Ordering::Release);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A thread counted in flight in its process's slot; see [`Control::enter`].
#[derive(Debug)]
pub(crate) struct Entered {
    control: Arc<Control>,
    slot: Option<usize>,
    /// The fork generation it was counted in: a copy in a forked child
    /// counts nothing of the child's, and takes nothing back.
    generation: u64,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.filter(|_| fork::generation() == self.generation) {
            self.control
                .slot_counter(slot, SLOT_IN_FLIGHT)
                .fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A recount in progress, alone; see [`Control::exclusive`]. Dropped, it
/// lets the writers go on.
#[derive(Debug)]
pub(crate) struct Exclusive {
    control: Arc<Control>,
    identity: u64,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        self.control
            .counters
            .counter(RECOUNTER_PID_NS_AT)
            .store(0, Ordering::SeqCst);
        let _ = self.control.recounter().compare_exchange(
            self.identity,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

/// Bytes reserved for an object being written. Dropped, it gives them back;
/// [`Reservation::publish`] keeps them as the published object's instead.
/// Either way they leave the process's writer slot.
#[derive(Debug)]
pub(crate) struct Reservation {
    control: Arc<Control>,
    bytes: u64,
    slot: Option<usize>,
    /// The fork generation it was made in: a copy in a forked child gives
    /// nothing back (the parent's copy does).
    generation: u64,
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
            let extra = bytes - self.bytes;
            // In the slot first: a process killed between the two leaves a
            // slot too high, which only makes a recount happen.
            self.slot_add(extra);
            if let Err(refused) = self.control.add_used(extra) {
                self.slot_sub(extra);
                return Err(refused);
            }
            self.bytes = bytes;
        }
        Ok(())
    }

    /// The object (a file of `file_len` bytes) was published: its accounted
    /// bytes stay counted, as the object's, and the rest goes back.
    pub(crate) fn publish(mut self, file_len: u64) {
        let kept = accounted(file_len).min(self.bytes);
        self.slot_sub(kept);
        self.bytes -= kept;
        // Drop releases what is left.
    }

    fn slot_add(&self, bytes: u64) {
        if let Some(slot) = self.slot {
            self.control
                .slot_counter(slot, SLOT_BYTES)
                .fetch_add(bytes, Ordering::AcqRel);
        }
    }

    fn slot_sub(&self, bytes: u64) {
        if let Some(slot) = self.slot {
            subtract(self.control.slot_counter(slot, SLOT_BYTES), bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 && fork::generation() == self.generation {
            self.control.release_used(self.bytes);
            self.slot_sub(self.bytes);
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

    /// The pid of a process that ran and was reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    }

    fn dead_owner() -> Owner {
        Owner {
            pid: dead_pid(),
            pid_ns: pid_namespace(),
        }
    }

    #[test]
    fn reservations_are_recorded_in_the_process_slot_until_they_end() {
        let (_dir, control) = control(u64::MAX);
        let _entered = control.enter().unwrap();
        let writing = control.reserve(3 * 4096).unwrap();
        let slot = control.my_slot().expect("a slot");
        let in_slot = || {
            control
                .slot_counter(slot, SLOT_BYTES)
                .load(Ordering::SeqCst)
        };
        assert_eq!(in_slot(), 3 * 4096);
        writing.publish(4096);
        assert_eq!(in_slot(), 0, "a published object's bytes are not in flight");
        assert_eq!(control.used(), 4096);
        let dropped = control.reserve(4096).unwrap();
        drop(dropped);
        assert_eq!((in_slot(), control.used()), (0, 4096));
        assert_eq!(control.dead_writers(), 0, "this process runs");
    }

    #[test]
    fn a_dead_writers_reservation_is_seen_until_a_recount_frees_its_slot() {
        let (_dir, control) = control(u64::MAX);
        let slot = control.claim_slot(dead_owner()).expect("a free slot");
        control
            .slot_counter(slot, SLOT_BYTES)
            .store(8192, Ordering::SeqCst);
        assert_eq!(control.dead_writers(), 1);
        // Its slot is not taken by another process while it holds bytes.
        assert_ne!(control.my_slot(), Some(slot));
        let exclusive = control.exclusive(Duration::from_secs(1)).unwrap().unwrap();
        control.reset_slots(&exclusive);
        drop(exclusive);
        assert_eq!(control.dead_writers(), 0);
        assert_eq!(
            control
                .slot_counter(slot, SLOT_PROCESS)
                .load(Ordering::SeqCst),
            0
        );
    }

    #[test]
    fn a_process_killed_in_flight_leaves_counts_to_settle() {
        let (_dir, control) = control(u64::MAX);
        // Killed between deleting a file and counting it gone: nothing
        // reserved, one thread in flight.
        let slot = control.claim_slot(dead_owner()).expect("a free slot");
        control
            .slot_counter(slot, SLOT_IN_FLIGHT)
            .store(1, Ordering::SeqCst);
        assert_eq!(control.dead_writers(), 1);
        // A recount does not wait for it.
        let exclusive = control.exclusive(Duration::from_secs(1)).unwrap().unwrap();
        control.reset_slots(&exclusive);
        drop(exclusive);
        assert_eq!(control.dead_writers(), 0);
    }

    #[test]
    fn writers_of_another_pid_namespace_are_never_taken_for_dead() {
        let (_dir, control) = control(u64::MAX);
        // A container sharing the store: its pids mean nothing here.
        let elsewhere = Owner {
            pid: dead_pid(),
            pid_ns: pid_namespace().wrapping_add(1),
        };
        let slot = control.claim_slot(elsewhere).expect("a free slot");
        control
            .slot_counter(slot, SLOT_BYTES)
            .store(8192, Ordering::SeqCst);
        assert_eq!(control.dead_writers(), 0);
        control
            .slot_counter(slot, SLOT_BYTES)
            .store(0, Ordering::SeqCst);
        assert_ne!(control.my_slot(), Some(slot), "its slot was taken");
        // A slot whose namespace is not written yet is being claimed.
        let claiming = control.claim_slot(dead_owner()).expect("a free slot");
        control
            .slot_counter(claiming, SLOT_PID_NS)
            .store(0, Ordering::SeqCst);
        assert!(control.slot_alive(claiming));
    }

    #[test]
    fn a_recount_waits_for_writes_in_flight_and_writers_wait_for_it() {
        let (_dir, control) = control(u64::MAX);
        let entered = control.enter().unwrap();
        assert!(
            control
                .exclusive(Duration::from_millis(20))
                .unwrap()
                .is_none(),
            "a recount ran beside a write in flight"
        );
        drop(entered);
        let exclusive = control.exclusive(Duration::from_secs(1)).unwrap().unwrap();
        let writer = {
            let control = control.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let _entered = control.enter().unwrap();
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(60));
        drop(exclusive);
        assert!(
            writer.join().unwrap() >= Duration::from_millis(50),
            "a writer went on beside a recount"
        );
    }

    #[test]
    fn a_recounter_that_died_holds_no_one_back() {
        let (_dir, control) = control(u64::MAX);
        control
            .recounter()
            .store(identity(dead_pid(), 5), Ordering::SeqCst);
        let started = Instant::now();
        drop(control.enter().unwrap());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(control.recounter().load(Ordering::SeqCst), 0);
        assert!(control.exclusive(Duration::ZERO).unwrap().is_some());
    }

    #[test]
    fn releases_never_go_below_zero() {
        let (_dir, control) = control(u64::MAX);
        control.object_left(4096);
        control.pool_left(4096);
        assert_eq!((control.used(), control.pooled()), (0, 0));
    }
}
