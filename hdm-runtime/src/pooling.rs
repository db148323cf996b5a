//! Max and average pooling over images (PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d` without
//! padding, floor mode).
//!
//! A batch is a row-major `[batch, channels * height * width]` matrix (NCHW). Every pass works
//! sample by sample, so it is split over threads by samples, each computed as on one thread.
//!
//! Max pooling takes each window's largest value, the first one on ties, and NaN if the window
//! holds one (PyTorch's rule: a value replaces the maximum when it is larger or NaN). The
//! backward pass finds each window's maximum again with the same rule (no indices are kept) and
//! routes the gradient to it; where windows overlap, a value receives the gradients of every
//! window it is the maximum of, in the order of the windows.

#[cfg(target_arch = "x86_64")]
use std::any::TypeId;

#[cfg(target_arch = "x86_64")]
use crate::simd::Level;

use crate::gemm::{strided_at, MatMut, MatRef, Pool, SharedRows, StridedRow};
use crate::Float;

#[cfg(target_arch = "x86_64")]
mod max2_avx2;
#[cfg(target_arch = "x86_64")]
mod max2_avx512;

/// The sizes of a pooling over images of one size.
///
/// ```
/// use hdm_runtime::pooling::Pool2dGeometry;
/// let g = Pool2dGeometry::new([32, 24, 24], 2, 2);
/// assert_eq!((g.out_height, g.out_width), (12, 12));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    pub channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along the height and the width.
    pub stride: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
}

impl Pool2dGeometry {
    /// Square `kernel x kernel` windows every `stride` positions over `input = [channels,
    /// height, width]`. Panics when the window is larger than the image or the stride is 0
    /// (checked while compiling a `#[network]`).
    pub const fn new(input: [usize; 3], kernel: usize, stride: usize) -> Self {
        let [c, h, w] = input;
        assert!(kernel > 0 && stride > 0 && kernel <= h && kernel <= w, "a pooling window must fit in its input");
        Pool2dGeometry {
            channels: c,
            in_height: h,
            in_width: w,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            out_height: (h - kernel) / stride + 1,
            out_width: (w - kernel) / stride + 1,
        }
    }

    /// Elements of one input image.
    pub const fn in_len(&self) -> usize {
        self.channels * self.in_height * self.in_width
    }

    /// Elements of one output image.
    pub const fn out_len(&self) -> usize {
        self.channels * self.out_height * self.out_width
    }
}

