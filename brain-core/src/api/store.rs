//! The seam: [`ObjectStore`], the whole API every backend provides, and the
//! types it speaks (payloads, streamed writers, watch streams, locks, usage
//! and maintenance reports).
//!
//! The shared-memory store ([`crate::Store`]) is one implementation; the
//! in-memory one of brain-mock is another. Everything above brain-core (the
//! Python package, dumps and syncs, the `brain` command) holds an
//! `Arc<dyn ObjectStore>` and nothing else.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::error::{Error, Location, Result};
use crate::api::names::validate_name;
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::Codec;
use crate::sys::SharedBytes;

/// An object to write: its codec, description and payload bytes, given as
/// segments that are written back to back (so a header and a buffer need not
/// be joined in memory first).
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    /// The codec tag to store.
    pub codec: Codec,
    /// A free-form description ("" for none).
    pub description: &'a str,
    segments: Segments<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Segments<'a> {
    One([&'a [u8]; 1]),
    Many(&'a [&'a [u8]]),
}

impl<'a> Payload<'a> {
    /// Raw bytes.
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Payload {
            codec: Codec::Raw,
            description: "",
            segments: Segments::One([bytes]),
        }
    }

    /// The concatenation of `segments`, stored with `codec`.
    pub fn segments(codec: Codec, segments: &'a [&'a [u8]]) -> Self {
        Payload {
            codec,
            description: "",
            segments: Segments::Many(segments),
        }
    }

    /// The same payload with another codec tag.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same payload with a description.
    #[must_use]
    pub fn with_description(mut self, description: &'a str) -> Self {
        self.description = description;
        self
    }

    /// The segments, in order.
    pub fn parts(&self) -> &[&'a [u8]] {
        match &self.segments {
            Segments::One(one) => one,
            Segments::Many(many) => many,
        }
    }

    /// The payload's total length in bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(|s| s.len()).sum()
    }

    /// True when the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One figure of a store's usage that only its kind of store has (the size
/// of the filesystem under a shared-memory store, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDetail {
    /// A short key: `filesystem_size`, `filesystem_free`, ...
    pub key: &'static str,
    /// What it counts, for people: "filesystem", "fs free", ...
    pub label: &'static str,
    /// The figure, in bytes.
    pub bytes: u64,
}

/// Capacity and usage of a store, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The store's own limit, or `None` when only what is under it (a
    /// filesystem, a server's memory) limits it.
    pub capacity: Option<u64>,
    /// Bytes in use by objects, as accounted ([`crate::stored_size`]).
    pub used: u64,
    /// Bytes of replaced objects kept for later writes to reuse. They are
    /// given back whenever a write needs the room, so they count as free.
    pub recycled: u64,
    /// Bytes that can still be written.
    pub free: u64,
    /// The store's own figures, in the order a listing shows them.
    pub details: Vec<UsageDetail>,
}

impl Usage {
    /// The detail with this key.
    pub fn detail(&self, key: &str) -> Option<u64> {
        self.details.iter().find(|d| d.key == key).map(|d| d.bytes)
    }
}

/// The object count and size of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceStats {
    /// The namespace.
    pub namespace: String,
    /// How many objects it holds.
    pub objects: u64,
    /// Bytes they take, as accounted.
    pub bytes: u64,
}

/// What [`ObjectStore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unfinished objects left by writers that died before publishing.
    pub stray_objects: u64,
    /// Namespaces left half-created or half-removed.
    pub stray_namespaces: u64,
    /// Bytes those held.
    pub bytes_freed: u64,
    /// Replaced objects' memory kept for reuse, given back.
    pub recycled_objects: u64,
    /// Bytes of it.
    pub recycled_bytes: u64,
    /// Bytes that writers which died had reserved, given back.
    pub reservations_reclaimed: u64,
}

/// An object that failed its checks in [`ObjectStore::fsck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptObject {
    /// Where it is.
    pub location: Location,
    /// What is wrong with it.
    pub reason: String,
}

/// An object that a namespace holds but that cannot be read, so that
/// [`ObjectStore::list`] leaves it out (see [`ObjectStore::damaged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedObject {
    /// Its name, when that can still be read.
    pub name: Option<String>,
    /// Its key (of namespace and name), which names its file.
    pub key: crate::ObjectKey,
    /// Where it is.
    pub location: Location,
    /// What is wrong with it.
    pub reason: String,
}

