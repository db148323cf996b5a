use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Net {
    conv: Conv2d<1, 8>,
    fc: Linear<8, 10>,
}

fn main() {}
