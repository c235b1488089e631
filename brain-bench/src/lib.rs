//! # brain-bench
//!
//! Workloads and helpers for the criterion benches of brain (`benches/core.rs`):
//!
//! - [`BenchStore`]: a fresh store in a temporary directory under `/dev/shm`,
//!   removed when it is dropped, also when a bench panics; stores left by a
//!   bench that was killed are swept by the next one.
//! - [`seeded_bytes`]: deterministic, incompressible inputs.
//! - The *floors*: the plain system calls each brain operation cannot do
//!   without ([`floor_open_read`], [`floor_map`], [`floor_create_write_rename`],
//!   [`floor_write_file`], [`floor_scan_headers`]), measured in the same run
//!   so every result is also a ratio that the machine's noise affects less.
//! - [`WatcherChild`]: a `brain_core::Watcher` in another process (the
//!   `watcher` binary of this crate), to measure what it costs a reader and
//!   how long a set takes to reach it.
//! - [`Summary`]: the table of medians and ratios printed at the end of a run,
//!   read from criterion's own estimates.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags};

use rustix::fs::{Mode, OFlags};

/// Where the bench stores live: tmpfs, like a real store.
pub const SHM: &str = "/dev/shm";
const PREFIX: &str = "brain-bench-";

/// A store in a fresh directory under `/dev/shm`, deleted on drop.
#[derive(Debug)]
pub struct BenchStore {
    /// The open store.
    pub store: brain_core::Store,
    dir: tempfile::TempDir,
}

impl BenchStore {
    /// A new, empty store with the default options.
    pub fn new() -> BenchStore {
        Self::with(|b| b)
    }

    /// A new, empty store with options set by `configure`.
    pub fn with(
        configure: impl FnOnce(brain_core::StoreBuilder) -> brain_core::StoreBuilder,
    ) -> BenchStore {
        sweep_stale_stores();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(SHM)
            .expect("create a temporary directory in /dev/shm");
        let store = configure(brain_core::Store::builder().path(dir.path().join("store")))
            .open()
            .expect("open the bench store");
        BenchStore { store, dir }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// A handle on `namespace`.
    pub fn namespace(&self, namespace: &str) -> brain_core::Namespace {
        self.store.namespace(namespace).expect("a valid namespace")
    }

    /// A scratch directory on the same tmpfs, outside the store, for floors.
    pub fn scratch(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        path
    }
}

impl Default for BenchStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes `/dev/shm/brain-bench-<pid>-*` directories whose process is gone
/// (a bench killed before its stores were dropped).
fn sweep_stale_stores() {
    let Ok(entries) = std::fs::read_dir(SHM) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `len` bytes from a seeded generator (splitmix64): the same bytes for the
/// same seed, and no runs of zeros that the kernel or a codec could shortcut.
pub fn seeded_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = vec![0u8; len];
    let mut chunks = out.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&next().to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = next().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    out
}

/// Sizes used by the benches.
pub const KIB: usize = 1024;
/// One mebibyte.
pub const MIB: usize = 1024 * KIB;
/// One gibibyte.
pub const GIB: usize = 1024 * MIB;

/// The file that holds `name` in `namespace`, found by scanning the store's
/// namespace directories (their layout is private to brain-core).
pub fn object_path(store: &brain_core::Store, namespace: &str, name: &str) -> PathBuf {
    let key = brain_core::ObjectKey::new(namespace, name).to_hex();
    let path = namespace_dir(store, namespace).join(key);
    assert!(path.exists(), "no object {namespace}/{name} at {path:?}");
    path
}

/// The directory of `namespace` (see [`object_path`]).
pub fn namespace_dir(store: &brain_core::Store, namespace: &str) -> PathBuf {
    let ns_root = store.path().join("ns");
    for entry in std::fs::read_dir(&ns_root).expect("list the namespaces") {
        let dir = entry.expect("a namespace entry").path();
        if std::fs::read_to_string(dir.join(".namespace"))
            .ok()
            .as_deref()
            == Some(namespace)
        {
            return dir;
        }
    }
    panic!("no namespace {namespace} in {ns_root:?}")
}

/// Floor of a small get: open the file, read up to `buf.len()` bytes, close.
/// Returns the bytes read.
pub fn floor_open_read(path: &Path, buf: &mut [u8]) -> usize {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .expect("open the object file");
    rustix::io::pread(&fd, buf, 0).expect("read the object file")
}

/// Floor of an uncached get of a large object: open, fstat, mmap the whole
/// file read-only, munmap, close (through `filebuffer`, a safe wrapper of
/// exactly those calls). Returns the mapped length.
pub fn floor_map(path: &Path) -> usize {
    let map = filebuffer::FileBuffer::open(path).expect("map the object file");
    map.len()
}

/// Floor of a small set: create a named temporary file, write `bytes`,
/// rename it over `target`, close.
pub fn floor_create_write_rename(dir: &Path, target: &Path, bytes: &[u8]) {
    let tmp = dir.join(".floor.tmp");
    let fd = rustix::fs::open(
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o400),
    )
    .expect("create the temporary file");
    write_all(&fd, bytes);
    rustix::fs::rename(&tmp, target).expect("rename the temporary file");
}

