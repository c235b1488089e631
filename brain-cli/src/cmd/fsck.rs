//! `brain fsck [--delete-corrupt]`: check every object, rebuild the usage count.

use anyhow::bail;
use brain_core::ObjectStore;
use serde::Serialize;

use super::{in_context, print_json};
use crate::console::Console;
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
    broken_frames: Vec<BrokenFrameJson>,
    unreferenced_frame_parts: u64,
}

#[derive(Debug, Serialize)]
struct BrokenFrameJson {
    namespace: String,
    name: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct CorruptJson {
    location: String,
    reason: String,
}

/// Checks the store and prints the report. Corrupt objects left in place
/// make it fail (exit 1) after the report is printed.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    delete_corrupt: bool,
    json: bool,
) -> anyhow::Result<()> {
    let report = in_context(store.fsck(delete_corrupt), || {
        format!("cannot check {}", store.location())
    })?;
    let swept = super::sweep_frame_parts(store, false)?;
    let broken: Vec<BrokenFrameJson> = swept
        .iter()
        .flat_map(|(ns, s)| {
            s.broken.iter().map(|(name, reason)| BrokenFrameJson {
                namespace: ns.clone(),
                name: name.clone(),
                reason: reason.clone(),
            })
        })
        .collect();
    let unreferenced = swept
        .iter()
        .map(|(_, s)| s.unreferenced.len() as u64)
        .sum::<u64>();
    let broken_count = broken.len();
    let remaining = report.corrupt.len() as u64 - report.deleted;
    if json {
        print_json(
            console,
            &FsckJson {
                objects: report.objects,
                used_before: report.used_before,
                used_after: report.used_after,
                corrupt: report
                    .corrupt
                    .iter()
                    .map(|corrupt| CorruptJson {
                        location: corrupt.location.to_string(),
                        reason: corrupt.reason.clone(),
                    })
                    .collect(),
                deleted: report.deleted,
                recycled: report.recycled,
                broken_frames: broken,
                unreferenced_frame_parts: unreferenced,
            },
        )?;
    } else {
        console.out(|out| {
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
            for corrupt in &report.corrupt {
                writeln!(out, "corrupt: {}", corrupt.reason)?;
            }
            for frame in &broken {
                writeln!(
                    out,
                    "broken frame: {:?} in namespace {:?}: {}",
                    frame.name, frame.namespace, frame.reason
                )?;
            }
            if unreferenced > 0 {
                writeln!(
                    out,
                    "{unreferenced} frame part{} no frame references; `brain gc` removes {}",
                    if unreferenced == 1 { "" } else { "s" },
                    if unreferenced == 1 { "it" } else { "them" }
                )?;
            }
            Ok(())
        })?;
    }
    if broken_count > 0 {
        bail!(
            "{broken_count} frame{} in {} miss{} a part; delete {} (`brain rm`) and write {} again",
            if broken_count == 1 { "" } else { "s" },
            store.location(),
            if broken_count == 1 { "es" } else { "" },
            if broken_count == 1 { "it" } else { "them" },
            if broken_count == 1 { "it" } else { "them" },
        );
    }
    if remaining > 0 {
        bail!(
            "{remaining} corrupt object{} left in {}; delete {} with `brain fsck --delete-corrupt` and write {} again",
            if remaining == 1 { "" } else { "s" },
            store.location(),
            if remaining == 1 { "it" } else { "them" },
            if remaining == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}
