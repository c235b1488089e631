//! The Rust rows of the comparison harness (`brain-bench/compare.py`):
//! brain's Arrow calls against arrow-rs Parquet, on a frame of the
//! benchmark's shape (5 float64, 2 int64, one string column of 100,000
//! distinct 12-character values), in one process run.
//!
//! ```text
//! compare --rows N --repeats R --shm-dir DIR --disk-dir DIR
//! ```
//!
//! Prints one JSON object per measurement, one per line: `obj`, `nbytes`,
//! `op`, `method`, `where`, `times` (seconds).

#![forbid(unsafe_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{ObjectStoreExt, Store};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

struct Args {
    rows: usize,
    repeats: usize,
    shm_dir: PathBuf,
    disk_dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut rows = 1_000_000;
    let mut repeats = 5;
    let mut shm_dir = None;
    let mut disk_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => rows = value.parse().map_err(|e| format!("--rows: {e}"))?,
            "--repeats" => repeats = value.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--shm-dir" => shm_dir = Some(PathBuf::from(value)),
            "--disk-dir" => disk_dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        rows,
        repeats: repeats.max(1),
        shm_dir: shm_dir.ok_or("--shm-dir is required")?,
        disk_dir: disk_dir.ok_or("--disk-dir is required")?,
    })
}

/// A small seeded generator (splitmix64): the same frame on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn make_frame(rows: usize) -> (Arc<Schema>, RecordBatch) {
    let mut rng = Rng(0);
    let mut fields = Vec::new();
    let mut columns: Vec<Arc<dyn arrow_array::Array>> = Vec::new();
    for i in 0..5 {
        fields.push(Field::new(format!("price_{i}"), DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|_| rng.unit()),
        )));
    }
    fields.push(Field::new("units", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|_| (rng.next() % 1000) as i64),
    )));
    fields.push(Field::new("order_id", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|_| (rng.next() >> 24) as i64),
    )));
    let distinct = rows.clamp(1, 100_000) as u64;
    fields.push(Field::new("sku", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from_iter_values(
        (0..rows).map(|_| format!("{:012}", rng.next() % distinct)),
    )));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema");
    (schema, batch)
}

fn measure(repeats: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..repeats)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .collect()
}

fn emit(obj: &str, nbytes: usize, op: &str, method: &str, times: &[f64]) {
    let times: Vec<String> = times.iter().map(|t| format!("{t:e}")).collect();
    println!(
        "{{\"obj\": {}, \"nbytes\": {nbytes}, \"op\": {}, \"method\": {}, \"where\": \"Rust, same process\", \"times\": [{}]}}",
        json_string(obj),
        json_string(op),
        json_string(method),
        times.join(", ")
    );
}

/// A JSON string literal (the labels here are plain text, but escape anyway).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_parquet(path: &Path, schema: &Arc<Schema>, batch: &RecordBatch) {
    // Snappy, as pandas' to_parquet writes by default.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = File::create(path).expect("create the Parquet file");
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).expect("Parquet writer");
    writer.write(batch).expect("write the batch");
    writer.close().expect("finish the Parquet file");
}

fn read_parquet(path: &Path, columns: Option<&[usize]>) -> usize {
    let file = File::open(path).expect("open the Parquet file");
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("Parquet reader");
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .with_batch_size(1 << 20)
        .build()
        .expect("Parquet reader");
    reader
        .map(|batch| batch.expect("read a batch").num_rows())
        .sum()
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("compare: {message}");
            std::process::exit(2);
        }
    };
    let (schema, batch) = make_frame(args.rows);
    let nbytes = batch.get_array_memory_size();
    let obj = format!("DataFrame {} rows (Rust)", group_thousands(args.rows));
    let store_dir = tempfile::Builder::new()
        .prefix("brain-compare-rs")
        .tempdir_in(&args.shm_dir)
        .expect("a temporary store");
    let store = Store::open(store_dir.path().join("store")).expect("open the store");

    let times = measure(args.repeats, || {
        store
            .put_record_batches("bench", "frame", &schema, std::slice::from_ref(&batch))
            .expect("put");
    });
    emit(&obj, nbytes, "write", "brain set_record_batches", &times);
    let times = measure(args.repeats, || {
        let (_, batches) = store
            .get_record_batches("bench", "frame")
            .expect("get")
            .expect("present");
        assert_eq!(batches[0].num_rows(), args.rows);
    });
    emit(&obj, nbytes, "read", "brain get_record_batches", &times);

    let two_columns = [0, 7];
    for (place, dir) in [("/dev/shm", &args.shm_dir), ("disk", &args.disk_dir)] {
        let path = dir.join("frame-rs.parquet");
        let times = measure(args.repeats, || write_parquet(&path, &schema, &batch));
        emit(
            &obj,
            nbytes,
            "write",
            &format!("Parquet write ({place})"),
            &times,
        );
        let times = measure(args.repeats, || {
            assert_eq!(read_parquet(&path, None), args.rows)
        });
        emit(
            &obj,
            nbytes,
            "read",
            &format!("Parquet read ({place})"),
            &times,
        );
        let times = measure(args.repeats, || {
            assert_eq!(read_parquet(&path, Some(&two_columns)), args.rows)
        });
        emit(
            &obj,
            nbytes,
            "read",
            &format!("Parquet read 2 columns ({place})"),
            &times,
        );
        std::fs::remove_file(&path).expect("remove the Parquet file");
    }
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
