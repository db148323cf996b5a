//! Runs the elementwise and optimizer loops at the machine's full vector width.
//!
//! A default build targets baseline x86-64, whose vector instructions are SSE2 (4 floats). The
//! loops of the kernels and optimizers are written once, as plain generic Rust; [`dispatch`]
//! runs such a loop inside a function compiled for AVX2 and FMA (8 floats), or for AVX-512
//! (16 floats), chosen once at run time from what the CPU reports. The loops inline into those
//! functions and the compiler vectorises them for that width.
//!
//! Rust never fuses a multiply and an add into an FMA on its own, nor reorders a sum, so every
//! width computes the same bits: the choice changes speed, not results. `HDM_SIMD=scalar`,
//! `avx2` or `avx512` in the environment caps the level (for measurements and tests).
//!
//! # Streaming stores
//!
//! On two threads, a pass that rewrites a large buffer (Adam's update of a weight, BatchNorm's
//! output) often stores to cache lines the other thread has just read: its share of a product
//! read those weights, or its share of the previous layer wrote those values. Where the two
//! CPUs share a last-level cache such a store is cheap; where they sit on different cache dies
//! (a 2-vCPU virtual machine on an AMD EPYC, for one) each store waits about 50 ns for the other
//! die to give the line up, and Adam's update of a 26 MB weight takes 7 times as long.
//! Non-temporal stores (`copy_streaming`) do not wait, but on a shared cache they cost a few
//! per cent (the next reader finds the values in memory rather than in cache). So the first
//! pool of two threads or more measures both on a 2 MB buffer its worker has just read, and the
//! process uses streaming stores where plain ones are more than twice as slow.
//! `HDM_STREAMING=on` or `off` in the environment makes the choice instead. The values stored
//! are the same bits either way.

use std::sync::atomic::{AtomicU8, Ordering};

/// A vector instruction set the loops can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The build's baseline (SSE2 on x86-64).
    Baseline = 1,
    /// AVX2 and FMA.
    Avx2 = 2,
    /// AVX-512 (F, VL, BW, DQ) with AVX2 and FMA.
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The level [`dispatch`] uses: the best the CPU has, capped by `HDM_SIMD`.
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Baseline,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let l = detect();
            LEVEL.store(l as u8, Ordering::Relaxed);
            l
        }
    }
}

/// Caps the level at `cap` (or at what the CPU has, if lower), for the whole process: for
/// measurements that compare widths, and tests that compare their results.
pub fn set_level(cap: Level) {
    let best = detect_with_cap(Level::Avx512);
    LEVEL.store(cap.min(best) as u8, Ordering::Relaxed);
}

fn detect() -> Level {
    let cap = match std::env::var("HDM_SIMD").as_deref() {
        Ok("scalar") | Ok("baseline") => Level::Baseline,
        Ok("avx2") => Level::Avx2,
        _ => Level::Avx512,
    };
    detect_with_cap(cap)
}

fn detect_with_cap(cap: Level) -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let has = |l: Level| match l {
            Level::Baseline => true,
            Level::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            Level::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
        };
        [Level::Avx512, Level::Avx2, Level::Baseline]
            .into_iter()
            .find(|&l| l <= cap && has(l))
            .unwrap_or(Level::Baseline)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cap;
        Level::Baseline
    }
}

/// Runs `f` compiled for the best vector level of this CPU. `f` should be a closure calling
/// `#[inline(always)]` code, so that its loops are compiled inside the chosen level.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `level()` returns a level only when the CPU reports its features.
            Level::Avx512 => unsafe { avx512(f) },
            // SAFETY: as above.
            Level::Avx2 => unsafe { avx2(f) },
            Level::Baseline => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

static STREAMING: AtomicU8 = AtomicU8::new(0);

/// Whether the passes that rewrite large buffers on two threads (an elementwise optimizer's
/// update, BatchNorm's normalisation and its backward pass) store them with non-temporal stores.
/// Decided once per process, by [`HDM_STREAMING`](self#streaming-stores) or else by the first
/// pool of two threads or more, which measures it; off until then.
pub fn streaming_stores() -> bool {
    STREAMING.load(Ordering::Relaxed) == 2
}

/// Makes the choice of [`streaming_stores`] if nobody has yet: `HDM_STREAMING` (`on` or `off`)
/// if set, else `measure()`. A choice made meanwhile (by [`set_streaming`]) stands.
pub(crate) fn decide_streaming(measure: impl FnOnce() -> bool) {
    if STREAMING.load(Ordering::Relaxed) != 0 {
        return;
    }
    let on = match std::env::var("HDM_STREAMING").as_deref() {
        Ok("on") | Ok("1") => true,
        Ok("off") | Ok("0") => false,
        _ => measure(),
    };
    let _ = STREAMING.compare_exchange(0, 1 + on as u8, Ordering::Relaxed, Ordering::Relaxed);
}

/// Makes the choice of [`streaming_stores`] for the whole process, in place of the measurement
/// (for measurements that compare both, and tests that compare their results: both compute the
/// same bits).
pub fn set_streaming(on: bool) {
    STREAMING.store(1 + on as u8, Ordering::Relaxed);
}

/// Copies `src` into `dst` (of the same length) with non-temporal stores: each cache line of
/// `dst` is written to memory without first being read into this core's cache, and every copy of
/// it in other cores' caches is dropped. Call [`streaming_fence`] after the last copy, before
/// other threads may read `dst`.
///
/// This is for large tensors that the other thread of a two-thread pool has just read: a plain
/// store to a line another core holds waits for that core to give it up, which on a virtual
/// machine whose CPUs sit on different cache dies costs about 50 ns a line (7 times the whole
/// update of Adam on a 26 MB tensor, measured on a 2-vCPU AMD EPYC Zen 4); streaming stores do
/// not wait. The values are copied bit for bit: only where they are cached changes.
pub(crate) fn copy_streaming<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let bytes = std::mem::size_of_val(dst);
        let dst_ptr = dst.as_mut_ptr().cast::<u8>();
        let src_ptr = src.as_ptr().cast::<u8>();
        // Plain copies up to the first 16-byte boundary of `dst` and after the last one.
        let head = dst_ptr.align_offset(16).min(bytes);
        let body = (bytes - head) & !15;
        // SAFETY: `dst` and `src` are valid for `bytes` bytes each and do not overlap (one is
        // borrowed mutably); `dst_ptr + head` is 16-byte aligned, as `_mm_stream_si128` needs, and
        // every access stays within the first `head + body <= bytes` bytes or the plain tail.
        // SSE2 is part of x86-64.
        unsafe {
            std::ptr::copy_nonoverlapping(src_ptr, dst_ptr, head);
            let mut i = head;
            while i < head + body {
                let v = _mm_loadu_si128(src_ptr.add(i).cast::<__m128i>());
                _mm_stream_si128(dst_ptr.add(i).cast::<__m128i>(), v);
                i += 16;
            }
            std::ptr::copy_nonoverlapping(src_ptr.add(i), dst_ptr.add(i), bytes - i);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders the non-temporal stores of [`copy_streaming`] before this thread's later stores (and
/// so before whatever it uses to tell other threads it is done).
pub(crate) fn streaming_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}
