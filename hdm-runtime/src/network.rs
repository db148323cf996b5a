//! What `#[network]` generates an implementation of, and the trainer that drives it.
//!
//! The macro implements [`Network`] for the model struct: its `#[doc(hidden)]` methods are the
//! compiled forward pass, the fused loss and the backward pass. Everything that is the same for
//! every network (input checks, buffers made once, the optimizer's phases, clipping, schedules)
//! lives here, in ordinary generic code.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView4};

use crate::aligned::AlignedVec;
use crate::gemm::{default_pool, gemm_with, MatMut, MatRef, Pool};
use crate::optim::{
    clip_coefficient, split_point, Optimizer, OptimizerState, PathScaled, PathSgdState, Plain, Reduction, Requirement,
    Schedule, SPLIT_LEN,
};
use crate::path::Accepts;
use crate::{Error, Float, Parameters, Result};

/// A batch of inputs, as the network's methods take it: an `ArrayView2` of rows `[batch, INPUT]`
/// (for images, each row one image in PyTorch's NCHW order, what `x.reshape(n, -1)` gives), or,
/// for a network of images, an `ArrayView4` `[batch, C, H, W]` (PyTorch's tensor), viewed as
/// rows without a copy (`tests/conv_inputs.rs`):
///
/// ```ignore
/// use hdm::prelude::*;
/// #[network(input = [1, 4, 4], loss = mse)]
/// struct Net {
///     conv: Conv2d<1, 2, 3>,
///     flat: Flatten,
///     fc: Linear<8, 1>,
/// }
/// let model = Net::<f32>::init(0);
/// let images = ndarray::Array4::<f32>::zeros((5, 1, 4, 4));
/// let rows = images.to_shape((5, 16)).unwrap().to_owned();
/// assert_eq!(model.forward(images.view()).unwrap(), model.forward(rows.view()).unwrap());
/// ```
pub trait Input<'a, T>: Sized {
    /// The batch as rows, checked against `shape` (one sample's, [`Network::INPUT_SHAPE`]) where
    /// the batch has one; `name` is the network's, for messages.
    #[doc(hidden)]
    fn __rows(self, shape: &[usize], name: &str) -> Result<ArrayView2<'a, T>>;
}

impl<'a, T> Input<'a, T> for ArrayView2<'a, T> {
    fn __rows(self, _: &[usize], _: &str) -> Result<ArrayView2<'a, T>> {
        Ok(self)
    }
}

impl<'a, T> Input<'a, T> for ArrayView4<'a, T> {
    fn __rows(self, shape: &[usize], name: &str) -> Result<ArrayView2<'a, T>> {
        let (n, c, h, w) = self.dim();
        if shape != [c, h, w] {
            return Err(Error::Shape {
                what: format!("input of {name}"),
                expected: format!("[batch, {}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
                got: format!("[{n}, {c}, {h}, {w}]"),
            });
        }
        let strides = self.strides().to_vec();
        self.into_shape_with_order((n, c * h * w)).map_err(|_| {
            Error::Other(format!(
                "input of {name}: a [{n}, {c}, {h}, {w}] view with strides {strides:?} whose images are not laid out \
                 channel by channel, row by row (NCHW); make it so first (`.as_standard_layout()`)"
            ))
        })
    }
}

/// A network compiled by `#[network]`.
///
/// The provided methods are the user's API: [`init`](Network::init), [`forward`](Network::forward),
/// [`loss`](Network::loss), [`gradients`](Network::gradients) and [`trainer`](Network::trainer).
pub trait Network<T: Float>: Parameters<T> + Clone + Send + Sync + Sized + 'static {
    /// The struct's name, for messages.
    const NAME: &'static str;
    /// The network's definition as written (the attribute's arguments, each field's name and
    /// type), which [`Trainer::save_checkpoint`] records and
    /// [`Trainer::load_checkpoint`] checks, so that a checkpoint of another network whose
    /// tensors happen to have the same shapes is refused.
    const STRUCTURE: &'static str = "";
    /// Width of an input row: the number of elements of one input sample.
    const INPUT: usize;
    /// Width of an output row.
    const OUTPUT: usize;
    /// The shape of one input sample: `[C, H, W]` for images (a row of the input holds them in
    /// PyTorch's NCHW order, channel by channel, each row by row), `[F]` for rows of features.
    const INPUT_SHAPE: &'static [usize];
    /// The shape of one output sample.
    const OUTPUT_SHAPE: &'static [usize];
    /// Number of parameter tensors (in [`Parameters`] order).
    const TENSORS: usize;
    /// Elements of scratch memory each thread needs for the network's convolutions (reserved
    /// in the pool's workspaces by the trainer and the predictor: [`Pool::reserve_scratch`]).
    const SCRATCH: usize;
    /// The smallest training batch: 2 when a batch normalisation of rows (`BatchNorm1d`) needs
    /// more than one value per feature for its statistics, as in PyTorch; 1 otherwise.
    const MIN_TRAIN_BATCH: usize;
    /// The parameter tensors (by their index in [`Parameters`] order) in the order the generated
    /// backward pass finishes their gradients: the last layer's first, each weight before its
    /// bias. Known at compile time, so that a data-parallel trainer
    /// ([`crate::distributed`]) plans its gradient buckets before the first step.
    const READY_ORDER: &'static [usize];
    /// The number of batch normalisations whose batch statistics a training forward pass keeps
    /// in the buffers ([`__batch_stats`](Network::__batch_stats)).
    const BATCH_STATS: usize;

    /// What the loss compares the output with: class labels (`ArrayView1<usize>`) for softmax
    /// cross-entropy, a matrix of the output's shape (`ArrayView2<T>`) for the other losses.
    type Target<'a>: Copy;

    /// The activation and gradient buffers of one batch size.
    type Buffers: Send;

    /// Whether Path-SGD's path scales are defined for the network:
    /// [`path::Homogeneous`](crate::path::Homogeneous), or a type saying why not.
    type PathCapability: Accepts<Plain>;

    /// A network with PyTorch's default initialisation, drawn from a generator seeded with
    /// `seed`: the same seed gives the same weights on every machine.
    ///
    /// # Panics
    /// When the parameters' memory cannot be allocated; [`try_init`](Network::try_init) returns
    /// an `Err` instead.
    fn init(seed: u64) -> Self {
        Self::try_init(seed).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`init`](Network::init), or an `Err` naming the network and the layer when the memory
    /// cannot be allocated (rather than an abort).
    fn try_init(seed: u64) -> Result<Self>;

    /// A network whose parameters are all zero (the shape of its gradient).
    ///
    /// # Panics
    /// When the memory cannot be allocated; [`try_zeros`](Network::try_zeros) returns an `Err`.
    fn zeros() -> Self {
        Self::try_zeros().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`zeros`](Network::zeros), or an `Err` when the memory cannot be allocated.
    fn try_zeros() -> Result<Self>;

    #[doc(hidden)]
    fn __buffers(max_batch: usize, with_grad: bool) -> Result<Self::Buffers>;
    #[doc(hidden)]
    fn __check_target(target: &Self::Target<'_>, batch: usize) -> Result<()>;
    /// The forward pass; `train` selects batch statistics for batch normalisation (PyTorch's
    /// `model.train()`), running statistics otherwise (`model.eval()`).
    #[doc(hidden)]
    fn __forward(&self, b: &mut Self::Buffers, x: MatRef<'_, T>, batch: usize, pool: &Pool<T>, train: bool);
    /// After a training forward pass: blends each batch normalisation's batch statistics into its
    /// running statistics.
    #[doc(hidden)]
    fn __update_running_stats(&mut self, b: &Self::Buffers, batch: usize);
    #[doc(hidden)]
    fn __output(b: &Self::Buffers, batch: usize) -> MatRef<'_, T>;
    #[doc(hidden)]
    fn __loss(b: &mut Self::Buffers, target: Self::Target<'_>, batch: usize, with_grad: bool) -> T;
    /// The backward pass from the gradient of the output (written by `__loss` or the caller
    /// into `__output_grad`).
    #[doc(hidden)]
    fn __backward<H: BackwardHook<T, Self>>(
        hook: &mut H,
        grads: &mut Self,
        b: &mut Self::Buffers,
        x: MatRef<'_, T>,
        batch: usize,
        pool: &Pool<T>,
        pass: BackwardPass,
    );
    /// The gradient of the output, read by the backward pass.
    #[doc(hidden)]
    fn __output_grad(b: &mut Self::Buffers, batch: usize) -> crate::gemm::MatMut<'_, T>;
    /// The gradient of the input, after a backward pass with `input_grad`.
    #[doc(hidden)]
    fn __input_grad(b: &Self::Buffers, batch: usize) -> MatRef<'_, T>;
    /// Fills the path factors of every tensor's optimizer state, and returns the path norm
    /// squared (the sum over every input-to-output path of the product of its squared weights).
    #[doc(hidden)]
    fn __path_scales<S: OptimizerState<T>>(&self, b: &mut Self::Buffers, states: &mut [S], pool: &Pool<T>) -> T;
    #[doc(hidden)]
    fn __tensor(&self, i: usize) -> &[T];
    #[doc(hidden)]
    fn __tensor_mut(&mut self, i: usize) -> &mut [T];
    /// The batch statistics of batch normalisation `i` left by the last training forward pass,
    /// which [`__update_running_stats`](Network::__update_running_stats) blends into the running
    /// statistics (a data-parallel trainer replaces them with those of the batch's first shard).
    #[doc(hidden)]
    fn __batch_stats(b: &mut Self::Buffers, i: usize) -> &mut [T];

    /// The network's output for a batch `x` of shape `[batch, INPUT]` (inference: batch
    /// normalisation uses its running statistics).
    fn forward<'x>(&self, x: impl Input<'x, T>) -> Result<Array2<T>> {
        let x = x.__rows(Self::INPUT_SHAPE, Self::NAME)?;
        let batch = check_input::<T, Self>(&x, None)?;
        let mut b = Self::__buffers(batch, false)?;
        self.__forward(&mut b, MatRef::from(x), batch, &default_pool::<T>(), false);
        let out = Self::__output(&b, batch);
        Ok(Array2::from_shape_fn((batch, Self::OUTPUT), |(i, j)| *out.at(i, j)))
    }

    /// The loss of a batch (inference: batch normalisation uses its running statistics).
    fn loss<'x>(&self, x: impl Input<'x, T>, target: Self::Target<'_>) -> Result<T> {
        self.loss_in_mode(x.__rows(Self::INPUT_SHAPE, Self::NAME)?, target, false)
    }

    /// The loss of a batch as a training step computes it: batch normalisation normalises with
    /// the batch's own statistics (PyTorch's `model.train()`); the running statistics are not
    /// changed. The same as [`loss`](Network::loss) for a network without batch normalisation.
    fn training_loss<'x>(&self, x: impl Input<'x, T>, target: Self::Target<'_>) -> Result<T> {
        self.loss_in_mode(x.__rows(Self::INPUT_SHAPE, Self::NAME)?, target, true)
    }

    #[doc(hidden)]
    fn loss_in_mode(&self, x: ArrayView2<'_, T>, target: Self::Target<'_>, train: bool) -> Result<T> {
        let batch = check_input::<T, Self>(&x, None)?;
        Self::__check_target(&target, batch)?;
        if train {
            check_train_batch::<T, Self>(batch)?;
        }
        let mut b = Self::__buffers(batch, false)?;
        self.__forward(&mut b, MatRef::from(x), batch, &default_pool::<T>(), train);
        Ok(Self::__loss(&mut b, target, batch, false))
    }

    /// The loss of a batch and the gradient of every parameter, returned as a network of the
    /// same shape (as `jax.value_and_grad` returns a pytree like the parameters). Computed as a
    /// training step computes them ([`training_loss`](Network::training_loss)), without changing
    /// the running statistics of batch normalisation.
    fn gradients<'x>(&self, x: impl Input<'x, T>, target: Self::Target<'_>) -> Result<(T, Self)> {
        let x = x.__rows(Self::INPUT_SHAPE, Self::NAME)?;
        let batch = check_input::<T, Self>(&x, None)?;
        Self::__check_target(&target, batch)?;
        check_train_batch::<T, Self>(batch)?;
        let x = MatRef::from(x);
        let mut b = Self::__buffers(batch, true)?;
        let pool = default_pool::<T>();
        self.__forward(&mut b, x, batch, &pool, true);
        let loss = Self::__loss(&mut b, target, batch, true);
        let mut grads = Self::zeros();
        let pass = BackwardPass { accumulate: false, input_grad: false, params: true };
        Self::__backward(&mut ReadOnly(self), &mut grads, &mut b, x, batch, &pool, pass);
        Ok((loss, grads))
    }

    /// The gradients of `sum(output * output_grad)`, where `output` is the network's output
    /// for `x` (computed as a training step computes it, with batch statistics, without
    /// changing the running statistics): the gradient of every parameter, shaped like the
    /// network, and that of the input, `[batch, INPUT]`. This is a vector-Jacobian product
    /// (`jax.vjp`, `torch.autograd.grad(output, [x, *params], output_grad)`): with `output_grad`
    /// the gradient of a loss computed outside the network (by another network, or by any Rust
    /// code) with respect to its output, it gives that loss's gradients.
    ///
    /// It allocates its buffers at each call; a training loop uses the [`Trainer`]'s
    /// [`forward`](Trainer::forward) and [`backward_from`](Trainer::backward_from) instead.
    fn vjp<'x>(&self, x: impl Input<'x, T>, output_grad: ArrayView2<'_, T>) -> Result<(Self, Array2<T>)> {
        let x = x.__rows(Self::INPUT_SHAPE, Self::NAME)?;
        let batch = check_input::<T, Self>(&x, None)?;
        check_output_grad::<T, Self>(&output_grad, batch)?;
        check_train_batch::<T, Self>(batch)?;
        let x = MatRef::from(x);
        let mut b = Self::__buffers(batch, true)?;
        let pool = default_pool::<T>();
        self.__forward(&mut b, x, batch, &pool, true);
        crate::kernels::copy(MatRef::from(output_grad), Self::__output_grad(&mut b, batch), false);
        let mut grads = Self::zeros();
        let pass = BackwardPass { accumulate: false, input_grad: true, params: true };
        Self::__backward(&mut ReadOnly(self), &mut grads, &mut b, x, batch, &pool, pass);
        Ok((grads, to_array(Self::__input_grad(&b, batch))))
    }

    /// A predictor for batches of up to `max_batch` rows: inference ([`Predictor::forward`],
    /// [`Predictor::loss`]) into buffers made here, once, so that it does not allocate.
    ///
    /// # Panics
    /// When the buffers cannot be made; [`try_predictor`](Network::try_predictor) returns an
    /// `Err` instead.
    fn predictor(&self, max_batch: usize) -> Predictor<T, Self> {
        Predictor::new(max_batch)
    }

    /// [`predictor`](Network::predictor), with an `Err` when its buffers cannot be made (a
    /// `max_batch` whose buffers overflow or do not fit in memory).
    fn try_predictor(&self, max_batch: usize) -> Result<Predictor<T, Self>> {
        Predictor::try_new(max_batch)
    }

    /// A trainer for batches of up to `max_batch` rows: every buffer the step needs is made here,
    /// once.
    ///
    /// # Panics
    /// When the buffers cannot be made; [`try_trainer`](Network::try_trainer) returns an `Err`
    /// instead.
    fn trainer<O: Optimizer<T>>(&self, optimizer: O, max_batch: usize) -> Trainer<T, Self, O>
    where
        Self::PathCapability: Accepts<O::Requires>,
    {
        Trainer::new(self, optimizer, max_batch)
    }

    /// [`trainer`](Network::trainer), with an `Err` when its buffers cannot be made (a
    /// `max_batch` whose buffers overflow or do not fit in memory).
    fn try_trainer<O: Optimizer<T>>(&self, optimizer: O, max_batch: usize) -> Result<Trainer<T, Self, O>>
    where
        Self::PathCapability: Accepts<O::Requires>,
    {
        Trainer::try_new(self, optimizer, max_batch)
    }

    /// Path-SGD's scale of every parameter (p = 2), shaped like the network: for the weight of
    /// an edge `u -> v`, `gamma_in(u) * gamma_out(v)`; for a bias, `gamma_out(v)`. See
    /// [`PathSgd`](crate::optim::PathSgd).
    fn path_scales(&self) -> Self
    where
        Self::PathCapability: Accepts<PathScaled>,
    {
        let (states, _) = path_pass(self);
        let mut out = Self::zeros();
        for (i, s) in states.iter().enumerate() {
            for (o, scale) in out.__tensor_mut(i).iter_mut().zip(s.scales()) {
                *o = scale;
            }
        }
        out
    }

    /// The path norm `phi_2(w)`: the square root of the sum, over every path from an input (or a
    /// bias) to an output, of the product of the squared weights along it. Path-SGD's
    /// regulariser; unchanged when a hidden unit of a ReLU network is rescaled.
    fn path_norm(&self) -> T
    where
        Self::PathCapability: Accepts<PathScaled>,
    {
        path_pass(self).1.sqrt()
    }
}

