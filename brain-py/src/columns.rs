//! Some columns of a stored table for pyarrow: decoded by brain-core with
//! only those columns, and handed over through the Arrow C stream interface
//! (a PyCapsule named `arrow_array_stream`), zero-copy. pyarrow's own IPC
//! reader copies the columns it reads when asked for a subset of them.
//!
//! A frame written from pandas is asked for by its columns' field names
//! (pandas' labels as strings, as pyarrow names them); its index columns
//! come along, and its pandas metadata is cut down to the columns kept, so
//! that neither this nor pyarrow's `to_pandas` parses the metadata of
//! columns that were not asked for (18 KB of JSON for 165 columns).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use brain_core::format::kept::{Fingerprint, Kept};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use brain_core::format::arrow::{decode_columns_of, footer_fingerprint};
use brain_core::{Codec, Error, ObjectMeta, ObjectView};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyDict};
use serde_json::Value;

use crate::buffer::{object, PyObjectView};
use crate::errors::to_py;
use crate::frames::PyFrame;

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

/// What [`table_columns`] found: the columns (None when some were missing),
/// the table's columns as a caller names them when some were missing (for
/// the error; else none), the schema metadata of the
/// columns picked, the fields asked for that no column has, and for each
/// column picked its position among the table's columns.
type Picked<'py> = (
    Option<PyArrowColumns>,
    Vec<String>,
    Bound<'py, PyDict>,
    Vec<String>,
    Vec<usize>,
);

/// The fields `fields` of the table `obj` holds, in that order, each once
/// (a field name several fields share picks each of them); for a frame
/// written from pandas, its index columns too, last. Nothing is decoded
/// when a field is missing: the missing ones are returned instead.
#[pyfunction]
pub fn table_columns<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    fields: Vec<String>,
) -> PyResult<Picked<'py>> {
    let (decoded, found, _) = pick_columns(obj, &fields)?;
    picked(py, decoded, &found)
}

/// [`table_columns`]' answer for what [`pick_columns`] found.
fn picked<'py>(
    py: Python<'py>,
    decoded: Option<(SchemaRef, Vec<RecordBatch>)>,
    found: &Found,
) -> PyResult<Picked<'py>> {
    // The schema's metadata goes back as `metadata`, cut down to the columns
    // picked: the stream carries none (the whole of pandas' would be copied
    // into pyarrow and then replaced).
    let columns = decoded.map(|(schema, batches)| PyArrowColumns {
        decoded: Mutex::new(Some((
            Arc::new(Schema::new(schema.fields().clone())),
            batches,
        ))),
    });
    // The table's columns are for the error naming the missing ones.
    let existing = if found.missing.is_empty() {
        Vec::new()
    } else {
        found.columns.clone()
    };
    Ok((
        columns,
        existing,
        metadata_dict(py, found)?,
        found.missing.clone(),
        found.positions.clone(),
    ))
}

/// The fields `fields` of the table `obj`, picked and decoded once, for a
/// reader that wants numbers as numpy arrays: `(numbers, picked)`. When
/// each column picked holds numbers without nulls in one piece (what numpy
/// holds as it is), `numbers` is `(for each, an object whose buffer is the
/// column's values; the field names; their Arrow types as pyarrow names
/// them, such as "double")`, else None; `picked` is always what
/// [`table_columns`] returns for the same fields (its metadata serves both).
#[pyfunction]
pub fn numeric_columns<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    fields: Vec<String>,
) -> PyResult<(Option<Numeric>, Picked<'py>)> {
    let (decoded, found, meta) = pick_columns(obj, &fields)?;
    let numbers = match &decoded {
        Some((_, batches)) => numpy_views(py, batches, &meta)?,
        None => None,
    };
    Ok((numbers, picked(py, decoded, &found)?))
}

