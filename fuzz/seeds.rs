//! Writes the seed corpora in `fuzz/corpus/<target>/`: real encodings made
//! by the crates' own encoders, and the files of a real small dump.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --bin seeds
//! ```
//!
//! Seeds are named `seed-*`; the run replaces every such file and leaves
//! others (inputs kept from a run) alone. Each seed is checked to decode
//! before it is written: a seed that fails to decode explores nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, FixedSizeBinaryArray,
    FixedSizeListArray, Float64Array, Int32Array, Int64Array, LargeStringArray, ListArray,
    RecordBatch, RunArray, StringArray, StringViewArray, StructArray, TimestampNanosecondArray,
    UnionArray,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, TimeUnit, UnionFields};
use brain_core::format::checksum::payload_checksum;
use brain_core::format::control::{check_control_file, new_control_file, VERSION_AT};
use brain_core::format::parts::{split, PartsLayout};
use brain_core::format::record::SmallRecord;
use brain_core::format::{arrow, Header};
use brain_core::{
    Codec, Dtype, DtypeField, NdArrayMeta, ObjectKey, ObjectStore, ObjectStoreExt, Payload,
};
use brain_fuzz::{index_key, payload_buffer, FramesInput};
use brain_persist::fuzzing::{decode_entry, read_manifest, Payloads};
use brain_persist::{dump, DumpOptions, MANIFEST_FILE};

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn main() {
    let mut seeds = Seeds::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds
            .entry(target)
            .or_default()
            .push((name.to_owned(), bytes));
    };
    for (name, header) in headers() {
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Ok(header));
        add("header", name, bytes);
    }
    for (name, meta) in ndarray_metas() {
        let json = meta.to_json();
        assert_eq!(NdArrayMeta::from_json(&json), Ok(meta.clone()));
        let data = vec![7u8; meta.data_len().unwrap_or(0) as usize];
        add("ndarray_meta", name, json.clone());
        if meta.check_data_len(data.len() as u64).is_ok() {
            add("parts", &format!("ndarray-{name}"), parts(&[&json, &data]));
        }
    }
    add("parts", "pickle5-no-buffers", parts(&[b"\x80\x05K\x07."]));
    add(
        "parts",
        "pickle5-two-buffers",
        parts(&[b"\x80\x05\x95pickle stream", &[1; 100], &[2; 3]]),
    );
    add("parts", "empty", parts(&[]));
    for (name, bytes) in arrow_files() {
        assert!(arrow::decode(&payload_buffer(&bytes)).is_ok(), "{name}");
        add("arrow", name, bytes);
    }
    let control = new_control_file();
    let mut before_recycling = control.clone();
    before_recycling[VERSION_AT..VERSION_AT + 8].copy_from_slice(&1u64.to_le_bytes());
    for (name, bytes) in [("new", control), ("version-1", before_recycling)] {
        assert!(check_control_file(&bytes).is_ok(), "{name}");
        add("control", name, bytes);
    }
    for (name, record) in [
        (
            "text",
            SmallRecord {
                codec: Codec::Text,
                created_unix_nanos: 1_700_000_000_123_456_789,
                checksum: payload_checksum(b"a small value"),
                description: "a note",
                payload: b"a small value",
            },
        ),
        (
            "empty",
            SmallRecord {
                codec: Codec::Raw,
                created_unix_nanos: 0,
                checksum: payload_checksum(b""),
                description: "",
                payload: b"",
            },
        ),
    ] {
        let bytes = record.encode();
        assert!(SmallRecord::decode(&bytes).is_ok(), "{name}");
        add("small_record", name, bytes);
    }
    for (i, text) in names().iter().enumerate() {
        add("names", &format!("{i:02}"), text.as_bytes().to_vec());
    }
    dump_seeds(&mut add);
    for (name, bytes) in frame_manifests() {
        add("frame_manifest", name, bytes);
    }

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, files) in seeds {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        for old in fs::read_dir(&dir).unwrap().flatten() {
            if old.file_name().to_string_lossy().starts_with("seed-") {
                fs::remove_file(old.path()).unwrap();
            }
        }
        for (name, bytes) in files {
            fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{}", dir.display());
    }
}

