//! Criterion benches of brain-core's operations, each next to its *floor*:
//! the plain system calls the operation cannot do without, measured in the
//! same run, so the ratio says what brain adds and shrugs off most of the
//! noise of a shared machine.
//!
//! Run: `cargo bench -p brain-bench --bench core` (a few minutes; it holds at
//! most about 2 GiB in /dev/shm and in memory, and removes everything). At the
//! end it prints the table of medians, floors and ratios that
//! `docs/BENCHMARKS.md` records.

#![forbid(unsafe_code)]

use std::cell::{OnceCell, RefCell};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brain_bench::{
    floor_create_write_rename, floor_fallocate_write_file, floor_map, floor_open_read,
    floor_readdir, floor_scan_headers, floor_write_file, monotonic_ns, namespace_dir, object_path,
    seeded_bytes, BenchStore, Row, Summary, Target, WatcherChild, GIB, MIB,
};
use criterion::{Criterion, SamplingMode, Throughput};

const SMALL: usize = 100;
const CACHED: usize = 64 * MIB;
const LARGE: usize = GIB;
const MANY: usize = 10_000;

const US: f64 = 1e3;
const MS: f64 = 1e6;

/// The summary table: every target of the issue, and context rows.
const ROWS: &[Row] = &[
    Row {
        operation: "get 100 B, read again (cached copy)",
        id: "get_small/brain_get_100B",
        floor: Some(("get_small/floor_open_read_close", "open+read+close")),
        target: Target::AtMostNs(2.0 * US),
    },
    Row {
        operation: "get 100 B, cache off (context)",
        id: "get_small/brain_get_100B_uncached",
        floor: Some(("get_small/floor_open_read_close", "open+read+close")),
        target: Target::None,
    },
    Row {
        operation: "get 64 MiB, repeated (mapping cache)",
        id: "get_cached/brain_get_64MiB_cached",
        floor: Some(("get_cached/floor_stat", "stat")),
        target: Target::AtMostNs(1.0 * US),
    },
    Row {
        operation: "get 1 MiB, cache off",
        id: "get_uncached/brain_get_1MiB",
        floor: Some(("get_uncached/floor_map_1MiB", "open+fstat+mmap+munmap")),
        target: Target::AtMostNs(10.0 * US),
    },
    Row {
        operation: "get 1 GiB, cache off",
        id: "get_uncached/brain_get_1GiB",
        floor: Some(("get_uncached/floor_map_1GiB", "open+fstat+mmap+munmap")),
        target: Target::AtMostNs(10.0 * US),
    },
    Row {
        operation: "get 1 GiB vs get 1 MiB, cache off (constant in size)",
        id: "get_uncached/brain_get_1GiB",
        floor: Some(("get_uncached/brain_get_1MiB", "get 1 MiB, cache off")),
        target: Target::RatioAtMost(1.2),
    },
    Row {
        operation: "floor 1 GiB vs floor 1 MiB (context)",
        id: "get_uncached/floor_map_1GiB",
        floor: Some((
            "get_uncached/floor_map_1MiB",
            "open+fstat+mmap+munmap of 1 MiB",
        )),
        target: Target::None,
    },
    Row {
        operation: "set 100 B (replacing)",
        id: "set_small/brain_set_100B",
        floor: Some((
            "set_small/floor_create_write_rename",
            "create temp+write+rename",
        )),
        target: Target::AtMostNs(8.0 * US),
    },
    Row {
        operation: "set 100 B (new name, context)",
        id: "set_small/brain_set_100B_new_name",
        floor: Some((
            "set_small/floor_create_write_rename",
            "create temp+write+rename",
        )),
        target: Target::None,
    },
    Row {
        operation: "set 1 GiB (fresh name)",
        id: "set_large/brain_set_1GiB",
        floor: Some((
            "set_large/floor_write_1GiB",
            "open+write()+close of a fresh tmpfs file",
        )),
        target: Target::RatioAtMost(1.0 / 0.9),
    },
    Row {
        operation: "set 1 GiB, replacing (recycled pages, context)",
        id: "set_large/brain_set_1GiB_replacing",
        floor: Some((
            "set_large/floor_write_1GiB",
            "open+write()+close of a fresh tmpfs file",
        )),
        target: Target::None,
    },
    Row {
        operation: "fallocate + write() 1 GiB into a fresh tmpfs file (context)",
        id: "set_large/floor_fallocate_write_1GiB",
        floor: Some((
            "set_large/floor_write_1GiB",
            "open+write()+close of a fresh tmpfs file",
        )),
        target: Target::None,
    },
    Row {
        operation: "memcpy 1 GiB into fresh memory (context)",
        id: "set_large/memcpy_1GiB_fresh",
        floor: Some((
            "set_large/floor_write_1GiB",
            "open+write()+close of a fresh tmpfs file",
        )),
        target: Target::None,
    },
    Row {
        operation: "memcpy 1 GiB into pre-faulted memory (context)",
        id: "set_large/memcpy_1GiB_prefaulted",
        floor: Some((
            "set_large/floor_write_1GiB",
            "open+write()+close of a fresh tmpfs file",
        )),
        target: Target::None,
    },
    Row {
        operation: "names() of 10,000 objects",
        id: "names/brain_names_10000",
        floor: Some((
            "names/floor_readdir_read_headers",
            "readdir + open+read+close of each",
        )),
        target: Target::AtMostNs(20.0 * MS),
    },
    Row {
        operation: "readdir of the 10,000 (context)",
        id: "names/floor_readdir_only",
        floor: None,
        target: Target::None,
    },
    Row {
        operation: "get 100 B, a Watcher::all in another process",
        id: "watcher/get_100B_with_watcher",
        floor: Some((
            "watcher/get_100B_without_watcher",
            "the same get, no watcher",
        )),
        target: Target::RatioAtMost(1.1),
    },
    Row {
        operation: "get 100 B after the watcher process ended (control)",
        id: "watcher/get_100B_after_watcher",
        floor: Some(("watcher/get_100B_without_watcher", "the same get, before")),
        target: Target::None,
    },
    Row {
        operation: "watch latency: set 100 B until the other process has the event",
        id: "watcher/set_to_event_latency",
        floor: Some(("watcher/set_100B", "the set alone")),
        target: Target::None,
    },
    Row {
        operation: "set 100 B into a new namespace (creates it)",
        id: "namespace/brain_first_set_new_namespace",
        floor: Some((
            "namespace/brain_set_100B_existing",
            "set 100 B, existing namespace",
        )),
        target: Target::None,
    },
    Row {
        operation: "remove_namespace with 1 object",
        id: "namespace/brain_remove_namespace",
        floor: Some((
            "namespace/floor_rename_unlink_rmdir",
            "rename dir + unlink 2 files + rmdir",
        )),
        target: Target::None,
    },
];

