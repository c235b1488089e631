//! Object files damaged on purpose: every byte of a header flipped, files
//! cut short or grown at every interesting length, for an object read
//! into memory and for one that is mapped. A damaged file is an error that
//! names it, never data and never a crash; listings skip it, `fsck` reports
//! each one, and deleting it is possible.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use brain_core::{Error, ObjectStore, Payload, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("brain-hostile-files")
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

/// The one object file of the store's one namespace.
fn object_file(root: &Path) -> PathBuf {
    let ns_dir = std::fs::read_dir(root.join("store/ns"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&ns_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

/// A get of the damaged object: an error naming its file, never bytes.
fn refused(store: &Store, file: &Path, what: &str) {
    store.clear_cache();
    match store.get("ns", "victim") {
        Err(err @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
            let message = err.to_string();
            assert!(
                message.contains(&file.display().to_string()),
                "{what}: the error does not name the file: {message}"
            );
        }
        Err(other) => panic!("{what}: unexpected error {other:?}"),
        Ok(Some(view)) => panic!("{what}: {} bytes returned as data", view.len()),
        Ok(None) => panic!("{what}: the object vanished"),
    }
}

fn every_damage_is_refused(payload_len: usize) {
    let (dir, store) = file_store();
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put(
            "ns",
            "victim",
            &Payload::bytes(&payload).with_description("d"),
        )
        .unwrap();
    let file = object_file(dir.path());
    let original = std::fs::read(&file).unwrap();
    let header = original.len() - payload_len;
    assert!((80..=4096).contains(&header), "{header}");

    // Every byte of the fixed header and its strings, one bit at a time.
    for at in 0..80 + 2 + 6 + 1 {
        let mut bad = original.clone();
        bad[at] ^= 0x10;
        std::fs::write(&file, &bad).unwrap();
        refused(&store, &file, &format!("a flipped bit at byte {at}"));
    }
    // Cut short at every interesting length, and grown.
    for len in [
        0,
        1,
        8,
        79,
        80,
        header - 1,
        header,
        header + payload_len / 2,
        original.len() - 1,
    ] {
        std::fs::write(&file, &original[..len]).unwrap();
        refused(&store, &file, &format!("a file cut to {len} bytes"));
    }
    // Grown: a mapped object is refused; a small one is read as far as its
    // header says, whole. Either way, no byte past the payload is data.
    let mut longer = original.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&file, &longer).unwrap();
    store.clear_cache();
    match store.get("ns", "victim") {
        Ok(Some(view)) => assert_eq!(&*view, &payload[..], "a grown file"),
        Ok(None) => panic!("a grown file: the object vanished"),
        Err(_) => refused(
            &store,
            &file,
            "a file 4096 bytes longer than its header says",
        ),
    }
    assert_eq!(store.fsck(false).unwrap().corrupt.len(), 1);

    // Listings go on without a damaged header; fsck names it; it can be deleted.
    let mut bad = original.clone();
    bad[40] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    store
        .put("ns", "neighbour", &Payload::bytes(b"fine"))
        .unwrap();
    let names: Vec<String> = store
        .list("ns")
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["neighbour"]);
    let report = store.fsck(false).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].reason.contains("checksum"), "{report:?}");
    assert!(store.delete("ns", "victim").unwrap());
    assert!(store.fsck(false).unwrap().corrupt.is_empty());

    // The original bytes are still an object (the damage was the only fault).
    std::fs::write(&file, &original).unwrap();
    store.clear_cache();
    assert_eq!(&*store.get("ns", "victim").unwrap().unwrap(), &payload[..]);
}

#[test]
fn damaged_small_objects_are_errors() {
    every_damage_is_refused(300);
}

#[test]
fn damaged_mapped_objects_are_errors() {
    // Past the small-object limit: read through a mapping.
    every_damage_is_refused(3 << 20);
}
