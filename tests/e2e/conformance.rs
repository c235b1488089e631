//! The conformance suite on every backend, each opened by its URL.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use brain::{ObjectStore, OpenOptions};
use brain_tests::conformance;

/// Runs the suite on stores opened from URLs made by `url` (one per check),
/// each with the capacity the check asks for.
fn run_on(url: impl Fn() -> Result<String>) -> Result<()> {
    let open = |capacity: Option<u64>| -> Result<Arc<dyn ObjectStore>> {
        let url = url()?;
        let mut options = OpenOptions::new();
        if capacity.is_some() {
            options = options.capacity(capacity);
        }
        options
            .open(&url)
            .with_context(|| format!("cannot open {url}"))
    };
    conformance::run_all(&open)?;
    conformance::namespace_handle(open(None)?)
}

#[test]
fn shared_memory_conforms() -> Result<()> {
    let dirs = RefCell::new(Vec::new());
    let result = run_on(|| {
        let dir = tempfile::Builder::new()
            .prefix("brain-conformance")
            .tempdir_in("/dev/shm")?;
        let url = format!("shm://{}", dir.path().join("store").display());
        dirs.borrow_mut().push(dir);
        Ok(url)
    });
    drop(dirs);
    result
}

#[test]
fn memory_conforms() -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let names = RefCell::new(Vec::new());
    let result = run_on(|| {
        let name = format!("conformance-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        names.borrow_mut().push(name.clone());
        Ok(format!("memory://{name}"))
    });
    for name in names.into_inner() {
        brain::drop_memory_store(&name);
    }
    result
}
