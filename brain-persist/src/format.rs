//! The dump format: manifest, index entries, payload file names. See the
//! "Dump format" section of `docs/FORMAT.md`, which specifies it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brain_core::hash::Xxh3Stream;
use brain_core::{stored_size, Codec, MAX_DESCRIPTION_LEN, MAX_NAMESPACE_LEN, MAX_NAME_LEN};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The magic string every manifest starts its `magic` field with.
pub const MAGIC: &str = "brain-dump";
/// The newest dump format version: this build reads every version up to it.
/// It writes version 1 when no payload file of the dump holds more than one
/// object, and this one when some do (small payloads packed together; an
/// entry then records its `offset` in the file), so that earlier builds
/// read what they can and refuse the rest by its version.
pub const FORMAT_VERSION: u64 = 2;
/// The version of dumps whose payload files hold one object each.
pub(crate) const UNPACKED_VERSION: u64 = 1;
/// The manifest's file name inside a dump directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// Uncompressed bytes per zstd frame of a payload file.
pub const FRAME_SIZE: u64 = 4 << 20;
/// Readers refuse frame sizes above this, which bounds their memory.
pub(crate) const MAX_FRAME_SIZE: u64 = 64 << 20;
/// Readers take a shared lock on this file; writers delete old files only
/// when they can take it exclusively.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// A running sync holds an exclusive lock on this file.
pub(crate) const SYNC_LOCK_FILE: &str = "sync.lock";
/// The payload files' directory.
pub(crate) const DATA_DIR: &str = "data";
/// The sled trees of an index.
pub(crate) const OBJECTS_TREE: &str = "objects";
pub(crate) const META_TREE: &str = "meta";
/// The sled cache: the index is small, and memory must stay bounded.
const SLED_CACHE: u64 = 16 << 20;

/// What wrote a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DumpKind {
    /// A one-off dump (`brain dump`), written whole and swapped into place.
    Dump,
    /// A live mirror kept up to date by `brain sync`.
    Sync,
}

impl std::fmt::Display for DumpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DumpKind::Dump => "dump",
            DumpKind::Sync => "sync",
        })
    }
}

/// One file of the index database, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    /// The path inside the index directory.
    pub path: String,
    pub len: u64,
    /// xxh3-64 of the file, 16 hex digits.
    pub xxh3: String,
}

/// Where the index lies and what its files hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexRef {
    /// The index's directory name inside the dump (`index-<generation>`).
    pub dir: String,
    pub files: Vec<IndexFile>,
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub magic: String,
    pub format_version: u64,
    pub kind: DumpKind,
    /// Identifies the dump; the index records it too.
    pub dump_id: String,
    /// Incremented by every commit of a sync; 1 for a dump.
    pub generation: u64,
    /// When this generation was written.
    pub written_unix_ns: u64,
    /// Who wrote it ("brain-persist 0.1.0").
    pub writer: String,
    /// The namespace dumped, or none for the whole store.
    pub namespace: Option<String>,
    pub objects: u64,
    pub payload_bytes: u64,
    pub compressed_bytes: u64,
    pub index: IndexRef,
}

/// A manifest with only the fields needed to tell a foreign or future file
/// from a damaged one.
#[derive(Debug, Deserialize)]
struct ManifestHead {
    magic: Option<String>,
    format_version: Option<u64>,
}

