//! Reading a dump: its manifest, its index (checked file by file, then
//! opened as a private copy), and its payloads frame by frame.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brain_core::hash::Xxh3Stream;
use brain_core::Codec;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::format::{
    self, hash_stream, index_dir_generation, open_index, DumpKind, Entry, Manifest, DATA_DIR,
    LOCK_FILE, MANIFEST_FILE, META_TREE, OBJECTS_TREE, UNPACKED_VERSION,
};
use crate::parallel;
use crate::progress::{Phase, Progress, Reporter};

/// What a dump holds, as [`list_dump`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpInfo {
    /// The dump's directory.
    pub path: PathBuf,
    /// A one-off dump or a sync mirror.
    pub kind: DumpKind,
    /// The format version it was written in.
    pub format_version: u64,
    /// How many times it was committed (1 for a dump; a sync counts up).
    pub generation: u64,
    /// When its current generation was written.
    pub written: SystemTime,
    /// What wrote it (`brain-persist <version>`).
    pub writer: String,
    /// The namespace dumped, or `None` for the whole store.
    pub namespace: Option<String>,
    /// Every object, sorted by namespace then name; the parts of a frame
    /// changed in place are objects of their own here ([`DumpInfo::names`]
    /// folds them into their frame).
    pub objects: Vec<DumpEntry>,
}

impl DumpInfo {
    /// The namespaces the dump holds, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out: Vec<String> = self.objects.iter().map(|o| o.namespace.clone()).collect();
        out.dedup();
        out
    }

    /// The dump's names, as a store lists them: a frame changed in place
    /// (stored as a manifest and parts) is one entry with its writer's
    /// codec ([`DumpEntry::frame_codec`]) whose `size` and
    /// `compressed_size` are those of its manifest and parts together; the
    /// parts themselves, which are restored with it, are left out.
    pub fn names(&self) -> Vec<DumpEntry> {
        let mut parts: std::collections::HashMap<(&str, &str), (u64, u64)> =
            std::collections::HashMap::new();
        for entry in &self.objects {
            if let Some(owner) = brain_core::frames::part_owner(&entry.name) {
                let sums = parts.entry((&entry.namespace, owner)).or_default();
                sums.0 += entry.size;
                sums.1 += entry.compressed_size;
            }
        }
        self.objects
            .iter()
            .filter(|entry| !brain_core::frames::is_frame_part(&entry.name))
            .map(|entry| {
                let mut entry = entry.clone();
                entry.codec = entry.frame_codec.unwrap_or(entry.codec);
                if let Some((size, compressed)) =
                    parts.get(&(entry.namespace.as_str(), entry.name.as_str()))
                {
                    entry.size += size;
                    entry.compressed_size += compressed;
                }
                entry
            })
            .collect()
    }

    /// Uncompressed payload bytes of every object.
    pub fn payload_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    /// Bytes of every payload file.
    pub fn compressed_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.compressed_size).sum()
    }
}

/// One object of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpEntry {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its codec.
    pub codec: Codec,
    /// Its description ("" for none).
    pub description: String,
    /// The payload's length in bytes.
    pub size: u64,
    /// The payload's compressed length in bytes: its frames in the payload file.
    pub compressed_size: u64,
    /// When the object was written in the store it was dumped from.
    pub created: SystemTime,
    /// xxh3-64 of the payload.
    pub checksum: u64,
    /// The payload file's name in the dump's `data/` directory.
    pub file: String,
    /// Where the payload's frames start in a payload file that packs several
    /// small payloads; `None` when the file holds this payload alone.
    pub offset: Option<u64>,
    /// For a frame changed in place (codec [`Codec::FrameParts`], its
    /// manifest), the codec its writer gave it (pandas, polars or Arrow),
    /// read from the manifest; `None` for any other object, and for a
    /// manifest that cannot be read (which a restore reports).
    pub frame_codec: Option<Codec>,
}

impl From<&Entry> for DumpEntry {
    fn from(entry: &Entry) -> Self {
        DumpEntry {
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
            codec: entry.codec(),
            description: entry.description.clone(),
            size: entry.size,
            compressed_size: entry.file_len,
            created: entry.created(),
            checksum: entry.checksum(),
            file: entry.file.clone(),
            offset: entry.offset,
            frame_codec: None,
        }
    }
}

/// The largest manifest whose codec a listing reads: a manifest is a few
/// KiB for a frame of a few columns, and grows by a few bytes per append.
const LISTED_MANIFEST_MOST: u64 = 16 << 20;

