use hdm::prelude::*;

const HIDDEN: usize = 500;

#[network(loss = mse)]
struct Net {
    fc1: Linear<784, HIDDEN>,
    act: LeakyRelu<{ -0.5 }>,
    fc2: Linear<500, 0>,
}

fn main() {}
