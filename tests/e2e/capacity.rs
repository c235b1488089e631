//! Limits: the store's capacity, set in one process and enforced in
//! another, and a filesystem that runs out of space.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use brain_core::{Error, ObjectStore, Store};

use crate::util::{exit, files_named, make_value, run, seed_in, spawn, TestStore, CHILD_TIMEOUT};

const MIB: usize = 1 << 20;

#[test]
fn a_capacity_set_in_one_process_is_enforced_in_another() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let ns = handle.namespace("cap")?;
    run(["set-capacity", store.arg(), &MIB.to_string()])?.success()?;
    ensure!(
        handle.usage()?.capacity == Some(MIB as u64),
        "capacity set by the child is not seen here: {:?}",
        handle.usage()?
    );

    ns.set("first", &make_value(1, 600_000))?;
    // 600,000 more bytes would pass 1 MiB: the child is refused.
    let refused = run(["write", store.arg(), "cap", "second", "600000", "2"])?
        .failed_with(exit::STORE_FULL)?;
    ensure!(
        refused.stderr.contains("filesystem_full=false") && refused.stderr.contains("capacity"),
        "{refused}"
    );
    ensure!(!ns.contains("second")?, "a refused write left its name");
    // The child sees the usage this process made, and adds its own.
    let usage = run(["usage", store.arg()])?.success()?;
    let used = handle.usage()?.used;
    ensure!(
        usage.last_line() == format!("used {used} capacity {MIB}"),
        "{usage}"
    );
    run(["write", store.arg(), "cap", "second", "300000", "2"])?.success()?;
    let err = ns.set("third", &make_value(3, 300_000)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: false,
                capacity,
                ..
            } if capacity == MIB as u64
        ),
        "{err}"
    );
    // Space freed in this process is usable in the other.
    ns.delete("first")?;
    run(["write", store.arg(), "cap", "third", "600000", "3"])?.success()?;
    // Lifting the limit in the child lifts it here.
    run(["set-capacity", store.arg(), "none"])?.success()?;
    ns.set("huge", &make_value(4, 4 * MIB))?;
    ensure!(seed_in(&ns.get("third")?.expect("written by the child"))? == 3);
    ensure!(handle.fsck(false)?.used_before == handle.usage()?.used);
    Ok(())
}

#[test]
fn processes_racing_for_the_last_bytes_never_pass_the_capacity() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    // Every object below takes exactly 257 pages: 1 MiB of payload, a
    // 128-byte header (names of equal length), rounded up to a page.
    let per_object = 257 * 4096;
    let fits = 10;
    handle.set_capacity(Some(fits * per_object))?;
    let fillers = (0..4)
        .map(|id| {
            let prefix = format!("w{id}");
            spawn(["fill", store.arg(), "fill", &prefix, "6", &MIB.to_string()])
        })
        .collect::<Result<Vec<_>>>()?;
    let mut stored = 0;
    for filler in fillers {
        let done = filler.finish(CHILD_TIMEOUT)?.success()?;
        let counts: Vec<u64> = done
            .last_line()
            .split(' ')
            .filter_map(|w| w.parse().ok())
            .collect();
        ensure!(counts.len() == 2 && counts[0] + counts[1] == 6, "{done}");
        stored += counts[0];
    }
    let usage = handle.usage()?;
    ensure!(
        stored == fits && handle.names("fill")?.len() as u64 == fits,
        "{stored} objects stored by 4 processes in room for {fits}: {usage:?}"
    );
    ensure!(usage.used == fits * per_object, "{usage:?}");
    let fsck = handle.fsck(false)?;
    ensure!(fsck.used_before == fsck.used_after, "{fsck:?}");
    Ok(())
}

