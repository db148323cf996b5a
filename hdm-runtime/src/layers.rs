//! The parameter containers that `#[network]` puts in a model's fields.
//!
//! A user writes `fc1: Linear<784, 500>` in a `#[network]` struct; the macro turns the field into
//! `fc1: hdm::Linear<T, 784, 500>`. The sizes are part of the type, and the arrays inside can only
//! be made with those sizes, so the generated code never meets a weight of the wrong shape.

use std::marker::PhantomData;

use ndarray::{
    Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, ArrayViewMut1, ArrayViewMut2, ArrayViewMut4,
};

use crate::aligned::AlignedVec;
use crate::{Error, Float, Result, Rng};

/// Marks a [`Linear`] layer with a bias (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bias;

/// Marks a [`Linear`] layer without a bias: `Linear<100, 1000, NoBias>` in a `#[network]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoBias;

/// Whether a [`Linear`] layer has a bias: implemented by [`Bias`] and [`NoBias`].
pub trait BiasMode: Clone + Copy + Default + Send + Sync + 'static {
    /// `true` for [`Bias`].
    const HAS_BIAS: bool;
}
impl BiasMode for Bias {
    const HAS_BIAS: bool = true;
}
impl BiasMode for NoBias {
    const HAS_BIAS: bool = false;
}

/// A named parameter tensor of a model: its name as PyTorch would give it (`"fc1.weight"`), its
/// shape and its elements in row-major order.
#[derive(Debug)]
pub struct Param<'a, T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a [T],
}

/// A mutable [`Param`].
#[derive(Debug)]
pub struct ParamMut<'a, T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a mut [T],
}

/// Anything holding parameters: a layer, or a whole model made by `#[network]`.
///
/// Tensors come in a fixed order (the fields in declaration order; weight before bias), which is
/// the order of checkpoints and of the optimizer's state.
///
/// Besides its parameters, a layer may hold state that training changes but the optimizer does
/// not: a batch normalisation's running mean and variance (PyTorch's *buffers*) and its count of
/// batches (`num_batches_tracked`, an integer). Checkpoints save them under PyTorch's names.
pub trait Parameters<T> {
    /// Every parameter tensor, named under `prefix` (`"fc1."` gives `"fc1.weight"`).
    fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>>;
    /// The same tensors, mutable.
    fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>>;

    /// Every buffer (state saved with the parameters but not trained: `bn1.running_mean`), named
    /// under `prefix`. None by default.
    fn buffers_with_prefix(&self, _prefix: &str) -> Vec<Param<'_, T>> {
        Vec::new()
    }
    /// Every parameter then every buffer, mutable: the floating-point tensors of PyTorch's
    /// `state_dict`. By default (no buffers) the parameters.
    fn state_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
        self.params_mut_with_prefix(prefix)
    }
    /// Every integer counter (`bn1.num_batches_tracked`), named under `prefix`. None by default.
    fn counters_with_prefix(&self, _prefix: &str) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// The same counters, mutable.
    fn counters_mut_with_prefix(&mut self, _prefix: &str) -> Vec<(String, &mut u64)> {
        Vec::new()
    }
    /// Every buffer with its plain name.
    fn buffers(&self) -> Vec<Param<'_, T>> {
        self.buffers_with_prefix("")
    }
    /// Every parameter then every buffer, with their plain names.
    fn state(&self) -> Vec<Param<'_, T>> {
        let mut all = self.params();
        all.extend(self.buffers());
        all
    }
    /// Every parameter then every buffer, mutable, with their plain names.
    fn state_mut(&mut self) -> Vec<ParamMut<'_, T>> {
        self.state_mut_with_prefix("")
    }
    /// Every counter with its plain name.
    fn counters(&self) -> Vec<(String, u64)> {
        self.counters_with_prefix("")
    }
    /// Every counter with its plain name, mutable.
    fn counters_mut(&mut self) -> Vec<(String, &mut u64)> {
        self.counters_mut_with_prefix("")
    }

    /// Every parameter tensor with its plain name.
    fn params(&self) -> Vec<Param<'_, T>> {
        self.params_with_prefix("")
    }
    /// Every parameter tensor, mutable.
    fn params_mut(&mut self) -> Vec<ParamMut<'_, T>> {
        self.params_mut_with_prefix("")
    }
    /// The number of scalar parameters.
    fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.data.len()).sum()
    }
}

