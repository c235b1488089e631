//! Typed calls on top of [`ObjectStore`] for every backend, and the codecs
//! that encode and decode their payloads. The Python package calls the same
//! encoders and decoders, so each layout is written once.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{Schema, SchemaRef};

use crate::api::error::{Error, Result};
use crate::api::frames::read_table;
use crate::api::store::{ObjectStore, Payload};
use crate::api::tables::expect_codec;
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::ndarray::NdArrayMeta;
use crate::format::parts::{self, PartsLayout};
use crate::format::{arrow, Codec};
use crate::sys::SharedBytes;

fn decode_error(view: &ObjectView, detail: String) -> Error {
    Error::Codec {
        namespace: view.meta().namespace.clone(),
        name: view.meta().name.clone(),
        codec: view.meta().codec,
        action: "decode",
        detail,
    }
}

/// A zero-copy view of an ndarray object.
#[derive(Debug, Clone)]
pub struct NdArrayView {
    /// dtype, shape and order.
    pub meta: NdArrayMeta,
    /// The array's bytes, inside the object's memory.
    pub data: Buffer,
}

/// A zero-copy view of a pickle-5 object.
#[derive(Debug, Clone)]
pub struct PickleView {
    /// The pickle stream.
    pub pickle: Buffer,
    /// The out-of-band buffers, in the order the pickler produced them.
    pub buffers: Vec<Buffer>,
}

