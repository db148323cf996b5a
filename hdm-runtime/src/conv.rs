//! 2-D convolutions and transposed convolutions, lowered to GEMM on the vendored kernels.
//!
//! A batch of images is a row-major `[batch, channels * height * width]` matrix: each row one
//! image in PyTorch's NCHW order. A convolution of [`Conv2dGeometry`] `g` maps rows of
//! `g.in_len()` to rows of `g.out_len()`; its weight is `[out_channels, in_channels, kh, kw]`
//! row-major, that is an `out_channels x patch_len` matrix `W`.
//!
//! Three primitives do all the work, on groups of `g.group()` samples at a time (so that each
//! product is wide enough to run at the kernel's speed even on small images):
//!
//! | primitive | computes | how, per group |
//! |---|---|---|
//! | forward | `y = conv(x, W)` | `P = im2col(x)` (`patch_len x (group * positions)`), `Z = W P`, `Z` scattered into `y` |
//! | data gradient | `dx = conv_transpose(dy, W)` | `D = dy` side by side, `dP = W^T D`, `col2im(dP)` added into `dx`; or, stride 1 and as wide out as in, the forward primitive of the [flipped](Conv2dGeometry::flipped) convolution on `dy` |
//! | weight gradient | `dW = sum over samples of dy im2col(x)^T` | `dW += D P^T`, group after group |
//!
//! A `Conv2d` layer runs them as they are ([`forward`], [`backward`]). A `ConvTranspose2d` is the
//! data gradient of the convolution it transposes, whose weight has exactly the transposed
//! layer's layout (`[in, out, k, k]`): its forward pass is that convolution's data gradient, its
//! input gradient that convolution's forward pass, and its weight gradient that convolution's
//! weight gradient with the roles of input and output swapped ([`transposed_forward`],
//! [`transposed_backward`]).
//!
//! # Threads and bits
//!
//! Work on samples (forward, data gradient) is split by whole groups, each computed as on one
//! thread. The weight gradient, a sum over samples, is split by blocks of columns of `dW` (whole
//! kernel tiles), each thread summing every group in the same order. So results do not depend on
//! the number of threads. Each thread packs its patches in its workspace's scratch memory
//! ([`Workspace::with_scratch`]), sized by [`Conv2dGeometry::scratch_len`] once for all (the
//! trainer reserves it); nothing allocates in a step.

use crate::gemm::{
    gemm_patches_with, gemm_with, kernel_info, MatMut, MatRef, PatchMatrix, Pool, SharedCols, SharedRows, Workspace,
};
use crate::kernels::Activation;
use crate::Float;

/// Columns a product over one group aims for (samples times output positions).
const GROUP_COLUMNS: usize = 256;
/// At most this many elements of scratch memory per thread for one group's patches and output
/// (2 MB of f32: two samples of LeNet's second convolution, which measured faster than one).
const GROUP_SCRATCH: usize = 1 << 19;
/// Up to this batch, a convolution's weight and input gradients run side by side on two threads
/// rather than each split over both. Measured on two threads (three alternating rounds): 5-15%
/// faster for LeNet at batch 64 and 128 and for the DCGAN discriminator at 64; 7% slower for the
/// discriminator at 128, whose two jobs are less even.
const SIDE_BY_SIDE_MAX_BATCH: usize = 64;
/// Below this many multiply-adds per thread a convolution's work is not split.
const MIN_WORK_PER_THREAD: usize = 1 << 18;

/// The sizes of a 2-D convolution over images of one size: PyTorch's `nn.Conv2d` with zero
/// padding, groups 1 and dilation 1.
///
/// ```
/// use hdm_runtime::conv::Conv2dGeometry;
/// // LeNet's second convolution: 32 channels of 12 x 12 to 64 channels, 5 x 5 kernel, padding 2
/// let g = Conv2dGeometry::new([32, 12, 12], 64, 5, 1, 2);
/// assert_eq!((g.out_height, g.out_width), (12, 12));
/// assert_eq!(g.patch_len(), 32 * 5 * 5);
/// // A transposed convolution 7 x 7 -> 14 x 14 is the data gradient of a 14 x 14 -> 7 x 7 one
/// let t = Conv2dGeometry::transposed([128, 7, 7], 64, 4, 2, 1, 0);
/// assert_eq!((t.in_channels, t.in_height, t.out_channels, t.out_height), (64, 14, 128, 7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub in_channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    pub out_channels: usize,
    pub out_height: usize,
    pub out_width: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along the height and the width.
    pub stride: [usize; 2],
    /// Zero padding at the top and bottom, and at the left and right.
    pub padding: [usize; 2],
}

impl Conv2dGeometry {
    /// A convolution of `input = [channels, height, width]` images to `out_channels`, with a
    /// square kernel, stride and padding. Panics when the kernel is larger than the padded input
    /// or the stride is 0 (checked while compiling a `#[network]`).
    pub const fn new(input: [usize; 3], out_channels: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        let [c, h, w] = input;
        assert!(stride > 0 && kernel > 0, "a convolution needs a positive kernel and stride");
        assert!(kernel <= h + 2 * padding && kernel <= w + 2 * padding, "the kernel is larger than the padded input");
        Conv2dGeometry {
            in_channels: c,
            in_height: h,
            in_width: w,
            out_channels,
            out_height: (h + 2 * padding - kernel) / stride + 1,
            out_width: (w + 2 * padding - kernel) / stride + 1,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
        }
    }

