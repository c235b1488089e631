//! Redis store URLs: which servers, how to reach them, and brain's options.
//!
//! ```text
//! redis://[USER[:PASSWORD]@]HOST[:PORT][/DB][?OPTIONS]
//! rediss://...                                  (TLS)
//! redis+cluster://[USER[:PASSWORD]@]HOST:PORT,HOST:PORT,...[?OPTIONS]
//! rediss+cluster://...                          (TLS)
//! ```
//!
//! Options: `chunk_size=BYTES`, `consistency=tracked|strict`,
//! `lock_ttl=SECONDS`, `timeout=SECONDS` (how long a call waits for a
//! server's reply, 60 by default), `prefix=TEXT`, `ca=PATH` (a PEM file of the
//! certificate authority for TLS), `insecure=1` (TLS without checking the
//! server's certificate; tests only).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use brain_core::{Error, Result};

/// The default size of one chunk: just under 1 MiB, so that a chunk and
/// Redis's string header fit a 1 MiB allocation class of jemalloc.
/// Measured (docs/BENCHMARKS.md): while another client fetched 256 MiB in
/// pipelined batches of eight chunks, a third client's small GETs took
/// 13 to 16 ms at the 99th percentile with 1 MiB chunks, 48 to 54 ms with
/// 4 MiB and 96 to 109 ms with 8 MiB (the server copies a reply on its one
/// thread), and the fetch took no longer.
pub const DEFAULT_CHUNK_SIZE: usize = (1 << 20) - 4096;
/// How long a lock lives unless its holder renews it.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);
/// How long one reply may take unless the URL says (`timeout=`). Chunks are
/// at most a few MiB, so a reply this late means the server or the network
/// is gone.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);

/// How a cached read is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// A cached binding of name to version is trusted while the server's
    /// invalidation stream (RESP3 `CLIENT TRACKING`) is connected and
    /// answering: a warm read costs no round trip.
    #[default]
    Tracked,
    /// Every read asks the server for the name's current version (one
    /// round trip); a cached copy of that version is then read locally.
    Strict,
}

/// A parsed Redis store URL. Its `Display` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `host:port` of each server given (one, or a cluster's seeds).
    pub nodes: Vec<String>,
    /// Whether the servers form a Redis Cluster.
    pub cluster: bool,
    /// Whether to connect with TLS.
    pub tls: bool,
    /// The ACL user, if any.
    pub user: Option<String>,
    /// The password, if any.
    pub(crate) password: Option<String>,
    /// The database number (single server only).
    pub db: i64,
    /// Bytes per chunk of a large object.
    pub chunk_size: usize,
    /// How cached reads are validated.
    pub consistency: Consistency,
    /// How long a lock lives without renewal.
    pub lock_ttl: Duration,
    /// How long a call waits for a server's reply before it fails
    /// (`timeout=`; [`DEFAULT_IO_TIMEOUT`] unless given).
    pub io_timeout: Duration,
    /// The prefix of every key brain makes (default `brain`).
    pub prefix: String,
    /// A PEM file of the certificate authority that signed the servers'
    /// certificates (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// TLS without checking the server's certificate.
    pub insecure: bool,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.to_string())
            .finish_non_exhaustive()
    }
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match userinfo_end(rest).map(|at| (&rest[..at], &rest[at + 1..])) {
        Some((userinfo, hosts_and_tail)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if ["redis", "valkey"]
                    .iter()
                    .any(|kind| scheme.to_ascii_lowercase().contains(kind)) =>
                {
                    // redis://PASSWORD@host: a lone userinfo is the password.
                    "***".to_owned()
                }
                None => userinfo.to_owned(),
            };
            format!("{scheme}://{user}@{hosts_and_tail}")
        }
        None => url.to_owned(),
    }
}

/// The options a URL takes (`?chunk_size=...&prefix=...`).
const OPTIONS: [&str; 9] = [
    "ca",
    "chunk_size",
    "consistency",
    "db",
    "insecure",
    "lock_ttl",
    "prefix",
    "protocol",
    "timeout",
];

