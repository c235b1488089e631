//! Telling a forked child from its parent, without a system call.
//!
//! State that belongs to one process (its writer slot in a store's control
//! file, its count of writes in flight) must not be used by a child that
//! `fork` copied it into: the child is another process. A `pthread_atfork`
//! handler bumps a generation number in every child, so comparing the
//! generation recorded with the state against the current one costs one
//! atomic load (`getpid` is a system call on every call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Runs in the child right after fork, before fork returns: only
    // async-signal-safe work, which an atomic add is.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The number of forks between the first process that used brain and this
/// one: it changes, in the child, at every fork.
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: pthread_atfork only records the three function pointers;
        // `in_child` is an `extern "C" fn()` with no arguments, as the
        // handlers must be, and it is async-signal-safe (one atomic add),
        // which is all a handler that runs in a child of a multi-threaded
        // process may be. Registered once per process (Once), so it runs
        // once per fork.
        let registered = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        debug_assert_eq!(registered, 0, "pthread_atfork failed");
    });
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_sees_another_generation() {
        let before = generation();
        // SAFETY: the child only reads an atomic and exits with _exit,
        // touching no lock a parent's thread might hold.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let changed = generation() != before;
            // SAFETY: _exit ends the child at once, running no handlers.
            unsafe { libc::_exit(if changed { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child saw the parent's generation"
        );
        assert_eq!(generation(), before, "the parent's generation changed");
    }
}
