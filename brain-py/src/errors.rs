//! brain-core errors as Python exceptions.
//!
//! The classes live in `brain/exceptions.py` (so they can also subclass
//! `KeyError`, `TypeError`, `OSError`, ...); this maps each Rust variant to
//! its class and copies the variant's fields onto the exception as
//! attributes. A variant this build does not know maps to `BrainError`.
//!
//! brain-core's messages end with advice for the shell and for Rust
//! (`brain capacity SIZE`, `StoreBuilder::capacity`, `--store`); a Python
//! user gets the same facts with the advice in Python calls, and long names
//! cut as the command line cuts them.

use brain_cli::text::quoted;
use brain_core::{Error, NameKind};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `text` with the long names among `names` cut (see `brain_cli::text`).
pub fn shorten<'a>(text: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    brain_cli::text::shorten(text, names)
}

/// The names and namespaces an error carries.
fn names(err: &Error) -> Vec<&str> {
    match err {
        Error::NotFound { namespace, name }
        | Error::StoreFull {
            namespace, name, ..
        }
        | Error::Timeout {
            namespace, name, ..
        }
        | Error::LockTimeout {
            namespace, name, ..
        }
        | Error::CodecMismatch {
            namespace, name, ..
        }
        | Error::Codec {
            namespace, name, ..
        }
        | Error::Arrow {
            namespace, name, ..
        } => vec![namespace, name],
        Error::KeyCollision {
            namespace,
            name,
            found_namespace,
            found_name,
            ..
        } => vec![namespace, name, found_namespace, found_name],
        Error::NamespaceNotFound { namespace } => vec![namespace],
        _ => Vec::new(),
    }
}

/// The error's message for a Python user: what happened, then what to do
/// in Python.
pub fn python_message(err: &Error) -> String {
    let text = match err {
        Error::NotFound { namespace, name } => format!(
            "no object named {} in namespace {}; list what exists with brain.names(namespace={})",
            quoted(name),
            quoted(namespace),
            quoted(namespace)
        ),
        Error::NamespaceNotFound { namespace } => format!(
            "no namespace named {}; list what exists with brain.namespaces()",
            quoted(namespace)
        ),
        Error::StoreFull {
            namespace,
            name,
            needed,
            used,
            capacity,
            location,
            filesystem_full,
            ..
        } => {
            let advice = if *filesystem_full {
                "the filesystem itself ran out of space: free memory on it, or give it more \
                 (in Docker, --shm-size for /dev/shm; see docs/DEPLOYING.md)"
            } else {
                "delete objects or namespaces (del brain[name], brain.remove_namespace(namespace)), \
                 or raise the store's capacity (brain.set_capacity(\"4G\"), or Brain(capacity=\"4G\") \
                 when opening it); if the count looks wrong after a crash, brain.store.fsck() rebuilds it"
            };
            format!(
                "store is full: writing {} in namespace {} needs {needed} bytes, but {used} of \
                 {capacity} bytes are used in {location}; {advice}",
                quoted(name),
                quoted(namespace)
            )
        }
        Error::Corrupt {
            location, reason, ..
        } => format!(
            "{location} is corrupt: {reason}; delete the object (del brain[name]) and write it \
             again, or check the whole store with brain.store.fsck(delete_corrupt=True)"
        ),
        Error::CodecMismatch {
            namespace,
            name,
            expected,
            found,
            ..
        } => format!(
            "object {} in namespace {} is stored as {found}, not {expected}; read it with \
             brain[name], which decodes every codec (brain.metadata(name)[\"codec\"] says which it is)",
            quoted(name),
            quoted(namespace)
        ),
        Error::UnsafePath { path, reason, .. } => format!(
            "refusing to use {} as a brain store: {reason}; remove it, or choose another store \
             with Brain(path=...) or Brain(url=...) (or $BRAIN_PATH, $BRAIN_URL)",
            path.display()
        ),
        Error::PermissionDenied { op, location, .. } => format!(
            "permission denied: cannot {op} {location}; check the owner and mode of the store \
             directory, or use a store of your own with Brain(path=...) or $BRAIN_PATH"
        ),
        Error::LockTimeout {
            namespace,
            name,
            waited,
            location,
            ..
        } => {
            let holder = match location.path() {
                Some(path) => format!(" with `fuser {}`", path.display()),
                None => format!(" (the lock is {location})"),
            };
            format!(
                "the lock on {} in namespace {} is still held by another process after {waited:?}; \
                 wait longer (brain.lock(name, timeout=...)), or find the holder{holder}",
                quoted(name),
                quoted(namespace)
            )
        }
        Error::InvalidUrl { url, reason, .. } => format!(
            "cannot open {url:?}: {reason}; Brain(url=...) takes a path, shm://PATH or memory://NAME"
        ),
        // The rest carry no advice in another language's terms.
        other => other.to_string(),
    };
    shorten(&text, names(err))
}