/// Typed calls on top of [`ObjectStore`], for every implementation.
pub trait ObjectStoreExt: ObjectStore {
    /// Stores UTF-8 text.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    fn put_text(&self, namespace: &str, name: &str, text: &str) -> Result<ObjectMeta> {
        self.put(
            namespace,
            name,
            &Payload::bytes(text.as_bytes()).with_codec(Codec::Text),
        )
    }

    /// Reads UTF-8 text (a copy: the view is small by nature).
    ///
    /// # Errors
    /// [`Error::CodecMismatch`] when the object is not text; as [`ObjectStore::get`].
    fn get_text(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        expect_codec(&view, &[Codec::Text])?;
        String::from_utf8(view.to_vec())
            .map(Some)
            .map_err(|e| decode_error(&view, format!("not UTF-8: {e}")))
    }

    /// Stores record batches as an Arrow IPC file.
    ///
    /// # Errors
    /// [`Error::Arrow`] when the batches do not match the schema; as [`ObjectStore::put`].
    fn put_record_batches(
        &self,
        namespace: &str,
        name: &str,
        schema: &Schema,
        batches: &[RecordBatch],
    ) -> Result<ObjectMeta> {
        let bytes = arrow::encode(schema, batches).map_err(Error::arrow(namespace, name))?;
        self.put(
            namespace,
            name,
            &Payload::bytes(&bytes).with_codec(Codec::ArrowIpc),
        )
    }

    /// Reads record batches whose columns point into the shared object (no copy).
    ///
    /// # Errors
    /// [`Error::CodecMismatch`] when the object is not Arrow; [`Error::Arrow`]
    /// when its IPC data is malformed; as [`ObjectStore::get`].
    fn get_record_batches(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let Some(table) = read_table(self, namespace, name)? else {
            return Ok(None);
        };
        table.record_batches(None).map(Some)
    }

    /// Reads only the named columns of a stored table, in the order given,
    /// pointing into the shared object (no copy). The other columns are not
    /// decoded: the cost follows the columns asked for, not the table's
    /// width. A name that several columns share picks each of them.
    ///
    /// # Errors
    /// [`Error::ColumnNotFound`], naming the table's columns, when a column
    /// does not exist; otherwise as [`ObjectStoreExt::get_record_batches`].
    fn get_record_batches_with_columns(
        &self,
        namespace: &str,
        name: &str,
        columns: &[&str],
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let Some(table) = read_table(self, namespace, name)? else {
            return Ok(None);
        };
        table.record_batches(Some(columns)).map(Some)
    }

    /// Stores an n-dimensional array: its dtype, shape and order, and its
    /// raw bytes (which must already be in that order).
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    fn put_ndarray(
        &self,
        namespace: &str,
        name: &str,
        meta: &NdArrayMeta,
        data: &[u8],
    ) -> Result<ObjectMeta> {
        ndarray_payload((namespace, name), meta, data, |payload| {
            self.put(namespace, name, &payload)
        })
    }

    /// Reads an n-dimensional array; its data points into the shared object.
    ///
    /// # Errors
    /// [`Error::CodecMismatch`], [`Error::Codec`] when the layout is
    /// malformed; as [`ObjectStore::get`].
    fn get_ndarray(&self, namespace: &str, name: &str) -> Result<Option<NdArrayView>> {
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        decode_ndarray(&view).map(Some)
    }

    /// Stores a pickle-5 stream and its out-of-band buffers.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    fn put_pickle(
        &self,
        namespace: &str,
        name: &str,
        pickle: &[u8],
        buffers: &[&[u8]],
    ) -> Result<ObjectMeta> {
        pickle_payload(pickle, buffers, |payload| {
            self.put(namespace, name, &payload)
        })
    }

    /// Reads a pickle-5 object; its buffers point into the shared object.
    ///
    /// # Errors
    /// [`Error::CodecMismatch`], [`Error::Codec`]; as [`ObjectStore::get`].
    fn get_pickle(&self, namespace: &str, name: &str) -> Result<Option<PickleView>> {
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        decode_pickle(&view).map(Some)
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

/// Calls `f` with the payload of the ndarray object `name` in `namespace`:
/// `meta` (checked against the data's length) and `data`, in the parts layout. The payload borrows
/// `data`; nothing is copied until the store writes it.
///
/// # Errors
/// [`Error::Codec`] when `data` is not the length `meta` describes; what `f` returns.
pub fn ndarray_payload<R>(
    (namespace, name): (&str, &str),
    meta: &NdArrayMeta,
    data: &[u8],
    f: impl FnOnce(Payload<'_>) -> Result<R>,
) -> Result<R> {
    meta.check_data_len(data.len() as u64)
        .map_err(|detail| Error::Codec {
            namespace: namespace.into(),
            name: name.into(),
            codec: Codec::NdArray,
            action: "encode",
            detail,
        })?;
    let json = meta.to_json();
    let layout = PartsLayout::new(&[json.len(), data.len()]);
    let segments = layout.segments(&[&json, data]);
    f(Payload::segments(Codec::NdArray, &segments))
}

/// As [`ndarray_payload`], for data that another thread may write while it
/// is copied (a writable numpy array): `f` gets the payload's segments, for
/// [`ObjectStore::put_shared`].
///
/// # Errors
/// [`Error::Codec`] when `data` is not the length `meta` describes; what `f` returns.
pub fn ndarray_segments<R>(
    (namespace, name): (&str, &str),
    meta: &NdArrayMeta,
    data: SharedBytes<'_>,
    f: impl FnOnce(&[SharedBytes<'_>]) -> Result<R>,
) -> Result<R> {
    meta.check_data_len(data.len() as u64)
        .map_err(|detail| Error::Codec {
            namespace: namespace.into(),
            name: name.into(),
            codec: Codec::NdArray,
            action: "encode",
            detail,
        })?;
    let json = meta.to_json();
    let layout = PartsLayout::new(&[json.len(), data.len()]);
    let segments = layout.segments_of(&[SharedBytes::from(&json[..]), data]);
    f(&segments)
}

/// As [`pickle_payload`], for buffers that another thread may write while
/// they are copied: `f` gets the payload's segments, for
/// [`ObjectStore::put_shared`].
///
/// # Errors
/// What `f` returns.
pub fn pickle_segments<R>(
    pickle: SharedBytes<'_>,
    buffers: &[SharedBytes<'_>],
    f: impl FnOnce(&[SharedBytes<'_>]) -> Result<R>,
) -> Result<R> {
    let mut all = Vec::with_capacity(buffers.len() + 1);
    all.push(pickle);
    all.extend_from_slice(buffers);
    let layout = PartsLayout::new(&all.iter().map(|b| b.len()).collect::<Vec<_>>());
    let segments = layout.segments_of(&all);
    f(&segments)
}

/// Calls `f` with the payload of a pickle-5 object: the pickle stream, then
/// its out-of-band buffers, in the parts layout (borrowed, not copied).
///
/// # Errors
/// What `f` returns.
pub fn pickle_payload<R>(
    pickle: &[u8],
    buffers: &[&[u8]],
    f: impl FnOnce(Payload<'_>) -> Result<R>,
) -> Result<R> {
    let mut all = Vec::with_capacity(buffers.len() + 1);
    all.push(pickle);
    all.extend_from_slice(buffers);
    let layout = PartsLayout::new(&all.iter().map(|b| b.len()).collect::<Vec<_>>());
    let segments = layout.segments(&all);
    f(Payload::segments(Codec::Pickle5, &segments))
}

/// The parts of a parts-layout object (ndarray, pickle-5), as zero-copy
/// views of its payload.
///
/// # Errors
/// [`Error::Codec`] when the layout is malformed.
pub fn split_parts(view: &ObjectView) -> Result<Vec<ObjectView>> {
    let parts = parts::split(view.buffer()).map_err(|e| decode_error(view, e))?;
    let start = view.buffer().as_ptr() as usize;
    Ok(parts
        .iter()
        .map(|part| view.slice(part.as_ptr() as usize - start, part.len()))
        .collect())
}

/// Decodes an ndarray object: its metadata, checked against its data, and
/// its data, pointing into the object's memory.
///
/// # Errors
/// [`Error::CodecMismatch`] when the object is not an ndarray; [`Error::Codec`]
/// when its layout or metadata is malformed.
pub fn decode_ndarray(view: &ObjectView) -> Result<NdArrayView> {
    expect_codec(view, &[Codec::NdArray])?;
    ndarray_parts(view.buffer()).map_err(|e| decode_error(view, e))
}

/// The parts of an ndarray payload (the ndarray codec's layout, wherever it
/// came from): its metadata, checked against its data, and its data.
///
/// # Errors
/// A description of what is malformed.
pub fn ndarray_parts(payload: &Buffer) -> std::result::Result<NdArrayView, String> {
    let parts = parts::split(payload)?;
    let [meta, data] =
        <[Buffer; 2]>::try_from(parts).map_err(|p| format!("{} parts, expected 2", p.len()))?;
    let meta = NdArrayMeta::from_json(&meta)?;
    meta.check_data_len(data.len() as u64)?;
    Ok(NdArrayView { meta, data })
}

/// Decodes a pickle-5 object: its stream and out-of-band buffers, pointing
/// into the object's memory.
///
/// # Errors
/// [`Error::CodecMismatch`] when the object is not pickle-5; [`Error::Codec`]
/// when its layout is malformed.
pub fn decode_pickle(view: &ObjectView) -> Result<PickleView> {
    expect_codec(view, &[Codec::Pickle5])?;
    pickle_parts(view.buffer()).map_err(|e| decode_error(view, e))
}

/// The parts of a pickle-5 payload (the pickle-5 codec's layout, wherever
/// it came from): its stream and its out-of-band buffers.
///
/// # Errors
/// A description of what is malformed.
pub fn pickle_parts(payload: &Buffer) -> std::result::Result<PickleView, String> {
    let mut parts = parts::split(payload)?;
    if parts.is_empty() {
        return Err("no pickle stream".into());
    }
    let pickle = parts.remove(0);
    Ok(PickleView {
        pickle,
        buffers: parts,
    })
}
