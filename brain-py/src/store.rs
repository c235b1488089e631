//! The native `Store`: brain-core's store for the Python package.
//!
//! The Python layer (`brain/_brain_class.py`) chooses codecs and converts
//! objects; this module moves bytes, releasing the GIL around copies and
//! waits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use brain::{
    ndarray_segments, pickle_segments, Codec, Dtype, NameLock, NdArrayMeta, ObjectKey, ObjectMeta,
    ObjectStore, ObjectWriter, OpenOptions, SharedBytes, StoreUrl, WatchEvent, Watcher,
};
use brain::{CacheSetting, Consistency, ExpectVersion, RedisStore};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use pyo3::IntoPyObjectExt;

use brain_core::frames::{self, StoredTable};
use brain_core::ObjectView;

use crate::buffer::{object, InputBuffer};
use crate::errors::IntoPyResult;
use crate::frames::PyFrame;

/// Payloads at least this large are written with the GIL released.
const RELEASE_GIL_FROM: usize = 64 * 1024;

fn codec(name: &str) -> PyResult<Codec> {
    Codec::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown codec {name:?}; use raw, text, arrow, ndarray, pickle5, pandas or polars"
        ))
    })
}

pub(crate) fn meta_dict<'py>(py: Python<'py>, meta: &ObjectMeta) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let key = ObjectKey::new(&meta.namespace, &meta.name).to_hex();
    dict.set_item("name", &meta.name)?;
    dict.set_item("namespace", &meta.namespace)?;
    dict.set_item("description", &meta.description)?;
    dict.set_item("codec", meta.codec.name())?;
    dict.set_item("size", meta.size)?;
    dict.set_item("stored_size", meta.stored_size)?;
    let created = meta
        .created
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    dict.set_item("created", created)?;
    dict.set_item("value_id", &key)?;
    dict.set_item("metadata_id", key)?;
    Ok(dict)
}

/// [`meta_dict`] of an object as people see it ([`frames::table_meta`]):
/// a frame in parts with its writer's codec and size, and `parts`.
fn shown_meta_dict<'py>(
    py: Python<'py>,
    meta: &ObjectMeta,
    parts: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = meta_dict(py, meta)?;
    if parts > 0 {
        dict.set_item("parts", parts)?;
    }
    Ok(dict)
}

fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        // `float("inf")`, as `threading` takes it: no limit.
        .filter(|t| *t != f64::INFINITY)
        .map(|t| {
            Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err(format!(
                    "timeout must be a number of seconds >= 0 (or None, or float('inf'), for no limit), not {t}"
                ))
            })
        })
        .transpose()
}

/// Where a Redis store caches: None or True for the host's default store,
/// False for nowhere, or a path.
fn cache_setting(cache: Option<&Bound<'_, PyAny>>) -> PyResult<CacheSetting> {
    let Some(cache) = cache else {
        return Ok(CacheSetting::Default);
    };
    if let Ok(on) = cache.extract::<bool>() {
        return Ok(if on {
            CacheSetting::Default
        } else {
            CacheSetting::Off
        });
    }
    let path = cache.extract::<PathBuf>().map_err(|_| {
        PyValueError::new_err(format!(
            "cache must be a directory (str or path), True for the host's default store, or False for none; not {}",
            cache.get_type().name().map_or_else(|_| "this".into(), |n| n.to_string())
        ))
    })?;
    // A URL here (the server's, given twice by mistake) would become a
    // directory of that name under the working directory.
    if path
        .to_str()
        .is_some_and(|p| p.contains("://") || p.starts_with("redis:") || p.starts_with("rediss:"))
    {
        return Err(PyValueError::new_err(
            "cache must be a directory for this host's copies (a path), not a URL; the server's URL goes in url=",
        ));
    }
    Ok(CacheSetting::Path(path))
}

/// A brain store opened by this process, of any backend.
#[derive(Debug)]
#[pyclass(name = "Store", module = "brain._brain", frozen)]
pub struct PyStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, spelled out (`shm:///dev/shm/...`, `memory://name`).
    url: String,
    /// The same store as its own type, when it is a Redis store.
    redis: Option<RedisStore>,
}

impl PyStore {
    /// Runs `call` without the GIL when the store is on a server, whose
    /// replies may take a network's time (or a minute, when it is paused),
    /// during which every other Python thread would stop; the calls of a
    /// shared-memory or memory store take microseconds, less than giving
    /// the GIL up and taking it back.
    fn may_wait<T: Send>(&self, py: Python<'_>, call: impl FnOnce() -> T + Send) -> T {
        if self.redis.is_some() {
            py.detach(call)
        } else {
            call()
        }
    }

