//! Several "hosts" on one machine sharing a Redis store: each host is a
//! directory of its own for its shared-memory cache, and each of its
//! processes a `brain-redis-helper` run with that directory. Then faults:
//! a writer killed mid-write, the server killed and restarted, the tracking
//! connection killed, a slot migration during reads, eviction; and a race
//! of writers on two hosts and readers on three.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use brain::{CacheSetting, Error, ObjectStore, OpenOptions, Payload, RedisStore, WatchEvent};
use brain_tests::redis_server::{HostDir, RedisCluster, RedisServer};
use brain_tests::{check_value, exit, make_value};

use crate::redis::{fresh, uncached};

const HELPER: &str = env!("CARGO_BIN_EXE_brain-redis-helper");

/// A helper process, killed if the test gives up on it.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(args: &[&str]) -> Result<Proc> {
        let child = Command::new(HELPER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run brain-redis-helper")?;
        Ok(Proc(Some(child)))
    }

    fn wait(mut self, limit: Duration) -> Result<Output> {
        let mut child = self.0.take().expect("running");
        let started = Instant::now();
        while child.try_wait()?.is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output()?;
                bail!(
                    "brain-redis-helper ran longer than {limit:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the helper to the end; its output when it exits 0.
fn helper(args: &[&str]) -> Result<String> {
    let out = Proc::spawn(args)?.wait(Duration::from_secs(60))?;
    if !out.status.success() {
        bail!(
            "brain-redis-helper {args:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn path(host: &HostDir) -> String {
    host.cache().display().to_string()
}

fn open(url: &str, host: &HostDir) -> Result<Arc<dyn ObjectStore>> {
    Ok(OpenOptions::new()
        .cache(CacheSetting::Path(host.cache()))
        .open(url)?)
}

/// Calls of `cmd` the server has answered since its statistics were reset.
fn calls(server: &RedisServer, cmd: &str) -> Result<u64> {
    let info: String = server.cmd(&["INFO", "commandstats"])?;
    Ok(info
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("cmdstat_{cmd}:calls="))?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0))
}

#[test]
fn a_value_set_on_one_host_is_read_on_the_others_and_replaced() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=1048576", fresh(&server.url()));
    let hosts = [HostDir::new()?, HostDir::new()?, HostDir::new()?];
    let len = (5 << 20) + 123;
    helper(&[
        "put",
        &url,
        &path(&hosts[0]),
        "frames",
        "sales",
        "1",
        &len.to_string(),
    ])?;
    for host in &hosts[1..] {
        ensure!(helper(&["get", &url, &path(host), "frames", "sales"])? == "1");
        // The host cached it: a store in its own directory holds the copy.
        let cache = brain::Store::open(host.cache())?;
        let cached: Vec<String> = cache
            .namespaces()?
            .into_iter()
            .filter(|ns| ns.starts_with(brain_redis_prefix()))
            .collect();
        ensure!(cached.len() == 1, "the host cache holds {cached:?}");
        ensure!(cache.list(&cached[0])?[0].size == len as u64);
    }
    // A replace on one host is seen by the others, through their caches.
    helper(&[
        "put",
        &url,
        &path(&hosts[2]),
        "frames",
        "sales",
        "2",
        &(len + 7).to_string(),
    ])?;
    for host in &hosts[..2] {
        ensure!(helper(&["get", &url, &path(host), "frames", "sales"])? == "2");
    }
    // And by a long-lived process on another host, with no round trip
    // once tracking vouches for its copy.
    let reader = open(&url, &hosts[0])?;
    let first = reader
        .get("frames", "sales")?
        .ok_or_else(|| anyhow!("set above"))?;
    ensure!(check_value(&first) == Ok(2));
    helper(&[
        "put",
        &url,
        &path(&hosts[1]),
        "frames",
        "sales",
        "3",
        "1000",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let view = reader
            .get("frames", "sales")?
            .ok_or_else(|| anyhow!("set above"))?;
        if check_value(&view) == Ok(3) {
            break;
        }
        ensure!(check_value(&view) == Ok(2), "a torn or mixed value");
        ensure!(Instant::now() < deadline, "the replace was not seen in 5 s");
        thread::sleep(Duration::from_millis(10));
    }
    ensure!(check_value(&first) == Ok(2), "a held view changed");
    Ok(())
}

fn brain_redis_prefix() -> &'static str {
    "redis-cache-"
}

#[test]
fn workers_on_one_host_fetch_once() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=1048576", fresh(&server.url()));
    let (writer, workers) = (HostDir::new()?, HostDir::new()?);
    helper(&[
        "put",
        &url,
        &path(&writer),
        "dash",
        "frame",
        "7",
        &((4 << 20) - 10).to_string(),
    ])?;
    let _: () = server.cmd(&["CONFIG", "RESETSTAT"])?;
    let procs: Vec<Proc> = (0..6)
        .map(|_| Proc::spawn(&["get", &url, &path(&workers), "dash", "frame"]))
        .collect::<Result<_>>()?;
    for proc in procs {
        let out = proc.wait(Duration::from_secs(60))?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(String::from_utf8_lossy(&out.stdout).trim() == "7");
    }
    // Four chunks, fetched by one of the six processes.
    ensure!(
        calls(&server, "get")? == 4,
        "chunk GETs: {}",
        calls(&server, "get")?
    );
    ensure!(calls(&server, "hgetall")? == 6);
    Ok(())
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_value_and_chunks_that_expire() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=65536", fresh(&server.url()));
    let host = HostDir::new()?;
    helper(&["put", &url, &path(&host), "ns", "x", "1", "300000"])?;
    // More than a batch of chunks (8 MiB): the first batch is on the server.
    kill_mid_write(&url, "x", 10_000_000)?;
    ensure!(
        helper(&["get", &url, "off", "ns", "x"])? == "1",
        "the old value is intact"
    );
    let mut conn = server.connect()?;
    let chunks: Vec<String> = redis::cmd("KEYS").arg("*:c:*").query(&mut conn)?;
    let store = uncached(&url)?;
    let version = live_version(&store)?;
    let live: Vec<String> = chunks
        .iter()
        .filter(|k| k.contains(&version))
        .cloned()
        .collect();
    let orphans: Vec<&String> = chunks.iter().filter(|k| !live.contains(k)).collect();
    ensure!(orphans.len() >= 10, "the dead writer's chunks: {orphans:?}");
    for key in &orphans {
        let ttl: i64 = redis::cmd("PTTL").arg(key.as_str()).query(&mut conn)?;
        ensure!(
            ttl > 0 && ttl <= 600_000,
            "{key} has no pending expiry ({ttl})"
        );
    }
    // gc leaves chunks that expire by themselves, and removes one that would not.
    let _: () = redis::cmd("PERSIST")
        .arg(orphans[0].as_str())
        .query(&mut conn)?;
    let report = store.gc()?;
    ensure!(
        report.stray_objects == 1 && report.bytes_freed == 65536,
        "{report:?}"
    );
    let left: i64 = redis::cmd("EXISTS")
        .arg(orphans[1].as_str())
        .query(&mut conn)?;
    ensure!(left == 1);
    ensure!(helper(&["get", &url, "off", "ns", "x"])? == "1");
    Ok(())
}

