//! Criterion benchmarks of the generated code of the MLP 784-500-500-10 (ReLU, softmax
//! cross-entropy, f32, batch 100), on 1 and 2 threads:
//!
//! - `train_t{1,2}/{sgd,adam,hdm}`: one training step (`Trainer::step`: forward, loss, backward
//!   and the optimizer's update);
//! - `train_t{1,2}/gemm_floor`: the eight matrix products of that step alone (no input gradient
//!   for the first layer), same shapes, same threads, with hdm's GEMM;
//! - `train_t1/mm_floor`: the same products with `matrixmultiply::sgemm` (crates.io, one thread);
//! - `infer_t{1,2}/forward`, `infer_t{1,2}/predictor` and `infer_t{1,2}/gemm_floor`: the forward
//!   pass (`Network::forward`, which returns a new array, and `Predictor::forward`, which
//!   allocates nothing) and its three products.
//!
//! ```text
//! cargo bench -p hdm-benches                   # all of them, about two minutes
//! cargo bench -p hdm-benches -- train_t1       # a filter (criterion's regular expression)
//! ```
//!
//! The throughput criterion prints ("elem/s") counts multiply-adds times two: it is FLOP/s. For
//! the ratio to the floor at other batch sizes, and as a table or JSON, see `examples/bench.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use hdm::prelude::*;
use ndarray::{Array1, Array2};

use hdm_benches::{Floor, Gemm};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<784, 500>,
    act1: Relu,
    fc2: Linear<500, 500>,
    act2: Relu,
    fc3: Linear<500, 10>,
}

const SIZES: [usize; 4] = [784, 500, 500, 10];
const BATCH: usize = 100;

fn data() -> (Array2<f32>, Array1<usize>) {
    let mut rng = Rng::new(0);
    let x = Array2::from_shape_simple_fn((BATCH, SIZES[0]), || rng.uniform() as f32);
    let labels = Array1::from_shape_simple_fn(BATCH, || rng.below(SIZES[3]));
    (x, labels)
}

/// Benchmarks `trainer.step` with `optimizer` from the same initial weights.
fn step<O>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, optimizer: O)
where
    O: Optimizer<f32>,
    <Mlp as Network<f32>>::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let (x, labels) = data();
    let mut model = Mlp::<f32>::init(0);
    let mut trainer = model.trainer(optimizer, BATCH); // buffers and the thread pool, made once
    group.bench_function(name, |b| b.iter(|| black_box(trainer.step(&mut model, x.view(), labels.view()).unwrap())));
}

fn train(c: &mut Criterion) {
    for threads in [1, 2] {
        hdm::set_num_threads(threads);
        let mut floor = Floor::new(&SIZES, BATCH, true, Gemm::Hdm);
        let mut group = c.benchmark_group(format!("train_t{threads}"));
        group.throughput(Throughput::Elements(floor.flops() as u64));
        group.bench_function("gemm_floor", |b| b.iter(|| floor.run()));
        if threads == 1 {
            let mut mm = Floor::new(&SIZES, BATCH, true, Gemm::Matrixmultiply);
            group.bench_function("mm_floor", |b| b.iter(|| mm.run()));
        }
        step(&mut group, "sgd", Sgd::new(0.01));
        step(&mut group, "adam", Adam::default());
        // e = 0.01: see `examples/bench.rs` (at e = 1 the random batch kills the network).
        step(&mut group, "hdm", Hdm::new(0.01));
        group.finish();
    }
}

fn infer(c: &mut Criterion) {
    let (x, _) = data();
    let model = Mlp::<f32>::init(0);
    for threads in [1, 2] {
        hdm::set_num_threads(threads);
        let mut floor = Floor::new(&SIZES, BATCH, false, Gemm::Hdm);
        let mut group = c.benchmark_group(format!("infer_t{threads}"));
        group.throughput(Throughput::Elements(floor.flops() as u64));
        group.bench_function("gemm_floor", |b| b.iter(|| floor.run()));
        group.bench_function("forward", |b| b.iter(|| black_box(model.forward(x.view()).unwrap())));
        let mut predictor = model.predictor(BATCH);
        group.bench_function("predictor", |b| b.iter(|| black_box(predictor.forward(&model, x.view()).unwrap().sum())));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = train, infer
}
criterion_main!(benches);
