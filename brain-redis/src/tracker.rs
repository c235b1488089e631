//! Learning of changes: RESP3 `CLIENT TRACKING` in broadcast mode on the
//! pointer keys, one connection per primary, read by a thread of this
//! process. It invalidates the process's bindings (name → version and view)
//! and feeds watch streams.
//!
//! Every store handle of a process on the same servers and key prefix
//! shares one set of tracking connections and one thread (a [`Hub`]): in
//! broadcast mode the servers send each change to every tracking
//! connection, so a connection per handle would multiply, for every write,
//! the messages the servers send and the threads woken in each process.
//!
//! The tracking connections are proven alive every second: the thread
//! publishes a heartbeat on a channel each of them is subscribed to, and a
//! connection whose heartbeat has not come back within 3 s counts as lost.
//! A lost connection (or a closed one, a topology change, a flush of the
//! server) makes every binding unvalidated, as Redis's documentation of
//! client-side caching requires, and tells watch streams to resynchronise.
//! After a fork the child starts its own thread (threads do not survive a
//! fork) with no bindings.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use brain_core::{ObjectKey, ObjectView, Result, WatchEvent, WatchEvents, Watcher};
use redis::{PushKind, Value};

use crate::config::RedisConfig;
use crate::conn::{bytes_of, lock, Connector};
use crate::keys::new_version;
use crate::store::{Inner, RedisStore};

/// How often each tracking connection is proven alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A tracking connection silent for this long counts as lost.
const SILENCE: Duration = Duration::from_secs(3);
/// How often a cluster's primaries are compared with those tracked.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(2);
/// Bindings kept at most; past it they are all dropped (re-read on demand).
const MAX_BINDINGS: usize = 10_000;

/// What a process knows of a name: the version read and a view of it.
pub(crate) struct Binding {
    pub(crate) version: String,
    pub(crate) view: ObjectView,
}

struct Bound {
    binding: Binding,
    /// Read while tracking was live and nothing changed meanwhile: may be
    /// used with no round trip.
    trusted: bool,
}

#[derive(Default)]
struct State {
    /// The process whose thread tracks ([`brain_core::fork_mark`]; 0:
    /// none yet).
    process: u64,
    healthy: bool,
    /// Bumped by every change seen and every fault.
    epoch: u64,
    /// Threads waiting for the epoch to move ([`Tracker::wait_change`]):
    /// only then is `changed` notified, as a notification is a system call
    /// even when no one waits, and every write of the process makes one.
    waiting: usize,
    bindings: HashMap<ObjectKey, Bound>,
    watchers: Vec<Weak<WatchQueue>>,
    /// The hub's trust (see [`Trust`]), once this handle joined it.
    trust: Option<Arc<Trust>>,
}

/// The tracking state of one store handle.
#[derive(Default)]
pub(crate) struct Tracker {
    state: Mutex<State>,
    changed: Condvar,
    /// The shared tracking this handle is a member of (once used).
    hub: Mutex<Option<Arc<Hub>>>,
}

/// The tracking connections and thread of one process on one set of
/// servers and key prefix, shared by the store handles on them.
///
/// A hub belongs to the process that made it: a forked child makes its own
/// rather than touch the parent's, whose locks a parent thread may have
/// held at the fork and whose threads did not survive it.
struct Hub {
    /// The servers and prefix (a [`tracking_identity`]).
    identity: RedisConfig,
    /// The process that made it ([`brain_core::fork_mark`]).
    process: u64,
    /// Lock order: `members`, then a member tracker's `state`.
    members: Mutex<Members>,
    /// Until when copies may be trusted ([`Trust`]), shared with the member
    /// trackers: the tracking connections' heartbeats move it on, a fault
    /// ends it.
    trust: Arc<Trust>,
}

/// Until when the tracking connections vouch for copies: [`SILENCE`] after
/// the oldest of their last heartbeats to come back. Reads look at it
/// themselves (one atomic load, no lock, nothing a fork can leave held):
/// the thread that sends the heartbeats may wait a whole I/O timeout on a
/// server or network path gone silent, and copies must not stay trusted
/// that long. One word holds the connections' generation (16 bits) and the
/// time ([`now_ms`], 48 bits), so that a reader of a
/// generation ended by a fault can never move it on again.
#[derive(Default)]
struct Trust(AtomicU64);