/// Floor of a large set: create `path`, `write()` all of `bytes`, close.
/// The caller deletes the file between iterations, untimed.
pub fn floor_write_file(path: &Path, bytes: &[u8]) {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .expect("create the file");
    write_all(&fd, bytes);
}

/// [`floor_write_file`] with the file's space allocated first (`fallocate`),
/// as brain's writer does: shows what the up-front allocation costs.
pub fn floor_fallocate_write_file(path: &Path, bytes: &[u8]) {
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .expect("create the file");
    rustix::fs::fallocate(
        &fd,
        rustix::fs::FallocateFlags::empty(),
        0,
        bytes.len() as u64,
    )
    .expect("allocate the file");
    write_all(&fd, bytes);
}

fn write_all(fd: &rustix::fd::OwnedFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = rustix::io::write(fd, bytes).expect("write");
        bytes = &bytes[n..];
    }
}

/// Floor of `names()`: list the directory, and open, read the first page
/// of and close every object file (the names are in the headers: the file
/// names are hashes). Returns how many files were read.
pub fn floor_scan_headers(dir: &Path) -> usize {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("list the namespace") {
        let entry = entry.expect("a directory entry");
        if entry.file_name().len() == 32 {
            std::hint::black_box(floor_open_read(&entry.path(), &mut buf));
            n += 1;
        }
    }
    n
}

/// Only listing the directory, for context next to [`floor_scan_headers`].
pub fn floor_readdir(dir: &Path) -> usize {
    std::fs::read_dir(dir).expect("list the namespace").count()
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A `brain_core::Watcher::all` running in a child process (the `watcher`
/// binary). It reports each event with the monotonic time it saw it, and
/// answers `count` with how many events it has seen. Dropping it closes the
/// child's stdin, which ends it.
///
/// Its output is read only when asked, on the calling thread: a reader thread
/// would make the bench process multi-threaded, and that alone slows a small
/// get by about 20% (the kernel then counts references on every fd lookup,
/// and glibc takes its multi-threaded paths), which is not the watcher's doing.
#[derive(Debug)]
pub struct WatcherChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pending: Vec<u8>,
    events: VecDeque<(u64, String)>,
}

enum Line {
    Ready,
    Count(u64),
    Event(u64, String),
}

impl WatcherChild {
    /// Starts `binary` watching the store at `store`, and waits until it watches.
    pub fn spawn(binary: &Path, store: &Path) -> WatcherChild {
        let mut child = Command::new(binary)
            .arg(store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the watcher process");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut watcher = WatcherChild {
            child,
            stdin,
            stdout,
            pending: Vec::new(),
            events: VecDeque::new(),
        };
        match watcher.next_line(Duration::from_secs(10)) {
            Some(Line::Ready) => watcher,
            _ => panic!("the watcher process did not start"),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line from the child, waiting at most `timeout`.
    fn next_line(&mut self, timeout: Duration) -> Option<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8(line).expect("utf-8 from the watcher");
                let mut words = line.trim_end().splitn(3, ' ');
                return Some(match (words.next(), words.next(), words.next()) {
                    (Some("ready"), _, _) => Line::Ready,
                    (Some("count"), Some(n), _) => Line::Count(n.parse().expect("a count")),
                    (Some("event"), Some(at), Some(name)) => {
                        Line::Event(at.parse().expect("a time"), name.to_owned())
                    }
                    _ => panic!("unexpected line from the watcher: {line}"),
                });
            }
            // A zero timeout still polls once: whatever is already there is read.
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos().into(),
            };
            let mut fds = [PollFd::new(&self.stdout, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) if left.is_zero() => return None,
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(err) => panic!("poll the watcher's output: {err}"),
            }
            let mut buf = [0u8; 4096];
            match rustix::io::read(&self.stdout, &mut buf) {
                Ok(0) => panic!("the watcher process ended"),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => panic!("read the watcher's output: {err}"),
            }
        }
    }

    /// How many events the child has seen so far.
    pub fn count(&mut self) -> u64 {
        let stdin = self.stdin.as_mut().expect("the watcher's stdin");
        writeln!(stdin, "count").expect("ask the watcher");
        stdin.flush().expect("ask the watcher");
        loop {
            match self.next_line(Duration::from_secs(10)) {
                Some(Line::Count(n)) => return n,
                Some(Line::Event(at, name)) => self.events.push_back((at, name)),
                Some(Line::Ready) => {}
                None => panic!("the watcher did not answer"),
            }
        }
    }

    /// The next event the child saw: (monotonic ns when it saw it, name).
    pub fn next_event(&mut self, timeout: Duration) -> Option<(u64, String)> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left)? {
                Line::Event(at, name) => return Some((at, name)),
                Line::Count(_) | Line::Ready => {}
            }
        }
    }

    /// Forgets the events reported so far.
    pub fn drain(&mut self) {
        self.events.clear();
        while self.next_line(Duration::ZERO).is_some() {}
    }
}