/// Runs `f` on blocks of samples of `out` (its rows), split over the pool when large
/// ([`Pool::split_ranges`]).
fn by_samples<T: Float>(
    pool: &Pool<T>,
    values: usize,
    out: MatMut<'_, T>,
    f: impl Fn(std::ops::Range<usize>, MatMut<'_, T>) + Sync,
) {
    let n = out.nrows();
    let shared = SharedRows::new(out);
    pool.split_ranges(n, values, |rows| {
        // SAFETY: parts take disjoint rows.
        let block = unsafe { shared.block(rows.start, rows.len()) };
        f(rows, block);
    });
}

/// PyTorch's rule for a window's maximum, in its scan order: a value replaces the maximum when
/// it is larger, or NaN.
#[inline(always)]
fn takes<T: Float>(v: T, max: T) -> bool {
    (v > max) | v.is_nan()
}

/// Where in `row` (from `row_strided`) the maximum of window `(oh, ow)` of the
/// image plane starting at element `base` is: its index as a column of the row.
#[inline(always)]
fn argmax<T: Float>(g: &Pool2dGeometry, row: StridedRow<'_, T>, base: usize, oh: usize, ow: usize) -> usize {
    let start = base + oh * g.stride[0] * g.in_width + ow * g.stride[1];
    let (mut best, mut max) = (start, T::neg_infinity());
    for i in 0..g.kernel[0] {
        for j in 0..g.kernel[1] {
            let at = start + i * g.in_width + j;
            let v = strided_at::<T, false>(row, at);
            if takes(v, max) {
                max = v;
                best = at;
            }
        }
    }
    best
}

fn check<T>(g: &Pool2dGeometry, x: &MatRef<'_, T>, y: &MatMut<'_, T>) {
    assert!(
        x.ncols() == g.in_len() && y.ncols() == g.out_len() && x.nrows() == y.nrows(),
        "pooling of [{}, {}] into [{}, {}] for {g:?}",
        x.nrows(),
        x.ncols(),
        y.nrows(),
        y.ncols()
    );
}

/// Outputs of one row of a plane taken at a time by the vectorised max pooling.
const CHUNK: usize = 16;

/// The maxima of outputs `ow0..ow0 + len` (`len <= CHUNK`) of output row `oh` of the image plane
/// `x` (contiguous), by PyTorch's rule in its scan order (window rows, then columns), and the
/// offset in the plane of each one's maximum. `S` is the stride along the width (0: `g`'s).
#[inline(always)]
fn chunk_max<T: Float, const S: usize>(
    g: &Pool2dGeometry,
    x: &[T],
    oh: usize,
    ow0: usize,
    len: usize,
) -> ([T; CHUNK], [u32; CHUNK]) {
    let sw = if S == 0 { g.stride[1] } else { S };
    let mut max = [T::neg_infinity(); CHUNK];
    let mut at = [0u32; CHUNK];
    for a in 0..g.kernel[0] {
        for b in 0..g.kernel[1] {
            let offset = (oh * g.stride[0] + a) * g.in_width + ow0 * sw + b;
            let src = &x[offset..offset + (len - 1) * sw + 1];
            for l in 0..len {
                let v = src[l * sw];
                let take = takes(v, max[l]);
                max[l] = if take { v } else { max[l] };
                at[l] = if take { (offset + l * sw) as u32 } else { at[l] };
            }
        }
    }
    (max, at)
}

/// The maximum of a 2 x 2 window `a b / c d` by PyTorch's rule in its scan order, and which of
/// the four it is (0 to 3). (`a` is the first value: it replaces the initial -infinity unless it
/// is -infinity itself, which changes nothing.)
#[inline(always)]
fn max4<T: Float>(a: T, b: T, c: T, d: T) -> (T, u8) {
    let (mut m, mut i) = (a, 0u8);
    for (k, v) in [(1u8, b), (2, c), (3, d)] {
        let take = takes(v, m);
        m = if take { v } else { m };
        i = if take { k } else { i };
    }
    (m, i)
}

/// 2 x 2 max pooling with stride 2 of one contiguous image plane.
#[inline(always)]
fn plane_max2_forward<T: Float>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    let (w, ow) = (g.in_width, g.out_width);
    for (oh, out) in y.chunks_exact_mut(ow).enumerate() {
        let (r0, r1) = (&x[2 * oh * w..2 * oh * w + 2 * ow], &x[(2 * oh + 1) * w..(2 * oh + 1) * w + 2 * ow]);
        for ((o, p), q) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = max4(p[0], p[1], q[0], q[1]).0;
        }
    }
}

