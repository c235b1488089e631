//! The soak: writers, readers and a watcher in processes of their own on
//! shared names, large and small, for minutes, with replaces, deletes,
//! namespace removals, locked updates, recycling, `gc` and `fsck` beside
//! them. Every value read is checked whole (a torn or mixed read fails);
//! each process counts its file descriptors, mappings and memory at the
//! start and at the end; the store's accounting is checked exact while the
//! writers run and after.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use brain_core::{ObjectStore, ObjectView, Payload, Store, WatchEvent};
use brain_tests::{check_value, make_value, seed_of};

use crate::child;
use crate::rng::Rng;
use crate::victim::say;

const SHARED: &str = "shared";
const NAMES: u64 = 32;
const COUNTER_NS: &str = "counters";
const COUNTER: &str = "updates";
const SIZES: [usize; 5] = [64, 4096, 100_000, 1_500_000, 6 << 20];
/// How often each size is picked, out of 100.
const SIZE_WEIGHTS: [u64; 5] = [35, 25, 20, 15, 5];

pub struct Options {
    pub seconds: u64,
    pub writers: u32,
    pub readers: u32,
    pub seed: u64,
}

/// Runs the soak; false when anything was violated.
pub fn run(options: &Options) -> Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("brain-soak-")
        .tempdir_in("/dev/shm")
        .context("cannot create a directory in /dev/shm")?;
    let store_path = dir.path().join("store");
    let store = Store::builder()
        .path(&store_path)
        .capacity(3 << 30)
        .open()?;
    store.put(COUNTER_NS, COUNTER, &Payload::bytes(&0u64.to_le_bytes()))?;
    let store_arg = store_path.display().to_string();
    let seconds = options.seconds.to_string();
    println!(
        "soak: {} s, {} writers, {} readers, 1 watcher, seed {}",
        options.seconds, options.writers, options.readers, options.seed
    );

    let mut workers = Vec::new();
    let roles = (0..options.writers)
        .map(|i| ("writer", i + 1))
        .chain((0..options.readers).map(|i| ("reader", i + 1)))
        .chain(std::iter::once(("watcher", 0)));
    for (role, id) in roles {
        let args = [
            "soak-worker".to_owned(),
            role.to_owned(),
            store_arg.clone(),
            id.to_string(),
            seconds.clone(),
            (options.seed ^ u64::from(id) << 8 ^ role.len() as u64).to_string(),
        ];
        let mut child = child::spawn(&args)?;
        child.expect_line("ready", Duration::from_secs(60))?;
        workers.push((role, id, child));
    }

    // fsck beside the live writers: the count it finds must equal its
    // recount, every time.
    let mut violations = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let mut fscks = 0u64;
    let mut gcs = 0u64;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(3).min(deadline - Instant::now()));
        match store.fsck(false) {
            Ok(report) if report.used_before == report.used_after && report.corrupt.is_empty() => {}
            Ok(report) => violations.push(format!("fsck beside the writers: {report:?}")),
            Err(err) => violations.push(format!("fsck beside the writers failed: {err}")),
        }
        fscks += 1;
        if let Err(err) = store.gc() {
            violations.push(format!("gc beside the writers failed: {err}"));
        }
        gcs += 1;
    }

    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut updates = 0;
    for (role, id, mut child) in workers {
        let finished = child.wait(Duration::from_secs(120))?;
        let last = finished.stdout.last().cloned().unwrap_or_default();
        if finished.code != Some(0) || !last.starts_with("done") {
            violations.push(format!(
                "{role} {id} failed: {}",
                finished.stderr.trim_end()
            ));
            continue;
        }
        println!("  {role} {id}: {}", &last["done ".len()..]);
        for field in last.split_whitespace().skip(1) {
            if let Some((key, value)) = field.split_once('=') {
                if let Ok(n) = value.parse::<u64>() {
                    *totals.entry(key.to_owned()).or_default() += n;
                    if key == "updates" {
                        updates += n;
                    }
                }
            }
        }
    }

    // Locked updates: none lost.
    let counter = store
        .get(COUNTER_NS, COUNTER)?
        .context("the update counter is gone")?;
    let counted = u64::from_le_bytes(counter[..8].try_into().expect("8 bytes"));
    drop(counter);
    if counted != updates {
        violations.push(format!(
            "{updates} locked updates were made but the counter says {counted}"
        ));
    }
    // Everyone is gone: nothing temporary is left, the counts are exact.
    store.clear_cache();
    let gc = store.gc()?;
    let fsck = store.fsck(false)?;
    if fsck.used_before != fsck.used_after || !fsck.corrupt.is_empty() {
        violations.push(format!("fsck at the end: {fsck:?} (after {gc:?})"));
    }
    let temporary = count_temporary(&store_path)?;
    if temporary != 0 {
        violations.push(format!("{temporary} temporary files outlived gc"));
    }

    println!(
        "{:.0} s; operations: {}; fsck and gc beside the writers: {fscks} and {gcs}",
        started.elapsed().as_secs_f64(),
        totals
            .iter()
            .filter(|(k, _)| !k.contains('/'))
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("violations: {}", violations.len());
    for violation in &violations {
        println!("    {violation}");
    }
    Ok(violations.is_empty())
}