/// Runs the generated path passes of `model` outside training: every tensor's path factors, and
/// the path norm squared.
fn path_pass<T: Float, M: Network<T>>(model: &M) -> (Vec<PathSgdState<T>>, T) {
    let mut states: Vec<PathSgdState<T>> = (0..M::TENSORS).map(|_| PathSgdState::default()).collect();
    // Zero rows: only the path buffers, of the network's fixed sizes (checked while compiling).
    let mut buffers = M::__buffers(0, true).unwrap_or_else(|e| unreachable!("{e}"));
    let norm2 = model.__path_scales(&mut buffers, &mut states, &default_pool::<T>());
    (states, norm2)
}

/// A training batch must be large enough for batch statistics.
pub(crate) fn check_train_batch<T: Float, M: Network<T>>(batch: usize) -> Result<()> {
    if batch < M::MIN_TRAIN_BATCH {
        return Err(Error::Other(format!(
            "{}: a training batch of {batch} row: batch normalisation of rows needs at least {} rows for its \
             statistics (PyTorch raises \"Expected more than 1 value per channel when training\")",
            M::NAME,
            M::MIN_TRAIN_BATCH
        )));
    }
    Ok(())
}

/// The target of a network without a loss of its own (`#[network(loss = none)]`): a type with no
/// values, so that the methods that compute a loss (`loss`, `step`, ...) cannot be called on
/// it. Such a network is trained from the gradient of its output ([`Trainer::backward_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoTarget {}

/// What a generated backward pass computes besides the parameters' gradients.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardPass {
    /// Add the parameters' gradients to those already in the gradient network (a pass of an
    /// accumulation) instead of writing them.
    pub accumulate: bool,
    /// Compute the gradient of the network's input too.
    pub input_grad: bool,
    /// Compute the parameters' gradients (all but a pass of [`Then::Discard`]). Without them, a
    /// layer's weight gradient is skipped; bias and batch-normalisation gradients, which cost
    /// little (and the latter are needed for the input's), are still written.
    pub params: bool,
}

/// The elements of a matrix, copied into an array.
fn to_array<T: Float>(m: MatRef<'_, T>) -> Array2<T> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| *m.at(i, j))
}

/// A view of a matrix's elements, for the lifetime of the slice it was made from.
fn view_of<'a, T: Float>(m: MatRef<'a, T>) -> ArrayView2<'a, T> {
    let (rs, cs) = m.strides();
    let shape = ndarray::ShapeBuilder::strides((m.nrows(), m.ncols()), (rs, cs));
    // SAFETY: a `MatRef`'s elements lie inside the slice it was made from (checked when it was
    // made), borrowed for `'a`.
    unsafe { ArrayView2::from_shape_ptr(shape, m.as_ptr()) }
}

/// Checks a gradient of the output supplied by the caller: `[batch, OUTPUT]`.
fn check_output_grad<T: Float, M: Network<T>>(g: &ArrayView2<'_, T>, batch: usize) -> Result<()> {
    if g.dim() != (batch, M::OUTPUT) {
        return Err(Error::Shape {
            what: format!("gradient of the output of {}", M::NAME),
            expected: format!("[{batch}, {}] (the output's shape)", M::OUTPUT),
            got: format!("{:?}", g.shape()),
        });
    }
    if g.strides().iter().any(|&s| s < 0) {
        return Err(Error::Other(format!(
            "gradient of the output of {}: views with reversed axes are not supported",
            M::NAME
        )));
    }
    Ok(())
}

/// Called by the generated backward pass as each tensor's gradient becomes final.
#[doc(hidden)]
pub trait BackwardHook<T, M> {
    /// The network whose gradient is being computed.
    fn model(&self) -> &M;
    /// Tensor `i`'s gradient is complete, and the backward pass will not read tensor `i` again.
    fn ready(&mut self, i: usize, grad: &[T]);

    /// Whether this pass, over a batch of `batch` rows, hands the weight gradients of Linear
    /// layers used once to [`ready_outer`](BackwardHook::ready_outer) as the products (sums of
    /// outer products) they are, instead of computing them first and calling
    /// [`ready`](BackwardHook::ready). The same answer for the whole pass.
    fn updates_outer(&self, batch: usize) -> bool {
        let _ = batch;
        false
    }