impl Trust {
    const TIME_BITS: u32 = 48;

    fn pack(generation: u16, until_ms: u64) -> u64 {
        (u64::from(generation) << Self::TIME_BITS) | (until_ms & ((1 << Self::TIME_BITS) - 1))
    }

    /// Whether copies may be trusted now.
    fn now(&self) -> bool {
        let until = self.0.load(Ordering::Acquire) & ((1 << Self::TIME_BITS) - 1);
        now_ms() < until
    }

    /// Starts `generation`: trusted for [`SILENCE`] from now.
    fn start(&self, generation: u16) {
        self.0.store(
            Self::pack(generation, now_ms() + silence_ms()),
            Ordering::Release,
        );
    }

    /// Ends the trust of every generation before `next`.
    fn end(&self, next: u16) {
        self.0.store(Self::pack(next, 0), Ordering::Release);
    }

    /// A generation no thread of this hub used yet (a thread that ended
    /// may have left readers finishing), with nothing trusted.
    fn new_generation(&self) -> u16 {
        let next = ((self.0.load(Ordering::Acquire) >> Self::TIME_BITS) as u16).wrapping_add(1);
        self.end(next);
        next
    }

    /// `generation`'s connections last heard from at `oldest_ms` (the
    /// oldest of their heartbeats); or, with 0, one of them lost. Changes
    /// nothing once another generation began.
    fn heard(&self, generation: u16, oldest_ms: u64) {
        let until = if oldest_ms == 0 {
            0
        } else {
            oldest_ms + silence_ms()
        };
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word >> Self::TIME_BITS == u64::from(generation))
                    .then(|| Self::pack(generation, until))
            });
    }
}

/// Milliseconds of the system's coarse monotonic clock, from 1 (0 means
/// never): read on every warm read, where a precise clock's read cost a
/// measurable share (BENCHMARKS.md); its few ms of grain are nothing
/// beside a deadline of seconds.
fn now_ms() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000 + 1
}

fn silence_ms() -> u64 {
    SILENCE.as_millis() as u64
}

#[derive(Default)]
struct Members {
    /// Whether the hub's thread runs.
    running: bool,
    healthy: bool,
    handles: Vec<Weak<Inner>>,
}

/// The hubs of this process.
static HUBS: Mutex<Vec<Weak<Hub>>> = Mutex::new(Vec::new());

/// What makes two handles' tracking the same: the servers, the credentials
/// and the key prefix, not the settings of reads and writes.
fn tracking_identity(config: &RedisConfig) -> RedisConfig {
    let mut identity = config.clone();
    identity.chunk_size = 0;
    identity.consistency = crate::config::Consistency::Strict;
    identity.lock_ttl = Duration::ZERO;
    identity.io_timeout = Duration::ZERO;
    identity
}

impl Hub {
    /// The hub of these servers in this process, made if there is none.
    fn of(config: &RedisConfig) -> Arc<Hub> {
        let identity = tracking_identity(config);
        let process = brain_core::fork_mark();
        let mut hubs = lock(&HUBS);
        hubs.retain(|h| h.strong_count() > 0);
        if let Some(hub) = hubs
            .iter()
            .filter_map(Weak::upgrade)
            .find(|h| h.process == process && h.identity == identity)
        {
            return hub;
        }
        let hub = Arc::new(Hub {
            identity,
            process,
            members: Mutex::new(Members::default()),
            trust: Arc::default(),
        });
        hubs.push(Arc::downgrade(&hub));
        hub
    }

