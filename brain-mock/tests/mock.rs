//! brain-mock through its public API: every fault path, and the same
//! semantics as the real store (one conformance suite run against both).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{
    Codec, Error, NameKind, NdArrayMeta, ObjectStore, ObjectStoreExt, Payload, Store,
    MAX_DESCRIPTION_LEN, MAX_NAME_LEN,
};
use brain_mock::{stored_size, FaultPlan, IoFault, MockStore, PutFault, When};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PAGE: u64 = 4096;

fn real_store(
    capacity: Option<u64>,
) -> Result<(tempfile::TempDir, Store), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new()
        .prefix("brain-mock-conformance")
        .tempdir_in("/dev/shm")?;
    let mut builder = Store::builder().path(dir.path().join("store"));
    if let Some(capacity) = capacity {
        builder = builder.capacity(capacity);
    }
    Ok((dir, builder.open()?))
}

fn small_batch() -> Result<(Arc<Schema>, RecordBatch), Box<dyn std::error::Error>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.25)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("bb"), None])),
        ],
    )?;
    Ok((schema, batch))
}

/// Everything an `ObjectStore` must do, checked on a fresh, unlimited store.
fn conformance(store: &dyn ObjectStore) -> TestResult {
    // A fresh store is empty.
    assert!(store.namespaces()?.is_empty());
    assert_eq!(store.usage()?.used, 0);
    assert!(store.names("conf")?.is_empty());
    assert!(store.list("conf")?.is_empty());
    assert!(store.get("conf", "a")?.is_none());
    assert!(store.metadata("conf", "a")?.is_none());
    assert!(!store.contains("conf", "a")?);
    assert!(!store.delete("conf", "a")?);
    let err = store.remove_namespace("conf").unwrap_err();
    assert!(
        matches!(&err, Error::NamespaceNotFound { namespace } if namespace == "conf"),
        "{err}"
    );

    // Names are validated with the same limits and errors.
    let err = store.put("conf", "", &Payload::bytes(b"x")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                kind: NameKind::Name,
                len: 0,
                ..
            }
        ),
        "{err}"
    );
    let err = store.put("", "a", &Payload::bytes(b"x")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                kind: NameKind::Namespace,
                ..
            }
        ),
        "{err}"
    );
    let long = "n".repeat(MAX_NAME_LEN + 1);
    let err = store.put("conf", &long, &Payload::bytes(b"x")).unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { kind: NameKind::Name, len, max, .. } if len == MAX_NAME_LEN + 1 && max == MAX_NAME_LEN),
        "{err}"
    );
    let description = "d".repeat(MAX_DESCRIPTION_LEN + 1);
    let err = store
        .put(
            "conf",
            "a",
            &Payload::bytes(b"x").with_description(&description),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                kind: NameKind::Description,
                ..
            }
        ),
        "{err}"
    );
    for err in [
        store.get("conf", "").map(|_| ()).unwrap_err(),
        store.metadata("", "a").map(|_| ()).unwrap_err(),
        store.contains("conf", "").map(|_| ()).unwrap_err(),
        store.delete("", "a").map(|_| ()).unwrap_err(),
        store.list("").map(|_| ()).unwrap_err(),
        store.names("").map(|_| ()).unwrap_err(),
        store.remove_namespace("").map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    }
    // Refused names leave nothing behind.
    assert!(store.namespaces()?.is_empty());
    assert_eq!(store.usage()?.used, 0);

    // Put returns the metadata a later read sees, accounted in whole pages.
    let meta = store.put(
        "conf",
        "b",
        &Payload::bytes(b"hello")
            .with_codec(Codec::Text)
            .with_description("a greeting"),
    )?;
    assert_eq!((meta.namespace.as_str(), meta.name.as_str()), ("conf", "b"));
    assert_eq!(meta.codec, Codec::Text);
    assert_eq!(meta.size, 5);
    assert_eq!(meta.description, "a greeting");
    assert_eq!(meta.stored_size, stored_size("conf", "b", "a greeting", 5));
    assert_eq!(store.metadata("conf", "b")?, Some(meta.clone()));
    let view = store.get("conf", "b")?.ok_or("put above")?;
    assert_eq!(&*view, b"hello");
    assert_eq!(view.meta(), &meta);
    assert_eq!(
        view.as_ptr().align_offset(64),
        0,
        "payloads are 64-byte aligned"
    );
    assert!(store.contains("conf", "b")?);
    assert_eq!(store.usage()?.used, meta.stored_size);

    // Names and namespaces are listed sorted, whatever the characters.
    let odd = ["a/b", "..", "\u{1F9E0}", "c", "a"];
    for name in odd {
        store.put("conf", name, &Payload::bytes(name.as_bytes()))?;
    }
    store.put("other", "z", &Payload::bytes(b""))?;
    store.put("\u{1F9E0}", "z", &Payload::bytes(b"brain"))?;
    let mut expected: Vec<&str> = odd.to_vec();
    expected.push("b");
    expected.sort();
    assert_eq!(store.names("conf")?, expected);
    let listed = store.list("conf")?;
    assert_eq!(
        listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        expected
    );
    assert!(listed.iter().all(|m| m.namespace == "conf"));
    assert_eq!(store.namespaces()?, ["conf", "other", "\u{1F9E0}"]);
    assert_eq!(&*store.get("conf", "a/b")?.ok_or("put above")?, b"a/b");
    let empty = store.get("other", "z")?.ok_or("put above")?;
    assert!(empty.is_empty());

    // Usage is the sum of the stored sizes.
    let total: u64 = store
        .namespaces()?
        .iter()
        .map(|ns| {
            store
                .list(ns)
                .map(|l| l.iter().map(|m| m.stored_size).sum::<u64>())
        })
        .sum::<Result<u64, _>>()?;
    assert_eq!(store.usage()?.used, total);

    // Replace is atomic, and views of the old object keep their bytes;
    // small, multi-page and mapped (large) objects alike.
    for size in [10usize, 5_000, 300_000] {
        let old: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        store.put("conf", "big", &Payload::bytes(&old))?;
        let before = store.get("conf", "big")?.ok_or("put above")?;
        let new = vec![7u8; size / 2 + 1];
        let replaced = store.put("conf", "big", &Payload::bytes(&new))?;
        assert_eq!(&*store.get("conf", "big")?.ok_or("put above")?, &new[..]);
        assert_eq!(
            &*before,
            &old[..],
            "size {size}: view changed after replace"
        );
        assert_eq!(store.metadata("conf", "big")?, Some(replaced));
        assert!(store.delete("conf", "big")?);
        assert_eq!(&*before, &old[..], "size {size}: view changed after delete");
        assert!(store.get("conf", "big")?.is_none());
    }
    assert_eq!(store.usage()?.used, total);

    // A payload given as segments is stored as their concatenation.
    let parts: [&[u8]; 3] = [b"seg", b"", b"ments"];
    store.put("conf", "parts", &Payload::segments(Codec::Raw, &parts))?;
    assert_eq!(
        &*store.get("conf", "parts")?.ok_or("put above")?,
        b"segments"
    );

    // Delete frees the bytes; an emptied namespace stays until removed.
    let before = store.usage()?.used;
    let gone = store.metadata("other", "z")?.ok_or("put above")?;
    assert!(store.delete("other", "z")?);
    assert!(!store.delete("other", "z")?);
    assert!(!store.contains("other", "z")?);
    assert_eq!(store.usage()?.used, before - gone.stored_size);
    assert!(store.names("other")?.is_empty());
    assert!(store.namespaces()?.contains(&"other".to_owned()));
    assert_eq!(store.remove_namespace("other")?, 0);

    // remove_namespace takes every object with it and frees their bytes.
    let count = store.names("conf")?.len() as u64;
    let freed: u64 = store.list("conf")?.iter().map(|m| m.stored_size).sum();
    let before = store.usage()?.used;
    assert_eq!(store.remove_namespace("conf")?, count);
    assert_eq!(store.usage()?.used, before - freed);
    assert!(store.get("conf", "b")?.is_none());
    assert!(store.names("conf")?.is_empty());
    assert_eq!(store.namespaces()?, ["\u{1F9E0}"]);
    let err = store.remove_namespace("conf").unwrap_err();
    assert!(matches!(err, Error::NamespaceNotFound { .. }), "{err}");
    assert_eq!(&*view, b"hello", "views outlive their namespace");

    typed_calls(store)?;
    Ok(())
}

