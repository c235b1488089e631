//! Chunk reads that land in their destination: a plain TCP connection
//! that sends `GET`s and reads each reply's bytes straight into the host
//! cache's file (or a private buffer), hashing them as they arrive.
//!
//! redis-rs reads a reply 8 KiB at a time into its parser's buffer, then
//! copies it into a `Vec`, which the caller copies again into its
//! destination; for a 1 MiB chunk that is 128 reads, two copies and the
//! page faults of two fresh 1 MiB allocations. Here a reply's header is
//! read through a small buffer and its bytes with as few reads as the
//! socket allows, once. Only the `GET` replies of a fetch go this way, on a
//! single server without TLS; everything else (and every read on a cluster
//! or over TLS) goes through redis-rs.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::config::RedisConfig;
use crate::conn::{connect_timeout, encode, forget_if_forked, lock};

/// Bytes read ahead for reply headers (a chunk's bytes bypass it).
const HEADER_BUFFER: usize = 16 << 10;
/// Idle connections kept at most.
const MAX_IDLE: usize = 16;

/// Where and as whom bulk connections connect (no `Debug`: it holds the
/// password).
#[derive(Clone)]
struct Target {
    node: String,
    user: Option<String>,
    password: Option<String>,
    db: i64,
    io_timeout: Duration,
}

/// Idle bulk connections of this process (a forked child starts its own,
/// as [`crate::conn::Pool`] does).
pub(crate) struct BulkPool {
    target: Option<Target>,
    idle: Mutex<(u64, Vec<BulkConn>)>,
}

impl BulkPool {
    /// Bulk reads for `config`: on a single server without TLS; `None`
    /// connections (and redis-rs's path) otherwise.
    pub(crate) fn new(config: &RedisConfig) -> BulkPool {
        let target = (!config.cluster && !config.tls).then(|| Target {
            node: config.nodes[0].clone(),
            user: config.user.clone(),
            password: config.password.clone(),
            db: config.db,
            io_timeout: config.io_timeout,
        });
        BulkPool {
            target,
            idle: Mutex::new((brain_core::fork_mark(), Vec::new())),
        }
    }

    /// A connection, and whether it was idle (it may have been closed by
    /// the server meanwhile), or `None` when this store's fetches go
    /// through redis-rs.
    pub(crate) fn take(&self) -> Option<Result<(BulkConn, bool), RedisError>> {
        let target = self.target.as_ref()?;
        {
            let mut idle = lock(&self.idle);
            forget_if_forked(&mut idle);
            if let Some(conn) = idle.1.pop() {
                return Some(Ok((conn, true)));
            }
        }
        Some(BulkConn::connect(target).map(|conn| (conn, false)))
    }

    /// A new connection.
    pub(crate) fn connect(&self) -> Result<BulkConn, RedisError> {
        let target = self.target.as_ref().expect("bulk reads are on");
        BulkConn::connect(target)
    }

    /// Gives back a connection whose replies were all read.
    pub(crate) fn give(&self, conn: BulkConn) {
        let mut idle = lock(&self.idle);
        if idle.0 == brain_core::fork_mark() && idle.1.len() < MAX_IDLE {
            idle.1.push(conn);
        }
    }

    /// Forgets every idle connection (after a fault).
    pub(crate) fn clear(&self) {
        lock(&self.idle).1.clear();
    }
}

/// One connection, speaking RESP2.
pub(crate) struct BulkConn {
    stream: TcpStream,
    buffer: Box<[u8]>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
}

fn protocol_error(detail: String) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "the server's reply could not be read",
        detail,
    ))
}