/// A fully connected layer `y = x W^T + b` from `IN` to `OUT` features, with PyTorch's layout:
/// the weight is `[OUT, IN]` and the bias `[OUT]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T, const IN: usize, const OUT: usize, B: BiasMode = Bias> {
    weight: AlignedVec<T>, // [OUT, IN], row-major
    bias: AlignedVec<T>,   // empty for NoBias
    mode: PhantomData<B>,
}

impl<T: Float, const IN: usize, const OUT: usize, B: BiasMode> Linear<T, IN, OUT, B> {
    /// Number of input features.
    pub const IN: usize = IN;
    /// Number of output features.
    pub const OUT: usize = OUT;

    /// PyTorch's default initialisation of `nn.Linear`: weights and bias uniform in
    /// `[-1/sqrt(IN), 1/sqrt(IN)]`, drawn weight first, row by row, then the bias.
    ///
    /// # Panics
    /// When the memory cannot be allocated; [`try_init`](Self::try_init) returns an `Err` instead.
    pub fn init(rng: &mut Rng) -> Self {
        Self::try_init(rng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`init`](Self::init), or an `Err` when the memory cannot be allocated.
    pub fn try_init(rng: &mut Rng) -> Result<Self> {
        let bound = 1.0 / (IN as f64).sqrt();
        let n = if B::HAS_BIAS { OUT } else { 0 };
        let weight = uniform("Linear weight", rng, OUT * IN, bound)?;
        let bias = uniform("Linear bias", rng, n, bound)?;
        Ok(Linear { weight, bias, mode: PhantomData })
    }

    /// A layer whose every parameter is zero (the shape of a gradient).
    ///
    /// # Panics
    /// When the memory cannot be allocated; [`try_zeros`](Self::try_zeros) returns an `Err`.
    pub fn zeros() -> Self {
        Self::try_zeros().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`zeros`](Self::zeros), or an `Err` when the memory cannot be allocated.
    pub fn try_zeros() -> Result<Self> {
        let n = if B::HAS_BIAS { OUT } else { 0 };
        Ok(Linear { weight: zeroed("Linear weight", OUT * IN)?, bias: zeroed("Linear bias", n)?, mode: PhantomData })
    }

    /// A layer with the given weight `[OUT, IN]` and bias `[OUT]` (`None` exactly for `NoBias`).
    pub fn from_arrays(weight: Array2<T>, bias: Option<Array1<T>>) -> Result<Self> {
        if weight.dim() != (OUT, IN) {
            return Err(shape_error("Linear weight", &[OUT, IN], weight.shape()));
        }
        let bias = checked_bias("Linear", bias, B::HAS_BIAS, OUT)?;
        Ok(Linear { weight: copied("Linear weight", weight.view())?, bias, mode: PhantomData })
    }

    /// The weight, `[OUT, IN]`.
    pub fn weight(&self) -> ArrayView2<'_, T> {
        ArrayView2::from_shape((OUT, IN), &self.weight).expect("sized")
    }
    /// The weight, mutable (its shape cannot change).
    pub fn weight_mut(&mut self) -> ArrayViewMut2<'_, T> {
        ArrayViewMut2::from_shape((OUT, IN), &mut self.weight).expect("sized")
    }
    /// The bias, `[OUT]`, or `None` for a `NoBias` layer.
    pub fn bias(&self) -> Option<ArrayView1<'_, T>> {
        B::HAS_BIAS.then(|| ArrayView1::from(&self.bias[..]))
    }
    /// The bias, mutable.
    pub fn bias_mut(&mut self) -> Option<ArrayViewMut1<'_, T>> {
        B::HAS_BIAS.then(|| ArrayViewMut1::from(&mut self.bias[..]))
    }

    /// The weight's elements, row-major `[OUT, IN]`.
    pub fn weight_slice(&self) -> &[T] {
        &self.weight
    }
    /// The weight's elements, mutable.
    pub fn weight_slice_mut(&mut self) -> &mut [T] {
        &mut self.weight
    }
    /// The bias's elements (empty for `NoBias`).
    pub fn bias_slice(&self) -> &[T] {
        &self.bias
    }
    /// The bias's elements, mutable (empty for `NoBias`).
    pub fn bias_slice_mut(&mut self) -> &mut [T] {
        &mut self.bias
    }
    /// Weight and bias, both mutable at once.
    pub fn slices_mut(&mut self) -> (&mut [T], &mut [T]) {
        (&mut self.weight, &mut self.bias)
    }
}