fn class_name(err: &Error) -> &'static str {
    match err {
        Error::InvalidName {
            kind: NameKind::Namespace,
            ..
        } => "BrainNamespaceNameError",
        Error::InvalidName {
            kind: NameKind::Name,
            ..
        } => "BrainNameLengthError",
        Error::InvalidName { .. } => "BrainDescriptionError",
        Error::NotFound { .. } => "BrainNameNotExistError",
        Error::NamespaceNotFound { .. } => "BrainNamespaceNotExistError",
        Error::StoreFull { .. } => "BrainStoreFullError",
        Error::Corrupt { .. } => "BrainCorruptError",
        Error::UnsupportedVersion { .. } => "BrainVersionError",
        Error::KeyCollision { .. } => "BrainKeyCollisionError",
        Error::CodecMismatch { .. } | Error::Codec { .. } | Error::Arrow { .. } => {
            "BrainCodecError"
        }
        Error::UnsafePath { .. } => "BrainStorePathError",
        Error::PermissionDenied { .. } => "BrainPermissionError",
        Error::Timeout { .. } => "BrainTimeoutError",
        Error::LockTimeout { .. } => "BrainLockTimeoutError",
        Error::Io { .. } => "BrainIOError",
        Error::Unsupported { .. } => "BrainUnsupportedOperationError",
        Error::InvalidUrl { .. } => "BrainStoreUrlError",
        _ => "BrainError",
    }
}

fn attributes<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyDict>> {
    let attrs = PyDict::new(py);
    if let Some(location) = err.location() {
        attrs.set_item("location", location.to_string())?;
        if let Some(path) = location.path() {
            attrs.set_item("path", path)?;
        }
    }
    match err {
        Error::InvalidName {
            len, max, reason, ..
        } => {
            attrs.set_item("length", len)?;
            attrs.set_item("max_length", max)?;
            attrs.set_item("reason", reason)?;
        }
        Error::NotFound { namespace, name }
        | Error::KeyCollision {
            namespace, name, ..
        }
        | Error::LockTimeout {
            namespace, name, ..
        }
        | Error::Timeout {
            namespace, name, ..
        }
        | Error::CodecMismatch {
            namespace, name, ..
        }
        | Error::Codec {
            namespace, name, ..
        }
        | Error::Arrow {
            namespace, name, ..
        } => {
            attrs.set_item("namespace", namespace)?;
            attrs.set_item("name", name)?;
        }
        Error::NamespaceNotFound { namespace } => attrs.set_item("namespace", namespace)?,
        Error::StoreFull {
            namespace,
            name,
            needed,
            used,
            capacity,
            filesystem_full,
            ..
        } => {
            attrs.set_item("namespace", namespace)?;
            attrs.set_item("name", name)?;
            attrs.set_item("needed", needed)?;
            attrs.set_item("used", used)?;
            attrs.set_item("capacity", capacity)?;
            attrs.set_item("filesystem_full", filesystem_full)?;
        }
        Error::Corrupt { reason, .. } => attrs.set_item("reason", reason)?,
        Error::UnsupportedVersion {
            found, supported, ..
        } => {
            attrs.set_item("found", found)?;
            attrs.set_item("supported", supported)?;
        }
        Error::UnsafePath { path, .. } => {
            attrs.set_item("location", path.display().to_string())?;
            attrs.set_item("path", path)?;
        }
        Error::Unsupported { operation, .. } => attrs.set_item("operation", operation)?,
        Error::InvalidUrl { url, reason } => {
            attrs.set_item("url", url)?;
            attrs.set_item("reason", reason)?;
        }
        _ => {}
    }
    Ok(attrs)
}

/// Converts a brain-core error into the matching `brain.exceptions` class.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(exc) => exc,
        Err(import_failed) => import_failed,
    })
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let module = py.import("brain.exceptions")?;
    let class = module.getattr(class_name(err))?;
    let exc = class.call1((python_message(err),))?;
    for (key, value) in attributes(py, err)?.iter() {
        exc.setattr(key.cast_into::<pyo3::types::PyString>()?, value)?;
    }
    if let Error::Io { source, .. } = err {
        if let Some(code) = source.raw_os_error() {
            exc.setattr("errno", code)?;
        }
    }
    Ok(PyErr::from_value(exc))
}

/// `?` for brain-core results inside Python-facing functions.
pub trait IntoPyResult<T> {
    /// Converts the error side into a Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for brain_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
