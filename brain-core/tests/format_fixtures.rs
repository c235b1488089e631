//! Golden fixtures: brain-core's byte formats checked against bytes kept
//! under version control in `tests/fixtures/`.
//!
//! Every layout of `docs/FORMAT.md` that brain-core's public API can build is
//! encoded here from fixed, fully deterministic inputs and compared byte for
//! byte with its fixture, and every fixture is decoded back. A change to a
//! layout therefore fails these tests; when the change is deliberate, the
//! fixtures are regenerated with
//!
//! ```text
//! BRAIN_WRITE_FIXTURES=1 cargo test -p brain-core --test format_fixtures
//! ```
//!
//! and the change is recorded in `docs/FORMAT.md`, with the new version.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema};
use brain_core::format::control::{
    check_control_file, new_control_file, CONTROL_LEN, CONTROL_VERSION, VERSION_AT,
};
use brain_core::format::parts::{split, PartsLayout};
use brain_core::format::{namespace_dir_name, Header, HEADER_FIXED_LEN, PAYLOAD_ALIGN};
use brain_core::{
    ndarray_payload, pickle_payload, Codec, Dtype, DtypeField, NdArrayMeta, ObjectKey, ObjectStore,
    Payload, Store,
};

/// Set to `1` to (re)write the fixtures instead of comparing with them.
const WRITE_ENV: &str = "BRAIN_WRITE_FIXTURES";
/// The command that rewrites the fixtures.
const REGENERATE: &str = "BRAIN_WRITE_FIXTURES=1 cargo test -p brain-core --test format_fixtures";

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn writing() -> bool {
    std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1")
}

/// Compares `actual` with the fixture `name`, or writes it there when
/// [`WRITE_ENV`] is `1`. Returns the fixture's bytes.
fn golden(name: &str, actual: &[u8]) -> Vec<u8> {
    let path = fixture_path(name);
    if writing() {
        fs::create_dir_all(path.parent().expect("a parent"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        fs::write(&path, actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote fixture {}", path.display());
        return actual.to_vec();
    }
    let expected = read_fixture(name);
    if expected != actual {
        panic!("{}", describe_difference(name, &expected, actual));
    }
    expected
}

/// A fixture's bytes, for fixtures that are only decoded (never compared
/// with what this build writes).
fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden fixture {}: {e}\n\
             Fixtures are generated once, deliberately, with `{REGENERATE}`.",
            path.display()
        )
    })
}

/// What differs between a fixture and what this build produced, and what
/// to do about it.
fn describe_difference(name: &str, expected: &[u8], actual: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let window = |bytes: &[u8]| -> String {
        let start = first.saturating_sub(8);
        let end = (first + 8).min(bytes.len());
        if start >= end {
            return "(nothing: the data ends before it)".into();
        }
        bytes[start..end]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
            + &format!("  (bytes {start}..{end})")
    };
    let mut out = format!(
        "FORMAT CHANGE: brain-core/tests/fixtures/{name} no longer matches what this build \
         encodes.\n  first differing offset: {first} (0x{first:x})\n  fixture: {} bytes, \
         this build: {} bytes\n  fixture    around it: {}\n  this build around it: {}\n",
        expected.len(),
        actual.len(),
        window(expected),
        window(actual),
    );
    if let (Ok(want), Ok(got)) = (std::str::from_utf8(expected), std::str::from_utf8(actual)) {
        let line = want[..first.min(want.len())].matches('\n').count();
        out += &format!(
            "  line {}:\n    fixture:    {:?}\n    this build: {:?}\n",
            line + 1,
            want.lines().nth(line).unwrap_or(""),
            got.lines().nth(line).unwrap_or(""),
        );
    }
    out += &format!(
        "Bytes that earlier builds wrote are no longer written (or read) the same way. If this \
         is a bug, fix the code. If the format change is deliberate, bump the version it \
         belongs to, record the change in docs/FORMAT.md, and regenerate the fixtures with\n    \
         {REGENERATE}\nthen commit the new fixtures with the FORMAT.md change."
    );
    out
}

