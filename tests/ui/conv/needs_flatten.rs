use hdm::prelude::*;

#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct Forgot {
    conv: Conv2d<1, 16, 5, 1, 2>,
    pool: MaxPool2d<2>,
    fc: Linear<3136, 10>,
}

#[network(input = [1, 28, 28], loss = softmax_cross_entropy)]
struct WrongSize {
    conv: Conv2d<1, 16, 5>,
    pool: MaxPool2d<2>,
    fc: Linear<3136, 10>,
}

#[network(input = [3, 4, 4], loss = softmax_cross_entropy)]
struct ImageLogits {
    conv: Conv2d<3, 10, 4>,
}

fn main() {}
