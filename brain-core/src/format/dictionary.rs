//! One dictionary for a column whose record batches each carry their own.
//!
//! A frame appended to holds a record batch per append, and each batch of a
//! dictionary column (a pandas categorical) has its own dictionary: the
//! categories of that append's rows. Joining the batches into one (a
//! compaction) with arrow's concatenation either puts the dictionaries one
//! after another, repeating values (pandas refuses repeated categories), or
//! keeps only the values some row uses (dropping categories no row has).
//! Here every batch's dictionary is replaced by their union, in order of
//! first appearance, which is how pyarrow unifies them when it reads the
//! batches as one column: the frame read after compacting is the frame read
//! before. Dictionaries nested inside other types are left as they are.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{make_array, Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

/// `batches` (of `schema`) with every top-level dictionary column's
/// dictionaries replaced by their union, one array shared by all batches,
/// and the schema they now have (a key type widens when the union has more
/// values than the old one can number).
pub(crate) fn unify_dictionaries(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<Vec<ArrayRef>> = batches.iter().map(|b| b.columns().to_vec()).collect();
    let mut changed = false;
    for (at, field) in schema.fields().iter().enumerate() {
        let DataType::Dictionary(key_type, value_type) = field.data_type() else {
            continue;
        };
        if batches.len() < 2 {
            break;
        }
        let column: Vec<&ArrayRef> = batches.iter().map(|b| b.column(at)).collect();
        let (key_type, unified) = unify_column(key_type, value_type, &column)?;
        for (batch, array) in columns.iter_mut().zip(unified) {
            batch[at] = array;
        }
        fields[at] = field
            .as_ref()
            .clone()
            .with_data_type(DataType::Dictionary(Box::new(key_type), value_type.clone()));
        changed = true;
    }
    if !changed {
        return Ok((schema.clone(), batches.to_vec()));
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .iter()
        .zip(columns)
        .map(|(batch, columns)| {
            let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            RecordBatch::try_new_with_options(schema.clone(), columns, &rows)
        })
        .collect::<Result<_, _>>()?;
    Ok((schema, batches))
}

/// One column's batches with one dictionary, and their key type.
fn unify_column(
    key_type: &DataType,
    value_type: &DataType,
    column: &[&ArrayRef],
) -> Result<(DataType, Vec<ArrayRef>), ArrowError> {
    let dictionaries: Vec<_> = column
        .iter()
        .map(|array| {
            array.as_any_dictionary_opt().ok_or_else(|| {
                ArrowError::InvalidArgumentError("a dictionary column holds another type".into())
            })
        })
        .collect::<Result<_, _>>()?;
    // Values are compared by their row encoding, which is equal exactly
    // when the values are (nulls included).
    let converter = RowConverter::new(vec![SortField::new(value_type.clone())])?;
    let mut position: HashMap<Box<[u8]>, u64> = HashMap::new();
    let mut sources: Vec<(usize, usize)> = Vec::new();
    let mut mappings: Vec<Vec<u64>> = Vec::with_capacity(dictionaries.len());
    for (which, dictionary) in dictionaries.iter().enumerate() {
        let values = dictionary.values();
        let rows = converter.convert_columns(std::slice::from_ref(values))?;
        let mapping = rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                *position.entry(row.as_ref().into()).or_insert_with(|| {
                    sources.push((which, index));
                    sources.len() as u64 - 1
                })
            })
            .collect();
        mappings.push(mapping);
    }
    let all_values: Vec<&dyn Array> = dictionaries.iter().map(|d| d.values().as_ref()).collect();
    let union = arrow_select::interleave::interleave(&all_values, &sources)?;
    let key_type = wide_enough(key_type, union.len())?;
    let union_data = union.to_data();
    let arrays = dictionaries
        .iter()
        .zip(mappings)
        .map(|(dictionary, mapping)| {
            // Each old key looks up its value's place in the union; a null
            // key stays null whatever it holds.
            let mapping = UInt64Array::from(mapping);
            let keys = arrow_select::take::take(&mapping, dictionary.keys(), None)?;
            let keys = arrow_cast_keys(&keys, &key_type)?;
            let data = keys
                .to_data()
                .into_builder()
                .data_type(DataType::Dictionary(
                    Box::new(key_type.clone()),
                    Box::new(value_type.clone()),
                ))
                .child_data(vec![union_data.clone()])
                .build()?;
            Ok(make_array(data))
        })
        .collect::<Result<_, ArrowError>>()?;
    Ok((key_type, arrays))
}

/// `key_type`, or the narrowest wider integer type of the same sign, that
/// numbers `values` values.
fn wide_enough(key_type: &DataType, values: usize) -> Result<DataType, ArrowError> {
    use DataType::*;
    let most = values.saturating_sub(1) as u64;
    let fits = |t: &DataType| match t {
        Int8 => most <= i8::MAX as u64,
        Int16 => most <= i16::MAX as u64,
        Int32 => most <= i32::MAX as u64,
        Int64 => most <= i64::MAX as u64,
        UInt8 => most <= u8::MAX as u64,
        UInt16 => most <= u16::MAX as u64,
        UInt32 => most <= u32::MAX as u64,
        UInt64 => true,
        _ => false,
    };
    let wider: &[DataType] = match key_type {
        Int8 | Int16 | Int32 | Int64 => &[Int8, Int16, Int32, Int64],
        UInt8 | UInt16 | UInt32 | UInt64 => &[UInt8, UInt16, UInt32, UInt64],
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "dictionary keys of type {other}"
            )))
        }
    };
    wider
        .iter()
        .skip_while(|t| *t != key_type)
        .find(|t| fits(t))
        .cloned()
        .ok_or_else(|| ArrowError::InvalidArgumentError("too many dictionary values".into()))
}

/// `keys` (u64 places in the union) as `key_type`, which numbers them all.
fn arrow_cast_keys(keys: &ArrayRef, key_type: &DataType) -> Result<ArrayRef, ArrowError> {
    use arrow_array::types::*;
    let keys = keys.as_primitive::<UInt64Type>();
    macro_rules! to {
        ($t:ty, $native:ty) => {
            Arc::new(keys.unary::<_, $t>(|k| k as $native)) as ArrayRef
        };
    }
    Ok(match key_type {
        DataType::Int8 => to!(Int8Type, i8),
        DataType::Int16 => to!(Int16Type, i16),
        DataType::Int32 => to!(Int32Type, i32),
        DataType::Int64 => to!(Int64Type, i64),
        DataType::UInt8 => to!(UInt8Type, u8),
        DataType::UInt16 => to!(UInt16Type, u16),
        DataType::UInt32 => to!(UInt32Type, u32),
        DataType::UInt64 => Arc::new(keys.clone()) as ArrayRef,
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "dictionary keys of type {other}"
            )))
        }
    })
}
