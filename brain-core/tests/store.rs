//! brain-core through its public API, on a real store in a temporary directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{
    Codec, Error, NdArrayMeta, ObjectMeta, ObjectStore, ObjectStoreExt, Payload, Store,
    UnsafePathReason, WatchEvent,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("brain-core-test")
        .tempdir_in("/dev/shm")
        .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// A store whose objects are all files, for tests of the object file itself.
fn file_store() -> (tempfile::TempDir, Store) {
    let (dir, _) = store();
    let store = Store::builder()
        .path(dir.path().join("store"))
        .small_object_table(false)
        .open()
        .unwrap();
    (dir, store)
}

#[test]
fn set_get_replace_delete() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    assert!(ns.get("x")?.is_none());
    ns.set("x", b"one")?;
    assert_eq!(&*ns.get("x")?.unwrap(), b"one");
    ns.set("x", b"two, longer")?;
    assert_eq!(&*ns.get("x")?.unwrap(), b"two, longer");
    assert!(ns.contains("x")?);
    assert!(ns.delete("x")?);
    assert!(!ns.delete("x")?);
    assert!(!ns.contains("x")?);
    assert!(ns.get("x")?.is_none());
    Ok(())
}

#[test]
fn views_survive_replace_and_delete_small_and_large() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    for size in [10usize, 5_000, 300_000, 3_000_000] {
        let old: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ns.set("obj", &old)?;
        let view = ns.get("obj")?.unwrap();
        ns.set("obj", &vec![7u8; size / 2 + 1])?;
        assert_eq!(&*view, &old[..], "size {size}: view changed after replace");
        ns.delete("obj")?;
        assert_eq!(&*view, &old[..], "size {size}: view changed after delete");
    }
    Ok(())
}

#[test]
fn repeated_gets_of_a_large_object_share_one_mapping() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("n")?;
    ns.set("big", &vec![1u8; 1 << 20])?;
    let a = ns.get("big")?.unwrap();
    let b = ns.get("big")?.unwrap();
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "second get did not reuse the mapping"
    );
    ns.set("big", &vec![2u8; 1 << 20])?;
    let c = ns.get("big")?.unwrap();
    assert_ne!(a.as_ptr(), c.as_ptr());
    assert_eq!(c[0], 2, "a replaced object was served from the cache");
    Ok(())
}

#[test]
fn metadata_description_and_listing() -> TestResult {
    let (_dir, store) = store();
    let payload = Payload::bytes(b"abc").with_description("three letters");
    let meta = store.put("a", "x", &payload)?;
    assert_eq!((meta.size, meta.codec), (3, Codec::Raw));
    store.put_text("a", "t", "hello")?;
    store.put("b", "y", &Payload::bytes(b""))?;
    let meta = store.metadata("a", "x")?.unwrap();
    assert_eq!(meta.description, "three letters");
    assert_eq!(meta.namespace, "a");
    assert!(meta.created.elapsed()?.as_secs() < 60);
    assert_eq!(store.names("a")?, ["t", "x"]);
    assert_eq!(store.namespaces()?, ["a", "b"]);
    assert_eq!(store.get_text("a", "t")?.as_deref(), Some("hello"));
    assert!(store.get("b", "y")?.unwrap().is_empty());
    let err = store.get_text("a", "x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::CodecMismatch {
                found: Codec::Raw,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn namespaces_are_independent_and_removable() -> TestResult {
    let (_dir, store) = store();
    store.put("one", "k", &Payload::bytes(b"1"))?;
    store.put("two", "k", &Payload::bytes(b"2"))?;
    assert_eq!(&*store.get("one", "k")?.unwrap(), b"1");
    assert_eq!(&*store.get("two", "k")?.unwrap(), b"2");
    let used = store.usage()?.used;
    assert_eq!(store.remove_namespace("one")?, 1);
    assert!(store.usage()?.used < used);
    assert!(store.get("one", "k")?.is_none());
    assert_eq!(store.namespaces()?, ["two"]);
    let err = store.remove_namespace("one").unwrap_err();
    assert!(matches!(err, Error::NamespaceNotFound { .. }), "{err}");
    Ok(())
}

#[test]
fn strange_names_never_reach_a_path() -> TestResult {
    let (dir, store) = store();
    let long = "n".repeat(10_000);
    let names = [
        "a/b",
        "..",
        "../../etc/passwd",
        "with space",
        "🧠 brain",
        "\u{1}ctl",
        &long,
    ];
    for (i, name) in names.iter().enumerate() {
        store.put(name, name, &Payload::bytes(&[i as u8]))?;
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(&*store.get(name, name)?.unwrap(), &[i as u8]);
        assert_eq!(store.names(name)?, [name.to_string()]);
    }
    assert!(!dir.path().join("etc").exists());
    Ok(())
}

#[test]
fn empty_and_oversized_names_are_refused() {
    let (_dir, store) = store();
    for (ns, name) in [("default", ""), ("", "x")] {
        let err = store.put(ns, name, &Payload::bytes(b"x")).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
    }
    let err = store
        .get("d", &"x".repeat(brain_core::MAX_NAME_LEN + 1))
        .unwrap_err();
    assert!(err.to_string().contains("too long"), "{err}");
}

#[test]
fn capacity_is_enforced_and_leaves_nothing_behind() -> TestResult {
    let dir = tempfile::tempdir_in("/dev/shm")?;
    let store = Store::builder()
        .path(dir.path().join("s"))
        .capacity(64 * 1024)
        .open()?;
    store.put("d", "small", &Payload::bytes(&[0; 1000]))?;
    let used = store.usage()?.used;
    let err = store
        .put("d", "big", &Payload::bytes(&[0; 100_000]))
        .unwrap_err();
    match &err {
        Error::StoreFull {
            needed,
            capacity,
            filesystem_full,
            ..
        } => {
            assert!(*needed > 100_000);
            assert_eq!(*capacity, 64 * 1024);
            assert!(!filesystem_full);
        }
        other => panic!("expected StoreFull, got {other}"),
    }
    assert!(err.to_string().contains("capacity"), "{err}");
    assert_eq!(store.usage()?.used, used, "a refused write changed usage");
    assert_eq!(store.names("d")?, ["small"]);
    let stray = std::fs::read_dir(dir.path().join("s/ns"))?
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp")
        })
        .count();
    assert_eq!(stray, 0);
    // Replacing an object frees the old one's space.
    for _ in 0..100 {
        store.put("d", "small", &Payload::bytes(&[1; 20_000]))?;
    }
    assert_eq!(
        store.usage()?.used,
        5 * 4096,
        "20,000 bytes and a header take five pages"
    );
    Ok(())
}

