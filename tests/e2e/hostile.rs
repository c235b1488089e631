//! What a hostile neighbour of the same user can do. It can truncate an
//! object's file while another process maps it: the kernel then kills that
//! process with SIGBUS when it touches the lost pages (file modes do not
//! stop the owner, nor root). docs/RELIABILITY.md and the README say so;
//! this test keeps them true, and shows that every later read is an error
//! naming the file, not data.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use brain_core::{Error, ObjectStore};

use crate::util::{make_value, TestStore};

#[test]
fn a_file_truncated_under_a_reader_kills_it_with_sigbus_and_later_reads_are_errors() -> Result<()> {
    let store = TestStore::new()?;
    let handle = store.open()?;
    handle
        .namespace("n")?
        .set("big", &make_value(41, 4 << 20))?;
    let mut reader = Command::new(env!("CARGO_BIN_EXE_brain-test-helper"))
        .args(["hold-view", store.arg(), "n", "big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(reader.stdout.as_mut().context("stdout")?).read_line(&mut line)?;
    ensure!(line.starts_with("holding"), "the reader said {line:?}");

    // Another process of the same user: a mode of 0400 does not stop it.
    let file = store.object_file("n", "big")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)?
        .set_len(0)?;

    // The reader checks its view again: it touches pages that are gone.
    writeln!(reader.stdin.as_mut().context("stdin")?, "check")?;
    let status = reader.wait()?;
    ensure!(
        status.signal() == Some(rustix::process::Signal::BUS.as_raw()),
        "the reader was expected to die of SIGBUS, it ended with {status}"
    );

    // Every later read is an error that names the file.
    handle.clear_cache();
    let err = handle
        .get("n", "big")
        .expect_err("a truncated file returned as data");
    ensure!(
        matches!(err, Error::Corrupt { .. })
            && err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    let fsck = handle.fsck(false)?;
    ensure!(fsck.corrupt.len() == 1, "{fsck:?}");
    Ok(())
}