    /// Tensor `i`'s gradient is `dy^T x`, and final (asked only when
    /// [`updates_outer`](BackwardHook::updates_outer)): the hook writes it into `grad`, in its
    /// own time, and the backward pass will not read tensor `i` again.
    fn ready_outer(&mut self, i: usize, dy: MatRef<'_, T>, x: MatRef<'_, T>, grad: &mut [T]) {
        let _ = (i, dy, x, grad);
        unreachable!("ready_outer without updates_outer");
    }
}

pub(crate) struct ReadOnly<'a, M>(pub(crate) &'a M);

impl<T, M> BackwardHook<T, M> for ReadOnly<'_, M> {
    fn model(&self) -> &M {
        self.0
    }
    fn ready(&mut self, _: usize, _: &[T]) {}
}

/// Updates each tensor as soon as its gradient is ready (when nothing needs every gradient first).
struct UpdateHook<'a, T: Float, M, O: Optimizer<T>> {
    model: &'a mut M,
    optimizer: &'a O,
    states: &'a mut [O::State],
    step: O::Step,
    immediate: bool,
    /// Whether a Linear layer's weight gradient `dy^T x` is made and applied a block of rows at a
    /// time ([`update_outer`] at batch 1, [`update_product`] above): immediate updates by an
    /// elementwise optimizer, the gradients not accumulated over several passes.
    outer: bool,
    sum: T,
    pool: &'a Pool<T>,
    /// Where the weight gradients of batch-1 updates are kept as outer products.
    deferred: &'a mut DeferredGrads<T>,
}

impl<T: Float, M: Network<T>, O: Optimizer<T>> BackwardHook<T, M> for UpdateHook<'_, T, M, O> {
    fn model(&self) -> &M {
        self.model
    }
    #[inline]
    fn ready(&mut self, i: usize, grad: &[T]) {
        self.deferred.stale[i] = false;
        if self.immediate {
            let param = self.model.__tensor_mut(i);
            self.sum += update_tensor(self.pool, self.optimizer, &self.step, param, grad, &mut self.states[i]);
        }
    }

    fn updates_outer(&self, _batch: usize) -> bool {
        self.outer
    }

    fn ready_outer(&mut self, i: usize, dy: MatRef<'_, T>, x: MatRef<'_, T>, grad: &mut [T]) {
        let param = self.model.__tensor_mut(i);
        let state = &mut self.states[i];
        if dy.nrows() == 1 && dy.strides().1 == 1 && x.nrows() == 1 && x.strides().1 == 1 {
            let (dy, x) = (dy.row(0), x.row(0));
            let grad = if self.deferred.keep(i, dy, x) { None } else { Some(grad) };
            update_outer(self.pool, self.optimizer, &self.step, param, dy, x, grad, state);
        } else {
            self.deferred.stale[i] = false;
            update_product(self.pool, self.optimizer, &self.step, param, dy.t(), x, grad, state);
        }
    }
}

/// The update of a weight whose gradient is the product `a b` (a Linear layer's `dy^T x`), for
/// an elementwise optimizer: the product calls back with each block of rows of the gradient as
/// soon as they are final ([`gemm_then`](crate::gemm::gemm_then); for a batch up to the kernel's
/// `kc`, its `mc` rows at a time, 200 KB for 784 columns), and the block's parameters are updated
/// while the block is in cache, instead of the whole gradient written to memory and read back by
/// the update. The gradient is the product's and each element moves as the optimizer moves it
/// over the whole tensor (it is elementwise): the bits are those of the product and then the
/// update. On two threads a large tensor is computed and updated in two blocks of rows (whole
/// kernel tiles), one per thread, each element again as on one thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_product<T: Float, O: Optimizer<T>>(
    pool: &Pool<T>,
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    grad: &mut [T],
    state: &mut O::State,
) {
    let (m, n) = (a.nrows(), b.ncols());
    assert!(param.len() == m * n && grad.len() == param.len(), "a product's shape");
    let mr = crate::gemm::kernel_info::<T>().mr;
    if pool.threads() < 2 || param.len() < SPLIT_LEN || m <= mr {
        return pool.on_caller(|ws| product_rows(ws, optimizer, step, param, a, b, grad, O::chunk(state), false));
    }
    // As `update_tensor` streams its halves' stores (see `update_chunk_streaming`).
    let stream = optimizer.elementwise() && crate::simd::streaming_stores();
    let rows = (split_point(param.len()) / n).next_multiple_of(mr).min(m - 1);
    let (c0, c1) = O::split_chunk(O::chunk(state), rows * n);
    let (p0, p1) = param.split_at_mut(rows * n);
    let (g0, g1) = grad.split_at_mut(rows * n);
    let (a0, a1) = (a.rows(0, rows), a.rows(rows, m - rows));
    pool.join(
        |ws| product_rows(ws, optimizer, step, p0, a0, b, g0, c0, stream),
        move |ws| product_rows(ws, optimizer, step, p1, a1, b, g1, c1, stream),
    );
}

/// [`update_product`] on one thread, over rows of `param` and the chunk of their state; with
/// `stream`, the parameters are stored by [`update_chunk_streaming`].
#[allow(clippy::too_many_arguments)]
fn product_rows<T: Float, O: Optimizer<T>>(
    ws: &mut crate::gemm::Workspace<T>,
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    grad: &mut [T],
    chunk: O::Chunk<'_>,
    stream: bool,
) {
    let n = b.ncols();
    let mut chunk = Some(chunk);
    let mut param = param;
    crate::gemm::gemm_then(ws, a, b, grad, |rows, g| {
        let (head, rest) = O::split_chunk(chunk.take().expect("a chunk per block"), g.len());
        let (p, p_rest) = std::mem::take(&mut param).split_at_mut(g.len());
        debug_assert_eq!(rows.len() * n, g.len());
        if stream {
            update_chunk_streaming(optimizer, step, p, g, head);
        } else {
            optimizer.update_chunk(step, p, g, head);
        }
        (chunk, param) = (Some(rest), p_rest);
    });
    debug_assert!(param.is_empty(), "every row updated");
}

/// Elements of a weight gradient made at a time by [`update_outer`] before the update reads them
/// back: 16 KB of `f32`, well inside the first-level cache.
const OUTER_BLOCK: usize = 4096;

/// The update of a weight whose gradient is the outer product `dy^T x` of one row each (a Linear
/// layer's at batch 1), for an elementwise optimizer: the gradient is made a block of rows at a
/// time, each block updated while it is in the first-level cache, instead of the whole gradient
/// written and then read back from memory by the update. The blocks are written to `grad`, or,
/// when it is `None` (the trainer keeps `dy` and `x` instead, [`DeferredGrads`]), to a block on
/// the stack that each block reuses: then the update writes no gradient to memory at all. Each
/// element is the matrix product's: `dy[r] * x[c] + 0` is the kernel's `fma(dy[r], x[c], 0)`
/// (one rounding, a negative zero made positive), and the optimizer, being elementwise, moves
/// each element as over the whole tensor. On two threads a large tensor is updated in two
/// blocks of rows, one per thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_outer<T: Float, O: Optimizer<T>>(
    pool: &Pool<T>,
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    dy: &[T],
    x: &[T],
    grad: Option<&mut [T]>,
    state: &mut O::State,
) {
    let cols = x.len();
    assert!(param.len() == dy.len() * cols, "an outer product's shape");
    assert!(grad.as_ref().is_none_or(|g| g.len() == param.len()), "a gradient's shape");
    assert!(grad.is_some() || cols <= OUTER_BLOCK, "rows longer than a block keep their gradient");
    // (A single row, however long, stays whole: the halves are blocks of rows.)
    if pool.threads() < 2 || param.len() < SPLIT_LEN || dy.len() < 2 {
        return outer_rows(optimizer, step, param, dy, x, grad, O::chunk(state));
    }
    let rows = (split_point(param.len()) / cols).clamp(1, dy.len() - 1);
    let (c0, c1) = O::split_chunk(O::chunk(state), rows * cols);
    let (p0, p1) = param.split_at_mut(rows * cols);
    let (g0, g1) = match grad {
        Some(g) => {
            let (g0, g1) = g.split_at_mut(rows * cols);
            (Some(g0), Some(g1))
        }
        None => (None, None),
    };
    let (d0, d1) = dy.split_at(rows);
    pool.join(
        |_| outer_rows(optimizer, step, p0, d0, x, g0, c0),
        move |_| outer_rows(optimizer, step, p1, d1, x, g1, c1),
    );
}

/// [`update_outer`] on one thread, over rows of `param` and the chunk of their state.
fn outer_rows<T: Float, O: Optimizer<T>>(
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    dy: &[T],
    x: &[T],
    mut grad: Option<&mut [T]>,
    mut chunk: O::Chunk<'_>,
) {
    /// A block of the gradient on the stack, on a cache line (a vector load or store that
    /// crosses one is slower, and a load cannot be forwarded from such a store).
    #[repr(align(64))]
    struct Block<T>([T; OUTER_BLOCK]);
    let mut own = None;
    let cols = x.len();
    let block = (OUTER_BLOCK / cols.max(1)).max(1);
    for (r0, d) in (0..dy.len()).step_by(block).zip(dy.chunks(block)) {
        let (a, b) = (r0 * cols, (r0 + d.len()) * cols);
        let (head, rest) = O::split_chunk(chunk, b - a);
        chunk = rest;
        let g = match grad.as_deref_mut() {
            Some(grad) => &mut grad[a..b],
            // (`block * cols` is at most `OUTER_BLOCK` but for rows longer than it)
            None if b - a <= OUTER_BLOCK => &mut own.get_or_insert_with(|| Block([T::zero(); OUTER_BLOCK])).0[..b - a],
            None => unreachable!("rows longer than a block keep their gradient (update_outer)"),
        };
        outer_product(g, d, x);
        optimizer.update_chunk(step, &mut param[a..b], g, head);
    }
}

/// `g <- d^T x` (rows `d.len()`, columns `x.len()`), each element `d[r] * x[c] + 0`: the matrix
/// product's `fma(d[r], x[c], 0)` (one rounding, a negative zero made positive).
fn outer_product<T: Float>(g: &mut [T], d: &[T], x: &[T]) {
    let cols = x.len();
    crate::simd::dispatch(
        #[inline(always)]
        || {
            for (row, &d) in g.chunks_exact_mut(cols).zip(d) {
                for (g, &x) in row.iter_mut().zip(x) {
                    *g = d * x + T::zero();
                }
            }
        },
    );
}