impl Drop for WatcherChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the summary table: a measurement, its floor and its target.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub operation: &'static str,
    /// Criterion id (`group/function`) of the measurement.
    pub id: &'static str,
    /// Criterion id of the floor, and what the floor is.
    pub floor: Option<(&'static str, &'static str)>,
    /// The target, checked against the median and the ratio.
    pub target: Target,
}

/// What a row must meet.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The median at most this many nanoseconds.
    AtMostNs(f64),
    /// The ratio to the floor at most this.
    RatioAtMost(f64),
    /// For context only.
    None,
}

/// Reads criterion's estimates written by this run and prints the table.
#[derive(Debug)]
pub struct Summary {
    dir: PathBuf,
    started: SystemTime,
}

impl Summary {
    /// Criterion's output directory, as criterion finds it: `$CRITERION_HOME`,
    /// else `<target dir>/criterion` (the target dir from `$CARGO_TARGET_DIR`,
    /// else three levels above the bench executable, `target/release/deps`).
    pub fn new() -> Summary {
        let dir = if let Some(home) = std::env::var_os("CRITERION_HOME") {
            PathBuf::from(home)
        } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
            PathBuf::from(target).join("criterion")
        } else {
            let exe = std::env::current_exe().expect("the bench executable");
            exe.ancestors()
                .nth(3)
                .map_or_else(|| PathBuf::from("target"), Path::to_owned)
                .join("criterion")
        };
        Summary {
            dir,
            started: SystemTime::now(),
        }
    }

    /// The directory criterion should write to (pass it to `output_directory`).
    pub fn output_directory(&self) -> &Path {
        &self.dir
    }

    /// The median in nanoseconds of benchmark `id` if it ran in this process.
    pub fn median_ns(&self, id: &str) -> Option<f64> {
        let path = self.dir.join(id).join("new").join("estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < self.started {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        json["median"]["point_estimate"].as_f64()
    }

    /// The table of `rows` in Markdown, with the rows that ran.
    pub fn table(&self, rows: &[Row]) -> String {
        let mut out = String::from(
            "| operation | median | floor | floor median | ratio | target | met? |\n\
             | --- | ---: | --- | ---: | ---: | --- | --- |\n",
        );
        for row in rows {
            let Some(median) = self.median_ns(row.id) else {
                continue;
            };
            let (floor_what, floor_median, ratio) = match row.floor {
                Some((id, what)) => match self.median_ns(id) {
                    Some(f) => (what, format_ns(f), Some(median / f)),
                    None => (what, "-".into(), None),
                },
                None => ("-", "-".into(), None),
            };
            let (target, met) = match row.target {
                Target::AtMostNs(ns) => (
                    format!("≤ {}", format_ns(ns)),
                    if median <= ns { "yes" } else { "**no**" },
                ),
                Target::RatioAtMost(r) => (
                    format!("ratio ≤ {r:.2}"),
                    match ratio {
                        Some(x) if x <= r => "yes",
                        Some(_) => "**no**",
                        None => "?",
                    },
                ),
                Target::None => ("-".into(), "-"),
            };
            let ratio = ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}"));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                row.operation,
                format_ns(median),
                floor_what,
                floor_median,
                ratio,
                target,
                met
            ));
        }
        out
    }
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

/// A duration in nanoseconds with a readable unit.
pub fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_bytes_are_deterministic() {
        assert_eq!(seeded_bytes(13, 7), seeded_bytes(13, 7));
        assert_ne!(seeded_bytes(64, 7), seeded_bytes(64, 8));
        assert_eq!(seeded_bytes(13, 7)[..8], seeded_bytes(16, 7)[..8]);
    }

    #[test]
    fn bench_store_is_removed_on_drop() {
        let store = BenchStore::new();
        let root = store.path().parent().unwrap().to_owned();
        // Larger than a small object: a file of its own.
        store.namespace("ns").set("x", &[7; 5000]).unwrap();
        let path = object_path(&store.store, "ns", "x");
        let mut buf = [0u8; 4096];
        assert!(floor_open_read(&path, &mut buf) > 5);
        assert_eq!(
            floor_map(&path),
            std::fs::metadata(&path).unwrap().len() as usize
        );
        drop(store);
        assert!(!root.exists());
    }

    #[test]
    fn format_ns_picks_units() {
        assert_eq!(format_ns(740.0), "740 ns");
        assert_eq!(format_ns(1_500.0), "1.50 µs");
        assert_eq!(format_ns(12_000_000.0), "12.00 ms");
    }
}
