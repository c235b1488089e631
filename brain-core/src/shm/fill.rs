//! Filling a large object's payload: the copy into its mapping, the
//! checksum computed by the copy, and the split of large copies across cores.
//!
//! Bytes arrive in pieces of any size and alignment (pyarrow writes a frame
//! buffer by buffer, with padding between them). The checksum is xxh3 over
//! 1 MiB chunks (format/checksum.rs), fed 64-byte stripe by stripe: a piece
//! that starts mid-stripe first completes that stripe (fed back from the
//! destination, where it now lies), and the rest of it is copied and hashed
//! in one pass by the fused copy (sys/copy.rs). A piece that starts a chunk
//! and spans several is split across cores by whole chunks: each thread
//! copies its chunks, hashes them and returns their digests.

use std::sync::OnceLock;

use crate::format::checksum::{ChunkDigests, ChunkHasher, CHECKSUM_CHUNK, STRIPE};
use crate::sys::copy::{
    copy_and_hash, copy_bytes, copy_four_on, copy_stripes_on, hash_stripes, Kernel, STREAMS,
};
use crate::sys::{populate_for_write, SharedBytes};

/// Pieces at least this long are split across cores.
pub(crate) const PARALLEL_MIN: usize = 8 << 20;

/// How many threads a large copy uses: one per core (read once: asking
/// reads cgroup files).
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8)
    })
}

/// The checksum of a payload being filled.
#[derive(Debug, Default)]
pub(crate) struct Fill {
    digests: ChunkDigests,
    hasher: ChunkHasher,
}

impl Fill {
    /// Copies `src` into `payload` at `at` (the bytes written so far: pieces
    /// come in order) and hashes it. `populate` faults the destination's
    /// pages in first (a mapping this process has not written before).
    pub(crate) fn copy(
        &mut self,
        mut src: SharedBytes<'_>,
        payload: &mut [u8],
        mut at: usize,
        populate: bool,
    ) {
        while !src.is_empty() {
            let chunk_start = at - at % CHECKSUM_CHUNK;
            let in_chunk = at - chunk_start;
            if in_chunk == 0 && src.len() >= PARALLEL_MIN && threads() > 1 {
                let whole = src.len() - src.len() % CHECKSUM_CHUNK;
                let digests = copy_chunks(
                    Kernel::best(),
                    src.slice(0, whole),
                    &mut payload[at..at + whole],
                    populate,
                    true,
                );
                self.digests.extend(&digests);
                at += whole;
                src = src.slice(whole, src.len());
                continue;
            }
            let n = src.len().min(CHECKSUM_CHUNK - in_chunk);
            let chunk = &mut payload[chunk_start..at + n];
            if populate {
                populate_for_write(&mut chunk[in_chunk..]);
            }
            feed(&mut self.hasher, src.slice(0, n), chunk, in_chunk);
            if in_chunk + n == CHECKSUM_CHUNK {
                self.digests.push(self.hasher.finish(chunk));
                self.hasher = ChunkHasher::default();
            }
            at += n;
            src = src.slice(n, src.len());
        }
    }

