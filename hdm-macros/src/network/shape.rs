//! The shapes of values, and the geometry of the layers that work on images.
//!
//! A value of a network is a batch of samples, each of one [`Shape`]: a row of features, or an
//! image of channels x height x width. Whatever the shape, a batch is stored as a row-major
//! `[batch, width]` matrix, one sample per row; for an image the row holds its channels one
//! after another, each row by row: the memory of PyTorch's NCHW tensors. So a flatten, a reshape
//! or a concatenation along channels never moves a value.

use std::fmt;

/// The shape of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A row of features.
    Flat(usize),
    /// An image: channels, height, width.
    Image { c: usize, h: usize, w: usize },
}

impl Shape {
    /// An image, or `None` when its number of elements does not fit in `usize`.
    pub fn image(c: usize, h: usize, w: usize) -> Option<Shape> {
        c.checked_mul(h)?.checked_mul(w)?;
        Some(Shape::Image { c, h, w })
    }

    /// Number of elements of one sample.
    pub fn width(self) -> usize {
        match self {
            Shape::Flat(f) => f,
            // Checked when the shape was made (`Shape::image`).
            Shape::Image { c, h, w } => c * h * w,
        }
    }

    /// `[c, h, w]` or `[f]`, the numbers only (for PyTorch-style messages).
    pub fn dims(self) -> String {
        match self {
            Shape::Flat(f) => format!("[{f}]"),
            Shape::Image { c, h, w } => format!("[{c}, {h}, {w}]"),
        }
    }
}

impl fmt::Display for Shape {
    /// "500 wide" for a row, "[32, 14, 14]" for an image.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Flat(w) => write!(f, "{w} wide"),
            Shape::Image { .. } => f.write_str(&self.dims()),
        }
    }
}

/// A 2-D convolution over images of one size: `Conv2d`'s forward pass, or the convolution whose
/// backward pass a `ConvTranspose2d` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// The layer transposes the convolution (`ConvTranspose2d`): its input is the convolution's
    /// output, and its output the convolution's input.
    pub transposed: bool,
    /// Input of the layer.
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    /// Output of the layer.
    pub out_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

/// A max or average pooling over images of one size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub max: bool,
    pub c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// Why a convolution has no output size along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// The kernel is larger than the padded input (a convolution or a pooling).
    KernelTooLarge,
    /// The output would be this size, less than 1 (a transposed convolution).
    Below1(i128),
    /// A size the layer computes on the way (the padded input of a convolution; `(n - 1) s + k +
    /// output_padding` of a transposed one) does not fit in `usize`.
    Overflow,
}

/// PyTorch's output size of a convolution along one axis, `floor((n + 2p - k) / s) + 1`.
pub fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Result<usize, SizeError> {
    let padded = p.checked_mul(2).and_then(|p2| n.checked_add(p2)).ok_or(SizeError::Overflow)?;
    if k > padded {
        return Err(SizeError::KernelTooLarge);
    }
    Ok((padded - k) / s + 1)
}

/// PyTorch's output size of a transposed convolution along one axis,
/// `(n - 1) s - 2p + k + output_padding`.
pub fn conv_transpose_out(n: usize, k: usize, s: usize, p: usize, op: usize) -> Result<usize, SizeError> {
    let grown = (n as i128 - 1)
        .checked_mul(s as i128)
        .map(|v| v + k as i128 + op as i128)
        .filter(|&v| v <= usize::MAX as i128)
        .ok_or(SizeError::Overflow)?;
    let out = grown - 2 * p as i128;
    if out < 1 {
        return Err(SizeError::Below1(out));
    }
    Ok(out as usize)
}
