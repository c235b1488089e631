//! The `brain` command line on every backend: run as separate processes
//! against a shared-memory store in a temporary directory under /dev/shm,
//! and in this process against a `memory://` store (each removed when the
//! test ends, pass or fail). Tests about shared memory itself (files on
//! disk, other processes, pipes) run on the shared-memory store only.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

/// Which backend a test's store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// A shared-memory store under /dev/shm, used by `brain` run as a process.
    Shm,
    /// A `memory://` store, used by the command line run in this process
    /// (the store lives only in the process that opened it).
    Memory,
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

/// What a run of the command line left: exit code, standard output and error.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Outcome {
    fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Outcome {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }
}

/// A store of its own for one test: a directory under /dev/shm (also used
/// for the test's files, whatever the backend), and the store's URL. A
/// shared-memory store is removed with the directory, a memory store
/// forgotten, when the test ends, pass or fail.
struct TestStore {
    backend: Backend,
    dir: tempfile::TempDir,
    path: PathBuf,
    url: String,
}

impl TestStore {
    /// A shared-memory store (for tests about shared memory itself).
    fn new() -> Result<TestStore, Box<dyn Error>> {
        TestStore::on(Backend::Shm)
    }

    fn on(backend: Backend) -> Result<TestStore, Box<dyn Error>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = tempfile::Builder::new()
            .prefix("brain-cli-test")
            .tempdir_in("/dev/shm")?;
        let path = dir.path().join("store");
        let url = match backend {
            Backend::Shm => path.to_str().ok_or("non-UTF-8 temp path")?.to_owned(),
            Backend::Memory => {
                format!("memory://cli-test-{}", NEXT.fetch_add(1, Ordering::Relaxed))
            }
        };
        Ok(TestStore {
            backend,
            dir,
            path,
            url,
        })
    }

    /// `brain COMMAND` as an error's advice spells it: with this store's
    /// `--store`, as every test gives it.
    fn advised(&self, command: &str) -> String {
        let store = match self.backend {
            Backend::Shm => self.path.display().to_string(),
            Backend::Memory => self.url.clone(),
        };
        format!("`brain --store {store} {command}")
    }

    /// `brain --store <this store> ARGS` as a process, with no standard input
    /// (a shared-memory store only).
    fn cmd(&self, args: &[&str]) -> Command {
        assert_eq!(
            self.backend,
            Backend::Shm,
            "a process cannot open memory://"
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_brain"));
        cmd.env_remove("BRAIN_PATH")
            .env_remove("BRAIN_URL")
            .arg("--store")
            .arg(&self.path)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<Outcome, Box<dyn Error>> {
        match self.backend {
            Backend::Shm => Ok(self.cmd(args).output()?.into()),
            Backend::Memory => Ok(self.in_process(args, Vec::new())),
        }
    }

    /// The command line run in this process against this store.
    fn in_process(&self, args: &[&str], stdin: Vec<u8>) -> Outcome {
        let (mut console, out, err) = brain_cli::Console::captured(stdin);
        let argv = ["brain", "--store", &self.url]
            .into_iter()
            .chain(args.iter().copied());
        let code = brain_cli::run(argv, &mut console);
        Outcome {
            code: Some(i32::from(code)),
            stdout: out.bytes(),
            stderr: err.bytes(),
        }
    }

    /// Runs and requires success; returns standard output.
    fn ok(&self, args: &[&str]) -> Result<Vec<u8>, Box<dyn Error>> {
        check(self.run(args)?, args)
    }

    fn ok_text(&self, args: &[&str]) -> Result<String, Box<dyn Error>> {
        Ok(String::from_utf8(self.ok(args)?)?)
    }

    fn json(&self, args: &[&str]) -> Result<Value, Box<dyn Error>> {
        Ok(serde_json::from_slice(&self.ok(args)?)?)
    }

    /// Runs with `input` on standard input.
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Result<Outcome, Box<dyn Error>> {
        if self.backend == Backend::Memory {
            return Ok(self.in_process(args, input.to_vec()));
        }
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let input = input.to_vec();
        // A writer thread, so a child that stops reading cannot block the test.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output()?;
        feeder.join().map_err(|_| "stdin writer panicked")?;
        Ok(output.into())
    }

    /// The sealed object files of a shared-memory store.
    fn object_files(&self) -> Result<Vec<PathBuf>, Box<dyn Error>> {
        let mut files = Vec::new();
        for ns in std::fs::read_dir(self.path.join("ns"))? {
            let ns = ns?.path();
            if !ns.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&ns)? {
                let path = entry?.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden {
                    files.push(path);
                }
            }
        }
        Ok(files)
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(name) = self.url.strip_prefix("memory://") {
            brain::drop_memory_store(name);
        }
    }
}

/// A command still running: `brain` as a process, or the command line on a
/// thread of this process (for a memory store).
enum Running {
    Process(std::process::Child, BufReader<std::process::ChildStderr>),
    Thread(std::thread::JoinHandle<Outcome>, brain_cli::Captured, usize),
}