/// What [`ObjectStore::fsck`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Objects checked.
    pub objects: u64,
    /// Usage as it was counted before.
    pub used_before: u64,
    /// Usage rebuilt from the objects present.
    pub used_after: u64,
    /// Objects that failed their checks.
    pub corrupt: Vec<CorruptObject>,
    /// How many of the corrupt objects were deleted.
    pub deleted: u64,
    /// Bytes of replaced objects kept for reuse, recounted.
    pub recycled: u64,
}

/// A backend's half of an [`ObjectWriter`]: an object being written,
/// published by `commit`, discarded when dropped uncommitted.
pub trait WriteObject: Send + fmt::Debug {
    /// Appends `bytes` to the payload.
    ///
    /// # Errors
    /// [`Error::StoreFull`], or an I/O error.
    fn write_payload(&mut self, bytes: &[u8]) -> Result<()>;

    /// Appends bytes that another thread may write while they are copied (a
    /// writable Python buffer). The default copies them, a piece at a time,
    /// into a private buffer first; a store that copies them directly
    /// overrides it.
    ///
    /// # Errors
    /// As [`WriteObject::write_payload`].
    fn write_shared(&mut self, bytes: SharedBytes<'_>) -> Result<()> {
        const PIECE: usize = 1 << 20;
        let mut buffer = vec![0u8; bytes.len().min(PIECE)];
        let mut at = 0;
        while at < bytes.len() {
            let n = (bytes.len() - at).min(PIECE);
            bytes.slice(at, at + n).copy_to(&mut buffer[..n]);
            self.write_payload(&buffer[..n])?;
            at += n;
        }
        Ok(())
    }