    /// A frame in parts, read whole: its manifest `view` and every part.
    fn frame(&self, py: Python<'_>, view: ObjectView, verify: bool) -> PyResult<Py<PyAny>> {
        let store = &*self.store;
        let read = py
            .detach(|| -> brain_core::Result<_> {
                let table = frames::table_from_view(store, view)?;
                if let (true, StoredTable::Parts(frame)) = (verify, &table) {
                    frame.verify(&store.location())?;
                }
                Ok(table)
            })
            .py()?;
        match read {
            StoredTable::Parts(frame) => PyFrame { frame }.into_py_any(py),
            // The name was replaced by a table stored whole meanwhile.
            StoredTable::Whole(view) => object(py, view),
        }
    }

    fn versioned(&self, operation: &'static str) -> PyResult<&RedisStore> {
        self.redis.as_ref().ok_or_else(|| {
            crate::errors::to_py(brain_core::Error::Unsupported {
                location: self.store.location(),
                operation,
                reason: "only a Redis store keeps versions of objects; update a name under its lock (Brain.update) instead",
            })
        })
    }
}

#[pymethods]
impl PyStore {
    /// Opens (creating if needed) the store at `url` (a path, `shm://PATH`,
    /// `memory://NAME`, or `redis://`, `rediss://`, `redis+cluster://`) or
    /// `path`; with neither, the default store: `$BRAIN_URL`, else
    /// `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`. `cache` and
    /// `consistency` are a Redis store's: where this host caches what it
    /// reads (None: the host's default store; a path; False: nowhere) and
    /// how cached reads are validated ("tracked" or "strict").
    #[new]
    #[pyo3(signature = (url=None, path=None, capacity=None, checksums=false, cache=None, consistency=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: Option<&str>,
        path: Option<PathBuf>,
        capacity: Option<u64>,
        checksums: bool,
        cache: Option<&Bound<'_, PyAny>>,
        consistency: Option<&str>,
    ) -> PyResult<Self> {
        let url = match (url, path) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give a store's url or its path, not both",
                ))
            }
            (Some(url), None) => StoreUrl::parse(url).py()?,
            (None, Some(path)) => StoreUrl::shm(path),
            (None, None) => brain::default_url().py()?,
        };
        let mut options = OpenOptions::new()
            .checksums(checksums)
            .cache(cache_setting(cache)?);
        if let Some(consistency) = consistency {
            options = options.consistency(match consistency {
                "tracked" => Consistency::Tracked,
                "strict" => Consistency::Strict,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "consistency must be \"tracked\" or \"strict\", not {other:?}"
                    )))
                }
            });
        }
        if let Some(capacity) = capacity {
            options = options.capacity(Some(capacity));
        }
        let (store, redis): (Arc<dyn ObjectStore>, Option<RedisStore>) = match &url {
            StoreUrl::Redis(text) => {
                let redis = py.detach(|| options.open_redis(text)).py()?;
                (Arc::new(redis.clone()), Some(redis))
            }
            _ => (py.detach(|| options.open_parsed(&url)).py()?, None),
        };
        Ok(PyStore {
            store,
            url: url.to_string(),
            redis,
        })
    }

    /// The version a Redis store's name holds (a random id), or None when
    /// it does not exist. Other stores have no versions: they refuse.
    fn version(&self, py: Python<'_>, namespace: &str, name: &str) -> PyResult<Option<String>> {
        let redis = self.versioned("tell the version of an object")?;
        py.detach(|| redis.version(namespace, name)).py()
    }

    /// A Redis store's object as an `Object` and the version it is of, read
    /// with one round trip whatever the consistency (for a compare-and-set
    /// with `expect_version`); None when it does not exist.
    fn get_versioned(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
    ) -> PyResult<Option<(Py<PyAny>, String)>> {
        let redis = self.versioned("read an object with its version")?;
        match py.detach(|| redis.get_versioned(namespace, name)).py()? {
            Some((view, version)) if view.meta().codec == Codec::FrameParts => {
                Ok(Some((self.frame(py, view, false)?, version)))
            }
            Some((view, version)) => Ok(Some((object(py, view)?, version))),
            None => Ok(None),
        }
    }

    /// Until the returned guard is released, this thread's writes and
    /// deletes of the name are published only if it still holds `version`
    /// (None: only if it does not exist); `guard.conflicted` says whether one
    /// was refused because another writer got there first. Redis stores only.
    #[pyo3(signature = (namespace, name, version=None))]
    fn expect_version(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> PyResult<PyVersionGuard> {
        let redis = self.versioned("compare and set")?;
        Ok(PyVersionGuard {
            inner: Mutex::new(Some(redis.expect_version(namespace, name, version))),
            conflicted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The store's directory, or None for a store that has none (`memory://`).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.store.location().path().map(PathBuf::from)
    }

    /// The store's URL: `shm:///dev/shm/...` or `memory://NAME`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Writes the concatenation of `parts` (objects exporting buffers) as one
    /// object. A `description` of None keeps the description of the object it
    /// replaces (brain-plasma's rule), or none for a new name.
    #[pyo3(signature = (namespace, name, codec_name, parts, description=None))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
        codec_name: &str,
        parts: Vec<Bound<'py, PyAny>>,
        description: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let codec = codec(codec_name)?;
        let buffers = parts
            .iter()
            .map(InputBuffer::new)
            .collect::<PyResult<Vec<_>>>()?;
        let segments: Vec<SharedBytes<'_>> = buffers.iter().map(InputBuffer::shared).collect();
        let description = description.unwrap_or("");
        // Without the GIL even when small: replacing unlinks the old object,
        // which takes time in proportion to its size.
        let meta = py
            .detach(|| {
                self.store.put_shared_keeping_description(
                    namespace,
                    name,
                    codec,
                    description,
                    &segments,
                )
            })
            .py()?;
        meta_dict(py, &meta)
    }

    /// Writes an ndarray object: `dtype` is NumPy's description of the
    /// dtype (`numpy.lib.format.dtype_to_descr`) as JSON, `data` the
    /// elements in C order (Fortran order with `fortran_order`). The layout
    /// is brain-core's, checked against the data's length.
    #[pyo3(signature = (namespace, name, dtype, shape, fortran_order, data, description=None))]
    #[allow(clippy::too_many_arguments)]
    fn put_ndarray<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
        dtype: &str,
        shape: Vec<u64>,
        fortran_order: bool,
        data: &Bound<'py, PyAny>,
        description: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dtype: Dtype = serde_json::from_str(dtype).map_err(|e| {
            PyValueError::new_err(format!(
                "dtype {dtype:?} is not NumPy's description of a dtype: {e}"
            ))
        })?;
        let meta = NdArrayMeta {
            dtype,
            shape,
            fortran_order,
        };
        let data = InputBuffer::new(data)?;
        let bytes = data.shared();
        let description = description.unwrap_or("");
        let meta = py
            .detach(|| {
                ndarray_segments((namespace, name), &meta, bytes, |segments| {
                    self.store.put_shared_keeping_description(
                        namespace,
                        name,
                        Codec::NdArray,
                        description,
                        segments,
                    )
                })
            })
            .py()?;
        meta_dict(py, &meta)
    }

    /// Writes a pickle-5 object: the pickle stream and its out-of-band
    /// buffers, in brain-core's parts layout.
    #[pyo3(signature = (namespace, name, stream, buffers, description=None))]
    fn put_pickle<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
        stream: &Bound<'py, PyAny>,
        buffers: Vec<Bound<'py, PyAny>>,
        description: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let stream = InputBuffer::new(stream)?;
        let buffers = buffers
            .iter()
            .map(InputBuffer::new)
            .collect::<PyResult<Vec<_>>>()?;
        let shared: Vec<SharedBytes<'_>> = buffers.iter().map(InputBuffer::shared).collect();
        let stream = stream.shared();
        let description = description.unwrap_or("");
        let meta = py
            .detach(|| {
                pickle_segments(stream, &shared, |segments| {
                    self.store.put_shared_keeping_description(
                        namespace,
                        name,
                        Codec::Pickle5,
                        description,
                        segments,
                    )
                })
            })
            .py()?;
        meta_dict(py, &meta)
    }

    /// Writes `text` as a UTF-8 text object (description as for `put`).
    #[pyo3(signature = (namespace, name, text, description=None))]
    fn put_text(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        text: &str,
        description: Option<&str>,
    ) -> PyResult<()> {
        let description = description.unwrap_or("");
        let text = [SharedBytes::from(text.as_bytes())];
        py.detach(|| {
            self.store.put_shared_keeping_description(
                namespace,
                name,
                Codec::Text,
                description,
                &text,
            )
        })
        .py()?;
        Ok(())
    }

    /// The object as an `Object` (a zero-copy buffer), or None. With
    /// `verify`, the payload is first checked against the checksum its
    /// writer stored (a pass over every byte, without the GIL); a payload
    /// changed since it was written raises `BrainCorruptError`.
    /// With `current`, the object as the store holds it now, never a copy
    /// that may lag behind (see `ObjectStore::get_current`).
    #[pyo3(signature = (namespace, name, verify=false, current=false))]
    fn get(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        verify: bool,
        current: bool,
    ) -> PyResult<Option<Py<PyAny>>> {
        let view = if current {
            py.detach(|| {
                let view = self.store.get_current(namespace, name)?;
                if let (true, Some(view)) = (verify, &view) {
                    let meta = view.meta();
                    view.verify(self.store.location().join(&meta.namespace).join(&meta.name))?;
                }
                Ok(view)
            })
        } else if verify {
            py.detach(|| self.store.get_verified(namespace, name))
        } else {
            self.may_wait(py, || self.store.get(namespace, name))
        };
        match view.py()? {
            Some(view) if view.meta().codec == Codec::FrameParts => {
                self.frame(py, view, verify).map(Some)
            }
            Some(view) => Ok(Some(object(py, view)?)),
            None => Ok(None),
        }
    }

    /// The object, decoded where that is cheap: `str` for text, `bytes` for
    /// raw bytes, an `Object` for the rest. None when there is no such name.
    fn recall(&self, py: Python<'_>, namespace: &str, name: &str) -> PyResult<Option<Py<PyAny>>> {
        let Some(view) = self.may_wait(py, || self.store.get(namespace, name)).py()? else {
            return Ok(None);
        };
        match view.meta().codec {
            Codec::Text => {
                let bytes = view.bytes();
                let checked = if bytes.len() >= RELEASE_GIL_FROM {
                    py.detach(|| std::str::from_utf8(bytes))
                } else {
                    std::str::from_utf8(bytes)
                };
                let text = checked.map_err(|e| {
                    crate::errors::to_py(brain_core::Error::Codec {
                        namespace: namespace.into(),
                        name: name.into(),
                        codec: Codec::Text,
                        action: "decode",
                        detail: e.to_string(),
                    })
                })?;
                Ok(Some(PyString::new(py, text).into_any().unbind()))
            }
            Codec::Raw if view.len() >= RELEASE_GIL_FROM => {
                let bytes = crate::buffer::bytes_copied_without_gil(py, view.bytes())?;
                Ok(Some(bytes.into_any().unbind()))
            }
            Codec::Raw => Ok(Some(PyBytes::new(py, view.bytes()).into_any().unbind())),
            Codec::FrameParts => self.frame(py, view, false).map(Some),
            _ => Ok(Some(object(py, view)?)),
        }
    }

    /// The object's metadata as a dict, or None.
    fn metadata<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let store = &*self.store;
        py.detach(|| store.metadata(namespace, name))
            .py()?
            .map(|meta| {
                let (meta, parts) = py.detach(|| frames::table_meta(store, meta));
                shown_meta_dict(py, &meta, parts)
            })
            .transpose()
    }

    /// Metadata dicts of every object in a namespace, sorted by name.
    fn list<'py>(&self, py: Python<'py>, namespace: &str) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let store = &*self.store;
        let metas = py
            .detach(|| -> brain_core::Result<Vec<(ObjectMeta, usize)>> {
                let mut metas = store.list(namespace)?;
                metas.retain(|meta| !frames::is_frame_part(&meta.name));
                Ok(metas
                    .into_iter()
                    .map(|meta| frames::table_meta(store, meta))
                    .collect())
            })
            .py()?;
        metas
            .iter()
            .map(|(meta, parts)| shown_meta_dict(py, meta, *parts))
            .collect()
    }

    /// The names in a namespace, sorted.
    fn names(&self, py: Python<'_>, namespace: &str) -> PyResult<Vec<String>> {
        let mut names = py.detach(|| self.store.names(namespace)).py()?;
        names.retain(|name| !frames::is_frame_part(name));
        Ok(names)
    }

    /// Every namespace, sorted.
    fn namespaces(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.may_wait(py, || self.store.namespaces()).py()
    }

    /// Whether the name exists.
    fn contains(&self, py: Python<'_>, namespace: &str, name: &str) -> PyResult<bool> {
        self.may_wait(py, || self.store.contains(namespace, name))
            .py()
    }

    /// Deletes a name (a frame in parts with its parts); returns whether it
    /// existed. `lock_held`: this thread holds the name's lock.
    #[pyo3(signature = (namespace, name, lock_held=false))]
    fn delete(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        lock_held: bool,
    ) -> PyResult<bool> {
        let store = &*self.store;
        py.detach(|| {
            if lock_held {
                frames::delete_table_locked(store, namespace, name)
            } else {
                frames::delete_table(store, namespace, name)
            }
        })
        .py()
    }

    /// Creates a namespace (a no-op when it exists).
    fn create_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        self.may_wait(py, || self.store.create_namespace(namespace))
            .py()
    }

    /// Removes a namespace and its objects; returns how many objects went.
    fn remove_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<u64> {
        py.detach(|| self.store.remove_namespace(namespace)).py()
    }

    /// Capacity and usage: a dict of capacity (None for no limit), used,
    /// recycled (replaced objects' bytes kept for reuse) and free, in bytes,
    /// and the store's own figures (filesystem_size and filesystem_free for
    /// a shared-memory store).
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let usage = self.may_wait(py, || self.store.usage()).py()?;
        let dict = PyDict::new(py);
        dict.set_item("capacity", usage.capacity)?;
        dict.set_item("used", usage.used)?;
        dict.set_item("recycled", usage.recycled)?;
        dict.set_item("free", usage.free)?;
        for detail in &usage.details {
            dict.set_item(detail.key, detail.bytes)?;
        }
        Ok(dict)
    }

    /// Sets the store's capacity in bytes for every process (None: no limit).
    #[pyo3(signature = (capacity))]
    fn set_capacity(&self, py: Python<'_>, capacity: Option<u64>) -> PyResult<()> {
        self.may_wait(py, || self.store.set_capacity(capacity)).py()
    }

    /// Starts a streamed write; see `Writer`.
    #[pyo3(signature = (namespace, name, codec_name, description=None, expected_len=None))]
    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec_name: &str,
        description: Option<&str>,
        expected_len: Option<u64>,
    ) -> PyResult<PyWriter> {
        let description = description.unwrap_or("");
        let kept = brain_core::kept_description(&*self.store, namespace, name, description).py()?;
        let description = kept.as_deref().unwrap_or(description);
        let writer = self
            .store
            .writer(
                namespace,
                name,
                codec(codec_name)?,
                description,
                expected_len,
            )
            .py()?;
        Ok(PyWriter {
            inner: Mutex::new(Some(writer)),
        })
    }

    /// Starts a streamed write of a new part of frame `name`: `(part id, Writer)`.
    /// Nothing references the part until `change_frame` does.
    #[pyo3(signature = (namespace, name, expected_len=None))]
    fn part_writer(
        &self,
        namespace: &str,
        name: &str,
        expected_len: Option<u64>,
    ) -> PyResult<(String, PyWriter)> {
        let (id, writer) = frames::part_writer(&*self.store, namespace, name, expected_len).py()?;
        Ok((
            id,
            PyWriter {
                inner: Mutex::new(Some(writer)),
            },
        ))
    }

    /// Applies a change to frame `name` and publishes it as the name's new
    /// version: `change` is "replace", "assign" or "append" (with `part`, a
    /// part written with `part_writer`) or "drop" (with `columns`). The
    /// caller holds the name's lock. `metadata` (bytes to bytes) becomes
    /// the schema's; `description` None keeps the old one.
    #[pyo3(signature = (namespace, name, change, codec_name, part=None, columns=None, metadata=None, description=None))]
    #[allow(clippy::too_many_arguments)]
    fn change_frame<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
        change: &str,
        codec_name: &str,
        part: Option<&str>,
        columns: Option<Vec<String>>,
        metadata: Option<std::collections::HashMap<Vec<u8>, Vec<u8>>>,
        description: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let codec = codec(codec_name)?;
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes)
                .map_err(|_| PyValueError::new_err("schema metadata must be UTF-8"))
        };
        let metadata = metadata
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| Ok((text(k)?, text(v)?)))
                    .collect::<PyResult<std::collections::HashMap<_, _>>>()
            })
            .transpose()?;
        let columns: Vec<&str> = columns.iter().flatten().map(String::as_str).collect();
        let need_part =
            || part.ok_or_else(|| PyValueError::new_err(format!("change {change:?} needs part=")));
        let change = match change {
            "replace" => frames::FrameChange::Replace { part: need_part()? },
            "assign" => frames::FrameChange::Assign { part: need_part()? },
            "append" => frames::FrameChange::Append { part: need_part()? },
            "drop" => frames::FrameChange::Drop { columns: &columns },
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown frame change {other:?}; use replace, assign, append or drop"
                )))
            }
        };
        // An empty description keeps the old one, as every write does.
        let description = description.filter(|d| !d.is_empty());
        let store = &*self.store;
        let meta = py
            .detach(|| {
                frames::change_frame(store, namespace, name, change, codec, metadata, description)
            })
            .py()?;
        meta_dict(py, &meta)
    }

    /// Deletes a part of frame `name` that nothing references (after a
    /// failed change).
    fn discard_part(&self, namespace: &str, name: &str, part: &str) {
        frames::discard_part(&*self.store, namespace, name, part);
    }

    /// Rewrites frame `name` as one part; None for a table stored whole.
    /// The caller holds the name's lock.
    fn compact_frame<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let store = &*self.store;
        py.detach(|| frames::compact_frame(store, namespace, name))
            .py()?
            .map(|meta| meta_dict(py, &meta))
            .transpose()
    }

    /// Watches one namespace (or all, with None) for sets and deletes.
    #[pyo3(signature = (namespace=None))]
    fn watch(&self, py: Python<'_>, namespace: Option<&str>) -> PyResult<PyWatcher> {
        let watcher = frames::skip_parts(self.may_wait(py, || self.store.watch(namespace)).py()?);
        Ok(PyWatcher {
            inner: Mutex::new(Some(watcher)),
            process: brain_core::fork_mark(),
        })
    }

    /// Blocks (without the GIL) until the name exists, then returns its `Object`.
    fn wait_for(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        timeout: f64,
    ) -> PyResult<Py<PyAny>> {
        // No limit: a wait longer than anyone will wait.
        let timeout = seconds(Some(timeout))?.unwrap_or(Duration::MAX);
        let store = &self.store;
        // Wait in slices so Ctrl-C is noticed.
        let started = std::time::Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let slice = left.min(Duration::from_millis(250));
            match py.detach(|| store.wait_for(namespace, name, slice)) {
                Ok(view) if view.meta().codec == Codec::FrameParts => {
                    return self.frame(py, view, false)
                }
                Ok(view) => return object(py, view),
                Err(brain_core::Error::Timeout { .. }) if !left.is_zero() => py.check_signals()?,
                // A server restarting under the wait (Redis): waited out too.
                Err(err) if err.is_server_away() && !left.is_zero() => py.check_signals()?,
                Err(brain_core::Error::Timeout {
                    namespace, name, ..
                }) => {
                    return Err(crate::errors::to_py(brain_core::Error::Timeout {
                        namespace,
                        name,
                        waited: timeout,
                    }))
                }
                Err(err) => return Err(crate::errors::to_py(err)),
            }
        }
    }

    /// Takes the cross-process lock on a name (None: wait as long as it takes).
    #[pyo3(signature = (namespace, name, timeout=None))]
    fn lock(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        timeout: Option<f64>,
    ) -> PyResult<PyLock> {
        let timeout = seconds(timeout)?;
        // Wait in slices so Ctrl-C is noticed between them.
        let started = std::time::Instant::now();
        let lock = loop {
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            let slice = left.map_or(Duration::from_millis(250), |l| {
                l.min(Duration::from_millis(250))
            });
            match py.detach(|| self.store.lock(namespace, name, Some(slice))) {
                Ok(lock) => break lock,
                Err(brain_core::Error::LockTimeout { .. }) if left.is_none_or(|l| l > slice) => {
                    py.check_signals()?
                }
                Err(brain_core::Error::LockTimeout {
                    namespace,
                    name,
                    location,
                    ..
                }) => {
                    return Err(crate::errors::to_py(brain_core::Error::LockTimeout {
                        namespace,
                        name,
                        waited: started.elapsed(),
                        location,
                    }))
                }
                Err(err) => return Err(crate::errors::to_py(err)),
            }
        };
        Ok(PyLock {
            inner: Mutex::new(Some(lock)),
        })
    }

    /// Removes what writers that died left behind, and gives back memory
    /// kept for reuse.
    fn gc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (report, swept) = py
            .detach(|| -> brain_core::Result<_> {
                // Parts first: the store's own gc then counts what they freed.
                let swept = frames::sweep_all_parts(&*self.store, true)?;
                let report = match self.store.gc() {
                    // A store that keeps nothing a dead writer could leave
                    // behind (memory://) has only frame parts to collect.
                    Err(brain_core::Error::Unsupported { .. }) => Default::default(),
                    other => other?,
                };
                Ok((report, swept))
            })
            .py()?;
        let dict = PyDict::new(py);
        dict.set_item(
            "frame_parts",
            swept
                .iter()
                .map(|(_, s)| s.unreferenced.len())
                .sum::<usize>(),
        )?;
        dict.set_item(
            "frame_part_bytes",
            swept
                .iter()
                .flat_map(|(_, s)| &s.unreferenced)
                .map(|(_, size)| size)
                .sum::<u64>(),
        )?;
        dict.set_item("stray_objects", report.stray_objects)?;
        dict.set_item("stray_namespaces", report.stray_namespaces)?;
        dict.set_item("bytes_freed", report.bytes_freed)?;
        dict.set_item("recycled_objects", report.recycled_objects)?;
        dict.set_item("recycled_bytes", report.recycled_bytes)?;
        dict.set_item("reservations_reclaimed", report.reservations_reclaimed)?;
        Ok(dict)
    }

    /// Checks every object and rebuilds the usage count.
    #[pyo3(signature = (delete_corrupt=false))]
    fn fsck<'py>(&self, py: Python<'py>, delete_corrupt: bool) -> PyResult<Bound<'py, PyDict>> {
        let (report, swept) = py
            .detach(|| -> brain_core::Result<_> {
                Ok((
                    self.store.fsck(delete_corrupt)?,
                    frames::sweep_all_parts(&*self.store, false)?,
                ))
            })
            .py()?;
        let dict = PyDict::new(py);
        let broken: Vec<(String, String, String)> = swept
            .iter()
            .flat_map(|(ns, s)| {
                s.broken
                    .iter()
                    .map(move |(n, why)| (ns.clone(), n.clone(), why.clone()))
            })
            .collect();
        dict.set_item("broken_frames", broken)?;
        dict.set_item(
            "unreferenced_frame_parts",
            swept
                .iter()
                .map(|(_, s)| s.unreferenced.len())
                .sum::<usize>(),
        )?;
        dict.set_item("objects", report.objects)?;
        dict.set_item("used_before", report.used_before)?;
        dict.set_item("used_after", report.used_after)?;
        let corrupt: Vec<(String, String)> = report
            .corrupt
            .into_iter()
            .map(|c| (c.location.to_string(), c.reason))
            .collect();
        dict.set_item("corrupt", corrupt)?;
        dict.set_item("deleted", report.deleted)?;
        dict.set_item("recycled", report.recycled)?;
        Ok(dict)
    }

    /// Keeps `bytes` of the store's memory allocated for this process's
    /// writes (in the background, or before returning with `wait`); returns
    /// the bytes allocated when waiting.
    #[pyo3(signature = (bytes, wait=false))]
    fn preallocate(&self, py: Python<'_>, bytes: u64, wait: bool) -> PyResult<u64> {
        py.detach(|| self.store.preallocate(bytes, wait)).py()
    }

    /// Drops this process's cached mappings of large objects.
    fn clear_cache(&self) {
        self.store.clear_cache();
    }

    /// Where the store is, as errors name it (a path, or the URL).
    #[getter]
    fn location(&self) -> String {
        self.store.location().to_string()
    }
}