impl TestStore {
    /// Starts `brain ARGS` without waiting for it.
    fn start(&self, args: &[&str]) -> Result<Running, Box<dyn Error>> {
        if self.backend == Backend::Shm {
            let mut child = self
                .cmd(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            let stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
            return Ok(Running::Process(child, stderr));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let argv: Vec<String> = ["brain", "--store", &self.url]
            .into_iter()
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        let thread = std::thread::spawn(move || {
            let (mut console, out, err) = brain_cli::Console::captured(Vec::new());
            let _ = tx.send(err.clone());
            let code = brain_cli::run(argv, &mut console);
            Outcome {
                code: Some(i32::from(code)),
                stdout: out.bytes(),
                stderr: err.bytes(),
            }
        });
        Ok(Running::Thread(thread, rx.recv()?, 0))
    }
}

impl Running {
    /// The next line the command writes to standard error (waits for it).
    fn stderr_line(&mut self) -> Result<String, Box<dyn Error>> {
        match self {
            Running::Process(_, stderr) => {
                let mut line = String::new();
                stderr.read_line(&mut line)?;
                Ok(line)
            }
            Running::Thread(_, stderr, taken) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let bytes = stderr.bytes();
                    if let Some(end) = bytes[*taken..].iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8_lossy(&bytes[*taken..*taken + end + 1]);
                        *taken += end + 1;
                        return Ok(line.into_owned());
                    }
                    if std::time::Instant::now() > deadline {
                        return Err("no line on standard error in 30 s".into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// Waits for the command to end; its outcome (standard error: what was not read yet).
    fn finish(self) -> Result<Outcome, Box<dyn Error>> {
        match self {
            Running::Process(child, mut stderr) => {
                let mut outcome: Outcome = child.wait_with_output()?.into();
                let mut rest = Vec::new();
                stderr.read_to_end(&mut rest)?;
                outcome.stderr = rest;
                Ok(outcome)
            }
            Running::Thread(thread, _, taken) => {
                let mut outcome = thread.join().map_err(|_| "the command panicked")?;
                outcome.stderr.drain(..taken);
                Ok(outcome)
            }
        }
    }
}

/// Requires a successful exit; returns standard output.
fn check(output: Outcome, args: &[&str]) -> Result<Vec<u8>, Box<dyn Error>> {
    if !output.success() {
        return Err(format!(
            "brain {args:?} failed with {:?}: {}",
            output.code,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output.stdout)
}

/// Requires exit code `code` and standard error containing each of `needles`.
fn expect_failure(output: &Outcome, code: i32, needles: &[&str]) -> TestResult {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.code,
        Some(code),
        "expected exit {code}; stderr: {stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr: {stderr}"
        );
    }
    assert!(
        code == 2 || stderr.starts_with("brain: "),
        "errors start with \"brain: \": {stderr}"
    );
    Ok(())
}

/// Deterministic bytes that do not compress or repeat.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn names(listing: &Value) -> Vec<&str> {
    listing
        .as_array()
        .map(|objects| objects.iter().filter_map(|o| o["name"].as_str()).collect())
        .unwrap_or_default()
}

fn put_from_file_and_stdin_then_cat_round_trips_bytes(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let big = pseudo_random(3 * 1024 * 1024 + 17, 0x9e37_79b9_7f4a_7c15);
    let file = store.dir.path().join("big.bin");
    std::fs::write(&file, &big)?;
    let file = file.to_str().ok_or("non-UTF-8 temp path")?;

    store.ok(&["put", "from-file", file])?;
    assert!(store.ok(&["cat", "from-file"])? == big, "file round trip");

    let out = store.run_with_input(&["put", "from-stdin", "-"], &big)?;
    check(out, &["put", "from-stdin", "-"])?;
    assert!(store.ok(&["cat", "from-stdin"])? == big, "stdin round trip");

    // Standard input redirected from a file (its length is known up front).
    if backend == Backend::Shm {
        let redirected = store
            .cmd(&["put", "-n", "other", "redirected", "-"])
            .stdin(std::fs::File::open(file)?)
            .output()?;
        check(redirected.into(), &["put", "redirected", "-"])?;
        assert!(store.ok(&["cat", "-n", "other", "redirected"])? == big);
    }

    // Small, empty, and every byte value.
    let every_byte: Vec<u8> = (0..=255).collect();
    check(
        store.run_with_input(&["put", "bytes", "-"], &every_byte)?,
        &["put"],
    )?;
    assert_eq!(store.ok(&["cat", "bytes"])?, every_byte);
    check(store.run_with_input(&["put", "empty", "-"], b"")?, &["put"])?;
    assert_eq!(store.ok(&["cat", "empty"])?, b"");

    // Replacing a name.
    check(
        store.run_with_input(&["put", "bytes", "-"], b"new")?,
        &["put"],
    )?;
    assert_eq!(store.ok(&["cat", "bytes"])?, b"new");
    Ok(())
}

fn text_codec_checks_utf8(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let text = "héllo wörld ✓\n".repeat(100_000); // multi-byte characters across read boundaries
    let out = store.run_with_input(&["put", "t", "-", "--codec", "text"], text.as_bytes())?;
    check(out, &["put", "--codec", "text"])?;
    assert_eq!(store.ok_text(&["cat", "t"])?, text);
    assert_eq!(store.json(&["info", "t", "--json"])?["codec"], "text");

    let out = store.run_with_input(&["put", "bad", "-", "-c", "text"], b"ok \xff\xfe")?;
    expect_failure(&out, 1, &["not UTF-8", "offset 3", "--codec raw"])?;
    let out = store.run_with_input(&["put", "bad", "-", "-c", "text"], b"cut \xc3")?;
    expect_failure(&out, 1, &["not UTF-8"])?;
    // Nothing was stored.
    expect_failure(
        &store.run(&["cat", "bad"])?,
        3,
        &["no object named \"bad\""],
    )?;
    Ok(())
}

/// The Arrow codecs store Arrow IPC files, which every reader opens: other
/// bytes (an IPC stream, say) are refused, not stored to fail every read.
fn arrow_codecs_take_arrow_files_only(backend: Backend) -> TestResult {
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    let store = TestStore::on(backend)?;
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
    let mut file = Vec::new();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut file, &schema)?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    let mut stream = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut stream, &schema)?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    for codec in ["arrow", "pandas", "polars"] {
        check(
            store.run_with_input(&["put", codec, "-", "-c", codec], &file)?,
            &["put", codec],
        )?;
        assert_eq!(store.ok(&["cat", codec])?, file);
        let out = store.run_with_input(&["put", "s", "-", "-c", codec], &stream)?;
        expect_failure(
            &out,
            1,
            &[
                "not an Arrow IPC file",
                "an Arrow IPC stream",
                "--codec raw",
            ],
        )?;
        for junk in [&b""[..], b"ARROW1", b"junk", &file[..file.len() - 1]] {
            let out = store.run_with_input(&["put", "j", "-", "-c", codec], junk)?;
            expect_failure(&out, 1, &["not an Arrow IPC file", "ARROW1"])?;
        }
    }
    // Nothing was stored.
    expect_failure(&store.run(&["cat", "s"])?, 3, &["no object named \"s\""])?;
    expect_failure(&store.run(&["cat", "j"])?, 3, &["no object named \"j\""])?;
    Ok(())
}

fn ls_lists_a_namespace_every_namespace_or_json(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    // A fresh store lists as empty.
    assert_eq!(store.ok_text(&["ls"])?, "");
    assert_eq!(store.json(&["ls", "--json"])?, serde_json::json!([]));

    check(store.run_with_input(&["put", "b", "-"], b"bee")?, &["put"])?;
    check(
        store.run_with_input(&["put", "a", "-", "-d", "the letter a"], b"a")?,
        &["put"],
    )?;
    check(
        store.run_with_input(&["put", "-n", "other", "c", "-"], &[0u8; 5000])?,
        &["put"],
    )?;

    let text = store.ok_text(&["ls"])?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SIZE"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("a ") && lines[1].contains("the letter a"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("b ") && lines[2].contains("3 B"),
        "{text}"
    );

    let other = store.ok_text(&["ls", "other"])?;
    assert!(
        other.lines().nth(1).is_some_and(|l| l.starts_with("c ")),
        "{other}"
    );
    assert_eq!(store.ok_text(&["ls", "-n", "other"])?, other);

    let all = store.ok_text(&["ls", "--all"])?;
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains("other") && all.contains("4.9 KiB"), "{all}");

