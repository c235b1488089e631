//! The memory's part in a get from a table of a million small objects: one
//! read of an 86-byte entry (the table's size per object) per name, for
//! 5,000 names packed together against 5,000 names spread over a million
//! entries (every 200th, as `small_objects.py --million` reads them). Each
//! read's address depends on the read before, as one get's lookup follows
//! another's. docs/BENCHMARKS.md, "Small objects".
//!
//! ```text
//! cargo run --release -p brain-bench --bin spread_reads
//! ```

use std::hint::black_box;
use std::time::Instant;

const ENTRIES: usize = 1_000_000;
const ENTRY: usize = 86;
const NAMES: usize = 5_000;
const PASSES: usize = 20;
const ROUNDS: usize = 21;

/// Nanoseconds per read over `PASSES` passes of the names at `stride`.
fn per_read(memory: &[u8], stride: usize, never: u8) -> f64 {
    let started = Instant::now();
    let mut extra = 0usize;
    let mut sum = 0u64;
    for _ in 0..PASSES {
        for name in 0..NAMES {
            let at = name * stride * ENTRY + extra;
            let byte = memory[at];
            // A byte the memory never holds: the next address waits for it.
            extra = usize::from(byte == never);
            sum += u64::from(byte) + u64::from(memory[at + 64]);
        }
    }
    black_box(sum);
    started.elapsed().as_nanos() as f64 / (PASSES * NAMES) as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // Every byte below 255, so `never` is never read.
    let memory: Vec<u8> = (0..ENTRIES * ENTRY + 128)
        .map(|i| (i * 7 % 255) as u8)
        .collect();
    let never = black_box(255u8);
    let (mut packed, mut spread) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        packed.push(per_read(&memory, 1, never));
        spread.push(per_read(&memory, ENTRIES / NAMES, never));
    }
    let (packed, spread) = (median(packed), median(spread));
    println!(
        "one read per name, median of {ROUNDS} rounds: 5,000 names packed in {} KB {packed:.1} ns, \
         spread over {} MB {spread:.1} ns ({:.1} ns more)",
        NAMES * ENTRY / 1000,
        ENTRIES * ENTRY / 1_000_000,
        spread - packed
    );
}
