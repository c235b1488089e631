//! Connections to the servers: a pool of synchronous connections (one
//! server, or a cluster), rebuilt after a fork, and the mapping of the
//! client's errors onto brain's.

use std::fmt;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use brain_core::{Error, Location};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Connection, ConnectionLike, RedisError, Value};

use crate::config::RedisConfig;

/// How long to wait for a server to accept a connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take: [`CONNECT_TIMEOUT`], or less under a
/// shorter `timeout=` (the handshake is a wait for the server too).
pub(crate) fn connect_timeout(io_timeout: Duration) -> Duration {
    CONNECT_TIMEOUT.min(io_timeout)
}

/// A connection of `client` whose every wait (connecting, each reply, each
/// write) is bounded by `io_timeout` (the URL's `timeout=`).
fn timed_connection(
    client: &Client,
    io_timeout: Duration,
) -> std::result::Result<Connection, RedisError> {
    let conn = client.get_connection_with_timeout(connect_timeout(io_timeout))?;
    conn.set_read_timeout(Some(io_timeout))?;
    conn.set_write_timeout(Some(io_timeout))?;
    Ok(conn)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread must not take the store down with it; every update
    // under these locks leaves the state consistent before it can panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client library's error as brain's, at `location`; `op` says what
/// brain was doing. The password never appears: the library's messages
/// name hosts, not credentials.
pub(crate) fn redis_error(op: &'static str, location: &Location, err: &RedisError) -> Error {
    let text = err.to_string();
    let kind = err.kind();
    if matches!(
        kind,
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || text.contains("NOPERM")
        // How redis-rs spells a NOPERM reply in its messages.
        || text.contains("NoPerm")
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
    {
        return Error::PermissionDenied {
            op,
            location: location.clone(),
        };
    }
    // The URL's database number past the server's: the URL is what to fix.
    if text.contains("DB index is out of range") {
        return Error::InvalidUrl {
            url: location.to_string(),
            reason: "its database number (redis://HOST:PORT/N) is past the server's `databases` setting (16 unless set): give a smaller one, or leave it out for database 0".into(),
        };
    }
    // Only at the open: later, redis-rs reports a reply of an unexpected
    // type (a key that is not UTF-8, say) as a parse error too.
    if kind == redis::ErrorKind::Parse && op == "open" {
        // Another kind of server on that port (HTTP, say): redis-rs's text
        // quotes the bytes it could not parse, over several lines.
        let first = text.lines().next().unwrap_or_default();
        return Error::io(
            op,
            location.clone(),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server's answer is not Redis's protocol ({first}); is this the address of a Redis or Valkey server, and not of another service?"
                ),
            ),
        );
    }
    let hint = if text.contains("invalid bulk length") {
        // The server's answer to an argument past its proto-max-bulk-len,
        // before it closes the connection.
        "; the server refuses arguments this large (its proto-max-bulk-len): lower the chunk size (?chunk_size= in the URL) below it, or raise proto-max-bulk-len"
    } else if err.is_cluster_error()
        && !matches!(location, Location::Url(url) if url.contains("+cluster://"))
    {
        "; the server is a node of a Redis Cluster: open it with redis+cluster://HOST:PORT (one or more of its nodes)"
    } else if kind == redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown) {
        "; some of the cluster's slots have no node serving them (a node down, a failover under way): try again once the cluster is whole"
    } else if err.is_cluster_error() {
        "; the cluster's slots are moving (a resharding under way, or a failover), and still were when the call was tried again over a few seconds: try again once the cluster is stable"
    } else if err.is_timeout()
        && op == "open"
        && matches!(location, Location::Url(url) if url.starts_with("rediss"))
    {
        // A server without TLS reads the handshake as a command that has
        // not ended, and says nothing.
        "; the server did not answer the TLS handshake in time: does it serve TLS on that port? (a server without TLS is opened with redis://)"
    } else if err.is_timeout() {
        "; the server did not answer in time (a call waits the URL's timeout= seconds, 60 unless given): is it overloaded, paused, or cut off?"
    } else if (err.is_connection_dropped() || err.is_io_error())
        && !err.is_connection_refusal()
        && matches!(
            op,
            "write a chunk to" | "write the last chunks and publish an object in"
        )
    {
        // A server closes the connection on a chunk past its
        // proto-max-bulk-len, often before its answer is read.
        "; is the server running and reachable? brain reconnects on the next call. If it fails again, the chunks may be larger than the server takes (its proto-max-bulk-len): lower the chunk size (?chunk_size= in the URL), or raise proto-max-bulk-len"
    } else if (err.is_connection_refusal() || err.is_io_error()) && op == "open" {
        "; is the server running and reachable? open the store again once it is"
    } else if err.is_connection_refusal() || err.is_connection_dropped() || err.is_io_error() {
        "; is the server running and reachable? brain reconnects on the next call"
    } else if is_loading(err) {
        "; the server is loading its data after a restart: try again in a moment"
    } else if is_out_of_memory(err) {
        "; the server is out of memory (maxmemory): delete objects or give it more memory"
    } else {
        ""
    };
    Error::io(
        op,
        location.clone(),
        io::Error::new(io_kind(err), format!("{text}{hint}")),
    )
}