#[test]
fn arrow_round_trip_is_zero_copy_from_the_mapping() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let n = 100_000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("f", DataType::Float64, false),
        Field::new("i", DataType::Int64, true),
        Field::new("s", DataType::Utf8, false),
        Field::new(
            "d",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
    ]));
    let dict: DictionaryArray<arrow_array::types::Int32Type> =
        (0..n).map(|i| ["red", "green", "blue"][i % 3]).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 * 0.5),
            )),
            Arc::new(Int64Array::from_iter(
                (0..n).map(|i| (i % 7 != 0).then_some(i as i64)),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("s{i}")),
            )),
            Arc::new(dict),
        ],
    )?;
    ns.set_record_batches("sales", &schema, &[batch.clone(), batch.slice(10, 20)])?;
    let view = ns.get("sales")?.unwrap();
    let (got_schema, batches) = ns.get_record_batches("sales")?.unwrap();
    assert_eq!(got_schema, schema);
    assert_eq!(batches, vec![batch.clone(), batch.slice(10, 20)]);
    let mapped = view.as_ptr() as usize..view.as_ptr() as usize + view.len();
    for column in batches[0].columns() {
        let data = column.to_data();
        for buffer in data.buffers() {
            assert!(
                mapped.contains(&(buffer.as_ptr() as usize)),
                "a column buffer was copied"
            );
        }
    }
    Ok(())
}

/// Names with the prefix brain keeps for frame parts are refused by the
/// namespace handle, for reads and writes alike, and the object level
/// (where frames keep their parts) takes them.
#[test]
fn the_namespace_handle_refuses_the_names_brain_keeps_for_frame_parts() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("d")?;
    let reserved = format!("{}mine", brain_core::frames::PART_PREFIX);
    let refused = |result: Result<(), Error>| match result {
        Err(err @ Error::ReservedName { .. }) => {
            assert!(err.to_string().contains("choose another name"), "{err}");
        }
        other => panic!("a reserved name was taken: {other:?}"),
    };
    refused(ns.set(&reserved, b"x").map(drop));
    refused(ns.set_text(&reserved, "x").map(drop));
    refused(ns.get(&reserved).map(drop));
    refused(ns.delete(&reserved).map(drop));
    refused(ns.wait_for(&reserved, Duration::ZERO).map(drop));
    assert!(store.names("d")?.is_empty(), "nothing was written");
    // Only the whole prefix is brain's.
    ns.set("\0brain-partial", b"x")?;
    store.put("d", &reserved, &Payload::bytes(b"a part"))?;
    assert_eq!(ns.names()?, ["\0brain-partial"]);
    Ok(())
}

/// A `Namespace::set` call gives no description, so the object it replaces
/// keeps its own, as Python's `brain[name] = value` does; `put` stores the
/// description its payload carries, none included.
#[test]
fn namespace_sets_keep_the_replaced_objects_description() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("d")?;
    let described = |name: &str| -> Result<ObjectMeta, Error> {
        ns.put(
            name,
            &Payload::bytes(b"first").with_description("important"),
        )
    };
    let description = |name: &str| ns.metadata(name).unwrap().unwrap().description;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])?;
    let meta = NdArrayMeta {
        dtype: "<i8".into(),
        shape: vec![1],
        fortran_order: false,
    };
    let big = vec![5u8; 2 << 20];
    type Set<'a> = &'a dyn Fn(&str) -> Result<ObjectMeta, Error>;
    let sets: [(&str, Set<'_>); 6] = [
        ("bytes", &|n| ns.set(n, b"second")),
        ("large bytes", &|n| ns.set(n, &big)),
        ("text", &|n| ns.set_text(n, "second")),
        ("table", &|n| {
            ns.set_record_batches(n, &schema, std::slice::from_ref(&batch))
        }),
        ("array", &|n| ns.set_ndarray(n, &meta, &7i64.to_le_bytes())),
        ("pickle", &|n| ns.set_pickle(n, b"\x80\x05N.", &[])),
    ];
    for (name, set) in sets {
        described(name)?;
        assert_eq!(set(name)?.description, "important", "{name}");
        assert_eq!(description(name), "important", "{name}");
    }
    // A new name gets none; an explicit put gives what it says.
    assert_eq!(ns.set_text("fresh", "x")?.description, "");
    described("explicit")?;
    ns.put("explicit", &Payload::bytes(b"again"))?;
    assert_eq!(description("explicit"), "");
    Ok(())
}

