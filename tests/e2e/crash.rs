//! A writer killed with SIGKILL in the middle of a large put.

use std::time::Duration;

use anyhow::{ensure, Result};
use brain_core::ObjectStore;

use crate::util::{eventually, make_value, seed_in, spawn, TestStore};

const MIB: u64 = 1 << 20;
const SIZE_MIB: u64 = 512;
/// Other tests share /dev/shm; its usage is compared with this much slack.
const SLACK: u64 = 128 * MIB;

#[test]
fn a_writer_killed_mid_put_leaves_the_old_value_and_gc_and_fsck_clean_up() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let ns = handle.namespace("crash")?;
    ns.set("big", &make_value(77, 2 * MIB as usize))?;
    let before = handle.usage()?;

    let mut writer = spawn([
        "put-large-slowly",
        store.arg(),
        "crash",
        "big",
        &SIZE_MIB.to_string(),
    ])?;
    writer.expect_line("started", Duration::from_secs(20))?;

    // Mid-write: the reservation and the preallocated pages are visible
    // from this process, the name still holds the old value.
    let during = handle.usage()?;
    ensure!(
        during.used >= before.used + SIZE_MIB * MIB,
        "the writer's reservation is not visible in another process: {before:?} -> {during:?}"
    );
    ensure!(
        during.detail("filesystem_free").unwrap_or(0) + (SIZE_MIB * MIB - SLACK)
            <= before.detail("filesystem_free").unwrap_or(0),
        "the writer did not allocate its {SIZE_MIB} MiB: {before:?} -> {during:?}"
    );
    ensure!(seed_in(&ns.get("big")?.expect("old value"))? == 77);

    writer.kill()?;

    // No partial object: the name still holds the complete old value.
    let view = ns.get("big")?.expect("the old value survives the crash");
    ensure!(seed_in(&view)? == 77 && view.len() == 2 * MIB as usize);
    drop(view);
    handle.clear_cache();
    // The killed writer's reservation is still counted (until someone
    // looks: a refused write, gc or fsck)...
    ensure!(
        handle.usage()?.used >= before.used + SIZE_MIB * MIB,
        "{:?}",
        handle.usage()?
    );
    // ...but its memory went back to the filesystem with the process.
    let freed = eventually(Duration::from_secs(5), || {
        Ok(
            handle.usage()?.detail("filesystem_free").unwrap_or(0) + SLACK
                >= before.detail("filesystem_free").unwrap_or(0),
        )
    })?;
    ensure!(
        freed,
        "/dev/shm did not get the killed writer's memory back: {before:?} -> {:?}",
        handle.usage()?
    );

    // gc gives back what the dead writer had reserved.
    let gc = handle.gc()?;
    let left = store.temporary_files()?;
    ensure!(
        left.is_empty(),
        "temporary files left after gc ({gc:?}): {left:?}"
    );
    ensure!(
        gc.reservations_reclaimed >= SIZE_MIB * MIB && handle.usage()?.used == before.used,
        "gc did not give back the dead writer's reservation: {gc:?}, {:?}",
        handle.usage()?
    );
    let fsck = handle.fsck(false)?;
    ensure!(
        fsck.used_after == before.used && fsck.used_before == before.used,
        "fsck found the usage wrong after gc: {fsck:?}"
    );
    ensure!(fsck.objects == 1 && fsck.corrupt.is_empty(), "{fsck:?}");
    // The store works as before.
    ns.set("big", &make_value(78, 3 * MIB as usize))?;
    ensure!(seed_in(&ns.get("big")?.expect("just set"))? == 78);
    Ok(())
}

#[test]
fn writers_killed_at_random_points_leave_a_store_gc_and_fsck_make_whole() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    // Two processes churn at once; each is killed at a different moment.
    for (round, delay_ms) in [37u64, 110, 251, 5].into_iter().enumerate() {
        let mut churners = (0..2)
            .map(|i| spawn(["churn", store.arg(), &(round * 2 + i).to_string()]))
            .collect::<Result<Vec<_>>>()?;
        for churner in &mut churners {
            churner.expect_line("started", Duration::from_secs(20))?;
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        for churner in &mut churners {
            churner.kill()?;
        }
    }
    let gc = handle.gc()?;
    let left = store.temporary_files()?;
    ensure!(
        left.is_empty(),
        "temporary files left after gc ({gc:?}): {left:?}"
    );
    let fsck = handle.fsck(false)?;
    ensure!(fsck.corrupt.is_empty(), "{fsck:?}");
    // Every name left holds one whole value, and usage is what the files take.
    let mut objects = 0;
    let mut bytes = 0;
    for ns in handle.namespaces()? {
        for meta in handle.list(&ns)? {
            let view = handle.get(&ns, &meta.name)?.expect("listed");
            seed_in(&view)?;
            objects += 1;
            bytes += meta.stored_size;
        }
    }
    ensure!(
        objects == fsck.objects,
        "{objects} objects listed, fsck saw {fsck:?}"
    );
    ensure!(
        handle.usage()?.used == bytes,
        "usage {:?} != {bytes}",
        handle.usage()?
    );
    // A second pass finds nothing more to do.
    ensure!(handle.gc()? == Default::default());
    ensure!(handle.fsck(false)?.used_before == bytes);
    Ok(())
}