/// Starts a writer of `len` bytes into `ns/name` in another process and
/// kills it (SIGKILL) with all but one byte written.
fn kill_mid_write(url: &str, name: &str, len: u64) -> Result<()> {
    let mut proc = Proc::spawn(&["hold-write", url, "ns", name, &len.to_string()])?;
    let stdout = proc
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .ok_or_else(|| anyhow!("piped"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "{line:?}");
    drop(proc); // SIGKILL
    Ok(())
}

/// The server of `nodes` that holds `key` (on a cluster, the one whose
/// slots include it).
fn node_holding<'a>(nodes: &'a [RedisServer], key: &str) -> Result<&'a RedisServer> {
    nodes
        .iter()
        .find(|node| node.cmd::<String>(&["TYPE", key]).is_ok())
        .ok_or_else(|| anyhow!("no node holds {key}"))
}

/// The store-wide keys of reservations and their leases, and the server
/// that holds them.
struct Reservations<'a> {
    /// The store's key prefix.
    prefix: String,
    held: String,
    leases: String,
    /// A cluster's writes and deletes in flight.
    changing: String,
    node: &'a RedisServer,
}

impl<'a> Reservations<'a> {
    fn of(url: &str, nodes: &'a [RedisServer]) -> Result<Reservations<'a>> {
        let prefix = url
            .split_once("prefix=")
            .and_then(|(_, rest)| rest.split('&').next())
            .ok_or_else(|| anyhow!("no prefix in {url}"))?;
        let leases = format!("{prefix}:{{g}}:leases");
        Ok(Reservations {
            prefix: prefix.to_owned(),
            held: format!("{prefix}:{{g}}:held"),
            changing: format!("{prefix}:{{g}}:changing"),
            node: node_holding(nodes, &leases)?,
            leases,
        })
    }

    /// Each lease's time left, in ms by the server's clock.
    fn time_left(&self) -> Result<Vec<i64>> {
        let now: Vec<i64> = self.node.cmd(&["TIME"])?;
        let now_ms = now[0] * 1000 + now[1] / 1000;
        let leases: Vec<(String, i64)> =
            self.node
                .cmd(&["ZRANGE", &self.leases, "0", "-1", "WITHSCORES"])?;
        Ok(leases.iter().map(|(_, at)| at - now_ms).collect())
    }

    /// The server's clock, in ms.
    fn now_ms(&self) -> Result<i64> {
        let now: Vec<i64> = self.node.cmd(&["TIME"])?;
        Ok(now[0] * 1000 + now[1] / 1000)
    }

    /// Ten minutes pass: every lease lapses.
    fn lapse(&self) -> Result<()> {
        let ids: Vec<String> = self.node.cmd(&["ZRANGE", &self.leases, "0", "-1"])?;
        for id in &ids {
            let _: i64 = self.node.cmd(&["ZADD", &self.leases, "XX", "1", id])?;
        }
        Ok(())
    }

    /// Reservations left (each in both keys).
    fn count(&self) -> Result<(u64, u64)> {
        Ok((
            self.node.cmd(&["HLEN", &self.held])?,
            self.node.cmd(&["ZCARD", &self.leases])?,
        ))
    }
}

/// Writers killed mid-write (gunicorn kills a worker at its timeout this
/// way) hold the bytes they reserved only until their leases lapse, ten
/// minutes after their last reservation; then the next write that needs
/// the room, or `gc`, gives them back, with no `fsck`, and the count is
/// exact again. A live writer whose lease lapsed while it stalled is
/// counted whole when it publishes.
fn dead_writers_give_their_reservations_back(url: &str, nodes: &[RedisServer]) -> Result<()> {
    use brain::stored_size;
    let store = uncached(url)?;
    store.set_capacity(Some(48 << 20))?;
    let held = stored_size("ns", "x", "", 10_000_000);
    for _ in 0..3 {
        kill_mid_write(url, "x", 10_000_000)?;
    }
    let reservations = Reservations::of(url, nodes)?;
    let usage = store.usage()?;
    ensure!(
        usage.used == 3 * held && usage.detail("writes_in_progress") == Some(3 * held),
        "three dead writers' reservations: {usage:?}"
    );
    let left = reservations.time_left()?;
    ensure!(
        left.len() == 3 && left.iter().all(|ms| (590_000..=600_000).contains(ms)),
        "leases of ten minutes: {left:?}"
    );
    // While their leases run, the room is theirs.
    let big = make_value(5, 24_000_000);
    let err = store
        .put("ns", "big", &Payload::bytes(&big))
        .err()
        .context("24 MB fit beside 30 MB reserved in 48 MiB")?;
    ensure!(matches!(err, Error::StoreFull { .. }), "{err:?}");
    reservations.lapse()?;
    // A write that reserves as it goes.
    store.put("ns", "big", &Payload::bytes(&big))?;
    let mut objects = stored_size("ns", "big", "", 24_000_000);
    ensure!(store.usage()?.used == objects, "{:?}", store.usage()?);
    ensure!(reservations.count()? == (0, 0));
    // A write of up to 8 MiB, which a single server reserves in its publish.
    for _ in 0..2 {
        kill_mid_write(url, "x", 10_000_000)?;
    }
    let small = make_value(6, 7_000_000);
    ensure!(store.put("ns", "small", &Payload::bytes(&small)).is_err());
    reservations.lapse()?;
    store.put("ns", "small", &Payload::bytes(&small))?;
    objects += stored_size("ns", "small", "", 7_000_000);
    ensure!(store.usage()?.used == objects, "{:?}", store.usage()?);
    ensure!(reservations.count()? == (0, 0));
    // gc.
    kill_mid_write(url, "x", 10_000_000)?;
    ensure!(store.usage()?.used == objects + held);
    reservations.lapse()?;
    let report = store.gc()?;
    ensure!(report.reservations_reclaimed == held, "{report:?}");
    ensure!(store.usage()?.used == objects, "{:?}", store.usage()?);
    // A writer that stalled past its lease, alive.
    let piece = make_value(7, 1 << 20);
    let mut slow = store.writer("ns", "slow", brain::Codec::Raw, "", None)?;
    slow.write_payload(&piece)?;
    slow.write_payload(&piece)?;
    ensure!(reservations.count()? == (1, 1));
    let usage = store.usage()?;
    let holds = stored_size("ns", "slow", "", 2 << 20);
    ensure!(
        usage.used == objects + holds && usage.detail("writes_in_progress") == Some(holds),
        "a reservation grown twice: {usage:?}"
    );
    reservations.lapse()?;
    store.gc()?;
    ensure!(store.usage()?.used == objects);
    slow.write_payload(&piece)?;
    slow.commit()?;
    objects += stored_size("ns", "slow", "", 3 << 20);
    ensure!(store.usage()?.used == objects, "{:?}", store.usage()?);
    ensure!(reservations.count()? == (0, 0));
    // One whose lease lapses while it stalls, with no gc: its next
    // reservation gives its own back and counts it again, whole.
    let mut stalled = store.writer("ns", "stalled", brain::Codec::Raw, "", None)?;
    stalled.write_payload(&piece)?;
    reservations.lapse()?;
    stalled.write_payload(&piece)?;
    stalled.write_payload(&piece)?;
    stalled.commit()?;
    objects += stored_size("ns", "stalled", "", 3 << 20);
    ensure!(store.usage()?.used == objects, "{:?}", store.usage()?);
    ensure!(reservations.count()? == (0, 0));
    ensure!(*store.get("ns", "big")?.context("big")? == big[..]);
    Ok(())
}

#[test]
fn dead_writers_give_their_reservations_back_on_a_server() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&server.url()));
    dead_writers_give_their_reservations_back(&url, std::slice::from_ref(&server))
}