fn main() {
    let summary = Summary::new();
    let mut c = Criterion::default()
        .output_directory(summary.output_directory())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut notes = Vec::new();
    get_small(&mut c);
    get_cached(&mut c);
    get_uncached(&mut c);
    set_small(&mut c);
    set_large(&mut c);
    names(&mut c);
    watcher(&mut c, &mut notes);
    namespaces(&mut c);
    c.final_summary();

    println!("\n## Summary (medians; ratio = median / floor median)\n");
    print!("{}", summary.table(ROWS));
    for (id, what) in [
        ("set_large/brain_set_1GiB", "brain set"),
        ("set_large/brain_set_1GiB_replacing", "brain set, replacing"),
        ("set_large/floor_write_1GiB", "write() floor"),
        ("set_large/memcpy_1GiB_fresh", "memcpy, fresh memory"),
        ("set_large/memcpy_1GiB_prefaulted", "memcpy, pre-faulted"),
    ] {
        if let Some(ns) = summary.median_ns(id) {
            notes.push(format!(
                "1 GiB {what}: {:.2} GiB/s",
                LARGE as f64 / GIB as f64 / (ns / 1e9)
            ));
        }
    }
    for note in notes {
        println!("- {note}");
    }
}

// Every group builds its fixture lazily, on the first bench that runs, so a
// filtered run (`cargo bench ... -- get_small`) writes no 1 GiB object it
// does not measure. The fixture (and its store) is dropped with the group.

