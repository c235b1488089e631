//! Reading objects: the header, then the payload, into memory for small
//! objects and as a mapping for large ones; the per-process cache; and the
//! retries a reader needs when the file it opened was recycled under it.

use std::io;
use std::path::Path;

use arrow_buffer::{Buffer, MutableBuffer};
use rustix::fd::{AsFd, OwnedFd};

use super::cache::Stamp;
use super::pool::recyclable;
use super::Store;
use crate::api::error::{Error, Result};
use crate::api::names::{validate_name, validate_namespace};
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::{Header, ObjectKey};
use crate::sys::io::{open_readonly, read_full, read_start, replaced_under, try_lock_shared};
use crate::sys::{Mapping, SharedLocked};

/// A get first reads this much, which holds the header and most small payloads.
pub(crate) const FIRST_READ: usize = 4096;
/// How often a get opens a name again when the file it opened was replaced
/// and recycled while it read (each retry needs another whole write to race it).
const MAX_READ_ATTEMPTS: usize = 8;

/// What a read returns: only the metadata, or the whole object.
pub(crate) enum Read {
    Meta(ObjectMeta),
    View(ObjectView),
}

impl Read {
    /// The object's metadata, whichever was read.
    pub(crate) fn into_meta(self) -> ObjectMeta {
        match self {
            Read::Meta(meta) => meta,
            Read::View(view) => view.meta().clone(),
        }
    }
}

