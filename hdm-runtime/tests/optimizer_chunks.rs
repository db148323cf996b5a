//! A tensor's update split into state chunks: for every elementwise optimizer, updating the parts
//! of a tensor (each part on its own thread) gives the parameters and state buffers of updating
//! it whole, bit for bit; and `elementwise` is false exactly where splitting changes the result.

use hdm_runtime::optim::{
    AdaGrad, Adam, AdamW, Hdm, Kinetic, MomentumNorm, Optimizer, OptimizerState, PathSgd, RmsProp, Sgd,
};
use hdm_runtime::{Float, Rng};

/// The tensor's length: odd, and a multiple of no vector width.
const N: usize = 1037;

/// The tensor's shape for Path-SGD's factors (`ROWS * COLUMNS == N`).
const ROWS: usize = 17;
const COLUMNS: usize = 61;
const _: () = assert!(ROWS * COLUMNS == N);

/// The schedule's factor at each step.
const SCALES: [f64; 4] = [1.0, 0.5, 0.25, 1.0];

/// Where the tensor is cut: two and three parts at uneven points, and parts of length 0.
const CUTS: [&[usize]; 5] = [&[500], &[333, 1000], &[1, 17], &[8, 1036], &[0, 600, 1037]];

/// The parameters, the state's buffers by name and the path factors after [`SCALES`] steps.
#[derive(Debug, PartialEq)]
struct After {
    param: Vec<u64>,
    buffers: Vec<(&'static str, Vec<u64>)>,
    path_factors: Option<(Vec<u64>, Vec<u64>)>,
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|&x| Float::to_f64(x).to_bits()).collect()
}

