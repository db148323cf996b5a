//! The parameter containers that `#[network]` puts in a model's fields.
//!
//! A user writes `fc1: Linear<784, 500>` in a `#[network]` struct; the macro turns the field into
//! `fc1: hdm::Linear<T, 784, 500>`. The sizes are part of the type, and the arrays inside can only
//! be made with those sizes, so the generated code never meets a weight of the wrong shape.

use std::marker::PhantomData;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

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
pub trait Parameters<T> {
    /// Every parameter tensor, named under `prefix` (`"fc1."` gives `"fc1.weight"`).
    fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>>;
    /// The same tensors, mutable.
    fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>>;

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
    weight: Array2<T>,
    bias: Array1<T>, // empty for NoBias
    mode: PhantomData<B>,
}

impl<T: Float, const IN: usize, const OUT: usize, B: BiasMode> Linear<T, IN, OUT, B> {
    /// Number of input features.
    pub const IN: usize = IN;
    /// Number of output features.
    pub const OUT: usize = OUT;

    /// PyTorch's default initialisation of `nn.Linear`: weights and bias uniform in
    /// `[-1/sqrt(IN), 1/sqrt(IN)]`, drawn weight first, row by row, then the bias.
    pub fn init(rng: &mut Rng) -> Self {
        let bound = 1.0 / (IN as f64).sqrt();
        let weight = Array2::from_shape_simple_fn((OUT, IN), || T::of(rng.uniform_in(-bound, bound)));
        let n = if B::HAS_BIAS { OUT } else { 0 };
        let bias = Array1::from_shape_simple_fn(n, || T::of(rng.uniform_in(-bound, bound)));
        Linear { weight, bias, mode: PhantomData }
    }

    /// A layer whose every parameter is zero (the shape of a gradient).
    pub fn zeros() -> Self {
        let n = if B::HAS_BIAS { OUT } else { 0 };
        Linear { weight: Array2::zeros((OUT, IN)), bias: Array1::zeros(n), mode: PhantomData }
    }

    /// A layer with the given weight `[OUT, IN]` and bias `[OUT]` (`None` exactly for `NoBias`).
    pub fn from_arrays(weight: Array2<T>, bias: Option<Array1<T>>) -> Result<Self> {
        if weight.dim() != (OUT, IN) {
            return Err(Error::Shape {
                what: "Linear weight".into(),
                expected: format!("[{OUT}, {IN}]"),
                got: format!("{:?}", weight.shape()),
            });
        }
        let bias = match (bias, B::HAS_BIAS) {
            (Some(b), true) if b.len() == OUT => b,
            (None, false) => Array1::zeros(0),
            (b, _) => {
                return Err(Error::Shape {
                    what: "Linear bias".into(),
                    expected: if B::HAS_BIAS { format!("[{OUT}]") } else { "no bias".into() },
                    got: b.map_or("no bias".into(), |b| format!("{:?}", b.shape())),
                })
            }
        };
        let weight = weight.as_standard_layout().into_owned();
        Ok(Linear { weight, bias, mode: PhantomData })
    }

    /// The weight, `[OUT, IN]`.
    pub fn weight(&self) -> ArrayView2<'_, T> {
        self.weight.view()
    }
    /// The weight, mutable (its shape cannot change).
    pub fn weight_mut(&mut self) -> ArrayViewMut2<'_, T> {
        self.weight.view_mut()
    }
    /// The bias, `[OUT]`, or `None` for a `NoBias` layer.
    pub fn bias(&self) -> Option<ArrayView1<'_, T>> {
        B::HAS_BIAS.then(|| self.bias.view())
    }
    /// The bias, mutable.
    pub fn bias_mut(&mut self) -> Option<ArrayViewMut1<'_, T>> {
        B::HAS_BIAS.then(|| self.bias.view_mut())
    }

    /// The weight's elements, row-major `[OUT, IN]`.
    pub fn weight_slice(&self) -> &[T] {
        self.weight.as_slice().expect("Linear keeps its weight in standard layout")
    }
    /// The weight's elements, mutable.
    pub fn weight_slice_mut(&mut self) -> &mut [T] {
        self.weight.as_slice_mut().expect("Linear keeps its weight in standard layout")
    }
    /// The bias's elements (empty for `NoBias`).
    pub fn bias_slice(&self) -> &[T] {
        self.bias.as_slice().expect("contiguous")
    }
    /// The bias's elements, mutable (empty for `NoBias`).
    pub fn bias_slice_mut(&mut self) -> &mut [T] {
        self.bias.as_slice_mut().expect("contiguous")
    }
    /// Weight and bias, both mutable at once.
    pub fn slices_mut(&mut self) -> (&mut [T], &mut [T]) {
        (self.weight.as_slice_mut().expect("contiguous"), self.bias.as_slice_mut().expect("contiguous"))
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