/// What [`numeric_columns`] returns of columns of numbers.
type Numeric = (Vec<Py<PyAny>>, Vec<String>, Vec<&'static str>);

/// For the one batch `batches` holds, when each of its columns is numbers
/// without nulls: an object over each column's values (as long as they
/// are, the object's metadata otherwise), the names and the types.
fn numpy_views(
    py: Python<'_>,
    batches: &[RecordBatch],
    meta: &ObjectMeta,
) -> PyResult<Option<Numeric>> {
    let [batch] = batches else {
        return Ok(None);
    };
    let mut views = Vec::with_capacity(batch.num_columns());
    let mut types = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        let Some(name) = numpy_number(column.data_type()) else {
            return Ok(None);
        };
        if column.null_count() > 0 {
            return Ok(None);
        }
        let data = column.to_data();
        let width = column.data_type().primitive_width().expect("a number");
        let [values] = data.buffers() else {
            return Ok(None);
        };
        let Some(bytes) = data.len().checked_mul(width) else {
            return Ok(None);
        };
        let from = data.offset() * width;
        if from + bytes > values.len() {
            return Ok(None);
        }
        let mut column_meta = meta.clone();
        column_meta.size = bytes as u64;
        let values = values.slice_with_length(from, bytes);
        views.push(object(py, ObjectView::new(column_meta, values))?);
        types.push(name);
    }
    let names = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    Ok(Some((views, names, types)))
}

/// pyarrow's name of an Arrow type numpy holds with the same bytes.
fn numpy_number(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        _ => return None,
    })
}

fn metadata_dict<'py>(py: Python<'py>, found: &Found) -> PyResult<Bound<'py, PyDict>> {
    let metadata = PyDict::new(py);
    for (key, value) in &found.metadata {
        metadata.set_item(
            PyBytes::new(py, key.as_bytes()),
            PyBytes::new(py, value.as_bytes()),
        )?;
    }
    Ok(metadata)
}

/// The columns `fields` of the table `obj` (a frame or a stored table)
/// decoded (None when some are missing), what the pick found, and the
/// metadata of the object read.
#[allow(clippy::type_complexity)]
fn pick_columns(
    obj: &Bound<'_, PyAny>,
    fields: &[String],
) -> PyResult<(
    Option<(SchemaRef, Vec<RecordBatch>)>,
    Arc<Found>,
    ObjectMeta,
)> {
    let frame = obj.cast::<PyFrame>().ok().map(|frame| &frame.get().frame);
    let view = match frame {
        Some(frame) => frame.view(),
        None => &obj.cast::<PyObjectView>()?.get().view,
    };
    let meta = view.meta();
    if frame.is_none() && !meta.codec.is_arrow() {
        return Err(to_py(Error::CodecMismatch {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            expected: Codec::ArrowIpc,
            found: meta.codec,
        }));
    }
    // What decides the pick: the frame's manifest, or the table's footer.
    let print = match frame {
        Some(frame) => frame.fingerprint(),
        None => footer_fingerprint(view.buffer()).ok().flatten(),
    };
    let key = print.map(|print| plan_key(print, fields));
    let kept = key.as_ref().and_then(|key| PLANS.get(key));
    let mut found = Found::default();
    let pick = |schema: &Schema| match &kept {
        Some(kept) if kept.missing.is_empty() => Ok(Some(kept.indices.clone())),
        Some(_) => Err(Stop::Missing),
        None => found.pick(schema, fields),
    };
    let decoded = match frame {
        Some(frame) => frame.decode_columns(pick),
        None => decode_columns_of(view.buffer(), view.content_id(), print, pick),
    };
    let decoded = match decoded {
        Ok(decoded) => Some(decoded),
        Err(Stop::Missing) => None,
        Err(Stop::Store(err)) => return Err(to_py(err)),
        Err(Stop::Arrow(source)) => {
            return Err(to_py(Error::Arrow {
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                source,
            }))
        }
    };
    let found = match kept {
        Some(kept) => kept,
        // Only a pick that ran gets here (decoding stops before picking
        // only with an error, returned above).
        None => {
            let found = Arc::new(found);
            if let Some(key) = key {
                PLANS.insert(key, found.clone());
            }
            found
        }
    };
    Ok((decoded, found, meta.clone()))
}

/// What picks of some fields of a table found, kept by the fingerprint of
/// what decides the table's schema (its footer, or a frame's manifest) and
/// the fields: a table read again with the same columns picks them without
/// parsing its schema's metadata again (pandas' 18 KB for 165 columns).
static PLANS: Kept<Vec<u8>, Arc<Found>> = Kept::new(256);

