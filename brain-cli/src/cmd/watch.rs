//! `brain watch [NAMESPACE|--all]`: one line per set or delete, as it happens.

use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use brain_core::{Store, WatchEvent, Watcher};
use serde::Serialize;

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
pub fn run(store: &Store, options: Options) -> anyhow::Result<()> {
    let (watcher, what) = match &options.namespace {
        Some(namespace) => (
            Watcher::namespace(store, namespace),
            format!("namespace {namespace:?}"),
        ),
        None => (Watcher::all(store), "every namespace".to_owned()),
    };
    let mut watcher =
        watcher.with_context(|| format!("cannot watch {what} of {}", store.path().display()))?;
    if !options.quiet {
        eprintln!(
            "watching {what} of {}; stop with Ctrl-C",
            store.path().display()
        );
    }
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut out = io::stdout().lock();
    let mut seen = 0;
    while options.count.is_none_or(|count| seen < count) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let Some(event) = watcher
            .next_event(left)
            .with_context(|| format!("cannot watch {what} of {}", store.path().display()))?
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
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .context("cannot write to standard output")?;
        seen += 1;
    }
    if let (Some(count), Some(timeout)) = (options.count, options.timeout) {
        if seen < count {
            bail!(
                "saw {seen} of {count} events in {timeout:?}; is the writer using the same store ({}) and namespace?",
                store.path().display()
            );
        }
    }
    Ok(())
}