#[test]
fn dead_writers_give_their_reservations_back_on_a_cluster() -> Result<()> {
    let cluster = RedisCluster::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    dead_writers_give_their_reservations_back(&url, &cluster.nodes)
}

/// On a cluster a write's or delete's script runs on the object's slot,
/// away from the count: each opens a change in flight before its script
/// and closes it after, and `fsck` does not write a recount while one is
/// open (it would miss the object, or count a deleted one that is then
/// given back again); one that stays open past `fsck`'s wait makes it
/// fail as busy, and leaves the count.
#[test]
fn fsck_on_a_cluster_waits_for_writes_and_deletes_in_flight() -> Result<()> {
    let cluster = RedisCluster::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    let store = uncached(&url)?;
    let reservations = Reservations::of(&url, &cluster.nodes)?;
    let node = reservations.node;
    let _: String = node.cmd(&["CONFIG", "RESETSTAT"])?;
    for i in 0..3 {
        store.put("ns", &format!("n{i}"), &Payload::bytes(b"small"))?;
    }
    store.put("ns", "n0", &Payload::bytes(b"replaced"))?;
    for i in 0..2 {
        ensure!(store.delete("ns", &format!("n{i}"))?);
    }
    let (opened, closed) = (calls(node, "zadd")?, calls(node, "zrem")?);
    ensure!(
        (opened, closed) == (6, 6),
        "four writes and two deletes opened {opened} changes and closed {closed}"
    );
    let open: u64 = node.cmd(&["ZCARD", &reservations.changing])?;
    ensure!(open == 0);

    store.put("ns", "big", &Payload::bytes(&make_value(3, 1 << 20)))?;
    let exact = store.fsck(false)?.used_after;
    let used_key = reservations.held.replace(":held", ":used");
    let _: () = node.cmd(&["SET", &used_key, &(exact + 12_345).to_string()])?;
    // A write between its settle and its publish, for 1.5 s.
    let until = (reservations.now_ms()? + 1500).to_string();
    let _: i64 = node.cmd(&["ZADD", &reservations.changing, &until, "a-write"])?;
    let started = Instant::now();
    let report = store.fsck(false)?;
    ensure!(
        started.elapsed() >= Duration::from_millis(1400),
        "fsck wrote its recount with a write in flight, after {:?}",
        started.elapsed()
    );
    ensure!(report.used_after == exact && store.usage()?.used == exact);
    // One that stays open.
    let until = (reservations.now_ms()? + 60_000).to_string();
    let _: i64 = node.cmd(&["ZADD", &reservations.changing, &until, "stuck"])?;
    let _: () = node.cmd(&["SET", &used_key, "1"])?;
    let err = store
        .fsck(false)
        .err()
        .context("fsck beside a stuck change")?;
    ensure!(matches!(err, Error::Busy { .. }), "{err:?}");
    ensure!(store.usage()?.used == 1, "the count was left as it was");
    Ok(())
}

/// A cluster's delete goes on when the server of the count is out of
/// memory (deleting is how a user makes room): the change it would open
/// is refused, so the bytes stay counted until `fsck`, never too few.
#[test]
fn a_cluster_delete_goes_on_when_the_counts_server_is_full() -> Result<()> {
    use brain::{stored_size, ObjectKey};
    let cluster = RedisCluster::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    let store = uncached(&url)?;
    let reservations = Reservations::of(&url, &cluster.nodes)?;
    let prefix = &reservations.prefix;
    // A name whose pointer lives on another server than the count.
    let name = (0..100)
        .map(|i| format!("n{i}"))
        .find(|name| {
            let pointer = format!("{prefix}:p:{{{}}}", ObjectKey::new("ns", name).to_hex());
            node_holding(&cluster.nodes, &pointer)
                .is_ok_and(|node| node.port() != reservations.node.port())
        })
        .context("a name on another server")?;
    store.put("ns", &name, &Payload::bytes(b"to be deleted"))?;
    let counted = store.usage()?.used;
    ensure!(counted == stored_size("ns", &name, "", 13));
    set_maxmemory(reservations.node, "1")?;
    let deleted = store.delete("ns", &name);
    set_maxmemory(reservations.node, "0")?;
    ensure!(deleted? && store.get("ns", &name)?.is_none(), "not deleted");
    ensure!(store.usage()?.used == counted, "{:?}", store.usage()?);
    ensure!(store.fsck(false)?.used_after == 0);
    Ok(())
}

/// On a cluster a write's catalog entry goes up in one round trip with its
/// settle (the object counted, on the count's server): when the catalog's
/// server refuses the entry, the write fails and gives back what the settle
/// counted, no more and no less.
#[test]
fn a_cluster_write_whose_catalog_entry_is_refused_gives_its_count_back() -> Result<()> {
    use brain::format::namespace_dir_name;
    use brain::stored_size;
    let cluster = RedisCluster::start()?;
    let url = fresh(&cluster.url());
    let store = uncached(&url)?;
    let reservations = Reservations::of(&url, &cluster.nodes)?;
    let prefix = &reservations.prefix;
    // A namespace whose catalog lives on another server than the count.
    let (namespace, catalog_node) = (0..100)
        .map(|i| format!("ns{i}"))
        .find_map(|namespace| {
            let catalog = format!("{prefix}:n:{{{}}}", namespace_dir_name(&namespace));
            let node = node_holding(&cluster.nodes, &catalog).ok()?;
            (node.port() != reservations.node.port()).then_some((namespace, node))
        })
        .context("a namespace whose catalog is on another server")?;
    store.put(&namespace, "kept", &Payload::bytes(b"already here"))?;
    let counted = store.usage()?.used;
    ensure!(counted == stored_size(&namespace, "kept", "", 12));
    set_maxmemory(catalog_node, "1")?;
    let refused = store.put(&namespace, "new", &Payload::bytes(&[7u8; 5000]));
    set_maxmemory(catalog_node, "0")?;
    let err = refused
        .err()
        .context("the catalog's server refused the entry")?;
    ensure!(matches!(err, Error::StoreFull { .. }), "{err}");
    ensure!(store.get(&namespace, "new")?.is_none(), "written");
    ensure!(store.usage()?.used == counted, "{:?}", store.usage()?);
    let open: Vec<String> =
        reservations
            .node
            .cmd(&["ZRANGE", &reservations.changing, "0", "-1"])?;
    ensure!(open.is_empty(), "changes left open: {open:?}");
    ensure!(store.fsck(false)?.used_after == counted);
    Ok(())
}

/// Sets a server's `maxmemory` (`"0"`: no limit).
fn set_maxmemory(node: &RedisServer, limit: &str) -> Result<()> {
    let _: String = node.cmd(&["CONFIG", "SET", "maxmemory", limit])?;
    Ok(())
}

fn live_version(store: &RedisStore) -> Result<String> {
    store
        .version("ns", "x")?
        .ok_or_else(|| anyhow!("ns/x was set"))
}

