//! `brain gc`: remove what writers that died left behind, and give back the
//! pages replaced objects hold for reuse.

use std::io::Write;

use anyhow::Context;
use brain_core::Store;
use serde::Serialize;

use super::{print_json, with_stdout};
use crate::format;

/// What `gc --json` prints.
#[derive(Debug, Serialize)]
struct GcJson {
    stray_files: u64,
    stray_dirs: u64,
    bytes_freed: u64,
    recycled_files: u64,
    recycled_bytes: u64,
}

/// Runs the garbage collection and reports what it removed.
pub fn run(store: &Store, json: bool) -> anyhow::Result<()> {
    let report = store
        .gc()
        .with_context(|| format!("cannot collect garbage in {}", store.path().display()))?;
    if json {
        return print_json(&GcJson {
            stray_files: report.stray_files,
            stray_dirs: report.stray_dirs,
            bytes_freed: report.bytes_freed,
            recycled_files: report.pool_files,
            recycled_bytes: report.pool_bytes,
        });
    }
    with_stdout(|out| {
        writeln!(
            out,
            "removed {} stray file{} and {} stray director{}, freeing {}",
            report.stray_files,
            if report.stray_files == 1 { "" } else { "s" },
            report.stray_dirs,
            if report.stray_dirs == 1 { "y" } else { "ies" },
            format::size(report.bytes_freed)
        )?;
        writeln!(
            out,
            "gave back {} held by {} replaced object{} kept for reuse",
            format::size(report.pool_bytes),
            report.pool_files,
            if report.pool_files == 1 { "" } else { "s" },
        )
    })
}
