//! The bottom layer: system calls. Mappings and the fork handler (the only
//! unsafe code of the crate), file I/O that retries interrupted calls,
//! `flock`, and the temporary names writers use. Everything here speaks `std::io::Error`;
//! the layers above turn it into [`crate::Error`] with a location.

#[cfg(target_os = "linux")]
mod mapping;

pub(crate) mod copy;
pub(crate) mod fork;
pub(crate) mod held;
pub(crate) mod io;
pub(crate) mod lmdb;
pub(crate) mod names;

#[cfg(target_os = "linux")]
pub(crate) use copy::SharedBytes;
pub(crate) use mapping::{
    populate_for_write, Mapping, SharedCounters, SharedLocked, WritableFile, WritableMapping,
};

#[cfg(not(target_os = "linux"))]
compile_error!("brain-core needs Linux: tmpfs, O_TMPFILE, renameat2 and inotify");
