use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| fc2(relu(fc1(x)))
)]
struct Net {
    fc1: Linear<4, 8>,
    fc2: Linear<8, 1>,
    fc3: Linear<8, 8>,
}

fn main() {}
