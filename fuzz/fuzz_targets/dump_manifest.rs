//! A dump's MANIFEST.json, read from a file as a reader opens it.

#![no_main]

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use brain_persist::fuzzing::read_manifest;
use libfuzzer_sys::fuzz_target;
use rustix::fs::{memfd_create, MemfdFlags};

fuzz_target!(|data: &[u8]| {
    // A file in memory: a directory per input would be too slow.
    let mut file = File::from(memfd_create("MANIFEST.json", MemfdFlags::CLOEXEC).unwrap());
    file.write_all(data).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    if let Err(err) = read_manifest(Path::new("/dump"), file) {
        drop(err.to_string());
    }
});
