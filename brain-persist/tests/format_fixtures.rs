//! Golden fixtures for the dump format: small complete dumps kept under
//! version control, each with a readable digest of its manifest and index:
//! `tests/fixtures/dump/` and `dump_index.json`, written by this format
//! version, and `tests/fixtures/dump-v1/` and `dump_v1_index.json`, written
//! by version 1 (a payload file per object) and never regenerated.
//!
//! The dumps are frozen: they hold timestamps and a random dump id, so they
//! are not reproduced byte for byte. Instead
//!
//! - each must restore, object for object and byte for byte, into a fresh
//!   store (so every later build reads what earlier ones wrote), and
//! - its manifest and index, with the values that vary from run to run
//!   replaced by what they must look like, must equal its digest; and so
//!   must those of a dump this build writes of the same objects, against
//!   the current version's digest. The manifest and index encoders are
//!   private to brain-persist, so this is how a change in what they write
//!   shows up.
//!
//! When the format changes deliberately, keep the current dump as the old
//! version's fixture, regenerate the current one with
//!
//! ```text
//! BRAIN_WRITE_FIXTURES=1 cargo test -p brain-persist --test format_fixtures
//! ```
//!
//! and record the change in `docs/FORMAT.md`, with the new version.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{
    ndarray_payload, pickle_payload, Codec, NdArrayMeta, ObjectStore, ObjectStoreExt, Payload,
    Store,
};
use brain_persist::{
    dump, list_dump, restore, verify_dump, DumpKind, DumpOptions, Progress, RestoreOptions,
    FORMAT_VERSION, FRAME_SIZE, MANIFEST_FILE,
};
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

/// Set to `1` to (re)write the fixtures instead of comparing with them.
const WRITE_ENV: &str = "BRAIN_WRITE_FIXTURES";
/// The command that rewrites the fixtures.
const REGENERATE: &str =
    "BRAIN_WRITE_FIXTURES=1 cargo test -p brain-persist --test format_fixtures";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// A checked-in dump and its digest.
struct Fixture {
    dir: &'static str,
    digest: &'static str,
    version: u64,
}

/// The dump this format version writes; regenerated with [`REGENERATE`].
const CURRENT: Fixture = Fixture {
    dir: "dump",
    digest: "dump_index.json",
    version: FORMAT_VERSION,
};

/// A dump of version 1, whose payload files hold one object each.
const VERSION_1: Fixture = Fixture {
    dir: "dump-v1",
    digest: "dump_v1_index.json",
    version: 1,
};

impl Fixture {
    fn dump(&self) -> PathBuf {
        fixtures().join(self.dir)
    }
}

fn writing() -> bool {
    std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1")
}

fn failure_advice() -> String {
    format!(
        "Dumps that earlier builds wrote are no longer written (or read) the same way. If this \
         is a bug, fix the code. If the dump format changed deliberately, bump its version \
         (brain_persist::FORMAT_VERSION), record the change in docs/FORMAT.md (\"Dump \
         format\"), and regenerate the fixtures with\n    {REGENERATE}\nthen commit the new \
         fixtures with the FORMAT.md change."
    )
}

/// A store in a temporary directory under /dev/shm, removed when dropped.
struct TempStore {
    _dir: tempfile::TempDir,
    store: Store,
}

fn temp_store() -> TempStore {
    let dir = tempfile::Builder::new()
        .prefix("brain-persist-fixtures")
        .tempdir_in("/dev/shm")
        .expect("a directory in /dev/shm");
    let store = Store::open(dir.path().join("store")).expect("a store");
    TempStore { _dir: dir, store }
}

// ---------------------------------------------------------------- the objects

/// One object of the fixture dump.
struct Object {
    namespace: &'static str,
    name: &'static str,
    codec: Codec,
    description: &'static str,
    payload: Vec<u8>,
}

fn arrow_batch() -> (Arc<Schema>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-3.25)])),
            Arc::new(StringArray::from(vec![Some("un"), Some("zwei"), None])),
        ],
    )
    .expect("a batch");
    (schema, batch)
}

fn matrix_meta() -> NdArrayMeta {
    NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![3, 4],
        fortran_order: false,
    }
}

fn matrix_data() -> Vec<u8> {
    (0..12)
        .flat_map(|i| (i as f64 * 0.25).to_le_bytes())
        .collect()
}

const PICKLE: &[u8] = b"\x80\x05\x97\x97\x86\x94.";

fn pickle_buffers() -> (Vec<u8>, Vec<u8>) {
    (
        b"the first out-of-band buffer".to_vec(),
        (0..100u32).map(|i| (i * 7 % 256) as u8).collect(),
    )
}