/// The weight gradients of a [`Trainer`]'s last step that it keeps as the outer products
/// `dy^T x` they are (Linear layers at batch 1, updated by [`update_outer`] without writing
/// them), and writes into the gradients only when they are read: [`Trainer::gradients`], or a
/// pass that may read or add to them. The values written are those the step would have written.
pub(crate) struct DeferredGrads<T> {
    /// Per tensor: room for `dy` and `x` when the tensor is a matrix `[rows, cols]` whose rows fit
    /// the update's block on the stack, `None` for the others.
    factors: Vec<Option<(AlignedVec<T>, AlignedVec<T>)>>,
    /// Per tensor: whether its gradient is the outer product of `factors`, not written yet.
    stale: Vec<bool>,
}

impl<T: Float> DeferredGrads<T> {
    /// Room for every matrix-shaped parameter of `model` (allocated now: steps never allocate).
    fn new<M: Network<T>>(model: &M) -> Result<Self> {
        let mut factors = Vec::with_capacity(M::TENSORS);
        for p in model.params() {
            factors.push(match p.shape[..] {
                [rows, cols] if cols <= OUTER_BLOCK => {
                    Some((crate::__private::zeroed(M::NAME, 1, rows)?, crate::__private::zeroed(M::NAME, 1, cols)?))
                }
                _ => None,
            });
        }
        Ok(DeferredGrads { stale: vec![false; factors.len()], factors })
    }

    /// Keeps tensor `i`'s gradient as `dy^T x` when there is room for it; whether it did.
    fn keep(&mut self, i: usize, dy: &[T], x: &[T]) -> bool {
        let kept = match &mut self.factors[i] {
            Some((d, v)) if d.len() == dy.len() && v.len() == x.len() => {
                d.copy_from_slice(dy);
                v.copy_from_slice(x);
                true
            }
            _ => false,
        };
        self.stale[i] = kept;
        kept
    }

    /// Writes the kept gradients into `grads`.
    fn write<M: Network<T>>(&mut self, grads: &mut M) {
        for (i, stale) in self.stale.iter_mut().enumerate() {
            if std::mem::take(stale) {
                let (dy, x) = self.factors[i].as_ref().expect("a kept gradient's factors");
                outer_product(grads.__tensor_mut(i), dy, x);
            }
        }
    }
}

/// One tensor's update. On a pool of two threads or more, a large tensor's update is split in
/// two halves run side by side: elementwise optimizers update each half on its own; an optimizer
/// summing over the tensor ([`Reduction::PerTensor`]) sums each half, adds the two sums (its own
/// summation tree does the same on one thread) and then moves each half. Every element is thus
/// computed as on one thread: the bits do not depend on the number of threads.
pub(crate) fn update_tensor<T: Float, O: Optimizer<T>>(
    pool: &Pool<T>,
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    grad: &[T],
    state: &mut O::State,
) -> T {
    let reduction = optimizer.reduction();
    let splittable = reduction != Reduction::None || optimizer.elementwise();
    if pool.threads() < 2 || param.len() < SPLIT_LEN || !splittable {
        return optimizer.update(step, param, grad, state);
    }
    let mid = split_point(param.len());
    let sum = {
        let (c0, c1) = O::split_chunk(O::chunk(state), mid);
        let (p0, p1) = param.split_at_mut(mid);
        let (g0, g1) = grad.split_at(mid);
        let (a, b) = if reduction == Reduction::None && optimizer.elementwise() && crate::simd::streaming_stores() {
            pool.join(
                |_| update_chunk_streaming(optimizer, step, p0, g0, c0),
                move |_| update_chunk_streaming(optimizer, step, p1, g1, c1),
            )
        } else {
            pool.join(|_| optimizer.update_chunk(step, p0, g0, c0), move |_| optimizer.update_chunk(step, p1, g1, c1))
        };
        a + b
    };
    if reduction == Reduction::PerTensor {
        apply_tensor(pool, optimizer, step, sum, param, state);
        return T::zero();
    }
    sum
}

/// Elements per block of [`update_chunk_streaming`] (8 KB of f64, 4 KB of f32: in L1 with the
/// block's gradient and state).
const STREAM_BLOCK: usize = 1024;

/// [`Optimizer::update_chunk`] of an elementwise optimizer, by blocks: each block of parameters
/// is copied into a buffer, updated there, and stored back with non-temporal stores
/// ([`copy_streaming`](crate::simd::copy_streaming)). On two threads the other thread has just
/// read these parameters (its share of the products), and a plain store to a line the other core
/// holds waits for that core to drop it: on a virtual machine whose two CPUs sit on different
/// cache dies, Adam's update of the discriminator's 6400 x 1024 weight took 12 ms instead of
/// 2 ms that way. Every element is updated as by one call over the whole chunk (the optimizer is
/// elementwise), so the bits are the same.
fn update_chunk_streaming<T: Float, O: Optimizer<T>>(
    optimizer: &O,
    step: &O::Step,
    param: &mut [T],
    grad: &[T],
    chunk: O::Chunk<'_>,
) -> T {
    // Up to the first 64-byte boundary in place, so that every block stores whole cache lines.
    let head = param.as_ptr().align_offset(64).min(param.len());
    let (c0, mut chunk) = O::split_chunk(chunk, head);
    let (p0, mut param) = param.split_at_mut(head);
    let (g0, mut grad) = grad.split_at(head);
    let mut sum = optimizer.update_chunk(step, p0, g0, c0);
    let mut buf = [T::zero(); STREAM_BLOCK];
    while !param.is_empty() {
        let n = param.len().min(STREAM_BLOCK);
        let (c, c_rest) = O::split_chunk(chunk, n);
        let (p, p_rest) = param.split_at_mut(n);
        let (g, g_rest) = grad.split_at(n);
        let buf = &mut buf[..n];
        buf.copy_from_slice(p);
        sum += optimizer.update_chunk(step, buf, g, c);
        crate::simd::copy_streaming(p, buf);
        (chunk, param, grad) = (c_rest, p_rest, g_rest);
    }
    crate::simd::streaming_fence();
    sum
}

/// The second phase of an optimizer with a [`Reduction`] on one tensor, split in halves over two
/// threads when large (every element moves by itself once the sum is known).
fn apply_tensor<T: Float, O: Optimizer<T>>(
    pool: &Pool<T>,
    optimizer: &O,
    step: &O::Step,
    total: T,
    param: &mut [T],
    state: &mut O::State,
) {
    if pool.threads() < 2 || param.len() < SPLIT_LEN {
        return optimizer.apply(step, total, param, state);
    }
    let mid = split_point(param.len());
    let (c0, c1) = O::split_chunk(O::chunk(state), mid);
    let (p0, p1) = param.split_at_mut(mid);
    pool.join(|_| optimizer.apply_chunk(step, total, p0, c0), move |_| optimizer.apply_chunk(step, total, p1, c1));
}

/// A tensor's sum of squares (for gradient clipping), taken as the sums of a [`Reduction`] are: a
/// tensor of at least [`SPLIT_LEN`] elements sums its two parts at [`split_point`] separately and
/// adds them, recursively; on two threads or more the two top halves are summed side by side, with
/// the bits of one thread.
fn sum_of_squares_tree<T: Float>(pool: &Pool<T>, x: &[T]) -> T {
    fn tree<T: Float>(x: &[T]) -> T {
        if x.len() < SPLIT_LEN {
            return crate::kernels::sum_of_squares(x);
        }
        let (a, b) = x.split_at(split_point(x.len()));
        tree(a) + tree(b)
    }
    if pool.threads() < 2 || x.len() < SPLIT_LEN {
        return tree(x);
    }
    let (a, b) = x.split_at(split_point(x.len()));
    let (sa, sb) = pool.join(|_| tree(a), move |_| tree(b));
    sa + sb
}

/// Checks a batch's shape: `INPUT` columns, and at most `max_batch` rows when given. Returns the
/// number of rows.
pub fn check_input<T: Float, M: Network<T>>(x: &ArrayView2<'_, T>, max_batch: Option<usize>) -> Result<usize> {
    let (rows, cols) = x.dim();
    if cols != M::INPUT {
        return Err(Error::Shape {
            what: format!("input of {}", M::NAME),
            expected: format!("[batch, {}]", M::INPUT),
            got: format!("[{rows}, {cols}]"),
        });
    }
    if x.strides().iter().any(|&s| s < 0) {
        return Err(Error::Other(format!("input of {}: views with reversed axes are not supported", M::NAME)));
    }
    if let Some(max) = max_batch {
        if rows > max {
            return Err(Error::BatchTooLarge { batch: rows, max });
        }
        if rows == 0 {
            return Err(Error::Other(format!("input of {}: empty batch (0 rows)", M::NAME)));
        }
    }
    Ok(rows)
}

