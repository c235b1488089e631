//! Writing dump files: payloads as zstd frames, and the sled index.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use brain_core::hash::Xxh3Stream;
use brain_core::ObjectView;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::format::{
    self, hex, index_error, open_index, unix_nanos, Entry, IndexFile, FRAME_SIZE, META_TREE,
    OBJECTS_TREE,
};
use crate::parallel;

/// Compresses payloads into files of independent zstd frames, one frame per
/// [`FRAME_SIZE`] bytes of payload, on one thread per core (see
/// [`parallel::ordered`]). Memory: a few compressed frames.
pub(crate) struct FrameWriter {
    compressors: Vec<Compressors>,
    /// False when the dump's level is no slower to decode than [`FAST_LEVEL`].
    fast_retry: bool,
    flusher: Flusher,
    /// The payload file small payloads are being packed into.
    pack: Option<Pack>,
}

/// Payloads of at most this many bytes are packed, back to back, into
/// shared payload files (format version 2): a file of its own per object
/// made a dump of a million small objects create a million files, which
/// took the filesystem ~85 µs each, more than compressing them.
pub(crate) const PACK_LIMIT: usize = 64 << 10;
/// A pack file is closed, and the next small payload starts another, once
/// it is this long.
const PACK_FILE_LEN: u64 = 4 << 20;

/// A payload file being filled with small payloads.
struct Pack {
    file: File,
    path: PathBuf,
    name: String,
    generation: u64,
    len: u64,
}

/// Names the payload files of one dump, or of one commit of a sync:
/// `<generation>-<sequence>.zst` in `dir`, the sequence counting up.
pub(crate) struct PayloadFiles {
    dir: PathBuf,
    generation: u64,
    next: u32,
}

impl PayloadFiles {
    pub(crate) fn new(dir: PathBuf, generation: u64) -> PayloadFiles {
        PayloadFiles {
            dir,
            generation,
            next: 0,
        }
    }

    /// The next file's path and name.
    fn next(&mut self) -> (PathBuf, String) {
        let name = format::payload_name(self.generation, self.next);
        self.next += 1;
        (self.dir.join(&name), name)
    }
}

/// Payload files are handed to the disk every [`FLUSH_EVERY`] bytes
/// written (and when complete) by a thread of their own, while the next
/// frames are compressed, so the `syncfs` that ends a dump or a sync commit
/// finds little left to write. The final flush is what makes the dump
/// durable; these only start the writing early.
const FLUSH_EVERY: u64 = 64 << 20;

