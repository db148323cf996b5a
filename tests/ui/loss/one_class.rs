use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Net {
    fc1: Linear<4, 8>,
    act1: Relu,
    fc2: Linear<8, 1>,
}

fn main() {}
