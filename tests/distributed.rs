//! The data-parallel trainer on one process ([`hdm::distributed::Local`]): the order the compiler
//! plans the exchange in is the backward pass's own; one shard is `Trainer::step` bit for bit
//! (every kind of optimizer, clipping, batch normalisation's running statistics); several shards
//! are the unsharded step within rounding. The same trainer on several MPI processes is checked
//! against these runs in `tests/distributed_mpi.rs`.

use std::sync::Arc;

use hdm::distributed::{Config, DataParallel, Local};
use hdm::gemm::{default_pool, MatRef};
use hdm::network::{BackwardHook, BackwardPass};
use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<12, 9>,
    act1: Tanh,
    fc2: Linear<9, 7>,
    act2: Relu,
    fc3: Linear<7, 4>,
}

#[network(input = [2, 6, 6], loss = softmax_cross_entropy)]
struct ConvBn {
    conv: Conv2d<2, 3, 3, 1, 1>,
    bn: BatchNorm2d<3>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<27, 4>,
}

#[network(input = [2, 6, 6], loss = softmax_cross_entropy)]
struct Conv {
    conv: Conv2d<2, 3, 3, 2, 1>,
    act: Relu,
    flat: Flatten,
    fc: Linear<27, 4>,
}

/// A skip over a convolution block, with batch normalisation, and a layer applied twice.
#[network(
    input = [3, 6, 6],
    loss = softmax_cross_entropy,
    forward = |x| {
        let h = relu(conv1(x));
        let r = bn(conv2(h));
        let s = relu(conv2(relu(r))) + h;
        fc(flatten(pool(s)))
    }
)]
struct Residual {
    conv1: Conv2d<3, 4, 3, 1, 1>,
    conv2: Conv2d<4, 4, 3, 1, 1>,
    bn: BatchNorm2d<4>,
    pool: MaxPool2d<3, 3>,
    fc: Linear<16, 4>,
}

struct Record<'a, M>(&'a M, Vec<usize>);

impl<T, M> BackwardHook<T, M> for Record<'_, M> {
    fn model(&self) -> &M {
        self.0
    }
    fn ready(&mut self, i: usize, _: &[T]) {
        self.1.push(i);
    }
}

fn data(rows: usize, width: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
    let mut rng = Rng::new(seed);
    (Array2::from_shape_simple_fn((rows, width), || rng.normal()), Array1::from_shape_simple_fn(rows, || rng.below(4)))
}

/// The order the backward pass reports tensors ready in, as it runs.
fn ready_order<M>(model: &M) -> Vec<usize>
where
    M: for<'a> Network<f64, Target<'a> = ndarray::ArrayView1<'a, usize>>,
{
    let (x, y) = data(5, M::INPUT, 1);
    let pool = default_pool::<f64>();
    let mut b = M::__buffers(5, true).unwrap();
    model.__forward(&mut b, MatRef::from(x.view()), 5, &pool, true);
    M::__loss(&mut b, y.view(), 5, true);
    let mut grads = M::zeros();
    let mut record = Record(model, Vec::new());
    let pass = BackwardPass { accumulate: false, input_grad: false, params: true };
    M::__backward(&mut record, &mut grads, &mut b, MatRef::from(x.view()), 5, &pool, pass);
    record.1
}

#[test]
fn the_planned_order_is_the_backward_passs_own() {
    assert_eq!(Mlp::<f64>::READY_ORDER, &[4, 5, 2, 3, 0, 1]);
    assert_eq!(ready_order(&Mlp::<f64>::init(0)), Mlp::<f64>::READY_ORDER);
    assert_eq!(ready_order(&ConvBn::<f64>::init(0)), ConvBn::<f64>::READY_ORDER);
    assert_eq!(ready_order(&Residual::<f64>::init(0)), Residual::<f64>::READY_ORDER);
    // conv2 is applied twice: it is ready after its first application's backward step, which
    // comes after bn's.
    let order = Residual::<f64>::READY_ORDER;
    let at = |t: usize| order.iter().position(|&i| i == t).unwrap();
    assert!(at(2) > at(4), "{order:?}");
}

fn local(shards: usize) -> Config {
    Config { shards, ..Config::default() }
}

