//! Several mistakes in a convolutional network are reported together, and the code using the
//! network still type-checks: no secondary errors.
use hdm::prelude::*;

#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct Net {
    conv1: Conv2d<1, 32, 5>,
    bn1: BatchNorm2d<16>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<16, 64, 5, 1, 2>,
    pool2: MaxPool2d<2>,
    fc: Linear<3136, 10>,
}

fn main() {
    let model = Net::<f32>::init(0);
    let x = ndarray::Array2::<f32>::zeros((3, 784));
    let y = ndarray::Array1::<usize>::zeros(3);
    let mut trainer = model.trainer(Adam::default(), 3);
    let mut model = model;
    let _loss: f32 = trainer.step(&mut model, x.view(), y.view()).unwrap();
    let _ = model.conv1;
}
