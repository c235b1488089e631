//! Names that look like paths, long names, and damaged files, across processes.

use std::os::unix::fs::PermissionsExt;

use anyhow::{ensure, Result};
use brain_core::{Error, ObjectStore};

use crate::util::{exit, make_value, run, seed_in, TestStore};

#[test]
fn strange_names_written_by_one_process_are_read_by_another() -> Result<()> {
    let store = TestStore::new()?;
    let long = "n".repeat(10_000);
    let names: Vec<(&str, &str)> = vec![
        ("default", "a/b"),
        ("default", ".."),
        ("default", "."),
        ("default", "../../etc/passwd"),
        ("default", "with space and\ttab"),
        ("default", "🧠 brain ✓"),
        ("default", &long),
        ("../ns/..", "x"),
        ("/", "/"),
        ("🧠", "🧠"),
        (&long, &long),
    ];
    for (i, (ns, name)) in names.iter().enumerate() {
        let (size, seed) = ((100 + i).to_string(), i.to_string());
        run(["write", store.arg(), ns, name, &size, &seed])?.success()?;
    }
    let handle = store.open()?;
    for (i, (ns, name)) in names.iter().enumerate() {
        let view = handle
            .get(ns, name)?
            .unwrap_or_else(|| panic!("{ns:?}/{name:?} written by the child is missing here"));
        ensure!(
            seed_in(&view)? == i as u64 && view.len() == 100 + i,
            "{ns:?}/{name:?} read back wrong"
        );
        ensure!(handle.names(ns)?.contains(&name.to_string()));
        // And a third process reads what the second wrote.
        let done = run(["read", store.arg(), ns, name, &i.to_string()])?.success()?;
        ensure!(done.last_line() == format!("ok {i} {}", 100 + i), "{done}");
    }
    // No name became a path: the store's directory holds the store, nothing else.
    let top: Vec<_> = std::fs::read_dir(store.dir())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    ensure!(top == ["store"], "names escaped the store: {top:?}");
    ensure!(!store.dir().join("etc").exists() && !std::path::Path::new("/etc/passwd/..").exists());
    Ok(())
}

#[test]
fn empty_names_are_refused_in_every_process() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    for (ns, name) in [("default", ""), ("", "x")] {
        let err = handle
            .put(ns, name, &brain_core::Payload::bytes(b"x"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        let done =
            run(["write", store.arg(), ns, name, "100", "1"])?.failed_with(exit::INVALID_NAME)?;
        ensure!(done.stderr.contains("empty"), "{done}");
    }
    Ok(())
}

#[test]
fn a_corrupted_header_is_reported_in_another_process() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    let ns = handle.namespace("damaged")?;
    // Byte 90 is in the name strings; byte 33 in the payload length.
    for (name, offset) in [("fragile", 90usize), ("lengthy", 33)] {
        ns.set(name, &make_value(9, 200_000))?;
        let file = store.object_file("damaged", name)?;
        let mut bytes = std::fs::read(&file)?;
        bytes[offset] ^= 0x40;
        // Objects are sealed read-only (0400).
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(&file, &bytes)?;

        let done = run(["read", store.arg(), "damaged", name])?.failed_with(exit::CORRUPT)?;
        ensure!(
            done.stderr.contains("is corrupt") && done.stderr.contains("checksum"),
            "{done}"
        );
        handle.clear_cache();
        let err = ns.get(name).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    let report = handle.fsck(true)?;
    ensure!(
        report.corrupt.len() == 2 && report.deleted == 2,
        "{report:?}"
    );
    run(["read", store.arg(), "damaged", "fragile"])?.failed_with(exit::MISSING)?;
    Ok(())
}
