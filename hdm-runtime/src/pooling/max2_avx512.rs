//! 2 x 2 max pooling with stride 2 of `f32` image planes on AVX-512: sixteen windows per vector.
//!
//! The generic loops ([`plane_max2_forward`](super::plane_max2_forward) and
//! [`plane_max2_backward`](super::plane_max2_backward)) vectorise along an output row, and the
//! rows of small images are short: 14 windows for a 28 x 28 plane, 7 for 14 x 14, fewer than one
//! vector, so the compiler's loops ran them one window at a time. Here a vector holds up to 16
//! windows: those of one output row (in runs of 16) when the row has more than 8, else those of
//! two output rows (lanes 0-7 and 8-15). A window's four values come out of the two rows of
//! input under it with one two-register permutation each, its maximum by PyTorch's rule in its
//! scan order (`a b / c d`: a value replaces the maximum when larger, or NaN) with the same
//! compare-and-select chain as [`max4`](super::max4); so the outputs, and which value each
//! window's gradient goes to, are the generic loops' bit for bit (tested against them, NaN,
//! ties and signed zeros included).

use std::arch::x86_64::*;

use super::Pool2dGeometry;

/// Lane `l` takes element `2l` of a register pair: the windows' left values.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
/// Lane `l` takes element `2l + 1`: the right values.
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
/// Interleaves lanes 0-7 of two registers (`a0 b0 a1 b1 ...`): the inverse of `EVEN` / `ODD`
/// for the first sixteen elements.
const LOW: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
/// The same for lanes 8-15: the next sixteen elements.
const HIGH: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

/// A mask of the first `n` lanes (all when `n >= 16`).
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Up to sixteen windows in one vector. Their top-left values are elements `2l` of the 32
/// floats made of the 16 at `lo` (in the plane, `lo_mask` of them real) and the 16 at `hi`
/// (`hi_mask`); the bottom-left ones a plane row (`in_width`) further. `lanes` are the real
/// windows; their outputs (and output gradients) are at `out` in the output plane, one after
/// the other (`packed`: the lanes are not the first ones, lanes 8-15 follow lanes 0-7 there).
#[derive(Clone, Copy)]
struct Group {
    lo: usize,
    lo_mask: __mmask16,
    hi: usize,
    hi_mask: __mmask16,
    lanes: __mmask16,
    out: usize,
    packed: bool,
}

/// How many groups [`group`] makes of a plane of `g`.
#[inline(always)]
fn group_count(g: &Pool2dGeometry) -> usize {
    if g.out_width > 8 {
        g.out_height * g.out_width.div_ceil(16)
    } else {
        g.out_height.div_ceil(2)
    }
}

/// Group `i` of a plane of `g`: each output row in runs of 16 windows when it has more than 8,
/// else output rows two at a time. (Plain code: the vector functions loop over `i` rather than
/// take a closure, which would not inherit their target features.)
#[inline(always)]
fn group(g: &Pool2dGeometry, i: usize) -> Group {
    let (w, ow) = (g.in_width, g.out_width);
    if ow > 8 {
        let runs = ow.div_ceil(16);
        let (oh, start) = (i / runs, i % runs * 16);
        let n = (ow - start).min(16);
        let lo = 2 * oh * w + 2 * start;
        Group {
            lo,
            lo_mask: first(2 * n),
            hi: lo + 16,
            hi_mask: first((2 * n).saturating_sub(16)),
            lanes: first(n),
            out: oh * ow + start,
            packed: false,
        }
    } else {
        let oh = 2 * i;
        let two = oh + 1 < g.out_height;
        Group {
            lo: 2 * oh * w,
            lo_mask: first(2 * ow),
            hi: 2 * (oh + 1) * w,
            hi_mask: if two { first(2 * ow) } else { 0 },
            lanes: first(ow) | if two { first(ow) << 8 } else { 0 },
            out: oh * ow,
            packed: true,
        }
    }
}

