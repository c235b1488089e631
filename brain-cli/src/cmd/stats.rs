//! `brain stats`: capacity, usage, the filesystem, and every namespace.

use anyhow::Context;
use brain_core::ObjectStore;
use serde::Serialize;

use super::ns::{self, NamespaceJson};
use super::print_json;
use crate::console::Console;
use crate::format;

/// What `stats --json` prints.
#[derive(Debug, Serialize)]
struct StatsJson {
    /// The store's path or URL.
    store: String,
    /// `null` when only what holds the store limits it.
    capacity: Option<u64>,
    used: u64,
    /// Bytes of replaced objects kept for reuse (`brain gc` gives them back).
    recycled: u64,
    free: u64,
    /// The store's own figures (`filesystem_size` and `filesystem_free` for
    /// a shared-memory store).
    #[serde(flatten)]
    details: serde_json::Map<String, serde_json::Value>,
    /// Names, as `brain ls` lists them.
    names: u64,
    /// Objects stored: a frame changed in place is its manifest and its
    /// parts.
    objects: u64,
    namespaces: Vec<NamespaceJson>,
}

/// Prints the store's statistics.
pub fn run(console: &mut Console, store: &dyn ObjectStore, json: bool) -> anyhow::Result<()> {
    let usage = store
        .usage()
        .with_context(|| format!("cannot read the usage of {}", store.location()))?;
    let namespaces = ns::stats(store)?;
    let stats = StatsJson {
        store: store.location().to_string(),
        capacity: usage.capacity,
        used: usage.used,
        recycled: usage.recycled,
        free: usage.free,
        details: usage
            .details
            .iter()
            .map(|d| (d.key.to_owned(), d.bytes.into()))
            .collect(),
        names: namespaces.iter().map(|n| n.names).sum(),
        objects: namespaces.iter().map(|n| n.objects).sum(),
        namespaces,
    };
    if json {
        return print_json(console, &stats);
    }
    let capacity = stats.capacity.map_or_else(
        || "none (limited only by what holds the store)".to_owned(),
        format::size_exact,
    );
    let mut lines = vec![
        ("store", stats.store.clone()),
        ("capacity", capacity),
        ("used", format::size_exact(stats.used)),
        ("recycled", format::size_exact(stats.recycled)),
        ("free", format::size_exact(stats.free)),
    ];
    for detail in &usage.details {
        lines.push((detail.label, format::size_exact(detail.bytes)));
    }
    lines.push(("namespaces", stats.namespaces.len().to_string()));
    lines.push(("names", stats.names.to_string()));
    lines.push(("objects", stats.objects.to_string()));
    console.out(|out| {
        for (label, value) in &lines {
            writeln!(out, "{label:<11} {value}")?;
        }
        if !stats.namespaces.is_empty() {
            writeln!(out)?;
            ns::table(&stats.namespaces).write(out)?;
        }
        Ok(())
    })
}
