use hdm::prelude::*;

#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct Deep {
    conv1: Conv2d<1, 8, 5>,
    pool1: MaxPool2d<2>,
    conv2: Conv2d<8, 8, 5>,
    pool2: MaxPool2d<2>,
    conv3: Conv2d<8, 8, 5, 1, 0>,
    flat: Flatten,
    fc: Linear<8, 10>,
}

#[network(input = [4, 3, 3], loss = mse)]
struct Window {
    pool: AvgPool2d<4>,
}

fn main() {}
