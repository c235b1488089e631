//! `brain capacity [SIZE|none]`: show or set the store's capacity.

use std::io::Write;

use anyhow::Context;
use brain_core::{ObjectStore, Store};
use serde::Serialize;

use super::{print_json, with_stdout};
use crate::{format, Capacity};

/// What `capacity --json` prints.
#[derive(Debug, Serialize)]
struct CapacityJson {
    /// `null` when only the filesystem limits the store.
    capacity: Option<u64>,
    used: u64,
    free: u64,
}

/// Sets the capacity when `size` is given, then prints it.
pub fn run(store: &Store, size: Option<Capacity>, json: bool) -> anyhow::Result<()> {
    if let Some(size) = size {
        store.set_capacity(size.bytes());
    }
    let usage = store
        .usage()
        .with_context(|| format!("cannot read the usage of {}", store.path().display()))?;
    if json {
        return print_json(&CapacityJson {
            capacity: usage.capacity,
            used: usage.used,
            free: usage.free(),
        });
    }
    let capacity = usage.capacity.map_or_else(
        || "none (limited by the filesystem only)".to_owned(),
        format::size_exact,
    );
    with_stdout(|out| {
        writeln!(out, "capacity {capacity}")?;
        writeln!(out, "used     {}", format::size_exact(usage.used))?;
        writeln!(out, "free     {}", format::size_exact(usage.free()))?;
        if usage.capacity.is_some_and(|c| usage.used > c) {
            writeln!(
                out,
                "note: more is stored than the capacity allows; writes fail until objects are deleted"
            )?;
        }
        Ok(())
    })
}