/// Updates a tensor cut at `cuts` (increasing, relative to the tensor): the state is split with
/// `split_chunk`, and each part is updated with `update_chunk` on its own thread, with the
/// matching elements of `param` and `grad`. Returns the sum of what the parts return, in order.
fn update_in_parts<T: Float, O: Optimizer<T>>(
    opt: &O,
    step: &O::Step,
    param: &mut [T],
    grad: &[T],
    state: &mut O::State,
    cuts: &[usize],
) -> T {
    let mut parts = Vec::new();
    let (mut chunk, mut param, mut grad, mut start) = (O::chunk(state), param, grad, 0);
    for &cut in cuts {
        let (head, tail) = O::split_chunk(chunk, cut - start);
        let (param_head, param_tail) = param.split_at_mut(cut - start);
        let (grad_head, grad_tail) = grad.split_at(cut - start);
        parts.push((param_head, grad_head, head));
        (chunk, param, grad, start) = (tail, param_tail, grad_tail, cut);
    }
    parts.push((param, grad, chunk));
    std::thread::scope(|s| {
        let threads: Vec<_> = parts
            .into_iter()
            .map(|(param, grad, chunk)| s.spawn(|| opt.update_chunk(step, param, grad, chunk)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).fold(T::zero(), |sum, part| sum + part)
    })
}

/// Trains one tensor of [`N`] elements for [`SCALES`] steps on a noisy quadratic, driven as the
/// generated step drives the optimizer, each step's update whole (`cuts` = `None`) or in parts.
fn train<T: Float, O: Optimizer<T>>(opt: &O, cuts: Option<&[usize]>) -> After {
    let mut rng = Rng::new(7);
    let mut normal = |n: usize| -> Vec<T> { (0..n).map(|_| T::of(rng.normal())).collect() };
    let (mut x, center, curvature) = (normal(N), normal(N), normal(N));
    let curvature: Vec<T> = curvature.iter().map(|c| c.abs()).collect();
    let noise: Vec<Vec<T>> = SCALES.iter().map(|_| normal(N)).collect();
    let mut state = opt.init(N);
    if let Some((gamma_in, gamma_out)) = state.path_factors() {
        // The tensor as ROWS x COLUMNS: positive factors, and some zeros (Path-SGD leaves those
        // weights alone), so that every cut but one falls inside a row.
        *gamma_in = (0..COLUMNS).map(|u| if u % 7 == 3 { T::zero() } else { curvature[u] + T::of(0.1) }).collect();
        *gamma_out = (0..ROWS).map(|v| if v == 5 { T::zero() } else { curvature[COLUMNS + v] + T::of(0.5) }).collect();
    }
    for (t, &scale) in (1..).zip(&SCALES) {
        let g: Vec<T> = (0..N).map(|i| curvature[i] * (x[i] - center[i]) + noise[t as usize - 1][i]).collect();
        let step = opt.prepare(t, scale);
        let total = match cuts {
            None => opt.update(&step, &mut x, &g, &mut state),
            Some(cuts) => update_in_parts(opt, &step, &mut x, &g, &mut state, cuts),
        };
        if opt.is_global() {
            opt.apply(&step, total, &mut x, &mut state);
        }
    }
    After {
        param: bits(&x),
        buffers: state.buffers().into_iter().map(|(name, b)| (name, bits(b))).collect(),
        path_factors: state.path_factors().map(|(i, o)| (bits(i), bits(o))),
    }
}

/// Whether every way of [`CUTS`] gives the bits of the whole update; if not, where the first
/// difference is.
fn split_matches_whole<T: Float, O: Optimizer<T>>(opt: &O) -> Result<(), String> {
    let whole = train(opt, None);
    assert_eq!(whole.param.len(), N);
    for cuts in CUTS {
        let parts = train(opt, Some(cuts));
        if parts == whole {
            continue;
        }
        let first = |a: &[u64], b: &[u64]| a.iter().zip(b).position(|(a, b)| a != b);
        let what = match first(&parts.param, &whole.param) {
            Some(i) => format!("parameter {i}"),
            None if parts.buffers.len() != whole.buffers.len() => "the buffers in use".to_string(),
            None => match parts.buffers.iter().zip(&whole.buffers).find_map(|((name, a), (_, b))| {
                first(a, b).map(|i| format!("{name}[{i}]")).or((a.len() != b.len()).then(|| format!("{name}'s length")))
            }) {
                Some(buffer) => buffer,
                None => "the path scales".to_string(),
            },
        };
        return Err(format!("cut at {cuts:?}: {what} differs from the whole update"));
    }
    Ok(())
}

#[path = "support/any_optimizer.rs"]
#[macro_use]
mod any_optimizer;
use any_optimizer::Any;

/// Every optimizer with its main options, and whether it is elementwise.
fn configurations() -> Vec<(Any, bool)> {
    let mut all = vec![
        (Any::Sgd(Sgd::new(0.1)), true),
        (Any::Sgd(Sgd::new(0.1).weight_decay(0.01)), true),
        (Any::Sgd(Sgd::new(0.1).momentum(0.9)), true),
        (Any::Sgd(Sgd::new(0.1).momentum(0.9).dampening(0.3).weight_decay(0.01)), true),
        (Any::Sgd(Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01)), true),
        (Any::AdaGrad(AdaGrad::new(0.1)), true),
        (Any::AdaGrad(AdaGrad::new(0.1).lr_decay(0.1).weight_decay(0.01).initial_accumulator_value(0.1)), true),
        (Any::RmsProp(RmsProp::new(0.01)), true),
        (Any::RmsProp(RmsProp::new(0.01).momentum(0.9).weight_decay(0.01)), true),
        (Any::RmsProp(RmsProp::new(0.01).centered(true)), true),
        (Any::RmsProp(RmsProp::new(0.01).centered(true).momentum(0.9).alpha(0.9)), true),
        (Any::Adam(Adam::new(0.01)), true),
        (Any::Adam(Adam::new(0.01).weight_decay(0.1).amsgrad(true)), true),
        (Any::AdamW(AdamW::new(0.01)), true),
        (Any::AdamW(AdamW::new(0.01).betas(0.8, 0.9).amsgrad(true)), true),
        (Any::PathSgd(PathSgd::new(0.1)), true),
    ];
    for kinetic in [Kinetic::Relativistic, Kinetic::Quadratic, Kinetic::power(1.5), Kinetic::power(3.0)] {
        for norm in [MomentumNorm::Global, MomentumNorm::PerTensor, MomentumNorm::PerElement] {
            // The quadratic kinetic energy uses no norm; the others reduce over the tensor unless
            // the norm is per element.
            let elementwise = kinetic == Kinetic::Quadratic || norm == MomentumNorm::PerElement;
            all.push((Any::Hdm(Hdm::new(0.5).kinetic(kinetic).norm(norm)), elementwise));
        }
    }
    all
}

#[test]
fn elementwise_is_what_each_optimizer_claims() {
    for (opt, elementwise) in configurations() {
        assert_eq!(with_optimizer!(&opt, o => Optimizer::<f32>::elementwise(o)), elementwise, "{opt:?}");
        assert_eq!(with_optimizer!(&opt, o => Optimizer::<f64>::elementwise(o)), elementwise, "{opt:?}");
    }
}