/// A put of a small object, once, so the benches can read it (an entry of
/// the store's table, as every small object is); and the path of the same
/// object written as a file under `<name>.file`, which the floors read.
fn small_object(bench: &BenchStore, namespace: &str, name: &str) -> PathBuf {
    bench
        .namespace(namespace)
        .set(name, &seeded_bytes(SMALL, 1))
        .expect("set the small object");
    object_file(
        bench,
        namespace,
        &format!("{name}.file"),
        &seeded_bytes(SMALL, 1),
    )
}

/// Writes `bytes` as an object file (not a table entry) and returns its path.
fn object_file(bench: &BenchStore, namespace: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let files = brain_core::Store::builder()
        .path(bench.store.path())
        .small_object_table(false)
        .open()
        .expect("open the store again");
    files
        .namespace(namespace)
        .and_then(|ns| ns.set(name, bytes))
        .expect("write the object file");
    object_path(&bench.store, namespace, name)
}

fn get_small(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            let path = small_object(&bench, "bench", "small");
            // A second handle without a cache: every get opens and reads.
            let uncached = brain_core::Store::builder()
                .path(bench.store.path())
                .mapping_cache(0)
                .open()
                .expect("open the store again")
                .namespace("bench")
                .expect("namespace");
            (bench.namespace("bench"), path, uncached, bench)
        })
    };
    let mut group = c.benchmark_group("get_small");
    group.bench_function("brain_get_100B", |b| {
        let (ns, ..) = fixture();
        b.iter(|| ns.get(black_box("small")).unwrap().unwrap())
    });
    group.bench_function("brain_get_100B_uncached", |b| {
        let (_, _, uncached, _) = fixture();
        b.iter(|| uncached.get(black_box("small")).unwrap().unwrap())
    });
    group.bench_function("floor_open_read_close", |b| {
        let (_, path, ..) = fixture();
        let mut buf = vec![0u8; 4096];
        b.iter(|| floor_open_read(black_box(path), &mut buf))
    });
    group.finish();
}

fn get_cached(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            let ns = bench.namespace("bench");
            ns.set("big", &seeded_bytes(CACHED, 2)).unwrap();
            // The first get maps the object and caches the mapping.
            assert_eq!(ns.get("big").unwrap().unwrap().len(), CACHED);
            (ns, object_path(&bench.store, "bench", "big"), bench)
        })
    };
    let mut group = c.benchmark_group("get_cached");
    group.bench_function("brain_get_64MiB_cached", |b| {
        let (ns, _, _) = fixture();
        b.iter(|| ns.get(black_box("big")).unwrap().unwrap())
    });
    group.bench_function("floor_stat", |b| {
        let (_, path, _) = fixture();
        b.iter(|| rustix::fs::stat(black_box(path)).unwrap())
    });
    group.finish();
}

fn get_uncached(c: &mut Criterion) {
    // Both objects in one store, and the two gets measured one after the
    // other, so "constant in size" compares neighbours in time.
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::with(|b| b.mapping_cache(0));
            let ns = bench.namespace("bench");
            ns.set("1MiB", &seeded_bytes(MIB, 3)).unwrap();
            ns.set("1GiB", &seeded_bytes(LARGE, 4)).unwrap(); // the input is dropped at once
            let paths = [
                object_path(&bench.store, "bench", "1MiB"),
                object_path(&bench.store, "bench", "1GiB"),
            ];
            (ns, paths, bench)
        })
    };
    let mut group = c.benchmark_group("get_uncached");
    for name in ["1MiB", "1GiB"] {
        group.bench_function(format!("brain_get_{name}"), |b| {
            let (ns, _, _) = fixture();
            b.iter(|| ns.get(black_box(name)).unwrap().unwrap())
        });
    }
    for (i, name) in ["1MiB", "1GiB"].into_iter().enumerate() {
        group.bench_function(format!("floor_map_{name}"), |b| {
            let (_, paths, _) = fixture();
            b.iter(|| floor_map(black_box(&paths[i])))
        });
    }
    group.finish();
}