#[test]
fn ndarray_and_pickle_layouts_round_trip() -> TestResult {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..6 * 8).map(|i| i as u8).collect();
    let meta = NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![2, 3],
        fortran_order: true,
    };
    store.put_ndarray("d", "arr", &meta, &data)?;
    let got = store.get_ndarray("d", "arr")?.unwrap();
    assert_eq!(got.meta, meta);
    assert_eq!(got.data.as_slice(), &data[..]);
    assert_eq!(got.data.as_ptr() as usize % 64, 0);
    store.put_pickle("d", "pkl", b"\x80\x05stream", &[b"first", &[9; 1000]])?;
    let got = store.get_pickle("d", "pkl")?.unwrap();
    assert_eq!(got.pickle.as_slice(), b"\x80\x05stream");
    assert_eq!(got.buffers.len(), 2);
    assert_eq!(got.buffers[1].as_slice(), &[9; 1000]);
    let err = store.get_ndarray("d", "pkl").unwrap_err();
    assert!(matches!(err, Error::CodecMismatch { .. }), "{err}");
    Ok(())
}

#[test]
fn corrupt_and_future_files_give_clear_errors() -> TestResult {
    let (dir, store) = file_store();
    store.put("d", "x", &Payload::bytes(b"hello"))?;
    let ns_dir = std::fs::read_dir(dir.path().join("store/ns"))?
        .next()
        .unwrap()?
        .path();
    let file = std::fs::read_dir(&ns_dir)?
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let original = std::fs::read(&file)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;

    let mut bad = original.clone();
    bad[80] ^= 0xff; // the namespace string
    std::fs::write(&file, &bad)?;
    let err = store.get("d", "x").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    let mut future = original.clone();
    future[8] = 9;
    std::fs::write(&file, &future)?;
    let err = store.get("d", "x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );

    std::fs::write(&file, &original[..70])?;
    let err = store.get("d", "x").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    let report = store.fsck(true)?;
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.deleted, 1);
    assert!(store.get("d", "x")?.is_none());
    Ok(())
}

#[test]
fn a_corrupt_object_can_be_deleted() -> TestResult {
    // The Corrupt error advises deleting the object; that must work.
    let (dir, store) = file_store();
    store.put("d", "x", &Payload::bytes(b"hello"))?;
    let used = store.usage()?.used;
    assert!(used > 0);
    let ns_dir = std::fs::read_dir(dir.path().join("store/ns"))?
        .next()
        .unwrap()?
        .path();
    let file = std::fs::read_dir(&ns_dir)?
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&file, b"not a brain object")?;
    let err = store.get("d", "x").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(store.delete("d", "x")?);
    assert!(!file.exists());
    assert!(store.get("d", "x")?.is_none());
    assert!(!store.delete("d", "x")?);
    assert_eq!(store.usage()?.used, 0);
    Ok(())
}

#[test]
fn unsafe_store_paths_are_refused() -> TestResult {
    let dir = tempfile::tempdir_in("/dev/shm")?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"")?;
    let err = Store::open(&file).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsafePath {
                reason: UnsafePathReason::NotADirectory,
                ..
            }
        ),
        "{err}"
    );
    let target = dir.path().join("target");
    std::fs::create_dir(&target)?;
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link)?;
    let err = Store::open(&link).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsafePath {
                reason: UnsafePathReason::Symlink,
                ..
            }
        ),
        "{err}"
    );
    let open = dir.path().join("open");
    std::fs::create_dir(&open)?;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))?;
    let err = Store::open(&open).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsafePath {
                reason: UnsafePathReason::TooPermissive { .. },
                ..
            }
        ),
        "{err}"
    );
    if rustix::process::getuid().is_root() {
        let other = dir.path().join("other");
        std::fs::create_dir(&other)?;
        std::os::unix::fs::chown(&other, Some(12345), None)?;
        let err = Store::open(&other).unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsafePath {
                    reason: UnsafePathReason::OwnedByOtherUser { owner: 12345, .. },
                    ..
                }
            ),
            "{err}"
        );
    }
    let fresh = Store::open(dir.path().join("fresh"))?;
    let mode = std::fs::metadata(fresh.path())?.mode() & 0o777;
    assert_eq!(mode, 0o700);
    fresh.put("d", "x", &Payload::bytes(b"1"))?;
    // A directory of someone's files (a home directory, a mistyped path)
    // is not made a store; an empty one is, and a store opens again.
    let home = dir.path().join("home");
    std::fs::create_dir(&home)?;
    std::fs::write(home.join("notes.txt"), b"mine")?;
    let err = Store::open(&home).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsafePath {
                reason: UnsafePathReason::HoldsOtherFiles,
                ..
            }
        ) && err.to_string().contains("nothing in this one was touched"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&home)?
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "the refused open added files");
    std::fs::remove_file(home.join("notes.txt"))?;
    Store::open(&home)?.put("d", "x", &Payload::bytes(b"1"))?;
    // A URL given as a path, or no path at all, makes no directory.
    let here = std::env::current_dir()?;
    for (path, expected) in [
        ("memory://x", "it is a memory:// URL"),
        ("Redis://127.0.0.1:1", "it is a redis:// URL"),
        ("", "the path is empty"),
        ("  ", "the path is empty"),
    ] {
        let err = Store::open(path).unwrap_err();
        assert!(
            matches!(err, Error::UnsafePath { .. }) && err.to_string().contains(expected),
            "{path:?}: {err}"
        );
    }
    assert!(!here.join("memory:").exists() && !here.join("Redis:").exists());
    // One that starts otherwise is a directory of that name.
    Store::open(dir.path().join("memory://x"))?;
    assert_eq!(
        &*Store::open(fresh.path())?.get("d", "x")?.unwrap(),
        b"1",
        "a store with objects opens again"
    );
    Ok(())
}