    let listing = store.json(&["ls", "--json"])?;
    assert_eq!(names(&listing), ["a", "b"]);
    assert_eq!(listing[0]["description"], "the letter a");
    assert_eq!(listing[0]["namespace"], "default");
    assert_eq!(listing[1]["size"], 3);
    assert_eq!(listing[1]["codec"], "raw");
    let all = store.json(&["ls", "--all", "--json"])?;
    assert_eq!(names(&all), ["a", "b", "c"]);
    assert_eq!(all[2]["namespace"], "other");
    assert_eq!(all[2]["size"], 5000);

    // The store can come from BRAIN_PATH, or BRAIN_URL (which wins).
    if backend == Backend::Shm {
        let via_path = Command::new(env!("CARGO_BIN_EXE_brain"))
            .env("BRAIN_PATH", &store.path)
            .env_remove("BRAIN_URL")
            .args(["ls", "--json"])
            .output()?;
        let via_path: Value = serde_json::from_slice(&check(via_path.into(), &["ls"])?)?;
        assert_eq!(names(&via_path), ["a", "b"]);
        let via_url = Command::new(env!("CARGO_BIN_EXE_brain"))
            .env("BRAIN_PATH", "/nonexistent/not/this/one")
            .env("BRAIN_URL", format!("shm://{}", store.path.display()))
            .args(["ls", "--json"])
            .output()?;
        let via_url: Value = serde_json::from_slice(&check(via_url.into(), &["ls"])?)?;
        assert_eq!(names(&via_url), ["a", "b"]);
    }

    // A namespace named explicitly must exist.
    let out = store.run(&["ls", "nosuch"])?;
    expect_failure(
        &out,
        3,
        &["no namespace named \"nosuch\"", &store.advised("ns ls`")],
    )?;
    // --all and a namespace together are a usage error.
    expect_failure(&store.run(&["ls", "other", "--all"])?, 2, &[])?;
    Ok(())
}

fn info_shows_metadata_as_text_and_json(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let out = store.run_with_input(
        &[
            "put",
            "greeting",
            "-",
            "--codec",
            "text",
            "--description",
            "says hi",
        ],
        b"hello",
    )?;
    check(out, &["put"])?;

    let text = store.ok_text(&["info", "greeting"])?;
    for expected in [
        "namespace    default",
        "name         greeting",
        "codec        text",
        "size         5 B",
        "stored size  4.0 KiB (4096 bytes)",
        "description  says hi",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(text.contains("created      20"), "{text}");

    let info = store.json(&["info", "greeting", "--json"])?;
    assert_eq!(info["name"], "greeting");
    assert_eq!(info["namespace"], "default");
    assert_eq!(info["codec"], "text");
    assert_eq!(info["size"], 5);
    assert_eq!(info["stored_size"], 4096);
    assert_eq!(info["description"], "says hi");
    let created = info["created"].as_str().ok_or("no created")?;
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert!(info["created_unix_ns"].as_u64().is_some_and(|ns| ns > 0));

    // Replaced without a description, it keeps its own (a set from Python does).
    check(
        store.run_with_input(&["put", "greeting", "-", "--codec", "text"], b"hello again")?,
        &["put"],
    )?;
    let info = store.json(&["info", "greeting", "--json"])?;
    assert_eq!(
        (info["size"].as_u64(), info["description"].as_str()),
        (Some(11), Some("says hi"))
    );

    expect_failure(
        &store.run(&["info", "nope"])?,
        3,
        &["no object named \"nope\" in namespace \"default\""],
    )?;
    Ok(())
}

fn info_describes_arrays_and_tables(backend: Backend) -> TestResult {
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use brain_core::{NdArrayMeta, ObjectStoreExt};

    let store = TestStore::on(backend)?;
    // Written by the library, as another program would.
    let lib = brain::open(&store.url)?;
    let meta = NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![2, 3],
        fortran_order: false,
    };
    lib.put_ndarray("default", "arr", &meta, &[0u8; 48])?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Float64, false),
        Field::new("item", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
        ],
    )?;
    lib.put_record_batches("default", "table", &schema, &[batch.clone(), batch])?;

    let text = store.ok_text(&["info", "arr"])?;
    assert!(text.contains("dtype        <f8"), "{text}");
    assert!(text.contains("shape        (2, 3)"), "{text}");
    let info = store.json(&["info", "arr", "--json"])?;
    assert_eq!(
        info["ndarray"],
        serde_json::json!({"dtype": "<f8", "shape": [2, 3], "fortran_order": false})
    );

    let text = store.ok_text(&["info", "table"])?;
    assert!(text.contains("rows         6"), "{text}");
    assert!(text.contains("columns      price: Float64\n"), "{text}");
    assert!(text.contains("item: Utf8, nullable"), "{text}");
    let info = store.json(&["info", "table", "--json"])?;
    assert_eq!(info["codec"], "arrow");
    assert_eq!(info["arrow"]["rows"], 6);
    assert_eq!(info["arrow"]["batches"], 2);
    assert_eq!(info["arrow"]["columns"][1]["name"], "item");
    assert_eq!(info["arrow"]["columns"][1]["nullable"], true);

    // `put` decodes an Arrow file before storing it: junk between its
    // magic is refused, and the name keeps what it held.
    let out = store.run_with_input(
        &["put", "table", "-", "--codec", "arrow"],
        b"ARROW1\0\0junkARROW1",
    )?;
    expect_failure(&out, 1, &["is an Arrow IPC file that does not decode"])?;
    assert_eq!(
        store.json(&["info", "table", "--json"])?["arrow"]["rows"],
        6
    );
    // A payload its codec cannot read, stored another way, still has
    // metadata; the problem is shown.
    lib.put(
        "default",
        "junk",
        &brain_core::Payload::bytes(b"ARROW1\0\0junkARROW1")
            .with_codec(brain_core::Codec::ArrowIpc),
    )?;
    let info = store.json(&["info", "junk", "--json"])?;
    assert!(info["decode_error"]
        .as_str()
        .is_some_and(|e| e.contains("Arrow IPC")));
    Ok(())
}

