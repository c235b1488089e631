//! Memory stays bounded: dumping and restoring a 256 MiB object, each in a
//! child process (this same binary, run again) that reports its peak RSS
//! from /proc/self/status. Restore streams into the store frame by frame
//! and dump compresses the zero-copy view in frames, so neither holds the
//! object in private memory: the growth is a few frames, whatever the size.
//!
//! A plain `main` (harness = false), so the child is this program itself.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brain_core::{ObjectStore, Store};
use brain_persist::{dump, restore, DumpOptions, RestoreOptions};

const OBJECT: usize = 256 << 20;
/// What the private memory (and, for restore, the whole RSS) may grow by.
const BOUND: u64 = 64 << 20;
const CHILD_ENV: &str = "BRAIN_PERSIST_MEMORY_CHILD";

/// A field of /proc/self/status in bytes.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// In the child: runs `op` while sampling RssAnon, then prints the peaks.
fn measure(op: impl FnOnce()) {
    let hwm_before = status("VmHWM");
    let anon_before = status("RssAnon");
    let peak = Arc::new(AtomicU64::new(anon_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status("RssAnon"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    op();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    peak.fetch_max(status("RssAnon"), Ordering::Relaxed);
    println!(
        "RESULT {} {}",
        status("VmHWM") - hwm_before,
        peak.load(Ordering::Relaxed) - anon_before
    );
}

fn child(what: &str) {
    let mut args = std::env::args().skip(1);
    let store = Store::open(args.next().unwrap()).unwrap();
    let path = args.next().unwrap();
    match what {
        "dump" => measure(|| {
            dump(&store, &path, &DumpOptions::new()).unwrap();
        }),
        "restore" => measure(|| {
            restore(&store, &path, &RestoreOptions::new()).unwrap();
        }),
        other => panic!("unknown child {other}"),
    }
}

/// Runs this binary as a child doing `what`; returns (VmHWM growth, peak RssAnon growth).
fn run_child(what: &str, store: &Path, dump: &Path) -> (u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, what)
        .arg(store)
        .arg(dump)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    let mut numbers = line.split(' ').map(|n| n.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() {
    if let Ok(what) = std::env::var(CHILD_ENV) {
        child(&what);
        return;
    }
    let shm = tempfile::Builder::new()
        .prefix("brain-persist-memory")
        .tempdir_in("/dev/shm")
        .unwrap();
    let disk = tempfile::Builder::new()
        .prefix("brain-persist-memory")
        .tempdir_in("/tmp")
        .unwrap();
    let (source, target) = (shm.path().join("source"), shm.path().join("target"));
    let dump_dir = disk.path().join("dump");
    let store = Store::open(&source).unwrap();
    // Streamed in, so this process does not hold the object either.
    let mut writer = store
        .writer(
            "big",
            "object",
            brain_core::Codec::Raw,
            "256 MiB",
            Some(OBJECT as u64),
        )
        .unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..OBJECT / chunk.len() {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = ((i * 31 + j / 16) % 251) as u8 ^ (j as u8 & 0x0f);
        }
        writer.write_payload(&chunk).unwrap();
    }
    writer.commit().unwrap();

    let (dump_hwm, dump_anon) = run_child("dump", &source, &dump_dir);
    println!(
        "dump of {}: VmHWM grew {} (the shared mapping is {}), private memory {}",
        mib(OBJECT as u64),
        mib(dump_hwm),
        mib(OBJECT as u64),
        mib(dump_anon)
    );
    let (restore_hwm, restore_anon) = run_child("restore", &target, &dump_dir);
    println!(
        "restore of {}: VmHWM grew {} (the shared mapping is {}), private memory {}",
        mib(OBJECT as u64),
        mib(restore_hwm),
        mib(OBJECT as u64),
        mib(restore_anon)
    );

    let restored = Store::open(&target).unwrap();
    let a = store.get("big", "object").unwrap().unwrap();
    let b = restored.get("big", "object").unwrap().unwrap();
    assert_eq!(b.meta().description, "256 MiB");
    assert!(a.bytes() == b.bytes(), "the restored object differs");

    let mut failed = 0;
    for (what, value, bound) in [
        ("dump private memory", dump_anon, BOUND),
        (
            "dump VmHWM beyond the shared mapping",
            dump_hwm.saturating_sub(OBJECT as u64),
            BOUND,
        ),
        ("restore private memory", restore_anon, BOUND),
        // The store's writer copies into a mapping of the object's file, so
        // the object's own pages count in the restoring process's RSS.
        (
            "restore VmHWM beyond the shared mapping",
            restore_hwm.saturating_sub(OBJECT as u64),
            BOUND,
        ),
    ] {
        let ok = value < bound;
        println!(
            "{}: {what}: {} (bound {})",
            if ok { "ok" } else { "FAILED" },
            mib(value),
            mib(bound)
        );
        failed += usize::from(!ok);
    }
    println!("{} passed, {failed} failed", 4 - failed);
    if failed > 0 {
        // exit skips destructors: remove the temporary store and dump first.
        drop((a, b, store, restored));
        drop((shm, disk));
        std::process::exit(1);
    }
}
