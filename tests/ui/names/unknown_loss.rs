use hdm::prelude::*;

#[network(loss = hinge)]
struct Net {
    fc: Linear<4, 3>,
}

fn main() {}