    /// The convolution that a `ConvTranspose2d(in_channels, out_channels, kernel, stride,
    /// padding, output_padding)` on `input = [in_channels, height, width]` transposes: from its
    /// output, `[out_channels, (height - 1) stride - 2 padding + kernel + output_padding, ...]`,
    /// to its input.
    pub const fn transposed(
        input: [usize; 3],
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Self {
        let [c, h, w] = input;
        assert!(output_padding < stride, "the output padding must be smaller than the stride");
        let oh = (h - 1) * stride + kernel + output_padding - 2 * padding;
        let ow = (w - 1) * stride + kernel + output_padding - 2 * padding;
        let g = Self::new([out_channels, oh, ow], c, kernel, stride, padding);
        assert!(g.out_height == h && g.out_width == w);
        g
    }

    /// Elements of one input image.
    pub const fn in_len(&self) -> usize {
        self.in_channels * self.in_height * self.in_width
    }

    /// Elements of one output image.
    pub const fn out_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    /// Output positions per channel.
    pub const fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Rows of the patch matrix: `in_channels * kh * kw`, the columns of `W`.
    pub const fn patch_len(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Elements of the weight.
    pub const fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    /// Whether every patch row of a plane is the input plane shifted by a constant (stride 1,
    /// output as wide as the input): one copy per row, its wrapped columns zeroed.
    pub(crate) const fn shifts(&self) -> bool {
        self.stride[0] == 1 && self.stride[1] == 1 && self.out_width == self.in_width
    }

    /// A 1 x 1 convolution with stride 1 and no padding: its patch matrix is its input, so one
    /// sample's product reads the input and writes the input gradient in place (no im2col).
    pub const fn pointwise(&self) -> bool {
        self.kernel[0] == 1
            && self.kernel[1] == 1
            && self.stride[0] == 1
            && self.stride[1] == 1
            && self.padding[0] == 0
            && self.padding[1] == 0
    }

    /// The convolution whose forward pass is this one's data gradient, for a stride-1
    /// convolution with padding below its kernel, as wide out as in (`"same"` padding, say): the
    /// output gradient `dy` padded by `kernel - 1 - padding`, convolved with the weight's channels
    /// swapped and its kernel turned by 180 degrees,
    /// `dx[c, y, x] = sum over (o, i, j) of W[o, c, kh-1-i, kw-1-j] dy_pad[o, y + i, x + j]`.
    /// Its product (`in_channels x out_channels kh kw` by the patches of `dy`, packed straight from
    /// the images) replaces `W^T D` (`in_channels kh kw x out_channels`, a shallow product whose
    /// tall output `col2im` then adds up); the same multiply-adds. `None` where the patches of
    /// `dy` would not be shifted copies of its planes (strided, or narrower output).
    pub const fn flipped(&self) -> Option<Conv2dGeometry> {
        let ([kh, kw], [ph, pw]) = (self.kernel, self.padding);
        if self.stride[0] != 1
            || self.stride[1] != 1
            || ph >= kh
            || pw >= kw
            || self.out_width != self.in_width
            || self.pointwise()
        {
            return None;
        }
        Some(Conv2dGeometry {
            in_channels: self.out_channels,
            in_height: self.out_height,
            in_width: self.out_width,
            out_channels: self.in_channels,
            out_height: self.in_height,
            out_width: self.in_width,
            kernel: self.kernel,
            stride: [1, 1],
            padding: [kh - 1 - ph, kw - 1 - pw],
        })
    }

    /// Samples per product: enough for about 256 columns, within a bound on scratch memory; one
    /// for a pointwise convolution of 128 positions or more (see [`pointwise`](Self::pointwise)).
    pub const fn group(&self) -> usize {
        let p = self.positions();
        if self.pointwise() && 2 * p >= GROUP_COLUMNS {
            return 1;
        }
        let per_sample = p * (self.patch_len() + self.out_channels);
        let mut g = GROUP_COLUMNS.div_ceil(p);
        if g * per_sample > GROUP_SCRATCH {
            g = GROUP_SCRATCH / per_sample;
        }
        if g == 0 {
            1
        } else {
            g
        }
    }

    /// Scratch elements one thread needs: a group's patches and products, and, for Path-SGD's
    /// passes over the squared weights (one sample), the squared weight besides.
    pub const fn scratch_len(&self) -> usize {
        let per_sample = self.positions() * (self.patch_len() + self.out_channels);
        let training = self.group() * per_sample;
        let path = self.weight_len() + per_sample;
        let mut len = if training > path { training } else { path };
        // The data gradient through the flipped convolution: the flipped weight, and a group's
        // patches (when not packed straight from the images) and products.
        if let Some(f) = self.flipped() {
            let flip = self.weight_len() + self.group() * f.positions() * (f.patch_len() + f.out_channels);
            if flip > len {
                len = flip;
            }
        }
        len
    }
}

/// What a forward product's output becomes.
#[derive(Clone, Copy)]
enum Epilogue<'a, T, A> {
    /// `y = act(z + bias)` (`bias` empty for none), keeping `z + bias` in the second output.
    Act { bias: &'a [T], act: A },
    /// `y = z`, or `y += z`.
    Store { accumulate: bool },
}

/// The samples of group `i` of `n` samples in groups of `size`: `(first, count)`.
fn group_range(i: usize, size: usize, n: usize) -> (usize, usize) {
    let first = i * size;
    (first, size.min(n - first))
}

/// How many threads share `groups` groups of `work` multiply-adds each, and the groups of each.
fn parts<T: Float>(pool: &Pool<T>, groups: usize, work: usize) -> (usize, usize) {
    let parts = pool.threads().min(groups).min((groups * work / MIN_WORK_PER_THREAD).max(1)).max(1);
    (parts, groups.div_ceil(parts))
}

/// The range of output positions along one axis that read inside the input: `o` with
/// `0 <= o * stride + k - pad < len`, for kernel offset `k`.
#[inline(always)]
fn inside(len: usize, out: usize, stride: usize, pad: usize, k: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(k).div_ceil(stride).min(out);
    let hi = if len + pad > k { (len + pad - k).div_ceil(stride).min(out) } else { 0 };
    (lo, hi.max(lo))
}

/// Where patch row `(i, j)` reads its plane: the output rows `oh_lo..oh_hi` and columns
/// `lo..hi` whose input position lies inside the image (see [`inside`]). The same for every
/// channel and sample, so computed once per kernel offset, not per row of each sample.
#[derive(Clone, Copy)]
struct Window {
    i: usize,
    j: usize,
    oh_lo: usize,
    oh_hi: usize,
    lo: usize,
    hi: usize,
}

impl Window {
    #[inline(always)]
    fn new(g: &Conv2dGeometry, i: usize, j: usize) -> Self {
        let (oh_lo, oh_hi) = inside(g.in_height, g.out_height, g.stride[0], g.padding[0], i);
        let (lo, hi) = inside(g.in_width, g.out_width, g.stride[1], g.padding[1], j);
        Window { i, j, oh_lo, oh_hi, lo, hi }
    }

    /// Where each output position reads in its input plane (`iy * in_width + ix`), `u32::MAX`
    /// in the padding: `from[oh * out_width + ow]`.
    #[inline(always)]
    fn sources(&self, g: &Conv2dGeometry, from: &mut [u32]) {
        let ow_n = g.out_width;
        for (oh, row) in from.chunks_exact_mut(ow_n).enumerate() {
            row.fill(u32::MAX);
            if oh < self.oh_lo || oh >= self.oh_hi {
                continue;
            }
            let (ih, iw) = self.source(g, oh);
            let start = ih * g.in_width + iw;
            for (k, f) in row[self.lo..self.hi].iter_mut().enumerate() {
                *f = (start + k * g.stride[1]) as u32;
            }
        }
    }

    /// The input row read by output row `oh`, and the first input column read in it.
    #[inline(always)]
    fn source(&self, g: &Conv2dGeometry, oh: usize) -> (usize, usize) {
        (oh * g.stride[0] + self.i - g.padding[0], self.lo * g.stride[1] + self.j - g.padding[1])
    }
}

/// One row of the patch matrix for one sample: `dst[(oh, ow)] = plane[oh * sh + i - ph, ow * sw +
/// j - pw]` (0 outside the image), `plane` the sample's input channel, contiguous.
#[inline(always)]
fn patch_row<T: Float>(g: &Conv2dGeometry, plane: &[T], w: &Window, dst: &mut [T]) {
    let (ow_n, iw_n) = (g.out_width, g.in_width);
    let sw = g.stride[1];
    let Window { oh_lo, oh_hi, lo, hi, .. } = *w;
    dst[..oh_lo * ow_n].fill(T::zero());
    dst[oh_hi * ow_n..].fill(T::zero());
    if g.shifts() {
        // The rows to read are the plane shifted by a constant: one copy; the columns that
        // wrapped around from the neighbouring rows are zeroed below.
        let (a, b) = (oh_lo * ow_n + lo, (oh_hi * ow_n).saturating_sub(ow_n - hi).max(oh_lo * ow_n + lo));
        let (ih, iw) = w.source(g, oh_lo);
        let from = ih * iw_n + iw;
        dst[a..b].copy_from_slice(&plane[from..from + (b - a)]);
    } else {
        for oh in oh_lo..oh_hi {
            let seg = &mut dst[oh * ow_n + lo..oh * ow_n + hi];
            let (ih, iw) = w.source(g, oh);
            let src = &plane[ih * iw_n + iw..(ih + 1) * iw_n];
            // (Loops, not `copy_from_slice`: rows are short, and a library call per row costs
            // more than the copy; `* one` keeps the compiler from making it one.)
            if sw == 1 {
                for (v, &s) in seg.iter_mut().zip(src) {
                    *v = s * T::one();
                }
            } else {
                for (v, s) in seg.iter_mut().zip(src.chunks(sw)) {
                    *v = s[0];
                }
            }
        }
    }
    // The padding columns of every row that reads the plane.
    for oh in oh_lo..oh_hi {
        let row = &mut dst[oh * ow_n..(oh + 1) * ow_n];
        row[..lo].fill(T::zero());
        row[hi..].fill(T::zero());
    }
}

/// The largest plane (output positions) whose patch rows [`im2col`] gathers through a table on
/// the stack (4 KB), when they are not shifted copies of the input plane.
const GATHER_MAX: usize = 1024;

/// Patch matrix rows `rows` of samples `first..first + count` of `x`, into `out`
/// (`rows.len() x (count * positions)` row-major): `P[(c, i, j), (s, oh, ow)] = x[s][c, oh * sh +
/// i - ph, ow * sw + j - pw]`, 0 in the padding.
fn im2col<T: Float>(
    g: &Conv2dGeometry,
    x: &MatRef<'_, T>,
    first: usize,
    count: usize,
    rows: std::ops::Range<usize>,
    out: &mut [T],
) {
    im2col_by(g, x, first, count, rows, out, gathers(g))
}

/// Whether [`im2col`] and [`col2im`] go through a table of positions ([`Window::sources`]):
/// small planes whose patch rows are not shifted copies of the input plane (strided, or narrower
/// than the input).
fn gathers(g: &Conv2dGeometry) -> bool {
    g.positions() <= GATHER_MAX && !g.shifts()
}

/// [`im2col`], through the table of positions when `gather` (and the input's rows are
/// contiguous), else a copy per row of the plane.
fn im2col_by<T: Float>(
    g: &Conv2dGeometry,
    x: &MatRef<'_, T>,
    first: usize,
    count: usize,
    rows: std::ops::Range<usize>,
    out: &mut [T],
    gather: bool,
) {
    let (p, ow_n) = (g.positions(), g.out_width);
    let cols = count * p;
    let (kh_n, kw_n) = (g.kernel[0], g.kernel[1]);
    let (ih_n, iw_n) = (g.in_height, g.in_width);
    let plane = ih_n * iw_n;
    let contiguous = x.strides().1 == 1;
    let gathered = gather && contiguous;
    let mut from = [0u32; GATHER_MAX];
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for (r, q) in rows.clone().enumerate() {
                let (c, i, j) = (q / (kh_n * kw_n), q / kw_n % kh_n, q % kw_n);
                let w = Window::new(g, i, j);
                let row = &mut out[r * cols..(r + 1) * cols];
                if gathered {
                    let from = &mut from[..p];
                    w.sources(g, from);
                    for s in 0..count {
                        let src = &x.row(first + s)[c * plane..(c + 1) * plane];
                        for (v, &f) in row[s * p..(s + 1) * p].iter_mut().zip(&*from) {
                            // (a padding position's `u32::MAX` is past any plane: zero)
                            *v = src.get(f as usize).copied().unwrap_or(T::zero());
                        }
                    }
                    continue;
                }
                for s in 0..count {
                    let dst = &mut row[s * p..(s + 1) * p];
                    if contiguous {
                        patch_row(g, &x.row(first + s)[c * plane..(c + 1) * plane], &w, dst);
                        continue;
                    }
                    dst.fill(T::zero());
                    for oh in w.oh_lo..w.oh_hi {
                        let (ih, iw) = w.source(g, oh);
                        for (ow, v) in dst[oh * ow_n + w.lo..oh * ow_n + w.hi].iter_mut().enumerate() {
                            *v = *x.at(first + s, c * plane + ih * iw_n + iw + ow * g.stride[1]);
                        }
                    }
                }
            }
        },
    )
}