fn rm_then_cat_is_not_found(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    check(store.run_with_input(&["put", "x", "-"], b"data")?, &["put"])?;
    check(store.run_with_input(&["put", "y", "-"], b"data")?, &["put"])?;
    store.ok(&["rm", "x"])?;

    let out = store.run(&["cat", "x"])?;
    expect_failure(
        &out,
        3,
        &[
            "no object named \"x\" in namespace \"default\"",
            &store.advised("ls default`"),
        ],
    )?;
    assert!(out.stdout.is_empty());
    expect_failure(&store.run(&["rm", "x"])?, 3, &["no object named \"x\""])?;
    store.ok(&["rm", "--force", "x"])?;
    // Several names: the ones that exist go, a missing one is still reported.
    expect_failure(&store.run(&["rm", "y", "x"])?, 3, &["\"x\""])?;
    expect_failure(&store.run(&["cat", "y"])?, 3, &[])?;
    // Several missing: each named, the advice once, with the store given.
    let out = store.run(&["rm", "a", "b", "c"])?;
    expect_failure(&out, 3, &["\"a\"", "\"b\"", "\"c\""])?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("list what exists").count(), 1, "{said}");
    assert_eq!(
        said.matches(&store.advised("ls default`")).count(),
        1,
        "{said}"
    );
    // A namespace with a space is quoted in the advice, to run as written.
    expect_failure(
        &store.run(&["cat", "-n", "my data", "x"])?,
        3,
        &[&store.advised("ls 'my data'`")],
    )?;
    Ok(())
}

fn ns_ls_and_ns_rm(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    for (ns, name) in [("one", "a"), ("two", "a"), ("two", "b")] {
        check(
            store.run_with_input(&["put", "-n", ns, name, "-"], b"x")?,
            &["put"],
        )?;
    }
    let listing = store.json(&["ns", "ls", "--json"])?;
    assert_eq!(
        listing,
        serde_json::json!([
            {"namespace": "one", "names": 1, "objects": 1, "bytes": 4096},
            {"namespace": "two", "names": 2, "objects": 2, "bytes": 8192},
        ])
    );
    let text = store.ok_text(&["ns", "ls"])?;
    assert!(text.starts_with("NAMESPACE"), "{text}");
    assert!(text.contains("two") && text.contains("8.0 KiB"), "{text}");

    let removed = store.ok_text(&["ns", "rm", "two"])?;
    assert_eq!(removed, "removed namespace two and its 2 objects\n");
    // The default namespace stays, with its objects, as in Python.
    check(
        store.run_with_input(&["put", "kept", "-"], b"mine")?,
        &["put"],
    )?;
    expect_failure(
        &store.run(&["ns", "rm", "default"])?,
        1,
        &[
            "cannot remove the default namespace",
            &store.advised("rm NAME"),
        ],
    )?;
    assert_eq!(store.ok(&["cat", "kept"])?, b"mine");
    let listing = store.json(&["ns", "ls", "--json"])?;
    assert_eq!(listing.as_array().map(Vec::len), Some(2), "one and default");
    expect_failure(&store.run(&["cat", "-n", "two", "a"])?, 3, &[])?;
    expect_failure(
        &store.run(&["ns", "rm", "two"])?,
        3,
        &["no namespace named \"two\"", &store.advised("ns ls`")],
    )?;
    Ok(())
}

