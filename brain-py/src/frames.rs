//! Frames stored in parts (brain_core::frames) as Python sees them: a
//! `Frame` holds the manifest and the parts it references, read together,
//! so a writer publishing meanwhile changes nothing this reader holds.

use std::sync::Mutex;

use brain_core::frames::StoredFrame;
use brain_core::Error;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::columns::PyArrowColumns;
use crate::errors::to_py;

/// A frame stored in parts, as read: the manifest and every part it
/// references, kept alive (and so valid) while this object lives.
#[derive(Debug)]
#[pyclass(name = "Frame", module = "brain._brain", frozen)]
pub struct PyFrame {
    pub(crate) frame: StoredFrame,
}

#[pymethods]
impl PyFrame {
    /// The codec the frame was written with (`"arrow"`, `"pandas"` or `"polars"`).
    #[getter]
    fn codec(&self) -> &'static str {
        self.frame.manifest().codec.name()
    }

    /// The frame's name.
    #[getter]
    fn name(&self) -> &str {
        &self.frame.view().meta().name
    }

    /// The frame's namespace.
    #[getter]
    fn namespace(&self) -> &str {
        &self.frame.view().meta().namespace
    }

    /// The description given when it was written.
    #[getter]
    fn description(&self) -> &str {
        &self.frame.view().meta().description
    }

    /// The bytes its parts hold.
    #[getter]
    fn size(&self) -> u64 {
        self.frame.parts_size()
    }

    /// Its rows.
    #[getter]
    fn rows(&self) -> u64 {
        self.frame.manifest().rows
    }

    /// How many parts hold it (1 after a compaction).
    #[getter]
    fn part_count(&self) -> usize {
        self.frame.manifest().parts.len()
    }

    fn __repr__(&self) -> String {
        let manifest = self.frame.manifest();
        let meta = self.frame.view().meta();
        format!(
            "<brain.Frame {:?} in {:?}: {} rows, {} columns in {} parts, {}>",
            meta.name,
            meta.namespace,
            manifest.rows,
            manifest.schema.fields().len(),
            manifest.parts.len(),
            manifest.codec
        )
    }

    /// The frame's schema (with its metadata) as an Arrow IPC file without
    /// batches, for `pyarrow.ipc.open_file(...).schema`.
    fn schema_ipc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let meta = self.frame.view().meta();
        let bytes = brain_core::format::arrow::encode(&self.frame.manifest().schema, &[]).map_err(
            |source| {
                to_py(Error::Arrow {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    source,
                })
            },
        )?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Every column, zero-copy, for `pyarrow.table(...)` (the schema's
    /// metadata comes with it).
    fn table(&self, py: Python<'_>) -> PyResult<PyArrowColumns> {
        let decoded = py
            .detach(|| self.frame.decode_columns::<Error>(|_| Ok(None)))
            .map_err(to_py)?;
        Ok(PyArrowColumns {
            decoded: Mutex::new(Some(decoded)),
        })
    }
}
