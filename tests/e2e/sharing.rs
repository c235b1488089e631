//! Writers and readers in separate processes: objects are seen whole, a
//! replace is atomic, and a held view never changes.

use std::time::Duration;

use anyhow::{ensure, Result};
use brain_core::ObjectStore;
use brain_tests::{size_for, writer_of};

use crate::util::{make_value, run, seed_in, seed_of, spawn, TestStore, CHILD_TIMEOUT};

#[test]
fn readers_in_other_processes_see_a_writers_objects() -> Result<()> {
    let store = TestStore::new()?;
    let (count, seed) = (12, 1000);
    let (count_arg, seed_arg) = (count.to_string(), seed.to_string());
    // The readers start first and wait for each object as it appears.
    let readers = (0..3)
        .map(|_| {
            spawn([
                "verify-all",
                store.arg(),
                "shared",
                &count_arg,
                &seed_arg,
                "20000",
            ])
        })
        .collect::<Result<Vec<_>>>()?;
    run(["write-many", store.arg(), "shared", &count_arg, &seed_arg])?.success()?;
    for reader in readers {
        let done = reader.finish(CHILD_TIMEOUT)?.success()?;
        ensure!(
            done.last_line() == format!("ok {count}"),
            "reader did not check all {count} objects: {done}"
        );
    }
    // And this process sees them too, byte for byte.
    let ns = store.open()?.namespace("shared")?;
    for i in 0..count {
        let view = ns.get(&format!("obj-{i}"))?.expect("written by the child");
        ensure!(view.len() == size_for(i), "obj-{i} has the wrong size");
        ensure!(
            seed_in(&view)? == seed + i as u64,
            "obj-{i} has the wrong seed"
        );
    }
    Ok(())
}

#[test]
fn small_objects_raced_by_many_processes_are_whole_and_counted() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let ns = handle.namespace("race")?;
    for k in 0..brain_tests::SMALL_RACE_NAMES {
        ns.set(&format!("k{k}"), &make_value(seed_of(0, k), 32))?;
    }
    let millis = "1500";
    let readers = (0..3)
        .map(|_| spawn(["read-small-loop", store.arg(), "race", millis]))
        .collect::<Result<Vec<_>>>()?;
    let writers = (1..=4)
        .map(|id| spawn(["race-small", store.arg(), "race", &id.to_string(), millis]))
        .collect::<Result<Vec<_>>>()?;
    let mut writes = 0u64;
    for writer in writers {
        let done = writer.finish(CHILD_TIMEOUT)?.success()?;
        writes += done
            .last_line()
            .strip_prefix("wrote ")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("unexpected writer output: {done}"))?;
    }
    ensure!(writes >= 100, "the writers wrote only {writes} values");
    for reader in readers {
        // A torn or mixed value makes the reader exit with exit::MISMATCH.
        let done = reader.finish(CHILD_TIMEOUT)?.success()?;
        let line = done.last_line();
        println!("reader: {line}");
        ensure!(
            line.ends_with(" missing 0"),
            "a name went missing during a replace: {done}"
        );
    }
    // Every name holds one writer's whole value, and usage is exact.
    let mut bytes = 0;
    for meta in handle.list("race")? {
        seed_in(&ns.get(&meta.name)?.expect("listed"))?;
        bytes += meta.stored_size;
    }
    ensure!(handle.list("race")?.len() == brain_tests::SMALL_RACE_NAMES as usize);
    ensure!(
        handle.usage()?.used == bytes,
        "usage {:?} != {bytes}",
        handle.usage()?
    );
    ensure!(handle.fsck(false)?.used_after == bytes);
    Ok(())
}

