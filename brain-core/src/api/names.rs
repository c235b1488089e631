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

#[cfg(test)]
mod tests {
    use super::*;

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