    /// Appends `pieces` one after another, each of which another thread may
    /// write while it is copied, as [`WriteObject::write_shared`] would one
    /// by one. The default does exactly that; a store that can copy many
    /// small pieces as one large copy (split across cores) overrides it.
    ///
    /// # Errors
    /// As [`WriteObject::write_payload`]; some of the pieces may have been
    /// appended: drop the writer.
    fn write_gathered(&mut self, pieces: &[SharedBytes<'_>]) -> Result<()> {
        pieces
            .iter()
            .try_for_each(|piece| self.write_shared(*piece))
    }

    /// Appends `len` bytes that `fill` writes in place: it is called with
    /// consecutive slices, `len` bytes in all, and must fill each whole (a
    /// read from a socket or a file straight into the object's memory).
    /// The default passes it a private buffer a piece at a time and appends
    /// each piece; a store that can hand out the object's own memory
    /// overrides it.
    ///
    /// # Errors
    /// As [`WriteObject::write_payload`], or the first error of `fill`;
    /// what the writer holds after an error is unspecified: drop it.
    fn write_with(
        &mut self,
        len: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        const PIECE: u64 = 1 << 20;
        let mut buffer = vec![0u8; len.min(PIECE) as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(PIECE) as usize;
            fill(&mut buffer[..n])?;
            self.write_payload(&buffer[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Bytes of payload written so far.
    fn payload_len(&self) -> u64;

    /// Whether this writer computes the payload checksum (docs/FORMAT.md)
    /// while the bytes go in, so that [`WriteObject::payload_checksum`]
    /// makes no second pass over a large payload. The default: no.
    fn hashes_as_it_writes(&self) -> bool {
        false
    }

    /// The payload checksum (docs/FORMAT.md) of everything written, which
    /// the commit stores; once it is given, the payload is final (a later
    /// write is an error). `None` from a writer that does not compute one as
    /// it writes (the default), which takes writes as before.
    ///
    /// # Errors
    /// After a failed write, as the commit would fail.
    fn payload_checksum(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Publishes the object atomically under its name.
    ///
    /// # Errors
    /// [`Error::StoreFull`], or an I/O error; nothing is published then.
    fn commit(self: Box<Self>) -> Result<ObjectMeta>;
}

/// An object being written: write the payload in pieces (or through
/// [`io::Write`]), then [`ObjectWriter::commit`] to publish it atomically.
/// Dropping it without committing leaves nothing behind.
#[derive(Debug)]
pub struct ObjectWriter {
    inner: Box<dyn WriteObject>,
}

impl ObjectWriter {
    /// Wraps a backend's writer.
    pub fn new(inner: Box<dyn WriteObject>) -> ObjectWriter {
        ObjectWriter { inner }
    }

    /// Appends `bytes` to the payload.
    ///
    /// # Errors
    /// [`Error::StoreFull`] when the store fills up, or another I/O error.
    /// A write the store's capacity refuses changes nothing and may be
    /// tried again; after a write that failed part-way (the filesystem
    /// ran out, an I/O error) the writer refuses further writes and its
    /// commit: drop it (nothing is published) and write the object again.
    pub fn write_payload(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_payload(bytes)
    }

    /// Appends bytes that another thread may write while they are copied:
    /// a torn value can be stored, never undefined behaviour (see
    /// [`SharedBytes`]).
    ///
    /// # Errors
    /// As [`ObjectWriter::write_payload`].
    pub fn write_shared(&mut self, bytes: SharedBytes<'_>) -> Result<()> {
        self.inner.write_shared(bytes)
    }

    /// Appends `pieces` one after another (bytes that another thread may
    /// write while they are copied, as [`ObjectWriter::write_shared`]).
    /// Many small pieces (the column buffers of a wide table) are copied as
    /// one large copy where the store allows it, split across cores.
    ///
    /// # Errors
    /// As [`ObjectWriter::write_payload`]; what the writer holds after an
    /// error is unspecified: drop it (nothing is published).
    pub fn write_gathered(&mut self, pieces: &[SharedBytes<'_>]) -> Result<()> {
        self.inner.write_gathered(pieces)
    }

    /// Appends `len` bytes that `fill` writes in place, with no copy where
    /// the store allows it (shared memory): `fill` is called with
    /// consecutive slices, `len` bytes in all, and must fill each whole,
    /// for example with [`io::Read::read_exact`] from a socket.
    ///
    /// # Errors
    /// As [`ObjectWriter::write_payload`], or the first error of `fill`;
    /// what the writer holds after an error is unspecified: drop it
    /// (nothing is published).
    pub fn write_with(
        &mut self,
        len: u64,
        mut fill: impl FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        self.inner.write_with(len, &mut fill)
    }

    /// Bytes of payload written so far.
    pub fn payload_len(&self) -> u64 {
        self.inner.payload_len()
    }

    /// Whether this writer computes the payload checksum while the bytes go
    /// in (a shared-memory store's writers do), so that
    /// [`ObjectWriter::payload_checksum`] costs no second pass.
    pub fn hashes_as_it_writes(&self) -> bool {
        self.inner.hashes_as_it_writes()
    }

    /// The payload checksum (docs/FORMAT.md) of everything written, the one
    /// the commit will store, or `None` from a writer that does not compute
    /// one as it writes. Once a checksum is given the payload is final: a
    /// later write is an error. A caller that knows what the bytes must hash
    /// to checks them with it before it commits, without reading them again.
    ///
    /// # Errors
    /// After a failed write, as [`ObjectWriter::commit`] would fail.
    pub fn payload_checksum(&mut self) -> Result<Option<u64>> {
        self.inner.payload_checksum()
    }

    /// Publishes the object under its name, replacing any object of that
    /// name in one atomic step. Readers of the old object keep their views.
    ///
    /// # Errors
    /// [`Error::StoreFull`] when the final size passes the capacity, or an I/O error.
    pub fn commit(self) -> Result<ObjectMeta> {
        self.inner.commit()
    }
}

impl io::Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_payload(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Something that happened to a name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// An object was written (created or replaced).
    Set {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An object was deleted, alone or with its namespace.
    Deleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl WatchEvent {
    /// The namespace of the object concerned.
    pub fn namespace(&self) -> &str {
        match self {
            WatchEvent::Set { namespace, .. } | WatchEvent::Deleted { namespace, .. } => namespace,
        }
    }

    /// The name of the object concerned.
    pub fn name(&self) -> &str {
        match self {
            WatchEvent::Set { name, .. } | WatchEvent::Deleted { name, .. } => name,
        }
    }
}

/// A backend's half of a [`Watcher`]: a stream of events.
///
/// Two sets of one name in quick succession may be reported once. When the
/// stream may have missed events (an overflow, a store replaced under it, a
/// reconnect), it compares what it knew with what is there and reports the
/// differences as events.
pub trait WatchEvents: Send + fmt::Debug {
    /// The next event, waiting at most `timeout` (`None`, or a timeout past what the clock can count: forever);
    /// `Ok(None)` when the time ran out.
    ///
    /// # Errors
    /// An I/O error of the watch itself.
    fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>>;
}

/// A stream of [`WatchEvent`]s for one namespace or for the whole store,
/// from [`ObjectStore::watch`]. Iterate it to block for each event, or call
/// [`Watcher::next_event`] with a timeout.
#[derive(Debug)]
pub struct Watcher {
    inner: Box<dyn WatchEvents>,
}

impl Watcher {
    /// Wraps a backend's event stream.
    pub fn new(inner: Box<dyn WatchEvents>) -> Watcher {
        Watcher { inner }
    }

    /// The next event, waiting at most `timeout` (`None`, or a timeout past what the clock can count: forever).
    /// `Ok(None)` means the time ran out.
    ///
    /// # Errors
    /// An I/O error of the watch.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        self.inner.next_event(timeout)
    }
}

impl Iterator for Watcher {
    type Item = Result<WatchEvent>;

    /// Blocks until the next event.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event(None).transpose()
    }
}

/// What a backend holds while a [`NameLock`] is held; dropping it releases
/// the lock.
pub trait LockGuard: Send + Sync + fmt::Debug {}

/// A held lock on one name, from [`ObjectStore::lock`]; released when dropped.
///
/// The lock belongs to the process that took it: a child forked while it
/// was held does not hold it ([`NameLock::held_here`]), and dropping the
/// child's copy leaves the parent's lock as it is (each backend's guard
/// sees to that).
#[derive(Debug)]
pub struct NameLock {
    _guard: Box<dyn LockGuard>,
    location: Location,
    /// The process that took it ([`crate::fork_mark`]).
    process: u64,
}

impl NameLock {
    /// A lock held through `guard`, which lives at `location`, taken by
    /// this process.
    pub fn new(guard: Box<dyn LockGuard>, location: Location) -> NameLock {
        NameLock {
            _guard: guard,
            location,
            process: crate::fork_mark(),
        }
    }

    /// Whether this process holds the lock: false in a child forked while
    /// its parent held it.
    pub fn held_here(&self) -> bool {
        self.process == crate::fork_mark()
    }

    /// Where the lock lives (a lock file, a key), for diagnostics.
    pub fn location(&self) -> &Location {
        &self.location
    }
}

fn unsupported(
    store: &(impl ObjectStore + ?Sized),
    operation: &'static str,
    reason: &'static str,
) -> Error {
    Error::Unsupported {
        location: store.location(),
        operation,
        reason,
    }
}

/// A store of named objects in namespaces: the whole API, for every backend.
///
/// [`crate::Store`] keeps objects in shared memory on this host; brain-mock
/// keeps them in this process's memory (the `memory://` backend). The typed
/// calls of [`crate::ObjectStoreExt`] work on every implementation.
///
/// Maintenance (`gc`, `fsck`, `set_capacity`) is a capability a backend may
/// lack: the provided methods refuse with [`Error::Unsupported`], which says
/// why.
///
/// This is the level of objects: a frame changed in place
/// ([`crate::frames`]) is a manifest under its name and parts under
/// reserved names ([`crate::frames::is_frame_part`]), and here they are
/// objects like any other: [`ObjectStore::names`], `list` and `watch`
/// show the parts, [`ObjectStore::delete`] of the name leaves them, and
/// `gc` does not look for parts no manifest references. For frames as
/// frames, use [`crate::Namespace`] (its listings skip parts, its `delete`
/// takes them with the frame), or [`crate::frames::delete_table`] and
/// [`crate::frames::sweep_all_parts`] (what `brain gc` and Python's
/// `Store.gc` run).
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Where the store is: its directory, or its URL. Errors name it.
    fn location(&self) -> Location;

    /// Writes an object, atomically replacing any object of that name.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::StoreFull`] (nothing is left behind), or an I/O error.
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        let mut writer = self.writer(
            namespace,
            name,
            payload.codec,
            payload.description,
            Some(payload.len() as u64),
        )?;
        for segment in payload.parts() {
            writer.write_payload(segment)?;
        }
        writer.commit()
    }

    /// Writes an object whose payload is the concatenation of `segments`,
    /// bytes that another thread may write while they are copied (a
    /// writable Python buffer): a torn value may be stored then, never
    /// undefined behaviour, and the checksum stored is that of the bytes
    /// stored.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    fn put_shared(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        let len = segments.iter().map(|s| s.len() as u64).sum();
        let mut writer = self.writer(namespace, name, codec, description, Some(len))?;
        for segment in segments {
            writer.write_shared(*segment)?;
        }
        writer.commit()
    }

    /// Writes as [`ObjectStore::put_shared`] does, except that an empty
    /// `description` keeps the description of the object it replaces
    /// (brain-plasma's rule, `description or old`). A replaced object that
    /// cannot be read (corrupt, or of a format version this build does not
    /// know) passes nothing on.
    ///
    /// Stores that can look at the old object inside the write itself
    /// override it: Redis's publish script (one round trip instead of two),
    /// and the shared-memory store for a small object replacing a small
    /// one, whose entry takes the old description in the transaction that
    /// writes it. Elsewhere (this default; in shared memory a large object,
    /// a small one replacing an object file, or one whose kept description
    /// would change what it takes) the old description is read before the
    /// new object is published, not in one step with it: another writer's
    /// object published in between may be replaced by this one carrying
    /// the description it found.
    /// (Last-writer-wins holds for the values; only the description can be
    /// the older one.)
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    fn put_shared_keeping_description(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        let kept = kept_description(self, namespace, name, description)?;
        let description = kept.as_deref().unwrap_or(description);
        self.put_shared(namespace, name, codec, description, segments)
    }

    /// Starts writing an object whose payload comes in pieces; nothing is
    /// visible until [`ObjectWriter::commit`].
    ///
    /// `expected_len`, when known, reserves capacity (and space) up front,
    /// so a full store fails before any byte is copied.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::StoreFull`], or an I/O error.
    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter>;

    /// Reads an object without copying it. `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::KeyCollision`], [`Error::UnsupportedVersion`], or I/O.
    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>>;

    /// Reads an object and checks its payload against the checksum its
    /// writer stored (a pass over every byte): a payload changed after it
    /// was written is an error, never data. An object stored without a
    /// checksum (by an older build) is returned unchecked.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the payload does not match its checksum; as
    /// [`ObjectStore::get`].
    fn get_verified(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        let Some(view) = self.get(namespace, name)? else {
            return Ok(None);
        };
        view.verify(self.location().join(namespace).join(name))?;
        Ok(Some(view))
    }

    /// Reads an object as the store holds it now, never through a copy that
    /// may lag behind it (a Redis store's tracked binding, which learns of
    /// another host's write a moment after it): what a writer holding the
    /// name's lock reads before it changes the object. The same as
    /// [`ObjectStore::get`] for stores without such copies.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    fn get_current(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        self.get(namespace, name)
    }

    /// Reads an object's metadata only. `None` when it does not exist.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>>;

    /// Whether the object exists.
    ///
    /// # Errors
    /// [`Error::InvalidName`] or I/O.
    fn contains(&self, namespace: &str, name: &str) -> Result<bool>;

    /// Deletes an object; views already handed out stay valid. Returns
    /// whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::KeyCollision`] or I/O.
    fn delete(&self, namespace: &str, name: &str) -> Result<bool>;

    /// Metadata of every object in a namespace, sorted by name (empty when
    /// the namespace does not exist).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or I/O.
    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>>;

    /// The objects of a namespace that cannot be read (damaged, or of a
    /// format version this build does not read), which
    /// [`ObjectStore::list`] leaves out so that one of them does not hide
    /// the rest. Dumps and mirrors ask for them, so that a backup never
    /// lacks an object without saying so. The default finds none: a store
    /// whose objects can only be damaged in their payloads, which reads
    /// and checksums report.
    ///
    /// # Errors
    /// I/O.
    fn damaged(&self, namespace: &str) -> Result<Vec<DamagedObject>> {
        let _ = namespace;
        Ok(Vec::new())
    }

    /// The names in a namespace, sorted.
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self
            .list(namespace)?
            .into_iter()
            .map(|meta| meta.name)
            .collect())
    }

    /// Every namespace, sorted.
    ///
    /// # Errors
    /// I/O.
    fn namespaces(&self) -> Result<Vec<String>>;

    /// Creates a namespace before its first object (a no-op when it
    /// exists), so that it is listed and can be watched.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or I/O.
    fn create_namespace(&self, namespace: &str) -> Result<()>;

    /// Removes a namespace and all its objects; returns how many objects went.
    ///
    /// # Errors
    /// [`Error::NamespaceNotFound`] when there is no such namespace, or I/O.
    fn remove_namespace(&self, namespace: &str) -> Result<u64>;

    /// Capacity and usage.
    ///
    /// # Errors
    /// I/O.
    fn usage(&self) -> Result<Usage>;

    /// The object count and size of every namespace.
    ///
    /// # Errors
    /// I/O.
    fn namespace_stats(&self) -> Result<Vec<NamespaceStats>> {
        let mut out = Vec::new();
        for namespace in self.namespaces()? {
            let metas = match self.list(&namespace) {
                Ok(metas) => metas,
                // Removed while we looked.
                Err(Error::NamespaceNotFound { .. }) => continue,
                Err(err) => return Err(err),
            };
            out.push(NamespaceStats {
                objects: metas.len() as u64,
                bytes: metas.iter().map(|m| m.stored_size).sum(),
                namespace,
            });
        }
        Ok(out)
    }

    /// Watches one namespace (creating it, so it can be watched before its
    /// first object), or every namespace with `None`, including ones
    /// created later.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an error setting up the watch.
    fn watch(&self, namespace: Option<&str>) -> Result<Watcher>;

    /// Blocks until `name` exists in `namespace` (at most `timeout`), then
    /// reads it.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it does not appear in time; as [`ObjectStore::get`].
    fn wait_for(&self, namespace: &str, name: &str, timeout: Duration) -> Result<ObjectView> {
        validate_name(name)?;
        let mut watcher = self.watch(Some(namespace))?;
        let started = Instant::now();
        loop {
            // Checked after the watch is in place, so a write in between is not missed.
            if let Some(view) = self.get(namespace, name)? {
                return Ok(view);
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout {
                    namespace: namespace.into(),
                    name: name.into(),
                    waited: timeout,
                });
            }
            // A name set by any event is checked at the top of the loop;
            // the cap re-checks even if the watch misses one.
            watcher.next_event(Some(left.min(Duration::from_millis(200))))?;
        }
    }

