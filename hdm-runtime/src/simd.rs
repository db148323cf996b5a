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
