use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<7, 5>,
    act1: Relu,
    fc2: Linear<5, 4>,
    act2: Tanh,
    fc3: Linear<4, 3>,
}

#[test]
fn smoke() {
    let mut model = Mlp::<f64>::init(42);
    let x = Array2::from_shape_fn((6, 7), |(i, j)| ((i * 7 + j) as f64 * 0.37).sin());
    let labels = Array1::from_vec(vec![0usize, 1, 2, 0, 1, 2]);
    let (loss, grads) = model.gradients(x.view(), labels.view()).unwrap();
    println!("{loss} {:?}", grads.fc1.weight());
    let mut trainer = model.trainer(Sgd::new(0.1), 10);
    for _ in 0..20 {
        let l = trainer.step(&mut model, x.view(), labels.view()).unwrap();
        println!("{l}");
    }
}
