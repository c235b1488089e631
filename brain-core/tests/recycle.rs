//! Recycling: the files of replaced large objects are reused by later
//! writes, never while anyone maps them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brain_core::{Namespace, ObjectKey, ObjectStore, Payload, Store, StoreBuilder};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MIB: usize = 1 << 20;

fn open(builder: StoreBuilder) -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("brain-recycle-test")
        .tempdir_in("/dev/shm")
        .unwrap();
    let store = builder.path(dir.path().join("store")).open().unwrap();
    (dir, store)
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The file that holds `name` in namespace "n".
fn object_file(store: &Store, name: &str) -> PathBuf {
    let key = ObjectKey::new("n", name).to_hex();
    std::fs::read_dir(store.path().join("ns"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join(&key))
        .find(|path| path.exists())
        .expect("the object's file")
}

/// Sets `name` twice (values seeded 1 then 2), so its first file waits in the pool.
fn set_twice(ns: &Namespace, name: &str, len: usize) -> brain_core::Result<()> {
    ns.set(name, &bytes(len, 1))?;
    ns.set(name, &bytes(len, 2))?;
    Ok(())
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn pool_files(store: &Store) -> usize {
    std::fs::read_dir(store.path().join("pool"))
        .unwrap()
        .count()
}

#[test]
fn a_replaced_large_object_is_rewritten_in_place_by_the_next_write() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    ns.set("frame", &bytes(3 * MIB, 1))?;
    let first = inode(&object_file(&store, "frame"));
    ns.set("frame", &bytes(3 * MIB, 2))?;
    let meta = ns.metadata("frame")?.unwrap();
    assert_eq!(
        store.usage()?.recycled,
        meta.stored_size,
        "the old file waits in the pool"
    );
    assert_eq!(pool_files(&store), 1);
    ns.set("frame", &bytes(3 * MIB, 3))?;
    assert_eq!(
        inode(&object_file(&store, "frame")),
        first,
        "the third write did not reuse the first one's file"
    );
    assert_eq!(&*ns.get("frame")?.unwrap(), &bytes(3 * MIB, 3)[..]);
    assert_eq!(
        pool_files(&store),
        1,
        "the second version's file took its place"
    );
    assert_eq!(
        store.usage()?.used,
        meta.stored_size,
        "usage counts one object"
    );
    Ok(())
}

#[test]
fn a_file_someone_maps_is_never_reused() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    let old = bytes(2 * MIB, 9);
    ns.set("x", &old)?;
    let first = inode(&object_file(&store, "x"));
    let view = ns.get("x")?.unwrap();
    for round in 0..5u8 {
        ns.set("x", &bytes(2 * MIB, round))?;
        assert_ne!(
            inode(&object_file(&store, "x")),
            first,
            "round {round}: a mapped file was rewritten"
        );
        assert_eq!(&*view, &old[..], "round {round}: a held view changed");
    }
    drop(view);
    store.clear_cache();
    // Unmapped now: the first file is fair game again (the pool hands out
    // its oldest fitting file first, so it comes round within a few writes).
    let mut reused = false;
    for round in 0..8u8 {
        ns.set("x", &bytes(2 * MIB, 100 + round))?;
        reused |= inode(&object_file(&store, "x")) == first;
    }
    assert!(reused, "an unmapped pooled file was never reused");
    Ok(())
}

#[test]
fn reused_files_are_trimmed_or_extended_to_the_new_size() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    for (round, len) in [4 * MIB, 4 * MIB, 3 * MIB, 5 * MIB, 2 * MIB + 17]
        .into_iter()
        .enumerate()
    {
        let value = bytes(len, round as u8);
        ns.set("y", &value)?;
        let meta = ns.metadata("y")?.unwrap();
        let file_len = std::fs::metadata(object_file(&store, "y"))?.len();
        assert_eq!(
            file_len.div_ceil(4096) * 4096,
            meta.stored_size,
            "round {round}"
        );
        assert!(
            file_len >= len as u64 && file_len - (len as u64) < 4096,
            "round {round}: {file_len}"
        );
        assert_eq!(&*ns.get("y")?.unwrap(), &value[..], "round {round}");
    }
    Ok(())
}

#[test]
fn deleting_frees_at_once_and_small_objects_are_not_pooled() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    set_twice(&ns, "small", 500_000)?;
    assert_eq!(
        pool_files(&store),
        0,
        "objects under 1 MiB are not recycled"
    );
    ns.set("big", &bytes(2 * MIB, 1))?;
    ns.delete("big")?;
    assert_eq!(pool_files(&store), 0, "a deleted object is not kept");
    assert_eq!(store.usage()?.recycled, 0);
    Ok(())
}

