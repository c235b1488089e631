//! The Redis backend on real servers: the conformance suite on one server
//! and on a three-node Redis Cluster, each check under a fresh key prefix,
//! with each store's host cache in a temporary directory.

use std::sync::atomic::{AtomicU64, Ordering};
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
    run_on(&cluster.url(), &host)
}

#[test]
fn optimistic_updates_lose_nothing() -> Result<()> {
    use brain::{Payload, RedisOptions, RedisStore};
    let server = RedisServer::start()?;
    let url = fresh(&server.url());
    let store = RedisStore::open(
        &url,
        &RedisOptions {
            cache: CacheSetting::Off,
            ..Default::default()
        },
    )?;
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
