//! brain-persist against real stores (temporary directories under /dev/shm)
//! and real dumps (temporary directories under /tmp), all removed when a
//! test ends, pass or fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{
    Codec, NdArrayMeta, ObjectStore, ObjectStoreExt, Payload, Store, HOST_CACHE_NAMESPACE_PREFIX,
};
use brain_mock::{FaultPlan, IoFault, MockStore, When};
use brain_persist::{
    auto_restore, dump, list_dump, restore, spawn_sync, verify_dump, DumpKind, DumpOptions, Error,
    OnConflict, Progress, RestoreOptions, SyncHandle, SyncOptions, SyncStats,
};
use xxhash_rust::xxh3::xxh3_64;

/// Opens the store at `path` and restores it from `persist` when it is empty.
fn open_with_persistence(path: impl AsRef<Path>, persist: &Path) -> Result<Store, Error> {
    let store = Store::open(path.as_ref()).expect("a store");
    auto_restore(&store, persist, &Progress::Hidden)?;
    Ok(store)
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store under /dev/shm and a directory for dumps under /tmp.
struct Env {
    shm: tempfile::TempDir,
    disk: tempfile::TempDir,
    store: Store,
}

impl Env {
    fn new() -> Env {
        let shm = tempfile::Builder::new()
            .prefix("brain-persist-test")
            .tempdir_in("/dev/shm")
            .expect("a directory in /dev/shm");
        let disk = tempfile::Builder::new()
            .prefix("brain-persist-test")
            .tempdir_in("/tmp")
            .expect("a directory in /tmp");
        let store = Store::open(shm.path().join("store")).expect("a store");
        Env { shm, disk, store }
    }

    fn store_path(&self) -> PathBuf {
        self.shm.path().join("store")
    }

    /// Another, empty store beside the first.
    fn other_store(&self, name: &str) -> Store {
        Store::open(self.shm.path().join(name)).expect("a store")
    }

    fn dump_path(&self, name: &str) -> PathBuf {
        self.disk.path().join(name)
    }
}

/// Every object of a store: (namespace, name) -> (codec, description, bytes).
type Snapshot = BTreeMap<(String, String), (Codec, String, Vec<u8>)>;

fn snapshot(store: &dyn ObjectStore) -> Snapshot {
    let mut out = BTreeMap::new();
    for ns in store.namespaces().unwrap() {
        for meta in store.list(&ns).unwrap() {
            let view = store.get(&ns, &meta.name).unwrap().unwrap();
            out.insert(
                (ns.clone(), meta.name.clone()),
                (meta.codec, meta.description.clone(), view.to_vec()),
            );
        }
    }
    out
}

fn sample_batch() -> (Arc<Schema>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Float64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..1000)),
            Arc::new(Float64Array::from_iter_values(
                (0..1000).map(|i| i as f64 * 0.5),
            )),
            Arc::new(StringArray::from_iter(
                (0..1000).map(|i| (i % 3 != 0).then(|| format!("row {i}"))),
            )),
        ],
    )
    .unwrap();
    (schema, batch)
}

/// Bytes that compress somewhat, different for each seed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 64 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> ((i % 8) * 8)) as u8 & if i % 3 == 0 { 0xff } else { 0x0f }
        })
        .collect()
}

/// Objects of every codec, with descriptions, in three namespaces.
fn fill_every_codec(store: &Store) {
    let raw = pattern(100_000, 1);
    store
        .put(
            "raw",
            "blob",
            &Payload::bytes(&raw).with_description("raw bytes"),
        )
        .unwrap();
    // Three frames: 4 MiB + 4 MiB + 1 MiB.
    let big = pattern(9 << 20, 2);
    store
        .put(
            "raw",
            "big",
            &Payload::bytes(&big).with_description("several frames"),
        )
        .unwrap();
    store.put("raw", "empty", &Payload::bytes(b"")).unwrap();
    store
        .put(
            "raw",
            "future-codec",
            &Payload::bytes(b"?").with_codec(Codec::Unknown(77)),
        )
        .unwrap();
    store
        .put(
            "docs",
            "readme",
            &Payload::bytes("héllo, wörld\n".as_bytes())
                .with_codec(Codec::Text)
                .with_description("a note"),
        )
        .unwrap();
    let (schema, batch) = sample_batch();
    store
        .put_record_batches("tables", "sales", &schema, &[batch.clone(), batch])
        .unwrap();
    let ipc = store.get("tables", "sales").unwrap().unwrap().to_vec();
    for (name, codec) in [
        ("pandas", Codec::PandasArrow),
        ("polars", Codec::PolarsArrow),
    ] {
        store
            .put(
                "tables",
                name,
                &Payload::bytes(&ipc)
                    .with_codec(codec)
                    .with_description("dataframe"),
            )
            .unwrap();
    }
    let matrix: Vec<u8> = (0..60u32)
        .flat_map(|i| (i as f64 / 7.0).to_le_bytes())
        .collect();
    let meta = NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![3, 4, 5],
        fortran_order: false,
    };
    store.put_ndarray("arrays", "cube", &meta, &matrix).unwrap();
    store
        .put_pickle(
            "arrays",
            "pickled",
            b"\x80\x05pickle-stream",
            &[&pattern(5000, 3), b"", &pattern(70_000, 4)],
        )
        .unwrap();
}

fn options_overwrite() -> RestoreOptions {
    RestoreOptions::new().on_conflict(OnConflict::Overwrite)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_stats(handle: &SyncHandle, what: &str, ok: impl Fn(&SyncStats) -> bool) {
    wait_for(what, Duration::from_secs(20), || ok(&handle.stats()));
}

/// The names in a dump, with their payloads' checksums.
fn dump_names(path: &Path) -> BTreeMap<(String, String), u64> {
    list_dump(path)
        .unwrap()
        .objects
        .into_iter()
        .map(|o| ((o.namespace, o.name), o.checksum))
        .collect()
}

fn entries_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- round trips

#[test]
fn every_codec_round_trips_with_names_and_descriptions() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let before = snapshot(&env.store);
    let path = env.dump_path("dump");
    let report = dump(&env.store, &path, &DumpOptions::new())?;
    assert_eq!(report.objects, before.len() as u64);
    assert_eq!(report.namespaces, 4);
    assert!(report.compressed_bytes < report.payload_bytes);

    let info = list_dump(&path)?;
    assert_eq!(info.kind, DumpKind::Dump);
    assert_eq!(info.generation, 1);
    assert_eq!(info.namespaces(), ["arrays", "docs", "raw", "tables"]);
    let readme = info.objects.iter().find(|o| o.name == "readme").unwrap();
    assert_eq!(
        (readme.codec, readme.description.as_str()),
        (Codec::Text, "a note")
    );
    let created = env.store.metadata("docs", "readme")?.unwrap().created;
    assert_eq!(readme.created, created);

    let other = env.other_store("restored");
    let restored = restore(&other, &path, &RestoreOptions::new())?;
    assert_eq!(restored.restored, before.len() as u64);
    assert_eq!(snapshot(&other), before);
    // The typed readers see the same values.
    let (schema, batch) = sample_batch();
    let (got_schema, batches) = other.get_record_batches("tables", "sales")?.unwrap();
    assert_eq!((got_schema, batches), (schema, vec![batch.clone(), batch]));
    let cube = other.get_ndarray("arrays", "cube")?.unwrap();
    assert_eq!(cube.meta.shape, [3, 4, 5]);
    let pickled = other.get_pickle("arrays", "pickled")?.unwrap();
    assert_eq!(pickled.pickle.as_slice(), b"\x80\x05pickle-stream");
    assert_eq!(pickled.buffers.len(), 3);
    assert_eq!(pickled.buffers[2].as_slice(), pattern(70_000, 4));
    Ok(())
}

