//! Zero-copy views of stored objects.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_buffer::Buffer;

use crate::codec::Codec;
use crate::sys::Mapping;

/// What the store knows about an object, read from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The payload's codec.
    pub codec: Codec,
    /// The payload's length in bytes.
    pub size: u64,
    /// Bytes the object takes in the store (header and payload, rounded up to pages).
    pub stored_size: u64,
    /// When the object was written.
    pub created: SystemTime,
    /// The description given when it was written (empty when none).
    pub description: String,
}

impl ObjectMeta {
    pub(crate) fn from_header(header: &crate::format::Header, stored_size: u64) -> ObjectMeta {
        let created = if header.created_unix_nanos >= 0 {
            UNIX_EPOCH + Duration::from_nanos(header.created_unix_nanos as u64)
        } else {
            UNIX_EPOCH
        };
        ObjectMeta {
            namespace: header.namespace.clone(),
            name: header.name.clone(),
            codec: header.codec,
            size: header.payload_len,
            stored_size,
            created,
            description: header.description.clone(),
        }
    }
}

/// A read-only view of an object's payload.
///
/// For a large object the bytes are the shared mapping itself: no copy was
/// made, and the view keeps the mapping alive. It stays valid, with the same
/// bytes, after the object is replaced or deleted, for as long as it (or any
/// clone, or any Arrow array built on it) lives. Small objects are read into
/// a private, 64-byte aligned buffer instead, which is cheaper than a mapping.
///
/// Cloning is cheap (two reference counts).
#[derive(Clone)]
pub struct ObjectView {
    meta: Arc<ObjectMeta>,
    payload: Buffer,
}

impl ObjectView {
    /// A view of `payload`, described by `meta`. Used by other stores behind
    /// [`crate::ObjectStore`] (brain-mock) to hand out the same type.
    pub fn new(meta: ObjectMeta, payload: Buffer) -> ObjectView {
        ObjectView {
            meta: Arc::new(meta),
            payload,
        }
    }

    /// A view of the payload held by a mapping of the whole file, `offset` bytes in.
    pub(crate) fn from_mapping(meta: ObjectMeta, mapping: Mapping, offset: usize) -> ObjectView {
        let len = mapping.len();
        let ptr = mapping.as_ptr();
        debug_assert!(
            offset as u64 + meta.size == len as u64,
            "payload must end the file"
        );
        let owner: Arc<dyn arrow_buffer::alloc::Allocation> = Arc::new(mapping);
        // SAFETY: ptr is the start of a live read-only mapping of len bytes,
        // and `owner` is that mapping: the Buffer keeps it alive (and so
        // mapped) for as long as the Buffer or any slice of it exists. The
        // bytes never change while mapped (the sharing contract in
        // sys/unix.rs), which is what an immutable Buffer requires.
        let whole = unsafe { Buffer::from_custom_allocation(ptr, len, owner) };
        ObjectView {
            meta: Arc::new(meta),
            payload: whole.slice(offset),
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The payload as an Arrow buffer sharing the same memory: slices of it
    /// are zero-copy, and it keeps the memory alive on its own.
    pub fn buffer(&self) -> &Buffer {
        &self.payload
    }

    /// The payload's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.payload.as_slice()
    }
}

impl Deref for ObjectView {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for ObjectView {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for ObjectView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectView")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("codec", &self.meta.codec)
            .field("size", &self.payload.len())
            .finish()
    }
}