    /// Takes the lock on `name` in `namespace`, waiting at most `timeout`
    /// (`None`, or a timeout past what the clock can count: as long as it takes). Locks are advisory: they exclude
    /// other lockers, not plain writers. A holder that dies releases its lock.
    /// A lock is not re-entrant: a holder that asks for it again waits for
    /// itself (until the timeout, or forever without one).
    ///
    /// # Errors
    /// [`Error::LockTimeout`] when another holder keeps it past the timeout;
    /// [`Error::InvalidName`]; I/O.
    fn lock(&self, namespace: &str, name: &str, timeout: Option<Duration>) -> Result<NameLock>;

    /// Sets the store's capacity in bytes, for every user of the store
    /// (`None`: no limit but what is under it). Objects already stored stay
    /// even when they exceed it.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a store without a capacity of its own.
    fn set_capacity(&self, capacity: Option<u64>) -> Result<()> {
        let _ = capacity;
        Err(unsupported(
            self,
            "set a capacity",
            "this kind of store has no capacity of its own",
        ))
    }

    /// Removes what writers that died left behind, and gives back memory
    /// kept for reuse.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a store that keeps nothing to collect; I/O.
    fn gc(&self) -> Result<GcReport> {
        Err(unsupported(
            self,
            "collect garbage",
            "this kind of store keeps nothing that a dead writer could leave behind",
        ))
    }