/// The error of a call made while the server is down says so.
fn is_down(err: &Error) -> bool {
    matches!(err, Error::Io { .. }) && err.to_string().contains("is the server running")
}

#[test]
fn the_server_killed_and_restarted_during_gets_and_sets() -> Result<()> {
    let mut server = RedisServer::start()?;
    let url = format!("{}&chunk_size=1048576", fresh(&server.url()));
    let (a, b) = (HostDir::new()?, HostDir::new()?);
    let writer = open(&url, &a)?;
    let reader = open(&url, &b)?;
    let value = make_value(1, 24 << 20);
    writer.put("ns", "big", &Payload::bytes(&value))?;
    ensure!(check_value(&reader.get("ns", "big")?.ok_or_else(|| anyhow!("set"))?) == Ok(1));

    // Killed during a stream of cold gets (another host's) and sets.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let getter = {
        let stop = stop.clone();
        let done = done.clone();
        let refused = refused.clone();
        let url = url.clone();
        thread::spawn(move || -> Result<(u64, u64)> {
            let host = HostDir::new()?;
            let cold = OpenOptions::new()
                .cache(CacheSetting::Path(host.cache()))
                .consistency(brain::Consistency::Strict)
                .open(&url)?;
            let (mut ok, mut down) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                match cold.get("ns", "big") {
                    Ok(Some(view)) => {
                        check_value(&view).map_err(|e| anyhow!("a torn read: {e}"))?;
                        ok += 1;
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(None) => {}
                    Err(err) if is_down(&err) => {
                        down += 1;
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(err) => bail!("not a clear error: {err}"),
                }
                cold.clear_cache();
            }
            Ok((ok, down))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::SeqCst) < 2 {
        ensure!(
            Instant::now() < deadline && !getter.is_finished(),
            "no cold get finished"
        );
        thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    match writer.put("ns", "big", &Payload::bytes(&make_value(2, 24 << 20))) {
        Err(err) if is_down(&err) => {}
        other => bail!("a set with the server down: {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.load(Ordering::SeqCst) == 0 {
        ensure!(
            Instant::now() < deadline && !getter.is_finished(),
            "no get was refused"
        );
        thread::sleep(Duration::from_millis(20));
    }
    server.restart()?;
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (ok, down) = getter
        .join()
        .map_err(|_| anyhow!("the getter panicked"))??;
    ensure!(ok > 0 && down > 0, "gets: {ok} read, {down} refused");

    // The server came back empty: no host may still serve the old copy.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reader.get("ns", "big")?.is_some() {
        ensure!(
            Instant::now() < deadline,
            "a cached copy outlived the server's data"
        );
        thread::sleep(Duration::from_millis(50));
    }
    writer.put("ns", "big", &Payload::bytes(&make_value(3, 3 << 20)))?;
    ensure!(check_value(&reader.get("ns", "big")?.ok_or_else(|| anyhow!("set"))?) == Ok(3));
    Ok(())
}

/// Connections that waited in a pool are closed by a server restart, its
/// `timeout` or `CLIENT KILL`: the first call after it works all the same
/// (it failed, in every process, once per idle connection).
#[test]
fn the_first_calls_after_a_restart_or_a_kill_of_idle_connections_work() -> Result<()> {
    let mut server = RedisServer::start()?;
    let url = fresh(&server.url());
    let host = HostDir::new()?;
    let cached = open(&url, &host)?;
    let uncached = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    let small = make_value(1, 64);
    let large = make_value(2, 3 << 20);
    for round in 0..3 {
        for (store, which) in [(&cached, "cached"), (&uncached, "uncached")] {
            // Connections into the pool, several at once.
            thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| -> Result<()> {
                        store.put("ns", "small", &Payload::bytes(&small))?;
                        store.get("ns", "small")?;
                        Ok(())
                    });
                }
            });
            if round == 1 {
                server.cmd::<()>(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])?;
            } else {
                server.restart()?;
            }
            // First a delete (after a restart) or a large write (after a
            // kill), which change the usage count: not run twice, they meet
            // an open connection instead.
            if round == 1 {
                store
                    .put("ns", "large", &Payload::bytes(&large))
                    .with_context(|| format!("round {round}, {which}: the first large set"))?;
            } else {
                ensure!(
                    !store
                        .delete("ns", "small")
                        .with_context(|| format!("round {round}, {which}: the first delete"))?,
                    "round {round}, {which}: the delete found what a restart emptied"
                );
            }
            for (name, value) in [("small", &small), ("large", &large)] {
                store
                    .put("ns", name, &Payload::bytes(value))
                    .with_context(|| format!("round {round}, {which}: the first set of {name}"))?;
                let view = store
                    .get("ns", name)
                    .with_context(|| format!("round {round}, {which}: the first get of {name}"))?
                    .ok_or_else(|| anyhow!("{name} is gone"))?;
                ensure!(
                    &*view == value.as_slice(),
                    "round {round}, {which}: {name} changed"
                );
            }
            ensure!(store.contains("ns", "small")?, "round {round}, {which}");
        }
    }
    Ok(())
}

