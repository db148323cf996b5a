use hdm::prelude::*;

#[network(loss = mse, optimizer = adam)]
struct A {
    fc: Linear<4, 3>,
}

#[network(loss = "mse")]
struct B {
    fc: Linear<4, 3>,
}

#[network(loss = mse, forward = fc(x))]
struct C {
    fc: Linear<4, 3>,
}

fn main() {}
