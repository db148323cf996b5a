use hdm::prelude::*;

#[network(loss = mse)]
struct Tuple(Linear<4, 2>);

fn main() {}
