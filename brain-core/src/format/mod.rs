//! Byte layouts: the object header, object keys, codec tags, the parts
//! layout and ndarray metadata, Arrow IPC as brain stores it, the store's
//! control file, and small objects' records in the store's table. `docs/FORMAT.md` is their specification, and the
//! golden fixtures in `brain-core/tests/fixtures/` pin them.
//!
//! Nothing here touches a file: each layout is encoded into and decoded
//! from bytes, and decoding reports a [`FormatError`] that the layers above
//! place (a path, an address).

pub mod arrow;
pub mod checksum;
mod codec;
pub mod control;
pub(crate) mod dictionary;
pub(crate) mod header;
pub mod kept;
mod key;
pub mod ndarray;
pub(crate) mod part_names;
pub mod parts;
pub mod pickle;
pub mod record;

pub use codec::Codec;
pub use header::{
    accounted, stored_size, Header, PayloadChecksum, ACCOUNTING_PAGE, FLAG_CHUNKED_CHECKSUM,
    FORMAT_VERSION, HEADER_FIXED_LEN, MAGIC, PAYLOAD_ALIGN,
};
pub use key::{
    namespace_dir_name, namespace_hash, ObjectKey, MAX_DESCRIPTION_LEN, MAX_NAMESPACE_LEN,
    MAX_NAME_LEN,
};

/// Why bytes are not a valid instance of a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes are damaged or not of this layout.
    #[error("{reason}")]
    Malformed {
        /// What is wrong with them.
        reason: String,
    },
    /// The bytes are of another version of the layout.
    #[error("format version {found}, but this build reads version {supported}")]
    Version {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
}

impl FormatError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        FormatError::Malformed {
            reason: reason.into(),
        }
    }
}