#[test]
fn a_dump_is_readable_by_its_owner_alone() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    fill_every_codec(&env.store);
    let path = env.dump_path("dump");
    // Whatever the umask says.
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let dumped = dump(&env.store, &path, &DumpOptions::new());
    rustix::process::umask(old);
    dumped?;
    let mut dirs = vec![path.join("data")];
    dirs.extend(
        std::fs::read_dir(&path)?
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("index-")
            }),
    );
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for dir in dirs {
        let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
    Ok(())
}

/// A restore killed mid-way cannot remove the private copy of the dump's
/// index it made in the temporary directory; the next reader of a dump
/// removes the copies whose process has ended, and only those.
#[test]
fn index_copies_of_killed_readers_are_removed_by_the_next() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let path = env.dump_path("dump");
    dump(&env.store, &path, &DumpOptions::new())?;
    let mine = brain_core::owner_tag();
    let namespace = mine.split_once('~').expect("<pid>~<namespace>").1;
    let mut ended = std::process::Command::new("true").spawn()?;
    let ended_pid = ended.id();
    ended.wait()?;
    let tmp = std::env::temp_dir();
    let left = tmp.join(format!("brain-dump-index-{ended_pid}~{namespace}-killed"));
    let live = tmp.join(format!("brain-dump-index-{mine}-in-use"));
    let untagged = tmp.join(format!("brain-dump-index-untagged{}", std::process::id()));
    for dir in [&left, &live, &untagged] {
        // Made under another name and moved into place whole: the other
        // tests' dump readers may remove `left` as soon as it is there.
        let making = tmp.join(format!(
            "making-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(making.join("blobs"))?;
        std::fs::write(making.join("conf"), "left")?;
        std::fs::rename(&making, dir)?;
    }
    let listed = list_dump(&path);
    let (left_exists, live_exists, untagged_exists) =
        (left.exists(), live.exists(), untagged.exists());
    for dir in [&left, &live, &untagged] {
        let _ = std::fs::remove_dir_all(dir);
    }
    listed?;
    assert!(!left_exists, "the copy of an ended process stayed");
    assert!(live_exists, "the copy of a live process was removed");
    assert!(untagged_exists, "a copy that names no process was removed");
    Ok(())
}

#[test]
fn a_namespace_dumps_and_restores_alone() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let path = env.dump_path("tables");
    let report = dump(&env.store, &path, &DumpOptions::new().namespace("tables"))?;
    assert_eq!(report.objects, 3);
    assert_eq!(list_dump(&path)?.namespace.as_deref(), Some("tables"));

    // Missing parent directories are created.
    let whole = env.dump_path("nested/deeper/whole");
    dump(&env.store, &whole, &DumpOptions::new().level(1))?;
    let other = env.other_store("one-namespace");
    let report = restore(&other, &whole, &RestoreOptions::new().namespace("docs"))?;
    assert_eq!(report.restored, 1);
    assert_eq!(other.namespaces()?, ["docs"]);

    let err = restore(&other, &whole, &RestoreOptions::new().namespace("nope")).unwrap_err();
    assert!(
        matches!(&err, Error::NamespaceNotInDump { namespace, .. } if namespace == "nope"),
        "{err}"
    );
    let err = dump(
        &env.store,
        env.dump_path("x"),
        &DumpOptions::new().namespace("nope"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.store_error(),
            Some(brain_core::Error::NamespaceNotFound { .. })
        ),
        "{err}"
    );
    assert!(!env.dump_path("x").exists());
    Ok(())
}

#[test]
fn dumps_and_syncs_leave_a_host_cache_out() -> TestResult {
    let env = Env::new();
    let cache_ns = format!("{HOST_CACHE_NAMESPACE_PREFIX}{:032x}", 7u128);
    env.store.put_text("docs", "kept", "a user's object")?;
    env.store
        .put_text(&cache_ns, "copy", "a copy of a Redis object")?;
    // A user's namespace that only starts like one is the user's.
    env.store
        .put_text("redis-cache-sales", "q1", "a user's too")?;

    let path = env.dump_path("whole");
    let report = dump(&env.store, &path, &DumpOptions::new())?;
    assert_eq!(report.cache_namespaces_left_out, vec![cache_ns.clone()]);
    assert_eq!(report.namespaces, 2);
    let names: Vec<_> = dump_names(&path).into_keys().collect();
    assert_eq!(
        names,
        [
            ("docs".to_string(), "kept".to_string()),
            ("redis-cache-sales".to_string(), "q1".to_string())
        ]
    );
    // Named, it is dumped.
    let alone = env.dump_path("cache");
    let report = dump(&env.store, &alone, &DumpOptions::new().namespace(&cache_ns))?;
    assert_eq!(report.objects, 1);
    assert!(report.cache_namespaces_left_out.is_empty());

    let persist = env.dump_path("mirror");
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?;
    env.store
        .put_text(&cache_ns, "another", "fetched while syncing")?;
    env.store
        .put_text("docs", "later", "written while syncing")?;
    wait_stats(&sync, "the user's write", |s| s.objects_written == 3);
    let stats = sync.stop()?;
    assert_eq!(stats.mirrored_objects, 3);
    assert!(dump_names(&persist)
        .keys()
        .all(|(namespace, _)| namespace != &cache_ns));

    // After a wipe, a Redis reader may fill its cache before the service
    // starts: the store is still empty of its own objects, and restored.
    std::fs::remove_dir_all(env.store_path())?;
    let fresh = Store::open(env.store_path())?;
    fresh.put_text(&cache_ns, "copy", "cached before the restore")?;
    drop(fresh);
    let store = open_with_persistence(env.store_path(), &persist)?;
    assert_eq!(store.names("docs")?, ["kept", "later"]);
    assert_eq!(store.names("redis-cache-sales")?, ["q1"]);
    Ok(())
}

#[test]
fn progress_callbacks_count_every_byte() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let total: u64 = snapshot(&env.store)
        .values()
        .map(|v| v.2.len() as u64)
        .sum();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = {
        let seen = seen.clone();
        Progress::Callback(Arc::new(move |u| seen.lock().unwrap().push(*u)))
    };
    let path = env.dump_path("dump");
    dump(
        &env.store,
        &path,
        &DumpOptions::new().progress(progress.clone()),
    )?;
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!((last.bytes_done, last.bytes_total), (total, total));
    assert_eq!(last.objects_done, last.objects_total);
    seen.lock().unwrap().clear();
    let other = env.other_store("other");
    restore(&other, &path, &RestoreOptions::new().progress(progress))?;
    let updates = seen.lock().unwrap();
    let phases: Vec<_> = updates.iter().map(|u| u.phase).collect();
    assert!(phases.contains(&brain_persist::Phase::Verifying));
    assert_eq!(updates.last().unwrap().bytes_done, total);
    Ok(())
}

