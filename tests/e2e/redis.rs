//! The Redis backend on real servers: the conformance suite on one server
//! and on a three-node Redis Cluster, each check under a fresh key prefix,
//! with each store's host cache in a temporary directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use brain::{CacheSetting, ObjectStore, OpenOptions};
use brain_tests::conformance;
use brain_tests::redis_server::{HostDir, RedisCluster, RedisServer};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `url` with a fresh key prefix: an empty store on the same servers.
pub fn fresh(url: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{url}/?prefix=t{}-{n}", std::process::id())
}

/// A store on `url` with no host cache (and so no tracking).
pub(crate) fn uncached(url: &str) -> brain::Result<brain::RedisStore> {
    brain::RedisStore::open(
        url,
        &brain::RedisOptions {
            cache: CacheSetting::Off,
            ..Default::default()
        },
    )
}

fn run_on(url: &str, host: &HostDir) -> Result<()> {
    let open = |capacity: Option<u64>| -> Result<Arc<dyn ObjectStore>> {
        let url = fresh(url);
        let mut options = OpenOptions::new().cache(CacheSetting::Path(host.cache()));
        if capacity.is_some() {
            options = options.capacity(capacity);
        }
        options
            .open(&url)
            .with_context(|| format!("cannot open {url}"))
    };
    conformance::run_all(&open)?;
    conformance::namespace_handle(open(None)?)
}

/// A server that does not answer: the open fails saying what to do, and
/// makes no host cache store.
#[test]
fn an_open_with_no_server_says_so_and_makes_no_cache() -> Result<()> {
    let port = brain_tests::redis_server::free_port(false)?;
    let host = HostDir::new()?;
    let err = brain::RedisStore::open(
        &format!("redis://127.0.0.1:{port}"),
        &brain::RedisOptions {
            cache: CacheSetting::Path(host.cache()),
            ..Default::default()
        },
    )
    .err()
    .context("an open with no server succeeded")?;
    anyhow::ensure!(
        err.to_string().contains("open the store again once it is"),
        "{err}"
    );
    anyhow::ensure!(
        !host.cache().exists(),
        "a cache store was made for a server that did not answer"
    );
    Ok(())
}

/// Another kind of server on the port (an HTTP server, say): the open says
/// the answer is not Redis's, on one line.
#[test]
fn an_open_of_a_server_that_is_not_redis_says_so() -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept()?;
        let mut request = [0u8; 256];
        let _ = conn.read(&mut request)?;
        conn.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n<html>no</html>\n")
    });
    let err = uncached(&format!("redis://127.0.0.1:{port}"))
        .err()
        .context("a store opened on an HTTP server")?;
    let text = err.to_string();
    anyhow::ensure!(
        text.contains("not Redis's protocol") && text.contains("Redis or Valkey server"),
        "{text}"
    );
    anyhow::ensure!(!text.contains('\n'), "{text:?} is not one line");
    let _ = server.join();
    Ok(())
}

/// A chunk past the server's `proto-max-bulk-len` is refused: the error
/// says which setting, and how to fit under it.
#[test]
fn a_chunk_past_the_servers_bulk_limit_says_what_to_lower() -> Result<()> {
    let server = RedisServer::start_with(&["--proto-max-bulk-len", "1mb"])?;
    let url = format!("{}&chunk_size=2097152", fresh(&server.url()));
    let store = uncached(&url)?;
    let err = store
        .put(
            "ns",
            "big",
            &brain_core::Payload::bytes(&vec![5u8; 3 << 20]),
        )
        .err()
        .context("a 2 MiB chunk past a 1 MiB limit")?;
    let text = err.to_string();
    anyhow::ensure!(
        text.contains("proto-max-bulk-len") && text.contains("?chunk_size="),
        "{text}"
    );
    // Within it, the same value is stored.
    let fitting = uncached(&format!("{}&chunk_size=524288", fresh(&server.url())))?;
    fitting.put(
        "ns",
        "big",
        &brain_core::Payload::bytes(&vec![5u8; 3 << 20]),
    )?;
    Ok(())
}

/// Under a `volatile-*` policy the server evicts, when memory runs short,
/// the chunks of a write that is not yet published (they have an expiry
/// until then): the write is a full store, not a lost object, and the name
/// keeps its value.
#[test]
fn a_write_whose_chunks_a_volatile_policy_evicts_is_a_full_store() -> Result<()> {
    let server =
        RedisServer::start_with(&["--maxmemory", "30mb", "--maxmemory-policy", "volatile-lru"])?;
    let store = uncached(&fresh(&server.url()))?;
    let kept = vec![3u8; 8 << 20];
    store.put("ns", "big", &brain_core::Payload::bytes(&kept))?;
    let err = store
        .put(
            "ns",
            "big",
            &brain_core::Payload::bytes(&vec![4u8; 40 << 20]),
        )
        .err()
        .context("40 MiB fit in a server of 30")?;
    anyhow::ensure!(
        matches!(
            err,
            brain_core::Error::StoreFull {
                filesystem_full: true,
                capacity: 31_457_280,
                ..
            }
        ),
        "not a full server: {err:?}"
    );
    anyhow::ensure!(&*store.get("ns", "big")?.context("kept")? == kept.as_slice());
    Ok(())
}

