use hdm::prelude::*;

#[network(input = [8, 7, 7], loss = mse)]
struct OutputPadding {
    up: ConvTranspose2d<8, 4, 4, 2, 1, 2>,
}

#[network(input = [8, 1, 1], loss = mse)]
struct Vanishing {
    up: ConvTranspose2d<8, 4, 1, 1, 1>,
}

fn main() {}