/// The typed `ObjectStoreExt` calls, through `&dyn ObjectStore`.
fn typed_calls(store: &dyn ObjectStore) -> TestResult {
    store.put_text("typed", "text", "héllo")?;
    assert_eq!(store.get_text("typed", "text")?.as_deref(), Some("héllo"));
    assert_eq!(store.get_text("typed", "missing")?, None);

    let (schema, batch) = small_batch()?;
    let meta =
        store.put_record_batches("typed", "batch", &schema, &[batch.clone(), batch.clone()])?;
    assert_eq!(meta.codec, Codec::ArrowIpc);
    let (read_schema, batches) = store
        .get_record_batches("typed", "batch")?
        .ok_or("put above")?;
    assert_eq!(read_schema, schema);
    assert_eq!(batches, vec![batch.clone(), batch]);

    let nd = NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![2, 3],
        fortran_order: false,
    };
    let data: Vec<u8> = (0..6).flat_map(|i| f64::from(i).to_le_bytes()).collect();
    store.put_ndarray("typed", "array", &nd, &data)?;
    let array = store.get_ndarray("typed", "array")?.ok_or("put above")?;
    assert_eq!(array.meta, nd);
    assert_eq!(array.data.as_slice(), &data[..]);

    let buffers: [&[u8]; 2] = [b"first buffer", b""];
    store.put_pickle("typed", "pickle", b"\x80\x05pickle", &buffers)?;
    let pickle = store.get_pickle("typed", "pickle")?.ok_or("put above")?;
    assert_eq!(pickle.pickle.as_slice(), b"\x80\x05pickle");
    assert_eq!(
        pickle
            .buffers
            .iter()
            .map(|b| b.as_slice())
            .collect::<Vec<_>>(),
        buffers
    );

    // The wrong typed read is a codec mismatch, not garbage.
    let err = store.get_text("typed", "array").unwrap_err();
    assert!(
        matches!(
            err,
            Error::CodecMismatch {
                expected: Codec::Text,
                found: Codec::NdArray,
                ..
            }
        ),
        "{err}"
    );
    let err = store.get_record_batches("typed", "text").unwrap_err();
    assert!(matches!(err, Error::CodecMismatch { .. }), "{err}");
    assert_eq!(store.remove_namespace("typed")?, 4);
    Ok(())
}

