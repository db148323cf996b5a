//! A convolutional network's training step computes the same bits at every vector level the CPU
//! has (`hdm::simd`): its im2col, col2im, epilogues, pooling and batch statistics (of images and
//! of feature rows) included. One test in its own process, since the level is set for the whole
//! process.

use hdm::prelude::*;
use hdm::simd::{self, Level};
use ndarray::{Array1, Array2};

#[network(
    input = [2, 12, 12],
    loss = softmax_cross_entropy,
    forward = |x| {
        let h = relu(bn1(conv1(x)));
        let r = gelu(conv2(h)) + h;
        let u = sigmoid(up(pool1(r)));
        fc2(relu(bnf(fc(flatten(pool2(u))))))
    }
)]
struct Net {
    conv1: Conv2d<2, 6, 3, 1, 1>,
    bn1: BatchNorm2d<6>,
    conv2: Conv2d<6, 6, 5, 1, 2>,
    pool1: MaxPool2d<3, 3>,
    up: ConvTranspose2d<6, 5, 4, 2, 1>,
    pool2: AvgPool2d<2>,
    fc: Linear<80, 37>,
    bnf: BatchNorm1d<37>,
    fc2: Linear<37, 7>,
}

/// In `f32`, where 2 x 2 max pooling has its own AVX-512 kernel: output rows of 9 windows (one
/// row per vector, an odd number of rows) and of 4 (two rows per vector, an odd input height and
/// width), after ReLUs, whose zeros make ties.
#[network(input = [3, 10, 18], loss = softmax_cross_entropy)]
struct Pooled {
    conv1: Conv2d<3, 5, 3, 1, 1>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<5, 4, 3, 1, 1>,
    act2: Relu,
    pool2: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<32, 7>,
}

fn run_f32() -> Vec<u32> {
    let mut rng = Rng::new(8);
    let x = Array2::from_shape_simple_fn((13, 540), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(13, || rng.below(7));
    let mut model = Pooled::<f32>::init(3);
    let mut trainer = model.trainer(Adam::new(1e-2), 13);
    let mut out: Vec<u32> =
        (0..4).map(|_| trainer.step(&mut model, x.view(), labels.view()).unwrap().to_bits()).collect();
    out.extend(model.state().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())));
    out.extend(model.forward(x.view()).unwrap().iter().map(|v| v.to_bits()));
    out
}

fn run() -> Vec<u64> {
    let mut rng = Rng::new(5);
    let x = Array2::from_shape_simple_fn((19, 288), || rng.normal());
    let labels = Array1::from_shape_simple_fn(19, || rng.below(7));
    let mut model = Net::<f64>::init(6);
    let mut trainer = model.trainer(Adam::new(1e-2), 19);
    let mut out: Vec<u64> =
        (0..4).map(|_| trainer.step(&mut model, x.view(), labels.view()).unwrap().to_bits()).collect();
    out.extend(model.state().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())));
    out.extend(model.forward(x.view()).unwrap().iter().map(|v| v.to_bits()));
    out
}

#[test]
fn every_vector_level_gives_the_same_bits() {
    let widest = simd::level();
    let (wide, wide_f32) = (run(), run_f32());
    for level in [Level::Avx2, Level::Baseline] {
        simd::set_level(level);
        assert_eq!(run(), wide, "{:?} against {widest:?}", simd::level());
        assert_eq!(run_f32(), wide_f32, "f32: {:?} against {widest:?}", simd::level());
    }
}