fn headers() -> Vec<(&'static str, Header)> {
    let header = |codec, checksum: Option<u64>, ns: &str, name: &str, desc: &str| Header {
        codec,
        flags: 0,
        payload_len: 4096,
        created_unix_nanos: 1_700_000_000_123_456_789,
        key: ObjectKey::new(ns, name),
        payload_checksum: checksum,
        namespace: ns.into(),
        name: name.into(),
        description: desc.into(),
    };
    vec![
        ("raw", header(Codec::Raw, None, "default", "greeting", "")),
        (
            "arrow-checksum",
            header(
                Codec::ArrowIpc,
                Some(0x0123_4567_89ab_cdef),
                "ns",
                "sales",
                "daily sales",
            ),
        ),
        (
            "unknown-codec",
            header(Codec::Unknown(999), None, "ns", "from-a-newer-release", ""),
        ),
        (
            "unicode",
            header(
                Codec::NdArray,
                Some(1),
                "名前空間",
                "配列/../\u{1F9E0}",
                "€",
            ),
        ),
        (
            "two-blocks",
            header(
                Codec::Pickle5,
                None,
                "ns",
                &"n".repeat(100),
                &"d".repeat(40),
            ),
        ),
    ]
}

fn ndarray_metas() -> Vec<(&'static str, NdArrayMeta)> {
    let meta = |dtype: Dtype, shape: &[u64], fortran_order| NdArrayMeta {
        dtype,
        shape: shape.to_vec(),
        fortran_order,
    };
    let field = |name: &str, title: Option<&str>, dtype: Dtype, shape: &[u64]| DtypeField {
        name: name.into(),
        title: title.map(Into::into),
        dtype,
        shape: shape.to_vec(),
    };
    let nested = Dtype::Record(vec![
        field("a", None, "|u1".into(), &[]),
        field("b", None, "<U2".into(), &[]),
    ]);
    vec![
        ("f8", meta("<f8".into(), &[3, 4], false)),
        ("fortran-i4", meta("=i4".into(), &[2, 3], true)),
        ("scalar-0d", meta("|b1".into(), &[], false)),
        ("zero-size", meta("<c16".into(), &[0, 5], false)),
        ("datetime", meta("<M8[ns]".into(), &[4], false)),
        ("strings", meta(">U5".into(), &[2], false)),
        ("object", meta("|O".into(), &[1], false)),
        (
            "structured",
            meta(
                Dtype::Record(vec![
                    field("x", None, "<f8".into(), &[]),
                    field("y", Some("T"), "<i4".into(), &[2, 3]),
                    field("", None, "|V4".into(), &[]),
                    field("z", None, nested, &[]),
                    field("w", None, "<f4".into(), &[5]),
                ]),
                &[3],
                false,
            ),
        ),
    ]
}

/// A payload in the parts layout, as the ndarray and pickle-5 codecs write it.
fn parts(parts: &[&[u8]]) -> Vec<u8> {
    let layout = PartsLayout::new(&parts.iter().map(|p| p.len()).collect::<Vec<_>>());
    let bytes = layout.segments(parts).concat();
    assert_eq!(split(&payload_buffer(&bytes)).unwrap().len(), parts.len());
    bytes
}