impl<T: Float, const IN: usize, const OUT: usize, B: BiasMode> Parameters<T> for Linear<T, IN, OUT, B> {
    fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>> {
        let mut out = vec![Param { name: format!("{prefix}weight"), shape: vec![OUT, IN], data: self.weight_slice() }];
        if B::HAS_BIAS {
            out.push(Param { name: format!("{prefix}bias"), shape: vec![OUT], data: self.bias_slice() });
        }
        out
    }
    fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
        let (w, b) = self.slices_mut();
        let mut out = vec![ParamMut { name: format!("{prefix}weight"), shape: vec![OUT, IN], data: w }];
        if B::HAS_BIAS {
            out.push(ParamMut { name: format!("{prefix}bias"), shape: vec![OUT], data: b });
        }
        out
    }
}

/// Draws `n` values uniform in `[-bound, bound]` (PyTorch's default initialisation of weights
/// and biases, with `bound = 1 / sqrt(fan_in)`), or an `Err` naming `what` when the memory
/// cannot be had (rather than an abort).
fn uniform<T: Float>(what: &str, rng: &mut Rng, n: usize, bound: f64) -> Result<AlignedVec<T>> {
    AlignedVec::try_from_iter(n, (0..n).map(|_| T::of(rng.uniform_in(-bound, bound))))
        .ok_or_else(|| too_large::<T>(what, n))
}

/// `n` zeros, or an `Err` naming `what` when the memory cannot be had.
fn zeroed<T: Float>(what: &str, n: usize) -> Result<AlignedVec<T>> {
    AlignedVec::try_zeroed(n).ok_or_else(|| too_large::<T>(what, n))
}

/// The elements of `a` in its logical (row-major) order, or an `Err` naming `what` when the
/// memory cannot be had.
fn copied<T: Float, D: ndarray::Dimension>(what: &str, a: ndarray::ArrayView<'_, T, D>) -> Result<AlignedVec<T>> {
    AlignedVec::try_from_iter(a.len(), a.iter().copied()).ok_or_else(|| too_large::<T>(what, a.len()))
}

/// `what`'s `n` parameters cannot be allocated.
fn too_large<T>(what: &str, n: usize) -> Error {
    Error::Other(format!(
        "{what}: {n} parameters ({} bytes) cannot be allocated",
        n.saturating_mul(std::mem::size_of::<T>())
    ))
}

/// A shape error for a layer's parameter.
fn shape_error(what: &str, expected: &[usize], got: &[usize]) -> Error {
    Error::Shape { what: what.into(), expected: format!("{expected:?}"), got: format!("{got:?}") }
}

/// The bias `what` is given: `[n]` when the layer has one (`has_bias`), `None` when it has not;
/// stored empty without bias.
fn checked_bias<T: Float>(what: &str, bias: Option<Array1<T>>, has_bias: bool, n: usize) -> Result<AlignedVec<T>> {
    match (bias, has_bias) {
        (Some(b), true) if b.len() == n => copied(&format!("{what} bias"), b.view()),
        (None, false) => Ok(AlignedVec::new()),
        (b, _) => Err(Error::Shape {
            what: format!("{what} bias"),
            expected: if has_bias { format!("[{n}]") } else { "no bias".into() },
            got: b.map_or("no bias".into(), |b| format!("{:?}", b.shape())),
        }),
    }
}