    /// Copies `pieces`, one after another, into `payload` at `at`, as
    /// [`Fill::copy`] would one by one. A run of small pieces that add up
    /// to a large copy (pyarrow hands a wide frame over as hundreds of
    /// column buffers) is split across the cores by whole chunks, each
    /// chunk copied and hashed piece by piece (`feed`); a piece large
    /// enough to be split by itself goes through [`Fill::copy`], which
    /// splits it.
    pub(crate) fn copy_gathered(
        &mut self,
        mut pieces: &[SharedBytes<'_>],
        payload: &mut [u8],
        mut at: usize,
        populate: bool,
    ) {
        while !pieces.is_empty() {
            let small = pieces
                .iter()
                .position(|p| p.len() >= PARALLEL_MIN)
                .unwrap_or(pieces.len());
            let (run, rest) = pieces.split_at(small);
            at = self.copy_small_pieces(run, payload, at, populate);
            pieces = match rest.split_first() {
                Some((large, rest)) => {
                    self.copy(*large, payload, at, populate);
                    at += large.len();
                    rest
                }
                None => rest,
            };
        }
    }

    /// [`Fill::copy_gathered`] of pieces each shorter than
    /// [`PARALLEL_MIN`]; returns where they end.
    fn copy_small_pieces(
        &mut self,
        pieces: &[SharedBytes<'_>],
        payload: &mut [u8],
        mut at: usize,
        populate: bool,
    ) -> usize {
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        if total < PARALLEL_MIN || threads() < 2 {
            return self.copy_each(pieces.iter().copied(), payload, at, populate);
        }
        let stream = Gathered::new(pieces);
        let head = (CHECKSUM_CHUNK - at % CHECKSUM_CHUNK) % CHECKSUM_CHUNK;
        let head = head.min(total);
        let whole = (total - head) / CHECKSUM_CHUNK * CHECKSUM_CHUNK;
        at = self.copy_each(stream.range(0, head).map(|(p, _)| p), payload, at, populate);
        if whole > 0 {
            let dst = &mut payload[at..at + whole];
            let digests = copy_gathered_chunks(&stream, head, dst, populate, threads());
            self.digests.extend(&digests);
            at += whole;
        }
        let tail = stream.range(head + whole, total).map(|(p, _)| p);
        self.copy_each(tail, payload, at, populate)
    }

    /// [`Fill::copy`] of each of `pieces` in turn, from `at`; returns where
    /// they end.
    fn copy_each<'a>(
        &mut self,
        pieces: impl Iterator<Item = SharedBytes<'a>>,
        payload: &mut [u8],
        mut at: usize,
        populate: bool,
    ) -> usize {
        for piece in pieces {
            self.copy(piece, payload, at, populate);
            at += piece.len();
        }
        at
    }

    /// Hashes `n` bytes that were written straight into `payload` at `at`
    /// (the bytes written so far), as `copy` would have while copying them.
    pub(crate) fn absorb(&mut self, payload: &[u8], mut at: usize, n: usize) {
        let end = at + n;
        while at < end {
            let chunk_start = at - at % CHECKSUM_CHUNK;
            let chunk_end = (chunk_start + CHECKSUM_CHUNK).min(end);
            let chunk = &payload[chunk_start..chunk_end];
            catch_up(
                &mut self.hasher,
                chunk,
                ChunkHasher::stripes_before_last(chunk.len()),
            );
            if chunk.len() == CHECKSUM_CHUNK {
                self.digests.push(self.hasher.finish(chunk));
                self.hasher = ChunkHasher::default();
            }
            at = chunk_end;
        }
    }

    /// The checksum of `payload`, all of which was copied in by `copy` or
    /// hashed by `absorb`.
    pub(crate) fn finish(&mut self, payload: &[u8]) -> u64 {
        let tail = payload.len() % CHECKSUM_CHUNK;
        if tail > 0 {
            let chunk = &payload[payload.len() - tail..];
            catch_up(
                &mut self.hasher,
                chunk,
                ChunkHasher::stripes_before_last(tail),
            );
            self.digests.push(self.hasher.finish(chunk));
        }
        self.digests.finish()
    }
}

/// Copies `src` into `dst` (as long) as a large write copies a payload into
/// its mapping, already faulted in (split across cores by whole chunks, the
/// checksum computed by the copy), and returns the payload's checksum.
/// Exposed, hidden, for brain-bench's measure of what the checksum costs.
pub fn copy_with_checksum(src: SharedBytes<'_>, dst: &mut [u8]) -> u64 {
    let mut fill = Fill::default();
    fill.copy(src, dst, 0, false);
    fill.finish(dst)
}

/// Copies `src` into `dst` (as long, a multiple of 1 MiB) as
/// [`copy_with_checksum`] does, split the same way, with the same loads and
/// stores, but computes no checksum: the floor for brain-bench's measure of
/// what the checksum costs. Exposed, hidden.
pub fn copy_without_checksum(src: SharedBytes<'_>, dst: &mut [u8]) {
    copy_chunks_on(Kernel::best(), src, dst, false);
}

/// The writer's copy of whole chunks ([`copy_with_checksum`] with `hash`,
/// [`copy_without_checksum`] without) on the given kernel, returning the
/// chunks' digests: for brain-bench's comparison of the kernels. Exposed,
/// hidden.
pub fn copy_chunks_on(
    kernel: Kernel,
    src: SharedBytes<'_>,
    dst: &mut [u8],
    hash: bool,
) -> Vec<u64> {
    assert_eq!(
        src.len(),
        dst.len(),
        "copy between ranges of different lengths"
    );
    assert_eq!(dst.len() % CHECKSUM_CHUNK, 0, "whole chunks only");
    if dst.is_empty() {
        return Vec::new();
    }
    copy_chunks(kernel, src, dst, false, hash)
}

/// Feeds the stripes of `chunk` (already in place) up to `target`.
fn catch_up(hasher: &mut ChunkHasher, chunk: &[u8], target: usize) {
    if hasher.stripes < target {
        hash_stripes(&chunk[hasher.stripes * STRIPE..target * STRIPE], hasher);
    }
}

/// Copies `src` to `chunk[start..]` (`chunk` holds the chunk from its first
/// byte to the end of this piece) and feeds every stripe that is known not
/// to be the chunk's last: those with at least one byte after them.
fn feed(hasher: &mut ChunkHasher, src: SharedBytes<'_>, chunk: &mut [u8], start: usize) {
    let end = chunk.len();
    debug_assert_eq!(end - start, src.len());
    let target = ChunkHasher::stripes_before_last(end);
    // Stripes that lay whole before this piece and waited for a byte after them.
    catch_up(hasher, chunk, target.min(start / STRIPE));
    let mut pos = start;
    if !pos.is_multiple_of(STRIPE) && hasher.stripes < target {
        // The piece starts mid-stripe: complete that stripe, then feed it.
        let stop = pos - pos % STRIPE + STRIPE;
        copy_bytes(src.slice(0, stop - start), &mut chunk[pos..stop]);
        hasher.stripe(&chunk[stop - STRIPE..stop]);
        pos = stop;
    }
    if pos.is_multiple_of(STRIPE) && hasher.stripes == pos / STRIPE && hasher.stripes < target {
        let bytes = (target - hasher.stripes) * STRIPE;
        copy_and_hash(
            src.slice(pos - start, pos - start + bytes),
            &mut chunk[pos..pos + bytes],
            hasher,
            false,
        );
        pos += bytes;
    }
    copy_bytes(src.slice(pos - start, src.len()), &mut chunk[pos..]);
}

/// The digest of one whole chunk, copied from `src` into `dst` (0 without
/// `hash`: the same copy, for the measure of what the checksum costs).
fn copy_chunk(kernel: Kernel, src: SharedBytes<'_>, dst: &mut [u8], hash: bool) -> u64 {
    let mut hasher = ChunkHasher::default();
    let fused = ChunkHasher::stripes_before_last(dst.len()) * STRIPE;
    let (head_src, head) = (src.slice(0, fused), &mut dst[..fused]);
    if hash {
        copy_stripes_on::<true>(kernel, head_src, head, &mut hasher, true);
    } else {
        copy_stripes_on::<false>(kernel, head_src, head, &mut hasher, true);
    }
    finish_chunk(&hasher, src, dst, fused, hash)
}

/// Copies the rest of a whole chunk (from `fused`, its last stripe: the
/// stripes before it are in place and fed to `hasher`) and returns the
/// chunk's digest, or 0 without `hash`.
fn finish_chunk(
    hasher: &ChunkHasher,
    src: SharedBytes<'_>,
    chunk: &mut [u8],
    fused: usize,
    hash: bool,
) -> u64 {
    copy_bytes(src.slice(fused, src.len()), &mut chunk[fused..]);
    if hash {
        hasher.finish(chunk)
    } else {
        0
    }
}

/// The digests of four whole chunks of [`CHECKSUM_CHUNK`] bytes, copied
/// side by side (`copy_four_on`: four streams through memory at once).
fn copy_four_chunks(
    kernel: Kernel,
    src: SharedBytes<'_>,
    dst: &mut [u8],
    hash: bool,
) -> [u64; STREAMS] {
    debug_assert_eq!(dst.len(), STREAMS * CHECKSUM_CHUNK);
    let fused = ChunkHasher::stripes_before_last(CHECKSUM_CHUNK) * STRIPE;
    let mut chunks = dst.chunks_exact_mut(CHECKSUM_CHUNK);
    let mut dsts: [&mut [u8]; STREAMS] =
        std::array::from_fn(|_| chunks.next().expect("four whole chunks"));
    let mut hashers: [ChunkHasher; STREAMS] = Default::default();
    {
        let heads = dsts.each_mut().map(|chunk| &mut chunk[..fused]);
        let srcs: [SharedBytes<'_>; STREAMS] = std::array::from_fn(|i| {
            let from = i * CHECKSUM_CHUNK;
            src.slice(from, from + fused)
        });
        copy_four_on(kernel, srcs, heads, &mut hashers, true, hash);
    }
    std::array::from_fn(|i| {
        let from = i * CHECKSUM_CHUNK;
        let src = src.slice(from, from + CHECKSUM_CHUNK);
        finish_chunk(&hashers[i], src, dsts[i], fused, hash)
    })
}