/// The backward pass of [`plane_max2_forward`]: each window's gradient to its maximum, the
/// three other values of the window getting nothing (windows do not overlap); added to `dx` when
/// `ACC`, else written (the values no window covers, an odd last row or column, are left alone).
#[inline(always)]
fn plane_max2_backward<T: Float, const ACC: bool>(g: &Pool2dGeometry, x: &[T], dy: &[T], dx: &mut [T]) {
    // In two loops over windows, each of which vectorises: first which value of each window is
    // its maximum (kept as a float, 0 to 3, so that every lane is a float), then the four writes.
    const L: usize = 64;
    let (w, ow) = (g.in_width, g.out_width);
    let mut at = [T::zero(); L];
    for (oh, grad) in dy.chunks_exact(ow).enumerate() {
        let (r0, r1) = (&x[2 * oh * w..][..2 * ow], &x[(2 * oh + 1) * w..][..2 * ow]);
        let (d0, d1) = dx[2 * oh * w..(2 * oh + 2) * w].split_at_mut(w);
        for start in (0..ow).step_by(L) {
            let n = L.min(ow - start);
            let (p0, p1) = (&r0[2 * start..2 * (start + n)], &r1[2 * start..2 * (start + n)]);
            for ((a, p), q) in at[..n].iter_mut().zip(p0.chunks_exact(2)).zip(p1.chunks_exact(2)) {
                *a = max2_index(p[0], p[1], q[0], q[1]);
            }
            let (e0, e1) = (&mut d0[2 * start..2 * (start + n)], &mut d1[2 * start..2 * (start + n)]);
            let g = &grad[start..start + n];
            let pick = |k: f64, a: T, v: T| if a == T::of(k) { v } else { T::zero() };
            for (((e, f), &a), &v) in e0.chunks_exact_mut(2).zip(e1.chunks_exact_mut(2)).zip(&at[..n]).zip(g) {
                if ACC {
                    e[0] += pick(0.0, a, v);
                    e[1] += pick(1.0, a, v);
                    f[0] += pick(2.0, a, v);
                    f[1] += pick(3.0, a, v);
                } else {
                    e[0] = pick(0.0, a, v);
                    e[1] = pick(1.0, a, v);
                    f[0] = pick(2.0, a, v);
                    f[1] = pick(3.0, a, v);
                }
            }
        }
    }
}

/// `x` as `f32`s, when `T` is `f32`: then the 2 x 2 max pooling runs
/// [`max2_avx512`]'s sixteen windows at a time, or [`max2_avx2`]'s eight, at those levels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_f32<T: Float>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32`.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

/// [`as_f32`] for a slice written to.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_f32_mut<T: Float>(x: &mut [T]) -> Option<&mut [f32]> {
    as_f32(x)?;
    // SAFETY: `T` is `f32` (checked above).
    Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) })
}

/// 2 x 2 max pooling with stride 2 of one contiguous image plane: [`plane_max2_forward`], or
/// for `f32` its AVX-512 or AVX2 form (the same bits).
#[inline(always)]
fn max2_forward<T: Float>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(y32)) = (as_f32(x), as_f32_mut(y)) {
        match crate::simd::level() {
            // SAFETY: `level()` reports the CPU's features; the caller passes whole planes.
            Level::Avx512 => return unsafe { max2_avx512::forward(g, x32, y32) },
            // SAFETY: as above.
            Level::Avx2 => return unsafe { max2_avx2::forward(g, x32, y32) },
            Level::Baseline => {}
        }
    }
    plane_max2_forward(g, x, y)
}

/// The backward pass of [`max2_forward`]: [`plane_max2_backward`] or its vector forms.
#[inline(always)]
fn max2_backward<T: Float, const ACC: bool>(g: &Pool2dGeometry, x: &[T], dy: &[T], dx: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(dy32), Some(dx32)) = (as_f32(x), as_f32(dy), as_f32_mut(dx)) {
        match crate::simd::level() {
            // SAFETY: as in `max2_forward`.
            Level::Avx512 => return unsafe { max2_avx512::backward::<ACC>(g, x32, dy32, dx32) },
            // SAFETY: as above.
            Level::Avx2 => return unsafe { max2_avx2::backward::<ACC>(g, x32, dy32, dx32) },
            Level::Baseline => {}
        }
    }
    plane_max2_backward::<T, ACC>(g, x, dy, dx)
}

/// Which of `a b / c d` is the window's maximum by PyTorch's rule (see [`max4`]), as a float:
/// 0 to 3. The same select chain as [`max4`], on floats only, so that a loop over windows
/// vectorises.
#[inline(always)]
fn max2_index<T: Float>(a: T, b: T, c: T, d: T) -> T {
    let (mut m, mut i) = (a, T::zero());
    for (k, v) in [(1.0, b), (2.0, c), (3.0, d)] {
        let take = takes(v, m);
        m = if take { v } else { m };
        i = if take { T::of(k) } else { i };
    }
    i
}

