//! Dump, restore and auto-restore for Python, through brain-persist.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brain_cli::text::quoted;
use brain_persist::{DumpOptions, OnConflict, Phase, Progress, ProgressUpdate, RestoreOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{advise, python_message, shorten};
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
        E::Io { .. } => "BrainDumpIOError",
        _ => "BrainDumpError",
    }
}

/// The error's message with its advice in Python: the calls and arguments
/// that do what brain-persist's own message says with commands and flags.
fn python_text(err: &brain_persist::Error) -> String {
    use brain_persist::Error as E;
    let mut text = err.to_string();
    let dump = |path: &Path| format!("{:?}", path.display().to_string());
    let (rust, python) = match err {
        E::DumpNotFound { path, .. } => (
            format!("; check the path, or write one with `brain dump {}`", path.display()),
            format!("; check the path, or write one with brain.dump({})", dump(path)),
        ),
        E::NotADump { .. } => (
            "; give the directory that `brain dump` or `brain sync` wrote".to_owned(),
            "; give a directory that brain.dump() (or the `brain sync` service) wrote".to_owned(),
        ),
        E::NotAMirror { path } => (
            format!("(`brain restore {}`)", path.display()),
            format!("(brain.restore({}))", dump(path)),
        ),
        E::StoreFull { .. } => (
            "; free space (`brain rm`, `brain ns rm`), raise the capacity (`brain capacity SIZE`), \
             or restore one namespace with --namespace"
                .to_owned(),
            "; free space (del brain[name], brain.remove_namespace(namespace)), raise the capacity \
             (brain.set_capacity(\"4G\")), or restore one namespace (brain.restore(path, namespace=...))"
                .to_owned(),
        ),
        E::Conflict {
            interrupted: false, ..
        } => (
            "; choose --on-conflict overwrite or skip".to_owned(),
            "; choose brain.restore(..., on_conflict=\"overwrite\") or on_conflict=\"skip\"".to_owned(),
        ),
        E::Conflict { .. } => (
            ": --on-conflict skip finishes it (overwrite replaces every name)".to_owned(),
            ": brain.restore(..., on_conflict=\"skip\") finishes it (on_conflict=\"overwrite\" replaces every name)"
                .to_owned(),
        ),
        E::NamespaceNotInDump { path, .. } => (
            format!("; list what it holds with `brain dumps ls {}`", path.display()),
            format!("; list what it holds with Brain.list_dump({})", dump(path)),
        ),
        // The store's own error ends the message: its advice, in Python.
        E::Store(failure) => {
            let source = python_message(&failure.source);
            let original = failure.source.to_string();
            if let Some(at) = text.rfind(&original) {
                text.replace_range(at.., &source);
            }
            (String::new(), String::new())
        }
        // The others say what is wrong with the dump or the system, and
        // their advice (another copy, a new dump) holds in any language.
        _ => (String::new(), String::new()),
    };
    if !rust.is_empty() {
        advise(&mut text, &rust, &python);
    }
    let names: Vec<&str> = match err {
        E::MissingPayload {
            namespace, name, ..
        }
        | E::TruncatedPayload {
            namespace, name, ..
        }
        | E::CorruptPayload {
            namespace, name, ..
        }
        | E::ChecksumMismatch {
            namespace, name, ..
        }
        | E::Conflict {
            namespace, name, ..
        } => vec![namespace, name],
        E::NamespaceNotInDump { namespace, .. } => vec![namespace],
        E::Store(failure) => failure
            .namespace
            .iter()
            .chain(failure.name.iter())
            .map(String::as_str)
            .collect(),
        _ => Vec::new(),
    };
    shorten(&text, names)
}

/// Converts a brain-persist error into the matching `brain.exceptions` class.
fn to_py(err: brain_persist::Error) -> PyErr {
    let message = python_text(&err);
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
                let exc = class.call1((message,))?;
                set_attributes(&exc, &err)?;
                Ok(PyErr::from_value(exc))
            };
            build().unwrap_or_else(|import_failed| import_failed)
        })
    }
}