/// Copies whole chunks from `src` into `dst` on several threads, each
/// taking a contiguous run of chunks, four side by side at a time; returns
/// their digests in order (zeros without `hash`).
fn copy_chunks(
    kernel: Kernel,
    src: SharedBytes<'_>,
    dst: &mut [u8],
    populate: bool,
    hash: bool,
) -> Vec<u64> {
    on_chunk_runs(dst, threads(), populate, |from, dst| {
        let src = src.slice(from, from + dst.len());
        let mut digests = Vec::with_capacity(dst.len().div_ceil(CHECKSUM_CHUNK));
        let mut groups = dst.chunks_mut(STREAMS * CHECKSUM_CHUNK);
        let mut at = 0;
        for group in &mut groups {
            if group.len() == STREAMS * CHECKSUM_CHUNK {
                let src = src.slice(at, at + group.len());
                digests.extend(copy_four_chunks(kernel, src, group, hash));
            } else {
                for (i, chunk) in group.chunks_mut(CHECKSUM_CHUNK).enumerate() {
                    let from = at + i * CHECKSUM_CHUNK;
                    let src = src.slice(from, from + chunk.len());
                    digests.push(copy_chunk(kernel, src, chunk, hash));
                }
            }
            at += group.len();
        }
        digests
    })
}

