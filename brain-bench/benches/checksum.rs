//! What the payload checksum costs a large write: 64 MiB copied into
//! memory already faulted in (a warm mapping, as a replacing write finds
//! its file), the way brain's writer copies a payload (split across the
//! cores by whole 1 MiB chunks, each chunk's xxh3 computed by the copy from
//! the registers it stores), against the same split copy without a
//! checksum, and against a copy followed by a separate checksum pass (what
//! a checksum not fused with the copy would cost).
//!
//! Run: `cargo bench -p brain-bench --bench checksum` (about a minute; it
//! holds 192 MiB of memory, and 128 MiB more in a temporary store in
//! /dev/shm for the last part); `CHECKSUM_BENCH_MIB=1024` copies 1 GiB
//! instead (more than this machine's caches; about 5 GiB in all). At the
//! end it prints the medians and the ratios that docs/BENCHMARKS.md and
//! docs/RELIABILITY.md record.
//!
//! Then it measures the same copies again, interleaved: each round times
//! every copy once, back to back, and the ratios are taken within each
//! round. On a shared machine whose load changes from one second to the
//! next, criterion's medians (each copy measured for seconds, one after
//! the other) compare different moments; a ratio within a round compares
//! the same one. `CHECKSUM_BENCH_ROUNDS` sets the rounds (default 41).
//!
//! Then what the hashing costs a whole write: a replacing write of the
//! payload into a store (`Namespace::set`, into a file from its pool),
//! timed in the same rounds as the writer's copy with and without its
//! hashing.
//!
//! Last, the writer's copy on each vector kernel this processor has (AVX2,
//! AVX-512), with and without its hashing, from a source 64-byte aligned
//! (as pyarrow's buffers are) and from one 16 bytes past that (as a numpy
//! array's or a `bytes`' data is), interleaved the same way: the
//! measurement behind the kernel the writer picks.
//!
//! And the xxh3 of a stream (a fetch from Redis checking its chunks, a
//! dump or restore hashing a payload): brain-core's `Xxh3Stream` on the
//! widest kernel against xxhash-rust's `Xxh3`, fed 1 MiB pieces, over a
//! 1 MiB buffer hashed again and again (bytes in cache, as a fetch hashes
//! a chunk it just read) and over the whole source (bytes from memory).

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use brain_bench::{seeded_bytes, BenchStore, Row, Summary, Target, MIB};
use brain_core::bench::{copy_chunks_on, copy_with_checksum, copy_without_checksum, Kernel};
use brain_core::format::checksum::{payload_checksum, payload_checksum_parallel, CHECKSUM_CHUNK};
use brain_core::hash::Xxh3Stream;
use brain_core::SharedBytes;
use criterion::{Criterion, Throughput};

/// The size copied: 64 MiB, or `CHECKSUM_BENCH_MIB` MiB.
fn len() -> usize {
    std::env::var("CHECKSUM_BENCH_MIB")
        .ok()
        .and_then(|mib| mib.parse::<usize>().ok())
        .unwrap_or(64)
        * MIB
}

const ROWS: &[Row] = &[
    Row {
        operation: "copy with its checksum (the writer's copy)",
        id: "checksum_copy/copy_with_checksum",
        floor: Some((
            "checksum_copy/copy_same_kernel",
            "the same copy, its hashing left out (same loads and stores)",
        )),
        target: Target::RatioAtMost(1.05),
    },
    Row {
        operation: "copy with its checksum (the writer's copy)",
        id: "checksum_copy/copy_with_checksum",
        floor: Some((
            "checksum_copy/copy_alone",
            "the same split copy, no checksum (memcpy)",
        )),
        target: Target::RatioAtMost(1.05),
    },
    Row {
        operation: "copy with its checksum (the writer's copy)",
        id: "checksum_copy/copy_with_checksum",
        floor: Some((
            "checksum_copy/copy_alone_rep_movsb",
            "the same split copy, no checksum (rep movsb)",
        )),
        target: Target::RatioAtMost(1.05),
    },
    Row {
        operation: "copy, then checksum it (not fused)",
        id: "checksum_copy/copy_then_checksum",
        floor: Some((
            "checksum_copy/copy_alone",
            "the same split copy, no checksum (memcpy)",
        )),
        target: Target::None,
    },
];

