//! Watch streams and per-name locks of an in-memory store: what the kernel
//! (inotify, `flock`) does for the shared-memory store, done with condition
//! variables inside one process.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use brain_core::{Location, LockGuard, Result, WatchEvent, WatchEvents};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the store down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One watcher's queue: the events it has not taken yet.
struct Subscriber {
    namespace: Option<String>,
    queue: Mutex<VecDeque<WatchEvent>>,
    ready: Condvar,
}

/// Everyone watching a store.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: Mutex<Vec<Weak<Subscriber>>>,
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subscribers({})", lock(&self.list).len())
    }
}

impl Subscribers {
    /// A new watcher of one namespace, or of every one.
    pub(crate) fn subscribe(&self, namespace: Option<&str>) -> MemoryWatcher {
        let subscriber = Arc::new(Subscriber {
            namespace: namespace.map(str::to_owned),
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        let mut list = lock(&self.list);
        list.retain(|s| s.strong_count() > 0);
        list.push(Arc::downgrade(&subscriber));
        MemoryWatcher { subscriber }
    }

    /// Tells every watcher of the event's namespace.
    pub(crate) fn publish(&self, event: &WatchEvent) {
        for subscriber in lock(&self.list).iter().filter_map(Weak::upgrade) {
            if subscriber
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == event.namespace())
            {
                lock(&subscriber.queue).push_back(event.clone());
                subscriber.ready.notify_all();
            }
        }
    }
}

/// The [`WatchEvents`] of an in-memory store: every set and delete, in order.
pub(crate) struct MemoryWatcher {
    subscriber: Arc<Subscriber>,
}

impl fmt::Debug for MemoryWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryWatcher")
            .field("namespace", &self.subscriber.namespace)
            .finish_non_exhaustive()
    }
}

impl WatchEvents for MemoryWatcher {
    fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut queue = lock(&self.subscriber.queue);
        loop {
            if let Some(event) = queue.pop_front() {
                return Ok(Some(event));
            }
            queue = match deadline {
                None => self
                    .subscriber
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.subscriber
                        .ready
                        .wait_timeout(queue, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// The names locked in a store, and a way to wait for one to be released.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    held: Mutex<HashSet<(String, String)>>,
    released: Condvar,
}

impl Locks {
    /// Takes the lock on `namespace`/`name`, waiting at most `timeout`
    /// (`None`: as long as it takes). `None` when the time ran out.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        timeout: Option<Duration>,
    ) -> Option<HeldName> {
        let key = (namespace.to_owned(), name.to_owned());
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut held = lock(&self.held);
        while held.contains(&key) {
            held = match deadline {
                None => self
                    .released
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.released
                        .wait_timeout(held, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        held.insert(key.clone());
        Some(HeldName {
            locks: self.clone(),
            key,
        })
    }
}

/// A held name lock of an in-memory store; released when dropped.
#[derive(Debug)]
pub(crate) struct HeldName {
    locks: Arc<Locks>,
    key: (String, String),
}

impl LockGuard for HeldName {}

impl Drop for HeldName {
    fn drop(&mut self) {
        lock(&self.locks.held).remove(&self.key);
        self.locks.released.notify_all();
    }
}

/// Where the lock on `namespace`/`name` of the store at `store` lives, for messages.
pub(crate) fn lock_location(store: &Location, namespace: &str, name: &str) -> Location {
    store.join(format!("locks/{namespace:?}/{name:?}"))
}