// ---------------------------------------------------------------- headers

/// The headers pinned, each with its fixture.
fn golden_headers() -> Vec<(&'static str, Header)> {
    let with = {
        let (namespace, name) = ("golden", "日本語/données/🧠 name");
        Header {
            codec: Codec::NdArray,
            flags: 0,
            payload_len: 1_234_567,
            created_unix_nanos: 1_700_000_000_123_456_789,
            key: ObjectKey::new(namespace, name),
            payload_checksum: Some(0x0123_4567_89ab_cdef),
            namespace: namespace.into(),
            name: name.into(),
            description: "a golden header, with a payload checksum".into(),
        }
    };
    let without = {
        let (namespace, name) = ("espace de noms", "Größe ✓");
        Header {
            codec: Codec::Text,
            flags: 0,
            payload_len: 0,
            created_unix_nanos: 1_000_000_000_000_000_000,
            key: ObjectKey::new(namespace, name),
            payload_checksum: None,
            namespace: namespace.into(),
            name: name.into(),
            description: "sans somme de contrôle".into(),
        }
    };
    // A codec tag this build does not know survives a round trip by number,
    // with the longest payload a file can have (a longer one is damage).
    let unknown = {
        let (namespace, name) = ("n", "x");
        Header {
            codec: Codec::Unknown(0x0102),
            flags: 0,
            payload_len: i64::MAX as u64 - 4096,
            created_unix_nanos: -1,
            key: ObjectKey::new(namespace, name),
            payload_checksum: Some(0),
            namespace: namespace.into(),
            name: name.into(),
            description: String::new(),
        }
    };
    // What every writer stores since flag bit 1: the checksum over 1 MiB
    // chunks. header_checksum.bin keeps the older whole-payload kind, which
    // this build still reads and checks.
    let chunked = {
        let (namespace, name) = ("golden", "chunked ✓");
        Header {
            codec: Codec::Raw,
            flags: brain_core::format::FLAG_CHUNKED_CHECKSUM,
            payload_len: 3 << 20,
            created_unix_nanos: 1_750_000_000_000_000_000,
            key: ObjectKey::new(namespace, name),
            payload_checksum: Some(0xfedc_ba98_7654_3210),
            namespace: namespace.into(),
            name: name.into(),
            description: "a chunked payload checksum".into(),
        }
    };
    vec![
        ("header_checksum.bin", with),
        ("header_chunked_checksum.bin", chunked),
        ("header_no_checksum.bin", without),
        ("header_unknown_codec.bin", unknown),
    ]
}

#[test]
fn object_headers_match_their_fixtures() {
    for (file, header) in golden_headers() {
        let encoded = header.encode();
        let fixture = golden(file, &encoded);
        assert_eq!(fixture.len() % PAYLOAD_ALIGN, 0, "{file}");
        assert_eq!(
            Header::needed_len(&fixture[..HEADER_FIXED_LEN]),
            Ok(fixture.len()),
            "{file}"
        );
        assert_eq!(Header::decode(&fixture).as_ref(), Ok(&header), "{file}");
        // A payload may follow the header.
        let mut file_bytes = fixture.clone();
        file_bytes.extend_from_slice(b"payload");
        assert_eq!(Header::decode(&file_bytes), Ok(header), "{file}");
    }
}

// ---------------------------------------------------------------- keys

/// (namespace, name) pairs whose keys and namespace directories are pinned.
fn key_cases() -> Vec<(String, String)> {
    [
        ("default", "greeting"),
        ("ab", "c"),
        ("a", "bc"),
        ("golden", "日本語/données/🧠 name"),
        ("🧠", ".."),
        ("/", "a/b/../c"),
        ("tabs\tand\nnewlines", "nul\0byte"),
        ("x", &"long name ".repeat(30)),
    ]
    .into_iter()
    .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
    .collect()
}