/// A server out of memory (`maxmemory` under `noeviction`) refuses a write:
/// it is a full store, with the server's figures and what to do, the name
/// keeps its value, and the chunks sent are gone.
#[test]
fn a_server_out_of_memory_is_a_full_store() -> Result<()> {
    let server =
        RedisServer::start_with(&["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])?;
    let store = uncached(&fresh(&server.url()))?;
    store.put("ns", "x", &brain_core::Payload::bytes(b"kept"))?;
    let chunked: Vec<u8> = (0..600 << 10).map(|i| (i % 239) as u8).collect();
    store.put("ns", "chunked", &brain_core::Payload::bytes(&chunked))?;
    // Keys, but for the marks that the count's changes leave for a minute
    // (a call run again after its connection closed finds its own).
    let keys = || -> Result<usize> {
        let all: Vec<String> = server.cmd(&["KEYS", "*"])?;
        Ok(all.iter().filter(|k| !k.contains("}:r:")).count())
    };
    let keys_before = keys()?;
    let big = vec![7u8; 16 << 20];
    let err = store
        .put("ns", "x", &brain_core::Payload::bytes(&big))
        .err()
        .context("16 MiB fit in a server of 8")?;
    match &err {
        brain_core::Error::StoreFull {
            filesystem_full: true,
            used,
            capacity: 8_388_608,
            needed,
            replacing,
            ..
        } => {
            anyhow::ensure!(
                *used > 0 && *needed >= 16 << 20 && *replacing > 0,
                "{err:?}"
            )
        }
        other => anyhow::bail!("not a full store: {other:?}"),
    }
    // Larger than the server's whole limit: no delete would make room.
    let text = err.to_string();
    anyhow::ensure!(
        text.contains("larger than the server's memory limit (maxmemory)")
            && !text.contains("delete it first"),
        "{text}"
    );
    anyhow::ensure!(&*store.get("ns", "x")?.context("kept")? == b"kept");
    let keys_after = keys()?;
    anyhow::ensure!(
        keys_after == keys_before,
        "{keys_after} keys, {keys_before} before"
    );
    // A streamed write whose batch of chunks the server refuses part-way
    // refuses what follows (its bytes on the server are not whole), and
    // leaves nothing behind.
    let mut writer = store.writer("ns", "x", brain_core::Codec::Raw, "", None)?;
    let refused = writer.write_payload(&big);
    anyhow::ensure!(
        matches!(refused, Err(brain_core::Error::StoreFull { .. })),
        "{refused:?}"
    );
    for next in [writer.write_payload(b"more").err(), writer.commit().err()] {
        let text = next.map(|e| e.to_string()).unwrap_or_default();
        anyhow::ensure!(text.contains("failed part-way"), "{text:?}");
    }
    anyhow::ensure!(&*store.get("ns", "x")?.context("kept")? == b"kept");
    anyhow::ensure!(keys()? == keys_before, "a refused writer left keys");
    // A write of one batch sends its chunks with the publish script, in one
    // pipeline: the chunks the server refused are the write's error, and
    // those it took are deleted.
    let one_batch = vec![6u8; (7 << 20) + (512 << 10)];
    let err = store
        .put("ns", "x", &brain_core::Payload::bytes(&one_batch))
        .err()
        .context("7.5 MiB fit beside the rest in a server of 8")?;
    anyhow::ensure!(
        matches!(
            err,
            brain_core::Error::StoreFull {
                filesystem_full: true,
                replacing: 1..,
                ..
            }
        ),
        "{err:?}"
    );
    // The memory it gives is the server's without the write's own chunks,
    // which are deleted: about what the server holds now.
    let info: String = server.cmd(&["INFO", "memory"])?;
    let now: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory")?;
    if let brain_core::Error::StoreFull { used, .. } = &err {
        anyhow::ensure!(
            *used < now + (1 << 20),
            "the error says {used} bytes used, the server holds {now}"
        );
    }
    // It would fit alone: the message says so, and how.
    let text = err.to_string();
    anyhow::ensure!(
        text.contains("the server reached its memory limit (maxmemory)")
            && text.contains(
                "delete it first to write the new one in its place (its memory comes back within a second"
            ),
        "{text}"
    );
    anyhow::ensure!(&*store.get("ns", "x")?.context("kept")? == b"kept");
    anyhow::ensure!(
        keys()? == keys_before,
        "a refused one-batch write left keys"
    );
    // A small inline write meets the limit in the publish script.
    let mut names = 0;
    let err = loop {
        match store.put(
            "ns",
            &format!("small{names}"),
            &brain_core::Payload::bytes(&[1; 4000]),
        ) {
            Ok(_) => names += 1,
            Err(err) => break err,
        }
        anyhow::ensure!(names < 100_000, "8 MiB held 100,000 objects of 4 KB");
    };
    let server_full = |err: &brain_core::Error| {
        matches!(
            err,
            brain_core::Error::StoreFull {
                filesystem_full: true,
                ..
            }
        )
    };
    anyhow::ensure!(server_full(&err), "{err:?}");
    // Full to the brim, a large write is refused as it reserves its room.
    for len in [2 << 20, 20 << 20] {
        let err = store
            .put("ns", "large", &brain_core::Payload::bytes(&vec![1; len]))
            .err()
            .context("a write into a full server")?;
        anyhow::ensure!(server_full(&err), "{err:?}");
    }
    // Past its limit, the server refuses a fetch's mark on the version it
    // reads (`SADD` is a write): the read goes on without it.
    let _: String = server.cmd(&["CONFIG", "SET", "maxmemory", "1mb"])?;
    let read = store.get("ns", "chunked")?.context("the chunked value")?;
    anyhow::ensure!(
        *read == chunked[..],
        "the chunked value read is not the one written"
    );
    let leases: Vec<String> = server.cmd(&["KEYS", "*:f:{*"])?;
    anyhow::ensure!(leases.is_empty(), "{leases:?}");
    Ok(())
}

/// The last chunks of a write go up in one pipeline with the publish
/// script, which the server may not have (restarted, or its scripts
/// flushed): the write loads it and publishes.
#[test]
fn a_write_after_the_servers_scripts_were_flushed_publishes() -> Result<()> {
    let server = RedisServer::start()?;
    let store = uncached(&fresh(&server.url()))?;
    let first = vec![1u8; 1 << 20];
    store.put("ns", "v", &brain_core::Payload::bytes(&first))?;
    let _: String = server.cmd(&["SCRIPT", "FLUSH"])?;
    let second: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    store.put("ns", "v", &brain_core::Payload::bytes(&second))?;
    let read = store.get("ns", "v")?.context("the second value")?;
    anyhow::ensure!(*read == second[..], "the value read is not the one written");
    Ok(())
}

/// What a test proxy does with the bytes of one read, in one direction
/// (`true`: to the server), before passing them on: it may wait, and
/// returns whether to pass them on (`false` closes the connection).
type Hook = Arc<dyn Fn(bool, &[u8]) -> bool + Send + Sync>;

/// A TCP proxy to the server on `port`, each connection with its own hook
/// from `hook_for_connection`. Returns the proxy's port.
fn proxy(port: u16, hook_for_connection: impl Fn() -> Hook + Send + 'static) -> Result<u16> {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let proxy_port = listener.local_addr()?.port();
    let pump = |mut from: TcpStream, mut to: TcpStream, up: bool, hook: Hook| {
        let mut buffer = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            if !hook(up, &buffer[..n]) || to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let hook = hook_for_connection();
            let down_hook = hook.clone();
            std::thread::spawn(move || pump(client, server, true, hook));
            std::thread::spawn(move || pump(server2, client2, false, down_hook));
        }
    });
    Ok(proxy_port)
}

