//! A handle on one namespace of any store: the top layer of brain-core.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use crate::api::error::Result;
use crate::api::frames;
use crate::api::names::validate_namespace;
use crate::api::store::{ObjectStore, ObjectWriter, Payload, Watcher};
use crate::api::typed::{ndarray_payload, pickle_payload, NdArrayView, ObjectStoreExt, PickleView};
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::ndarray::NdArrayMeta;
use crate::format::Codec;
use crate::shm::Store;
use crate::sys::copy::SharedBytes;

impl Store {
    /// A handle on one namespace of this store; it is created by its first write.
    ///
    /// # Errors
    /// [`crate::Error::InvalidName`] when the namespace name is empty or too long.
    pub fn namespace(&self, namespace: &str) -> Result<Namespace> {
        Namespace::new(Arc::new(self.clone()), namespace)
    }
}

/// One namespace of a store: a set of names independent of every other
/// namespace's. Made by [`Namespace::new`] on any [`ObjectStore`] (or
/// [`crate::Store::namespace`]); created by its first write.
///
/// The `set` calls give no description, so an object they replace keeps
/// its own (as Python's `brain[name] = value` does, and brain-plasma did):
/// a service refreshing a value does not erase what another program said
/// of it. [`Namespace::put`] stores the description its payload carries.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let store = brain_core::Store::open(dir.path().join("store"))?;
/// let ns = store.namespace("default")?;
/// ns.set("greeting", b"hello")?;
/// let view = ns.get("greeting")?.expect("set above"); // zero-copy for large objects
/// assert_eq!(&*view, b"hello");
/// assert_eq!(ns.names()?, ["greeting"]);
/// # Ok::<(), brain_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Namespace {
    store: Arc<dyn ObjectStore>,
    name: String,
}

/// `name`, unless it starts with the prefix brain keeps for the parts of
/// frames changed in place ([`frames::PART_PREFIX`]): those are brain's,
/// and a user's object of such a name would be hidden from listings and
/// taken by `gc`.
fn not_reserved(name: &str) -> Result<&str> {
    if frames::is_frame_part(name) {
        return Err(crate::Error::ReservedName {
            name: name.to_owned(),
        });
    }
    Ok(name)
}

impl Namespace {
    /// A handle on `namespace` of `store` (nothing is created yet).
    ///
    /// # Errors
    /// [`crate::Error::InvalidName`] when the namespace name is empty or too long.
    pub fn new(store: Arc<dyn ObjectStore>, namespace: &str) -> Result<Namespace> {
        validate_namespace(namespace)?;
        Ok(Namespace {
            store,
            name: namespace.to_owned(),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store it belongs to.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Creates the namespace now, before its first object (a no-op when it
    /// exists), so it is listed by [`ObjectStore::namespaces`].
    ///
    /// # Errors
    /// As [`ObjectStore::create_namespace`].
    pub fn create(&self) -> Result<()> {
        self.store.create_namespace(&self.name)
    }

    /// Stores raw bytes under `name`, atomically replacing any object there
    /// (whose description it keeps). Replacing a frame changed in place
    /// leaves its parts to [`frames::sweep_parts`] (`brain gc`, or a write
    /// the store refuses as full); [`Namespace::delete`] first gives them
    /// back at once.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    pub fn set(&self, name: &str, bytes: &[u8]) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        self.put_keeping_description(name, &Payload::bytes(bytes))
    }

    /// Stores `payload` (its description is ignored) with the description
    /// of the object it replaces, if any.
    fn put_keeping_description(&self, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let segments: Vec<SharedBytes<'_>> = payload
            .parts()
            .iter()
            .map(|part| SharedBytes::from(*part))
            .collect();
        self.store
            .put_shared_keeping_description(&self.name, name, payload.codec, "", &segments)
    }

    /// Stores a payload with its codec and description.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    pub fn put(&self, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        self.store.put(&self.name, name, payload)
    }

    /// Starts a streamed write; see [`ObjectStore::writer`].
    ///
    /// # Errors
    /// As [`ObjectStore::writer`].
    pub fn writer(
        &self,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        let name = not_reserved(name)?;
        self.store
            .writer(&self.name, name, codec, description, expected_len)
    }

    /// Reads an object; `None` when there is none of that name.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    pub fn get(&self, name: &str) -> Result<Option<ObjectView>> {
        let name = not_reserved(name)?;
        self.store.get(&self.name, name)
    }

    /// An object's metadata.
    ///
    /// # Errors
    /// As [`ObjectStore::metadata`].
    pub fn metadata(&self, name: &str) -> Result<Option<ObjectMeta>> {
        let name = not_reserved(name)?;
        self.store.metadata(&self.name, name)
    }

    /// Whether `name` exists.
    ///
    /// # Errors
    /// As [`ObjectStore::contains`].
    pub fn contains(&self, name: &str) -> Result<bool> {
        let name = not_reserved(name)?;
        self.store.contains(&self.name, name)
    }

    /// Deletes `name`; returns whether it existed.
    ///
    /// # Errors
    /// As [`ObjectStore::delete`].
    pub fn delete(&self, name: &str) -> Result<bool> {
        let name = not_reserved(name)?;
        frames::delete_table(&*self.store, &self.name, name)
    }

    /// The names in this namespace, sorted (not the parts of frames stored
    /// in parts: see [`crate::frames`]).
    ///
    /// # Errors
    /// As [`ObjectStore::names`].
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = self.store.names(&self.name)?;
        names.retain(|name| !frames::is_frame_part(name));
        Ok(names)
    }

