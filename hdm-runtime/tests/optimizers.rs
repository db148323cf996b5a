//! Every optimizer against reference values from an independent implementation of the published
//! update rules (`tests/reference/optimizers.py`, which writes `tests/reference/expected.rs`), and
//! the properties that tie them together: HDM with the quadratic kinetic energy is heavy-ball SGD,
//! HDM's global norm is a two-phase update, the schedule's factor scales the step, f32 runs the
//! same code.

use hdm_runtime::optim::{
    AdaGrad, Adam, AdamW, Hdm, Kinetic, MomentumNorm, Optimizer, OptimizerState, PathSgd, RmsProp, Sgd,
};
use hdm_runtime::Float;

/// One reference run: an optimizer's hyperparameters (as [`Optimizer::hyperparameters`] names
/// them), the schedule's factor at each step, and both tensors after the last step.
struct Case {
    name: &'static str,
    optimizer: &'static str,
    hyperparameters: &'static [(&'static str, f64)],
    scales: [f64; STEPS as usize],
    expected: [&'static [f64]; 2],
}

include!("reference/expected.rs");

/// Relative tolerance of the f64 comparisons (the reference values are all larger than 1e-3).
const TOLERANCE: f64 = 1e-12;

/// The reference problem's gradient of tensor `k` at step `t`, computed as the script does.
fn gradient<T: Float>(t: u64, k: usize, x: &[T]) -> Vec<T> {
    let noise = NOISE[t as usize - 1][k];
    x.iter().enumerate().map(|(i, &x)| T::of(CURVATURE[k][i]) * (x - T::of(CENTER[k][i])) + T::of(noise[i])).collect()
}

/// The two tensors after every step, with the optimizer driven as the generated training step
/// drives it: `prepare` once per step, then `update` every tensor, then (for a global optimizer)
/// `apply` every tensor with the total.
fn trajectory<T: Float, O: Optimizer<T>>(opt: &O, scales: &[f64]) -> Vec<[Vec<T>; 2]> {
    let mut xs: [Vec<T>; 2] = X0.map(|x| x.iter().map(|&v| T::of(v)).collect());
    let mut states = xs.each_ref().map(|x| opt.init(x.len()));
    let mut out = vec![];
    for t in 1..=STEPS {
        let grads: Vec<Vec<T>> = (0..2).map(|k| gradient(t, k, &xs[k])).collect();
        let step = opt.prepare(t, scales[t as usize - 1]);
        let mut total = T::zero();
        for k in 0..2 {
            total += opt.update(&step, &mut xs[k], &grads[k], &mut states[k]);
        }
        if opt.is_global() {
            for k in 0..2 {
                opt.apply(&step, total, &mut xs[k], &mut states[k]);
            }
        }
        out.push(xs.clone());
    }
    out
}

fn run<T: Float, O: Optimizer<T>>(opt: &O, scales: &[f64]) -> [Vec<T>; 2] {
    trajectory(opt, scales).pop().unwrap()
}

#[path = "support/any_optimizer.rs"]
#[macro_use]
mod any_optimizer;
use any_optimizer::Any;

impl Any {
    /// The optimizer a case describes, made with the public builders.
    fn build(optimizer: &str, h: &[(&str, f64)]) -> Any {
        let get = |key: &str| h.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no {key} in {h:?}")).1;
        let flag = |key: &str| get(key) != 0.0;
        match optimizer {
            "sgd" => Any::Sgd(
                Sgd::new(get("lr"))
                    .momentum(get("momentum"))
                    .dampening(get("dampening"))
                    .nesterov(flag("nesterov"))
                    .weight_decay(get("weight_decay")),
            ),
            "adagrad" => Any::AdaGrad(
                AdaGrad::new(get("lr"))
                    .lr_decay(get("lr_decay"))
                    .weight_decay(get("weight_decay"))
                    .initial_accumulator_value(get("initial_accumulator_value"))
                    .eps(get("eps")),
            ),
            "rmsprop" => Any::RmsProp(
                RmsProp::new(get("lr"))
                    .alpha(get("alpha"))
                    .eps(get("eps"))
                    .weight_decay(get("weight_decay"))
                    .momentum(get("momentum"))
                    .centered(flag("centered")),
            ),
            "adam" => Any::Adam(
                Adam::new(get("lr"))
                    .betas(get("beta1"), get("beta2"))
                    .eps(get("eps"))
                    .weight_decay(get("weight_decay"))
                    .amsgrad(flag("amsgrad")),
            ),
            "adamw" => Any::AdamW(
                AdamW::new(get("lr"))
                    .betas(get("beta1"), get("beta2"))
                    .eps(get("eps"))
                    .weight_decay(get("weight_decay"))
                    .amsgrad(flag("amsgrad")),
            ),
            "hdm" => {
                let kinetic = match get("kinetic") {
                    0.0 => Kinetic::Relativistic,
                    1.0 => Kinetic::Quadratic,
                    2.0 => Kinetic::power(get("power")),
                    other => panic!("unknown kinetic energy {other}"),
                };
                let norm = match get("norm") {
                    0.0 => MomentumNorm::Global,
                    1.0 => MomentumNorm::PerTensor,
                    2.0 => MomentumNorm::PerElement,
                    other => panic!("unknown norm {other}"),
                };
                Any::Hdm(Hdm::new(get("lr")).gamma(get("gamma")).kinetic(kinetic).norm(norm))
            }
            other => panic!("unknown optimizer {other}"),
        }
    }