/// A TCP proxy to the server on `port`. While `losses` is above zero (each
/// loss takes one off), it forwards a request that holds `EVALSHA`, lets
/// the server run it, and closes the client's connection without
/// forwarding the reply: the reply of a call that ran is lost, and
/// `meanwhile` runs before the client learns it. Returns the proxy's port.
fn reply_losing_proxy(
    port: u16,
    losses: Arc<AtomicU64>,
    meanwhile: Arc<dyn Fn() + Send + Sync>,
) -> Result<u16> {
    proxy(port, move || -> Hook {
        let cut = AtomicBool::new(false);
        let (losses, meanwhile) = (losses.clone(), meanwhile.clone());
        Arc::new(move |up, bytes| {
            if !up {
                if cut.load(Ordering::SeqCst) {
                    meanwhile();
                    return false;
                }
                return true;
            }
            if bytes.windows(7).any(|w| w == b"EVALSHA")
                && losses
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                cut.store(true, Ordering::SeqCst);
            }
            true
        })
    })
}

/// A write whose publish ran but whose reply was lost (the connection
/// closed) is sent again on a new connection: it succeeds, and its chunks
/// stay without expiry (sent again, a chunk's write must not give it back
/// its pending expiry, which would delete the published object's bytes ten
/// minutes later).
#[test]
fn a_write_whose_reply_was_lost_is_sent_again_and_its_chunks_stay() -> Result<()> {
    let server = RedisServer::start()?;
    let losses = Arc::new(AtomicU64::new(0));
    let proxy = reply_losing_proxy(server.port(), losses.clone(), Arc::new(|| ()))?;
    let url = fresh(&format!("redis://127.0.0.1:{proxy}"));
    let store = uncached(&url)?;
    // A connection that waits in the pool: one closed under a call is
    // replaced and the call sent again.
    store.put("ns", "first", &brain_core::Payload::bytes(b"x"))?;
    losses.store(1, Ordering::SeqCst);
    let value: Vec<u8> = (0..(2 << 20) + 7).map(|i| (i % 253) as u8).collect();
    store.put("ns", "v", &brain_core::Payload::bytes(&value))?;
    anyhow::ensure!(
        losses.load(Ordering::SeqCst) == 0,
        "no publish went through the proxy"
    );
    let read = store.get("ns", "v")?.context("the value")?;
    anyhow::ensure!(*read == value[..], "the value read is not the one written");
    let chunks: Vec<String> = server.cmd(&["KEYS", "*:c:*"])?;
    anyhow::ensure!(chunks.len() == 3, "{chunks:?}");
    for chunk in &chunks {
        let ttl: i64 = server.cmd(&["PTTL", chunk])?;
        anyhow::ensure!(ttl == -1, "the published chunk {chunk} expires in {ttl} ms");
    }
    // A write of unknown length reserves its bytes as it goes. Its publish
    // ran, and the replies of both runs were lost: the write fails, and the
    // bytes it reserved stay counted, as the object they went to is there.
    let before = store.usage()?.used;
    let mut writer = store.writer("ns", "w", brain_core::Codec::Raw, "", None)?;
    writer.write_payload(&value)?;
    losses.store(2, Ordering::SeqCst);
    let lost = writer.commit();
    anyhow::ensure!(lost.is_err(), "{lost:?}");
    anyhow::ensure!(&*store.get("ns", "w")?.context("published")? == &value[..]);
    let after = store.usage()?.used;
    anyhow::ensure!(
        after >= before + value.len() as u64,
        "{after} bytes counted, {before} before a write of {}",
        value.len()
    );
    Ok(())
}