#[test]
fn handles_of_one_process_share_one_tracking_connection() -> Result<()> {
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let (a, b, c) = (HostDir::new()?, HostDir::new()?, HostDir::new()?);
    let writer = open(&url, &a)?;
    let options = |host: &HostDir| brain::RedisOptions {
        cache: CacheSetting::Path(host.cache()),
        ..Default::default()
    };
    let first = RedisStore::open(&url, &options(&b))?;
    let second = RedisStore::open(&url, &options(&c))?;
    writer.put("ns", "x", &Payload::bytes(&make_value(1, 2 << 20)))?;
    for reader in [&first, &second] {
        ensure!(check_value(&reader.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) == Ok(1));
        wait_tracking(reader)?;
        reader.get("ns", "x")?;
    }
    let ids = tracking_clients(&server)?;
    ensure!(
        ids.len() == 1,
        "two handles in one process opened {} tracking connections",
        ids.len()
    );
    // Both are told of a change through the one connection: their next
    // warm reads see it (a missed invalidation would serve the old value).
    writer.put("ns", "x", &Payload::bytes(&make_value(2, 2 << 20)))?;
    for reader in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while check_value(&reader.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) != Ok(2) {
            ensure!(Instant::now() < deadline, "a handle kept the old value");
            thread::sleep(Duration::from_millis(10));
        }
    }
    // The connection outlives the handle that opened it.
    drop(first);
    thread::sleep(Duration::from_millis(300));
    ensure!(
        tracking_clients(&server)? == ids,
        "the tracking connection changed when a handle went"
    );
    writer.put("ns", "x", &Payload::bytes(&make_value(3, 2 << 20)))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while check_value(&second.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) != Ok(3) {
        ensure!(Instant::now() < deadline, "the handle left was not told");
        thread::sleep(Duration::from_millis(10));
    }
    ensure!(second.tracking(), "tracking stopped with the first handle");
    // Ten warm reads ask the server nothing. A tracking connection that
    // looks silent for a moment (a loaded machine) makes every copy
    // unvalidated, as it must: then the next round is asked again.
    let mut asked = Vec::new();
    for _ in 0..5 {
        let _: () = server.cmd(&["CONFIG", "RESETSTAT"])?;
        for _ in 0..10 {
            ensure!(check_value(&second.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) == Ok(3));
        }
        asked.push(calls(&server, "hgetall")?);
        if asked.last() == Some(&0) {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    ensure!(
        asked.last() == Some(&0),
        "warm reads asked the server, in every round: {asked:?}"
    );
    // ...and ends, with its threads, soon after the last one.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tracking_clients(&server)?.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "tracking outlived its handles by 5 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn a_killed_tracking_connection_makes_the_next_read_revalidate() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=1048576", fresh(&server.url()));
    let (a, b) = (HostDir::new()?, HostDir::new()?);
    let (writer, reader) = warm_reader(&server, &url, (&a, &b), 2 << 20)?;
    // Kill the tracking connection (flag t in CLIENT LIST) and, in the same
    // transaction, delete the object behind brain's back: its invalidation
    // goes to a dead connection, so only the revalidation after the fault
    // can tell the reader.
    let ids = tracking_clients(&server)?;
    ensure!(ids.len() == 1, "tracking connections: {ids:?}");
    let mut conn = server.connect()?;
    let _: () = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .ignore()
        .cmd("DEL")
        .arg(pointer_key(&url, "ns", "x"))
        .ignore()
        .query(&mut conn)?;
    // Stale for at most the heartbeat's limit (3 s), then revalidated.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reader.get("ns", "x")?.is_some() {
        ensure!(
            Instant::now() < deadline,
            "still served 5 s after the tracking connection died"
        );
        thread::sleep(Duration::from_millis(20));
    }
    writer.put("ns", "x", &Payload::bytes(&make_value(2, 2 << 20)))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match reader.get("ns", "x")? {
            Some(view) if check_value(&view) == Ok(2) => break,
            _ => ensure!(
                Instant::now() < deadline,
                "the new value was not seen in 5 s"
            ),
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn reads_go_on_through_a_slot_migration() -> Result<()> {
    let cluster = RedisCluster::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    let host = HostDir::new()?;
    let store = OpenOptions::new()
        .cache(CacheSetting::Path(host.cache()))
        .consistency(brain::Consistency::Strict)
        .open(&url)?;
    for i in 0..6u64 {
        store.put(
            "ns",
            &format!("x{i}"),
            &Payload::bytes(&make_value(i, 1 << 20)),
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let url = url.clone();
        thread::spawn(move || -> Result<(u64, u64)> {
            let store = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                for i in 0..6u64 {
                    match store.get("ns", &format!("x{i}")) {
                        Ok(Some(view)) => {
                            ensure!(check_value(&view) == Ok(i), "a wrong or torn value");
                            ok += 1;
                        }
                        Ok(None) => bail!("x{i} vanished during the migration"),
                        Err(err) => {
                            eprintln!("during the migration: {err}");
                            errors += 1
                        }
                    }
                }
            }
            Ok((ok, errors))
        })
    };
    // A writer of names spread over every slot, new ones and replaced.
    let writer = {
        let stop = stop.clone();
        let url = url.clone();
        thread::spawn(move || -> Result<(u64, u64, Vec<u64>)> {
            let store = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
            let mut last = vec![u64::MAX; 40];
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let slot = (n % 40) as usize;
                let value = make_value(1000 + n, (1 << 20) + 11);
                match store.put("ns", &format!("w{slot}"), &Payload::bytes(&value)) {
                    Ok(_) => {
                        last[slot] = 1000 + n;
                        ok += 1;
                    }
                    Err(err) => {
                        eprintln!("a write during the migration: {err}");
                        errors += 1;
                    }
                }
                n += 1;
            }
            Ok((ok, errors, last))
        })
    };
    thread::sleep(Duration::from_millis(200));
    // Move every slot of the first node to the second, then back.
    let ids: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.cmd::<String>(&["CLUSTER", "MYID"]))
        .collect::<Result<_>>()?;
    // Half of the first node's slots to the second and back: an emptied
    // primary would become a replica.
    for (from, to) in [(0, 1), (1, 0)] {
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &cluster.nodes[0].addr()])
            .args(["--cluster-from", &ids[from], "--cluster-to", &ids[to]])
            .args(["--cluster-slots", "2730", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "reshard: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok()?;
    }
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (ok, errors) = reader
        .join()
        .map_err(|_| anyhow!("the reader panicked"))??;
    ensure!(ok > 0, "no read finished");
    ensure!(errors == 0, "{errors} failed reads against {ok}");
    let (written, write_errors, last) = writer
        .join()
        .map_err(|_| anyhow!("the writer panicked"))??;
    ensure!(written > 0, "no write finished");
    ensure!(
        write_errors == 0,
        "{write_errors} failed writes against {written}"
    );
    for (slot, &seed) in last.iter().enumerate() {
        if seed != u64::MAX {
            let view = store
                .get("ns", &format!("w{slot}"))?
                .ok_or_else(|| anyhow!("w{slot} was written"))?;
            ensure!(
                check_value(&view) == Ok(seed),
                "w{slot} holds another value"
            );
        }
    }
    for i in 0..6u64 {
        ensure!(
            check_value(
                &store
                    .get("ns", &format!("x{i}"))?
                    .ok_or_else(|| anyhow!("set"))?
            ) == Ok(i)
        );
    }
    Ok(())
}

#[test]
fn an_evicting_server_gives_object_lost_not_garbage() -> Result<()> {
    let server =
        RedisServer::start_with(&["--maxmemory", "24mb", "--maxmemory-policy", "allkeys-lru"])?;
    let url = format!("{}&chunk_size=262144", fresh(&server.url()));
    let store = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    // A put may lose its own chunks to eviction before it publishes: it then
    // fails as a full server, which it is (the store.rs `evicted_for_room`).
    let put = |name: &str, value: Vec<u8>| match store.put("ns", name, &Payload::bytes(&value)) {
        Ok(_) => Ok(()),
        Err(Error::StoreFull {
            filesystem_full: true,
            ..
        }) => Ok(()),
        Err(err) => Err(err),
    };
    put("victim", make_value(1, 4 << 20))?;
    let mut conn = server.connect()?;
    let victim_pointer = pointer_key(&url, "ns", "victim");
    // Keep writing until the victim's pointer is there but a chunk is not.
    for i in 0..200u64 {
        put(&format!("filler{i}"), make_value(i + 10, 2 << 20))?;
        // Keeps the pointer recently used but not the chunks (a get would
        // read them too, and LRU would then evict only the fillers).
        store.metadata("ns", "victim")?;
        let pointer: i64 = redis::cmd("EXISTS").arg(&victim_pointer).query(&mut conn)?;
        if pointer == 0 {
            // LRU is sampled: the pointer went too, and with it the name.
            // Start again with a new victim.
            put("victim", make_value(1, 4 << 20))?;
            continue;
        }
        let chunks: Vec<String> = redis::cmd("KEYS").arg("*:c:*").query(&mut conn)?;
        let victim_chunks = chunks
            .iter()
            .filter(|k| k.contains(&brain::ObjectKey::new("ns", "victim").to_hex()))
            .count();
        if victim_chunks < 16 {
            match store.get("ns", "victim") {
                Err(Error::Corrupt { reason, .. }) => {
                    ensure!(
                        reason.contains("object lost") && reason.contains("allkeys-lru"),
                        "{reason}"
                    );
                    return Ok(());
                }
                // Evicted whole between the check and the read (any command
                // may evict): the name is gone, which None says, provided
                // the pointer really is.
                Ok(None) => {
                    let pointer: i64 =
                        redis::cmd("EXISTS").arg(&victim_pointer).query(&mut conn)?;
                    ensure!(pointer == 0, "a read of a stored object gave None");
                    put("victim", make_value(1, 4 << 20))?;
                }
                other => bail!("a read of an evicted object: {other:?}"),
            }
        }
    }
    bail!("the server never evicted part of the victim")
}