/// Checks class labels: one per row, each below `classes`.
pub fn check_labels(labels: &ArrayView1<'_, usize>, batch: usize, classes: usize) -> Result<()> {
    if labels.len() != batch {
        return Err(Error::Shape {
            what: "labels".into(),
            expected: format!("{batch} labels (one per input row)"),
            got: format!("{}", labels.len()),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(Error::Target(format!("label {l} at row {i} is out of range: the network has {classes} classes")));
    }
    Ok(())
}

/// Checks dense targets: the output's shape `[batch, width]`.
pub fn check_targets<T: Float>(targets: &ArrayView2<'_, T>, batch: usize, width: usize) -> Result<()> {
    if targets.dim() != (batch, width) {
        return Err(Error::Shape {
            what: "targets".into(),
            expected: format!("[{batch}, {width}]"),
            got: format!("{:?}", targets.shape()),
        });
    }
    if targets.strides().iter().any(|&s| s < 0) {
        return Err(Error::Other("targets: views with reversed axes are not supported".into()));
    }
    Ok(())
}

/// Inference without allocation: [`Network::forward`] and [`Network::loss`] into activation
/// buffers made once, for batches of up to `max_batch` rows. Made by [`Network::predictor`];
/// the inference counterpart of [`Trainer`], for evaluation loops and serving.
///
/// ```
/// # use hdm_runtime::{Network, Result};
/// # fn run<M: Network<f32>>(model: &M, batches: &[ndarray::Array2<f32>]) -> Result<()> {
/// let mut predictor = model.predictor(100); // buffers for batches of up to 100 rows
/// for x in batches {
///     let out = predictor.forward(model, x.view())?; // a view into the predictor's buffers
///     println!("first row: {}", out.row(0));
/// }
/// # Ok(()) }
/// ```
pub struct Predictor<T: Float, M: Network<T>> {
    buffers: M::Buffers,
    max_batch: usize,
    pool: std::sync::Arc<Pool<T>>,
}

impl<T: Float, M: Network<T>> Predictor<T, M> {
    /// A predictor for `M`'s shape and batches of up to `max_batch` rows.
    ///
    /// # Panics
    /// When the buffers cannot be made (their size overflows, or the memory is not there);
    /// [`try_new`](Predictor::try_new) returns that as an `Err`.
    pub fn new(max_batch: usize) -> Self {
        Self::try_new(max_batch).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Predictor::new), with an `Err` when the buffers cannot be made.
    pub fn try_new(max_batch: usize) -> Result<Self> {
        let buffers = M::__buffers(max_batch, false)?;
        let pool = default_pool::<T>();
        pool.reserve_scratch(M::SCRATCH);
        Ok(Predictor { buffers, max_batch, pool })
    }

    /// Runs on `pool` rather than on the default pool ([`crate::set_num_threads`]).
    pub fn with_pool(mut self, pool: std::sync::Arc<Pool<T>>) -> Self {
        pool.reserve_scratch(M::SCRATCH);
        self.pool = pool;
        self
    }

    /// The largest batch this predictor takes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// `model`'s output for the batch `x` (`[batch, INPUT]`, 1 to `max_batch` rows): the values
    /// of [`Network::forward`], as a view into the predictor's buffers, valid until its next
    /// call. Does not allocate.
    pub fn forward<'x>(&mut self, model: &M, x: impl Input<'x, T>) -> Result<ArrayView2<'_, T>> {
        let x = x.__rows(M::INPUT_SHAPE, M::NAME)?;
        let batch = check_input::<T, M>(&x, Some(self.max_batch))?;
        Ok(self.run(model, x, batch))
    }

    /// The forward pass of a checked batch of `batch` rows, and a view of its output.
    fn run(&mut self, model: &M, x: ArrayView2<'_, T>, batch: usize) -> ArrayView2<'_, T> {
        let _awake = self.pool.awake();
        model.__forward(&mut self.buffers, MatRef::from(x), batch, &self.pool, false);
        view_of(M::__output(&self.buffers, batch))
    }

    /// `model`'s loss on the batch `x` against `target`: the value of [`Network::loss`]. Does
    /// not allocate.
    pub fn loss<'x>(&mut self, model: &M, x: impl Input<'x, T>, target: M::Target<'_>) -> Result<T> {
        Ok(self.forward_and_loss(model, x, target, |_| ())?.1)
    }

    /// One forward pass for both: `look` sees the output (as [`forward`](Self::forward) returns
    /// it), then the loss against `target` is computed; returns what `look` returned and the loss
    /// (as accuracy and loss for an evaluation). Does not allocate.
    pub fn forward_and_loss<'x, R>(
        &mut self,
        model: &M,
        x: impl Input<'x, T>,
        target: M::Target<'_>,
        look: impl FnOnce(ArrayView2<'_, T>) -> R,
    ) -> Result<(R, T)> {
        let x = x.__rows(M::INPUT_SHAPE, M::NAME)?;
        let batch = check_input::<T, M>(&x, Some(self.max_batch))?;
        M::__check_target(&target, batch)?;
        let r = look(self.run(model, x, batch));
        Ok((r, M::__loss(&mut self.buffers, target, batch, false)))
    }
}

/// Trains a network with one optimizer: made by [`Network::trainer`], which sizes every buffer
/// once, so [`step`](Trainer::step) never allocates.
pub struct Trainer<T: Float, M: Network<T>, O: Optimizer<T>> {
    /// The optimizer; its hyperparameters may be changed between steps.
    pub optimizer: O,
    pub(crate) states: Vec<O::State>,
    pub(crate) grads: M,
    pub(crate) buffers: M::Buffers,
    max_batch: usize,
    pub(crate) t: u64,
    pub(crate) schedule: Schedule,
    pub(crate) clip_grad_norm: Option<f64>,
    pub(crate) pool: std::sync::Arc<Pool<T>>,
    /// A copy of the input of the last [`forward`](Trainer::forward), which its backward pass reads.
    input: crate::aligned::AlignedVec<T>,
    /// The rows of the forward pass whose activations the buffers hold for a backward pass.
    kept: Option<usize>,
    /// The rows of the input gradient the buffers hold.
    input_grad_rows: Option<usize>,
    /// Whether `grads` holds the gradients of [`Then::Accumulate`] passes not yet applied.
    accumulated: bool,
    /// Weight gradients of the last step kept as the outer products they are, written into
    /// `grads` when read.
    deferred: DeferredGrads<T>,
    pub(crate) on_nonfinite: OnNonFinite,
    skipped: u64,
    flush_subnormals: bool,
}

/// What a [`Trainer`] does with a step whose loss or gradient is not finite (NaN or infinite):
/// see [`Trainer::with_finite_guard`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnNonFinite {
    /// No check, PyTorch's default: the update is made whatever the values.
    #[default]
    Update,
    /// The step returns an `Err` naming it and leaves the parameters, the optimizer's state, the
    /// running statistics and the step count as they were (`clip_grad_norm_` with
    /// `error_if_nonfinite=True`, or anomaly mode, in PyTorch).
    Error,
    /// The step leaves everything as it was, returns its (non-finite) loss and is counted in
    /// [`Trainer::skipped_steps`] (optax's `apply_if_finite`); the training loop reports it.
    Skip,
}

/// What a backward pass of [`Trainer::backward`] or [`Trainer::backward_from`] does with the
/// gradients of the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Applies the optimizer, fused with the pass as in [`Trainer::step`]: each tensor is updated
    /// as soon as its gradient is final. The gradients of earlier [`Accumulate`](Then::Accumulate)
    /// passes are added first (as `loss.backward()` adds to `.grad` in PyTorch before
    /// `optimizer.step()`).
    Update,
    /// Adds them to the trainer's gradients, for a later pass that updates: the gradient of a sum
    /// of losses computed by several passes (a discriminator's loss on a fake batch and on a real
    /// one, each normalised with its own batch statistics).
    Accumulate,
    /// Leaves the parameters and the trainer's gradients alone: a pass for the gradient of the
    /// input only (a discriminator's, when training a generator through it). An error while
    /// gradients of [`Accumulate`](Then::Accumulate) passes wait for their update.
    Discard,
}

impl<T: Float, M: Network<T>, O: Optimizer<T>> Trainer<T, M, O> {
    /// A trainer for `model`'s shape, for batches of up to `max_batch` rows.
    ///
    /// # Panics
    /// When the buffers cannot be made (their size overflows, or the memory is not there);
    /// [`try_new`](Trainer::try_new) returns that as an `Err`.
    pub fn new(model: &M, optimizer: O, max_batch: usize) -> Self
    where
        M::PathCapability: Accepts<O::Requires>,
    {
        Self::try_new(model, optimizer, max_batch).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Trainer::new), with an `Err` when the buffers cannot be made.
    pub fn try_new(model: &M, optimizer: O, max_batch: usize) -> Result<Self>
    where
        M::PathCapability: Accepts<O::Requires>,
    {
        let mut buffers = M::__buffers(max_batch, true)?;
        let input = crate::__private::zeroed(M::NAME, max_batch, M::INPUT)?;
        let mut states: Vec<O::State> = (0..M::TENSORS).map(|i| optimizer.init(model.__tensor(i).len())).collect();
        let pool = default_pool::<T>();
        pool.reserve_scratch(M::SCRATCH);
        if O::Requires::PATH_SCALES {
            // Sizes the states' path factors now, so that the steps only overwrite them.
            model.__path_scales(&mut buffers, &mut states, &pool);
        }
        Ok(Trainer {
            optimizer,
            states,
            deferred: DeferredGrads::new::<M>(model)?,
            grads: M::try_zeros()?,
            buffers,
            max_batch,
            t: 0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            pool,
            input,
            kept: None,
            input_grad_rows: None,
            accumulated: false,
            on_nonfinite: OnNonFinite::Update,
            skipped: 0,
            flush_subnormals: false,
        })
    }

    /// Checks every update for non-finite values first: the loss (before the running statistics
    /// of batch normalisation are updated) and the global norm of the gradients (before any
    /// parameter moves), and then does what `on` says. Costs one pass over the gradients, and
    /// the updates wait for the end of the backward pass (as with gradient clipping).
    ///
    /// A learning rate so large that the update itself overflows is seen at the next step, whose
    /// loss is then not finite. [`forward`](Trainer::forward) of the split step updates the
    /// running statistics before any loss exists; there, check its output yourself.
    pub fn with_finite_guard(mut self, on: OnNonFinite) -> Self {
        self.on_nonfinite = on;
        self
    }

    /// Flushes subnormal values to zero in the optimizer's update (off by default): a gradient
    /// element below the smallest normal value (`f32::MIN_POSITIVE`, about 1.2e-38) is read as
    /// zero, a moment or momentum that would fall below it is stored as zero, and a step or a
    /// squared term that would fall below it is zero ([`Optimizer::flush_subnormals`]).
    ///
    /// When the loss of a batch reaches zero, the optimizer's moments decay towards zero step
    /// after step and become subnormal (a tenth of Adam's state after 2,000 steps on one fixed
    /// batch of the MLP benchmark), and arithmetic on subnormal values is many times slower on
    /// some CPUs (Intel's above all). JAX (XLA) flushes them by default; PyTorch does not
    /// (`torch.set_flush_denormal(True)` turns the CPU's flush-to-zero mode on for the whole
    /// process). hdm flushes in its own loops instead of changing the CPU's floating-point
    /// mode, so nothing else in the program is affected and the bits are the same on every CPU
    /// and vector width. Off, the update is `torch.optim`'s bit for bit; on, it differs only
    /// where a value would have been subnormal. The forward and backward passes are not
    /// flushed.
    pub fn with_flush_subnormals(mut self, on: bool) -> Self {
        self.flush_subnormals = on;
        self
    }

    /// The scalars of the update of step `t`: the optimizer's, at the schedule's learning rate,
    /// flushing subnormal values when asked.
    pub(crate) fn prepare(&self, t: u64) -> O::Step {
        let step = self.optimizer.prepare(t, self.schedule.factor(t));
        if self.flush_subnormals {
            O::flush_subnormals(step)
        } else {
            step
        }
    }