#[test]
fn racing_writers_never_produce_a_mixed_value() -> Result<()> {
    let store = TestStore::new()?;
    let ns = store.open()?.namespace("race")?;
    // A first value, so a reader that ever finds the name missing has seen a
    // replace that was not atomic.
    ns.set("contested", &make_value(seed_of(0, 0), 1000))?;
    let millis = "1500";
    let readers = (0..3)
        .map(|_| spawn(["read-loop", store.arg(), "race", "contested", millis]))
        .collect::<Result<Vec<_>>>()?;
    let writers = [1, 2].map(|id| {
        spawn([
            "race-writer",
            store.arg(),
            "race",
            "contested",
            &id.to_string(),
            millis,
        ])
    });
    let mut writes = 0;
    for writer in writers {
        let done = writer?.finish(CHILD_TIMEOUT)?.success()?;
        let n: u64 = done
            .last_line()
            .strip_prefix("wrote ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("unexpected writer output: {done}"))?;
        writes += n;
    }
    println!("writers wrote {writes} values");
    ensure!(writes >= 4, "the writers wrote only {writes} values");
    for reader in readers {
        // A torn or mixed value makes the reader exit with exit::MISMATCH.
        let done = reader.finish(CHILD_TIMEOUT)?.success()?;
        let line = done.last_line();
        println!("reader: {line}");
        ensure!(
            line.contains(" missing 0 "),
            "a reader found the name missing during a replace: {done}"
        );
        ensure!(
            !line.starts_with("reads 0 "),
            "a reader read nothing: {done}"
        );
    }
    let last = ns.get("contested")?.expect("still set");
    ensure!([1, 2].contains(&writer_of(seed_in(&last)?)));
    // Usage stayed exact through every cross-process replace.
    let store_handle = ns.store();
    let report = store_handle.fsck(false)?;
    ensure!(
        report.used_before == report.used_after,
        "usage drifted under concurrent replaces: {report:?}"
    );
    ensure!(
        report.objects == 1 && report.corrupt.is_empty(),
        "{report:?}"
    );
    ensure!(
        store.temporary_files()?.is_empty(),
        "{:?}",
        store.temporary_files()?
    );
    Ok(())
}

#[test]
fn a_view_held_in_another_process_survives_replace_and_delete() -> Result<()> {
    let store = TestStore::new()?;
    let ns = store.open()?.namespace("views")?;
    // Small objects are read into memory, large ones are mapped: both kinds.
    for (i, size) in [1_000usize, 3 << 20].into_iter().enumerate() {
        let seed = seed_of(7, i as u32);
        ns.set("held", &make_value(seed, size))?;
        let mut holder = spawn(["hold-view", store.arg(), "views", "held"])?;
        let line = holder.expect_line("holding", Duration::from_secs(10))?;
        ensure!(
            line == format!("holding {seed} {size}"),
            "unexpected: {line}"
        );

        ns.set("held", &make_value(seed_of(8, i as u32), size / 2 + 100))?;
        ensure!(ns.delete("held")?, "the name vanished before the delete");
        // Reuse the freed memory, so a view that still pointed at it would change.
        for j in 0..4 {
            ns.set(&format!("filler-{j}"), &make_value(seed_of(9, j), size))?;
        }
        ensure!(ns.get("held")?.is_none());

        holder.send_line("check")?;
        let done = holder.finish(CHILD_TIMEOUT)?.success()?;
        ensure!(
            done.last_line() == format!("ok {seed} {size}"),
            "the held view changed: {done}"
        );
    }
    Ok(())
}

#[test]
fn a_write_in_flight_lands_even_if_its_namespace_is_removed() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let ns = handle.namespace("doomed")?;
    ns.set("old", &make_value(1, 5_000))?;
    let size = 2 << 20;
    let mut writer = spawn([
        "put-on-signal",
        store.arg(),
        "doomed",
        "new",
        &size.to_string(),
        "2",
    ])?;
    writer.expect_line("written", Duration::from_secs(10))?;
    // The namespace goes while the child's object is written but not committed.
    ensure!(ns.remove()? == 1);
    writer.send_line("commit")?;
    writer.finish(CHILD_TIMEOUT)?.success()?;
    let view = ns.get("new")?.expect("committed after the removal");
    ensure!(seed_in(&view)? == 2 && view.len() == size);
    ensure!(ns.get("old")?.is_none() && ns.names()? == ["new"]);
    let fsck = handle.fsck(false)?;
    ensure!(fsck.used_before == fsck.used_after, "{fsck:?}");
    Ok(())
}