/// Capacity semantics, on a fresh store whose capacity is two pages.
fn conformance_capacity(store: &dyn ObjectStore) -> TestResult {
    assert_eq!(store.usage()?.capacity, Some(2 * PAGE));
    store.put("cap", "a", &Payload::bytes(b"first"))?;
    store.put("cap", "b", &Payload::bytes(b"second"))?;
    assert_eq!(store.usage()?.used, 2 * PAGE);
    assert_eq!(store.usage()?.free, 0);

    let err = store
        .put("cap", "c", &Payload::bytes(b"third"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                needed: PAGE,
                used,
                capacity,
                filesystem_full: false,
                ..
            } if used == 2 * PAGE && capacity == 2 * PAGE
        ),
        "{err}"
    );
    assert!(!store.contains("cap", "c")?);

    // A replace needs room for the new object before the old one goes.
    let err = store.put("cap", "a", &Payload::bytes(b"new")).unwrap_err();
    assert!(matches!(err, Error::StoreFull { .. }), "{err}");
    assert_eq!(&*store.get("cap", "a")?.ok_or("put above")?, b"first");
    assert_eq!(store.names("cap")?, ["a", "b"]);
    assert_eq!(store.usage()?.used, 2 * PAGE);

    // An object bigger than the whole capacity never fits.
    assert!(store.delete("cap", "b")?);
    let err = store
        .put("cap", "huge", &Payload::bytes(&vec![0; 3 * PAGE as usize]))
        .unwrap_err();
    assert!(
        matches!(err, Error::StoreFull { needed, .. } if needed == 4 * PAGE),
        "{err}"
    );

    // With room again, the replace goes through and frees the old object.
    store.put("cap", "a", &Payload::bytes(b"new"))?;
    assert_eq!(&*store.get("cap", "a")?.ok_or("put above")?, b"new");
    assert_eq!(store.usage()?.used, PAGE);
    Ok(())
}

