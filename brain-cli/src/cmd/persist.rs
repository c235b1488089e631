//! `brain dump`, `brain restore`, `brain sync` and `brain dumps ls`: the
//! store on disk, with brain-persist.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use brain_core::ObjectStore;
use brain_persist::{
    DumpOptions, DumpReport, OnConflict, Progress, RestoreOptions, RestoreReport, SyncOptions,
};
use serde::Serialize;

use super::{codec_name, print_json};
use crate::console::{note, Console};
use crate::format::{self, Table};

/// Progress bars unless `--quiet` (they hide themselves off a terminal).
fn progress(console: &Console, quiet: bool) -> Progress {
    if quiet || !console.terminal() {
        Progress::Hidden
    } else {
        Progress::Terminal
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

/// What `dump --json` prints.
#[derive(Debug, Serialize)]
struct DumpJson {
    path: String,
    objects: u64,
    namespaces: u64,
    payload_bytes: u64,
    compressed_bytes: u64,
    vanished: u64,
    cache_namespaces_left_out: Vec<String>,
    seconds: f64,
}

/// `brain dump DIR`: the store, or one namespace, to a dump directory.
pub fn dump(
    console: &mut Console,
    store: &dyn ObjectStore,
    dir: &Path,
    namespace: Option<String>,
    level: i32,
    quiet: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut options = DumpOptions::new()
        .level(level)
        .progress(progress(console, quiet));
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let report: DumpReport = brain_persist::dump(store, dir, &options)
        .with_context(|| format!("cannot dump {} to {}", store.location(), dir.display()))?;
    if let Some(kept) = &report.previous_kept_at {
        console.note(&format!(
            "brain: the previous dump was left at {}: {}",
            kept.display(),
            report
                .previous_kept_because
                .as_deref()
                .unwrap_or("a reader still has it open; the next dump removes it")
        ));
    }
    if !report.cache_namespaces_left_out.is_empty() && !quiet && !json {
        let n = report.cache_namespaces_left_out.len() as u64;
        console.note(&format!(
            "brain: left out {n} namespace{} of this host's read cache of a Redis server ({}): \
             copies of what the server holds, fetched again when needed; dump one with --namespace NAME",
            plural(n),
            report.cache_namespaces_left_out.join(", ")
        ));
    }
    if json {
        return print_json(
            console,
            &DumpJson {
                path: report.path.display().to_string(),
                objects: report.objects,
                namespaces: report.namespaces,
                payload_bytes: report.payload_bytes,
                compressed_bytes: report.compressed_bytes,
                vanished: report.vanished,
                cache_namespaces_left_out: report.cache_namespaces_left_out.clone(),
                seconds: report.elapsed.as_secs_f64(),
            },
        );
    }
    if quiet {
        return Ok(());
    }
    console.out(|out| {
        writeln!(
            out,
            "dumped {} object{} in {} namespace{} ({}, {} compressed) to {} in {}",
            report.objects,
            plural(report.objects),
            report.namespaces,
            plural(report.namespaces),
            format::size(report.payload_bytes),
            format::size(report.compressed_bytes),
            report.path.display(),
            seconds(report.elapsed)
        )
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What `restore --json` prints.
#[derive(Debug, Serialize)]
struct RestoreJson {
    path: String,
    restored: u64,
    skipped: u64,
    bytes: u64,
    seconds: f64,
}

/// `brain restore DIR`: a dump back into the store, checked first.
pub fn restore(
    console: &mut Console,
    store: &dyn ObjectStore,
    dir: &Path,
    namespace: Option<String>,
    on_conflict: OnConflict,
    quiet: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut options = RestoreOptions::new()
        .on_conflict(on_conflict)
        .progress(progress(console, quiet));
    if let Some(namespace) = namespace {
        options = options.namespace(namespace);
    }
    let report: RestoreReport = brain_persist::restore(store, dir, &options)
        .with_context(|| format!("cannot restore {} into {}", dir.display(), store.location()))?;
    if json {
        return print_json(
            console,
            &RestoreJson {
                path: report.path.display().to_string(),
                restored: report.restored,
                skipped: report.skipped,
                bytes: report.bytes,
                seconds: report.elapsed.as_secs_f64(),
            },
        );
    }
    if quiet {
        return Ok(());
    }
    console.out(|out| {
        write!(
            out,
            "restored {} object{} ({}) from {} in {}",
            report.restored,
            plural(report.restored),
            format::size(report.bytes),
            report.path.display(),
            seconds(report.elapsed)
        )?;
        if report.skipped > 0 {
            write!(out, "; skipped {} that already existed", report.skipped)?;
        }
        writeln!(out)
    })
}

/// How `brain sync` was asked to run.
#[derive(Debug)]
pub struct SyncArgs<'a> {
    /// The mirror directory.
    pub to: &'a Path,
    /// The longest a change waits while the store keeps changing.
    pub interval: Duration,
    /// How often the whole store is compared with the mirror.
    pub rescan: Duration,
    /// Mirror an emptied store as deletions.
    pub mirror_deletes_on_wipe: bool,
    /// Compare once, write the differences, and exit.
    pub once: bool,
    /// Log only what needs attention.
    pub quiet: bool,
    /// zstd level.
    pub level: i32,
}

/// `brain sync --to DIR`: mirror the store until killed.
pub fn sync(
    console: &mut Console,
    store: &Arc<dyn ObjectStore>,
    args: SyncArgs<'_>,
) -> anyhow::Result<()> {
    let quiet = args.quiet;
    let stderr = console.stderr();
    let options = SyncOptions::new()
        .interval(args.interval)
        .rescan(args.rescan)
        .mirror_deletes_on_wipe(args.mirror_deletes_on_wipe)
        .level(args.level)
        .log(move |line| {
            // Commits are routine; the rest is worth seeing even with --quiet.
            if !(quiet && (line.starts_with("commit ") || line.starts_with("mirroring "))) {
                note(
                    &stderr,
                    &format!("{} brain sync: {line}", format::time(SystemTime::now())),
                );
            }
        });
    let context = || {
        format!(
            "cannot mirror {} into {}",
            store.location(),
            args.to.display()
        )
    };
    let handle =
        brain_persist::spawn_sync(store.clone(), args.to, options).with_context(context)?;
    if args.once {
        handle.stop().with_context(context)?;
        return Ok(());
    }
    if !quiet {
        console.note(&format!(
            "{} brain sync: up to date; watching for changes (stop with Ctrl-C: the mirror stays consistent)",
            format::time(SystemTime::now())
        ));
    }
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
    }
    handle.stop().with_context(context)?;
    Ok(())
}

/// One object as `dumps ls --json` prints it.
#[derive(Debug, Serialize)]
struct DumpEntryJson {
    namespace: String,
    name: String,
    codec: String,
    size: u64,
    compressed_size: u64,
    created: String,
    created_unix_ns: u128,
    description: String,
    xxh3: String,
}

/// What `dumps ls --json` prints.
#[derive(Debug, Serialize)]
struct DumpInfoJson {
    path: String,
    kind: String,
    format_version: u64,
    generation: u64,
    written: String,
    writer: String,
    namespace: Option<String>,
    payload_bytes: u64,
    compressed_bytes: u64,
    objects: Vec<DumpEntryJson>,
}

/// `brain dumps ls DIR`: what a dump holds.
pub fn list(console: &mut Console, dir: &Path, json: bool) -> anyhow::Result<()> {
    let info = brain_persist::list_dump(dir)
        .with_context(|| format!("cannot read the dump at {}", dir.display()))?;
    if json {
        return print_json(
            console,
            &DumpInfoJson {
                path: info.path.display().to_string(),
                kind: info.kind.to_string(),
                format_version: info.format_version,
                generation: info.generation,
                written: format::time_precise(info.written),
                writer: info.writer.clone(),
                namespace: info.namespace.clone(),
                payload_bytes: info.payload_bytes(),
                compressed_bytes: info.compressed_bytes(),
                objects: info
                    .names()
                    .iter()
                    .map(|o| DumpEntryJson {
                        namespace: o.namespace.clone(),
                        name: o.name.clone(),
                        codec: codec_name(o.codec),
                        size: o.size,
                        compressed_size: o.compressed_size,
                        created: format::time_precise(o.created),
                        created_unix_ns: format::unix_nanos(o.created),
                        description: o.description.clone(),
                        xxh3: format!("{:016x}", o.checksum),
                    })
                    .collect(),
            },
        );
    }
    let mut table = Table::new(&[
        ("NAMESPACE", false),
        ("NAME", false),
        ("CODEC", false),
        ("SIZE", true),
        ("COMPRESSED", true),
        ("CREATED", false),
        ("DESCRIPTION", false),
    ]);
    let names = info.names();
    for o in &names {
        table.row(vec![
            format::name(&o.namespace),
            format::name(&o.name),
            codec_name(o.codec),
            format::size(o.size),
            format::size(o.compressed_size),
            format::time(o.created),
            super::ls::description(&o.description),
        ]);
    }
    let namespaces = info.namespaces().len() as u64;
    let objects = names.len() as u64;
    console.out(|out| {
        writeln!(
            out,
            "{}: {} (format {}, generation {}), written {} by {}",
            info.path.display(),
            info.kind,
            info.format_version,
            info.generation,
            format::time(info.written),
            info.writer
        )?;
        writeln!(
            out,
            "{objects} object{} in {namespaces} namespace{}{}, {} ({} compressed)",
            plural(objects),
            plural(namespaces),
            info.namespace
                .as_ref()
                .map(|ns| format!(" (a dump of namespace {})", format::name(ns)))
                .unwrap_or_default(),
            format::size(info.payload_bytes()),
            format::size(info.compressed_bytes())
        )?;
        if objects > 0 {
            writeln!(out)?;
        }
        table.write(out)?;
        out.flush()
    })
}