/// Adds the patch-matrix gradient `dp` (`patch_len x (count * positions)`) of a group of `count`
/// samples into `dx` (the group's `count` rows): every element receives its contributions in the
/// order of the patch rows, then of the positions (the same order whatever the threads).
///
/// For a stride-1 convolution whose output is as wide as its input, a patch row maps onto the
/// input plane by a constant shift: its columns that would wrap around to the neighbouring rows
/// are set to `-0.0` in `dp` (adding `-0.0` changes no value, `+0.0` would turn `-0.0` into
/// `+0.0`), and the row is added in one contiguous loop, which vectorises where rows of 14 values
/// do not.
fn col2im<T: Float>(g: &Conv2dGeometry, dp: &mut [T], count: usize, dx: &mut MatMut<'_, T>) {
    col2im_by(g, dp, count, dx, gathers(g))
}

/// [`col2im`], through the table of positions when `gather`.
fn col2im_by<T: Float>(g: &Conv2dGeometry, dp: &mut [T], count: usize, dx: &mut MatMut<'_, T>, gather: bool) {
    let (p, ow_n) = (g.positions(), g.out_width);
    let cols = count * p;
    let (kh_n, kw_n) = (g.kernel[0], g.kernel[1]);
    let sw = g.stride[1];
    let (ih_n, iw_n) = (g.in_height, g.in_width);
    let plane = ih_n * iw_n;
    let shift = g.shifts();
    let gathered = gather && !shift;
    let mut from = [0u32; GATHER_MAX];
    crate::simd::dispatch(
        #[inline(always)]
        || {
            // Patch rows outside, samples inside: each sample's image is its own row of `dx`, so
            // every element still receives its contributions in the order of the patch rows.
            for q in 0..g.patch_len() {
                let (c, i, j) = (q / (kh_n * kw_n), q / kw_n % kh_n, q % kw_n);
                let w = Window::new(g, i, j);
                let Window { oh_lo, oh_hi, lo, hi, .. } = w;
                if oh_hi == oh_lo {
                    continue;
                }
                if gathered {
                    // Within a patch row no two positions read the same input element, so each
                    // element still receives its contributions in the order of the patch rows.
                    let from = &mut from[..p];
                    w.sources(g, from);
                    for s in 0..count {
                        let dst = &mut dx.row_mut(s)[c * plane..(c + 1) * plane];
                        for (&v, &f) in dp[q * cols + s * p..q * cols + (s + 1) * p].iter().zip(&*from) {
                            if let Some(d) = dst.get_mut(f as usize) {
                                *d += v;
                            }
                        }
                    }
                    continue;
                }
                for s in 0..count {
                    let img = dx.row_mut(s);
                    let dst = &mut img[c * plane..(c + 1) * plane];
                    let row = &mut dp[q * cols + s * p..q * cols + (s + 1) * p];
                    if shift {
                        for oh in oh_lo..oh_hi {
                            let r = &mut row[oh * ow_n..(oh + 1) * ow_n];
                            r[..lo].fill(-T::zero());
                            r[hi..].fill(-T::zero());
                        }
                        let (a, b) = (oh_lo * ow_n + lo, (oh_hi - 1) * ow_n + hi);
                        let (ih, iw) = w.source(g, oh_lo);
                        let from = ih * iw_n + iw;
                        for (d, &v) in dst[from..from + (b - a)].iter_mut().zip(&row[a..b]) {
                            *d += v;
                        }
                        continue;
                    }
                    for oh in oh_lo..oh_hi {
                        let (ih, iw) = w.source(g, oh);
                        let d = &mut dst[ih * iw_n + iw..(ih + 1) * iw_n];
                        let src = &row[oh * ow_n + lo..oh * ow_n + hi];
                        if sw == 1 {
                            for (d, &v) in d.iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (d, &v) in d.chunks_mut(sw).zip(src) {
                                d[0] += v;
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The output gradients of samples `first..first + count` side by side: `d[c, (s, pos)] =
/// dy[first + s][c, pos]` (`channels x (count * positions)`).
fn gather<T: Float>(dy: &MatRef<'_, T>, channels: usize, positions: usize, first: usize, count: usize, d: &mut [T]) {
    let cols = count * positions;
    for s in 0..count {
        for c in 0..channels {
            let dst = &mut d[c * cols + s * positions..c * cols + (s + 1) * positions];
            if dy.strides().1 == 1 {
                dst.copy_from_slice(&dy.row(first + s)[c * positions..(c + 1) * positions]);
            } else {
                for (k, v) in dst.iter_mut().enumerate() {
                    *v = *dy.at(first + s, c * positions + k);
                }
            }
        }
    }
}

/// `Z` (`channels x (count * positions)`) into the group's `count` output rows, through the
/// epilogue.
fn scatter<T: Float, A: Activation>(
    z: &[T],
    channels: usize,
    positions: usize,
    count: usize,
    epilogue: Epilogue<'_, T, A>,
    y: &mut MatMut<'_, T>,
    keep: &mut Option<MatMut<'_, T>>,
) {
    let cols = count * positions;
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for s in 0..count {
                for c in 0..channels {
                    let src = &z[c * cols + s * positions..c * cols + (s + 1) * positions];
                    let dst = &mut y.row_mut(s)[c * positions..(c + 1) * positions];
                    match epilogue {
                        Epilogue::Act { bias, act } => {
                            let b = bias.get(c).copied().unwrap_or(T::zero());
                            match keep.as_mut() {
                                Some(k) => {
                                    let kd = &mut k.row_mut(s)[c * positions..(c + 1) * positions];
                                    for ((d, kv), &v) in dst.iter_mut().zip(kd).zip(src) {
                                        let z = v + b;
                                        *kv = z;
                                        *d = act.apply(z);
                                    }
                                }
                                None => {
                                    for (d, &v) in dst.iter_mut().zip(src) {
                                        *d = act.apply(v + b);
                                    }
                                }
                            }
                        }
                        Epilogue::Store { accumulate: true } => {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d += v;
                            }
                        }
                        Epilogue::Store { accumulate: false } => dst.copy_from_slice(src),
                    }
                }
            }
        },
    )
}

/// Bias and activation over the group's `count` output rows in place (`keep`: the pre-activation
/// kept too).
fn bias_act_rows<T: Float, A: Activation>(
    channels: usize,
    positions: usize,
    count: usize,
    bias: &[T],
    act: A,
    y: &mut MatMut<'_, T>,
    keep: &mut Option<MatMut<'_, T>>,
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            // An opaque 1, as in `kernels::bias_act`: no masked stores.
            let one = std::hint::black_box(T::one());
            for s in 0..count {
                for c in 0..channels {
                    let b = bias.get(c).copied().unwrap_or(T::zero());
                    let dst = &mut y.row_mut(s)[c * positions..(c + 1) * positions];
                    match keep.as_mut() {
                        Some(k) => {
                            let kd = &mut k.row_mut(s)[c * positions..(c + 1) * positions];
                            for (d, kv) in dst.iter_mut().zip(kd) {
                                let z = *d + b;
                                *kv = z;
                                *d = act.apply(z);
                            }
                        }
                        None => {
                            for d in dst.iter_mut() {
                                *d = act.apply(*d * one + b);
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `y = act(k + bias)` and `k += bias` per channel, for one sample whose pre-activation `k` the
/// product just wrote.
fn bias_act_kept<T: Float, A: Activation>(
    channels: usize,
    positions: usize,
    bias: &[T],
    act: A,
    k: &mut [T],
    y: &mut [T],
) {
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for c in 0..channels {
                let b = bias.get(c).copied().unwrap_or(T::zero());
                let (kc, yc) = (&mut k[c * positions..(c + 1) * positions], &mut y[c * positions..(c + 1) * positions]);
                for (kv, yv) in kc.iter_mut().zip(yc) {
                    let z = *kv + b;
                    *kv = z;
                    *yv = act.apply(z);
                }
            }
        },
    )
}

/// The forward primitive on samples `first..first + count` of `x`, into `y` (and `keep`), the
/// group's `count` rows: `scratch` holds the patches and the product.
#[allow(clippy::too_many_arguments)]
fn forward_group<T: Float, A: Activation>(
    g: &Conv2dGeometry,
    ws: &mut Workspace<T>,
    scratch: &mut [T],
    x: &MatRef<'_, T>,
    w: &[T],
    first: usize,
    count: usize,
    epilogue: Epilogue<'_, T, A>,
    y: &mut MatMut<'_, T>,
    keep: &mut Option<MatMut<'_, T>>,
) {
    let (q, cols) = (g.patch_len(), count * g.positions());
    let (patches, rest) = scratch.split_at_mut(q * cols);
    let direct = count == 1 && g.pointwise() && x.strides().1 == 1;
    // The patches packed straight from the images where the kernel can (an implicit im2col).
    let implicit = if direct { None } else { PatchMatrix::new(g, x, first, count, 0..q) };
    let pm = if direct {
        MatRef::row_major(x.row(first), q, cols)
    } else if implicit.is_some() {
        MatRef::row_major(&[], 0, 0)
    } else {
        im2col(g, x, first, count, 0..q, patches);
        MatRef::row_major(&*patches, q, cols)
    };
    let wm = MatRef::row_major(w, g.out_channels, q);
    let product = |ws: &mut Workspace<T>, beta: T, out: MatMut<'_, T>| match implicit {
        Some(pm) => gemm_patches_with(ws, T::one(), wm, pm, beta, out),
        None => gemm_with(ws, T::one(), wm, pm, beta, out),
    };
    if count == 1 {
        // One sample: its output row is the product's `out_channels x positions` result.
        let accumulate = matches!(epilogue, Epilogue::Store { accumulate: true });
        let beta = if accumulate { T::one() } else { T::zero() };
        let out = match (&epilogue, keep.as_mut()) {
            (Epilogue::Act { .. }, Some(k)) => k.row_mut(0),
            _ => y.row_mut(0),
        };
        product(ws, beta, MatMut::row_major(out, g.out_channels, cols));
        if let Epilogue::Act { bias, act } = epilogue {
            match keep.as_mut() {
                Some(k) => bias_act_kept(g.out_channels, g.positions(), bias, act, k.row_mut(0), y.row_mut(0)),
                None => bias_act_rows(g.out_channels, g.positions(), 1, bias, act, y, &mut None),
            }
        }
        return;
    }
    let z = &mut rest[..g.out_channels * cols];
    product(ws, T::zero(), MatMut::row_major(z, g.out_channels, cols));
    scatter(z, g.out_channels, g.positions(), count, epilogue, y, keep);
}

/// The data-gradient primitive on samples `first..first + count` of `dy`, into `dx` (and `keep`),
/// the group's `count` rows: `dx (+)= col2im(W^T D)`, then, for a transposed convolution's
/// forward pass, bias and activation.
#[allow(clippy::too_many_arguments)]
fn data_grad_group<T: Float, A: Activation>(
    g: &Conv2dGeometry,
    ws: &mut Workspace<T>,
    scratch: &mut [T],
    dy: &MatRef<'_, T>,
    w: &[T],
    first: usize,
    count: usize,
    epilogue: Epilogue<'_, T, A>,
    dx: &mut MatMut<'_, T>,
    keep: &mut Option<MatMut<'_, T>>,
) {
    let (q, p, cols) = (g.patch_len(), g.positions(), count * g.positions());
    let (dp, rest) = scratch.split_at_mut(q * cols);
    let d = if count == 1 && dy.strides().1 == 1 {
        // One sample: its gradient row is the `out_channels x positions` operand.
        MatRef::row_major(dy.row(first), g.out_channels, cols)
    } else {
        let d = &mut rest[..g.out_channels * cols];
        gather(dy, g.out_channels, p, first, count, d);
        MatRef::row_major(&*d, g.out_channels, cols)
    };
    let wt = MatRef::row_major(w, g.out_channels, q).t();
    if count == 1 && g.pointwise() {
        // The product is the input gradient itself.
        let accumulate = matches!(epilogue, Epilogue::Store { accumulate: true });
        let beta = if accumulate { T::one() } else { T::zero() };
        gemm_with(ws, T::one(), wt, d, beta, MatMut::row_major(dx.row_mut(0), q, cols));
        if let Epilogue::Act { bias, act } = epilogue {
            bias_act_rows(g.in_channels, g.in_height * g.in_width, count, bias, act, dx, keep);
        }
        return;
    }
    gemm_with(ws, T::one(), wt, d, T::zero(), MatMut::row_major(dp, q, cols));
    if !matches!(epilogue, Epilogue::Store { accumulate: true }) {
        for s in 0..count {
            dx.row_mut(s).fill(T::zero());
        }
    }
    col2im(g, dp, count, dx);
    if let Epilogue::Act { bias, act } = epilogue {
        bias_act_rows(g.in_channels, g.in_height * g.in_width, count, bias, act, dx, keep);
    }
}

/// `W` (`[out, in, kh, kw]`) with its channels swapped and its kernel turned by 180 degrees, the
/// weight of [`Conv2dGeometry::flipped`]: `wf[c, o, i, j] = w[o, c, kh-1-i, kw-1-j]`.
fn flip_weight<T: Float>(g: &Conv2dGeometry, w: &[T], wf: &mut [T]) {
    let (out_c, in_c) = (g.out_channels, g.in_channels);
    let kk = g.kernel[0] * g.kernel[1];
    for (o, wo) in w.chunks_exact(in_c * kk).enumerate() {
        for (c, k) in wo.chunks_exact(kk).enumerate() {
            let dst = &mut wf[(c * out_c + o) * kk..(c * out_c + o + 1) * kk];
            for (d, &v) in dst.iter_mut().zip(k.iter().rev()) {
                *d = v;
            }
        }
    }
}

/// The weight-gradient primitive over every sample, for the columns `cols` of `dW`
/// (`out_channels x patch_len`, whose columns `cols` this call owns):
/// `dW[:, cols] (+)= sum over groups of D P[cols, :]^T`, group after group.
///
/// # Safety
/// No other thread may access the columns `cols` of `dw` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn weight_grad_columns<T: Float>(
    g: &Conv2dGeometry,
    ws: &mut Workspace<T>,
    scratch: &mut [T],
    dy: &MatRef<'_, T>,
    x: &MatRef<'_, T>,
    n: usize,
    cols: std::ops::Range<usize>,
    accumulate: bool,
    dw: &SharedCols<'_, T>,
) {
    let (p, size) = (g.positions(), g.group());
    for i in 0..n.div_ceil(size) {
        let (first, count) = group_range(i, size, n);
        let width = count * p;
        let (patches, rest) = scratch.split_at_mut(cols.len() * width);
        let dm = if count == 1 && dy.strides().1 == 1 {
            MatRef::row_major(dy.row(first), g.out_channels, width)
        } else {
            let d = &mut rest[..g.out_channels * width];
            gather(dy, g.out_channels, p, first, count, d);
            MatRef::row_major(&*d, g.out_channels, width)
        };
        let beta = if accumulate || i > 0 { T::one() } else { T::zero() };
        if let Some(pm) = PatchMatrix::new(g, x, first, count, cols.clone()) {
            // SAFETY: this call's contract.
            unsafe { dw.gemm_patches(ws, T::one(), dm, pm.t(), beta, cols.start) };
            continue;
        }
        let pm = if count == 1 && g.pointwise() && x.strides().1 == 1 {
            MatRef::row_major(&x.row(first)[cols.start * width..cols.end * width], cols.len(), width)
        } else {
            im2col(g, x, first, count, cols.clone(), patches);
            MatRef::row_major(&*patches, cols.len(), width)
        };
        // SAFETY: this call's contract.
        unsafe { dw.gemm(ws, T::one(), dm, pm.t(), beta, cols.start) };
    }
}

/// Runs the forward primitive over every sample, split by groups over the pool.
#[allow(clippy::too_many_arguments)]
fn run_forward<T: Float, A: Activation>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    data_grad: bool,
    x: MatRef<'_, T>,
    w: &[T],
    epilogue: Epilogue<'_, T, A>,
    y: MatMut<'_, T>,
    keep: Option<MatMut<'_, T>>,
) {
    let n = x.nrows();
    assert_eq!(w.len(), g.weight_len(), "convolution weight of {} elements for {g:?}", w.len());
    let (in_len, out_len) = if data_grad { (g.out_len(), g.in_len()) } else { (g.in_len(), g.out_len()) };
    assert!(x.ncols() == in_len && y.ncols() == out_len && y.nrows() == n, "convolution operands for {g:?}");
    if let Some(k) = &keep {
        assert!(k.nrows() == n && k.ncols() == out_len, "kept pre-activation for {g:?}");
    }
    if n == 0 {
        return;
    }
    let size = g.group();
    let groups = n.div_ceil(size);
    let (parts, per_part) = parts(pool, groups, size * g.positions() * g.weight_len());
    let (y, keep) = (SharedRows::new(y), keep.map(SharedRows::new));
    pool.run_parts(parts, |part, ws| {
        let groups = part * per_part..((part + 1) * per_part).min(groups);
        // SAFETY: parts take disjoint groups.
        unsafe { forward_groups(&g, data_grad, ws, groups, &x, w, epilogue, &y, keep.as_ref()) };
    });
}

/// The forward (or data-gradient) primitive on the groups `groups`, in `ws`'s scratch memory.
///
/// # Safety
/// No other thread may write the rows of these groups in `y` and `keep` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn forward_groups<T: Float, A: Activation>(
    g: &Conv2dGeometry,
    data_grad: bool,
    ws: &mut Workspace<T>,
    groups: std::ops::Range<usize>,
    x: &MatRef<'_, T>,
    w: &[T],
    epilogue: Epilogue<'_, T, A>,
    y: &SharedRows<'_, T>,
    keep: Option<&SharedRows<'_, T>>,
) {
    let (n, size) = (y.nrows(), g.group());
    ws.with_scratch(g.scratch_len(), |scratch, ws| {
        // A data gradient with a flipped convolution is that convolution's forward pass, on
        // its flipped weight (made once, at the front of the scratch memory), in the same groups.
        let flipped = if data_grad { g.flipped() } else { None };
        let (wf, scratch) = scratch.split_at_mut(if flipped.is_some() { g.weight_len() } else { 0 });
        let (g, w, data_grad) = match &flipped {
            Some(f) => {
                flip_weight(g, w, wf);
                (f, &*wf, false)
            }
            None => (g, w, data_grad),
        };
        for i in groups {
            let (first, count) = group_range(i, size, n);
            // SAFETY: the caller's contract; every group's rows are its own.
            let mut yb = unsafe { y.block(first, count) };
            let mut kb = keep.map(|k| unsafe { k.block(first, count) });
            if data_grad {
                data_grad_group(g, ws, scratch, x, w, first, count, epilogue, &mut yb, &mut kb);
            } else {
                forward_group(g, ws, scratch, x, w, first, count, epilogue, &mut yb, &mut kb);
            }
        }
    });
}

/// The weight gradient over every sample, split by whole kernel tiles of columns of `dW` over the
/// pool (each thread summing every group in the same order: the bits of one thread).
fn run_weight_grad<T: Float>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    dw: &mut [T],
    accumulate: bool,
) {
    let n = dy.nrows();
    assert_eq!(dw.len(), g.weight_len(), "convolution weight gradient of {} elements for {g:?}", dw.len());
    assert!(dy.ncols() == g.out_len() && x.ncols() == g.in_len() && x.nrows() == n, "convolution operands for {g:?}");
    let q = g.patch_len();
    if n == 0 {
        if !accumulate {
            dw.fill(T::zero());
        }
        return;
    }
    let nr = kernel_info::<T>().nr;
    let tiles = q.div_ceil(nr);
    let work = n * g.positions() * g.weight_len();
    let parts = pool.threads().min(tiles).min((work / MIN_WORK_PER_THREAD).max(1)).max(1);
    let width = tiles.div_ceil(parts) * nr;
    let parts = q.div_ceil(width);
    let out_c = g.out_channels;
    let dwm = SharedCols::new(MatMut::row_major(dw, out_c, q));
    let len = g.scratch_len();
    pool.run_parts(parts, |part, ws| {
        let start = part * width;
        let cols = start..(start + width).min(q);
        // SAFETY: parts take disjoint blocks of columns.
        ws.with_scratch(len, |scratch, ws| unsafe {
            weight_grad_columns(&g, ws, scratch, &dy, &x, n, cols, accumulate, &dwm)
        });
    });
}

/// The weight gradient `dW (+)= ...` from the convolution's output gradient `d_out` and input
/// `input`, and, when given, the input gradient `dx (+)= ...` from `grad` (through the data
/// gradient of the convolution, `data_grad`, or its forward pass). On two threads or more, and
/// when both are large enough, the two run side by side, each whole on one thread, as a dense
/// layer's two products do: no thread gathers or packs what the other does. Otherwise each is
/// split over the pool. Either way every value is computed as on one thread. Side by side only up
/// to [`SIDE_BY_SIDE_MAX_BATCH`] samples, where it measured faster.
#[allow(clippy::too_many_arguments)]
fn backward_pair<T: Float>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    d_out: MatRef<'_, T>,
    input: MatRef<'_, T>,
    w: &[T],
    dw: Option<&mut [T]>,
    accumulate: bool,
    dx: Option<(MatMut<'_, T>, bool)>,
    data_grad: bool,
) {
    // (`d_out` and `input` are the convolution's sides; `grad`, what the input gradient is
    // computed from, is the layer's output gradient: `d_out` for a Conv2d, `input` for a
    // ConvTranspose2d.)
    let grad = if data_grad { d_out } else { input };
    let n = d_out.nrows();
    let work = n * g.positions() * g.weight_len();
    let side_by_side = n <= SIDE_BY_SIDE_MAX_BATCH;
    match (dw, dx) {
        (Some(dw), Some((dx, acc))) if side_by_side && pool.threads() >= 2 && work >= 2 * MIN_WORK_PER_THREAD => {
            assert_eq!(dw.len(), g.weight_len(), "convolution weight gradient of {} elements for {g:?}", dw.len());
            assert!(d_out.ncols() == g.out_len() && input.ncols() == g.in_len() && input.nrows() == n);
            let (in_len, out_len) = if data_grad { (g.out_len(), g.in_len()) } else { (g.in_len(), g.out_len()) };
            assert!(grad.ncols() == in_len && dx.ncols() == out_len && dx.nrows() == n && w.len() == g.weight_len());
            let q = g.patch_len();
            let dwm = SharedCols::new(MatMut::row_major(dw, g.out_channels, q));
            let dxs = SharedRows::new(dx);
            let epilogue: Epilogue<'_, T, crate::Identity> = Epilogue::Store { accumulate: acc };
            pool.join(
                // SAFETY: this thread alone writes dW; the other alone dx.
                |ws| {
                    ws.with_scratch(g.scratch_len(), |scratch, ws| unsafe {
                        weight_grad_columns(&g, ws, scratch, &d_out, &input, n, 0..q, accumulate, &dwm)
                    })
                },
                |ws| unsafe {
                    forward_groups(&g, data_grad, ws, 0..n.div_ceil(g.group()), &grad, w, epilogue, &dxs, None)
                },
            );
        }
        (dw, dx) => {
            if let Some(dw) = dw {
                run_weight_grad(pool, g, d_out, input, dw, accumulate);
            }
            if let Some((dx, acc)) = dx {
                let epilogue: Epilogue<'_, T, crate::Identity> = Epilogue::Store { accumulate: acc };
                run_forward(pool, g, data_grad, grad, w, epilogue, dx, None);
            }
        }
    }
}

/// A `Conv2d` forward pass: `y = act(conv(x, W) + bias)` (`bias` empty for none), keeping
/// `conv(x, W) + bias` in `keep_input` when given. `x` is `[batch, g.in_len()]`, `y` and
/// `keep_input` `[batch, g.out_len()]`, `w` `[out_channels, in_channels, kh, kw]` row-major.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float, A: Activation>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    x: MatRef<'_, T>,
    w: &[T],
    bias: &[T],
    act: A,
    y: MatMut<'_, T>,
    keep_input: Option<MatMut<'_, T>>,
) {
    assert!(bias.is_empty() || bias.len() == g.out_channels, "bias of {} for {} channels", bias.len(), g.out_channels);
    run_forward(pool, g, false, x, w, Epilogue::Act { bias, act }, y, keep_input);
}

/// A `Conv2d` backward pass from `dy` (`[batch, g.out_len()]`) and the forward input `x`:
/// when given, `dW (+)= ...` (added when `accumulate`) and `dx (+)= ...` (added when its flag
/// is set). The bias gradient is summed separately ([`kernels::par::channel_sums`]).
///
/// [`kernels::par::channel_sums`]: crate::kernels::par::channel_sums
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    w: &[T],
    dw: Option<&mut [T]>,
    accumulate: bool,
    dx: Option<(MatMut<'_, T>, bool)>,
) {
    backward_pair(pool, g, dy, x, w, dw, accumulate, dx, true);
}

/// A `ConvTranspose2d` forward pass, `g` being the convolution it transposes
/// ([`Conv2dGeometry::transposed`]): `y = act(conv_transpose(x, W) + bias)`, `x` `[batch,
/// g.out_len()]`, `y` `[batch, g.in_len()]`, `w` `[in, out, kh, kw]` of the transposed layer.
#[allow(clippy::too_many_arguments)]
pub fn transposed_forward<T: Float, A: Activation>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    x: MatRef<'_, T>,
    w: &[T],
    bias: &[T],
    act: A,
    y: MatMut<'_, T>,
    keep_input: Option<MatMut<'_, T>>,
) {
    assert!(bias.is_empty() || bias.len() == g.in_channels, "bias of {} for {} channels", bias.len(), g.in_channels);
    run_forward(pool, g, true, x, w, Epilogue::Act { bias, act }, y, keep_input);
}

/// A `ConvTranspose2d` backward pass from `dy` (`[batch, g.in_len()]`) and its forward input `x`
/// (`[batch, g.out_len()]`): when given, `dW (+)= ...` and `dx (+)= conv(dy, W)`.
#[allow(clippy::too_many_arguments)]
pub fn transposed_backward<T: Float>(
    pool: &Pool<T>,
    g: Conv2dGeometry,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    w: &[T],
    dw: Option<&mut [T]>,
    accumulate: bool,
    dx: Option<(MatMut<'_, T>, bool)>,
) {
    // The transposed layer's input plays the convolution's output gradient, its output
    // gradient the convolution's input.
    backward_pair(pool, g, x, dy, w, dw, accumulate, dx, false);
}

/// For Path-SGD: the passes of one sample through a convolution with the squared weights.
pub(crate) mod single {
    use super::*;

    /// `y = conv(x, W^2) + bias^2` (`data_grad` false) or `y = conv_transpose(x, W^2) + bias^2`
    /// (true), or `y += ...` without the bias when `accumulate`; one sample, on the calling thread.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn squared<T: Float>(
        pool: &Pool<T>,
        g: Conv2dGeometry,
        data_grad: bool,
        w: &[T],
        bias: &[T],
        x: &[T],
        y: &mut [T],
        accumulate: bool,
    ) {
        let wl = g.weight_len();
        let (in_len, out_len) = if data_grad { (g.out_len(), g.in_len()) } else { (g.in_len(), g.out_len()) };
        let xm = MatRef::row_major(x, 1, in_len);
        let ys = SharedRows::new(MatMut::row_major(y, 1, out_len));
        let len = g.scratch_len();
        pool.run_parts(1, |_, ws| {
            // SAFETY: one part, the only user of the row.
            let mut ym = unsafe { ys.block(0, 1) };
            ws.with_scratch(len, |scratch, ws| {
                let (wsq, rest) = scratch.split_at_mut(wl);
                for (s, &v) in wsq.iter_mut().zip(w) {
                    *s = v * v;
                }
                let epilogue: Epilogue<'_, T, crate::Identity> = Epilogue::Store { accumulate };
                if data_grad {
                    data_grad_group(&g, ws, rest, &xm, wsq, 0, 1, epilogue, &mut ym, &mut None);
                } else {
                    forward_group(&g, ws, rest, &xm, wsq, 0, 1, epilogue, &mut ym, &mut None);
                }
                if !accumulate && !bias.is_empty() {
                    let per = out_len / bias.len();
                    for (c, &b) in bias.iter().enumerate() {
                        for v in &mut ym.row_mut(0)[c * per..(c + 1) * per] {
                            *v += b * b;
                        }
                    }
                }
            })
        });
    }

    /// `dW = sum over positions of dy x-patches^T` for one sample (`dy` on the convolution's
    /// output side, `x` on its input side), written into `dw`.
    pub(crate) fn weight_grad<T: Float>(pool: &Pool<T>, g: Conv2dGeometry, dy: &[T], x: &[T], dw: &mut [T]) {
        let dym = MatRef::row_major(dy, 1, g.out_len());
        let xm = MatRef::row_major(x, 1, g.in_len());
        run_weight_grad(pool, g, dym, xm, dw, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dx[s, c, y, x] (+)= sum over (o, i, j) of W[o, c, i, j] dy[s, o, oh, ow]` where `(y, x) =
    /// (oh + i - ph, ow + j - pw)`, by the definition: the input gradient of a stride-1 convolution.
    fn input_gradient_by_definition(g: &Conv2dGeometry, dy: &[f64], w: &[f64], dx: &mut [f64]) {
        let ([kh, kw], [ph, pw]) = (g.kernel, g.padding);
        let (n, (ih_n, iw_n)) = (dy.len() / g.out_len(), (g.in_height, g.in_width));
        for s in 0..n {
            for o in 0..g.out_channels {
                for c in 0..g.in_channels {
                    for (i, j) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
                        let wv = w[((o * g.in_channels + c) * kh + i) * kw + j];
                        for (oh, ow) in (0..g.out_height).flat_map(|a| (0..g.out_width).map(move |b| (a, b))) {
                            let (y, x) = ((oh + i).wrapping_sub(ph), (ow + j).wrapping_sub(pw));
                            if y < ih_n && x < iw_n {
                                let d = dy[s * g.out_len() + (o * g.out_height + oh) * g.out_width + ow];
                                dx[s * g.in_len() + (c * ih_n + y) * iw_n + x] += wv * d;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The input gradient of stride-1 convolutions as wide out as in, computed as the forward
    /// pass of the flipped convolution, is the definition's (f64 and f32, written and added, one
    /// and two threads with the same bits), and a stride-1 `ConvTranspose2d`'s forward pass, which
    /// takes the same path, too (with its bias).
    #[test]
    fn the_flipped_convolution_gives_the_input_gradient() {
        let val = |i: usize| ((i * 7919 + 13) % 1009) as f64 / 97.0 - 5.0;
        let geometries = [
            Conv2dGeometry::new([3, 9, 11], 5, 5, 1, 2),
            Conv2dGeometry::new([2, 6, 6], 3, 3, 1, 1),
            Conv2dGeometry::new([5, 7, 5], 1, 3, 1, 1),
            Conv2dGeometry::new([32, 14, 14], 7, 5, 1, 2),
            // a 3 x 5 kernel, paddings 0 and 2: [3, 8, 9] -> [2, 6, 9], fewer rows out than in
            Conv2dGeometry {
                in_channels: 3,
                in_height: 8,
                in_width: 9,
                out_channels: 2,
                out_height: 6,
                out_width: 9,
                kernel: [3, 5],
                stride: [1, 1],
                padding: [0, 2],
            },
        ];
        for g in geometries {
            let f = g.flipped().expect("stride 1, as wide out as in");
            assert_eq!((f.out_channels, f.out_height, f.out_width), (g.in_channels, g.in_height, g.in_width));
            let n = 5;
            let dy: Vec<f64> = (0..n * g.out_len()).map(val).collect();
            let w: Vec<f64> = (0..g.weight_len()).map(|i| val(i + 3) * 0.1).collect();
            let dx0: Vec<f64> = (0..n * g.in_len()).map(|i| val(i + 1)).collect();
            let x = vec![0.0; n * g.in_len()];
            for accumulate in [false, true] {
                let mut want = if accumulate { dx0.clone() } else { vec![0.0; dx0.len()] };
                input_gradient_by_definition(&g, &dy, &w, &mut want);
                let mut bits = Vec::new();
                for threads in [1, 2] {
                    let mut got = dx0.clone();
                    let dxm = MatMut::row_major(&mut got, n, g.in_len());
                    let (dym, xm) = (MatRef::row_major(&dy, n, g.out_len()), MatRef::row_major(&x, n, g.in_len()));
                    backward(&Pool::new(threads), g, dym, xm, &w, None, false, Some((dxm, accumulate)));
                    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{g:?} element {k}: {a} against {b}");
                    }
                    bits.push(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                    // f32, whose patches the vector kernels pack straight from the images
                    let (dy32, w32) = (
                        dy.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                        w.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    );
                    let mut got32: Vec<f32> = dx0.iter().map(|&v| v as f32).collect();
                    let x32 = vec![0f32; x.len()];
                    let dxm = MatMut::row_major(&mut got32, n, g.in_len());
                    let (dym, xm) = (MatRef::row_major(&dy32, n, g.out_len()), MatRef::row_major(&x32, n, g.in_len()));
                    backward(&Pool::new(threads), g, dym, xm, &w32, None, false, Some((dxm, accumulate)));
                    for (k, (&a, b)) in got32.iter().zip(&want).enumerate() {
                        assert!(
                            (a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                            "f32 {g:?} element {k}: {a} against {b}"
                        );
                    }
                }
                assert_eq!(bits[0], bits[1], "{g:?}: one and two threads");
            }
            // ConvTranspose2d's forward pass is this data gradient, plus its bias
            let bias: Vec<f64> = (0..g.in_channels).map(|c| c as f64 - 0.5).collect();
            let mut want = vec![0.0; n * g.in_len()];
            input_gradient_by_definition(&g, &dy, &w, &mut want);
            for (k, v) in want.iter_mut().enumerate() {
                *v += bias[k % g.in_len() / (g.in_height * g.in_width)];
            }
            let mut got = vec![f64::NAN; want.len()];
            let ym = MatMut::row_major(&mut got, n, g.in_len());
            transposed_forward(
                &Pool::new(1),
                g,
                MatRef::row_major(&dy, n, g.out_len()),
                &w,
                &bias,
                crate::Identity,
                ym,
                None,
            );
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "transposed {g:?} element {k}: {a} against {b}");
            }
        }
        // strided, narrower out than in, pointwise: no flipped convolution
        for g in [
            Conv2dGeometry::new([2, 8, 8], 3, 4, 2, 1),
            Conv2dGeometry::new([2, 7, 7], 3, 3, 1, 0),
            Conv2dGeometry::new([2, 7, 7], 3, 1, 1, 0),
        ] {
            assert_eq!(g.flipped(), None, "{g:?}");
        }
    }

    /// The table of positions gives the per-row copies' bits: the patch matrix, and the input
    /// gradient with every element's contributions in the same order (strides 1 to 3, paddings
    /// 0 to 2, square and non-square kernels, outputs narrower than the input).
    #[test]
    fn gathered_patches_and_their_gradients_have_the_bits_of_the_row_copies() {
        let val = |i: usize| ((i * 7919 + 13) % 1009) as f32 / 97.0 - 5.0;
        let geometries = [
            Conv2dGeometry::new([3, 9, 11], 4, 4, 2, 1),
            Conv2dGeometry::new([2, 7, 7], 5, 3, 1, 0),
            Conv2dGeometry::new([2, 10, 9], 3, 5, 3, 2),
            Conv2dGeometry::new([1, 8, 8], 2, 2, 2, 0),
            // a 3 x 2 kernel, strides 2 and 1, paddings 1 and 0: [2, 6, 7] -> [3, 3, 6]
            Conv2dGeometry {
                in_channels: 2,
                in_height: 6,
                in_width: 7,
                out_channels: 3,
                out_height: 3,
                out_width: 6,
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 0],
            },
        ];
        // stride-1 "same" convolutions, which take the shifted copies, through the table too
        let shifted = [Conv2dGeometry::new([3, 9, 11], 2, 5, 1, 2), Conv2dGeometry::new([2, 6, 6], 2, 3, 1, 1)];
        let count = 3;
        for g in geometries.into_iter().chain(shifted) {
            assert_eq!(gathers(&g), !g.shifts(), "{g:?}");
            let (q, p) = (g.patch_len(), g.positions());
            let x: Vec<f32> = (0..(count + 1) * g.in_len()).map(val).collect();
            let x = MatRef::row_major(&x, count + 1, g.in_len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (mut a, mut b) = (vec![f32::NAN; q * count * p], vec![f32::NAN; q * count * p]);
            im2col_by(&g, &x, 1, count, 0..q, &mut a, true);
            im2col_by(&g, &x, 1, count, 0..q, &mut b, false);
            assert_eq!(bits(&a), bits(&b), "patches of {g:?}");
            let dp: Vec<f32> = (0..q * count * p).map(|i| val(i + 5)).collect();
            let dx0: Vec<f32> = (0..count * g.in_len()).map(|i| val(i + 1) * 0.5).collect();
            let (mut da, mut db) = (dx0.clone(), dx0.clone());
            col2im_by(&g, &mut dp.clone(), count, &mut MatMut::row_major(&mut da, count, g.in_len()), true);
            col2im_by(&g, &mut dp.clone(), count, &mut MatMut::row_major(&mut db, count, g.in_len()), false);
            assert_eq!(bits(&da), bits(&db), "input gradient of {g:?}");
        }
    }
}
