//! `brain capacity [SIZE|none]`: show or set the store's capacity.

use crate::console::Console;
use anyhow::Context;
use brain_core::ObjectStore;
use serde::Serialize;

use super::{in_context, print_json};
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
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    size: Option<Capacity>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(size) = size {
        in_context(store.set_capacity(size.bytes()), || {
            format!("cannot set the capacity of {}", store.location())
        })?;
    }
    let usage = store
        .usage()
        .with_context(|| format!("cannot read the usage of {}", store.location()))?;
    if json {
        return print_json(
            console,
            &CapacityJson {
                capacity: usage.capacity,
                used: usage.used,
                free: usage.free,
            },
        );
    }
    let capacity = usage.capacity.map_or_else(
        || "none (limited only by what holds the store)".to_owned(),
        format::size_exact,
    );
    console.out(|out| {
        writeln!(out, "capacity {capacity}")?;
        writeln!(out, "used     {}", format::size_exact(usage.used))?;
        writeln!(out, "free     {}", format::size_exact(usage.free))?;
        if usage.capacity.is_some_and(|c| usage.used > c) {
            writeln!(
                out,
                "note: more is stored than the capacity allows; writes fail until objects are deleted"
            )?;
        }
        Ok(())
    })
}