/// An inline payload of a few KiB or more goes up as a staged pointer
/// that the publish renames onto the name's: published, turned down, or
/// sent again after its reply was lost, it leaves no staged pointer behind
/// and a pointer that never expires; `gc` removes a staged pointer with no
/// expiry (its writer killed in between) and leaves a pending one.
#[test]
fn a_staged_pointer_is_renamed_into_place_or_removed() -> Result<()> {
    use brain_core::Payload;
    let server = RedisServer::start()?;
    let losses = Arc::new(AtomicU64::new(0));
    let proxy = reply_losing_proxy(server.port(), losses.clone(), Arc::new(|| ()))?;
    let direct_url = fresh(&server.url());
    let query = direct_url.rsplit_once('/').map_or("", |(_, query)| query);
    let store = uncached(&format!("redis://127.0.0.1:{proxy}/{query}"))?;
    let staged = |when: &str| -> Result<()> {
        let left: Vec<String> = server.cmd(&["KEYS", "*:s:*"])?;
        anyhow::ensure!(left.is_empty(), "{when}: staged pointers left: {left:?}");
        let pointers: Vec<String> = server.cmd(&["KEYS", "*:p:*"])?;
        for pointer in &pointers {
            let ttl: i64 = server.cmd(&["PTTL", pointer])?;
            anyhow::ensure!(
                ttl == -1,
                "{when}: the pointer {pointer} expires in {ttl} ms"
            );
        }
        Ok(())
    };
    let value = |seed: u8| -> Vec<u8> { (0..64 << 10).map(|i| (i % 239) as u8 ^ seed).collect() };
    let first = store
        .put("ns", "v", &Payload::bytes(&value(1)))?
        .stored_size;
    staged("a new name")?;
    let stats: String = server.cmd(&["INFO", "commandstats"])?;
    anyhow::ensure!(
        stats.contains("cmdstat_rename:calls=1,"),
        "the payload did not go up as a staged pointer: {stats}"
    );
    let old = store.version("ns", "v")?;
    store.put("ns", "v", &Payload::bytes(&value(2)))?;
    staged("a replace")?;
    anyhow::ensure!(*store.get("ns", "v")?.context("the value")? == value(2)[..]);
    // Expecting a version that was replaced: a conflict, nothing written.
    let refused = store.put_if_version("ns", "v", &Payload::bytes(&value(3)), old.as_deref())?;
    anyhow::ensure!(refused.is_none(), "a stale version was not refused");
    staged("a conflict")?;
    anyhow::ensure!(*store.get("ns", "v")?.context("the value")? == value(2)[..]);
    // The publish ran and its reply was lost: sent again, it is done.
    losses.store(1, Ordering::SeqCst);
    store.put("ns", "v", &Payload::bytes(&value(4)))?;
    anyhow::ensure!(losses.load(Ordering::SeqCst) == 0, "no reply was lost");
    staged("a publish sent again")?;
    anyhow::ensure!(*store.get("ns", "v")?.context("the value")? == value(4)[..]);
    anyhow::ensure!(
        store.usage()?.used == first,
        "the count moved on a same-size replace"
    );
    // A write that keeps the old description: the publish finds one, turns
    // the write down, and the write goes up again with it.
    store.put(
        "ns",
        "d",
        &Payload::bytes(&value(5)).with_description("kept"),
    )?;
    let again = value(6);
    let kept = store.put_shared_keeping_description(
        "ns",
        "d",
        brain_core::Codec::Raw,
        "",
        &[again[..].into()],
    )?;
    anyhow::ensure!(kept.description == "kept", "{kept:?}");
    anyhow::ensure!(*store.get("ns", "d")?.context("the value")? == again[..]);
    staged("a write that kept the description")?;
    // What a writer killed mid-pipeline leaves: a staged pointer with no
    // expiry, which gc removes, and one pending, which it leaves to expire.
    // Keys of another store whose prefix is this one's and `:s` look alike
    // to a pattern, and stay.
    let prefix = query.trim_start_matches("?prefix=");
    let tag = "0123456789abcdef0123456789abcdef";
    let dead = format!("{prefix}:s:{{{tag}}}:dead01");
    let pending = format!("{prefix}:s:{{{tag}}}:beef02");
    let others_pointer = format!("{prefix}:s:p:{{{tag}}}");
    let others_count = format!("{prefix}:s:{{g}}:used");
    let _: i64 = server.cmd(&["HSET", &dead, "v", "dead01", "data", "0123456789"])?;
    let _: i64 = server.cmd(&["HSET", &pending, "v", "beef02", "data", "01234"])?;
    let _: i64 = server.cmd(&["PEXPIRE", &pending, "600000"])?;
    let _: i64 = server.cmd(&["HSET", &others_pointer, "v", "x", "data", "0123"])?;
    let _: String = server.cmd(&["SET", &others_count, "4"])?;
    let report = store.gc()?;
    anyhow::ensure!(
        report.stray_objects == 1 && report.bytes_freed == 10,
        "{report:?}"
    );
    let mut left: Vec<String> = server.cmd(&["KEYS", "*:s:*"])?;
    left.sort();
    let mut expected = vec![pending, others_pointer, others_count];
    expected.sort();
    anyhow::ensure!(left == expected, "{left:?}");
    Ok(())
}

/// A proxy to the server on `port` whose large replies (chunks: a read of
/// more than 4 KiB from the server) wait while `paused`.
fn pausing_proxy(port: u16, paused: Arc<AtomicBool>) -> Result<u16> {
    proxy(port, move || -> Hook {
        let paused = paused.clone();
        Arc::new(move |up, bytes| {
            while !up && bytes.len() > 4096 && paused.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            true
        })
    })
}

/// A replaced or deleted version that no one is fetching leaves the
/// server within a second (a name replaced again and again holds the
/// memory of about one version, not of every version of the last minute);
/// a fetch gives back its hold on the version it read.
#[test]
fn a_replaced_version_no_one_reads_leaves_the_server_within_a_second() -> Result<()> {
    use brain_core::Payload;
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=262144", fresh(&server.url()));
    let store = uncached(&url)?;
    let first: Vec<u8> = (0..(2 << 20) + 5).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = first.iter().map(|b| b ^ 0x5a).collect();
    store.put("ns", "v", &Payload::bytes(&first))?;
    anyhow::ensure!(*store.get("ns", "v")?.context("the value")? == first[..]);
    let leases: Vec<String> = server.cmd(&["KEYS", "*:f:{*"])?;
    anyhow::ensure!(leases.is_empty(), "a finished read holds {leases:?}");
    store.put("ns", "v", &Payload::bytes(&second))?;
    let chunks: Vec<String> = server.cmd(&["KEYS", "*:c:*"])?;
    anyhow::ensure!(chunks.len() == 18, "{} chunks", chunks.len());
    let mut expiring = 0;
    for chunk in &chunks {
        let ttl: i64 = server.cmd(&["PTTL", chunk])?;
        if ttl != -1 {
            anyhow::ensure!(ttl <= 1000, "a replaced chunk stays {ttl} ms");
            expiring += 1;
        }
    }
    anyhow::ensure!(expiring == 9, "{expiring} chunks expire");
    anyhow::ensure!(*store.get("ns", "v")?.context("the value")? == second[..]);
    anyhow::ensure!(store.delete("ns", "v")?);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let chunks: Vec<String> = server.cmd(&["KEYS", "*:c:*"])?;
    anyhow::ensure!(chunks.is_empty(), "chunks stayed: {chunks:?}");
    Ok(())
}

