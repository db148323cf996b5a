use hdm::prelude::*;

#[network(loss = mse)]
struct RowsIntoConv {
    fc: Linear<10, 64>,
    conv: Conv2d<4, 2, 3>,
}

#[network(input = [784], loss = mse)]
struct FlatInput {
    conv: Conv2d<1, 2, 3>,
}

#[network(loss = mse)]
struct UnknownSize {
    conv: Conv2d<1, 2, 3>,
    flat: Flatten,
}

fn main() {}
