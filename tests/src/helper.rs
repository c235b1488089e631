//! `brain-test-helper`: the child process of the end-to-end tests.
//!
//! Each subcommand does one thing to a store and reports on stdout in lines
//! the test reads (`ready`, `started`, `ok ...`); failures go to stderr and
//! end the process with one of the codes in `brain_tests::exit`.

#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use brain_core::{Codec, Error, Namespace, NdArrayMeta, ObjectStore, Store, WatchEvent};
use brain_tests::{
    check_value, exit, make_value, sample_batches, seed_of, size_for, RACE_SIZES, SMALL_RACE_NAMES,
    SMALL_RACE_SIZES,
};

const USAGE: &str = "\
usage: brain-test-helper COMMAND ARGS...
  write STORE NS NAME SIZE SEED         put one value
  read STORE NS NAME [SEED]             get one value, check it (and its seed)
  write-many STORE NS COUNT SEED        put obj-0..obj-COUNT-1
  fill STORE NS PREFIX COUNT SIZE       put PREFIX-0.., counting writes refused as full
  verify-all STORE NS COUNT SEED MS     wait for obj-0.. and check each
  race-writer STORE NS NAME ID MS       replace NAME with values of writer ID for MS
  read-loop STORE NS NAME MS            get NAME for MS, checking every value
  race-small STORE NS ID MS             replace k0..k7 with small values of writer ID for MS
  read-small-loop STORE NS MS           get k0..k7 for MS, checking every value
  hold-view STORE NS NAME               get NAME, then check it again after a line on stdin
  put-large-slowly STORE NS NAME MIB    stream MIB MiB in 1 MiB chunks, slowly
  put-on-signal STORE NS NAME SIZE SEED  write a value, commit it after a line on stdin
  churn STORE ID                        set, replace, delete and remove namespaces until killed
  watch STORE NS COUNT MS               print COUNT events of NS (NS \"*\": every namespace)
  wait-for STORE NS NAME MS             wait_for NAME
  set-capacity STORE BYTES|none         set the store's capacity
  usage STORE                           print used and capacity
  write-arrow STORE NS NAME ROWS        put sample record batches
  write-arrow-dict STORE NS NAME        put a batch with dictionary columns and nulls
  read-arrow STORE NS NAME              get record batches, print a digest of each column
  copy-arrow STORE NS FROM TO           get FROM's record batches, put them as TO; print each column's type
  write-ndarray STORE NS NAME META FILE put an ndarray: META its metadata JSON, FILE its data
  read-ndarray STORE NS NAME            print an ndarray's metadata JSON and data (hex)
  write-pickle STORE NS NAME FILE...    put a pickle-5 object: its stream, then its buffers
  read-pickle STORE NS NAME             print a pickle-5 object's parts (length, hex)";

/// A failure with the exit code that tells the test what kind it was.
struct Failure {
    code: i32,
    message: String,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::StoreFull { .. } => exit::STORE_FULL,
            Error::InvalidName { .. } => exit::INVALID_NAME,
            Error::Corrupt { .. } => exit::CORRUPT,
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::NotFound { .. } => exit::MISSING,
            _ => exit::OTHER,
        };
        let detail = match &err {
            Error::StoreFull {
                filesystem_full, ..
            } => format!(" (filesystem_full={filesystem_full})"),
            _ => String::new(),
        };
        Failure {
            code,
            message: format!("{err}{detail}"),
        }
    }
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("brain-test-helper {}: {}", args.join(" "), failure.message);
            ExitCode::from(failure.code as u8)
        }
    }
}

/// Prints a line and flushes it at once: the test is waiting for it.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A test that stopped listening is not this process's failure.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn num<T: std::str::FromStr>(arg: &str, what: &str) -> Result<T, Failure> {
    arg.parse()
        .map_err(|_| fail(exit::USAGE, format!("{what} must be a number, not {arg:?}")))
}

fn millis(arg: &str) -> Result<Duration, Failure> {
    Ok(Duration::from_millis(num(arg, "MS")?))
}

