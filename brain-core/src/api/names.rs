//! What a name, namespace or description may be: any UTF-8 string, within
//! the lengths the object header holds. Every backend checks the same way.

use crate::api::error::{Error, NameKind, Result};
use crate::format::{MAX_DESCRIPTION_LEN, MAX_NAMESPACE_LEN, MAX_NAME_LEN};

fn check(kind: NameKind, value: &str, max: usize, allow_empty: bool) -> Result<()> {
    let reason = if value.is_empty() && !allow_empty {
        "it is empty"
    } else if value.len() > max {
        "it is too long"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        kind,
        len: value.len(),
        max,
        reason,
    })
}

/// Checks an object name: any non-empty UTF-8 string up to [`MAX_NAME_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidName`] when it is empty or too long.
pub fn validate_name(name: &str) -> Result<()> {
    check(NameKind::Name, name, MAX_NAME_LEN, false)
}

/// Checks a namespace name: any non-empty UTF-8 string up to [`MAX_NAMESPACE_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidName`] when it is empty or too long.
pub fn validate_namespace(namespace: &str) -> Result<()> {
    check(NameKind::Namespace, namespace, MAX_NAMESPACE_LEN, false)
}

/// Checks a description: any UTF-8 string up to [`MAX_DESCRIPTION_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidName`] when it is too long.
pub fn validate_description(description: &str) -> Result<()> {
    check(
        NameKind::Description,
        description,
        MAX_DESCRIPTION_LEN,
        true,
    )
}

/// The prefix of the namespaces that hold a host's read cache of a store
/// on another machine (brain-redis): `redis-cache-` and 32 hex digits, one
/// namespace per server and namespace cached.
pub const HOST_CACHE_NAMESPACE_PREFIX: &str = "redis-cache-";

/// Whether `namespace` is one a host's read cache made
/// ([`HOST_CACHE_NAMESPACE_PREFIX`] and 32 lowercase hex digits). Its
/// objects are copies of objects another store holds, fetched again when
/// missing, so a dump or a sync of a whole store leaves such namespaces out.
pub fn is_host_cache_namespace(namespace: &str) -> bool {
    namespace
        .strip_prefix(HOST_CACHE_NAMESPACE_PREFIX)
        .is_some_and(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_form_is_a_host_cache_namespace() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(is_host_cache_namespace(&format!("redis-cache-{id}")));
        for other in [
            "redis-cache-".to_string(),
            "redis-cache-sales".to_string(),
            format!("redis-cache-{}", id.to_uppercase()),
            format!("redis-cache-{id}0"),
            format!("redis-cache-{}", &id[1..]),
            format!("x-redis-cache-{id}"),
            "default".to_string(),
        ] {
            assert!(!is_host_cache_namespace(&other), "{other}");
        }
    }

    #[test]
    fn empty_and_overlong_names_are_refused() {
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        let err = validate_name(&"x".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(validate_namespace("").is_err());
        assert!(validate_description("").is_ok());
        // What to do names what is allowed: an empty description is.
        let err = validate_description(&"x".repeat(MAX_DESCRIPTION_LEN + 1)).unwrap_err();
        assert!(
            err.to_string().contains("use a UTF-8 string of at most"),
            "{err}"
        );
        assert!(err_of_name().contains("use a non-empty UTF-8 string"));
    }

    fn err_of_name() -> String {
        validate_name("").unwrap_err().to_string()
    }
}