/// Splits `dst` (whole chunks, at least one) into contiguous runs of
/// chunks, one per thread of up to `threads`, the first on this thread;
/// each run has its pages faulted in first when `populate`, then `run`
/// copies into it, given the run's offset in `dst`, and returns its chunks'
/// digests. Returns all the digests in order.
fn on_chunk_runs(
    dst: &mut [u8],
    threads: usize,
    populate: bool,
    run: impl Fn(usize, &mut [u8]) -> Vec<u64> + Sync,
) -> Vec<u64> {
    let chunks = dst.len() / CHECKSUM_CHUNK;
    let workers = threads.min(chunks).max(1);
    let per = chunks.div_ceil(workers);
    let run = |from: usize, part: &mut [u8]| {
        if populate {
            populate_for_write(part);
        }
        run(from, part)
    };
    std::thread::scope(|scope| {
        let mut parts = dst.chunks_mut(per * CHECKSUM_CHUNK).enumerate();
        let (_, first) = parts.next().expect("at least one chunk");
        let run = &run;
        let handles: Vec<_> = parts
            .map(|(i, part)| scope.spawn(move || run(i * per * CHECKSUM_CHUNK, part)))
            .collect();
        let mut digests = run(0, first);
        for handle in handles {
            digests.extend(handle.join().expect("a copy thread panicked"));
        }
        digests
    })
}