/// The names of the copies in a host's cache.
fn cached_names(host: &HostDir) -> Result<Vec<String>> {
    let local = brain::Store::builder().path(host.cache()).open()?;
    Ok(local
        .namespaces()?
        .into_iter()
        .filter(|ns| brain::is_host_cache_namespace(ns))
        .map(|ns| local.names(&ns))
        .collect::<brain::Result<Vec<_>>>()?
        .concat())
}

/// A host's copy of a name the server has no more goes: when this host
/// deletes it, when a read of it finds it gone, and for names no read asks
/// for again, when `gc` runs.
#[test]
fn copies_of_names_the_server_lost_leave_the_host_cache() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&consistency=strict", fresh(&server.url()));
    let (a, b) = (HostDir::new()?, HostDir::new()?);
    let (on_a, on_b) = (open(&url, &a)?, open(&url, &b)?);
    for (i, name) in ["x", "y", "z"].into_iter().enumerate() {
        on_a.put("ns", name, &Payload::bytes(&make_value(i as u64, 1 << 20)))?;
        ensure!(on_a.get("ns", name)?.is_some() && on_b.get("ns", name)?.is_some());
    }
    ensure!(cached_names(&a)?.len() == 3 && cached_names(&b)?.len() == 3);
    // Deleted on host a: a's copy goes with it.
    ensure!(on_a.delete("ns", "x")?);
    ensure!(
        !cached_names(&a)?.contains(&"x".to_string()),
        "{:?}",
        cached_names(&a)?
    );
    // Host b reads it and finds it gone: b's copy goes.
    ensure!(on_b.get("ns", "x")?.is_none());
    ensure!(
        !cached_names(&b)?.contains(&"x".to_string()),
        "{:?}",
        cached_names(&b)?
    );
    // Deleted, and replaced, behind host b's back: its gc drops both copies.
    ensure!(on_a.delete("ns", "y")?);
    on_a.put("ns", "z", &Payload::bytes(&make_value(9, 1 << 20)))?;
    let report = on_b.gc()?;
    ensure!(
        report.stray_objects == 2 && report.bytes_freed > 2 << 20,
        "{report:?}"
    );
    ensure!(cached_names(&b)?.is_empty(), "{:?}", cached_names(&b)?);
    ensure!(check_value(&on_b.get("ns", "z")?.ok_or_else(|| anyhow!("z"))?) == Ok(9));
    Ok(())
}

#[test]
fn a_full_cache_drops_its_oldest_copies_and_nothing_of_the_users() -> Result<()> {
    const MIB: usize = 1 << 20;
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let host = HostDir::new()?;
    // The host's store, with a capacity, also holds the user's objects: one
    // in a namespace that only starts like a cache's.
    let local = brain::Store::builder()
        .path(host.cache())
        .capacity(10 * MIB as u64)
        .open()?;
    local.put(
        "redis-cache-sales",
        "q1",
        &Payload::bytes(&make_value(1, MIB)),
    )?;
    local.put("docs", "d", &Payload::bytes(&make_value(2, MIB)))?;
    let writer = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    let reader = OpenOptions::new()
        .cache(CacheSetting::Path(host.cache()))
        .open(&format!("{url}&consistency=strict"))?;
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let value = make_value(10 + i as u64, 3 * MIB);
        writer.put("ns", name, &Payload::bytes(&value))?;
        let got = reader
            .get("ns", name)?
            .ok_or_else(|| anyhow!("{name} gone"))?;
        ensure!(
            got.bytes() == value.as_slice(),
            "{name}: not the value written"
        );
        drop(got);
    }
    let cached: Vec<String> = local
        .namespaces()?
        .into_iter()
        .filter(|ns| brain::is_host_cache_namespace(ns))
        .map(|ns| local.names(&ns))
        .collect::<brain::Result<Vec<_>>>()?
        .concat();
    ensure!(
        cached.contains(&"c".to_string()),
        "the last copy is not cached: {cached:?}"
    );
    ensure!(
        !cached.contains(&"a".to_string()),
        "the oldest copy was kept: {cached:?}"
    );
    ensure!(
        local.get("redis-cache-sales", "q1")?.is_some() && local.get("docs", "d")?.is_some(),
        "making room for cached copies deleted the user's objects"
    );
    // Larger than the whole cache: read into private memory, whole.
    let large = make_value(20, 12 * MIB);
    writer.put("ns", "large", &Payload::bytes(&large))?;
    let got = reader
        .get("ns", "large")?
        .ok_or_else(|| anyhow!("large gone"))?;
    ensure!(
        got.bytes() == large.as_slice(),
        "large: not the value written"
    );
    ensure!(
        local.get("redis-cache-sales", "q1")?.is_some() && local.get("docs", "d")?.is_some(),
        "an object larger than the cache deleted the user's objects"
    );
    // Nor the other copies: no room made would have been enough.
    ensure!(
        cached_names(&host)?.contains(&"c".to_string()),
        "an object larger than the cache dropped the copies: {:?}",
        cached_names(&host)?
    );
    Ok(())
}

/// A wait, and a watch stream, ride a server restart out: the change made
/// after it comes as the value waited for, and as an event, not an error
/// on the way.
#[test]
fn a_wait_and_a_watch_ride_out_a_server_restart() -> Result<()> {
    let mut server = RedisServer::start()?;
    let url = fresh(&server.url());
    let host = HostDir::new()?;
    let store = OpenOptions::new()
        .cache(CacheSetting::Path(host.cache()))
        .open_redis(&url)?;
    // Tracking starts with the first read.
    ensure!(store.get("ns", "late")?.is_none());
    wait_tracking(&store)?;
    let waiter = {
        let store = store.clone();
        thread::spawn(move || store.wait_for("ns", "late", Duration::from_secs(30)))
    };
    let mut watcher = store.watch(Some("ns"))?;
    let watching = thread::spawn(move || {
        let event = watcher.next_event(Some(Duration::from_secs(30)));
        (watcher, event)
    });
    thread::sleep(Duration::from_millis(300));
    server.kill();
    thread::sleep(Duration::from_millis(1500));
    ensure!(
        !waiter.is_finished() && !watching.is_finished(),
        "the wait or the watch ended when the server went away"
    );
    server.restart()?;
    let writer = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    let value = make_value(5, 1000);
    writer.put("ns", "late", &Payload::bytes(&value))?;
    let got = waiter
        .join()
        .map_err(|_| anyhow!("the waiter panicked"))??;
    ensure!(got.bytes() == value.as_slice(), "not the value written");
    let (mut watcher, event) = watching
        .join()
        .map_err(|_| anyhow!("the watcher panicked"))?;
    ensure!(
        event?
            == Some(WatchEvent::Set {
                namespace: "ns".into(),
                name: "late".into()
            }),
        "the watch did not see the write made after the restart"
    );

    // A server still away when the wait ends is what the wait says.
    server.kill();
    let started = Instant::now();
    match store.wait_for("ns", "never", Duration::from_secs(1)) {
        Err(Error::Io { source, .. }) => ensure!(
            source.to_string().contains("is the server running"),
            "{source}"
        ),
        other => bail!("a wait with the server away gave {other:?}"),
    }
    ensure!(
        started.elapsed() >= Duration::from_secs(1),
        "the wait gave up early"
    );
    // And what the watch says, once its time is up.
    let mut said = None;
    while said.is_none() && started.elapsed() < Duration::from_secs(10) {
        match watcher.next_event(Some(Duration::from_secs(1))) {
            Ok(None) => {}
            Ok(Some(event)) => bail!("an event with the server away: {event:?}"),
            Err(err) => said = Some(err),
        }
    }
    let said = said.ok_or_else(|| anyhow!("10 s with the server away and no error"))?;
    ensure!(said.to_string().contains("is the server running"), "{said}");
    Ok(())
}