fn namespace(store: &str, ns: &str) -> Result<Namespace, Failure> {
    Ok(Store::open(store)?.namespace(ns)?)
}

/// Checks a value read back; `expected` is the seed it must have, if known.
fn verify(bytes: &[u8], expected: Option<u64>) -> Result<u64, Failure> {
    let seed = check_value(bytes).map_err(|e| fail(exit::MISMATCH, e))?;
    match expected {
        Some(want) if want != seed => Err(fail(
            exit::MISMATCH,
            format!("read the value of seed {seed:#x}, expected {want:#x}"),
        )),
        _ => Ok(seed),
    }
}

fn run(args: &[String]) -> Outcome {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["write", store, ns, name, size, seed] => {
            let value = make_value(num(seed, "SEED")?, num(size, "SIZE")?);
            namespace(store, ns)?.set(name, &value)?;
            say("ok");
        }
        ["read", store, ns, name, rest @ ..] if rest.len() <= 1 => {
            let expected = rest.first().map(|s| num(s, "SEED")).transpose()?;
            let view = namespace(store, ns)?
                .get(name)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object named {name:?}")))?;
            let seed = verify(&view, expected)?;
            say(format_args!("ok {seed} {}", view.len()));
        }
        ["write-many", store, ns, count, seed] => {
            let ns = namespace(store, ns)?;
            let seed: u64 = num(seed, "SEED")?;
            for i in 0..num(count, "COUNT")? {
                ns.set(
                    &format!("obj-{i}"),
                    &make_value(seed + i as u64, size_for(i)),
                )?;
            }
            say("done");
        }
        ["fill", store, ns, prefix, count, size] => {
            let ns = namespace(store, ns)?;
            let (count, size): (u32, usize) = (num(count, "COUNT")?, num(size, "SIZE")?);
            let (mut stored, mut refused) = (0, 0);
            for i in 0..count {
                let value = make_value(seed_of(i, 0), size);
                match ns.set(&format!("{prefix}-{i}"), &value) {
                    Ok(_) => stored += 1,
                    Err(Error::StoreFull {
                        filesystem_full: false,
                        ..
                    }) => refused += 1,
                    Err(err) => return Err(err.into()),
                }
            }
            say(format_args!("stored {stored} refused {refused}"));
        }
        ["verify-all", store, ns, count, seed, ms] => {
            let ns = namespace(store, ns)?;
            let (seed, timeout): (u64, _) = (num(seed, "SEED")?, millis(ms)?);
            let count: usize = num(count, "COUNT")?;
            for i in 0..count {
                let view = ns.wait_for(&format!("obj-{i}"), timeout)?;
                verify(&view, Some(seed + i as u64))?;
                if view.len() != size_for(i) {
                    return Err(fail(
                        exit::MISMATCH,
                        format!("obj-{i} is {} bytes, not {}", view.len(), size_for(i)),
                    ));
                }
            }
            say(format_args!("ok {count}"));
        }
        ["race-writer", store, ns, name, id, ms] => {
            let ns = namespace(store, ns)?;
            let (id, duration): (u32, _) = (num(id, "ID")?, millis(ms)?);
            let started = Instant::now();
            let mut seq = 0u32;
            while started.elapsed() < duration {
                let size = RACE_SIZES[seq as usize % RACE_SIZES.len()];
                ns.set(name, &make_value(seed_of(id, seq), size))?;
                seq += 1;
            }
            say(format_args!("wrote {seq}"));
        }
        ["read-loop", store, ns, name, ms] => {
            let ns = namespace(store, ns)?;
            let duration = millis(ms)?;
            let started = Instant::now();
            let (mut reads, mut missing, mut writers) = (0u64, 0u64, Vec::<u32>::new());
            while started.elapsed() < duration {
                match ns.get(name)? {
                    Some(view) => {
                        let seed = verify(&view, None)?;
                        let writer = brain_tests::writer_of(seed);
                        if !writers.contains(&writer) {
                            writers.push(writer);
                        }
                        reads += 1;
                    }
                    None => missing += 1,
                }
            }
            writers.sort_unstable();
            say(format_args!(
                "reads {reads} missing {missing} writers {writers:?}"
            ));
        }
        ["race-small", store, ns, id, ms] => {
            let ns = namespace(store, ns)?;
            let (id, duration): (u32, _) = (num(id, "ID")?, millis(ms)?);
            let started = Instant::now();
            let mut seq = 0u32;
            while started.elapsed() < duration {
                let size = SMALL_RACE_SIZES[seq as usize % SMALL_RACE_SIZES.len()];
                let name = format!("k{}", seq % SMALL_RACE_NAMES);
                ns.set(&name, &make_value(seed_of(id, seq), size))?;
                seq += 1;
            }
            say(format_args!("wrote {seq}"));
        }
        ["read-small-loop", store, ns, ms] => {
            let ns = namespace(store, ns)?;
            let duration = millis(ms)?;
            let started = Instant::now();
            let (mut reads, mut missing) = (0u64, 0u64);
            while started.elapsed() < duration {
                for k in 0..SMALL_RACE_NAMES {
                    match ns.get(&format!("k{k}"))? {
                        Some(view) => {
                            verify(&view, None)?;
                            reads += 1;
                        }
                        None => missing += 1,
                    }
                }
            }
            say(format_args!("reads {reads} missing {missing}"));
        }
        ["hold-view", store, ns, name] => {
            let view = namespace(store, ns)?
                .get(name)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object named {name:?}")))?;
            let seed = verify(&view, None)?;
            say(format_args!("holding {seed} {}", view.len()));
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| fail(exit::OTHER, format!("cannot read stdin: {e}")))?;
            verify(&view, Some(seed))?;
            say(format_args!("ok {seed} {}", view.len()));
        }
        ["put-large-slowly", store, ns, name, mib] => {
            let mib: u64 = num(mib, "MIB")?;
            let store = Store::open(store)?;
            let mut writer = store.writer(ns, name, Codec::Raw, "slow", Some(mib << 20))?;
            let chunk = vec![0xa5u8; 1 << 20];
            for i in 0..mib {
                writer.write_payload(&chunk)?;
                if i == 16 {
                    say("started");
                }
                if i >= 16 {
                    // Slow enough that the test's kill lands mid-write.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            writer.commit()?;
            say("committed");
        }
        ["put-on-signal", store, ns, name, size, seed] => {
            let value = make_value(num(seed, "SEED")?, num(size, "SIZE")?);
            let store = Store::open(store)?;
            let mut writer = store.writer(ns, name, Codec::Raw, "", Some(value.len() as u64))?;
            writer.write_payload(&value)?;
            say("written");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| fail(exit::OTHER, format!("cannot read stdin: {e}")))?;
            writer.commit()?;
            say("committed");
        }
        ["churn", store, id] => {
            use brain_core::ObjectStore;
            let store = Store::open(store)?;
            let id: u32 = num(id, "ID")?;
            for i in 0u32.. {
                let ns = format!("churn-{}", i % 3);
                let size = [100, 70_000, 300_000][(i % 7 % 3) as usize];
                store.put(
                    &ns,
                    &format!("k{}", i % 5),
                    &brain_core::Payload::bytes(&make_value(seed_of(id, i), size)),
                )?;
                if i % 4 == 3 {
                    store.delete(&ns, &format!("k{}", (i + 2) % 5))?;
                }
                if i % 10 == 9 {
                    match store.remove_namespace(&ns) {
                        Ok(_) | Err(Error::NamespaceNotFound { .. }) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                if i == 20 {
                    say("started");
                }
            }
        }
        ["watch", store, ns, count, ms] => {
            let all = *ns == "*";
            let mut watcher = if all {
                Store::open(store)?.watch(None)?
            } else {
                namespace(store, ns)?.watch()?
            };
            let (count, timeout): (usize, _) = (num(count, "COUNT")?, millis(ms)?);
            // One namespace: "set NAME"; every namespace: "set NS/NAME".
            let show = |ns: &str, name: &str| {
                if all {
                    format!("{ns}/{name}")
                } else {
                    name.to_owned()
                }
            };
            say("ready");
            let deadline = Instant::now() + timeout;
            for _ in 0..count {
                let left = deadline.saturating_duration_since(Instant::now());
                match watcher.next_event(Some(left))? {
                    Some(WatchEvent::Set { namespace, name }) => {
                        say(format_args!("set {}", show(&namespace, &name)))
                    }
                    Some(WatchEvent::Deleted { namespace, name }) => {
                        say(format_args!("deleted {}", show(&namespace, &name)))
                    }
                    Some(other) => say(format_args!("other {other:?}")),
                    None => return Err(fail(exit::TIMEOUT, "no event before the deadline")),
                }
            }
        }
        ["wait-for", store, ns, name, ms] => {
            let ns = namespace(store, ns)?;
            let timeout = millis(ms)?;
            say("waiting");
            let view = ns.wait_for(name, timeout)?;
            let seed = verify(&view, None)?;
            say(format_args!("got {seed} {}", view.len()));
        }
        ["set-capacity", store, bytes] => {
            let capacity = match *bytes {
                "none" => None,
                n => Some(num(n, "BYTES")?),
            };
            Store::open(store)?.set_capacity(capacity)?;
            say("ok");
        }
        ["usage", store] => {
            let usage = Store::open(store)?.usage()?;
            let capacity = usage.capacity.map_or("none".to_owned(), |c| c.to_string());
            say(format_args!("used {} capacity {capacity}", usage.used));
        }
        ["write-arrow", store, ns, name, rows] => {
            let (schema, batches) = sample_batches(num(rows, "ROWS")?);
            namespace(store, ns)?.set_record_batches(name, &schema, &batches)?;
            say("ok");
        }
        ["read-arrow", store, ns, name] => {
            let (schema, batches) = namespace(store, ns)?
                .get_record_batches(name)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object {name:?}")))?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            say(format!("rows {rows}"));
            for (i, field) in schema.fields().iter().enumerate() {
                let columns: Vec<_> = batches.iter().map(|b| b.column(i).clone()).collect();
                say(format!(
                    "column {} {}",
                    field.name(),
                    column_digest(&columns)
                ));
            }
        }
        ["copy-arrow", store, ns, from, to] => {
            let ns = namespace(store, ns)?;
            let (schema, batches) = ns
                .get_record_batches(from)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object {from:?}")))?;
            for column in batches.iter().flat_map(|b| b.columns()) {
                // Every layout rule of every type, nested ones included.
                column.to_data().validate_full().map_err(|e| {
                    fail(
                        exit::MISMATCH,
                        format!("{from:?} decodes to invalid data: {e}"),
                    )
                })?;
            }
            ns.set_record_batches(to, &schema, &batches)?;
            for field in schema.fields() {
                say(format!("column {} {}", field.name(), field.data_type()));
            }
        }
        ["write-arrow-dict", store, ns, name] => {
            let (schema, batches) = dictionary_batches();
            namespace(store, ns)?.set_record_batches(name, &schema, &batches)?;
            say("ok");
        }
        ["write-ndarray", store, ns, name, meta, file] => {
            let meta = NdArrayMeta::from_json(meta.as_bytes()).map_err(|e| fail(exit::USAGE, e))?;
            let data = read_file(file)?;
            namespace(store, ns)?.set_ndarray(name, &meta, &data)?;
            say("ok");
        }
        ["read-ndarray", store, ns, name] => {
            let array = namespace(store, ns)?
                .get_ndarray(name)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object {name:?}")))?;
            say(format!(
                "meta {}",
                String::from_utf8_lossy(&array.meta.to_json())
            ));
            say(format!("dtype {}", array.meta.dtype));
            say(format!("data {}", hex(array.data.as_slice())));
        }
        ["write-pickle", store, ns, name, stream, buffers @ ..] => {
            let stream = read_file(stream)?;
            let buffers = buffers
                .iter()
                .map(|f| read_file(f))
                .collect::<Result<Vec<_>, _>>()?;
            let buffers: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
            namespace(store, ns)?.set_pickle(name, &stream, &buffers)?;
            say("ok");
        }
        ["read-pickle", store, ns, name] => {
            let pickle = namespace(store, ns)?
                .get_pickle(name)?
                .ok_or_else(|| fail(exit::MISSING, format!("no object {name:?}")))?;
            say(format!("parts {}", pickle.buffers.len() + 1));
            for part in std::iter::once(&pickle.pickle).chain(&pickle.buffers) {
                say(format!("part {} {}", part.len(), hex(part.as_slice())));
            }
        }
        _ => return Err(fail(exit::USAGE, USAGE)),
    }
    Ok(())
}

fn read_file(path: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| fail(exit::USAGE, format!("cannot read {path}: {e}")))
}