/// Max pooling of one contiguous image plane into `y` (its output plane).
#[inline(always)]
fn plane_max_forward<T: Float, const S: usize>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    for oh in 0..g.out_height {
        let row = &mut y[oh * g.out_width..(oh + 1) * g.out_width];
        for (k, out) in row.chunks_mut(CHUNK).enumerate() {
            let (max, _) = chunk_max::<T, S>(g, x, oh, k * CHUNK, out.len());
            out.copy_from_slice(&max[..out.len()]);
        }
    }
}

/// Max pooling's backward pass on one contiguous image plane: `dx[argmax] += dy`.
#[inline(always)]
fn plane_max_backward<T: Float, const S: usize>(g: &Pool2dGeometry, x: &[T], dy: &[T], dx: &mut [T]) {
    for oh in 0..g.out_height {
        let grad = &dy[oh * g.out_width..(oh + 1) * g.out_width];
        for (k, gc) in grad.chunks(CHUNK).enumerate() {
            let (_, at) = chunk_max::<T, S>(g, x, oh, k * CHUNK, gc.len());
            for (&i, &v) in at.iter().zip(gc) {
                dx[i as usize] += v;
            }
        }
    }
}

/// Max pooling: `y` (`[batch, g.out_len()]`) from `x` (`[batch, g.in_len()]`).
pub fn max_forward<T: Float>(pool: &Pool<T>, g: Pool2dGeometry, x: MatRef<'_, T>, y: MatMut<'_, T>) {
    check(&g, &x, &y);
    let (plane, out_plane) = (g.in_height * g.in_width, g.out_height * g.out_width);
    by_samples(pool, x.nrows() * g.in_len(), y, |rows, mut yb| {
        for (i, r) in rows.enumerate() {
            let out = yb.row_mut(i);
            if x.strides().1 != 1 {
                max_forward_strided(&g, &x, r, out);
                continue;
            }
            let row = x.row(r);
            crate::simd::dispatch(
                #[inline(always)]
                || {
                    for c in 0..g.channels {
                        let (xc, yc) = (&row[c * plane..(c + 1) * plane], &mut out[c * out_plane..(c + 1) * out_plane]);
                        match (g.kernel, g.stride) {
                            ([2, 2], [2, 2]) => max2_forward(&g, xc, yc),
                            (_, [_, 1]) => plane_max_forward::<T, 1>(&g, xc, yc),
                            (_, [_, 2]) => plane_max_forward::<T, 2>(&g, xc, yc),
                            _ => plane_max_forward::<T, 0>(&g, xc, yc),
                        }
                    }
                },
            )
        }
    });
}

/// [`max_forward`] of row `r` of an `x` whose columns are not contiguous.
fn max_forward_strided<T: Float>(g: &Pool2dGeometry, x: &MatRef<'_, T>, r: usize, out: &mut [T]) {
    let row = x.row_strided(r);
    let plane = g.in_height * g.in_width;
    for c in 0..g.channels {
        for oh in 0..g.out_height {
            for ow in 0..g.out_width {
                let at = argmax(g, row, c * plane, oh, ow);
                out[(c * g.out_height + oh) * g.out_width + ow] = strided_at::<T, false>(row, at);
            }
        }
    }
}