/// An object being written; nothing is visible until `commit()`.
///
/// It is a writable binary file object (`write`, `tell`, `flush`), so
/// `pyarrow.ipc.new_file(writer, schema)` streams a table straight into the
/// store with one copy.
#[derive(Debug)]
#[pyclass(name = "Writer", module = "brain._brain", frozen)]
pub struct PyWriter {
    inner: Mutex<Option<ObjectWriter>>,
}

impl PyWriter {
    /// Runs `f` on the writer without the GIL. The mutex may be held by a
    /// thread that released the GIL for a long write: waiting for it with
    /// the GIL held would deadlock the interpreter.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ObjectWriter) -> brain_core::Result<T> + Send,
    ) -> PyResult<T> {
        let done = py.detach(|| {
            let mut guard = self.inner.lock().expect("writer lock");
            guard.as_mut().map(f)
        });
        done.ok_or_else(|| {
            PyRuntimeError::new_err(
                "this brain writer was already committed or aborted; start a new one",
            )
        })?
        .py()
    }

    fn take(&self, py: Python<'_>) -> Option<ObjectWriter> {
        py.detach(|| self.inner.lock().expect("writer lock").take())
    }
}

#[pymethods]
impl PyWriter {
    /// Appends a buffer to the payload; returns its length.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buffer = InputBuffer::new(data)?;
        let bytes = buffer.shared();
        self.with(py, |writer| writer.write_shared(bytes))?;
        Ok(bytes.len())
    }

    /// Appends several buffers, one after another, as as many `write` calls
    /// would. A table's column buffers handed over at once are copied as
    /// one large copy, split across cores.
    fn writelines(&self, py: Python<'_>, buffers: &Bound<'_, PyAny>) -> PyResult<()> {
        let buffers = buffers
            .try_iter()?
            .map(|item| InputBuffer::new(&item?))
            .collect::<PyResult<Vec<_>>>()?;
        let pieces: Vec<_> = buffers.iter().map(InputBuffer::shared).collect();
        self.with(py, |writer| writer.write_gathered(&pieces))
    }

    /// Bytes written so far.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |writer| Ok(writer.payload_len()))
    }

    /// Nothing to flush: writes go straight to the store's file.
    fn flush(&self) {}

    /// True: a writer accepts writes.
    fn writable(&self) -> bool {
        true
    }

    /// False: a writer cannot seek.
    fn seekable(&self) -> bool {
        false
    }

    /// Does not publish or discard: call `commit()` or `abort()`.
    fn close(&self) {}

    /// Whether the writer was committed or aborted.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.lock().expect("writer lock").is_none())
    }

    /// Publishes the object atomically; returns its metadata.
    fn commit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let writer = self.take(py).ok_or_else(|| {
            PyRuntimeError::new_err("this brain writer was already committed or aborted")
        })?;
        let meta = py.detach(|| writer.commit()).py()?;
        meta_dict(py, &meta)
    }

    /// Discards what was written; nothing is published.
    fn abort(&self, py: Python<'_>) {
        let writer = self.take(py);
        py.detach(|| drop(writer));
    }
}