/// Every object of the fixture dump, in a fixed order; all but the Arrow
/// table are built by brain's own encoders, so their bytes are fixed.
fn objects() -> Vec<Object> {
    let ndarray = ndarray_payload(("data", "matrix"), &matrix_meta(), &matrix_data(), |p| {
        Ok(p.parts().concat())
    })
    .expect("an ndarray payload");
    let (first, second) = pickle_buffers();
    let pickle = pickle_payload(PICKLE, &[&first, &second], |p| Ok(p.parts().concat()))
        .expect("a pickle payload");
    let (schema, batch) = arrow_batch();
    let arrow = brain_core::format::arrow::encode(&schema, &[batch]).expect("Arrow IPC");
    vec![
        Object {
            namespace: "docs",
            name: "greeting",
            codec: Codec::Text,
            description: "a greeting",
            payload: "hello, brain — ünïcödé ✓".as_bytes().to_vec(),
        },
        Object {
            namespace: "docs",
            name: "empty",
            codec: Codec::Raw,
            description: "",
            payload: Vec::new(),
        },
        Object {
            namespace: "data",
            name: "bytes",
            codec: Codec::Raw,
            description: "every byte value, twice",
            payload: (0..512u32).map(|i| i as u8).collect(),
        },
        Object {
            namespace: "data",
            name: "matrix",
            codec: Codec::NdArray,
            description: "3×4 float64",
            payload: ndarray,
        },
        Object {
            namespace: "data",
            name: "pickled",
            codec: Codec::Pickle5,
            description: "a pickle-5 stream and two buffers",
            payload: pickle,
        },
        Object {
            namespace: "data",
            name: "table",
            codec: Codec::ArrowIpc,
            description: "an Arrow table",
            payload: arrow,
        },
        // Two frames: one full, one of 4 KiB.
        Object {
            namespace: "data",
            name: "two frames",
            codec: Codec::Raw,
            description: "",
            payload: (0..FRAME_SIZE + 4096).map(|i| (i % 251) as u8).collect(),
        },
        Object {
            namespace: "名前空間",
            name: "from a newer build",
            codec: Codec::Unknown(42),
            description: "codec 42 is unknown to this build",
            payload: b"bytes of a codec this build does not know".to_vec(),
        },
    ]
}

fn put_objects(store: &Store) {
    for o in objects() {
        store
            .put(
                o.namespace,
                o.name,
                &Payload::bytes(&o.payload)
                    .with_codec(o.codec)
                    .with_description(o.description),
            )
            .unwrap_or_else(|e| panic!("put {}/{}: {e}", o.namespace, o.name));
    }
}

// ---------------------------------------------------------------- writing

static PREPARE: Once = Once::new();

/// With [`WRITE_ENV`] set, writes the fixture dump and its digest, once,
/// before any test reads them.
fn prepare() {
    PREPARE.call_once(|| {
        if !writing() {
            return;
        }
        let target = CURRENT.dump();
        if target.exists() {
            fs::remove_dir_all(&target).expect("remove the old fixture dump");
        }
        let source = temp_store();
        put_objects(&source.store);
        dump(&source.store, &target, &DumpOptions::new()).expect("the fixture dump");
        // git keeps no empty directories (sled's `blobs/`, which the
        // manifest does not list): remove them, so that the dump tested here
        // is the one a checkout has. The empty LOCK file that readers flock
        // stays: it is part of the layout.
        remove_empty_dirs(&target);
        let digest = digest(&target);
        let path = fixtures().join(CURRENT.digest);
        fs::write(&path, render(&digest)).expect("write the digest");
        eprintln!("wrote {} and {}", target.display(), path.display());
    });
}

// ---------------------------------------------------------------- the digest

/// Replaces a value that varies from dump to dump by what it must look like,
/// after checking that it does.
fn placeholder(value: &Value, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    assert!(ok(value), "{what}: unexpected value {value}");
    Value::String(format!("<{what}>"))
}