/// Weight and bias, shared by the two convolutions.
#[derive(Clone, Debug, PartialEq)]
struct ConvParams<T> {
    shape: [usize; 4],
    weight: AlignedVec<T>, // `shape`, row-major
    bias: AlignedVec<T>,   // empty without bias
}

impl<T: Float> ConvParams<T> {
    fn init(what: &str, rng: &mut Rng, shape: [usize; 4], fan_in: usize, bias: usize) -> Result<Self> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = uniform(what, rng, shape.iter().product(), bound)?;
        let bias = uniform(what, rng, bias, bound)?;
        Ok(ConvParams { shape, weight, bias })
    }

    fn zeros(what: &str, shape: [usize; 4], bias: usize) -> Result<Self> {
        Ok(ConvParams { shape, weight: zeroed(what, shape.iter().product())?, bias: zeroed(what, bias)? })
    }

    fn from_arrays(
        what: &str,
        shape: [usize; 4],
        weight: Array4<T>,
        bias: Option<Array1<T>>,
        has_bias: bool,
        n: usize,
    ) -> Result<Self> {
        if weight.shape() != shape {
            return Err(shape_error(&format!("{what} weight"), &shape, weight.shape()));
        }
        let bias = checked_bias(what, bias, has_bias, n)?;
        Ok(ConvParams { shape, weight: copied(&format!("{what} weight"), weight.view())?, bias })
    }

    fn weight(&self) -> ArrayView4<'_, T> {
        ArrayView4::from_shape(self.shape, &self.weight).expect("sized")
    }

    fn weight_mut(&mut self) -> ArrayViewMut4<'_, T> {
        ArrayViewMut4::from_shape(self.shape, &mut self.weight).expect("sized")
    }

    fn params<'a>(&'a self, prefix: &str, has_bias: bool) -> Vec<Param<'a, T>> {
        let mut out = vec![Param { name: format!("{prefix}weight"), shape: self.shape.to_vec(), data: &self.weight }];
        if has_bias {
            out.push(Param { name: format!("{prefix}bias"), shape: vec![self.bias.len()], data: &self.bias });
        }
        out
    }

    fn params_mut<'a>(&'a mut self, prefix: &str, has_bias: bool) -> Vec<ParamMut<'a, T>> {
        let n = self.bias.len();
        let mut out =
            vec![ParamMut { name: format!("{prefix}weight"), shape: self.shape.to_vec(), data: &mut self.weight }];
        if has_bias {
            out.push(ParamMut { name: format!("{prefix}bias"), shape: vec![n], data: &mut self.bias });
        }
        out
    }
}

