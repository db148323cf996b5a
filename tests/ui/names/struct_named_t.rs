// `T` is the element type parameter hdm gives every network: a struct of that name is one clear
// error, and nothing else.
use hdm::prelude::*;

#[network(loss = mse)]
struct T {
    fc: Linear<4, 2>,
}

fn main() {}
