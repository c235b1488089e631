//! The one error type of brain-persist.

use std::io;
use std::path::PathBuf;

/// The result type of every fallible call in brain-persist.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure brain-persist reports.
///
/// Each message says what happened, where (the dump directory, the file, the
/// object), and what to do. Variants carry those facts as fields, so callers
/// can act on them without parsing text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// There is nothing at the dump path.
    #[error("no dump at {path}: the directory does not exist; check the path, or write one with `brain dump {path}`", path = .path.display())]
    DumpNotFound {
        /// The path given.
        path: PathBuf,
    },

    /// The directory is not a brain dump (no manifest and no dump files, or a
    /// manifest with the wrong magic).
    #[error("{path} is not a brain dump: {reason}; give the directory that `brain dump` or `brain sync` wrote", path = .path.display())]
    NotADump {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },

    /// `brain sync` was given a directory that holds a one-off dump: a
    /// mirror deletes what the store lacks, and would delete what the dump
    /// was made to keep.
    #[error("{path} holds a one-off dump (`brain dump`), not a mirror that `brain sync` keeps, and a sync would delete the objects of it that this store lacks; give an empty or new directory, or restore the dump first (`brain restore {path}`) and sync into another", path = .path.display())]
    NotAMirror {
        /// The directory.
        path: PathBuf,
    },

    /// The dump's files are there but its manifest is missing: the dump was
    /// damaged, or a dump was copied without it.
    #[error("{path} has dump files but no MANIFEST.json: the dump is incomplete or damaged and cannot be checked; restore from another copy, or write a new dump", path = .path.display())]
    MissingManifest {
        /// The dump directory.
        path: PathBuf,
    },

    /// The manifest cannot be read as one.
    #[error("the manifest {path} is damaged: {detail}; restore from another copy, or write a new dump", path = .path.display())]
    CorruptManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The dump was written in a format version this build does not read.
    #[error("{path} is a dump in format version {found}, but this build of brain reads version {supported}; restore it with a brain release that reads version {found}", path = .path.display())]
    UnsupportedVersion {
        /// The dump directory.
        path: PathBuf,
        /// The version in its manifest.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },

    /// The dump's name index (its sled database, or an entry in it) is damaged.
    #[error("the index of the dump at {path} is damaged: {detail}; restore from another copy, or write a new dump", path = .path.display())]
    CorruptIndex {
        /// The dump directory.
        path: PathBuf,
        /// What is wrong, and in which file or entry.
        detail: String,
    },

    /// An object's payload file is missing.
    #[error("the payload of {object} is missing: {path} does not exist; the dump is damaged, restore from another copy or write a new dump", path = .path.display(), object = shown_object(.namespace, .name))]
    MissingPayload {
        /// The payload file.
        path: PathBuf,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
    },

    /// An object's payload file is shorter (or longer) than the index says.
    #[error("the payload of {object} is truncated: {path} holds {found} bytes, the index says {expected}; the dump is damaged, restore from another copy or write a new dump", path = .path.display(), object = shown_object(.namespace, .name))]
    TruncatedPayload {
        /// The payload file.
        path: PathBuf,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The length the index records.
        expected: u64,
        /// The file's length.
        found: u64,
    },

    /// A compressed frame of an object's payload cannot be decompressed.
    #[error("the payload of {object} is damaged in {path}, frame {frame} (at byte {offset} of the file): {detail}; the dump is damaged, restore from another copy or write a new dump", path = .path.display(), object = shown_object(.namespace, .name))]
    CorruptPayload {
        /// The payload file.
        path: PathBuf,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The frame's number, from 0.
        frame: usize,
        /// The frame's offset in the file.
        offset: u64,
        /// What zstd or the frame table said.
        detail: String,
    },

    /// An object's payload decompressed to other bytes than were dumped.
    #[error("checksum mismatch for {object} in {path}: the index records xxh3 {expected:016x}, the payload gives {found:016x}; the dump is damaged, restore from another copy or write a new dump", path = .path.display(), object = shown_object(.namespace, .name))]
    ChecksumMismatch {
        /// The payload file.
        path: PathBuf,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The checksum computed while dumping.
        expected: u64,
        /// The checksum of what the file holds now.
        found: u64,
    },

    /// The store has no room for what a restore would write. Nothing was written.
    #[error("store is full: restoring {objects} name(s) needs {needed} bytes, but only {free} bytes are free in {store}; nothing was restored; free space (`brain rm`, `brain ns rm`), raise the capacity (`brain capacity SIZE`), or restore one namespace with --namespace")]
    StoreFull {
        /// The store (its directory or URL).
        store: brain_core::Location,
        /// Bytes the restore needs in the store.
        needed: u64,
        /// Bytes free in the store.
        free: u64,
        /// Bytes the store's objects take now.
        used: u64,
        /// The most the store can hold: its capacity, or what it uses plus
        /// what is free when only the filesystem or server limits it.
        capacity: u64,
        /// Names the restore would write (a frame changed in place, with its parts, is one).
        objects: u64,
    },

    /// Objects of the dump already exist in the store and the restore was
    /// asked to fail on conflicts. Nothing was written.
    #[error(
        "{count} object(s) of the dump already exist in the store, the first {object}; nothing was restored; {}",
        if *.interrupted {
            "a restore of this store from this dump was interrupted: --on-conflict skip finishes it (overwrite replaces every name)"
        } else {
            "choose --on-conflict overwrite or skip"
        },
        object = shown_object(.namespace, .name)
    )]
    Conflict {
        /// How many objects conflict.
        count: u64,
        /// The first conflicting object's namespace.
        namespace: String,
        /// The first conflicting object's name.
        name: String,
        /// Whether a restore of the store from this dump was interrupted
        /// (its mark is in the dump): the names are likely its.
        interrupted: bool,
    },

    /// A namespace was asked for that the dump does not hold.
    #[error("the dump at {path} holds no namespace {namespace:?}; list what it holds with `brain dumps ls {path}`", path = .path.display())]
    NamespaceNotInDump {
        /// The dump directory.
        path: PathBuf,
        /// The namespace asked for.
        namespace: String,
    },

    /// A dump would replace something that is not a dump.
    #[error("refusing to write a dump at {path}: {reason}; choose a new path, or an earlier dump's directory", path = .path.display())]
    RefusedTarget {
        /// The path given.
        path: PathBuf,
        /// What is there.
        reason: String,
    },

    /// Another `brain sync` is mirroring into the directory.
    #[error("another brain sync is mirroring into {path}; stop it first, or choose another directory", path = .path.display())]
    SyncRunning {
        /// The sync directory.
        path: PathBuf,
    },

    /// The store failed; the [`StoreFailure`] says doing what, and on which
    /// object. Its source (and so this error's) is the store's error.
    #[error(transparent)]
    Store(Box<StoreFailure>),

    /// The index database failed.
    #[error("the index database {path} failed while trying to {op}: {detail}", path = .path.display())]
    Index {
        /// What brain-persist was doing.
        op: &'static str,
        /// The database's directory.
        path: PathBuf,
        /// sled's message.
        detail: String,
    },

    /// Any other operating-system error.
    #[error("cannot {op} {path}: {source}{hint}", path = .path.display(), hint = io_hint(.source))]
    Io {
        /// What brain-persist was doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A failure of the store, with what brain-persist was doing and the
/// object or namespace involved.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {what}: {source}", what = describe(.namespace.as_deref(), .name.as_deref()))]
#[non_exhaustive]
pub struct StoreFailure {
    /// What brain-persist was doing.
    pub op: &'static str,
    /// The namespace involved, if any.
    pub namespace: Option<String>,
    /// The object involved, if any.
    pub name: Option<String>,
    /// The store's error.
    #[source]
    pub source: brain_core::Error,
}

fn describe(namespace: Option<&str>, name: Option<&str>) -> String {
    match (namespace, name) {
        (Some(ns), Some(name)) => format!("{name:?} in namespace {ns:?}"),
        (Some(ns), None) => format!("namespace {ns:?}"),
        (None, Some(name)) => format!("{name:?}"),
        (None, None) => "the store".to_owned(),
    }
}

/// What to do about an I/O error, when the error itself does not say.
fn io_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "; the filesystem it is on is full: free space on it, or use a directory on another filesystem, and run again (what this run had written there is removed)"
        }
        _ => "",
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn store(op: &'static str, source: brain_core::Error) -> Self {
        Error::Store(Box::new(StoreFailure {
            op,
            namespace: None,
            name: None,
            source,
        }))
    }

    pub(crate) fn store_ns(op: &'static str, namespace: &str, source: brain_core::Error) -> Self {
        Error::Store(Box::new(StoreFailure {
            op,
            namespace: Some(namespace.to_owned()),
            name: None,
            source,
        }))
    }

    pub(crate) fn store_obj(
        op: &'static str,
        namespace: &str,
        name: &str,
        source: brain_core::Error,
    ) -> Self {
        Error::Store(Box::new(StoreFailure {
            op,
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            source,
        }))
    }

    pub(crate) fn corrupt_index(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::CorruptIndex {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// The store's error, when the store failed.
    pub fn store_error(&self) -> Option<&brain_core::Error> {
        match self {
            Error::Store(failure) => Some(&failure.source),
            _ => None,
        }
    }

    /// True when the dump itself is at fault (missing, foreign, damaged, or
    /// from a newer release), as opposed to the store or the system.
    pub fn is_bad_dump(&self) -> bool {
        matches!(
            self,
            Error::DumpNotFound { .. }
                | Error::NotADump { .. }
                | Error::MissingManifest { .. }
                | Error::CorruptManifest { .. }
                | Error::UnsupportedVersion { .. }
                | Error::CorruptIndex { .. }
                | Error::MissingPayload { .. }
                | Error::TruncatedPayload { .. }
                | Error::CorruptPayload { .. }
                | Error::ChecksumMismatch { .. }
        )
    }
}

/// An object as an error names it: `"ns"/"name"`, or for a part of a frame
/// stored in parts (whose name is internal), the frame it belongs to.
fn shown_object(namespace: &str, name: &str) -> String {
    match brain_core::frames::part_owner(name) {
        Some(frame) => format!("a part of frame {frame:?} in namespace {namespace:?}"),
        None => format!("{namespace:?}/{name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_part_is_named_by_its_frame() {
        let part = Error::TruncatedPayload {
            path: "data/0".into(),
            namespace: "default".into(),
            name: brain_core::frames::part_name("sales", "12649~effffffc.0"),
            expected: 10,
            found: 4,
        };
        let text = part.to_string();
        assert!(
            text.starts_with(
                "the payload of a part of frame \"sales\" in namespace \"default\" is truncated"
            ),
            "{text}"
        );
        assert!(!text.contains("brain-part"), "{text}");
        let plain = Error::TruncatedPayload {
            path: "data/0".into(),
            namespace: "default".into(),
            name: "sales".into(),
            expected: 10,
            found: 4,
        };
        assert!(plain
            .to_string()
            .starts_with("the payload of \"default\"/\"sales\" is truncated"));
    }
}