impl Manifest {
    /// Reads `dir/MANIFEST.json`; `Ok(None)` when it does not exist.
    pub(crate) fn read(dir: &Path, file: Option<std::fs::File>) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        let mut file = match file {
            Some(file) => file,
            None => match open_lock(&path) {
                Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => file,
                Ok(_) => {
                    return Err(Error::CorruptManifest {
                        path,
                        detail: "it is not a regular file".into(),
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(Error::io("open", &path, err)),
            },
        };
        let mut bytes = Vec::new();
        // A manifest is a few KiB; more than 64 MiB is not one.
        (&mut file)
            .take(64 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &path, e))?;
        let head: ManifestHead = match serde_json::from_slice(&bytes) {
            Ok(head) => head,
            Err(err) if bytes.first() == Some(&b'{') => {
                return Err(Error::CorruptManifest {
                    path,
                    detail: format!("not valid JSON: {err}"),
                })
            }
            Err(_) => {
                return Err(Error::NotADump {
                    path: dir.to_owned(),
                    reason: format!("{MANIFEST_FILE} is not a brain dump manifest"),
                })
            }
        };
        if head.magic.as_deref() != Some(MAGIC) {
            return Err(Error::NotADump {
                path: dir.to_owned(),
                reason: format!(
                    "{MANIFEST_FILE} has magic {:?}, not {MAGIC:?}",
                    head.magic.unwrap_or_default()
                ),
            });
        }
        match head.format_version {
            Some(UNPACKED_VERSION..=FORMAT_VERSION) => {}
            Some(found) if found > FORMAT_VERSION => {
                return Err(Error::UnsupportedVersion {
                    path: dir.to_owned(),
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            other => {
                return Err(Error::CorruptManifest {
                    path,
                    detail: match other {
                        Some(version) => {
                            format!("format_version is {version}, and dumps are numbered from 1")
                        }
                        None => "it has no format_version number".into(),
                    },
                })
            }
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|err| Error::CorruptManifest {
                path: path.clone(),
                detail: err.to_string(),
            })?;
        if !is_index_dir_name(&manifest.index.dir) {
            return Err(Error::CorruptManifest {
                path,
                detail: format!(
                    "index directory {:?} is not index-<16 hex>",
                    manifest.index.dir
                ),
            });
        }
        for file in &manifest.index.files {
            if !is_safe_relative(&file.path) || parse_hex(&file.xxh3).is_none() {
                return Err(Error::CorruptManifest {
                    path,
                    detail: format!("index file entry {:?} is malformed", file.path),
                });
            }
        }
        Ok(Some(manifest))
    }

    /// Writes the manifest to `dir` atomically: a temporary file, synced,
    /// renamed over the old one.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp-{}", std::process::id()));
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest encodes");
        text.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()
        };
        write().map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("replace", &path, e))?;
        sync_dir(dir)
    }
}

/// An object in the index: its metadata and where its payload lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub namespace: String,
    pub name: String,
    /// The codec tag.
    pub codec: u16,
    pub description: String,
    /// The payload's length in bytes.
    pub size: u64,
    /// When the object was written in the store (nanoseconds since the epoch).
    pub created_unix_ns: u64,
    /// xxh3-64 of the uncompressed payload, 16 hex digits.
    pub xxh3: String,
    /// The payload file's name inside `data/`.
    pub file: String,
    /// Where the payload's frames start in a file that packs several small
    /// payloads (format version 2); `None` when the file holds this payload
    /// alone, and is exactly `file_len` long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The length of the payload's frames in the file: the file's length
    /// when the file holds this payload alone.
    pub file_len: u64,
    /// Uncompressed bytes per frame (the last frame may hold fewer).
    pub frame_size: u64,
    /// Each frame's compressed length, in order.
    pub frames: Vec<u64>,
    /// xxh3-64 of each frame's compressed bytes as written to the file, in
    /// order, 16 hex digits each: a restore checks these (no
    /// decompression) before it writes anything.
    pub frame_xxh3: Vec<String>,
}

impl Entry {
    pub(crate) fn key(&self) -> Vec<u8> {
        encode_key(&self.namespace, &self.name)
    }

    pub(crate) fn checksum(&self) -> u64 {
        parse_hex(&self.xxh3).expect("validated")
    }

    pub(crate) fn codec(&self) -> Codec {
        Codec::from_tag(self.codec)
    }

