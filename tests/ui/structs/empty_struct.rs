use hdm::prelude::*;

#[network(loss = mse)]
struct Empty {}

fn main() {}
