//! The processes that are killed: each runs one operation over and over on
//! a store until it is killed, and the process that holds views meanwhile.
//!
//! `victim OP STORE ARGS... [--iterations N]`: prints `ready`, then runs
//! OP until killed; with `--iterations`, runs it N times, prints
//! `took MICROS` (per iteration) and exits: the campaign times an operation
//! this way to know when to kill.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brain_core::{Error, ObjectStore, ObjectView, Payload, Store};
use brain_persist::{DumpOptions, OnConflict, RestoreOptions, StopFlag, SyncOptions};
use brain_tests::{check_value, make_value, seed_of};

use crate::scenarios::{
    delete_size, gc_values, large_values, remove_namespace_sizes, small_size, BIG, DEL_NAMES,
    NS_DEL, NS_GC, NS_LARGE, NS_SMALL, SMALL_NAMES,
};

/// Prints a line at once: the campaign is waiting for it.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn number(arg: &str, what: &str) -> Result<u64> {
    arg.parse()
        .with_context(|| format!("{what} must be a number, not {arg:?}"))
}

/// Runs a victim: `args` are OP STORE ARGS... [--iterations N].
pub fn run(args: &[String]) -> Result<()> {
    let (args, iterations) = match args {
        [rest @ .., flag, n] if flag == "--iterations" => (rest, Some(number(n, "N")?)),
        _ => (args, None),
    };
    let [op, store, rest @ ..] = args else {
        bail!("usage: victim OP STORE ARGS... [--iterations N]");
    };
    let store = Store::open(store).with_context(|| format!("cannot open {store}"))?;
    let mut step = operation(op, &store, rest)?;
    say("ready");
    let started = Instant::now();
    let mut i = 0u64;
    loop {
        if iterations.is_some_and(|n| i >= n) {
            let micros = started.elapsed().as_micros() as u64 / i.max(1);
            say(format_args!("took {micros}"));
            return Ok(());
        }
        step(i)?;
        i += 1;
    }
}

type Step<'a> = Box<dyn FnMut(u64) -> Result<()> + 'a>;

