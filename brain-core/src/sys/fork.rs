//! Telling a forked child from its parent, without a system call.
//!
//! State that belongs to one process (its writer slot in a store's control
//! file, its count of writes in flight) must not be used by a child that
//! `fork` copied it into: the child is another process. A `pthread_atfork`
//! handler bumps a generation number in every child, so comparing the
//! generation recorded with the state against the current one costs one
//! atomic load (`getpid` is a system call on every call).

//!
//! A lock held by another thread when the process forks stays held in the
//! child for ever: the child has only the forking thread. So every lock of
//! brain's is taken through [`lock`], inside a section no fork happens in
//! ([`no_fork`]): a fork waits, in its `pthread_atfork` prepare handler,
//! until no thread is inside one, and new sections wait for the fork.
//! Sections hold a lock for a few steps and never wait for anything in one,
//! so the fork waits microseconds (a table being opened: milliseconds).

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();
/// How many threads of this process are forking: no section may begin
/// while one is (threads may fork at the same time, and each must find no
/// lock held, so one fork ending does not let sections begin).
static FORKING: AtomicUsize = AtomicUsize::new(0);
/// How many of the forking threads fork from inside a section.
static FORKING_INSIDE: AtomicUsize = AtomicUsize::new(0);
/// How many threads are inside a section.
static INSIDE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// How deep this thread is in sections (they nest: a lock taken while
    /// another is held).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether this thread is inside a section.
fn inside_a_section() -> bool {
    DEPTH.with(Cell::get) > 0
}

extern "C" fn before_fork() {
    // A thread forking from outside any section waits until no thread is
    // inside one. One forking from inside a section (brain never does; a
    // caller's callback might) cannot wait for itself, nor for the other
    // threads forking from inside one meanwhile (they cannot leave theirs
    // before their fork): it waits for the rest. (So it waits for ever if
    // another thread waits for a lock it holds, as that thread's section
    // began before its wait: a fork while holding a lock leaves it held in
    // the child anyway.)
    let own = inside_a_section();
    if own {
        FORKING_INSIDE.fetch_add(1, Ordering::SeqCst);
    }
    FORKING.fetch_add(1, Ordering::SeqCst);
    loop {
        let allowed = if own {
            FORKING_INSIDE.load(Ordering::SeqCst)
        } else {
            0
        };
        if INSIDE.load(Ordering::SeqCst) <= allowed {
            break;
        }
        std::thread::yield_now();
    }
}

