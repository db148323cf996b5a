use hdm::prelude::*;

#[network(loss = mse)]
struct Twice {
    fc: Linear<4, 3>,
    act: Relu,
    fc: Linear<3, 2>,
}

fn main() {}
