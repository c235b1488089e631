//! The native module `brain._brain` behind the Python package `brain`.
//!
//! It exposes brain-core's store (`Store`), zero-copy object buffers
//! (`Object`), streamed writers (`Writer`), watchers and locks. The Python
//! package wraps them in brain-plasma's `Brain` API and picks codecs for
//! Python objects; use `brain`, not this module, from applications.

#![deny(unsafe_code)]

// The one module allowed unsafe code: the buffer protocol, and the copy
// into a new `bytes`.
#[allow(unsafe_code)]
mod buffer;
mod columns;
mod errors;
mod frames;
mod persist;
mod store;

use pyo3::prelude::*;

/// The hex key of `name` in `namespace`: the object's file name in the store.
#[pyfunction]
fn object_key(namespace: &str, name: &str) -> String {
    brain_core::ObjectKey::new(namespace, name).to_hex()
}

/// Runs the `brain` command line (`argv[0]` is the program's name) on this
/// process's standard streams and returns its exit code: the `brain`
/// command of a pip install.
#[pyfunction]
#[pyo3(signature = (argv, stdin_closed = false))]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>, stdin_closed: bool) -> u8 {
    py.detach(|| brain_cli::run_process_with(argv, stdin_closed))
}

/// A capacity as the `brain` command takes it: the bytes of a size
/// (`4096`, `512K`, `64M`, `1.5G`, `2GiB`, `10MB`), or None for `none`.
#[pyfunction]
fn parse_capacity(text: &str) -> PyResult<Option<u64>> {
    brain_cli::parse_capacity(text)
        .map(brain_cli::Capacity::bytes)
        .map_err(pyo3::exceptions::PyValueError::new_err)
}

/// Forgets the store at `memory://NAME`: its memory goes with the last
/// handle on it, and the name opens a new, empty store. Returns whether
/// there was one.
#[pyfunction]
fn drop_memory_store(name: &str) -> bool {
    brain::drop_memory_store(name)
}

/// The default store path: `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
#[pyfunction]
fn default_store_path() -> std::path::PathBuf {
    brain_core::default_store_path()
}

#[pymodule]
fn _brain(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::PyStore>()?;
    m.add_class::<store::PyWriter>()?;
    m.add_class::<store::PyWatcher>()?;
    m.add_class::<store::PyLock>()?;
    m.add_class::<store::PyVersionGuard>()?;
    m.add_class::<buffer::PyObjectView>()?;
    m.add_class::<columns::PyArrowColumns>()?;
    m.add_class::<frames::PyFrame>()?;
    m.add_function(wrap_pyfunction!(columns::table_columns, m)?)?;
    m.add_function(wrap_pyfunction!(columns::numeric_columns, m)?)?;
    m.add_function(wrap_pyfunction!(object_key, m)?)?;
    m.add_function(wrap_pyfunction!(persist::dump, m)?)?;
    m.add_function(wrap_pyfunction!(persist::restore, m)?)?;
    m.add_function(wrap_pyfunction!(persist::auto_restore, m)?)?;
    m.add_function(wrap_pyfunction!(persist::list_dump, m)?)?;
    m.add_function(wrap_pyfunction!(default_store_path, m)?)?;
    m.add_function(wrap_pyfunction!(drop_memory_store, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(parse_capacity, m)?)?;
    m.add_function(wrap_pyfunction!(errors::core_error, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_NAME_LEN", brain_core::MAX_NAME_LEN)?;
    Ok(())
}