fn is_hex16(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The dump's manifest and index as JSON, with the values that vary from
/// one dump of the same objects to the next (ids, times, compressed sizes
/// and checksums of the compressed bytes, sled's own files) replaced by
/// what they must look like. Field names and types, constant
/// fields, keys and everything derived from the objects themselves stay.
fn digest(dump_dir: &Path) -> Value {
    let text = fs::read(dump_dir.join(MANIFEST_FILE)).expect("MANIFEST.json");
    let mut manifest: serde_json::Map<String, Value> =
        serde_json::from_slice(&text).expect("the manifest is a JSON object");
    let dump_id = manifest["dump_id"].as_str().expect("a dump id").to_owned();
    for (field, what, ok) in [
        (
            "dump_id",
            "16 hex digits",
            &is_hex16 as &dyn Fn(&Value) -> bool,
        ),
        (
            "written_unix_ns",
            "u64: ns since the epoch",
            &|v: &Value| v.as_u64().is_some_and(|n| n > 1_600_000_000_000_000_000),
        ),
        ("writer", "brain-persist <version>", &|v: &Value| {
            v.as_str().is_some_and(|s| s.starts_with("brain-persist "))
        }),
        ("compressed_bytes", "u64: sum of file_len", &|v: &Value| {
            v.is_u64()
        }),
    ] {
        let value = manifest
            .get_mut(field)
            .unwrap_or_else(|| panic!("the manifest has no {field}"));
        *value = placeholder(value, what, ok);
    }
    let index = manifest
        .get_mut("index")
        .and_then(Value::as_object_mut)
        .expect("an index object");
    let index_dir = index["dir"].as_str().expect("index.dir").to_owned();
    let files = index.get_mut("files").expect("index.files");
    *files = placeholder(files, "the index's files: [{path, len, xxh3}]", |v| {
        v.as_array().is_some_and(|files| {
            !files.is_empty()
                && files.iter().all(|f| {
                    f.as_object().is_some_and(|f| {
                        // serde_json's maps are sorted by key.
                        f.keys().map(String::as_str).eq(["len", "path", "xxh3"])
                    }) && f["path"].is_string()
                        && f["len"].is_u64()
                        && is_hex16(&f["xxh3"])
                })
        })
    });

    // The index: a sled database, opened on a private copy (opening writes).
    let copy = tempfile::tempdir().expect("a temporary directory");
    copy_tree(&dump_dir.join(&index_dir), copy.path());
    let db = sled::Config::new()
        .path(copy.path())
        .open()
        .expect("the index opens");
    let meta_tree = db.open_tree("meta").expect("the meta tree");
    let meta: BTreeMap<String, Value> = meta_tree
        .iter()
        .map(|kv| {
            let (k, v) = kv.expect("a meta entry");
            let key = String::from_utf8(k.to_vec()).expect("a UTF-8 meta key");
            let value = match key.as_str() {
                "format_version" => {
                    json!(format!(
                        "u64 BE {}",
                        u64::from_be_bytes(v.as_ref().try_into().expect("8 bytes"))
                    ))
                }
                "dump_id" => {
                    assert_eq!(v.as_ref(), dump_id.as_bytes(), "the index's dump id");
                    json!("<the manifest's dump_id>")
                }
                _ => json!(v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            };
            (key, value)
        })
        .collect();
    let objects_tree = db.open_tree("objects").expect("the objects tree");
    let mut entries = Vec::new();
    for kv in objects_tree.iter() {
        let (k, v) = kv.expect("an index entry");
        let mut entry: serde_json::Map<String, Value> =
            serde_json::from_slice(&v).expect("an entry is a JSON object");
        let namespace = entry["namespace"].as_str().expect("a namespace").to_owned();
        let name = entry["name"].as_str().expect("a name").to_owned();
        let mut key = (namespace.len() as u32).to_be_bytes().to_vec();
        key.extend_from_slice(namespace.as_bytes());
        key.extend_from_slice(name.as_bytes());
        assert_eq!(
            k.as_ref(),
            &key[..],
            "the key of {namespace:?}/{name:?} is not u32 BE len || namespace || name"
        );
        let frames = entry["frames"].as_array().expect("frames").len();
        let is_u64_list = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_u64));
        let is_hex_list = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(is_hex16));
        for (field, what, ok) in [
            (
                "created_unix_ns",
                "u64: ns since the epoch".to_owned(),
                &Value::is_u64 as &dyn Fn(&Value) -> bool,
            ),
            ("file_len", "u64: sum of frames".to_owned(), &Value::is_u64),
            (
                "offset",
                "u64: where the frames start in the pack file".to_owned(),
                &Value::is_u64,
            ),
            (
                "frames",
                format!("{frames} compressed lengths"),
                &is_u64_list,
            ),
            (
                "frame_xxh3",
                format!("{frames} × 16 hex digits"),
                &is_hex_list,
            ),
        ] {
            let Some(value) = entry.get_mut(field) else {
                // Only the entries of payloads packed together have one.
                assert_eq!(
                    field, "offset",
                    "entry {namespace:?}/{name:?} has no {field}"
                );
                continue;
            };
            *value = placeholder(value, &what, ok);
        }
        entries.push(json!({
            "key (hex)": key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "value": entry,
        }));
    }
    json!({
        "manifest": manifest,
        "meta": meta,
        "objects": entries,
    })
}