#[test]
fn watch_reports_sets_and_deletes() -> TestResult {
    let (_dir, store) = store();
    store.put("w", "before", &Payload::bytes(b"0"))?;
    let mut watcher = store.namespace("w")?.watch()?;
    let mut all = store.watch(None)?;
    store.put("w", "a", &Payload::bytes(b"1"))?;
    store.put("w", "a", &Payload::bytes(b"2"))?;
    store.delete("w", "before")?;
    store.put("other", "b", &Payload::bytes(b"3"))?;
    let wait = Some(Duration::from_secs(5));
    let set = WatchEvent::Set {
        namespace: "w".into(),
        name: "a".into(),
    };
    let deleted = WatchEvent::Deleted {
        namespace: "w".into(),
        name: "before".into(),
    };
    let mut events = vec![watcher.next_event(wait)?.unwrap()];
    while let Some(event) = watcher.next_event(Some(Duration::from_millis(200)))? {
        events.push(event);
    }
    // Two sets of one name in quick succession may be reported once: the
    // watcher reports each state it sees, and the last one always.
    events.dedup();
    assert_eq!(events, [set, deleted]);
    let mut seen = Vec::new();
    while let Some(event) = all.next_event(Some(Duration::from_millis(300)))? {
        seen.push(event);
    }
    assert!(
        seen.contains(&WatchEvent::Set {
            namespace: "other".into(),
            name: "b".into()
        }),
        "{seen:?}"
    );
    store.remove_namespace("w")?;
    assert_eq!(
        watcher.next_event(wait)?,
        Some(WatchEvent::Deleted {
            namespace: "w".into(),
            name: "a".into()
        })
    );
    Ok(())
}

#[test]
fn wait_for_returns_when_the_name_appears_or_times_out() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("d")?;
    let err = ns.wait_for("late", Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let writer = {
        let ns = ns.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            ns.set("late", b"here").unwrap();
        })
    };
    let view = ns.wait_for("late", Duration::from_secs(10))?;
    assert_eq!(&*view, b"here");
    writer.join().unwrap();

    // A small object (an entry of the table) wakes the wait as a file does,
    // not only the wait's re-check every 200 ms: most waits end within
    // 50 ms of the set (without the wake, about one in four would).
    let mut prompt = 0;
    for i in 0..10 {
        let name = format!("small{i}");
        let writer = {
            let (ns, name) = (ns.clone(), name.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let set = Instant::now();
                ns.set(&name, b"flag").unwrap();
                set
            })
        };
        ns.wait_for(&name, Duration::from_secs(10))?;
        let woke = Instant::now();
        let set = writer.join().unwrap();
        if woke.duration_since(set) < Duration::from_millis(50) {
            prompt += 1;
        }
    }
    assert!(prompt >= 7, "only {prompt} of 10 waits woke within 50 ms");
    Ok(())
}

#[test]
fn gc_removes_what_dead_writers_left() -> TestResult {
    let (dir, store) = file_store();
    store.put("d", "x", &Payload::bytes(b"1"))?;
    let ns_dir = std::fs::read_dir(dir.path().join("store/ns"))?
        .next()
        .unwrap()?
        .path();
    // pid 0x7fffffff cannot exist (pid_max is at most 2^22).
    std::fs::write(ns_dir.join(".tmp.2147483647.obj0.1"), vec![0; 5000])?;
    std::fs::write(
        ns_dir.join(format!(".tmp.{}.obj0.2", std::process::id())),
        b"live",
    )?;
    let report = store.gc()?;
    assert_eq!(report.stray_objects, 1);
    assert_eq!(report.bytes_freed, 5000);
    assert!(ns_dir
        .join(format!(".tmp.{}.obj0.2", std::process::id()))
        .exists());
    assert_eq!(&*store.get("d", "x")?.unwrap(), b"1");
    Ok(())
}

/// A damaged control file says how to get the store back, and that way
/// works: move it out, open, recount.
#[test]
fn a_damaged_control_file_is_made_again_as_its_error_says() -> TestResult {
    let (dir, store) = store();
    store.put("d", "small", &Payload::bytes(b"kept"))?;
    store.put("d", "large", &Payload::bytes(&vec![7u8; 3 << 20]))?;
    let used = store.usage()?.used;
    drop(store);
    let root = dir.path().join("store");
    let control = root.join("brain.ctl");
    let mut bytes = std::fs::read(&control)?;
    bytes[..8].copy_from_slice(b"garbage!");
    std::fs::write(&control, &bytes)?;
    let err = Store::open(&root).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. })
            && err.to_string().contains("move it out of the store")
            && err.to_string().contains("brain fsck"),
        "{err}"
    );
    // Moved aside within the store's directory, as a user may read the
    // advice: the store is still the store's.
    std::fs::rename(&control, root.join("brain.ctl.damaged"))?;
    let store = Store::open(&root)?;
    let report = store.fsck(false)?;
    assert_eq!((report.used_after, report.objects), (used, 2));
    assert_eq!(store.usage()?.used, used);
    assert_eq!(&*store.get("d", "small")?.unwrap(), b"kept");
    assert_eq!(store.get("d", "large")?.unwrap().len(), 3 << 20);
    Ok(())
}