/// Where the user and password of the URL after `scheme://` end: at its
/// last '@' before its options (a `?` followed by an option's name and
/// `=`, whose values, such as a file path, may hold an '@'). A password
/// holding an unencoded '/', '?' or '@' ends past them, so it is hidden
/// whole; [`RedisConfig::parse`] then refuses it. One holding '=' (base64's
/// padding) is a password like any other.
fn userinfo_end(rest: &str) -> Option<usize> {
    let options = rest
        .match_indices('?')
        .map(|(at, _)| at)
        .find(|&at| {
            let after = &rest[at + 1..];
            OPTIONS
                .iter()
                .any(|name| after.strip_prefix(name).is_some_and(|v| v.starts_with('=')))
        })
        .unwrap_or(rest.len());
    rest[..options].rfind('@')
}

fn percent_decode(text: &str, url: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(url, "a % in it is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(url, "its user or password is not UTF-8"))
}

/// `value` as a number of seconds within `(least, most)`.
fn seconds(value: &str, (least, most): (f64, f64)) -> Option<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| (least..=most).contains(s))
        .map(Duration::from_secs_f64)
}

impl RedisConfig {
    /// Whether `scheme` (lowercase) is one of the Redis schemes.
    pub fn is_redis_scheme(scheme: &str) -> bool {
        matches!(
            scheme,
            "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "valkey" | "valkeys"
        )
    }