#[test]
fn keys_and_namespace_directories_match_their_fixture() {
    // One line per case: namespace and name as JSON strings, the object key,
    // the namespace's directory name; separated by tabs.
    let mut text = String::new();
    for (ns, name) in key_cases() {
        let key = ObjectKey::new(&ns, &name);
        assert_eq!(ObjectKey::from_hex(&key.to_hex()), Some(key));
        text += &format!(
            "{}\t{}\t{}\t{}\n",
            serde_json::to_string(&ns).expect("a string"),
            serde_json::to_string(&name).expect("a string"),
            key.to_hex(),
            namespace_dir_name(&ns),
        );
    }
    let fixture = golden("keys.txt", text.as_bytes());
    let fixture = String::from_utf8(fixture).expect("UTF-8");
    for line in fixture.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [ns, name, key, dir] = fields[..] else {
            panic!("malformed fixture line {line:?}");
        };
        let ns: String = serde_json::from_str(ns).expect("a JSON string");
        let name: String = serde_json::from_str(name).expect("a JSON string");
        assert_eq!(ObjectKey::from_hex(key), Some(ObjectKey::new(&ns, &name)));
        assert_eq!(namespace_dir_name(&ns), dir);
    }
}

// ---------------------------------------------------------------- parts

/// A pickle protocol 5 stream whose value is a tuple of two out-of-band
/// buffers: PROTO 5, NEXT_BUFFER, NEXT_BUFFER, TUPLE2, MEMOIZE, STOP.
const PICKLE: &[u8] = b"\x80\x05\x97\x97\x86\x94.";

fn pickle_buffers() -> (Vec<u8>, Vec<u8>) {
    let first = b"the first out-of-band buffer".to_vec();
    let second = (0..100u32).map(|i| (i * 7 % 256) as u8).collect();
    (first, second)
}

fn plain_meta() -> NdArrayMeta {
    NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![2, 3],
        fortran_order: false,
    }
}