// ---------------------------------------------------------------- conflicts

#[test]
fn conflicts_fail_skip_or_overwrite() -> TestResult {
    let env = Env::new();
    env.store.put_text("ns", "a", "dumped a")?;
    env.store.put_text("ns", "b", "dumped b")?;
    let path = env.dump_path("dump");
    dump(&env.store, &path, &DumpOptions::new())?;

    let other = env.other_store("other");
    other.put_text("ns", "a", "newer a")?;
    let before = snapshot(&other);
    let err = restore(&other, &path, &RestoreOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { count: 1, name, .. } if name == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("--on-conflict"), "{err}");
    assert_eq!(snapshot(&other), before, "a refused restore writes nothing");

    let report = restore(
        &other,
        &path,
        &RestoreOptions::new().on_conflict(OnConflict::Skip),
    )?;
    assert_eq!((report.restored, report.skipped), (1, 1));
    assert_eq!(other.get_text("ns", "a")?.as_deref(), Some("newer a"));
    assert_eq!(other.get_text("ns", "b")?.as_deref(), Some("dumped b"));

    let report = restore(&other, &path, &options_overwrite())?;
    assert_eq!((report.restored, report.skipped), (2, 0));
    assert_eq!(other.get_text("ns", "a")?.as_deref(), Some("dumped a"));
    Ok(())
}

/// A restore into an empty store streams large objects into fresh pages; one
/// into a store whose pool holds replaced objects' files may reuse them.
/// Either way the values and the accounted usage are the dump's.
#[test]
fn large_objects_restore_into_fresh_and_into_pooled_files() -> TestResult {
    let env = Env::new();
    let big = pattern(9 << 20, 7);
    env.store.put("ns", "big", &Payload::bytes(&big))?;
    env.store.put_text("ns", "small", "small")?;
    let path = env.dump_path("dump");
    dump(&env.store, &path, &DumpOptions::new())?;

    let fresh = env.other_store("fresh");
    assert_eq!(fresh.usage()?.recycled, 0);
    restore(&fresh, &path, &RestoreOptions::new())?;
    assert_eq!(snapshot(&fresh), snapshot(&env.store));
    assert_eq!(fresh.usage()?.used, env.store.usage()?.used);

    let pooled = env.other_store("pooled");
    pooled.put("ns", "big", &Payload::bytes(&pattern(9 << 20, 8)))?;
    pooled.put("ns", "big", &Payload::bytes(&pattern(9 << 20, 9)))?;
    assert!(pooled.usage()?.recycled > 0, "the replaced file is pooled");
    restore(&pooled, &path, &options_overwrite())?;
    assert_eq!(snapshot(&pooled), snapshot(&env.store));
    assert_eq!(pooled.usage()?.used, env.store.usage()?.used);
    Ok(())
}

// ---------------------------------------------------------------- damaged dumps

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The payload file of the largest object, and the index's directory.
fn largest_payload(dump: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dump.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    files.pop().unwrap()
}

/// Where the payload of the object `name` lies: its pack file, the offset
/// of its frames and their length, as the dump's listing reads them.
fn packed_frames(dump: &Path, name: &str) -> (PathBuf, u64, u64) {
    let info = brain_persist::list_dump(dump).unwrap();
    let entry = info.objects.iter().find(|o| o.name == name).unwrap();
    let offset = entry.offset.expect("a small object lies in a pack file");
    (
        dump.join("data").join(&entry.file),
        offset,
        entry.compressed_size,
    )
}

fn pack_of(dump: &Path, name: &str) -> PathBuf {
    packed_frames(dump, name).0
}

fn index_dir(dump: &Path) -> PathBuf {
    std::fs::read_dir(dump)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("index-")
        })
        .unwrap()
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (at as usize).min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_dumps_are_refused_and_the_store_is_unchanged() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let good = env.dump_path("good");
    dump(&env.store, &good, &DumpOptions::new())?;
    verify_dump(&good, &Progress::Hidden)?;

    let target = env.other_store("target");
    target.put_text("raw", "blob", "already here")?;
    let before = snapshot(&target);
    let usage = target.usage()?.used;

    type Damage = fn(&Path);
    type Check = fn(&Error) -> bool;
    let cases: Vec<(&str, Damage, Check)> = vec![
        (
            "truncated payload",
            |d| {
                let file = largest_payload(d);
                let len = std::fs::metadata(&file).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            },
            |e| matches!(e, Error::TruncatedPayload { name, .. } if name == "big"),
        ),
        (
            "flipped payload byte",
            |d| {
                let file = largest_payload(d);
                let len = std::fs::metadata(&file).unwrap().len();
                flip_byte(&file, len / 2);
            },
            |e| matches!(e, Error::CorruptPayload { name, .. } | Error::ChecksumMismatch { name, .. } if name == "big"),
        ),
        (
            "missing payload",
            |d| std::fs::remove_file(largest_payload(d)).unwrap(),
            |e| matches!(e, Error::MissingPayload { name, .. } if name == "big"),
        ),
        (
            "truncated pack file",
            |d| {
                let pack = pack_of(d, "readme");
                let len = std::fs::metadata(&pack).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&pack)
                    .unwrap()
                    .set_len(len - 1)
                    .unwrap();
            },
            // The pack's last payload lost its last byte.
            |e| matches!(e, Error::TruncatedPayload { .. }),
        ),
        (
            "flipped byte in a pack file",
            |d| {
                let (pack, offset, len) = packed_frames(d, "readme");
                flip_byte(&pack, offset + len / 2);
            },
            |e| matches!(e, Error::CorruptPayload { name, .. } | Error::ChecksumMismatch { name, .. } if name == "readme"),
        ),
        (
            "missing pack file",
            |d| std::fs::remove_file(pack_of(d, "readme")).unwrap(),
            |e| matches!(e, Error::MissingPayload { .. }),
        ),
        (
            "missing manifest",
            |d| std::fs::remove_file(d.join("MANIFEST.json")).unwrap(),
            |e| matches!(e, Error::MissingManifest { .. }),
        ),
        (
            "damaged manifest",
            |d| std::fs::write(d.join("MANIFEST.json"), "{\"magic\": \"brain-dump\", ").unwrap(),
            |e| matches!(e, Error::CorruptManifest { .. }),
        ),
        (
            "future version",
            |d| {
                let path = d.join("MANIFEST.json");
                let text = std::fs::read_to_string(&path).unwrap();
                let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
                manifest["format_version"] = 7.into();
                std::fs::write(path, manifest.to_string()).unwrap();
            },
            |e| {
                matches!(
                    e,
                    Error::UnsupportedVersion {
                        found: 7,
                        supported: brain_persist::FORMAT_VERSION,
                        ..
                    }
                )
            },
        ),
        (
            "foreign manifest",
            |d| std::fs::write(d.join("MANIFEST.json"), "{\"magic\": \"zip\"}").unwrap(),
            |e| matches!(e, Error::NotADump { .. }),
        ),
        (
            "corrupted sled index",
            |d| {
                let db = index_dir(d).join("db");
                let mut bytes = std::fs::read(&db).unwrap();
                for i in (0..bytes.len()).step_by(997) {
                    bytes[i] ^= 0x5a;
                }
                std::fs::write(db, bytes).unwrap();
            },
            |e| matches!(e, Error::CorruptIndex { detail, .. } if detail.contains("db")),
        ),
        (
            "truncated sled index",
            |d| {
                let db = index_dir(d).join("db");
                let len = std::fs::metadata(&db).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&db)
                    .unwrap()
                    .set_len(len / 3)
                    .unwrap();
            },
            |e| matches!(e, Error::CorruptIndex { .. }),
        ),
        (
            "missing sled index",
            |d| std::fs::remove_dir_all(index_dir(d)).unwrap(),
            |e| matches!(e, Error::CorruptIndex { detail, .. } if detail.contains("missing")),
        ),
    ];
    for (what, damage, check) in cases {
        let copy = env.dump_path(&what.replace(' ', "-"));
        copy_dir(&good, &copy);
        damage(&copy);
        let err = restore(&target, &copy, &options_overwrite()).unwrap_err();
        assert!(check(&err), "{what}: unexpected error {err:?}");
        assert!(err.is_bad_dump(), "{what}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(&copy.display().to_string()),
            "{what}: the message names the dump: {message}"
        );
        assert_eq!(snapshot(&target), before, "{what}: the store changed");
        assert_eq!(target.usage()?.used, usage, "{what}: the usage changed");
    }

    // A directory that is not a dump at all, and one that does not exist.
    let foreign = env.dump_path("foreign");
    std::fs::create_dir(&foreign)?;
    std::fs::write(foreign.join("notes.txt"), "hello")?;
    let err = restore(&target, &foreign, &options_overwrite()).unwrap_err();
    assert!(matches!(err, Error::NotADump { .. }), "{err}");
    let err = restore(&target, env.dump_path("missing"), &options_overwrite()).unwrap_err();
    assert!(matches!(err, Error::DumpNotFound { .. }), "{err}");
    // A dump refuses to replace a foreign directory.
    let err = dump(&env.store, &foreign, &DumpOptions::new()).unwrap_err();
    assert!(matches!(err, Error::RefusedTarget { .. }), "{err}");
    assert_eq!(entries_in(&foreign), ["notes.txt"]);
    // A final name that is not UTF-8 is said to be that.
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = foreign.with_file_name(std::ffi::OsStr::from_bytes(b"\xffd"));
    let err = dump(&env.store, &not_utf8, &DumpOptions::new()).unwrap_err();
    assert!(err.to_string().contains("is not UTF-8"), "{err}");
    assert_eq!(snapshot(&target), before);
    Ok(())
}

