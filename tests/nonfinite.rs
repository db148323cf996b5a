//! Non-finite values never pass silently (issue 16, class 1): NaN propagates through the
//! activations as in PyTorch, and the trainer's finite guard (`with_finite_guard`) refuses or
//! skips a step whose loss or gradient is not finite, leaving the network, its running
//! statistics and the optimizer's state exactly as they were. Also hyperparameters validated at
//! every update (class 6).

use hdm::kernels::Activation;
use hdm::prelude::*;
use hdm::train::{fit, FitConfig};
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Classifier {
    fc1: Linear<6, 8>,
    bn: BatchNorm1d<8>,
    act: Relu,
    fc2: Linear<8, 3>,
}

#[network(loss = mse)]
struct Regressor {
    fc1: Linear<4, 5>,
    act: Relu,
    fc2: Linear<5, 2>,
}

#[network(input = [1, 6, 6], loss = softmax_cross_entropy)]
struct Conv {
    conv: Conv2d<1, 2, 3>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<8, 3>,
}

/// Every tensor and counter of a network, as bits (NaN compares equal to itself).
fn bits<M: Parameters<f32>>(m: &M) -> (Vec<Vec<u32>>, Vec<(String, u64)>) {
    (m.state().iter().map(|p| p.data.iter().map(|v| v.to_bits()).collect()).collect(), m.counters())
}