fn stats_numbers_are_consistent(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let before = store.json(&["stats", "--json"])?;
    assert_eq!(before["used"], 0);
    assert_eq!(before["objects"], 0);
    assert!(before["capacity"].is_null());
    assert_eq!(before["store"].as_str(), Some(store.url.as_str()));
    match backend {
        Backend::Shm => assert!(before["filesystem_size"].as_u64() > Some(0)),
        Backend::Memory => assert!(before.get("filesystem_size").is_none(), "{before}"),
    }

    check(
        store.run_with_input(&["put", "m", "-"], &vec![7u8; 1 << 20])?,
        &["put"],
    )?;
    check(
        store.run_with_input(&["put", "-n", "b", "s", "-"], b"small")?,
        &["put"],
    )?;
    let after = store.json(&["stats", "--json"])?;
    let used = after["used"].as_u64().ok_or("no used")?;
    assert!(used > 1 << 20, "used {used}");
    assert_eq!(after["objects"], 2);
    let per_ns: u64 = after["namespaces"]
        .as_array()
        .ok_or("no namespaces")?
        .iter()
        .filter_map(|n| n["bytes"].as_u64())
        .sum();
    assert_eq!(per_ns, used);
    if backend == Backend::Shm {
        assert!(after["free"].as_u64() <= after["filesystem_free"].as_u64());
    }

    store.ok(&["capacity", "64M"])?;
    let limited = store.json(&["stats", "--json"])?;
    assert_eq!(limited["capacity"], 64 << 20);
    assert_eq!(limited["free"].as_u64(), Some((64 << 20) - used));
    let text = store.ok_text(&["stats"])?;
    assert!(
        text.contains("capacity    64.0 MiB (67108864 bytes)"),
        "{text}"
    );
    assert!(text.contains("names       2"), "{text}");
    assert!(text.contains("objects     2"), "{text}");
    assert!(text.contains("NAMESPACE"), "{text}");

    // A frame changed in place is one name, stored as several objects.
    {
        use std::sync::Arc;

        use arrow_array::{Int64Array, RecordBatch};
        use arrow_schema::{DataType, Field, Schema};

        let lib = brain_core::Namespace::new(brain::open(&store.url)?, "frames")?;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
        lib.set_record_batches("f", &schema, std::slice::from_ref(&batch))?;
        lib.append_rows("f", &schema, &[batch])?;
    }
    let framed = store.json(&["stats", "--json"])?;
    assert_eq!(framed["names"], 3, "{framed}");
    assert!(framed["objects"].as_u64() > Some(3), "{framed}");
    // Per namespace too: the frame is one name of several objects.
    let listing = store.json(&["ns", "ls", "--json"])?;
    let frames = listing
        .as_array()
        .and_then(|all| all.iter().find(|ns| ns["namespace"] == "frames"))
        .ok_or("no namespace frames")?;
    assert_eq!(frames["names"], 1, "{listing}");
    assert!(frames["objects"].as_u64() > Some(1), "{listing}");
    assert_eq!(
        store.ok_text(&["ls", "-n", "frames"])?.lines().count(),
        2,
        "a header and the frame"
    );

    store.ok(&["capacity", "none"])?;
    assert!(store.json(&["capacity", "--json"])?["capacity"].is_null());
    Ok(())
}

/// A payload too large for the table of small objects, ending in `tail`:
/// an object file of its own, for tests that damage one.
fn file_sized(tail: &[u8]) -> Vec<u8> {
    let mut bytes = vec![b'.'; 3000];
    bytes.extend_from_slice(tail);
    bytes
}

#[test]
fn gc_and_fsck_report_and_repair() -> TestResult {
    let store = TestStore::new()?;
    check(
        store.run_with_input(&["put", "good", "-"], &file_sized(b"fine"))?,
        &["put"],
    )?;
    check(
        store.run_with_input(&["put", "bad", "-"], &file_sized(b"doomed"))?,
        &["put"],
    )?;

    // A temporary file left by a writer that died (no process has this pid).
    let ns_dir = store.object_files()?[0]
        .parent()
        .ok_or("no parent")?
        .to_owned();
    std::fs::write(ns_dir.join(".tmp.999999999.obj0.0"), vec![0u8; 100])?;
    let gc = store.json(&["gc", "--json"])?;
    assert_eq!(gc["stray_objects"], 1);
    assert_eq!(gc["bytes_freed"], 100);
    let text = store.ok_text(&["gc"])?;
    assert!(text.starts_with("removed 0 unfinished objects"), "{text}");

    let healthy = store.json(&["fsck", "--json"])?;
    assert_eq!(healthy["objects"], 2);
    assert_eq!(healthy["corrupt"], serde_json::json!([]));
    assert!(store
        .ok_text(&["fsck"])?
        .contains("checked 2 objects: 0 corrupt"));

    // Damage the object "bad": objects are read-only, so make it writable first.
    let mut damaged = None;
    for file in store.object_files()? {
        if std::fs::read(&file)?.ends_with(b"doomed") {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            let mut bytes = std::fs::read(&file)?;
            bytes[..8].copy_from_slice(b"garbage!");
            std::fs::write(&file, bytes)?;
            damaged = Some(file);
        }
    }
    let damaged = damaged.ok_or("object file not found")?;

    let out = store.run(&["fsck", "--json"])?;
    expect_failure(&out, 1, &["1 corrupt object left", "--delete-corrupt"])?;
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["objects"], 1);
    assert_eq!(report["deleted"], 0);
    assert_eq!(report["corrupt"][0]["location"].as_str(), damaged.to_str());
    assert!(report["corrupt"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("corrupt")));
    let out = store.run(&["fsck"])?;
    let report = String::from_utf8(out.stdout)?;
    assert!(report.contains("corrupt: "), "{report}");
    // fsck's report does not advise running fsck.
    assert!(!report.contains("run `brain"), "{report}");

    let out = store.run(&["cat", "bad"])?;
    expect_failure(&out, 1, &["is corrupt", &store.advised("fsck`")])?;

    let repaired = store.json(&["fsck", "--delete-corrupt", "--json"])?;
    assert_eq!(repaired["deleted"], 1);
    assert!(!damaged.exists());
    assert_eq!(store.ok(&["cat", "good"])?, file_sized(b"fine"));
    assert_eq!(names(&store.json(&["ls", "--json"])?), ["good"]);
    assert_eq!(
        store.json(&["fsck", "--json"])?["corrupt"],
        serde_json::json!([])
    );
    Ok(())
}