fn count_temporary(root: &std::path::Path) -> Result<u64> {
    let mut count = 0;
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            count += u64::from(entry.file_name().to_string_lossy().starts_with(".tmp."));
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    Ok(count)
}

/// What a process holds of the system: counted at the start and the end.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    fds: u64,
    maps: u64,
    /// All resident memory, the store's shared pages that the process
    /// touched included (its table, the objects it maps).
    rss_kib: u64,
    /// Resident memory of the process's own (its heap): what a leak
    /// grows. The shared pages come and go with what the process maps
    /// and reads, by tens of MiB, which `rss_kib` mixes in.
    anon_kib: u64,
}

fn footprint() -> Result<Footprint> {
    let fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    let maps = std::fs::read_to_string("/proc/self/maps")?.lines().count() as u64;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = |field: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {field} in /proc/self/status"))
    };
    Ok(Footprint {
        fds,
        maps,
        rss_kib: kib("VmRSS:")?,
        anon_kib: kib("RssAnon:")?,
    })
}

/// Allowed growth of a process's mappings (allocator arenas) and memory
/// between the start (after a warm-up) and the end: all resident memory
/// (the store's shared pages included), and the process's own. Ten
/// minutes of the soak grew a process's own memory by 32 to 276 KiB,
/// levelling off (2026-12-07, docs/RELIABILITY.md, "The soak").
const MAPS_SLACK: u64 = 8;
const RSS_SLACK_KIB: u64 = 48 << 10;
const ANON_SLACK_KIB: u64 = 4 << 10;

fn leak_check(start: Footprint, end: Footprint) -> Result<String> {
    let shown = format!(
        "fds={}/{} maps={}/{} rss_kib={}/{} anon_kib={}/{}",
        start.fds,
        end.fds,
        start.maps,
        end.maps,
        start.rss_kib,
        end.rss_kib,
        start.anon_kib,
        end.anon_kib
    );
    ensure!(end.fds <= start.fds, "file descriptors leak: {shown}");
    ensure!(
        end.maps <= start.maps + MAPS_SLACK,
        "mappings leak: {shown}"
    );
    ensure!(
        end.rss_kib <= start.rss_kib + RSS_SLACK_KIB,
        "memory leaks: {shown}"
    );
    ensure!(
        end.anon_kib <= start.anon_kib + ANON_SLACK_KIB,
        "memory leaks (the process's own): {shown}"
    );
    Ok(shown)
}

fn pick_size(rng: &mut Rng) -> usize {
    let mut roll = rng.below(100);
    for (size, weight) in SIZES.iter().zip(SIZE_WEIGHTS) {
        if roll < weight {
            return *size;
        }
        roll -= weight;
    }
    SIZES[0]
}

/// `soak-worker ROLE STORE ID SECONDS SEED`.
pub fn worker(args: &[String]) -> Result<()> {
    let [role, store, id, seconds, seed] = args else {
        bail!("usage: soak-worker ROLE STORE ID SECONDS SEED");
    };
    let store = Store::open(store)?;
    let id: u32 = id.parse()?;
    let duration = Duration::from_secs(seconds.parse()?);
    let mut rng = Rng::new(seed.parse()?);
    say("ready");
    match role.as_str() {
        "writer" => writer(&store, id, duration, &mut rng),
        "reader" => reader(&store, duration, &mut rng),
        "watcher" => watcher(&store, duration),
        other => bail!("no role {other:?}"),
    }
}

/// Runs `work` until `duration` passes, taking the footprint after a
/// warm-up of a tenth of the time (at most 5 s) and at the end.
fn timed(
    store: &Store,
    duration: Duration,
    mut work: impl FnMut() -> Result<()>,
    mut release: impl FnMut(),
) -> Result<String> {
    let started = Instant::now();
    let warm_up = (duration / 10).min(Duration::from_secs(5));
    let mut start = None;
    while started.elapsed() < duration {
        work()?;
        if start.is_none() && started.elapsed() >= warm_up {
            start = Some(footprint()?);
        }
    }
    release();
    store.clear_cache();
    let start = match start {
        Some(start) => start,
        None => footprint()?,
    };
    leak_check(start, footprint()?)
}

