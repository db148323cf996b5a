use hdm::prelude::*;

#[network(
    loss = mse,
    forward = |x| {
        let h = relu(fc1(x));
        let unused = fc3(h);
        fc2(h)
    }
)]
struct Net {
    fc1: Linear<4, 8>,
    fc2: Linear<8, 1>,
    fc3: Linear<8, 2>,
}

fn main() {}
