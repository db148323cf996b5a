use hdm::prelude::*;

#[network(input = [4], loss = mse)]
struct OnlyActivations {
    act: Relu,
    out: Tanh,
}

fn main() {}