/// The attributes a brain-persist error gives its exception: those of a
/// `BrainStoreFullError` the store raises, for a restore that found no room;
/// an `OSError`'s `errno` and `filename`, for a filesystem's failure.
fn set_attributes(exc: &Bound<'_, PyAny>, err: &brain_persist::Error) -> PyResult<()> {
    if let brain_persist::Error::Io { path, source, .. } = err {
        exc.setattr("errno", source.raw_os_error())?;
        exc.setattr("filename", path.as_os_str())?;
    }
    if let brain_persist::Error::StoreFull {
        store,
        needed,
        free,
        used,
        capacity,
        objects,
    } = err
    {
        exc.setattr("location", store.to_string())?;
        if let Some(path) = store.path() {
            exc.setattr("path", path)?;
        }
        exc.setattr("needed", needed)?;
        exc.setattr("free", free)?;
        exc.setattr("used", used)?;
        exc.setattr("capacity", capacity)?;
        exc.setattr("objects", objects)?;
        // No one object: the restore checks them all before writing any.
        exc.setattr("namespace", exc.py().None())?;
        exc.setattr("name", exc.py().None())?;
        exc.setattr("filesystem_full", false)?;
        exc.setattr("replacing", 0)?;
        exc.setattr("held", 0)?;
        exc.setattr("holders", Vec::<u32>::new())?;
    }
    Ok(())
}

/// The shortest time between two calls of a Python progress callback.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A Python callable as a brain-persist progress callback: called with the
/// GIL taken, at most every [`PROGRESS_EVERY`] (and always at the start and
/// end of each phase, so a bar can begin and reach its end). An exception
/// it raises stops the calls and is raised when the operation returns:
/// a dump or restore cannot be stopped half-way (Ctrl-C in a notebook
/// raises `KeyboardInterrupt` once it is done).
struct PythonProgress {
    callback: Py<PyAny>,
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    last: Option<(Instant, Phase)>,
    failed: Option<PyErr>,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Dumping => "dumping",
        Phase::Verifying => "verifying",
        Phase::Restoring => "restoring",
        _ => "working",
    }
}

impl PythonProgress {
    fn new(callback: Option<Py<PyAny>>) -> Option<Arc<PythonProgress>> {
        callback.map(|callback| {
            Arc::new(PythonProgress {
                callback,
                state: Mutex::new(ProgressState::default()),
            })
        })
    }

    /// brain-persist's `Progress` for `this` (none: hidden).
    fn progress(this: Option<&Arc<PythonProgress>>) -> Progress {
        match this {
            Some(this) => {
                let this = Arc::clone(this);
                Progress::Callback(Arc::new(move |update: &ProgressUpdate| this.report(update)))
            }
            None => Progress::Hidden,
        }
    }

    fn report(&self, update: &ProgressUpdate) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.failed.is_some() {
            return;
        }
        let now = Instant::now();
        let finished =
            update.bytes_done >= update.bytes_total && update.objects_done >= update.objects_total;
        let due = match state.last {
            Some((at, phase)) => phase != update.phase || now - at >= PROGRESS_EVERY,
            None => true,
        };
        if !(due || finished) {
            return;
        }
        state.last = Some((now, update.phase));
        let called = Python::attach(|py| -> PyResult<()> {
            let report = PyDict::new(py);
            report.set_item("phase", phase_name(update.phase))?;
            report.set_item("bytes_done", update.bytes_done)?;
            report.set_item("bytes_total", update.bytes_total)?;
            report.set_item("objects_done", update.objects_done)?;
            report.set_item("objects_total", update.objects_total)?;
            self.callback.call1(py, (report,))?;
            Ok(())
        });
        if let Err(err) = called {
            state.failed = Some(err);
        }
    }

    /// The operation's result, or the callback's exception when it raised one.
    fn finish<T>(this: Option<Arc<PythonProgress>>, result: PyResult<T>) -> PyResult<T> {
        let failed = this.and_then(|this| {
            this.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .failed
                .take()
        });
        match (result, failed) {
            (Ok(_), Some(err)) => Err(err),
            (result, _) => result,
        }
    }
}

