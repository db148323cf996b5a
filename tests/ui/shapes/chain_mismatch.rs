use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<784, 500>,
    act1: Relu,
    fc2: Linear<400, 10>,
}

fn main() {}