/// Threads for a split copy: as many as the writer uses (one per core, at most 8).
fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8)
}

/// Copies `src` into `dst` with `copy` on every core, each thread taking a
/// contiguous run of whole chunks, as the writer splits a large copy.
fn split_copy(src: &[u8], dst: &mut [u8], copy: impl Fn(&[u8], &mut [u8]) + Sync) {
    let chunks = dst.len().div_ceil(CHECKSUM_CHUNK);
    let per = chunks.div_ceil(threads().min(chunks).max(1)) * CHECKSUM_CHUNK;
    std::thread::scope(|scope| {
        let mut runs = dst.chunks_mut(per).zip(src.chunks(per));
        let (first_dst, first_src) = runs.next().expect("at least one run");
        for (d, s) in runs {
            let copy = &copy;
            scope.spawn(move || copy(s, d));
        }
        copy(first_src, first_dst);
    });
}

/// One copy the bench measures: its criterion id (in the group
/// `checksum_copy`), what it is, and the copy itself.
struct Measured {
    id: &'static str,
    what: &'static str,
    run: fn(&[u8], &mut [u8]),
}

/// The copies, the writer's first: every other one is its floor.
const COPIES: [Measured; 5] = [
    Measured {
        id: "copy_with_checksum",
        what: "the writer's copy, with its checksum",
        run: |src, dst| {
            black_box(copy_with_checksum(SharedBytes::from(src), dst));
        },
    },
    Measured {
        id: "copy_same_kernel",
        what: "the same copy, its hashing left out",
        run: |src, dst| copy_without_checksum(SharedBytes::from(src), dst),
    },
    Measured {
        id: "copy_alone",
        what: "the same split copy, no checksum (memcpy)",
        run: |src, dst| split_copy(src, dst, |s, d| d.copy_from_slice(s)),
    },
    Measured {
        id: "copy_alone_rep_movsb",
        what: "the same split copy, no checksum (rep movsb)",
        run: |src, dst| split_copy(src, dst, |s, d| SharedBytes::from(s).copy_to(d)),
    },
    Measured {
        id: "copy_then_checksum",
        what: "copy, then checksum it (not fused)",
        run: |src, dst| {
            split_copy(src, dst, |s, d| d.copy_from_slice(s));
            black_box(payload_checksum_parallel(dst));
        },
    },
];

fn main() {
    let summary = Summary::new();
    let mut c = Criterion::default()
        .output_directory(summary.output_directory())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    let len = len();
    let src = seeded_bytes(len, 7);
    // Written once before measuring: its pages are faulted in, as a warm
    // mapping's are. A payload in a store starts 64-byte aligned (FORMAT.md),
    // which lets the writer's copy stream its stores past the caches; a
    // Vec's buffer of this size is only 16-byte aligned, so the copies all
    // go into the aligned part of a larger one.
    let mut buffer = vec![1u8; len + 64];
    let at = buffer.as_ptr().align_offset(64);
    let dst = &mut buffer[at..at + len];
    assert_eq!(
        copy_with_checksum(SharedBytes::from(&src[..]), dst),
        payload_checksum(&src),
        "the fused copy computes the payload checksum"
    );
    assert_eq!(*dst, *src);

    let mut group = c.benchmark_group("checksum_copy");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(30);
    for copy in COPIES {
        group.bench_function(copy.id, |b| {
            b.iter(|| {
                (copy.run)(&src, &mut *dst);
                black_box(&*dst);
            })
        });
    }
    group.finish();
    c.final_summary();

    println!(
        "\n## Summary ({} MiB, {} threads; medians; ratio = median / floor median)\n",
        len / MIB,
        threads()
    );
    print!("{}", summary.table(ROWS));

    interleaved(&src, dst);
    share_of_a_write(&src, dst);
    kernels(&src, dst);
    stream_hashes(&src);
}