    /// Checks every object and rebuilds the usage count; with
    /// `delete_corrupt`, removes objects that fail their checks.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a store whose objects cannot be damaged
    /// and whose count cannot drift; I/O.
    fn fsck(&self, delete_corrupt: bool) -> Result<FsckReport> {
        let _ = delete_corrupt;
        Err(unsupported(
            self,
            "check its objects",
            "this kind of store holds no files that could be damaged, and its usage count is exact",
        ))
    }

    /// Keeps `bytes` of memory allocated for this process's writes, as
    /// Plasma's `-m` and Ray's `object_store_memory` do: a write of a new
    /// name then copies into memory that is already allocated and mapped,
    /// as a replacing write does, and a deleted object's memory goes back to
    /// it. With `wait`, returns once it is allocated (the bytes allocated);
    /// else it is allocated in the background (0).
    /// The memory counts in the store's usage as memory kept for reuse
    /// ([`Usage::recycled`]), free for any write; `gc` gives it back and
    /// ends it, until this is called again.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a store that allocates as it writes; I/O.
    fn preallocate(&self, bytes: u64, wait: bool) -> Result<u64> {
        let _ = (bytes, wait);
        Err(unsupported(
            self,
            "preallocate memory",
            "this kind of store allocates memory as it writes",
        ))
    }

