//! `watch` and `wait_for` in one process, the writes in another.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::util::{exit, make_value, run, spawn, TestStore, CHILD_TIMEOUT};

#[test]
fn a_watcher_in_another_process_sees_sets_and_deletes() -> Result<()> {
    let store = TestStore::new()?;
    let ns = store.open()?.namespace("watched")?;
    ns.set("before", &make_value(1, 100))?;
    let mut watcher = spawn(["watch", store.arg(), "watched", "5", "20000"])?;
    watcher.expect_line("ready", Duration::from_secs(10))?;
    let wait = Duration::from_secs(5);
    // One change at a time: each is reported before the next is made.
    ns.set("a", &make_value(2, 100))?;
    watcher.expect_line("set a", wait)?;
    ns.set("b", &make_value(3, 200_000))?;
    watcher.expect_line("set b", wait)?;
    ns.set("a", &make_value(4, 300))?;
    watcher.expect_line("set a", wait)?;
    ns.delete("a")?;
    watcher.expect_line("deleted a", wait)?;
    ns.delete("before")?;
    let done = watcher.finish(CHILD_TIMEOUT)?.success()?;
    let expected = [
        "ready",
        "set a",
        "set b",
        "set a",
        "deleted a",
        "deleted before",
    ];
    ensure!(done.stdout == expected, "{done}");
    Ok(())
}

#[test]
fn a_store_watcher_in_another_process_sees_new_and_removed_namespaces() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let mut watcher = spawn(["watch", store.arg(), "*", "5", "20000"])?;
    watcher.expect_line("ready", Duration::from_secs(10))?;
    let wait = Duration::from_secs(5);
    // A namespace made after the watcher started, by its first object.
    let fresh = handle.namespace("fresh")?;
    fresh.set("x", &make_value(1, 100))?;
    watcher.expect_line("set fresh/x", wait)?;
    handle
        .namespace("other")?
        .set("y", &make_value(2, 100_000))?;
    watcher.expect_line("set other/y", wait)?;
    fresh.set("z", &make_value(3, 100))?;
    watcher.expect_line("set fresh/z", wait)?;
    // Removing the namespace deletes every name in it.
    ensure!(fresh.remove()? == 2);
    let done = watcher.finish(CHILD_TIMEOUT)?.success()?;
    let mut deleted: Vec<_> = done.stdout[4..].to_vec();
    deleted.sort();
    ensure!(deleted == ["deleted fresh/x", "deleted fresh/z"], "{done}");
    Ok(())
}

#[test]
fn wait_for_in_another_process_returns_as_soon_as_the_name_is_set() -> Result<()> {
    let store = TestStore::new()?;
    let ns = store.open()?.namespace("late")?;
    let mut waiter = spawn(["wait-for", store.arg(), "late", "arrival", "10000"])?;
    waiter.expect_line("waiting", Duration::from_secs(10))?;
    // Let it block in wait_for.
    std::thread::sleep(Duration::from_millis(300));
    let set_at = Instant::now();
    ns.set("arrival", &make_value(42, 2 << 20))?;
    let line = waiter.expect_line("got", Duration::from_secs(5))?;
    let took = set_at.elapsed();
    ensure!(line == format!("got 42 {}", 2 << 20), "unexpected: {line}");
    ensure!(
        took < Duration::from_secs(2),
        "wait_for took {took:?} to notice the write"
    );
    waiter.finish(CHILD_TIMEOUT)?.success()?;
    Ok(())
}

#[test]
fn wait_for_in_another_process_times_out() -> Result<()> {
    let store = TestStore::new()?;
    let started = Instant::now();
    let done =
        run(["wait-for", store.arg(), "late", "never", "200"])?.failed_with(exit::TIMEOUT)?;
    ensure!(done.stderr.contains("timed out after 200 ms"), "{done}");
    ensure!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}
