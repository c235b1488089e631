//! `brain dump`, `restore`, `sync`, `dumps ls` and `--persist`, with dumps
//! under /tmp: run as separate processes against stores under /dev/shm, and
//! (what does not need another process) in this process against `memory://`
//! stores (temporary directories and stores, removed when a test ends, pass
//! or fail).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

/// Which backend a test's stores are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// Shared-memory stores under /dev/shm, used by `brain` run as a process.
    Shm,
    /// `memory://` stores, used by the command line run in this process.
    Memory,
}

/// An exit status: the code, when the command exited.
#[derive(Debug)]
struct Status(Option<i32>);

impl Status {
    fn code(&self) -> Option<i32> {
        self.0
    }

    fn success(&self) -> bool {
        self.0 == Some(0)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {:?}", self.0)
    }
}

/// What a run of the command line left.
#[derive(Debug)]
struct Outcome {
    status: Status,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Outcome {
            status: Status(output.status.code()),
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }
}

struct Env {
    backend: Backend,
    /// Tells this test's memory stores from other tests'.
    id: u64,
    shm: tempfile::TempDir,
    disk: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env::on(Backend::Shm)
    }

    fn on(backend: Backend) -> Env {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Env {
            backend,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            shm: tempfile::Builder::new()
                .prefix("brain-cli-persist")
                .tempdir_in("/dev/shm")
                .unwrap(),
            disk: tempfile::Builder::new()
                .prefix("brain-cli-persist")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.shm.path().join(name)
    }

    /// The URL of the store this test calls `name`.
    fn url(&self, name: &str) -> String {
        match self.backend {
            Backend::Shm => self.store(name).to_str().unwrap().to_owned(),
            Backend::Memory => format!("memory://cli-persist-{}-{name}", self.id),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.disk.path().join(name)
    }

    /// `brain --store <shm/store> ARGS` as a process, with no standard input.
    fn cmd(&self, store: &str, args: &[&str]) -> Command {
        assert_eq!(
            self.backend,
            Backend::Shm,
            "a process cannot open memory://"
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_brain"));
        cmd.env_remove("BRAIN_PATH")
            .env_remove("BRAIN_URL")
            .env_remove("BRAIN_PERSIST")
            .arg("--store")
            .arg(self.store(store))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, store: &str, args: &[&str]) -> Outcome {
        if self.backend == Backend::Shm {
            return self.cmd(store, args).output().unwrap().into();
        }
        let (mut console, out, err) = brain_cli::Console::captured(Vec::new());
        let url = self.url(store);
        let argv = ["brain", "--store", &url]
            .into_iter()
            .chain(args.iter().copied());
        let code = brain_cli::run(argv, &mut console);
        Outcome {
            status: Status(Some(i32::from(code))),
            stdout: out.bytes(),
            stderr: err.bytes(),
        }
    }

    fn ok(&self, store: &str, args: &[&str]) -> String {
        let out = self.run(store, args);
        assert!(
            out.status.success(),
            "brain {args:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, store: &str, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(store, args)).unwrap()
    }

    /// `brain put` of `bytes` through a file.
    fn put(&self, store: &str, ns: &str, name: &str, bytes: &[u8], description: &str) {
        let file = self.disk.path().join(format!("input-{ns}-{name}"));
        std::fs::write(&file, bytes).unwrap();
        self.ok(
            store,
            &[
                "-n",
                ns,
                "put",
                name,
                file.to_str().unwrap(),
                "-d",
                description,
            ],
        );
        std::fs::remove_file(file).unwrap();
    }

    fn cat(&self, store: &str, ns: &str, name: &str) -> Vec<u8> {
        let out = self.run(store, &["-n", ns, "cat", name]);
        assert!(out.status.success());
        out.stdout
    }

    /// (namespace, name) of every object in a store.
    fn names(&self, store: &str) -> Vec<(String, String)> {
        let listing = self.json(store, &["ls", "--all", "--json"]);
        listing
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["namespace"].as_str().unwrap().to_owned(),
                    o["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// (namespace, name) of every object in a dump, from `brain dumps ls --json`.
fn dump_names(env: &Env, dir: &Path) -> Vec<(String, String)> {
    let info = env.json("unused", &["dumps", "ls", dir.to_str().unwrap(), "--json"]);
    info["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["namespace"].as_str().unwrap().to_owned(),
                o["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expect_failure(out: &Outcome, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.starts_with("brain: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

/// Bytes that compress a little, slowly at high levels.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 8 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> ((i % 8) * 8)) as u8 & 0x3f
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a child on drop, so a failing test leaves no process behind.
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// Kills the child and returns what it printed.
    fn kill(mut self) -> Output {
        let mut child = self.0.take().expect("running");
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dump_restore_and_dumps_ls_round_trip(backend: Backend) -> TestResult {
    let env = Env::on(backend);
    env.put("a", "default", "greeting", b"hello\n", "a note");
    let data = pattern(5 << 20, 1);
    env.put("a", "data", "blob", &data, "");
    let dir = env.dir("dump");
    let dir_s = dir.to_str().unwrap();
    let summary = env.ok("a", &["dump", dir_s]);
    assert!(
        summary.starts_with("dumped 2 objects in 2 namespaces"),
        "{summary}"
    );
    let text = env.ok("a", &["dumps", "ls", dir_s]);
    // The small object lies in a pack file: format 2.
    assert!(text.contains("dump (format 2, generation 1)"), "{text}");
    assert!(
        text.contains("greeting") && text.contains("a note"),
        "{text}"
    );
    let info = env.json("a", &["dumps", "ls", dir_s, "--json"]);
    assert_eq!(info["kind"], "dump");
    assert_eq!(info["objects"][0]["name"], "blob");
    assert_eq!(info["objects"][0]["size"], 5 << 20);

    let restored = env.json("b", &["restore", dir_s, "--json", "--quiet"]);
    assert_eq!(restored["restored"], 2);
    assert_eq!(env.cat("b", "data", "blob"), data);
    assert_eq!(env.cat("b", "default", "greeting"), b"hello\n");
    let info = env.json("b", &["info", "greeting", "--json"]);
    assert_eq!(info["description"], "a note");

    // One namespace, and conflicts.
    env.ok("c", &["-n", "data", "restore", dir_s, "-q"]);
    assert_eq!(env.names("c"), [("data".into(), "blob".into())]);
    let out = env.run("c", &["restore", dir_s]);
    expect_failure(&out, 1, &["already exist", "--on-conflict"]);
    let out = env.ok("c", &["restore", dir_s, "--on-conflict", "skip"]);
    assert!(out.contains("skipped 1"), "{out}");
    env.ok("c", &["restore", dir_s, "--on-conflict", "overwrite"]);
    let out = env.run("c", &["-n", "nope", "restore", dir_s]);
    expect_failure(&out, 3, &["holds no namespace \"nope\""]);
    let out = env.run("a", &["-n", "nope", "dump", env.dir("x").to_str().unwrap()]);
    expect_failure(&out, 3, &["no namespace named \"nope\""]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("no namespace named").count(), 1, "{stderr}");
    let out = env.run("a", &["dump", dir_s, "--level", "99"]);
    assert_eq!(out.status.code(), Some(2));

    // Where no dump can be made, the error says what to give instead.
    let out = env.run("a", &["dump", "/proc/brain-test-dump"]);
    expect_failure(&out, 1, &["where you can create directories"]);

    // A host's read cache of a Redis server is left out, and said so.
    let cache_ns = format!("redis-cache-{:032x}", 1u128);
    env.put("a", &cache_ns, "copy", b"a cached copy", "");
    let out = env.run("a", &["dump", dir_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("dumped 2 objects in 2 namespaces"));
    assert!(
        stderr.contains("left out 1 namespace of this host's read cache")
            && stderr.contains(&cache_ns)
            && stderr.contains("--namespace"),
        "{stderr}"
    );
    let report = env.json("a", &["dump", dir_s, "--json"]);
    assert_eq!(report["cache_namespaces_left_out"][0], cache_ns.as_str());
    assert_eq!(report["objects"], 2);
    let report = env.json("a", &["-n", &cache_ns, "dump", dir_s, "--json"]);
    assert_eq!(report["objects"], 1);
    Ok(())
}

fn restore_refuses_damaged_dumps_and_full_stores(backend: Backend) -> TestResult {
    let env = Env::on(backend);
    env.put("a", "data", "blob", &pattern(3 << 20, 2), "");
    let dir = env.dir("dump");
    let dir_s = dir.to_str().unwrap();
    env.ok("a", &["dump", dir_s, "-q"]);

    // A store too small: exit 4, nothing written.
    let out = env.run("small", &["--capacity", "1M", "restore", dir_s]);
    let advised = format!("`brain --store {} capacity SIZE`", env.url("small"));
    expect_failure(
        &out,
        4,
        &["store is full", "nothing was restored", &advised],
    );
    assert!(env.names("small").is_empty());

    // A damaged payload: exit 1, the file and object named.
    let payload = std::fs::read_dir(dir.join("data"))?.next().unwrap()?.path();
    let mut bytes = std::fs::read(&payload)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&payload, bytes)?;
    let out = env.run("b", &["restore", dir_s]);
    expect_failure(&out, 1, &["\"data\"/\"blob\"", "damaged"]);
    assert!(env.names("b").is_empty());

    // Not a dump.
    let out = env.run("b", &["restore", env.disk.path().to_str().unwrap()]);
    expect_failure(&out, 1, &["is not a brain dump"]);
    let out = env.run("b", &["dumps", "ls", env.dir("missing").to_str().unwrap()]);
    expect_failure(&out, 1, &["no dump at"]);
    Ok(())
}

#[test]
fn a_dump_killed_midway_leaves_the_previous_dump() -> TestResult {
    let env = Env::new();
    env.put("a", "old", "value", b"the previous dump", "");
    let dir = env.dir("dump");
    let dir_s = dir.to_str().unwrap();
    env.ok("a", &["dump", dir_s, "-q"]);

    // Enough data that a slow compression level takes seconds.
    for i in 0..24 {
        env.put("a", "new", &format!("part{i}"), &pattern(2 << 20, i), "");
    }
    let child = env
        .cmd("a", &["dump", dir_s, "--level", "19", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut child = Running(Some(child));
    // Kill it once it has written payloads into its temporary directory.
    let temp = || -> Option<PathBuf> {
        std::fs::read_dir(env.disk.path())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("dump.tmp-"))
    };
    wait_for("the dump to start writing", Duration::from_secs(30), || {
        temp().is_some_and(|t| {
            std::fs::read_dir(t.join("data")).is_ok_and(|mut d| d.next().is_some())
        })
    });
    child.child().kill()?; // SIGKILL
    let status = child.child().wait()?;
    assert!(!status.success(), "the dump finished before it was killed");
    let leftover = temp().expect("the killed dump's temporary directory");

    // The previous dump is intact at the path.
    assert_eq!(dump_names(&env, &dir), [("old".into(), "value".into())]);
    env.ok("b", &["restore", dir_s, "-q"]);
    assert_eq!(env.cat("b", "old", "value"), b"the previous dump");

    // The next dump succeeds and removes the leftover.
    env.ok("a", &["dump", dir_s, "--level", "1", "-q"]);
    assert!(!leftover.exists(), "the leftover was removed");
    assert_eq!(dump_names(&env, &dir).len(), 25);
    Ok(())
}

#[test]
fn sync_mirrors_changes_and_persist_restores_a_wiped_store() -> TestResult {
    let env = Env::new();
    env.put("a", "data", "first", b"first value", "one");
    let mirror = env.dir("mirror");
    let mirror_s = mirror.to_str().unwrap();
    let child = env
        .cmd("a", &["sync", "--to", mirror_s, "--interval", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let sync = Running(Some(child));
    let has = |name: &str| {
        mirror.join("MANIFEST.json").exists()
            && dump_names(&env, &mirror).contains(&("data".to_owned(), name.to_owned()))
    };
    wait_for("the first object", Duration::from_secs(20), || has("first"));
    env.put("a", "data", "second", b"second value", "two");
    wait_for("the second object", Duration::from_secs(20), || {
        has("second")
    });
    env.ok("a", &["-n", "data", "rm", "first"]);
    wait_for("the deletion", Duration::from_secs(20), || !has("first"));

    // The store is wiped while sync runs: the mirror keeps its objects.
    std::fs::remove_dir_all(env.store("a"))?;
    std::thread::sleep(Duration::from_millis(700));
    assert!(has("second"));
    let out = sync.kill();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("commit"), "{log}");
    assert!(log.contains("keeping them"), "{log}");

    // Any command with --persist (or BRAIN_PERSIST) restores the empty store.
    let out = env
        .cmd("a", &["ls", "--all"])
        .env("BRAIN_PERSIST", &mirror)
        .output()?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("restored 1 object "));
    assert_eq!(env.cat("a", "data", "second"), b"second value");
    let info = env.json("a", &["-n", "data", "info", "second", "--json"]);
    assert_eq!(info["description"], "two");

    // sync --once brings the mirror up to date and exits.
    env.put("a", "data", "third", b"third", "");
    env.ok("a", &["sync", "--to", mirror_s, "--once", "--quiet"]);
    assert!(has("third"));
    Ok(())
}

/// Runs `brain ARGS` on the wiped store `a`, a command that restores the
/// store, and kills it once it has restored some of the mirror's objects
/// and not all; returns how many it had restored.
fn kill_a_restore_midway(env: &Env, args: &[&str], total: usize) -> usize {
    let child = env
        .cmd("a", args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Running(Some(child));
    // Objects published so far: files of their size anywhere in the store
    // (names starting with a dot are writes in flight).
    fn published(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => published(&e.path()),
                Ok(t) if t.is_file() => usize::from(
                    !e.file_name().to_string_lossy().starts_with('.')
                        && e.metadata().is_ok_and(|m| m.len() >= 4 << 20),
                ),
                _ => 0,
            })
            .sum()
    }
    let restored = || published(&env.store("a"));
    wait_for("the restore to begin", Duration::from_secs(60), || {
        restored() >= 2
    });
    child.child().kill().unwrap(); // SIGKILL
    let status = child.child().wait().unwrap();
    assert!(
        !status.success(),
        "the restore finished before it was killed"
    );
    let restored = env.names("a").len();
    assert!(
        (1..total).contains(&restored),
        "{restored} of {total} restored when killed"
    );
    restored
}

#[test]
fn a_restore_killed_midway_is_finished_and_its_objects_never_mirrored_as_deleted() -> TestResult {
    let env = Env::new();
    let total = 24;
    for i in 0..total {
        env.put(
            "a",
            "data",
            &format!("obj{i:02}"),
            &pattern(4 << 20, i as u64),
            "",
        );
    }
    let mirror = env.dir("mirror");
    let mirror_s = mirror.to_str().unwrap();
    env.ok("a", &["sync", "--to", mirror_s, "--once", "--quiet"]);
    assert_eq!(dump_names(&env, &mirror).len(), total);
    let whole = |env: &Env| {
        assert_eq!(
            dump_names(env, &mirror).len(),
            total,
            "the mirror lost objects"
        );
        assert_eq!(env.names("a").len(), total, "the store lacks objects");
        for i in [0, total - 1] {
            assert_eq!(
                env.cat("a", "data", &format!("obj{i:02}")),
                pattern(4 << 20, i as u64)
            );
        }
    };
    let marks = || -> usize {
        std::fs::read_dir(&mirror)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("restoring-"))
            })
            .count()
    };

    // Killed, then `--persist M sync --to M`: the open finishes the restore
    // before the sync compares the store with the mirror.
    std::fs::remove_dir_all(env.store("a"))?;
    let auto_restore = ["--persist", mirror_s, "ls", "--all"];
    kill_a_restore_midway(&env, &auto_restore, total);
    assert_eq!(marks(), 1, "the killed restore left its mark");
    let out = env.run(
        "a",
        &["--persist", mirror_s, "sync", "--to", mirror_s, "--once"],
    );
    assert!(out.status.success(), "{out:?}");
    whole(&env);
    assert_eq!(marks(), 0);

    // Killed, then a sync without --persist: the sync finishes it.
    std::fs::remove_dir_all(env.store("a"))?;
    kill_a_restore_midway(&env, &auto_restore, total);
    let out = env.run("a", &["sync", "--to", mirror_s, "--once"]);
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("finished a restore") && log.contains("had been interrupted"),
        "{log}"
    );
    whole(&env);
    assert_eq!(marks(), 0);

    // Killed, then a plain open with --persist: it finishes the restore, as
    // the store is not empty and would not be restored otherwise.
    std::fs::remove_dir_all(env.store("a"))?;
    kill_a_restore_midway(&env, &auto_restore, total);
    env.ok("a", &["--persist", mirror_s, "ls"]);
    whole(&env);
    assert_eq!(marks(), 0);

    // `brain restore` interrupted (Ctrl-C on a long restore), then a sync.
    std::fs::remove_dir_all(env.store("a"))?;
    kill_a_restore_midway(&env, &["restore", mirror_s, "--quiet"], total);
    assert_eq!(marks(), 1);
    // Run again, the restore meets the names it wrote, and says what to do.
    let out = env.run("a", &["restore", mirror_s]);
    expect_failure(
        &out,
        1,
        &["was interrupted", "--on-conflict skip finishes it"],
    );
    env.ok("a", &["sync", "--to", mirror_s, "--once", "--quiet"]);
    whole(&env);
    assert_eq!(marks(), 0);
    Ok(())
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.backend == Backend::Memory {
            for name in ["a", "b", "c", "small", "unused"] {
                brain::drop_memory_store(&format!("cli-persist-{}-{name}", self.id));
            }
        }
    }
}

/// Runs a test once per backend, as `<name>::shm` and `<name>::memory`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn shm() -> super::TestResult {
                    super::$name(super::Backend::Shm)
                }
                #[test]
                fn memory() -> super::TestResult {
                    super::$name(super::Backend::Memory)
                }
            }
        )*
    };
}

on_every_backend!(
    dump_restore_and_dumps_ls_round_trip,
    restore_refuses_damaged_dumps_and_full_stores,
);