impl BulkConn {
    fn connect(target: &Target) -> Result<BulkConn, RedisError> {
        let mut last = None;
        let mut stream = None;
        for addr in target.node.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, connect_timeout(target.io_timeout)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        let stream = match stream {
            Some(stream) => stream,
            None => {
                return Err(last
                    .unwrap_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{} has no address", target.node),
                        )
                    })
                    .into())
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(target.io_timeout))?;
        stream.set_write_timeout(Some(target.io_timeout))?;
        let mut conn = BulkConn {
            stream,
            buffer: vec![0u8; HEADER_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        };
        if let Some(password) = &target.password {
            // As redis-rs logs in (`HELLO 3 AUTH`): a URL with no user is
            // the default user, whose password is then checked even where
            // the one-argument AUTH would be refused (a server with none).
            let user = target.user.as_deref().unwrap_or("default");
            conn.simple(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                .map_err(refused)?;
        }
        if target.db != 0 {
            conn.simple(&[b"SELECT", target.db.to_string().as_bytes()])
                .map_err(refused)?;
        }
        Ok(conn)
    }

    /// Sends one command whose answer is a status (`+OK`).
    fn simple(&mut self, args: &[&[u8]]) -> Result<(), RedisError> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.stream.write_all(&out)?;
        let line = self.line()?;
        match line.first() {
            Some(b'+') => Ok(()),
            Some(b'-') => Err(server_error(&line[1..])),
            _ => Err(protocol_error(format!(
                "expected a status, got {:?}",
                String::from_utf8_lossy(&line)
            ))),
        }
    }

    /// Sends `before`, a `GET` of each key, and `after`, in one write. The
    /// replies come in that order: those of `before` and `after` (commands
    /// that answer an integer) read with [`BulkConn::next_integer`], those
    /// of the `GET`s with [`BulkConn::next_reply`].
    pub(crate) fn send_gets(
        &mut self,
        before: &[redis::Cmd],
        keys: &[String],
        after: &[redis::Cmd],
    ) -> Result<(), RedisError> {
        let mut out = Vec::with_capacity((keys.len() + before.len() + after.len()) * 96);
        for cmd in before {
            cmd.write_packed_command(&mut out);
        }
        for key in keys {
            encode(&mut out, &[b"GET", key.as_bytes()]);
        }
        for cmd in after {
            cmd.write_packed_command(&mut out);
        }
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// The next reply, an integer, or the server's error (`Ok(Err(code))`:
    /// a whole reply, the connection still in step with the server; the
    /// code is the error's first word, `NOPERM` say).
    pub(crate) fn next_integer(&mut self) -> Result<Result<i64, String>, RedisError> {
        let line = self.line()?;
        match line.first() {
            Some(b':') => {
                let text = std::str::from_utf8(&line[1..]).unwrap_or("");
                text.parse::<i64>()
                    .map(Ok)
                    .map_err(|_| protocol_error(format!("an integer of {text:?}")))
            }
            Some(b'-') => {
                let text = String::from_utf8_lossy(&line[1..]);
                Ok(Err(text.split(' ').next().unwrap_or("").to_owned()))
            }
            _ => Err(protocol_error(format!(
                "expected an integer, got {:?}",
                String::from_utf8_lossy(&line[..line.len().min(64)])
            ))),
        }
    }

    /// The next reply's length, `None` for a missing key; its bytes must
    /// then be read whole with [`BulkConn::read_bulk`].
    pub(crate) fn next_reply(&mut self) -> Result<Option<u64>, RedisError> {
        let line = self.line()?;
        match line.first() {
            Some(b'$') => {
                let text = std::str::from_utf8(&line[1..]).unwrap_or("");
                if text == "-1" {
                    return Ok(None);
                }
                text.parse::<u64>()
                    .map(Some)
                    .map_err(|_| protocol_error(format!("a bulk length of {text:?}")))
            }
            Some(b'-') => Err(server_error(&line[1..])),
            _ => Err(protocol_error(format!(
                "expected a string, got {:?}",
                String::from_utf8_lossy(&line[..line.len().min(64)])
            ))),
        }
    }

    /// Fills `dst` with the next bytes of the reply being read; after the
    /// last of them, reads the reply's closing `\r\n`.
    pub(crate) fn read_bulk(&mut self, mut dst: &mut [u8], last: bool) -> Result<(), RedisError> {
        let buffered = (self.end - self.start).min(dst.len());
        dst[..buffered].copy_from_slice(&self.buffer[self.start..self.start + buffered]);
        self.start += buffered;
        dst = &mut dst[buffered..];
        self.stream.read_exact(dst)?;
        if last {
            let mut crlf = [0u8; 2];
            self.read_buffered(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(protocol_error("a string longer than its length".into()));
            }
        }
        Ok(())
    }

    fn read_buffered(&mut self, dst: &mut [u8]) -> io::Result<()> {
        for byte in dst.iter_mut() {
            if self.start == self.end {
                self.fill()?;
            }
            *byte = self.buffer[self.start];
            self.start += 1;
        }
        Ok(())
    }

    fn fill(&mut self) -> io::Result<()> {
        self.start = 0;
        self.end = 0;
        let n = loop {
            // A signal (Python's handlers do not restart system calls).
            match self.stream.read(&mut self.buffer) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.end = n;
        Ok(())
    }

    /// One line, without its `\r\n`.
    fn line(&mut self) -> Result<Vec<u8>, RedisError> {
        let mut line = Vec::new();
        loop {
            if self.start == self.end {
                self.fill()?;
            }
            let unread = &self.buffer[self.start..self.end];
            if let Some(at) = unread.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&unread[..at]);
                self.start += at + 1;
                if line.pop() != Some(b'\r') {
                    return Err(protocol_error("a line without \\r\\n".into()));
                }
                return Ok(line);
            }
            line.extend_from_slice(unread);
            self.start = self.end;
            if line.len() > 4096 {
                return Err(protocol_error("a reply header longer than 4 KiB".into()));
            }
        }
    }
}

/// A refused login or database, as the permission error brain reports for
/// redis-rs's (the server's words kept; they never hold the password).
fn refused(err: RedisError) -> RedisError {
    if err.is_io_error() {
        return err;
    }
    RedisError::from((
        ErrorKind::AuthenticationFailed,
        "the server refused the login or database of a chunk connection",
        err.to_string(),
    ))
}

fn server_error(text: &[u8]) -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::ResponseError),
        "the server answered with an error",
        String::from_utf8_lossy(text).into_owned(),
    ))
}