#[test]
fn mock_conforms() -> TestResult {
    conformance(&MockStore::new())
}

#[test]
fn real_store_conforms() -> TestResult {
    let (_dir, store) = real_store(None)?;
    conformance(&store)
}

#[test]
fn mock_capacity_conforms() -> TestResult {
    conformance_capacity(&MockStore::with_capacity(2 * PAGE))
}

#[test]
fn real_store_capacity_conforms() -> TestResult {
    let (_dir, store) = real_store(Some(2 * PAGE))?;
    conformance_capacity(&store)
}

#[test]
fn mock_conforms_through_an_arc() -> TestResult {
    let store: Arc<dyn ObjectStore> = Arc::new(MockStore::new());
    conformance(&store)
}

// ---- Fault paths -------------------------------------------------------

#[test]
fn full_store_refuses_and_keeps_what_it_has() -> TestResult {
    let store = MockStore::with_capacity(PAGE);
    store.put_text("ns", "x", "kept")?;
    let err = store.put_text("ns", "y", "refused").unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: false,
                capacity: PAGE,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("store is full"), "{err}");
    assert_eq!(store.names("ns")?, ["x"]);
    // Raising the capacity at run time lets the write through.
    store.set_capacity(Some(2 * PAGE))?;
    store.put_text("ns", "y", "accepted")?;
    // Lowering it keeps what is stored but refuses more.
    store.set_capacity(Some(PAGE))?;
    assert_eq!(store.names("ns")?, ["x", "y"]);
    let err = store.put_text("ns", "z", "refused").unwrap_err();
    assert!(matches!(err, Error::StoreFull { .. }), "{err}");
    store.set_capacity(None)?;
    store.put_text("ns", "z", "accepted")?;
    assert_eq!(store.usage()?.capacity, None);
    Ok(())
}

#[test]
fn filesystem_full_mode_refuses_every_put() -> TestResult {
    let store = MockStore::new();
    store.put_text("ns", "x", "kept")?;
    store.faults().set_filesystem_full(true);
    for name in ["x", "y"] {
        let err = store.put_text("ns", name, "refused").unwrap_err();
        assert!(
            matches!(
                err,
                Error::StoreFull {
                    filesystem_full: true,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("filesystem itself"), "{err}");
    }
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("kept"));
    assert!(!store.contains("ns", "y")?);
    let usage = store.usage()?;
    assert_eq!(usage.free, 0);
    assert_eq!(usage.used, PAGE);
    store.faults().set_filesystem_full(false);
    store.put_text("ns", "y", "accepted")?;
    assert_eq!(store.faults().injected(), 2);
    Ok(())
}

#[test]
fn a_small_filesystem_fills_up_on_its_own() -> TestResult {
    let store = MockStore::builder().filesystem_size(2 * PAGE).build();
    store.put_text("ns", "a", "1")?;
    store.put_text("ns", "b", "2")?;
    let err = store.put_text("ns", "c", "3").unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: true,
                used,
                capacity,
                ..
            } if used == 2 * PAGE && capacity == 2 * PAGE
        ),
        "{err}"
    );
    assert_eq!(store.usage()?.detail("filesystem_free"), Some(0));
    Ok(())
}

#[test]
fn full_fault_on_one_put() -> TestResult {
    let store = MockStore::with_faults(FaultPlan::new().fail_puts(
        When::object("ns", "x").only_nth(2),
        PutFault::Full {
            filesystem_full: false,
        },
    ));
    store.put_text("ns", "x", "one")?;
    let err = store.put_text("ns", "x", "two").unwrap_err();
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
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("one"));
    store.put_text("ns", "x", "three")?;
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("three"));
    Ok(())
}