fn plain_data() -> Vec<u8> {
    [0.5f64, 1.5, -2.25, 1e300, f64::MIN_POSITIVE, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Checks that `payload` splits into `parts`, each starting 64-byte aligned.
fn check_split(file: &str, payload: &[u8], parts: &[&[u8]]) {
    let buffer = Buffer::from_vec(payload.to_vec());
    let split = split(&buffer).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(split.len(), parts.len(), "{file}");
    for (i, (got, want)) in split.iter().zip(parts).enumerate() {
        assert_eq!(got.as_slice(), *want, "{file}: part {i}");
        let offset = got.as_ptr() as usize - buffer.as_ptr() as usize;
        assert_eq!(offset % PAYLOAD_ALIGN, 0, "{file}: part {i} at {offset}");
    }
}

#[test]
fn pickle_parts_layout_matches_its_fixture() {
    let (first, second) = pickle_buffers();
    let parts: [&[u8]; 3] = [PICKLE, &first, &second];
    let layout = PartsLayout::new(&parts.map(<[u8]>::len));
    let encoded = layout.segments(&parts).concat();
    assert_eq!(encoded.len(), layout.len());
    let fixture = golden("parts_pickle5.bin", &encoded);
    // The typed layer writes the same bytes.
    let typed = pickle_payload(PICKLE, &[&first, &second], |payload| {
        assert_eq!(payload.codec, Codec::Pickle5);
        Ok(payload.parts().concat())
    })
    .expect("a payload");
    assert_eq!(typed, fixture);
    check_split("parts_pickle5.bin", &fixture, &parts);
}

#[test]
fn ndarray_parts_layout_matches_its_fixture() {
    let meta = plain_meta();
    let json = meta.to_json();
    let data = plain_data();
    let parts: [&[u8]; 2] = [&json, &data];
    let layout = PartsLayout::new(&parts.map(<[u8]>::len));
    let encoded = layout.segments(&parts).concat();
    let fixture = golden("parts_ndarray.bin", &encoded);
    let typed = ndarray_payload(("ns", "array"), &meta, &data, |payload| {
        assert_eq!(payload.codec, Codec::NdArray);
        Ok(payload.parts().concat())
    })
    .expect("a payload");
    assert_eq!(typed, fixture);
    check_split("parts_ndarray.bin", &fixture, &parts);
    let split = split(&Buffer::from_vec(fixture)).expect("parts");
    assert_eq!(NdArrayMeta::from_json(&split[0]), Ok(meta));
}

// ---------------------------------------------------------------- ndarray metadata

fn field(name: &str, title: Option<&str>, dtype: Dtype, shape: &[u64]) -> DtypeField {
    DtypeField {
        name: name.into(),
        title: title.map(Into::into),
        dtype,
        shape: shape.to_vec(),
    }
}

/// A structured dtype with titles, padding, a nested record and sub-arrays
/// of one and two dimensions.
fn structured_meta() -> NdArrayMeta {
    let inner = Dtype::Record(vec![
        field("when", None, "<M8[ns]".into(), &[]),
        field("label", Some("Étiquette"), "<U5".into(), &[]),
        field("grid", None, "|u1".into(), &[2, 3]),
    ]);
    NdArrayMeta {
        dtype: Dtype::Record(vec![
            field("id", None, "<i8".into(), &[]),
            field("pos", Some("Position (m)"), ">f4".into(), &[3]),
            field("", None, "|V4".into(), &[]),
            field("meta", None, inner, &[2]),
            field("flag", None, "|b1".into(), &[]),
        ]),
        shape: vec![4],
        fortran_order: false,
    }
}

#[test]
fn ndarray_metadata_json_matches_its_fixtures() {
    let plain = plain_meta();
    let fixture = golden("ndarray_meta_plain.json", &plain.to_json());
    assert_eq!(NdArrayMeta::from_json(&fixture).as_ref(), Ok(&plain));
    assert_eq!(plain.data_len(), Some(48));

    let structured = structured_meta();
    let fixture = golden("ndarray_meta_structured.json", &structured.to_json());
    let decoded = NdArrayMeta::from_json(&fixture).expect("the fixture parses");
    assert_eq!(decoded, structured);
    // id 8, pos 3*4, padding 4, meta 2*(8 + 5*4 + 2*3), flag 1.
    assert_eq!(decoded.dtype.itemsize(), Some(8 + 12 + 4 + 2 * 34 + 1));
    assert_eq!(decoded.data_len(), Some(4 * 93));
}

// ---------------------------------------------------------------- control file

/// The control file as version 1 wrote it: written out from literals, not
/// from this build's code, since that version is history.
fn control_file_v1() -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[0..8].copy_from_slice(b"BRAINCTL");
    bytes[8..16].copy_from_slice(&1u64.to_le_bytes());
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    bytes
}

#[test]
fn control_file_matches_its_fixture() {
    let fresh = golden("control_v4.bin", &new_control_file());
    assert_eq!(fresh.len(), CONTROL_LEN);
    assert_eq!(check_control_file(&fresh), Ok(CONTROL_VERSION));
    assert_eq!(CONTROL_VERSION, 4);
}

/// Control files of earlier versions: version 1 (before recycling) written
/// out from literals, versions 2 (before the writer slots) and 3 (before
/// the table of small objects) frozen as they were written. Each is read,
/// and upgraded in place by a store that opens it.
#[test]
fn older_control_files_are_read_and_upgraded() {
    let current = golden("control_v4.bin", &new_control_file());
    let older = [
        (
            "control_v1.bin",
            golden("control_v1.bin", &control_file_v1()),
            1,
        ),
        ("control_v2.bin", read_fixture("control_v2.bin"), 2),
        ("control_v3.bin", read_fixture("control_v3.bin"), 3),
    ];
    for (name, bytes, version) in older {
        // Only the version field differs: the slots of older files are zero.
        let differing: Vec<usize> = (0..CONTROL_LEN)
            .filter(|&i| bytes[i] != current[i])
            .collect();
        assert!(
            differing
                .iter()
                .all(|&i| (VERSION_AT..VERSION_AT + 8).contains(&i)),
            "{name}: bytes {differing:?} differ"
        );
        assert_eq!(check_control_file(&bytes), Ok(version), "{name}");

        let dir = tempfile::Builder::new()
            .prefix("brain-core-fixtures")
            .tempdir_in("/dev/shm")
            .expect("a directory in /dev/shm");
        let root = dir.path().join("store");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .expect("the store directory");
        let ctl = root.join("brain.ctl");
        fs::write(&ctl, &bytes).expect("write brain.ctl");
        fs::set_permissions(&ctl, fs::Permissions::from_mode(0o600)).expect("chmod");
        let store = Store::open(&root).expect("an older store opens");
        assert_eq!(
            fs::read(store.control_path()).expect("brain.ctl"),
            current,
            "{name} was not upgraded"
        );
    }
}

#[test]
fn a_new_store_writes_the_control_file_and_object_files_as_pinned() {
    let current = golden("control_v4.bin", &new_control_file());
    let dir = tempfile::Builder::new()
        .prefix("brain-core-fixtures")
        .tempdir_in("/dev/shm")
        .expect("a directory in /dev/shm");
    let root = dir.path().join("store");
    let store = Store::builder()
        .path(&root)
        .small_object_table(false)
        .open()
        .expect("a store");
    assert_eq!(
        fs::read(root.join("brain.ctl")).expect("brain.ctl"),
        current
    );

    // An object file lies at ns/<namespace dir>/<key>, holds the header
    // then the payload, and the namespace directory names its namespace.
    let (ns, name) = ("golden", "日本語/données/🧠 name");
    let payload = b"some payload bytes";
    let meta = store
        .put(
            ns,
            name,
            &Payload::bytes(payload)
                .with_codec(Codec::Text)
                .with_description("desc"),
        )
        .expect("put");
    let ns_dir = root.join("ns").join(namespace_dir_name(ns));
    assert_eq!(
        fs::read(ns_dir.join(".namespace")).expect(".namespace"),
        ns.as_bytes()
    );
    let file = fs::read(ns_dir.join(ObjectKey::new(ns, name).to_hex())).expect("the object file");
    let header = Header::decode(&file).expect("a header");
    assert_eq!(header.codec, Codec::Text);
    assert_eq!(header.key, ObjectKey::new(ns, name));
    assert_eq!((&*header.namespace, &*header.name), (ns, name));
    assert_eq!(header.description, "desc");
    assert_eq!(header.payload_len, payload.len() as u64);
    let header_len = header.encoded_len();
    assert_eq!(file[..header_len], header.encode()[..]);
    assert_eq!(&file[header_len..], payload);
    assert_eq!(meta.stored_size, 4096);
}

// ---------------------------------------------------------------- Arrow

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

#[test]
fn arrow_payload_fixture_still_decodes() {
    // Arrow IPC bytes are arrow-rs's to choose, so this fixture is only
    // decoded: a payload an earlier build wrote must still be read.
    let (schema, batch) = arrow_batch();
    let name = "arrow_table.arrow";
    let bytes = if writing() {
        let encoded =
            brain_core::format::arrow::encode(&schema, std::slice::from_ref(&batch)).expect("IPC");
        golden(name, &encoded)
    } else {
        read_fixture(name)
    };
    let (decoded_schema, batches) =
        brain_core::format::arrow::decode(&Buffer::from_vec(bytes)).expect("the fixture decodes");
    assert_eq!(decoded_schema, schema);
    assert_eq!(batches, vec![batch]);
}
