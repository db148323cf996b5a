use hdm::prelude::*;

#[network]
struct Net {
    fc: Linear<4, 3>,
}

fn main() {}