/// Pieces read as one stream of bytes.
struct Gathered<'p, 'a> {
    pieces: &'p [SharedBytes<'a>],
    /// Where each piece starts in the stream.
    starts: Vec<usize>,
}

impl<'p, 'a> Gathered<'p, 'a> {
    fn new(pieces: &'p [SharedBytes<'a>]) -> Self {
        let starts = pieces
            .iter()
            .scan(0, |at, p| {
                let start = *at;
                *at += p.len();
                Some(start)
            })
            .collect();
        Gathered { pieces, starts }
    }

    /// The stream's bytes `from..to` as slices of the pieces, in order, each
    /// with its offset from `from`.
    fn range(&self, from: usize, to: usize) -> impl Iterator<Item = (SharedBytes<'a>, usize)> + '_ {
        let first = self
            .starts
            .partition_point(|&start| start <= from)
            .saturating_sub(1);
        self.pieces[first..]
            .iter()
            .zip(&self.starts[first..])
            .take_while(move |(_, &start)| start < to)
            .filter_map(move |(piece, &start)| {
                let lo = from.max(start);
                let hi = to.min(start + piece.len());
                (lo < hi).then(|| (piece.slice(lo - start, hi - start), lo - from))
            })
    }
}

/// Copies the whole chunks of `dst` from `stream`, starting at its byte
/// `from`, on up to `threads` threads, each taking a contiguous run of
/// chunks; returns their digests in order.
fn copy_gathered_chunks(
    stream: &Gathered<'_, '_>,
    from: usize,
    dst: &mut [u8],
    populate: bool,
    threads: usize,
) -> Vec<u64> {
    on_chunk_runs(dst, threads, populate, |at, dst| {
        dst.chunks_mut(CHECKSUM_CHUNK)
            .enumerate()
            .map(|(i, chunk)| {
                let start = from + at + i * CHECKSUM_CHUNK;
                let mut hasher = ChunkHasher::default();
                for (piece, at) in stream.range(start, start + chunk.len()) {
                    feed(&mut hasher, piece, &mut chunk[..at + piece.len()], at);
                }
                hasher.finish(chunk)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::checksum::payload_checksum;

    fn bytes(len: usize) -> Vec<u8> {
        crate::format::checksum::tests::bytes(len, 0x9E37_79B9_7F4A_7C15)
    }

    /// Many small pieces gathered into one copy (split across threads once
    /// they add up), after a head that leaves the copy mid-chunk, give the
    /// same bytes and checksum as the payload copied whole; so do runs of
    /// small pieces between pieces large enough to be split by themselves.
    #[test]
    #[cfg_attr(miri, ignore = "tens of MiB: hours under miri")]
    fn gathered_pieces_give_the_payload_checksum() {
        let len = 2 * PARALLEL_MIN + 3 * CHECKSUM_CHUNK + 1000;
        let src = bytes(len);
        // Piece lengths cycling through odd sizes, zero-length ones among
        // them; and small runs between large pieces.
        let small = [80_000usize, 0, 1, 63, 64, 65, 4096, 333_333, 8, 1 << 20];
        let mixed = [
            100_000usize,
            PARALLEL_MIN,
            7,
            5 << 20,
            4 << 20,
            PARALLEL_MIN + 3,
        ];
        for (heads, sizes) in [
            (0usize, &small[..]),
            (1, &small[..]),
            (CHECKSUM_CHUNK - 5, &small[..]),
            (77, &mixed[..]),
        ] {
            let mut dst = vec![0u8; len];
            let mut fill = Fill::default();
            fill.copy(SharedBytes::from(&src[..heads]), &mut dst, 0, false);
            let mut pieces = Vec::new();
            let mut at = heads;
            for &n in sizes.iter().cycle() {
                if at == len {
                    break;
                }
                let n = n.min(len - at);
                pieces.push(SharedBytes::from(&src[at..at + n]));
                at += n;
            }
            fill.copy_gathered(&pieces, &mut dst, heads, heads % 2 == 1);
            assert!(dst == src, "head {heads}: bytes differ");
            assert_eq!(fill.finish(&dst), payload_checksum(&src), "head {heads}");
        }
    }

    /// The split itself, whatever this machine's cores: each of one to
    /// three threads copies its run of chunks from pieces that straddle
    /// the runs' and the chunks' edges, and returns their digests in order.
    #[test]
    #[cfg_attr(miri, ignore = "MiBs: hours under miri")]
    fn gathered_chunks_split_over_any_threads_give_each_chunk_digest() {
        let chunks = 5;
        let from = 1000;
        let src = bytes(from + chunks * CHECKSUM_CHUNK + 3);
        let cuts = [70_001usize, 0, 64, 1 << 19, 3];
        let mut pieces = Vec::new();
        let mut at = 0;
        for &n in cuts.iter().cycle() {
            if at == src.len() {
                break;
            }
            let n = n.min(src.len() - at);
            pieces.push(SharedBytes::from(&src[at..at + n]));
            at += n;
        }
        let stream = Gathered::new(&pieces);
        let expected: Vec<u64> = src[from..from + chunks * CHECKSUM_CHUNK]
            .chunks(CHECKSUM_CHUNK)
            .map(xxhash_rust::xxh3::xxh3_64)
            .collect();
        for threads in 1..=3 {
            let mut dst = vec![0u8; chunks * CHECKSUM_CHUNK];
            let digests = copy_gathered_chunks(&stream, from, &mut dst, threads % 2 == 0, threads);
            assert_eq!(digests, expected, "{threads} threads");
            assert!(
                dst[..] == src[from..from + dst.len()],
                "{threads} threads: bytes differ"
            );
        }
    }

    /// Pieces of every size and alignment, and large ones split across
    /// threads, give the checksum of the whole and copy every byte.
    #[test]
    #[cfg_attr(miri, ignore = "tens of MiB: hours under miri; see the small one")]
    fn pieces_in_any_cut_give_the_payload_checksum() {
        let len = 2 * PARALLEL_MIN + 3 * CHECKSUM_CHUNK + 1000;
        let src = bytes(len);
        let cuts: [&[usize]; 4] = [
            &[len],
            &[
                1,
                63,
                64,
                65,
                7,
                3 * CHECKSUM_CHUNK,
                PARALLEL_MIN + 5,
                100_000,
            ],
            &[CHECKSUM_CHUNK - 1, 2, PARALLEL_MIN + CHECKSUM_CHUNK, 129],
            &[240, 241, 17, CHECKSUM_CHUNK, 4096 * 3 + 8],
        ];
        for cut in cuts {
            let mut dst = vec![0u8; len];
            let mut fill = Fill::default();
            let mut at = 0;
            for &n in cut.iter().chain(std::iter::once(&usize::MAX)) {
                let n = n.min(len - at);
                fill.copy(
                    SharedBytes::from(&src[at..at + n]),
                    &mut dst,
                    at,
                    at % 2 == 0,
                );
                at += n;
            }
            assert_eq!(at, len);
            assert!(dst == src, "cut {cut:?}: bytes differ");
            assert_eq!(fill.finish(&dst), payload_checksum(&src), "cut {cut:?}");
        }
        small_cuts();
        for len in [0usize, 1, 240, 241, CHECKSUM_CHUNK, CHECKSUM_CHUNK + 64] {
            let src = bytes(len);
            let mut dst = vec![0u8; len];
            let mut fill = Fill::default();
            fill.copy(SharedBytes::from(&src[..]), &mut dst, 0, false);
            assert_eq!(fill.finish(&dst), payload_checksum(&src), "len {len}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "MiBs of copies: minutes under miri")]
    fn the_copy_without_a_checksum_copies_the_same_bytes() {
        // Streaming stores need a 32-byte aligned destination: try one
        // that is and one that is not. Nine chunks: on one or two threads,
        // runs of four side by side and single ones.
        let src = bytes(9 * CHECKSUM_CHUNK);
        let mut buffer = vec![0u8; src.len() + 128];
        let aligned = buffer.as_ptr().align_offset(64);
        for at in [aligned, aligned + 8] {
            buffer.fill(0);
            let dst = &mut buffer[at..at + src.len()];
            copy_without_checksum(SharedBytes::from(&src[..]), dst);
            assert!(*dst == *src, "copied at offset {at}");
            assert_eq!(
                copy_with_checksum(SharedBytes::from(&src[..]), dst),
                payload_checksum(&src)
            );
        }
    }

    /// Pieces written in place and hashed by `absorb`, between copied
    /// ones, give the checksum of the whole: across stripes, into and
    /// across 1 MiB chunks, and as the last piece.
    #[test]
    #[cfg_attr(miri, ignore = "MiBs hashed: minutes under miri; safe code only")]
    fn pieces_filled_in_place_give_the_payload_checksum() {
        let len = 2 * CHECKSUM_CHUNK + 300;
        let src = bytes(len);
        let cuts: [&[usize]; 3] = [
            &[len],
            &[1, 64, 63, CHECKSUM_CHUNK, 70, 2],
            &[CHECKSUM_CHUNK - 10, 20, CHECKSUM_CHUNK + 100, 5],
        ];
        for (first_in_place, cut) in [
            (true, cuts[0]),
            (true, cuts[1]),
            (false, cuts[1]),
            (false, cuts[2]),
        ] {
            let mut dst = vec![0u8; len];
            let mut fill = Fill::default();
            let mut at = 0;
            for (i, &n) in cut.iter().chain(std::iter::once(&usize::MAX)).enumerate() {
                let n = n.min(len - at);
                if (i % 2 == 0) == first_in_place {
                    dst[at..at + n].copy_from_slice(&src[at..at + n]);
                    fill.absorb(&dst, at, n);
                } else {
                    fill.copy(SharedBytes::from(&src[at..at + n]), &mut dst, at, false);
                }
                at += n;
            }
            assert_eq!(at, len);
            assert_eq!(fill.finish(&dst), payload_checksum(&src), "cut {cut:?}");
        }
    }

    /// The same, on a payload small enough for miri: every path but the
    /// split across threads.
    #[test]
    fn small_pieces_give_the_payload_checksum() {
        small_cuts();
    }

    fn small_cuts() {
        let len = 3000;
        let src = bytes(len);
        for cut in [
            &[1usize, 63, 64, 65, 7, 500, 241][..],
            &[len],
            &[240, 17, 1024],
        ] {
            let mut dst = vec![0u8; len];
            let mut fill = Fill::default();
            let mut at = 0;
            for &n in cut.iter().chain(std::iter::once(&usize::MAX)) {
                let n = n.min(len - at);
                fill.copy(SharedBytes::from(&src[at..at + n]), &mut dst, at, false);
                at += n;
            }
            assert!(dst == src, "cut {cut:?}: bytes differ");
            assert_eq!(fill.finish(&dst), payload_checksum(&src), "cut {cut:?}");
        }
    }
}