    pub(crate) fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.created_unix_ns)
    }

    /// Bytes the object would take in a store: its header and payload,
    /// rounded up to whole pages, as brain-core accounts them.
    pub(crate) fn stored_size(&self) -> u64 {
        stored_size(&self.namespace, &self.name, &self.description, self.size)
    }

    /// The recorded xxh3 of frame `i`'s compressed bytes.
    pub(crate) fn frame_checksum(&self, i: usize) -> u64 {
        parse_hex(&self.frame_xxh3[i]).expect("validated")
    }

    /// Each frame's offset in the payload file.
    pub(crate) fn frame_offsets(&self) -> Vec<u64> {
        self.frames
            .iter()
            .scan(self.offset.unwrap_or(0), |at, &len| {
                let start = *at;
                *at += len;
                Some(start)
            })
            .collect()
    }

    /// Uncompressed length of frame `i`.
    pub(crate) fn frame_len(&self, i: usize) -> u64 {
        let start = i as u64 * self.frame_size;
        self.frame_size.min(self.size - start)
    }

    /// Decodes and checks an entry read from the index under `key`.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> std::result::Result<Entry, String> {
        let entry: Entry =
            serde_json::from_slice(value).map_err(|e| format!("entry is not valid JSON: {e}"))?;
        let label = format!("entry {:?}/{:?}", entry.namespace, entry.name);
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("{label}: {what}"))
            }
        };
        check(
            !entry.namespace.is_empty() && entry.namespace.len() <= MAX_NAMESPACE_LEN,
            "invalid namespace",
        )?;
        check(
            !entry.name.is_empty() && entry.name.len() <= MAX_NAME_LEN,
            "invalid name",
        )?;
        check(
            entry.description.len() <= MAX_DESCRIPTION_LEN,
            "description too long",
        )?;
        check(entry.key() == key, "stored under another key")?;
        check(parse_hex(&entry.xxh3).is_some(), "malformed checksum")?;
        check(is_payload_name(&entry.file), "malformed payload file name")?;
        check(
            (1..=MAX_FRAME_SIZE).contains(&entry.frame_size),
            "frame size out of range",
        )?;
        check(
            entry.frames.len() as u64 == entry.size.div_ceil(entry.frame_size),
            "frame count does not match the size",
        )?;
        let bound = zstd::compress_bound(entry.frame_size as usize) as u64;
        check(
            entry.frames.iter().all(|&len| len > 0 && len <= bound),
            "a frame's compressed length is out of range",
        )?;
        check(
            entry.frames.iter().sum::<u64>() == entry.file_len,
            "frame lengths do not add up to the file length",
        )?;
        check(
            entry
                .offset
                .is_none_or(|at| at.checked_add(entry.file_len).is_some()),
            "the offset in the payload file is out of range",
        )?;
        check(
            entry.frame_xxh3.len() == entry.frames.len()
                && entry.frame_xxh3.iter().all(|h| parse_hex(h).is_some()),
            "the frame checksums do not match the frames",
        )?;
        Ok(entry)
    }
}

/// The format version a dump is written as: the oldest that describes its
/// entries, version 2 only when some payload file packs several (`packed`).
pub(crate) fn format_version(packed: bool) -> u64 {
    if packed {
        FORMAT_VERSION
    } else {
        UNPACKED_VERSION
    }
}

/// An object's key in the index: the namespace's length (u32 big-endian),
/// the namespace, then the name. Keys of one namespace share a prefix.
pub(crate) fn encode_key(namespace: &str, name: &str) -> Vec<u8> {
    let mut key = namespace_prefix(namespace);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn namespace_prefix(namespace: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + namespace.len());
    key.extend_from_slice(&(namespace.len() as u32).to_be_bytes());
    key.extend_from_slice(namespace.as_bytes());
    key
}

pub(crate) fn hex(value: u64) -> String {
    format!("{value:016x}")
}

/// Bytes as lowercase hex, two digits each.
pub(crate) fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of [`hex_of`]'s text; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

pub(crate) fn parse_hex(text: &str) -> Option<u64> {
    (text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

pub(crate) fn index_dir_name(generation: u64) -> String {
    format!("index-{generation:016x}")
}

pub(crate) fn is_index_dir_name(name: &str) -> bool {
    index_dir_generation(name).is_some()
}

pub(crate) fn index_dir_generation(name: &str) -> Option<u64> {
    parse_hex(name.strip_prefix("index-")?)
}

/// A payload file's name: `<generation:016x>-<sequence:08x>.zst`.
pub(crate) fn payload_name(generation: u64, sequence: u32) -> String {
    format!("{generation:016x}-{sequence:08x}.zst")
}

/// The generation in a payload file name; `None` if it is not one.
pub(crate) fn payload_generation(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".zst")?;
    let (generation, sequence) = stem.split_once('-')?;
    (sequence.len() == 8 && sequence.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| parse_hex(generation))
        .flatten()
}

fn is_payload_name(name: &str) -> bool {
    payload_generation(name).is_some()
}

/// True for a relative path with only normal components (no `..`, no root).
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

pub(crate) fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Length and xxh3 of what `reader` yields; with `copy`, also writes it there.
pub(crate) fn hash_stream(
    reader: &mut impl Read,
    mut copy: Option<&mut dyn Write>,
) -> std::io::Result<(u64, u64)> {
    let mut hasher = Xxh3Stream::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n])?;
        }
        len += n as u64;
    }
    Ok((len, hasher.digest()))
}

