use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| {
        let h = relu(fc1(x));
        fc2(h)
    }
)]
struct Net {
    fc1: Linear<8, 16>,
    fc2: Linear<12, 1>,
}

fn main() {}
