//! Child processes of `brain-reliability`: this same program started with
//! another subcommand (see [`brain_tests::child`]).

use anyhow::{Context, Result};

pub use brain_tests::child::Child;

/// Starts this program with `args`.
pub fn spawn(args: &[String]) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    Child::spawn(&exe, args)
}
