//! Copying a payload into the store, with its checksum computed on the way.
//!
//! # Sources another thread may write
//!
//! A payload handed to brain may live in memory that another thread is
//! allowed to change while brain copies it: a `bytearray` or a numpy array
//! written by another Python thread while the GIL is released. Reading such
//! memory through a `&[u8]` would be a data race, undefined behaviour in
//! Rust, whatever the bytes. So a source is a [`SharedBytes`] (a pointer and
//! a length, never a reference), and every read of it here is made by
//! inline assembly (`rep movsb`, `vmovdqu`): each byte load on x86-64 is
//! single-copy atomic, so such a copy behaves as a byte-wise atomic read
//! (what the "atomic memcpy" proposal for Rust, RFC 3301, specifies), which
//! races with nothing. Where no assembly is written (other architectures,
//! miri), the copy goes through `AtomicU8` loads. A racing writer can make
//! the stored value a mix of old and new bytes, never undefined behaviour;
//! the checksum is computed from the bytes as they were copied (read back
//! from the destination, or from the very registers that were stored), so
//! it always matches what the store holds.
//!
//! # The fused copy
//!
//! A large payload's checksum (format/checksum.rs: xxh3-64 over 1 MiB
//! chunks) is computed by the copy itself: each 64-byte stripe is loaded
//! into one register (AVX-512) or two (AVX2), stored to the destination
//! and fed to xxh3's accumulators from the same registers, so the data is
//! read once. The copy is bound by memory bandwidth, and the hashing fits
//! in the cycles spent waiting for it, mostly (what it costs, measured:
//! docs/BENCHMARKS.md, "What the payload checksum costs a large write").
//! Each call runs the widest kernel the processor has ([`Kernel::best`]);
//! the tests run every kernel it has against the portable hasher.

use std::marker::PhantomData;

use crate::format::checksum::{ChunkHasher, STRIPE};

/// Bytes to be copied into a store, which another thread may write while
/// they are copied (a writable Python buffer, say).
///
/// Built from a slice (always safe), or from a pointer and a length by
/// [`SharedBytes::from_raw`], whose caller promises only that the memory
/// stays allocated and readable for `'a`. brain reads it only through
/// copies that are defined under concurrent writes, never through a `&[u8]`.
#[derive(Debug, Clone, Copy)]
pub struct SharedBytes<'a> {
    ptr: *const u8,
    len: usize,
    /// Made from a `&[u8]`: nothing writes it, and the pointer only grants
    /// reads (an atomic access through it would be undefined behaviour).
    immutable: bool,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a SharedBytes is a read-only borrow of memory valid for 'a (the
// constructors' contract), read only by copies that tolerate concurrent
// writes; sharing or sending that borrow to another thread (the writer's
// copy threads) is as sound as sending a `&[u8]`.
unsafe impl Send for SharedBytes<'_> {}
// SAFETY: see Send: nothing is ever written through it.
unsafe impl Sync for SharedBytes<'_> {}

impl<'a> From<&'a [u8]> for SharedBytes<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        SharedBytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            immutable: true,
            _borrow: PhantomData,
        }
    }
}

impl<'a> SharedBytes<'a> {
    /// `len` bytes at `ptr`, which other threads may write meanwhile.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes for all of `'a`: the
    /// memory stays allocated and mapped readable (a Python buffer held
    /// with `PyBUF_SIMPLE`, for example). Other threads may write it at any
    /// time; they must not free or unmap it during `'a`. `len` is at most
    /// `isize::MAX`.
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> SharedBytes<'a> {
        SharedBytes {
            ptr,
            len,
            immutable: false,
            _borrow: PhantomData,
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes from `start` to `end`.
    ///
    /// # Panics
    /// When the range is out of bounds.
    pub fn slice(&self, start: usize, end: usize) -> SharedBytes<'a> {
        assert!(start <= end && end <= self.len, "range out of bounds");
        SharedBytes {
            // SAFETY: start <= len, so the result stays inside (or one past)
            // the borrowed range.
            ptr: unsafe { self.ptr.add(start) },
            len: end - start,
            immutable: self.immutable,
            _borrow: PhantomData,
        }
    }

    /// Copies the bytes into `dst`, which must be exactly as long.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn copy_to(&self, dst: &mut [u8]) {
        copy_bytes(*self, dst);
    }

    /// A private copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.copy_to(&mut out);
        out
    }
}

/// The kernels a copy or a hash of stripes can run on (exposed, hidden,
/// for brain-bench's comparison of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// 512-bit registers: a stripe in one.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    Avx512,
    /// 256-bit registers: a stripe in two.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    Avx2,
    /// No vector instructions: `copy_bytes`, and stripes hashed one by one.
    Portable,
}

impl Kernel {
    /// Every kernel of this build, widest first.
    const ALL: &'static [Kernel] = &[
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        Kernel::Avx512,
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        Kernel::Avx2,
        Kernel::Portable,
    ];

    /// Whether this processor runs the kernel. (The standard library caches
    /// what the processor has: each check is a load and a test.)
    fn runs_here(self) -> bool {
        match self {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            Kernel::Portable => true,
        }
    }

    /// The widest kernel this processor runs: AVX-512F, else AVX2, else
    /// the portable one (AVX-512 measured no slower than AVX2, and faster
    /// where the hashing shows, on the machines of docs/BENCHMARKS.md).
    pub fn best() -> Kernel {
        Kernel::ALL
            .iter()
            .copied()
            .find(|k| k.runs_here())
            .unwrap_or(Kernel::Portable)
    }

    /// Panics unless this processor runs the kernel: the vector kernels'
    /// one requirement, checked where they are called, so that no caller
    /// is trusted with it.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    fn assert_supported(self) {
        assert!(
            self.runs_here(),
            "this processor has no {self:?} instructions"
        );
    }

    /// Every kernel this processor runs, slowest first, for the tests and
    /// benches that compare them.
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL
            .iter()
            .rev()
            .copied()
            .filter(|k| k.runs_here())
            .collect()
    }
}