fn writer(store: &Store, id: u32, duration: Duration, rng: &mut Rng) -> Result<()> {
    // A few values of each size, made once: making them costs more than
    // storing them. Each has a seed of its own, so a mix of two is seen.
    let values: Vec<Vec<Vec<u8>>> = SIZES
        .iter()
        .enumerate()
        .map(|(s, &size)| {
            (0..4)
                .map(|k| make_value(seed_of(id, (s * 4 + k) as u32), size + k))
                .collect()
        })
        .collect();
    let (mut sets, mut deletes, mut removals, mut updates, mut gcs) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut round = 0u64;
    let summary = timed(
        store,
        duration,
        || {
            round += 1;
            match rng.below(100) {
                0..=59 => {
                    let name = format!("s{}", rng.below(NAMES));
                    let size = SIZES.iter().position(|&s| s == pick_size(rng)).unwrap_or(0);
                    let value = &values[size][rng.below(4) as usize];
                    store.put(SHARED, &name, &Payload::bytes(value))?;
                    sets += 1;
                }
                60..=74 => {
                    store.delete(SHARED, &format!("s{}", rng.below(NAMES)))?;
                    deletes += 1;
                }
                75..=84 => {
                    let ns = format!("w{id}-{}", round % 3);
                    for k in 0..5 {
                        let size = pick_size(rng).min(1_500_000);
                        let size = SIZES.iter().position(|&s| s == size).unwrap_or(0);
                        store.put(&ns, &format!("o{k}"), &Payload::bytes(&values[size][k % 4]))?;
                    }
                    store.remove_namespace(&ns)?;
                    removals += 1;
                }
                85..=94 => {
                    let _lock = store.lock(COUNTER_NS, COUNTER, Some(Duration::from_secs(30)))?;
                    let now = store
                        .get(COUNTER_NS, COUNTER)?
                        .context("the update counter is gone")?;
                    let n = u64::from_le_bytes(now[..8].try_into().expect("8 bytes"));
                    drop(now);
                    store.put(COUNTER_NS, COUNTER, &Payload::bytes(&(n + 1).to_le_bytes()))?;
                    updates += 1;
                }
                _ => {
                    store.gc()?;
                    gcs += 1;
                }
            }
            Ok(())
        },
        || {},
    )?;
    say(format_args!(
        "done sets={sets} deletes={deletes} namespace_removals={removals} updates={updates} gc={gcs} {summary}"
    ));
    Ok(())
}

fn reader(store: &Store, duration: Duration, rng: &mut Rng) -> Result<()> {
    let (mut reads, mut missing, mut held_checks) = (0u64, 0u64, 0u64);
    let mut held: Vec<(ObjectView, u64, Instant)> = Vec::new();
    let check_held = |held: &[(ObjectView, u64, Instant)]| -> Result<()> {
        for (view, seed, _) in held {
            match check_value(view) {
                Ok(s) if s == *seed => {}
                Ok(s) => bail!("a held view changed from seed {seed:#x} to {s:#x}"),
                Err(e) => bail!("a held view is damaged: {e}"),
            }
        }
        Ok(())
    };
    let summary = timed(
        store,
        duration,
        || {
            let name = format!("s{}", rng.below(NAMES));
            match store.get(SHARED, &name)? {
                Some(view) => {
                    let seed = check_value(&view)
                        .map_err(|e| anyhow::anyhow!("a torn or mixed read of {name}: {e}"))?;
                    reads += 1;
                    if rng.below(20) == 0 {
                        held.push((view, seed, Instant::now()));
                    }
                }
                None => missing += 1,
            }
            if rng.below(50) == 0 {
                check_held(&held)?;
                held_checks += held.len() as u64;
                // Views are let go after a while, some much later than others.
                let now = Instant::now();
                held.retain(|(_, _, since)| {
                    now - *since < Duration::from_millis(200 + rng.below(3000))
                });
            }
            if rng.below(200) == 0 {
                store.names(SHARED)?;
            }
            Ok(())
        },
        || {},
    );
    check_held(&held)?;
    drop(held);
    let summary = summary?;
    say(format_args!(
        "done reads={reads} missing={missing} held_views_checked={held_checks} {summary}"
    ));
    Ok(())
}

fn watcher(store: &Store, duration: Duration) -> Result<()> {
    let mut watch = store.watch(None)?;
    let (mut events, mut sets) = (0u64, 0u64);
    let summary = timed(
        store,
        duration,
        || {
            if let Some(event) = watch.next_event(Some(Duration::from_millis(100)))? {
                let ns = event.namespace();
                let known = match ns {
                    SHARED => event
                        .name()
                        .strip_prefix('s')
                        .is_some_and(|k| k.parse::<u64>().is_ok_and(|k| k < NAMES)),
                    COUNTER_NS => event.name() == COUNTER,
                    _ => ns.starts_with('w') && event.name().starts_with('o'),
                };
                ensure!(known, "an event about an object no one wrote: {event:?}");
                if matches!(event, WatchEvent::Set { .. }) {
                    sets += 1;
                }
                events += 1;
            }
            Ok(())
        },
        || {},
    )?;
    ensure!(sets > 0, "the watcher saw no write in {duration:?}");
    say(format_args!("done events={events} {summary}"));
    Ok(())
}