fn optimizer_bits<M: Network<f32>, O: Optimizer<f32>>(t: &Trainer<f32, M, O>) -> Vec<Vec<u32>> {
    t.states()
        .iter()
        .flat_map(|s| s.buffers().into_iter().map(|(_, b)| b.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn batch(seed: u64, rows: usize) -> (Array2<f32>, Array1<usize>) {
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_fn((rows, 6), |_| rng.uniform_in(-1.0, 1.0) as f32);
    let labels = Array1::from_shape_fn(rows, |_| rng.below(3));
    (x, labels)
}

#[test]
fn relu_keeps_nan_and_negative_zero_as_torch_relu_does() {
    let relu = Relu;
    assert!(relu.apply(f32::NAN).is_nan());
    assert!(relu.apply(-0.0f32).is_sign_negative() && relu.apply(-0.0f32) == 0.0);
    assert_eq!((relu.apply(-2.0f32), relu.apply(3.0f32)), (0.0, 3.0));
    // torch.relu's backward (threshold_backward) passes the gradient where the output is not
    // <= 0: at NaN too.
    assert_eq!(relu.derivative(0.0, f32::NAN), 1.0);
    assert_eq!(
        (relu.derivative(0.0, 0.0f32), relu.derivative(0.0, -0.0f32), relu.derivative(0.0, 2.0f32)),
        (0.0, 0.0, 1.0)
    );
    let leaky = LeakyRelu::new(0.2);
    assert!(leaky.apply(f32::NAN).is_nan());
}

#[test]
fn one_nan_pixel_makes_the_loss_nan_through_relu_and_max_pooling() {
    let mut x = Array2::<f32>::from_elem((4, 36), 0.5);
    x[[2, 7]] = f32::NAN;
    let labels = Array1::from_vec(vec![0, 1, 2, 0]);
    let conv = Conv::<f32>::init(0);
    assert!(conv.loss(x.view(), labels.view()).unwrap().is_nan());
    let out = conv.forward(x.view()).unwrap();
    // Only the row with the NaN pixel is NaN (rows are independent without batch statistics).
    for (r, row) in out.rows().into_iter().enumerate() {
        assert_eq!(row.iter().any(|v| v.is_nan()), r == 2, "row {r}: {row}");
    }
    // Without the guard the step reports the NaN loss (it no longer looks finite).
    let mut model = Regressor::<f32>::init(0);
    let mut trainer = model.trainer(Sgd::new(0.1), 4);
    let mut x = Array2::<f32>::from_elem((4, 4), 0.5);
    x[[0, 0]] = f32::NAN;
    let loss = trainer.step(&mut model, x.view(), Array2::zeros((4, 2)).view()).unwrap();
    assert!(loss.is_nan());
}

/// What [`run`] leaves: the model, each step's result, the step and skip counts, the optimizer's
/// state as bits.
struct Run {
    model: Classifier<f32>,
    results: Vec<Result<f32>>,
    steps: u64,
    skipped: u64,
    opt: Vec<Vec<u32>>,
}

/// Runs `steps` batches, with a NaN pixel in batch `bad`, under `on`.
fn run(on: OnNonFinite, bad: usize, steps: usize) -> Run {
    let mut model = Classifier::<f32>::init(7);
    let mut trainer = model.trainer(Adam::new(0.01), 16).with_finite_guard(on);
    let mut results = Vec::new();
    for k in 0..steps {
        let (mut x, labels) = batch(k as u64, 16);
        if k == bad {
            x[[3, 2]] = f32::NAN;
        }
        results.push(trainer.step(&mut model, x.view(), labels.view()));
    }
    let opt = optimizer_bits(&trainer);
    Run { model, results, steps: trainer.steps(), skipped: trainer.skipped_steps(), opt }
}

#[test]
fn the_guard_refuses_a_nan_batch_and_leaves_everything_as_it_was() {
    let mut model = Classifier::<f32>::init(7);
    let mut trainer = model.trainer(Adam::new(0.01), 16).with_finite_guard(OnNonFinite::Error);
    for k in 0..2 {
        let (x, labels) = batch(k, 16);
        trainer.step(&mut model, x.view(), labels.view()).unwrap();
    }
    let (before, opt_before) = (bits(&model), optimizer_bits(&trainer));
    let (mut x, labels) = batch(2, 16);
    x[[3, 2]] = f32::NAN;
    let err = trainer.step(&mut model, x.view(), labels.view()).unwrap_err().to_string();
    assert_eq!(
        err,
        "Classifier: step 3: the loss is not finite (NaN); the parameters and the optimizer's state are unchanged"
    );
    // Weights, running statistics, num_batches_tracked, Adam's moments, the step count.
    assert_eq!(bits(&model), before);
    assert_eq!(optimizer_bits(&trainer), opt_before);
    assert_eq!(trainer.steps(), 2);
    // Training goes on exactly as if the bad batch had never been seen.
    let (x, labels) = batch(3, 16);
    trainer.step(&mut model, x.view(), labels.view()).unwrap();
    // The same bits as a run on batches 0, 1 and 3.
    let mut reference = Classifier::<f32>::init(7);
    let mut t = reference.trainer(Adam::new(0.01), 16);
    for k in [0, 1, 3] {
        let (x, labels) = batch(k, 16);
        t.step(&mut reference, x.view(), labels.view()).unwrap();
    }
    assert_eq!(optimizer_bits(&trainer), optimizer_bits(&t));
    assert_eq!(bits(&model), bits(&reference));
}

#[test]
fn the_guard_can_skip_and_count_instead() {
    let Run { model, results, steps, skipped, opt } = run(OnNonFinite::Skip, 1, 4);
    assert!(results[1].as_ref().unwrap().is_nan());
    assert!(results.iter().enumerate().all(|(k, r)| k == 1 || r.as_ref().unwrap().is_finite()));
    assert_eq!((steps, skipped), (3, 1));
    // The same bits as a run on the other three batches.
    let mut m = Classifier::<f32>::init(7);
    let mut t = m.trainer(Adam::new(0.01), 16);
    for k in [0, 2, 3] {
        let (x, labels) = batch(k, 16);
        t.step(&mut m, x.view(), labels.view()).unwrap();
    }
    assert_eq!(bits(&model), bits(&m));
    assert_eq!(opt, optimizer_bits(&t));
}

#[test]
fn an_infinite_target_is_refused() {
    let mut model = Regressor::<f32>::init(0);
    let mut trainer = model.trainer(Sgd::new(0.1), 4).with_finite_guard(OnNonFinite::Error);
    let x = Array2::<f32>::from_elem((4, 4), 0.5);
    let mut y = Array2::<f32>::zeros((4, 2));
    y[[1, 1]] = f32::INFINITY;
    let before = bits(&model);
    let err = trainer.step(&mut model, x.view(), y.view()).unwrap_err().to_string();
    assert!(err.starts_with("Regressor: step 1: the loss is not finite (inf)"), "{err}");
    assert_eq!(bits(&model), before);
}

#[test]
fn an_overflowing_learning_rate_is_stopped_at_the_first_non_finite_loss() {
    // lr 1e30: the first update is finite but huge, the next forward pass overflows.
    let mut model = Regressor::<f32>::init(0);
    let mut trainer = model.trainer(Sgd::new(1e30), 4).with_finite_guard(OnNonFinite::Error);
    let x = Array2::<f32>::from_elem((4, 4), 0.5);
    let y = Array2::<f32>::from_elem((4, 2), 1.0);
    let mut failed = None;
    for k in 1..=10 {
        let before = bits(&model);
        match trainer.step(&mut model, x.view(), y.view()) {
            Ok(loss) => assert!(loss.is_finite()),
            Err(e) => {
                assert_eq!(bits(&model), before, "step {k} changed the model");
                failed = Some((k, e.to_string()));
                break;
            }
        }
    }
    let (k, err) = failed.expect("the run never overflowed");
    assert!(k >= 2 && err.starts_with(&format!("Regressor: step {k}: the ")), "{err}");
    assert!(bits(&model).0.iter().flatten().all(|&b| f32::from_bits(b).is_finite()));
}

#[test]
fn a_non_finite_gradient_from_the_caller_is_refused_before_any_update() {
    // Finite loss, NaN gradient: through `backward_from` (a caller's output gradient), and
    // through accumulated passes applied by `update`.
    let mut model = Regressor::<f32>::init(0);
    let mut trainer = model.trainer(Adam::new(0.1), 4).with_finite_guard(OnNonFinite::Error);
    let x = Array2::<f32>::from_elem((4, 4), 0.5);
    let mut g = Array2::<f32>::from_elem((4, 2), 0.1);
    g[[2, 0]] = f32::NAN;
    let before = (bits(&model), optimizer_bits(&trainer));
    trainer.forward(&mut model, x.view()).unwrap();
    let err = trainer.backward_from(&mut model, g.view(), Then::Update, false).unwrap_err().to_string();
    assert_eq!(
        err,
        "Regressor: step 1: the gradient's norm is not finite (NaN); the parameters and the optimizer's state are unchanged"
    );
    assert_eq!((bits(&model), optimizer_bits(&trainer)), before);
    assert_eq!(trainer.steps(), 0);
    trainer.forward(&mut model, x.view()).unwrap();
    trainer.backward_from(&mut model, g.view(), Then::Accumulate, false).unwrap();
    assert!(trainer.update(&mut model).unwrap_err().to_string().contains("the gradient's norm is not finite"));
    assert_eq!((bits(&model), optimizer_bits(&trainer)), before);
}

#[test]
fn fit_reports_skipped_steps_and_leaves_them_out_of_the_mean() {
    let (mut x, labels) = batch(1, 64);
    for r in [5, 40] {
        x[[r, 0]] = f32::NAN; // two of the four batches of 16 hold a NaN (batches are shuffled)
    }
    let data = hdm::data::Dataset::new(x, labels, 2, 3).unwrap();
    let mut model = Classifier::<f32>::init(3);
    let mut trainer = model.trainer(Sgd::new(0.05), 16).with_finite_guard(OnNonFinite::Skip);
    let config = FitConfig { epochs: 2, ..Default::default() };
    let history = fit(&mut trainer, &mut model, &data, None, &config, &mut []).unwrap();
    let skipped: Vec<u64> = history.iter().map(|s| s.skipped).collect();
    assert!(skipped.iter().all(|&s| (1..=2).contains(&s)), "{skipped:?}");
    assert_eq!(trainer.skipped_steps(), skipped.iter().sum::<u64>());
    assert_eq!(trainer.steps(), 8 - trainer.skipped_steps());
    assert!(history.iter().all(|s| s.train_loss.is_finite()));
    assert!(bits(&model).0.iter().flatten().all(|&b| f32::from_bits(b).is_finite()));
}

#[test]
fn bad_hyperparameters_are_an_error_at_the_first_update_and_change_nothing() {
    let mut model = Classifier::<f32>::init(0);
    let mut trainer = model.trainer(Adam::new(0.01).betas(0.9, 1.0), 16);
    let before = bits(&model);
    let (x, labels) = batch(0, 16);
    let err = trainer.step(&mut model, x.view(), labels.view()).unwrap_err().to_string();
    assert_eq!(err, "adam: beta2 must be in [0, 1), got 1");
    assert_eq!(bits(&model), before); // running statistics included
                                      // Fixed between steps, as a user may.
    trainer.optimizer.betas = (0.9, 0.999);
    trainer.step(&mut model, x.view(), labels.view()).unwrap();
    trainer.optimizer.lr = f64::NAN;
    assert_eq!(
        trainer.step(&mut model, x.view(), labels.view()).unwrap_err().to_string(),
        "adam: lr must be finite and >= 0, got NaN"
    );
}
