use hdm::prelude::*;

#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct LeNet {
    conv1: Conv2d<1, 32, 5>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<16, 64, 5>,
    flat: Flatten,
    fc: Linear<1024, 10>,
}

#[network(
    input = [3, 8, 8],
    loss = mse,
    forward = |x| {
        let h = relu(conv1(x));
        flatten(conv2(h))
    }
)]
struct Graph {
    conv1: Conv2d<3, 6, 3>,
    conv2: Conv2d<4, 2, 3>,
}

fn main() {}
