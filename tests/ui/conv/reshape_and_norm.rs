use hdm::prelude::*;

#[network(loss = mse)]
struct Generator {
    fc: Linear<32, 6000>,
    to_image: Reshape<256, 5, 5>,
    bn: BatchNorm2d<128>,
    flat: Flatten,
}

#[network(input = [3, 8, 8], loss = mse)]
struct Norms {
    conv: Conv2d<3, 4, 3>,
    bn1: BatchNorm1d<4>,
    flat: Flatten,
}

#[network(loss = mse)]
struct RowsNorm {
    fc: Linear<4, 5>,
    bn: BatchNorm2d<5>,
}

fn main() {}
