//! Zero-copy views of stored objects.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_buffer::Buffer;

use crate::api::error::{Error, Location, Result};
use crate::format::kept::ContentId;
use crate::format::{accounted, Codec, Header, PayloadChecksum};
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
    /// The metadata an object header holds; its stored size is the file's
    /// length in whole pages.
    pub(crate) fn from_header(header: &Header) -> ObjectMeta {
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
            stored_size: accounted(header.file_len()),
            created,
            description: header.description.clone(),
        }
    }
}

/// Why a payload fails its checksum, for an error message.
pub(crate) fn mismatch(meta: &ObjectMeta, checksum: PayloadChecksum, found: u64) -> String {
    format!(
        "the payload of {:?} in namespace {:?} does not match the checksum its writer stored \
         (stored {:016x}, the {} bytes give {found:016x}): its memory was changed after it was written",
        meta.name,
        meta.namespace,
        checksum.value(),
        meta.size
    )
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
    /// The checksum its writer stored, for a verified read.
    checksum: Option<PayloadChecksum>,
}

impl ObjectView {
    /// A view of `payload`, described by `meta`. Used by other stores behind
    /// [`crate::ObjectStore`] (brain-mock) to hand out the same type.
    pub fn new(meta: ObjectMeta, payload: Buffer) -> ObjectView {
        ObjectView {
            meta: Arc::new(meta),
            payload,
            checksum: None,
        }
    }

    /// The same view, carrying the checksum its writer stored with the
    /// payload, which [`ObjectView::verify`] checks.
    #[must_use]
    pub fn with_checksum(mut self, checksum: Option<PayloadChecksum>) -> ObjectView {
        self.checksum = checksum;
        self
    }

    /// The checksum stored with the payload, when its writer stored one
    /// (every brain writer does since format flag bit 1; older objects may
    /// have none).
    pub fn stored_checksum(&self) -> Option<PayloadChecksum> {
        self.checksum
    }

    /// The payload's length and the checksum its writer stored
    /// ([`ContentId`]), for a decoder to skip checks it already made on the
    /// payload that checksum describes; None when its writer stored none.
    pub fn content_id(&self) -> Option<ContentId> {
        self.checksum.map(|checksum| {
            ContentId::new(
                self.payload.len() as u64,
                checksum.value(),
                matches!(checksum, PayloadChecksum::Chunked(_)),
            )
        })
    }

    /// Checks the payload against the checksum stored with it: `Ok(true)`
    /// when they match, `Ok(false)` when no checksum was stored. Reads every
    /// byte (about 0.1 s per GiB on one core; large payloads are checked on
    /// every core).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `location` when the payload differs from
    /// what was written: the object is damaged and must not be used.
    pub fn verify(&self, location: impl Into<Location>) -> Result<bool> {
        let Some(checksum) = self.checksum else {
            return Ok(false);
        };
        let found = match checksum {
            PayloadChecksum::Chunked(_) => {
                crate::format::checksum::payload_checksum_parallel(self.bytes())
            }
            PayloadChecksum::Whole(_) => checksum.compute(self.bytes()),
        };
        if found == checksum.value() {
            return Ok(true);
        }
        Err(Error::corrupt(
            location,
            mismatch(&self.meta, checksum, found),
        ))
    }

    /// Whether the payload matches the checksum its writer stored (true
    /// when it carries none), hashed on this thread: for a payload of a
    /// few bytes, checked on every read.
    pub(crate) fn matches_checksum(&self) -> bool {
        self.checksum
            .is_none_or(|checksum| checksum.compute(self.bytes()) == checksum.value())
    }

    /// A view of the payload held by a mapping of the whole file, `offset` bytes in.
    pub(crate) fn from_mapping(meta: ObjectMeta, mapping: Mapping, offset: usize) -> ObjectView {
        let whole = mapping.into_buffer();
        debug_assert!(
            offset as u64 + meta.size == whole.len() as u64,
            "payload must end the file"
        );
        ObjectView {
            meta: Arc::new(meta),
            payload: whole.slice(offset),
            checksum: None,
        }
    }

    /// A view of part of this object's payload (zero-copy), with the same
    /// metadata: a part of a parts-layout payload, say.
    ///
    /// # Panics
    /// When `offset + len` is past the payload's end, as slicing a slice does.
    pub fn slice(&self, offset: usize, len: usize) -> ObjectView {
        ObjectView {
            meta: self.meta.clone(),
            payload: self.payload.slice_with_length(offset, len),
            // The checksum covers the whole payload, not a part.
            checksum: None,
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