/// Max pooling's backward pass: `dx (+)= ...` (added when `accumulate`), each window's gradient
/// `dy` routed to its maximum in `x` (the forward input).
pub fn max_backward<T: Float>(
    pool: &Pool<T>,
    g: Pool2dGeometry,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    dx: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(dy.ncols() == g.out_len() && dy.nrows() == x.nrows() && dx.ncols() == g.in_len());
    let (plane, out_plane) = (g.in_height * g.in_width, g.out_height * g.out_width);
    by_samples(pool, x.nrows() * g.in_len(), dx, |rows, mut db| {
        for (i, r) in rows.enumerate() {
            let out = db.row_mut(i);
            // 2 x 2 windows with stride 2 write every value they cover; only what they leave
            // (an odd last row or column) needs zeroing first.
            let tiled = g.kernel == [2, 2]
                && g.stride == [2, 2]
                && x.strides().1 == 1
                && g.in_height.is_multiple_of(2)
                && g.in_width.is_multiple_of(2);
            if !accumulate && !tiled {
                out.fill(T::zero());
            }
            let grad = dy.row(r);
            if x.strides().1 != 1 {
                let row = x.row_strided(r);
                for c in 0..g.channels {
                    for oh in 0..g.out_height {
                        for ow in 0..g.out_width {
                            out[argmax(&g, row, c * plane, oh, ow)] += grad[(c * g.out_height + oh) * g.out_width + ow];
                        }
                    }
                }
                continue;
            }
            let row = x.row(r);
            crate::simd::dispatch(
                #[inline(always)]
                || {
                    for c in 0..g.channels {
                        let xc = &row[c * plane..(c + 1) * plane];
                        let (gc, oc) =
                            (&grad[c * out_plane..(c + 1) * out_plane], &mut out[c * plane..(c + 1) * plane]);
                        match (g.kernel, g.stride) {
                            ([2, 2], [2, 2]) if accumulate => max2_backward::<T, true>(&g, xc, gc, oc),
                            // (`oc` was zeroed above unless the windows cover it all)
                            ([2, 2], [2, 2]) => max2_backward::<T, false>(&g, xc, gc, oc),
                            (_, [_, 1]) => plane_max_backward::<T, 1>(&g, xc, gc, oc),
                            (_, [_, 2]) => plane_max_backward::<T, 2>(&g, xc, gc, oc),
                            _ => plane_max_backward::<T, 0>(&g, xc, gc, oc),
                        }
                    }
                },
            )
        }
    });
}

/// Average pooling: `y` from `x`, each window's sum (in row order) divided by its size, as
/// PyTorch computes it.
pub fn avg_forward<T: Float>(pool: &Pool<T>, g: Pool2dGeometry, x: MatRef<'_, T>, y: MatMut<'_, T>) {
    if x.strides().1 == 1 {
        avg_forward_impl::<T, true>(pool, g, x, y)
    } else {
        avg_forward_impl::<T, false>(pool, g, x, y)
    }
}

fn avg_forward_impl<T: Float, const UNIT: bool>(pool: &Pool<T>, g: Pool2dGeometry, x: MatRef<'_, T>, y: MatMut<'_, T>) {
    check(&g, &x, &y);
    let size = T::of((g.kernel[0] * g.kernel[1]) as f64);
    let (plane, out_plane) = (g.in_height * g.in_width, g.out_height * g.out_width);
    by_samples(pool, x.nrows() * g.in_len(), y, |rows, mut yb| {
        for (i, r) in rows.enumerate() {
            let row = x.row_strided(r);
            let out = yb.row_mut(i);
            for c in 0..g.channels {
                let outc = &mut out[c * out_plane..(c + 1) * out_plane];
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let start = c * plane + oh * g.stride[0] * g.in_width + ow * g.stride[1];
                        let mut sum = T::zero();
                        for a in 0..g.kernel[0] {
                            for b in 0..g.kernel[1] {
                                sum += strided_at::<T, UNIT>(row, start + a * g.in_width + b);
                            }
                        }
                        outc[oh * g.out_width + ow] = sum / size;
                    }
                }
            }
        }
    });
}