/// A write under a lock that expired while its holder was paused fails,
/// as `LockLost`, and leaves what the lock's next holder wrote: an update
/// is never lost to a holder that came back late.
#[test]
fn a_write_under_a_lock_that_expired_fails_and_loses_no_update() -> Result<()> {
    use rustix::process::{kill_process, Pid, Signal};
    use std::io::Write;

    let server = RedisServer::start()?;
    let url = format!("{}&lock_ttl=1", fresh(&server.url()));
    let mut holder = Proc::spawn(&["lock-then-write", &url, "ns", "n"])?;
    let child = holder.0.as_mut().expect("running");
    let mut said = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut said)?;
    ensure!(said.trim() == "locked", "the holder said {said:?}");
    let pid = Pid::from_child(child);
    kill_process(pid, Signal::STOP)?;
    // Its lock lapses unrenewed; the next holder takes it and writes.
    let other = uncached(&url)?;
    let lock = other.lock("ns", "n", Some(Duration::from_secs(10)))?;
    other.put("ns", "n", &Payload::bytes(b"from the next holder"))?;
    drop(lock);
    kill_process(pid, Signal::CONT)?;
    writeln!(child.stdin.as_mut().expect("piped"), "write")?;
    let out = holder.wait(Duration::from_secs(30))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(exit::LOCK_LOST),
        "the late holder's write: {:?}, {stderr}",
        out.status
    );
    ensure!(
        stderr.contains("expired before the change was published"),
        "{stderr}"
    );
    let kept = other.get("ns", "n")?.ok_or_else(|| anyhow!("gone"))?;
    ensure!(
        kept.bytes() == b"from the next holder",
        "the update was lost"
    );
    Ok(())
}

#[test]
fn a_chunk_changed_on_the_server_is_reported_never_returned() -> Result<()> {
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let host = HostDir::new()?;
    let writer = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    let cached = OpenOptions::new()
        .cache(CacheSetting::Path(host.cache()))
        .open(&format!("{url}&consistency=strict"))?;
    let uncached = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    let mut conn = server.connect()?;
    // One checksum chunk, which the host cache checks with its own checksum
    // as the bytes land; exactly one; and several, hashed as they are read.
    for (name, len) in [
        ("one", 300_000),
        ("exact", 1 << 20),
        ("several", (5 << 20) + 3),
    ] {
        let value = make_value(len as u64, len);
        writer.put("ns", name, &Payload::bytes(&value))?;
        let hex = brain::ObjectKey::new("ns", name).to_hex();
        let chunks: Vec<String> = redis::cmd("KEYS").arg("*:c:*").query(&mut conn)?;
        let chunk = chunks
            .into_iter()
            .find(|k| k.contains(&hex))
            .ok_or_else(|| anyhow!("no chunk of {name}"))?;
        let flip = |conn: &mut redis::Connection| -> Result<()> {
            let byte: Vec<u8> = redis::cmd("GETRANGE")
                .arg(&chunk)
                .arg(100)
                .arg(100)
                .query(conn)?;
            redis::cmd("SETRANGE")
                .arg(&chunk)
                .arg(100)
                .arg(&[byte[0] ^ 1][..])
                .exec(conn)?;
            Ok(())
        };
        flip(&mut conn)?;
        for (store, which) in [(&cached, "through the host cache"), (&uncached, "uncached")] {
            match store.get("ns", name) {
                Err(Error::Corrupt { reason, .. }) => {
                    ensure!(reason.contains("checksum"), "{name} {which}: {reason}")
                }
                other => bail!("{name} {which}: a changed chunk gave {other:?}"),
            }
        }
        let cache = brain::Store::open(host.cache())?;
        for namespace in cache.namespaces()? {
            ensure!(
                cache.get(&namespace, name)?.is_none(),
                "{name}: a copy that failed its check was cached"
            );
        }
        flip(&mut conn)?;
        let got = cached
            .get("ns", name)?
            .ok_or_else(|| anyhow!("{name} gone"))?;
        ensure!(
            got.bytes() == value.as_slice(),
            "{name}: not the value written"
        );
    }
    Ok(())
}

/// A server gone silent (paused, or behind a network path that holds
/// everything) leaves no copy trusted past the heartbeat's limit: its
/// heartbeats stop coming back, and a read then asks the server, though the
/// thread that sends them waits on it for a whole I/O timeout.
#[test]
fn a_silent_server_leaves_no_copy_trusted_past_the_heartbeats_limit() -> Result<()> {
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let (a, b) = (HostDir::new()?, HostDir::new()?);
    let (_writer, reader) = warm_reader(&server, &url, (&a, &b), 1 << 20)?;
    // Every client's commands wait for 10 s: heartbeats too.
    let paused = Instant::now();
    let _: () = server.cmd(&["CLIENT", "PAUSE", "10000", "ALL"])?;
    // Heard from lately: the copy is still served, without the server.
    let started = Instant::now();
    ensure!(check_value(&reader.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) == Ok(1));
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "a warm read waited for the paused server"
    );
    // Past the limit (3 s), a read asks the server: it waits for the
    // pause to end, or gives up saying why (a new connection's handshake
    // waits 5 s), never answers from the copy.
    thread::sleep((paused + Duration::from_secs(4)).saturating_duration_since(Instant::now()));
    match reader.get("ns", "x") {
        Ok(view) => {
            ensure!(check_value(&view.ok_or_else(|| anyhow!("set"))?) == Ok(1));
            ensure!(
                calls(&server, "hgetall")? >= 1,
                "4 s into the server's silence, a read was answered from its copy"
            );
        }
        Err(err) => ensure!(err.is_server_away(), "{err}"),
    }
    // Heard from again, warm reads need no server.
    wait_tracking(&reader)?;
    Ok(())
}