#[test]
fn swapped_frames_fail_the_checksum() -> TestResult {
    // Two frames that each decompress cleanly, in the wrong order: only
    // the whole-object checksum can tell.
    let env = Env::new();
    let mut payload = vec![1u8; 4 << 20];
    payload.extend(vec![2u8; 4 << 20]);
    env.store.put("ns", "two", &Payload::bytes(&payload))?;
    let path = env.dump_path("dump");
    dump(&env.store, &path, &DumpOptions::new())?;
    let file = largest_payload(&path);
    let bytes = std::fs::read(&file)?;
    let half = bytes.len() / 2;
    assert_eq!(bytes.len() % 2, 0, "the two frames compress alike");
    let swapped = [&bytes[half..], &bytes[..half]].concat();
    std::fs::write(&file, swapped)?;
    let target = env.other_store("target");
    let err = restore(&target, &path, &RestoreOptions::new()).unwrap_err();
    assert!(
        matches!(&err, Error::ChecksumMismatch { name, .. } if name == "two"),
        "{err:?}"
    );
    assert!(target.namespaces()?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------- capacity

#[test]
fn a_store_without_room_fails_up_front() -> TestResult {
    let env = Env::new();
    fill_every_codec(&env.store);
    let path = env.dump_path("dump");
    dump(&env.store, &path, &DumpOptions::new())?;

    let small = Store::builder()
        .path(env.shm.path().join("small"))
        .capacity(4 << 20)
        .open()?;
    small.put_text("raw", "blob", "here first")?;
    let before = snapshot(&small);
    let used = small.usage()?.used;
    let err = restore(&small, &path, &options_overwrite()).unwrap_err();
    match &err {
        Error::StoreFull {
            needed,
            free,
            used: used_then,
            capacity,
            objects,
            ..
        } => {
            assert!(needed > free, "{err}");
            assert!(*needed >= 9 << 20, "{err}");
            assert_eq!((*used_then, *capacity), (used, 4 << 20), "{err}");
            assert!(*objects > 0, "{err}");
        }
        other => panic!("expected StoreFull, got {other:?}"),
    }
    assert!(err.to_string().contains("nothing was restored"), "{err}");
    assert_eq!(snapshot(&small), before);
    assert_eq!(small.usage()?.used, used);

    // With room, it fits exactly as accounted.
    small.set_capacity(Some(64 << 20))?;
    restore(&small, &path, &options_overwrite())?;
    assert_eq!(snapshot(&small), snapshot(&env.store));
    Ok(())
}

// ---------------------------------------------------------------- atomic dumps

#[test]
fn a_failed_dump_leaves_the_previous_one_intact() -> TestResult {
    let env = Env::new();
    let path = env.dump_path("dump");
    let mock = MockStore::new();
    for i in 0..5 {
        mock.put_text("ns", &format!("old{i}"), &format!("old value {i}"))?;
    }
    dump(&mock, &path, &DumpOptions::new())?;
    let old = dump_names(&path);

    let failing =
        MockStore::with_faults(FaultPlan::new().fail_reads(When::nth(3), IoFault::Errno(5)));
    for i in 0..5 {
        failing.put_text("ns", &format!("new{i}"), &format!("new value {i}"))?;
    }
    let err = dump(&failing, &path, &DumpOptions::new()).unwrap_err();
    assert!(
        matches!(err.store_error(), Some(brain_core::Error::Io { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("new2"), "{err}");
    assert_eq!(dump_names(&path), old);
    assert_eq!(
        entries_in(env.disk.path()),
        ["dump"],
        "no temporary directory is left"
    );
    let target = env.other_store("target");
    restore(&target, &path, &RestoreOptions::new())?;
    assert_eq!(
        target.get_text("ns", "old3")?.as_deref(),
        Some("old value 3")
    );

    // A successful dump replaces it whole.
    failing.faults().clear();
    dump(&failing, &path, &DumpOptions::new())?;
    assert_eq!(
        dump_names(&path).keys().cloned().collect::<Vec<_>>(),
        (0..5)
            .map(|i| ("ns".to_owned(), format!("new{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(entries_in(env.disk.path()), ["dump"]);
    Ok(())
}

#[test]
fn leftovers_of_killed_dumps_are_removed() -> TestResult {
    let env = Env::new();
    env.store.put_text("ns", "a", "a")?;
    let path = env.dump_path("dump");
    // A pid that no process has.
    let dead = (400_000..u32::MAX)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let leftover = env.dump_path(&format!("dump.tmp-{dead}-1234"));
    std::fs::create_dir_all(leftover.join("data"))?;
    std::fs::write(leftover.join("data/partial.zst"), "x")?;
    let unrelated = env.dump_path(&format!("other.tmp-{dead}-1"));
    std::fs::create_dir(&unrelated)?;
    dump(&env.store, &path, &DumpOptions::new())?;
    assert_eq!(
        entries_in(env.disk.path()),
        ["dump".to_owned(), format!("other.tmp-{dead}-1")]
    );
    Ok(())
}

// ---------------------------------------------------------------- auto-restore

#[test]
fn a_wiped_store_restores_itself_at_open() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("persist");
    // No dump yet: a fresh start.
    let store = open_with_persistence(env.store_path(), &persist)?;
    fill_every_codec(&store);
    let before = snapshot(&store);
    dump(&store, &persist, &DumpOptions::new())?;
    drop(store);

    std::fs::remove_dir_all(env.store_path())?;
    let store = open_with_persistence(env.store_path(), &persist)?;
    assert_eq!(snapshot(&store), before);

    // A store with objects is left alone.
    store.put_text("raw", "blob", "changed")?;
    let store = open_with_persistence(env.store_path(), &persist)?;
    assert_eq!(store.get_text("raw", "blob")?.as_deref(), Some("changed"));

    // A damaged persistence directory is an error, not an empty start.
    std::fs::remove_dir_all(env.store_path())?;
    std::fs::remove_file(persist.join("MANIFEST.json"))?;
    let err = open_with_persistence(env.store_path(), &persist).unwrap_err();
    assert!(matches!(err, Error::MissingManifest { .. }), "{err}");
    Ok(())
}

// ---------------------------------------------------------------- sync

fn fast_sync() -> SyncOptions {
    SyncOptions::new()
        .interval(Duration::from_millis(200))
        .rescan(Duration::from_secs(3600))
}

#[test]
fn the_service_survives_a_restart() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    fill_every_codec(&env.store);
    let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let options = {
        let log = log.clone();
        fast_sync().log(move |line| log.lock().unwrap().push(line.to_owned()))
    };
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, options)?;
    let initial = snapshot(&env.store).len() as u64;
    assert_eq!(sync.stats().objects_written, initial);

    // Changes after the start reach the mirror.
    env.store
        .put_text("docs", "later", "written while syncing")?;
    env.store.put(
        "raw",
        "blob",
        &Payload::bytes(&pattern(1000, 9)).with_description("replaced"),
    )?;
    env.store.delete("raw", "future-codec")?;
    wait_stats(&sync, "the changes", |s| {
        s.mirrored_objects == initial && s.objects_written == initial + 2
    });
    let before = snapshot(&env.store);

    // The store is wiped (a reboot, a cleaned /dev/shm) while sync runs.
    let written = sync.stats().objects_written;
    std::fs::remove_dir_all(env.store_path())?;
    wait_stats(&sync, "the wipe to be noticed", |s| s.wipes_ignored == 1);
    assert_eq!(
        sync.stats().mirrored_objects,
        initial,
        "nothing was deleted"
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("keeping them")),
        "{:?}",
        log.lock().unwrap()
    );

    // The service starts again: every name comes back, equal.
    let store = open_with_persistence(env.store_path(), &persist)?;
    assert_eq!(snapshot(&store), before);
    // The sync sees the new store and relinks what it already has.
    wait_stats(&sync, "the restored objects to be relinked", |s| {
        s.objects_relinked == initial
    });
    assert_eq!(sync.stats().objects_written, written, "nothing rewritten");
    store.put_text("docs", "after", "after the restart")?;
    wait_stats(&sync, "a write after the restart", |s| {
        s.objects_written == written + 1
    });
    let stats = sync.stop()?;
    assert_eq!(stats.mirrored_objects, initial + 1);
    assert!(dump_names(&persist).contains_key(&("docs".into(), "after".into())));
    Ok(())
}

#[test]
fn sync_mirrors_deletions_and_removed_namespaces() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    fill_every_codec(&env.store);
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?;
    let all = dump_names(&persist);
    assert_eq!(all.len(), snapshot(&env.store).len());

    env.store.delete("docs", "readme")?;
    env.store.remove_namespace("tables")?;
    wait_stats(&sync, "the deletions", |s| s.objects_deleted == 4);
    let names = dump_names(&persist);
    assert!(!names.keys().any(|(ns, _)| ns == "tables" || ns == "docs"));
    assert_eq!(names.len(), all.len() - 4);
    assert_eq!(list_dump(&persist)?.kind, DumpKind::Sync);

    // The mirror restores to what the store holds now.
    let other = env.other_store("other");
    restore(&other, &persist, &RestoreOptions::new())?;
    assert_eq!(snapshot(&other), snapshot(&env.store));

    // A second sync into the same directory is refused.
    let err = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync()).unwrap_err();
    assert!(matches!(err, Error::SyncRunning { .. }), "{err}");
    sync.stop()?;
    Ok(())
}

/// A file a commit drops while a reader holds the mirror (a restore, a
/// listing) stays for the reader, and goes once the reader lets go, with
/// no further change in the store to make another commit.
#[test]
fn a_file_dropped_under_a_reader_goes_when_the_reader_does() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    let big = |seed| noise(3 << 20, seed);
    env.store.put("docs", "big", &Payload::bytes(&big(1)))?;
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?;
    let files = || -> BTreeSet<String> {
        std::fs::read_dir(persist.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let before = files();
    // A reader's hold on the mirror, as a restore takes it.
    let reader = std::fs::File::open(persist.join("LOCK"))?;
    rustix::fs::flock(&reader, rustix::fs::FlockOperation::LockShared)?;
    env.store.put("docs", "big", &Payload::bytes(&big(2)))?;
    let replaced = xxh3_64(&big(2));
    wait_for("the replace's commit", Duration::from_secs(20), || {
        dump_names(&persist).get(&("docs".into(), "big".into())) == Some(&replaced)
    });
    assert!(
        before.iter().all(|f| files().contains(f)),
        "a file the reader may still read went under it"
    );
    drop(reader);
    wait_for(
        "the dropped file's removal",
        Duration::from_secs(10),
        || before.iter().all(|f| !files().contains(f)),
    );
    assert_eq!(sync.stats().commits, 2, "no other commit removed it");
    sync.stop()?;
    Ok(())
}

#[test]
fn a_set_is_on_disk_within_a_second() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, SyncOptions::new())?;
    for i in 0..3 {
        let name = format!("item{i}");
        let started = Instant::now();
        env.store.put_text("ns", &name, "value")?;
        wait_for("the set to reach the disk", Duration::from_secs(5), || {
            dump_names(&persist).contains_key(&("ns".into(), name.clone()))
        });
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
    }
    sync.stop()?;
    Ok(())
}

#[test]
fn a_restarted_sync_writes_only_the_differences() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    fill_every_codec(&env.store);
    let count = snapshot(&env.store).len() as u64;
    let stats = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    assert_eq!(stats.objects_written, count);
    let mtimes = |dir: &Path| -> BTreeMap<String, SystemTime> {
        std::fs::read_dir(dir.join("data"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect()
    };
    let before = mtimes(&persist);
    let placed_before = placements(&persist);
    assert_eq!(placed_before.len() as u64, count);
    let files: BTreeSet<&String> = placed_before.values().map(|(file, _)| file).collect();
    assert_eq!(files.len(), before.len(), "no file without an entry");
    assert!(
        before.len() < count as usize,
        "small payloads share pack files: {} files for {count} objects",
        before.len()
    );

    // While no sync runs: one object changes, one goes, one is new.
    env.store
        .put_text("docs", "readme", "changed while stopped")?;
    env.store.delete("raw", "empty")?;
    env.store.put_text("docs", "new", "new while stopped")?;

    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?;
    let stats = sync.stats();
    assert_eq!(stats.objects_unchanged_at_start, count - 2);
    assert_eq!(stats.objects_written, 2);
    assert_eq!(stats.objects_deleted, 1);
    sync.stop()?;
    let after = mtimes(&persist);
    let kept: Vec<_> = before
        .iter()
        .filter(|(name, time)| after.get(*name) == Some(time))
        .collect();
    // The pack that held the changed and the deleted object holds others.
    assert_eq!(kept.len(), before.len(), "unchanged payloads untouched");
    assert_eq!(
        after.len(),
        before.len() + 1,
        "the two written share a new pack"
    );
    let placed_after = placements(&persist);
    for (key, place) in &placed_before {
        if key.1 != "readme" && key.1 != "empty" {
            assert_eq!(placed_after.get(key), Some(place), "{key:?} moved");
        }
    }
    let other = env.other_store("other");
    restore(&other, &persist, &RestoreOptions::new())?;
    assert_eq!(snapshot(&other), snapshot(&env.store));
    Ok(())
}

/// Each object of a dump, with the payload file it lies in and where.
fn placements(dump: &Path) -> BTreeMap<(String, String), (String, Option<u64>)> {
    brain_persist::list_dump(dump)
        .unwrap()
        .objects
        .into_iter()
        .map(|o| ((o.namespace, o.name), (o.file, o.offset)))
        .collect()
}

#[test]
fn a_pack_file_stays_while_an_object_in_it_is_mirrored() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    // A large object keeps the store from looking wiped when the small go.
    env.store
        .put("ns", "large", &Payload::bytes(&pattern(1 << 20, 3)))?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    let version = || brain_persist::list_dump(&persist).unwrap().format_version;
    assert_eq!(version(), 1, "no pack file yet");
    for name in ["a", "b", "c"] {
        env.store.put_text("ns", name, name)?;
    }
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    assert_eq!(version(), 2);
    let placed = placements(&persist);
    let pack = placed[&("ns".into(), "a".into())].0.clone();
    for name in ["b", "c"] {
        assert_eq!(placed[&("ns".into(), name.into())].0, pack);
    }
    let pack = persist.join("data").join(pack);

    env.store.delete("ns", "a")?;
    env.store.delete("ns", "b")?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    assert!(pack.exists(), "c still lies in it");
    let other = env.other_store("other");
    restore(&other, &persist, &RestoreOptions::new())?;
    assert_eq!(snapshot(&other), snapshot(&env.store));

    env.store.delete("ns", "c")?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    assert!(!pack.exists(), "no object lies in it any more");
    assert_eq!(
        placements(&persist).into_keys().collect::<Vec<_>>(),
        [("ns".to_owned(), "large".to_owned())]
    );
    Ok(())
}

/// `len` bytes that zstd cannot shrink.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// How a test runs `brain sync` over rounds of changes.
#[derive(Clone, Copy, PartialEq)]
enum Syncs {
    /// One sync for every round, started and stopped (the mirror reopened).
    PerRound,
    /// One sync for all rounds: each round waits for its commit.
    Running,
}

/// Six rounds of 79 payloads of 60 KiB that the next round replaces and
/// one that stays (`cold/c<round>`), mirrored by `syncs`, after `damage`
/// had its way with the mirror after round 0. Every pack keeps one payload
/// and, without compaction, its whole file. Checks after every round that
/// the packs hold less than `bound` times their payloads' bytes; returns
/// the first pack `c0` lay in and the sync's log.
fn compaction_rounds(
    env: &Env,
    syncs: Syncs,
    bound: u64,
    damage: impl Fn(&Path),
) -> Result<(String, Vec<String>), Box<dyn std::error::Error>> {
    let persist = env.dump_path("mirror");
    let pack_bytes = || -> u64 {
        std::fs::read_dir(persist.join("data"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = || {
        let log = log.clone();
        // A round is one commit: the sync writes once the store has been
        // quiet for 100 ms, and the interval, which would cut a round that
        // a loaded machine writes slowly into two commits, is long. (How
        // the rounds fall into commits decides how many compactions run,
        // which a test compares between two runs.)
        fast_sync()
            .interval(Duration::from_secs(10))
            .log(move |line| log.lock().unwrap().push(line.to_owned()))
    };
    let start = || spawn_sync(Arc::new(env.store.clone()), &persist, options());
    let mut running = None;
    let mut first_pack = None;
    for round in 0..6u64 {
        // Made before the writes, which then follow each other closely.
        let wanted: Vec<(String, Vec<u8>)> = (0..79)
            .map(|i| (format!("h{i}"), noise(60 << 10, round * 100 + i)))
            .collect();
        for (name, payload) in &wanted {
            env.store.put("hot", name, &Payload::bytes(payload))?;
        }
        let cold = noise(60 << 10, 1_000_000 + round);
        env.store
            .put("cold", &format!("c{round}"), &Payload::bytes(&cold))?;
        match syncs {
            Syncs::PerRound => start()?.stop().map(drop)?,
            Syncs::Running => {
                if running.is_none() {
                    running = Some(start()?);
                }
                let checksums: Vec<_> = wanted.iter().map(|(n, p)| (n, xxh3_64(p))).collect();
                wait_for("the round's commit", Duration::from_secs(30), || {
                    let names = dump_names(&persist);
                    names.contains_key(&("cold".into(), format!("c{round}")))
                        && checksums
                            .iter()
                            .all(|(n, sum)| names.get(&("hot".into(), n.to_string())) == Some(sum))
                });
            }
        }
        let placed = placements(&persist);
        first_pack.get_or_insert_with(|| placed[&("cold".into(), "c0".into())].0.clone());
        if round == 0 {
            damage(&persist);
        }
        let live: u64 = brain_persist::list_dump(&persist)?
            .objects
            .iter()
            .map(|o| o.compressed_size)
            .sum();
        // The packs a commit dropped go once no reader holds the mirror
        // (this test's own reads may, as the commit ends).
        let within = || pack_bytes() < bound * live;
        let started = Instant::now();
        while matches!(syncs, Syncs::Running)
            && !within()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            within(),
            "round {round}: {} bytes of packs for {live} bytes of payloads",
            pack_bytes()
        );
    }
    if let Some(sync) = running {
        sync.stop()?;
    }
    let lines = log.lock().unwrap().clone();
    Ok((first_pack.unwrap(), lines))
}

#[test]
fn a_mirror_moves_payloads_out_of_packs_that_hold_mostly_dead_ones() -> TestResult {
    for syncs in [Syncs::PerRound, Syncs::Running] {
        let env = Env::new();
        let (first_pack, log) = compaction_rounds(&env, syncs, 3, |_| {})?;
        let persist = env.dump_path("mirror");
        let c0 = &placements(&persist)[&("cold".into(), "c0".into())];
        assert_ne!(c0.0, first_pack, "c0 was moved out of the first pack");
        assert!(!persist.join("data").join(&first_pack).exists());
        assert!(
            log.iter()
                .any(|l| l.contains("pack files that held mostly")),
            "{log:?}"
        );
        let other = env.other_store("other");
        restore(&other, &persist, &RestoreOptions::new())?;
        assert_eq!(snapshot(&other), snapshot(&env.store));
    }
    Ok(())
}

#[test]
fn a_damaged_payload_stays_in_its_pack_is_reported_and_does_not_make_every_commit_compact(
) -> TestResult {
    let env = Env::new();
    let damage_c0 = |persist: &Path| {
        let (pack, offset, len) = packed_frames(persist, "c0");
        flip_byte(&pack, offset + len / 2);
    };
    // A running sync remembers which packs it could not empty (one started
    // anew finds out again, at its first compaction).
    let (first_pack, log) = compaction_rounds(&env, Syncs::Running, 4, damage_c0)?;
    let persist = env.dump_path("mirror");
    let c0 = &placements(&persist)[&("cold".into(), "c0".into())];
    assert_eq!(c0.0, first_pack, "c0 cannot move");
    assert!(persist.join("data").join(&first_pack).exists());
    assert!(
        log.iter()
            .any(|l| l.contains("\"c0\"") && l.contains("stays in pack")),
        "{log:?}"
    );
    let stays = log.iter().filter(|l| l.contains("stays in pack")).count();
    assert_eq!(stays, 1, "its pack is not read again: {log:?}");
    // Its pack's dead bytes do not count: compaction runs no more often
    // than without the damage.
    let compactions = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("pack files that held mostly"))
            .count()
    };
    let undamaged = Env::new();
    let (_, plain_log) = compaction_rounds(&undamaged, Syncs::Running, 3, |_| {})?;
    assert!(
        compactions(&log) <= compactions(&plain_log),
        "{log:?} against {plain_log:?}"
    );
    let err = restore(&env.other_store("other"), &persist, &RestoreOptions::new()).unwrap_err();
    assert!(err.to_string().contains("c0"), "{err}");
    Ok(())
}

#[test]
fn a_relinked_payload_keeps_the_pack_it_lies_in() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    env.store
        .put_text("ns", "a", "the only payload of its pack")?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    let before = placements(&persist)[&("ns".into(), "a".into())].clone();
    // The same bytes written again (as a restore does): a new creation
    // time, so the mirror relinks its entry to the payload it has.
    assert!(env.store.delete("ns", "a")?);
    env.store
        .put_text("ns", "a", "the only payload of its pack")?;
    let stats = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;
    assert_eq!((stats.objects_relinked, stats.objects_written), (1, 0));
    assert_eq!(placements(&persist)[&("ns".into(), "a".into())], before);
    assert!(persist.join("data").join(&before.0).exists());
    verify_dump(&persist, &Progress::Hidden)?;
    let other = env.other_store("other");
    restore(&other, &persist, &RestoreOptions::new())?;
    assert_eq!(snapshot(&other), snapshot(&env.store));
    Ok(())
}

#[test]
fn an_empty_store_is_not_mirrored_as_deletions_unless_asked() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    env.store.put_text("ns", "a", "a")?;
    env.store.put_text("ns", "b", "b")?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;

    let empty = env.other_store("empty");
    let sync = spawn_sync(Arc::new(empty.clone()), &persist, fast_sync())?;
    let stats = sync.stop()?;
    assert_eq!((stats.wipes_ignored, stats.mirrored_objects), (1, 2));
    assert_eq!(dump_names(&persist).len(), 2);

    let sync = spawn_sync(
        Arc::new(empty),
        &persist,
        fast_sync().mirror_deletes_on_wipe(true),
    )?;
    let stats = sync.stop()?;
    assert_eq!((stats.objects_deleted, stats.mirrored_objects), (2, 0));
    assert!(dump_names(&persist).is_empty());
    Ok(())
}

