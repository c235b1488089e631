//! brain-core errors as Python exceptions.
//!
//! The classes live in `brain/exceptions.py` (so they can also subclass
//! `KeyError`, `TypeError`, `OSError`, ...); this maps each Rust variant to
//! its class and copies the variant's fields onto the exception as
//! attributes. A variant this build does not know maps to `BrainError`.

use brain_core::{Error, NameKind};
use pyo3::prelude::*;
use pyo3::types::PyDict;

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
    let exc = class.call1((err.to_string(),))?;
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
