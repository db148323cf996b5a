use hdm::prelude::*;

#[network(loss = mse, fused = true)]
struct UnknownFlag {
    fc: Linear<4, 2>,
}

fn main() {}
