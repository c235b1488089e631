//! Dumps made by hand to do harm: paths that leave the dump, lengths no
//! store can hold, counts that lie, entries filed under another name. Each
//! is refused before anything is written, with an error that names the
//! dump, and nothing outside the dump is read into the store or written.

use std::path::{Path, PathBuf};

use brain_core::{ObjectStore, ObjectStoreExt, Payload, Store};
use brain_persist::{dump, list_dump, restore, DumpOptions, Error, OnConflict, RestoreOptions};
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

/// A store with a few objects, a dump of it, and an empty store to restore into.
struct Lab {
    _dir: tempfile::TempDir,
    root: PathBuf,
    source: Store,
    target: Store,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("brain-hostile-dump")
            .tempdir_in("/dev/shm")
            .expect("a directory in /dev/shm");
        let root = dir.path().to_owned();
        let source = Store::open(root.join("source")).expect("store");
        source.put_text("ns", "small", "hello").expect("put");
        source
            .put("ns", "large", &Payload::bytes(&vec![7u8; 3 << 20]))
            .expect("put");
        let target = Store::open(root.join("target")).expect("store");
        Lab {
            _dir: dir,
            root,
            source,
            target,
        }
    }

    /// A fresh dump of the source store, to be damaged.
    fn dump(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        dump(&self.source, &path, &DumpOptions::new()).expect("dump");
        path
    }

    /// Restores `dump`, which must be refused as a bad dump, leaving the
    /// target store empty. Returns the error's message.
    fn refused(&self, dump: &Path, what: &str) -> String {
        let err = self.refused_with(dump, what);
        assert!(
            err.is_bad_dump(),
            "{what}: not reported as a bad dump: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&dump.display().to_string()),
            "{what}: the message does not name the dump: {message}"
        );
        message
    }

    /// Restores `dump`, which must fail, leaving the target store empty.
    fn refused_with(&self, dump: &Path, what: &str) -> Error {
        let options = RestoreOptions::new().on_conflict(OnConflict::Overwrite);
        let err = restore(&self.target, dump, &options)
            .expect_err(&format!("{what}: a hostile dump was restored"));
        assert_eq!(
            self.target.namespaces().expect("namespaces"),
            Vec::<String>::new(),
            "{what}: something was written"
        );
        assert_eq!(self.target.usage().expect("usage").used, 0, "{what}");
        err
    }
}

fn manifest(dump: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dump.join("MANIFEST.json")).expect("manifest"))
        .expect("JSON")
}

fn write_manifest(dump: &Path, manifest: &Value) {
    std::fs::write(
        dump.join("MANIFEST.json"),
        serde_json::to_vec_pretty(manifest).expect("JSON"),
    )
    .expect("write the manifest");
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        let rel = prefix.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            files_under(&entry.path(), &rel, out);
        } else {
            out.push(rel);
        }
    }
}

/// Changes the dump's index with `change` (on its objects tree, entries as
/// JSON), then records the index's files in the manifest again, as a
/// forger who knows the format would: every checksum matches.
fn forge_index(dump: &Path, change: impl FnOnce(&sled::Tree)) {
    let mut manifest = manifest(dump);
    let index = dump.join(manifest["index"]["dir"].as_str().expect("index dir"));
    {
        // sled's threads may hold the dump's own handle a moment longer.
        let mut attempts = 0;
        let db = loop {
            match sled::open(&index) {
                Ok(db) => break db,
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(err) => panic!("the index does not open: {err}"),
            }
        };
        change(&db.open_tree("objects").expect("objects tree"));
        db.flush().expect("flush");
    }
    let mut files = Vec::new();
    files_under(&index, Path::new(""), &mut files);
    files.sort();
    manifest["index"]["files"] = files
        .iter()
        .map(|rel| {
            let bytes = std::fs::read(index.join(rel)).expect("read");
            json!({
                "path": rel.to_str().expect("UTF-8"),
                "len": bytes.len(),
                "xxh3": format!("{:016x}", xxh3_64(&bytes)),
            })
        })
        .collect();
    write_manifest(dump, &manifest);
}