#[test]
fn a_deletion_right_after_a_wiped_store_is_restored_is_mirrored() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    env.store.put_text("ns", "a", "a")?;
    env.store.put_text("ns", "b", "b")?;
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;

    // The sync finds the store empty and keeps the mirror's objects; the
    // store is restored, and one object deleted before the sync has seen
    // the restore settle.
    let wiped = env.other_store("wiped");
    let sync = spawn_sync(Arc::new(wiped.clone()), &persist, fast_sync())?;
    restore(&wiped, &persist, &RestoreOptions::new())?;
    wiped.delete("ns", "a")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while dump_names(&persist).len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = sync.stop()?;
    assert_eq!(stats.wipes_ignored, 1);
    assert_eq!(
        dump_names(&persist).into_keys().collect::<Vec<_>>(),
        [("ns".to_owned(), "b".to_owned())],
        "the deletion of a restored object was not mirrored"
    );
    Ok(())
}

#[test]
fn a_sync_leaves_a_restore_that_is_running_to_itself() -> TestResult {
    let env = Env::new();
    let persist = env.dump_path("mirror");
    let names: Vec<String> = (0..12).map(|i| format!("o{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        env.store
            .put("ns", name, &Payload::bytes(&vec![i as u8; 6 << 20]))?;
    }
    spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?.stop()?;

    // A wiped store is restored by hand while a sync runs: the sync sees the
    // restore's mark and objects coming in, and must not take them for an
    // interrupted restore to finish (a second restore beside the first
    // would bring back what is deleted once the first is done).
    let wiped = env.other_store("wiped");
    let sync = spawn_sync(Arc::new(wiped.clone()), &persist, fast_sync())?;
    // Halfway through, the first object restored is deleted, and the sync
    // given time to see that deletion while the restore runs.
    let deleting = wiped.clone();
    let deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = deleted.clone();
    let halfway = Progress::Callback(Arc::new(move |update: &brain_persist::ProgressUpdate| {
        if update.phase == brain_persist::Phase::Restoring
            && update.objects_done == 6
            && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            deleting.delete("ns", "o00").unwrap();
            std::thread::sleep(Duration::from_millis(600));
        }
    }));
    restore(&wiped, &persist, &RestoreOptions::new().progress(halfway))?;
    assert!(deleted.load(std::sync::atomic::Ordering::SeqCst));
    let last = names.last().unwrap();
    wiped.delete("ns", last)?;
    wiped.put_text("ns", "o01", "changed")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while dump_names(&persist).contains_key(&("ns".to_owned(), last.clone()))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    sync.stop()?;
    assert!(!wiped.contains("ns", last)?, "the deleted object came back");
    assert!(
        !wiped.contains("ns", "o00")?,
        "the object deleted mid-restore came back"
    );
    assert_eq!(wiped.get_text("ns", "o01")?.as_deref(), Some("changed"));
    let mirrored = dump_names(&persist);
    assert!(!mirrored.contains_key(&("ns".to_owned(), last.clone())));
    assert!(!mirrored.contains_key(&("ns".to_owned(), "o00".to_owned())));
    Ok(())
}