/// Lowercase hex, as Python's `bytes.hex()` writes it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A batch with a dictionary-encoded string column with nulls, a dictionary
/// whose keys are 8-bit, and an int64 column with nulls: what pandas
/// categoricals and polars enums become.
fn dictionary_batches() -> (arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>) {
    use std::sync::Arc;

    use arrow_array::types::{Int32Type, Int8Type};
    use arrow_array::{DictionaryArray, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let regions: DictionaryArray<Int32Type> = vec![
        Some("north"),
        None,
        Some("south"),
        Some("north"),
        Some("east"),
    ]
    .into_iter()
    .collect();
    let grades: DictionaryArray<Int8Type> = vec![Some("a"), Some("b"), Some("a"), None, Some("c")]
        .into_iter()
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "region",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new(
            "grade",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("units", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(regions),
            Arc::new(grades),
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(2),
                None,
                Some(4),
                Some(5),
            ])),
        ],
    )
    .expect("columns match the schema");
    (schema, vec![batch])
}

/// The values of a column of strings (any of Arrow's three layouts).
fn string_values(array: &dyn arrow_array::Array) -> Vec<Option<String>> {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        _ => array
            .as_string_view()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
    }
}

/// The digest `read-arrow` prints for one column, which a reader in another
/// language recomputes: nulls, then the sum (numbers) or the first and last
/// values (strings).
fn column_digest(chunks: &[arrow_array::ArrayRef]) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::DataType;
    let nulls: usize = chunks.iter().map(|c| c.null_count()).sum();
    let data_type = chunks
        .first()
        .map_or(DataType::Null, |c| c.data_type().clone());
    let value = match data_type {
        DataType::Float64 => {
            let sum: f64 = chunks
                .iter()
                .flat_map(|c| c.as_primitive::<Float64Type>().iter().flatten())
                .sum();
            format!("sum={sum:.6}")
        }
        DataType::Int64 => {
            let sum: i64 = chunks
                .iter()
                .flat_map(|c| c.as_primitive::<Int64Type>().iter().flatten())
                .sum();
            format!("sum={sum}")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings: Vec<String> = chunks
                .iter()
                .flat_map(|c| string_values(c).into_iter().flatten())
                .collect();
            format!("first={:?} last={:?}", strings.first(), strings.last())
        }
        DataType::Dictionary(_, values)
            if matches!(
                *values,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            let strings: Vec<String> = chunks
                .iter()
                .flat_map(|c| {
                    let dictionary = c.as_any_dictionary();
                    let words = string_values(dictionary.values());
                    let keys = dictionary.normalized_keys();
                    (0..c.len())
                        .filter(|&i| c.is_valid(i))
                        .map(|i| words[keys[i]].clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                })
                .collect();
            format!(
                "dictionary first={:?} last={:?} values={}",
                strings.first(),
                strings.last(),
                strings.join(",")
            )
        }
        other => format!("type={other}"),
    };
    format!("nulls={nulls} {value}")
}
