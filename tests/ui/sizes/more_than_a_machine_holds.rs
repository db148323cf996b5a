// Layer sizes whose parameters overflow `usize` or need more memory than any machine has are
// compile errors, each at its layer's type, all reported at once.
use hdm::prelude::*;

#[network(loss = mse)]
struct Huge {
    fc1: Linear<100000000, 100000000>,
    act: Relu,
    fc2: Linear<100000000, 10>,
}

#[network(input = [3, 32, 32], loss = mse)]
struct Overflowing {
    conv: Conv2d<3, 18446744073709551615, 5>,
    flat: Flatten,
    fc: Linear<10, 1>,
}

#[network(loss = mse)]
struct TooManyInTotal {
    fc1: Linear<65536, 655360>,
    fc2: Linear<655360, 65536>,
    fc3: Linear<65536, 1>,
}

#[network(input = [100000000000], loss = mse)]
struct HugeInput {
    fc: Linear<100000000000, 1>,
}

fn main() {}