#[test]
fn a_dump_is_refused_into_a_running_mirror_and_a_mirror_into_a_foreign_dir() -> TestResult {
    let env = Env::new();
    env.store.put_text("ns", "a", "a")?;
    let persist = env.dump_path("mirror");
    let sync = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync())?;
    let err = dump(&env.store, &persist, &DumpOptions::new()).unwrap_err();
    assert!(matches!(err, Error::SyncRunning { .. }), "{err}");
    sync.stop()?;
    // Once stopped, a dump may replace the mirror.
    dump(&env.store, &persist, &DumpOptions::new())?;
    assert_eq!(list_dump(&persist)?.kind, DumpKind::Dump);
    // But a sync does not take over a one-off dump, which it would make a
    // mirror of this store, deleting what the store lacks: the dump stays
    // as it was, with no file of a sync's added.
    let before = dir_listing(&persist)?;
    let err = spawn_sync(Arc::new(env.store.clone()), &persist, fast_sync()).unwrap_err();
    assert!(matches!(err, Error::NotAMirror { .. }), "{err}");
    assert!(err.to_string().contains("brain restore"), "{err}");
    assert_eq!(dir_listing(&persist)?, before);
    assert_eq!(list_dump(&persist)?.kind, DumpKind::Dump);

    let foreign = env.dump_path("foreign");
    std::fs::create_dir(&foreign)?;
    std::fs::write(foreign.join("notes.txt"), "mine")?;
    let err = spawn_sync(Arc::new(env.store.clone()), &foreign, fast_sync()).unwrap_err();
    assert!(matches!(err, Error::NotADump { .. }), "{err}");
    Ok(())
}

