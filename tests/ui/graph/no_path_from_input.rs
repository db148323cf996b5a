use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |input| fc2(relu(fc1(x)))
)]
struct Net {
    fc1: Linear<4, 8>,
    fc2: Linear<8, 1>,
}

fn main() {}