fn on_conflict(name: &str) -> PyResult<OnConflict> {
    match name {
        "overwrite" => Ok(OnConflict::Overwrite),
        "skip" => Ok(OnConflict::Skip),
        "fail" => Ok(OnConflict::Fail),
        other => Err(PyValueError::new_err(format!(
            "brain.restore(..., on_conflict={}): on_conflict must be \"fail\" (the default), \
             \"overwrite\" or \"skip\"",
            quoted(other)
        ))),
    }
}

/// Writes a dump of the store (or one namespace) to `path`, atomically;
/// `progress` is called with each phase's figures.
#[pyfunction]
#[pyo3(signature = (store, path, namespace=None, level=3, progress=None))]
pub fn dump<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
    namespace: Option<String>,
    level: i32,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if !(-7..=22).contains(&level) {
        return Err(PyValueError::new_err(format!(
            "level {level} is not one of zstd's: give -7 (fastest) to 22 (smallest); 3 is the default"
        )));
    }
    let reporter = PythonProgress::new(progress);
    let mut options = DumpOptions::new()
        .level(level)
        .progress(PythonProgress::progress(reporter.as_ref()));
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let done = py
        .detach(|| brain_persist::dump(&store.store, &path, &options))
        .map_err(to_py);
    let report = PythonProgress::finish(reporter, done)?;
    let dict = PyDict::new(py);
    dict.set_item("path", report.path)?;
    dict.set_item("objects", report.objects)?;
    dict.set_item("namespaces", report.namespaces)?;
    dict.set_item("payload_bytes", report.payload_bytes)?;
    dict.set_item("compressed_bytes", report.compressed_bytes)?;
    dict.set_item(
        "cache_namespaces_left_out",
        report.cache_namespaces_left_out,
    )?;
    dict.set_item("seconds", report.elapsed.as_secs_f64())?;
    Ok(dict)
}

/// Restores a dump into the store after checking all of it; `progress` is
/// called with each phase's figures.
#[pyfunction]
#[pyo3(signature = (store, path, namespace=None, on_conflict_name="fail", progress=None))]
pub fn restore<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
    namespace: Option<String>,
    on_conflict_name: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let reporter = PythonProgress::new(progress);
    let mut options = RestoreOptions::new()
        .on_conflict(on_conflict(on_conflict_name)?)
        .progress(PythonProgress::progress(reporter.as_ref()));
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let done = py
        .detach(|| brain_persist::restore(&store.store, &path, &options))
        .map_err(to_py);
    let report = PythonProgress::finish(reporter, done)?;
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
#[pyo3(signature = (store, path, progress=None))]
pub fn auto_restore<'py>(
    py: Python<'py>,
    store: &PyStore,
    path: PathBuf,
    progress: Option<Py<PyAny>>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let reporter = PythonProgress::new(progress);
    let shown = PythonProgress::progress(reporter.as_ref());
    let done = py
        .detach(|| brain_persist::auto_restore(&store.store, &path, &shown))
        .map_err(to_py);
    let report = PythonProgress::finish(reporter, done)?;
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
    // A frame's parts are restored with it; they are not names of their own.
    let objects = info
        .names()
        .iter()
        .map(|entry| {
            let item = PyDict::new(py);
            item.set_item("namespace", &entry.namespace)?;
            item.set_item("name", &entry.name)?;
            item.set_item("codec", entry.codec.name())?;
            item.set_item("description", &entry.description)?;
            item.set_item("size", entry.size)?;
            item.set_item("compressed_size", entry.compressed_size)?;
            // A UTC datetime, as `Brain.metadata` gives it.
            item.set_item("created", entry.created)?;
            Ok(item)
        })
        .collect::<PyResult<Vec<_>>>()?;
    dict.set_item("objects", objects)?;
    Ok(dict)
}

// The Python signature spells brain-persist's default zstd level as a literal.
const _: () = assert!(brain_persist::DEFAULT_LEVEL == 3);