    /// Every handle of this process that tracks these servers and prefix
    /// (none when none has read through tracking yet).
    fn members_of(config: &RedisConfig) -> Vec<Arc<Inner>> {
        let identity = tracking_identity(config);
        let process = brain_core::fork_mark();
        let hubs: Vec<Arc<Hub>> = lock(&HUBS)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|h| h.process == process && h.identity == identity)
            .collect();
        hubs.iter().flat_map(|hub| hub.handles()).collect()
    }

    /// Adds a handle, starting the hub's thread if it has none, and gives
    /// the handle the hub's health (under the hub's lock, so a fault the
    /// thread reports meanwhile is not overwritten). Returns whether the
    /// thread runs; a handle of a hub without one is left out, to join
    /// again on its next use.
    fn join(self: &Arc<Hub>, inner: &Arc<Inner>) -> bool {
        let mut members = lock(&self.members);
        if !members.running {
            members.healthy = false;
            let weak = Arc::downgrade(self);
            let process = self.process;
            let spawned = thread::Builder::new()
                .name("brain-redis-tracker".into())
                .spawn(move || run(weak, process));
            if spawned.is_err() {
                return false;
            }
            members.running = true;
        }
        members.handles.retain(|h| h.strong_count() > 0);
        members.handles.push(Arc::downgrade(inner));
        if members.healthy {
            inner.tracker.set_health(true);
        }
        true
    }

    /// The live member handles.
    fn handles(&self) -> Vec<Arc<Inner>> {
        lock(&self.members)
            .handles
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Records the connections' health and tells every member, under the
    /// hub's lock so that a handle joining meanwhile gets the same word.
    fn set_health(&self, healthy: bool) {
        let mut members = lock(&self.members);
        members.healthy = healthy;
        for inner in members.handles.iter().filter_map(Weak::upgrade) {
            inner.tracker.set_health(healthy);
        }
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Tracker")
            .field("healthy", &state.healthy)
            .field("bindings", &state.bindings.len())
            .finish()
    }
}

/// Something a watch stream must look at.
enum Note {
    Key(ObjectKey),
    Resync,
}

pub(crate) struct WatchQueue {
    notes: Mutex<VecDeque<Note>>,
    ready: Condvar,
}

impl Tracker {
    /// Joins the tracking of this process if this handle has not yet.
    fn ensure(&self, inner: &Arc<Inner>) {
        let process = brain_core::fork_mark();
        {
            let mut state = lock(&self.state);
            if state.process == process {
                return;
            }
            // First use, or a forked child: nothing known is trusted.
            state.process = process;
            state.healthy = false;
            state.trust = None;
            state.bindings.clear();
            state.epoch += 1;
        }
        let hub = Hub::of(&inner.config);
        if hub.join(inner) {
            lock(&self.state).trust = Some(hub.trust.clone());
            *lock(&self.hub) = Some(hub);
        } else {
            // No thread could start: every read validates, and the next
            // one tries again.
            lock(&self.state).process = 0;
        }
    }

    /// The epoch now (starting the thread if needed).
    pub(crate) fn epoch(&self, inner: &Arc<Inner>) -> Option<u64> {
        self.ensure(inner);
        Some(lock(&self.state).epoch)
    }

    /// A view of `key` that needs no round trip, if tracking vouches for it
    /// (and was heard from lately: see [`Trust`]).
    pub(crate) fn bound(&self, inner: &Arc<Inner>, key: ObjectKey) -> Option<(ObjectView, String)> {
        self.ensure(inner);
        let state = lock(&self.state);
        if !state.healthy || !state.trust.as_ref().is_some_and(|trust| trust.now()) {
            return None;
        }
        state
            .bindings
            .get(&key)
            .filter(|b| b.trusted)
            .map(|b| (b.binding.view.clone(), b.binding.version.clone()))
    }

    /// The view bound to `key` if it is of `version` (just checked with the
    /// server, when the epoch was `epoch`: the binding is trusted from now
    /// on if nothing changed meanwhile).
    pub(crate) fn bound_version(
        &self,
        _inner: &Arc<Inner>,
        key: ObjectKey,
        version: &str,
        epoch: Option<u64>,
    ) -> Option<ObjectView> {
        let mut state = lock(&self.state);
        let trusted = state.healthy && epoch == Some(state.epoch);
        let bound = state
            .bindings
            .get_mut(&key)
            .filter(|b| b.binding.version == version)?;
        bound.trusted |= trusted;
        Some(bound.binding.view.clone())
    }

