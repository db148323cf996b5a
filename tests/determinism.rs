//! The same seed gives bit-identical weights, after initialisation and after 100 steps.

use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<20, 33>,
    act1: Relu,
    fc2: Linear<33, 17>,
    act2: Gelu,
    fc3: Linear<17, 5>,
}

fn train(seed: u64, optimizer: impl Optimizer<f32>) -> Mlp<f32> {
    let mut rng = Rng::new(1000);
    let x = Array2::from_shape_simple_fn((64, 20), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(64, || rng.below(5));
    let mut model = Mlp::<f32>::init(seed);
    let mut trainer = model.trainer(optimizer, 64);
    for step in 0..100 {
        let rows = 16 + (step % 4) * 16; // batches of varying size
        let (xs, ls) = (x.slice(ndarray::s![..rows, ..]), labels.slice(ndarray::s![..rows]));
        trainer.step(&mut model, xs, ls).unwrap();
    }
    model
}

#[test]
fn initialisation_is_seeded_and_follows_pytorch_bounds() {
    let a = Mlp::<f64>::init(7);
    assert_eq!(a, Mlp::<f64>::init(7));
    assert_ne!(a, Mlp::<f64>::init(8));
    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    for (p, fan_in) in a.params().iter().zip([20.0f64, 20.0, 33.0, 33.0, 17.0, 17.0]) {
        let bound = 1.0 / fan_in.sqrt();
        assert!(p.data.iter().all(|v| v.abs() <= bound), "{}", p.name);
        let max = p.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max > 0.6 * bound, "{} does not fill its range", p.name);
    }
}

#[test]
fn same_seed_same_weights_after_100_steps() {
    let a = train(3, Adam::new(1e-2));
    let b = train(3, Adam::new(1e-2));
    let bits = |m: &Mlp<f32>| m.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&train(4, Adam::new(1e-2))));
    let h1 = train(3, Hdm::default());
    assert_eq!(bits(&h1), bits(&train(3, Hdm::default())));
}
