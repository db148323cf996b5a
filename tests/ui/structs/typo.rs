use hdm::prelude::*;

#[network(loss = mse)]
struct Typo {
    fc1: Linear<4, 3>,
    act: Rleu,
    fc2: Lienar<3, 2>,
}

#[network(loss = softmax_crossentropy)]
struct LossTypo {
    fc: Linear<4, 2>,
}



#[network(loss = mse, froward = |x| fc(x))]
struct ArgumentTypo {
    fc: Linear<4, 2>,
}

#[network(loss = mse, forward = |x| fc2(rleu(fc1(x))))]
struct CallTypo {
    fc1: Linear<4, 3>,
    fc2: Linear<3, 2>,
}
fn main() {}
