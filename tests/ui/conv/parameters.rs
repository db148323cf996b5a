use hdm::prelude::*;

#[network(input = [1, 28, 28], loss = mse)]
struct Net {
    conv1: Conv2d<1, 8>,
    conv2: Conv2d<8, 8, 3, 0>,
    up: ConvTranspose2d<8, 8, 3, 1, 0, 0, 0>,
    pool: MaxPool2d<2, 2, 2>,
    bn: BatchNorm2d<KERNELS>,
    reshape: Reshape<8, 8>,
    flat: Flatten<2>,
}

fn main() {}