extern "C" fn after_fork_in_parent() {
    if inside_a_section() {
        FORKING_INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
    FORKING.fetch_sub(1, Ordering::SeqCst);
}

extern "C" fn in_child() {
    // Runs in the child right after fork, before fork returns: only
    // async-signal-safe work, which atomic operations and reading a
    // thread-local cell are. The child has only the forking thread: no
    // other thread forks or is inside a section here, whatever the counts
    // copied from the parent say (a thread may have been between counting
    // itself in and out again in `no_fork`).
    GENERATION.fetch_add(1, Ordering::Relaxed);
    INSIDE.store(usize::from(inside_a_section()), Ordering::SeqCst);
    FORKING_INSIDE.store(0, Ordering::SeqCst);
    FORKING.store(0, Ordering::SeqCst);
}

/// A section of code no fork happens in (see the module's docs). Not
/// `Send`: it counts the thread that made it.
pub(crate) struct NoFork(PhantomData<*const ()>);

/// Enters a section no fork happens in, waiting for a fork under way.
pub(crate) fn no_fork() -> NoFork {
    register();
    DEPTH.with(|depth| {
        if depth.get() == 0 {
            loop {
                while FORKING.load(Ordering::SeqCst) > 0 {
                    std::thread::yield_now();
                }
                INSIDE.fetch_add(1, Ordering::SeqCst);
                if FORKING.load(Ordering::SeqCst) == 0 {
                    break;
                }
                // A fork began meanwhile: let it happen first.
                INSIDE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        depth.set(depth.get() + 1);
    });
    NoFork(PhantomData)
}

impl Drop for NoFork {
    fn drop(&mut self) {
        DEPTH.with(|depth| {
            depth.set(depth.get() - 1);
            if depth.get() == 0 {
                INSIDE.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

/// A lock of brain's, held inside a section no fork happens in.
pub(crate) struct Locked<'a, T> {
    // Declared first: the lock is given back before the section ends.
    guard: MutexGuard<'a, T>,
    _section: NoFork,
}

/// Takes `mutex` inside a section no fork happens in (a poisoned lock is
/// taken as it is: what it guards is kept consistent step by step).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> Locked<'_, T> {
    let section = no_fork();
    Locked {
        guard: mutex.lock().unwrap_or_else(PoisonError::into_inner),
        _section: section,
    }
}

impl<T> Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// The number of forks between the first process that used brain and this
/// one: it changes, in the child, at every fork.
pub(crate) fn generation() -> u64 {
    register();
    GENERATION.load(Ordering::Relaxed)
}

/// A mark of this process, for state kept in memory that a forked child
/// inherits and must not take for its own: the child's mark is another (it
/// is the fork generation plus one, so that 0 can stand for none). Unlike
/// the process id, no descendant of a process ever has its mark, even one
/// the kernel gives the id of an ancestor that has exited: along a line of
/// forks the generation only grows.
pub fn fork_mark() -> u64 {
    generation() + 1
}

/// This process's id and the fork generation it was read in, packed
/// (generation + 1 above, pid below; 0: not read yet).
static PID: AtomicU64 = AtomicU64::new(0);

/// This process's id, as `std::process::id()` gives it, read once per fork
/// generation: `getpid` is a system call on every call (about 250 ns on a
/// virtual machine), and brain's Redis store checks it on every call to
/// tell a forked child's state from its parent's.
pub fn process_id() -> u32 {
    let generation = generation().wrapping_add(1) & u64::from(u32::MAX);
    let cached = PID.load(Ordering::Relaxed);
    if cached >> 32 == generation {
        return cached as u32;
    }
    let pid = std::process::id();
    PID.store(generation << 32 | u64::from(pid), Ordering::Relaxed);
    pid
}

fn register() {
    REGISTER.call_once(|| {
        // SAFETY: pthread_atfork only records the three function pointers,
        // each an `extern "C" fn()` with no arguments, as handlers must be.
        // `in_child` is async-signal-safe (atomic operations only), which
        // is all a handler that runs in a child of a multi-threaded process
        // may be; the prepare and parent handlers run in the forking
        // thread's normal context. Registered once per process (Once), so
        // they run once per fork.
        let registered = unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(in_child),
            )
        };
        debug_assert_eq!(registered, 0, "pthread_atfork failed");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A child forked while another thread of its parent takes and gives
    /// back a lock again and again can take it: the fork waited until the
    /// lock was free (without the sections, some children hang for ever).
    #[test]
    fn a_child_forked_while_a_thread_holds_a_lock_can_take_it() {
        static SHARED: Mutex<u64> = Mutex::new(0);
        let _holder = Holder::start(&SHARED, |held| {
            for _ in 0..100_000 {
                *held = std::hint::black_box(*held + 1);
            }
        });
        for _ in 0..40 {
            assert!(
                in_a_child(|| *lock(&SHARED) > 0),
                "a child could not take a lock its parent's thread held at the fork"
            );
        }
    }

    /// Threads forking at the same time, while another thread takes and
    /// gives back a lock again and again: every child can take the lock,
    /// and can fork a grandchild that takes it too. (With one flag for
    /// "forking", the first fork to end let sections begin while the
    /// others were still forking; and a child could inherit a count of
    /// threads inside sections that no thread of its own would end.)
    #[test]
    fn children_forked_by_threads_at_once_can_take_a_lock_and_fork_again() {
        static SHARED: Mutex<u64> = Mutex::new(0);
        let holder = Holder::start(&SHARED, |held| *held = std::hint::black_box(*held + 1));
        let forkers: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..100)
                        .filter(|_| {
                            !in_a_child(|| *lock(&SHARED) > 0 && in_a_child(|| *lock(&SHARED) > 0))
                        })
                        .count()
                })
            })
            .collect();
        let failed: usize = forkers.into_iter().map(|f| f.join().unwrap()).sum();
        drop(holder);
        assert_eq!(failed, 0, "children forked at once could not take a lock");
    }

    /// A thread forking from outside any section while another forks from
    /// inside one, holding a lock: the first waits until the lock is given
    /// back, so its child can take it. (It must not count the other's
    /// section as allowed: that one is the other thread's to allow.)
    #[test]
    fn a_fork_from_outside_waits_for_a_lock_held_by_a_fork_from_inside() {
        static HELD: Mutex<u64> = Mutex::new(0);
        let inside = Holder::start(&HELD, |held| {
            *held += 1;
            // This thread's own child has the lock held: it checks nothing.
            in_a_child(|| true);
        });
        let failed = (0..150)
            .filter(|_| !in_a_child(|| *lock(&HELD) > 0))
            .count();
        drop(inside);
        assert_eq!(
            failed, 0,
            "a child could not take a lock held across another fork"
        );
    }

    /// A child's count of threads inside sections is its own thread's,
    /// whatever the count it copied: a thread of the parent may have been
    /// between counting itself in and out again (too brief a moment for a
    /// test to fork in, so the copied count is made up here, in a child).
    /// With the count left as copied, every fork of the child would wait
    /// for ever.
    #[test]
    fn a_child_counts_only_its_own_thread_inside_sections() {
        assert!(
            in_a_child(|| {
                INSIDE.fetch_add(1, Ordering::SeqCst);
                FORKING.fetch_add(1, Ordering::SeqCst);
                in_child();
                let clean = INSIDE.load(Ordering::SeqCst) == 0
                    && FORKING.load(Ordering::SeqCst) == 0
                    && in_a_child(|| *lock(&Mutex::new(true)));
                let section = no_fork();
                INSIDE.fetch_add(1, Ordering::SeqCst);
                in_child();
                let counted = INSIDE.load(Ordering::SeqCst) == 1;
                drop(section);
                clean && counted && INSIDE.load(Ordering::SeqCst) == 0
            }),
            "a child kept a count of sections copied from its parent"
        );
    }

    #[test]
    fn a_forked_child_sees_another_generation() {
        let before = generation();
        assert!(
            in_a_child(|| generation() != before),
            "the child saw the parent's generation"
        );
        assert_eq!(generation(), before, "the parent's generation changed");
    }

    #[test]
    fn a_forked_child_has_its_own_process_id() {
        let parent = process_id();
        assert_eq!(parent, std::process::id());
        assert!(
            in_a_child(|| process_id() == std::process::id() && process_id() != parent),
            "the child saw the parent's process id"
        );
        assert_eq!(process_id(), parent);
    }

    /// A mark never comes back along a line of forks, as a process id can
    /// (to a grandchild, once its grandparent has exited).
    #[test]
    fn a_descendant_never_has_an_ancestors_mark() {
        let parent = fork_mark();
        assert_ne!(parent, 0, "0 stands for none");
        assert!(
            in_a_child(|| {
                let child = fork_mark();
                child != parent && in_a_child(|| ![parent, child].contains(&fork_mark()))
            }),
            "a child or grandchild had an ancestor's mark"
        );
        assert_eq!(fork_mark(), parent, "the parent's mark changed");
    }

    /// Whether `check`, run in a child forked now, returned true (a child
    /// that hangs is ended by an alarm after 10 s, and counts as false).
    fn in_a_child(check: impl FnOnce() -> bool) -> bool {
        // SAFETY: the child runs `check`, then leaves with _exit, running
        // no handlers; an alarm ends it if it hangs.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm only sets a timer; the default action of
            // SIGALRM ends the child.
            unsafe { libc::alarm(10) };
            let passed = check();
            // SAFETY: _exit ends the child at once.
            unsafe { libc::_exit(if passed { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }

    /// A thread that takes a lock again and again, running `while_held`
    /// with it each time, until dropped.
    struct Holder {
        stop: std::sync::Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Holder {
        /// Starts the thread, and returns once it has taken `mutex` once.
        /// (It waits on a flag, not on the lock: a thread forking from
        /// inside a section waits for every other thread inside one, and a
        /// thread waiting for the lock that forker holds is inside one.)
        fn start(mutex: &'static Mutex<u64>, while_held: fn(&mut u64)) -> Holder {
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let started = std::sync::Arc::new(AtomicBool::new(false));
            let thread = {
                let (stop, started) = (stop.clone(), started.clone());
                std::thread::spawn(move || loop {
                    while_held(&mut lock(mutex));
                    started.store(true, Ordering::Release);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                })
            };
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            Holder {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap();
            }
        }
    }
}
