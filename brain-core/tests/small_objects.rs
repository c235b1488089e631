//! The table of small objects: which objects it holds, names that move
//! between it and files, damage to it, and its growth.

use std::path::{Path, PathBuf};

use brain_core::{stored_size, Codec, Error, ObjectStore, Payload, SharedBytes, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("brain-core-small")
        .tempdir_in("/dev/shm")
        .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Another handle on the store at `root` that writes every object as a file.
fn files_only(root: &Path) -> brain_core::Result<Store> {
    Store::builder().path(root).small_object_table(false).open()
}

/// The object files (not temporary ones) in every namespace directory.
fn object_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ns in std::fs::read_dir(root.join("ns")).unwrap() {
        for entry in std::fs::read_dir(ns.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(path);
            }
        }
    }
    out
}

/// Damages, with `damage` (given the file's bytes and where the payload
/// starts), every copy of `payload` in the table's file under `dir`:
/// copy-on-write leaves older copies of a page in free pages, and the live
/// one is among them.
fn damage_every_copy(dir: &Path, payload: &[u8], damage: impl Fn(&mut [u8], usize)) -> TestResult {
    let data = dir.join("store/small/data.mdb");
    let mut bytes = std::fs::read(&data)?;
    let copies: Vec<usize> = (24..bytes.len() - payload.len())
        .filter(|&at| bytes[at..].starts_with(payload))
        .collect();
    assert!(!copies.is_empty(), "the payload is in the table's file");
    for at in copies {
        damage(&mut bytes, at);
    }
    std::fs::write(&data, &bytes)?;
    Ok(())
}

/// `fsck`'s recount finds the usage the store counts.
fn assert_recount_changes_nothing(store: &Store) -> TestResult {
    let used = store.usage()?.used;
    let fsck = store.fsck(false)?;
    assert_eq!(
        (fsck.used_before, fsck.used_after),
        (used, used),
        "a recount changes nothing"
    );
    Ok(())
}

#[test]
fn small_objects_are_entries_and_large_ones_files_with_one_accounting() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    store.put(
        "n",
        "small",
        &Payload::bytes(&[1; 20]).with_description("a note"),
    )?;
    store.put("n", "large", &Payload::bytes(&[2; 100_000]))?;
    assert_eq!(
        object_files(&root).len(),
        1,
        "only the large object is a file"
    );
    assert_eq!(&*store.get("n", "small")?.unwrap(), &[1; 20]);
    assert_eq!(store.get("n", "large")?.unwrap().len(), 100_000);
    assert!(store.contains("n", "small")?);
    assert_eq!(store.names("n")?, ["large", "small"]);
    let meta = store.metadata("n", "small")?.unwrap();
    assert_eq!(meta.description, "a note");
    assert_eq!(meta.size, 20);
    // Counted as its object file would be, on every backend alike.
    assert_eq!(meta.stored_size, stored_size("n", "small", "a note", 20));
    let listed: u64 = store.list("n")?.iter().map(|m| m.stored_size).sum();
    assert_eq!(store.usage()?.used, listed);
    let fsck = store.fsck(false)?;
    assert_eq!((fsck.objects, fsck.used_after), (2, listed));
    assert!(fsck.corrupt.is_empty());
    assert!(store.delete("n", "small")?);
    assert!(!store.delete("n", "small")?);
    assert!(store.get("n", "small")?.is_none());
    assert_eq!(store.names("n")?, ["large"]);
    assert_eq!(store.usage()?.used, stored_size("n", "large", "", 100_000));
    Ok(())
}

#[test]
fn a_name_moves_from_the_table_to_a_file_and_back() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    store.put("n", "x", &Payload::bytes(b"small"))?;
    store.put("n", "x", &Payload::bytes(&[7; 50_000]))?;
    assert_eq!(store.get("n", "x")?.unwrap().len(), 50_000);
    assert_eq!(object_files(&root).len(), 1);
    assert_eq!(store.names("n")?, ["x"]);
    assert_eq!(store.usage()?.used, stored_size("n", "x", "", 50_000));
    store.put("n", "x", &Payload::bytes(b"small again"))?;
    assert_eq!(&*store.get("n", "x")?.unwrap(), b"small again");
    assert!(object_files(&root).is_empty(), "the file went with the set");
    assert_eq!(store.usage()?.used, stored_size("n", "x", "", 11));
    assert_eq!(store.fsck(false)?.used_after, stored_size("n", "x", "", 11));
    assert_eq!(store.remove_namespace("n")?, 1);
    assert_eq!(store.usage()?.used, 0);
    assert!(store.namespaces()?.is_empty());
    Ok(())
}

