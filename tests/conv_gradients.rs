//! Every convolutional layer gradient-checked against central finite differences, in f64, on odd
//! sizes: strides 1 and 2, paddings 0 to 2, kernels 1 to 5, channel counts that are not powers of
//! two, non-square images, and a skip connection over a convolution block.

mod common;

use common::*;
use hdm::prelude::*;

/// Convolutions with stride 1 and 2 and padding 0 and 1, max pooling with overlapping windows, a
/// non-square image.
#[network(input = [2, 7, 6], loss = softmax_cross_entropy)]
struct ConvChain {
    conv1: Conv2d<2, 3, 3>,
    act1: Relu,
    conv2: Conv2d<3, 5, 2, 2, 1>,
    act2: Tanh,
    pool: MaxPool2d<2, 1>,
    flat: Flatten,
    fc: Linear<20, 3>,
}

#[test]
fn conv2d_strides_paddings_and_max_pooling() {
    let model = ConvChain::<f64>::init(1);
    check_gradients(&model, (inputs(5, 2 * 7 * 6, 2) * 2.0).view(), labels(5, 3, 3).view());
}

/// A transposed convolution (stride 2, padding 1, output padding 1), average pooling, a 1x1 and
/// a 5x5 convolution with padding 2, no bias, and a loss on an image.
#[network(input = [3, 3, 4], loss = mse)]
struct Transposed {
    up: ConvTranspose2d<3, 2, 3, 2, 1, 1>,
    act1: Sigmoid,
    pool: AvgPool2d<2>,
    mix: Conv2d<2, 5, 1>,
    act2: LeakyRelu<0.1>,
    wide: Conv2d<5, 3, 5, 1, 2, NoBias>,
}

#[test]
fn conv_transpose2d_average_pooling_and_image_outputs() {
    let model = Transposed::<f64>::init(4);
    check_gradients(&model, inputs(3, 3 * 3 * 4, 5).view(), targets(3, 3 * 3 * 4, 6).view());
}

/// A transposed convolution with stride 1 and padding 2 and a kernel of 4, into GELU (its
/// pre-activation kept), and a transposed convolution without bias.
#[network(input = [2, 5, 5], loss = sum_of_squares)]
struct TransposedGelu {
    up: ConvTranspose2d<2, 3, 4, 1, 2>,
    act: Gelu,
    down: ConvTranspose2d<3, 1, 2, 2, 0, 1, NoBias>,
}

#[test]
fn conv_transpose2d_with_a_kept_pre_activation() {
    let model = TransposedGelu::<f64>::init(7);
    // [2, 5, 5] -> [3, 4, 4] -> [1, 9, 9]
    check_gradients(&model, inputs(2, 50, 8).view(), targets(2, 81, 9).view());
}

/// Batch normalisation of images and of rows, fused with the activations after them, and one
/// without an activation.
#[network(input = [1, 6, 5], loss = softmax_cross_entropy)]
struct Normalised {
    conv1: Conv2d<1, 3, 3, 1, 1>,
    bn1: BatchNorm2d<3>,
    act1: Relu,
    conv2: Conv2d<3, 3, 3, 2, 0>,
    bn2: BatchNorm2d<3>,
    flat: Flatten,
    fc1: Linear<12, 7>,
    bn3: BatchNorm1d<7>,
    act3: Gelu,
    fc2: Linear<7, 4>,
}

#[test]
fn batch_normalisation_of_images_and_rows() {
    let mut model = Normalised::<f64>::init(10);
    // Not the initial weight 1 and bias 0: every parameter matters.
    for (i, p) in model.params_mut().into_iter().enumerate() {
        if p.name.starts_with("bn") {
            for (j, v) in p.data.iter_mut().enumerate() {
                *v += 0.1 * ((i + j) % 5) as f64 - 0.2;
            }
        }
    }
    check_gradients(&model, inputs(6, 30, 11).view(), labels(6, 4, 12).view());
}

/// A residual block over convolutions: the skip adds the block's input to its output, a value
/// feeding two layers; a concatenation along channels.
#[network(
    input = [3, 6, 6],
    loss = mse,
    forward = |x| {
        let h = relu(conv1(x));
        let r = bn(conv2(h));
        let s = relu(r) + h;
        let c = concat(s, conv3(x));
        fc(flatten(pool(c)))
    }
)]
struct Residual {
    conv1: Conv2d<3, 4, 3, 1, 1>,
    conv2: Conv2d<4, 4, 3, 1, 1>,
    bn: BatchNorm2d<4>,
    conv3: Conv2d<3, 2, 1>,
    pool: MaxPool2d<3, 3>,
    fc: Linear<24, 2>,
}

#[test]
fn a_skip_connection_over_a_convolution_block() {
    let model = Residual::<f64>::init(13);
    check_gradients(&model, inputs(4, 108, 14).view(), targets(4, 2, 15).view());
}

/// A convolution applied twice (shared weights) and a reshape from rows to images.
#[network(
    input = [12],
    loss = mse,
    forward = |x| {
        let img = to_image(fc(x));
        let a = relu(conv(img));
        conv(a)
    }
)]
struct Shared {
    fc: Linear<12, 18>,
    to_image: Reshape<2, 3, 3>,
    conv: Conv2d<2, 2, 3, 1, 1>,
}

#[test]
fn a_convolution_applied_twice_and_a_reshape() {
    let model = Shared::<f64>::init(16);
    check_gradients(&model, inputs(3, 12, 17).view(), targets(3, 18, 18).view());
}

/// One image feeding two poolings and a convolution: the second pooling's backward pass (and the
/// convolution's) add into a gradient the first one wrote.
#[network(
    input = [2, 6, 6],
    loss = mse,
    forward = |x| {
        let h = tanh(conv(x));
        let a = flatten(maxp(h));
        let b = flatten(avgp(h));
        let c = flatten(maxp(relu(conv2(h))));
        fc(concat(a, b, c))
    }
)]
struct TwoPools {
    conv: Conv2d<2, 3, 3, 1, 1>,
    conv2: Conv2d<3, 3, 1>,
    maxp: MaxPool2d<2>,
    avgp: AvgPool2d<2>,
    fc: Linear<81, 2>,
}

#[test]
fn poolings_that_share_an_input_add_their_gradients() {
    let model = TwoPools::<f64>::init(19);
    check_gradients(&model, inputs(3, 72, 20).view(), targets(3, 2, 21).view());
}