#[test]
fn cat_verify_refuses_a_payload_changed_after_it_was_written() -> TestResult {
    let store = TestStore::new()?;
    let payload = file_sized(b"checked");
    check(
        store.run_with_input(&["put", "x", "-"], &payload)?,
        &["put"],
    )?;
    assert_eq!(store.ok(&["cat", "--verify", "x"])?, payload);
    let file = store.object_files()?.pop().ok_or("no object file")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let mut bytes = std::fs::read(&file)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes)?;
    // A plain read passes over no byte of the payload; a verified one does.
    assert_ne!(store.ok(&["cat", "x"])?, payload);
    let out = store.run(&["cat", "--verify", "x"])?;
    expect_failure(&out, 1, &["is corrupt", "does not match the checksum"])?;
    assert!(out.stdout.is_empty(), "a damaged object went out");
    Ok(())
}

#[test]
fn rm_deletes_a_corrupt_object() -> TestResult {
    let store = TestStore::new()?;
    check(
        store.run_with_input(&["put", "x", "-"], &file_sized(b"data"))?,
        &["put"],
    )?;
    let file = store.object_files()?.pop().ok_or("no object file")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&file, b"not an object")?;
    expect_failure(&store.run(&["cat", "x"])?, 1, &["is corrupt"])?;
    // `ls` does not list it, and says so.
    let listed = store.run(&["ls"])?;
    let said = String::from_utf8_lossy(&listed.stderr).into_owned();
    assert!(
        said.contains("1 object in namespace \"default\" cannot be read and is not listed"),
        "{said}"
    );
    store.ok(&["rm", "x"])?;
    assert!(!file.exists());
    assert_eq!(store.json(&["stats", "--json"])?["used"], 0);
    Ok(())
}

fn a_full_store_exits_4(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    store.ok(&["capacity", "1M"])?;
    let big = pseudo_random(2 << 20, 42);
    let file = store.dir.path().join("big.bin");
    std::fs::write(&file, &big)?;
    let file = file.to_str().ok_or("non-UTF-8 temp path")?;

    let out = store.run(&["put", "big", file])?;
    expect_failure(&out, 4, &["store is full", "\"big\"", "capacity"])?;
    // Streaming standard input, whose length is not known up front: the
    // bytes it brought before it was refused are not counted as in use.
    let out = store.run_with_input(&["put", "big", "-"], &big)?;
    expect_failure(
        &out,
        4,
        &["store is full", "but 0 of 1048576 bytes are used"],
    )?;
    // Nothing was left behind.
    assert_eq!(store.json(&["stats", "--json"])?["used"], 0);
    expect_failure(&store.run(&["cat", "big"])?, 3, &[])?;

    // Raising the capacity (the global flag) lets it in.
    store.ok(&["--capacity", "8M", "put", "big", file])?;
    assert!(store.ok(&["cat", "big"])? == big);
    Ok(())
}

fn watch_sees_puts_from_other_writers(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let mut watcher = store.start(&["watch", "--count", "2", "--timeout", "30s"])?;
    // The watcher says on standard error when its watch is in place.
    let ready = watcher.stderr_line()?;
    assert!(
        ready.starts_with("watching namespace \"default\""),
        "{ready}"
    );

    check(
        store.run_with_input(&["put", "first", "-"], b"1")?,
        &["put"],
    )?;
    check(
        store.run_with_input(&["put", "-n", "elsewhere", "ignored", "-"], b"x")?,
        &["put"],
    )?;
    check(
        store.run_with_input(&["put", "second", "-"], b"2")?,
        &["put"],
    )?;

    let out = watcher.finish()?;
    assert!(
        out.success(),
        "watch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "set\tdefault\tfirst\nset\tdefault\tsecond\n"
    );
    Ok(())
}

fn watch_all_prints_json_lines_and_times_out(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let mut watcher = store.start(&[
        "watch",
        "--all",
        "--json",
        "--count",
        "2",
        "--timeout",
        "30s",
    ])?;
    let ready = watcher.stderr_line()?;
    assert!(ready.starts_with("watching every namespace"), "{ready}");
    check(
        store.run_with_input(&["put", "-n", "new-ns", "a", "-"], b"1")?,
        &["put"],
    )?;
    store.ok(&["rm", "-n", "new-ns", "a"])?;
    let out = watcher.finish()?;
    assert!(out.success());
    let events: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "set");
    assert_eq!(events[0]["namespace"], "new-ns");
    assert_eq!(events[0]["name"], "a");
    assert_eq!(events[1]["event"], "deleted");

    // Too few events before the timeout is an error; a timeout alone is not.
    let out = store.run(&["watch", "-q", "--count", "1", "--timeout", "100ms"])?;
    expect_failure(&out, 1, &["saw 0 of 1 events"])?;
    store.ok(&["watch", "-q", "--timeout", "100ms"])?;
    Ok(())
}

#[test]
fn a_store_path_that_is_a_file_is_refused() -> TestResult {
    let store = TestStore::new()?;
    let file = store.dir.path().join("plain-file");
    std::fs::write(&file, b"not a store")?;
    let out: Outcome = Command::new(env!("CARGO_BIN_EXE_brain"))
        .env_remove("BRAIN_PATH")
        .env_remove("BRAIN_URL")
        .arg("--store")
        .arg(&file)
        .arg("ls")
        .output()?
        .into();
    expect_failure(
        &out,
        1,
        &[
            "cannot open the store at",
            "it exists and is not a directory",
            "--store",
        ],
    )?;
    assert_eq!(std::fs::read(&file)?, b"not a store");
    Ok(())
}

