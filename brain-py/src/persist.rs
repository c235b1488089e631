//! Dump, restore and auto-restore for Python, through brain-persist.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use brain_persist::{DumpOptions, OnConflict, Progress, RestoreOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::store::PyStore;

fn class_name(err: &brain_persist::Error) -> &'static str {
    use brain_persist::Error as E;
    match err {
        E::DumpNotFound { .. } => "BrainDumpNotFoundError",
        E::UnsupportedVersion { .. } => "BrainDumpVersionError",
        E::Conflict { .. } => "BrainDumpConflictError",
        E::StoreFull { .. } => "BrainStoreFullError",
        E::NamespaceNotInDump { .. } => "BrainNamespaceNotExistError",
        bad if bad.is_bad_dump() => "BrainCorruptDumpError",
        _ => "BrainDumpError",
    }
}

/// Converts a brain-persist error into the matching `brain.exceptions` class.
fn to_py(err: brain_persist::Error) -> PyErr {
    let message = err.to_string();
    if let brain_persist::Error::Store(failure) = err {
        // A failure of the store itself (full, permission denied...): raise
        // the store's own exception, with the dump's context as its message.
        let py_err = crate::errors::to_py(failure.source);
        Python::attach(|py| py_err.value(py).setattr("args", (message,)))
            .map_or_else(|failed| failed, |()| py_err)
    } else {
        Python::attach(|py| {
            let build = || -> PyResult<PyErr> {
                let class = py.import("brain.exceptions")?.getattr(class_name(&err))?;
                Ok(PyErr::from_value(class.call1((message,))?))
            };
            build().unwrap_or_else(|import_failed| import_failed)
        })
    }
}

fn on_conflict(name: &str) -> PyResult<OnConflict> {
    match name {
        "overwrite" => Ok(OnConflict::Overwrite),
        "skip" => Ok(OnConflict::Skip),
        "fail" => Ok(OnConflict::Fail),
        other => Err(PyValueError::new_err(format!(
            "on_conflict must be 'overwrite', 'skip' or 'fail', not {other:?}"
        ))),
    }
}

/// Writes a dump of the store (or one namespace) to `path`, atomically.
#[pyfunction]
#[pyo3(signature = (store, path, namespace=None, level=3))]
pub fn dump<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
    namespace: Option<String>,
    level: i32,
) -> PyResult<Bound<'py, PyDict>> {
    let mut options = DumpOptions::new().level(level).progress(Progress::Hidden);
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let report = py
        .detach(|| brain_persist::dump(&store.store, &path, &options))
        .map_err(to_py)?;
    let dict = PyDict::new(py);
    dict.set_item("path", report.path)?;
    dict.set_item("objects", report.objects)?;
    dict.set_item("namespaces", report.namespaces)?;
    dict.set_item("payload_bytes", report.payload_bytes)?;
    dict.set_item("compressed_bytes", report.compressed_bytes)?;
    dict.set_item("seconds", report.elapsed.as_secs_f64())?;
    Ok(dict)
}

/// Restores a dump into the store after checking all of it.
#[pyfunction]
#[pyo3(signature = (store, path, namespace=None, on_conflict_name="fail"))]
pub fn restore<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
    namespace: Option<String>,
    on_conflict_name: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let mut options = RestoreOptions::new()
        .on_conflict(on_conflict(on_conflict_name)?)
        .progress(Progress::Hidden);
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let report = py
        .detach(|| brain_persist::restore(&store.store, &path, &options))
        .map_err(to_py)?;
    restore_dict(py, &report)
}

fn restore_dict<'py>(
    py: Python<'py>,
    report: &brain_persist::RestoreReport,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("path", &report.path)?;
    dict.set_item("restored", report.restored)?;
    dict.set_item("skipped", report.skipped)?;
    dict.set_item("bytes", report.bytes)?;
    dict.set_item("seconds", report.elapsed.as_secs_f64())?;
    Ok(dict)
}

/// Restores from `path` if the store holds no objects; None when nothing was done.
#[pyfunction]
pub fn auto_restore<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let report = py
        .detach(|| brain_persist::auto_restore(&store.store, &path, &Progress::Hidden))
        .map_err(to_py)?;
    report.map(|r| restore_dict(py, &r)).transpose()
}

/// What a dump holds: its kind, version, generation and objects.
#[pyfunction]
pub fn list_dump<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let info = py
        .detach(|| brain_persist::list_dump(&path))
        .map_err(to_py)?;
    let dict = PyDict::new(py);
    dict.set_item("path", &info.path)?;
    dict.set_item("format_version", info.format_version)?;
    dict.set_item("generation", info.generation)?;
    dict.set_item("namespace", &info.namespace)?;
    let objects = info
        .objects
        .iter()
        .map(|entry| {
            let item = PyDict::new(py);
            item.set_item("namespace", &entry.namespace)?;
            item.set_item("name", &entry.name)?;
            item.set_item("codec", entry.codec.name())?;
            item.set_item("description", &entry.description)?;
            item.set_item("size", entry.size)?;
            item.set_item("compressed_size", entry.compressed_size)?;
            let created = entry
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            item.set_item("created", created)?;
            Ok(item)
        })
        .collect::<PyResult<Vec<_>>>()?;
    dict.set_item("objects", objects)?;
    Ok(dict)
}

// The Python signature spells brain-persist's default zstd level as a literal.
const _: () = assert!(brain_persist::DEFAULT_LEVEL == 3);
