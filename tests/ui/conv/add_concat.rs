use hdm::prelude::*;

#[network(
    input = [3, 8, 8],
    loss = mse,
    forward = |x| {
        let a = conv1(x);
        let b = conv2(x);
        flatten(a + b)
    }
)]
struct Skip {
    conv1: Conv2d<3, 4, 3, 1, 1>,
    conv2: Conv2d<3, 4, 3>,
}

#[network(
    input = [3, 8, 8],
    loss = mse,
    forward = |x| {
        let a = conv1(x);
        let b = conv2(x);
        flatten(concat(a, b))
    }
)]
struct Cat {
    conv1: Conv2d<3, 4, 3, 1, 1>,
    conv2: Conv2d<3, 4, 3, 2, 1>,
}

#[network(
    input = [3, 8, 8],
    loss = mse,
    forward = |x| concat(flatten(conv1(x)), conv2(x))
)]
struct Mixed {
    conv1: Conv2d<3, 4, 3>,
    conv2: Conv2d<3, 4, 3>,
}

fn main() {}
