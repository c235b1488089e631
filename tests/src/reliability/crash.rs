//! The crash campaign: for each operation, a victim process runs it over
//! and over and is killed with SIGKILL at a random moment, many times;
//! after each kill the store must keep every promise.
//!
//! Checked after every kill, whatever the operation:
//! - the operation's own invariant (`scenarios.rs`): every name holds a
//!   whole old or new value; a dump restores byte for byte; ...
//! - views that another process holds are intact;
//! - `gc` leaves no temporary file of the killed process and no namespace
//!   half removed, and the next reader of a dump removes the killed
//!   process's copy of its index;
//! - `fsck` finds no corrupt object, and the usage and pool counts it
//!   finds equal its recount of the files (exact accounting).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use brain_core::ObjectStore;

use crate::child::{self, Child};
use crate::rng::Rng;
use crate::scenarios::{self, Lab, Scenario};

/// What `brain-reliability crash` was asked for.
pub struct Options {
    pub kills: u64,
    pub ops: Option<Vec<String>>,
    pub seed: u64,
}

/// One operation's result.
struct Outcome {
    op: &'static str,
    kills: u64,
    midway: u64,
    window: Duration,
    violations: Vec<String>,
    elapsed: Duration,
}

/// Runs the campaign; false when any invariant was violated.
pub fn run(options: &Options) -> Result<bool> {
    let mut rng = Rng::new(options.seed);
    println!(
        "crash campaign: {} kills per operation, seed {}",
        options.kills, options.seed
    );
    let mut outcomes = Vec::new();
    for mut scenario in scenarios::all() {
        if let Some(ops) = &options.ops {
            if !ops.iter().any(|op| op == scenario.name()) {
                continue;
            }
        }
        let outcome = campaign(scenario.as_mut(), options.kills, &mut rng)?;
        println!(
            "{:<17} {:>5} kills, {:>5} interrupted midway, {} violations ({:.1} s, kill within {:?})",
            outcome.op,
            outcome.kills,
            outcome.midway,
            outcome.violations.len(),
            outcome.elapsed.as_secs_f64(),
            outcome.window
        );
        for violation in outcome.violations.iter().take(5) {
            println!("    {violation}");
        }
        outcomes.push(outcome);
    }
    if let Some(ops) = &options.ops {
        for op in ops {
            ensure!(
                outcomes.iter().any(|o| o.op == op),
                "no operation {op:?}; the operations are {}",
                scenarios::all()
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!();
    println!("| operation | kills | interrupted midway | invariant violations |");
    println!("|---|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} |",
            o.op,
            o.kills,
            o.midway,
            o.violations.len()
        );
    }
    Ok(outcomes.iter().all(|o| o.violations.is_empty()))
}

/// A store set up for a scenario, the process holding views of it, and a
/// dump of an empty store that the checks read after a kill (so that
/// whatever a killed dump reader left is met by a reader that came next).
struct Setup {
    lab: Lab,
    holder: Child,
    probe_dump: std::path::PathBuf,
}

fn set_up(scenario: &mut dyn Scenario) -> Result<Setup> {
    let lab = Lab::new(scenario.name())?;
    scenario
        .setup(&lab)
        .with_context(|| format!("cannot set up {}", scenario.name()))?;
    let (ns, names) = scenario.held();
    let mut args = vec!["hold".to_owned(), lab.store_arg(), ns.to_owned()];
    args.extend(names);
    let mut holder = child::spawn(&args)?;
    holder.expect_line("holding", Duration::from_secs(60))?;
    let probe_dump = lab.scratch("probe-dump");
    let empty = lab.fresh_store("probe-store")?;
    brain_persist::dump(&empty, &probe_dump, &brain_persist::DumpOptions::new())
        .context("cannot dump an empty store")?;
    drop(empty);
    std::fs::remove_dir_all(lab.scratch("probe-store"))?;
    Ok(Setup {
        lab,
        holder,
        probe_dump,
    })
}

fn campaign(scenario: &mut dyn Scenario, kills: u64, rng: &mut Rng) -> Result<Outcome> {
    let started = Instant::now();
    let mut setup = set_up(scenario)?;
    let per_step = if scenario.timed() {
        time_one_step(scenario, &setup.lab)?
    } else {
        Duration::ZERO
    };
    let window = scenario.window(per_step).max(Duration::from_micros(200));
    let mut outcome = Outcome {
        op: scenario.name(),
        kills: 0,
        midway: 0,
        window,
        violations: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for round in 0..kills {
        scenario.before_kill(&setup.lab, rng)?;
        let mut args = vec!["victim".to_owned()];
        args.extend(scenario.victim(&setup.lab, round));
        let mut victim = child::spawn(&args)?;
        victim.expect_line("ready", Duration::from_secs(60))?;
        std::thread::sleep(rng.duration(window));
        let pid = victim.pid();
        victim.kill()?;
        outcome.kills += 1;
        match check_after_kill(scenario, &mut setup, pid) {
            Ok(midway) => outcome.midway += u64::from(midway),
            Err(err) => {
                outcome.violations.push(format!("kill {round}: {err:#}"));
                // Start again from a store known to be whole, so one
                // violation is not counted again at every later kill.
                let _ = scenario.finish(&setup.lab);
                setup = set_up(scenario)?;
                continue;
            }
        }
        scenario.after_kill(&setup.lab)?;
        setup.lab.store.clear_cache();
    }
    if let Err(err) = scenario.finish(&setup.lab) {
        outcome.violations.push(format!("after the kills: {err:#}"));
    }
    let held = setup.holder.wait(Duration::from_secs(60))?;
    if held.code != Some(0) {
        outcome.violations.push(format!(
            "the process holding views failed: {}",
            held.stderr.trim_end()
        ));
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// How long one step of the victim takes: it is run for three steps.
fn time_one_step(scenario: &mut dyn Scenario, lab: &Lab) -> Result<Duration> {
    let mut args = vec!["victim".to_owned()];
    args.extend(scenario.victim(lab, 0));
    args.extend(["--iterations".to_owned(), "3".to_owned()]);
    let mut victim = child::spawn(&args)?;
    let line = victim.expect_line("took ", Duration::from_secs(600))?;
    let micros: u64 = line["took ".len()..]
        .parse()
        .with_context(|| format!("a victim printed {line:?}"))?;
    victim.wait(Duration::from_secs(30))?;
    scenario.after_kill(lab)?;
    Ok(Duration::from_micros(micros))
}

/// The checks after one kill; true when the kill evidently interrupted
/// the operation midway (the operation's own evidence, or work `gc`
/// found: a temporary file, a half-removed namespace, a reservation).
fn check_after_kill(scenario: &mut dyn Scenario, setup: &mut Setup, pid: u32) -> Result<bool> {
    let lab = &setup.lab;
    let mut midway = scenario.check(lab)?;
    setup.holder.send_line("check")?;
    setup.holder.expect_line("ok", Duration::from_secs(60))?;
    let gc = lab.store.gc()?;
    midway |= gc.stray_objects + gc.stray_namespaces + gc.reservations_reclaimed > 0;
    let left = temporary_files_of(&lab.store_path, pid)?;
    ensure!(
        left.is_empty(),
        "gc left temporary files of the killed process: {left:?} ({gc:?})"
    );
    // A dump reader's private copy of the index, left in the temporary
    // directory by the kill, is removed by the next reader of any dump.
    brain_persist::list_dump(&setup.probe_dump).context("cannot read the probe dump")?;
    let copies = index_copies_of(pid)?;
    ensure!(
        copies.is_empty(),
        "the killed process's copies of a dump's index were left: {copies:?}"
    );
    let trash = lab.store_path.join("trash");
    let half_removed = std::fs::read_dir(&trash).map_or(0, |d| d.count());
    ensure!(
        half_removed == 0,
        "gc left {half_removed} half-removed namespaces in {}",
        trash.display()
    );
    let recycled = lab.store.usage()?.recycled;
    let fsck = lab.store.fsck(false)?;
    ensure!(
        fsck.corrupt.is_empty(),
        "fsck found corrupt objects: {fsck:?}"
    );
    ensure!(
        fsck.used_before == fsck.used_after,
        "the usage count was {} but the files take {} ({fsck:?}, after {gc:?})",
        fsck.used_before,
        fsck.used_after
    );
    ensure!(
        fsck.recycled == recycled,
        "the pool's count was {recycled} but its files take {} ({fsck:?}, after {gc:?})",
        fsck.recycled
    );
    Ok(midway)
}

/// Copies of a dump's index that process `pid` made in the temporary directory.
fn index_copies_of(pid: u32) -> Result<Vec<std::path::PathBuf>> {
    let prefix = format!("brain-dump-index-{pid}~");
    Ok(std::fs::read_dir(std::env::temp_dir())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect())
}

/// Entries under `root` whose name is a temporary name of process `pid`.
fn temporary_files_of(root: &Path, pid: u32) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.strip_prefix(".tmp.").map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            });
            if owner.is_some_and(|owner| owner == pid.to_string()) {
                found.push(entry.path());
            }
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    Ok(found)
}