    /// Metadata of every object, sorted by name (not the parts of frames).
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    pub fn list(&self) -> Result<Vec<ObjectMeta>> {
        let mut metas = self.store.list(&self.name)?;
        metas.retain(|meta| !frames::is_frame_part(&meta.name));
        Ok(metas)
    }

    /// Stores UTF-8 text (keeping the replaced object's description).
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    pub fn set_text(&self, name: &str, text: &str) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        self.put_keeping_description(
            name,
            &Payload::bytes(text.as_bytes()).with_codec(Codec::Text),
        )
    }

    /// Reads UTF-8 text.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::get_text`].
    pub fn get_text(&self, name: &str) -> Result<Option<String>> {
        let name = not_reserved(name)?;
        self.store.get_text(&self.name, name)
    }

    /// Stores record batches as Arrow IPC (keeping the replaced object's
    /// description). Over a frame changed in place, the table takes the
    /// frame's place as its one part and the old parts go.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::put_record_batches`].
    pub fn set_record_batches(
        &self,
        name: &str,
        schema: &Schema,
        batches: &[RecordBatch],
    ) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        let bytes = crate::format::arrow::encode(schema, batches)
            .map_err(crate::Error::arrow(&self.name, name))?;
        let payload = Payload::bytes(&bytes).with_codec(Codec::ArrowIpc);
        let in_parts = self
            .store
            .metadata(&self.name, name)?
            .is_some_and(|meta| meta.codec == Codec::FrameParts);
        if !in_parts {
            return self.put_keeping_description(name, &payload);
        }
        // Over a frame changed in place: the table becomes its one part,
        // under the name's lock, and the old parts are given back (as
        // Python's write over a frame does), not left for `gc`.
        let _lock = self.store.lock(&self.name, name, None)?;
        let id = frames::write_part(&*self.store, &self.name, name, &payload)?;
        let replace = frames::FrameChange::Replace { part: &id };
        frames::change_frame(
            &*self.store,
            &self.name,
            name,
            replace,
            Codec::ArrowIpc,
            None,
            None,
        )
        .inspect_err(|_| frames::discard_part(&*self.store, &self.name, name, &id))
    }

    /// Reads record batches without copying.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::get_record_batches`].
    pub fn get_record_batches(&self, name: &str) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let name = not_reserved(name)?;
        self.store.get_record_batches(&self.name, name)
    }

    /// Reads only the named columns of a stored table, without copying.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::get_record_batches_with_columns`].
    pub fn get_record_batches_with_columns(
        &self,
        name: &str,
        columns: &[&str],
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let name = not_reserved(name)?;
        self.store
            .get_record_batches_with_columns(&self.name, name, columns)
    }

    /// Adds the columns of `batches` to the table `name`, or replaces its
    /// columns of the same names, writing only them.
    ///
    /// # Errors
    /// As [`frames::assign_columns`].
    pub fn assign_columns(
        &self,
        name: &str,
        schema: &Schema,
        batches: &[RecordBatch],
    ) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        frames::assign_columns(&*self.store, &self.name, name, schema, batches)
    }

    /// Adds the rows of `batches` after the table's, writing only them.
    ///
    /// # Errors
    /// As [`frames::append_rows`].
    pub fn append_rows(
        &self,
        name: &str,
        schema: &Schema,
        batches: &[RecordBatch],
    ) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        frames::append_rows(&*self.store, &self.name, name, schema, batches)
    }

    /// Drops `columns` from the table `name`.
    ///
    /// # Errors
    /// As [`frames::drop_columns`].
    pub fn drop_columns(&self, name: &str, columns: &[&str]) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        frames::drop_columns(&*self.store, &self.name, name, columns)
    }

    /// Rewrites a table changed in parts as one part (see
    /// [`frames::compact_frame`]); `None` for a table stored whole.
    ///
    /// # Errors
    /// As [`frames::compact_frame`]: [`crate::Error::NotFound`] for a missing name.
    pub fn compact(&self, name: &str) -> Result<Option<ObjectMeta>> {
        let name = not_reserved(name)?;
        let _lock = self.store.lock(&self.name, name, None)?;
        frames::compact_frame(&*self.store, &self.name, name)
    }

    /// Stores an n-dimensional array (keeping the replaced object's
    /// description).
    ///
    /// # Errors
    /// As [`ObjectStoreExt::put_ndarray`].
    pub fn set_ndarray(&self, name: &str, meta: &NdArrayMeta, data: &[u8]) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        ndarray_payload((&self.name, name), meta, data, |payload| {
            self.put_keeping_description(name, &payload)
        })
    }

    /// Reads an n-dimensional array without copying.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::get_ndarray`].
    pub fn get_ndarray(&self, name: &str) -> Result<Option<NdArrayView>> {
        let name = not_reserved(name)?;
        self.store.get_ndarray(&self.name, name)
    }

    /// Stores a pickle-5 stream with its out-of-band buffers (keeping the
    /// replaced object's description).
    ///
    /// # Errors
    /// As [`ObjectStoreExt::put_pickle`].
    pub fn set_pickle(&self, name: &str, pickle: &[u8], buffers: &[&[u8]]) -> Result<ObjectMeta> {
        let name = not_reserved(name)?;
        pickle_payload(pickle, buffers, |payload| {
            self.put_keeping_description(name, &payload)
        })
    }

    /// Reads a pickle-5 object without copying its buffers.
    ///
    /// # Errors
    /// As [`ObjectStoreExt::get_pickle`].
    pub fn get_pickle(&self, name: &str) -> Result<Option<PickleView>> {
        let name = not_reserved(name)?;
        self.store.get_pickle(&self.name, name)
    }

    /// Watches this namespace for objects being set and deleted. The
    /// namespace is created, so that it can be watched before its first
    /// object: it is listed by `namespaces()` from then on.
    ///
    /// # Errors
    /// As [`ObjectStore::watch`].
    pub fn watch(&self) -> Result<Watcher> {
        self.store.watch(Some(&self.name)).map(frames::skip_parts)
    }

    /// Blocks until `name` exists (at most `timeout`), then reads it.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`] when it does not appear in time; as [`Namespace::get`].
    pub fn wait_for(&self, name: &str, timeout: Duration) -> Result<ObjectView> {
        let name = not_reserved(name)?;
        self.store.wait_for(&self.name, name, timeout)
    }

    /// Removes the namespace with all its objects; returns how many went.
    ///
    /// # Errors
    /// As [`ObjectStore::remove_namespace`].
    pub fn remove(&self) -> Result<u64> {
        self.store.remove_namespace(&self.name)
    }
}
