//! `brain stats`: capacity, usage, the filesystem, and every namespace.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use brain_core::{ObjectStore, Store};
use serde::Serialize;

use super::ns::{self, NamespaceJson};
use super::{print_json, with_stdout};
use crate::format;

/// What `stats --json` prints.
#[derive(Debug, Serialize)]
struct StatsJson {
    path: PathBuf,
    /// `null` when only the filesystem limits the store.
    capacity: Option<u64>,
    used: u64,
    /// Bytes of replaced objects kept for reuse (`brain gc` gives them back).
    recycled: u64,
    free: u64,
    filesystem_size: u64,
    filesystem_free: u64,
    objects: u64,
    namespaces: Vec<NamespaceJson>,
}

/// Prints the store's statistics.
pub fn run(store: &Store, json: bool) -> anyhow::Result<()> {
    let usage = store
        .usage()
        .with_context(|| format!("cannot read the usage of {}", store.path().display()))?;
    let namespaces = ns::stats(store)?;
    let stats = StatsJson {
        path: store.path().to_owned(),
        capacity: usage.capacity,
        used: usage.used,
        recycled: usage.pooled,
        free: usage.free(),
        filesystem_size: usage.filesystem_size,
        filesystem_free: usage.filesystem_free,
        objects: namespaces.iter().map(|n| n.objects).sum(),
        namespaces,
    };
    if json {
        return print_json(&stats);
    }
    let capacity = stats.capacity.map_or_else(
        || "none (limited by the filesystem only)".to_owned(),
        format::size_exact,
    );
    let lines = [
        ("store", stats.path.display().to_string()),
        ("capacity", capacity),
        ("used", format::size_exact(stats.used)),
        ("recycled", format::size_exact(stats.recycled)),
        ("free", format::size_exact(stats.free)),
        ("filesystem", format::size_exact(stats.filesystem_size)),
        ("fs free", format::size_exact(stats.filesystem_free)),
        ("namespaces", stats.namespaces.len().to_string()),
        ("objects", stats.objects.to_string()),
    ];
    with_stdout(|out| {
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
