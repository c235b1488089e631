//! `brain ns ls` and `brain ns rm NS`.

use anyhow::Context;
use brain_core::frames::is_frame_part;
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
    /// Its names, as `brain ls` lists them.
    pub names: u64,
    /// How many objects it holds: a frame changed in place is its manifest
    /// and its parts.
    pub objects: u64,
    /// Bytes they take in the store.
    pub bytes: u64,
}

/// Every namespace with its name and object counts and bytes.
pub fn stats(store: &dyn ObjectStore) -> anyhow::Result<Vec<NamespaceJson>> {
    let mut namespaces = Vec::new();
    for s in store
        .namespace_stats()
        .context("cannot list the namespaces")?
    {
        let names = match store.names(&s.namespace) {
            Ok(listed) => listed.iter().filter(|n| !is_frame_part(n)).count() as u64,
            // Removed since it was counted.
            Err(brain_core::Error::NamespaceNotFound { .. }) => 0,
            Err(err) => {
                return Err(anyhow::Error::from(err)
                    .context(format!("cannot list the names of {:?}", s.namespace)))
            }
        };
        namespaces.push(NamespaceJson {
            namespace: s.namespace,
            names,
            objects: s.objects,
            bytes: s.bytes,
        });
    }
    Ok(namespaces)
}

/// A table of namespaces: name, names, objects, size.
pub fn table(namespaces: &[NamespaceJson]) -> Table {
    let mut table = Table::new(&[
        ("NAMESPACE", false),
        ("NAMES", true),
        ("OBJECTS", true),
        ("SIZE", true),
    ]);
    for ns in namespaces {
        table.row(vec![
            format::name(&ns.namespace),
            ns.names.to_string(),
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
    // As Python's remove_namespace (and brain-plasma's) refuse it: the
    // namespace every handle starts in stays, and its objects go by name.
    if namespace == "default" {
        anyhow::bail!(
            "cannot remove the default namespace: it always exists; delete its objects by name with `brain rm NAME...` (`brain ls` lists them)"
        );
    }
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
