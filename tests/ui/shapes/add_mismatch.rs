use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| {
        let a = fc1(x);
        let b = fc2(x);
        fc3(a + b)
    }
)]
struct Net {
    fc1: Linear<4, 6>,
    fc2: Linear<4, 5>,
    fc3: Linear<6, 1>,
}

fn main() {}
