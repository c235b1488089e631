//! The storage trait shared by the real store and brain-mock, and the typed
//! codec calls every implementation gets for free.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{Schema, SchemaRef};

use crate::codec::parts::{self, NdArrayMeta, PartsLayout};
use crate::codec::{arrow, Codec};
use crate::error::{Error, Result};
use crate::store::Usage;
use crate::view::{ObjectMeta, ObjectView};

/// An object to write: its codec, description and payload bytes, given as
/// segments that are written back to back (so a header and a buffer need not
/// be joined in memory first).
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    /// The codec tag to store.
    pub codec: Codec,
    /// A free-form description ("" for none).
    pub description: &'a str,
    segments: Segments<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Segments<'a> {
    One([&'a [u8]; 1]),
    Many(&'a [&'a [u8]]),
}

impl<'a> Payload<'a> {
    /// Raw bytes.
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Payload {
            codec: Codec::Raw,
            description: "",
            segments: Segments::One([bytes]),
        }
    }

    /// The concatenation of `segments`, stored with `codec`.
    pub fn segments(codec: Codec, segments: &'a [&'a [u8]]) -> Self {
        Payload {
            codec,
            description: "",
            segments: Segments::Many(segments),
        }
    }

    /// The same payload with another codec tag.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same payload with a description.
    #[must_use]
    pub fn with_description(mut self, description: &'a str) -> Self {
        self.description = description;
        self
    }

    /// The segments, in order.
    pub fn parts(&self) -> &[&'a [u8]] {
        match &self.segments {
            Segments::One(one) => one,
            Segments::Many(many) => many,
        }
    }

    /// The payload's total length in bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(|s| s.len()).sum()
    }

    /// True when the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A store of named objects in namespaces: the operations every backend
/// provides. [`crate::Store`] is the shared-memory one; brain-mock has an
/// in-memory one with fault injection.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Writes an object, atomically replacing any object of that name.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::StoreFull`] (nothing is left behind), or an I/O error.
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta>;

    /// Reads an object without copying it. `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::KeyCollision`], [`Error::UnsupportedVersion`], or I/O.
    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>>;

    /// Reads an object's metadata only. `None` when it does not exist.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>>;

    /// Whether the object exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or I/O.
    fn contains(&self, namespace: &str, name: &str) -> Result<bool>;

    /// Deletes an object; views already handed out stay valid. Returns
    /// whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::KeyCollision`] or I/O.
    fn delete(&self, namespace: &str, name: &str) -> Result<bool>;

    /// Metadata of every object in a namespace, sorted by name (empty when
    /// the namespace does not exist).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or I/O.
    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>>;

    /// The names in a namespace, sorted.
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    fn names(&self, namespace: &str) -> Result<Vec<String>>;

    /// Every namespace, sorted.
    ///
    /// # Errors
    /// I/O.
    fn namespaces(&self) -> Result<Vec<String>>;

    /// Removes a namespace and all its objects; returns how many objects went.
    ///
    /// # Errors
    /// [`Error::NamespaceNotFound`] when there is no such namespace, or I/O.
    fn remove_namespace(&self, namespace: &str) -> Result<u64>;

    /// Capacity and usage.
    ///
    /// # Errors
    /// I/O.
    fn usage(&self) -> Result<Usage>;
}

fn expect_codec(view: &ObjectView, expected: &[Codec]) -> Result<()> {
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
        let bytes = arrow::encode(schema, batches).map_err(|source| Error::Arrow {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?;
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
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        expect_codec(
            &view,
            &[Codec::ArrowIpc, Codec::PandasArrow, Codec::PolarsArrow],
        )?;
        arrow::decode(view.buffer())
            .map(Some)
            .map_err(|source| Error::Arrow {
                namespace: namespace.into(),
                name: name.into(),
                source,
            })
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
        let json = meta.to_json();
        let layout = PartsLayout::new(&[json.len(), data.len()]);
        let segments = layout.segments(&[&json, data]);
        self.put(
            namespace,
            name,
            &Payload::segments(Codec::NdArray, &segments),
        )
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
        expect_codec(&view, &[Codec::NdArray])?;
        let parts = parts::split(view.buffer()).map_err(|e| decode_error(&view, e))?;
        let [meta, data] = <[Buffer; 2]>::try_from(parts)
            .map_err(|p| decode_error(&view, format!("{} parts, expected 2", p.len())))?;
        let meta = NdArrayMeta::from_json(&meta).map_err(|e| decode_error(&view, e))?;
        Ok(Some(NdArrayView { meta, data }))
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
        let mut all = Vec::with_capacity(buffers.len() + 1);
        all.push(pickle);
        all.extend_from_slice(buffers);
        let layout = PartsLayout::new(&all.iter().map(|b| b.len()).collect::<Vec<_>>());
        let segments = layout.segments(&all);
        self.put(
            namespace,
            name,
            &Payload::segments(Codec::Pickle5, &segments),
        )
    }

    /// Reads a pickle-5 object; its buffers point into the shared object.
    ///
    /// # Errors
    /// [`Error::CodecMismatch`], [`Error::Codec`]; as [`ObjectStore::get`].
    fn get_pickle(&self, namespace: &str, name: &str) -> Result<Option<PickleView>> {
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        expect_codec(&view, &[Codec::Pickle5])?;
        let mut parts = parts::split(view.buffer()).map_err(|e| decode_error(&view, e))?;
        if parts.is_empty() {
            return Err(decode_error(&view, "no pickle stream".into()));
        }
        let pickle = parts.remove(0);
        Ok(Some(PickleView {
            pickle,
            buffers: parts,
        }))
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

impl<T: ObjectStore + ?Sized> ObjectStore for Arc<T> {
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        (**self).put(namespace, name, payload)
    }
    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        (**self).get(namespace, name)
    }
    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        (**self).metadata(namespace, name)
    }
    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        (**self).contains(namespace, name)
    }
    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        (**self).delete(namespace, name)
    }
    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        (**self).list(namespace)
    }
    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        (**self).names(namespace)
    }
    fn namespaces(&self) -> Result<Vec<String>> {
        (**self).namespaces()
    }
    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        (**self).remove_namespace(namespace)
    }
    fn usage(&self) -> Result<Usage> {
        (**self).usage()
    }
}
