//! The one error type of brain-core, shared by every backend.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::format::{Codec, FormatError};

/// Where something happened: a file of a shared-memory store, or the URL of
/// a store that has no paths (an in-memory store, a server).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A file or directory.
    Path(PathBuf),
    /// A store's URL (`memory://name`, `redis://host:port`), possibly with a
    /// key or name after it. Never holds a password.
    Url(String),
}

impl Location {
    /// The path, when the location is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::Path(path) => Some(path),
            Location::Url(_) => None,
        }
    }

    /// The same location with `child` under it: a path joined, or a URL with `/child`.
    pub fn join(&self, child: impl AsRef<str>) -> Location {
        match self {
            Location::Path(path) => Location::Path(path.join(child.as_ref())),
            Location::Url(url) => {
                Location::Url(format!("{}/{}", url.trim_end_matches('/'), child.as_ref()))
            }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(path) => write!(f, "{}", path.display()),
            Location::Url(url) => f.write_str(url),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Path(path)
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Self {
        Location::Path(path.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Self {
        Location::Path(path.clone())
    }
}

impl From<&str> for Location {
    /// A path: URLs are made with [`Location::Url`].
    fn from(path: &str) -> Self {
        Location::Path(PathBuf::from(path))
    }
}

/// The result type of every fallible call in brain-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of string a [`Error::InvalidName`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// An object's name.
    Name,
    /// A namespace's name.
    Namespace,
    /// An object's description.
    Description,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Name => "object name",
            NameKind::Namespace => "namespace",
            NameKind::Description => "description",
        })
    }
}

/// Why a store directory was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsafePathReason {
    /// The path is a symbolic link.
    Symlink,
    /// The path exists but is not a directory.
    NotADirectory,
    /// The directory belongs to another user.
    OwnedByOtherUser {
        /// The directory's owner.
        owner: u32,
        /// The user running this process.
        current: u32,
    },
    /// Other users (or the group, when group sharing is off) may write to it.
    TooPermissive {
        /// The directory's permission bits.
        mode: u32,
    },
    /// It holds files of its own and is not a store: opening it would put
    /// a store's files among them.
    HoldsOtherFiles,
    /// It is a store URL (`memory://x`, `redis://host`) given where a
    /// directory was expected: opened as a path, it would make a store in
    /// a directory of that name.
    IsAUrl {
        /// The URL's scheme.
        scheme: &'static str,
    },
    /// It is empty, or only spaces.
    Empty,
    /// This user may not create what a store needs in it (its mode, or a
    /// read-only filesystem).
    NotWritable,
}

impl UnsafePathReason {
    /// What to do about it.
    fn advice(&self) -> &'static str {
        match self {
            UnsafePathReason::HoldsOtherFiles => {
                "give a new or empty directory with BRAIN_PATH or --store (nothing in this one was touched)"
            }
            // Shared directories (/dev/shm itself, /tmp) are the usual case:
            // removing them is no answer.
            UnsafePathReason::TooPermissive { .. } => {
                "choose a directory of your own with BRAIN_PATH or --store, or, if this one is yours alone, \
                 `chmod 700` it (brain makes the default store's directory 0700)"
            }
            UnsafePathReason::IsAUrl { .. } => {
                "open a URL with brain::open (Python: Brain(url=...); the brain command: --store URL; \
                 the environment: BRAIN_URL, not BRAIN_PATH), or write ./ before it for a directory \
                 of that name"
            }
            UnsafePathReason::Empty => "give the store's directory",
            _ => "remove it or choose another path with BRAIN_PATH or --store",
        }
    }
}

impl std::fmt::Display for UnsafePathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsafePathReason::Symlink => f.write_str("it is a symbolic link"),
            UnsafePathReason::NotADirectory => f.write_str("it exists and is not a directory"),
            UnsafePathReason::OwnedByOtherUser { owner, current } => {
                write!(
                    f,
                    "it is owned by uid {owner}, not by this user (uid {current})"
                )
            }
            UnsafePathReason::TooPermissive { mode } => {
                write!(f, "its permissions {mode:04o} let other users in")
            }
            UnsafePathReason::HoldsOtherFiles => {
                f.write_str("it holds other files and is not a brain store (it has no brain.ctl)")
            }
            UnsafePathReason::IsAUrl { scheme } => {
                write!(f, "it is a {scheme}:// URL, not a directory")
            }
            UnsafePathReason::Empty => f.write_str("the path is empty"),
            UnsafePathReason::NotWritable => {
                f.write_str("this user may not create the store's files in it")
            }
        }
    }
}

