//! `Trainer::with_flush_subnormals` (and `DataParallel`'s) reaches the optimizer's update inside
//! the generated step: a moment that would decay into the subnormal range is stored as zero, and
//! every other value keeps the bits of the step without flushing.

use std::sync::Arc;

use hdm::distributed::{Config, DataParallel, Local};
use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Net {
    fc1: Linear<6, 5>,
    act: Relu,
    fc2: Linear<5, 3>,
}

/// Inputs whose column 0 is always zero: the gradient of `fc1.weight[:, 0]` is exactly zero.
fn batch() -> (Array2<f32>, Array1<usize>) {
    let x = Array2::from_shape_fn((8, 6), |(i, j)| if j == 0 { 0.0 } else { ((i * 6 + j) as f32 * 0.37).sin() });
    (x, Array1::from_shape_fn(8, |i| i % 3))
}

/// Adam's first moment of `fc1.weight[:, 0]` set to a small normal value, then `steps` steps: the
/// moment decays by 0.9 a step with a zero gradient. Returns the state's bits.
fn run(flush: bool, parallel: bool, steps: usize) -> Vec<Vec<u32>> {
    let (x, y) = batch();
    let mut model = Net::<f32>::init(3);
    let tiny = 1.2 * f32::MIN_POSITIVE;
    let set = |states: &mut [hdm::optim::AdamState<f32>]| {
        // fc1.weight is tensor 0, row-major [5, 6]: column 0 is every sixth element.
        for r in 0..5 {
            states[0].exp_avg[r * 6] = tiny;
        }
    };
    let states = if parallel {
        let config = Config { shards: 1, ..Config::default() };
        let mut dp = DataParallel::new(&model, Adam::new(1e-2), 8, config, Arc::new(Local))
            .unwrap()
            .with_flush_subnormals(flush);
        dp.step(&mut model, x.view(), y.view()).unwrap();
        set(dp.trainer_mut().states_mut());
        for _ in 0..steps {
            dp.step(&mut model, x.view(), y.view()).unwrap();
        }
        dp.trainer().states().to_vec()
    } else {
        let mut trainer = model.trainer(Adam::new(1e-2), 8).with_flush_subnormals(flush);
        trainer.step(&mut model, x.view(), y.view()).unwrap();
        set(trainer.states_mut());
        for _ in 0..steps {
            trainer.step(&mut model, x.view(), y.view()).unwrap();
        }
        trainer.states().to_vec()
    };
    states.iter().flat_map(|s| [&s.exp_avg, &s.exp_avg_sq]).map(|b| b.iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn the_trainer_flushes_the_moments_it_makes_subnormal() {
    for parallel in [false, true] {
        // Two steps: 1.2 * MIN_POSITIVE * 0.81 is subnormal.
        let (off, on) = (run(false, parallel, 2), run(true, parallel, 2));
        let column = |s: &[Vec<u32>]| (0..5).map(|r| f32::from_bits(s[0][r * 6])).collect::<Vec<_>>();
        assert!(column(&off).iter().all(|v| v.is_subnormal()), "without flushing: {:?}", column(&off));
        assert!(column(&on).iter().all(|&v| v == 0.0), "with flushing: {:?}", column(&on));
        for (b, (a, c)) in on.iter().zip(&off).enumerate() {
            for (i, (a, c)) in a.iter().zip(c).enumerate() {
                if !(b == 0 && i % 6 == 0) {
                    assert_eq!(a, c, "buffer {b}, element {i} (data-parallel: {parallel})");
                }
            }
        }
        // One step: 1.2 * MIN_POSITIVE * 0.9 is still normal, and flushing changes nothing.
        assert_eq!(run(false, parallel, 1), run(true, parallel, 1));
    }
}