#[test]
fn a_store_that_writes_files_reads_entries_and_replaces_them() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    let files_only = files_only(&root)?;
    store.put("n", "x", &Payload::bytes(b"entry"))?;
    assert_eq!(&*files_only.get("n", "x")?.unwrap(), b"entry");
    files_only.put("n", "x", &Payload::bytes(b"file"))?;
    assert_eq!(object_files(&root).len(), 1);
    assert_eq!(&*store.get("n", "x")?.unwrap(), b"file");
    assert_eq!(store.usage()?.used, stored_size("n", "x", "", 4));
    Ok(())
}

#[test]
fn a_damaged_entry_is_reported_never_returned_by_any_read() -> TestResult {
    let (dir, store) = store();
    let pattern = b"a payload that is damaged on purpose";
    store.put("n", "hurt", &Payload::bytes(pattern))?;
    store.put("n", "fine", &Payload::bytes(b"whole"))?;
    damage_every_copy(dir.path(), pattern, |bytes, at| bytes[at + 3] ^= 0x20)?;
    let err = store.get_verified("n", "hurt").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // A plain read checks an entry's few bytes too.
    let err = store.get("n", "hurt").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(&*store.get("n", "fine")?.unwrap(), b"whole");
    assert_eq!(&*store.get_verified("n", "fine")?.unwrap(), b"whole");
    let report = store.fsck(false)?;
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].reason.contains("hurt"), "{report:?}");
    let report = store.fsck(true)?;
    assert_eq!(report.deleted, 1);
    assert!(store.get("n", "hurt")?.is_none());
    assert_eq!(store.names("n")?, ["fine"]);
    assert_eq!(store.usage()?.used, stored_size("n", "fine", "", 5));
    Ok(())
}

#[test]
fn the_table_grows_and_its_file_is_allocated_as_it_goes() -> TestResult {
    let (dir, store) = store();
    let data = dir.path().join("store/small/data.mdb");
    let value = |i: usize| format!("{i:>1500}").into_bytes();
    for i in 0..4000 {
        store.put("n", &format!("k{i}"), &Payload::bytes(&value(i)))?;
    }
    let other = Store::open(dir.path().join("store"))?;
    for i in (0..4000).step_by(97) {
        assert_eq!(&*other.get("n", &format!("k{i}"))?.unwrap(), &value(i)[..]);
    }
    let meta = std::fs::metadata(&data)?;
    assert!(
        meta.len() > 6 << 20,
        "the table grew past its first MiB: {}",
        meta.len()
    );
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "every page of the table is allocated ({} of {})",
        meta.blocks() * 512,
        meta.len()
    );
    assert_eq!(store.names("n")?.len(), 4000);
    Ok(())
}

#[test]
fn gc_removes_a_file_that_an_entry_of_its_name_replaced() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    let files_only = files_only(&root)?;
    files_only.put("n", "x", &Payload::bytes(b"the old file"))?;
    let file = object_files(&root).pop().unwrap();
    let old_bytes = std::fs::read(&file)?;
    store.put("n", "x", &Payload::bytes(b"the entry"))?;
    assert!(object_files(&root).is_empty(), "the set removed the file");
    // As a writer killed between the entry's commit and the file's removal
    // leaves it: the old file back beside the entry, counted by a recount.
    std::fs::write(&file, &old_bytes)?;
    assert_eq!(
        store.fsck(false)?.used_after,
        2 * stored_size("n", "x", "", 9)
    );
    assert_eq!(&*store.get("n", "x")?.unwrap(), b"the entry");
    assert_eq!(store.names("n")?, ["x"]);
    let report = store.gc()?;
    assert_eq!(report.stray_objects, 1, "{report:?}");
    assert!(object_files(&root).is_empty());
    assert_eq!(&*store.get("n", "x")?.unwrap(), b"the entry");
    assert_eq!(store.usage()?.used, stored_size("n", "x", "", 9));
    assert_recount_changes_nothing(&store)
}

