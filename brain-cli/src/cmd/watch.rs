//! `brain watch [NAMESPACE|--all]`: one line per set or delete, as it happens.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use brain_core::{ObjectStore, WatchEvent};
use serde::Serialize;

use crate::console::Console;
use crate::format;

/// How `brain watch` was asked to run.
#[derive(Debug)]
pub struct Options {
    /// The namespace to watch; `None` for every namespace.
    pub namespace: Option<String>,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Do not announce on standard error that the watch is in place.
    pub quiet: bool,
    /// Print JSON lines.
    pub json: bool,
}

/// One event as `watch --json` prints it, one per line.
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    event: &'a str,
    namespace: &'a str,
    name: &'a str,
    time: String,
}

/// Prints events until `count` events were seen, `timeout` passed, or the
/// process is killed. Each line is flushed as it is printed.
pub fn run(console: &mut Console, store: &dyn ObjectStore, options: Options) -> anyhow::Result<()> {
    let what = match &options.namespace {
        Some(namespace) => format!("namespace {namespace:?}"),
        None => "every namespace".to_owned(),
    };
    let mut watcher = store
        .watch(options.namespace.as_deref())
        .map(brain_core::frames::skip_parts)
        .with_context(|| format!("cannot watch {what} of {}", store.location()))?;
    if !options.quiet {
        console.note(&format!(
            "watching {what} of {}; stop with Ctrl-C",
            store.location()
        ));
    }
    let deadline = options.timeout.and_then(|t| Instant::now().checked_add(t));
    let mut seen = 0;
    while options.count.is_none_or(|count| seen < count) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let Some(event) = watcher
            .next_event(left)
            .with_context(|| format!("cannot watch {what} of {}", store.location()))?
        else {
            break;
        };
        let kind = match &event {
            WatchEvent::Set { .. } => "set",
            WatchEvent::Deleted { .. } => "deleted",
            _ => "changed",
        };
        let line = if options.json {
            serde_json::to_string(&EventJson {
                event: kind,
                namespace: event.namespace(),
                name: event.name(),
                time: format::time_precise(SystemTime::now()),
            })
            .context("cannot encode JSON")?
        } else {
            format!(
                "{kind}\t{}\t{}",
                format::name(event.namespace()),
                format::name(event.name())
            )
        };
        console.out(|out| writeln!(out, "{line}"))?;
        seen += 1;
    }
    if let (Some(count), Some(timeout)) = (options.count, options.timeout) {
        if seen < count {
            bail!(
                "saw {seen} of {count} events in {timeout:?}; is the writer using the same store ({}) and namespace?",
                store.location()
            );
        }
    }
    Ok(())
}
