use hdm::prelude::*;

#[network(loss = mse, forward = |x| fc2(fc1(relu(fc1(x)))))]
struct Net {
    fc1: Linear<4, 4>,
    fc2: Linear<4, 1>,
}

fn main() {
    let model = Net::<f64>::init(0);
    let _ = model.path_norm();
}