#[test]
fn a_set_finds_an_object_file_by_its_mark_and_gc_marks_what_a_crash_left_unmarked() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    let files_only = files_only(&root)?;
    fn with_note<'a>(bytes: &'a [u8], note: &'a str) -> Payload<'a> {
        Payload::bytes(bytes).with_description(note)
    }
    // A set that gives no description keeps the old one (brain-plasma's rule).
    let set = |name: &str, bytes: &[u8]| {
        store.put_shared_keeping_description("n", name, Codec::Raw, "", &[SharedBytes::from(bytes)])
    };

    // A file's publish marks it: a small set of the name keeps its
    // description (the set gives none) and removes it.
    files_only.put("n", "x", &with_note(b"a file", "kept"))?;
    assert_eq!(set("x", b"an entry")?.description, "kept");
    assert!(object_files(&root).is_empty(), "the set removed the file");

    // A writer killed after a file's rename, before its commit, leaves the
    // file unmarked: readers find it, a set does not look for it.
    files_only.put("n", "y", &with_note(b"old y", "y's"))?;
    files_only.put("n", "z", &with_note(b"old z", "z's"))?;
    let saved: Vec<(PathBuf, Vec<u8>)> = object_files(&root)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    assert_eq!(saved.len(), 2);
    assert!(store.delete("n", "y")? && store.delete("n", "z")?);
    for (path, bytes) in &saved {
        std::fs::write(path, bytes)?;
    }
    // Counted by a recount, as after a writer killed there.
    store.fsck(false)?;
    assert_eq!(&*store.get("n", "y")?.unwrap(), b"old y");
    assert_eq!(set("y", b"new y")?.description, "");
    assert_eq!(
        object_files(&root).len(),
        2,
        "y's file is left beside its entry"
    );
    assert_eq!(&*store.get("n", "y")?.unwrap(), b"new y");

    // gc removes the file an entry shadows, and marks the other.
    let report = store.gc()?;
    assert_eq!(report.stray_objects, 1, "{report:?}");
    assert_eq!(object_files(&root).len(), 1);
    assert_eq!(set("z", b"new z")?.description, "z's");
    assert!(
        object_files(&root).is_empty(),
        "marked by gc, removed by the set"
    );
    assert_recount_changes_nothing(&store)
}

/// A set that gives no description keeps the replaced entry's, read in the
/// transaction that writes the new one. A description that would make the
/// object count another page, or no longer fit the table, is kept the long
/// way: the object counts what it takes, and in the second case becomes a
/// file.
#[test]
fn a_kept_description_that_changes_what_an_object_takes_is_kept_exactly() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    let set = |namespace: &str, bytes: &[u8]| {
        store.put_shared_keeping_description(
            namespace,
            "x",
            Codec::Raw,
            "",
            &[SharedBytes::from(bytes)],
        )
    };
    let check = |namespace: &str, bytes: &[u8], note: &str| -> TestResult {
        let meta = set(namespace, bytes)?;
        assert_eq!(meta.description, note);
        let size = stored_size(namespace, "x", note, bytes.len() as u64);
        assert_eq!(meta.stored_size, size);
        assert_eq!(store.metadata(namespace, "x")?.as_ref(), Some(&meta));
        assert_eq!(&*store.get(namespace, "x")?.unwrap(), bytes);
        let mut stored = 0;
        for namespace in store.namespaces()? {
            stored += store
                .list(&namespace)?
                .iter()
                .map(|m| m.stored_size)
                .sum::<u64>();
        }
        assert_eq!(
            store.usage()?.used,
            stored,
            "the usage counts what objects take"
        );
        assert_recount_changes_nothing(&store)
    };

    // Kept in the same transaction: the page count does not change.
    store.put("n", "x", &Payload::bytes(b"old").with_description("a note"))?;
    check("n", b"new", "a note")?;
    assert!(object_files(&root).is_empty());

    // A namespace's name is in the object's header, not in the table's key:
    // with a long one, an entry that fits one page without the description
    // takes two with it.
    let long_namespace = "n".repeat(3000);
    let header = brain_core::format::Header::encoded_len_for(&long_namespace, "x", "");
    let bytes = vec![5u8; 4096 - header - 8];
    assert_eq!(
        stored_size(&long_namespace, "x", "", bytes.len() as u64),
        4096
    );
    let note = "d".repeat(100);
    assert_eq!(
        stored_size(&long_namespace, "x", &note, bytes.len() as u64),
        8192
    );
    store.put(
        &long_namespace,
        "x",
        &Payload::bytes(&bytes).with_description(&note),
    )?;
    check(&long_namespace, &bytes, &note)?;
    assert!(object_files(&root).is_empty(), "still an entry");

    // Too long a description for the table with this payload: a file.
    let note = "e".repeat(1000);
    let bytes = vec![6u8; 1000];
    store.put("m", "x", &Payload::bytes(b"old").with_description(&note))?;
    check("m", &bytes, &note)?;
    assert_eq!(object_files(&root).len(), 1, "kept as a file");
    Ok(())
}

