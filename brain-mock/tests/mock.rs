//! brain-mock through its public API: every fault path. (That it has the
//! same semantics as the real store is the conformance suite's to show:
//! tests/e2e/conformance.rs runs it on every backend.)

use std::io;
use std::time::{Duration, Instant};

use brain_core::{Error, ObjectStore, ObjectStoreExt, Payload};
use brain_mock::{FaultPlan, IoFault, MockStore, PutFault, When};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PAGE: u64 = 4096;

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
