//! Shared helpers: a store in a temporary directory on /dev/shm, and child
//! processes of `brain-test-helper` that are killed if a test gives up on them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brain_core::{ObjectKey, Store};

pub use brain_tests::child::{Child as Helper, Finished};
pub use brain_tests::{check_value, exit, make_value, seed_of};

/// How long any single child may run before the test calls it hung.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A store in a fresh directory under /dev/shm, removed on drop even when
/// the test fails.
pub struct TestStore {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TestStore {
    pub fn new() -> Result<TestStore> {
        let dir = tempfile::Builder::new()
            .prefix("brain-e2e")
            .tempdir_in("/dev/shm")
            .context("cannot create a temporary directory in /dev/shm")?;
        let path = dir.path().join("store");
        Ok(TestStore { dir, path })
    }

    /// The directory holding the store (and nothing else).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store's path, as the helper takes it on its command line.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temporary paths are UTF-8")
    }

    /// Opens the store in this process.
    pub fn open(&self) -> Result<Store> {
        Store::open(&self.path).with_context(|| format!("cannot open the store {}", self.arg()))
    }

    /// Every file or directory in the store whose name starts with `.tmp.`.
    pub fn temporary_files(&self) -> Result<Vec<PathBuf>> {
        files_named(&self.path, ".tmp.")
    }

    /// The file holding `name` in `namespace`.
    pub fn object_file(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        object_file(&self.path, namespace, name)
    }
}

/// Every entry under `root` (recursively) whose name starts with `prefix`.
pub fn files_named(root: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir:?}"))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(entry.path());
            }
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    Ok(found)
}

/// The object file of `name` in `namespace` in the store at `store`: the
/// file named by its key in one of the namespace directories.
pub fn object_file(store: &Path, namespace: &str, name: &str) -> Result<PathBuf> {
    let hex = ObjectKey::new(namespace, name).to_hex();
    for entry in std::fs::read_dir(store.join("ns"))? {
        let candidate = entry?.path().join(&hex);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("no file for {namespace:?}/{name:?} (key {hex}) in {store:?}")
}

/// The self-describing value's seed, or a readable failure.
pub fn seed_in(bytes: &[u8]) -> Result<u64> {
    check_value(bytes).map_err(|e| anyhow::anyhow!("value read back is wrong: {e}"))
}

/// Starts `brain-test-helper` with `args`.
pub fn spawn<I, S>(args: I) -> Result<Helper>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Helper::spawn(Path::new(env!("CARGO_BIN_EXE_brain-test-helper")), args)
}

/// Runs `brain-test-helper` with `args` to completion (at most [`CHILD_TIMEOUT`]).
pub fn run<I, S>(args: I) -> Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn(args)?.finish(CHILD_TIMEOUT)
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
