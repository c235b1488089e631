//! Writing dump files: payloads as zstd frames, and the sled index.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use brain_core::ObjectView;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::error::{Error, Result};
use crate::format::{
    self, hex, index_error, open_index, unix_nanos, Entry, IndexFile, FORMAT_VERSION, FRAME_SIZE,
    META_TREE, OBJECTS_TREE,
};

/// Compresses payloads into files of independent zstd frames, one frame per
/// [`FRAME_SIZE`] bytes of payload. Memory: one compressed frame.
pub(crate) struct FrameWriter {
    compressor: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

impl FrameWriter {
    pub(crate) fn new(level: i32) -> Result<FrameWriter> {
        let setup = || -> std::io::Result<zstd::bulk::Compressor<'static>> {
            let mut compressor = zstd::bulk::Compressor::new(level)?;
            // zstd's own per-frame checksum: a damaged frame is named by number.
            compressor.include_checksum(true)?;
            Ok(compressor)
        };
        let compressor = setup().map_err(|e| {
            Error::io(
                "set up zstd compression (level out of range?) for",
                format!("level {level}"),
                e,
            )
        })?;
        Ok(FrameWriter {
            compressor,
            out: Vec::new(),
        })
    }

    /// Writes `view`'s payload to a new file at `path` and returns its index
    /// entry. `progress` is told the bytes of each frame as it is written.
    pub(crate) fn write(
        &mut self,
        path: &Path,
        file_name: String,
        view: &ObjectView,
        mut progress: impl FnMut(u64),
    ) -> Result<Entry> {
        let bytes = view.bytes();
        let mut file = File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut hasher = Xxh3::new();
        let mut frames = Vec::with_capacity(bytes.len().div_ceil(FRAME_SIZE as usize));
        for chunk in bytes.chunks(FRAME_SIZE as usize) {
            hasher.update(chunk);
            self.out.clear();
            self.out.reserve(zstd::compress_bound(chunk.len()));
            let n = self
                .compressor
                .compress_to_buffer(chunk, &mut self.out)
                .map_err(|e| Error::io("compress a frame for", path, e))?;
            file.write_all(&self.out[..n])
                .map_err(|e| Error::io("write", path, e))?;
            frames.push(n as u64);
            progress(chunk.len() as u64);
        }
        let meta = view.meta();
        Ok(Entry {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            codec: meta.codec.tag(),
            description: meta.description.clone(),
            size: bytes.len() as u64,
            created_unix_ns: unix_nanos(meta.created),
            xxh3: hex(hasher.digest()),
            file: file_name,
            file_len: frames.iter().sum(),
            frame_size: FRAME_SIZE,
            frames,
        })
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
        std::fs::create_dir_all(path).map_err(|e| Error::io("create the directory", path, e))?;
        let writer = Self::open(path)?;
        let meta = writer
            .db
            .open_tree(META_TREE)
            .map_err(|e| index_error("create the index", path, e))?;
        meta.insert("format_version", &FORMAT_VERSION.to_be_bytes())
            .and_then(|_| meta.insert("dump_id", dump_id.as_bytes()))
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

    /// Flushes and closes the database, then lists its files with their
    /// checksums for the manifest.
    pub(crate) fn finish(self) -> Result<Vec<IndexFile>> {
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
    std::fs::create_dir_all(to).map_err(|e| Error::io("create the directory", to, e))?;
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