/// The thread that flushes payload files (`fdatasync`) in the background.
struct Flusher {
    tx: Option<mpsc::Sender<Flush>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A flush is waiting for the thread: another would add nothing (the
    /// waiting one flushes what was written until it starts), so a disk
    /// slower than the compression never queues more than one.
    queued: Arc<AtomicBool>,
    /// The first failure, with the file's path.
    failed: Arc<Mutex<Option<(PathBuf, std::io::Error)>>>,
}

enum Flush {
    File(File, PathBuf),
    /// Answered once every file sent before is flushed.
    Barrier(mpsc::Sender<()>),
}

impl Flusher {
    fn spawn() -> Flusher {
        let (tx, rx) = mpsc::channel::<Flush>();
        let failed = Arc::new(Mutex::new(None));
        let queued = Arc::new(AtomicBool::new(false));
        let (record, taken) = (failed.clone(), queued.clone());
        let thread = std::thread::Builder::new()
            .name("brain-persist-flush".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        Flush::File(file, path) => {
                            taken.store(false, Ordering::Release);
                            if let Err(err) = file.sync_data() {
                                let mut slot = record.lock().unwrap_or_else(|e| e.into_inner());
                                slot.get_or_insert((path, err));
                            }
                        }
                        Flush::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .ok();
        Flusher {
            // Without the thread, files are flushed by the final syncfs alone.
            tx: thread.as_ref().map(|_| tx),
            thread,
            queued,
            failed,
        }
    }

    /// Starts flushing what was written to `file` so far, unless a flush
    /// is already waiting.
    fn flush(&self, file: &File, path: &Path) {
        let Some(tx) = &self.tx else { return };
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        match file.try_clone() {
            Ok(file) => {
                let _ = tx.send(Flush::File(file, path.to_owned()));
            }
            Err(_) => self.queued.store(false, Ordering::Release),
        }
    }

    /// Waits for every flush started so far; the first that failed is an error.
    fn wait(&self) -> Result<()> {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Flush::Barrier(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some((path, err)) => Err(Error::io("flush", path, err)),
            None => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One thread's zstd contexts: at the dump's level, and at [`FAST_LEVEL`]
/// for frames that level barely shrinks.
struct Compressors {
    level: zstd::bulk::Compressor<'static>,
    fast: zstd::bulk::Compressor<'static>,
    /// The buffer a packed payload is compressed into, kept between payloads.
    scratch: Vec<u8>,
}

/// A frame of at least [`FAST_RETRY_MIN`] bytes that the dump's level
/// shrinks by less than `1 / FAST_SAVING` is compressed again at this
/// level, which leaves literals uncompressed (zstd's fast strategy): it
/// decodes at memory speed instead of through zstd's Huffman decoder
/// (~1.5 GB/s per core here), for at most that fraction more bytes on disk.
/// Random floating-point data is the common case: level 3 saves ~6% on it,
/// and restoring a 1 GiB array of it took ~1.6x as long that way.
const FAST_LEVEL: i32 = -1;
const FAST_SAVING: usize = 8;
const FAST_RETRY_MIN: usize = 128 << 10;
/// Before a frame is compressed at the dump's level, [`SAMPLES`] pieces of
/// [`SAMPLE_LEN`] bytes spread over it are: when the level shrinks them by
/// less than `1 / FAST_SAVING`, the frame goes straight to [`FAST_LEVEL`]
/// (3% of the frame's work instead of all of it, wasted: on random floats
/// level 3 is ~8x slower than level -1).
const SAMPLES: usize = 4;
const SAMPLE_LEN: usize = 32 << 10;

/// True when `compressed` bytes for `plain` bytes save less than `1 / FAST_SAVING`.
fn barely_shrunk(plain: usize, compressed: usize) -> bool {
    compressed > plain - plain / FAST_SAVING
}

impl Compressors {
    /// Compresses one frame into `out`: at the dump's level, or, with
    /// `fast_retry`, at [`FAST_LEVEL`] when the level barely shrinks it
    /// (judged on samples first, then on the whole frame).
    fn compress(
        &mut self,
        plain: &[u8],
        fast_retry: bool,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        out.clear();
        out.reserve(zstd::compress_bound(plain.len()));
        if !fast_retry || plain.len() < FAST_RETRY_MIN {
            self.level.compress_to_buffer(plain, out)?;
            return Ok(());
        }
        if self.samples_barely_shrink(plain, out)? {
            out.clear();
            self.fast.compress_to_buffer(plain, out)?;
            if barely_shrunk(plain.len(), out.len()) {
                return Ok(());
            }
            // The samples missed what the fast level found (repeats longer
            // than a sample): judge the whole frame at the level after all.
        }
        out.clear();
        self.level.compress_to_buffer(plain, out)?;
        if barely_shrunk(plain.len(), out.len()) {
            out.clear();
            self.fast.compress_to_buffer(plain, out)?;
        }
        Ok(())
    }

    /// Compresses [`SAMPLES`] pieces of `plain` at the dump's level (using
    /// `scratch`) and tells whether they barely shrink.
    fn samples_barely_shrink(
        &mut self,
        plain: &[u8],
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let (mut read, mut written) = (0, 0);
        for k in 0..SAMPLES {
            let at = k * (plain.len() - SAMPLE_LEN) / (SAMPLES - 1);
            scratch.clear();
            scratch.reserve(zstd::compress_bound(SAMPLE_LEN));
            self.level
                .compress_to_buffer(&plain[at..at + SAMPLE_LEN], scratch)?;
            read += SAMPLE_LEN;
            written += scratch.len();
        }
        Ok(barely_shrunk(read, written))
    }
}

/// A compressed frame and the xxh3 of its bytes.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    xxh3: u64,
}

impl FrameWriter {
    pub(crate) fn new(level: i32) -> Result<FrameWriter> {
        let setup = |level| -> std::io::Result<zstd::bulk::Compressor<'static>> {
            let mut compressor = zstd::bulk::Compressor::new(level)?;
            // zstd's own per-frame checksum: a damaged frame is named by number.
            compressor.include_checksum(true)?;
            Ok(compressor)
        };
        let compressors = (0..parallel::workers())
            .map(|_| {
                Ok(Compressors {
                    level: setup(level)?,
                    fast: setup(FAST_LEVEL)?,
                    scratch: Vec::new(),
                })
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| {
                Error::io(
                    "set up zstd compression (level out of range?) for",
                    format!("level {level}"),
                    e,
                )
            })?;
        Ok(FrameWriter {
            compressors,
            fast_retry: level > FAST_LEVEL,
            flusher: Flusher::spawn(),
            pack: None,
        })
    }

    /// Closes the pack file being filled, and waits until every payload
    /// file written so far is flushed to disk.
    ///
    /// # Errors
    /// The first flush that failed.
    pub(crate) fn flushed(&mut self) -> Result<()> {
        self.close_pack();
        self.flusher.wait()
    }

    fn close_pack(&mut self) {
        if let Some(pack) = self.pack.take() {
            self.flusher.flush(&pack.file, &pack.path);
        }
    }

    /// Writes `view`'s payload into a payload file named by `files` and
    /// returns its index entry: a small payload into the pack file being
    /// filled (a new one when there is none), any other into a file of its
    /// own. `progress` is told the bytes of each frame as it is written.
    pub(crate) fn write(
        &mut self,
        files: &mut PayloadFiles,
        view: &ObjectView,
        progress: impl FnMut(u64),
    ) -> Result<Entry> {
        if view.bytes().len() <= PACK_LIMIT {
            return self.write_packed(files, view, progress);
        }
        let (path, file_name) = files.next();
        self.write_alone(&path, file_name, view, progress)
    }

    /// Appends `view`'s payload, one frame compressed on this thread, to the
    /// pack file.
    fn write_packed(
        &mut self,
        files: &mut PayloadFiles,
        view: &ObjectView,
        mut progress: impl FnMut(u64),
    ) -> Result<Entry> {
        let bytes = view.bytes();
        let mut compressed = std::mem::take(&mut self.compressors[0].scratch);
        compressed.clear();
        if !bytes.is_empty() {
            self.compressors[0]
                .compress(bytes, self.fast_retry, &mut compressed)
                .map_err(|e| Error::io("compress a frame for", &files.dir, e))?;
        }
        let placed = self.append_to_pack(files, &compressed);
        let frames: Vec<u64> = (!bytes.is_empty())
            .then_some(compressed.len() as u64)
            .into_iter()
            .collect();
        let frame_xxh3 = frames.iter().map(|_| hex(xxh3_64(&compressed))).collect();
        self.compressors[0].scratch = compressed;
        let (file, offset) = placed?;
        progress(bytes.len() as u64);
        Ok(entry_for(
            view,
            xxh3_64(bytes),
            file,
            Some(offset),
            frames,
            frame_xxh3,
        ))
    }

    /// Appends the compressed `frames` of `entry`'s payload, read from the
    /// pack file it lies in, to the pack file being filled, and returns its
    /// entry there: a sync mirror moves payloads out of packs that hold
    /// mostly payloads no entry refers to any more.
    pub(crate) fn copy_packed(
        &mut self,
        files: &mut PayloadFiles,
        entry: &Entry,
        frames: &[u8],
    ) -> Result<Entry> {
        let (file, offset) = self.append_to_pack(files, frames)?;
        Ok(Entry {
            file,
            offset: Some(offset),
            ..entry.clone()
        })
    }

    /// Appends `bytes` (whole compressed frames) to the pack file being
    /// filled: a new one named by `files` when there is none, or when it
    /// belongs to another generation. Returns the pack's name and where
    /// the bytes start in it.
    fn append_to_pack(&mut self, files: &mut PayloadFiles, bytes: &[u8]) -> Result<(String, u64)> {
        if self
            .pack
            .as_ref()
            .is_some_and(|p| p.generation != files.generation)
        {
            self.close_pack();
        }
        let pack = match &mut self.pack {
            Some(pack) => pack,
            None => {
                let (path, name) = files.next();
                let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
                self.pack.insert(Pack {
                    file,
                    path,
                    name,
                    generation: files.generation,
                    len: 0,
                })
            }
        };
        if let Err(err) = pack.file.write_all(bytes) {
            let err = Error::io("write", &pack.path, err);
            // Nothing more goes after bytes that may be partly written.
            self.pack = None;
            return Err(err);
        }
        let placed = (pack.name.clone(), pack.len);
        pack.len += bytes.len() as u64;
        if pack.len >= PACK_FILE_LEN {
            self.close_pack();
        }
        Ok(placed)
    }

    /// Writes `view`'s payload to a new file at `path`, its frames
    /// compressed on one thread per core.
    fn write_alone(
        &mut self,
        path: &Path,
        file_name: String,
        view: &ObjectView,
        mut progress: impl FnMut(u64),
    ) -> Result<Entry> {
        let bytes = view.bytes();
        let chunk = |i: usize| {
            let start = i * FRAME_SIZE as usize;
            &bytes[start..bytes.len().min(start + FRAME_SIZE as usize)]
        };
        let count = bytes.len().div_ceil(FRAME_SIZE as usize);
        let mut file = File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut hasher = Xxh3Stream::new();
        let mut frames = Vec::with_capacity(count);
        let mut frame_xxh3 = Vec::with_capacity(count);
        let fast_retry = self.fast_retry;
        let flusher = &self.flusher;
        let mut unflushed = 0u64;
        parallel::ordered(
            count,
            &mut self.compressors,
            |compressors, i, out: &mut Packed| {
                compressors
                    .compress(chunk(i), fast_retry, &mut out.bytes)
                    .map_err(|e| Error::io("compress a frame for", path, e))?;
                out.xxh3 = xxh3_64(&out.bytes);
                Ok(())
            },
            |i, out| {
                let plain = chunk(i);
                file.write_all(&out.bytes)
                    .map_err(|e| Error::io("write", path, e))?;
                frames.push(out.bytes.len() as u64);
                frame_xxh3.push(hex(out.xxh3));
                unflushed += out.bytes.len() as u64;
                if unflushed >= FLUSH_EVERY {
                    flusher.flush(&file, path);
                    unflushed = 0;
                }
                progress(plain.len() as u64);
                Ok(())
            },
            Some(&mut |i, _: &Packed| hasher.update(chunk(i))),
        )?;
        if unflushed > 0 {
            flusher.flush(&file, path);
        }
        Ok(entry_for(
            view,
            hasher.digest(),
            file_name,
            None,
            frames,
            frame_xxh3,
        ))
    }
}

/// The index entry of `view`, whose payload hashes to `xxh3` and lies in
/// `file` (from `offset`, in a pack file) as `frames`.
fn entry_for(
    view: &ObjectView,
    xxh3: u64,
    file: String,
    offset: Option<u64>,
    frames: Vec<u64>,
    frame_xxh3: Vec<String>,
) -> Entry {
    let meta = view.meta();
    Entry {
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        codec: meta.codec.tag(),
        description: meta.description.clone(),
        size: view.bytes().len() as u64,
        created_unix_ns: unix_nanos(meta.created),
        xxh3: hex(xxh3),
        file,
        offset,
        file_len: frames.iter().sum(),
        frame_size: FRAME_SIZE,
        frames,
        frame_xxh3,
    }
}

/// A new dump identifier.
pub(crate) fn new_dump_id(path: &Path) -> String {
    let seed = format!(
        "{}:{}:{}",
        std::process::id(),
        unix_nanos(std::time::SystemTime::now()),
        path.display()
    );
    hex(xxh3_64(seed.as_bytes()))
}

/// The sled index being written.
pub(crate) struct IndexWriter {
    path: PathBuf,
    db: sled::Db,
    objects: sled::Tree,
}

impl IndexWriter {
    /// A new, empty index at `path`.
    pub(crate) fn create(path: &Path, dump_id: &str) -> Result<IndexWriter> {
        format::create_private_dir(path)?;
        let writer = Self::open(path)?;
        let meta = writer
            .db
            .open_tree(META_TREE)
            .map_err(|e| index_error("create the index", path, e))?;
        meta.insert("dump_id", dump_id.as_bytes())
            .map_err(|e| index_error("write the index", path, e))?;
        Ok(writer)
    }

    /// A copy of the index at `from`, written at `to`, open for changes.
    pub(crate) fn copy_of(from: &Path, to: &Path) -> Result<IndexWriter> {
        copy_tree(from, to)?;
        Self::open(to)
    }

    fn open(path: &Path) -> Result<IndexWriter> {
        let db = open_index(path, "open the index")?;
        let objects = db
            .open_tree(OBJECTS_TREE)
            .map_err(|e| index_error("open the index", path, e))?;
        Ok(IndexWriter {
            path: path.to_owned(),
            db,
            objects,
        })
    }

    pub(crate) fn insert(&self, entry: &Entry) -> Result<()> {
        let value = serde_json::to_vec(entry).expect("an entry encodes");
        self.objects
            .insert(entry.key(), value)
            .map_err(|e| index_error("write the index", &self.path, e))?;
        Ok(())
    }

    pub(crate) fn remove(&self, key: &[u8]) -> Result<()> {
        self.objects
            .remove(key)
            .map_err(|e| index_error("write the index", &self.path, e))?;
        Ok(())
    }

    /// Records `format_version` (the manifest's), flushes and closes the
    /// database, then lists its files with their checksums for the manifest.
    pub(crate) fn finish(self, format_version: u64) -> Result<Vec<IndexFile>> {
        self.db
            .open_tree(META_TREE)
            .and_then(|meta| meta.insert("format_version", &format_version.to_be_bytes()))
            .map_err(|e| index_error("write the index", &self.path, e))?;
        self.db
            .flush()
            .map_err(|e| index_error("flush the index", &self.path, e))?;
        let IndexWriter { path, db, objects } = self;
        drop(objects);
        drop(db);
        format::index_files(&path)
    }
}

/// Copies the regular files under `from` to `to` (created).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    format::create_private_dir(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("list", from, e))? {
        let entry = entry.map_err(|e| Error::io("list", from, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("inspect", entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| Error::io("copy", entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain_core::{ObjectStore, Payload, Store};
    use std::collections::BTreeSet;

    /// Dumps `payload` through a [`FrameWriter`] at `level`; returns its entry
    /// and the payload file's bytes.
    fn write(level: i32, payload: &[u8]) -> (Entry, Vec<u8>) {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("s")).unwrap();
        store.put("ns", "x", &Payload::bytes(payload)).unwrap();
        let view = store.get("ns", "x").unwrap().unwrap();
        let mut files = PayloadFiles::new(disk.path().to_owned(), 1);
        let mut writer = FrameWriter::new(level).unwrap();
        let entry = writer.write(&mut files, &view, |_| {}).unwrap();
        writer.flushed().unwrap();
        let file = std::fs::read(disk.path().join(&entry.file)).unwrap();
        (entry, file)
    }

    #[test]
    fn small_payloads_are_packed_into_shared_files() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let store = Store::open(shm.path().join("s")).unwrap();
        // Barely compressible, so that the pack fills up: 80 payloads of
        // 64 KiB pass PACK_FILE_LEN once.
        let payloads: Vec<Vec<u8>> = (0..80)
            .map(|i| match i {
                0 => Vec::new(),
                1 => b"small".to_vec(),
                2 => random_floats(PACK_LIMIT + 8),
                _ => random_floats(PACK_LIMIT)
                    .into_iter()
                    .map(|b| b ^ i as u8)
                    .collect(),
            })
            .collect();
        let mut files = PayloadFiles::new(disk.path().to_owned(), 1);
        let mut writer = FrameWriter::new(3).unwrap();
        let mut entries = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let name = format!("o{i}");
            store.put("ns", &name, &Payload::bytes(payload)).unwrap();
            let view = store.get("ns", &name).unwrap().unwrap();
            entries.push(writer.write(&mut files, &view, |_| {}).unwrap());
        }
        // The next generation's small payloads go to a pack of their own.
        let mut next = PayloadFiles::new(disk.path().to_owned(), 2);
        let view = store.get("ns", "o1").unwrap().unwrap();
        let later = writer.write(&mut next, &view, |_| {}).unwrap();
        writer.flushed().unwrap();

        assert_eq!(
            entries[2].offset, None,
            "one byte past the limit: a file of its own"
        );
        let first = &entries[0].file;
        assert_eq!(entries[0].offset, Some(0));
        assert_eq!((entries[0].file_len, entries[0].frames.len()), (0, 0));
        assert_eq!((&entries[1].file, entries[1].offset), (first, Some(0)));
        let packs: BTreeSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(
            packs.len(),
            3,
            "two packs and the large payload's file: {packs:?}"
        );
        for (entry, payload) in entries.iter().zip(&payloads) {
            let file = std::fs::read(disk.path().join(&entry.file)).unwrap();
            let start = entry.offset.unwrap_or(0) as usize;
            let end = start + entry.file_len as usize;
            if entry.offset.is_none() {
                assert_eq!(end, file.len());
            }
            check_frames(entry, &file[start..end], payload);
        }
        let pack_len = |name: &str| std::fs::metadata(disk.path().join(name)).unwrap().len();
        assert!(pack_len(first) >= PACK_FILE_LEN, "{}", pack_len(first));
        assert!(
            later.file.starts_with("0000000000000002-"),
            "{}",
            later.file
        );
        assert_eq!(later.offset, Some(0));
        assert_eq!(format::payload_generation(&later.file), Some(2));
    }

    /// Random float64 values in [0, 1): level 3 saves ~6% on them.
    fn random_floats(bytes: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..bytes / 8)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 / (1u64 << 53) as f64).to_le_bytes()
            })
            .collect()
    }