    /// Updates skipped because of non-finite values ([`OnNonFinite::Skip`]).
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    /// `Ok(true)` to go on with an update whose `what` is `value`; `Ok(false)` to skip it (and
    /// count it); or the `Err` naming the step.
    pub(crate) fn guard(&mut self, what: &str, value: f64) -> Result<bool> {
        if self.on_nonfinite == OnNonFinite::Update || value.is_finite() {
            return Ok(true);
        }
        match self.on_nonfinite {
            OnNonFinite::Skip => {
                self.skipped += 1;
                Ok(false)
            }
            _ => Err(Error::Other(format!(
                "{}: step {}: {what} is not finite ({value}); the parameters and the optimizer's state are unchanged",
                M::NAME,
                self.t + 1
            ))),
        }
    }

    /// Runs the steps on `pool` rather than on the default pool ([`crate::set_num_threads`]).
    pub fn with_pool(mut self, pool: std::sync::Arc<Pool<T>>) -> Self {
        pool.reserve_scratch(M::SCRATCH);
        self.pool = pool;
        self
    }

    /// The threads the steps run on.
    pub fn pool(&self) -> &Pool<T> {
        &self.pool
    }

    /// Scales the learning rate by `schedule` at every step.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Clips the gradients' global norm to `max_norm` before each update, as
    /// `torch.nn.utils.clip_grad_norm_` does.
    ///
    /// # Panics
    /// If `max_norm` is not a positive number.
    pub fn with_clip_grad_norm(mut self, max_norm: f64) -> Self {
        assert!(max_norm > 0.0, "with_clip_grad_norm: the largest norm must be positive, got {max_norm}");
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// The largest batch this trainer takes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Sets the step counter (when resuming from a checkpoint).
    pub fn set_steps(&mut self, t: u64) {
        self.t = t;
    }

    /// The schedule's factor for the next step.
    pub fn lr_factor(&self) -> f64 {
        self.schedule.factor(self.t + 1)
    }

    /// The gradients of the last step, shaped like the network: clipped when the trainer clips
    /// them, as `torch.nn.utils.clip_grad_norm_` leaves `p.grad`.
    ///
    /// `&mut self`: at batch 1 a step keeps a Linear layer's weight gradient as the outer product
    /// `dy^T x` it is (its two vectors), and writes it here only when asked for, with the values
    /// the step would have written: a batch-1 step then writes no weight gradient to memory.
    pub fn gradients(&mut self) -> &M {
        self.write_deferred_gradients();
        &self.grads
    }

    /// Writes the gradients the last step kept as outer products ([`gradients`](Self::gradients))
    /// into `grads`, before anything else reads or adds to them.
    pub(crate) fn write_deferred_gradients(&mut self) {
        self.deferred.write(&mut self.grads);
    }

    /// The optimizer's state of every tensor, in [`Parameters`] order.
    pub fn states(&self) -> &[O::State] {
        &self.states
    }

    /// The optimizer's state, mutable (to restore a checkpoint).
    pub fn states_mut(&mut self) -> &mut [O::State] {
        &mut self.states
    }

    /// One training step on a batch: forward, loss, backward and the optimizer's update of every
    /// parameter, fused. Returns the batch's loss (before the update).
    ///
    /// Each tensor is updated as soon as its gradient is final and the gradient flowing to the
    /// layer below has been computed with the old weights; with gradient clipping, every
    /// gradient is needed first, so all updates wait for the end of the backward pass.
    pub fn step<'x>(&mut self, model: &mut M, x: impl Input<'x, T>, target: M::Target<'_>) -> Result<T> {
        self.optimizer.validate()?;
        let x = x.__rows(M::INPUT_SHAPE, M::NAME)?;
        let batch = check_input::<T, M>(&x, Some(self.max_batch))?;
        M::__check_target(&target, batch)?;
        check_train_batch::<T, M>(batch)?;
        let x = MatRef::from(x);
        let pool = std::sync::Arc::clone(&self.pool);
        let _awake = pool.awake();
        self.kept = None;
        model.__forward(&mut self.buffers, x, batch, &self.pool, true);
        let loss = M::__loss(&mut self.buffers, target, batch, true);
        if !self.guard("the loss", loss.to_f64())? {
            return Ok(loss);
        }
        model.__update_running_stats(&self.buffers, batch);
        self.run_backward(model, x, batch, Then::Update, false)?;
        Ok(loss)
    }

    /// The forward pass of a training step, kept for a backward pass: batch normalisation
    /// normalises with the batch's statistics and updates its running statistics (PyTorch's
    /// `model.train()`). Returns the output, a view into the trainer's buffers. Does not
    /// allocate (the input is copied into a buffer made with the trainer, for the backward pass).
    ///
    /// With [`backward`](Trainer::backward) (a loss of the network's own) or
    /// [`backward_from`](Trainer::backward_from) (a gradient of the output computed by the
    /// caller), this is [`step`](Trainer::step) taken apart, for training that composes networks:
    ///
    /// ```ignore
    /// // The generator's step of a GAN: the discriminator's loss on fakes labelled real,
    /// // differentiated through the discriminator into the generator.
    /// let fake = g_trainer.forward(&mut generator, noise.view())?;
    /// d_trainer.forward(&mut discriminator, fake)?;
    /// let g_loss = d_trainer.backward(&mut discriminator, ones.view(), Then::Discard, true)?;
    /// g_trainer.backward_from(&mut generator, d_trainer.input_gradient()?, Then::Update, false)?;
    /// ```
    pub fn forward<'x>(&mut self, model: &mut M, x: impl Input<'x, T>) -> Result<ArrayView2<'_, T>> {
        let x = x.__rows(M::INPUT_SHAPE, M::NAME)?;
        let batch = check_input::<T, M>(&x, Some(self.max_batch))?;
        check_train_batch::<T, M>(batch)?;
        let _awake = self.pool.awake();
        let kept = &mut self.input[..batch * M::INPUT];
        crate::kernels::copy(MatRef::from(x), crate::gemm::MatMut::row_major(kept, batch, M::INPUT), false);
        model.__forward(&mut self.buffers, MatRef::row_major(kept, batch, M::INPUT), batch, &self.pool, true);
        model.__update_running_stats(&self.buffers, batch);
        self.kept = Some(batch);
        self.input_grad_rows = None;
        Ok(view_of(M::__output(&self.buffers, batch)))
    }

    /// The backward pass of the last [`forward`](Trainer::forward), from the network's loss
    /// against `target`; returns the loss. `then` says what becomes of the parameters'
    /// gradients; with `input_grad`, the gradient of the input is computed too
    /// ([`input_gradient`](Trainer::input_gradient)). Does not allocate.
    pub fn backward(&mut self, model: &mut M, target: M::Target<'_>, then: Then, input_grad: bool) -> Result<T> {
        if then == Then::Update {
            self.optimizer.validate()?;
        }
        let batch = self.take_kept(then)?;
        M::__check_target(&target, batch)?;
        let loss = M::__loss(&mut self.buffers, target, batch, true);
        if then == Then::Update && !self.guard("the loss", loss.to_f64())? {
            return Ok(loss);
        }
        self.backward_kept(model, batch, then, input_grad)?;
        Ok(loss)
    }

    /// The backward pass of the last [`forward`](Trainer::forward) from `output_grad`, the
    /// gradient of some loss with respect to the network's output (`[batch, OUTPUT]`), computed
    /// by the caller: by another network's [`input_gradient`](Trainer::input_gradient), or by
    /// any Rust code. The parameters' gradients are those of that loss; `then` says what
    /// becomes of them. Does not allocate.
    pub fn backward_from(
        &mut self,
        model: &mut M,
        output_grad: ArrayView2<'_, T>,
        then: Then,
        input_grad: bool,
    ) -> Result<()> {
        if then == Then::Update {
            self.optimizer.validate()?;
        }
        let batch = self.take_kept(then)?;
        check_output_grad::<T, M>(&output_grad, batch)?;
        crate::kernels::copy(MatRef::from(output_grad), M::__output_grad(&mut self.buffers, batch), false);
        self.backward_kept(model, batch, then, input_grad)
    }

    /// The gradient of the loss with respect to the input of the last backward pass run with
    /// `input_grad` (`[batch, INPUT]`), a view into the trainer's buffers.
    pub fn input_gradient(&self) -> Result<ArrayView2<'_, T>> {
        let batch = self.input_grad_rows.ok_or_else(|| {
            Error::Other(format!(
                "{}: no input gradient: the last backward pass did not compute it (pass `input_grad: true`)",
                M::NAME
            ))
        })?;
        Ok(view_of(M::__input_grad(&self.buffers, batch)))
    }

    /// Applies the optimizer to the gradients of earlier [`Then::Accumulate`] passes, without
    /// another pass (`optimizer.step()` after several `loss.backward()`).
    pub fn update(&mut self, model: &mut M) -> Result<()> {
        self.optimizer.validate()?;
        if !self.accumulated {
            return Err(Error::Other(format!("{}: update without accumulated gradients", M::NAME)));
        }
        let pool = std::sync::Arc::clone(&self.pool);
        let _awake = pool.awake();
        let norm2 = self.deferred_norm2();
        let go = self.guard_gradients(norm2)?;
        self.accumulated = false;
        if !go {
            return Ok(());
        }
        self.t += 1;
        let step = self.prepare(self.t);
        if O::Requires::PATH_SCALES {
            model.__path_scales(&mut self.buffers, &mut self.states, &self.pool);
        }
        self.finish_update(model, step, T::zero(), true, norm2);
        Ok(())
    }

    /// The rows of the kept forward pass, which a backward pass consumes.
    fn take_kept(&mut self, then: Then) -> Result<usize> {
        if then == Then::Discard && self.accumulated {
            return Err(Error::Other(format!(
                "{}: a backward pass with Then::Discard would overwrite accumulated gradients not yet applied",
                M::NAME
            )));
        }
        self.kept.take().ok_or_else(|| {
            Error::Other(format!("{}: a backward pass needs a forward pass first (Trainer::forward)", M::NAME))
        })
    }

    /// A backward pass over the kept input.
    fn backward_kept(&mut self, model: &mut M, batch: usize, then: Then, input_grad: bool) -> Result<()> {
        let pool = std::sync::Arc::clone(&self.pool);
        let _awake = pool.awake();
        // Taken out for the pass (no allocation), so that the pass may borrow the trainer.
        let input = std::mem::take(&mut self.input);
        let done = self.run_backward(
            model,
            MatRef::row_major(&input[..batch * M::INPUT], batch, M::INPUT),
            batch,
            then,
            input_grad,
        );
        self.input = input;
        done
    }

    /// The squared global norm of the gradients.
    fn grads_norm2(&self) -> T {
        (0..M::TENSORS).map(|i| sum_of_squares_tree(&self.pool, self.grads.__tensor(i))).sum()
    }

    /// The gradients' squared norm when clipping or the finite guard needs it (computed once
    /// for both).
    pub(crate) fn deferred_norm2(&self) -> Option<T> {
        (self.clip_grad_norm.is_some() || self.on_nonfinite != OnNonFinite::Update).then(|| self.grads_norm2())
    }

    /// The finite guard on the gradients' squared norm (when it was computed): `Ok(true)` to
    /// make the update, `Ok(false)` to skip it, or its `Err`.
    pub(crate) fn guard_gradients(&mut self, norm2: Option<T>) -> Result<bool> {
        match norm2 {
            Some(n2) => self.guard("the gradient's norm", n2.to_f64().sqrt()),
            None => Ok(true),
        }
    }

    /// The backward pass and what `then` says.
    fn run_backward(
        &mut self,
        model: &mut M,
        x: MatRef<'_, T>,
        batch: usize,
        then: Then,
        input_grad: bool,
    ) -> Result<()> {
        let pass = BackwardPass { accumulate: self.accumulated, input_grad, params: then != Then::Discard };
        self.input_grad_rows = input_grad.then_some(batch);
        let immediate = self.clip_grad_norm.is_none() && self.on_nonfinite == OnNonFinite::Update;
        let outer = then == Then::Update
            && immediate
            && !self.accumulated
            && self.optimizer.elementwise()
            && self.optimizer.reduction() == Reduction::None
            && !O::Requires::PATH_SCALES;
        if !outer {
            // A pass that may read or add to the gradients, or leave some as they are.
            self.write_deferred_gradients();
        }
        if then != Then::Update {
            M::__backward(&mut ReadOnly(&*model), &mut self.grads, &mut self.buffers, x, batch, &self.pool, pass);
            self.accumulated |= then == Then::Accumulate;
            return Ok(());
        }
        if O::Requires::PATH_SCALES {
            model.__path_scales(&mut self.buffers, &mut self.states, &self.pool);
        }
        // Counted once the update is made, so that a refused step leaves the count as it was
        // (and the guard names this step).
        let t = self.t + 1;
        let step = self.prepare(t);
        let mut hook = UpdateHook {
            model: &mut *model,
            optimizer: &self.optimizer,
            states: &mut self.states,
            step,
            immediate,
            outer,
            sum: T::zero(),
            pool: &self.pool,
            deferred: &mut self.deferred,
        };
        M::__backward(&mut hook, &mut self.grads, &mut self.buffers, x, batch, &self.pool, pass);
        let sum = hook.sum;
        self.accumulated = false;
        let norm2 = if immediate { None } else { self.deferred_norm2() };
        if !immediate && !self.guard_gradients(norm2)? {
            return Ok(());
        }
        self.t = t;
        self.finish_update(model, step, sum, !immediate, norm2);
        Ok(())
    }

    /// The updates that wait for every gradient (clipping, the finite guard; `all`: every
    /// tensor's, `norm2` the gradients' squared global norm when it was computed), and the second
    /// phase of a global optimizer.
    pub(crate) fn finish_update(&mut self, model: &mut M, step: O::Step, mut sum: T, all: bool, norm2: Option<T>) {
        if all {
            if let Some(max_norm) = self.clip_grad_norm {
                let sq = norm2.unwrap_or_else(|| self.grads_norm2());
                let coef = clip_coefficient(sq.to_f64().sqrt(), max_norm);
                if coef < 1.0 {
                    let c = T::of(coef);
                    for i in 0..M::TENSORS {
                        self.grads.__tensor_mut(i).iter_mut().for_each(|g| *g *= c);
                    }
                }
            }
            for i in 0..M::TENSORS {
                let (param, grad) = (model.__tensor_mut(i), self.grads.__tensor(i));
                sum += update_tensor(&self.pool, &self.optimizer, &step, param, grad, &mut self.states[i]);
            }
        }
        if self.optimizer.is_global() {
            for i in 0..M::TENSORS {
                apply_tensor(&self.pool, &self.optimizer, &step, sum, model.__tensor_mut(i), &mut self.states[i]);
            }
        }
    }
}

