//! Gradients through a network's input and from a caller's output gradient, checked against
//! central finite differences in f64: a small generator trained through a small discriminator
//! (both with batch normalisation in training mode, transposed convolutions, a reshape), as the
//! DCGAN's generator step is.

mod common;

use common::*;
use hdm::prelude::*;
use ndarray::{Array2, ArrayView2};

/// z [3] -> [8] -> [2, 2, 2] -> [2, 3, 3] -> [1, 6, 6].
#[network(input = [3], loss = none)]
struct Gen {
    fc: Linear<3, 8>,
    bn1: BatchNorm1d<8>,
    act1: Relu,
    to_image: Reshape<2, 2, 2>,
    up1: ConvTranspose2d<2, 2, 3, 2, 1>,
    bn2: BatchNorm2d<2>,
    act2: Relu,
    up2: ConvTranspose2d<2, 1, 2, 2>,
    out: Sigmoid,
}

/// [1, 6, 6] -> [3, 3, 3] -> [4, 1, 1] -> one logit.
#[network(input = [1, 6, 6], loss = bce_with_logits)]
struct Disc {
    conv1: Conv2d<1, 3, 3, 2, 1>,
    act1: LeakyRelu<0.2>,
    conv2: Conv2d<3, 4, 3>,
    bn: BatchNorm2d<4>,
    act2: Relu,
    flat: Flatten,
    fc: Linear<4, 1>,
}

const BATCH: usize = 5;

/// The generator's output as a training step computes it (batch statistics), on a copy so that
/// the running statistics of `g` stay as they are.
fn generate(g: &Gen<f64>, z: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut g = g.clone();
    let mut t = g.trainer(Sgd::new(0.0), BATCH);
    t.forward(&mut g, z).unwrap().to_owned()
}

/// The generator's loss of the GAN: the discriminator's loss on the fakes, labelled real.
fn composed_loss(g: &Gen<f64>, d: &Disc<f64>, z: ArrayView2<'_, f64>, ones: ArrayView2<'_, f64>) -> f64 {
    d.training_loss(generate(g, z).view(), ones).unwrap()
}

fn assert_close(what: &str, analytic: f64, numeric: f64) {
    let err = (numeric - analytic).abs();
    assert!(
        err <= 1e-6 * numeric.abs().max(analytic.abs()) + 1e-9,
        "{what}: analytic {analytic:e}, numeric {numeric:e}"
    );
}

#[test]
fn generator_gradients_through_the_discriminator() {
    let (mut g, mut d) = (Gen::<f64>::init(1), Disc::<f64>::init(2));
    let z = inputs(BATCH, 3, 3);
    let ones = Array2::<f64>::ones((BATCH, 1));
    let (g0, d0) = (g.clone(), d.clone());

    let mut gt = g.trainer(Sgd::new(0.1), BATCH);
    let mut dt = d.trainer(Sgd::new(0.1), BATCH);
    let fake = gt.forward(&mut g, z.view()).unwrap().to_owned();
    dt.forward(&mut d, fake.view()).unwrap();
    let loss = dt.backward(&mut d, ones.view(), Then::Discard, true).unwrap();
    gt.backward_from(&mut g, dt.input_gradient().unwrap(), Then::Accumulate, false).unwrap();
    assert_eq!(loss, composed_loss(&g0, &d0, z.view(), ones.view()));
    // Neither network's parameters moved.
    assert_eq!(g.params()[0].data, g0.params()[0].data);
    assert_eq!(d.params()[0].data, d0.params()[0].data);

    let h = 1e-5;
    let mut probe = g0.clone();
    let (mut checked, mut norm2) = (0, 0.0);
    for (pi, grad) in gt.gradients().params().iter().enumerate() {
        for j in 0..grad.data.len() {
            let orig = probe.params()[pi].data[j];
            let mut at = |v: f64| {
                probe.params_mut()[pi].data[j] = v;
                composed_loss(&probe, &d0, z.view(), ones.view())
            };
            let numeric = (at(orig + h) - at(orig - h)) / (2.0 * h);
            probe.params_mut()[pi].data[j] = orig;
            assert_close(&format!("{}[{j}]", grad.name), grad.data[j], numeric);
            norm2 += grad.data[j] * grad.data[j];
            checked += 1;
        }
    }
    assert!(checked > 50 && norm2 > 0.0);

    // The allocating form gives the same gradients.
    let (vjp_grads, _) = g0.vjp(z.view(), dt.input_gradient().unwrap()).unwrap();
    for (a, b) in vjp_grads.params().iter().zip(gt.gradients().params()) {
        assert_eq!(a.data, b.data, "{}", a.name);
    }
}