#[test]
fn a_dump_or_mirror_inside_the_store_is_refused() -> TestResult {
    let env = Env::new();
    env.store.put_text("default", "x", "kept")?;
    for inside in [
        env.store_path().join("backup"),
        env.store_path().join("ns").join("deeper").join("backup"),
        // Through a directory that does not exist yet, and back out of it.
        env.store_path().join("new").join("..").join("backup"),
        // Through a symbolic link from the disk into the store.
        {
            let link = env.dump_path("link");
            std::os::unix::fs::symlink(env.store_path(), &link)?;
            link.join("backup")
        },
    ] {
        let err = dump(&env.store, &inside, &DumpOptions::new()).unwrap_err();
        assert!(matches!(err, Error::RefusedTarget { .. }), "{err}");
        assert!(err.to_string().contains("inside the store"), "{err}");
        let err = spawn_sync(Arc::new(env.store.clone()), &inside, fast_sync()).unwrap_err();
        assert!(matches!(err, Error::RefusedTarget { .. }), "{err}");
        assert!(!inside.exists(), "{}", inside.display());
    }
    // Beside it, on the same tmpfs, is the user's choice.
    dump(
        &env.store,
        env.shm.path().join("beside"),
        &DumpOptions::new(),
    )?;
    Ok(())
}

