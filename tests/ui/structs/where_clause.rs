use hdm::prelude::*;

#[network(loss = mse)]
struct Where where u8: Copy {
    fc: Linear<4, 2>,
}

fn main() {}