#[test]
fn io_error_on_the_nth_write_leaves_the_old_value() -> TestResult {
    let store = MockStore::with_faults(
        FaultPlan::new().fail_puts(When::nth(3), PutFault::Io(IoFault::Errno(5))),
    );
    store.put_text("ns", "x", "one")?;
    store.put_text("ns", "x", "two")?;
    let used = store.usage()?.used;
    let err = store.put_text("ns", "x", "three, longer").unwrap_err();
    let Error::Io { op, source, .. } = &err else {
        return Err(format!("expected an I/O error, got {err}").into());
    };
    assert_eq!(*op, "write an object in");
    assert_eq!(source.raw_os_error(), Some(5));
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("two"));
    assert_eq!(store.usage()?.used, used);
    // Only the third put failed.
    store.put_text("ns", "x", "four")?;
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("four"));
    let counts = store.counts();
    assert_eq!((counts.puts, counts.puts_committed), (4, 3));
    Ok(())
}

#[test]
fn io_error_on_every_matching_write() -> TestResult {
    let store = MockStore::new();
    store.faults().fail_puts(
        When::matching(|ns, name| ns == "fragile" && name.starts_with("tmp")),
        PutFault::Io(IoFault::Kind(io::ErrorKind::Other)),
    );
    for i in 0..3 {
        let err = store
            .put_text("fragile", &format!("tmp{i}"), "x")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::Other),
            "{err}"
        );
    }
    store.put_text("fragile", "kept", "x")?;
    store.put_text("sturdy", "tmp0", "x")?;
    assert_eq!(store.names("fragile")?, ["kept"]);
    assert_eq!(store.faults().injected(), 3);
    store.faults().clear();
    store.put_text("fragile", "tmp0", "x")?;
    Ok(())
}

#[test]
fn a_failed_first_write_still_creates_the_namespace() -> TestResult {
    // As in the real store, whose writer makes the namespace's directory first.
    let store = MockStore::with_faults(
        FaultPlan::new().fail_puts(When::always(), PutFault::Io(IoFault::default())),
    );
    let err = store.put_text("new", "x", "lost").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(store.namespaces()?, ["new"]);
    assert!(store.names("new")?.is_empty());
    assert_eq!(store.remove_namespace("new")?, 0);
    Ok(())
}

#[test]
fn crash_before_seal_publishes_nothing_and_keeps_the_old_value() -> TestResult {
    let store = MockStore::new();
    store.put_text("ns", "x", "old")?;
    let used = store.usage()?.used;
    store
        .faults()
        .fail_puts(When::namespace("ns"), PutFault::CrashBeforeSeal);
    for name in ["x", "fresh"] {
        let err = store.put_text("ns", name, "new").unwrap_err();
        let Error::Io { op, source, .. } = &err else {
            return Err(format!("expected an I/O error, got {err}").into());
        };
        assert_eq!(*op, "seal");
        assert_eq!(source.kind(), io::ErrorKind::Interrupted);
        assert!(source.to_string().contains("before sealing"), "{err}");
    }
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("old"));
    assert!(store.get("ns", "fresh")?.is_none());
    assert!(!store.contains("ns", "fresh")?);
    assert_eq!(store.names("ns")?, ["x"]);
    assert_eq!(store.usage()?.used, used);
    assert_eq!(store.counts().puts_committed, 1);
    Ok(())
}

#[test]
fn slow_reads_take_at_least_the_delay() -> TestResult {
    let delay = Duration::from_millis(60);
    let store = MockStore::with_faults(FaultPlan::new().slow_reads(delay));
    store.put_text("ns", "x", "slow")?;

    let start = Instant::now();
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("slow"));
    assert!(start.elapsed() >= delay, "get took {:?}", start.elapsed());

    let start = Instant::now();
    assert!(store.metadata("ns", "missing")?.is_none());
    assert!(
        start.elapsed() >= delay,
        "metadata took {:?}",
        start.elapsed()
    );

    store.faults().set_read_delay(None);
    let start = Instant::now();
    store.get("ns", "x")?;
    assert!(start.elapsed() < delay, "get took {:?}", start.elapsed());
    Ok(())
}