/// True when the server is still loading its data (after a restart).
fn is_loading(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
    )
}

/// True when the server refused a write for its memory limit.
pub(crate) fn is_out_of_memory(err: &RedisError) -> bool {
    // Whatever kind redis-rs gives it (an unknown code is an Extension), and
    // inside a pipeline's failures, which quote the code apart from the text.
    err.code() == Some("OOM")
        || err
            .to_string()
            .contains("command not allowed when used memory")
}

fn io_kind(err: &RedisError) -> io::ErrorKind {
    if err.is_timeout() {
        io::ErrorKind::TimedOut
    } else if err.is_connection_refusal() {
        io::ErrorKind::ConnectionRefused
    } else if err.is_connection_dropped() {
        io::ErrorKind::ConnectionReset
    } else if is_loading(err)
        || matches!(
            err.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::ClusterDown | redis::ServerErrorKind::TryAgain
            )
        )
    {
        // A server restarting, a cluster failing over: away for a moment,
        // which a wait or a watch rides out.
        io::ErrorKind::ResourceBusy
    } else {
        io::ErrorKind::Other
    }
}

/// One connection: to the one server, or to a cluster (routing each
/// command by its key's slot and following redirections).
pub(crate) enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(crate) fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }

    /// Runs `commands` as one pipeline (on a cluster, grouped by node).
    pub(crate) fn pipeline<T: redis::FromRedisValue>(
        &mut self,
        commands: Vec<redis::Cmd>,
    ) -> std::result::Result<T, RedisError> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                for cmd in commands {
                    pipe.add_command(cmd);
                }
                pipe.query(c)
            }
            Conn::Cluster(c) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for cmd in commands {
                    pipe.add_command(cmd);
                }
                pipe.query(c)
            }
        }
    }

    /// Runs, as one pipeline, a command of each of `raw` (its arguments)
    /// and then `commands`. On one server the request is encoded here, the
    /// arguments copied once, straight into it: redis-rs copies an argument
    /// into its command, then the command into the request, a copy more of
    /// every byte of a chunk. A server's error answer to any of them is the
    /// call's error (the first, as redis-rs reports a pipeline's).
    pub(crate) fn pipeline_raw<T: redis::FromRedisValue>(
        &mut self,
        raw: &[&[&[u8]]],
        commands: &[redis::Cmd],
    ) -> std::result::Result<T, RedisError> {
        let Conn::Single(conn) = self else {
            let mut all: Vec<redis::Cmd> = raw
                .iter()
                .map(|args| {
                    let mut cmd = redis::Cmd::new();
                    for arg in *args {
                        cmd.arg(*arg);
                    }
                    cmd
                })
                .collect();
            all.extend(commands.iter().cloned());
            return self.pipeline(all);
        };
        let size: usize = raw
            .iter()
            .flat_map(|args| args.iter().map(|arg| arg.len() + 16))
            .sum();
        let mut request = Vec::with_capacity(size + 64);
        for args in raw {
            encode(&mut request, args);
        }
        for cmd in commands {
            cmd.write_packed_command(&mut request);
        }
        let replies = conn.req_packed_commands(&request, 0, raw.len() + commands.len())?;
        if let Some(err) = replies.iter().find_map(|reply| match reply {
            redis::Value::ServerError(err) => Some(err.clone()),
            _ => None,
        }) {
            return Err(RedisError::from(err));
        }
        Ok(redis::from_redis_value(redis::Value::Array(replies))?)
    }

    pub(crate) fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