    /// Binds `key` to a version read when the epoch was `epoch`.
    pub(crate) fn bind(
        &self,
        _inner: &Arc<Inner>,
        key: ObjectKey,
        binding: Binding,
        epoch: Option<u64>,
    ) {
        let mut state = lock(&self.state);
        if state.process != brain_core::fork_mark() {
            return;
        }
        let trusted = state.healthy && epoch == Some(state.epoch);
        if state.bindings.len() >= MAX_BINDINGS {
            state.bindings.clear();
        }
        state.bindings.insert(key, Bound { binding, trusted });
    }

    /// Forgets what this process knows of `key`, after a write or delete
    /// of it by any handle of the process: in this handle and in every
    /// other one tracking the same servers, which would otherwise trust
    /// their binding until the server's notice of the change reached them
    /// (a process sees its own writes). Their epochs move too, so a read
    /// that began before the change does not bind what it read as trusted.
    pub(crate) fn forget_everywhere(&self, inner: &Arc<Inner>, key: ObjectKey) {
        self.unbind(key);
        for member in Hub::members_of(&inner.config) {
            if !Arc::ptr_eq(&member, inner) {
                member.tracker.unbind(key);
            }
        }
    }

    /// Forgets what this handle knows of `key` (found gone on the server).
    pub(crate) fn forget(&self, _inner: &Arc<Inner>, key: ObjectKey) {
        lock(&self.state).bindings.remove(&key);
    }

    fn unbind(&self, key: ObjectKey) {
        let mut state = lock(&self.state);
        state.bindings.remove(&key);
        state.epoch += 1;
        self.wake(state);
    }

    /// Releases `state` after a move of the epoch, and wakes the threads
    /// waiting for one. A waiter counts itself under the lock before it
    /// looks at the epoch, so one that is not counted here will see the
    /// new epoch when it looks.
    fn wake(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// Forgets every binding.
    pub(crate) fn clear(&self, _inner: &Arc<Inner>) {
        lock(&self.state).bindings.clear();
    }

    /// Waits until the epoch moves past `epoch`, at most `timeout`.
    pub(crate) fn wait_change(&self, inner: &Arc<Inner>, epoch: Option<u64>, timeout: Duration) {
        self.ensure(inner);
        self.wait_epoch_change(epoch, timeout);
    }

    /// Waits until the epoch moves past `epoch`, at most `timeout`.
    fn wait_epoch_change(&self, epoch: Option<u64>, timeout: Duration) {
        let mut state = lock(&self.state);
        state.waiting += 1;
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| Some(s.epoch) == epoch)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.waiting -= 1;
    }

    /// Whether the tracking connections are up and heard from lately (for
    /// tests and figures).
    pub(crate) fn healthy(&self) -> bool {
        let state = lock(&self.state);
        state.healthy && state.trust.as_ref().is_some_and(|trust| trust.now())
    }

