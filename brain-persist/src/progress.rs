//! Progress reporting: nothing, an indicatif bar on a terminal, or a callback.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a long operation is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Compressing objects into a dump.
    Dumping,
    /// Reading a dump back and checking every checksum, before a restore writes anything.
    Verifying,
    /// Writing objects from a dump into the store.
    Restoring,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Dumping => "dumping",
            Phase::Verifying => "verifying",
            Phase::Restoring => "restoring",
        }
    }
}

/// A progress report, as handed to a [`Progress::Callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgressUpdate {
    /// The phase.
    pub phase: Phase,
    /// Uncompressed payload bytes done in this phase.
    pub bytes_done: u64,
    /// Uncompressed payload bytes this phase handles.
    pub bytes_total: u64,
    /// Objects done in this phase.
    pub objects_done: u64,
    /// Objects this phase handles.
    pub objects_total: u64,
}

/// A callback for progress reports.
pub type ProgressFn = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;

/// How a dump or restore reports progress.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Progress {
    /// Silently (the default).
    #[default]
    Hidden,
    /// An indicatif bar on standard error with bytes, rate and ETA, when
    /// standard error is a terminal; silently otherwise.
    Terminal,
    /// Calls the function after every frame (a few MiB) and every object.
    Callback(ProgressFn),
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Hidden => f.write_str("Hidden"),
            Progress::Terminal => f.write_str("Terminal"),
            Progress::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// One phase's reporter.
pub(crate) struct Reporter {
    update: ProgressUpdate,
    bar: Option<ProgressBar>,
    callback: Option<ProgressFn>,
}

impl Reporter {
    pub(crate) fn start(progress: &Progress, phase: Phase, bytes: u64, objects: u64) -> Reporter {
        let bar = match progress {
            Progress::Terminal if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} ({prefix} objects)",
                )
                .expect("a valid template")
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(phase.label());
                bar.set_prefix(format!("0/{objects}"));
                Some(bar)
            }
            _ => None,
        };
        let callback = match progress {
            Progress::Callback(f) => Some(f.clone()),
            _ => None,
        };
        Reporter {
            update: ProgressUpdate {
                phase,
                bytes_done: 0,
                bytes_total: bytes,
                objects_done: 0,
                objects_total: objects,
            },
            bar,
            callback,
        }
    }

    pub(crate) fn bytes(&mut self, n: u64) {
        self.update.bytes_done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        self.notify();
    }

    pub(crate) fn object(&mut self) {
        self.update.objects_done += 1;
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!(
                "{}/{}",
                self.update.objects_done, self.update.objects_total
            ));
        }
        self.notify();
    }

    fn notify(&self) {
        if let Some(callback) = &self.callback {
            callback(&self.update);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