impl<T: Float, M: Network<T>, O: Optimizer<T>> Trainer<T, M, O> {
    /// The optimizer's state as named tensors, `optim.<parameter>.<buffer>` (`optim.fc1.weight.exp_avg`),
    /// shaped like their parameter, for checkpoints.
    pub fn optimizer_tensors(&self) -> Vec<crate::Param<'_, T>> {
        use crate::OptimizerState;
        let params = self.grads.params();
        let mut out = Vec::new();
        for (p, state) in params.iter().zip(&self.states) {
            for (buffer, data) in state.buffers() {
                let shape = if data.len() == p.data.len() { p.shape.clone() } else { vec![data.len()] };
                out.push(crate::Param { name: format!("optim.{}.{buffer}", p.name), shape, data });
            }
        }
        out
    }

    /// The optimizer's state as mutable named tensors, in the order of
    /// [`optimizer_tensors`](Trainer::optimizer_tensors).
    pub fn optimizer_tensors_mut(&mut self) -> Vec<crate::ParamMut<'_, T>> {
        use crate::OptimizerState;
        let params: Vec<(String, Vec<usize>, usize)> =
            self.grads.params().into_iter().map(|p| (p.name, p.shape, p.data.len())).collect();
        let mut out = Vec::new();
        for ((name, shape, len), state) in params.into_iter().zip(self.states.iter_mut()) {
            for (buffer, data) in state.buffers_mut() {
                let shape = if data.len() == len { shape.clone() } else { vec![data.len()] };
                out.push(crate::ParamMut { name: format!("optim.{name}.{buffer}"), shape, data });
            }
        }
        out
    }
}

#[cfg(feature = "checkpoint")]
impl<T: Float, M: Network<T>, O: Optimizer<T>> Trainer<T, M, O> {
    /// Saves a checkpoint as PyTorch users keep one: `model`'s `state_dict` alone in `path`
    /// (the weights under PyTorch's names and layouts, so that a `torch.nn.Module` of the same
    /// structure loads it with `load_state_dict(strict=True)`), and the optimizer's state, the
    /// step count, the optimizer's hyperparameters and `metadata` in
    /// [`checkpoint::optimizer_path`](crate::checkpoint::optimizer_path)`(path)`
    /// (`adam.safetensors` and `adam.optim.safetensors`). Each file is written atomically and a
    /// crash between the two leaves a pair that loads (see
    /// [`checkpoint::save_training_state`](crate::checkpoint::save_training_state)).
    pub fn save_checkpoint(
        &self,
        path: impl AsRef<std::path::Path>,
        model: &M,
        metadata: &crate::checkpoint::Metadata,
    ) -> Result<()> {
        let mut model_meta = metadata.clone();
        model_meta.insert("hdm.network".into(), M::NAME.into());
        model_meta.insert("hdm.structure".into(), M::STRUCTURE.into());
        let mut meta = model_meta.clone();
        meta.insert("hdm.step".into(), self.t.to_string());
        meta.insert("hdm.optimizer".into(), self.optimizer.name().into());
        for (k, v) in self.optimizer.hyperparameters() {
            meta.insert(format!("hdm.optimizer.{k}"), v.to_string());
        }
        crate::checkpoint::save_training_state(path, model, &model_meta, self.optimizer_tensors(), &meta)
    }