/// A name replaced while another process fetches it: the fetch, begun on
/// the old version, reads it whole (its chunks stay for it).
#[test]
fn a_fetch_in_progress_keeps_the_version_it_reads() -> Result<()> {
    use brain_core::Payload;
    let server = RedisServer::start()?;
    let paused = Arc::new(AtomicBool::new(false));
    let proxy = pausing_proxy(server.port(), paused.clone())?;
    let prefix = format!(
        "?prefix=t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let writer = uncached(&format!("{}/{prefix}", server.url()))?;
    let reader = uncached(&format!("redis://127.0.0.1:{proxy}/{prefix}"))?;
    // Two batches of chunks: the second is asked for after the first came.
    let first: Vec<u8> = (0..(12 << 20) + 3).map(|i| (i % 249) as u8).collect();
    let second: Vec<u8> = first.iter().map(|b| b ^ 0xa5).collect();
    writer.put("ns", "v", &Payload::bytes(&first))?;
    reader.contains("ns", "v")?;
    paused.store(true, Ordering::SeqCst);
    let fetch = std::thread::spawn(move || -> Result<Vec<u8>> {
        Ok(reader.get("ns", "v")?.context("the value")?.to_vec())
    });
    // The fetch has asked for its first batch when its lease is there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.cmd::<Vec<String>>(&["KEYS", "*:f:{*"])?.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the fetch never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    writer.put("ns", "v", &Payload::bytes(&second))?;
    // Past the second a version no one reads is kept.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    paused.store(false, Ordering::SeqCst);
    let read = fetch
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    anyhow::ensure!(
        read == first,
        "the fetch read the new version again instead of finishing the one it began"
    );
    // The last fetch of the replaced version over, its chunks go within a
    // second, not the rest of the minute they were kept for it.
    let chunks: Vec<String> = server.cmd(&["KEYS", "*:c:*"])?;
    let mut expiring = 0;
    for chunk in &chunks {
        let ttl: i64 = server.cmd(&["PTTL", chunk])?;
        if ttl != -1 {
            anyhow::ensure!(ttl <= 1000, "a chunk of the version read stays {ttl} ms");
            expiring += 1;
        }
    }
    anyhow::ensure!(expiring > 0, "no chunk of the replaced version is expiring");
    anyhow::ensure!(*writer.get("ns", "v")?.context("the value")? == second[..]);
    Ok(())
}

/// A proxy to the server on `port` that holds each request holding
/// `needle` for `delay` before passing it on.
fn delaying_proxy(port: u16, needle: &'static [u8], delay: std::time::Duration) -> Result<u16> {
    proxy(port, move || -> Hook {
        Arc::new(move |up, bytes| {
            if up && bytes.windows(needle.len()).any(|w| w == needle) {
                std::thread::sleep(delay);
            }
            true
        })
    })
}

/// `fsck` beside a writer that replaces a name again and again, its check
/// of the chunks held back past the second a replaced version's chunks
/// live: the version it listed is gone by then, which is not reported
/// lost, and the name's new value is neither reported nor deleted.
#[test]
fn fsck_beside_a_replacing_writer_reports_nothing_lost() -> Result<()> {
    use brain_core::Payload;
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=65536", fresh(&server.url()));
    let store = Arc::new(uncached(&url)?);
    let proxy = delaying_proxy(
        server.port(),
        b"STRLEN",
        std::time::Duration::from_millis(1300),
    )?;
    let query = url.rsplit_once('/').map_or("", |(_, query)| query);
    let checker = uncached(&format!("redis://127.0.0.1:{proxy}/{query}"))?;
    let value: Vec<u8> = (0..(1 << 20) + 1).map(|i| (i % 247) as u8).collect();
    store.put("ns", "v", &Payload::bytes(&value))?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, value) = (store.clone(), stop.clone(), value.clone());
        std::thread::spawn(move || -> Result<u64> {
            let mut writes = 0;
            while !stop.load(Ordering::SeqCst) {
                store.put("ns", "v", &Payload::bytes(&value))?;
                writes += 1;
            }
            Ok(writes)
        })
    };
    let checks: Vec<_> = (0..2).map(|_| checker.fsck(true)).collect();
    stop.store(true, Ordering::SeqCst);
    let writes = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    anyhow::ensure!(writes > 0, "no write ran beside fsck");
    for report in checks {
        let report = report?;
        anyhow::ensure!(
            report.corrupt.is_empty() && report.deleted == 0,
            "{:?}",
            report.corrupt
        );
    }
    anyhow::ensure!(*store.get("ns", "v")?.context("the object")? == value[..]);
    Ok(())
}

/// `fsck` counts what a write in progress reserved, and a write published
/// or a name deleted while it checks the objects (its check held back)
/// leaves the count exact: the recount sees that the count changed, and
/// counts again.
#[test]
fn fsck_never_undercounts_a_write_in_progress_or_one_made_beside_it() -> Result<()> {
    use brain_core::{stored_size, Codec, Payload};
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=65536", fresh(&server.url()));
    let store = uncached(&url)?;
    let value: Vec<u8> = (0..(1 << 20) + 1).map(|i| (i % 251) as u8).collect();
    let size = |name: &str| stored_size("ns", name, "", value.len() as u64);
    store.put("ns", "a", &Payload::bytes(&value))?;
    let mut writing = store.writer("ns", "b", Codec::Raw, "", None)?;
    writing.write_payload(&value)?;
    let report = store.fsck(false)?;
    anyhow::ensure!(
        report.used_after == size("a") + size("b"),
        "a write in progress was not counted: {report:?}"
    );
    writing.commit()?;
    anyhow::ensure!(store.usage()?.used == size("a") + size("b"));

    let proxy = delaying_proxy(
        server.port(),
        b"STRLEN",
        std::time::Duration::from_millis(700),
    )?;
    let query = url.rsplit_once('/').map_or("", |(_, query)| query);
    let checker = Arc::new(uncached(&format!("redis://127.0.0.1:{proxy}/{query}"))?);
    // While fsck, having listed the names, waits on its check of the first.
    let beside = |change: &dyn Fn() -> Result<()>, expected: u64| -> Result<()> {
        let checker = checker.clone();
        let check = std::thread::spawn(move || checker.fsck(false));
        std::thread::sleep(std::time::Duration::from_millis(300));
        change()?;
        let report = check
            .join()
            .map_err(|_| anyhow::anyhow!("fsck panicked"))??;
        let used = store.usage()?.used;
        anyhow::ensure!(
            used == expected && report.used_after == expected,
            "count {used} after fsck, expected {expected}: {report:?}"
        );
        Ok(())
    };
    let writing = std::sync::Mutex::new(Some(store.writer("ns", "c", Codec::Raw, "", None)?));
    if let Some(writer) = writing.lock().unwrap().as_mut() {
        writer.write_payload(&value)?;
    }
    let commit = || -> Result<()> {
        let writer = writing.lock().unwrap().take().context("one commit")?;
        writer.commit()?;
        Ok(())
    };
    beside(&commit, size("a") + size("b") + size("c")).context("a write committed")?;
    let delete = || -> Result<()> {
        anyhow::ensure!(store.delete("ns", "a")?);
        Ok(())
    };
    beside(&delete, size("b") + size("c")).context("a name deleted")?;
    Ok(())
}

