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