/// A call waits for a silent server as long as the URL's `timeout=` says,
/// then fails saying so; the store works again once the server answers.
#[test]
fn a_call_waits_for_a_silent_server_as_long_as_the_urls_timeout() -> Result<()> {
    let server = RedisServer::start()?;
    let url = format!("{}&consistency=strict&timeout=1", fresh(&server.url()));
    let store = uncached(&url)?;
    store.put("ns", "x", &Payload::bytes(b"before"))?;
    let _: () = server.cmd(&["CLIENT", "PAUSE", "4000", "ALL"])?;
    let started = Instant::now();
    let err = store.get("ns", "x").map(drop).unwrap_err();
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(3500),
        "waited {waited:?} for a timeout of 1 s: {err}"
    );
    ensure!(err.to_string().contains("did not answer in time"), "{err}");
    // The pause over, the same store answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.get("ns", "x") {
            Ok(Some(view)) if view.bytes() == b"before" => break,
            other => ensure!(
                Instant::now() < deadline,
                "no answer 10 s after the pause: {other:?}"
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A writer on host `a` and a reader on host `b` whose copy of `ns`/`x`
/// (a value of `len` bytes, seed 1) is warm: read again with no round trip.
fn warm_reader(
    server: &RedisServer,
    url: &str,
    (a, b): (&HostDir, &HostDir),
    len: usize,
) -> Result<(Arc<dyn ObjectStore>, RedisStore)> {
    let writer = open(url, a)?;
    let reader = RedisStore::open(
        url,
        &brain::RedisOptions {
            cache: CacheSetting::Path(b.cache()),
            ..Default::default()
        },
    )?;
    writer.put("ns", "x", &Payload::bytes(&make_value(1, len)))?;
    ensure!(check_value(&reader.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) == Ok(1));
    wait_tracking(&reader)?;
    // Read once with tracking up; then warm reads cost no round trip.
    reader.get("ns", "x")?;
    let _: () = server.cmd(&["CONFIG", "RESETSTAT"])?;
    for _ in 0..10 {
        ensure!(check_value(&reader.get("ns", "x")?.ok_or_else(|| anyhow!("set"))?) == Ok(1));
    }
    ensure!(
        calls(server, "hgetall")? == 0,
        "warm reads asked the server"
    );
    Ok((writer, reader))
}

/// The ids of the server's tracking connections (flag `t` in `CLIENT LIST`).
fn tracking_clients(server: &RedisServer) -> Result<Vec<String>> {
    let list: String = server.cmd(&["CLIENT", "LIST"])?;
    Ok(list
        .lines()
        .filter(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("flags="))
                .is_some_and(|flags| flags.contains('t'))
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect())
}

/// Waits until a store's tracking connections are up.
fn wait_tracking(store: &RedisStore) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.tracking() {
        ensure!(Instant::now() < deadline, "tracking never came up");
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn pointer_key(url: &str, namespace: &str, name: &str) -> String {
    let prefix = url
        .split("prefix=")
        .nth(1)
        .and_then(|p| p.split('&').next())
        .unwrap_or("brain");
    format!(
        "{prefix}:p:{{{}}}",
        brain::ObjectKey::new(namespace, name).to_hex()
    )
}

#[test]
fn race() -> Result<()> {
    let secs: u64 = std::env::var("BRAIN_REDIS_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&server.url()));
    let hosts = [HostDir::new()?, HostDir::new()?, HostDir::new()?];
    let secs_text = secs.to_string();
    let writers: Vec<Proc> = (0..2)
        .map(|w| {
            Proc::spawn(&[
                "race-write",
                &url,
                &path(&hosts[w]),
                &(w + 1).to_string(),
                &secs_text,
            ])
        })
        .collect::<Result<_>>()?;
    let readers: Vec<Proc> = (0..3)
        .map(|h| Proc::spawn(&["race-read", &url, &path(&hosts[h]), &secs_text]))
        .collect::<Result<_>>()?;
    let limit = Duration::from_secs(secs + 60);
    let mut written = 0;
    for proc in writers {
        let out = proc.wait(limit)?;
        ensure!(
            out.status.success(),
            "a writer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        written += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>()?;
    }
    let mut read = 0;
    for proc in readers {
        let out = proc.wait(limit)?;
        if out.status.code() == Some(exit::MISMATCH) {
            bail!(
                "a reader saw a torn or mixed value: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ensure!(
            out.status.success(),
            "a reader: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut fields = text.split_whitespace();
        read += fields.next().unwrap_or("0").parse::<u64>()?;
    }
    eprintln!("race: {secs} s, {written} writes, {read} checked reads");
    ensure!(written > 20 && read > 20, "{written} writes, {read} reads");
    Ok(())
}

#[test]
fn reads_go_on_through_a_failover() -> Result<()> {
    let cluster = RedisCluster::start_with(3, 1)?;
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    let store = OpenOptions::new().cache(CacheSetting::Off).open(&url)?;
    for i in 0..6u64 {
        store.put(
            "ns",
            &format!("x{i}"),
            &Payload::bytes(&make_value(i, 1 << 20)),
        )?;
    }
    // Let the replicas catch up before one of them takes over.
    for node in &cluster.nodes {
        let _: i64 = node.cmd(&["WAIT", "1", "5000"]).unwrap_or(0);
    }
    let replica = cluster
        .nodes
        .iter()
        .find(|n| {
            n.cmd::<String>(&["INFO", "replication"])
                .is_ok_and(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
        })
        .ok_or_else(|| anyhow!("no replica is in sync"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let url = url.clone();
        thread::spawn(move || -> Result<(u64, u64)> {
            let host = HostDir::new()?;
            let store = open(&url, &host)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                for i in 0..6u64 {
                    match store.get("ns", &format!("x{i}")) {
                        Ok(Some(view)) => {
                            ensure!(check_value(&view) == Ok(i), "a wrong or torn value");
                            ok += 1;
                        }
                        Ok(None) => bail!("x{i} vanished during the failover"),
                        Err(err) => {
                            eprintln!("during the failover: {err}");
                            errors += 1;
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            }
            Ok((ok, errors))
        })
    };
    thread::sleep(Duration::from_millis(300));
    let _: String = replica.cmd(&["CLUSTER", "FAILOVER"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica
        .cmd::<String>(&["INFO", "replication"])
        .is_ok_and(|i| i.contains("role:master"))
    {
        ensure!(
            Instant::now() < deadline,
            "the failover did not happen in 30 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    cluster.wait_ok()?;
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (ok, errors) = reader
        .join()
        .map_err(|_| anyhow!("the reader panicked"))??;
    ensure!(ok > 0, "no read finished");
    eprintln!("failover: {ok} reads, {errors} failed");
    // A write to the shard that failed over, on connections that still map
    // its slots to the old primary: its last chunks and the publish go in
    // one pipeline, which meets MOVED and is run again on a new connection.
    let moved = (0..1000)
        .map(|i| format!("moved{i}"))
        .find(|name| {
            replica
                .cmd::<i64>(&["EXISTS", &pointer_key(&url, "ns", name)])
                .is_ok()
        })
        .ok_or_else(|| anyhow!("no name lives on the shard that failed over"))?;
    store.put("ns", &moved, &Payload::bytes(&make_value(8, 2 << 20)))?;
    ensure!(check_value(&store.get("ns", &moved)?.ok_or_else(|| anyhow!("set"))?) == Ok(8));
    // Writes and reads go on against the new primary.
    store.put("ns", "after", &Payload::bytes(&make_value(9, 2 << 20)))?;
    ensure!(check_value(&store.get("ns", "after")?.ok_or_else(|| anyhow!("set"))?) == Ok(9));
    for i in 0..6u64 {
        ensure!(
            check_value(
                &store
                    .get("ns", &format!("x{i}"))?
                    .ok_or_else(|| anyhow!("set"))?
            ) == Ok(i)
        );
    }
    Ok(())
}