// ---------------------------------------------------------------- many small objects

#[test]
fn a_million_small_objects_are_dumped_wiped_and_restored() -> TestResult {
    const COUNT: usize = 1_000_000;
    let env = Env::new();
    let value = |i: usize| format!("value {i}");
    for i in 0..COUNT {
        env.store.put_text("many", &format!("k{i:07}"), &value(i))?;
    }
    let used = env.store.usage()?.used;
    let path = env.dump_path("dump");
    let report = dump(&env.store, &path, &DumpOptions::new())?;
    assert_eq!(report.objects, COUNT as u64);
    let files = std::fs::read_dir(path.join("data"))?.count();
    assert!(
        files < 100,
        "{files} payload files for {COUNT} small objects"
    );

    // The store wiped as a reboot wipes /dev/shm, then made anew.
    std::fs::remove_dir_all(env.store_path())?;
    let store = Store::open(env.store_path())?;
    assert!(store.names("many")?.is_empty());
    let report = restore(&store, &path, &RestoreOptions::new())?;
    assert_eq!(report.restored, COUNT as u64);
    let names = store.names("many")?;
    assert_eq!(names.len(), COUNT);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("k{i:07}"));
        assert_eq!(store.get_text("many", name)?.as_deref(), Some(&*value(i)));
    }
    assert_eq!(store.usage()?.used, used, "the same accounting as before");
    Ok(())
}

/// The object file of `name` in `namespace`, under the store at `root`.
fn object_file(root: &Path, namespace: &str, name: &str) -> PathBuf {
    let key = brain_core::ObjectKey::new(namespace, name).to_hex();
    std::fs::read_dir(root.join("ns"))
        .unwrap()
        .map(|dir| dir.unwrap().path().join(&key))
        .find(|path| path.exists())
        .expect("the object's file")
}

/// An object the store holds but cannot read (its file truncated) is not
/// an object that was deleted: a dump stops and says so, rather than
/// leave it out, and a mirror keeps its copy of it.
#[test]
fn an_object_the_store_cannot_read_stops_a_dump_and_stays_in_a_mirror() -> TestResult {
    let env = Env::new();
    let mirror = env.dump_path("mirror");
    let report = pattern(100_000, 7);
    env.store.put_text("ns", "keep", "kept")?;
    env.store.put("ns", "report", &Payload::bytes(&report))?;
    spawn_sync(Arc::new(env.store.clone()), &mirror, fast_sync())?.stop()?;
    assert_eq!(dump_names(&mirror).len(), 2);

    let file = object_file(&env.store_path(), "ns", "report");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)?
        .set_len(50)?;
    assert_eq!(env.store.names("ns")?, ["keep"], "listings leave it out");
    let damaged = env.store.damaged("ns")?;
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].key, brain_core::ObjectKey::new("ns", "report"));

    let err = dump(&env.store, env.dump_path("dump"), &DumpOptions::new()).unwrap_err();
    assert!(
        matches!(err.store_error(), Some(brain_core::Error::Corrupt { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("the dump stopped"), "{err}");
    assert!(!env.dump_path("dump").exists());

    let stats = spawn_sync(Arc::new(env.store.clone()), &mirror, fast_sync())?.stop()?;
    assert_eq!(stats.objects_deleted, 0, "{stats:?}");
    assert_eq!(dump_names(&mirror).len(), 2, "the mirror keeps its copy");
    let other = env.other_store("other");
    restore(&other, &mirror, &RestoreOptions::new())?;
    assert_eq!(&*other.get("ns", "report")?.expect("restored"), &report[..]);

    // Once it is deleted, the mirror follows.
    std::fs::remove_file(&file)?;
    assert!(env.store.damaged("ns")?.is_empty());
    let stats = spawn_sync(Arc::new(env.store.clone()), &mirror, fast_sync())?.stop()?;
    assert_eq!(stats.objects_deleted, 1, "{stats:?}");
    Ok(())
}

/// The names in `dir`, sorted.
fn dir_listing(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}
