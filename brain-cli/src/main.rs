//! The `brain` command: see the `brain_cli` library for everything it does.

// One item needs an unsafe attribute: the constructor below.
#![deny(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether standard input was closed when the process started.
static STDIN_CLOSED: AtomicBool = AtomicBool::new(false);
/// Whether standard output was closed when the process started.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_closed_stdio() {
    let stdin_closed = rustix::io::fcntl_getfd(rustix::stdio::stdin()).is_err();
    STDIN_CLOSED.store(stdin_closed, Ordering::Relaxed);
    let stdout_closed = rustix::io::fcntl_getfd(rustix::stdio::stdout()).is_err();
    STDOUT_CLOSED.store(stdout_closed, Ordering::Relaxed);
}

// Rust's runtime, before `main`, opens /dev/null on standard descriptors
// that are closed: `brain ls >&-` would then print into nothing and
// succeed, and `brain put NAME - <&-` would store an empty object over
// the name. An ELF constructor runs before the runtime does and records
// whether descriptors 0 and 1 were open.
// SAFETY (why the attribute is sound): the function it registers takes no
// arguments it reads, allocates nothing and touches no runtime state: one
// fcntl on each of descriptors 0 and 1 and two atomic stores.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED_STDIO: extern "C" fn() = record_closed_stdio;

fn main() -> ExitCode {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        eprintln!("brain: cannot write to standard output: it is closed");
        return ExitCode::from(1);
    }
    let stdin_closed = STDIN_CLOSED.load(Ordering::Relaxed);
    ExitCode::from(brain_cli::run_process_with(
        std::env::args_os(),
        stdin_closed,
    ))
}