/// Every failure brain-core reports.
///
/// Each message says what happened and what to do about it. Variants carry the
/// namespace, name, path and numbers involved so callers (the CLI, the Python
/// package) can act on them without parsing text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name starts with the prefix brain keeps for the parts of frames
    /// changed in place ([`crate::frames::PART_PREFIX`]); refused by
    /// [`crate::Namespace`] (the object level, [`crate::ObjectStore`],
    /// takes any name).
    #[error(
        "the name {name:?} starts with {:?}, which brain keeps for the parts of frames changed in place (hidden from listings, taken by gc); choose another name",
        crate::frames::PART_PREFIX
    )]
    ReservedName {
        /// The name refused.
        name: String,
    },

    /// A name, namespace or description is empty, too long or otherwise unusable.
    #[error(
        "invalid {kind} ({len} bytes): {reason}; use a {}UTF-8 string of at most {max} bytes",
        if matches!(kind, NameKind::Description) { "" } else { "non-empty " }
    )]
    InvalidName {
        /// Which string was refused.
        kind: NameKind,
        /// Its length in bytes.
        len: usize,
        /// The largest length accepted.
        max: usize,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The object does not exist.
    #[error(
        "no object named {name:?} in namespace {namespace:?}; list what exists with `brain ls {}`",
        shell_word(namespace)
    )]
    NotFound {
        /// The namespace searched.
        namespace: String,
        /// The name that was not found.
        name: String,
    },

    /// The namespace does not exist.
    #[error("no namespace named {namespace:?}; list what exists with `brain ns ls`")]
    NamespaceNotFound {
        /// The namespace that was not found.
        namespace: String,
    },

    /// The store (its capacity, or the filesystem under it) has no room for the object.
    #[error(
        "store is full: writing {} in namespace {namespace:?} needs {needed} bytes, but {used} of {capacity} bytes are used in {location}{replace}{held}{hint}",
        written_object(name),
        replace = if never_fits(*.needed, *.capacity) { String::new() } else { replace_hint(name, *.replacing, *.filesystem_full, location) },
        held = if *.held > 0 {
            format!("; {held} bytes of the filesystem are deleted or replaced objects that processes still map (pids {pids}): they are freed when those processes drop their views or exit", held = .held, pids = .holders)
        } else {
            String::new()
        },
        hint = if never_fits(*.needed, *.capacity) { never_fits_hint(*.filesystem_full, location) } else { full_hint(*.filesystem_full, location) }
    )]
    StoreFull {
        /// The namespace written to.
        namespace: String,
        /// The object being written.
        name: String,
        /// Bytes the object needs in the store.
        needed: u64,
        /// Bytes in use when the write was refused.
        used: u64,
        /// The store's capacity in bytes (the filesystem's size when it was the filesystem that ran out).
        capacity: u64,
        /// The store (its directory, or its URL).
        location: Location,
        /// True when what holds the store ran out before the store's own
        /// capacity was reached: the filesystem (ENOSPC), or a Redis
        /// server's memory limit (`maxmemory`; `used` and `capacity` are
        /// then the server's `used_memory` and `maxmemory`).
        filesystem_full: bool,
        /// Bytes of the object this write replaces: they stay in use until
        /// the new object is published, so a replace needs room for both.
        /// 0 for a new name.
        replacing: u64,
        /// When the filesystem ran out: bytes of this store's deleted or
        /// replaced objects that processes still map (freed when they let
        /// go), else 0.
        held: u64,
        /// The pids of the processes holding them, comma-separated.
        holders: String,
    },

    /// An object or the store's control file is damaged.
    #[error("{location} is corrupt: {reason}; {}", corrupt_hint(location))]
    Corrupt {
        /// The damaged file or key.
        location: Location,
        /// What was wrong with it.
        reason: String,
    },

    /// An object or file was written in a format version this build does not read.
    #[error("{location} has format version {found}, but this build of brain reads version {supported}; open it with a brain release that reads version {found}, or rewrite the object")]
    UnsupportedVersion {
        /// The file or key.
        location: Location,
        /// The version found in its header.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },

    /// Two names hashed to the same key; the file holds a different object.
    #[error("key collision at {location}: it holds {found_namespace:?}/{found_name:?}, not {namespace:?}/{name:?}; rename one of the two objects")]
    KeyCollision {
        /// The file or key.
        location: Location,
        /// The namespace asked for.
        namespace: String,
        /// The name asked for.
        name: String,
        /// The namespace stored in the file.
        found_namespace: String,
        /// The name stored in the file.
        found_name: String,
    },

    /// The object was stored with another codec than the one asked for.
    #[error("object {name:?} in namespace {namespace:?} is stored as {found}, not {expected}; read it with the matching call (see `brain info`)")]
    CodecMismatch {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The codec the caller asked for.
        expected: Codec,
        /// The codec in the file.
        found: Codec,
    },

    /// A payload could not be encoded or decoded by its codec.
    #[error("cannot {action} object {name:?} in namespace {namespace:?} as {codec}: {detail}")]
    Codec {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The codec involved.
        codec: Codec,
        /// "encode" or "decode".
        action: &'static str,
        /// What went wrong.
        detail: String,
    },

    /// Columns asked for that the stored table does not have.
    #[error(
        "table {name:?} in namespace {namespace:?} has no column {}; its columns are {}",
        list_columns(missing),
        list_columns(columns)
    )]
    ColumnNotFound {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The columns asked for that the table does not have.
        missing: Vec<String>,
        /// The table's columns, in order.
        columns: Vec<String>,
    },

    /// An Arrow encoder or decoder failed.
    #[error("Arrow IPC failed for object {name:?} in namespace {namespace:?}: {source}")]
    Arrow {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The underlying Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },

    /// The store directory (or the per-user root above it) is not safe to use.
    #[error("refusing to use {path} as a brain store: {reason}; {}", reason.advice())]
    UnsafePath {
        /// The refused path.
        path: PathBuf,
        /// Why it was refused.
        reason: UnsafePathReason,
    },

    /// The directory of a Redis store's host cache (a shared-memory store
    /// of its own) is not safe to use.
    #[error("refusing to use {path} as this host's cache of a Redis store: {reason}; choose another directory for it with --cache DIR, or --cache off to read without a cache")]
    UnsafeCachePath {
        /// The refused path.
        path: PathBuf,
        /// Why it was refused.
        reason: UnsafePathReason,
    },

    /// The operating system (or a server) denied access.
    #[error(
        "permission denied: cannot {op} {location}; {}",
        permission_hint(location)
    )]
    PermissionDenied {
        /// What brain was doing.
        op: &'static str,
        /// The path or URL involved.
        location: Location,
    },

    /// `wait_for` gave up.
    #[error("timed out after {} waiting for {name:?} in namespace {namespace:?}; is the writer running, and writing to the same store?", shown_duration(waited))]
    Timeout {
        /// The namespace.
        namespace: String,
        /// The name waited for.
        name: String,
        /// How long it waited.
        waited: Duration,
    },

    /// Another process held a name's lock for longer than the caller would wait.
    #[error("the lock on {name:?} in namespace {namespace:?} is still held after {waited_shown}, by another process or by another lock of this one (a lock is not re-entrant); wait longer, or find the holder{hint}",
        waited_shown = shown_duration(waited),
        hint = match location.path() {
            Some(path) => format!(" with `fuser {}`", path.display()),
            None => format!(" (the lock is {location})"),
        })]
    LockTimeout {
        /// The namespace.
        namespace: String,
        /// The locked name.
        name: String,
        /// How long it waited.
        waited: Duration,
        /// The lock (a file, or a key on a server).
        location: Location,
    },

    /// A write or delete made under a name's lock found the lock no longer
    /// this process's (it expired unrenewed, and may be another's now):
    /// nothing was changed. Only a store whose locks live on a server has
    /// this.
    #[error("cannot change {name:?} in namespace {namespace:?}: this process's lock on the name expired before the change was published (locks live {} unless renewed; was the process paused?), so nothing was changed; take the lock again and redo the update", shown_duration(ttl))]
    LockLost {
        /// The namespace.
        namespace: String,
        /// The locked name.
        name: String,
        /// How long a lock lives unrenewed.
        ttl: Duration,
        /// The lock (a key on a server).
        location: Location,
    },

    /// The store cannot do this: the operation belongs to another kind of
    /// store (`gc` of an in-memory store, say).
    #[error("{location} cannot {operation}: {reason}")]
    Unsupported {
        /// The store.
        location: Location,
        /// What was asked.
        operation: &'static str,
        /// Why this store has no such operation, and what to do instead.
        reason: &'static str,
    },

    /// The store was too busy to do this: writes in flight did not finish
    /// in time (a recount waits for them).
    #[error("cannot {operation} in {location}: writes in progress did not finish within {}; try again, or find a writer that hangs (a streamed write left open, or one in another container sharing the store)", shown_duration(waited))]
    Busy {
        /// The store.
        location: Location,
        /// What was to be done.
        operation: &'static str,
        /// How long it waited.
        waited: Duration,
    },

    /// A store URL could not be understood.
    #[error(
        "cannot open {url:?}: {reason}; use a path, shm://PATH, memory://NAME or a redis:// URL"
    )]
    InvalidUrl {
        /// The URL given (with any password replaced by `***`).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Any other operating-system error.
    #[error("cannot {op} {location}: {source}")]
    Io {
        /// What brain was doing.
        op: &'static str,
        /// The path or URL involved.
        location: Location,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// `text` as one word of a POSIX shell command, single-quoted unless it
/// is plain: how advice that names a `brain` command spells a namespace or
/// a store, so that it runs as written.
pub fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@,+=-%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A wait as a person reads it: `207 ms`, `12.5 s`, `60 s`.
fn shown_duration(waited: &Duration) -> String {
    match waited.as_secs_f64() {
        secs if secs < 10.0 => format!("{} ms", waited.as_millis()),
        secs if waited.subsec_millis() == 0 => format!("{secs:.0} s"),
        secs => format!("{secs:.1} s"),
    }
}

/// What to do about a corrupt file: an object's is deleted and written
/// again; the store's control file (capacity and usage) is made again.
fn corrupt_hint(location: &Location) -> &'static str {
    let path = location.path();
    let control = path
        .and_then(Path::file_name)
        .is_some_and(|name| name == "brain.ctl");
    let small_table = path.is_some_and(|path| path.ends_with("small/data.mdb"));
    if small_table {
        "move the store's `small` directory out of it: the store then opens without the small objects it held; \
         run `brain fsck` to count what it holds then, and restore them from a dump with \
         `brain restore DUMP --on-conflict skip` (or restore the whole store from a dump)"
    } else if control {
        "move it out of the store's directory: the next open makes a new one with no capacity (set it again with `brain capacity SIZE`), then run `brain fsck` to count what the store holds"
    } else {
        "delete the object (`brain rm`) and write it again, or run `brain fsck`"
    }
}

/// What to do about a denied access: to a directory, its owner and mode;
/// to a server, the credentials in the URL.
fn permission_hint(location: &Location) -> &'static str {
    match location {
        Location::Path(_) => "check the owner and mode of the store directory, or use a store of your own with BRAIN_PATH",
        Location::Url(url) if url.starts_with("redis") => "check the user and password in the URL (redis://USER:PASSWORD@HOST) and that user's rights on the server (its ACL)",
        Location::Url(_) => "this store has no permissions of its own: the error was injected (brain-mock's faults)",
    }
}