#[test]
fn a_broken_pipe_exits_0_silently() -> TestResult {
    let store = TestStore::new()?;
    let file = store.dir.path().join("big.bin");
    std::fs::write(&file, pseudo_random(16 << 20, 7))?;
    store.ok(&["put", "big", file.to_str().ok_or("non-UTF-8 temp path")?])?;

    let mut cat = store
        .cmd(&["cat", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = cat.stdout.take().ok_or("no stdout")?;
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first)?;
    drop(stdout); // the reader goes away long before 16 MiB are written
    let out = cat.wait_with_output()?;
    assert!(out.status.success(), "cat exited with {}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // The same for a listing longer than a pipe's buffer.
    for i in 0..4 {
        let name = format!("{}-{i}", "n".repeat(40_000));
        check(store.run_with_input(&["put", &name, "-"], b"x")?, &["put"])?;
    }
    let mut ls = store
        .cmd(&["ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = ls.stdout.take().ok_or("no stdout")?;
    stdout.read_exact(&mut first)?;
    drop(stdout);
    let out = ls.wait_with_output()?;
    assert!(out.status.success(), "ls exited with {}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    Ok(())
}

/// `brain ls >&-`: output that cannot be written is an error, not silence.
#[test]
fn closed_or_full_standard_output_exits_1() -> TestResult {
    let store = TestStore::new()?;
    check(store.run_with_input(&["put", "x", "-"], b"data")?, &["put"])?;
    for (args, redirect) in [
        ("ls", ">&-"),
        ("cat x", ">&-"),
        ("--version", ">&-"),
        ("ls", ">/dev/full"),
        ("cat x", ">/dev/full"),
        ("stats --json", ">/dev/full"),
    ] {
        let script = format!("exec \"$0\" --store \"$1\" {args} {redirect}");
        let out: Outcome = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_brain"))
            .arg(&store.path)
            .env_remove("BRAIN_PATH")
            .env_remove("BRAIN_URL")
            .stdin(Stdio::null())
            .output()?
            .into();
        expect_failure(&out, 1, &["brain: cannot write", "to standard output"])
            .map_err(|err| format!("brain {args} {redirect}: {err}"))?;
    }
    // /dev/null is a place to write to.
    let out: Outcome = store.cmd(&["ls"]).stdout(Stdio::null()).output()?.into();
    assert!(out.success(), "{out:?}");
    Ok(())
}

/// `brain put NAME - <&-`: a closed standard input is an error, not an
/// empty object stored over the name.
#[test]
fn put_from_a_closed_standard_input_exits_1_and_keeps_the_name() -> TestResult {
    let store = TestStore::new()?;
    check(store.run_with_input(&["put", "x", "-"], b"data")?, &["put"])?;
    let out: Outcome = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" --store \"$1\" put x - <&-")
        .arg(env!("CARGO_BIN_EXE_brain"))
        .arg(&store.path)
        .env_remove("BRAIN_PATH")
        .env_remove("BRAIN_URL")
        .output()?
        .into();
    expect_failure(&out, 1, &["cannot read standard input: it is closed"])?;
    let out = store.run(&["cat", "x"])?;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, b"data", "the name lost its value");
    Ok(())
}

/// A 64 KiB name in an error is shown cut, with its length.
fn long_names_are_cut_in_errors(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    let long = "n".repeat(65_536);
    for args in [
        vec!["cat", long.as_str()],
        vec!["-n", long.as_str(), "info", long.as_str()],
        vec!["rm", long.as_str()],
        vec!["ns", "rm", long.as_str()],
        vec!["ls", long.as_str()],
    ] {
        let out = store.run(&args)?;
        expect_failure(
            &out,
            3,
            &["(65536 bytes)", &format!("\"{}…\"", "n".repeat(100))],
        )?;
        assert!(
            out.stderr.len() < 1_000,
            "brain {} printed {} bytes of error",
            args[0],
            out.stderr.len()
        );
    }
    // A name one character too long for the store: refused, and cut.
    let too_long = "x".repeat(65_537);
    let out = store.run_with_input(&["put", &too_long, "-"], b"data")?;
    expect_failure(&out, 1, &["(65537 bytes)"])?;
    assert!(out.stderr.len() < 1_000, "{} bytes", out.stderr.len());
    // A usage error that quotes a long argument cuts it too.
    let out = store.run(&["ns", &long])?;
    expect_failure(&out, 2, &["(65536 bytes)"])?;
    assert!(out.stderr.len() < 2_000, "{} bytes", out.stderr.len());
    Ok(())
}

fn usage_and_input_errors(backend: Backend) -> TestResult {
    let store = TestStore::on(backend)?;
    expect_failure(&store.run(&["put", "x"])?, 2, &["FILE"])?;
    expect_failure(
        &store.run(&["put", "x", "-", "--codec", "nope"])?,
        2,
        &["unknown codec \"nope\"", "raw, text"],
    )?;
    expect_failure(&store.run(&["capacity", "lots"])?, 2, &["invalid size"])?;
    expect_failure(&store.run(&["capacity", "0"])?, 2, &["above zero", "none"])?;
    expect_failure(&store.run(&["--capacity", "0K", "ls"])?, 2, &["above zero"])?;
    // A negative size is the size's error, not an unknown option's.
    expect_failure(
        &store.run(&["--capacity", "-1", "ls"])?,
        2,
        &["invalid size \"-1\""],
    )?;
    expect_failure(
        &store.run(&["capacity", "-1"])?,
        2,
        &["invalid size \"-1\""],
    )?;
    expect_failure(&store.run(&["frobnicate"])?, 2, &[])?;
    expect_failure(&store.run(&["watch", "--timeout", "soon"])?, 2, &[])?;

    let missing = store.dir.path().join("missing.bin");
    let out = store.run(&["put", "x", missing.to_str().ok_or("path")?])?;
    expect_failure(
        &out,
        1,
        &["cannot open", "missing.bin", "or - for standard input"],
    )?;
    let dir = store.dir.path().to_str().ok_or("path")?;
    expect_failure(
        &store.run(&["put", "x", dir])?,
        1,
        &["is a directory", "- for standard input"],
    )?;

    // Into a pipe or a log, usage errors and help come without colour codes.
    let out = store.run(&["frobnicate"])?;
    assert!(!out.stderr.contains(&0x1b), "{out:?}");
    assert!(!store.ok(&["--help"])?.contains(&0x1b));

    let help = store.ok_text(&["--help"])?;
    assert!(help.contains("Exit codes") && help.contains("4  the store is full"));
    Ok(())
}

#[test]
fn test_stores_are_removed() -> TestResult {
    let path: PathBuf;
    {
        let store = TestStore::new()?;
        store.ok(&["stats"])?;
        path = store.path.clone();
        assert!(Path::new(&path).is_dir());
    }
    assert!(!path.exists());
    Ok(())
}

/// What a store that is not shared memory cannot do is refused with a
/// message that says so, and an exit code of its own.
#[test]
fn a_memory_store_says_what_it_cannot_do() -> TestResult {
    let store = TestStore::on(Backend::Memory)?;
    check(store.run_with_input(&["put", "x", "-"], b"data")?, &["put"])?;
    expect_failure(
        &store.run(&["gc"])?,
        5,
        &[
            "cannot collect garbage",
            "nothing that a dead writer could leave",
        ],
    )?;
    expect_failure(
        &store.run(&["fsck"])?,
        5,
        &["cannot check its objects", "usage count is exact"],
    )?;
    let text = store.ok_text(&["stats"])?;
    assert!(
        text.contains(&format!("store       {}", store.url)),
        "{text}"
    );
    assert!(!text.contains("filesystem"), "{text}");
    assert_eq!(store.ok(&["cat", "x"])?, b"data");
    // An unknown scheme is refused before anything is opened.
    let (mut console, _, err) = brain_cli::Console::captured(Vec::new());
    let code = brain_cli::run(["brain", "--store", "ftp://x", "ls"], &mut console);
    let err = String::from_utf8(err.bytes())?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ftp:// is not a kind of store"), "{err}");
    assert!(err.contains("memory://NAME"), "{err}");
    // So is an empty one (`--store "$UNSET"`), rather than the default store.
    let (mut console, _, err) = brain_cli::Console::captured(Vec::new());
    let code = brain_cli::run(["brain", "--store", "", "ls"], &mut console);
    let err = String::from_utf8(err.bytes())?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--store is empty"), "{err}");
    Ok(())
}

on_every_backend!(
    put_from_file_and_stdin_then_cat_round_trips_bytes,
    text_codec_checks_utf8,
    arrow_codecs_take_arrow_files_only,
    ls_lists_a_namespace_every_namespace_or_json,
    info_shows_metadata_as_text_and_json,
    info_describes_arrays_and_tables,
    rm_then_cat_is_not_found,
    ns_ls_and_ns_rm,
    stats_numbers_are_consistent,
    a_full_store_exits_4,
    usage_and_input_errors,
    long_names_are_cut_in_errors,
    watch_sees_puts_from_other_writers,
    watch_all_prints_json_lines_and_times_out,
);

#[test]
fn a_frame_changed_in_place_is_one_name_to_every_command() -> TestResult {
    use arrow_array::{Array, DictionaryArray, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use brain_core::frames;
    use std::sync::Arc;

    let store = TestStore::new()?;
    let core = brain_core::Store::open(&store.path)?;
    let ns = core.namespace("default")?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "tag",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
    ]));
    let batch = |ids: Vec<i64>, tags: Vec<&str>| -> Result<RecordBatch, Box<dyn Error>> {
        let tags: DictionaryArray<arrow_array::types::Int32Type> = tags.into_iter().collect();
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(tags)],
        )?)
    };
    // Two parts with different dictionaries for one column.
    ns.append_rows("t", &schema, &[batch(vec![1, 2], vec!["a", "b"])?])?;
    ns.append_rows("t", &schema, &[batch(vec![3], vec!["c"])?])?;

    assert_eq!(
        store.ok_text(&["ls"])?.lines().count(),
        2,
        "a header and one name"
    );
    let info = store.json(&["info", "t", "--json"])?;
    assert_eq!(info["arrow"]["rows"], 3, "{info}");
    // Shown as the frame it is, not as its manifest.
    assert_eq!(info["parts"], 2, "{info}");
    assert_eq!(info["codec"], "arrow", "{info}");
    let listed = store.json(&["ls", "--json"])?;
    assert_eq!(listed[0]["codec"], "arrow", "{listed}");
    assert_eq!(listed[0]["size"], info["size"], "{listed}");
    let bytes = store.ok(&["cat", "t"])?;
    let buffer = arrow_buffer::Buffer::from(bytes);
    let (_, batches) = brain_core::format::arrow::decode(&buffer)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 3);
    assert_eq!(batches[0].column(1).len(), 3);
    // A dump lists it as `ls` does: one name, with its writer's codec.
    let dumped = tempfile::tempdir()?;
    let dump_dir = dumped.path().join("dump");
    let dump_dir = dump_dir.to_str().expect("a UTF-8 path");
    store.ok(&["dump", dump_dir])?;
    let in_dump = store.json(&["dumps", "ls", dump_dir, "--json"])?;
    assert_eq!(
        in_dump["objects"].as_array().map(Vec::len),
        Some(1),
        "{in_dump}"
    );
    assert_eq!(in_dump["objects"][0]["codec"], "arrow", "{in_dump}");
    let shown = store.ok_text(&["dumps", "ls", dump_dir])?;
    assert!(
        shown.contains("arrow") && !shown.contains("frame-parts"),
        "{shown}"
    );

    // A part no frame references: fsck counts it, gc removes it.
    let bytes = brain_core::format::arrow::encode(&schema, &[batch(vec![9], vec!["z"])?])?;
    frames::write_part(&core, "default", "t", &brain_core::Payload::bytes(&bytes))?;
    let report = store.json(&["fsck", "--json"])?;
    assert_eq!(report["unreferenced_frame_parts"], 1, "{report}");
    let gc = store.json(&["gc", "--json"])?;
    assert_eq!(gc["frame_parts"], 1, "{gc}");
    assert_eq!(
        store.json(&["fsck", "--json"])?["unreferenced_frame_parts"],
        0
    );

    // rm takes the parts with the frame.
    store.ok(&["rm", "t"])?;
    assert_eq!(store.json(&["fsck", "--json"])?["objects"], 0);
    Ok(())
}