/// `steps` steps of the plain trainer and of a data-parallel one with `config`, on batches of
/// `rows[i % rows.len()]` rows; returns both models.
fn both<T, M, O>(
    seed: u64,
    optimizer: O,
    config: Config,
    clip: Option<f64>,
    steps: usize,
    rows: &[usize],
) -> (M, M, Vec<(T, T)>)
where
    T: Float,
    M: for<'a> Network<T, Target<'a> = ndarray::ArrayView1<'a, usize>> + Parameters<T>,
    O: Optimizer<T> + Clone,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_simple_fn((40, M::INPUT), || T::of(rng.normal()));
    let y = Array1::from_shape_simple_fn(40, || rng.below(4));
    let (mut a, mut b) = (M::init(seed), M::init(seed));
    let mut plain = a.trainer(optimizer.clone(), 40);
    let mut dp = DataParallel::new(&b, optimizer, 40, config, Arc::new(Local)).unwrap();
    if let Some(c) = clip {
        plain = plain.with_clip_grad_norm(c);
        dp = dp.with_clip_grad_norm(c);
    }
    let mut losses = Vec::new();
    for i in 0..steps {
        let n = rows[i % rows.len()];
        let start = (7 * i) % (40 - n + 1);
        let (xs, ys) = (x.slice(s![start..start + n, ..]), y.slice(s![start..start + n]));
        losses.push((plain.step(&mut a, xs, ys).unwrap(), dp.step(&mut b, xs, ys).unwrap()));
    }
    (a, b, losses)
}

fn bits<T: Float, M: Parameters<T> + Network<T>>(m: &M) -> Vec<u64> {
    let mut out: Vec<u64> = m.state().iter().flat_map(|p| p.data.iter().map(|x| Float::to_f64(*x).to_bits())).collect();
    out.extend(m.counters().iter().map(|c| c.1));
    out
}

fn max_relative<T: Float, M: Parameters<T> + Network<T>>(a: &M, b: &M) -> f64 {
    let (pa, pb) = (a.state(), b.state());
    let mut worst = 0.0f64;
    for (x, y) in pa.iter().zip(&pb) {
        let scale = x.data.iter().fold(0.0f64, |m, v| m.max(Float::to_f64(*v).abs())).max(1e-30);
        for (u, v) in x.data.iter().zip(y.data) {
            worst = worst.max((Float::to_f64(*u) - Float::to_f64(*v)).abs() / scale);
        }
    }
    worst
}

#[test]
fn one_shard_is_the_trainers_step_bit_for_bit() {
    let rows = [40, 37, 12];
    let (a, b, l) = both::<f32, Mlp<f32>, _>(1, Adam::new(0.01), local(1), None, 6, &rows);
    assert_eq!(bits(&a), bits(&b));
    assert!(l.iter().all(|(p, q)| p.to_bits() == q.to_bits()), "{l:?}");
    // A global optimizer (HDM's global norm), in two phases.
    let (a, b, _) = both::<f32, Mlp<f32>, _>(2, Hdm::default(), local(1), None, 6, &rows);
    assert_eq!(bits(&a), bits(&b));
    // Clipping: every update waits for every bucket.
    let (a, b, _) = both::<f32, Mlp<f32>, _>(3, Sgd::new(0.1).momentum(0.9), local(1), Some(0.05), 6, &rows);
    assert_eq!(bits(&a), bits(&b));
    // Path-SGD's path scales.
    let (a, b, _) = both::<f64, Conv<f64>, _>(4, PathSgd::new(0.05), local(1), None, 6, &rows);
    assert_eq!(bits(&a), bits(&b));
    // Batch normalisation: its running statistics and count too.
    let (a, b, _) = both::<f32, ConvBn<f32>, _>(5, Adam::new(0.01), local(1), None, 6, &rows);
    assert_eq!(bits(&a), bits(&b));
    let (a, b, _) = both::<f64, Residual<f64>, _>(6, Sgd::new(0.05).momentum(0.5), local(1), None, 4, &rows);
    assert_eq!(bits(&a), bits(&b));
    // Small buckets (one tensor each) and the exchange after the whole pass change nothing.
    for config in [
        Config { shards: 1, bucket_bytes: (1, 1), overlap: true },
        Config { shards: 1, bucket_bytes: (1, 1), overlap: false },
    ] {
        let (a, b, _) = both::<f32, Mlp<f32>, _>(1, Adam::new(0.01), config, None, 6, &rows);
        assert_eq!(bits(&a), bits(&b));
    }
}

