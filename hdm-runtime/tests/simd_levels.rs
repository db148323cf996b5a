//! Every vector level computes the same bits: the kernels and optimizer loops give identical
//! results at the baseline width and at the widest the CPU has.

use hdm_runtime::gemm::{MatMut, MatRef};
use hdm_runtime::kernels::{act_backward_in_place, bias_act, softmax_cross_entropy, sum_of_squares, Gelu, Relu};
use hdm_runtime::optim::{Adam, Hdm, MomentumNorm, Optimizer, RmsProp};
use hdm_runtime::simd::{self, Level};
use hdm_runtime::Rng;

fn run() -> Vec<u32> {
    let mut rng = Rng::new(1);
    let n = 1037;
    let mut out = Vec::new();
    let g: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let mut x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let adam = Adam::new(1e-2).weight_decay(0.1).amsgrad(true);
    let mut s = Optimizer::<f32>::init(&adam, n);
    let rms = RmsProp::new(1e-2).centered(true).momentum(0.9);
    let mut r = Optimizer::<f32>::init(&rms, n);
    let hdm = Hdm::new(0.5).norm(MomentumNorm::PerTensor);
    let mut h = Optimizer::<f32>::init(&hdm, n);
    for t in 1..=3 {
        adam.update(&Optimizer::<f32>::prepare(&adam, t, 1.0), &mut x, &g, &mut s);
        rms.update(&Optimizer::<f32>::prepare(&rms, t, 1.0), &mut x, &g, &mut r);
        hdm.update(&Optimizer::<f32>::prepare(&hdm, t, 1.0), &mut x, &g, &mut h);
    }
    out.extend(x.iter().map(|v| v.to_bits()));

    let (rows, cols) = (7, 149);
    let bias: Vec<f32> = (0..cols).map(|_| rng.normal() as f32).collect();
    let mut y: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    bias_act(MatMut::row_major(&mut y, rows, cols), &bias, Relu);
    let z = y.clone();
    let mut gr: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    let mut db = vec![0.0f32; cols];
    act_backward_in_place(
        MatMut::row_major(&mut gr, rows, cols),
        MatRef::row_major(&y, rows, cols),
        MatRef::row_major(&z, rows, cols),
        Gelu,
        Some((&mut db, false)),
    );
    let labels = [3usize, 1, 4, 1, 5, 9, 2];
    let mut d = vec![0.0f32; rows * cols];
    let loss = softmax_cross_entropy(
        MatRef::row_major(&gr, rows, cols),
        |i| labels[i],
        Some(MatMut::row_major(&mut d, rows, cols)),
    );
    out.extend(y.iter().chain(&gr).chain(&db).chain(&d).map(|v| v.to_bits()));
    out.push(loss.to_bits());
    out.push(sum_of_squares(&g).to_bits());
    out
}

#[test]
fn the_baseline_and_the_widest_level_agree_bit_for_bit() {
    let widest = simd::level();
    let wide = run();
    simd::set_level(Level::Baseline);
    assert_eq!(simd::level(), Level::Baseline);
    let narrow = run();
    simd::set_level(widest);
    assert_eq!(wide, narrow, "level {widest:?} differs from the baseline");
}

/// The in-place activation of a layer without bias (a loop written so that it vectorises, see
/// `bias_act`) computes exactly `apply(z)` for every element, signed zeros, infinities and NaN
/// included, at every level.
#[test]
fn activation_in_place_without_bias_is_the_activation_of_each_element() {
    use hdm_runtime::kernels::{Activation, LeakyRelu, Tanh};
    fn check<A: Activation>(act: A) {
        let mut rng = Rng::new(3);
        let (rows, cols) = (5, 67);
        let special = [-0.0f32, 0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1e-40, 1e-40];
        let z: Vec<f32> = (0..rows * cols)
            .map(|i| if i % 5 == 0 { special[(i / 5) % special.len()] } else { rng.normal() as f32 })
            .collect();
        let mut y = z.clone();
        bias_act(MatMut::row_major(&mut y, rows, cols), &[], act);
        for (i, (&z, &y)) in z.iter().zip(&y).enumerate() {
            assert_eq!(y.to_bits(), act.apply(z).to_bits(), "element {i}: f({z:e}) = {y:e}");
        }
    }
    check(Relu);
    check(LeakyRelu::new(0.01));
    check(Tanh);
}

/// The sum of squares (gradient clipping's) agrees with a sum in f64, whatever the length.
#[test]
fn sum_of_squares_is_the_sum_of_the_squares() {
    let mut rng = Rng::new(9);
    for n in [0usize, 1, 31, 32, 33, 1000, 4099] {
        let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        let exact: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let got = sum_of_squares(&x) as f64;
        assert!((got - exact).abs() <= 1e-6 * exact.max(1.0), "n = {n}: {got} vs {exact}");
    }
    assert_eq!(sum_of_squares(&[3.0f64, 4.0]), 25.0);
}