impl Store {
    /// Reads an object's header and, when `whole` or the object is small,
    /// its payload. Returns `None` when there is no such object.
    pub(crate) fn read_object(
        &self,
        namespace: &str,
        name: &str,
        whole: bool,
    ) -> Result<Option<Read>> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        let key = ObjectKey::new(namespace, name);
        let path = self.object_path(namespace, key);
        if whole {
            if let Some(view) = self.cached(key, &path) {
                return Ok(Some(Read::View(view)));
            }
        }
        for _ in 0..MAX_READ_ATTEMPTS {
            if let Some(read) = self.read_object_once(namespace, name, key, &path, whole)? {
                return Ok(read);
            }
        }
        Err(Error::io(
            "read",
            &path,
            io::Error::new(
                io::ErrorKind::Interrupted,
                format!("the object was replaced {MAX_READ_ATTEMPTS} times while being read; read it again"),
            ),
        ))
    }

    /// One attempt at [`Store::read_object`]: `None` when the file opened was
    /// replaced and recycled part-way through, and the name must be opened again.
    fn read_object_once(
        &self,
        namespace: &str,
        name: &str,
        key: ObjectKey,
        path: &Path,
        whole: bool,
    ) -> Result<Option<Option<Read>>> {
        let Some(fd) = open_object(path)? else {
            return Ok(Some(None));
        };
        let mut first = MutableBuffer::from_len_zeroed(FIRST_READ);
        let (header, got) = match read_header(&fd, first.as_slice_mut(), path) {
            Ok(read) => read,
            // The file may have left its name and be being rewritten.
            Err(_) if replaced_under(&fd, path) => return Ok(None),
            Err(err) => return Err(err),
        };
        if header.key != key || header.namespace != namespace || header.name != name {
            if replaced_under(&fd, path) {
                return Ok(None);
            }
            return Err(Error::KeyCollision {
                location: path.into(),
                namespace: namespace.into(),
                name: name.into(),
                found_namespace: header.namespace,
                found_name: header.name,
            });
        }
        if !whole {
            let meta = ObjectMeta::from_header(&header);
            return Ok(Some(Some(Read::Meta(meta))));
        }
        let view = self.read_payload(key, path, &fd, &header, first, got)?;
        Ok(view.map(|view| Some(Read::View(view))))
    }

    /// Reads the payload of the object file open as `fd`, whose `header` was
    /// read before (with its first `got` bytes in `first`). `None` when the
    /// file was recycled in between and the name must be opened again.
    fn read_payload(
        &self,
        key: ObjectKey,
        path: &Path,
        fd: &OwnedFd,
        header: &Header,
        mut first: MutableBuffer,
        got: usize,
    ) -> Result<Option<ObjectView>> {
        let header_len = header.encoded_len();
        let file_len = header.file_len();
        let meta = ObjectMeta::from_header(header);
        // A file that may be recycled is locked before its payload is read:
        // from then on no writer can rewrite it. What was read before the
        // lock is checked again under it.
        let locked = recyclable(file_len);
        let file_len = usize::try_from(file_len)
            .map_err(|_| Error::corrupt(path, "payload length exceeds the address space"))?;
        let mapped = file_len > self.inner.small_object_limit;
        // Every mapping is made under a shared lock (sys/mapping.rs), and a
        // recyclable file is read under one.
        let guard = if locked || mapped {
            match SharedLocked::try_lock(fd.as_fd()).map_err(|e| Error::io("lock", path, e))? {
                Some(guard) => Some(guard),
                None => return Ok(None),
            }
        } else {
            None
        };
        if locked && header_changed(fd, header, path) {
            return Ok(None);
        }
        if file_len <= self.inner.small_object_limit {
            let mut bytes = if file_len <= FIRST_READ {
                first.truncate(file_len);
                first
            } else {
                let mut bytes = MutableBuffer::from_len_zeroed(file_len);
                bytes.as_slice_mut()[..got].copy_from_slice(&first[..got]);
                let n = read_full(fd, &mut bytes.as_slice_mut()[got..], got as u64)
                    .map_err(|e| Error::io("read", path, e))?;
                bytes.truncate(got + n);
                bytes
            };
            if bytes.len() < file_len || got < FIRST_READ.min(file_len) {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "file is truncated: {} of {file_len} bytes",
                        bytes.len().min(got)
                    ),
                ));
            }
            bytes.truncate(file_len);
            let view = ObjectView::new(meta, Buffer::from(bytes).slice(header_len))
                .with_checksum(header.checksum());
            if !locked {
                self.remember_copy(key, path, fd, &view);
            }
            return Ok(Some(view));
        }
        let guard = guard.expect("a mapped file is locked");
        let stat = *guard.stat();
        if stat.st_size as u64 != file_len as u64 {
            if replaced_under(fd, path) {
                return Ok(None);
            }
            return Err(Error::corrupt(
                path,
                format!("file is {} bytes, its header says {file_len}", stat.st_size),
            ));
        }
        // The mapping holds the open file, and with it the shared lock.
        let mapping =
            Mapping::map_readonly(&guard, file_len).map_err(|e| Error::io("map", path, e))?;
        let view =
            ObjectView::from_mapping(meta, mapping, header_len).with_checksum(header.checksum());
        self.remember(key, path, &stat, &view);
        Ok(Some(view))
    }

    /// A cached view of the object at `path`, if the file there is still the one cached.
    fn cached(&self, key: ObjectKey, path: &Path) -> Option<ObjectView> {
        let mut cache = crate::sys::fork::lock(&self.inner.cache);
        cache.maybe_sweep();
        let (stamp, view) = cache.get(key)?;
        drop(cache);
        match rustix::fs::stat(path) {
            Ok(st) if Stamp::of(&st) == stamp => Some(view),
            _ => {
                self.forget_cached(key);
                None
            }
        }
    }

    fn remember(&self, key: ObjectKey, path: &Path, stat: &rustix::fs::Stat, view: &ObjectView) {
        let mut cache = crate::sys::fork::lock(&self.inner.cache);
        cache.insert(key, path, Stamp::of(stat), view.clone(), false);
        drop(cache);
        self.sweep_while_idle();
    }

    /// Caches a copy of a small object read from `fd`, when it is read for
    /// the second time: a value read over and over then costs one `stat`.
    fn remember_copy(&self, key: ObjectKey, path: &Path, fd: &OwnedFd, view: &ObjectView) {
        let mut cache = crate::sys::fork::lock(&self.inner.cache);
        if !cache.read_again(key) {
            return;
        }
        if let Ok(stat) = rustix::fs::fstat(fd) {
            cache.insert(key, path, Stamp::of(&stat), view.clone(), true);
        }
    }

    /// Drops the cached view of `key` (its object was replaced or deleted
    /// by this process), and sweeps others when it is time.
    pub(crate) fn forget_cached(&self, key: ObjectKey) {
        let mut cache = crate::sys::fork::lock(&self.inner.cache);
        cache.remove(key);
        cache.maybe_sweep();
    }

    /// Drops every cached view, and every mapping kept for this process's
    /// later writes, releasing the memory and descriptors they hold.
    pub fn clear_cache(&self) {
        crate::sys::fork::lock(&self.inner.cache).clear();
        self.forget_warm();
    }
}

/// Reads the header of the object file at `path`; `None` if it vanished.
pub(crate) fn read_meta_at(path: &Path) -> Result<Option<ObjectMeta>> {
    let mut attempts = 0;
    loop {
        let Some(fd) = open_object(path)? else {
            return Ok(None);
        };
        let named = path
            .file_name()
            .and_then(|name| ObjectKey::from_hex(name.to_str()?));
        let read = read_header(&fd, &mut [0u8; FIRST_READ], path);
        // Another key's header, or none, from a file that left its name (and
        // was recycled) while being read: the name holds another file now.
        let stale = match &read {
            Ok((header, _)) => named.is_some_and(|key| key != header.key),
            Err(_) => true,
        };
        if stale && attempts < MAX_READ_ATTEMPTS && replaced_under(&fd, path) {
            attempts += 1;
            continue;
        }
        let (header, _) = read?;
        return Ok(Some(ObjectMeta::from_header(&header)));
    }
}

/// Opens an object file for reading; `None` when it does not exist.
pub(crate) fn open_object(path: &Path) -> Result<Option<OwnedFd>> {
    open_readonly(path).map_err(|e| Error::io("open", path, e))
}

