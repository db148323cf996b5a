use hdm::prelude::*;

#[network(loss = mse)]
struct Unit;

fn main() {}
