//! Platform calls that need `unsafe`: memory mappings. Everything else goes
//! through rustix's safe wrappers.

#[cfg(target_os = "linux")]
mod unix;

#[cfg(target_os = "linux")]
pub(crate) use unix::{Mapping, SharedCounters};

#[cfg(not(target_os = "linux"))]
compile_error!("brain-core needs Linux: tmpfs, O_TMPFILE, renameat2 and inotify");