/// A stream of `("set" | "deleted", namespace, name)` events.
#[derive(Debug)]
#[pyclass(name = "Watcher", module = "brain._brain", frozen)]
pub struct PyWatcher {
    /// `None` once closed.
    inner: Mutex<Option<Watcher>>,
    /// The process that made it ([`brain_core::fork_mark`]): a forked child
    /// has a copy of its state (and of its lock, perhaps held by a thread
    /// the child does not have).
    process: u64,
}

fn event_tuple(py: Python<'_>, event: WatchEvent) -> PyResult<Py<PyAny>> {
    let kind = match event {
        WatchEvent::Set { .. } => "set",
        WatchEvent::Deleted { .. } => "deleted",
        _ => "unknown",
    };
    (kind, event.namespace(), event.name()).into_py_any(py)
}

#[pymethods]
impl PyWatcher {
    /// The next event, waiting at most `timeout` seconds (None: forever); None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let timeout = seconds(timeout)?;
        if brain_core::fork_mark() != self.process {
            return Err(PyRuntimeError::new_err(
                "this watcher was made in the parent of this forked process: make a new one here (brain.watch())",
            ));
        }
        let started = std::time::Instant::now();
        loop {
            let slice = match timeout {
                Some(t) => t
                    .saturating_sub(started.elapsed())
                    .min(Duration::from_millis(250)),
                None => Duration::from_millis(250),
            };
            let next = py.detach(|| {
                self.inner
                    .lock()
                    .expect("watcher lock")
                    .as_mut()
                    .map(|watcher| watcher.next_event(Some(slice)))
            });
            let Some(next) = next else {
                return Err(PyRuntimeError::new_err(
                    "this watcher is closed: make a new one (brain.watch())",
                ));
            };
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            match next {
                Ok(Some(event)) => return event_tuple(py, event).map(Some),
                // A server away (a Redis restart) is waited out within the
                // time given, as wait_for waits it out; the slice of 250 ms
                // is only for Ctrl-C.
                Err(err) if err.is_server_away() && left.is_none_or(|left| !left.is_zero()) => {
                    py.check_signals()?;
                    continue;
                }
                other => {
                    other.py()?;
                }
            }
            if left.is_some_and(|left| left.is_zero()) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next event; iteration ends when the watcher is closed.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.closed() {
            return Ok(None);
        }
        self.next_event(py, None)
    }