#[test]
fn a_zero_limit_turns_recycling_off() -> TestResult {
    let (_dir, store) = open(Store::builder().recycle_limit(0));
    let ns = store.namespace("n")?;
    set_twice(&ns, "z", 2 * MIB)?;
    assert_eq!(pool_files(&store), 0);
    assert_eq!(store.usage()?.recycled, 0);
    Ok(())
}

#[test]
fn the_pool_stays_within_its_limit() -> TestResult {
    let (_dir, store) = open(Store::builder().recycle_limit(5 * MIB as u64));
    let ns = store.namespace("n")?;
    // Hold views so no pooled file can be reused and the pool must grow.
    let mut held = Vec::new();
    for round in 0..6u8 {
        ns.set("w", &bytes(2 * MIB, round))?;
        held.push(ns.get("w")?.unwrap());
    }
    let pooled = store.usage()?.recycled;
    assert!(pooled <= 5 * MIB as u64, "pool holds {pooled} bytes");
    assert_eq!(pool_files(&store), 2, "two 2 MiB files fit in 5 MiB");
    Ok(())
}

#[test]
fn idle_files_go_at_the_next_large_write_and_gc_empties_the_pool() -> TestResult {
    let (dir, store) = open(Store::builder().recycle_idle(Duration::ZERO));
    let ns = store.namespace("n")?;
    set_twice(&ns, "v", 2 * MIB)?;
    assert_eq!(pool_files(&store), 1);
    let again = Store::builder()
        .path(dir.path().join("store"))
        .recycle_idle(Duration::ZERO)
        .open()?;
    assert_eq!(pool_files(&again), 1, "opening a store changed it");
    // A large write of another size looks in the pool, and drops what idled.
    again.put("n", "w", &Payload::bytes(&vec![1u8; 8 * MIB]))?;
    assert_eq!(pool_files(&again), 0, "an idle file outlived a large write");
    assert_eq!(again.usage()?.recycled, 0);

    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    set_twice(&ns, "v", 2 * MIB)?;
    let report = store.gc()?;
    assert_eq!((report.recycled_objects, pool_files(&store)), (1, 0));
    assert!(report.recycled_bytes >= 2 * MIB as u64);
    assert_eq!(store.usage()?.recycled, 0);
    assert_eq!(&*ns.get("v")?.unwrap(), &bytes(2 * MIB, 2)[..]);
    Ok(())
}

#[test]
fn fsck_recounts_the_pool() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    set_twice(&ns, "f", 2 * MIB)?;
    let pooled = store.usage()?.recycled;
    // A file dropped into the pool by hand is counted once fsck has looked.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let stray = store
        .path()
        .join("pool")
        .join(format!("{}.{now_ms}.x", 3 * MIB));
    std::fs::write(&stray, vec![0u8; 3 * MIB])?;
    let report = store.fsck(false)?;
    assert_eq!(report.recycled, pooled + 3 * MIB as u64);
    assert_eq!(store.usage()?.recycled, report.recycled);
    assert!(report.corrupt.is_empty(), "{:?}", report.corrupt);
    Ok(())
}

#[test]
fn readers_racing_a_replacing_writer_see_whole_values() -> TestResult {
    let (_dir, store) = open(Store::builder().mapping_cache(0));
    let ns = store.namespace("n")?;
    ns.set("r", &vec![0u8; 2 * MIB])?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| -> TestResult {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| -> Result<u64, String> {
                    let mut reads = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let view = ns.get("r").map_err(|e| e.to_string())?.unwrap();
                        let first = view[0];
                        if let Some(at) = view.iter().position(|&b| b != first) {
                            return Err(format!(
                                "torn value: byte {at} is {} not {first}",
                                view[at]
                            ));
                        }
                        reads += 1;
                    }
                    Ok(reads)
                })
            })
            .collect();
        for round in 1..=60u8 {
            ns.set("r", &vec![round; 2 * MIB])?;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            let reads = reader.join().unwrap()?;
            assert!(reads > 0);
        }
        Ok(())
    })?;
    assert!(store.usage()?.recycled > 0, "the writer recycled nothing");
    Ok(())
}

