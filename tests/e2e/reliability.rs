//! Short runs of the crash campaign and the soak: every operation killed a
//! few times, a minute of processes racing. docs/RELIABILITY.md gives the
//! long runs (`make crash-campaign`, `make soak`) and their figures.

use std::process::Command;

use anyhow::{ensure, Context, Result};

fn reliability(args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_brain-reliability"))
        .args(args)
        .output()
        .context("cannot run brain-reliability")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "brain-reliability {} failed ({}):\n{stdout}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[test]
fn every_operation_killed_at_random_moments_keeps_every_promise() -> Result<()> {
    let report = reliability(&["crash", "--kills", "3"])?;
    for op in [
        "put-small",
        "put-large",
        "replace-large",
        "delete",
        "remove-namespace",
        "gc",
        "fsck",
        "dump",
        "restore",
        "sync",
    ] {
        ensure!(
            report.contains(&format!("| {op} | 3 |")),
            "{op} was not killed three times:\n{report}"
        );
    }
    Ok(())
}

#[test]
fn a_minute_of_racing_processes_breaks_nothing_and_leaks_nothing() -> Result<()> {
    let report = reliability(&["soak", "--seconds", "60"])?;
    ensure!(report.contains("violations: 0"), "{report}");
    Ok(())
}
