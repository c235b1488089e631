//! Where a command reads and writes: this process's standard streams, or
//! buffers (tests run the command line in-process against a `memory://`
//! store, which lives only in the process that opened it).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Seek, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;

/// A command's standard input, output and error.
pub struct Console {
    stdin: Box<dyn Read>,
    /// Bytes left on standard input when it is a regular file.
    stdin_len: Option<u64>,
    stdout: Box<dyn Write>,
    /// Shared, so threads a command starts (`sync`'s) can log to it too.
    stderr: Arc<Mutex<Box<dyn Write + Send>>>,
    /// Whether progress bars may be drawn on the terminal.
    terminal: bool,
    /// Whether standard output is a terminal.
    stdout_terminal: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The process's standard streams. Standard output is written through a
    /// buffer of its own over a duplicate of descriptor 1, which a large
    /// write (`brain cat`) bypasses, so bytes go out straight from the
    /// object's memory.
    ///
    /// # Errors
    /// When standard output is closed.
    pub fn process() -> anyhow::Result<Console> {
        let stdout = io::stdout();
        let raw = stdout
            .as_fd()
            .try_clone_to_owned()
            .context("cannot write to standard output: it is closed")?;
        let stdin = io::stdin();
        let stdin_len = regular_file_len(&stdin);
        Ok(Console {
            stdin: Box::new(stdin),
            stdin_len,
            stdout: Box::new(BufWriter::with_capacity(64 * 1024, File::from(raw))),
            stderr: Arc::new(Mutex::new(Box::new(io::stderr()))),
            terminal: true,
            stdout_terminal: stdout.is_terminal(),
        })
    }

    /// A console reading `stdin` and writing into buffers, returned as
    /// (console, standard output, standard error).
    pub fn captured(stdin: Vec<u8>) -> (Console, Captured, Captured) {
        let (out, err) = (Captured::default(), Captured::default());
        let console = Console {
            stdin_len: Some(stdin.len() as u64),
            stdin: Box::new(io::Cursor::new(stdin)),
            stdout: Box::new(out.clone()),
            stderr: Arc::new(Mutex::new(Box::new(err.clone()))),
            terminal: false,
            stdout_terminal: false,
        };
        (console, out, err)
    }

    /// Makes standard input an error to read: the process started with it
    /// closed (the Python wrapper learns that before anything reopens
    /// descriptor 0). Reading nothing from it would store an empty object.
    pub fn stdin_closed(&mut self) {
        self.stdin = Box::new(ClosedInput);
        self.stdin_len = None;
    }

    /// Whether standard output is a terminal (where bytes that are not
    /// text would garble the screen).
    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_terminal
    }

    /// Standard input, and its length when known.
    pub fn stdin(&mut self) -> (&mut dyn Read, Option<u64>) {
        (&mut *self.stdin, self.stdin_len)
    }

    /// Runs `write` on standard output and flushes it, with context on failure.
    pub fn out(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        write(&mut *self.stdout)
            .and_then(|()| self.stdout.flush())
            .context("cannot write to standard output")
    }

    /// Writes a line to standard error (a failure to is ignored: there is
    /// nowhere left to report it).
    pub fn note(&self, line: &str) {
        note(&self.stderr, line);
    }

    /// A handle on standard error for another thread (`sync` logs through it).
    pub fn stderr(&self) -> Arc<Mutex<Box<dyn Write + Send>>> {
        self.stderr.clone()
    }

    /// Whether progress may be drawn on the terminal (off for captured output).
    pub fn terminal(&self) -> bool {
        self.terminal
    }
}

/// Writes a line to the standard error `stderr` (a failure to is ignored).
pub fn note(stderr: &Mutex<Box<dyn Write + Send>>, line: &str) {
    let mut stderr = stderr.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(stderr, "{line}");
}

/// Bytes a captured console wrote.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes left to read when `input` is a regular file (`brain put x - < file`).
fn regular_file_len(input: &impl AsFd) -> Option<u64> {
    let mut file = File::from(input.as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let position = file.stream_position().ok()?;
    Some(meta.len().saturating_sub(position))
}

/// Standard input that was closed when the process started.
struct ClosedInput;

impl Read for ClosedInput {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other(
            "it is closed; give the input on standard input (`< FILE`, a pipe), or a FILE instead of -",
        ))
    }
}
