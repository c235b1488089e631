//! Real Redis servers for tests: `redis-server` processes on free loopback
//! ports (never 6379), each in a temporary directory, killed and removed
//! when dropped (even when the test fails), and a Redis Cluster of three
//! of them made with `redis-cli --cluster create`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Says how to get `redis-server` when it is missing.
fn check_installed() -> Result<()> {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "redis-server is not installed: `make setup` installs it (apt-get install redis-server)"
        ),
    }
}

/// A loopback port that was free a moment ago, never 6379; with
/// `bus`, port + 10000 (a cluster node's bus) was free too.
pub fn free_port(bus: bool) -> Result<u16> {
    for _ in 0..200 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if port == 6379 || (bus && port > 55_000) {
            continue;
        }
        if bus && TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
            continue;
        }
        return Ok(port);
    }
    bail!("found no free loopback port for a Redis server")
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// A standalone server with no persistence.
    pub fn start() -> Result<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// A standalone server with extra `--option value` arguments.
    pub fn start_with(extra: &[&str]) -> Result<RedisServer> {
        RedisServer::spawn(false, extra)
    }

    fn spawn(cluster: bool, extra: &[&str]) -> Result<RedisServer> {
        check_installed()?;
        let mut dir = tempfile::Builder::new()
            .prefix("brain-redis-test")
            .tempdir()
            .context("cannot make a directory for a Redis server")?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port(cluster)?;
            let mut args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--enable-debug-command",
                "local",
                "--proto-max-bulk-len",
                "2gb",
                "--client-query-buffer-limit",
                "2gb",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if cluster {
                args.extend([
                    "--cluster-enabled".to_owned(),
                    "yes".to_owned(),
                    "--cluster-config-file".to_owned(),
                    dir.path()
                        .join(format!("nodes-{port}.conf"))
                        .display()
                        .to_string(),
                    "--cluster-node-timeout".to_owned(),
                    "2000".to_owned(),
                ]);
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                args,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(err) => {
                    last = Some(err);
                    dir = server.take_dir();
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("redis-server did not start")))
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("a temporary directory"),
        )
    }

    /// Starts (or restarts) the process with its arguments, and waits for PING.
    fn launch(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.path().join(format!("log-{}", self.port)))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run redis-server")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "redis-server on port {} exited with {status}: {}",
                        self.port,
                        self.log_tail()
                    );
                }
            }
            if self.ping().is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                bail!("redis-server on port {} did not answer PING", self.port);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("log-{}", self.port)))
            .unwrap_or_default();
        text.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The directory the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A plain connection to this server.
    pub fn connect(&self) -> Result<redis::Connection> {
        let client = redis::Client::open(format!("{}/?protocol=resp3", self.url()))?;
        let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(conn)
    }

    /// Runs one command and returns its reply.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T> {
        let mut conn = self.connect()?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        Ok(cmd.query(&mut conn)?)
    }

    fn ping(&self) -> Result<()> {
        let pong: String = self.cmd(&["PING"])?;
        if pong != "PONG" {
            bail!("PING answered {pong:?}");
        }
        Ok(())
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Starts the process again on the same port (empty: no persistence).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let started = Instant::now();
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                // The port may linger a moment after the kill.
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    thread::sleep(Duration::from_millis(100))
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three primaries on loopback.
#[derive(Debug)]
pub struct RedisCluster {
    /// Its nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and joins them with `redis-cli --cluster create`.
    pub fn start() -> Result<RedisCluster> {
        RedisCluster::start_with(3, 0)
    }

    /// Starts `primaries` × (1 + `replicas`) nodes and joins them.
    pub fn start_with(primaries: usize, replicas: usize) -> Result<RedisCluster> {
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            nodes.push(RedisServer::spawn(true, &[])?);
        }
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// Waits until every node says `cluster_state:ok` and knows all slots.
    pub fn wait_ok(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|n| {
                n.cmd::<String>(&["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                })
            });
            if ok {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the cluster did not reach cluster_state:ok in 30 s");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(RedisServer::addr).collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

/// A directory for one "host"'s shared-memory cache store, under /dev/shm,
/// removed when dropped.
#[derive(Debug)]
pub struct HostDir {
    dir: tempfile::TempDir,
}

impl HostDir {
    /// A fresh host directory.
    pub fn new() -> Result<HostDir> {
        Ok(HostDir {
            dir: tempfile::Builder::new()
                .prefix("brain-redis-host")
                .tempdir_in("/dev/shm")
                .context("cannot make a directory in /dev/shm")?,
        })
    }

    /// The cache store's path.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
}
