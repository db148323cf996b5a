//! Batch normalisation (PyTorch's `nn.BatchNorm1d` and `nn.BatchNorm2d`), fused with the
//! activation after it.
//!
//! A batch is a row-major `[batch, channels * positions]` matrix: `positions` values per channel
//! and sample (`height * width` for images, 1 for rows of features). With `M = batch *
//! positions` values per channel:
//!
//! | pass | computes | split over threads by |
//! |---|---|---|
//! | statistics (training) | `mean = sum(x) / M`, `var = sum((x - mean)^2) / M` | channels |
//! | normalisation | `y = act((x - mean) * weight / sqrt(var + eps) + bias)` | samples |
//! | backward, sums | `g = dy * act'`, `sum(g)`, `sum(g * x^)`, with `x^ = (x - mean) / sqrt(var + eps)` | channels |
//! | backward, input | `dx = weight / sqrt(var + eps) * (g - sum(g) / M - x^ sum(g x^) / M)` | samples |
//!
//! In inference the running statistics stand for `mean` and `var`. Every sum over a channel runs
//! over the samples in order and, within a sample, over 8 interleaved partial sums added in a
//! fixed order: the same bits on any number of threads and at any vector width.
//!
//! Each normalisation keeps [`STATS_PER_CHANNEL`] values per channel between its passes (the
//! network's buffers hold them): the batch's mean and variance, the normalisation's scale and
//! shift, and the backward pass's two sums.

use crate::gemm::{strided_at, MatMut, MatRef, Pool, SharedRows, SharedSlice, StridedRow};
use crate::kernels::{lanes_sum, Activation};
use crate::layers::BatchNorm;
use crate::Float;

/// Values kept per channel: mean, variance, scale, shift, and the backward pass's two sums.
pub const STATS_PER_CHANNEL: usize = 6;

/// For each channel, the sum over the samples of `f(sample, channel)` (itself a sum within the
/// sample), into `out`, split by channels.
fn channel_sums<T: Float>(
    pool: &Pool<T>,
    rows: usize,
    values: usize,
    out: &mut [T],
    f: impl Fn(usize, usize) -> T + Sync,
) {
    let channels = out.len();
    let shared = SharedSlice::new(out);
    pool.split_ranges(channels, values, |cs| {
        // SAFETY: parts take disjoint ranges of channels.
        let out = unsafe { shared.range(cs.clone()) };
        out.fill(T::zero());
        // One dispatch around the loops (not one per row and channel): `f` inlines into them, and
        // with one position per channel (BatchNorm1d) the loop over channels vectorises.
        crate::simd::dispatch(
            #[inline(always)]
            || {
                for n in 0..rows {
                    for (o, c) in out.iter_mut().zip(cs.clone()) {
                        *o += f(n, c);
                    }
                }
            },
        )
    });
}

/// Splits `stats` into its six per-channel parts.
fn parts_of<T>(stats: &mut [T], c: usize) -> [&mut [T]; STATS_PER_CHANNEL] {
    assert_eq!(stats.len(), STATS_PER_CHANNEL * c, "batch normalisation statistics of {c} channels");
    let (mean, rest) = stats.split_at_mut(c);
    let (var, rest) = rest.split_at_mut(c);
    let (scale, rest) = rest.split_at_mut(c);
    let (shift, rest) = rest.split_at_mut(c);
    let (sum_g, sum_gx) = rest.split_at_mut(c);
    [mean, var, scale, shift, sum_g, sum_gx]
}