macro_rules! conv_layer {
    (
        $(#[$doc:meta])*
        $name:ident [$($extra:ident),*], weight [$w0:ident, $w1:ident], fan_in $fan:ident
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name<
            T,
            const IN: usize,
            const OUT: usize,
            const K: usize,
            const STRIDE: usize = 1,
            const PADDING: usize = 0,
            $(const $extra: usize = 0,)*
            B: BiasMode = Bias,
        > {
            params: ConvParams<T>,
            mode: PhantomData<B>,
        }

        impl<T: Float, const IN: usize, const OUT: usize, const K: usize, const STRIDE: usize, const PADDING: usize, $(const $extra: usize,)* B: BiasMode>
            $name<T, IN, OUT, K, STRIDE, PADDING, $($extra,)* B>
        {
            /// Input channels.
            pub const IN: usize = IN;
            /// Output channels.
            pub const OUT: usize = OUT;
            /// The weight's shape.
            pub const WEIGHT_SHAPE: [usize; 4] = [$w0, $w1, K, K];

            /// PyTorch's default initialisation: weight and bias uniform in
            /// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`, drawn weight first (in its row-major order), then
            /// the bias.
            ///
            /// # Panics
            /// When the memory cannot be allocated; [`try_init`](Self::try_init) returns an `Err`.
            pub fn init(rng: &mut Rng) -> Self {
                Self::try_init(rng).unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`init`](Self::init), or an `Err` when the memory cannot be allocated.
            pub fn try_init(rng: &mut Rng) -> Result<Self> {
                let n = if B::HAS_BIAS { OUT } else { 0 };
                let params = ConvParams::init(stringify!($name), rng, Self::WEIGHT_SHAPE, $fan * K * K, n)?;
                Ok($name { params, mode: PhantomData })
            }

            /// A layer whose every parameter is zero (the shape of a gradient).
            ///
            /// # Panics
            /// When the memory cannot be allocated; [`try_zeros`](Self::try_zeros) returns an `Err`.
            pub fn zeros() -> Self {
                Self::try_zeros().unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`zeros`](Self::zeros), or an `Err` when the memory cannot be allocated.
            pub fn try_zeros() -> Result<Self> {
                let params = ConvParams::zeros(stringify!($name), Self::WEIGHT_SHAPE, if B::HAS_BIAS { OUT } else { 0 })?;
                Ok($name { params, mode: PhantomData })
            }

            /// A layer with the given weight and bias (`None` exactly for `NoBias`).
            pub fn from_arrays(weight: Array4<T>, bias: Option<Array1<T>>) -> Result<Self> {
                let params = ConvParams::from_arrays(stringify!($name), Self::WEIGHT_SHAPE, weight, bias, B::HAS_BIAS, OUT)?;
                Ok($name { params, mode: PhantomData })
            }

            /// The weight.
            pub fn weight(&self) -> ArrayView4<'_, T> {
                self.params.weight()
            }
            /// The weight, mutable (its shape cannot change).
            pub fn weight_mut(&mut self) -> ArrayViewMut4<'_, T> {
                self.params.weight_mut()
            }
            /// The bias, `[OUT]`, or `None` for a `NoBias` layer.
            pub fn bias(&self) -> Option<ArrayView1<'_, T>> {
                B::HAS_BIAS.then(|| ArrayView1::from(&self.params.bias[..]))
            }
            /// The bias, mutable.
            pub fn bias_mut(&mut self) -> Option<ArrayViewMut1<'_, T>> {
                B::HAS_BIAS.then(|| ArrayViewMut1::from(&mut self.params.bias[..]))
            }
            /// The weight's elements, row-major.
            pub fn weight_slice(&self) -> &[T] {
                &self.params.weight
            }
            /// The weight's elements, mutable.
            pub fn weight_slice_mut(&mut self) -> &mut [T] {
                &mut self.params.weight
            }
            /// The bias's elements (empty for `NoBias`).
            pub fn bias_slice(&self) -> &[T] {
                &self.params.bias
            }
            /// The bias's elements, mutable (empty for `NoBias`).
            pub fn bias_slice_mut(&mut self) -> &mut [T] {
                &mut self.params.bias
            }
        }

        impl<T: Float, const IN: usize, const OUT: usize, const K: usize, const STRIDE: usize, const PADDING: usize, $(const $extra: usize,)* B: BiasMode>
            Parameters<T> for $name<T, IN, OUT, K, STRIDE, PADDING, $($extra,)* B>
        {
            fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>> {
                self.params.params(prefix, B::HAS_BIAS)
            }
            fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
                self.params.params_mut(prefix, B::HAS_BIAS)
            }
        }
    };
}

conv_layer! {
    /// A 2-D convolution from `IN` to `OUT` channels with a `K x K` kernel, stride `STRIDE` and
    /// zero padding `PADDING`, as PyTorch's `nn.Conv2d`: the weight is `[OUT, IN, K, K]`, the bias
    /// `[OUT]`, and the output of an `H x W` image is `floor((H + 2 PADDING - K) / STRIDE) + 1`
    /// high (and as wide). Written `Conv2d<1, 32, 5>` or `Conv2d<32, 64, 5, 1, 2>` in a
    /// `#[network]`, with `NoBias` last for a layer without bias.
    Conv2d [], weight [OUT, IN], fan_in IN
}