/// Rewrites the entry of `name` with `change`.
fn forge_entry(dump: &Path, name: &str, change: impl FnOnce(&mut Value)) {
    forge_index(dump, |objects| {
        let (key, value) = objects
            .iter()
            .map(|item| item.expect("entry"))
            .find(|(_, value)| {
                serde_json::from_slice::<Value>(value).expect("JSON")["name"] == name
            })
            .expect("the entry");
        let mut entry: Value = serde_json::from_slice(&value).expect("JSON");
        change(&mut entry);
        objects
            .insert(key, serde_json::to_vec(&entry).expect("JSON"))
            .expect("insert");
    });
}

#[test]
fn a_forged_index_that_changes_nothing_still_restores() {
    // The forging itself is sound: without damage, the dump restores.
    let lab = Lab::new();
    let dump = lab.dump("plain");
    forge_entry(&dump, "small", |_| {});
    restore(&lab.target, &dump, &RestoreOptions::new()).expect("restores");
    assert_eq!(
        lab.target.get_text("ns", "small").unwrap().as_deref(),
        Some("hello")
    );
}

#[test]
fn paths_that_leave_the_dump_are_refused() {
    let lab = Lab::new();
    let outside = lab.root.join("outside.txt");
    std::fs::write(&outside, "not part of any dump").unwrap();

    // An index file listed as a path out of the dump (and out of the
    // temporary copy the index is read from).
    let dump = lab.dump("index-file-path");
    let mut m = manifest(&dump);
    m["index"]["files"][0]["path"] = json!("../../outside.txt");
    write_manifest(&dump, &m);
    let message = lab.refused(&dump, "an index file path with ..");
    assert!(message.contains("outside.txt"), "{message}");

    // An absolute path.
    let dump = lab.dump("index-file-absolute");
    let mut m = manifest(&dump);
    m["index"]["files"][0]["path"] = json!(outside.display().to_string());
    write_manifest(&dump, &m);
    lab.refused(&dump, "an absolute index file path");

    // The index directory itself somewhere else.
    let dump = lab.dump("index-dir");
    let mut m = manifest(&dump);
    m["index"]["dir"] = json!("../index-0000000000000001");
    write_manifest(&dump, &m);
    lab.refused(&dump, "an index directory outside the dump");

    // A payload read from outside the dump.
    let dump = lab.dump("payload-path");
    forge_entry(&dump, "small", |entry| {
        entry["file"] = json!("../../outside.txt");
    });
    let message = lab.refused(&dump, "a payload path with ..");
    assert!(message.contains("payload file name"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "not part of any dump"
    );
}

#[test]
fn lengths_no_store_can_hold_are_refused_before_anything_is_written() {
    let lab = Lab::new();
    // One TiB, with a frame list consistent with it: only the payload
    // file, far shorter, tells the lie.
    let dump = lab.dump("huge");
    forge_entry(&dump, "large", |entry| {
        let frame = entry["frame_size"].as_u64().unwrap();
        let size = 1u64 << 40;
        let frames = size.div_ceil(frame);
        entry["size"] = json!(size);
        entry["frames"] = json!(vec![100u64; frames as usize]);
        entry["frame_xxh3"] = json!(vec!["0123456789abcdef"; frames as usize]);
        entry["file_len"] = json!(100 * frames);
    });
    let mut m = manifest(&dump);
    let small = 5u64;
    m["payload_bytes"] = json!((1u64 << 40) + small);
    write_manifest(&dump, &m);
    // The room it claims is checked before its payload file is read.
    let err = lab.refused_with(&dump, "a 1 TiB object");
    assert!(
        matches!(&err, Error::StoreFull { needed, .. } if *needed > 1 << 40) || err.is_bad_dump(),
        "{err:?}"
    );

    // A length past what a frame list can describe.
    let dump = lab.dump("overflow");
    forge_entry(&dump, "large", |entry| {
        entry["size"] = json!(u64::MAX);
    });
    lab.refused(&dump, "a length of 2^64 - 1");
}

#[test]
fn counts_and_keys_that_lie_are_refused() {
    let lab = Lab::new();
    let dump = lab.dump("count");
    let mut m = manifest(&dump);
    m["objects"] = json!(1);
    write_manifest(&dump, &m);
    let message = lab.refused(&dump, "an object count that lies");
    assert!(message.contains("manifest records 1"), "{message}");

    let dump = lab.dump("bytes");
    let mut m = manifest(&dump);
    m["payload_bytes"] = json!(1);
    write_manifest(&dump, &m);
    lab.refused(&dump, "a byte count that lies");

    // An entry filed under another object's key: restored, it would
    // overwrite a name the dump does not list.
    let dump = lab.dump("key");
    forge_entry(&dump, "small", |entry| {
        entry["name"] = json!("someone-else");
    });
    let message = lab.refused(&dump, "an entry under another key");
    assert!(message.contains("another key"), "{message}");

    // Names no store accepts.
    let dump = lab.dump("namespace");
    forge_index(&dump, |objects| {
        let (key, value) = objects.iter().next().unwrap().unwrap();
        let mut entry: Value = serde_json::from_slice(&value).unwrap();
        entry["namespace"] = json!("");
        objects
            .insert(key, serde_json::to_vec(&entry).unwrap())
            .unwrap();
    });
    lab.refused(&dump, "an empty namespace");

    // More frames than the size needs.
    let dump = lab.dump("frames");
    forge_entry(&dump, "large", |entry| {
        let frames = entry["frames"].as_array().unwrap().clone();
        let mut more = frames.clone();
        more.extend(frames);
        entry["frames"] = json!(more);
    });
    lab.refused(&dump, "a frame list longer than the size");
}

#[test]
fn a_listing_of_a_hostile_dump_fails_the_same_way() {
    let lab = Lab::new();
    let dump = lab.dump("listed");
    forge_entry(&dump, "small", |entry| {
        entry["file"] = json!("/etc/passwd");
    });
    let err = list_dump(&dump).expect_err("listed");
    assert!(matches!(err, Error::CorruptIndex { .. }), "{err:?}");
}

/// Runs `f` on a thread of its own and gives its result, or fails the test
/// when it has not returned within 20 s (a read that waits forever).
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: still waiting after 20 s"))
}