/// A pointer that names another name (what two names whose keys are the
/// same would meet) is that name's: a read or a delete of this name is a
/// key collision, and the delete leaves it.
#[test]
fn a_delete_never_removes_another_names_object() -> Result<()> {
    use brain_core::{ObjectKey, Payload};
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let store = uncached(&url)?;
    store.put("ns", "x", &Payload::bytes(b"someone else's"))?;
    let prefix = url.rsplit_once("prefix=").context("a prefix")?.1;
    let pointer = format!("{prefix}:p:{{{}}}", ObjectKey::new("ns", "x").to_hex());
    let _: i64 = server.cmd(&["HSET", &pointer, "ns", "other", "name", "y"])?;
    for err in [
        store.get("ns", "x").err().context("a read")?,
        store.delete("ns", "x").err().context("a delete")?,
    ] {
        anyhow::ensure!(
            matches!(
                &err,
                brain_core::Error::KeyCollision { found_namespace, found_name, .. }
                    if found_namespace == "other" && found_name == "y"
            ),
            "{err:?}"
        );
    }
    let left: i64 = server.cmd(&["EXISTS", &pointer])?;
    anyhow::ensure!(left == 1, "the other name's pointer was deleted");
    // A pointer whose fields are damaged is this name's all the same: a
    // delete removes it.
    let _: i64 = server.cmd(&[
        "HSET", &pointer, "ns", "ns", "name", "x", "n", "junk", "ss", "junk", "len", "junk",
    ])?;
    anyhow::ensure!(
        store.delete("ns", "x")?,
        "the damaged pointer was not deleted"
    );
    let left: i64 = server.cmd(&["EXISTS", &pointer])?;
    anyhow::ensure!(left == 0);
    Ok(())
}

/// A write whose publish ran and whose reply was lost, with another
/// writer's publish or delete of the same name before the call is sent
/// again: the call run again reports the write done and leaves the other
/// writer's value, or no value (it came after), whether or not the write
/// expected a version.
#[test]
fn a_publish_sent_again_after_another_writers_leaves_theirs() -> Result<()> {
    use brain_core::Payload;
    let server = RedisServer::start()?;
    let direct_url = fresh(&server.url());
    let other = Arc::new(uncached(&direct_url)?);
    let losses = Arc::new(AtomicU64::new(0));
    let turn = Arc::new(AtomicU64::new(0));
    let meanwhile: Arc<dyn Fn() + Send + Sync> = {
        let (other, turn) = (other.clone(), turn.clone());
        Arc::new(move || {
            let n = turn.fetch_add(1, Ordering::SeqCst);
            if n == 2 {
                other.delete("ns", "v").expect("the other writer's delete");
                return;
            }
            let value = format!("theirs {n}");
            other
                .put("ns", "v", &Payload::bytes(value.as_bytes()))
                .expect("the other writer's put");
        })
    };
    let proxy = reply_losing_proxy(server.port(), losses.clone(), meanwhile)?;
    // The same prefix, through the proxy.
    let query = direct_url.rsplit_once('/').map_or("", |(_, query)| query);
    let store = uncached(&format!("redis://127.0.0.1:{proxy}/{query}"))?;
    store.put("ns", "v", &Payload::bytes(b"first"))?;
    for (round, big) in [(0u64, false), (1, true), (2, true)] {
        let ours: Vec<u8> = match big {
            false => b"ours".to_vec(),
            true => (0..(1 << 20) + 9).map(|i| (i % 241) as u8).collect(),
        };
        // Expecting the current version in round 1, no version otherwise.
        let expected = store.version("ns", "v")?;
        losses.store(1, Ordering::SeqCst);
        match round {
            0 | 2 => {
                store.put("ns", "v", &Payload::bytes(&ours))?;
            }
            _ => {
                let written =
                    store.put_if_version("ns", "v", &Payload::bytes(&ours), expected.as_deref())?;
                anyhow::ensure!(
                    written.is_some(),
                    "the write reported a conflict with a later one"
                );
            }
        }
        anyhow::ensure!(losses.load(Ordering::SeqCst) == 0, "no reply was lost");
        if round == 2 {
            anyhow::ensure!(
                other.get("ns", "v")?.is_none(),
                "the write sent again brought back a name deleted after it"
            );
            continue;
        }
        let now = other.get("ns", "v")?.context("the value")?;
        anyhow::ensure!(
            *now == *format!("theirs {round}").as_bytes(),
            "the write sent again put back its value over a later one: {:?}",
            String::from_utf8_lossy(&now[..now.len().min(16)])
        );
    }
    Ok(())
}

#[test]
fn redis_conforms() -> Result<()> {
    let server = RedisServer::start()?;
    let host = HostDir::new()?;
    run_on(&server.url(), &host)
}

#[test]
fn redis_without_cache_conforms() -> Result<()> {
    let server = RedisServer::start()?;
    let open = |capacity: Option<u64>| -> Result<Arc<dyn ObjectStore>> {
        let url = format!(
            "{}&consistency=strict&chunk_size=65536",
            fresh(&server.url())
        );
        let mut options = OpenOptions::new().cache(CacheSetting::Off);
        if capacity.is_some() {
            options = options.capacity(capacity);
        }
        Ok(options.open(&url)?)
    };
    conformance::run_all(&open)
}

#[test]
fn redis_cluster_conforms() -> Result<()> {
    let cluster = RedisCluster::start()?;
    let host = HostDir::new()?;
    run_on(&cluster.url(), &host)?;
    // One of its nodes opened as a single server (names on other nodes
    // would answer MOVED): refused, saying how to open a cluster.
    let told = uncached(&fresh(&cluster.nodes[0].url()))
        .err()
        .context("a node of a cluster opened as a server")?;
    anyhow::ensure!(
        matches!(told, brain::Error::InvalidUrl { .. })
            && told.to_string().contains("open it with redis+cluster://"),
        "{told:?}"
    );
    Ok(())
}