    fn default_of(optimizer: &str) -> Any {
        match optimizer {
            "sgd" => Any::Sgd(Sgd::default()),
            "adagrad" => Any::AdaGrad(AdaGrad::default()),
            "rmsprop" => Any::RmsProp(RmsProp::default()),
            "adam" => Any::Adam(Adam::default()),
            "adamw" => Any::AdamW(AdamW::default()),
            "hdm" => Any::Hdm(Hdm::default()),
            other => panic!("unknown optimizer {other}"),
        }
    }

    fn name(&self) -> &'static str {
        with_optimizer!(self, o => Optimizer::<f64>::name(o))
    }

    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        with_optimizer!(self, o => Optimizer::<f64>::hyperparameters(o))
    }

    fn run<T: Float>(&self, scales: &[f64]) -> [Vec<T>; 2] {
        with_optimizer!(self, o => run(o, scales))
    }
}

/// Every element of `got` within `rel` (relative) of `want`, or a message naming the worst one.
fn compare<T: Float>(got: &[Vec<T>; 2], want: &[&[f64]; 2], rel: f64) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for k in 0..2 {
        assert_eq!(got[k].len(), want[k].len());
        for (i, (&g, &w)) in got[k].iter().zip(want[k]).enumerate() {
            let err = (g.to_f64() - w).abs() / w.abs();
            if err.is_nan() || err > rel {
                return Err(format!("tensor {k}[{i}]: got {g}, want {w} (relative error {err:.2e})"));
            }
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// Runs every reference case of `optimizer` in f64 and checks the parameters after the last step,
/// reporting all failing cases at once.
fn check_against_reference(optimizer: &str) {
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.optimizer == optimizer).collect();
    assert!(!cases.is_empty(), "no reference case for {optimizer}");
    let mut failures = vec![];
    for case in cases {
        let opt = Any::build(case.optimizer, case.hyperparameters);
        assert_eq!(opt.name(), case.optimizer);
        // The builders set exactly the reference's hyperparameters, and report them by torch's names.
        assert_eq!(opt.hyperparameters(), case.hyperparameters.to_vec(), "case {}", case.name);
        match compare(&opt.run::<f64>(&case.scales), &case.expected, TOLERANCE) {
            Ok(worst) => println!("{:<32} worst relative error {worst:.1e}", case.name),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ from the reference:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn sgd_matches_reference() {
    check_against_reference("sgd");
}

#[test]
fn adagrad_matches_reference() {
    check_against_reference("adagrad");
}

#[test]
fn rmsprop_matches_reference() {
    check_against_reference("rmsprop");
}

#[test]
fn adam_matches_reference() {
    check_against_reference("adam");
}

#[test]
fn adamw_matches_reference() {
    check_against_reference("adamw");
}

#[test]
fn hdm_matches_reference() {
    check_against_reference("hdm");
}

#[test]
fn every_reference_case_has_a_known_optimizer() {
    for case in CASES {
        assert!(
            ["sgd", "adagrad", "rmsprop", "adam", "adamw", "hdm"].contains(&case.optimizer),
            "case {} has unknown optimizer {}",
            case.name,
            case.optimizer
        );
    }
}

#[test]
fn defaults_match_torch() {
    for &(optimizer, want) in DEFAULTS {
        let opt = Any::default_of(optimizer);
        assert_eq!(opt.name(), optimizer);
        assert_eq!(opt.hyperparameters(), want.to_vec(), "defaults of {optimizer}");
    }
}

#[test]
fn f32_runs_the_same_code_and_stays_close_to_f64() {
    let mut failures = vec![];
    for case in CASES {
        let opt = Any::build(case.optimizer, case.hyperparameters);
        if let Err(e) = compare(&opt.run::<f32>(&case.scales), &case.expected, 1e-4) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "f32 strays from the f64 reference:\n{}", failures.join("\n"));
}

#[test]
fn hdm_with_quadratic_kinetic_energy_is_heavy_ball_sgd() {
    for (e, gamma) in [(0.5, 2.0 / 3.0), (1.0, 1.0), (0.1, 3.0), (2.0, 0.25), (0.3, 0.0)] {
        let d = 1.0 / (1.0 + gamma * e);
        let sgd = Sgd::new(e * e * d).momentum(d);
        let want = trajectory::<f64, _>(&sgd, &[1.0; STEPS as usize]);
        for norm in [MomentumNorm::Global, MomentumNorm::PerTensor, MomentumNorm::PerElement] {
            let hdm = Hdm::new(e).gamma(gamma).kinetic(Kinetic::Quadratic).norm(norm);
            assert!(!Optimizer::<f64>::is_global(&hdm), "the quadratic kinetic energy needs no global sum");
            let got = trajectory::<f64, _>(&hdm, &[1.0; STEPS as usize]);
            for (t, (got, want)) in got.iter().zip(&want).enumerate() {
                let want = [want[0].as_slice(), want[1].as_slice()];
                if let Err(err) = compare(got, &want, TOLERANCE) {
                    panic!("e = {e}, gamma = {gamma}, {norm:?}, step {}: {err}", t + 1);
                }
            }
        }
    }
}

#[test]
fn hdm_global_update_moves_only_the_momentum_and_apply_moves_the_parameters() {
    let case = CASES.iter().find(|c| c.name == "hdm_relativistic_global").unwrap();
    let Any::Hdm(hdm) = Any::build(case.optimizer, case.hyperparameters) else { unreachable!() };
    assert!(Optimizer::<f64>::is_global(&hdm));
    assert!(!Optimizer::<f64>::is_global(&hdm.norm(MomentumNorm::PerTensor)));
    let (e, gamma) = (hdm.lr, hdm.gamma);
    let d = 1.0 / (1.0 + gamma * e);

    let mut xs: [Vec<f64>; 2] = X0.map(<[f64]>::to_vec);
    let mut states = xs.each_ref().map(|x| Optimizer::<f64>::init(&hdm, x.len()));
    for t in 1..=STEPS {
        let grads: Vec<Vec<f64>> = (0..2).map(|k| gradient(t, k, &xs[k])).collect();
        let step = hdm.prepare(t, 1.0);
        let mut total = 0.0;
        for k in 0..2 {
            let (x_before, p_before) = (xs[k].clone(), states[k].momentum.clone());
            let sum = hdm.update(&step, &mut xs[k], &grads[k], &mut states[k]);
            assert_eq!(xs[k], x_before, "update moved the parameters of tensor {k} at step {t}");
            let p = &states[k].momentum;
            for i in 0..p.len() {
                let want = d * p_before[i] - e * d * grads[k][i];
                assert!((p[i] - want).abs() <= 1e-15 * want.abs().max(1.0), "momentum {k}[{i}] at step {t}");
            }
            let want: f64 = p.iter().map(|p| p * p).sum();
            assert!((sum - want).abs() <= 1e-14 * want, "update returned {sum}, not the sum of p^2 {want}");
            total += sum;
        }
        // x <- x + e p / sqrt(|p|^2 + 1), with |p| over both tensors.
        let factor = e / (total + 1.0).sqrt();
        for k in 0..2 {
            let want: Vec<f64> = xs[k].iter().zip(&states[k].momentum).map(|(x, p)| x + factor * p).collect();
            hdm.apply(&step, total, &mut xs[k], &mut states[k]);
            for (got, want) in xs[k].iter().zip(&want) {
                assert!((got - want).abs() <= 1e-15 * want.abs().max(1.0), "apply at step {t}: {got} != {want}");
            }
        }
    }
    compare(&xs, &case.expected, TOLERANCE).unwrap();
}

/// One step from the state after three reference steps, taken with the schedule factors 1 and
/// `scale`: the parameter changes as (change with scale) / (change with 1).
fn step_ratio<O: Optimizer<f64>>(opt: &O, scale: f64) -> Vec<f64>
where
    O::State: Clone,
{
    let mut xs: [Vec<f64>; 2] = X0.map(<[f64]>::to_vec);
    let mut states = xs.each_ref().map(|x| opt.init(x.len()));
    for t in 1..=3 {
        let step = opt.prepare(t, 1.0);
        for k in 0..2 {
            let g = gradient(t, k, &xs[k]);
            opt.update(&step, &mut xs[k], &g, &mut states[k]);
        }
    }
    let mut ratios = vec![];
    for k in 0..2 {
        let g = gradient(4, k, &xs[k]);
        let moved = |s: f64| {
            let (mut x, mut state) = (xs[k].clone(), states[k].clone());
            opt.update(&opt.prepare(4, s), &mut x, &g, &mut state);
            x.iter().zip(&xs[k]).map(|(a, b)| a - b).collect::<Vec<_>>()
        };
        ratios.extend(moved(scale).iter().zip(moved(1.0)).map(|(a, b)| a / b));
    }
    ratios
}

#[test]
fn schedule_factor_scales_the_step_of_torch_optimizers() {
    let optimizers = [
        Any::Sgd(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)),
        Any::Sgd(Sgd::new(0.1).momentum(0.9).nesterov(true)),
        Any::AdaGrad(AdaGrad::new(0.1).lr_decay(0.1).weight_decay(0.1)),
        Any::RmsProp(RmsProp::new(0.01).centered(true).momentum(0.9)),
        Any::Adam(Adam::new(0.05).amsgrad(true).weight_decay(0.1)),
        Any::AdamW(AdamW::new(0.05).weight_decay(0.5)),
    ];
    for opt in &optimizers {
        for scale in [0.5, 0.125] {
            let ratios = with_optimizer!(opt, o => step_ratio(o, scale));
            for r in ratios {
                assert!((r - scale).abs() < 1e-12, "{}: factor {scale} scaled the step by {r}", opt.name());
            }
        }
    }
}

#[test]
fn schedule_factor_scales_hdm_step_size() {
    // HDM's factor scales e, and so d = 1 / (1 + gamma e): the step is not simply halved, but it is
    // exactly the step of HDM with step size e / 2.
    for norm in [MomentumNorm::Global, MomentumNorm::PerTensor, MomentumNorm::PerElement] {
        let hdm = Hdm::new(0.8).norm(norm);
        let halves = [0.5; STEPS as usize];
        let scaled: [Vec<f64>; 2] = run(&hdm, &halves);
        let smaller: [Vec<f64>; 2] = run(&Hdm { lr: 0.4, ..hdm }, &[1.0; STEPS as usize]);
        assert_eq!(scaled, smaller, "{norm:?}");
        let full: [Vec<f64>; 2] = run(&hdm, &[1.0; STEPS as usize]);
        assert_ne!(scaled, full, "{norm:?}");
    }
}

fn names<T: Float>(state: &mut impl OptimizerState<T>) -> Vec<&'static str> {
    let names: Vec<_> = state.buffers().iter().map(|(n, _)| *n).collect();
    let names_mut: Vec<_> = state.buffers_mut().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, names_mut);
    names
}

#[test]
fn state_buffers_have_torch_names() {
    let n = 4;
    assert_eq!(names::<f64>(&mut Sgd::new(0.1).init(n)), Vec::<&str>::new());
    assert_eq!(names::<f64>(&mut Sgd::new(0.1).momentum(0.9).init(n)), ["momentum_buffer"]);
    let mut adagrad = Optimizer::<f64>::init(&AdaGrad::new(0.1).initial_accumulator_value(0.25), n);
    assert_eq!(names(&mut adagrad), ["sum"]);
    assert_eq!(adagrad.sum, [0.25; 4]);
    assert_eq!(names::<f64>(&mut RmsProp::new(0.1).init(n)), ["square_avg"]);
    assert_eq!(names::<f64>(&mut RmsProp::new(0.1).momentum(0.5).init(n)), ["square_avg", "momentum_buffer"]);
    assert_eq!(names::<f64>(&mut RmsProp::new(0.1).centered(true).init(n)), ["square_avg", "grad_avg"]);
    assert_eq!(
        names::<f64>(&mut RmsProp::new(0.1).centered(true).momentum(0.5).init(n)),
        ["square_avg", "momentum_buffer", "grad_avg"]
    );
    assert_eq!(names::<f64>(&mut Adam::new(0.1).init(n)), ["exp_avg", "exp_avg_sq"]);
    assert_eq!(names::<f32>(&mut AdamW::new(0.1).amsgrad(true).init(n)), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
    assert_eq!(names::<f64>(&mut Hdm::new(0.1).init(n)), ["momentum"]);
    let mut state: hdm_runtime::optim::AdamState<f64> = Adam::new(0.1).init(n);
    assert!(state.buffers_mut().iter().all(|(_, b)| b.len() == n));
}

#[test]
fn adamw_is_adam_with_decoupled_weight_decay() {
    let adam = Adam::new(0.05).betas(0.8, 0.5).weight_decay(0.3).amsgrad(true);
    let adamw = adam.decoupled();
    assert_eq!(Optimizer::<f64>::name(&adamw), "adamw");
    assert_eq!(Optimizer::<f64>::hyperparameters(&adamw), Optimizer::<f64>::hyperparameters(&adam));
    // Without weight decay the two are the same optimizer.
    let (a, w) = (adam.weight_decay(0.0), adamw.weight_decay(0.0));
    assert_eq!(run::<f64, _>(&a, &[1.0; STEPS as usize]), run::<f64, _>(&w, &[1.0; STEPS as usize]));
}

/// Every rule of `torch.optim`'s constructors, and a few of hdm's own, with the message naming the
/// optimizer and the hyperparameter; the defaults and the tutorials' settings pass.
#[test]
fn hyperparameters_are_validated_as_torch_optim_does() {
    fn err<O: Optimizer<f64>>(o: O) -> String {
        o.validate().unwrap_err().to_string()
    }
    let nan = f64::NAN;
    let cases = [
        (err(Sgd::new(-0.1)), "sgd: lr must be finite and >= 0, got -0.1"),
        (err(Sgd::new(nan)), "sgd: lr must be finite and >= 0, got NaN"),
        (err(Sgd::new(f64::INFINITY)), "sgd: lr must be finite and >= 0, got inf"),
        (err(Sgd::new(0.1).momentum(-0.9)), "sgd: momentum must be finite and >= 0, got -0.9"),
        (err(Sgd::new(0.1).weight_decay(-1e-4)), "sgd: weight_decay must be finite and >= 0, got -0.0001"),
        (err(Sgd::new(0.1).dampening(1.5)), "sgd: dampening must be in [0, 1], got 1.5"),
        (err(Sgd::new(0.1).nesterov(true)), "sgd: Nesterov momentum requires a momentum and zero dampening"),
        (
            err(Sgd::new(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
            "sgd: Nesterov momentum requires a momentum and zero dampening",
        ),
        (err(Adam::new(-1.0)), "adam: lr must be finite and >= 0, got -1"),
        (err(Adam::new(1e-3).betas(1.0, 0.999)), "adam: beta1 must be in [0, 1), got 1"),
        (err(Adam::new(1e-3).betas(0.9, -0.1)), "adam: beta2 must be in [0, 1), got -0.1"),
        (err(Adam::new(1e-3).betas(nan, 0.999)), "adam: beta1 must be in [0, 1), got NaN"),
        (err(Adam::new(1e-3).eps(-1e-8)), "adam: eps must be finite and >= 0, got -0.00000001"),
        (
            err(Adam::new(1e-3).weight_decay(-0.01).decoupled()),
            "adamw: weight_decay must be finite and >= 0, got -0.01",
        ),
        (err(AdaGrad::new(-0.01)), "adagrad: lr must be finite and >= 0, got -0.01"),
        (
            err(AdaGrad { initial_accumulator_value: -1.0, ..AdaGrad::new(0.01) }),
            "adagrad: initial_accumulator_value must be finite and >= 0, got -1",
        ),
        (err(AdaGrad { lr_decay: -1.0, ..AdaGrad::new(0.01) }), "adagrad: lr_decay must be finite and >= 0, got -1"),
        (err(RmsProp { alpha: 1.5, ..RmsProp::new(0.01) }), "rmsprop: alpha must be in [0, 1], got 1.5"),
        (err(RmsProp { eps: -1.0, ..RmsProp::new(0.01) }), "rmsprop: eps must be finite and >= 0, got -1"),
        (err(PathSgd::new(nan)), "path_sgd: lr must be finite and >= 0, got NaN"),
        (err(Hdm::new(-1.0)), "hdm: lr must be finite and >= 0, got -1"),
        (err(Hdm::new(1.0).gamma(-0.5)), "hdm: gamma must be finite and >= 0, got -0.5"),
        (
            err(Hdm::new(1.0).kinetic(Kinetic::power(1.0))),
            "hdm: the power kinetic energy |p|^a / a needs a finite a > 1, got 1",
        ),
        (
            err(Hdm { kinetic: Kinetic::Power { a: nan }, ..Hdm::default() }),
            "hdm: the power kinetic energy |p|^a / a needs a finite a > 1, got NaN",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
    fn ok<O: Optimizer<f64>>(o: O) {
        assert!(o.validate().is_ok(), "{}", o.name());
    }
    ok(Sgd::new(0.0));
    ok(Sgd::new(0.005).momentum(0.8).nesterov(true));
    ok(Sgd::new(0.1).momentum(0.9).dampening(0.5).weight_decay(5e-4));
    ok(Adam::new(2e-4).betas(0.5, 0.999));
    ok(Adam::new(1e-3).betas(0.0, 0.0).eps(0.0).amsgrad(true).decoupled());
    ok(AdaGrad::new(0.01));
    ok(RmsProp::new(0.01));
    ok(PathSgd::new(0.01));
    ok(Hdm::new(1.0).gamma(2.0 / 3.0).kinetic(Kinetic::power(1.5)));
}

#[test]
fn power_kinetic_energy_has_zero_gradient_at_zero_momentum() {
    // With a zero gradient the momentum stays zero, and grad k(0) = 0 must not become NaN.
    for norm in [MomentumNorm::Global, MomentumNorm::PerTensor, MomentumNorm::PerElement] {
        let hdm = Hdm::new(1.0).kinetic(Kinetic::power(1.5)).norm(norm);
        let mut x = [1.0f64, -2.0];
        let mut state = hdm.init(2);
        let step = hdm.prepare(1, 1.0);
        let total = hdm.update(&step, &mut x, &[0.0, 0.0], &mut state);
        hdm.apply(&step, total, &mut x, &mut state);
        assert_eq!(x, [1.0, -2.0], "{norm:?}");
    }
}

#[test]
#[should_panic]
fn state_of_another_length_is_refused() {
    let adam = Adam::new(0.1);
    let mut state = Optimizer::<f64>::init(&adam, 2);
    let step = adam.prepare(1, 1.0);
    adam.update(&step, &mut [1.0, 2.0, 3.0], &[0.1, 0.2, 0.3], &mut state);
}

/// Without weight decay the parameter does not enter the gradient, as in PyTorch (which adds
/// `weight_decay * x` only when the decay is not zero): an infinite parameter leaves the state
/// finite. With a decay, it does enter.
#[test]
fn zero_weight_decay_keeps_the_parameter_out_of_the_gradient() {
    fn state_after_one_step<O: Optimizer<f64>>(opt: O) -> Vec<f64> {
        let (mut x, g) = (vec![f64::INFINITY, 1.0], vec![0.5, 0.5]);
        let mut state = opt.init(2);
        opt.update(&opt.prepare(1, 1.0), &mut x, &g, &mut state);
        state.buffers().iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }
    let cases: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        (
            "sgd",
            state_after_one_step(Sgd::new(0.1).momentum(0.9)),
            state_after_one_step(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)),
        ),
        ("adagrad", state_after_one_step(AdaGrad::new(0.1)), state_after_one_step(AdaGrad::new(0.1).weight_decay(0.1))),
        (
            "rmsprop",
            state_after_one_step(RmsProp::new(0.1).centered(true).momentum(0.9)),
            state_after_one_step(RmsProp::new(0.1).centered(true).momentum(0.9).weight_decay(0.1)),
        ),
        ("adam", state_after_one_step(Adam::new(0.1)), state_after_one_step(Adam::new(0.1).weight_decay(0.1))),
    ];
    for (name, without, with) in cases {
        assert!(!without.is_empty(), "{name} keeps state");
        assert!(without.iter().all(|v| v.is_finite()), "{name} without decay: {without:?}");
        assert!(with.iter().any(|v| !v.is_finite()), "{name} with decay: {with:?}");
    }
}
