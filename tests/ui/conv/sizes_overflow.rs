//! Sizes whose products or sums do not fit in `usize`: each an error at the layer (or the
//! input), never a panic of the macro nor an overflow in the generated code.
use hdm::prelude::*;

#[network(input = [4294967296, 4294967296, 2], loss = mse)]
struct HugeInput {
    flat: Flatten,
}

#[network(input = [1, 28, 28], loss = mse)]
struct HugePadding {
    conv: Conv2d<1, 8, 3, 1, 9223372036854775809>,
}

#[network(input = [1, 28, 28], loss = mse)]
struct HugeStride {
    up: ConvTranspose2d<1, 1, 3, 18446744073709551615>,
}

#[network(input = [1, 18446744073709551615, 1], loss = mse)]
struct HugeStrideAndInput {
    up: ConvTranspose2d<1, 1, 1, 18446744073709551615>,
}

#[network(input = [1, 28, 28], loss = mse)]
struct HugeOutput {
    conv: Conv2d<1, 8, 3, 1, 4611686018427387904>,
}

#[network(loss = mse)]
struct HugeReshape {
    fc: Linear<16, 16>,
    view: Reshape<4294967296, 4294967296, 2>,
}

#[network(
    loss = mse,
    forward = |x| {
        let h = fc(x);
        concat(h, h, h)
    }
)]
struct HugeConcat {
    fc: Linear<1, 9223372036854775807>,
}

fn main() {}