    fn subscribe(&self, inner: &Arc<Inner>) -> Arc<WatchQueue> {
        self.ensure(inner);
        let queue = Arc::new(WatchQueue {
            notes: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        let mut state = lock(&self.state);
        state.watchers.retain(|w| w.strong_count() > 0);
        state.watchers.push(Arc::downgrade(&queue));
        queue
    }

    fn tell(state: &State, note: impl Fn() -> Note) {
        for queue in state.watchers.iter().filter_map(Weak::upgrade) {
            lock(&queue.notes).push_back(note());
            queue.ready.notify_all();
        }
    }

    /// A change of these pointer keys (`None`: of everything, a flush).
    fn invalidate(&self, keys: Option<Vec<ObjectKey>>) {
        let mut state = lock(&self.state);
        state.epoch += 1;
        match keys {
            Some(keys) => {
                for key in keys {
                    state.bindings.remove(&key);
                    Tracker::tell(&state, || Note::Key(key));
                }
            }
            None => {
                state.bindings.clear();
                Tracker::tell(&state, || Note::Resync);
            }
        }
        self.wake(state);
    }

    fn set_health(&self, healthy: bool) {
        let mut state = lock(&self.state);
        state.healthy = healthy;
        state.epoch += 1;
        if !healthy {
            for bound in state.bindings.values_mut() {
                bound.trusted = false;
            }
        }
        // What happened while nothing was tracked is found by a resync.
        Tracker::tell(&state, || Note::Resync);
        self.wake(state);
    }
}

/// `host:port` of every primary: the one server, or each shard's primary
/// as a seed (or any node reached) reports it.
pub(crate) fn primaries(inner: &Inner) -> redis::RedisResult<Vec<String>> {
    let config = &inner.config;
    if !config.cluster {
        return Ok(vec![config.nodes[0].clone()]);
    }
    let mut last_err = None;
    for seed in &config.nodes {
        let mut conn = match Connector::node(config, seed) {
            Ok(conn) => conn,
            Err(err) => {
                last_err = Some(err);
                continue;
            }
        };
        let slots: Value = match redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn) {
            Ok(slots) => slots,
            Err(err) => {
                last_err = Some(err);
                continue;
            }
        };
        let seed_host = seed.rsplit_once(':').map_or(seed.as_str(), |(h, _)| h);
        let mut nodes: Vec<String> = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(parts) = range else { continue };
                let Some(Value::Array(primary)) = parts.get(2) else {
                    continue;
                };
                let host = primary
                    .first()
                    .cloned()
                    .and_then(bytes_of)
                    .map(|h| String::from_utf8_lossy(&h).into_owned());
                let port = primary
                    .get(1)
                    .cloned()
                    .and_then(bytes_of)
                    .map(|p| String::from_utf8_lossy(&p).into_owned());
                if let (Some(host), Some(port)) = (host, port) {
                    let host = if host.is_empty() || host == "?" {
                        seed_host.to_owned()
                    } else {
                        host
                    };
                    nodes.push(format!("{host}:{port}"));
                }
            }
        }
        nodes.sort();
        nodes.dedup();
        if !nodes.is_empty() {
            return Ok(nodes);
        }
    }
    Err(last_err.unwrap_or_else(|| {
        redis::RedisError::from(std::io::Error::other(
            "no seed of the cluster answered CLUSTER SLOTS with its primaries",
        ))
    }))
}

/// The tracking connections of one generation.
struct Readers {
    stop: Arc<AtomicBool>,
    channels: Vec<String>,
    nodes: Vec<String>,
    /// When each connection's heartbeat last came back ([`now_ms`]).
    seen: Arc<Vec<AtomicU64>>,
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Opens a tracking connection to each primary, each read by a thread of
/// its own that applies invalidations to the hub's members as they come
/// (one thread woken per change, not two), records heartbeats in `seen`,
/// and sends on `lost` when its connection fails.
fn connect(
    inner: &Inner,
    hub: &Weak<Hub>,
    generation: u16,
    lost: &mpsc::Sender<()>,
) -> redis::RedisResult<Readers> {
    let nodes = primaries(inner)?;
    let id = new_version();
    let prefix = inner.keys.pointer_prefix();
    let stop = Arc::new(AtomicBool::new(false));
    let mut channels = Vec::new();
    let mut conns = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut conn = Connector::node(&inner.config, node)?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&prefix)
            .exec(&mut conn)?;
        let channel = format!("{}:hb:{id}:{i}", inner.keys.prefix);
        conn.subscribe_resp3(&channel)?;
        conn.set_read_timeout(Some(Duration::from_millis(500)))?;
        channels.push(channel);
        conns.push(conn);
    }
    let seen = Arc::new(
        (0..conns.len())
            .map(|_| AtomicU64::new(now_ms()))
            .collect::<Vec<_>>(),
    );
    for (i, mut conn) in conns.into_iter().enumerate() {
        let stopped = stop.clone();
        let lost = lost.clone();
        let hub = hub.clone();
        let keys = inner.keys.clone();
        let seen = seen.clone();
        thread::Builder::new()
            .name("brain-redis-tracking".into())
            .spawn(move || loop {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                match conn.recv_response() {
                    Ok(Value::Push {
                        kind: PushKind::Invalidate,
                        data,
                    }) => {
                        let changed = match data.into_iter().next() {
                            Some(Value::Array(keys_changed)) => Some(
                                keys_changed
                                    .into_iter()
                                    .filter_map(bytes_of)
                                    .filter_map(|k| keys.key_of_pointer(&k))
                                    .collect::<Vec<_>>(),
                            ),
                            // A flush of the server: everything changed.
                            _ => None,
                        };
                        let Some(hub) = hub.upgrade() else { return };
                        for member in hub.handles() {
                            member.tracker.invalidate(changed.clone());
                        }
                    }
                    Ok(Value::Push {
                        kind: PushKind::Message,
                        ..
                    }) => {
                        seen[i].store(now_ms(), Ordering::Release);
                        let oldest = seen.iter().map(|t| t.load(Ordering::Acquire)).min();
                        let Some(hub) = hub.upgrade() else { return };
                        hub.trust.heard(generation, oldest.unwrap_or(0));
                    }
                    Ok(_) => {}
                    Err(err) if err.is_timeout() => {}
                    Err(_) => {
                        // Its invalidations are lost from now on: no copy
                        // is trusted until the connections are made again.
                        if let Some(hub) = hub.upgrade() {
                            hub.trust.heard(generation, 0);
                        }
                        let _ = lost.send(());
                        return;
                    }
                }
            })
            .map_err(|e| {
                // The readers already started end with this generation.
                stop.store(true, Ordering::SeqCst);
                redis::RedisError::from(std::io::Error::other(e.to_string()))
            })?;
    }
    Ok(Readers {
        stop,
        channels,
        nodes,
        seen,
    })
}