/// Every regular file under `dir` (relative paths, sorted) with its length
/// and checksum.
pub(crate) fn index_files(dir: &Path) -> Result<Vec<IndexFile>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let abs = dir.join(&rel);
        for entry in std::fs::read_dir(&abs).map_err(|e| Error::io("list", &abs, e))? {
            let entry = entry.map_err(|e| Error::io("list", &abs, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("inspect", entry.path(), e))?;
            let rel = rel.join(entry.file_name());
            if kind.is_dir() {
                todo.push(rel);
            } else if kind.is_file() {
                let path = entry.path();
                let mut file =
                    std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
                let (len, sum) =
                    hash_stream(&mut file, None).map_err(|e| Error::io("read", &path, e))?;
                out.push(IndexFile {
                    path: rel.to_string_lossy().into_owned(),
                    len,
                    xxh3: hex(sum),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Opens (creating) the sled database at `path`, with a small cache and no
/// background flusher: writers flush explicitly.
pub(crate) fn open_index(path: &Path, op: &'static str) -> Result<sled::Db> {
    let opened = std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE)
            .flush_every_ms(None)
            .open()
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(err)) => Err(index_error(op, path, err)),
        Err(_) => Err(Error::Index {
            op,
            path: path.to_owned(),
            detail: "sled panicked opening the database".into(),
        }),
    }
}

pub(crate) fn index_error(op: &'static str, path: &Path, err: sled::Error) -> Error {
    // The operating system's own errors (a full disk) say more as such.
    if let sled::Error::Io(source) = err {
        return Error::io(op, path, source);
    }
    Error::Index {
        op,
        path: path.to_owned(),
        detail: err.to_string(),
    }
}

/// Creates `path` (and missing parents) as directories of this user alone,
/// mode 0700 whatever the umask: a dump holds the store's objects.
pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create the directory", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("set permissions on", path, e))
}

/// fsyncs a directory, so renames and new names in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let file = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    file.sync_all().map_err(|e| Error::io("sync", dir, e))
}

/// Flushes every file of the filesystem holding `dir` to disk: one call
/// instead of an fsync per payload file.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    let file = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    rustix::fs::syncfs(&file).map_err(|e| Error::io("sync the filesystem of", dir, e.into()))
}

/// Opens a dump's lock file (or any small file of a dump) for reading
/// without following a symbolic link nor waiting for a FIFO's writer.
pub(crate) fn open_lock(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(payload_generation(&payload_name(7, 3)), Some(7));
        assert_eq!(payload_generation("../etc.zst"), None);
        assert_eq!(index_dir_generation(&index_dir_name(42)), Some(42));
        assert!(!is_safe_relative("../x"));
        assert!(!is_safe_relative("/x"));
        assert!(is_safe_relative("blobs/1"));
    }

    #[test]
    fn stored_size_matches_brain_core() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let store = brain_core::Store::open(dir.path().join("s")).unwrap();
        use brain_core::ObjectStore;
        let payload = vec![7u8; 10_000];
        let meta = store
            .put(
                "ns",
                "name",
                &brain_core::Payload::bytes(&payload).with_description("desc"),
            )
            .unwrap();
        assert_eq!(
            meta.stored_size,
            stored_size("ns", "name", "desc", payload.len() as u64)
        );
    }

    #[test]
    fn keys_group_by_namespace() {
        let a = encode_key("ab", "c");
        let b = encode_key("a", "bc");
        assert_ne!(a, b);
        assert!(a.starts_with(&namespace_prefix("ab")));
    }
}