/// A small tmpfs mounted for one test, unmounted on drop (before its
/// directory is removed), even when the test fails.
struct TinyTmpfs {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl TinyTmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`), or says why it cannot.
    fn mount(size: &str) -> Result<TinyTmpfs, String> {
        if !rustix::process::getuid().is_root() {
            return Err("not running as root, cannot mount a tmpfs".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("brain-e2e-tiny")
            .tempdir_in("/dev/shm")
            .map_err(|e| format!("cannot create a mount point: {e}"))?;
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point)
            .map_err(|e| format!("cannot create a mount point: {e}"))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TinyTmpfs {
            mount_point,
            _dir: dir,
        })
    }

    /// As `mount`, or `None` after saying why `test` is skipped.
    fn mount_or_skip(size: &str, test: &str) -> Option<TinyTmpfs> {
        TinyTmpfs::mount(size)
            .map_err(|why| println!("skipped: {test}: {why}"))
            .ok()
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mount_point)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy: detach it now, the kernel frees it when the last user goes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

#[test]
fn a_full_filesystem_refuses_a_write_cleanly() -> Result<()> {
    let Some(tmpfs) = TinyTmpfs::mount_or_skip("2m", "a_full_filesystem_refuses_a_write_cleanly")
    else {
        return Ok(());
    };
    let path = tmpfs.path().join("store");
    let arg = path.to_str().context("UTF-8 path")?;
    let store = Store::open(&path)?;
    let ns = store.namespace("full")?;
    ns.set("target", &make_value(1, 100_000))?;
    ns.set("other", &make_value(2, 500))?;
    let before = store.usage()?;
    ensure!(
        before.detail("filesystem_size").unwrap_or(u64::MAX) <= 2 * MIB as u64,
        "the store is not on the 2 MiB tmpfs: {before:?}"
    );

    let check_full = |err: &Error| -> Result<()> {
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
        let text = err.to_string();
        ensure!(
            text.contains("the filesystem itself") && text.contains("--shm-size"),
            "the message does not explain a full filesystem: {text}"
        );
        Ok(())
    };
    // Replacing an existing name, and creating a new one: both refused; 4 MiB
    // on a 2 MiB filesystem never fits, and the message says so.
    let err = ns.set("target", &make_value(3, 4 * MIB)).unwrap_err();
    check_full(&err)?;
    ensure!(err.to_string().contains("no delete makes room"), "{err}");
    let err = ns.set("absent", &make_value(4, 4 * MIB)).unwrap_err();
    check_full(&err)?;
    // A streamed write with no size given runs out part-way through the copy.
    let mut writer = store.writer("full", "streamed", brain_core::Codec::Raw, "", None)?;
    let chunk = vec![1u8; MIB / 4];
    let err = (0..16)
        .find_map(|_| writer.write_payload(&chunk).err())
        .context("16 quarter-MiB writes fit in a 2 MiB filesystem")?;
    check_full(&err)?;
    drop(writer);
    // Another process is refused the same way.
    let child = run(["write", arg, "full", "absent", &(4 * MIB).to_string(), "5"])?
        .failed_with(exit::STORE_FULL)?;
    ensure!(
        child.stderr.contains("filesystem_full=true")
            && child.stderr.contains("the filesystem itself"),
        "{child}"
    );

    // Nothing left behind: old value intact (seen from another process), new names absent.
    run(["read", arg, "full", "target", "1"])?.success()?;
    for name in ["absent", "streamed"] {
        ensure!(!ns.contains(name)?, "{name} exists after a refused write");
        run(["read", arg, "full", name])?.failed_with(exit::MISSING)?;
    }
    ensure!(seed_in(&ns.get("other")?.expect("kept"))? == 2);
    let left = files_named(&path, ".tmp.")?;
    ensure!(left.is_empty(), "temporary files left: {left:?}");
    let after = store.usage()?;
    ensure!(
        after.used == before.used
            && after.detail("filesystem_free") == before.detail("filesystem_free"),
        "refused writes kept space: {before:?} -> {after:?}"
    );
    // And it still takes what fits.
    ns.set("target", &make_value(6, 200_000))?;
    ensure!(seed_in(&ns.get("target")?.expect("just set"))? == 6);
    Ok(())
}

#[test]
fn a_full_filesystem_takes_back_recycled_pages_before_refusing() -> Result<()> {
    let Some(tmpfs) = TinyTmpfs::mount_or_skip("8m", "a_full_filesystem_takes_back_recycled_pages")
    else {
        return Ok(());
    };
    let path = tmpfs.path().join("store");
    let store = Store::builder()
        .path(&path)
        .recycle_limit(8 * MIB as u64)
        .open()?;
    let ns = store.namespace("full")?;
    ns.set("a", &make_value(1, 3 * MIB))?;
    ns.set("a", &make_value(2, 3 * MIB))?;
    ensure!(
        store.usage()?.recycled > 0,
        "the replaced file was not kept"
    );
    // 6 MiB of the 8 are taken, half of it by the pool: a streamed 4 MiB
    // write runs out part-way, and must get the pool's pages back.
    let mut writer = store.writer("full", "b", brain_core::Codec::Raw, "", None)?;
    let value = make_value(3, 4 * MIB);
    for chunk in value.chunks(MIB / 4) {
        writer.write_payload(chunk)?;
    }
    writer.commit()?;
    ensure!(seed_in(&ns.get("b")?.expect("just set"))? == 3);
    ensure!(seed_in(&ns.get("a")?.expect("kept"))? == 2);
    ensure!(store.usage()?.recycled == 0, "{:?}", store.usage()?);
    Ok(())
}

/// A new name's write (by `pwrite`, with nothing allocated ahead) into a
/// filesystem that others fill meanwhile: the write that meets the full
/// filesystem is refused, and so is every later write and the commit (the
/// object's bytes are not whole), nothing is published, and the space
/// comes back when the writer goes. A filesystem that clearly lacks the
/// room refuses the writer before any byte is copied.
#[test]
fn a_write_that_meets_a_full_filesystem_part_way_publishes_nothing() -> Result<()> {
    let Some(tmpfs) =
        TinyTmpfs::mount_or_skip("8m", "a_write_that_meets_a_full_filesystem_part_way")
    else {
        return Ok(());
    };
    let path = tmpfs.path().join("store");
    let store = Store::open(&path)?;
    let free = || {
        store
            .usage()
            .map(|u| u.detail("filesystem_free").unwrap_or(0))
    };
    let value = make_value(1, 3 * MIB);
    let mut writer = store.writer(
        "full",
        "x",
        brain_core::Codec::Raw,
        "",
        Some(value.len() as u64),
    )?;
    let before = free()?;
    // Another program takes all but 1 MiB of the filesystem.
    let filler = tmpfs.path().join("filler");
    std::fs::write(&filler, vec![1u8; (before as usize).saturating_sub(MIB)])?;
    let full = |err: &Error| {
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: true,
                ..
            }
        )
    };
    let err = value
        .chunks(MIB / 2)
        .find_map(|piece| writer.write_payload(piece).err())
        .context("3 MiB fit in 1 MiB")?;
    ensure!(full(&err), "{err}");
    let again = writer.write_payload(&value[..10]).unwrap_err();
    ensure!(
        again
            .to_string()
            .contains("drop the writer and write the object again"),
        "{again}"
    );
    ensure!(
        writer.commit().is_err(),
        "a writer with part of its bytes committed"
    );
    ensure!(!store.contains("full", "x")?);
    std::fs::remove_file(&filler)?;
    ensure!(
        free()? == before,
        "the refused write kept space: {before} free before, {} after",
        free()?
    );
    // Known to need more than the filesystem has: refused up front.
    std::fs::write(&filler, vec![1u8; (before as usize).saturating_sub(MIB)])?;
    let err = store
        .writer(
            "full",
            "y",
            brain_core::Codec::Raw,
            "",
            Some(value.len() as u64),
        )
        .unwrap_err();
    ensure!(full(&err), "{err}");
    std::fs::remove_file(&filler)?;
    store
        .writer("full", "y", brain_core::Codec::Raw, "", Some(3))?
        .commit()?;
    Ok(())
}

/// gunicorn kills a timed-out worker with SIGKILL: a store with a capacity
/// keeps taking writes after its writers were killed with bytes reserved,
/// with no `fsck` by hand.
#[test]
fn a_store_takes_writes_again_after_its_writers_were_killed_mid_write() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    handle.set_capacity(Some(1 << 30))?;
    for round in 0..12 {
        let mut writer = spawn([
            "put-large-slowly",
            store.arg(),
            "killed",
            &format!("w{round}"),
            "50",
        ])?;
        writer.expect_line("started", CHILD_TIMEOUT)?;
        writer.kill()?;
    }
    let left = handle.usage()?.used;
    ensure!(
        left >= 12 * 50 * MIB as u64,
        "the killed writers' reservations were not counted: {left}"
    );
    // Every name the writers were writing is gone with them; a write of
    // 900 MiB fits in the 1 GiB again.
    ensure!(handle.names("killed")?.is_empty());
    let value = make_value(9, 900 * MIB);
    let meta = handle.put("after", "big", &brain_core::Payload::bytes(&value))?;
    ensure!(
        handle.usage()?.used == meta.stored_size,
        "{:?} after writing {meta:?}",
        handle.usage()?
    );
    // The count is what the files say.
    ensure!(handle.fsck(false)?.used_before == meta.stored_size);
    Ok(())
}

/// `fsck` run while a large write is in flight waits for it, and never
/// counts the store as emptier than it is.
#[test]
fn fsck_beside_a_write_in_flight_never_undercounts_it() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    handle.set_capacity(Some(256 << 20))?;
    let mut writer = spawn(["put-large-slowly", store.arg(), "ns", "inflight", "200"])?;
    writer.expect_line("started", CHILD_TIMEOUT)?;
    let fsck = handle.fsck(false)?;
    // fsck returned: the write it waited for was published first.
    writer.expect_line("committed", CHILD_TIMEOUT)?;
    ensure!(
        fsck.used_after >= 200 * MIB as u64,
        "fsck counted {} with 200 MiB in flight",
        fsck.used_after
    );
    ensure!(handle.usage()?.used >= 200 * MIB as u64);
    // 200 MiB stored: 100 MiB more does not fit in 256.
    match handle.put(
        "ns",
        "more",
        &brain_core::Payload::bytes(&vec![1u8; 100 * MIB]),
    ) {
        Err(Error::StoreFull { .. }) => Ok(()),
        other => anyhow::bail!("a write past the capacity after fsck: {other:?}"),
    }
}

#[test]
fn memory_held_by_views_of_deleted_objects_is_shown_and_named_when_the_filesystem_fills(
) -> Result<()> {
    let Some(tmpfs) = TinyTmpfs::mount_or_skip("48m", "memory_held_by_views_of_deleted_objects")
    else {
        return Ok(());
    };
    let path = tmpfs.path().join("store");
    let arg = path.to_str().context("UTF-8 path")?;
    let store = Store::open(&path)?;
    let ns = store.namespace("held")?;
    ns.set("big", &make_value(1, 20 * MIB))?;
    let mut reader = spawn(["hold-view", arg, "held", "big"])?;
    reader.expect_line("holding", CHILD_TIMEOUT)?;
    ensure!(store.usage()?.detail("held_by_views") == Some(0));

    // Deleted, the object leaves the store's count; its pages stay, mapped
    // by the reader, and the usage says so.
    ensure!(ns.delete("big")?);
    let usage = store.usage()?;
    ensure!(usage.used == 0, "{usage:?}");
    let held = usage.detail("held_by_views").unwrap_or(0);
    ensure!(held >= 20 * MIB as u64, "held memory not shown: {usage:?}");

    // A write the filesystem cannot take says why, and who holds it.
    let err = ns.set("next", &make_value(2, 36 * MIB)).unwrap_err();
    match &err {
        Error::StoreFull {
            filesystem_full: true,
            held,
            holders,
            ..
        } => ensure!(
            *held >= 20 * MIB as u64 && holders.contains(&reader.pid().to_string()),
            "{err:?}"
        ),
        other => anyhow::bail!("expected a full filesystem, got {other}"),
    }
    let text = err.to_string();
    ensure!(
        text.contains("still map") && text.contains("drop their views"),
        "{text}"
    );

    // Once the reader lets go, the memory is back and the write goes in.
    reader.send_line("done")?;
    reader.finish(CHILD_TIMEOUT)?.success()?;
    ensure!(store.usage()?.detail("held_by_views") == Some(0));
    ns.set("next", &make_value(2, 36 * MIB))?;
    Ok(())
}

#[test]
fn a_replace_refused_for_room_says_it_needs_both_copies() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    handle.set_capacity(Some(16 * MIB as u64))?;
    let ns = handle.namespace("both")?;
    ns.set("frame", &make_value(1, 10 * MIB))?;
    let err = ns.set("frame", &make_value(2, 10 * MIB)).unwrap_err();
    match &err {
        Error::StoreFull { replacing, .. } => ensure!(
            *replacing >= 10 * MIB as u64,
            "the replaced object's size is not given: {err:?}"
        ),
        other => anyhow::bail!("expected StoreFull, got {other}"),
    }
    let text = err.to_string();
    ensure!(
        text.contains("needs room for both copies") && text.contains("delete it first"),
        "{text}"
    );
    // As the message says: deleted first, the new value fits.
    ensure!(ns.delete("frame")?);
    ns.set("frame", &make_value(2, 10 * MIB))?;
    ensure!(seed_in(&ns.get("frame")?.expect("set"))? == 2);
    // A new name refused for room does not speak of replacing.
    let err = ns.set("other", &make_value(3, 10 * MIB)).unwrap_err();
    ensure!(!err.to_string().contains("both copies"), "{err}");
    // An object larger than the whole capacity: no delete would help, and
    // the message says so instead of advising one.
    let err = ns.set("frame", &make_value(4, 20 * MIB)).unwrap_err();
    let text = err.to_string();
    ensure!(
        text.contains("larger than the store's capacity")
            && !text.contains("delete it first")
            && !text.contains("delete objects"),
        "{text}"
    );
    ensure!(seed_in(&ns.get("frame")?.expect("kept"))? == 2);
    Ok(())
}

#[test]
fn a_sync_that_fills_its_disk_fails_and_removes_what_it_had_written() -> Result<()> {
    let Some(tmpfs) = TinyTmpfs::mount_or_skip("8m", "a_sync_that_fills_its_disk_fails") else {
        return Ok(());
    };
    let shm = tempfile::tempdir_in("/dev/shm")?;
    let store = Store::open(shm.path().join("store"))?;
    let mirror = tmpfs.path().join("mirror");
    let sync_once = || {
        brain_persist::spawn_sync(
            std::sync::Arc::new(store.clone()),
            &mirror,
            brain_persist::SyncOptions::new(),
        )
        .and_then(|sync| sync.stop())
    };
    store.put("ns", "small", &brain_core::Payload::bytes(b"mirrored"))?;
    sync_once()?;
    let free = || -> Result<u64> {
        let stat = rustix::fs::statvfs(tmpfs.path())?;
        Ok(stat.f_bavail * stat.f_frsize)
    };
    let free_before = free()?;

    // Three incompressible 3 MiB objects do not fit in the 8 MiB disk.
    for seed in 0..3 {
        let value = make_value(seed, 3 * MIB);
        store.put(
            "ns",
            &format!("big{seed}"),
            &brain_core::Payload::bytes(&value),
        )?;
    }
    let err = sync_once().err().context("9 MiB mirrored into 8 MiB")?;
    let io_kind = match &err {
        brain_persist::Error::Io { source, .. } => Some(source.kind()),
        _ => None,
    };
    ensure!(io_kind == Some(std::io::ErrorKind::StorageFull), "{err:?}");
    ensure!(
        err.to_string().contains("the filesystem it is on is full"),
        "{err}"
    );

    // The mirror is its last commit, and the disk has its room back.
    let listing = brain_persist::list_dump(&mirror)?;
    let names: Vec<&str> = listing.objects.iter().map(|o| o.name.as_str()).collect();
    ensure!(names == ["small"], "{names:?}");
    brain_persist::verify_dump(&mirror, &brain_persist::Progress::Hidden)?;
    let free_after = free()?;
    ensure!(
        free_after + 64 * 1024 >= free_before,
        "{free_after} bytes free after the failed sync, {free_before} before"
    );
    Ok(())
}