#[test]
fn slow_reads_do_not_block_other_threads() -> TestResult {
    let delay = Duration::from_millis(200);
    let store = MockStore::new();
    store.put_text("ns", "x", "v")?;
    store.faults().set_read_delay(Some(delay));
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || store.get_text("ns", "x"))
    };
    // A writer is not held up by a sleeping reader.
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    store.put_text("ns", "y", "w")?;
    assert!(start.elapsed() < delay, "put took {:?}", start.elapsed());
    let read = reader.join().map_err(|_| "reader panicked")??;
    assert_eq!(read.as_deref(), Some("v"));
    Ok(())
}

#[test]
fn io_errors_on_reads_and_lists() -> TestResult {
    let store = MockStore::new();
    store.put_text("ns", "x", "v")?;
    store.faults().fail_reads(
        When::object("ns", "x").only_nth(1),
        IoFault::Kind(io::ErrorKind::TimedOut),
    );
    let err = store.get("ns", "x").unwrap_err();
    assert!(
        matches!(&err, Error::Io { op: "read", source, .. } if source.kind() == io::ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("v"));

    store.faults().fail_reads(
        When::always(),
        IoFault::Kind(io::ErrorKind::PermissionDenied),
    );
    let err = store.metadata("ns", "x").unwrap_err();
    assert!(
        matches!(err, Error::PermissionDenied { op: "read", .. }),
        "{err}"
    );
    store.faults().clear();

    store
        .faults()
        .fail_lists(When::namespace("ns"), IoFault::Errno(5));
    for err in [
        store.list("ns").map(|_| ()).unwrap_err(),
        store.names("ns").map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Io { op: "list", .. }), "{err}");
    }
    assert!(store.names("other")?.is_empty());
    assert_eq!(store.namespaces()?, ["ns"]);
    store.faults().fail_lists(When::always(), IoFault::Errno(5));
    let err = store.namespaces().unwrap_err();
    assert!(matches!(err, Error::Io { op: "list", .. }), "{err}");
    Ok(())
}

#[test]
fn faults_set_at_runtime_reach_every_clone() -> TestResult {
    let store = MockStore::new();
    let clone = store.clone();
    let faults = store.faults().clone();
    std::thread::spawn(move || faults.fail_puts(When::nth(1), PutFault::CrashBeforeSeal))
        .join()
        .map_err(|_| "thread panicked")?;
    let err = clone.put_text("ns", "x", "v").unwrap_err();
    assert!(matches!(err, Error::Io { op: "seal", .. }), "{err}");
    clone.put_text("ns", "x", "v")?;
    assert_eq!(store.get_text("ns", "x")?.as_deref(), Some("v"));
    assert_eq!(store.counts().puts, 2);
    Ok(())
}

#[test]
fn counters_let_callers_assert_what_happened() -> TestResult {
    let store = MockStore::new();
    store.put_text("ns", "a", "1")?;
    store.put_text("ns", "b", "2")?;
    store.get_text("ns", "a")?;
    store.get_text("ns", "missing")?;
    store.delete("ns", "a")?;
    let counts = store.counts();
    assert_eq!(
        (counts.puts, counts.gets, counts.deletes),
        (2, 2, 1),
        "{counts:?}"
    );
    store.reset_counts();
    assert_eq!(store.counts().puts, 0);
    Ok(())
}

#[test]
fn concurrent_writers_and_readers_see_whole_objects() -> TestResult {
    let store = MockStore::new();
    store.put("ns", "x", &Payload::bytes(&[0u8; 1000]))?;
    std::thread::scope(|scope| -> TestResult {
        let writers: Vec<_> = (1..=4u8)
            .map(|fill| {
                let store = &store;
                scope.spawn(move || -> Result<(), Error> {
                    for _ in 0..200 {
                        store.put("ns", "x", &Payload::bytes(&[fill; 1000]))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for _ in 0..500 {
            let view = store.get("ns", "x")?.ok_or("always present")?;
            assert!(view.iter().all(|&b| b == view[0]), "torn object");
        }
        for writer in writers {
            writer.join().map_err(|_| "writer panicked")??;
        }
        Ok(())
    })?;
    assert_eq!(store.usage()?.used, PAGE);
    assert_eq!(store.counts().puts_committed, 801);
    Ok(())
}
