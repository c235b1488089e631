//! `brain-reliability`: the crash campaign and the soak that
//! docs/RELIABILITY.md quotes.
//!
//! ```text
//! brain-reliability crash [--kills N] [--ops OP,OP...] [--seed S]
//! brain-reliability soak [--seconds S] [--writers N] [--readers N] [--seed S]
//! ```
//!
//! `crash` kills a process with SIGKILL at random moments of each
//! operation (put small, put large, replace large, delete, namespace
//! removal, gc, fsck, dump, restore, sync), N times each (default 300), and
//! checks the store after each kill. `soak` runs writers, readers and a
//! watcher in processes of their own for S seconds (default 600). Both
//! exit 1 when any promise was broken, and print what. The `victim`,
//! `hold` and `soak-worker` subcommands are the processes they start.

#![forbid(unsafe_code)]

mod child;
mod crash;
mod rng;
mod scenarios;
mod soak;
mod victim;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: brain-reliability crash [--kills N] [--ops OP,OP...] [--seed S]
       brain-reliability soak [--seconds S] [--writers N] [--readers N] [--seed S]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("brain-reliability: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` options after a subcommand.
struct Flags<'a>(&'a [String]);

impl Flags<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].as_str())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .with_context(|| format!("{name} takes a number, not {v:?}"))
        })
    }

    fn check(&self, known: &[&str]) -> Result<()> {
        for pair in self.0.chunks(2) {
            if !known.contains(&pair[0].as_str()) || pair.len() != 2 {
                bail!("unexpected argument {:?}\n{USAGE}", pair[0]);
            }
        }
        Ok(())
    }
}

fn seed(flags: &Flags<'_>) -> Result<u64> {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    flags.number("--seed", clock % 1_000_000)
}

fn run(args: &[String]) -> Result<bool> {
    let Some((command, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match command.as_str() {
        "crash" => {
            let flags = Flags(rest);
            flags.check(&["--kills", "--ops", "--seed"])?;
            crash::run(&crash::Options {
                kills: flags.number("--kills", 300)?,
                ops: flags
                    .get("--ops")
                    .map(|ops| ops.split(',').map(str::to_owned).collect()),
                seed: seed(&flags)?,
            })
        }
        "soak" => {
            let flags = Flags(rest);
            flags.check(&["--seconds", "--writers", "--readers", "--seed"])?;
            soak::run(&soak::Options {
                seconds: flags.number("--seconds", 600)?,
                writers: flags.number("--writers", 3)? as u32,
                readers: flags.number("--readers", 3)? as u32,
                seed: seed(&flags)?,
            })
        }
        "victim" => victim::run(rest).map(|()| true),
        "hold" => victim::hold(rest).map(|()| true),
        "soak-worker" => soak::worker(rest).map(|()| true),
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(true)
        }
        other => bail!("no command {other:?}\n{USAGE}"),
    }
}
