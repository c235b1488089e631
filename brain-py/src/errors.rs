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
        | Error::LockLost {
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
        }
        | Error::ColumnNotFound {
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
        Error::ReservedName { name } => vec![name],
        _ => Vec::new(),
    }
}

/// Replaces the last `rust` advice in `text` with `python`'s. When brain's
/// wording changed and `rust` is not found, the text stays as it was: its
/// facts are whole, and the tests (test_python_terms) say the advice is not.
pub fn advise(text: &mut String, rust: &str, python: &str) {
    if let Some(at) = text.rfind(rust) {
        text.replace_range(at..at + rust.len(), python);
    }
}

/// brain-core's advice for the shell or Rust in this error's message, and
/// the same advice in Python calls: each wording the error may carry.
fn advice(err: &Error) -> Vec<(String, String)> {
    let (rust, python): (String, String) = match err {
        Error::NotFound { namespace, .. } => (
            format!(
                "; list what exists with `brain ls {}`",
                brain_core::shell_word(namespace)
            ),
            format!(
                "; list what exists with brain.names(namespace={})",
                quoted(namespace)
            ),
        ),
        Error::NamespaceNotFound { .. } => (
            "; list what exists with `brain ns ls`".into(),
            "; list what exists with brain.namespaces()".into(),
        ),
        Error::StoreFull {
            filesystem_full: false,
            ..
        } => {
            return vec![
                (
                    "; delete objects or namespaces, or raise the store's capacity (`brain capacity SIZE`, \
                     StoreBuilder::capacity); if the count looks wrong after a crash, `brain fsck` rebuilds it"
                        .into(),
                    "; delete objects or namespaces (del brain[name], brain.remove_namespace(namespace)), \
                     or raise the store's capacity (brain.set_capacity(\"4G\"), or Brain(capacity=\"4G\") \
                     when opening it); if the count looks wrong after a crash, brain.store.fsck() rebuilds it"
                        .into(),
                ),
                // An object larger than the whole capacity: no delete helps.
                (
                    "raise the capacity (`brain capacity SIZE`, StoreBuilder::capacity)".into(),
                    "raise the capacity (brain.set_capacity(\"4G\"), or Brain(capacity=\"4G\") when \
                     opening it)"
                        .into(),
                ),
            ]
        }
        Error::Corrupt { .. } => (
            "; delete the object (`brain rm`) and write it again, or run `brain fsck`".into(),
            "; delete the object (del brain[name]) and write it again, or check the whole store \
             with brain.store.fsck(delete_corrupt=True)"
                .into(),
        ),
        Error::CodecMismatch { .. } => (
            "; read it with the matching call (see `brain info`)".into(),
            "; read it with brain[name], which decodes every codec (brain.metadata(name)[\"codec\"] \
             says which it is)"
                .into(),
        ),
        Error::UnsafePath { .. } => (
            " with BRAIN_PATH or --store".into(),
            " with Brain(path=...) or Brain(url=...) (or $BRAIN_PATH, $BRAIN_URL)".into(),
        ),
        Error::UnsafeCachePath { .. } => (
            "with --cache DIR, or --cache off to read without a cache".into(),
            "with Brain(url=..., cache=PATH), or cache=False to read without a cache".into(),
        ),
        Error::PermissionDenied { .. } => (
            "or use a store of your own with BRAIN_PATH".into(),
            "or use a store of your own with Brain(path=...) or $BRAIN_PATH".into(),
        ),
        Error::LockTimeout { .. } => (
            "; wait longer, or find the holder".into(),
            "; wait longer (brain.lock(name, timeout=...)), or find the holder".into(),
        ),
        Error::InvalidUrl { .. } => (
            "; use a path, shm://PATH, memory://NAME or a redis:// URL".into(),
            "; Brain(url=...) takes a path, shm://PATH, memory://NAME or a redis:// URL".into(),
        ),
        _ => return Vec::new(),
    };
    vec![(rust, python)]
}