/// Files of a dump replaced by a FIFO, a symbolic link or a directory are
/// refused as a damaged dump, at once: a FIFO would make a reader wait for a
/// writer forever, and a link could point anywhere.
#[test]
fn files_that_are_not_regular_files_are_refused_without_waiting() {
    let lab = Lab::new();
    for kind in ["a FIFO", "a symbolic link", "a directory"] {
        for which in ["payload", "manifest"] {
            let dump = lab.dump(&format!("{which}-{}", kind.replace(' ', "-")));
            let file = match which {
                "manifest" => dump.join("MANIFEST.json"),
                _ => {
                    let mut files = Vec::new();
                    files_under(&dump.join("data"), Path::new("data"), &mut files);
                    let largest = files
                        .iter()
                        .max_by_key(|f| std::fs::metadata(dump.join(f)).unwrap().len())
                        .expect("a payload file")
                        .clone();
                    dump.join(largest)
                }
            };
            std::fs::remove_file(&file).unwrap();
            match kind {
                "a FIFO" => {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &file,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o600),
                        0,
                    )
                    .unwrap();
                }
                "a symbolic link" => std::os::unix::fs::symlink("/etc/hostname", &file).unwrap(),
                _ => std::fs::create_dir(&file).unwrap(),
            }
            let what = format!("the {which} is {kind}");
            let listed = {
                let dump = dump.clone();
                within_seconds(&what, move || list_dump(&dump).map(drop))
            };
            if which == "manifest" {
                let err = listed.expect_err(&what);
                assert!(err.is_bad_dump(), "{what}: {err:?}");
                assert!(err.to_string().contains(kind), "{what}: {err}");
            }
            let message = {
                let target = lab.root.join("target");
                let dump = dump.clone();
                within_seconds(&what, move || {
                    let target = Store::open(target).expect("store");
                    let options = RestoreOptions::new().on_conflict(OnConflict::Overwrite);
                    restore(&target, &dump, &options).expect_err("refused")
                })
            };
            assert!(message.is_bad_dump(), "{what}: {message:?}");
            assert!(message.to_string().contains(kind), "{what}: {message}");
            assert_eq!(
                lab.target.usage().unwrap().used,
                0,
                "{what}: something was written"
            );
        }
    }
}
