//! The `brain` command: see the `brain_cli` library for everything it does.

// One item needs an unsafe attribute: the constructor below.
#![deny(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether standard output was closed when the process started.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_closed_stdout() {
    let closed = rustix::io::fcntl_getfd(rustix::stdio::stdout()).is_err();
    STDOUT_CLOSED.store(closed, Ordering::Relaxed);
}

// Rust's runtime, before `main`, opens /dev/null on standard descriptors
// that are closed: `brain ls >&-` would then print into nothing and
// succeed. An ELF constructor runs before the runtime does and records
// whether descriptor 1 was open.
// SAFETY (why the attribute is sound): the function it registers takes no
// arguments it reads, allocates nothing and touches no runtime state: one
// fcntl on descriptor 1 and an atomic store.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED_STDOUT: extern "C" fn() = record_closed_stdout;

fn main() -> ExitCode {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        eprintln!("brain: cannot write to standard output: it is closed");
        return ExitCode::from(1);
    }
    ExitCode::from(brain_cli::run_process(std::env::args_os()))
}