/// An entry that cannot be decoded is left out of listings, so that it does
/// not hide the rest of its namespace, and `damaged` names it (dumps and
/// mirrors ask, so as not to lose it without a word).
#[test]
fn an_entry_that_cannot_be_decoded_is_named_by_damaged() -> TestResult {
    let (dir, store) = store();
    let pattern = b"an entry whose record is damaged on purpose";
    store.put("n", "hurt", &Payload::bytes(pattern))?;
    store.put("n", "fine", &Payload::bytes(b"whole"))?;
    assert!(store.damaged("n")?.is_empty());
    // The record's version is its first byte, 24 bytes (its fixed fields,
    // no description) before the payload.
    damage_every_copy(dir.path(), pattern, |bytes, at| bytes[at - 24] = 0xEE)?;
    let listed: Vec<String> = store.list("n")?.into_iter().map(|m| m.name).collect();
    assert_eq!(listed, ["fine"]);
    let damaged = store.damaged("n")?;
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].name.as_deref(), Some("hurt"));
    assert_eq!(damaged[0].key, brain_core::ObjectKey::new("n", "hurt"));
    assert!(store.damaged("other")?.is_empty());
    Ok(())
}

#[test]
fn a_table_file_that_is_not_a_table_is_corrupt_and_the_store_opens_without_it() -> TestResult {
    let (dir, store) = store();
    let root = dir.path().join("store");
    store.put("n", "tiny", &Payload::bytes(b"tiny"))?;
    let big = vec![7u8; 100_000];
    store.put("n", "big", &Payload::bytes(&big))?;
    drop(store);
    // Both meta pages overwritten: LMDB says it is not its file.
    let data = root.join("small/data.mdb");
    let mut bytes = std::fs::read(&data)?;
    bytes[..8192].fill(0xAB);
    std::fs::write(&data, bytes)?;
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("move the store's `small` directory out of it")
            && err.to_string().contains("run `brain fsck`"),
        "{err}"
    );
    // The way out the message gives: the store opens without the table's
    // objects, and its object files are read as before.
    std::fs::rename(root.join("small"), dir.path().join("small-damaged"))?;
    let store = Store::open(&root)?;
    assert_eq!(&*store.get("n", "big")?.unwrap(), &big[..]);
    assert!(store.get("n", "tiny")?.is_none());
    // The count still holds the lost entries, until `fsck` counts again.
    store.fsck(false)?;
    assert_eq!(
        store.usage()?.used,
        stored_size("n", "big", "", big.len() as u64)
    );
    Ok(())
}

#[test]
fn a_frame_whose_manifest_is_damaged_is_deleted_and_replaced() -> TestResult {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let (dir, store) = store();
    let store = Arc::new(store);
    let ns = brain_core::Namespace::new(store.clone(), "n")?;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
    for name in ["deleted", "replaced"] {
        ns.append_rows(name, &schema, std::slice::from_ref(&batch))?;
        ns.append_rows(name, &schema, std::slice::from_ref(&batch))?;
    }
    // Every manifest (a small entry) damaged past its magic.
    damage_every_copy(dir.path(), b"BRAINFRM", |bytes, at| bytes[at + 20] ^= 0x01)?;
    let err = ns.get_record_batches("deleted").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // The way out the error gives works: the name goes, or takes a new table.
    assert!(ns.delete("deleted")?);
    assert!(store.get("n", "deleted")?.is_none());
    ns.set_record_batches("replaced", &schema, std::slice::from_ref(&batch))?;
    let (_, batches) = ns.get_record_batches("replaced")?.expect("replaced");
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    Ok(())
}
