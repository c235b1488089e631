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