/// Any live member of the hub, to connect and publish through (they all
/// speak to the same servers with the same prefix); `None` when the hub or
/// all its members are gone, which ends the thread.
fn member(hub: &Weak<Hub>) -> Option<Arc<Inner>> {
    let hub = hub.upgrade()?;
    let mut members = lock(&hub.members);
    let found = members.handles.iter().find_map(Weak::upgrade);
    if found.is_none() {
        // Decided under the lock, so a handle joining now starts a thread.
        members.running = false;
    }
    found
}

/// The thread of a hub: connects, proves the connections alive, watches a
/// cluster's primaries, and starts over after any fault.
fn run(hub: Weak<Hub>, process: u64) {
    let mut backoff = Duration::from_millis(50);
    let Some(mut generation) = hub.upgrade().map(|hub| hub.trust.new_generation()) else {
        return;
    };
    loop {
        let Some(inner) = member(&hub) else { return };
        if brain_core::fork_mark() != process {
            return;
        }
        let (lost, lost_rx) = mpsc::channel();
        let readers = match connect(&inner, &hub, generation, &lost) {
            Ok(readers) => readers,
            Err(_) => {
                drop(inner);
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        drop(lost);
        backoff = Duration::from_millis(50);
        let Some(shared) = hub.upgrade() else { return };
        shared.trust.start(generation);
        shared.set_health(true);
        drop(shared);
        let mut last_topology = Instant::now();
        let mut last_beat = Instant::now() - HEARTBEAT;
        drop(inner);
        let fault = loop {
            // A short wait, so the thread ends soon after its last handle.
            match lost_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => break "a tracking connection closed",
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break "the tracking connections closed",
            }
            let Some(inner) = member(&hub) else { return };
            if last_beat.elapsed() < HEARTBEAT {
                continue;
            }
            last_beat = Instant::now();
            let _ = inner.pool.run(|c| {
                for channel in &readers.channels {
                    redis::cmd("PUBLISH").arg(channel).arg("").exec(c.like())?;
                }
                Ok(())
            });
            let now = now_ms();
            if readers
                .seen
                .iter()
                .any(|t| now.saturating_sub(t.load(Ordering::Acquire)) > silence_ms())
            {
                break "a tracking connection went silent";
            }
            if inner.config.cluster && last_topology.elapsed() >= TOPOLOGY_CHECK {
                last_topology = Instant::now();
                if primaries(&inner).is_ok_and(|now| now != readers.nodes) {
                    break "the cluster's primaries changed";
                }
            }
        };
        let _ = fault;
        drop(readers);
        let Some(shared) = hub.upgrade() else { return };
        generation = generation.wrapping_add(1);
        shared.trust.end(generation);
        shared.set_health(false);
        for member in shared.handles() {
            member.pool.clear();
            member.bulk.clear();
        }
    }
}

/// A watch stream: tracked pointer keys resolved into events, and a
/// resynchronisation (what it knew against what is there) after any fault.
struct RedisWatcher {
    store: RedisStore,
    namespace: Option<String>,
    queue: Arc<WatchQueue>,
    /// What the stream last saw: key → (namespace, name, version).
    known: HashMap<ObjectKey, (String, String, String)>,
    pending: VecDeque<WatchEvent>,
}

impl fmt::Debug for RedisWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWatcher")
            .field("namespace", &self.namespace)
            .field("known", &self.known.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn watch(store: &RedisStore, namespace: Option<&str>) -> Result<Watcher> {
    let queue = store.inner.tracker.subscribe(&store.inner);
    let mut watcher = RedisWatcher {
        store: store.clone(),
        namespace: namespace.map(str::to_owned),
        queue,
        known: HashMap::new(),
        pending: VecDeque::new(),
    };
    watcher.known = watcher.scan()?;
    Ok(Watcher::new(Box::new(watcher)))
}

impl RedisWatcher {
    /// Every object in the watched namespaces, now.
    fn scan(&self) -> Result<HashMap<ObjectKey, (String, String, String)>> {
        let namespaces = match &self.namespace {
            Some(ns) => vec![ns.clone()],
            None => brain_core::ObjectStore::namespaces(&self.store)?,
        };
        let mut out = HashMap::new();
        for namespace in namespaces {
            let entries = self.store.catalog_entries(&namespace)?;
            let keys: Vec<ObjectKey> = entries.iter().map(|(_, k)| *k).collect();
            for ((name, key), pointer) in entries.into_iter().zip(self.store.pointers(&keys)?) {
                if let Some(p) =
                    pointer.filter(|p| p.meta.namespace == namespace && p.meta.name == name)
                {
                    out.insert(key, (namespace.clone(), name, p.version));
                }
            }
        }
        Ok(out)
    }

    fn wanted(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    fn resolve(&mut self, key: ObjectKey) -> Result<()> {
        let pointer = self.store.pointers(&[key])?.pop().flatten();
        match pointer {
            Some(p) if self.wanted(&p.meta.namespace) => {
                let changed = self.known.get(&key).is_none_or(|(_, _, v)| *v != p.version);
                if changed {
                    self.pending.push_back(WatchEvent::Set {
                        namespace: p.meta.namespace.clone(),
                        name: p.meta.name.clone(),
                    });
                    self.known
                        .insert(key, (p.meta.namespace, p.meta.name, p.version));
                }
            }
            Some(_) => {}
            None => {
                if let Some((namespace, name, _)) = self.known.remove(&key) {
                    self.pending
                        .push_back(WatchEvent::Deleted { namespace, name });
                }
            }
        }
        Ok(())
    }

    fn resync(&mut self) -> Result<()> {
        let now = self.scan()?;
        let mut gone: Vec<_> = self
            .known
            .iter()
            .filter(|(k, _)| !now.contains_key(k))
            .map(|(_, (ns, name, _))| (ns.clone(), name.clone()))
            .collect();
        gone.sort();
        for (namespace, name) in gone {
            self.pending
                .push_back(WatchEvent::Deleted { namespace, name });
        }
        let mut set: Vec<_> = now
            .iter()
            .filter(|(k, (_, _, v))| self.known.get(k).is_none_or(|(_, _, old)| old != v))
            .map(|(_, (ns, name, _))| (ns.clone(), name.clone()))
            .collect();
        set.sort();
        for (namespace, name) in set {
            self.pending.push_back(WatchEvent::Set { namespace, name });
        }
        self.known = now;
        Ok(())
    }
}

impl WatchEvents for RedisWatcher {
    fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let note = {
                let mut notes = lock(&self.queue.notes);
                loop {
                    if let Some(note) = notes.pop_front() {
                        break Some(note);
                    }
                    let left = match deadline {
                        Some(d) => d.saturating_duration_since(Instant::now()),
                        None => Duration::from_secs(3600),
                    };
                    if left.is_zero() {
                        break None;
                    }
                    notes = self
                        .queue
                        .ready
                        .wait_timeout(notes, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            };
            // A new watcher, or a forked child, starts the tracker here too.
            self.store.inner.tracker.epoch(&self.store.inner);
            match note {
                None => return Ok(None),
                Some(Note::Key(key)) => {
                    if let Err(err) = self.resolve(key) {
                        self.ride_out(err, Note::Key(key), deadline)?;
                    }
                }
                Some(Note::Resync) => {
                    // Coalesce: one rescan answers every note queued so far.
                    lock(&self.queue.notes).retain(|n| !matches!(n, Note::Resync));
                    if let Err(err) = self.resync() {
                        self.ride_out(err, Note::Resync, deadline)?;
                    }
                }
            }
        }
    }
}

impl RedisWatcher {
    /// A server away (a restart, a failover) is waited out, as `wait_for`
    /// waits it out: `note` is kept, to look at again in a moment (or by
    /// the next call, when the server is still away at the deadline and
    /// that is returned). Another error is returned at once.
    fn ride_out(
        &self,
        err: brain_core::Error,
        note: Note,
        deadline: Option<Instant>,
    ) -> Result<()> {
        const AGAIN: Duration = Duration::from_millis(200);
        if !err.is_server_away() {
            return Err(err);
        }
        lock(&self.queue.notes).push_front(note);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(err);
        }
        thread::sleep(left.map_or(AGAIN, |left| left.min(AGAIN)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trust lasts [`SILENCE`] past the oldest heartbeat of the current
    /// generation; a lost connection or a fault ends it, and readers of an
    /// ended generation cannot bring it back.
    #[test]
    fn trust_follows_the_current_generations_heartbeats_only() {
        let trust = Trust::default();
        assert!(!trust.now(), "nothing is trusted before a connection");
        let generation = trust.new_generation();
        trust.start(generation);
        assert!(trust.now());
        // Trusted until the silence allowed after the oldest heartbeat.
        trust.heard(generation, 5);
        let until = trust.0.load(Ordering::Acquire) & ((1 << Trust::TIME_BITS) - 1);
        assert_eq!(until, 5 + silence_ms());
        trust.heard(generation, now_ms());
        assert!(trust.now());
        // A lost connection ends it.
        trust.heard(generation, 0);
        assert!(!trust.now());
        // After a fault, the old generation's heartbeats change nothing.
        trust.start(generation);
        let next = generation.wrapping_add(1);
        trust.end(next);
        trust.heard(generation, now_ms());
        assert!(!trust.now(), "an ended generation brought trust back");
        trust.start(next);
        assert!(trust.now());
        // A new thread's generation is past every one used before.
        assert_ne!(trust.new_generation(), next);
        assert!(!trust.now());
    }

    /// A waiter is woken by a move of the epoch, not by its timeout, and a
    /// move with no one waiting leaves nothing for the next waiter to miss.
    #[test]
    fn a_change_wakes_the_threads_waiting_for_one() {
        let tracker = Tracker::default();
        let key = ObjectKey::new("ns", "name");
        // No one waits: the epoch moves all the same.
        tracker.unbind(key);
        let epoch = lock(&tracker.state).epoch;
        assert_eq!(epoch, 1);
        // Already past: no wait at all.
        let started = Instant::now();
        tracker.wait_epoch_change(Some(0), Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let started = Instant::now();
                tracker.wait_epoch_change(Some(epoch), Duration::from_secs(30));
                started.elapsed()
            });
            // The change comes once the waiter has counted itself.
            while lock(&tracker.state).waiting == 0 {
                std::thread::yield_now();
            }
            tracker.invalidate(Some(vec![key]));
            let waited = waiter.join().expect("the waiter");
            assert!(
                waited < Duration::from_secs(10),
                "woken only by the timeout: {waited:?}"
            );
        });
        let state = lock(&tracker.state);
        assert_eq!((state.epoch, state.waiting), (2, 0));
    }
}