/// Copies `src` into `dst` (of the same length) with reads that are defined
/// when another thread writes `src` meanwhile.
pub(crate) fn copy_bytes(src: SharedBytes<'_>, dst: &mut [u8]) {
    assert_eq!(
        src.len,
        dst.len(),
        "copy between ranges of different lengths"
    );
    if dst.is_empty() {
        return;
    }
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: src is valid for reads of len bytes (SharedBytes' contract)
    // and dst is a unique borrow of len bytes, so the ranges cannot
    // overlap. `rep movsb` copies rcx bytes from rsi to rdi forwards (the
    // direction flag is clear at every Rust call boundary, by the ABI),
    // touching nothing else; its byte loads are single-copy atomic, so a
    // concurrent writer of src makes no data race (see the module's docs).
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") dst.len() => _,
            inout("rsi") src.ptr => _,
            inout("rdi") dst.as_mut_ptr() => _,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    if src.immutable {
        // SAFETY: made from a `&'a [u8]` of len bytes (From<&[u8]>, or a
        // slice of one), which nothing writes while 'a lasts.
        let bytes = unsafe { std::slice::from_raw_parts(src.ptr, src.len) };
        dst.copy_from_slice(bytes);
        return;
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    for (i, out) in dst.iter_mut().enumerate() {
        // SAFETY: i < len, so the pointer is inside the borrowed range, which
        // is valid for reads for the borrow's life (SharedBytes' contract);
        // an AtomicU8 has the alignment and size of a u8, and reading through
        // it is an atomic load, which races with nothing.
        let byte = unsafe { std::sync::atomic::AtomicU8::from_ptr(src.ptr.add(i).cast_mut()) };
        *out = byte.load(std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies whole stripes from `src` into `dst` (both a multiple of 64 bytes
/// long, the same length) and feeds each to `hasher`, as the next stripes
/// of its chunk. With `streaming`, stores bypass the caches (for copies much
/// larger than the caches, which nothing reads soon).
pub(crate) fn copy_and_hash(
    src: SharedBytes<'_>,
    dst: &mut [u8],
    hasher: &mut ChunkHasher,
    streaming: bool,
) {
    copy_stripes_on::<true>(Kernel::best(), src, dst, hasher, streaming);
}

/// The shortest run [`hash_stripes`] gives to the vector kernel: 8 stripes.
const VECTOR_HASH_MIN: usize = 8 * STRIPE;

/// Feeds `data`, whole stripes already in place (written straight into a
/// mapping, not copied by brain), to `hasher` as the next stripes of its
/// chunk: what [`copy_and_hash`] does without the copy.
pub(crate) fn hash_stripes(data: &[u8], hasher: &mut ChunkHasher) {
    hash_stripes_on(Kernel::best(), data, hasher);
}

/// [`hash_stripes`] on the given kernel.
fn hash_stripes_on(kernel: Kernel, data: &[u8], hasher: &mut ChunkHasher) {
    assert_eq!(data.len() % STRIPE, 0, "whole stripes only");
    // A stripe or two (a piece's first, which waited for a byte after it)
    // costs less one by one than the kernel's loading of its keys.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if data.len() >= VECTOR_HASH_MIN && kernel != Kernel::Portable {
        kernel.assert_supported();
        let run = match kernel {
            Kernel::Avx512 => avx512::hash_stripes,
            _ => avx2::hash_stripes,
        };
        // SAFETY: the kernel's instructions are present (asserted just
        // above), its only requirement.
        unsafe { run(data, hasher) };
        return;
    }
    let _ = kernel;
    for stripe in data.chunks_exact(STRIPE) {
        hasher.stripe(stripe);
    }
}

/// How many equally long runs [`copy_four_on`] copies side by side.
pub(crate) const STREAMS: usize = 4;

/// Copies four runs of whole stripes side by side on `kernel` (stripe `i`
/// of each, then stripe `i + 1`), each fed to its own hasher when `hash`:
/// four streams through memory at once, as glibc's `memcpy` copies four
/// pages at a time past the caches' size, which one stream does not match.
/// The runs are as long as each other (a multiple of 64), and the hashers
/// have consumed as many stripes as each other, so the four share their
/// keys.
pub(crate) fn copy_four_on(
    kernel: Kernel,
    srcs: [SharedBytes<'_>; STREAMS],
    dsts: [&mut [u8]; STREAMS],
    hashers: &mut [ChunkHasher; STREAMS],
    streaming: bool,
    hash: bool,
) {
    let len = dsts[0].len();
    for (src, dst) in srcs.iter().zip(&dsts) {
        assert!(
            src.len == len && dst.len() == len,
            "copy between ranges of different lengths"
        );
    }
    assert_eq!(len % STRIPE, 0, "whole stripes only");
    assert!(
        hashers.iter().all(|h| h.stripes == hashers[0].stripes),
        "hashers at different stripes"
    );
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if kernel != Kernel::Portable {
        kernel.assert_supported();
        let from = srcs.map(|src| src.ptr);
        let into = dsts.map(|dst| dst.as_mut_ptr());
        let run = match (kernel, hash) {
            (Kernel::Avx512, true) => avx512::copy_four::<true>,
            (Kernel::Avx512, false) => avx512::copy_four::<false>,
            (_, true) => avx2::copy_four::<true>,
            (_, false) => avx2::copy_four::<false>,
        };
        // SAFETY: the kernel's instructions are present (asserted just
        // above). Each source is valid for reads of `len` bytes
        // (SharedBytes' contract) and each destination is a unique borrow
        // of `len` bytes (checked), so the four destinations are disjoint
        // from each other and from the sources; `len` is a multiple of 64
        // (checked), and the hashers are at the same stripe (checked). The
        // kernel reads and writes exactly those ranges (and prefetches up
        // to 4 KiB past each source's end, a hint that reads nothing and
        // cannot fault).
        unsafe { run(from, into, len, hashers, streaming) };
        return;
    }
    for ((src, dst), hasher) in srcs.into_iter().zip(dsts).zip(hashers.iter_mut()) {
        if hash {
            copy_stripes_on::<true>(kernel, src, dst, hasher, streaming);
        } else {
            copy_stripes_on::<false>(kernel, src, dst, hasher, streaming);
        }
    }
}

/// [`copy_and_hash`] on `kernel` (with `HASH`), or the same copy with the
/// same loads and stores hashing nothing (without): the floor that the
/// checksum's cost is measured against.
pub(crate) fn copy_stripes_on<const HASH: bool>(
    kernel: Kernel,
    src: SharedBytes<'_>,
    dst: &mut [u8],
    hasher: &mut ChunkHasher,
    streaming: bool,
) {
    assert_eq!(
        src.len,
        dst.len(),
        "copy between ranges of different lengths"
    );
    assert_eq!(dst.len() % STRIPE, 0, "whole stripes only");
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if kernel != Kernel::Portable {
        kernel.assert_supported();
        let run = match kernel {
            Kernel::Avx512 => avx512::copy_and_hash::<HASH>,
            _ => avx2::copy_and_hash::<HASH>,
        };
        // SAFETY: the kernel's instructions are present (asserted just
        // above). src is valid for reads of len bytes and dst is a unique
        // borrow of as many (checked equal), a multiple of 64 (checked);
        // the kernel reads and writes exactly those ranges (it also
        // prefetches up to 4 KiB past the source's end, a hint that reads
        // nothing and cannot fault).
        unsafe { run(src.ptr, dst, hasher, streaming) };
        return;
    }
    let _ = (kernel, streaming);
    copy_bytes(src, dst);
    if HASH {
        for stripe in dst.chunks_exact(STRIPE) {
            hasher.stripe(stripe);
        }
    }
}

/// xxh3's 32-bit prime, as the vector kernels' multiplier.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const PRIME32_1: i32 = 0x9E37_79B1_u32 as i32;

/// Runs `$body` with `$j` bound to each stripe of a block in turn, 0 to
/// 15, written out: the AVX-512 loops take a block from its first stripe
/// this way, so that each stripe's key is a constant index (a register)
/// and the block's end is looked for once. Measured against a loop of
/// single stripes on a 64 MiB copy, the hashing's cost over the same copy
/// without it fell from 5 to 7% to at most 4% (docs/BENCHMARKS.md, "A block
/// at a time"). The AVX2 loop keeps a stripe at a time: its 32 keys do not
/// fit AVX2's 16 registers, and written out it was slower.
#[cfg(all(target_arch = "x86_64", not(miri)))]
macro_rules! each_stripe_of_a_block {
    ($j:ident => $body:block) => {
        each_stripe_of_a_block!(@ $j $body 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (@ $j:ident $body:block $($stripe:literal)*) => {
        $({
            let $j: usize = $stripe;
            $body
        })*
    };
}
#[cfg(all(target_arch = "x86_64", not(miri)))]
const _: () = assert!(crate::format::checksum::STRIPES_PER_BLOCK == 16);
/// How far ahead of the copy the vector kernels prefetch the source, in bytes.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const PREFETCH_AHEAD: usize = 4096;

#[cfg(all(target_arch = "x86_64", not(miri)))]
mod avx2 {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{PREFETCH_AHEAD, PRIME32_1, STREAMS};
    use crate::format::checksum::{
        ChunkHasher, SCRAMBLE_SECRET, SECRET, STRIPE, STRIPES_PER_BLOCK,
    };

    /// 32 bytes of xxh3's secret, from `at`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn secret(at: usize) -> __m256i {
        let bytes: &[u8; 32] = SECRET[at..at + 32].try_into().expect("32 bytes");
        // SAFETY: `bytes` is a reference to 32 readable bytes; the load is
        // unaligned, so any address will do.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    /// The secret's two 32-byte keys for each stripe of a block, in stripe
    /// order, and the scramble's two: loaded once per call, as slicing the
    /// secret in the loop cost more than the hashing itself.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn keys() -> ([__m256i; 2 * STRIPES_PER_BLOCK], [__m256i; 2]) {
        let mut keys = [_mm256_setzero_si256(); 2 * STRIPES_PER_BLOCK];
        for (i, key) in keys.iter_mut().enumerate() {
            *key = secret((i / 2) * 8 + (i % 2) * 32);
        }
        (
            keys,
            [secret(SCRAMBLE_SECRET), secret(SCRAMBLE_SECRET + 32)],
        )
    }

    /// xxh3's AVX2 accumulate: `acc[i ^ 1] += data[i];
    /// acc[i] += lo32(data[i] ^ key[i]) * hi32(data[i] ^ key[i])`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn accumulate(acc: __m256i, data: __m256i, key: __m256i) -> __m256i {
        let data_key = _mm256_xor_si256(data, key);
        let product = _mm256_mul_epu32(data_key, _mm256_srli_epi64::<32>(data_key));
        let swapped = _mm256_shuffle_epi32::<0b01_00_11_10>(data);
        _mm256_add_epi64(product, _mm256_add_epi64(acc, swapped))
    }

    /// xxh3's AVX2 scramble: `acc = ((acc ^ (acc >> 47)) ^ key) * PRIME32_1`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn scramble(acc: __m256i, key: __m256i) -> __m256i {
        let mixed = _mm256_xor_si256(_mm256_xor_si256(acc, _mm256_srli_epi64::<47>(acc)), key);
        let prime = _mm256_set1_epi32(PRIME32_1);
        let low = _mm256_mul_epu32(mixed, prime);
        let high = _mm256_mul_epu32(_mm256_srli_epi64::<32>(mixed), prime);
        _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high))
    }

    /// Copies the 64-byte stripe at `from` to `into` and returns it, as two
    /// vectors, from the registers that were stored.
    ///
    /// # Safety
    /// AVX2 is available; `from` is valid for reads of 64 bytes (other
    /// threads may write them); `into` is valid for writes of 64 bytes that
    /// nothing else accesses meanwhile, and 32-byte aligned if `streaming`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn copy_stripe(from: *const u8, into: *mut u8, streaming: bool) -> (__m256i, __m256i) {
        let (d0, d1): (__m256i, __m256i);
        if streaming {
            // SAFETY: the caller's contract: both ranges are valid for 64
            // bytes and `into` is 32-byte aligned, as `vmovntdq` needs. The
            // asm touches nothing else. Its loads are byte-wise single-copy
            // atomic on x86-64, so a thread writing `from` meanwhile races
            // with nothing (the module's docs).
            unsafe {
                asm!(
                    "vmovdqu {d0}, ymmword ptr [{from}]",
                    "vmovdqu {d1}, ymmword ptr [{from} + 32]",
                    "vmovntdq ymmword ptr [{into}], {d0}",
                    "vmovntdq ymmword ptr [{into} + 32], {d1}",
                    from = in(reg) from,
                    into = in(reg) into,
                    d0 = out(ymm_reg) d0,
                    d1 = out(ymm_reg) d1,
                    options(nostack, preserves_flags),
                );
            }
        } else {
            // SAFETY: as above, with unaligned stores.
            unsafe {
                asm!(
                    "vmovdqu {d0}, ymmword ptr [{from}]",
                    "vmovdqu {d1}, ymmword ptr [{from} + 32]",
                    "vmovdqu ymmword ptr [{into}], {d0}",
                    "vmovdqu ymmword ptr [{into} + 32], {d1}",
                    from = in(reg) from,
                    into = in(reg) into,
                    d0 = out(ymm_reg) d0,
                    d1 = out(ymm_reg) d1,
                    options(nostack, preserves_flags),
                );
            }
        }
        (d0, d1)
    }

    /// Copies `src` into `dst` stripe by stripe and, with `HASH`, feeds
    /// each stripe to `hasher` from the registers it was stored from. With
    /// `HASH` false it is the same copy without the hashing: what the
    /// checksum costs is measured against it (`brain_core::bench`).
    ///
    /// # Safety
    /// AVX2 must be available; `src` valid for reads of `dst.len()` bytes,
    /// a multiple of 64.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_and_hash<const HASH: bool>(
        src: *const u8,
        dst: &mut [u8],
        hasher: &mut ChunkHasher,
        streaming: bool,
    ) {
        let stripes = dst.len() / STRIPE;
        let to = dst.as_mut_ptr();
        let streaming = streaming && (to as usize).is_multiple_of(32);
        let [mut a0, mut a1] = load_acc(hasher);
        let (keys, [scramble0, scramble1]) = keys();
        let mut n = hasher.stripes;
        for s in 0..stripes {
            let offset = s * STRIPE;
            // Ask for the source ahead of the copy: on large copies the
            // hardware's own prefetching falls behind. A prefetch is a hint
            // that reads nothing and never faults, so an address past the
            // end does no harm.
            _mm_prefetch::<_MM_HINT_T0>(src.wrapping_add(offset + PREFETCH_AHEAD).cast::<i8>());
            // SAFETY: offset + 64 <= dst.len(), and src is valid for reads of
            // dst.len() bytes (the caller's contract), dst a unique borrow of
            // as many, 32-byte aligned when streaming (checked above).
            let (d0, d1) = unsafe {
                copy_stripe(src.wrapping_add(offset), to.wrapping_add(offset), streaming)
            };
            if HASH {
                let k = 2 * (n % STRIPES_PER_BLOCK);
                a0 = accumulate(a0, d0, keys[k]);
                a1 = accumulate(a1, d1, keys[k + 1]);
                n += 1;
                if n.is_multiple_of(STRIPES_PER_BLOCK) {
                    a0 = scramble(a0, scramble0);
                    a1 = scramble(a1, scramble1);
                }
            }
        }
        if streaming {
            // Non-temporal stores are weakly ordered: fence them before the
            // bytes are read back (the chunk's last stripe) or published.
            _mm_sfence();
        }
        store_acc(hasher, [a0, a1], n);
    }

    /// [`super::hash_stripes`]: each 64-byte stripe of `data` (a multiple
    /// of 64 bytes long) loaded into two registers and fed to `hasher`.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hash_stripes(data: &[u8], hasher: &mut ChunkHasher) {
        debug_assert_eq!(data.len() % STRIPE, 0, "whole stripes only");
        let [mut a0, mut a1] = load_acc(hasher);
        let (keys, [scramble0, scramble1]) = keys();
        let mut n = hasher.stripes;
        for stripe in data.chunks_exact(STRIPE) {
            let k = 2 * (n % STRIPES_PER_BLOCK);
            a0 = accumulate(a0, load32(&stripe[..32]), keys[k]);
            a1 = accumulate(a1, load32(&stripe[32..]), keys[k + 1]);
            n += 1;
            if n.is_multiple_of(STRIPES_PER_BLOCK) {
                a0 = scramble(a0, scramble0);
                a1 = scramble(a1, scramble1);
            }
        }
        store_acc(hasher, [a0, a1], n);
    }

    /// [`super::copy_four_on`]: four runs of `len` bytes copied side by side,
    /// stripe `i` of each in turn, each fed with `HASH` to its hasher from
    /// the registers it was stored from.
    ///
    /// # Safety
    /// AVX2 must be available; each `src` valid for reads of `len` bytes (a
    /// multiple of 64); each `dst` valid for writes of `len` bytes that
    /// nothing else accesses meanwhile, the four disjoint; the hashers all
    /// at the same stripe.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_four<const HASH: bool>(
        src: [*const u8; STREAMS],
        dst: [*mut u8; STREAMS],
        len: usize,
        hashers: &mut [ChunkHasher; STREAMS],
        streaming: bool,
    ) {
        let stripes = len / STRIPE;
        let streaming = streaming && dst.iter().all(|to| (*to as usize).is_multiple_of(32));
        let mut acc = [[_mm256_setzero_si256(); 2]; STREAMS];
        for (acc, hasher) in acc.iter_mut().zip(hashers.iter()) {
            *acc = load_acc(hasher);
        }
        let (keys, [scramble0, scramble1]) = keys();
        let mut n = hashers[0].stripes;
        for s in 0..stripes {
            let offset = s * STRIPE;
            for from in src {
                // A hint only: reads nothing, never faults (see copy_and_hash).
                _mm_prefetch::<_MM_HINT_T0>(
                    from.wrapping_add(offset + PREFETCH_AHEAD).cast::<i8>(),
                );
            }
            let k = 2 * (n % STRIPES_PER_BLOCK);
            for i in 0..STREAMS {
                // SAFETY: offset + 64 <= len, and each source is valid for
                // reads and each destination for writes of len bytes (the
                // caller's contract), 32-byte aligned when streaming
                // (checked above).
                let (d0, d1) = unsafe {
                    copy_stripe(
                        src[i].wrapping_add(offset),
                        dst[i].wrapping_add(offset),
                        streaming,
                    )
                };
                if HASH {
                    acc[i][0] = accumulate(acc[i][0], d0, keys[k]);
                    acc[i][1] = accumulate(acc[i][1], d1, keys[k + 1]);
                }
            }
            if HASH {
                n += 1;
                if n.is_multiple_of(STRIPES_PER_BLOCK) {
                    for acc in acc.iter_mut() {
                        acc[0] = scramble(acc[0], scramble0);
                        acc[1] = scramble(acc[1], scramble1);
                    }
                }
            }
        }
        if streaming {
            // See copy_and_hash: fence the weakly ordered stores.
            _mm_sfence();
        }
        for (acc, hasher) in acc.iter().zip(hashers.iter_mut()) {
            store_acc(hasher, *acc, n);
        }
    }

    /// A hasher's accumulators as the two vectors the loops keep them in.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load_acc(hasher: &ChunkHasher) -> [__m256i; 2] {
        let bytes = bytemuck_acc(&hasher.acc);
        [load32(&bytes[..32]), load32(&bytes[32..])]
    }

    /// Puts the two vectors back into `hasher`, `stripes` now consumed.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn store_acc(hasher: &mut ChunkHasher, acc: [__m256i; 2], stripes: usize) {
        let mut out = [0u64; 8];
        store32(&mut out[..4], acc[0]);
        store32(&mut out[4..], acc[1]);
        hasher.acc = out;
        hasher.stripes = stripes;
    }

    /// The accumulators' bytes (little-endian lanes, as the vectors hold them).
    fn bytemuck_acc(acc: &[u64; 8]) -> &[u8; 64] {
        // SAFETY: [u64; 8] and [u8; 64] have the same size, u8's alignment
        // is 1, and every bit pattern is a valid u8.
        unsafe { &*(acc as *const [u64; 8]).cast::<[u8; 64]>() }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn load32(bytes: &[u8]) -> __m256i {
        assert_eq!(bytes.len(), 32);
        // SAFETY: 32 readable bytes (asserted), loaded unaligned.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn store32(lanes: &mut [u64], v: __m256i) {
        assert_eq!(lanes.len(), 4);
        // SAFETY: 4 writable u64 (asserted) are 32 bytes, stored unaligned.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) }
    }
}

