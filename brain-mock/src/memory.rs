//! The `memory://NAME` backend: named in-memory stores shared by everything
//! in one process, as a shared-memory store is shared by every process on a
//! host.
//!
//! Code under test opens `memory://NAME` (from `BRAIN_URL`, say) and so does
//! the test: both get the same store. It lives until
//! [`drop_memory_store`] forgets it (and the last handle goes), or the process
//! ends. Nothing leaves the process: another process opening the same URL
//! gets a store of its own.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::store::MockStore;

fn registry() -> &'static Mutex<HashMap<String, MockStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, MockStore>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// The store at `memory://NAME` in this process, created empty on first use
/// (with no capacity limit and no faults).
pub fn memory_store(name: &str) -> MockStore {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(name.to_owned())
        .or_insert_with(|| MockStore::builder().name(name).build())
        .clone()
}

/// Forgets the store at `memory://NAME`: the next [`memory_store`] of that
/// name is a new, empty one. Handles already open keep the old one. Returns
/// whether there was such a store.
pub fn drop_memory_store(name: &str) -> bool {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name)
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain_core::{ObjectStore, ObjectStoreExt};

    #[test]
    fn one_name_one_store_until_dropped() -> brain_core::Result<()> {
        let name = "brain-mock-registry-test";
        memory_store(name).put_text("ns", "x", "one")?;
        assert_eq!(
            memory_store(name).get_text("ns", "x")?.as_deref(),
            Some("one")
        );
        assert!(memory_store("another").get("ns", "x")?.is_none());
        let held = memory_store(name);
        assert!(drop_memory_store(name));
        assert!(memory_store(name).get("ns", "x")?.is_none());
        assert_eq!(held.get_text("ns", "x")?.as_deref(), Some("one"));
        assert_eq!(held.location().to_string(), format!("memory://{name}"));
        assert!(drop_memory_store(name));
        assert!(!drop_memory_store(name));
        Ok(())
    }
}