conv_layer! {
    /// A 2-D transposed convolution from `IN` to `OUT` channels (the gradient of a convolution
    /// with respect to its input), as PyTorch's `nn.ConvTranspose2d`: the weight is
    /// `[IN, OUT, K, K]` (PyTorch's layout, and its initialisation, whose fan-in is taken from
    /// that layout: `OUT * K * K`), the bias `[OUT]`, and the output of an `H x W` image is
    /// `(H - 1) STRIDE - 2 PADDING + K + OUTPUT_PADDING` high (and as wide). Written
    /// `ConvTranspose2d<128, 64, 4, 2, 1>` in a `#[network]`.
    ConvTranspose2d [OUTPUT_PADDING], weight [IN, OUT], fan_in OUT
}

/// Batch normalisation over `C` channels (of images) or features (of rows), as PyTorch's
/// `nn.BatchNorm2d` and `nn.BatchNorm1d` with their defaults (`eps = 1e-5`, `momentum = 0.1`,
/// affine, tracking running statistics):
///
/// ```text
/// y = weight * (x - mean) / sqrt(var + eps) + bias
/// ```
///
/// In training, `mean` and `var` are each channel's mean and (biased) variance over the batch
/// and the image's positions, and the running statistics move towards them:
/// `running_mean <- 0.9 running_mean + 0.1 mean`, `running_var <- 0.9 running_var + 0.1 var *
/// n / (n - 1)` (the unbiased variance, `n` values per channel), and `num_batches_tracked` counts
/// the batches. In inference the running statistics are used. Checkpoints hold `weight`, `bias`,
/// `running_mean`, `running_var` and `num_batches_tracked` under PyTorch's names.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm<T, const C: usize> {
    weight: Array1<T>,
    bias: Array1<T>,
    running_mean: Array1<T>,
    running_var: Array1<T>,
    num_batches_tracked: u64,
}

/// [`BatchNorm`] of rows of `F` features: `BatchNorm1d<F>` in a `#[network]`.
pub type BatchNorm1d<T, const F: usize> = BatchNorm<T, F>;
/// [`BatchNorm`] of images of `C` channels: `BatchNorm2d<C>` in a `#[network]`.
pub type BatchNorm2d<T, const C: usize> = BatchNorm<T, C>;

impl<T: Float, const C: usize> BatchNorm<T, C> {
    /// The number of channels.
    pub const CHANNELS: usize = C;
    /// Added to the variance before its square root.
    pub const EPS: f64 = 1e-5;
    /// The weight of a batch's statistics in the running statistics.
    pub const MOMENTUM: f64 = 0.1;