    /// Drops what this process keeps of objects it read (mappings, copies),
    /// so memory of objects deleted since is given back. A no-op for stores
    /// that keep nothing.
    fn clear_cache(&self) {}
}

/// The description a write of `description` under `name` should store
/// instead, by brain-plasma's rule `description or old`: the old object's
/// when `description` is empty and the name holds an object (`None`: store
/// `description` as it is). An old object that cannot be read (corrupt, or
/// of an unknown format version) passes nothing on.
///
/// # Errors
/// Reading the old object's metadata failed otherwise (I/O, a collision).
pub fn kept_description<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    description: &str,
) -> Result<Option<String>> {
    if !description.is_empty() {
        return Ok(None);
    }
    match store.metadata(namespace, name) {
        Ok(meta) => Ok(meta.map(|meta| meta.description)),
        Err(Error::Corrupt { .. }) | Err(Error::UnsupportedVersion { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

impl<T: ObjectStore + ?Sized> ObjectStore for Arc<T> {
    fn location(&self) -> Location {
        (**self).location()
    }
    fn put(&self, namespace: &str, name: &str, payload: &Payload<'_>) -> Result<ObjectMeta> {
        (**self).put(namespace, name, payload)
    }
    fn writer(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        expected_len: Option<u64>,
    ) -> Result<ObjectWriter> {
        (**self).writer(namespace, name, codec, description, expected_len)
    }
    fn get(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        (**self).get(namespace, name)
    }
    fn get_current(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        (**self).get_current(namespace, name)
    }
    fn get_verified(&self, namespace: &str, name: &str) -> Result<Option<ObjectView>> {
        (**self).get_verified(namespace, name)
    }
    fn put_shared(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        (**self).put_shared(namespace, name, codec, description, segments)
    }
    fn put_shared_keeping_description(
        &self,
        namespace: &str,
        name: &str,
        codec: Codec,
        description: &str,
        segments: &[SharedBytes<'_>],
    ) -> Result<ObjectMeta> {
        (**self).put_shared_keeping_description(namespace, name, codec, description, segments)
    }
    fn metadata(&self, namespace: &str, name: &str) -> Result<Option<ObjectMeta>> {
        (**self).metadata(namespace, name)
    }
    fn contains(&self, namespace: &str, name: &str) -> Result<bool> {
        (**self).contains(namespace, name)
    }
    fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        (**self).delete(namespace, name)
    }
    fn list(&self, namespace: &str) -> Result<Vec<ObjectMeta>> {
        (**self).list(namespace)
    }
    fn damaged(&self, namespace: &str) -> Result<Vec<DamagedObject>> {
        (**self).damaged(namespace)
    }
    fn names(&self, namespace: &str) -> Result<Vec<String>> {
        (**self).names(namespace)
    }
    fn namespaces(&self) -> Result<Vec<String>> {
        (**self).namespaces()
    }
    fn create_namespace(&self, namespace: &str) -> Result<()> {
        (**self).create_namespace(namespace)
    }
    fn remove_namespace(&self, namespace: &str) -> Result<u64> {
        (**self).remove_namespace(namespace)
    }
    fn usage(&self) -> Result<Usage> {
        (**self).usage()
    }
    fn namespace_stats(&self) -> Result<Vec<NamespaceStats>> {
        (**self).namespace_stats()
    }
    fn watch(&self, namespace: Option<&str>) -> Result<Watcher> {
        (**self).watch(namespace)
    }
    fn wait_for(&self, namespace: &str, name: &str, timeout: Duration) -> Result<ObjectView> {
        (**self).wait_for(namespace, name, timeout)
    }
    fn lock(&self, namespace: &str, name: &str, timeout: Option<Duration>) -> Result<NameLock> {
        (**self).lock(namespace, name, timeout)
    }
    fn set_capacity(&self, capacity: Option<u64>) -> Result<()> {
        (**self).set_capacity(capacity)
    }
    fn gc(&self) -> Result<GcReport> {
        (**self).gc()
    }
    fn fsck(&self, delete_corrupt: bool) -> Result<FsckReport> {
        (**self).fsck(delete_corrupt)
    }
    fn preallocate(&self, bytes: u64, wait: bool) -> Result<u64> {
        (**self).preallocate(bytes, wait)
    }
    fn clear_cache(&self) {
        (**self).clear_cache()
    }
}
