//! `brain ns ls` and `brain ns rm NS`.

use anyhow::Context;
use brain_core::ObjectStore;
use serde::Serialize;

use super::print_json;
use crate::console::Console;
use crate::format::{self, Table};

/// One namespace as `ns ls --json` and `stats --json` print it.
#[derive(Debug, Serialize)]
pub struct NamespaceJson {
    /// Its name.
    pub namespace: String,
    /// How many objects it holds.
    pub objects: u64,
    /// Bytes they take in the store.
    pub bytes: u64,
}

/// Every namespace with its object count and bytes.
pub fn stats(store: &dyn ObjectStore) -> anyhow::Result<Vec<NamespaceJson>> {
    Ok(store
        .namespace_stats()
        .context("cannot list the namespaces")?
        .into_iter()
        .map(|s| NamespaceJson {
            namespace: s.namespace,
            objects: s.objects,
            bytes: s.bytes,
        })
        .collect())
}

/// A table of namespaces: name, objects, size.
pub fn table(namespaces: &[NamespaceJson]) -> Table {
    let mut table = Table::new(&[("NAMESPACE", false), ("OBJECTS", true), ("SIZE", true)]);
    for ns in namespaces {
        table.row(vec![
            format::name(&ns.namespace),
            ns.objects.to_string(),
            format::size(ns.bytes),
        ]);
    }
    table
}

/// `brain ns ls`.
pub fn list(console: &mut Console, store: &dyn ObjectStore, json: bool) -> anyhow::Result<()> {
    let namespaces = stats(store)?;
    if json {
        return print_json(console, &namespaces);
    }
    console.out(|out| table(&namespaces).write(out))
}

/// `brain ns rm NS`.
pub fn remove(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
) -> anyhow::Result<()> {
    let removed = store
        .remove_namespace(namespace)
        .with_context(|| format!("cannot remove namespace {namespace:?}"))?;
    let plural = if removed == 1 { "" } else { "s" };
    console.out(|out| {
        writeln!(
            out,
            "removed namespace {} and its {removed} object{plural}",
            format::name(namespace)
        )
    })
}