/// xxh3 of a stream of 1 MiB pieces: brain-core's `Xxh3Stream` against
/// xxhash-rust's `Xxh3`, interleaved, in cache and from memory.
fn stream_hashes(src: &[u8]) {
    let rounds = rounds();
    let piece = CHECKSUM_CHUNK.min(src.len());
    let in_cache = &src[..piece];
    let hashes = |data: &[u8], repeat: usize| {
        let mut stream = Xxh3Stream::new();
        let mut theirs = xxhash_rust::xxh3::Xxh3::new();
        for _ in 0..repeat {
            for p in data.chunks(piece) {
                stream.update(p);
                theirs.update(p);
            }
        }
        assert_eq!(stream.digest(), theirs.digest(), "the same xxh3-64");
    };
    hashes(in_cache, 3);
    println!(
        "\n## xxh3 of a stream of 1 MiB pieces ({rounds} rounds, each hasher once per round)\n"
    );
    println!("| bytes | xxhash-rust `Xxh3` | `Xxh3Stream` | ratio, median of rounds (range) |");
    println!("| --- | ---: | ---: | ---: |");
    let cases: [(&str, &[u8], usize); 2] = [
        ("a 1 MiB buffer, 64 times (in cache)", in_cache, 64),
        ("the whole source (from memory)", src, 1),
    ];
    for (label, data, repeat) in cases {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(time(|| {
                let mut h = Xxh3Stream::new();
                for _ in 0..repeat {
                    data.chunks(piece).for_each(|p| h.update(p));
                }
                black_box(h.digest());
            }));
            theirs.push(time(|| {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                for _ in 0..repeat {
                    data.chunks(piece).for_each(|p| h.update(p));
                }
                black_box(h.digest());
            }));
        }
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o / t).collect();
        let (low, high) = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ({low:.2} to {high:.2}) |",
            median(theirs) * 1e3,
            median(ours) * 1e3,
            median(ratios),
        );
    }
}

/// Seconds `f` takes, once.
fn time(f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
}

/// Rounds of the interleaved measures: `CHECKSUM_BENCH_ROUNDS`, or 41.
fn rounds() -> usize {
    std::env::var("CHECKSUM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(41)
        .max(1)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The copies timed in turn, round after round, and each round's ratio of
/// the writer's copy (the first) to the others: the median ratio and its range.
fn interleaved(src: &[u8], dst: &mut [u8]) {
    let rounds = rounds();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); COPIES.len()];
    for round in 0..rounds {
        // The order turns each round, so no copy always follows the same one.
        for step in 0..COPIES.len() {
            let which = (round + step) % COPIES.len();
            times[which].push(time(|| (COPIES[which].run)(src, &mut *dst)));
            black_box(&*dst);
        }
    }
    let fused = &times[0];
    let ratios = |floor: &[f64]| -> (f64, f64, f64) {
        let r: Vec<f64> = fused.iter().zip(floor).map(|(f, p)| f / p).collect();
        let low = r.iter().copied().fold(f64::INFINITY, f64::min);
        let high = r.iter().copied().fold(0.0, f64::max);
        (median(r), low, high)
    };
    let ms = |v: &[f64]| median(v.to_vec()) * 1e3;
    println!(
        "\n## Interleaved ({rounds} rounds, each copy once per round; ratio = the writer's copy / the plain copy of the same round)\n"
    );
    println!("| copy | median | writer's copy ÷ it, median of rounds (range) |");
    println!("| --- | ---: | ---: |");
    println!("| {} | {:.2} ms | |", COPIES[0].what, ms(fused));
    for (copy, times) in COPIES.iter().zip(&times).skip(1) {
        let (mid, low, high) = ratios(times);
        println!(
            "| {} | {:.2} ms | {mid:.3} ({low:.3} to {high:.3}) |",
            copy.what,
            ms(times)
        );
    }
}

