//! Child processes of `brain-reliability`: this same program started with
//! another subcommand, read line by line, killed with SIGKILL on demand and
//! whenever the parent lets go of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running child. Dropping it kills and reaps it, so a failed run leaves
/// no process behind.
pub struct Child {
    shown: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    exited: bool,
}

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Child {
    /// Starts this program with `args`.
    pub fn spawn(args: &[String]) -> Result<Child> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let shown = args.join(" ");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `brain-reliability {shown}`"))?;
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
        Ok(Child {
            shown,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            exited: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`) for a line starting with `prefix`.
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
                    "`brain-reliability {}` printed no line starting with {prefix:?} within {timeout:?}; it printed {:?}",
                    self.shown,
                    self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let finished = self.wait(Duration::from_secs(10))?;
                    bail!(
                        "`brain-reliability {}` ended (code {:?}) before printing {prefix:?}: stdout {:?}, stderr {}",
                        self.shown,
                        finished.code,
                        finished.stdout,
                        finished.stderr.trim_end()
                    );
                }
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("cannot write to `brain-reliability {}`", self.shown))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) -> Result<()> {
        if !self.exited {
            self.child.kill().context("cannot kill a child")?;
            self.child.wait().context("cannot reap a child")?;
            self.exited = true;
        }
        Ok(())
    }

    /// Closes stdin and waits (at most `timeout`) for the child to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<Finished> {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                self.kill()?;
                bail!(
                    "`brain-reliability {}` did not exit within {timeout:?}; it printed {:?}",
                    self.shown,
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        self.exited = true;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Ok(Finished {
            code: status.code(),
            stdout: self.seen.clone(),
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