#[test]
fn input_gradient_of_a_loss_and_of_an_output_gradient() {
    let mut d = Disc::<f64>::init(5);
    let d0 = d.clone();
    let x = inputs(BATCH, 36, 6);
    let target = targets(BATCH, 1, 7).mapv(|v| (v > 0.0) as u8 as f64);
    let mut dt = d.trainer(Sgd::new(0.1), BATCH);
    dt.forward(&mut d, x.view()).unwrap();
    dt.backward(&mut d, target.view(), Then::Discard, true).unwrap();
    let dx = dt.input_gradient().unwrap().to_owned();

    // With respect to each input element, the loss's finite differences.
    let h = 1e-5;
    let mut probe = x.clone();
    for i in 0..BATCH {
        for j in 0..36 {
            let orig = probe[(i, j)];
            let mut at = |v: f64| {
                probe[(i, j)] = v;
                d0.training_loss(probe.view(), target.view()).unwrap()
            };
            let numeric = (at(orig + h) - at(orig - h)) / (2.0 * h);
            probe[(i, j)] = orig;
            assert_close(&format!("dx[{i}, {j}]"), dx[(i, j)], numeric);
        }
    }

    // A vector-Jacobian product: the gradients of sum(output * v).
    let v = targets(BATCH, 1, 8);
    let (grads, dx) = d0.vjp(x.view(), v.view()).unwrap();
    let objective = |m: &Disc<f64>, x: ArrayView2<'_, f64>| {
        let mut m = m.clone();
        let mut t = m.trainer(Sgd::new(0.0), BATCH);
        let out = t.forward(&mut m, x).unwrap().to_owned();
        (&out * &v).sum()
    };
    for (i, j) in [(0, 0), (1, 17), (4, 35), (2, 20)] {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[(i, j)] += h;
        minus[(i, j)] -= h;
        let numeric = (objective(&d0, plus.view()) - objective(&d0, minus.view())) / (2.0 * h);
        assert_close(&format!("vjp dx[{i}, {j}]"), dx[(i, j)], numeric);
    }
    let mut probe = d0.clone();
    for (pi, grad) in grads.params().iter().enumerate() {
        for j in 0..grad.data.len() {
            let orig = probe.params()[pi].data[j];
            probe.params_mut()[pi].data[j] = orig + h;
            let plus = objective(&probe, x.view());
            probe.params_mut()[pi].data[j] = orig - h;
            let minus = objective(&probe, x.view());
            probe.params_mut()[pi].data[j] = orig;
            assert_close(&format!("vjp {}[{j}]", grad.name), grad.data[j], (plus - minus) / (2.0 * h));
        }
    }
}

/// Two passes accumulated, then one update, equal one update with the sum of the two passes'
/// gradients (each pass normalised with its own batch statistics).
#[test]
fn accumulated_passes_update_once_with_the_sum() {
    let d = Disc::<f64>::init(9);
    let (a, b) = (inputs(BATCH, 36, 10), inputs(BATCH, 36, 11));
    let (zeros, ones) = (Array2::<f64>::zeros((BATCH, 1)), Array2::<f64>::ones((BATCH, 1)));
    let lr = 0.05;

    let mut fused = d.clone();
    let mut t = fused.trainer(Sgd::new(lr).momentum(0.8).nesterov(true), BATCH);
    t.forward(&mut fused, a.view()).unwrap();
    let la = t.backward(&mut fused, zeros.view(), Then::Accumulate, false).unwrap();
    assert_eq!(fused.params()[0].data, d.params()[0].data, "an accumulating pass does not update");
    t.forward(&mut fused, b.view()).unwrap();
    let lb = t.backward(&mut fused, ones.view(), Then::Update, false).unwrap();
    assert_eq!(t.steps(), 1);

    let (ga, gb) = (d.gradients(a.view(), zeros.view()).unwrap(), d.gradients(b.view(), ones.view()).unwrap());
    assert_eq!((la, lb), (ga.0, gb.0));
    // The same update through `update` after two accumulating passes.
    let mut twice = d.clone();
    let mut w = twice.trainer(Sgd::new(lr).momentum(0.8).nesterov(true), BATCH);
    w.forward(&mut twice, a.view()).unwrap();
    w.backward(&mut twice, zeros.view(), Then::Accumulate, false).unwrap();
    w.forward(&mut twice, b.view()).unwrap();
    w.backward(&mut twice, ones.view(), Then::Accumulate, false).unwrap();
    w.update(&mut twice).unwrap();
    let mut apart = d.clone();
    for (pi, p) in apart.params_mut().iter_mut().enumerate() {
        let (x, y) = (&ga.1.params()[pi].data, &gb.1.params()[pi].data);
        for (j, v) in p.data.iter_mut().enumerate() {
            // First Nesterov step from a zero buffer: buf = g, step g + 0.8 g.
            *v -= lr * 1.8 * (x[j] + y[j]);
        }
    }
    for ((e, f), t) in apart.params().iter().zip(fused.params()).zip(twice.params()) {
        for j in 0..e.data.len() {
            assert!((e.data[j] - f.data[j]).abs() <= 1e-12, "{}[{j}]: {} vs {}", e.name, e.data[j], f.data[j]);
            assert!((e.data[j] - t.data[j]).abs() <= 1e-12, "{}[{j}]: {} vs {}", e.name, e.data[j], t.data[j]);
        }
    }
}

#[test]
fn misuse_is_an_error() {
    let mut d = Disc::<f64>::init(3);
    let x = inputs(BATCH, 36, 1);
    let ones = Array2::<f64>::ones((BATCH, 1));
    let mut t = d.trainer(Sgd::new(0.1), BATCH);
    let no_forward = t.backward(&mut d, ones.view(), Then::Update, false).unwrap_err().to_string();
    assert!(no_forward.contains("needs a forward pass first"), "{no_forward}");
    assert!(t.input_gradient().unwrap_err().to_string().contains("no input gradient"));
    assert!(t.update(&mut d).unwrap_err().to_string().contains("without accumulated gradients"));
    t.forward(&mut d, x.view()).unwrap();
    let wrong = Array2::<f64>::ones((BATCH, 2));
    let e = t.backward_from(&mut d, wrong.view(), Then::Update, false).unwrap_err().to_string();
    assert!(e.contains("gradient of the output of Disc") && e.contains("[5, 1]"), "{e}");
    t.forward(&mut d, x.view()).unwrap();
    t.backward(&mut d, ones.view(), Then::Accumulate, false).unwrap();
    t.forward(&mut d, x.view()).unwrap();
    let e = t.backward(&mut d, ones.view(), Then::Discard, true).unwrap_err().to_string();
    assert!(e.contains("would overwrite accumulated gradients"), "{e}");
}
