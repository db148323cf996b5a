//! A backward pass that discards its parameters' gradients (`Then::Discard`, the pass a GAN's
//! generator step makes through the discriminator for its input's gradient) leaves the
//! trainer's gradients as the last step left them: weights, biases (summed beside an
//! activation's derivative or alone) and batch normalisation's weight and bias.

use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(input = [2, 9, 9], loss = softmax_cross_entropy)]
struct Net {
    conv1: Conv2d<2, 5, 3, 2, 1>,
    bn1: BatchNorm2d<5>,
    act1: LeakyRelu<0.2>,
    conv2: Conv2d<5, 6, 3>,
    act2: Relu,
    flat: Flatten,
    fc1: Linear<54, 12>,
    bn2: BatchNorm1d<12>,
    act3: Tanh,
    fc2: Linear<12, 3>,
}

fn bits(m: &Net<f32>) -> Vec<u32> {
    m.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect()
}

#[test]
fn a_discarding_pass_leaves_the_gradients_of_the_last_step() {
    let mut rng = Rng::new(11);
    let x = Array2::from_shape_simple_fn((10, 162), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(10, || rng.below(3));
    for batch in [2, 4] {
        let mut model = Net::<f32>::init(5);
        let mut trainer = model.trainer(Adam::new(1e-3), 6);
        trainer.step(&mut model, x.slice(s![..batch, ..]), labels.slice(s![..batch])).unwrap();
        let before = bits(trainer.gradients());
        assert!(before.iter().filter(|&&b| b != 0).count() > before.len() / 2, "gradients made");
        trainer.forward(&mut model, x.slice(s![4..10, ..])).unwrap();
        trainer.backward(&mut model, labels.slice(s![4..10]), Then::Discard, true).unwrap();
        assert_eq!(bits(trainer.gradients()), before, "gradients after a discarding pass, batch {batch}");
    }
}
