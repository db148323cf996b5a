use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Net {
    rnn: Lstm<1, 8>,
    fc: Linear<8, 10>,
}

fn main() {}
