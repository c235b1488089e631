//! `brain fsck [--delete-corrupt]`: check every object, rebuild the usage count.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use brain_core::Store;
use serde::Serialize;

use super::{print_json, with_stdout};
use crate::format;

/// What `fsck --json` prints.
#[derive(Debug, Serialize)]
struct FsckJson {
    objects: u64,
    used_before: u64,
    used_after: u64,
    corrupt: Vec<CorruptJson>,
    deleted: u64,
    recycled: u64,
}

#[derive(Debug, Serialize)]
struct CorruptJson {
    path: PathBuf,
    reason: String,
}

/// Checks the store and prints the report. Corrupt objects left in place
/// make it fail (exit 1) after the report is printed.
pub fn run(store: &Store, delete_corrupt: bool, json: bool) -> anyhow::Result<()> {
    let report = store
        .fsck(delete_corrupt)
        .with_context(|| format!("cannot check {}", store.path().display()))?;
    let remaining = report.corrupt.len() as u64 - report.deleted;
    if json {
        print_json(&FsckJson {
            objects: report.objects,
            used_before: report.used_before,
            used_after: report.used_after,
            corrupt: report
                .corrupt
                .iter()
                .map(|(path, reason)| CorruptJson {
                    path: path.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            deleted: report.deleted,
            recycled: report.pooled,
        })?;
    } else {
        with_stdout(|out| {
            writeln!(
                out,
                "checked {} object{}: {} corrupt, {} deleted",
                report.objects + report.corrupt.len() as u64,
                if report.objects + report.corrupt.len() as u64 == 1 {
                    ""
                } else {
                    "s"
                },
                report.corrupt.len(),
                report.deleted
            )?;
            writeln!(
                out,
                "usage was {}, is now {}",
                format::size_exact(report.used_before),
                format::size_exact(report.used_after)
            )?;
            // Each reason names the file already.
            for (_, reason) in &report.corrupt {
                writeln!(out, "corrupt: {reason}")?;
            }
            Ok(())
        })?;
    }
    if remaining > 0 {
        bail!(
            "{remaining} corrupt object{} left in {}; delete {} with `brain fsck --delete-corrupt` and write {} again",
            if remaining == 1 { "" } else { "s" },
            store.path().display(),
            if remaining == 1 { "it" } else { "them" },
            if remaining == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}
