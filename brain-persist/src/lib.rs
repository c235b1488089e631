//! # brain-persist
//!
//! Dumps, restores and live mirrors of a brain store on disk. A brain store
//! lives in shared memory and is gone after a reboot; this crate keeps a
//! copy on disk and brings it back.
//!
//! - [`dump`] writes a consistent copy of a store, or of one namespace, to
//!   a directory: each object as it was at one moment, compressed with zstd
//!   in frames of a few MiB on every core (memory stays bounded whatever
//!   the objects' sizes). The dump is built beside the target and swapped into place in
//!   one rename, so a crash mid-dump leaves the previous dump usable.
//! - [`restore`] checks the whole dump (manifest, format version, every
//!   index entry, every payload frame's checksum) and the store's free
//!   space before it writes anything, then decompresses each object on
//!   every core and streams it into the store.
//!   A damaged, truncated, foreign or newer-format dump is refused with an
//!   [`Error`] that says which and where.
//! - [`auto_restore`] restores a store that holds no object (after a
//!   reboot or a wiped `/dev/shm`) from a dump, once however many processes
//!   start together.
//! - [`sync`] (or [`spawn_sync`]) keeps a directory in the same format up
//!   to date as the store changes, writing only what changed; `restore`
//!   and `auto_restore` read it like a dump.
//!
//! Every call takes any backend's [`brain_core::ObjectStore`]: a
//! shared-memory store, an in-memory one, a server.
//!
//! The format (a sled database holding the name index, payloads as zstd
//! frames in plain files beside it, and a manifest) is specified in the
//! "Dump format" section of `docs/FORMAT.md`.
//!
//! ```
//! use brain_core::{ObjectStore, ObjectStoreExt, Store};
//! use brain_persist::{dump, list_dump, restore, DumpOptions, OnConflict, RestoreOptions};
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! # let (store_dir, dump_dir) = (tmp.path().join("store"), tmp.path().join("backup"));
//! let store = Store::open(&store_dir).expect("store");
//! store.put_text("notes", "greeting", "hello").expect("put");
//!
//! let report = dump(&store, &dump_dir, &DumpOptions::new())?;
//! assert_eq!(report.objects, 1);
//! assert_eq!(list_dump(&dump_dir)?.objects[0].name, "greeting");
//!
//! store.delete("notes", "greeting").expect("delete");
//! let options = RestoreOptions::new().on_conflict(OnConflict::Overwrite);
//! restore(&store, &dump_dir, &options)?;
//! assert_eq!(store.get_text("notes", "greeting").expect("get").as_deref(), Some("hello"));
//! # Ok::<(), brain_persist::Error>(())
//! ```
//!
//! ## Crate features
//! None for users (`fuzzing` exposes decoders to the fuzz targets in
//! `fuzz/`; it is not an API). It needs Linux, as brain-core does (and `renameat2` for the
//! atomic swap of a dump; other filesystems get two renames).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod dump;
mod error;
mod format;
mod parallel;
mod progress;
mod reader;
mod restore;
mod sync;
mod writer;

pub use dump::{dump, DumpOptions, DumpReport, DEFAULT_LEVEL};
pub use error::{Error, Result, StoreFailure};
pub use format::{DumpKind, FORMAT_VERSION, FRAME_SIZE, MANIFEST_FILE};
pub use progress::{Phase, Progress, ProgressFn, ProgressUpdate};
pub use reader::{list_dump, verify_dump, DumpEntry, DumpInfo};
pub use restore::{auto_restore, restore, OnConflict, RestoreOptions, RestoreReport};
pub use sync::{spawn_sync, sync, LogFn, StopFlag, SyncHandle, SyncOptions, SyncStats};

/// The dump's decoders, for the fuzz targets in `fuzz/`: each takes bytes a
/// disk could hand a reader and runs the code `list_dump`, `verify_dump`
/// and `restore` run on them. Not an API: it follows the crate's internals.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::fs::File;
    use std::path::Path;

    use crate::format::{Entry, Manifest};
    use crate::reader::{DumpReader, Scratch};

    /// Reads `file` as the manifest of the dump at `dir`.
    pub fn read_manifest(dir: &Path, file: File) -> crate::Result<()> {
        Manifest::read(dir, Some(file)).map(drop)
    }

    /// Decodes and checks an index entry read under `key`.
    pub fn decode_entry(key: &[u8], value: &[u8]) -> Result<(), String> {
        Entry::decode(key, value).map(drop)
    }

    /// A dump opened once, whose payload files are then read against
    /// entries given one by one: a whole dump per input would be too slow.
    pub struct Payloads {
        dump: DumpReader,
        scratch: Scratch,
    }

    impl std::fmt::Debug for Payloads {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Payloads")
                .field("dump", &self.dump.path)
                .finish_non_exhaustive()
        }
    }

    impl Payloads {
        /// Opens the dump at `path`, checked as `list_dump` checks it.
        pub fn open(path: &Path) -> crate::Result<Payloads> {
            Ok(Payloads {
                dump: DumpReader::open(path)?,
                scratch: Scratch::new(),
            })
        }

        /// Decodes `value` as the index entry under `key`, then reads the
        /// payload file it names as a restore does: every frame checked
        /// without decompressing, then decompressed and checked again.
        /// Returns the payload's length.
        pub fn read(&mut self, key: &[u8], value: &[u8]) -> crate::Result<u64> {
            let entry = Entry::decode(key, value)
                .map_err(|detail| crate::Error::corrupt_index(&self.dump.path, detail))?;
            self.dump
                .verify(&[&entry], &crate::Progress::Hidden, &mut self.scratch)?;
            let mut len = 0;
            self.dump
                .read_payload(&entry, &mut self.scratch, false, |chunk| {
                    len += chunk.len() as u64;
                    Ok(())
                })?;
            Ok(len)
        }
    }
}