    /// PyTorch's initialisation: weight 1, bias 0, running mean 0, running variance 1 (`rng` is
    /// not used; it is taken so that every layer initialises alike).
    pub fn init(rng: &mut Rng) -> Self {
        Self::try_init(rng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`init`](Self::init), or an `Err` when the memory cannot be allocated.
    pub fn try_init(_rng: &mut Rng) -> Result<Self> {
        let mut bn = Self::try_zeros()?;
        bn.weight.fill(T::one());
        bn.running_var.fill(T::one());
        Ok(bn)
    }

    /// Everything zero (the shape of a gradient).
    pub fn zeros() -> Self {
        Self::try_zeros().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`zeros`](Self::zeros), or an `Err` when the memory cannot be allocated.
    pub fn try_zeros() -> Result<Self> {
        // C values each, which no step streams through: plain arrays, reserved fallibly.
        let zeros = || -> Result<Array1<T>> {
            let mut v = Vec::new();
            v.try_reserve_exact(C).map_err(|_| too_large::<T>("BatchNorm", C))?;
            v.resize(C, T::zero());
            Ok(Array1::from_vec(v))
        };
        Ok(BatchNorm {
            weight: zeros()?,
            bias: zeros()?,
            running_mean: zeros()?,
            running_var: zeros()?,
            num_batches_tracked: 0,
        })
    }

    /// The scale `weight` (PyTorch's name; gamma in the paper), `[C]`.
    pub fn weight(&self) -> ArrayView1<'_, T> {
        self.weight.view()
    }
    /// The shift `bias` (beta), `[C]`.
    pub fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }
    /// The running mean, `[C]`.
    pub fn running_mean(&self) -> ArrayView1<'_, T> {
        self.running_mean.view()
    }
    /// The running (unbiased) variance, `[C]`.
    pub fn running_var(&self) -> ArrayView1<'_, T> {
        self.running_var.view()
    }
    /// The number of training batches seen.
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked
    }
    /// The weight's elements.
    pub fn weight_slice(&self) -> &[T] {
        self.weight.as_slice().expect("contiguous")
    }
    /// The weight's elements, mutable.
    pub fn weight_slice_mut(&mut self) -> &mut [T] {
        self.weight.as_slice_mut().expect("contiguous")
    }
    /// The bias's elements.
    pub fn bias_slice(&self) -> &[T] {
        self.bias.as_slice().expect("contiguous")
    }
    /// The bias's elements, mutable.
    pub fn bias_slice_mut(&mut self) -> &mut [T] {
        self.bias.as_slice_mut().expect("contiguous")
    }
    /// Weight and bias, both mutable at once.
    pub fn slices_mut(&mut self) -> (&mut [T], &mut [T]) {
        (self.weight.as_slice_mut().expect("contiguous"), self.bias.as_slice_mut().expect("contiguous"))
    }
    /// The running mean's and variance's elements.
    pub fn running_slices(&self) -> (&[T], &[T]) {
        (self.running_mean.as_slice().expect("contiguous"), self.running_var.as_slice().expect("contiguous"))
    }
    /// The running mean's and variance's elements, mutable.
    pub fn running_slices_mut(&mut self) -> (&mut [T], &mut [T]) {
        (self.running_mean.as_slice_mut().expect("contiguous"), self.running_var.as_slice_mut().expect("contiguous"))
    }

    /// Blends a training batch's statistics into the running ones, as PyTorch does: `stats`
    /// begins with the batch's mean per channel, then its biased variance, over `count` values per
    /// channel (the layout of [`norm::forward`](crate::norm::forward)'s statistics).
    pub fn update_running_stats(&mut self, stats: &[T], count: usize) {
        assert!(stats.len() >= 2 * C, "batch statistics of {C} channels");
        let (mean, var) = (&stats[..C], &stats[C..2 * C]);
        let m = T::of(Self::MOMENTUM);
        let keep = T::one() - m;
        let unbias = T::of(count as f64 / (count.max(2) - 1) as f64);
        let (rm, rv) = self.running_slices_mut();
        for (r, &v) in rm.iter_mut().zip(mean) {
            *r = keep * *r + m * v;
        }
        for (r, &v) in rv.iter_mut().zip(var) {
            *r = keep * *r + m * (v * unbias);
        }
        self.num_batches_tracked += 1;
    }
}