    /// Parses a `redis://`, `rediss://`, `redis+cluster://` or
    /// `rediss+cluster://` URL (`valkey://` and `valkeys://` too).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], saying what is wrong, with the password hidden.
    pub fn parse(url: &str) -> Result<RedisConfig> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(url, "it has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (tls, cluster) = match scheme.as_str() {
            "redis" | "valkey" => (false, false),
            "rediss" | "valkeys" => (true, false),
            "redis+cluster" => (false, true),
            "rediss+cluster" => (true, true),
            other => {
                return Err(invalid(
                    url,
                    format!("{other}:// is not a Redis scheme; use redis://, rediss://, redis+cluster:// or rediss+cluster://"),
                ))
            }
        };
        let (userinfo, rest) = match userinfo_end(rest) {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if userinfo.is_some_and(|info| info.contains(['/', '?', '@'])) {
            return Err(invalid(
                url,
                "its user or password holds a '/', '?' or '@': percent-encode them ('/' as %2F, \
                 '?' as %3F, '@' as %40)",
            ));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, path),
            None => (rest, ""),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (
                    (!user.is_empty())
                        .then(|| percent_decode(user, url))
                        .transpose()?,
                    Some(percent_decode(password, url)?),
                ),
                None => (None, Some(percent_decode(info, url)?)),
            },
        };
        let default_port = 6379;
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(invalid(url, "it names no server (write HOST:PORT)"));
            }
            // An IPv6 address is bracketed: its port follows "]:".
            let port = match host.strip_prefix('[') {
                Some(bracketed) => match bracketed.split_once(']') {
                    None => {
                        return Err(invalid(
                            url,
                            format!("the address {host:?} opens a '[' it does not close (write [ADDRESS]:PORT)"),
                        ))
                    }
                    Some((_, "")) => None,
                    Some((_, after)) => match after.strip_prefix(':') {
                        Some(port) => Some(port),
                        None => {
                            return Err(invalid(
                                url,
                                format!("{after:?} follows the address in brackets (write [ADDRESS]:PORT)"),
                            ))
                        }
                    },
                },
                None => host.rsplit_once(':').map(|(_, port)| port),
            };
            let node = if let Some(port) = port {
                match port.parse::<u16>() {
                    Err(_) => return Err(invalid(url, format!("{port:?} is not a port number"))),
                    Ok(0) => return Err(invalid(url, "port 0 is no server's port")),
                    Ok(_) => {}
                }
                host.to_owned()
            } else {
                format!("{host}:{default_port}")
            };
            nodes.push(node);
        }
        if nodes.len() > 1 && !cluster {
            return Err(invalid(
                url,
                "it names several servers: a Redis Cluster is written redis+cluster://HOST:PORT,HOST:PORT",
            ));
        }
        let path = path.trim_matches('/');
        let db = if path.is_empty() {
            0
        } else if cluster {
            return Err(invalid(url, "a Redis Cluster has only database 0"));
        } else {
            path.parse::<u16>()
                .map(i64::from)
                .map_err(|_| invalid(url, format!("{path:?} is not a database number")))?
        };
        let mut config = RedisConfig {
            nodes,
            cluster,
            tls,
            user,
            password,
            db,
            chunk_size: DEFAULT_CHUNK_SIZE,
            consistency: Consistency::Tracked,
            lock_ttl: DEFAULT_LOCK_TTL,
            io_timeout: DEFAULT_IO_TIMEOUT,
            prefix: "brain".to_owned(),
            ca: None,
            insecure: false,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value, url)?;
            match key {
                "chunk_size" => {
                    let size: usize = value
                        .parse()
                        .ok()
                        .filter(|s| (4096..=(256 << 20)).contains(s))
                        .ok_or_else(|| {
                            invalid(url, format!("chunk_size={value} is not a number of bytes from 4096 to 268435456"))
                        })?;
                    config.chunk_size = size;
                }
                "consistency" => {
                    config.consistency = match value.as_str() {
                        "tracked" => Consistency::Tracked,
                        "strict" => Consistency::Strict,
                        _ => {
                            return Err(invalid(
                                url,
                                format!("consistency={value} is neither tracked nor strict"),
                            ))
                        }
                    }
                }
                "lock_ttl" => {
                    config.lock_ttl = seconds(&value, (1.0, 86_400.0))
                        .ok_or_else(|| invalid(url, format!("lock_ttl={value} is not a number of seconds from 1 to 86400")))?;
                }
                "prefix" => {
                    if value.is_empty() || value.contains(['{', '}']) {
                        return Err(invalid(url, "prefix= must be non-empty text without { or }"));
                    }
                    config.prefix = value;
                }
                "ca" => config.ca = Some(PathBuf::from(value)),
                "insecure" => config.insecure = matches!(value.as_str(), "1" | "true" | "yes"),
                "timeout" => {
                    config.io_timeout = seconds(&value, (0.1, 3600.0))
                        .ok_or_else(|| invalid(url, format!("timeout={value} is not a number of seconds from 0.1 to 3600")))?;
                }
                "protocol" | "db" => {}
                other => {
                    return Err(invalid(
                        url,
                        format!("{other:?} is not an option brain knows (chunk_size, consistency, lock_ttl, timeout, prefix, ca, insecure)"),
                    ))
                }
            }
        }
        if (config.ca.is_some() || config.insecure) && !config.tls {
            return Err(invalid(
                url,
                "ca= and insecure= are TLS options: use rediss://",
            ));
        }
        Ok(config)
    }

    /// The URL of one node, for the client library, with the credentials.
    pub(crate) fn node_url(&self, node: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                format!("{}:{}@", encode(user), encode(password))
            }
            (None, Some(password)) => format!(":{}@", encode(password)),
            (Some(user), None) => format!("{}@", encode(user)),
            (None, None) => String::new(),
        };
        let insecure = if self.insecure { "#insecure" } else { "" };
        format!(
            "{scheme}://{auth}{node}/{}?protocol=resp3{insecure}",
            self.db
        )
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for RedisConfig {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.tls, self.cluster) {
            (false, false) => "redis",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (true, true) => "rediss+cluster",
        };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.password) {
            (Some(user), Some(_)) => write!(f, "{}:***@", encode(user))?,
            (None, Some(_)) => f.write_str(":***@")?,
            (Some(user), None) => write!(f, "{}@", encode(user))?,
            (None, None) => {}
        }
        f.write_str(&self.nodes.join(","))?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let c =
            RedisConfig::parse("redis://alice:s3cr%40t@127.0.0.1:7000/2?chunk_size=65536").unwrap();
        assert_eq!(c.nodes, ["127.0.0.1:7000"]);
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("s3cr@t"));
        assert_eq!(
            (c.db, c.chunk_size, c.tls, c.cluster),
            (2, 65536, false, false)
        );
        assert_eq!(c.to_string(), "redis://alice:***@127.0.0.1:7000/2");
        assert_eq!(c.io_timeout, DEFAULT_IO_TIMEOUT);
        let timed = RedisConfig::parse("redis://h:1?timeout=2.5").unwrap();
        assert_eq!(timed.io_timeout, Duration::from_millis(2500));
        assert!(!format!("{c:?}").contains("s3cr"));
        assert!(c.node_url("127.0.0.1:7000").contains("s3cr%40t"));

        let c = RedisConfig::parse("rediss+cluster://h1:1,h2:2,h3?consistency=strict").unwrap();
        assert_eq!(c.nodes, ["h1:1", "h2:2", "h3:6379"]);
        assert!(c.tls && c.cluster && c.consistency == Consistency::Strict);
        assert_eq!(
            RedisConfig::parse("redis://localhost").unwrap().nodes,
            ["localhost:6379"]
        );
        assert_eq!(
            RedisConfig::parse("redis://:pw@h:1").unwrap().to_string(),
            "redis://:***@h:1"
        );
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (url, needle) in [
            ("redis://u:pw@h:1,h:2", "redis+cluster://"),
            ("redis://u:pw@h:x", "not a port"),
            ("redis://u:pw@h:1/x", "database number"),
            ("redis://u:pw@h:1/-1", "database number"),
            ("redis://u:pw@[::1]:99999", "not a port"),
            ("redis://u:pw@[::1", "does not close"),
            ("redis://u:pw@[::1]x", "follows the address"),
            ("redis://u:pw@h:0", "port 0"),
            ("redis://u:pw@h:1?timeout=0", "timeout=0"),
            ("redis://u:pw@h:1?timeout=x", "seconds from 0.1"),
            ("redis+cluster://u:pw@h:1/3", "only database 0"),
            ("redis://u:pw@h:1?bogus=1", "bogus"),
            ("redis://u:pw@h:1?chunk_size=5", "chunk_size"),
            ("redis://u:pw@h:1?insecure=1", "rediss://"),
            ("redis://u:pw@", "names no server"),
        ] {
            let err = RedisConfig::parse(url).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle), "{url}: {text}");
            assert!(!text.contains("pw"), "{url}: {text}");
        }
        // A password holding '/' or '?' unencoded: hidden all the same, and
        // the error says to encode it.
        for url in [
            "redis://:a/b+cpw@127.0.0.1:6390/0",
            "redis://:hunter2/xpw@h:1",
            "redis://u:pw?x@h:1",
            "redis://pw/x@h:1",
            "redis://u:p@sspw/w@h:1",
        ] {
            let text = RedisConfig::parse(url).unwrap_err().to_string();
            assert!(text.contains("percent-encode"), "{url}: {text}");
            assert!(!text.contains("pw"), "{url}: {text}");
            assert!(!redact(url).contains("pw"), "{url}: {}", redact(url));
        }
        assert_eq!(redact("redis://u:p/w@h:1/0"), "redis://u:***@h:1/0");
        // Base64's padding in a password is hidden with it.
        let c = RedisConfig::parse("redis://:abc+pw==@h:1/0?prefix=x").unwrap();
        assert_eq!(c.password.as_deref(), Some("abc+pw=="));
        assert_eq!(redact("redis://:abc+pw==@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact("redis://u:a/pw==@h:1?ca=x"),
            "redis://u:***@h:1?ca=x"
        );
        // A lone userinfo is the password whatever the scheme's case.
        assert!(!redact("valkey://pw@h:1").contains("pw"));
        assert!(!redact("REDIS://pw@h:1").contains("pw"));
        // Every option the parser takes starts the options, wherever it is.
        let c = RedisConfig::parse("rediss://u:pw@h:1?timeout=5&ca=/a@b/ca.pem").unwrap();
        assert_eq!(c.password.as_deref(), Some("pw"));
        // An '@' in an option's value is no password.
        let c = RedisConfig::parse("redis://h:1?prefix=a@b").unwrap();
        assert_eq!(
            (c.nodes.as_slice(), c.user.as_deref()),
            (&["h:1".to_owned()][..], None)
        );
        assert_eq!(
            redact("redis://h:1?ca=/x@y/ca.pem"),
            "redis://h:1?ca=/x@y/ca.pem"
        );
        assert_eq!(
            redact("redis://u:pw@h:1/0?ca=/x@y/ca.pem"),
            "redis://u:***@h:1/0?ca=/x@y/ca.pem"
        );
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://pw@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
