//! Some columns of a stored table for pyarrow: decoded by brain-core with
//! only those columns, and handed over through the Arrow C stream interface
//! (a PyCapsule named `arrow_array_stream`), zero-copy. pyarrow's own IPC
//! reader copies the columns it reads when asked for a subset of them.

use std::sync::{Mutex, PoisonError};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::SchemaRef;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyDict};

use crate::buffer::PyObjectView;
use crate::errors::to_py;

/// Decoded columns of a stored table, waiting for pyarrow to take them
/// (`pyarrow.table(columns)` calls `__arrow_c_stream__`). The arrays point
/// into the stored object and keep its memory alive.
#[derive(Debug)]
#[pyclass(name = "ArrowColumns", module = "brain._brain", frozen)]
pub struct PyArrowColumns {
    decoded: Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

#[pymethods]
impl PyArrowColumns {
    /// The columns as an Arrow C stream, once: the stream moves them to its
    /// reader. The stored types are given as they are (`requested_schema` is
    /// a request the protocol allows a producer to ignore).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        drop(requested_schema);
        let taken = self
            .decoded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((schema, batches)) = taken else {
            return Err(PyValueError::new_err(
                "these columns were already handed to a reader; read the object again",
            ));
        };
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// The columns `columns` of the table `obj` holds, in that order (every
/// column of a name several share), for `pyarrow.table()`.
#[pyfunction]
pub fn arrow_columns(obj: &PyObjectView, columns: Vec<String>) -> PyResult<PyArrowColumns> {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let decoded = brain_core::decode_record_batches(&obj.view, Some(&names)).map_err(to_py)?;
    Ok(PyArrowColumns {
        decoded: Mutex::new(Some(decoded)),
    })
}

/// The column names and the schema metadata of the table `obj` holds, read
/// from the file's footer (no column is decoded).
#[pyfunction]
pub fn table_schema<'py>(
    py: Python<'py>,
    obj: &PyObjectView,
) -> PyResult<(Vec<String>, Bound<'py, PyDict>)> {
    let schema = brain_core::record_batch_schema(&obj.view).map_err(to_py)?;
    let names = schema.fields().iter().map(|f| f.name().clone()).collect();
    let metadata = PyDict::new(py);
    for (key, value) in schema.metadata() {
        metadata.set_item(
            PyBytes::new(py, key.as_bytes()),
            PyBytes::new(py, value.as_bytes()),
        )?;
    }
    Ok((names, metadata))
}
