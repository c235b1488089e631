//! # brain-core
//!
//! A daemonless store of named objects in shared memory. A store is a
//! directory on a tmpfs (by default `/dev/shm/brain-<uid>/default`); any
//! process of the same user that opens the same directory sees the same
//! names at once. There is no server: the kernel allocates, counts
//! references and cleans up.
//!
//! - **Writes are one copy**: the payload is written into an unnamed file
//!   and renamed over the object's name, so readers never see a partial
//!   object and replacing a name is atomic.
//! - **Reads are zero-copy** for large objects: a get maps the file
//!   read-only and returns an [`ObjectView`] that owns the mapping; it
//!   stays valid after the name is replaced or deleted. Arrow record
//!   batches are decoded straight from the mapping.
//! - **Replaced objects' pages are reused**: the file of a large object that
//!   was replaced waits in the store's pool, and the next large write fills
//!   it instead of fresh pages, once no reader maps it.
//! - **Nothing is evicted**: a full store refuses a write with
//!   [`Error::StoreFull`].
//!
//! It is not a database: there are no transactions across names, and the
//! store lives in memory (see brain-persist for dumps to disk).
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Float64Array, RecordBatch};
//! use arrow_schema::{DataType, Field, Schema};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("store");
//! let store = brain_core::Store::open(&path)?;           // or Store::open_default()
//! let ns = store.namespace("default")?;
//! ns.set("greeting", b"hello")?;
//! let view = ns.get("greeting")?.expect("set above");   // &[u8] through Deref
//! assert_eq!(&*view, b"hello");
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("price", DataType::Float64, false)]));
//! let batch = RecordBatch::try_new(
//!     schema.clone(),
//!     vec![Arc::new(Float64Array::from(vec![1.5, 2.5]))],
//! ).unwrap();
//! ns.set_record_batches("sales", &schema, &[batch.clone()])?;   // Arrow IPC
//! let (_, batches) = ns.get_record_batches("sales")?.expect("set above"); // zero-copy
//! assert_eq!(batches, vec![batch]);
//! # Ok::<(), brain_core::Error>(())
//! ```
//!
//! ## Crate features
//! None: the crate always builds the store, the Arrow codec and the watcher.
//! It needs Linux (tmpfs, `O_TMPFILE`, `renameat2`, inotify).

#![deny(missing_docs)]
#![deny(unsafe_code)]

// The layers, bottom to top; each imports only from those above it in
// this list: system calls, byte layouts, the API every backend shares, the
// shared-memory backend, and the namespace handle over any backend.
// The only module allowed unsafe code: mappings, the copy into the store.
mod api;
pub mod format;
pub mod hash;
mod namespace;
mod shm;
#[allow(unsafe_code)]
mod sys;

pub use api::error::{shell_word, Error, Location, NameKind, Result, UnsafePathReason};
pub use api::names::{
    is_host_cache_namespace, validate_description, validate_name, validate_namespace,
    HOST_CACHE_NAMESPACE_PREFIX,
};
pub use api::store::{
    kept_description, CorruptObject, DamagedObject, FsckReport, GcReport, LockGuard, NameLock,
    NamespaceStats, ObjectStore, ObjectWriter, Payload, Usage, UsageDetail, WatchEvent,
    WatchEvents, Watcher, WriteObject,
};
pub use api::tables::decode_record_batches;
pub use api::typed::{
    decode_ndarray, decode_pickle, ndarray_parts, ndarray_payload, ndarray_segments, pickle_parts,
    pickle_payload, pickle_segments, split_parts, NdArrayView, ObjectStoreExt, PickleView,
};
pub use api::view::{ObjectMeta, ObjectView};
pub use format::control::UNLIMITED;
pub use format::ndarray::{Dtype, DtypeField, NdArrayMeta};
pub use format::{
    stored_size, Codec, FormatError, ObjectKey, PayloadChecksum, MAX_DESCRIPTION_LEN,
    MAX_NAMESPACE_LEN, MAX_NAME_LEN,
};
pub use namespace::Namespace;

/// Frames that change in place: tables stored as parts under one manifest.
pub mod frames {
    pub use crate::api::frames::*;
}
pub use shm::{
    default_store_path, store_url_scheme, user_root, Store, StoreBuilder, STORE_SCHEMES,
};
pub use sys::copy::SharedBytes;
pub use sys::fork::{fork_mark, process_id};
pub use sys::names::{owner_tag, owner_tag_gone};

/// Internals that brain-bench measures; not part of the API.
#[doc(hidden)]
pub mod bench {
    pub use crate::shm::fill::{copy_chunks_on, copy_with_checksum, copy_without_checksum};
    pub use crate::sys::copy::Kernel;
}
