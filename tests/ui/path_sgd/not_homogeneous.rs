use hdm::prelude::*;

#[network(loss = softmax_cross_entropy)]
struct Net {
    fc1: Linear<4, 8>,
    act: Sigmoid,
    fc2: Linear<8, 3>,
}

fn main() {
    let model = Net::<f32>::init(0);
    let _trainer = model.trainer(PathSgd::new(0.1), 10);
}
