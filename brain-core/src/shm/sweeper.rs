//! Giving back, while this process is idle, the memory of objects that
//! other processes deleted or replaced.
//!
//! This process's cache of objects it read (`cache.rs`) and its writable
//! mappings of files it wrote (`pool.rs`, warm files) keep such an
//! object's memory allocated until they let go of it. Its own gets and
//! writes sweep them (at most every 100 ms), but a process that makes
//! neither (a gunicorn worker between requests, a notebook left open, a
//! process that reads only small objects) kept a deleted frame's memory
//! for as long as it lived. So once a store of this process keeps a
//! mapping, a thread of the process sweeps it every second, and the thread
//! ends when every store it sweeps has been dropped. A forked child starts
//! its own thread (threads do not survive a fork) when it keeps a mapping.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{Inner, Store};

/// How often the thread sweeps.
const EVERY: Duration = Duration::from_secs(1);

/// The stores of this process that keep mappings, and whether a thread
/// sweeps them.
struct Sweeper {
    /// The fork mark of the process whose thread runs ([`crate::fork_mark`];
    /// 0: none runs).
    running: u64,
    stores: Vec<Weak<Inner>>,
}

static SWEEPER: Mutex<Sweeper> = Mutex::new(Sweeper {
    running: 0,
    stores: Vec::new(),
});

impl Store {
    /// Has this store swept every second from now on (see the module); a
    /// no-op once it is.
    pub(crate) fn sweep_while_idle(&self) {
        let mark = crate::fork_mark();
        if self.inner.idle_sweeps.load(Ordering::Relaxed) == mark {
            return;
        }
        let mut sweeper = crate::sys::fork::lock(&SWEEPER);
        if sweeper.running != mark {
            // No thread of this process runs: the list, if any, is a
            // forked parent's, or that of a thread that ended.
            sweeper.stores.clear();
            let spawned = std::thread::Builder::new()
                .name("brain-sweep".into())
                .spawn(run);
            if spawned.is_err() {
                // Swept by gets and writes only; tried again at the next
                // mapping kept.
                return;
            }
            sweeper.running = mark;
        }
        sweeper.stores.push(Arc::downgrade(&self.inner));
        self.inner.idle_sweeps.store(mark, Ordering::Relaxed);
    }

    /// One idle sweep: cached views and kept mappings of files deleted or
    /// replaced since are dropped.
    fn sweep_idle(&self) {
        crate::sys::fork::lock(&self.inner.cache).sweep_idle();
        self.sweep_warm();
    }
}

/// The thread: sweeps the live stores every [`EVERY`] until none is left.
fn run() {
    loop {
        std::thread::sleep(EVERY);
        let stores: Vec<Store> = {
            let mut sweeper = crate::sys::fork::lock(&SWEEPER);
            sweeper.stores.retain(|store| store.strong_count() > 0);
            if sweeper.stores.is_empty() {
                sweeper.running = 0;
                return;
            }
            sweeper
                .stores
                .iter()
                .filter_map(Weak::upgrade)
                .map(|inner| Store { inner })
                .collect()
        };
        for store in &stores {
            store.sweep_idle();
        }
    }
}
