//! Child processes of the tests: a program started with arguments, read
//! line by line, written to, killed with SIGKILL on demand, and killed and
//! reaped whenever the test lets go of it, so a failed test leaves no
//! process behind.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running child process.
pub struct Child {
    shown: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    exited: bool,
}

/// A child that has exited: its exit code and everything it printed.
#[derive(Debug)]
pub struct Finished {
    /// The command line, as messages show it.
    pub shown: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n  stdout: {:?}\n  stderr: {}",
            self.shown,
            self.code
                .map_or("a signal".to_owned(), |c| format!("code {c}")),
            self.stdout,
            self.stderr.trim_end()
        )
    }
}

impl Finished {
    /// Fails unless the child exited with code 0.
    pub fn success(self) -> Result<Finished> {
        if self.code != Some(0) {
            bail!("child failed: {self}");
        }
        Ok(self)
    }

    /// Fails unless the child exited with `code`.
    pub fn failed_with(self, code: i32) -> Result<Finished> {
        if self.code != Some(code) {
            bail!("expected the child to exit with code {code}: {self}");
        }
        Ok(self)
    }

    /// The last stdout line, which is where helpers put their result.
    pub fn last_line(&self) -> &str {
        self.stdout.last().map_or("", String::as_str)
    }
}

/// An argument as a message shows it: long ones cut.
fn shown_arg(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if arg.len() <= 60 {
        return arg.into_owned();
    }
    let mut end = 60;
    while !arg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...({} bytes)", &arg[..end], arg.len())
}

impl Child {
    /// Starts `program` with `args`, its stdin, stdout and stderr piped.
    pub fn spawn<I, S>(program: &Path, args: I) -> Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let shown = std::iter::once(name)
            .chain(args.iter().map(|a| shown_arg(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
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

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

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
                    "`{}` printed no line starting with {prefix:?} within {timeout:?}; stdout so far: {:?}",
                    self.shown,
                    self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let finished = self.wait(Duration::from_secs(5))?;
                    bail!("child ended before printing a line starting with {prefix:?}: {finished}");
                }
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("cannot write to `{}`", self.shown))
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if !self.exited {
            self.child.kill().context("cannot kill the child")?;
            self.child.wait().context("cannot reap the child")?;
            self.exited = true;
        }
        Ok(())
    }

    /// Closes stdin and waits (at most `timeout`) for the child to exit,
    /// then returns what it did.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished> {
        self.wait(timeout)
    }

    /// As [`Child::finish`], keeping the handle.
    pub fn wait(&mut self, timeout: Duration) -> Result<Finished> {
        self.stdin = None; // EOF for children that read stdin
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
                bail!(
                    "`{}` did not exit within {timeout:?} and was killed; stdout: {:?}; stderr: {}",
                    self.shown,
                    self.seen,
                    stderr.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
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

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("command", &self.shown)
            .field("pid", &self.child.id())
            .field("stdout", &self.seen)
            .finish()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