/// The forward pass of `layer` over `x` (`[batch, C * positions]`): in training (`train`) with
/// the batch's statistics, kept in `stats` for the backward pass and the running statistics
/// ([`BatchNorm::update_running_stats`]); in inference with the running statistics. Writes
/// `act(normalised)` into `y` and, when given, the normalised values into `keep_input` (for an
/// activation whose derivative needs its input).
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float, const C: usize, A: Activation>(
    pool: &Pool<T>,
    layer: &BatchNorm<T, C>,
    positions: usize,
    x: MatRef<'_, T>,
    stats: &mut [T],
    train: bool,
    act: A,
    y: MatMut<'_, T>,
    keep_input: Option<MatMut<'_, T>>,
) {
    if x.strides().1 == 1 {
        forward_impl::<T, C, A, true>(pool, layer, positions, x, stats, train, act, y, keep_input)
    } else {
        forward_impl::<T, C, A, false>(pool, layer, positions, x, stats, train, act, y, keep_input)
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_impl<T: Float, const C: usize, A: Activation, const UNIT: bool>(
    pool: &Pool<T>,
    layer: &BatchNorm<T, C>,
    positions: usize,
    x: MatRef<'_, T>,
    stats: &mut [T],
    train: bool,
    act: A,
    y: MatMut<'_, T>,
    keep_input: Option<MatMut<'_, T>>,
) {
    let n = x.nrows();
    let width = C * positions;
    assert!(x.ncols() == width && y.ncols() == width && y.nrows() == n, "batch normalisation of [{n}, {width}]");
    if let Some(k) = &keep_input {
        assert!(k.nrows() == n && k.ncols() == width, "kept normalised values of [{n}, {width}]");
    }
    let [mean, var, scale, shift, _, _] = parts_of(stats, C);
    if train {
        let count = T::of((n * positions) as f64);
        channel_sums(pool, n, n * width, mean, |r, c| {
            let row = x.row_strided(r);
            lanes_sum(positions, |p| strided_at::<T, UNIT>(row, c * positions + p))
        });
        mean.iter_mut().for_each(|m| *m /= count);
        let means: &[T] = mean;
        channel_sums(pool, n, n * width, var, |r, c| {
            let row = x.row_strided(r);
            let m = means[c];
            lanes_sum(positions, |p| {
                let d = strided_at::<T, UNIT>(row, c * positions + p) - m;
                d * d
            })
        });
        var.iter_mut().for_each(|v| *v /= count);
    } else {
        let (rm, rv) = layer.running_slices();
        mean.copy_from_slice(rm);
        var.copy_from_slice(rv);
    }
    let eps = T::of(BatchNorm::<T, C>::EPS);
    for c in 0..C {
        scale[c] = layer.weight_slice()[c] / (var[c] + eps).sqrt();
        shift[c] = layer.bias_slice()[c];
    }
    let (mean, scale, shift): (&[T], &[T], &[T]) = (mean, scale, shift);
    let (ys, keep) = (SharedRows::new(y), keep_input.map(SharedRows::new));
    let chunk = stream_chunk::<T>(pool, n * width, C, positions);
    pool.split_ranges(n, n * width, |rows| {
        // SAFETY: parts take disjoint rows.
        let mut yb = unsafe { ys.block(rows.start, rows.len()) };
        let mut kb = keep.as_ref().map(|k| unsafe { k.block(rows.start, rows.len()) });
        let mut bufs = chunk.map(|_| ([T::zero(); STREAM_LEN], [T::zero(); STREAM_LEN]));
        crate::simd::dispatch(
            #[inline(always)]
            || {
                for (i, r) in rows.clone().enumerate() {
                    let row = x.row_strided(r);
                    for cs in channel_chunks(C, chunk) {
                        let seg = cs.start * positions..cs.end * positions;
                        let len = seg.len();
                        // Straight into the outputs, or into the buffers and then out with
                        // streaming stores.
                        let (out, kept) = match bufs.as_mut() {
                            Some((by, bk)) => (&mut by[..len], kb.is_some().then_some(&mut bk[..len])),
                            None => {
                                (&mut yb.row_mut(i)[seg.clone()], kb.as_mut().map(|k| &mut k.row_mut(i)[seg.clone()]))
                            }
                        };
                        normalise::<T, A, UNIT>(act, row, cs, positions, (mean, scale, shift), out, kept);
                        if let Some((by, bk)) = bufs.as_ref() {
                            crate::simd::copy_streaming(&mut yb.row_mut(i)[seg.clone()], &by[..len]);
                            if let Some(k) = kb.as_mut() {
                                crate::simd::copy_streaming(&mut k.row_mut(i)[seg], &bk[..len]);
                            }
                        }
                    }
                }
            },
        );
        crate::simd::streaming_fence();
    });
}

/// Elements of the buffers through which the elementwise passes write a large batch with
/// streaming stores ([`stream_chunk`]).
const STREAM_LEN: usize = 4096;

/// Whether the elementwise passes of a normalisation of `values` values write them through a
/// buffer with streaming stores ([`copy_streaming`](crate::simd::copy_streaming)), and if so how
/// many channels at a time: on two threads or more, for a batch of at least 256 KB. The lines
/// these passes write were last written or read by the other thread's share of another layer
/// (whose products split the samples differently), and a plain store waits for the other core
/// to give each line up (the discriminator's step on two threads: 2.5 ms of 61 faster this way).
fn stream_chunk<T: Float>(pool: &Pool<T>, values: usize, channels: usize, positions: usize) -> Option<usize> {
    let large = values * std::mem::size_of::<T>() >= 1 << 18;
    (pool.threads() > 1 && large && positions <= STREAM_LEN && crate::simd::streaming_stores())
        .then(|| (STREAM_LEN / positions.max(1)).min(channels))
}

/// The channels `0..channels` in ranges of `chunk` (all at once for `None`).
fn channel_chunks(channels: usize, chunk: Option<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let step = chunk.unwrap_or(channels).max(1);
    (0..channels).step_by(step).map(move |c| c..(c + step).min(channels))
}

/// `out = act(k)` and `kept = k` for `k = (x - mean) * scale + shift` on channels `cs` of one
/// row (`out` and `kept` hold those channels' values).
#[inline(always)]
fn normalise<T: Float, A: Activation, const UNIT: bool>(
    act: A,
    row: StridedRow<'_, T>,
    cs: std::ops::Range<usize>,
    positions: usize,
    (mean, scale, shift): (&[T], &[T], &[T]),
    out: &mut [T],
    mut kept: Option<&mut [T]>,
) {
    for (j, c) in cs.enumerate() {
        let (m, s, b) = (mean[c], scale[c], shift[c]);
        let xr = row.skip(c * positions);
        let out = &mut out[j * positions..(j + 1) * positions];
        match kept.as_mut() {
            Some(k) => {
                let kr = &mut k[j * positions..(j + 1) * positions];
                for (p, (o, kv)) in out.iter_mut().zip(kr.iter_mut()).enumerate() {
                    let z = (strided_at::<T, UNIT>(xr, p) - m) * s + b;
                    *kv = z;
                    *o = act.apply(z);
                }
            }
            None => {
                for (p, o) in out.iter_mut().enumerate() {
                    *o = act.apply((strided_at::<T, UNIT>(xr, p) - m) * s + b);
                }
            }
        }
    }
}

/// The backward pass of `layer` in training, in place: `g` (`[batch, C * positions]`) holds the
/// gradient of the normalisation's output and, when `dx`, ends holding that of its input `x`.
/// `grads` receives the gradients of the weight and bias (added when `accumulate`; `None` for a
/// pass that discards the parameters' gradients). `stats` is what the forward pass kept.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float, const C: usize>(
    pool: &Pool<T>,
    layer: &BatchNorm<T, C>,
    grads: Option<&mut BatchNorm<T, C>>,
    positions: usize,
    g: MatMut<'_, T>,
    x: MatRef<'_, T>,
    stats: &mut [T],
    accumulate: bool,
    dx: bool,
) {
    backward_act(pool, layer, grads, positions, g, None, None, crate::Identity, x, stats, accumulate, dx)
}

/// [`backward`] through the activation `act` after the normalisation too: `g` holds the gradient
/// of the activation's output `y` (`z` its input, read only when the derivative needs it; both
/// `None` for [`Identity`](crate::Identity)).
#[allow(clippy::too_many_arguments)]
pub fn backward_act<T: Float, const C: usize, A: Activation>(
    pool: &Pool<T>,
    layer: &BatchNorm<T, C>,
    grads: Option<&mut BatchNorm<T, C>>,
    positions: usize,
    g: MatMut<'_, T>,
    y: Option<MatRef<'_, T>>,
    z: Option<MatRef<'_, T>>,
    act: A,
    x: MatRef<'_, T>,
    stats: &mut [T],
    accumulate: bool,
    dx: bool,
) {
    if x.strides().1 == 1 {
        backward_impl::<T, C, A, true>(pool, layer, grads, positions, g, y, z, act, x, stats, accumulate, dx)
    } else {
        backward_impl::<T, C, A, false>(pool, layer, grads, positions, g, y, z, act, x, stats, accumulate, dx)
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_impl<T: Float, const C: usize, A: Activation, const UNIT: bool>(
    pool: &Pool<T>,
    layer: &BatchNorm<T, C>,
    grads: Option<&mut BatchNorm<T, C>>,
    positions: usize,
    g: MatMut<'_, T>,
    y: Option<MatRef<'_, T>>,
    z: Option<MatRef<'_, T>>,
    act: A,
    x: MatRef<'_, T>,
    stats: &mut [T],
    accumulate: bool,
    dx: bool,
) {
    let n = g.nrows();
    let width = C * positions;
    assert!(g.ncols() == width && x.ncols() == width && x.nrows() == n, "batch normalisation of [{n}, {width}]");
    // The activation's output and input, read only when its derivative is not a constant 1.
    let yz = if A::NEEDS_VALUES {
        let (y, z) = (y.expect("the activation's output"), z.expect("the activation's input"));
        assert!(y.nrows() == n && y.ncols() == width && z.nrows() == n && z.ncols() == width);
        Some((y, z))
    } else {
        None
    };
    // Segment `c` of row `r` of the activation's output and input (empty without one).
    let act_rows = |r: usize, c: usize| -> (&[T], &[T]) {
        match &yz {
            Some((y, z)) => {
                (&y.row(r)[c * positions..(c + 1) * positions], &z.row(r)[c * positions..(c + 1) * positions])
            }
            None => (&[], &[]),
        }
    };
    // The gradient through the activation.
    #[inline(always)]
    fn through<T: Float, A: Activation>(act: A, gv: T, ys: &[T], zs: &[T], p: usize) -> T {
        if A::NEEDS_VALUES {
            gv * act.derivative(zs[p], ys[p])
        } else {
            gv
        }
    }
    let [mean, var, scale, _, sum_g, sum_gx] = parts_of(stats, C);
    let eps = T::of(BatchNorm::<T, C>::EPS);
    let (mean, var, scale): (&[T], &[T], &[T]) = (mean, var, scale);
    let inv_std = |c: usize| T::one() / (var[c] + eps).sqrt();
    let gr = g.as_ref();
    channel_sums(pool, n, n * width, sum_g, |r, c| {
        let gs = &gr.row(r)[c * positions..(c + 1) * positions];
        let (ys, zs) = act_rows(r, c);
        lanes_sum(positions, |p| through(act, gs[p], ys, zs, p))
    });
    channel_sums(pool, n, n * width, sum_gx, |r, c| {
        let gs = &gr.row(r)[c * positions..(c + 1) * positions];
        let (ys, zs) = act_rows(r, c);
        let row = x.row_strided(r);
        let xr = row.skip(c * positions);
        let (m, s) = (mean[c], inv_std(c));
        lanes_sum(positions, |p| through(act, gs[p], ys, zs, p) * ((strided_at::<T, UNIT>(xr, p) - m) * s))
    });
    if let Some(grads) = grads {
        let (dw, db) = grads.slices_mut();
        for c in 0..C {
            if accumulate {
                dw[c] += sum_gx[c];
                db[c] += sum_g[c];
            } else {
                dw[c] = sum_gx[c];
                db[c] = sum_g[c];
            }
        }
    }
    if !dx {
        return;
    }
    let _ = layer; // its weight is in `scale`, set by the forward pass
    let count = T::of((n * positions) as f64);
    let (sum_g, sum_gx): (&[T], &[T]) = (sum_g, sum_gx);
    let gs = SharedRows::new(g);
    let chunk = stream_chunk::<T>(pool, n * width, C, positions);
    pool.split_ranges(n, n * width, |rows| {
        // SAFETY: parts take disjoint rows (and `y`, `z` are other buffers than `g`).
        let mut gb = unsafe { gs.block(rows.start, rows.len()) };
        let mut buf = chunk.map(|_| [T::zero(); STREAM_LEN]);
        crate::simd::dispatch(
            #[inline(always)]
            || {
                for (i, r) in rows.clone().enumerate() {
                    let row = x.row_strided(r);
                    for cs in channel_chunks(C, chunk) {
                        let seg = cs.start * positions..cs.end * positions;
                        // Straight in place, or through the buffer and back with streaming stores.
                        let out = match buf.as_mut() {
                            Some(b) => {
                                b[..seg.len()].copy_from_slice(&gb.row_mut(i)[seg.clone()]);
                                &mut b[..seg.len()]
                            }
                            None => &mut gb.row_mut(i)[seg.clone()],
                        };
                        for (j, c) in cs.enumerate() {
                            let (m, s, k) = (mean[c], inv_std(c), scale[c]);
                            let (mg, mgx) = (sum_g[c] / count, sum_gx[c] / count);
                            let xr = row.skip(c * positions);
                            let (ys, zs) = act_rows(r, c);
                            let out = &mut out[j * positions..(j + 1) * positions];
                            for (p, o) in out.iter_mut().enumerate() {
                                let gd = through(act, *o, ys, zs, p);
                                let xhat = (strided_at::<T, UNIT>(xr, p) - m) * s;
                                *o = k * (gd - mg - xhat * mgx);
                            }
                        }
                        if let Some(b) = buf.as_ref() {
                            let len = seg.len();
                            crate::simd::copy_streaming(&mut gb.row_mut(i)[seg], &b[..len]);
                        }
                    }
                }
            },
        );
        crate::simd::streaming_fence();
    });
}
