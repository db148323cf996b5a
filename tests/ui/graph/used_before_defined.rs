use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| {
        let a = relu(fc1(x)) + b;
        let b = fc1(x);
        fc2(a)
    }
)]
struct Net {
    fc1: Linear<4, 8>,
    fc2: Linear<8, 1>,
}

fn main() {}