/// Reads what the dump at `path` holds: its manifest and its index, both
/// checked (the index file by file against the manifest's checksums, then
/// entry by entry). Payloads are not read, but for a frame changed in
/// place its manifest's, for the codec its writer gave it
/// ([`DumpEntry::frame_codec`]); see [`verify_dump`].
///
/// # Errors
/// [`Error::DumpNotFound`], [`Error::NotADump`], [`Error::MissingManifest`],
/// [`Error::CorruptManifest`], [`Error::UnsupportedVersion`],
/// [`Error::CorruptIndex`], or I/O.
pub fn list_dump(path: impl AsRef<Path>) -> Result<DumpInfo> {
    DumpReader::open(path.as_ref()).map(|dump| dump.info())
}

/// As [`list_dump`], then reads every payload whole: each frame's
/// compressed bytes against the index's checksums, and each frame
/// decompressed (with zstd's own checksum) and the payload's checksum.
///
/// # Errors
/// As [`list_dump`], and [`Error::MissingPayload`],
/// [`Error::TruncatedPayload`], [`Error::CorruptPayload`],
/// [`Error::ChecksumMismatch`] for the first damaged payload.
pub fn verify_dump(path: impl AsRef<Path>, progress: &Progress) -> Result<DumpInfo> {
    let dump = DumpReader::open(path.as_ref())?;
    let all: Vec<&Entry> = dump.entries.iter().collect();
    let bytes = all.iter().map(|e| e.size).sum();
    let mut reporter = Reporter::start(progress, Phase::Verifying, bytes, all.len() as u64);
    let mut scratch = Scratch::new();
    for entry in all {
        dump.read_payload(entry, &mut scratch, true, |chunk| {
            reporter.bytes(chunk.len() as u64);
            Ok(())
        })?;
        reporter.object();
    }
    drop(reporter);
    Ok(dump.info())
}

/// One reading thread's zstd context and compressed frame.
pub(crate) struct FrameReader {
    decompressor: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
}

/// Buffers and contexts reused from one payload to the next: one
/// [`FrameReader`] per thread.
pub(crate) struct Scratch {
    readers: Vec<FrameReader>,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        let readers = (0..parallel::workers())
            .map(|_| FrameReader {
                decompressor: zstd::bulk::Decompressor::new().expect("a zstd context"),
                compressed: Vec::new(),
            })
            .collect();
        Scratch { readers }
    }
}

/// A decompressed frame, with the xxh3 of its compressed bytes when asked.
#[derive(Default)]
struct Plain {
    bytes: Vec<u8>,
    compressed_xxh3: u64,
}

/// An open, checked dump.
pub(crate) struct DumpReader {
    pub(crate) path: PathBuf,
    dir: OwnedFd,
    /// A shared lock on `LOCK`: a sync or a later dump leaves the files this
    /// reader uses in place while it is held.
    _lock: Option<OwnedFd>,
    pub(crate) manifest: Manifest,
    /// Sorted by namespace, then name.
    pub(crate) entries: Vec<Entry>,
    /// The pack file read last, by name: entries in a pack are read one
    /// after another, and opening it again for each would cost more than
    /// reading them.
    last_pack: Mutex<Option<OpenPack>>,
}

/// A pack file kept open, with its length when it was opened (a dump's
/// files do not change while a reader holds its `LOCK`).
struct OpenPack {
    name: String,
    file: Arc<File>,
    len: u64,
}

/// The temporary directory a restore copies a dump's index into is named
/// this, then its process's [`brain_core::owner_tag`].
const INDEX_COPY_PREFIX: &str = "brain-dump-index-";

/// Removes the index copies that killed processes left in the temporary
/// directory (a restore killed mid-way cannot remove its own). Best effort:
/// a copy that cannot be removed stays for the next restore to try.
fn remove_index_copies_of_ended_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(INDEX_COPY_PREFIX))
        else {
            continue;
        };
        // `<pid>~<namespace>-<random>`; copies named before the tag was
        // added carry none and are left alone.
        let Some((tag, _)) = rest.split_once('-') else {
            continue;
        };
        if brain_core::owner_tag_gone(tag) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Why a file of a dump could not be opened.