/// Each lane's window maximum and which of its four values that is (0 to 3), by
/// [`max4`](super::max4)'s chain.
#[inline(always)]
unsafe fn windows(x: *const f32, w: usize, g: Group) -> (__m512, __m512i) {
    // (Masked-off lanes are not read: `hi` may lie past the plane when `hi_mask` is 0.)
    let (even, odd) = (_mm512_loadu_si512(EVEN.as_ptr().cast()), _mm512_loadu_si512(ODD.as_ptr().cast()));
    let t0 = _mm512_maskz_loadu_ps(g.lo_mask, x.wrapping_add(g.lo));
    let t1 = _mm512_maskz_loadu_ps(g.hi_mask, x.wrapping_add(g.hi));
    let b0 = _mm512_maskz_loadu_ps(g.lo_mask, x.wrapping_add(g.lo + w));
    let b1 = _mm512_maskz_loadu_ps(g.hi_mask, x.wrapping_add(g.hi + w));
    let a = _mm512_permutex2var_ps(t0, even, t1);
    let mut max = a;
    let mut at = _mm512_setzero_si512();
    for (k, v) in [
        (1, _mm512_permutex2var_ps(t0, odd, t1)),
        (2, _mm512_permutex2var_ps(b0, even, b1)),
        (3, _mm512_permutex2var_ps(b0, odd, b1)),
    ] {
        // `takes`: larger, or NaN.
        let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, max) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        max = _mm512_mask_mov_ps(max, take, v);
        at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(k));
    }
    (max, at)
}

/// [`plane_max2_forward`](super::plane_max2_forward) of one plane.
///
/// # Safety
/// The CPU has AVX-512 F; `x` holds the plane (`in_height * in_width`) and `y` its output
/// (`out_height * out_width`); `g` is 2 x 2 windows with stride 2.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn forward(g: &Pool2dGeometry, x: &[f32], y: &mut [f32]) {
    assert!(x.len() >= g.in_height * g.in_width && y.len() >= g.out_height * g.out_width);
    debug_assert!(g.kernel == [2, 2] && g.stride == [2, 2]);
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    for i in 0..group_count(g) {
        let grp = group(g, i);
        let (max, _) = windows(xp, g.in_width, grp);
        if grp.packed {
            let n = grp.lanes.count_ones() as usize;
            _mm512_mask_storeu_ps(yp.add(grp.out), first(n), _mm512_maskz_compress_ps(grp.lanes, max));
        } else {
            _mm512_mask_storeu_ps(yp.add(grp.out), grp.lanes, max);
        }
    }
}

/// [`plane_max2_backward`](super::plane_max2_backward) of one plane: each window's gradient to
/// its maximum, the three other values getting zero; added to `dx` when `ACC`, else written.
///
/// # Safety
/// As [`forward`]; `dy` holds the output plane's gradient, `dx` the plane's.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn backward<const ACC: bool>(g: &Pool2dGeometry, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let plane = g.in_height * g.in_width;
    assert!(x.len() >= plane && dx.len() >= plane && dy.len() >= g.out_height * g.out_width);
    debug_assert!(g.kernel == [2, 2] && g.stride == [2, 2]);
    let (low, high) = (_mm512_loadu_si512(LOW.as_ptr().cast()), _mm512_loadu_si512(HIGH.as_ptr().cast()));
    let (xp, dyp, dxp) = (x.as_ptr(), dy.as_ptr(), dx.as_mut_ptr());
    let w = g.in_width;
    for i in 0..group_count(g) {
        let grp = group(g, i);
        let (_, at) = windows(xp, w, grp);
        let grad = if grp.packed {
            let n = grp.lanes.count_ones() as usize;
            _mm512_maskz_expand_ps(grp.lanes, _mm512_maskz_loadu_ps(first(n), dyp.add(grp.out)))
        } else {
            _mm512_maskz_loadu_ps(grp.lanes, dyp.add(grp.out))
        };
        // The gradient of each of the four values of the windows: `grad` where it is the maximum.
        let g0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(0)), grad);
        let g1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(1)), grad);
        let g2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(2)), grad);
        let g3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(3)), grad);
        for (offset, mask, values) in [
            (grp.lo, grp.lo_mask, _mm512_permutex2var_ps(g0, low, g1)),
            (grp.hi, grp.hi_mask, _mm512_permutex2var_ps(g0, high, g1)),
            (grp.lo + w, grp.lo_mask, _mm512_permutex2var_ps(g2, low, g3)),
            (grp.hi + w, grp.hi_mask, _mm512_permutex2var_ps(g2, high, g3)),
        ] {
            let p = dxp.wrapping_add(offset);
            let v = if ACC { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), values) } else { values };
            _mm512_mask_storeu_ps(p, mask, v);
        }
    }
}
