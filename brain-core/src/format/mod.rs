//! The on-disk (on-tmpfs) format of an object file. `docs/FORMAT.md` is its specification.

pub(crate) mod header;

pub use header::{Header, FORMAT_VERSION, HEADER_FIXED_LEN, MAGIC, PAYLOAD_ALIGN};