enum Unopened {
    Missing,
    /// A FIFO, a device, a directory or a symbolic link where a dump has a
    /// regular file: opening it could wait forever (a FIFO) or read
    /// something else entirely.
    NotRegular(&'static str),
    Os(Errno),
}

impl Unopened {
    /// The error for a file that is neither missing nor of the wrong kind.
    fn into_error(self, path: PathBuf) -> Error {
        match self {
            Unopened::Missing => Error::io("open", path, Errno::NOENT.into()),
            Unopened::NotRegular(kind) => {
                Error::io("open", path, std::io::Error::other(not_regular(kind)))
            }
            Unopened::Os(err) => Error::io("open", path, err.into()),
        }
    }
}

/// What is wrong with a file of a dump that is not a regular file.
fn not_regular(kind: &str) -> String {
    format!("it is {kind}, and a dump holds regular files only: it was changed by hand or damaged")
}

/// Opens the regular file `path` under `dir`, without following a symbolic
/// link nor waiting for a FIFO's writer.
fn openat(dir: &OwnedFd, path: &str) -> std::result::Result<OwnedFd, Unopened> {
    let fd = match rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(Unopened::Missing),
        Err(Errno::LOOP) => return Err(Unopened::NotRegular("a symbolic link")),
        Err(err) => return Err(Unopened::Os(err)),
    };
    let kind =
        rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd).map_err(Unopened::Os)?.st_mode);
    match kind {
        rustix::fs::FileType::RegularFile => Ok(fd),
        rustix::fs::FileType::Directory => Err(Unopened::NotRegular("a directory")),
        rustix::fs::FileType::Fifo => Err(Unopened::NotRegular("a FIFO")),
        rustix::fs::FileType::Socket => Err(Unopened::NotRegular("a socket")),
        _ => Err(Unopened::NotRegular("a device")),
    }
}