fn render(digest: &Value) -> String {
    serde_json::to_string_pretty(digest).expect("JSON") + "\n"
}

/// Removes the empty directories under `dir`; true when `dir` was one.
fn remove_empty_dirs(dir: &Path) -> bool {
    let mut empty = true;
    for entry in fs::read_dir(dir).expect("a directory") {
        let entry = entry.expect("an entry");
        if !(entry.file_type().expect("a type").is_dir() && remove_empty_dirs(&entry.path())) {
            empty = false;
        }
    }
    if empty {
        fs::remove_dir(dir).expect("remove an empty directory");
    }
    empty
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("a directory");
    for entry in fs::read_dir(from).expect("a directory") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("a copy");
        }
    }
}

/// Compares a digest with the fixture's, saying what changed.
fn check_digest(fixture: &Fixture, what: &str, digest: &Value) {
    let path = fixtures().join(fixture.digest);
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden fixture {}: {e}\nGenerate it once, deliberately, with `{REGENERATE}`.",
            path.display()
        )
    });
    let actual = render(digest);
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.lines().count().min(actual.lines().count()));
    let first = expected
        .bytes()
        .zip(actual.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    panic!(
        "FORMAT CHANGE: the manifest and index of {what} no longer match \
         brain-persist/tests/fixtures/{}.\n  first differing offset: {first}, \
         line {}\n    {}: {:?}\n    {what}: {:?}\nThe digest of {what}:\n{actual}\n{}",
        fixture.digest,
        line + 1,
        fixture.digest,
        expected.lines().nth(line).unwrap_or("(end of file)"),
        actual.lines().nth(line).unwrap_or("(end of file)"),
        failure_advice(),
    );
}