/// A control file written over while a process has it open (by hand, or
/// by another program) is an error for that process's next write, not a
/// wait without end for a "recount" the garbage seems to announce.
#[test]
fn a_control_file_written_over_under_a_process_is_an_error_not_a_wait() -> TestResult {
    use std::os::unix::fs::FileExt;
    let (dir, store) = store();
    store.put("d", "x", &Payload::bytes(b"before"))?;
    let control = dir.path().join("store").join("brain.ctl");
    let len = std::fs::metadata(&control)?.len() as usize;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&control)?
        .write_all_at(&vec![0xff; len], 0)?;
    let (done, result) = std::sync::mpsc::channel();
    let writer = store.clone();
    std::thread::spawn(move || {
        let _ = done.send(writer.put("d", "y", &Payload::bytes(&vec![1u8; 1 << 20])));
    });
    let err = result
        .recv_timeout(Duration::from_secs(20))
        .expect("the write waited without end")
        .unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. }) && err.to_string().contains("written over"),
        "{err}"
    );
    Ok(())
}

#[test]
fn fsck_rebuilds_usage() -> TestResult {
    let (_dir, store) = store();
    store.put("d", "x", &Payload::bytes(&[0; 10_000]))?;
    store.put("e", "y", &Payload::bytes(&[0; 10]))?;
    let expected = store.usage()?.used;
    let report = store.fsck(false)?;
    assert_eq!(report.used_after, expected);
    assert_eq!(report.objects, 2);
    assert!(report.corrupt.is_empty());
    Ok(())
}

#[test]
fn streamed_writer_publishes_only_on_commit() -> TestResult {
    use std::io::Write;
    let (_dir, store) = store();
    let mut writer = store.writer("d", "s", Codec::Raw, "streamed", None)?;
    writer.write_all(b"part one, ")?;
    assert!(!store.contains("d", "s")?);
    writer.write_all(b"part two")?;
    writer.commit()?;
    assert_eq!(&*store.get("d", "s")?.unwrap(), b"part one, part two");
    let mut abandoned = store.writer("d", "gone", Codec::Raw, "", Some(100))?;
    abandoned.write_all(&[1; 100])?;
    let before = store.usage()?.used;
    drop(abandoned);
    assert!(!store.contains("d", "gone")?);
    assert!(
        store.usage()?.used < before,
        "an abandoned write kept its reservation"
    );
    Ok(())
}

#[test]
fn checksums_are_verified_by_fsck() -> TestResult {
    let dir = tempfile::tempdir_in("/dev/shm")?;
    let store = Store::builder()
        .path(dir.path().join("s"))
        .checksums(true)
        .small_object_table(false)
        .open()?;
    store.put("d", "x", &Payload::bytes(&[5; 300]))?;
    assert!(store.fsck(false)?.corrupt.is_empty());
    let ns_dir = std::fs::read_dir(dir.path().join("s/ns"))?
        .next()
        .unwrap()?
        .path();
    let file = std::fs::read_dir(&ns_dir)?
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let mut bytes = std::fs::read(&file)?;
    *bytes.last_mut().unwrap() = 6;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&file, bytes)?;
    let report = store.fsck(false)?;
    assert_eq!(report.corrupt.len(), 1);
    assert!(
        report.corrupt[0].reason.contains("checksum"),
        "{:?}",
        report.corrupt
    );
    Ok(())
}

/// How many of this process's read-only mappings (a reader's) map the
/// inode `ino` (deleted or not).
fn mapped(ino: u64) -> usize {
    mappings(ino, Some("r--s"))
}

/// How many of this process's mappings map `ino`, of the given permissions
/// (any with `None`): a writer keeps a read-write one of what it wrote.
fn mappings(ino: u64, perms: Option<&str>) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(4) == Some(&ino.to_string().as_str())
                && perms.is_none_or(|p| fields.get(1) == Some(&p))
        })
        .count()
}