/// What the checksum costs a whole write, not just its copy: a replacing
/// write of the payload into a store (the way a large object is refreshed:
/// each write takes the file the one before it gave back to the pool, its
/// pages in place; the copy is the writer's, the checksum computed by it),
/// timed in the same rounds as the writer's copy with and without its
/// hashing into the bench's own warm buffer. The hashing's share of the
/// write is estimated as `(with - without) / write`, round by round.
fn share_of_a_write(src: &[u8], dst: &mut [u8]) {
    let rounds = rounds();
    let bench = BenchStore::new();
    let namespace = bench.namespace("bench");
    // Twice before the rounds: the second write replaces the first, which
    // goes to the pool for the next one.
    for _ in 0..2 {
        namespace.set("big", src).expect("write the payload");
    }
    let mut write = Vec::with_capacity(rounds);
    let mut shares = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut times = [0.0f64; 3];
        for step in 0..3 {
            let which = (round + step) % 3;
            times[which] = match which {
                0 => time(|| {
                    namespace.set("big", src).expect("replace the payload");
                }),
                1 => time(|| {
                    black_box(copy_with_checksum(SharedBytes::from(src), &mut *dst));
                }),
                _ => time(|| copy_without_checksum(SharedBytes::from(src), &mut *dst)),
            };
        }
        write.push(times[0]);
        shares.push((times[1] - times[2]) / times[0]);
    }
    let (low, high) = (
        shares.iter().copied().fold(f64::INFINITY, f64::min),
        shares.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    println!("\n## The checksum's share of a replacing write ({rounds} rounds)\n");
    println!("| write | median | hashing's share of the write, median of rounds (range) |");
    println!("| --- | ---: | ---: |");
    println!(
        "| `Namespace::set`, replacing, {} MiB | {:.2} ms | {:.1}% ({:.1}% to {:.1}%) |",
        src.len() / MIB,
        median(write) * 1e3,
        median(shares) * 100.0,
        low * 100.0,
        high * 100.0
    );
}

/// The writer's copy of `src` into `dst` on each vector kernel, hashing and
/// not, from a 64-byte aligned source and from one 16 bytes past it, timed
/// in turn round after round; each median is compared with the AVX2
/// copy's of the same source, round by round.
fn kernels(src: &[u8], dst: &mut [u8]) {
    let kernels: Vec<Kernel> = Kernel::supported()
        .into_iter()
        .filter(|k| *k != Kernel::Portable)
        .collect();
    if kernels.is_empty() {
        return;
    }
    let rounds = rounds();
    // A copy of the source at each offset from a 64-byte line.
    let sources: Vec<(usize, Vec<u8>)> = [0usize, 16]
        .into_iter()
        .map(|offset| {
            let mut buffer = vec![0u8; src.len() + 128];
            let at = buffer.as_ptr().align_offset(64) + offset;
            buffer[at..at + src.len()].copy_from_slice(src);
            (at, buffer)
        })
        .collect();
    let mut cases = Vec::new();
    for (which, source) in ["64-byte aligned source", "source 16 bytes past a line"]
        .into_iter()
        .enumerate()
    {
        for &kernel in &kernels {
            for hash in [true, false] {
                cases.push((which, source, kernel, hash));
            }
        }
    }
    let mut times = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..rounds {
        for step in 0..cases.len() {
            let which = (round + step) % cases.len();
            let (source, _, kernel, hash) = cases[which];
            let (at, buffer) = &sources[source];
            let from = SharedBytes::from(&buffer[*at..at + src.len()]);
            times[which].push(time(|| {
                black_box(copy_chunks_on(kernel, from, &mut *dst, hash));
            }));
        }
    }
    println!("\n## The writer's copy on each kernel ({rounds} rounds, each copy once per round)\n");
    println!("| source | kernel | hashing | median | ÷ the AVX2 copy of the same source and hashing, median of rounds (range) |");
    println!("| --- | --- | --- | ---: | ---: |");
    for (i, &(offset, source, kernel, hash)) in cases.iter().enumerate() {
        let base = cases
            .iter()
            .position(|c| c.0 == offset && c.2 == kernels[0] && c.3 == hash)
            .expect("the first kernel's copy");
        let r: Vec<f64> = times[i]
            .iter()
            .zip(&times[base])
            .map(|(t, b)| t / b)
            .collect();
        let (low, high) = (
            r.iter().copied().fold(f64::INFINITY, f64::min),
            r.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "| {source} | {kernel:?} | {} | {:.2} ms | {:.3} ({low:.3} to {high:.3}) |",
            if hash { "yes" } else { "no" },
            median(times[i].clone()) * 1e3,
            median(r),
        );
    }
}
