//! 2 x 2 max pooling with stride 2 of `f32` image planes on AVX2: eight windows per vector.
//!
//! The AVX2 form of [`max2_avx512`](super::max2_avx512), for CPUs without AVX-512: an output
//! row in runs of 8 windows, each window's four values taken out of its two input rows with a
//! shuffle and a lane permutation, its maximum by PyTorch's rule with the generic loops' chain
//! (so the same bits; tested against them).

use std::arch::x86_64::*;

use super::Pool2dGeometry;

/// `MASKS[8 - n..16 - n]` selects the first `n` lanes.
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// A mask of the first `n.min(8)` lanes, for `maskload` / `maskstore`.
#[inline(always)]
unsafe fn first(n: usize) -> __m256i {
    _mm256_loadu_si256(MASKS.as_ptr().add(8 - n.min(8)).cast())
}

/// Lanes 0, 2, 4, ... (`EVEN`) or 1, 3, 5, ... of the 16 floats `lo` then `hi`.
#[inline(always)]
unsafe fn pick<const EVEN: bool>(lo: __m256, hi: __m256) -> __m256 {
    let s = if EVEN { _mm256_shuffle_ps::<0x88>(lo, hi) } else { _mm256_shuffle_ps::<0xdd>(lo, hi) };
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0xd8>(_mm256_castps_pd(s)))
}

/// The windows of output row `oh` from `start` (`n` of them, at most 8): each one's maximum and
/// which of its four values that is (0 to 3, as a float), by [`max4`](super::max4)'s chain.
#[inline(always)]
unsafe fn windows(x: *const f32, w: usize, top: usize, n: usize) -> (__m256, __m256) {
    // (Masked-off lanes are not read: the second half may lie past the plane.)
    let (lo_mask, hi_mask) = (first(2 * n), first((2 * n).saturating_sub(8)));
    let t0 = _mm256_maskload_ps(x.wrapping_add(top), lo_mask);
    let t1 = _mm256_maskload_ps(x.wrapping_add(top + 8), hi_mask);
    let b0 = _mm256_maskload_ps(x.wrapping_add(top + w), lo_mask);
    let b1 = _mm256_maskload_ps(x.wrapping_add(top + w + 8), hi_mask);
    let mut max = pick::<true>(t0, t1);
    let mut at = _mm256_setzero_ps();
    for (k, v) in [(1.0, pick::<false>(t0, t1)), (2.0, pick::<true>(b0, b1)), (3.0, pick::<false>(b0, b1))] {
        // `takes`: larger, or NaN.
        let take = _mm256_or_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, max), _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        max = _mm256_blendv_ps(max, v, take);
        at = _mm256_blendv_ps(at, _mm256_set1_ps(k), take);
    }
    (max, at)
}

/// [`plane_max2_forward`](super::plane_max2_forward) of one plane.
///
/// # Safety
/// The CPU has AVX2; `x` holds the plane (`in_height * in_width`) and `y` its output
/// (`out_height * out_width`); `g` is 2 x 2 windows with stride 2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn forward(g: &Pool2dGeometry, x: &[f32], y: &mut [f32]) {
    assert!(x.len() >= g.in_height * g.in_width && y.len() >= g.out_height * g.out_width);
    debug_assert!(g.kernel == [2, 2] && g.stride == [2, 2]);
    let (w, ow) = (g.in_width, g.out_width);
    for oh in 0..g.out_height {
        for start in (0..ow).step_by(8) {
            let n = (ow - start).min(8);
            let (max, _) = windows(x.as_ptr(), w, 2 * oh * w + 2 * start, n);
            _mm256_maskstore_ps(y.as_mut_ptr().add(oh * ow + start), first(n), max);
        }
    }
}

/// [`plane_max2_backward`](super::plane_max2_backward) of one plane: each window's gradient to
/// its maximum, the three other values getting zero; added to `dx` when `ACC`, else written.
///
/// # Safety
/// As [`forward`]; `dy` holds the output plane's gradient, `dx` the plane's.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn backward<const ACC: bool>(g: &Pool2dGeometry, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let plane = g.in_height * g.in_width;
    assert!(x.len() >= plane && dx.len() >= plane && dy.len() >= g.out_height * g.out_width);
    debug_assert!(g.kernel == [2, 2] && g.stride == [2, 2]);
    let (w, ow) = (g.in_width, g.out_width);
    let dxp = dx.as_mut_ptr();
    for oh in 0..g.out_height {
        for start in (0..ow).step_by(8) {
            let n = (ow - start).min(8);
            let top = 2 * oh * w + 2 * start;
            let (_, at) = windows(x.as_ptr(), w, top, n);
            let grad = _mm256_maskload_ps(dy.as_ptr().add(oh * ow + start), first(n));
            // The gradient of each of the four values of the windows: `grad` where it is the
            // maximum, else +0.
            let g0 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(at, _mm256_set1_ps(0.0)), grad);
            let g1 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(at, _mm256_set1_ps(1.0)), grad);
            let g2 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(at, _mm256_set1_ps(2.0)), grad);
            let g3 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(at, _mm256_set1_ps(3.0)), grad);
            // Interleaved back into rows: `g0_0 g1_0 g0_1 g1_1 ...` and `g2_0 g3_0 ...`.
            let (top_lo, top_hi) = (_mm256_unpacklo_ps(g0, g1), _mm256_unpackhi_ps(g0, g1));
            let (bot_lo, bot_hi) = (_mm256_unpacklo_ps(g2, g3), _mm256_unpackhi_ps(g2, g3));
            let (lo_mask, hi_mask) = (first(2 * n), first((2 * n).saturating_sub(8)));
            for (offset, mask, values) in [
                (top, lo_mask, _mm256_permute2f128_ps::<0x20>(top_lo, top_hi)),
                (top + 8, hi_mask, _mm256_permute2f128_ps::<0x31>(top_lo, top_hi)),
                (top + w, lo_mask, _mm256_permute2f128_ps::<0x20>(bot_lo, bot_hi)),
                (top + w + 8, hi_mask, _mm256_permute2f128_ps::<0x31>(bot_lo, bot_hi)),
            ] {
                let p = dxp.wrapping_add(offset);
                let v = if ACC { _mm256_add_ps(_mm256_maskload_ps(p, mask), values) } else { values };
                _mm256_maskstore_ps(p, mask, v);
            }
        }
    }
}