/// Every configuration, whole and split: the same bits when the optimizer says it is
/// elementwise, and different bits for some split when it says it is not.
fn check_splits<T: Float>() {
    let mut failures = vec![];
    for (opt, _) in configurations() {
        let claimed = with_optimizer!(&opt, o => Optimizer::<T>::elementwise(o));
        let result = with_optimizer!(&opt, o => split_matches_whole::<T, _>(o));
        match (claimed, result) {
            (true, Err(e)) => failures.push(format!("{opt:?} ({}), elementwise: {e}", T::DTYPE)),
            (false, Ok(())) => {
                failures.push(format!("{opt:?} ({}): not elementwise, yet every split gives the same bits", T::DTYPE))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{} configuration(s) fail:\n{}", failures.len(), failures.join("\n"));
}

/// Elementwise optimizers updated in parts, on several threads, give the whole update's bits;
/// the others (HDM with a norm over the tensor or over all parameters) do not.
#[test]
fn updates_in_chunks_give_the_bits_of_the_whole_tensor_exactly_when_elementwise_f32() {
    check_splits::<f32>();
}

#[test]
fn updates_in_chunks_give_the_bits_of_the_whole_tensor_exactly_when_elementwise_f64() {
    check_splits::<f64>();
}

#[test]
fn hdm_per_tensor_norm_in_two_phases_over_halves_gives_the_bits_of_the_whole() {
    // With the norm per tensor, `update_chunk` only kicks the momentum and returns its part of
    // |p|^2; `apply_chunk` moves the parameters once the tensor's sum is known. Halves at
    // `split_point`, with their sums added, are exactly the whole update (its summation tree
    // splits there too), and the step is the closed form with the norm of the whole tensor.
    use hdm_runtime::optim::{split_point, Reduction, SPLIT_LEN};
    let (e, gamma) = (0.5, 2.0 / 3.0);
    let hdm = Hdm::new(e).gamma(gamma).norm(MomentumNorm::PerTensor);
    assert_eq!(Optimizer::<f64>::reduction(&hdm), Reduction::PerTensor);
    let n = 2 * SPLIT_LEN + 77;
    let g: Vec<f64> = (0..n).map(|i| if i < n / 2 { 1.0 } else { 0.01 } * ((i % 7) as f64 - 3.0)).collect();
    let (mut whole, mut halves) = (vec![0.0f64; n], vec![0.0f64; n]);
    let (mut whole_state, mut halves_state) = (hdm.init(n), hdm.init(n));
    for t in 1..=3 {
        let step = hdm.prepare(t, 1.0);
        assert_eq!(hdm.update(&step, &mut whole, &g, &mut whole_state), 0.0);

        let mid = split_point(n);
        let (c0, c1) = Hdm::split_chunk(Hdm::chunk(&mut halves_state), mid);
        let (x0, x1) = halves.split_at_mut(mid);
        let before = (x0.to_vec(), x1.to_vec());
        let sum = hdm.update_chunk(&step, x0, &g[..mid], c0) + hdm.update_chunk(&step, x1, &g[mid..], c1);
        assert_eq!((x0.to_vec(), x1.to_vec()), before, "the first phase moves no parameter");
        let (c0, c1) = Hdm::split_chunk(Hdm::chunk(&mut halves_state), mid);
        hdm.apply_chunk(&step, sum, x0, c0);
        hdm.apply_chunk(&step, sum, x1, c1);
        assert_eq!(halves, whole, "step {t}");
        assert_eq!(halves_state.momentum, whole_state.momentum, "step {t}");
    }

    // One step from zero: p = -e d g, x = e p / sqrt(|p|^2 + 1) with the whole tensor's |p|.
    let mut x = vec![0.0f64; n];
    let mut state = hdm.init(n);
    hdm.update(&hdm.prepare(1, 1.0), &mut x, &g, &mut state);
    let p = |g: f64| -e / (1.0 + gamma * e) * g;
    let norm2: f64 = g.iter().map(|&g| p(g) * p(g)).sum();
    let want = e * p(g[n - 1]) / (norm2 + 1.0).sqrt();
    // The sums run in another order over 32,845 terms: agreement to 1e-12, not to the bit.
    assert!((x[n - 1] - want).abs() <= 1e-12 * want.abs(), "{} != {want}", x[n - 1]);
}

#[test]
fn buffers_not_in_use_split_into_empty_parts() {
    let mut sgd = Optimizer::<f32>::init(&Sgd::new(0.1), N);
    let (head, tail) = Sgd::split_chunk(Sgd::chunk(&mut sgd), 500);
    assert!(head.is_empty() && tail.is_empty());

    let mut momentum = Optimizer::<f32>::init(&Sgd::new(0.1).momentum(0.9), N);
    let (head, tail) = Sgd::split_chunk(Sgd::chunk(&mut momentum), 500);
    assert_eq!((head.len(), tail.len()), (500, N - 500));

    let mut adam = Optimizer::<f32>::init(&Adam::new(0.1), N);
    let (head, tail) = Adam::split_chunk(Adam::chunk(&mut adam), 500);
    assert_eq!((head.exp_avg.len(), head.exp_avg_sq.len(), head.max_exp_avg_sq.len()), (500, 500, 0));
    assert_eq!((tail.exp_avg.len(), tail.exp_avg_sq.len(), tail.max_exp_avg_sq.len()), (N - 500, N - 500, 0));

    let mut amsgrad = Optimizer::<f32>::init(&Adam::new(0.1).amsgrad(true), N);
    let (head, tail) = Adam::split_chunk(Adam::chunk(&mut amsgrad), 500);
    assert_eq!((head.max_exp_avg_sq.len(), tail.max_exp_avg_sq.len()), (500, N - 500));

    let mut rmsprop = Optimizer::<f32>::init(&RmsProp::new(0.1).centered(true), N);
    let (head, tail) = RmsProp::split_chunk(RmsProp::chunk(&mut rmsprop), 3);
    assert_eq!((head.square_avg.len(), head.momentum_buffer.len(), head.grad_avg.len()), (3, 0, 3));
    assert_eq!((tail.square_avg.len(), tail.momentum_buffer.len(), tail.grad_avg.len()), (N - 3, 0, N - 3));
    let (head, tail) = RmsProp::split_chunk(tail, N - 3);
    assert_eq!(
        (head.square_avg.len(), head.grad_avg.len(), tail.square_avg.len(), tail.grad_avg.len()),
        (N - 3, N - 3, 0, 0)
    );
}

#[test]
fn chunks_are_views_of_the_state() {
    let adam = Adam::new(0.1).amsgrad(true);
    let mut state = Optimizer::<f64>::init(&adam, 5);
    let (head, tail) = Adam::split_chunk(Adam::chunk(&mut state), 2);
    head.exp_avg[1] = 1.0;
    tail.exp_avg_sq[0] = 2.0;
    tail.max_exp_avg_sq[2] = 3.0;
    assert_eq!(state.exp_avg, [0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(state.exp_avg_sq, [0.0, 0.0, 2.0, 0.0, 0.0]);
    assert_eq!(state.max_exp_avg_sq, [0.0, 0.0, 0.0, 0.0, 3.0]);

    let mut state = Optimizer::<f64>::init(&PathSgd::new(0.1), 6);
    (state.gamma_in, state.gamma_out) = (vec![1.0, 2.0, 3.0], vec![4.0, 5.0]);
    let (head, tail) = PathSgd::split_chunk(PathSgd::chunk(&mut state), 4);
    let (_, last) = PathSgd::split_chunk(tail, 1);
    assert_eq!((head.start, tail.start, last.start), (0, 4, 5));
    assert_eq!((tail.gamma_in, tail.gamma_out), (&[1.0, 2.0, 3.0][..], &[4.0, 5.0][..]));
}

#[test]
#[should_panic]
fn splitting_past_the_end_of_a_chunk_panics() {
    let mut state = Optimizer::<f64>::init(&RmsProp::new(0.1), 4);
    let _ = RmsProp::split_chunk(RmsProp::chunk(&mut state), 5);
}

#[test]
#[should_panic]
fn a_chunk_shorter_than_its_parameters_is_refused() {
    let adam = Adam::new(0.1);
    let mut state = Optimizer::<f64>::init(&adam, 4);
    let (head, _) = Adam::split_chunk(Adam::chunk(&mut state), 2);
    adam.update_chunk(&adam.prepare(1, 1.0), &mut [1.0, 2.0, 3.0], &[0.1, 0.2, 0.3], head);
}