/// An ACL user that may only read reads chunked objects on a cluster,
/// whose chunks go through redis-rs's pipelines: the servers refuse the
/// fetch's mark on the version it reads (`SADD`, a write), and the read
/// goes on without it. A fetch of the writer's gives its mark back.
#[test]
fn a_read_only_user_reads_chunked_objects_on_a_cluster() -> Result<()> {
    use brain_core::Payload;
    let cluster = RedisCluster::start()?;
    for node in &cluster.nodes {
        let _: String = node.cmd(&[
            "ACL",
            "SETUSER",
            "reader",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@read",
            "+@connection",
            "+cluster",
        ])?;
    }
    let url = format!("{}&chunk_size=262144", fresh(&cluster.url()));
    let writer = uncached(&url)?;
    let values: Vec<Vec<u8>> = (0..4u8)
        .map(|n| (0..(1 << 20) + 3).map(|i| (i % 233) as u8 ^ n).collect())
        .collect();
    for (n, value) in values.iter().enumerate() {
        writer.put("ns", &format!("v{n}"), &Payload::bytes(value))?;
    }
    let reader = uncached(&url.replace("redis+cluster://", "redis+cluster://reader:pw@"))?;
    for _ in 0..2 {
        for (n, value) in values.iter().enumerate() {
            let read = reader.get("ns", &format!("v{n}"))?.context("the value")?;
            anyhow::ensure!(*read == value[..], "v{n} read as another value");
        }
    }
    for (n, value) in values.iter().enumerate() {
        anyhow::ensure!(*writer.get("ns", &format!("v{n}"))?.context("the value")? == value[..]);
    }
    // Several batches: the writer's fetch gives its mark back with a script
    // (`EVAL`, which a cluster pipeline routes by its first key).
    let large: Vec<u8> = (0..(9 << 20) + 1).map(|i| (i % 229) as u8).collect();
    writer.put("ns", "large", &Payload::bytes(&large))?;
    anyhow::ensure!(*writer.get("ns", "large")?.context("the large value")? == large[..]);
    anyhow::ensure!(*reader.get("ns", "large")?.context("the large value")? == large[..]);
    for node in &cluster.nodes {
        let leases: Vec<String> = node.cmd(&["KEYS", "*:f:{*"])?;
        anyhow::ensure!(leases.is_empty(), "reads left their marks: {leases:?}");
    }
    Ok(())
}

#[test]
fn optimistic_updates_lose_nothing() -> Result<()> {
    use brain::Payload;
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let store = uncached(&url)?;
    // Created only if absent; replaced only if still the version read.
    let created = store.put_if_version("ns", "n", &Payload::bytes(b"0"), None)?;
    anyhow::ensure!(created.is_some());
    anyhow::ensure!(store
        .put_if_version("ns", "n", &Payload::bytes(b"x"), None)?
        .is_none());
    let stale = store.version("ns", "n")?;
    store.put("ns", "n", &Payload::bytes(b"0"))?;
    anyhow::ensure!(store
        .put_if_version("ns", "n", &Payload::bytes(b"x"), stale.as_deref())?
        .is_none());
    // Four threads increment 25 times each, retrying on a conflict.
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<u32> {
                    let mut conflicts = 0;
                    for _ in 0..25 {
                        loop {
                            let version = store.version("ns", "n")?;
                            let view = store.get("ns", "n")?.context("set above")?;
                            let n: u32 = std::str::from_utf8(&view)?.parse()?;
                            let next = (n + 1).to_string();
                            match store.put_if_version(
                                "ns",
                                "n",
                                &Payload::bytes(next.as_bytes()),
                                version.as_deref(),
                            )? {
                                Some(_) => break,
                                None => conflicts += 1,
                            }
                        }
                    }
                    Ok(conflicts)
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    let view = store.get("ns", "n")?.context("set above")?;
    anyhow::ensure!(&*view == b"100", "{:?}", std::str::from_utf8(&view));
    Ok(())
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl.
fn certificates(dir: &std::path::Path) -> Result<()> {
    let run = |args: &[&str]| -> Result<()> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("cannot run openssl")?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=brain test CA",
        "-days",
        "1",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ])
}

#[test]
fn tls_and_an_acl_user_through_the_url() -> Result<()> {
    use brain::{Error, ObjectStoreExt, RedisOptions, RedisStore};
    use brain_tests::redis_server::free_port;
    let certs = tempfile::tempdir()?;
    certificates(certs.path())?;
    let file = |name: &str| certs.path().join(name).display().to_string();
    let tls_port = free_port(false)?.to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "no",
        "--user",
        "alice",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
    ])?;
    let host = HostDir::new()?;
    let base = format!("rediss://alice:s3cret-pw@127.0.0.1:{tls_port}");
    let url = format!("{}&ca={}", fresh(&base), file("ca.crt"));
    let store = RedisStore::open(
        &url,
        &RedisOptions {
            cache: CacheSetting::Path(host.cache()),
            ..Default::default()
        },
    )?;
    anyhow::ensure!(!store.url().contains("s3cret"), "{}", store.url());
    let big = brain_tests::make_value(5, 3 << 20);
    store.put("ns", "big", &brain::Payload::bytes(&big))?;
    anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    store.put_text("ns", "small", "over TLS")?;
    anyhow::ensure!(store.get_text("ns", "small")?.as_deref() == Some("over TLS"));
    // The tracking connection comes up over TLS, as the same user.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.tracking() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "tracking over TLS never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Without the CA the server's certificate is refused; insecure=1 skips the check.
    let no_ca = OpenOptions::new()
        .cache(CacheSetting::Off)
        .open(&fresh(&base));
    anyhow::ensure!(
        no_ca.is_err(),
        "a certificate from an unknown CA was accepted"
    );
    let insecure = format!("{}&insecure=1", fresh(&base));
    OpenOptions::new()
        .cache(CacheSetting::Off)
        .open(&insecure)?
        .put_text("ns", "x", "y")?;
    // A wrong password is a permission error that does not show it.
    let wrong = format!(
        "{}&ca={}",
        fresh(&format!(
            "rediss://alice:not-the-password-xyz@127.0.0.1:{tls_port}"
        )),
        file("ca.crt")
    );
    match OpenOptions::new().cache(CacheSetting::Off).open(&wrong) {
        Err(err @ Error::PermissionDenied { .. }) => {
            anyhow::ensure!(!err.to_string().contains("not-the-password"), "{err}")
        }
        other => anyhow::bail!("a wrong password: {other:?}"),
    }
    drop(server);
    Ok(())
}