/// Every file under `dir` with its contents, to show a restore changes nothing.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(at) = todo.pop() {
        for entry in fs::read_dir(&at).expect("a directory") {
            let entry = entry.expect("an entry");
            let path = entry.path();
            let kind = entry.file_type().expect("a type");
            assert!(!kind.is_symlink(), "{} is a symlink", path.display());
            if kind.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_owned();
                out.insert(rel, fs::read(&path).expect("a file"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- the tests

/// Fails, saying what the checked-in dump holds and what this build made of it.
#[track_caller]
fn same<T: PartialEq + std::fmt::Debug>(label: &str, what: &str, got: T, want: T) {
    if got != want {
        panic!(
            "FORMAT CHANGE: reading the checked-in dump brain-persist/tests/fixtures/dump, \
             {label}: {what} is {got:?}, expected {want:?}\n{}",
            failure_advice()
        );
    }
}

#[test]
fn the_checked_in_dump_restores_byte_for_byte() {
    restores_byte_for_byte(&CURRENT);
}

#[test]
fn the_checked_in_dump_of_version_1_restores_byte_for_byte() {
    restores_byte_for_byte(&VERSION_1);
}

fn restores_byte_for_byte(fixture: &Fixture) {
    prepare();
    let path = fixture.dump();
    let before = tree(&path);
    assert!(
        before.contains_key(Path::new(MANIFEST_FILE)),
        "{} holds no dump; generate it once, deliberately, with `{REGENERATE}`",
        path.display()
    );
    // Nothing in it names a place on the machine that wrote it.
    for (file, bytes) in &before {
        let text = String::from_utf8_lossy(bytes);
        for machine_specific in ["/dev/shm", "/tmp/", env!("CARGO_MANIFEST_DIR")] {
            assert!(
                !text.contains(machine_specific),
                "{} mentions {machine_specific}",
                file.display()
            );
        }
    }

    let wanted = objects();
    let info = list_dump(&path).unwrap_or_else(|e| panic!("{e}\n{}", failure_advice()));
    same("the dump", "the kind", info.kind, DumpKind::Dump);
    same(
        "the dump",
        "the format version",
        info.format_version,
        fixture.version,
    );
    same("the dump", "the generation", info.generation, 1);
    same("the dump", "the namespace", info.namespace.as_deref(), None);
    same(
        "the dump",
        "the writer's prefix",
        info.writer.get(..14),
        Some("brain-persist "),
    );
    let mut listed: Vec<(&str, &str)> = info
        .objects
        .iter()
        .map(|o| (o.namespace.as_str(), o.name.as_str()))
        .collect();
    let mut expected: Vec<(&str, &str)> = wanted.iter().map(|o| (o.namespace, o.name)).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    same("the dump", "the objects listed", listed, expected);
    verify_dump(&path, &Progress::Hidden).unwrap_or_else(|e| panic!("{e}\n{}", failure_advice()));

    let target = temp_store();
    let store = &target.store;
    let report = restore(store, &path, &RestoreOptions::new())
        .unwrap_or_else(|e| panic!("{e}\n{}", failure_advice()));
    same(
        "the restore",
        "objects restored",
        report.restored,
        wanted.len() as u64,
    );
    same("the restore", "objects skipped", report.skipped, 0);

    for o in &wanted {
        let label = &format!("{}/{}", o.namespace, o.name);
        let listed = info
            .objects
            .iter()
            .find(|e| e.namespace == o.namespace && e.name == o.name)
            .expect("listed");
        same(label, "the codec listed", listed.codec, o.codec);
        same(
            label,
            "the description listed",
            &*listed.description,
            o.description,
        );
        let meta = store
            .metadata(o.namespace, o.name)
            .expect("metadata")
            .unwrap_or_else(|| panic!("{label} was not restored\n{}", failure_advice()));
        same(label, "the codec restored", meta.codec, o.codec);
        same(
            label,
            "the description restored",
            &*meta.description,
            o.description,
        );
        let view = store
            .get(o.namespace, o.name)
            .expect("get")
            .expect("present");
        same(label, "the restored size", view.len() as u64, listed.size);
        same(label, "the restored xxh3", xxh3_64(&view), listed.checksum);
        if o.codec == Codec::ArrowIpc {
            // Arrow IPC bytes are arrow-rs's to choose: the frozen payload
            // must decode to the table, whatever today's writer would write.
            let (schema, batch) = arrow_batch();
            let (got_schema, got) = store
                .get_record_batches(o.namespace, o.name)
                .unwrap_or_else(|e| panic!("{e}\n{}", failure_advice()))
                .expect("present");
            same(label, "the restored schema", got_schema, schema);
            same(label, "the restored batches", got, vec![batch]);
        } else if view[..] != o.payload[..] {
            let at = view
                .iter()
                .zip(&o.payload)
                .position(|(a, b)| a != b)
                .unwrap_or(view.len().min(o.payload.len()));
            panic!(
                "FORMAT CHANGE: restoring the checked-in dump, {label}: the restored payload \
                 differs from the one dumped, first at offset {at}\n{}",
                failure_advice()
            );
        }
    }
    let text = store.get_text("docs", "greeting").expect("text");
    same(
        "docs/greeting",
        "the text",
        text.as_deref(),
        Some("hello, brain — ünïcödé ✓"),
    );
    let array = store
        .get_ndarray("data", "matrix")
        .expect("ndarray")
        .expect("present");
    same(
        "data/matrix",
        "the array's metadata",
        array.meta,
        matrix_meta(),
    );
    same(
        "data/matrix",
        "the array's data",
        array.data.as_slice(),
        &matrix_data()[..],
    );
    let pickled = store
        .get_pickle("data", "pickled")
        .expect("pickle")
        .expect("present");
    let (first, second) = pickle_buffers();
    let buffers: Vec<&[u8]> = pickled.buffers.iter().map(|b| b.as_slice()).collect();
    same(
        "data/pickled",
        "the pickle stream",
        pickled.pickle.as_slice(),
        PICKLE,
    );
    same(
        "data/pickled",
        "the buffers",
        buffers,
        vec![&first[..], &second[..]],
    );

    drop(target);
    assert!(
        tree(&path) == before,
        "reading or restoring the dump changed {}",
        path.display()
    );
}

#[test]
fn the_checked_in_dump_has_the_pinned_manifest_and_index() {
    prepare();
    check_digest(&CURRENT, "the checked-in dump", &digest(&CURRENT.dump()));
}

#[test]
fn the_checked_in_dump_of_version_1_has_the_pinned_manifest_and_index() {
    check_digest(
        &VERSION_1,
        "the checked-in dump of version 1",
        &digest(&VERSION_1.dump()),
    );
}

#[test]
fn a_new_dump_has_the_pinned_manifest_and_index() {
    prepare();
    // The same objects, the Arrow table with the bytes frozen in the
    // fixture (its IPC bytes are arrow-rs's to choose): restored from it.
    let source = temp_store();
    restore(&source.store, CURRENT.dump(), &RestoreOptions::new()).expect("restore");
    let dir = tempfile::Builder::new()
        .prefix("brain-persist-fixtures")
        .tempdir()
        .expect("a temporary directory");
    let path = dir.path().join("dump");
    dump(&source.store, &path, &DumpOptions::new()).expect("a dump");
    check_digest(&CURRENT, "a dump written by this build", &digest(&path));
}
