//! `brain gc`: remove what writers that died left behind, and give back the
//! pages replaced objects hold for reuse.

use brain_core::ObjectStore;
use serde::Serialize;

use super::{in_context, print_json};
use crate::console::Console;
use crate::format;

/// What `gc --json` prints.
#[derive(Debug, Serialize)]
struct GcJson {
    stray_objects: u64,
    stray_namespaces: u64,
    bytes_freed: u64,
    recycled_objects: u64,
    recycled_bytes: u64,
    reservations_reclaimed: u64,
    frame_parts: u64,
    frame_part_bytes: u64,
}

/// Runs the garbage collection and reports what it removed.
pub fn run(console: &mut Console, store: &dyn ObjectStore, json: bool) -> anyhow::Result<()> {
    // Frame parts first: the store's own collection then sees what they freed.
    let swept = super::sweep_frame_parts(store, true)?;
    let unreferenced = swept.iter().flat_map(|(_, s)| &s.unreferenced);
    let frame_parts = unreferenced.clone().count() as u64;
    let frame_part_bytes: u64 = unreferenced.map(|(_, size)| size).sum();
    let report = in_context(store.gc(), || {
        format!("cannot collect garbage in {}", store.location())
    })?;
    if json {
        return print_json(
            console,
            &GcJson {
                stray_objects: report.stray_objects,
                stray_namespaces: report.stray_namespaces,
                bytes_freed: report.bytes_freed,
                recycled_objects: report.recycled_objects,
                recycled_bytes: report.recycled_bytes,
                reservations_reclaimed: report.reservations_reclaimed,
                frame_parts,
                frame_part_bytes,
            },
        );
    }
    console.out(|out| {
        writeln!(
            out,
            "removed {} unfinished object{} and {} half-made namespace{}, freeing {}",
            report.stray_objects,
            if report.stray_objects == 1 { "" } else { "s" },
            report.stray_namespaces,
            if report.stray_namespaces == 1 {
                ""
            } else {
                "s"
            },
            format::size(report.bytes_freed)
        )?;
        writeln!(
            out,
            "gave back {} held by {} replaced object{} kept for reuse",
            format::size(report.recycled_bytes),
            report.recycled_objects,
            if report.recycled_objects == 1 {
                ""
            } else {
                "s"
            },
        )?;
        if frame_parts > 0 {
            writeln!(
                out,
                "removed {frame_parts} frame part{} no frame referenced, freeing {}",
                if frame_parts == 1 { "" } else { "s" },
                format::size(frame_part_bytes)
            )?;
        }
        if report.reservations_reclaimed > 0 {
            writeln!(
                out,
                "gave back {} reserved by writers that died",
                format::size(report.reservations_reclaimed)
            )?;
        }
        Ok(())
    })
}
