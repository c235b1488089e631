//! Locks on names: a key set with `NX` and an expiry, holding a random
//! token, renewed while held, and checked by the publish script (a write
//! made under a lock that expired fails instead of losing an update).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use brain_core::{Error, LockGuard, NameLock, ObjectKey, ObjectStore, Result};

use crate::conn::lock;
use crate::keys::new_version;
use crate::scripts;
use crate::store::{Inner, RedisStore};

/// Lock tokens by (namespace, name).
type Tokens = HashMap<(String, String), String>;

/// The tokens of the locks this process holds, by (namespace, name)
/// (threads of one process write under the same token).
#[derive(Debug, Default)]
pub(crate) struct HeldLocks {
    /// The process they belong to, and the tokens.
    tokens: Mutex<(u64, Tokens)>,
}

impl HeldLocks {
    /// The token of this process's lock on the name, if it holds it. A
    /// forked child holds none of its parent's locks.
    pub(crate) fn token(&self, namespace: &str, name: &str) -> Option<String> {
        let mut tokens = lock(&self.tokens);
        if tokens.0 != brain_core::fork_mark() {
            *tokens = (brain_core::fork_mark(), HashMap::new());
        }
        tokens
            .1
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn insert(&self, namespace: &str, name: &str, token: &str) {
        let mut tokens = lock(&self.tokens);
        if tokens.0 != brain_core::fork_mark() {
            *tokens = (brain_core::fork_mark(), HashMap::new());
        }
        tokens
            .1
            .insert((namespace.to_owned(), name.to_owned()), token.to_owned());
    }

    fn remove(&self, namespace: &str, name: &str, token: &str) {
        let mut tokens = lock(&self.tokens);
        let id = (namespace.to_owned(), name.to_owned());
        if tokens.1.get(&id).is_some_and(|t| t == token) {
            tokens.1.remove(&id);
        }
    }
}

/// A held lock; released (by a compare-and-delete) when dropped.
#[derive(Debug)]
pub(crate) struct RedisLock {
    store: Weak<Inner>,
    namespace: String,
    name: String,
    key: String,
    token: String,
    /// The process that took it ([`brain_core::fork_mark`]).
    process: u64,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl LockGuard for RedisLock {}

impl RedisLock {
    pub(crate) fn acquire(
        store: &RedisStore,
        namespace: &str,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<NameLock> {
        let inner = &store.inner;
        let key = inner.keys.lock(ObjectKey::new(namespace, name));
        let location = store
            .location()
            .join(format!("locks/{namespace:?}/{name:?}"));
        let token = new_version();
        let ttl = inner.config.lock_ttl.as_millis() as u64;
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            // The holder is read in the same round trip: this call's token
            // when it took the lock, also when it took it in a run whose
            // connection closed before the answer came (conn.rs, Pool::run).
            let (_, holder): (Option<String>, Option<String>) = inner
                .pool
                .run(|c| {
                    let mut take = redis::cmd("SET");
                    take.arg(&key).arg(&token).arg("NX").arg("PX").arg(ttl);
                    let mut read = redis::cmd("GET");
                    read.arg(&key);
                    c.pipeline(vec![take, read])
                })
                .map_err(|e| store.err("take a lock in", &e))?;
            if holder.as_deref() == Some(token.as_str()) {
                break;
            }
            let waited = started.elapsed();
            if timeout.is_some_and(|t| waited >= t) {
                return Err(Error::LockTimeout {
                    namespace: namespace.into(),
                    name: name.into(),
                    waited,
                    location,
                });
            }
            let left = timeout.map_or(pause, |t| t.saturating_sub(waited));
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        inner.held.insert(namespace, name, &token);
        // The last holder's write may be on the server while its notice is
        // still on the way: reads of the name under the lock ask the server.
        inner
            .tracker
            .forget_everywhere(inner, ObjectKey::new(namespace, name));
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let guard = RedisLock {
            store: Arc::downgrade(inner),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.clone(),
            token: token.clone(),
            process: brain_core::fork_mark(),
            stop: stop.clone(),
        };
        // The watchdog renews the lock every third of its life while it is held.
        let weak = Arc::downgrade(inner);
        let every = inner.config.lock_ttl / 3;
        thread::Builder::new()
            .name("brain-redis-lock".into())
            .spawn(move || loop {
                let (stopped, wake) = &*stop;
                let guard = lock(stopped);
                let (guard, _) = wake
                    .wait_timeout_while(guard, every, |s| !*s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *guard {
                    return;
                }
                drop(guard);
                let Some(inner) = weak.upgrade() else { return };
                let renewed: redis::RedisResult<i64> = inner.pool.run(|c| {
                    scripts::renew()
                        .key(&key)
                        .arg(&token)
                        .arg(ttl)
                        .invoke(c.like())
                });
                if matches!(renewed, Ok(0)) {
                    // Lost (expired, or taken over): a write under it will fail.
                    return;
                }
            })
            .map_err(|e| Error::io("start the lock watchdog for", location.clone(), e))?;
        Ok(NameLock::new(Box::new(guard), location))
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *lock(stopped) = true;
        wake.notify_all();
        if self.process != brain_core::fork_mark() {
            // A forked child does not hold its parent's lock.
            return;
        }
        if let Some(inner) = self.store.upgrade() {
            inner.held.remove(&self.namespace, &self.name, &self.token);
            let _: redis::RedisResult<i64> = inner.pool.run(|c| {
                scripts::unlock()
                    .key(&self.key)
                    .arg(&self.token)
                    .invoke(c.like())
            });
        }
    }
}
