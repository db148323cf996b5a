//! `Optimizer::flush_subnormals`: with it, no optimizer's state holds a subnormal value, where the
//! same run without it does; without it nothing changes; and values that never come near the
//! subnormal range get the same bits either way.

use hdm_runtime::optim::{AdaGrad, Adam, AdamW, Hdm, Kinetic, MomentumNorm, Optimizer, OptimizerState, RmsProp, Sgd};

/// A gradient that fades out: element 0 of size 1e-3 for ten steps then zero (its moments decay
/// into the subnormal range), element 1 subnormal itself, element 2 normal and varying (so that
/// its variance stays positive for centered RMSprop), element 3 1e-20 (its square is subnormal).
fn gradient(t: u64) -> [f32; 4] {
    [if t <= 10 { 1e-3 } else { 0.0 }, 3e-39, 0.5 + 0.25 * (t as f32 * 0.7).sin(), -1e-20]
}

/// `steps` steps from `x0`, with gradient `grad(t, x)`; the parameters and the state after.
fn run<O: Optimizer<f32>>(
    opt: &O,
    flush: bool,
    steps: u64,
    x0: &[f32],
    grad: impl Fn(u64, &[f32]) -> Vec<f32>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut x = x0.to_vec();
    let mut state = opt.init(x.len());
    for t in 1..=steps {
        let mut step = opt.prepare(t, 1.0);
        if flush {
            step = O::flush_subnormals(step);
        }
        let g = grad(t, &x);
        let total = opt.update(&step, &mut x, &g, &mut state);
        if opt.is_global() {
            opt.apply(&step, total, &mut x, &mut state);
        }
    }
    let buffers = state.buffers().into_iter().map(|(_, b)| b.to_vec()).collect();
    (x, buffers)
}

/// [`run`] of four elements from 1.0 with [`gradient`].
fn fading<O: Optimizer<f32>>(opt: &O, flush: bool, steps: u64) -> (Vec<f32>, Vec<Vec<f32>>) {
    run(opt, flush, steps, &[1.0; 4], |t, _| gradient(t).to_vec())
}

fn subnormals(buffers: &[Vec<f32>]) -> usize {
    buffers.iter().flatten().filter(|v| v.is_subnormal()).count()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Long enough for Adam's second moment (decay 0.999) to pass below 1.2e-38.
const STEPS: u64 = 80_000;

fn check<O: Optimizer<f32>>(name: &str, opt: O, steps: u64) {
    let (x_off, s_off) = fading(&opt, false, steps);
    let (x_on, s_on) = fading(&opt, true, steps);
    assert!(subnormals(&s_off) > 0, "{name}: the run without flushing makes no subnormal state: {s_off:?}");
    assert_eq!(subnormals(&s_on), 0, "{name}: subnormal state left with flushing: {s_on:?}");
    // A value differs only where it is zero with flushing and tiny without: subnormal, or made
    // of subnormal values (a subnormal gradient divided by eps, subnormal squares summed).
    for (a, b) in s_on.iter().flatten().zip(s_off.iter().flatten()) {
        assert!(a.to_bits() == b.to_bits() || (*a == 0.0 && b.abs() < 1e-25), "{name}: {a:e} against {b:e}");
    }
    // Element 2 never comes near the subnormal range: the same bits, in the parameters and in
    // every buffer.
    assert_eq!(x_on[2].to_bits(), x_off[2].to_bits(), "{name}: parameter 2");
    for (a, b) in s_on.iter().zip(&s_off) {
        assert_eq!(a[2].to_bits(), b[2].to_bits(), "{name}: state of element 2");
    }
}

#[test]
fn adam_family() {
    check("adam", Adam::new(1e-3), STEPS);
    check("adam amsgrad", Adam::new(1e-3).amsgrad(true), STEPS);
    check("adamw", AdamW::new(1e-3), STEPS);
}

#[test]
fn sgd_with_momentum() {
    check("sgd momentum", Sgd::new(1e-2).momentum(0.9), STEPS);
    check("sgd nesterov", Sgd::new(1e-2).momentum(0.9).nesterov(true), STEPS);
}

#[test]
fn rmsprop() {
    check("rmsprop", RmsProp::new(1e-3), STEPS);
    check("rmsprop centered momentum", RmsProp::new(1e-3).centered(true).momentum(0.9), STEPS);
}

#[test]
fn adagrad() {
    // The sum of squares only grows: after 100 steps, 100 squares of 1e-20 are still subnormal.
    check("adagrad", AdaGrad::new(1e-2), 100);
}

#[test]
fn hdm() {
    for norm in [MomentumNorm::Global, MomentumNorm::PerTensor, MomentumNorm::PerElement] {
        check(&format!("hdm {norm:?}"), Hdm::new(1e-2).norm(norm), STEPS);
    }
    check("hdm quadratic", Hdm::new(1e-2).kinetic(Kinetic::Quadratic), STEPS);
}

/// A gradient that is normal everywhere: flushing changes no bit, of the parameters or the state.
#[test]
fn normal_values_keep_their_bits() {
    fn both<O: Optimizer<f32>>(opt: O) {
        let [off, on] = [false, true].map(|flush| {
            let (x, state) =
                run(&opt, flush, 100, &[1.0, -2.0, 0.5], |t, x| x.iter().map(|x| x * 0.3 + (t as f32).sin()).collect());
            (bits(&x), state.iter().map(|b| bits(b)).collect::<Vec<_>>())
        });
        assert_eq!(off, on);
    }
    both(Adam::new(1e-2));
    both(Sgd::new(1e-2).momentum(0.9));
    both(RmsProp::new(1e-2).centered(true).momentum(0.5));
    both(AdaGrad::new(1e-2));
    both(Hdm::new(1e-2));
}
