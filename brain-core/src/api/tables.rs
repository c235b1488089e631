//! Stored tables as brain-core decodes them: the Arrow IPC payload of the
//! arrow, pandas and polars codecs, whole or only some columns. Frames in
//! parts (`frames`) and the typed calls (`typed`) both read through it.

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema, SchemaRef};

use crate::api::error::{Error, Result};
use crate::api::view::ObjectView;
use crate::format::{arrow, Codec};

/// An error unless `view`'s codec is one of `expected` (the first is named).
pub(crate) fn expect_codec(view: &ObjectView, expected: &[Codec]) -> Result<()> {
    let meta = view.meta();
    if expected.contains(&meta.codec) {
        Ok(())
    } else {
        Err(Error::CodecMismatch {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            expected: expected[0],
            found: meta.codec,
        })
    }
}

/// Why a projected read failed: the file, or the columns asked for.
enum Projection {
    Arrow(ArrowError),
    Missing {
        missing: Vec<String>,
        columns: Vec<String>,
    },
}

impl From<ArrowError> for Projection {
    fn from(err: ArrowError) -> Self {
        Projection::Arrow(err)
    }
}

/// The indices of the fields named `columns`, in that order (every field of
/// a name several share), and the names no field has.
pub(crate) fn column_indices(schema: &Schema, columns: &[&str]) -> (Vec<usize>, Vec<String>) {
    let mut indices = Vec::with_capacity(columns.len());
    let mut missing = Vec::new();
    for column in columns {
        let before = indices.len();
        indices.extend(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, field)| field.name() == column)
                .map(|(i, _)| i),
        );
        if indices.len() == before {
            missing.push((*column).to_owned());
        }
    }
    (indices, missing)
}

/// Decodes a stored table (Arrow, pandas or polars): its schema and record
/// batches, pointing into the object's memory. With `columns`, only those
/// (in that order; every column of a name several share) are decoded.
///
/// # Errors
/// [`Error::CodecMismatch`] when the object is not a table;
/// [`Error::ColumnNotFound`] when a column does not exist; [`Error::Arrow`]
/// when its IPC data is malformed.
pub fn decode_record_batches(
    view: &ObjectView,
    columns: Option<&[&str]>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    expect_codec(
        view,
        &[Codec::ArrowIpc, Codec::PandasArrow, Codec::PolarsArrow],
    )?;
    let pick = |schema: &Schema| {
        let Some(columns) = columns else {
            return Ok(None);
        };
        let (indices, missing) = column_indices(schema, columns);
        if missing.is_empty() {
            return Ok(Some(indices));
        }
        Err(Projection::Missing {
            missing,
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
    };
    let meta = view.meta();
    match arrow::decode_columns_of(view.buffer(), view.content_id(), None, pick) {
        Ok(decoded) => Ok(decoded),
        Err(Projection::Arrow(source)) => Err(Error::Arrow {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            source,
        }),
        Err(Projection::Missing { missing, columns }) => Err(Error::ColumnNotFound {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            missing,
            columns,
        }),
    }
}