/// The object file of `name` in namespace `ns`.
fn object_file(store: &Store, ns: &str, name: &str) -> std::path::PathBuf {
    let dir = std::fs::read_dir(store.path().join("ns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| std::fs::read_to_string(d.join(".namespace")).is_ok_and(|n| n == ns))
        .unwrap();
    dir.join(brain_core::ObjectKey::new(ns, name).to_hex())
}

/// The inode of the object file of `name` in namespace `ns`.
fn inode(store: &Store, ns: &str, name: &str) -> u64 {
    std::fs::metadata(object_file(store, ns, name))
        .unwrap()
        .ino()
}

#[test]
fn the_mapping_cache_lets_go_of_deleted_objects() -> TestResult {
    let (dir, reader) = store();
    let writer = Store::open(dir.path().join("store"))?; // another handle: another cache
    writer.put("d", "big", &Payload::bytes(&vec![3u8; 4 << 20]))?;
    writer.put("d", "other", &Payload::bytes(&vec![4u8; 4 << 20]))?;
    let ino = inode(&writer, "d", "big");
    drop(reader.get("d", "big")?.unwrap()); // the reader's cache keeps the mapping
    assert_eq!(mapped(ino), 1);
    writer.delete("d", "big")?;
    std::thread::sleep(Duration::from_millis(150));
    drop(reader.get("d", "other")?.unwrap()); // any later get sweeps
    assert_eq!(mapped(ino), 0, "the cache still maps a deleted object");
    assert_eq!(
        mappings(ino, None),
        0,
        "the writer still maps the object it wrote and deleted"
    );
    // A view the program holds is not the cache's to drop.
    writer.put("d", "big", &Payload::bytes(&vec![5u8; 4 << 20]))?;
    let ino = inode(&writer, "d", "big");
    let held = reader.get("d", "big")?.unwrap();
    writer.delete("d", "big")?;
    std::thread::sleep(Duration::from_millis(150));
    drop(reader.get("d", "other")?.unwrap());
    assert_eq!(held[0], 5);
    assert_eq!(mapped(ino), 1);
    drop(held);
    assert_eq!(mapped(ino), 0);
    assert_eq!(mappings(ino, None), 0);
    Ok(())
}

#[test]
fn a_streamed_write_is_refused_as_soon_as_it_passes_the_capacity() -> TestResult {
    use std::io::Write;
    let dir = tempfile::tempdir_in("/dev/shm")?;
    let store = Store::builder()
        .path(dir.path().join("s"))
        .capacity(1 << 20)
        .open()?;
    let mut writer = store.writer("d", "stream", Codec::Raw, "", None)?;
    let chunk = vec![7u8; 64 * 1024];
    let mut written = 0;
    let err = loop {
        match writer.write_payload(&chunk) {
            Ok(()) => written += chunk.len(),
            Err(err) => break err,
        }
        assert!(
            written <= 1 << 20,
            "wrote {written} bytes into a 1 MiB store"
        );
        let _ = writer.write_all(&[]);
    };
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(written < 1 << 20);
    drop(writer);
    assert_eq!(
        store.usage()?.used,
        0,
        "the refused write kept its reservation"
    );
    Ok(())
}

#[test]
fn threads_opening_a_new_store_at_once_all_succeed() -> TestResult {
    let dir = tempfile::tempdir_in("/dev/shm")?;
    for round in 0..40 {
        let path = dir.path().join(format!("store-{round}"));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(path).map(|s| s.usage().map(|u| u.used)))
            })
            .collect();
        for opener in openers {
            assert_eq!(opener.join().unwrap()??, 0, "round {round}");
        }
    }
    Ok(())
}

#[test]
fn an_unreadable_object_does_not_hide_the_rest_of_its_namespace() -> TestResult {
    let (_dir, store) = file_store();
    store.put("d", "good", &Payload::bytes(b"fine"))?;
    store.put("d", "future", &Payload::bytes(b"from a newer release"))?;
    store.put("d", "damaged", &Payload::bytes(b"soon corrupt"))?;
    for (name, offset, value) in [("future", 8usize, 2u8), ("damaged", 80, b'?')] {
        let file = object_file(&store, "d", name);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        let mut bytes = std::fs::read(&file)?;
        bytes[offset] = value;
        std::fs::write(&file, bytes)?;
    }
    assert_eq!(store.names("d")?, ["good"]);
    assert!(
        store.delete("d", "future")?,
        "an object of a newer format can be deleted"
    );
    assert!(store.delete("d", "damaged")?);
    assert_eq!(store.fsck(false)?.corrupt.len(), 0);
    Ok(())
}

#[test]
fn a_small_object_read_again_is_served_from_a_copy_until_it_changes() -> TestResult {
    let (dir, store) = file_store();
    let other = Store::builder()
        .path(dir.path().join("store"))
        .small_object_table(false)
        .open()?; // another cache, as another process has
    let ns = store.namespace("n")?;
    let elsewhere = other.namespace("n")?;
    elsewhere.set("s", b"first")?;
    let once = ns.get("s")?.unwrap();
    let twice = ns.get("s")?.unwrap();
    let thrice = ns.get("s")?.unwrap();
    assert_ne!(
        once.as_ptr(),
        twice.as_ptr(),
        "a value read once was cached"
    );
    assert_eq!(
        twice.as_ptr(),
        thrice.as_ptr(),
        "a value read again was not cached"
    );
    // Same length, written by another handle: the copy must not be served.
    elsewhere.set("s", b"secnd")?;
    assert_eq!(&*ns.get("s")?.unwrap(), b"secnd");
    assert_eq!(&*ns.get("s")?.unwrap(), b"secnd");
    elsewhere.delete("s")?;
    assert!(
        ns.get("s")?.is_none(),
        "a deleted value was served from the cache"
    );
    elsewhere.set("s", b"third")?;
    assert_eq!(&*ns.get("s")?.unwrap(), b"third");
    // This handle's own writes drop its copy too.
    ns.set("s", b"fourth")?;
    assert_eq!(&*ns.get("s")?.unwrap(), b"fourth");
    assert_eq!(&*thrice, b"first", "a view handed out earlier changed");
    Ok(())
}

