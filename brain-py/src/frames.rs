//! Frames stored in parts (brain_core::frames) as Python sees them: a
//! `Frame` holds the manifest and the parts it references, read together,
//! so a writer publishing meanwhile changes nothing this reader holds.
//! pyarrow assembles the table from the parts (`brain/_codecs.py`), with
//! the fast reader it uses for any stored table.

use brain_core::frames::StoredFrame;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffer::object;

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

    /// Whether its one part is the whole frame, schema and metadata
    /// included (written whole, or compacted): it reads as that part.
    #[getter]
    fn whole(&self) -> bool {
        self.frame.manifest().whole
    }

    /// How many parts hold it (1 after a compaction).
    #[getter]
    fn part_count(&self) -> usize {
        self.frame.manifest().parts.len()
    }

    /// The frame's schema (with its metadata) as an Arrow IPC file without
    /// batches, for `pyarrow.ipc.open_file(...).schema`.
    fn schema_ipc<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.frame.schema_ipc())
    }

    /// Its parts, in the manifest's order, each an `Object` (zero-copy).
    fn parts(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.frame
            .parts()
            .iter()
            .map(|part| object(py, part.clone()))
            .collect()
    }

    /// For each column of the schema, its chunks in row order:
    /// `(part index, field index in that part, rows)`.
    fn columns(&self) -> Vec<Vec<(usize, usize, u64)>> {
        self.frame
            .manifest()
            .columns
            .iter()
            .map(|chunks| chunks.iter().map(|&chunk| chunk.into()).collect())
            .collect()
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
}