/// A command in RESP2.
pub(crate) fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Every key of one server that matches `pattern`.
pub(crate) fn keys_matching<T: redis::FromRedisValue>(
    conn: &mut redis::Connection,
    pattern: &str,
) -> redis::RedisResult<Vec<T>> {
    redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(conn)?
        .collect()
}

/// How to make connections: the one server's client, or the cluster's.
#[derive(Clone)]
pub(crate) enum Connector {
    /// A server, with the time a reply may take.
    Single(Client, Duration),
    /// A cluster, with the time a reply may take.
    Cluster(ClusterClient, Duration),
}

impl Connector {
    pub(crate) fn new(config: &RedisConfig) -> std::result::Result<Connector, RedisError> {
        let certs = match &config.ca {
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| {
                    RedisError::from(io::Error::new(
                        e.kind(),
                        format!("cannot read the CA file {}: {e}", path.display()),
                    ))
                })?),
            }),
            None => None,
        };
        if config.cluster {
            let urls: Vec<String> = config.nodes.iter().map(|n| config.node_url(n)).collect();
            // redis-rs runs a single command again itself on `TRYAGAIN` and
            // `CLUSTERDOWN`, by default 16 times with waits of a second and
            // more: minutes for a call. Here a few times within about 300 ms;
            // `Pool::run` waits longer between its own runs.
            let mut builder = ClusterClient::builder(urls)
                .connection_timeout(connect_timeout(config.io_timeout))
                .response_timeout(config.io_timeout)
                .retries(4)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .retry_wait_formula(20, 2)
                .use_protocol(redis::ProtocolVersion::RESP3);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            Ok(Connector::Cluster(builder.build()?, config.io_timeout))
        } else {
            let url = config.node_url(&config.nodes[0]);
            let client = match certs {
                Some(certs) => Client::build_with_tls(url, certs)?,
                None => Client::open(url)?,
            };
            Ok(Connector::Single(client, config.io_timeout))
        }
    }

    pub(crate) fn connect(&self) -> std::result::Result<Conn, RedisError> {
        match self {
            Connector::Single(client, io_timeout) => {
                Ok(Conn::Single(timed_connection(client, *io_timeout)?))
            }
            Connector::Cluster(client, io_timeout) => {
                // The builder bounds replies; a write to a node gone
                // silent is bounded here.
                let conn = client.get_connection()?;
                conn.set_write_timeout(Some(*io_timeout))?;
                Ok(Conn::Cluster(Box::new(conn)))
            }
        }
    }

    /// A plain connection to one node given as `host:port`, with the
    /// store's credentials and TLS (for tracking, and for commands that
    /// every primary must run).
    pub(crate) fn node(
        config: &RedisConfig,
        node: &str,
    ) -> std::result::Result<Connection, RedisError> {
        let url = config.node_url(node);
        let client = match &config.ca {
            Some(path) => Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(path)?),
                },
            )?,
            None => Client::open(url)?,
        };
        timed_connection(&client, config.io_timeout)
    }
}

/// Idle connections, for this process only: after a fork the child finds
/// the parent's pid and starts a pool of its own (the parent's sockets are
/// shared with the parent, and a reply read by one would be lost to the other).
pub(crate) struct Pool {
    connector: Connector,
    /// The process they belong to ([`brain_core::fork_mark`]), and each
    /// connection with when it went idle.
    idle: Mutex<(u64, Vec<(Conn, Instant)>)>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &lock(&self.idle).1.len())
            .finish()
    }
}

/// Idle connections kept at most; more are closed when given back.
const MAX_IDLE: usize = 16;
/// A connection idle this long is asked for a `PING` before it is used:
/// the server may have closed it meanwhile (its `timeout` setting, a
/// restart), and a command sent on it would fail where a new connection
/// would not. Shorter idleness costs nothing.
const IDLE_CHECK: Duration = Duration::from_secs(5);

impl Pool {
    pub(crate) fn new(connector: Connector) -> Pool {
        Pool {
            connector,
            idle: Mutex::new((brain_core::fork_mark(), Vec::new())),
        }
    }

