//! What the payload checksum costs a large write: 64 MiB copied into
//! memory already faulted in (a warm mapping, as a replacing write finds
//! its file), the way brain's writer copies a payload (split across the
//! cores by whole 1 MiB chunks, each chunk's xxh3 computed by the copy from
//! the registers it stores), against the same split copy without a
//! checksum, and against a copy followed by a separate checksum pass (what
//! a checksum not fused with the copy would cost).
//!
//! Run: `cargo bench -p brain-bench --bench checksum` (about a minute; it
//! holds 192 MiB of memory); `CHECKSUM_BENCH_MIB=1024` copies 1 GiB instead
//! (more than this machine's caches). At the end it prints the medians and the
//! ratios that docs/BENCHMARKS.md and docs/RELIABILITY.md record.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use brain_bench::{seeded_bytes, Row, Summary, Target, MIB};
use brain_core::bench::copy_with_checksum;
use brain_core::format::checksum::{payload_checksum, payload_checksum_parallel, CHECKSUM_CHUNK};
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
    // mapping's are.
    let mut dst = vec![1u8; len];
    assert_eq!(
        copy_with_checksum(SharedBytes::from(&src[..]), &mut dst),
        payload_checksum(&src),
        "the fused copy computes the payload checksum"
    );
    assert_eq!(dst, src);

    let mut group = c.benchmark_group("checksum_copy");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(30);
    group.bench_function("copy_with_checksum", |b| {
        b.iter(|| black_box(copy_with_checksum(SharedBytes::from(&src[..]), &mut dst)))
    });
    group.bench_function("copy_alone", |b| {
        b.iter(|| {
            split_copy(&src, &mut dst, |s, d| d.copy_from_slice(s));
            black_box(&dst);
        })
    });
    group.bench_function("copy_alone_rep_movsb", |b| {
        b.iter(|| {
            split_copy(&src, &mut dst, |s, d| SharedBytes::from(s).copy_to(d));
            black_box(&dst);
        })
    });
    group.bench_function("copy_then_checksum", |b| {
        b.iter(|| {
            split_copy(&src, &mut dst, |s, d| d.copy_from_slice(s));
            black_box(payload_checksum_parallel(&dst))
        })
    });
    group.finish();
    c.final_summary();

    println!(
        "\n## Summary ({} MiB, {} threads; medians; ratio = median / floor median)\n",
        len / MIB,
        threads()
    );
    print!("{}", summary.table(ROWS));
}