/// The operation `op` as a step to repeat; what it needs is made first.
fn operation<'a>(op: &str, store: &'a Store, args: &[String]) -> Result<Step<'a>> {
    let base = |args: &[String]| -> Result<u32> {
        Ok(number(args.first().context("a seed base")?, "BASE")? as u32)
    };
    Ok(match op {
        "put-small" => {
            let base = base(args)?;
            Box::new(move |i| {
                let name = SMALL_NAMES[i as usize % SMALL_NAMES.len()];
                let value = make_value(seed_of(base, i as u32), small_size(i));
                store.put(NS_SMALL, name, &Payload::bytes(&value))?;
                Ok(())
            })
        }
        "put-large" => {
            // New names: fresh pages, or pool files of the names deleted.
            let base = base(args)?;
            let values = large_values(base);
            Box::new(move |i| {
                let name = format!("n{base}-{i}");
                store.put(NS_LARGE, &name, &Payload::bytes(&values[i as usize % 3]))?;
                if i >= 2 {
                    store.delete(NS_LARGE, &format!("n{base}-{}", i - 2))?;
                }
                Ok(())
            })
        }
        "replace-large" => {
            let base = base(args)?;
            let values = large_values(base);
            Box::new(move |i| {
                store.put(NS_LARGE, BIG, &Payload::bytes(&values[i as usize % 3]))?;
                Ok(())
            })
        }
        "delete" => {
            let base = base(args)?;
            let values: Vec<Vec<u8>> = (0..2)
                .map(|k| make_value(seed_of(base, k), delete_size(k)))
                .collect();
            Box::new(move |i| {
                let n = DEL_NAMES.len() as u64;
                store.delete(NS_DEL, DEL_NAMES[(i % n) as usize])?;
                let name = DEL_NAMES[((i + n / 2) % n) as usize];
                store.put(NS_DEL, name, &Payload::bytes(&values[(i % 2) as usize]))?;
                Ok(())
            })
        }
        "remove-namespace" => {
            let base = base(args)?;
            let values: Vec<Vec<u8>> = remove_namespace_sizes()
                .iter()
                .enumerate()
                .map(|(k, &size)| make_value(seed_of(base, k as u32), size))
                .collect();
            Box::new(move |i| {
                let ns = format!("rm{}", i % 3);
                for (k, value) in values.iter().enumerate() {
                    store.put(&ns, &format!("o{k}"), &Payload::bytes(value))?;
                }
                match store.remove_namespace(&ns) {
                    Ok(_) | Err(Error::NamespaceNotFound { .. }) => Ok(()),
                    Err(err) => Err(err.into()),
                }
            })
        }
        "gc" => {
            let base = base(args)?;
            let values = gc_values(base);
            Box::new(move |i| {
                let name = format!("g{}", i % 4);
                store.put(NS_GC, &name, &Payload::bytes(&values[i as usize % 3]))?;
                if i % 3 == 2 {
                    store.gc()?;
                }
                Ok(())
            })
        }
        "fsck" => Box::new(move |_| {
            store.fsck(false)?;
            Ok(())
        }),
        "dump" => {
            let dir = args.first().context("a dump directory")?.clone();
            Box::new(move |_| {
                brain_persist::dump(store, &dir, &DumpOptions::new())?;
                Ok(())
            })
        }
        "restore" => {
            let [a, b] = args else {
                bail!("restore takes two dump directories");
            };
            let (a, b) = (a.clone(), b.clone());
            let options = RestoreOptions::new().on_conflict(OnConflict::Overwrite);
            Box::new(move |i| {
                let dir = if i % 2 == 0 { &b } else { &a };
                brain_persist::restore(store, dir, &options)?;
                Ok(())
            })
        }
        "sync" => {
            // One step: mirror until a line comes on stdin (or the kill).
            let dir = args.first().context("a mirror directory")?.clone();
            Box::new(move |_| {
                let stop = StopFlag::new();
                let watcher = {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut line = String::new();
                        let _ = std::io::stdin().lock().read_line(&mut line);
                        stop.stop();
                    })
                };
                let options = SyncOptions::new().interval(Duration::from_millis(50));
                brain_persist::sync(store, &dir, &options, &stop)?;
                let _ = watcher.join();
                say("stopped");
                std::process::exit(0);
            })
        }
        other => bail!("no operation {other:?}"),
    })
}

/// `hold STORE NS NAME...`: gets each name and holds the views; on every
/// line `check` on stdin checks each again, and once more at end of input.
/// A held view must keep its bytes whatever happens to the names.
pub fn hold(args: &[String]) -> Result<()> {
    let [store, ns, names @ ..] = args else {
        bail!("usage: hold STORE NS NAME...");
    };
    let store = Store::open(store).with_context(|| format!("cannot open {store}"))?;
    let mut held: Vec<(String, ObjectView, u64)> = Vec::new();
    for name in names {
        let view = store
            .get(ns, name)?
            .with_context(|| format!("no object {ns}/{name} to hold"))?;
        let seed = check_value(&view).map_err(|e| anyhow::anyhow!("{ns}/{name}: {e}"))?;
        held.push((name.clone(), view, seed));
    }
    let check = |held: &[(String, ObjectView, u64)]| -> Result<()> {
        for (name, view, seed) in held {
            match check_value(view) {
                Ok(s) if s == *seed => {}
                Ok(s) => bail!("a held view of {name} changed from seed {seed:#x} to {s:#x}"),
                Err(e) => bail!("a held view of {name} is damaged: {e}"),
            }
        }
        Ok(())
    };
    say("holding");
    for line in std::io::stdin().lock().lines() {
        let _ = line?;
        check(&held)?;
        say("ok");
    }
    check(&held)?;
    say("ok");
    Ok(())
}
