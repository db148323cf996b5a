use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| {
        let h = tanh(fc1(x));
        fc2(concat(h, x))
    }
)]
struct Net {
    fc1: Linear<3, 5>,
    fc2: Linear<5, 2>,
}

fn main() {}