#[test]
fn record_batches_store_what_arrow_encodes_and_a_full_store_refuses_them() -> TestResult {
    let dir = tempfile::tempdir_in("/dev/shm")?;
    let store = Store::builder()
        .path(dir.path().join("s"))
        .capacity(4 << 20)
        .open()?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, false),
        Field::new("s", DataType::Utf8, true),
    ]));
    let batch = |rows: usize| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64))),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 5 != 0).then(|| format!("v{i}"))),
                )),
            ],
        )
    };
    let small = [batch(10_000)?, batch(3)?];
    store.put_record_batches("t", "small", &schema, &small)?;
    let stored = store.get("t", "small")?.unwrap();
    assert_eq!(stored.meta().codec, Codec::ArrowIpc);
    assert_eq!(
        &stored[..],
        &brain_core::format::arrow::encode(&schema, &small)?[..],
        "the bytes Arrow encodes"
    );
    // Past the capacity: the store's own error, not Arrow's, and nothing kept.
    let used = store.usage()?.used;
    let err = store
        .put_record_batches("t", "big", &schema, &[batch(400_000)?])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.contains("t", "big")?);
    assert_eq!(
        store.usage()?.used,
        used,
        "the refused write kept its reservation"
    );

    // Batches that do not hold what the schema says are refused, not
    // stored to be read back as other numbers.
    let ints = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let int_batch =
        RecordBatch::try_new(ints.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
    let floats = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let two = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("y", DataType::Int64, false),
    ]));
    let nulls = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
    )?;
    for (schema, batch, says) in [
        (&floats, &int_batch, "holds Int64, the schema says Float64"),
        (&two, &int_batch, "it has 1 columns, the schema 2"),
        (&ints, &nulls, "holds nulls"),
    ] {
        let err = store
            .put_record_batches("t", "mismatched", schema, std::slice::from_ref(batch))
            .unwrap_err();
        assert!(
            matches!(err, Error::Arrow { .. }) && err.to_string().contains(says),
            "{err}"
        );
        assert!(!store.contains("t", "mismatched")?);
    }
    assert_eq!(store.usage()?.used, used);
    Ok(())
}

/// A small tmpfs mounted for one test, unmounted when dropped; `None` where
/// this process may not mount (not root, or no mount namespace rights).
struct SmallTmpfs(tempfile::TempDir);

impl SmallTmpfs {
    fn mount(size: &str) -> Option<SmallTmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("brain-small-fs")
            .tempdir_in("/tmp")
            .ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallTmpfs(dir))
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A stream of unknown length asks for room to grow into (4 MiB at first);
/// a filesystem with less room than that, but enough for the bytes, still
/// takes them.
#[test]
fn a_stream_takes_a_filesystem_with_room_for_its_bytes_but_not_more() -> TestResult {
    let Some(fs) = SmallTmpfs::mount("2m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return Ok(());
    };
    let store = Store::open(fs.0.path().join("store"))?;
    let bytes: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = store.writer("ns", "streamed", Codec::Raw, "", None)?;
    for piece in bytes.chunks(65_536) {
        writer.write_payload(piece)?;
    }
    writer.commit()?;
    assert_eq!(&*store.get("ns", "streamed")?.unwrap(), &bytes[..]);
    drop(store);
    Ok(())
}

/// A namespace removed over and over while another thread replaces objects
/// in it: whatever the interleaving, once it is gone the store counts
/// nothing (a replace used to lose the size of the object it swapped out
/// when the directory moved away between its rename and its look at it).
#[test]
fn replacing_while_the_namespace_is_removed_leaves_the_count_exact() -> TestResult {
    let (_dir, store) = store();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let payload =
                    vec![(n % 251) as u8; if n.is_multiple_of(2) { 3_000 } else { 70_000 }];
                // A removal racing the write may refuse it; only the count matters.
                let _ = store.put("x", &format!("k{}", n % 8), &Payload::bytes(&payload));
            }
        })
    };
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let _ = store.remove_namespace("x");
        std::thread::sleep(Duration::from_millis(3));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let _ = store.remove_namespace("x");
    assert_eq!(
        store.usage()?.used,
        0,
        "nothing is stored, nothing is counted"
    );
    let fsck = store.fsck(false)?;
    assert_eq!((fsck.used_before, fsck.used_after), (0, 0));
    Ok(())
}

/// A name replaced by turns with a small value (an entry of the table) and
/// a large one (a file) always exists: listings, `contains` and reads never
/// miss it while it moves.
#[test]
fn a_name_moving_between_the_table_and_a_file_is_always_found() -> TestResult {
    let (_dir, store) = store();
    store.put("n", "toggle", &Payload::bytes(b"s"))?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let large = vec![1u8; 100_000];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.put("n", "toggle", &Payload::bytes(&large)).unwrap();
                store.put("n", "toggle", &Payload::bytes(b"s")).unwrap();
            }
        })
    };
    let (mut rounds, mut misses) = (0, Vec::new());
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        rounds += 1;
        if store.names("n")? != ["toggle"] {
            misses.push("names");
        }
        if store.list("n")?.len() != 1 {
            misses.push("list");
        }
        if !store.contains("n", "toggle")? {
            misses.push("contains");
        }
        if store.metadata("n", "toggle")?.is_none() {
            misses.push("metadata");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        misses.is_empty(),
        "missed in {} of {rounds} rounds: {misses:?}",
        misses.len()
    );
    Ok(())
}