    /// A connection (an idle one of this process, or a new one), and
    /// whether it waited in the pool (and may have been closed by the
    /// server meanwhile).
    fn take_noting_idle(&self) -> std::result::Result<(Conn, bool), RedisError> {
        {
            let mut idle = lock(&self.idle);
            forget_if_forked(&mut idle);
            while let Some((mut conn, since)) = idle.1.pop() {
                if !conn.is_open() {
                    continue;
                }
                if since.elapsed() < IDLE_CHECK {
                    return Ok((conn, true));
                }
                // Asked without holding the pool: a round trip.
                drop(idle);
                match redis::cmd("PING").query::<()>(conn.like()) {
                    Ok(()) => return Ok((conn, false)),
                    Err(err) => {
                        // What broke this one broke the others idle as
                        // long: none is asked in its turn (on a silent
                        // server each would wait a whole timeout).
                        lock(&self.idle).1.clear();
                        if err.is_timeout() {
                            return Err(err);
                        }
                        break;
                    }
                }
            }
        }
        Ok((self.connector.connect()?, false))
    }

    /// Gives a connection back after a call that left it in a clean state.
    pub(crate) fn give(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        if idle.0 == brain_core::fork_mark() && conn.is_open() && idle.1.len() < MAX_IDLE {
            idle.1.push((conn, Instant::now()));
        }
    }

    /// Runs `f` on a pooled connection. The connection goes back only if
    /// `f` succeeded or failed with an error the server sent (the
    /// connection is then still in step with the server).
    ///
    /// A connection that waited in the pool and is found closed (the
    /// server restarted, or closed it for its `timeout`, or `CLIENT KILL`)
    /// is replaced and `f` run again, once: the other idle connections are
    /// dropped too, as the same event closed them. A server that dies while
    /// it runs `f` leaves it unknown whether `f` ran: `f` is then run again
    /// on a new connection, so what `f` sends must be safe to run twice:
    /// reads; writes of the same bytes; the publish script, which
    /// recognises its own version; the delete and count scripts, which
    /// find the mark of their first run; a lock, which finds its own token.
    ///
    /// On a cluster, a pipeline that met a slot served elsewhere now (a
    /// failover, a migration) is run again on a new connection, which
    /// reads where the slots are: redis-rs follows a single command's
    /// redirection itself, not those inside a pipeline's replies. The first
    /// time at once (a slot that moved is found where it went); then, while
    /// the slot is still on its way (`ASK` for the keys of a slot being
    /// migrated, `TRYAGAIN`, `CLUSTERDOWN` during a failover), up to
    /// [`CLUSTER_RETRIES`] times more after waits that double from 10 ms
    /// (2.5 s of waiting; with redis-rs's own few runs of a single command
    /// between, under 6 s in all).
    pub(crate) fn run<T>(
        &self,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<T, RedisError>,
    ) -> std::result::Result<T, RedisError> {
        let (mut conn, idle) = self.take_noting_idle()?;
        let mut result = f(&mut conn);
        if idle && result.as_ref().is_err_and(closed) {
            self.clear();
            conn = self.connector.connect()?;
            result = f(&mut conn);
        }
        let mut wait = Duration::from_millis(10);
        for retry in 0..=CLUSTER_RETRIES {
            if !(matches!(conn, Conn::Cluster(_))
                && result.as_ref().is_err_and(RedisError::is_cluster_error))
            {
                break;
            }
            if retry > 0 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            self.clear();
            conn = self.connector.connect()?;
            result = f(&mut conn);
        }
        match &result {
            Ok(_) => self.give(conn),
            Err(err)
                if !err.is_io_error() && !err.is_timeout() && !err.is_unrecoverable_error() =>
            {
                self.give(conn)
            }
            Err(_) => {}
        }
        result
    }

    /// Forgets every idle connection (after a topology change or a fault).
    pub(crate) fn clear(&self) {
        lock(&self.idle).1.clear();
    }
}

/// Runs again, after waits, of a cluster call whose slot is still moving
/// (`Pool::run`), after the first one.
pub(crate) const CLUSTER_RETRIES: u32 = 8;

/// Whether `err` says the connection was closed under the call (not a
/// timeout: a server that stalls is not asked twice).
fn closed(err: &RedisError) -> bool {
    (err.is_io_error() || err.is_connection_dropped()) && !err.is_timeout()
}

/// Empties a pool's idle connections made by another process (this is a
/// forked child: the sockets are the parent's too). They are forgotten,
/// not closed: closing a TLS session would write to the parent's socket.
pub(crate) fn forget_if_forked<T>(idle: &mut (u64, Vec<T>)) {
    let process = brain_core::fork_mark();
    if idle.0 != process {
        for conn in std::mem::take(&mut idle.1) {
            std::mem::forget(conn);
        }
        idle.0 = process;
    }
}

/// A reply's bulk string as bytes (`None` for nil).
pub(crate) fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}
