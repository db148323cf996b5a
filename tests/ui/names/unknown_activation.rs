use hdm::prelude::*;

#[network(
    loss = softmax_cross_entropy,
    forward = |x| fc2(swish(fc1(x)))
)]
struct Net {
    fc1: Linear<4, 8>,
    fc2: Linear<8, 3>,
}

fn main() {}