impl Error {
    /// Whether this is a store's server that is away for now (a store
    /// reached over the network): connections refused, dropped or timed
    /// out, or a server still loading its data after a restart
    /// ([`io::ErrorKind::ResourceBusy`]). A wait rides these out.
    pub fn is_server_away(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::ResourceBusy
            ),
            _ => false,
        }
    }

    /// What Arrow's `source` becomes for object `name` in `namespace`, as
    /// `map_err(Error::arrow(namespace, name))`. A store's own error that
    /// Arrow's writer met writing into an [`ObjectWriter`](crate::ObjectWriter)
    /// (a full store, a server gone) comes back as it was, not as Arrow's.
    pub(crate) fn arrow<'a>(
        namespace: &'a str,
        name: &'a str,
    ) -> impl FnOnce(arrow_schema::ArrowError) -> Error + 'a {
        move |source| match source {
            arrow_schema::ArrowError::IoError(_, io)
                if io.get_ref().is_some_and(|inner| inner.is::<Error>()) =>
            {
                *io.into_inner()
                    .and_then(|inner| inner.downcast::<Error>().ok())
                    .expect("checked to be a store's error")
            }
            source => Error::Arrow {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            },
        }
    }

    /// Wraps an OS error, mapping "permission denied" to [`Error::PermissionDenied`].
    /// For backends: every error a store reports about its files or server
    /// goes through here, so the two kinds are told apart the same way.
    pub fn io(op: &'static str, location: impl Into<Location>, source: io::Error) -> Self {
        let location = location.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            Error::PermissionDenied { op, location }
        } else {
            Error::Io {
                op,
                location,
                source,
            }
        }
    }

    /// A damaged object or file at `location`.
    pub fn corrupt(location: impl Into<Location>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            location: location.into(),
            reason: reason.into(),
        }
    }

    /// Places a [`FormatError`] found in the bytes at `location`.
    pub fn from_format(err: FormatError, location: impl Into<Location>) -> Self {
        let location = location.into();
        match err {
            FormatError::Version { found, supported } => Error::UnsupportedVersion {
                location,
                found,
                supported,
            },
            FormatError::Malformed { reason } => Error::Corrupt { location, reason },
        }
    }

    /// The location the error names, when it names one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::StoreFull { location, .. }
            | Error::Corrupt { location, .. }
            | Error::UnsupportedVersion { location, .. }
            | Error::KeyCollision { location, .. }
            | Error::PermissionDenied { location, .. }
            | Error::LockTimeout { location, .. }
            | Error::LockLost { location, .. }
            | Error::Unsupported { location, .. }
            | Error::Busy { location, .. }
            | Error::Io { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// Whether `location` is a store on a Redis (or Valkey) server.
fn on_a_server(location: &Location) -> bool {
    matches!(location, Location::Url(url) if url.starts_with("redis") || url.starts_with("valkey"))
}

/// The object a write names in an error: a part of a frame by its frame
/// (the part's own name is internal), with what parts are.
fn written_object(name: &str) -> String {
    match crate::format::part_names::part_owner(name) {
        Some(frame) => format!(
            "a new part of frame {frame:?} (a frame of 64 MiB or more is written as a part, and a \
             change of a frame writes what it changes as one; the first change of a frame stored \
             whole copies it into a part, which needs room for a second copy until the change is \
             published)"
        ),
        None => format!("{name:?}"),
    }
}

/// Why a replace needs more room than the new object, when it does.
fn replace_hint(name: &str, replacing: u64, filesystem_full: bool, location: &Location) -> String {
    if replacing == 0 {
        return String::new();
    }
    if filesystem_full && on_a_server(location) {
        // A delete frees its chunks within a second, or a minute later when
        // a read of them is on its way (brain-redis, scripts.rs).
        return format!(
            "; replacing {name:?} needs room for both copies until the new one is published (the old one takes {replacing} bytes): delete it first to write the new one in its place (its memory comes back within a second, or a minute later if another process was reading it)"
        );
    }
    format!("; replacing {name:?} needs room for both copies until the new one is published (the old one takes {replacing} bytes): delete it first to write the new one in its place")
}

/// Whether an object of `needed` bytes is larger than the whole of a
/// `capacity` (0: not known), so that no delete can make room for it.
fn never_fits(needed: u64, capacity: u64) -> bool {
    capacity > 0 && needed > capacity
}

/// What to do about an object larger than the whole store, or the server.
fn never_fits_hint(filesystem_full: bool, location: &Location) -> &'static str {
    match (filesystem_full, on_a_server(location)) {
        (false, _) => {
            "; the object alone is larger than the store's capacity, so no delete makes room for it: raise the capacity (`brain capacity SIZE`, StoreBuilder::capacity), or store it in smaller pieces"
        }
        (true, false) => {
            "; the filesystem itself is smaller than the object, so no delete makes room for it: give the filesystem more room (in Docker, --shm-size for /dev/shm), or store it in smaller pieces"
        }
        (true, true) => {
            "; the object alone is larger than the server's memory limit (maxmemory), so no delete makes room for it: give the server more memory (maxmemory in its configuration, or CONFIG SET maxmemory), or store it in smaller pieces"
        }
    }
}

/// What to do about a full store: make room in the store, or under it.
fn full_hint(filesystem_full: bool, location: &Location) -> &'static str {
    match (filesystem_full, on_a_server(location)) {
        (false, _) => {
            "; delete objects or namespaces, or raise the store's capacity (`brain capacity SIZE`, StoreBuilder::capacity); if the count looks wrong after a crash, `brain fsck` rebuilds it"
        }
        (true, false) => {
            "; the filesystem itself ran out of space: free memory on it, or give it more (in Docker, --shm-size for /dev/shm)"
        }
        (true, true) => {
            "; the server reached its memory limit (maxmemory): delete objects or namespaces (their memory comes back within a second, or a minute later for those another process was reading), or give the server more memory (maxmemory in its configuration, or CONFIG SET maxmemory)"
        }
    }
}

/// Column names for a message: quoted, comma-separated, at most 20 (a frame
/// of 165 columns would drown the message), then how many more.
fn list_columns(columns: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = columns
        .iter()
        .take(SHOWN)
        .map(|c| format!("{c:?}"))
        .collect();
    if columns.len() > SHOWN {
        out.push(format!("and {} more", columns.len() - SHOWN));
    }
    if out.is_empty() {
        return "none".into();
    }
    out.join(", ")
}