#[test]
fn several_shards_are_the_unsharded_step_within_rounding() {
    // Batches of 40, 37 and 12 rows in 4 shards (37 rows: 10, 9, 9, 9), 50 steps.
    let rows = [40, 37, 12];
    let (a, b, l) = both::<f64, Mlp<f64>, _>(7, Adam::new(0.01), local(4), None, 50, &rows);
    let worst = max_relative(&a, &b);
    assert!(worst < 1e-12 && worst > 0.0, "{worst:e}");
    for (p, q) in &l {
        assert!((p - q).abs() <= 1e-12 * p.abs(), "{p} {q}");
    }
    let (a, b, _) = both::<f32, Mlp<f32>, _>(7, Adam::new(0.01), local(4), None, 50, &rows);
    let worst = max_relative(&a, &b);
    assert!(worst < 1e-4, "{worst:e}");
    let (a, b, _) = both::<f64, Conv<f64>, _>(8, Sgd::new(0.1).momentum(0.9), local(3), Some(1.0), 50, &rows);
    let worst = max_relative(&a, &b);
    assert!(worst < 1e-12 && worst > 0.0, "{worst:e}");
}

#[test]
fn the_batchs_gradient_is_the_weighted_sum_of_the_shards() {
    // After one step with a learning rate of zero, the trainer's gradients are the batch's:
    // the unsharded gradient, within rounding.
    let (x, y) = data(23, 12, 9);
    let model = Mlp::<f64>::init(10);
    let (mut a, mut b) = (model.clone(), model.clone());
    let mut plain = a.trainer(Sgd::new(0.0), 23);
    let mut dp = DataParallel::new(&b, Sgd::new(0.0), 23, local(5), Arc::new(Local)).unwrap();
    let l1 = plain.step(&mut a, x.view(), y.view()).unwrap();
    let l2 = dp.step(&mut b, x.view(), y.view()).unwrap();
    assert!((l1 - l2).abs() < 1e-14, "{l1} {l2}");
    for (g, h) in plain.gradients().params().iter().zip(dp.gradients().params()) {
        for (u, v) in g.data.iter().zip(h.data) {
            assert!((u - v).abs() < 1e-14, "{}: {u} {v}", g.name);
        }
        assert!(g.data.iter().any(|&u| u != 0.0));
    }
    assert_eq!(dp.trainer().steps(), 1);
}

#[test]
fn bad_shardings_are_refused() {
    let model = Mlp::<f32>::init(0);
    let err = |r: hdm::Result<()>| r.expect_err("an error").to_string();
    let e = err(DataParallel::new(&model, Adam::default(), 3, local(4), Arc::new(Local)).map(|_| ()));
    assert!(e.contains("a batch of 3 rows cannot fill 4 shards"), "{e}");
    let mut m = model.clone();
    let mut dp = DataParallel::new(&model, Adam::default(), 10, local(4), Arc::new(Local)).unwrap();
    let (x, y) = data(3, 12, 1);
    let x = x.mapv(|v| v as f32);
    let e = err(dp.step(&mut m, x.view(), y.view()).map(|_| ()));
    assert!(e.contains("a batch of 3 rows cannot fill 4 shards"), "{e}");
    assert_eq!(m, model, "nothing changes");
}

#[network(loss = softmax_cross_entropy)]
struct Bn1 {
    fc1: Linear<12, 5>,
    bn: BatchNorm1d<5>,
    fc2: Linear<5, 4>,
}

#[test]
fn shards_too_small_for_batch_statistics_are_refused() {
    let model = Bn1::<f32>::init(0);
    let mut m = model.clone();
    let mut dp = DataParallel::new(&model, Adam::default(), 10, local(4), Arc::new(Local)).unwrap();
    let (x, y) = data(7, 12, 1);
    let x = x.mapv(|v| v as f32);
    let e = dp.step(&mut m, x.view(), y.view()).err().unwrap().to_string();
    assert!(e.contains("needs at least 2 rows"), "{e}");
    dp.step(&mut m, x.slice(s![..6, ..]).slice(s![..0, ..]), y.slice(s![..0])).err().unwrap();
    let (x, y) = data(8, 12, 1);
    dp.step(&mut m, x.mapv(|v| v as f32).view(), y.view()).unwrap();
}
