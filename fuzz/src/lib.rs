//! What the fuzz targets share: buffers placed as the store places
//! payloads, and the input layouts that let a fuzzer get past checksums.

use arrow_buffer::{Buffer, MutableBuffer};
use xxhash_rust::xxh3::Xxh3;

/// `data` in a buffer aligned as a payload in the store is: to 64 bytes
/// (the header's length is a multiple of 64), and no more, so a decoder
/// that needs more alignment than the store promises shows up.
pub fn payload_buffer(data: &[u8]) -> Buffer {
    let mut buffer = MutableBuffer::with_capacity(128 + data.len());
    buffer.extend_zeros(64);
    buffer.extend_from_slice(data);
    let buffer = Buffer::from(buffer).slice(64);
    assert_eq!(buffer.as_ptr() as usize % 64, 0);
    buffer
}

/// `bytes` with a correct header checksum (bytes 72..80, xxh3-64 of bytes
/// 0..72 and the three strings, as docs/FORMAT.md specifies), when its
/// lengths leave the strings inside it. A fuzzer cannot forge the checksum:
/// without this, every mutation of a header field stops at it.
pub fn with_header_checksum(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 80 {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
    let strings_end = 80 + u32_at(20) + u32_at(24) + u32_at(28);
    if strings_end > bytes.len() as u64 {
        return None;
    }
    let mut hasher = Xxh3::new();
    hasher.update(&bytes[..72]);
    hasher.update(&bytes[80..strings_end as usize]);
    let mut fixed = bytes.to_vec();
    fixed[72..80].copy_from_slice(&hasher.digest().to_le_bytes());
    Some(fixed)
}

/// An object's key in a dump's index: the namespace's length (u32
/// big-endian), the namespace, then the name (docs/FORMAT.md, "Index").
pub fn index_key(namespace: &str, name: &str) -> Vec<u8> {
    let mut key = (namespace.len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(namespace.as_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// The `dump_frames` target's input: the numbers of an index entry that
/// describe a payload file, then the file.
///
/// ```text
/// offset size
///      0    8 size: the payload's length (u64 LE)
///      8    4 frame_size (u32 LE)
///     12    8 xxh3 of the payload (u64 LE)
///     20    1 flags: bit 0, the index records wrong frame checksums;
///             bit 1, the payload lies in a pack file, after as many bytes
///             of other payloads as bits 2 to 7 say (its entry's `offset`)
///     21    1 n: the number of frames
///     22   4n each frame's compressed length (u32 LE)
///      .    . the payload's frames
/// ```
///
/// The index's frame checksums are computed from the frames (a fuzzer
/// cannot forge them), so the frames reach zstd; flag bit 0 takes the path
/// of a damaged frame instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramesInput {
    pub size: u64,
    pub frame_size: u32,
    pub xxh3: u64,
    pub wrong_frame_checksums: bool,
    /// Where the frames start in a pack file, when they lie in one.
    pub packed_at: Option<u8>,
    pub frames: Vec<u32>,
    pub file: Vec<u8>,
}

impl FramesInput {
    pub fn parse(data: &[u8]) -> Option<FramesInput> {
        let n = *data.get(21)? as usize;
        let table_end = 22 + 4 * n;
        if data.len() < table_end {
            return None;
        }
        Some(FramesInput {
            size: u64::from_le_bytes(data[0..8].try_into().unwrap()),
            frame_size: u32::from_le_bytes(data[8..12].try_into().unwrap()),
            xxh3: u64::from_le_bytes(data[12..20].try_into().unwrap()),
            wrong_frame_checksums: data[20] & 1 != 0,
            packed_at: (data[20] & 2 != 0).then_some(data[20] >> 2),
            frames: data[22..table_end]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            file: data[table_end..].to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.frame_size.to_le_bytes());
        out.extend_from_slice(&self.xxh3.to_le_bytes());
        let packed = self.packed_at.map_or(0, |at| 2 | at.min(63) << 2);
        out.push(self.wrong_frame_checksums as u8 | packed);
        out.push(self.frames.len() as u8);
        for len in &self.frames {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&self.file);
        out
    }

    /// The payload file's bytes: the frames, after what lies before them
    /// in a pack file.
    pub fn file_bytes(&self) -> Vec<u8> {
        let before = self.packed_at.unwrap_or(0) as usize;
        let mut out = vec![0x5a; before];
        out.extend_from_slice(&self.file);
        out
    }

    /// The index entry's JSON for this input, naming `file` in `data/`.
    pub fn entry_json(&self, namespace: &str, name: &str, file: &str) -> Vec<u8> {
        let mut at = 0usize;
        let frame_xxh3: Vec<String> = self
            .frames
            .iter()
            .map(|&len| {
                let end = at.saturating_add(len as usize);
                let sum = self.file.get(at..end).map_or(0, xxhash_rust::xxh3::xxh3_64);
                at = end;
                let sum = if self.wrong_frame_checksums {
                    !sum
                } else {
                    sum
                };
                format!("{sum:016x}")
            })
            .collect();
        let mut entry = serde_json::json!({
            "namespace": namespace,
            "name": name,
            "codec": 0,
            "description": "",
            "size": self.size,
            "created_unix_ns": 0,
            "xxh3": format!("{:016x}", self.xxh3),
            "file": file,
            "file_len": self.file.len(),
            "frame_size": self.frame_size,
            "frames": self.frames,
            "frame_xxh3": frame_xxh3,
        });
        if let Some(at) = self.packed_at {
            entry["offset"] = at.into();
        }
        serde_json::to_vec(&entry).expect("JSON encodes")
    }
}

/// A store holding three parts of a frame named `f` in namespace
/// `default`, under the ids `p0` (columns `id`: int64 and `tag`: utf8, 3
/// rows), `p1` (the same columns, 2 rows) and `p2` (column `extra`:
/// float64, 3 rows): the parts the `frame_manifest` target's manifests and
/// their seeds name. Made once per process in `/dev/shm/brain-fuzz-frames-<pid>`;
/// a process's statics are not dropped, so each call of a new process
/// first removes the directories of processes that have ended.
pub fn frame_store() -> &'static brain_core::Store {
    use std::sync::{Arc, OnceLock};

    use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use brain_core::{frames, ObjectStore, Payload};

    static STORE: OnceLock<(std::path::PathBuf, brain_core::Store)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            const PREFIX: &str = "brain-fuzz-frames-";
            for entry in std::fs::read_dir("/dev/shm")
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                    continue;
                };
                let ended =
                    pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists();
                if ended {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            let path = format!("/dev/shm/{PREFIX}{}", std::process::id());
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).expect("a temporary store");
            let dir = std::path::PathBuf::from(path);
            let store = brain_core::Store::open(dir.join("store")).expect("a store");
            let rows = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("tag", DataType::Utf8, true),
            ]));
            let extra = Arc::new(Schema::new(vec![Field::new(
                "extra",
                DataType::Float64,
                false,
            )]));
            let parts = [
                (
                    "p0",
                    RecordBatch::try_new(
                        rows.clone(),
                        vec![
                            Arc::new(Int64Array::from(vec![1, 2, 3])),
                            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
                        ],
                    ),
                ),
                (
                    "p1",
                    RecordBatch::try_new(
                        rows.clone(),
                        vec![
                            Arc::new(Int64Array::from(vec![4, 5])),
                            Arc::new(StringArray::from(vec!["d", "e"])),
                        ],
                    ),
                ),
                (
                    "p2",
                    RecordBatch::try_new(
                        extra.clone(),
                        vec![Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5]))],
                    ),
                ),
            ];
            for (id, batch) in parts {
                let batch = batch.expect("a batch");
                let bytes = brain_core::format::arrow::encode(&batch.schema(), &[batch])
                    .expect("an IPC file");
                store
                    .put(
                        "default",
                        &frames::part_name("f", id),
                        &Payload::bytes(&bytes).with_codec(brain_core::Codec::ArrowIpc),
                    )
                    .expect("a part");
            }
            (dir, store)
        })
        .1
}