    /// Decodes every frame on its own and checks the index's records of it.
    fn check_frames(entry: &Entry, file: &[u8], payload: &[u8]) {
        let mut at = 0;
        for (i, &len) in entry.frames.iter().enumerate() {
            let frame = &file[at..at + len as usize];
            assert_eq!(xxh3_64(frame), entry.frame_checksum(i));
            let plain = zstd::bulk::decompress(frame, FRAME_SIZE as usize).unwrap();
            let start = i * FRAME_SIZE as usize;
            assert_eq!(plain, &payload[start..start + plain.len()]);
            at += len as usize;
        }
        assert_eq!(at, file.len());
        assert_eq!(entry.checksum(), xxh3_64(payload));
    }

    #[test]
    fn barely_compressible_frames_are_stored_fast_to_decode() {
        let floats = random_floats(6 << 20);
        let (entry, file) = write(3, &floats);
        check_frames(&entry, &file, &floats);
        // Stored about as is, not 6% smaller through Huffman-coded literals.
        assert!(file.len() >= floats.len(), "{} bytes", file.len());
        let level3 = zstd::bulk::compress(&floats[..FRAME_SIZE as usize], 3).unwrap();
        assert!(
            level3.len() < FRAME_SIZE as usize * 19 / 20,
            "{}",
            level3.len()
        );

        // Compressible data keeps the dump's level.
        let text: Vec<u8> = (0..(6u32 << 20))
            .map(|i| b"brain "[i as usize % 6])
            .collect();
        let (entry, file) = write(3, &text);
        check_frames(&entry, &file, &text);
        assert!(file.len() < text.len() / 100, "{} bytes", file.len());
    }

    #[test]
    fn samples_that_miss_long_repeats_do_not_decide_alone() {
        // Each sample is random, but the frame repeats one 256 KiB block:
        // the fast level finds the repeats, so the frame is judged whole
        // and compressed at the dump's level.
        let block = random_floats(256 << 10);
        let payload: Vec<u8> = block.iter().copied().cycle().take(8 << 20).collect();
        let (entry, file) = write(3, &payload);
        check_frames(&entry, &file, &payload);
        assert!(file.len() < payload.len() / 8, "{} bytes", file.len());
        let mut compressors = FrameWriter::new(3).unwrap().compressors.remove(0);
        let mut scratch = Vec::new();
        assert!(compressors
            .samples_barely_shrink(&payload[..FRAME_SIZE as usize], &mut scratch)
            .unwrap());
    }
}
