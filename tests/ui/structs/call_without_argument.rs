use hdm::prelude::*;

#[network(loss = mse, forward = |x| fc2(fc1(x)) + fc2())]
struct NoArgument {
    fc1: Linear<4, 3>,
    fc2: Linear<3, 2>,
}

fn main() {}