impl<T: Float, const C: usize> Parameters<T> for BatchNorm<T, C> {
    fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>> {
        vec![
            Param { name: format!("{prefix}weight"), shape: vec![C], data: self.weight_slice() },
            Param { name: format!("{prefix}bias"), shape: vec![C], data: self.bias_slice() },
        ]
    }
    fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
        let (w, b) = (self.weight.as_slice_mut().expect("contiguous"), self.bias.as_slice_mut().expect("contiguous"));
        vec![
            ParamMut { name: format!("{prefix}weight"), shape: vec![C], data: w },
            ParamMut { name: format!("{prefix}bias"), shape: vec![C], data: b },
        ]
    }
    fn buffers_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>> {
        let (m, v) = self.running_slices();
        vec![
            Param { name: format!("{prefix}running_mean"), shape: vec![C], data: m },
            Param { name: format!("{prefix}running_var"), shape: vec![C], data: v },
        ]
    }
    fn state_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
        fn slice<T>(a: &mut Array1<T>) -> &mut [T] {
            a.as_slice_mut().expect("contiguous")
        }
        let mut out = Vec::with_capacity(4);
        for (name, data) in [
            ("weight", slice(&mut self.weight)),
            ("bias", slice(&mut self.bias)),
            ("running_mean", slice(&mut self.running_mean)),
            ("running_var", slice(&mut self.running_var)),
        ] {
            out.push(ParamMut { name: format!("{prefix}{name}"), shape: vec![C], data });
        }
        out
    }
    fn counters_with_prefix(&self, prefix: &str) -> Vec<(String, u64)> {
        vec![(format!("{prefix}num_batches_tracked"), self.num_batches_tracked)]
    }
    fn counters_mut_with_prefix(&mut self, prefix: &str) -> Vec<(String, &mut u64)> {
        vec![(format!("{prefix}num_batches_tracked"), &mut self.num_batches_tracked)]
    }
}

macro_rules! shape_markers {
    ($($(#[$doc:meta])* $name:ident <$(const $p:ident: usize),*>),* $(,)?) => {$(
        $(#[$doc])*
        ///
        /// A parameterless marker: the macro compiles the operation into the step, so the field
        /// only names it.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name<$(const $p: usize),*>;

        impl<T, $(const $p: usize),*> Parameters<T> for $name<$($p),*> {
            fn params_with_prefix(&self, _: &str) -> Vec<Param<'_, T>> {
                Vec::new()
            }
            fn params_mut_with_prefix(&mut self, _: &str) -> Vec<ParamMut<'_, T>> {
                Vec::new()
            }
        }
    )*};
}

shape_markers! {
    /// Max pooling over `K x K` windows every `STRIDE` positions, as PyTorch's `nn.MaxPool2d(K,
    /// STRIDE)` (no padding, floor): written `MaxPool2d<2>` (stride `K`) or `MaxPool2d<3, 2>`.
    /// Each output takes the largest value of its window, the first one on ties, and NaN if the
    /// window holds one.
    MaxPool2d<const K: usize, const STRIDE: usize>,
    /// Average pooling over `K x K` windows every `STRIDE` positions, as PyTorch's
    /// `nn.AvgPool2d(K, STRIDE)` (no padding, floor).
    AvgPool2d<const K: usize, const STRIDE: usize>,
    /// An image `[C, H, W]` as a row of `C * H * W` features, in PyTorch's order (`nn.Flatten`):
    /// a view, not a copy.
    Flatten<>,
    /// A value of `C * H * W` elements as an image `[C, H, W]` (`x.view(n, C, H, W)`): a view, not
    /// a copy.
    Reshape<const C: usize, const H: usize, const W: usize>,
}

macro_rules! activation_markers {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        ///
        /// A parameterless marker: the macro compiles the activation into the step, so the field
        /// only names it.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl<T> Parameters<T> for $name {
            fn params_with_prefix(&self, _: &str) -> Vec<Param<'_, T>> {
                Vec::new()
            }
            fn params_mut_with_prefix(&mut self, _: &str) -> Vec<ParamMut<'_, T>> {
                Vec::new()
            }
        }
    )*};
}

activation_markers! {
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `ln(1 + exp(x))`.
    Softplus,
    /// `x * Phi(x)` with the normal distribution function `Phi` (PyTorch's exact GELU).
    Gelu,
    /// `x`.
    Identity,
}

/// `x` for positive `x`, `slope * x` otherwise; written `LeakyRelu<0.01>` in a `#[network]`.
///
/// The slope is compiled into the step; this field only records it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu {
    pub(crate) slope: f64,
}

impl<T> Parameters<T> for LeakyRelu {
    fn params_with_prefix(&self, _: &str) -> Vec<Param<'_, T>> {
        Vec::new()
    }
    fn params_mut_with_prefix(&mut self, _: &str) -> Vec<ParamMut<'_, T>> {
        Vec::new()
    }
}