/// The error's message for a Python user: brain-core's account of what
/// happened, with its advice in Python calls and long names cut.
pub fn python_message(err: &Error) -> String {
    let mut text = err.to_string();
    for (rust, python) in advice(err) {
        advise(&mut text, &rust, &python);
    }
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
        Error::ReservedName { .. } => "BrainReservedNameError",
        Error::NotFound { .. } => "BrainNameNotExistError",
        Error::NamespaceNotFound { .. } => "BrainNamespaceNotExistError",
        Error::StoreFull { .. } => "BrainStoreFullError",
        Error::Corrupt { .. } => "BrainCorruptError",
        Error::UnsupportedVersion { .. } => "BrainVersionError",
        Error::KeyCollision { .. } => "BrainKeyCollisionError",
        Error::CodecMismatch { .. } | Error::Codec { .. } | Error::Arrow { .. } => {
            "BrainCodecError"
        }
        Error::UnsafePath { .. } | Error::UnsafeCachePath { .. } => "BrainStorePathError",
        Error::PermissionDenied { .. } => "BrainPermissionError",
        Error::Timeout { .. } => "BrainTimeoutError",
        Error::LockTimeout { .. } => "BrainLockTimeoutError",
        Error::LockLost { .. } => "BrainLockLostError",
        Error::Io { .. } => "BrainIOError",
        Error::Unsupported { .. } => "BrainUnsupportedOperationError",
        Error::InvalidUrl { .. } => "BrainStoreUrlError",
        Error::Busy { .. } => "BrainBusyError",
        Error::ColumnNotFound { .. } => "BrainColumnNotExistError",
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
        | Error::LockLost {
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
        Error::ColumnNotFound {
            namespace,
            name,
            missing,
            columns,
        } => {
            attrs.set_item("namespace", namespace)?;
            attrs.set_item("name", name)?;
            attrs.set_item("missing", missing)?;
            attrs.set_item("columns", columns)?;
        }
        Error::NamespaceNotFound { namespace } => attrs.set_item("namespace", namespace)?,
        Error::StoreFull {
            namespace,
            name,
            needed,
            used,
            capacity,
            filesystem_full,
            replacing,
            held,
            holders,
            ..
        } => {
            attrs.set_item("namespace", namespace)?;
            attrs.set_item("name", name)?;
            attrs.set_item("needed", needed)?;
            attrs.set_item("used", used)?;
            attrs.set_item("capacity", capacity)?;
            attrs.set_item("free", capacity.saturating_sub(*used))?;
            attrs.set_item("objects", 1)?;
            attrs.set_item("filesystem_full", filesystem_full)?;
            attrs.set_item("replacing", replacing)?;
            attrs.set_item("held", held)?;
            attrs.set_item("holders", pids(holders))?;
        }
        Error::Corrupt { reason, .. } => attrs.set_item("reason", reason)?,
        Error::UnsupportedVersion {
            found, supported, ..
        } => {
            attrs.set_item("found", found)?;
            attrs.set_item("supported", supported)?;
        }
        Error::UnsafePath { path, .. } | Error::UnsafeCachePath { path, .. } => {
            attrs.set_item("location", path.display().to_string())?;
            attrs.set_item("path", path)?;
        }
        Error::Unsupported { operation, .. } => attrs.set_item("operation", operation)?,
        Error::Busy {
            operation, waited, ..
        } => {
            attrs.set_item("operation", operation)?;
            attrs.set_item("waited", waited.as_secs_f64())?;
        }
        Error::InvalidUrl { url, reason } => {
            attrs.set_item("url", url)?;
            attrs.set_item("reason", reason)?;
        }
        _ => {}
    }
    // Beside the namespace and name it shares with the lock's other errors.
    if let Error::LockLost { ttl, .. } = err {
        attrs.set_item("ttl", ttl.as_secs_f64())?;
    }
    Ok(attrs)
}

/// The pids of a `StoreFull`'s `holders` ("12, 345"), as numbers.
fn pids(holders: &str) -> Vec<u32> {
    holders
        .split(',')
        .filter_map(|pid| pid.trim().parse().ok())
        .collect()
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

/// The Python exception for a brain-core error of the kind named, built as
/// any error raised is: for the tests of this mapping, with the errors a
/// test cannot cause quickly (a recount that waited a minute for writes in
/// flight, a filesystem that ran out while processes held its memory).
#[pyfunction]
#[pyo3(name = "_core_error")]
pub fn core_error(py: Python<'_>, kind: &str) -> PyResult<Py<PyAny>> {
    let location = brain_core::Location::from("/dev/shm/brain-0/test");
    let err = match kind {
        "busy" => Error::Busy {
            location,
            operation: "rebuild the usage count",
            waited: std::time::Duration::from_secs(60),
        },
        "filesystem_full" => Error::StoreFull {
            namespace: "ns".into(),
            name: "frame".into(),
            needed: 3 << 20,
            used: 5 << 20,
            capacity: 8 << 20,
            location,
            filesystem_full: true,
            replacing: 2 << 20,
            held: 4 << 20,
            holders: "123, 4567".into(),
        },
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no example of {other:?}: use \"busy\" or \"filesystem_full\""
            )))
        }
    };
    Ok(to_py(err).into_value(py).into_any())
}