fn set_small(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            let path = small_object(&bench, "bench", "small");
            // The floor writes as many bytes as brain's file holds: header and payload.
            let file_len = std::fs::metadata(&path).unwrap().len() as usize;
            (bench.namespace("bench"), seeded_bytes(file_len, 6), bench)
        })
    };
    let payload = seeded_bytes(SMALL, 5);
    let mut group = c.benchmark_group("set_small");
    group.bench_function("brain_set_100B", |b| {
        let (ns, _, _) = fixture();
        b.iter(|| ns.set(black_box("small"), black_box(&payload)).unwrap())
    });
    // A name that is new each time: nothing is replaced (the objects are
    // deleted afterwards, untimed).
    group.bench_function("brain_set_100B_new_name", |b| {
        let (ns, _, _) = fixture();
        let mut counter = 0u64;
        b.iter_custom(|iters| {
            let names: Vec<String> = (0..iters)
                .map(|_| {
                    counter += 1;
                    format!("new-{counter}")
                })
                .collect();
            let start = Instant::now();
            for name in &names {
                ns.set(name, black_box(&payload)).unwrap();
            }
            let elapsed = start.elapsed();
            for name in &names {
                ns.delete(name).unwrap();
            }
            elapsed
        })
    });
    group.bench_function("floor_create_write_rename", |b| {
        let (_, file_bytes, bench) = fixture();
        let scratch = bench.scratch();
        let target = scratch.join("target");
        b.iter(|| floor_create_write_rename(&scratch, &target, black_box(file_bytes)))
    });
    group.finish();
}

/// Times `timed` once per iteration, running `untimed` after each.
fn each(iters: u64, mut timed: impl FnMut(), mut untimed: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        timed();
        total += start.elapsed();
        untimed();
    }
    total
}

fn set_large(c: &mut Criterion) {
    // At most three copies of 1 GiB exist at once: the input, an object and,
    // while replacing, the replaced file waiting in the pool.
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            let data = seeded_bytes(LARGE, 7);
            // One untimed write first: on a VM that hands freed memory back
            // to its host, the first to take it back would pay for everyone.
            let warm = bench.scratch().join("warm");
            floor_write_file(&warm, &data);
            std::fs::remove_file(&warm).unwrap();
            (bench.namespace("bench"), data, bench)
        })
    };
    let mut group = c.benchmark_group("set_large");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(LARGE as u64));
    group.bench_function("brain_set_1GiB", |b| {
        let (ns, data, _) = fixture();
        b.iter_custom(|iters| {
            each(
                iters,
                || {
                    ns.set("big", black_box(data)).unwrap();
                },
                || {
                    ns.delete("big").unwrap();
                },
            )
        })
    });
    group.bench_function("brain_set_1GiB_replacing", |b| {
        let (ns, data, _) = fixture();
        // Criterion calls this closure once per sample: the object is made
        // once, and stays (with its replaced file in the pool) until the
        // fixture goes, so every timed set replaces it.
        if !ns.contains("replaced").unwrap() {
            ns.set("replaced", data).unwrap();
            ns.set("replaced", data).unwrap();
        }
        b.iter(|| ns.set("replaced", black_box(data)).unwrap());
    });
    group.bench_function("floor_write_1GiB", |b| {
        let (_, data, bench) = fixture();
        let file = bench.scratch().join("big");
        b.iter_custom(|iters| {
            each(
                iters,
                || floor_write_file(&file, black_box(data)),
                || std::fs::remove_file(&file).unwrap(),
            )
        })
    });
    group.bench_function("floor_fallocate_write_1GiB", |b| {
        let (_, data, bench) = fixture();
        let file = bench.scratch().join("big");
        b.iter_custom(|iters| {
            each(
                iters,
                || floor_fallocate_write_file(&file, black_box(data)),
                || std::fs::remove_file(&file).unwrap(),
            )
        })
    });
    group.bench_function("memcpy_1GiB_fresh", |b| {
        let (_, data, _) = fixture();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let mut fresh = Vec::<u8>::with_capacity(LARGE);
                fresh.extend_from_slice(black_box(data));
                total += start.elapsed();
                drop(black_box(fresh)); // untimed: the munmap
            }
            total
        })
    });
    group.bench_function("memcpy_1GiB_prefaulted", |b| {
        let (_, data, _) = fixture();
        // Filled with ones, not zeros: calloc'd memory would not be faulted in.
        let mut prefaulted = vec![1u8; LARGE];
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                prefaulted.copy_from_slice(black_box(data));
                black_box(&mut prefaulted);
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn names(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            let ns = bench.namespace("many");
            let payload = seeded_bytes(SMALL, 8);
            for i in 0..MANY {
                ns.set(&format!("object-{i:05}"), &payload).unwrap();
            }
            let dir = namespace_dir(&bench.store, "many");
            assert_eq!(ns.names().unwrap().len(), MANY);
            assert_eq!(floor_scan_headers(&dir), MANY);
            (ns, dir, bench)
        })
    };
    let mut group = c.benchmark_group("names");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("brain_names_10000", |b| {
        let (ns, _, _) = fixture();
        b.iter(|| ns.names().unwrap())
    });
    group.bench_function("floor_readdir_read_headers", |b| {
        let (_, dir, _) = fixture();
        b.iter(|| floor_scan_headers(black_box(dir)))
    });
    group.bench_function("floor_readdir_only", |b| {
        let (_, dir, _) = fixture();
        b.iter(|| floor_readdir(black_box(dir)))
    });
    group.finish();
}

