//! Initialisation schemes on a whole network and on one layer (`hdm::init`): seeded, the batch
//! normalisation left as PyTorch leaves it, every other tensor redrawn with its own fans.

use hdm::init::{self, gain, Init, Mode, Nonlinearity};
use hdm::prelude::*;

#[network(input = [1, 8, 8], loss = softmax_cross_entropy)]
struct Net {
    conv: Conv2d<1, 16, 3>,
    bn: BatchNorm2d<16>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc1: Linear<144, 300>,
    act2: Relu,
    fc2: Linear<300, 10>,
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / n).sqrt()
}

#[test]
fn a_whole_network_is_redrawn_with_each_layers_fans() {
    let he = Init::KaimingNormal { gain: gain(Nonlinearity::Relu), mode: Mode::FanIn };
    let mut model = Net::<f32>::init(0);
    init::apply(&mut model, &mut Rng::new(5), he, Init::Constant(0.0)).unwrap();
    // Standard deviation sqrt(2 / fan_in) per layer: 9, 144 and 300 inputs.
    for (w, fan_in) in [(model.conv.weight().as_slice().unwrap(), 9.0), (model.fc1.weight().as_slice().unwrap(), 144.0)]
    {
        let expected = (2.0f64 / fan_in).sqrt();
        assert!((std_of(w) / expected - 1.0).abs() < 0.1, "{} against {expected}", std_of(w));
    }
    let expected = (2.0f64 / 300.0).sqrt();
    assert!((std_of(model.fc2.weight().as_slice().unwrap()) / expected - 1.0).abs() < 0.05);
    assert!(model.fc1.bias().unwrap().iter().chain(model.conv.bias().unwrap().iter()).all(|&b| b == 0.0));
    // The batch normalisation keeps weight 1, bias 0.
    assert!(model.bn.weight().iter().all(|&w| w == 1.0) && model.bn.bias().iter().all(|&b| b == 0.0));
    // Seeded: the same seed, the same network; another seed, another.
    let mut again = Net::<f32>::init(1);
    init::apply(&mut again, &mut Rng::new(5), he, Init::Constant(0.0)).unwrap();
    assert_eq!(again.params()[0].data, model.params()[0].data);
    init::apply(&mut again, &mut Rng::new(6), he, Init::Constant(0.0)).unwrap();
    assert_ne!(again.params()[0].data, model.params()[0].data);
}

#[test]
fn one_layer_or_a_rule_per_tensor() {
    let original = Net::<f32>::init(0);
    let mut model = original.clone();
    // One layer: fc2 only, as torch.randn (the tutorial MLP's start).
    init::apply(&mut model.fc2, &mut Rng::new(1), Init::Normal { mean: 0.0, std: 1.0 }, Init::Default).unwrap();
    assert!((std_of(model.fc2.weight().as_slice().unwrap()) - 1.0).abs() < 0.05);
    assert_eq!(model.fc1, original.fc1);
    assert_eq!(model.conv, original.conv);
    // A rule by name: Xavier for the fully connected weights, nothing else.
    let mut ruled = original.clone();
    init::apply_with(&mut ruled, &mut Rng::new(2), |name, shape| {
        (name.starts_with("fc") && shape.len() == 2).then_some(Init::XavierUniform { gain: 1.0 })
    })
    .unwrap();
    let bound = (6.0f32 / (144.0 + 300.0)).sqrt();
    let w = ruled.fc1.weight();
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > 0.95 * bound));
    assert_eq!(ruled.conv, original.conv);
    assert_eq!(ruled.fc1.bias(), original.fc1.bias());
    // Fans asked of a tensor without them: an error naming it; nothing changed.
    let e = init::apply_with(&mut ruled, &mut Rng::new(2), |name, _| {
        (name == "bn.bias").then_some(Init::KaimingUniform { gain: 1.0, mode: Mode::FanOut })
    })
    .unwrap_err();
    assert!(e.to_string().contains("initialising bn.bias [16]"), "{e}");
    // Training from the new start works as from the default one.
    let x = ndarray::Array2::from_shape_fn((4, 64), |(i, j)| ((i * 64 + j) % 7) as f32 * 0.1);
    let labels = ndarray::Array1::from_shape_fn(4, |i| i % 10);
    let mut trainer = ruled.trainer(Adam::new(1e-3), 4);
    assert!(trainer.step(&mut ruled, x.view(), labels.view()).unwrap().is_finite());
}