fn plan_key(print: Fingerprint, fields: &[String]) -> Vec<u8> {
    let mut key = print.as_ref().to_vec();
    for field in fields {
        // A length before each name: no two lists of names make one key.
        key.extend_from_slice(&(field.len() as u64).to_le_bytes());
        key.extend_from_slice(field.as_bytes());
    }
    key
}

/// pandas' metadata of tables read before, parsed, by its text: parsing
/// the 18 KB of a 165-column frame's on every read of two of its columns
/// cost more than the rest of the read.
static PANDAS: Kept<String, Arc<Value>> = Kept::new(64);

fn parsed_pandas(text: &str) -> Option<Arc<Value>> {
    PANDAS
        .get_or_decode(text, || serde_json::from_str::<Value>(text).map(Arc::new))
        .ok()
}

/// Why the decoding stopped.
enum Stop {
    Arrow(ArrowError),
    Store(Error),
    Missing,
}

impl From<Error> for Stop {
    fn from(err: Error) -> Self {
        Stop::Store(err)
    }
}

impl From<ArrowError> for Stop {
    fn from(err: ArrowError) -> Self {
        Stop::Arrow(err)
    }
}

#[derive(Debug, Default)]
struct Found {
    columns: Vec<String>,
    metadata: HashMap<String, String>,
    missing: Vec<String>,
    positions: Vec<usize>,
    /// The fields to decode (those picked, then the index's).
    indices: Vec<usize>,
}

impl Found {
    /// The indices of the fields to decode, noting what the caller gets back.
    fn pick(&mut self, schema: &Schema, fields: &[String]) -> Result<Option<Vec<usize>>, Stop> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        self.metadata = schema
            .metadata()
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let pandas = self
            .metadata
            .get("pandas")
            .and_then(|text| parsed_pandas(text));
        let index: Vec<String> = pandas
            .as_ref()
            .and_then(|p| p.get("index_columns"))
            .and_then(Value::as_array)
            .map(|columns| {
                columns
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let data: Vec<usize> = (0..names.len())
            .filter(|&i| !index.iter().any(|name| name == names[i]))
            .collect();
        self.columns = data.iter().map(|&i| names[i].to_owned()).collect();
        let mut indices = Vec::new();
        for field in fields {
            let matching: Vec<usize> = data
                .iter()
                .copied()
                .filter(|&i| names[i] == field)
                .collect();
            if matching.is_empty() {
                self.missing.push(field.clone());
            }
            for i in matching {
                if !indices.contains(&i) {
                    indices.push(i);
                }
            }
        }
        if !self.missing.is_empty() {
            return Err(Stop::Missing);
        }
        self.positions = indices
            .iter()
            .map(|i| data.iter().position(|d| d == i).expect("a data column"))
            .collect();
        let index_fields: Vec<usize> = (0..names.len())
            .filter(|&i| index.iter().any(|name| name == names[i]))
            .collect();
        if let Some(Value::Object(pandas)) = pandas.as_deref() {
            // pandas' metadata names each column by its field name: keep the
            // entries of the columns picked, in their order, then the index's.
            let mut kept = serde_json::Map::new();
            for (key, value) in pandas {
                if key != "columns" {
                    kept.insert(key.clone(), value.clone());
                }
            }
            if let Some(Value::Array(entries)) = pandas.get("columns") {
                let mut by_field: HashMap<&str, &Value> = entries
                    .iter()
                    .filter_map(|entry| Some((entry.get("field_name")?.as_str()?, entry)))
                    .collect();
                let picked = indices
                    .iter()
                    .chain(&index_fields)
                    .filter_map(|&i| by_field.remove(names[i]).cloned())
                    .collect();
                kept.insert("columns".into(), Value::Array(picked));
            }
            self.metadata
                .insert("pandas".into(), Value::Object(kept).to_string());
        }
        indices.extend(index_fields);
        self.indices.clone_from(&indices);
        Ok(Some(indices))
    }
}