fn watcher(c: &mut Criterion, notes: &mut Vec<String>) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            small_object(&bench, "bench", "small");
            (bench.namespace("bench"), bench)
        })
    };
    let child: RefCell<Option<WatcherChild>> = RefCell::new(None);
    let with_child = |f: &mut dyn FnMut(&mut WatcherChild)| {
        let (_, bench) = fixture();
        let mut child = child.borrow_mut();
        let child = child.get_or_insert_with(|| {
            let binary = Path::new(env!("CARGO_BIN_EXE_watcher"));
            WatcherChild::spawn(binary, bench.path())
        });
        f(child)
    };
    let payload = seeded_bytes(SMALL, 9);
    let mut during = None;
    let mut group = c.benchmark_group("watcher");
    // The floor of the watch latency: the set alone, before the watcher runs.
    group.bench_function("set_100B", |b| {
        let (ns, _) = fixture();
        b.iter(|| ns.set(black_box("probe"), black_box(&payload)).unwrap())
    });
    group.bench_function("get_100B_without_watcher", |b| {
        let (ns, _) = fixture();
        b.iter(|| ns.get(black_box("small")).unwrap().unwrap())
    });
    // A set of "probe" that the watcher has reported marks a point in its
    // stream of events: everything before it has been counted.
    let sync = |ns: &brain_core::Namespace, child: &mut WatcherChild| {
        ns.set("probe", &payload).unwrap();
        let (_, name) = child
            .next_event(Duration::from_secs(5))
            .expect("the watcher sees a set");
        assert_eq!(name, "probe");
        child.count()
    };
    group.bench_function("get_100B_with_watcher", |b| {
        let (ns, _) = fixture();
        let mut before = 0;
        with_child(&mut |child| before = sync(ns, child));
        b.iter(|| ns.get(black_box("small")).unwrap().unwrap());
        // No sleep here: a vCPU left idle comes back slower on this VM.
        with_child(&mut |child| {
            *during.get_or_insert(0) += sync(ns, child) - before - 1;
        });
    });
    // From just before a set to the moment the other process has the event.
    group.sample_size(50);
    group.bench_function("set_to_event_latency", |b| {
        let (ns, _) = fixture();
        with_child(&mut |child| {
            b.iter_custom(|iters| {
                child.drain();
                let mut total = 0u64;
                for _ in 0..iters {
                    let start = monotonic_ns();
                    ns.set("probe", &payload).unwrap();
                    // Skip anything the watcher saw before this set.
                    let seen = loop {
                        let (seen, name) = child
                            .next_event(Duration::from_secs(5))
                            .expect("the watcher sees the set");
                        if seen >= start {
                            assert_eq!(name, "probe");
                            break seen;
                        }
                    };
                    total += seen - start;
                }
                Duration::from_nanos(total)
            })
        })
    });
    // The same get again with the watcher gone: a control for drift in time.
    *child.borrow_mut() = None;
    group.sample_size(100);
    group.bench_function("get_100B_after_watcher", |b| {
        let (ns, _) = fixture();
        b.iter(|| ns.get(black_box("small")).unwrap().unwrap())
    });
    group.finish();
    if let Some(during) = during {
        notes.push(format!(
            "events the watcher process saw during the gets: {during} (should be 0)"
        ));
    }
}