    /// Stops watching: what the watcher holds (its registration, its
    /// descriptors, a Redis store's subscription) is given back now, not
    /// when it is collected. Closing again does nothing.
    fn close(&self, py: Python<'_>) {
        if brain_core::fork_mark() != self.process {
            // A forked child's copy is left untouched: dropping it would end
            // the parent's registration (and touch the parent's table) from
            // here, and its lock may have been held by a parent thread at
            // the fork.
            return;
        }
        let watcher = self.inner.lock().expect("watcher lock").take();
        py.detach(|| drop(watcher));
    }

    /// Whether [`PyWatcher::close`] was called (or the watcher was made in
    /// the parent of this forked process, where it cannot be used).
    #[getter]
    fn closed(&self) -> bool {
        brain_core::fork_mark() != self.process
            || self.inner.lock().expect("watcher lock").is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }
}

impl Drop for PyWatcher {
    fn drop(&mut self) {
        if brain_core::fork_mark() != self.process {
            // As in `close`: a forked child leaves its parent's watcher be.
            let inner = self
                .inner
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::forget(inner.take());
        }
    }
}

/// A compare-and-set in force on one name (a Redis store's), from
/// `Store.expect_version`; a context manager.
#[derive(Debug)]
#[pyclass(name = "VersionGuard", module = "brain._brain", frozen)]
pub struct PyVersionGuard {
    inner: Mutex<Option<ExpectVersion>>,
    conflicted: std::sync::atomic::AtomicBool,
}