/// Chunks are read on connections of their own, straight into the host
/// cache or a private buffer: they log in as the URL's user, use its
/// database, and outlive the server closing them while idle.
#[test]
fn chunk_reads_use_the_urls_user_and_database_and_reconnect() -> Result<()> {
    use brain::{RedisOptions, RedisStore};
    let server =
        RedisServer::start_with(&["--user", "alice", "on", ">p@ss word", "~*", "&*", "+@all"])?;
    let url = format!(
        "redis://alice:p%40ss%20word@127.0.0.1:{}/3?prefix=bulk{}&chunk_size=1048576",
        server.port(),
        std::process::id()
    );
    let host = HostDir::new()?;
    for cache in [CacheSetting::Off, CacheSetting::Path(host.cache())] {
        let store = RedisStore::open(
            &url,
            &RedisOptions {
                cache,
                consistency: Some(brain::Consistency::Strict),
            },
        )?;
        let big = brain_tests::make_value(7, (5 << 20) + 3);
        store.put("ns", "big", &brain::Payload::bytes(&big))?;
        anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
        // Nothing of it in database 0: the chunks were found in database 3.
        let in_db0: i64 = server.cmd(&["DBSIZE"])?;
        anyhow::ensure!(in_db0 == 0, "{in_db0} keys in database 0");
        // The server closes the idle chunk connections (the last command
        // of each gave back its fetch's mark on the version, after the
        // GETs); the next read still works.
        let big = brain_tests::make_value(8, (3 << 20) + 5);
        store.put("ns", "big", &brain::Payload::bytes(&big))?;
        let list: String = server.cmd(&["CLIENT", "LIST"])?;
        // Chunk connections speak RESP2; redis-rs's speak RESP3.
        let lines: Vec<&str> = list
            .lines()
            .filter(|line| line.split(' ').any(|f| f == "resp=2"))
            .collect();
        anyhow::ensure!(!lines.is_empty(), "no chunk connection in {list}");
        anyhow::ensure!(
            lines.iter().all(|l| l.split(' ').any(|f| f == "cmd=srem")),
            "a chunk connection's last command was not its fetch's SREM: {lines:?}"
        );
        anyhow::ensure!(
            lines
                .iter()
                .all(|l| l.split(' ').any(|f| f == "user=alice")),
            "a chunk connection did not log in as alice: {lines:?}"
        );
        let readers: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
            .collect();
        for id in readers {
            let _: i64 = server.cmd(&["CLIENT", "KILL", "ID", id])?;
        }
        anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    }
    Ok(())
}

/// A URL with a password and no user logs chunk connections in as the
/// default user, as redis-rs does: with a server that checks the password,
/// and with one that has none (where the one-argument `AUTH` is refused).
#[test]
fn chunk_reads_with_a_password_and_no_user() -> Result<()> {
    use brain::Error;
    let server = RedisServer::start()?;
    let url = |password: &str| {
        format!(
            "redis://:{password}@127.0.0.1:{}/?prefix=pw{}&chunk_size=1048576",
            server.port(),
            std::process::id()
        )
    };
    let big = brain_tests::make_value(9, (2 << 20) + 11);
    let store = uncached(&url("not-needed"))?;
    store.put("ns", "big", &brain::Payload::bytes(&big))?;
    anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    let _: () = server.cmd(&["CONFIG", "SET", "requirepass", "s3cret"])?;
    let store = uncached(&url("s3cret"))?;
    anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    match uncached(&url("wrong")) {
        Err(err @ Error::PermissionDenied { .. }) => {
            let text = err.to_string();
            anyhow::ensure!(
                text.contains("user and password in the URL") && !text.contains("wrong"),
                "{text}"
            );
        }
        other => anyhow::bail!("a wrong password: {other:?}"),
    }
    Ok(())
}

/// A server that closes idle connections (its `timeout` setting) costs a
/// store nothing: a connection idle for a while is checked before use and
/// replaced if the server closed it.
#[test]
fn connections_the_server_closed_while_idle_are_replaced() -> Result<()> {
    use brain::ObjectStoreExt;
    let server = RedisServer::start()?;
    let url = format!("{}&chunk_size=1048576", fresh(&server.url()));
    // No host cache, so no tracking: its heartbeats would keep a pooled
    // connection busy.
    let store = uncached(&url)?;
    // Through a host cache, a fetch asks for its first chunks before the
    // cache's file is ready, then reads them: on a connection closed while
    // idle, it asks again on a new one.
    let host = HostDir::new()?;
    let cached = brain::RedisStore::open(
        &url,
        &brain::RedisOptions {
            cache: CacheSetting::Path(host.cache()),
            consistency: Some(brain::Consistency::Strict),
        },
    )?;
    let big = brain_tests::make_value(4, (2 << 20) + 1);
    store.put("ns", "big", &brain::Payload::bytes(&big))?;
    store.put_text("ns", "small", "before")?;
    anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    anyhow::ensure!(&*cached.get("ns", "big")?.context("set")? == &big[..]);
    let _: () = server.cmd(&["CONFIG", "SET", "timeout", "1"])?;
    // Past the server's timeout and the store's idle check.
    std::thread::sleep(std::time::Duration::from_millis(6500));
    store.put_text("ns", "small", "after")?;
    anyhow::ensure!(store.get_text("ns", "small")?.as_deref() == Some("after"));
    let big = brain_tests::make_value(5, (2 << 20) + 3);
    store.put("ns", "big", &brain::Payload::bytes(&big))?;
    std::thread::sleep(std::time::Duration::from_millis(6500));
    anyhow::ensure!(&*store.get("ns", "big")?.context("set")? == &big[..]);
    anyhow::ensure!(&*cached.get("ns", "big")?.context("set")? == &big[..]);
    Ok(())
}