fn namespaces(c: &mut Criterion) {
    let fixture = OnceCell::new();
    let fixture = || {
        fixture.get_or_init(|| {
            let bench = BenchStore::new();
            bench
                .namespace("existing")
                .set("x", &seeded_bytes(SMALL, 10))
                .unwrap();
            let file = object_file(&bench, "existing", "x.file", &seeded_bytes(SMALL, 10));
            let file_len = std::fs::metadata(file).unwrap().len() as usize;
            (bench.namespace("existing"), file_len, bench)
        })
    };
    let payload = seeded_bytes(SMALL, 10);
    let mut counter = 0u64;
    let mut group = c.benchmark_group("namespace");
    group.bench_function("brain_first_set_new_namespace", |b| {
        let (_, _, bench) = fixture();
        b.iter_custom(|iters| {
            let mut made = Vec::new();
            let total = each(
                iters,
                || {
                    counter += 1;
                    let ns = bench.namespace(&format!("ns-{counter}"));
                    ns.set("x", black_box(&payload)).unwrap();
                    made.push(ns);
                },
                || {},
            );
            for ns in made {
                ns.remove().unwrap();
            }
            total
        })
    });
    group.bench_function("brain_set_100B_existing", |b| {
        let (existing, _, _) = fixture();
        b.iter(|| existing.set(black_box("x"), black_box(&payload)).unwrap())
    });
    group.bench_function("brain_remove_namespace", |b| {
        let (_, _, bench) = fixture();
        b.iter_custom(|iters| {
            let made: Vec<_> = (0..iters)
                .map(|_| {
                    counter += 1;
                    let ns = bench.namespace(&format!("ns-{counter}"));
                    ns.set("x", &payload).unwrap();
                    ns
                })
                .collect();
            let mut made = made.into_iter();
            each(
                iters,
                || assert_eq!(made.next().unwrap().remove().unwrap(), 1),
                || {},
            )
        })
    });
    // The same file system work by hand: a directory with a name file and
    // one object, renamed away, its two files unlinked, the directory removed.
    group.bench_function("floor_rename_unlink_rmdir", |b| {
        let (_, file_len, bench) = fixture();
        let file_bytes = seeded_bytes(*file_len, 11);
        let scratch = bench.scratch();
        let trash = scratch.join("trash");
        std::fs::create_dir_all(&trash).unwrap();
        b.iter_custom(|iters| {
            let dirs: Vec<_> = (0..iters)
                .map(|i| {
                    let dir = scratch.join(format!("d{i}"));
                    std::fs::create_dir(&dir).unwrap();
                    std::fs::write(dir.join(".namespace"), b"name").unwrap();
                    std::fs::write(dir.join("object"), &file_bytes).unwrap();
                    dir
                })
                .collect();
            let mut dirs = dirs.into_iter();
            each(
                iters,
                || {
                    let dir = dirs.next().unwrap();
                    let doomed = trash.join(dir.file_name().unwrap());
                    std::fs::rename(&dir, &doomed).unwrap();
                    for entry in std::fs::read_dir(&doomed).unwrap() {
                        std::fs::remove_file(entry.unwrap().path()).unwrap();
                    }
                    std::fs::remove_dir(&doomed).unwrap();
                },
                || {},
            )
        })
    });
    group.finish();
}
