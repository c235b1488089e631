//! Shared helpers: a store in a temporary directory on /dev/shm, and child
//! processes of `brain-test-helper` that are killed if a test gives up on them.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brain_core::{ObjectKey, Store};

pub use brain_tests::{check_value, exit, make_value, seed_of};

/// How long any single child may run before the test calls it hung.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A store in a fresh directory under /dev/shm, removed on drop even when
/// the test fails.
pub struct TestStore {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TestStore {
    pub fn new() -> Result<TestStore> {
        let dir = tempfile::Builder::new()
            .prefix("brain-e2e")
            .tempdir_in("/dev/shm")
            .context("cannot create a temporary directory in /dev/shm")?;
        let path = dir.path().join("store");
        Ok(TestStore { dir, path })
    }

    /// The directory holding the store (and nothing else).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store's path, as the helper takes it on its command line.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temporary paths are UTF-8")
    }

    /// Opens the store in this process.
    pub fn open(&self) -> Result<Store> {
        Store::open(&self.path).with_context(|| format!("cannot open the store {}", self.arg()))
    }

    /// Every file or directory in the store whose name starts with `.tmp.`.
    pub fn temporary_files(&self) -> Result<Vec<PathBuf>> {
        files_named(&self.path, ".tmp.")
    }

    /// The file holding `name` in `namespace`.
    pub fn object_file(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        object_file(&self.path, namespace, name)
    }
}

/// Every entry under `root` (recursively) whose name starts with `prefix`.
pub fn files_named(root: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir:?}"))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(entry.path());
            }
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    Ok(found)
}

/// The object file of `name` in `namespace` in the store at `store`: the
/// file named by its key in one of the namespace directories.
pub fn object_file(store: &Path, namespace: &str, name: &str) -> Result<PathBuf> {
    let hex = ObjectKey::new(namespace, name).to_hex();
    for entry in std::fs::read_dir(store.join("ns"))? {
        let candidate = entry?.path().join(&hex);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("no file for {namespace:?}/{name:?} (key {hex}) in {store:?}")
}

/// The self-describing value's seed, or a readable failure.
pub fn seed_in(bytes: &[u8]) -> Result<u64> {
    check_value(bytes).map_err(|e| anyhow::anyhow!("value read back is wrong: {e}"))
}

/// Starts `brain-test-helper` with `args`.
pub fn spawn<I, S>(args: I) -> Result<Helper>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = args
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.len() > 60 {
                let mut end = 60;
                while !a.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}...({} bytes)", &a[..end], a.len())
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(env!("CARGO_BIN_EXE_brain-test-helper"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start brain-test-helper {shown}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Ok(Helper {
        shown,
        stdin: child.stdin.take(),
        child,
        lines,
        seen: Vec::new(),
        stderr: Some(stderr),
        exited: false,
    })
}

/// Runs `brain-test-helper` with `args` to completion (at most [`CHILD_TIMEOUT`]).
pub fn run<I, S>(args: I) -> Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn(args)?.finish(CHILD_TIMEOUT)
}

/// A running helper process. Dropping it kills the process (SIGKILL) and
/// reaps it, so a failed test leaves no orphan behind.
pub struct Helper {
    shown: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    exited: bool,
}

/// A helper that has exited: its exit code and everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub shown: String,
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`brain-test-helper {}` exited with {}\n  stdout: {:?}\n  stderr: {}",
            self.shown,
            self.code
                .map_or("a signal".to_owned(), |c| format!("code {c}")),
            self.stdout,
            self.stderr.trim_end()
        )
    }
}

impl Finished {
    /// Fails unless the helper exited with code 0.
    pub fn success(self) -> Result<Finished> {
        if self.code != Some(0) {
            bail!("helper failed: {self}");
        }
        Ok(self)
    }

    /// Fails unless the helper exited with `code` (one of [`exit`]).
    pub fn failed_with(self, code: i32) -> Result<Finished> {
        if self.code != Some(code) {
            bail!("expected the helper to exit with code {code}: {self}");
        }
        Ok(self)
    }

    /// The last stdout line, which is where helpers put their result.
    pub fn last_line(&self) -> &str {
        self.stdout.last().map_or("", String::as_str)
    }
}

impl Helper {
    /// Waits (at most `timeout`) for a stdout line starting with `prefix`
    /// and returns it; lines before it are kept in the record.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "`brain-test-helper {}` printed no line starting with {prefix:?} within {timeout:?}; stdout so far: {:?}",
                    self.shown,
                    self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let finished = self.wait_exit(Duration::from_secs(5))?;
                    bail!("helper ended before printing a line starting with {prefix:?}: {finished}");
                }
            }
        }
    }

    /// The helper's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the helper's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("cannot write to `brain-test-helper {}`", self.shown))
    }

    /// Kills the helper with SIGKILL and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().context("cannot kill the helper")?;
        self.child.wait().context("cannot reap the helper")?;
        self.exited = true;
        Ok(())
    }

    /// Waits (at most `timeout`) for the helper to exit, then returns what it did.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished> {
        self.wait_exit(timeout)
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<Finished> {
        self.stdin = None; // EOF for helpers that read stdin
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
                bail!(
                    "`brain-test-helper {}` did not exit within {timeout:?} and was killed; stdout: {:?}; stderr: {}",
                    self.shown,
                    self.seen,
                    stderr.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.exited = true;
        // The pipes close when the process exits; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Ok(Finished {
            shown: self.shown.clone(),
            code: status.code(),
            stdout: self.seen.clone(),
            stderr,
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