/// Takes a shared lock on an object file without waiting. `false` means a
/// writer holds the file: it left its name and is being rewritten.
pub(crate) fn lock_shared(fd: impl AsFd, path: &Path) -> Result<bool> {
    try_lock_shared(fd).map_err(|e| Error::io("lock", path, e))
}

/// Whether the file no longer holds `header`, read before its shared lock
/// was taken: it was recycled in between. Read again under the lock, where
/// it can no longer change, and before anything is checked against it.
fn header_changed(fd: &OwnedFd, header: &Header, path: &Path) -> bool {
    let mut again = [0u8; FIRST_READ];
    !read_header(fd, &mut again, path).is_ok_and(|(now, _)| now == *header)
}

/// Reads the start of the file into `first` and decodes the header, reading
/// more when the header is longer. Returns the header and the bytes in `first`.
fn read_header(fd: &OwnedFd, first: &mut [u8], path: &Path) -> Result<(Header, usize)> {
    // One pread: a regular file's read comes back short only at its end, and
    // reading on to prove it would cost a second system call on every get.
    let got = read_start(fd, first).map_err(|e| Error::io("read", path, e))?;
    let header_len = Header::needed_len(&first[..got]).map_err(|e| Error::from_format(e, path))?;
    let header = if header_len <= got {
        Header::decode(&first[..header_len])
    } else {
        let mut bytes = vec![0u8; header_len];
        let n = read_full(fd, &mut bytes, 0).map_err(|e| Error::io("read", path, e))?;
        Header::decode(&bytes[..n])
    }
    .map_err(|e| Error::from_format(e, path))?;
    Ok((header, got))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::store::{ObjectStore, Payload};
    use crate::format::Codec;
    use crate::shm::DEFAULT_SMALL_OBJECT_LIMIT;

    /// A reader that read a header, then lost a race to a writer that
    /// recycled the file, must not pair that header with the new bytes, nor
    /// take the new length for corruption, on the mapped path and on the
    /// read-into-memory one.
    #[test]
    fn a_header_read_before_the_file_was_recycled_is_not_trusted() {
        let len = 2 << 20;
        for small_object_limit in [DEFAULT_SMALL_OBJECT_LIMIT, 4 << 20] {
            for republished in [len, len * 3 / 4] {
                let dir = tempfile::Builder::new()
                    .prefix("brain-core-unit")
                    .tempdir_in("/dev/shm")
                    .unwrap();
                let store = Store::builder()
                    .path(dir.path().join("store"))
                    .mapping_cache(0)
                    .small_object_limit(small_object_limit)
                    .open()
                    .unwrap();
                let put = |byte: u8, len: usize| {
                    store
                        .put("n", "x", &Payload::bytes(&vec![byte; len]))
                        .unwrap()
                };
                put(1, len);
                let key = ObjectKey::new("n", "x");
                let path = store.object_path("n", key);
                let fd = open_object(&path).unwrap().unwrap();
                let mut first = MutableBuffer::from_len_zeroed(FIRST_READ);
                let (header, got) = read_header(&fd, first.as_slice_mut(), &path).unwrap();
                // The first file goes to the pool, and the next write refills it.
                put(2, len);
                put(3, republished);
                let (open, named) = (
                    rustix::fs::fstat(&fd).unwrap(),
                    rustix::fs::stat(&path).unwrap(),
                );
                assert_eq!(open.st_ino, named.st_ino, "the first file was not reused");
                let read = store.read_payload(key, &path, &fd, &header, first, got);
                assert!(
                    matches!(read, Ok(None)),
                    "limit {small_object_limit}, {republished} bytes: {read:?} instead of a retry"
                );
                let now = store.get("n", "x").unwrap().unwrap();
                assert_eq!((now[0], now.len()), (3, republished));
            }
        }
    }

    /// A writer that claims a pooled file zeroes its magic before anything
    /// else, so a reader holding a descriptor from the file's old life
    /// cannot read the old header over new bytes, even if the writer dies.
    #[test]
    fn a_claimed_file_stops_looking_like_its_old_object_at_once() {
        let dir = tempfile::Builder::new()
            .prefix("brain-core-unit")
            .tempdir_in("/dev/shm")
            .unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let len = 2usize << 20;
        store
            .put("n", "x", &Payload::bytes(&vec![1u8; len]))
            .unwrap();
        let path = store.object_path("n", ObjectKey::new("n", "x"));
        let stale = open_object(&path).unwrap().unwrap();
        store
            .put("n", "x", &Payload::bytes(&vec![2u8; len]))
            .unwrap();
        let mut writer = store
            .writer("n", "y", Codec::Raw, "", Some(len as u64))
            .unwrap();
        writer.write_payload(&vec![3u8; 4096]).unwrap();
        let mut first = [0u8; FIRST_READ];
        assert!(
            read_header(&stale, &mut first, &path).is_err(),
            "the claimed file still reads as the old object"
        );
        drop(writer);
        assert!(store.get("n", "y").unwrap().is_none());
    }
}