#[pymethods]
impl PyVersionGuard {
    /// Whether a write or delete was refused because another writer changed
    /// the name first.
    #[getter]
    fn conflicted(&self) -> bool {
        let inner = self.inner.lock().expect("guard lock");
        inner.as_ref().map_or(
            self.conflicted.load(std::sync::atomic::Ordering::SeqCst),
            ExpectVersion::conflicted,
        )
    }

    /// Ends the expectation: later writes are published whatever the name holds.
    fn release(&self) {
        let mut inner = self.inner.lock().expect("guard lock");
        if let Some(guard) = inner.take() {
            self.conflicted
                .store(guard.conflicted(), std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }
}

/// A held cross-process lock on one name; a context manager.
#[derive(Debug)]
#[pyclass(name = "Lock", module = "brain._brain", frozen, weakref)]
pub struct PyLock {
    inner: Mutex<Option<NameLock>>,
}

#[pymethods]
impl PyLock {
    /// Releases the lock (also done on garbage collection and process exit).
    fn release(&self) {
        drop(self.inner.lock().expect("lock lock").take());
    }

    /// Whether this process still holds the lock (a child forked while
    /// its parent held it does not).
    #[getter]
    fn held(&self) -> bool {
        self.inner
            .lock()
            .expect("lock lock")
            .as_ref()
            .is_some_and(NameLock::held_here)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }
}
