//! Store URLs: which backend, and where.

use std::fmt;
use std::path::PathBuf;

use brain_core::{default_store_path, Error, Result};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// A shared-memory store: its directory, or `None` for the default one
    /// (`$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`).
    Shm(Option<PathBuf>),
    /// The in-memory store of this name in this process.
    Memory(String),
    /// A Redis or Redis Cluster store: the URL as given (`redis://`,
    /// `rediss://`, `redis+cluster://`, `rediss+cluster://`). Shown
    /// without its password.
    Redis(String),
}

impl StoreUrl {
    /// The shared-memory store at `path`, made absolute against the
    /// current directory now: a handle reopened (or sent to another
    /// process) after a `chdir` finds the same store, not a new empty one.
    pub fn shm(path: impl Into<PathBuf>) -> StoreUrl {
        let path = path.into();
        // A store URL given as a path stays as given, for the store's open
        // to refuse (as an absolute path it would name a directory).
        if path
            .to_str()
            .and_then(brain_core::store_url_scheme)
            .is_some()
        {
            return StoreUrl::Shm(Some(path));
        }
        StoreUrl::absolute_shm(path)
    }

    /// The shared-memory store at `path` made absolute, whatever it looks like.
    fn absolute_shm(path: PathBuf) -> StoreUrl {
        StoreUrl::Shm(Some(std::path::absolute(&path).unwrap_or(path)))
    }

    /// Parses a store URL: a path, `shm://PATH`, `shm://`, `memory://NAME`,
    /// or a Redis URL (checked in full when the store opens).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an empty string or an unknown scheme.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: brain_redis::redact(url),
            reason,
        };
        if url.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            if let Some(scheme) = scheme_without_slashes(url) {
                // Not a URL the Redis parser can redact: whatever comes
                // before an `@` may be a password.
                let shown = match url.rfind('@') {
                    Some(at) => format!("{}***{}", &url[..scheme.len()], &url[at..]),
                    None => url.to_owned(),
                };
                return Err(Error::InvalidUrl {
                    url: shown,
                    reason: format!(
                        "it starts like a {scheme}:// URL without the \"://\"; write {scheme}://..., or start it with ./ for a directory of that name"
                    ),
                });
            }
            return Ok(StoreUrl::shm(url));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "shm" if rest.is_empty() => Ok(StoreUrl::Shm(None)),
            // Written out as shm://, a path is a path, whatever it looks like.
            "shm" => Ok(StoreUrl::absolute_shm(rest.into())),
            "memory" | "mem" => Ok(StoreUrl::Memory(rest.to_owned())),
            other if brain_redis::RedisConfig::is_redis_scheme(other) => {
                brain_redis::RedisConfig::parse(url)?;
                Ok(StoreUrl::Redis(url.to_owned()))
            }
            other => Err(invalid(format!(
                "{other}:// is not a kind of store brain knows (redis://, rediss:// and redis+cluster:// are; a path with \"://\" in it is written shm://PATH)"
            ))),
        }
    }
}

/// The scheme brain knows that `url` starts with, followed by `:` or `//`
/// but not `://` (`redis:host:6379`, `redis//host`): a URL mistyped, which
/// would otherwise open a store in a directory of that name.
fn scheme_without_slashes(url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    brain_core::STORE_SCHEMES.into_iter().find(|scheme| {
        lower
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with("//"))
    })
}

/// `scheme` and the rest, when `url` starts with `scheme://` (a letter,
/// then letters, digits, `+`, `-` or `.`).
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_with_letter && rest_ok).then_some((scheme, rest))
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Shm(Some(path)) => write!(f, "shm://{}", path.display()),
            StoreUrl::Shm(None) => write!(f, "shm://{}", default_store_path().display()),
            StoreUrl::Memory(name) => write!(f, "memory://{name}"),
            StoreUrl::Redis(url) => f.write_str(&brain_redis::redact(url)),
        }
    }
}

/// The default store's URL: `$BRAIN_URL` when set, else the shared-memory
/// store at `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
///
/// # Errors
/// [`Error::InvalidUrl`] when `$BRAIN_URL` holds one.
pub fn default_url() -> Result<StoreUrl> {
    match std::env::var("BRAIN_URL") {
        // Said to come from the environment: the caller gave no URL.
        Ok(url) if !url.is_empty() => StoreUrl::parse(&url).map_err(|err| match err {
            Error::InvalidUrl { url, reason } => Error::InvalidUrl {
                url,
                reason: format!("{reason} (this is $BRAIN_URL: fix or unset it)"),
            },
            other => other,
        }),
        _ => Ok(StoreUrl::Shm(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_parse() {
        let path = |p: &str| StoreUrl::Shm(Some(std::path::absolute(p).unwrap()));
        assert_eq!(StoreUrl::parse("/dev/shm/x").unwrap(), path("/dev/shm/x"));
        assert_eq!(
            StoreUrl::parse("relative/dir").unwrap(),
            path("relative/dir")
        );
        // A relative path is kept absolute, against the directory of the moment.
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            StoreUrl::parse("relative/dir").unwrap().to_string(),
            format!("shm://{}", here.join("relative/dir").display())
        );
        assert_eq!(
            StoreUrl::parse("shm:///dev/shm/x").unwrap(),
            path("/dev/shm/x")
        );
        assert_eq!(StoreUrl::parse("shm://").unwrap(), StoreUrl::Shm(None));
        assert_eq!(
            StoreUrl::parse("memory://t").unwrap(),
            StoreUrl::Memory("t".into())
        );
        assert_eq!(
            StoreUrl::parse("memory://").unwrap(),
            StoreUrl::Memory("".into())
        );
        assert_eq!(
            StoreUrl::parse("MEMORY://x").unwrap(),
            StoreUrl::Memory("x".into())
        );
        // Not a scheme: a path.
        assert_eq!(StoreUrl::parse("./a://b").unwrap(), path("./a://b"));
        assert_eq!(StoreUrl::parse("./redis:1").unwrap(), path("./redis:1"));
        assert_eq!(StoreUrl::parse("redistore").unwrap(), path("redistore"));
        assert_eq!(
            StoreUrl::parse("memory://t").unwrap().to_string(),
            "memory://t"
        );
    }

    #[test]
    fn bad_urls_say_what_to_use() {
        for (url, needle) in [
            ("", "empty"),
            ("ftp://host/x", "ftp:// is not a kind of store"),
            ("redis://u:pw@localhost:1,localhost:2", "redis+cluster://"),
            // Mistyped URLs, which would open a directory of that name.
            ("redis:127.0.0.1:6379", "like a redis:// URL"),
            ("redis//127.0.0.1:6379/0", "like a redis:// URL"),
            ("rediss:u:pw@host:6380", "like a rediss:// URL"),
            ("REDIS+CLUSTER:a:1,b:2", "like a redis+cluster:// URL"),
            ("memory:t", "like a memory:// URL"),
        ] {
            let err = StoreUrl::parse(url).unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(needle), "{text}");
            assert!(text.contains("memory://NAME"), "{text}");
            assert!(!text.contains("pw"), "{text}");
        }
        let url = StoreUrl::parse("redis://u:pw@h:7000/1").unwrap();
        assert_eq!(url, StoreUrl::Redis("redis://u:pw@h:7000/1".into()));
        assert_eq!(url.to_string(), "redis://u:***@h:7000/1");
        assert!(matches!(
            StoreUrl::parse("redis+cluster://a:1,b:2").unwrap(),
            StoreUrl::Redis(_)
        ));
    }
}