/// A watcher that falls further behind than the table keeps events for
/// still learns of the small objects deleted meanwhile: it compares what it
/// knew with the table, as an overflowed inotify queue is rescanned.
#[test]
fn a_watcher_far_behind_still_reports_what_was_deleted() -> TestResult {
    let (_dir, store) = store();
    store.put("w", "kept", &Payload::bytes(b"k"))?;
    let mut watcher = store.namespace("w")?.watch()?;
    for i in 0..5 {
        store.put("w", &format!("a{i}"), &Payload::bytes(b"1"))?;
    }
    // Read: the watcher knows them.
    let mut sets = 0;
    while watcher
        .next_event(Some(Duration::from_millis(300)))?
        .is_some()
    {
        sets += 1;
    }
    assert_eq!(sets, 5);
    for i in 0..5 {
        store.delete("w", &format!("a{i}"))?;
    }
    store.delete("w", "kept")?;
    // More events than the table keeps (65,536), none of them read yet.
    for i in 0..66_000u32 {
        store.put("w", "x", &Payload::bytes(&i.to_le_bytes()))?;
    }
    let mut deleted = std::collections::BTreeSet::new();
    while let Some(event) = watcher.next_event(Some(Duration::from_millis(500)))? {
        if let WatchEvent::Deleted { name, .. } = event {
            deleted.insert(name);
        }
    }
    let expected: std::collections::BTreeSet<String> = (0..5)
        .map(|i| format!("a{i}"))
        .chain(["kept".to_owned()])
        .collect();
    assert_eq!(deleted, expected);
    Ok(())
}

/// New large objects (written by `pwrite` through a stage of one checksum
/// chunk) and replacing ones (through a mapping) hold their bytes and a
/// checksum that verifies, whatever the cut of the pieces: ending on a
/// chunk's last byte, one past it, gathered in small pieces, filled in
/// place, with and without a length given.
#[test]
fn large_objects_in_any_cut_hold_their_bytes_and_checksum() -> TestResult {
    use brain_core::format::checksum::payload_checksum;
    use brain_core::SharedBytes;
    let (_dir, store) = store();
    const MIB: usize = 1 << 20;
    let sizes = [64 * 1024 + 1, MIB - 1, MIB, MIB + 1, 2 * MIB, 3 * MIB + 333];
    for (s, &size) in sizes.iter().enumerate() {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 + s) as u8).collect();
        for (c, cut) in [size, 4096, 1000, 777, MIB].into_iter().enumerate() {
            for replace in [false, true] {
                let name = format!("{size}.{c}");
                if replace {
                    store.put("d", &name, &Payload::bytes(b"an object to replace"))?;
                }
                let expected = (c % 2 == 0).then_some(size as u64);
                let mut writer = store.writer("d", &name, Codec::Raw, "", expected)?;
                let pieces: Vec<&[u8]> = bytes.chunks(cut).collect();
                match c % 3 {
                    0 => {
                        for piece in &pieces {
                            writer.write_payload(piece)?;
                        }
                    }
                    1 => {
                        let shared: Vec<SharedBytes<'_>> =
                            pieces.iter().map(|p| SharedBytes::from(*p)).collect();
                        writer.write_gathered(&shared)?;
                    }
                    _ => {
                        for piece in &pieces {
                            let mut at = 0;
                            writer.write_with(piece.len() as u64, |dst| {
                                dst.copy_from_slice(&piece[at..at + dst.len()]);
                                at += dst.len();
                                Ok(())
                            })?;
                        }
                    }
                }
                if replace {
                    // Taken before the commit, the checksum is the one stored,
                    // and the payload is final.
                    assert!(writer.hashes_as_it_writes());
                    let taken = writer.payload_checksum()?;
                    assert_eq!(taken, Some(payload_checksum(&bytes)), "{name}");
                    let err = writer.write_payload(b"more").unwrap_err();
                    assert!(err.to_string().contains("finished"), "{err}");
                }
                writer.commit()?;
                let view = store.get("d", &name)?.expect("committed");
                assert!(*view == bytes[..], "{name}: the bytes differ");
                assert!(
                    view.verify(store.location())?,
                    "{name}: written without a checksum"
                );
                store.delete("d", &name)?;
            }
        }
    }
    // A small object's, from the bytes it holds.
    let mut writer = store.writer("d", "small", Codec::Raw, "", None)?;
    writer.write_payload(b"twenty bytes of text")?;
    let taken = writer.payload_checksum()?;
    assert_eq!(taken, Some(payload_checksum(b"twenty bytes of text")));
    writer.commit()?;
    assert!(store
        .get("d", "small")?
        .expect("committed")
        .verify(store.location())?);
    store.delete("d", "small")?;
    assert!(store.fsck(false)?.corrupt.is_empty());
    assert_eq!(store.usage()?.used, 0, "deleted objects are still counted");
    Ok(())
}

#[test]
fn a_write_to_a_store_removed_since_it_was_opened_says_so() -> TestResult {
    let (dir, store) = store();
    store.put("n", "before", &Payload::bytes(b"1"))?;
    std::fs::remove_dir_all(dir.path().join("store"))?;
    let large = vec![1u8; 1 << 20];
    for (namespace, what, payload) in [
        ("new namespace", "small", &b"2"[..]),
        ("new namespace", "large", &large[..]),
        ("n", "large", &large[..]),
    ] {
        let err = store
            .put(namespace, what, &Payload::bytes(payload))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the store was removed since it was opened; open it again"),
            "{what}: {err}"
        );
    }
    Ok(())
}
