//! A dump's payload file, read against its index entry as a restore reads
//! it: each frame's compressed bytes checked, then decompressed and checked
//! again (see `brain_fuzz::FramesInput` for the input's layout).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use brain_core::ObjectStoreExt;
use brain_fuzz::{index_key, FramesInput};
use brain_persist::fuzzing::Payloads;
use brain_persist::{dump, DumpOptions};
use libfuzzer_sys::fuzz_target;

/// The payload file each input is written to, in the dump's `data/`.
const FILE: &str = "00000000000000ff-00000000.zst";
const PREFIX: &str = "brain-fuzz-dump-";

struct Dump {
    payloads: Payloads,
    file: PathBuf,
}

/// A real dump, made once per process; each input replaces one payload file.
fn dump_once() -> &'static Mutex<Dump> {
    static DUMP: OnceLock<Mutex<Dump>> = OnceLock::new();
    DUMP.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        // libFuzzer exits without running destructors: remove the dumps of
        // runs that are over.
        for entry in std::fs::read_dir(&root).unwrap().flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = root.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = brain::memory_store("fuzz-dump-frames");
        store.put_text("ns", "seed", "a payload").unwrap();
        dump(&store, &dir, &DumpOptions::new()).unwrap();
        Mutex::new(Dump {
            payloads: Payloads::open(&dir).unwrap(),
            file: dir.join("data").join(FILE),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = FramesInput::parse(data) else {
        return;
    };
    let mut dump = dump_once().lock().unwrap();
    std::fs::write(&dump.file, input.file_bytes()).unwrap();
    let entry = input.entry_json("ns", "name", FILE);
    match dump.payloads.read(&index_key("ns", "name"), &entry) {
        Ok(len) => {
            assert_eq!(len, input.size);
            assert!(input.frames.is_empty() || !input.wrong_frame_checksums);
        }
        Err(err) => drop(err.to_string()),
    }
});