fn arrow_files() -> Vec<(&'static str, Vec<u8>)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Float64, false),
        Field::new("count", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
        Field::new(
            "city",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]));
    let batch = |offset: i64| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![1.5, 2.5, f64::NAN])),
                Arc::new(Int64Array::from(vec![Some(offset), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                Arc::new(
                    TimestampNanosecondArray::from(vec![0, 1, 1_700_000_000_000_000_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                    Some(vec![Some(1), None]),
                    None,
                    Some(vec![]),
                ])),
                Arc::new(
                    vec![Some("Paris"), None, Some("Paris")]
                        .into_iter()
                        .collect::<DictionaryArray<Int32Type>>(),
                ),
            ],
        )
        .unwrap()
    };
    let plain = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let column = RecordBatch::try_new(
        plain.clone(),
        vec![Arc::new(Float64Array::from(vec![0.25; 8]))],
    )
    .unwrap();
    let mut files = vec![
        ("table", arrow::encode(&schema, &[batch(1)]).unwrap()),
        (
            "two-batches",
            arrow::encode(&schema, &[batch(1), batch(2)]).unwrap(),
        ),
        ("no-batches", arrow::encode(&schema, &[]).unwrap()),
        ("one-column", arrow::encode(&plain, &[column]).unwrap()),
    ];
    // One file per type whose decoding takes a path of its own in
    // arrow-ipc (layouts of several buffers, children, type ids).
    for (name, column) in more_columns() {
        let schema = Schema::new(vec![Field::new("c", column.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![column]).unwrap();
        files.push((name, arrow::encode(&schema, &[batch]).unwrap()));
    }
    files
}

fn more_columns() -> Vec<(&'static str, ArrayRef)> {
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5]));
    let union_fields = UnionFields::try_new(
        [0, 1],
        [
            Field::new("i", DataType::Int32, false),
            Field::new("f", DataType::Float64, false),
        ],
    )
    .unwrap();
    let sparse = UnionArray::try_new(
        union_fields.clone(),
        ScalarBuffer::from(vec![0i8, 1, 0]),
        None,
        vec![ints.clone(), floats.clone()],
    )
    .unwrap();
    let dense = UnionArray::try_new(
        union_fields,
        ScalarBuffer::from(vec![0i8, 1, 0]),
        Some(ScalarBuffer::from(vec![0i32, 0, 1])),
        vec![ints.clone(), floats.clone()],
    )
    .unwrap();
    let run_ends = Int32Array::from(vec![2, 5]);
    let runs =
        RunArray::<Int32Type>::try_new(&run_ends, &StringArray::from(vec!["a", "b"])).unwrap();
    vec![
        (
            "struct",
            Arc::new(StructArray::from(vec![
                (Arc::new(Field::new("i", DataType::Int32, false)), ints),
                (Arc::new(Field::new("f", DataType::Float64, false)), floats),
            ])) as ArrayRef,
        ),
        ("union-sparse", Arc::new(sparse)),
        ("union-dense", Arc::new(dense)),
        ("run-end-encoded", Arc::new(runs)),
        (
            "string-view",
            Arc::new(StringViewArray::from(vec![
                Some("short"),
                None,
                Some("a string longer than twelve bytes"),
            ])),
        ),
        (
            "large-utf8",
            Arc::new(LargeStringArray::from(vec![Some("x"), None])),
        ),
        (
            "fixed-size-binary",
            Arc::new(FixedSizeBinaryArray::try_from_iter([b"ab", b"cd"].into_iter()).unwrap()),
        ),
        (
            "fixed-size-list",
            Arc::new(FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
                vec![Some(vec![Some(1), Some(2)]), None],
                2,
            )),
        ),
        (
            "decimal128",
            Arc::new(
                Decimal128Array::from(vec![Some(12345), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        ("date32", Arc::new(Date32Array::from(vec![0, 19000]))),
    ]
}

fn names() -> Vec<String> {
    let key = ObjectKey::new("default", "greeting").to_hex();
    [
        "shm:///dev/shm/brain-0/default",
        "shm://",
        "memory://tests",
        "MEM://x",
        "/dev/shm/brain-0/default",
        "relative/dir",
        "./a://b",
        "redis://localhost:6379",
        "rediss://user:secret@host:7000/2",
        "ftp://host/x",
        "greeting",
        "名前/../\u{1F9E0}\u{0}",
        "ndarray",
        "pickle5",
        &key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The manifest, index entries and payload files of a real small dump,
/// and one payload cut into small frames (a dump's are 4 MiB: a seed of
/// several would be megabytes).
fn dump_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dump");
    let store = brain::memory_store("fuzz-seeds");
    store.put_text("default", "greeting", "hello").unwrap();
    store
        .put(
            "名前空間",
            "配列",
            &Payload::bytes(&[0u8; 0]).with_description("empty"),
        )
        .unwrap();
    let compressible: Vec<u8> = (0..3000u32).flat_map(|i| (i % 17).to_le_bytes()).collect();
    store
        .put(
            "default",
            "numbers",
            &Payload::bytes(&compressible).with_codec(Codec::Unknown(77)),
        )
        .unwrap();
    let (_, arrow) = &arrow_files()[3];
    store
        .put(
            "tables",
            "x",
            &Payload::bytes(arrow).with_codec(Codec::ArrowIpc),
        )
        .unwrap();
    dump(&store, &dir, &DumpOptions::new()).unwrap();

    let manifest = fs::read(dir.join(MANIFEST_FILE)).unwrap();
    read_manifest(&dir, fs::File::open(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    add("dump_manifest", "dump", manifest);

    let mut payloads = Payloads::open(&dir).unwrap();
    for (i, (key, value)) in index_entries(&dir).into_iter().enumerate() {
        decode_entry(&key, &value).unwrap();
        payloads.read(&key, &value).unwrap();
        let entry: serde_json::Value = serde_json::from_slice(&value).unwrap();
        let hex = |v: &serde_json::Value| u64::from_str_radix(v.as_str().unwrap(), 16).unwrap();
        let file = fs::read(dir.join("data").join(entry["file"].as_str().unwrap())).unwrap();
        // A payload in a pack file: its frames alone, as a file of its own.
        let start = entry.get("offset").map_or(0, |at| at.as_u64().unwrap()) as usize;
        let end = start + entry["file_len"].as_u64().unwrap() as usize;
        let frames = FramesInput {
            size: entry["size"].as_u64().unwrap(),
            frame_size: entry["frame_size"].as_u64().unwrap() as u32,
            xxh3: hex(&entry["xxh3"]),
            wrong_frame_checksums: false,
            packed_at: None,
            frames: entry["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as u32)
                .collect(),
            file: file[start..end].to_vec(),
        };
        add("dump_entry", &format!("{i}"), value);
        add("dump_frames", &format!("{i}"), frames.encode());
    }

    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
    compressor.include_checksum(true).unwrap();
    let compressed: Vec<Vec<u8>> = payload
        .chunks(256)
        .map(|frame| compressor.compress(frame).unwrap())
        .collect();
    let small_frames = FramesInput {
        size: payload.len() as u64,
        frame_size: 256,
        xxh3: xxhash_rust::xxh3::xxh3_64(&payload),
        wrong_frame_checksums: false,
        packed_at: None,
        frames: compressed.iter().map(|f| f.len() as u32).collect(),
        file: compressed.concat(),
    };
    add("dump_frames", "small-frames", small_frames.encode());
    let key = index_key("ns", "name");
    let mut check = |input: &FramesInput| {
        fs::write(
            dir.join("data").join("00000000000000ff-00000000.zst"),
            input.file_bytes(),
        )
        .unwrap();
        payloads.read(
            &key,
            &input.entry_json("ns", "name", "00000000000000ff-00000000.zst"),
        )
    };
    assert_eq!(check(&small_frames).unwrap(), 1000);
    let damaged = FramesInput {
        wrong_frame_checksums: true,
        ..small_frames
    };
    assert!(check(&damaged).is_err());
    add("dump_frames", "small-frames-damaged", damaged.encode());
    let packed = FramesInput {
        wrong_frame_checksums: false,
        packed_at: Some(17),
        ..damaged
    };
    assert_eq!(check(&packed).unwrap(), 1000);
    add("dump_frames", "small-frames-packed", packed.encode());
}

/// The index's entries, read with sled from a copy (opening a sled
/// database writes to it).
fn index_entries(dump: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let copy = tempfile::tempdir().unwrap();
    let index = fs::read_dir(dump)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("index-")
        })
        .unwrap();
    copy_dir(&index, copy.path());
    let db = sled::open(copy.path()).unwrap();
    let objects = db.open_tree("objects").unwrap();
    objects
        .iter()
        .map(|item| {
            let (key, value) = item.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Manifests over the parts `brain_fuzz::frame_store` holds: the whole of
/// `p0`, `p0` with `p1` appended, and `p0` with `p2`'s column assigned.
fn frame_manifests() -> Vec<(&'static str, Vec<u8>)> {
    use brain_core::frames::{self, ColumnChunk, FrameManifest};
    let store = brain_fuzz::frame_store();
    let schema_of = |id: &str| {
        let view = store
            .get("default", &frames::part_name("f", id))
            .unwrap()
            .unwrap();
        brain_core::decode_record_batches(&view, None).unwrap().0
    };
    let chunk = |part, field, rows| ColumnChunk { part, field, rows };
    let rows = schema_of("p0");
    let mut with_extra: Vec<Field> = rows.fields().iter().map(|f| f.as_ref().clone()).collect();
    with_extra.push(schema_of("p2").field(0).clone());
    let manifests = [
        (
            "whole",
            FrameManifest {
                codec: Codec::ArrowIpc,
                schema: rows.clone(),
                rows: 3,
                parts: vec!["p0".into()],
                columns: vec![vec![chunk(0, 0, 3)], vec![chunk(0, 1, 3)]],
                whole: true,
            },
        ),
        (
            "appended",
            FrameManifest {
                codec: Codec::PandasArrow,
                schema: rows.clone(),
                rows: 5,
                parts: vec!["p0".into(), "p1".into()],
                columns: vec![
                    vec![chunk(0, 0, 3), chunk(1, 0, 2)],
                    vec![chunk(0, 1, 3), chunk(1, 1, 2)],
                ],
                whole: false,
            },
        ),
        (
            "assigned",
            FrameManifest {
                codec: Codec::PolarsArrow,
                schema: Arc::new(Schema::new(with_extra)),
                rows: 3,
                parts: vec!["p0".into(), "p2".into()],
                columns: vec![
                    vec![chunk(0, 0, 3)],
                    vec![chunk(0, 1, 3)],
                    vec![chunk(1, 0, 3)],
                ],
                whole: false,
            },
        ),
    ];
    manifests
        .into_iter()
        .map(|(name, manifest)| {
            let bytes = manifest.encode("default", "f").unwrap();
            let payload = Payload::bytes(&bytes).with_codec(Codec::FrameParts);
            store.put("default", "f", &payload).unwrap();
            let read = frames::read_table(store, "default", "f").unwrap().unwrap();
            read.record_batches(None).unwrap();
            (name, bytes)
        })
        .collect()
}