/// Average pooling's backward pass: `dx (+)= ...`, each window's gradient divided by its size
/// and added to each of its values.
pub fn avg_backward<T: Float>(
    pool: &Pool<T>,
    g: Pool2dGeometry,
    dy: MatRef<'_, T>,
    dx: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(dy.ncols() == g.out_len() && dy.nrows() == dx.nrows() && dx.ncols() == g.in_len());
    let size = T::of((g.kernel[0] * g.kernel[1]) as f64);
    let (plane, out_plane) = (g.in_height * g.in_width, g.out_height * g.out_width);
    by_samples(pool, dx.nrows() * g.in_len(), dx, |rows, mut db| {
        for (i, r) in rows.enumerate() {
            let out = db.row_mut(i);
            if !accumulate {
                out.fill(T::zero());
            }
            let grad = dy.row(r);
            for c in 0..g.channels {
                let (gc, oc) = (&grad[c * out_plane..(c + 1) * out_plane], &mut out[c * plane..(c + 1) * plane]);
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let v = gc[oh * g.out_width + ow] / size;
                        let start = oh * g.stride[0] * g.in_width + ow * g.stride[1];
                        for a in 0..g.kernel[0] {
                            for b in 0..g.kernel[1] {
                                oc[start + a * g.in_width + b] += v;
                            }
                        }
                    }
                }
            }
        }
    });
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Values that make the window rules matter: ties, signed zeros, infinities, NaN (two
    /// payloads, so that which NaN a window takes shows).
    fn tricky(rng: &mut Rng) -> f32 {
        match rng.below(12) {
            0 => f32::NAN,
            1 => f32::from_bits(0x7fc0_1234),
            2 => 0.0,
            3 => -0.0,
            4 => f32::NEG_INFINITY,
            5 => f32::INFINITY,
            6..=8 => rng.below(3) as f32,
            _ => rng.normal() as f32,
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    type Forward = unsafe fn(&Pool2dGeometry, &[f32], &mut [f32]);
    type Backward = unsafe fn(&Pool2dGeometry, &[f32], &[f32], &mut [f32]);

    /// Checks a vector form of the 2 x 2 max pooling (forward, backward written, backward
    /// added) against the generic loops, bit for bit.
    ///
    /// # Safety
    /// The CPU runs the kernels given.
    unsafe fn same_bits_as_the_loops(name: &str, forward: Forward, written: Backward, added: Backward) {
        let mut rng = Rng::new(11);
        // Planes with output rows of 1 to 20 windows (one and two rows per vector, full runs
        // and a partial one), odd heights and widths (a row or column no window covers), an odd
        // number of output rows (the last one alone in its vector).
        for h in 2..=13 {
            for w in (2..=41).filter(|w| w % 3 != 1 || *w < 10) {
                let g = Pool2dGeometry::new([1, h, w], 2, 2);
                let x: Vec<f32> = (0..h * w).map(|_| tricky(&mut rng)).collect();
                let dy: Vec<f32> = (0..g.out_len()).map(|_| tricky(&mut rng)).collect();
                // The kernel gets three values more than the plane on each side it writes, the
                // loops none: it must not touch them.
                let (mut y, mut y_ref) = (vec![7.0f32; g.out_len() + 3], vec![7.0f32; g.out_len() + 3]);
                forward(&g, &x, &mut y);
                plane_max2_forward(&g, &x, &mut y_ref[..g.out_len()]);
                assert_eq!(bits(&y), bits(&y_ref), "{name}: forward, {h} x {w}");
                let before: Vec<f32> = (0..h * w + 3).map(|_| rng.normal() as f32).collect();
                let (mut dx, mut dx_ref) = (before.clone(), before.clone());
                written(&g, &x, &dy, &mut dx);
                plane_max2_backward::<f32, false>(&g, &x, &dy, &mut dx_ref[..h * w]);
                assert_eq!(bits(&dx), bits(&dx_ref), "{name}: backward, {h} x {w}");
                let (mut dx, mut dx_ref) = (before.clone(), before);
                added(&g, &x, &dy, &mut dx);
                plane_max2_backward::<f32, true>(&g, &x, &dy, &mut dx_ref[..h * w]);
                assert_eq!(bits(&dx), bits(&dx_ref), "{name}: accumulated backward, {h} x {w}");
            }
        }
    }

    #[test]
    fn vector_max2_pooling_has_the_bits_of_the_generic_loops() {
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe {
                same_bits_as_the_loops(
                    "avx2",
                    max2_avx2::forward,
                    max2_avx2::backward::<false>,
                    max2_avx2::backward::<true>,
                )
            };
        } else {
            eprintln!("no AVX2 on this CPU: the AVX2 pooling kernel is not tested here");
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F.
            unsafe {
                same_bits_as_the_loops(
                    "avx512",
                    max2_avx512::forward,
                    max2_avx512::backward::<false>,
                    max2_avx512::backward::<true>,
                )
            };
        } else {
            eprintln!("no AVX-512 on this CPU: the AVX-512 pooling kernel is not tested here");
        }
    }
}
