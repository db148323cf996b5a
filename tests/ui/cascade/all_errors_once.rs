//! Several mistakes in one network are reported together, and the code using the network
//! still type-checks: no secondary errors.
use hdm::prelude::*;

#[network(loss = mse)]
struct Net {
    fc1: Linear<4, 8>,
    act1: Relu,
    fc2: Linear<9, 2>,
    act2: Swish,
    fc3: Linear<2, 1, Biased>,
}

fn main() {
    let model = Net::<f32>::init(0);
    let x = ndarray::Array2::<f32>::zeros((3, 4));
    let y = ndarray::Array2::<f32>::zeros((3, 1));
    let mut trainer = model.trainer(Adam::default(), 3);
    let mut model = model;
    let _loss: f32 = trainer.step(&mut model, x.view(), y.view()).unwrap();
    let _ = model.fc1;
}