#[test]
fn objects_and_pool_together_stay_within_the_capacity() -> TestResult {
    let (_dir, store) = open(
        Store::builder()
            .capacity(10 * MIB as u64)
            .recycle_limit(8 * MIB as u64),
    );
    let ns = store.namespace("n")?;
    set_twice(&ns, "x", 4 * MIB)?;
    let usage = store.usage()?;
    assert!(usage.recycled > 0, "the replaced file was not kept");
    // 4 MiB in use and 4 MiB pooled: 5 MiB more fits only without the pool.
    ns.set("y", &bytes(5 * MIB, 3))?;
    let usage = store.usage()?;
    assert_eq!(usage.recycled, 0, "the pool was not given back");
    assert!(usage.used + usage.recycled <= 10 * MIB as u64);
    assert_eq!(&*ns.get("y")?.unwrap(), &bytes(5 * MIB, 3)[..]);
    // With y gone, x and z leave room for a replaced x in the pool.
    ns.delete("y")?;
    ns.set("z", &bytes(MIB, 5))?;
    ns.set("x", &bytes(4 * MIB, 4))?;
    let usage = store.usage()?;
    assert!(
        usage.recycled > 0,
        "room enough, yet the replaced file went"
    );
    assert!(usage.used + usage.recycled <= 10 * MIB as u64, "{usage:?}");
    ns.set("z", &bytes(MIB, 6))?;
    let usage = store.usage()?;
    assert!(usage.used + usage.recycled <= 10 * MIB as u64, "{usage:?}");
    Ok(())
}

#[test]
fn a_reused_write_lands_even_if_its_namespace_is_removed_meanwhile() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    set_twice(&ns, "old", 3 * MIB)?;
    assert_eq!(pool_files(&store), 1);
    let value = bytes(3 * MIB, 3);
    let mut writer = store.writer(
        "n",
        "new",
        brain_core::Codec::Raw,
        "",
        Some(value.len() as u64),
    )?;
    assert_eq!(
        pool_files(&store),
        1,
        "the claimed file stays in the pool's directory"
    );
    store.remove_namespace("n")?;
    writer.write_payload(&value)?;
    writer.commit()?;
    assert_eq!(&*ns.get("new")?.unwrap(), &value[..]);
    assert!(ns.get("old")?.is_none());
    Ok(())
}