impl DumpReader {
    pub(crate) fn open(path: &Path) -> Result<DumpReader> {
        let dir = match rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                return Err(Error::DumpNotFound {
                    path: path.to_owned(),
                })
            }
            Err(Errno::NOTDIR) => {
                return Err(Error::NotADump {
                    path: path.to_owned(),
                    reason: "it is not a directory".into(),
                })
            }
            Err(err) => return Err(Error::io("open", path, err.into())),
        };
        let lock = match openat(&dir, LOCK_FILE) {
            Ok(fd) => {
                rustix::fs::flock(&fd, FlockOperation::LockShared)
                    .map_err(|e| Error::io("lock", path.join(LOCK_FILE), e.into()))?;
                Some(fd)
            }
            Err(_) => None,
        };
        let manifest = match openat(&dir, MANIFEST_FILE) {
            Ok(fd) => Manifest::read(path, Some(File::from(fd)))?.expect("the file is open"),
            Err(Unopened::Missing) => return Err(Self::no_manifest(path)),
            Err(Unopened::NotRegular(kind)) => {
                return Err(Error::CorruptManifest {
                    path: path.join(MANIFEST_FILE),
                    detail: not_regular(kind),
                })
            }
            Err(err) => return Err(err.into_error(path.join(MANIFEST_FILE))),
        };
        if index_dir_generation(&manifest.index.dir) != Some(manifest.generation) {
            return Err(Error::CorruptManifest {
                path: path.join(MANIFEST_FILE),
                detail: format!(
                    "generation {} does not match index directory {}",
                    manifest.generation, manifest.index.dir
                ),
            });
        }
        let entries = Self::read_index(path, &dir, &manifest)?;
        Ok(DumpReader {
            path: path.to_owned(),
            dir,
            _lock: lock,
            manifest,
            entries,
            last_pack: Mutex::new(None),
        })
    }

    /// The error for a directory without a manifest: damaged if it holds
    /// dump files, foreign otherwise.
    fn no_manifest(path: &Path) -> Error {
        let names: Vec<String> = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        if names
            .iter()
            .any(|n| n == DATA_DIR || format::is_index_dir_name(n))
        {
            Error::MissingManifest {
                path: path.to_owned(),
            }
        } else if names.iter().all(|n| n == LOCK_FILE) {
            Error::NotADump {
                path: path.to_owned(),
                reason: "the directory is empty".into(),
            }
        } else {
            Error::NotADump {
                path: path.to_owned(),
                reason: format!("it has no {MANIFEST_FILE} and no dump files"),
            }
        }
    }

    /// Copies the index's files into a private directory, checking each
    /// against the manifest, then reads every entry from the copy. sled is
    /// never pointed at the dump itself: opening a database writes to it,
    /// and sled 0.34 can spin forever on a damaged one, which the checksums
    /// rule out first.
    fn read_index(path: &Path, dir: &OwnedFd, manifest: &Manifest) -> Result<Vec<Entry>> {
        let corrupt = |detail: String| Error::corrupt_index(path, detail);
        if manifest.index.files.is_empty() {
            return Err(corrupt(format!(
                "{MANIFEST_FILE} lists no files for {}",
                manifest.index.dir
            )));
        }
        remove_index_copies_of_ended_processes();
        let copy = tempfile::Builder::new()
            .prefix(&format!("{INDEX_COPY_PREFIX}{}-", brain_core::owner_tag()))
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory in", std::env::temp_dir(), e))?;
        for file in &manifest.index.files {
            let rel = format!("{}/{}", manifest.index.dir, file.path);
            let source = match openat(dir, &rel) {
                Ok(fd) => File::from(fd),
                Err(Unopened::Missing) => {
                    return Err(corrupt(format!("index file {rel} is missing")))
                }
                Err(Unopened::NotRegular(kind)) => {
                    return Err(corrupt(format!("index file {rel}: {}", not_regular(kind))))
                }
                Err(err) => return Err(err.into_error(path.join(&rel))),
            };
            let target = copy.path().join(&file.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the directory", parent, e))?;
            }
            let mut out = File::create(&target).map_err(|e| Error::io("create", &target, e))?;
            let (len, sum) = hash_stream(&mut &source, Some(&mut out))
                .map_err(|e| Error::io("copy", path.join(&rel), e))?;
            let expected = format::parse_hex(&file.xxh3).expect("checked when read");
            if len != file.len || sum != expected {
                return Err(corrupt(format!(
                    "index file {rel} is {len} bytes with xxh3 {sum:016x}, the manifest records {} bytes with xxh3 {expected:016x}",
                    file.len
                )));
            }
        }
        let db = open_index(copy.path(), "open the index").map_err(|e| corrupt(e.to_string()))?;
        let sled_err = |e: sled::Error| corrupt(format!("sled: {e}"));
        let meta = db.open_tree(META_TREE).map_err(sled_err)?;
        let version = meta
            .get("format_version")
            .map_err(sled_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        if version != Some(manifest.format_version) {
            return Err(corrupt(match version {
                Some(version) => format!(
                    "the index records format version {version}, the manifest {}",
                    manifest.format_version
                ),
                None => format!(
                    "the index records no format version, the manifest {}",
                    manifest.format_version
                ),
            }));
        }
        let dump_id = meta.get("dump_id").map_err(sled_err)?;
        if dump_id.as_deref() != Some(manifest.dump_id.as_bytes()) {
            return Err(corrupt(
                "the index belongs to another dump than the manifest".into(),
            ));
        }
        let objects = db.open_tree(OBJECTS_TREE).map_err(sled_err)?;
        let mut entries = Vec::new();
        for item in objects.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let entry = Entry::decode(&key, &value).map_err(corrupt)?;
            if entry.offset.is_some() && manifest.format_version == UNPACKED_VERSION {
                return Err(corrupt(format!(
                    "entry {:?}/{:?} lies in a pack file, which format version {UNPACKED_VERSION} has not",
                    entry.namespace, entry.name
                )));
            }
            entries.push(entry);
        }
        drop(objects);
        drop(meta);
        drop(db);
        if entries.len() as u64 != manifest.objects {
            return Err(corrupt(format!(
                "the index holds {} objects, the manifest records {}",
                entries.len(),
                manifest.objects
            )));
        }
        let bytes: u64 = entries.iter().map(|e| e.size).sum();
        if bytes != manifest.payload_bytes {
            return Err(corrupt(format!(
                "the index's objects hold {bytes} bytes, the manifest records {}",
                manifest.payload_bytes
            )));
        }
        entries.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(entries)
    }

    pub(crate) fn info(&self) -> DumpInfo {
        let m = &self.manifest;
        let mut scratch = None;
        DumpInfo {
            path: self.path.clone(),
            kind: m.kind,
            format_version: m.format_version,
            generation: m.generation,
            written: UNIX_EPOCH + Duration::from_nanos(m.written_unix_ns),
            writer: m.writer.clone(),
            namespace: m.namespace.clone(),
            objects: self
                .entries
                .iter()
                .map(|entry| DumpEntry {
                    frame_codec: self.frame_codec(entry, &mut scratch),
                    ..DumpEntry::from(entry)
                })
                .collect(),
        }
    }

    /// The codec the writer of a frame changed in place gave it, from the
    /// manifest that `entry` holds; `None` for any other entry, or a
    /// manifest that cannot be read.
    fn frame_codec(&self, entry: &Entry, scratch: &mut Option<Scratch>) -> Option<Codec> {
        if entry.codec() != Codec::FrameParts || entry.size > LISTED_MANIFEST_MOST {
            return None;
        }
        let mut manifest = Vec::with_capacity(entry.size as usize);
        self.read_payload(
            entry,
            scratch.get_or_insert_with(Scratch::new),
            false,
            |chunk| {
                manifest.extend_from_slice(chunk);
                Ok(())
            },
        )
        .ok()?;
        brain_core::frames::manifest_codec(&manifest)
    }

    /// The payload file of `entry`, for messages.
    pub(crate) fn payload_path(&self, entry: &Entry) -> PathBuf {
        self.path.join(DATA_DIR).join(&entry.file)
    }

    /// Opens `entry`'s payload file and checks that it holds the entry's
    /// frames: its length is theirs, or, in a pack file, reaches their end.
    /// The last pack file opened is kept open for the next entry in it.
    fn open_payload(&self, entry: &Entry) -> Result<Arc<File>> {
        let mut last_pack = self.last_pack.lock().unwrap_or_else(|e| e.into_inner());
        let (file, len) = match &*last_pack {
            Some(pack) if entry.offset.is_some() && pack.name == entry.file => {
                (pack.file.clone(), pack.len)
            }
            _ => {
                let file = Arc::new(self.open_payload_file(entry)?);
                let len = file
                    .metadata()
                    .map_err(|e| Error::io("inspect", self.payload_path(entry), e))?
                    .len();
                if entry.offset.is_some() {
                    *last_pack = Some(OpenPack {
                        name: entry.file.clone(),
                        file: file.clone(),
                        len,
                    });
                }
                (file, len)
            }
        };
        let (fits, expected) = match entry.offset {
            None => (len == entry.file_len, entry.file_len),
            Some(at) => {
                let end = at + entry.file_len;
                (len >= end, end)
            }
        };
        if !fits {
            return Err(Error::TruncatedPayload {
                path: self.payload_path(entry),
                namespace: entry.namespace.clone(),
                name: entry.name.clone(),
                expected,
                found: len,
            });
        }
        Ok(file)
    }

    fn open_payload_file(&self, entry: &Entry) -> Result<File> {
        let file = match openat(&self.dir, &format!("{DATA_DIR}/{}", entry.file)) {
            Ok(fd) => File::from(fd),
            Err(Unopened::Missing) => {
                return Err(Error::MissingPayload {
                    path: self.payload_path(entry),
                    namespace: entry.namespace.clone(),
                    name: entry.name.clone(),
                })
            }
            Err(Unopened::NotRegular(kind)) => {
                return Err(self.corrupt_frame(entry, 0, 0, not_regular(kind)))
            }
            Err(err) => return Err(err.into_error(self.payload_path(entry))),
        };
        // Frames are read front to back: a larger readahead helps a cold cache.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
        Ok(file)
    }

    fn corrupt_frame(&self, entry: &Entry, frame: usize, offset: u64, detail: String) -> Error {
        Error::CorruptPayload {
            path: self.payload_path(entry),
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
            frame,
            offset,
            detail,
        }
    }

    /// Reads `entry`'s payload, handing each decompressed frame to `sink` in
    /// order, and checks its checksum at the end; with `check_compressed`,
    /// also each frame's compressed bytes against the index. Frames are
    /// read and decompressed on one thread per core (zstd checks each
    /// frame's own checksum), `sink` runs on the caller's and the payload
    /// checksum on a thread of its own, both in order. Memory: a few
    /// decompressed frames in flight, and a compressed one per thread.
    ///
    /// A frame that fails to decompress is reported before a payload
    /// checksum that differs, and both before compressed bytes that differ
    /// from the index but decompress to the right payload.
    pub(crate) fn read_payload(
        &self,
        entry: &Entry,
        scratch: &mut Scratch,
        check_compressed: bool,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let path = self.payload_path(entry);
        let file = self.open_payload(entry)?;
        let offsets = entry.frame_offsets();
        let mut hasher = Xxh3Stream::new();
        let mut compressed_mismatch = None;
        parallel::ordered(
            entry.frames.len(),
            &mut scratch.readers,
            |reader, i, plain: &mut Plain| {
                let compressed =
                    read_frame(&file, entry, &offsets, i, &mut reader.compressed, &path)?;
                if check_compressed {
                    plain.compressed_xxh3 = xxh3_64(compressed);
                }
                let expected = entry.frame_len(i) as usize;
                plain.bytes.clear();
                plain.bytes.reserve(expected);
                let n = reader
                    .decompressor
                    .decompress_to_buffer(&compressed[..], &mut plain.bytes)
                    .map_err(|e| self.corrupt_frame(entry, i, offsets[i], format!("zstd: {e}")))?;
                if n != expected {
                    return Err(self.corrupt_frame(
                        entry,
                        i,
                        offsets[i],
                        format!("it decompresses to {n} bytes, the index says {expected}"),
                    ));
                }
                Ok(())
            },
            |i, plain| {
                if check_compressed
                    && compressed_mismatch.is_none()
                    && plain.compressed_xxh3 != entry.frame_checksum(i)
                {
                    compressed_mismatch = Some((i, plain.compressed_xxh3));
                }
                sink(&plain.bytes)
            },
            Some(&mut |_, plain: &Plain| hasher.update(&plain.bytes)),
        )?;
        let found = hasher.digest();
        if found != entry.checksum() {
            return Err(Error::ChecksumMismatch {
                path,
                namespace: entry.namespace.clone(),
                name: entry.name.clone(),
                expected: entry.checksum(),
                found,
            });
        }
        match compressed_mismatch {
            Some((i, found)) => Err(self.compressed_mismatch(entry, i, offsets[i], found)),
            None => Ok(()),
        }
    }

    fn compressed_mismatch(&self, entry: &Entry, frame: usize, offset: u64, found: u64) -> Error {
        self.corrupt_frame(
            entry,
            frame,
            offset,
            format!(
                "its compressed bytes have xxh3 {found:016x}, the index records {:016x}",
                entry.frame_checksum(frame)
            ),
        )
    }

    /// Checks every payload of `entries` without decompressing: each file's
    /// length, and each frame's compressed bytes against the xxh3 the index
    /// records (read on one thread per core). Writes nothing. A frame that
    /// differs is then decoded to say how the payload is damaged (see
    /// [`DumpReader::read_payload`]).
    pub(crate) fn verify(
        &self,
        entries: &[&Entry],
        progress: &Progress,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let bytes = entries.iter().map(|e| e.size).sum();
        let mut reporter = Reporter::start(progress, Phase::Verifying, bytes, entries.len() as u64);
        for entry in entries {
            let path = self.payload_path(entry);
            let file = self.open_payload(entry)?;
            let offsets = entry.frame_offsets();
            let mut mismatch = None;
            let checked = parallel::ordered(
                entry.frames.len(),
                &mut scratch.readers,
                |reader, i, xxh3: &mut u64| {
                    let compressed =
                        read_frame(&file, entry, &offsets, i, &mut reader.compressed, &path)?;
                    *xxh3 = xxh3_64(compressed);
                    Ok(())
                },
                |i, xxh3| {
                    if *xxh3 != entry.frame_checksum(i) {
                        mismatch = Some((i, *xxh3));
                        return Err(self.compressed_mismatch(entry, i, offsets[i], *xxh3));
                    }
                    reporter.bytes(entry.frame_len(i));
                    Ok(())
                },
                None,
            );
            if let Some((i, found)) = mismatch {
                // Damaged: decode it to say how (a frame zstd refuses, a
                // payload checksum that differs), else report the frame.
                self.read_payload(entry, scratch, true, |_| Ok(()))?;
                return Err(self.compressed_mismatch(entry, i, offsets[i], found));
            }
            checked?;
            reporter.object();
        }
        Ok(())
    }
}

/// Reads compressed frame `i` of `entry` into `buf`, sized to fit it.
fn read_frame<'a>(
    file: &File,
    entry: &Entry,
    offsets: &[u64],
    i: usize,
    buf: &'a mut Vec<u8>,
    path: &Path,
) -> Result<&'a mut Vec<u8>> {
    buf.resize(entry.frames[i] as usize, 0);
    file.read_exact_at(buf, offsets[i])
        .map_err(|e| Error::io("read", path, e))?;
    Ok(buf)
}
