//! The `brain` command: see the `brain_cli` library for everything it does.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use brain_cli::Console;

fn main() -> ExitCode {
    let mut console = match Console::process() {
        Ok(console) => console,
        Err(err) => {
            eprintln!("brain: {err:#}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(brain_cli::run(std::env::args_os(), &mut console))
}