/// The AVX-512 kernels: a stripe is one 512-bit register, so a stripe costs
/// one load, one store and half the vector instructions of the AVX2
/// kernels' two 256-bit halves (the hashing then hides better behind the
/// copy's wait for memory). The accumulators are the same eight lanes in
/// the same order, so the hashes are the same.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod avx512 {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{PREFETCH_AHEAD, PRIME32_1, STREAMS};
    use crate::format::checksum::{
        ChunkHasher, SCRAMBLE_SECRET, SECRET, STRIPE, STRIPES_PER_BLOCK,
    };

    /// 64 bytes of xxh3's secret, from `at`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn secret(at: usize) -> __m512i {
        let bytes: &[u8; 64] = SECRET[at..at + 64].try_into().expect("64 bytes");
        // SAFETY: `bytes` is a reference to 64 readable bytes; the load is
        // unaligned, so any address will do.
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
    }

    /// The secret's key for each stripe of a block, and the scramble's:
    /// loaded once per call, kept in registers (AVX-512 has 32).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn keys() -> ([__m512i; STRIPES_PER_BLOCK], __m512i) {
        let mut keys = [_mm512_setzero_si512(); STRIPES_PER_BLOCK];
        for (i, key) in keys.iter_mut().enumerate() {
            *key = secret(i * 8);
        }
        (keys, secret(SCRAMBLE_SECRET))
    }

    /// xxh3's accumulate, on all eight lanes at once.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn accumulate(acc: __m512i, data: __m512i, key: __m512i) -> __m512i {
        let data_key = _mm512_xor_si512(data, key);
        let product = _mm512_mul_epu32(data_key, _mm512_srli_epi64::<32>(data_key));
        let swapped = _mm512_shuffle_epi32::<0b01_00_11_10>(data);
        _mm512_add_epi64(product, _mm512_add_epi64(acc, swapped))
    }

    /// xxh3's scramble, on all eight lanes at once (the three-way xor is
    /// one ternary-logic instruction, truth table 0x96).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn scramble(acc: __m512i, key: __m512i) -> __m512i {
        let mixed = _mm512_ternarylogic_epi64::<0x96>(acc, _mm512_srli_epi64::<47>(acc), key);
        let prime = _mm512_set1_epi32(PRIME32_1);
        let low = _mm512_mul_epu32(mixed, prime);
        let high = _mm512_mul_epu32(_mm512_srli_epi64::<32>(mixed), prime);
        _mm512_add_epi64(low, _mm512_slli_epi64::<32>(high))
    }

    /// Copies the 64-byte stripe at `from` to `into` and returns it, from
    /// the register that was stored.
    ///
    /// # Safety
    /// AVX-512F is available; `from` is valid for reads of 64 bytes (other
    /// threads may write them); `into` is valid for writes of 64 bytes that
    /// nothing else accesses meanwhile, and 64-byte aligned if `streaming`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn copy_stripe(from: *const u8, into: *mut u8, streaming: bool) -> __m512i {
        let data: __m512i;
        if streaming {
            // SAFETY: the caller's contract: both ranges are valid for 64
            // bytes and `into` is 64-byte aligned, as a 512-bit `vmovntdq`
            // needs. The asm touches nothing else. Its load is byte-wise
            // single-copy atomic on x86-64, so a thread writing `from`
            // meanwhile races with nothing (the module's docs).
            unsafe {
                asm!(
                    "vmovdqu64 {data}, zmmword ptr [{from}]",
                    "vmovntdq zmmword ptr [{into}], {data}",
                    from = in(reg) from,
                    into = in(reg) into,
                    data = out(zmm_reg) data,
                    options(nostack, preserves_flags),
                );
            }
        } else {
            // SAFETY: as above, with an unaligned store.
            unsafe {
                asm!(
                    "vmovdqu64 {data}, zmmword ptr [{from}]",
                    "vmovdqu64 zmmword ptr [{into}], {data}",
                    from = in(reg) from,
                    into = in(reg) into,
                    data = out(zmm_reg) data,
                    options(nostack, preserves_flags),
                );
            }
        }
        data
    }

    /// [`super::copy_and_hash`] (with `HASH`), and the same copy without
    /// hashing, with 512-bit registers.
    ///
    /// # Safety
    /// AVX-512F must be available; `src` valid for reads of `dst.len()`
    /// bytes, a multiple of 64.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_and_hash<const HASH: bool>(
        src: *const u8,
        dst: &mut [u8],
        hasher: &mut ChunkHasher,
        streaming: bool,
    ) {
        let stripes = dst.len() / STRIPE;
        let to = dst.as_mut_ptr();
        let streaming = streaming && (to as usize).is_multiple_of(64);
        let mut acc = load_acc(hasher);
        let (keys, scramble_key) = keys();
        let mut n = hasher.stripes;
        let mut s = 0;
        while s < stripes {
            if s + STRIPES_PER_BLOCK <= stripes && (!HASH || n.is_multiple_of(STRIPES_PER_BLOCK)) {
                each_stripe_of_a_block!(j => {
                    // SAFETY: (s + j + 1) * 64 <= (s + 16) * 64 <= dst.len()
                    // (checked just above), and src is valid for reads of
                    // dst.len() bytes (the caller's contract), dst a unique
                    // borrow of as many, 64-byte aligned when streaming.
                    unsafe {
                        one_stripe::<HASH>(src, to, (s + j) * STRIPE, streaming, &mut acc, keys[j]);
                    }
                });
                s += STRIPES_PER_BLOCK;
                if HASH {
                    n += STRIPES_PER_BLOCK;
                    acc = scramble(acc, scramble_key);
                }
                continue;
            }
            // SAFETY: (s + 1) * 64 <= dst.len(), and src is valid for reads
            // of dst.len() bytes (the caller's contract), dst a unique
            // borrow of as many, 64-byte aligned when streaming (checked
            // above).
            unsafe {
                one_stripe::<HASH>(
                    src,
                    to,
                    s * STRIPE,
                    streaming,
                    &mut acc,
                    keys[n % STRIPES_PER_BLOCK],
                );
            }
            s += 1;
            if HASH {
                n += 1;
                if n.is_multiple_of(STRIPES_PER_BLOCK) {
                    acc = scramble(acc, scramble_key);
                }
            }
        }
        if streaming {
            // Fence the weakly ordered stores before the bytes are read
            // back or published.
            _mm_sfence();
        }
        store_acc(hasher, acc, n);
    }

    /// Copies the stripe at `offset` of `src` to `to`, and with `HASH`
    /// feeds it to `acc` with `key`.
    ///
    /// # Safety
    /// AVX-512F is available; `src` is valid for reads of the 64 bytes at
    /// `offset`; `to` valid for writes of the 64 bytes at `offset` that
    /// nothing else accesses meanwhile, 64-byte aligned if `streaming`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn one_stripe<const HASH: bool>(
        src: *const u8,
        to: *mut u8,
        offset: usize,
        streaming: bool,
        acc: &mut __m512i,
        key: __m512i,
    ) {
        // A hint only: reads nothing, never faults.
        _mm_prefetch::<_MM_HINT_T0>(src.wrapping_add(offset + PREFETCH_AHEAD).cast::<i8>());
        // SAFETY: the caller's contract, for the stripe at `offset`.
        let data =
            unsafe { copy_stripe(src.wrapping_add(offset), to.wrapping_add(offset), streaming) };
        if HASH {
            *acc = accumulate(*acc, data, key);
        }
    }

    /// [`super::hash_stripes`] with 512-bit registers.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn hash_stripes(data: &[u8], hasher: &mut ChunkHasher) {
        debug_assert_eq!(data.len() % STRIPE, 0, "whole stripes only");
        let mut acc = load_acc(hasher);
        let (keys, scramble_key) = keys();
        let mut n = hasher.stripes;
        let stripes = data.len() / STRIPE;
        let mut s = 0;
        while s < stripes {
            if s + STRIPES_PER_BLOCK <= stripes && n.is_multiple_of(STRIPES_PER_BLOCK) {
                each_stripe_of_a_block!(j => {
                    acc = accumulate(acc, load64(&data[(s + j) * STRIPE..]), keys[j]);
                });
                acc = scramble(acc, scramble_key);
                s += STRIPES_PER_BLOCK;
                n += STRIPES_PER_BLOCK;
                continue;
            }
            acc = accumulate(
                acc,
                load64(&data[s * STRIPE..]),
                keys[n % STRIPES_PER_BLOCK],
            );
            s += 1;
            n += 1;
            if n.is_multiple_of(STRIPES_PER_BLOCK) {
                acc = scramble(acc, scramble_key);
            }
        }
        store_acc(hasher, acc, n);
    }

    /// The first 64 bytes of `bytes` (at least as many).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load64(bytes: &[u8]) -> __m512i {
        let stripe: &[u8; 64] = bytes[..64].try_into().expect("64 bytes");
        // SAFETY: `stripe` is 64 readable bytes, loaded unaligned.
        unsafe { _mm512_loadu_si512(stripe.as_ptr().cast()) }
    }

    /// [`super::copy_four_on`] with 512-bit registers.
    ///
    /// # Safety
    /// AVX-512F must be available; each `src` valid for reads of `len`
    /// bytes (a multiple of 64); each `dst` valid for writes of `len` bytes
    /// that nothing else accesses meanwhile, the four disjoint; the hashers
    /// all at the same stripe.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_four<const HASH: bool>(
        src: [*const u8; STREAMS],
        dst: [*mut u8; STREAMS],
        len: usize,
        hashers: &mut [ChunkHasher; STREAMS],
        streaming: bool,
    ) {
        let stripes = len / STRIPE;
        let streaming = streaming && dst.iter().all(|to| (*to as usize).is_multiple_of(64));
        let mut acc = [_mm512_setzero_si512(); STREAMS];
        for (acc, hasher) in acc.iter_mut().zip(hashers.iter()) {
            *acc = load_acc(hasher);
        }
        let (keys, scramble_key) = keys();
        let mut n = hashers[0].stripes;
        let mut s = 0;
        while s < stripes {
            if s + STRIPES_PER_BLOCK <= stripes && (!HASH || n.is_multiple_of(STRIPES_PER_BLOCK)) {
                each_stripe_of_a_block!(j => {
                    // SAFETY: (s + j + 1) * 64 <= (s + 16) * 64 <= len
                    // (checked just above), and each source is valid for
                    // reads and each destination for writes of len bytes
                    // (the caller's contract), 64-byte aligned when
                    // streaming.
                    unsafe {
                        four_stripes::<HASH>(&src, &dst, (s + j) * STRIPE, streaming, &mut acc, keys[j]);
                    }
                });
                s += STRIPES_PER_BLOCK;
                if HASH {
                    n += STRIPES_PER_BLOCK;
                    for acc in acc.iter_mut() {
                        *acc = scramble(*acc, scramble_key);
                    }
                }
                continue;
            }
            // SAFETY: (s + 1) * 64 <= len, and each source is valid for
            // reads and each destination for writes of len bytes (the
            // caller's contract), 64-byte aligned when streaming (checked
            // above).
            unsafe {
                four_stripes::<HASH>(
                    &src,
                    &dst,
                    s * STRIPE,
                    streaming,
                    &mut acc,
                    keys[n % STRIPES_PER_BLOCK],
                );
            }
            s += 1;
            if HASH {
                n += 1;
                if n.is_multiple_of(STRIPES_PER_BLOCK) {
                    for acc in acc.iter_mut() {
                        *acc = scramble(*acc, scramble_key);
                    }
                }
            }
        }
        if streaming {
            // Fence the weakly ordered stores before the bytes are read
            // back or published.
            _mm_sfence();
        }
        for (acc, hasher) in acc.iter().zip(hashers.iter_mut()) {
            store_acc(hasher, *acc, n);
        }
    }

    /// The stripe at `offset` of each of the four streams, their sources
    /// asked for first, then each copied as by [`one_stripe`] (`acc[i]`
    /// fed from stream `i`).
    ///
    /// # Safety
    /// As [`one_stripe`]'s, for each stream's source and destination.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn four_stripes<const HASH: bool>(
        src: &[*const u8; STREAMS],
        dst: &[*mut u8; STREAMS],
        offset: usize,
        streaming: bool,
        acc: &mut [__m512i; STREAMS],
        key: __m512i,
    ) {
        for from in src {
            // A hint only: reads nothing, never faults.
            _mm_prefetch::<_MM_HINT_T0>(from.wrapping_add(offset + PREFETCH_AHEAD).cast::<i8>());
        }
        for i in 0..STREAMS {
            // SAFETY: the caller's contract, for stream i.
            let data = unsafe {
                copy_stripe(
                    src[i].wrapping_add(offset),
                    dst[i].wrapping_add(offset),
                    streaming,
                )
            };
            if HASH {
                acc[i] = accumulate(acc[i], data, key);
            }
        }
    }

    /// A hasher's accumulators as one vector.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load_acc(hasher: &ChunkHasher) -> __m512i {
        // SAFETY: `acc` is 8 readable u64s, 64 bytes, loaded unaligned.
        unsafe { _mm512_loadu_si512(hasher.acc.as_ptr().cast()) }
    }

    /// Puts the vector back into `hasher`, `stripes` now consumed.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store_acc(hasher: &mut ChunkHasher, acc: __m512i, stripes: usize) {
        // SAFETY: `acc` is 8 writable u64s, 64 bytes, stored unaligned.
        unsafe { _mm512_storeu_si512(hasher.acc.as_mut_ptr().cast(), acc) };
        hasher.stripes = stripes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + i / 7) as u8).collect()
    }

    /// Where `buffer`'s first 64-byte aligned byte is (as a payload's start
    /// is; the streaming stores need it), or 0 where that cannot be told
    /// (miri may say so).
    fn line_start(buffer: &[u8]) -> usize {
        match buffer.as_ptr().align_offset(64) {
            usize::MAX => 0,
            at => at,
        }
    }

    #[test]
    fn copies_are_exact() {
        for len in [
            0,
            1,
            7,
            64,
            65,
            4095,
            4096,
            if cfg!(miri) { 5003 } else { 100_003 },
        ] {
            let src = bytes(len);
            let shared = SharedBytes::from(&src[..]);
            assert_eq!(shared.to_vec(), src);
            assert_eq!(
                shared.slice(len / 3, len / 2).to_vec(),
                &src[len / 3..len / 2]
            );
        }
    }

    /// Another thread writing the source while it is copied: the copy is
    /// made of atomic reads, so miri sees no data race (here the writer is
    /// atomic too; Python's are C code, outside Rust's model, which reads
    /// that are atomic on the hardware also tolerate).
    #[test]
    fn a_source_written_meanwhile_is_copied_without_a_race() {
        use std::sync::atomic::{AtomicU8, Ordering};
        let cells: Vec<AtomicU8> = (0..2048).map(|_| AtomicU8::new(1)).collect();
        // SAFETY: the cells live for the whole scope below, and are only
        // written through atomics meanwhile.
        let shared = unsafe { SharedBytes::from_raw(cells.as_ptr().cast::<u8>(), cells.len()) };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 2..5 {
                    for cell in &cells {
                        cell.store(round, Ordering::Relaxed);
                    }
                }
            });
            let mut out = vec![0u8; cells.len()];
            shared.copy_to(&mut out);
            assert!(
                out.iter().all(|&b| (1..5).contains(&b)),
                "a byte no one wrote"
            );
        });
    }

    /// Four runs copied side by side give each run's bytes and the hash
    /// each would get copied alone, streaming or not, hashing or not.
    #[test]
    fn four_streams_copy_and_hash_as_one_would() {
        let len = if cfg!(miri) { 64 * 20 } else { 64 * 1000 };
        let src = bytes(STREAMS * len + 64);
        let srcs: [SharedBytes<'_>; STREAMS] =
            std::array::from_fn(|i| SharedBytes::from(&src[i * len + 7..(i + 1) * len + 7]));
        for (kernel, streaming, hash) in Kernel::supported()
            .into_iter()
            .flat_map(|k| [(k, false), (k, true)])
            .flat_map(|(k, s)| [(k, s, false), (k, s, true)])
        {
            // 64-byte aligned, as payloads are: the streaming stores need 64.
            let mut buffer = vec![0u8; STREAMS * len + 64];
            let at = line_start(&buffer);
            let out = &mut buffer[at..at + STREAMS * len];
            let mut hashers: [ChunkHasher; STREAMS] = Default::default();
            for hasher in &mut hashers {
                // Mid-chunk, as a run may start: a few stripes fed before.
                for stripe in src[..3 * STRIPE].chunks_exact(STRIPE) {
                    hasher.stripe(stripe);
                }
            }
            let mut parts = out.chunks_exact_mut(len);
            let dsts: [&mut [u8]; STREAMS] =
                std::array::from_fn(|_| parts.next().expect("four runs"));
            copy_four_on(kernel, srcs, dsts, &mut hashers, streaming, hash);
            for (i, (part, hasher)) in out.chunks_exact(len).zip(&hashers).enumerate() {
                assert!(
                    part == &src[i * len + 7..(i + 1) * len + 7],
                    "{kernel:?}: run {i}"
                );
                let mut alone = ChunkHasher::default();
                for stripe in src[..3 * STRIPE].chunks_exact(STRIPE) {
                    alone.stripe(stripe);
                }
                if hash {
                    for stripe in part.chunks_exact(STRIPE) {
                        alone.stripe(stripe);
                    }
                }
                assert_eq!(hasher.acc, alone.acc, "{kernel:?}: run {i}, hash {hash}");
                assert_eq!(
                    hasher.stripes, alone.stripes,
                    "{kernel:?}: run {i}, hash {hash}"
                );
            }
        }
    }

    /// Stripes hashed where they lie (from any stripe of a block) feed the
    /// hasher as stripes fed one by one do.
    #[test]
    fn stripes_in_place_hash_as_one_by_one() {
        let data = bytes(64 * 100);
        for kernel in Kernel::supported() {
            for (start, end) in [
                (0, 100),
                (3, 40),
                (16, 17),
                (5, 5),
                (15, 99),
                (9, 17),
                (10, 17),
            ] {
                let mut vector = ChunkHasher::default();
                let mut scalar = ChunkHasher::default();
                for stripe in data[..start * STRIPE].chunks_exact(STRIPE) {
                    vector.stripe(stripe);
                    scalar.stripe(stripe);
                }
                hash_stripes_on(kernel, &data[start * STRIPE..end * STRIPE], &mut vector);
                for stripe in data[start * STRIPE..end * STRIPE].chunks_exact(STRIPE) {
                    scalar.stripe(stripe);
                }
                assert_eq!(vector, scalar, "{kernel:?}: stripes {start} to {end}");
            }
        }
    }

    #[test]
    fn the_fused_copy_hashes_what_it_copies() {
        for (kernel, streaming) in Kernel::supported()
            .into_iter()
            .flat_map(|k| [(k, false), (k, true)])
        {
            for len in [
                256usize,
                1024,
                4096,
                if cfg!(miri) {
                    2048 + 64 * 3
                } else {
                    65_536 + 64 * 3
                },
            ] {
                // A destination 64-byte aligned (a payload: the kernels' stores
                // stream), and 16 and 32 bytes past that (they do not).
                for shift in [0, 16, 32] {
                    let src = bytes(len);
                    let mut buffer = vec![0u8; len + 128];
                    let at = line_start(&buffer) + shift;
                    let dst = &mut buffer[at..at + len];
                    let mut hasher = ChunkHasher::default();
                    let fed = ChunkHasher::stripes_before_last(len) * STRIPE;
                    // In two calls, the second from mid-block, as a payload
                    // written in pieces is fed.
                    let first = (fed / STRIPE).min(5) * STRIPE;
                    for (from, to) in [(0, first), (first, fed)] {
                        copy_stripes_on::<true>(
                            kernel,
                            SharedBytes::from(&src[from..to]),
                            &mut dst[from..to],
                            &mut hasher,
                            streaming,
                        );
                    }
                    copy_bytes(SharedBytes::from(&src[fed..]), &mut dst[fed..]);
                    assert!(*dst == src, "{kernel:?}, shift {shift}");
                    assert_eq!(
                        hasher.finish(dst),
                        xxh3_64(&src),
                        "{kernel:?}: len {len}, shift {shift}"
                    );
                }
            }
        }
    }
}