#[test]
fn stores_of_earlier_versions_are_upgraded_and_newer_ones_refused() -> TestResult {
    let (dir, store) = open(Store::builder());
    let control = store.control_path().to_owned();
    drop(store);
    let set_version = |version: u64| {
        let mut bytes = std::fs::read(&control).unwrap();
        bytes[8..16].copy_from_slice(&version.to_le_bytes());
        std::fs::write(&control, bytes).unwrap();
    };
    let version =
        || u64::from_le_bytes(std::fs::read(&control).unwrap()[8..16].try_into().unwrap());
    for older in [1, 2, 3] {
        set_version(older);
        Store::open(dir.path().join("store"))?;
        assert_eq!(version(), 4, "a version-{older} store was not upgraded");
    }
    set_version(5);
    match Store::open(dir.path().join("store")) {
        Err(brain_core::Error::UnsupportedVersion {
            found: 5,
            supported: 4,
            ..
        }) => Ok(()),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

/// The sizes of the pool's files.
fn pool_sizes(store: &Store) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(store.path().join("pool"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn preallocated_memory_takes_a_first_write_and_comes_back_in_the_background() -> TestResult {
    // An idle time of zero: replaced files would go at once; preallocated ones stay.
    let (_dir, store) = open(Store::builder().recycle_idle(Duration::ZERO));
    let made = store.preallocate(24 * MIB as u64)?;
    let sizes = pool_sizes(&store);
    assert!(!sizes.is_empty(), "nothing was preallocated");
    assert_eq!(
        made,
        sizes.iter().map(|&s| s.div_ceil(4096) * 4096).sum::<u64>()
    );
    assert!(made <= 24 * MIB as u64, "{made} bytes for 24 MiB");
    assert_eq!(
        store.usage()?.recycled,
        made,
        "the pool's count is its files"
    );
    let ns = store.namespace("n")?;
    // A new name of 3 MiB takes the 4 MiB file (trimmed to size)...
    let inodes: Vec<u64> = std::fs::read_dir(store.path().join("pool"))?
        .map(|e| e.unwrap().metadata().unwrap().ino())
        .collect();
    ns.set("first", &bytes(3 * MIB, 7))?;
    assert!(
        inodes.contains(&inode(&object_file(&store, "first"))),
        "the first write of a name did not use preallocated memory"
    );
    assert_eq!(&*ns.get("first")?.unwrap(), &bytes(3 * MIB, 7)[..]);
    // ...and a thread makes it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool_sizes(&store) != sizes {
        assert!(
            std::time::Instant::now() < deadline,
            "the taken file was not made again: {:?} of {sizes:?}",
            pool_sizes(&store)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A large write trims idle replaced files, never preallocated ones.
    set_twice(&ns, "other", 2 * MIB)?;
    ns.set("more", &bytes(2 * MIB, 3))?;
    assert!(pool_sizes(&store).len() >= sizes.len() - 1);
    // gc gives it all back (replaced files kept as preallocated memory hold
    // only their object's bytes, so the pool may hold less than was made).
    let pooled = store.usage()?.recycled;
    let report = store.gc()?;
    assert!(
        report.recycled_bytes >= pooled,
        "{report:?}, {pooled} pooled"
    );
    assert_eq!(store.usage()?.recycled, 0);
    assert_eq!(pool_files(&store), 0);
    Ok(())
}

#[test]
fn a_pool_preallocated_to_the_capacity_makes_room_for_new_names() -> TestResult {
    let capacity = 40 * MIB as u64;
    let (_dir, store) = open(Store::builder().capacity(capacity));
    let made = store.preallocate(capacity)?;
    assert!(made > capacity / 2, "only {made} bytes preallocated");
    let ns = store.namespace("n")?;
    // Each write takes a pooled file before it reserves: nothing is refused
    // while objects and pool fit, and the pool is not emptied to make room.
    ns.set("a", &bytes(7 * MIB, 1))?;
    ns.set("b", &bytes(3 * MIB, 2))?;
    let usage = store.usage()?;
    assert!(usage.used + usage.recycled <= capacity, "{usage:?}");
    assert!(usage.recycled > 0, "the pool was emptied: {usage:?}");
    assert_eq!(&*ns.get("a")?.unwrap(), &bytes(7 * MIB, 1)[..]);
    Ok(())
}

/// The pool's files, by inode: (inode, length, preallocated). Files being
/// made or claimed (temporary names) are left out.
fn pool_entries(store: &Store) -> Vec<(u64, u64, bool)> {
    std::fs::read_dir(store.path().join("pool"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_str().unwrap().starts_with(".tmp."))
        .map(|e| {
            let kind = e
                .file_name()
                .to_str()
                .unwrap()
                .split('.')
                .nth(3)
                .map(str::to_owned);
            let meta = e.metadata().unwrap();
            (
                meta.ino(),
                meta.len(),
                kind.is_some_and(|k| k.starts_with("pre")),
            )
        })
        .collect()
}

/// Which of the preallocated `sizes` each pooled file stands in for (the
/// smallest that holds it), sorted.
fn pool_slots(store: &Store, sizes: &[u64]) -> Vec<u64> {
    let mut slots: Vec<u64> = pool_entries(store)
        .iter()
        .map(|&(_, len, _)| *sizes.iter().filter(|&&s| s >= len).min().unwrap())
        .collect();
    slots.sort_unstable();
    slots
}

/// Waits until the pool stands in for exactly `sizes` again.
fn wait_for_slots(store: &Store, sizes: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool_slots(store, sizes) != sizes {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool did not come back: {:?} of {sizes:?}",
            pool_slots(store, sizes)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn with_preallocation_a_replaced_file_takes_the_place_of_the_one_its_write_took() -> TestResult {
    let (_dir, store) = open(Store::builder());
    store.preallocate(24 * MIB as u64)?;
    let sizes = pool_sizes(&store);
    let ns = store.namespace("n")?;
    ns.set("x", &bytes(3 * MIB, 1))?;
    // The first write took a preallocated file, which is made again.
    wait_for_slots(&store, &sizes);
    let first = inode(&object_file(&store, "x"));
    ns.set("x", &bytes(3 * MIB, 2))?;
    // The second took another; the first version's file stands in for it,
    // kept as preallocated memory: nothing needs making.
    assert!(
        pool_entries(&store).contains(&(
            first,
            std::fs::metadata(object_file(&store, "x"))?.len(),
            true
        )),
        "the replaced file is not in the pool as preallocated memory: {:?}",
        pool_entries(&store)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pool_slots(&store, &sizes),
        sizes,
        "a file was made although the replaced one took the place of the one taken"
    );
    assert_eq!(pool_entries(&store).len(), sizes.len());
    assert_eq!(&*ns.get("x")?.unwrap(), &bytes(3 * MIB, 2)[..]);
    Ok(())
}

#[test]
fn with_preallocation_a_deleted_object_gives_its_memory_to_the_pool_or_back() -> TestResult {
    let (_dir, store) = open(Store::builder());
    store.preallocate(24 * MIB as u64)?;
    let sizes = pool_sizes(&store);
    let ns = store.namespace("n")?;
    for round in 0..4u8 {
        ns.set("new", &bytes(6 * MIB, round))?;
        let deleted = inode(&object_file(&store, "new"));
        assert!(ns.delete("new")?);
        wait_for_slots(&store, &sizes);
        // Either the deleted file took the place of the preallocated one its
        // write took, or that place was made again first and the deleted
        // file is gone: never both, and never neither.
        let entries = pool_entries(&store);
        assert_eq!(entries.len(), sizes.len(), "round {round}: {entries:?}");
        if let Some(kept) = entries.iter().find(|e| e.0 == deleted) {
            assert!(
                kept.2,
                "round {round}: the deleted file is kept, but not as preallocated memory"
            );
        }
        let usage = store.usage()?;
        assert_eq!(usage.used, 0, "round {round}: {usage:?}");
        assert_eq!(
            usage.recycled,
            entries
                .iter()
                .map(|e| e.1.div_ceil(4096) * 4096)
                .sum::<u64>(),
            "round {round}: the pool's count is not its files"
        );
    }
    Ok(())
}

#[test]
fn without_preallocation_a_deleted_object_gives_its_memory_back_at_once() -> TestResult {
    let (_dir, store) = open(Store::builder());
    let ns = store.namespace("n")?;
    ns.set("gone", &bytes(3 * MIB, 4))?;
    assert!(ns.delete("gone")?);
    assert_eq!(pool_files(&store), 0, "a deleted object's file was kept");
    let usage = store.usage()?;
    assert_eq!((usage.used, usage.recycled), (0, 0), "{usage:?}");
    Ok(())
}

#[test]
fn gc_ends_preallocation_until_it_is_asked_for_again() -> TestResult {
    let (_dir, store) = open(Store::builder());
    store.preallocate(24 * MIB as u64)?;
    let sizes = pool_sizes(&store);
    let ns = store.namespace("n")?;
    ns.set("a", &bytes(3 * MIB, 1))?;
    ns.set("c", &bytes(3 * MIB, 2))?;
    store.gc()?;
    assert_eq!(store.usage()?.recycled, 0);
    // What leaves its name now is not kept as preallocated memory, and no
    // write makes any: the memory gc gave back stays given back.
    assert!(ns.delete("a")?);
    ns.set("c", &bytes(3 * MIB, 3))?;
    ns.set("c", &bytes(3 * MIB, 4))?;
    std::thread::sleep(Duration::from_millis(300));
    let entries = pool_entries(&store);
    assert!(
        entries.iter().all(|e| !e.2) && entries.len() <= 1,
        "the pool was refilled after gc: {entries:?}"
    );
    // Asked again, it comes back.
    store.preallocate(24 * MIB as u64)?;
    let preallocated = pool_entries(&store).iter().filter(|e| e.2).count();
    assert_eq!(preallocated, sizes.len(), "{:?}", pool_entries(&store));
    Ok(())
}

/// The background refill ends with the last handle of the store: its
/// directory can then be removed (as a test's temporary store is) without
/// the refill making files in it meanwhile, for as long as the pool takes
/// to fill.
#[test]
fn the_background_refill_ends_with_the_last_handle() -> TestResult {
    let (dir, store) = open(Store::builder());
    let pool = store.path().join("pool");
    // Ten files, 512 MiB down to 1 MiB, the largest made first.
    store.preallocate_in_background(1 << 30);
    let made = |pool: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(pool)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !made(&pool).iter().any(|n| !n.starts_with(".tmp.")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no file was preallocated"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(store);
    // Settled: no file being made, and nothing changes for half a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = made(&pool);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = made(&pool);
        if now == last && !now.iter().any(|n| n.starts_with(".tmp.")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pool kept changing: {now:?}"
        );
        last = now;
    }
    assert!(
        last.len() < 10,
        "the refill went on after the last handle: {last:?}"
    );
    std::fs::remove_dir_all(dir.path())?;
    Ok(())
}