    /// Restores `model`, the optimizer's state and the step count from a checkpoint written by
    /// [`save_checkpoint`](Trainer::save_checkpoint), and returns its metadata (the optimizer
    /// file's). Nothing changes unless every tensor matches; a checkpoint of another network or
    /// optimizer is an error listing the differences. A single file holding both the model and
    /// its optimizer's state (as hdm saved them before 0.1) loads too.
    pub fn load_checkpoint(
        &mut self,
        path: impl AsRef<std::path::Path>,
        model: &mut M,
    ) -> Result<crate::checkpoint::Metadata> {
        let (ck, opt) = crate::checkpoint::open_training_state(path.as_ref())?;
        let path = path.as_ref().display();
        // Written by hdm: the network must be this one, not one with tensors of the same shapes.
        if let Some(name) = ck.get("hdm.network") {
            let structure = ck.get("hdm.structure");
            if name != M::NAME || structure.is_some_and(|s| s != M::STRUCTURE) {
                let mut message = format!(
                    "{path}: the checkpoint is of network `{name}` {}, not of `{}` {}",
                    structure.unwrap_or("(structure not recorded)"),
                    M::NAME,
                    M::STRUCTURE
                );
                // With the tensors that differ, when some do (on a copy: nothing changes here).
                if let Err(e) = ck.load_params(&mut model.clone()) {
                    message = format!("{message}\n{e}");
                }
                return Err(Error::Other(message));
            }
        }
        let state = opt.as_ref().unwrap_or(&ck);
        let step: u64 = state.parse("hdm.step")?;
        // The last step a trainer can count: one more would overflow the counter.
        if step >= u64::MAX / 2 {
            return Err(Error::Format {
                path: state.path().to_path_buf(),
                problem: format!("hdm.step = {step} is not a step count a run can reach"),
            });
        }
        let saved = state.get("hdm.optimizer").unwrap_or("?").to_string();
        if saved != self.optimizer.name() {
            return Err(Error::Other(format!(
                "{}: the checkpoint holds the state of optimizer `{saved}`, this trainer uses `{}`",
                state.path().display(),
                self.optimizer.name()
            )));
        }
        state.check_optimizer_state()?;
        match &opt {
            // Both checked before either is copied: the model on a copy first.
            Some(opt) => {
                let mut checked = model.clone();
                ck.load(&mut checked, std::iter::empty::<crate::ParamMut<'_, T>>())?;
                opt.load(&mut crate::checkpoint::NoParameters, self.optimizer_tensors_mut())?;
                *model = checked;
            }
            None => ck.load(model, self.optimizer_tensors_mut())?,
        }
        self.t = step;
        Ok(state.metadata().clone())
    }
}

/// Up to this batch size, a weight gradient large enough for its update to be split in halves
/// is computed in the same halves on two threads (see [`linear_grads`]). Measured on the MLP
/// (two threads, interleaved runs): batch 1 and 32 gain 3-15%; batch 100 loses 1-2%, as the
/// second thread then packs the whole input again.
const OWN_ROWS_MAX_BATCH: usize = 32;

/// The products of a Linear layer's backward pass: `dW (+)= dY^T X` (unless the pass discards
/// the parameters' gradients) and, when the layer's input needs a gradient, `dX (+)= dY W`, each
/// with its `beta`, 0 to write and 1 to add.
///
/// On a pool of two threads or more, the two products (which have the same number of
/// multiply-adds) run side by side, each on one thread; alone, `dW` is split over the pool as
/// [`Pool::gemm`] chooses. For small batches on two threads, when the update will take `dW` in
/// two halves (`update_tensor`), `dW` is instead computed in the same two blocks of rows, each on
/// the thread that will update it, and `dX` after it, split: these products are bound by memory,
/// and a value read from the other core's cache costs several times one read from one's own (up
/// to 4 times more on a virtual machine whose two CPUs the host places far apart). Either way
/// every element is computed as on one thread: the bits do not depend on the number of threads.
#[allow(clippy::too_many_arguments)]
pub fn linear_grads<T: Float>(
    pool: &Pool<T>,
    dy: MatRef<'_, T>,
    x: MatRef<'_, T>,
    w: MatRef<'_, T>,
    dw: Option<(MatMut<'_, T>, T)>,
    dx: Option<(MatMut<'_, T>, T)>,
) {
    let Some((dw, beta_w)) = dw else {
        // Only the input's gradient (a pass that discards the parameters' gradients).
        if let Some((dx, beta_x)) = dx {
            pool.gemm(T::one(), dy, w, beta_x, dx);
        }
        return;
    };
    let batch = dy.nrows();
    if pool.threads() == 2 && batch <= OWN_ROWS_MAX_BATCH && dw.nrows() * dw.ncols() >= SPLIT_LEN {
        // The update will take this tensor in two halves (`update_tensor`): compute each half of
        // the gradient on the thread that will update it.
        let height = split_point(dw.nrows() * dw.ncols()) / dw.ncols().max(1);
        pool.gemm_in_two_row_blocks(height, T::one(), dy.t(), x, beta_w, dw);
        if let Some((dx, beta_x)) = dx {
            pool.gemm(T::one(), dy, w, beta_x, dx);
        }
        return;
    }
    match dx {
        // Below ~2^16 multiply-adds each, waking a thread costs more than it saves.
        Some((dx, beta_x)) if pool.threads() > 1 && dw.nrows() * dw.ncols() * dy.nrows() >= 1 << 16 => {
            pool.join(
                |ws| gemm_with(ws, T::one(), dy.t(), x, beta_w, dw),
                move |ws| gemm_with(ws, T::one(), dy, w, beta_x, dx),
            );
        }
        Some((dx, beta_x)) => {
            pool.gemm(T::one(), dy.t(), x, beta_w, dw);
            pool.gemm(T::one(), dy, w, beta_x, dx);
        }
        None => pool.gemm(T::one(), dy.t(), x, beta_w, dw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Sgd};

    /// [`update_outer`] against the product written whole and then the update of the whole
    /// tensor: the same gradient, parameters and state, bit for bit, on one thread and two,
    /// with zeros of either sign and subnormal values among the factors.
    fn matches_product_then_update<O: Optimizer<f32>>(optimizer: O) {
        let val = |i: usize| match i % 11 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::MIN_POSITIVE / 8.0,
            _ => ((i * 37 + 5) % 101) as f32 / 50.0 - 1.0,
        };
        for (rows, cols) in [(500, 784), (10, 500), (3, 5000), (1, 7), (1, 20000)] {
            let dy: Vec<f32> = (0..rows).map(|i| val(i * 3 + 1)).collect();
            let x: Vec<f32> = (0..cols).map(|i| val(i + 2)).collect();
            let param0: Vec<f32> = (0..rows * cols).map(|i| val(i + 9) * 0.5).collect();
            let mut ws = crate::gemm::Workspace::new();
            for threads in [1, 2] {
                let pool = Pool::new(threads);
                let (mut param, mut grad, mut state) =
                    (param0.clone(), vec![f32::NAN; rows * cols], optimizer.init(rows * cols));
                let (mut param1, mut grad1, mut state1) = (param.clone(), grad.clone(), optimizer.init(rows * cols));
                let (mut param2, mut state2) = (param.clone(), optimizer.init(rows * cols));
                for t in 1..=3 {
                    let step = optimizer.prepare(t, 1.0);
                    let (a, b) = (MatRef::row_major(&dy, 1, rows).t(), MatRef::row_major(&x, 1, cols));
                    gemm_with(&mut ws, 1.0, a, b, 0.0, MatMut::row_major(&mut grad1, rows, cols));
                    optimizer.update(&step, &mut param1, &grad1, &mut state1);
                    update_outer(&pool, &optimizer, &step, &mut param, &dy, &x, Some(&mut grad), &mut state);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let what = format!("{} {rows}x{cols}, step {t}, {threads} threads", optimizer.name());
                    // and without writing the gradient (the trainer keeps `dy` and `x`), for rows
                    // that fit a block
                    if cols <= OUTER_BLOCK {
                        update_outer(&pool, &optimizer, &step, &mut param2, &dy, &x, None, &mut state2);
                        assert_eq!(bits(&param2), bits(&param1), "parameters, the gradient not written, {what}");
                        for ((name, s), (_, s1)) in state2.buffers().iter().zip(state1.buffers()) {
                            assert_eq!(bits(s), bits(s1), "{name}, the gradient not written, {what}");
                        }
                    }
                    assert_eq!(bits(&grad), bits(&grad1), "gradient, {what}");
                    assert_eq!(bits(&param), bits(&param1), "parameters, {what}");
                    for ((name, s), (_, s1)) in state.buffers().iter().zip(state1.buffers()) {
                        assert_eq!(bits(s), bits(s1), "{name}, {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_outer_product_updated_a_block_at_a_time_has_the_bits_of_the_whole() {
        matches_product_then_update(Sgd::new(0.1));
        matches_product_then_update(Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01));
        matches_product_then_update(Adam::new(0.01).amsgrad(true));
    }

    /// [`update_product`] against the product written whole by [`gemm_with`] and then the
    /// update of the whole tensor: the same gradient, parameters and state, bit for bit, on one
    /// thread and two, streaming or not, for batches below and above the kernel's `kc` (one
    /// block of rows at a time, or all at the end), shapes with edge tiles, a single row.
    fn product_matches_product_then_update<O: Optimizer<f32>>(optimizer: O) {
        let val = |i: usize| match i % 11 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::MIN_POSITIVE / 8.0,
            _ => ((i * 37 + 5) % 101) as f32 / 50.0 - 1.0,
        };
        let kc = crate::gemm::kernel_info::<f32>().kc;
        for (rows, cols, batch) in
            [(500, 784, 100), (500, 784, kc + 3), (10, 500, 32), (3, 5000, 7), (1, 20000, 5), (17, 33, 2), (300, 65, 1)]
        {
            let dy: Vec<f32> = (0..batch * rows).map(|i| val(i * 3 + 1)).collect();
            let x: Vec<f32> = (0..batch * cols).map(|i| val(i + 2)).collect();
            let param0: Vec<f32> = (0..rows * cols).map(|i| val(i + 9) * 0.5).collect();
            let mut ws = crate::gemm::Workspace::new();
            for (threads, stream) in [(1, false), (2, false), (2, true)] {
                let pool = Pool::new(threads);
                crate::simd::set_streaming(stream);
                let (mut param, mut grad, mut state) =
                    (param0.clone(), vec![f32::NAN; rows * cols], optimizer.init(rows * cols));
                let (mut param1, mut grad1, mut state1) = (param.clone(), grad.clone(), optimizer.init(rows * cols));
                for t in 1..=3 {
                    let step = optimizer.prepare(t, 1.0);
                    let (a, b) = (MatRef::row_major(&dy, batch, rows).t(), MatRef::row_major(&x, batch, cols));
                    gemm_with(&mut ws, 1.0, a, b, 0.0, MatMut::row_major(&mut grad1, rows, cols));
                    optimizer.update(&step, &mut param1, &grad1, &mut state1);
                    update_product(&pool, &optimizer, &step, &mut param, a, b, &mut grad, &mut state);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let what = format!("{} {rows}x{cols} batch {batch}, step {t}, {threads} threads", optimizer.name());
                    assert_eq!(bits(&grad), bits(&grad1), "gradient, {what}");
                    assert_eq!(bits(&param), bits(&param1), "parameters, {what}");
                    for ((name, s), (_, s1)) in state.buffers().iter().zip(state1.buffers()) {
                        assert_eq!(bits(s), bits(s1), "{name}, {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_product_updated_a_block_of_rows_at_a_time_has_the_bits_of_the_whole() {
        product_matches_product_then_update(Sgd::new(0.1));
        product_matches_product_then_update(Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01));
        product_matches_product_then_update(Adam::new(0.01).amsgrad(true));
    }

    /// [`update_chunk_streaming`] against one [`Optimizer::update_chunk`] over the same elements,
    /// three steps in a row: slices that start off a cache line, lengths that leave a partial
    /// block or no block at all.
    fn streamed_matches_plain<O: Optimizer<f32>>(optimizer: O) {
        fn sub<O: Optimizer<f32>>(state: &mut O::State, start: usize, len: usize) -> O::Chunk<'_> {
            O::split_chunk(O::split_chunk(O::chunk(state), start).1, len).0
        }
        let n = 6000;
        let val = |i: usize| ((i * 37 + 5) % 101) as f32 / 50.0 - 1.0;
        let grad: Vec<f32> = (0..n).map(|i| val(i * 3 + 1)).collect();
        let param0: Vec<f32> = (0..n).map(|i| val(i + 9) * 0.5).collect();
        for (start, len) in [(0, 6000), (3, 1024), (5, 2049), (1, 7), (16, 4000), (17, 0)] {
            let range = start..start + len;
            let (mut p0, mut s0, mut p1, mut s1) =
                (param0.clone(), optimizer.init(n), param0.clone(), optimizer.init(n));
            for t in 1..=3 {
                let step = optimizer.prepare(t, 1.0);
                let a = optimizer.update_chunk(
                    &step,
                    &mut p0[range.clone()],
                    &grad[range.clone()],
                    sub::<O>(&mut s0, start, len),
                );
                let b = update_chunk_streaming(
                    &optimizer,
                    &step,
                    &mut p1[range.clone()],
                    &grad[range.clone()],
                    sub::<O>(&mut s1, start, len),
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let what = format!("{} on {range:?}, step {t}", optimizer.name());
                assert_eq!(a.to_bits(), b.to_bits(), "returned sum, {what}");
                assert_eq!(bits(&p0), bits(&p1), "parameters, {what}");
                for ((name, x), (_, y)) in s0.buffers().iter().zip(s1.buffers()) {
                    assert_eq!(bits(x), bits(y), "{name}, {what}");
                }
            }
        }
    }

    #[test]
    fn a_streamed_update_has_the_bits_of_the_plain_one() {
        streamed_matches_plain(Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01));
        streamed_matches_plain(Adam::new(0.01).amsgrad(true));
    }
}
