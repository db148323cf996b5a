//! Speed of the generated training step, beside its "GEMM floor": the time of the same matrix
//! products (same shapes, same threads) measured in the same process, round after round, so that
//! the ratio stays meaningful on a shared, noisy machine.
//!
//! ```text
//! cargo run --release --example bench                    # a table
//! cargo run --release --example bench -- --json          # JSON lines
//! cargo run --release --example bench -- --batches 100 --threads 1 --workloads mlp
//! ```
//!
//! Workloads: `mlp` (784-500-500-10, ReLU, softmax cross-entropy; a training step with SGD,
//! Adam, HDM (global norm, e = 0.01) and Path-SGD, and with `none`, an optimizer that moves
//! nothing: forward, loss and backward alone, so that `step(adam) - step(none)` is what Adam's
//! update costs inside the step), `mlp-infer` (its forward pass, with a `Predictor`: no
//! allocation), `tutorial` (100-1000-10 without biases, ReLU, sum of squares; a training step with
//! SGD), `cnn` (the `cnn` example's LeNet with batch normalisation, Adam) and `dcgan-d` (the DCGAN
//! tutorial's discriminator: three convolutions, batch normalisation, 6400-1024-1, Adam) and
//! `gan` (one iteration of the `dcgan` example, `hdm::gan::Gan::iteration`: the generator's
//! step through the discriminator, then the discriminator's on a fake and a real batch; SGD with
//! Nesterov momentum), the last three at the batch sizes of `--conv-batches`. For them the floor is the step's products,
//! each alone: per convolution and group of samples (`Conv2dGeometry::group`) `W P` (forward),
//! `D P^T` (weight gradient) and `W^T D` (input gradient, but for the first layer), `P` the
//! group's patches (`in_channels * k * k` rows) and `D` its output gradient; what the step does
//! beyond them (patches, pooling, normalisation, activations, the update) is its own cost. Every
//! figure is the median over the rounds, which take the step and its floors in turn:
//!
//! - `gemm_floor_us`: the step's matrix products alone, with hdm's GEMM on the same threads;
//!   `ratio` is step / floor, what the step costs beyond its products;
//! - `GFLOP/s`: the step's speed, counting the products' multiply-adds;
//! - `mm_1t_us`: the same products with `matrixmultiply::sgemm` (crates.io) on one thread, the
//!   reference of the speed goals; `vs_mm_1t` is step / that (goals at batch 100: at most 1.06
//!   on one thread, below 1 / 1.8 = 0.556 on two);
//! - `rtt_ns` (two threads or more, measured right after the row): the time for a cache line to
//!   go from one thread to another and back. On a shared virtual machine it tells where the
//!   host placed the virtual CPUs: about 100 ns when close; 400 and more when far apart, and
//!   then every two-thread figure is slower, the update's most.

mod common;

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;
use common::{Discriminator, Generator, LeNet, Mlp, Tutorial};
use hdm::optim::{OptimizerState, Plain};
use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[path = "../benches/common/mod.rs"]
mod floor;
use floor::{Floor, Gemm, Products};

#[derive(Parser, Debug)]
#[command(about = "Generated step against the GEMM floor")]
struct Cli {
    /// Print JSON lines instead of a table
    #[arg(long)]
    json: bool,
    /// Thread counts to measure
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    threads: Vec<usize>,
    /// Batch sizes to measure
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 32, 100, 1000])]
    batches: Vec<usize>,
    /// Workloads: mlp, mlp-infer, tutorial, cnn, dcgan-d, gan
    #[arg(long, value_delimiter = ',', default_values = ["mlp", "mlp-infer", "tutorial", "cnn", "dcgan-d", "gan"])]
    workloads: Vec<String>,
    /// Batch sizes of the convolutional workloads
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 128])]
    conv_batches: Vec<usize>,
    /// Optimizers for the mlp workload: none (no update), sgd, adam, hdm, path-sgd
    #[arg(long, value_delimiter = ',', default_values = ["none", "sgd", "adam", "hdm", "path-sgd"])]
    optimizers: Vec<String>,
    /// Seconds spent on each measurement (split over the rounds)
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// An optimizer that moves nothing: the step with it is forward, loss and backward alone.
#[derive(Clone, Copy, Debug)]
struct NoUpdate;

impl OptimizerState<f32> for NoUpdate {
    fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        Vec::new()
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [f32])> {
        Vec::new()
    }
}

impl Optimizer<f32> for NoUpdate {
    type State = NoUpdate;
    type Step = ();
    type Chunk<'a> = ();
    type Requires = Plain;
    fn name(&self) -> &'static str {
        "none"
    }
    fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    fn init(&self, _len: usize) -> NoUpdate {
        NoUpdate
    }
    fn prepare(&self, _t: u64, _lr_scale: f64) {}
    fn elementwise(&self) -> bool {
        true
    }
    fn chunk(_state: &mut NoUpdate) {}
    fn split_chunk<'a>(_chunk: Self::Chunk<'a>, _mid: usize) -> (Self::Chunk<'a>, Self::Chunk<'a>) {
        ((), ())
    }
    fn update_chunk(&self, _step: &(), _param: &mut [f32], _grad: &[f32], _chunk: ()) -> f32 {
        0.0
    }
}

/// Median seconds per call of each of `fs`, measured in rounds that take them in turn.
fn measure<const N: usize>(seconds: f64, mut fs: [&mut dyn FnMut(); N]) -> [f64; N] {
    for _ in 0..3 {
        fs.iter_mut().for_each(|f| f());
    }
    let t = Instant::now();
    fs.iter_mut().for_each(|f| f());
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let rounds = 15usize;
    let per_round = ((seconds / rounds as f64 / once) as usize).clamp(1, 100_000);
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (f, times) in fs.iter_mut().zip(&mut times) {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            times.push(t.elapsed().as_secs_f64() / per_round as f64);
        }
    }
    times.map(median)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    workload: &'static str,
    optimizer: String,
    threads: usize,
    batch: usize,
    step_s: f64,
    floor_s: f64,
    /// The same products with `matrixmultiply::sgemm` on one thread.
    mm_s: f64,
    flops: f64,
    /// [`core_round_trip_ns`] right after the row, on two threads or more.
    rtt_ns: Option<f64>,
}

impl Row {
    /// A row from the medians of the step, the floor and matrixmultiply's floor.
    fn new(workload: &'static str, optimizer: &str, threads: usize, batch: usize, t: [f64; 3], flops: f64) -> Self {
        let optimizer = optimizer.to_string();
        let rtt_ns = (threads > 1).then(core_round_trip_ns);
        Row { workload, optimizer, threads, batch, step_s: t[0], floor_s: t[1], mm_s: t[2], flops, rtt_ns }
    }
}

/// Nanoseconds for a cache line to go from this thread to another and back: two threads take
/// turns writing one atomic, in 5 rounds of 2000 round trips; the fastest round counts. A thread
/// that waits too long yields, so that two threads on one core still finish.
fn core_round_trip_ns() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const TRIPS: u64 = 2000;
    let flag = AtomicU64::new(0);
    let wait_for = |value: u64| {
        for spins in 0u32.. {
            if flag.load(Ordering::Acquire) == value {
                return;
            }
            if spins % 1024 == 1023 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..5 * TRIPS {
                wait_for(2 * i + 1);
                flag.store(2 * i + 2, Ordering::Release);
            }
        });
        let rounds = (0..5).map(|round| {
            let t = Instant::now();
            for i in round * TRIPS..(round + 1) * TRIPS {
                flag.store(2 * i + 1, Ordering::Release);
                wait_for(2 * i + 2);
            }
            t.elapsed().as_secs_f64() * 1e9 / TRIPS as f64
        });
        rounds.fold(f64::INFINITY, f64::min)
    })
}

fn print(rows: &[Row], json: bool) {
    for r in rows {
        let (step_us, floor_us, mm_us) = (r.step_s * 1e6, r.floor_s * 1e6, r.mm_s * 1e6);
        if json {
            println!(
                "{{\"workload\":\"{}\",\"optimizer\":\"{}\",\"threads\":{},\"batch\":{},\"step_us\":{:.1},\"gemm_floor_us\":{:.1},\"ratio\":{:.3},\"gflops\":{:.1},\"mm_1t_us\":{:.1},\"vs_mm_1t\":{:.3},\"rtt_ns\":{}}}",
                r.workload,
                r.optimizer,
                r.threads,
                r.batch,
                step_us,
                floor_us,
                r.step_s / r.floor_s,
                r.flops / r.step_s * 1e-9,
                mm_us,
                r.step_s / r.mm_s,
                r.rtt_ns.map_or("null".to_string(), |ns| format!("{ns:.0}"))
            );
        } else {
            println!(
                "{:<10} {:<9} {:>7} {:>6} {:>11.1} {:>14.1} {:>7.3} {:>9.1} {:>10.1} {:>9.3} {:>7}",
                r.workload,
                r.optimizer,
                r.threads,
                r.batch,
                step_us,
                floor_us,
                r.step_s / r.floor_s,
                r.flops / r.step_s * 1e-9,
                mm_us,
                r.step_s / r.mm_s,
                r.rtt_ns.map_or("-".to_string(), |ns| format!("{ns:.0}"))
            );
        }
    }
}

/// Something that runs a step's products alone.
trait RunFloor {
    fn run(&mut self);
}

impl RunFloor for Floor {
    fn run(&mut self) {
        Floor::run(self)
    }
}

impl RunFloor for Products {
    fn run(&mut self) {
        Products::run(self)
    }
}

fn train_row<M, O, F: RunFloor>(
    model: &M,
    optimizer: O,
    x: &Array2<f32>,
    t: M::Target<'_>,
    floors: &mut [F; 2],
    cli: &Cli,
) -> [f64; 3]
where
    M: Network<f32>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let mut m = model.clone();
    let mut trainer = m.trainer(optimizer, x.nrows());
    let [hdm_floor, mm_floor] = floors;
    measure(
        cli.seconds,
        [
            &mut || {
                black_box(trainer.step(&mut m, x.view(), t).unwrap());
            },
            &mut || hdm_floor.run(),
            &mut || mm_floor.run(),
        ],
    )
}

/// The products of a `cnn` step (LeNet) at `batch`.
fn lenet_products(batch: usize) -> Vec<floor::Shape> {
    use hdm::conv::Conv2dGeometry as G;
    [
        Products::conv(G::new([1, 28, 28], 32, 5, 1, 2), batch, true),
        Products::conv(G::new([32, 14, 14], 64, 5, 1, 2), batch, false),
        Products::linear(3136, 10, batch, false),
    ]
    .concat()
}

/// The products of a `dcgan-d` step (the discriminator) at `batch`.
fn discriminator_products(batch: usize) -> Vec<floor::Shape> {
    use hdm::conv::Conv2dGeometry as G;
    [
        Products::conv(G::new([1, 28, 28], 64, 4, 2, 1), batch, true),
        Products::conv(G::new([64, 14, 14], 128, 4, 2, 1), batch, false),
        Products::conv(G::new([128, 7, 7], 256, 3, 1, 0), batch, false),
        Products::linear(6400, 1024, batch, false),
        Products::linear(1024, 1, batch, false),
    ]
    .concat()
}

/// The products of one GAN iteration (`hdm::gan::Gan::iteration`) of the DCGAN at `batch`: the
/// generator's step (G forward, D forward, D's input gradient alone, G backward) and the
/// discriminator's (G forward, D forward and backward on the fakes, then on the real batch).
fn gan_products(batch: usize) -> Vec<floor::Shape> {
    use floor::Parts;
    use hdm::conv::Conv2dGeometry as G;
    // The generator's transposed convolutions, as the convolutions they transpose: the forward
    // pass of one is the input gradient of the other, and the other way round.
    let ups = [G::new([128, 7, 7], 256, 3, 1, 0), G::new([64, 14, 14], 128, 4, 2, 1), G::new([1, 28, 28], 64, 4, 2, 1)];
    let g_forward = || {
        let mut v = Products::linear_parts(32, 1024, batch, Parts::FORWARD);
        v.extend(Products::linear_parts(1024, 6400, batch, Parts::FORWARD));
        for g in ups {
            v.extend(Products::conv_parts(g, batch, Parts { forward: false, weight: false, input: true }));
        }
        v
    };
    let g_backward = || {
        let mut v = Products::linear_parts(32, 1024, batch, Parts::backward(true, false));
        v.extend(Products::linear_parts(1024, 6400, batch, Parts::backward(true, true)));
        for g in ups {
            v.extend(Products::conv_parts(g, batch, Parts { forward: true, weight: true, input: false }));
        }
        v
    };
    let convs =
        [G::new([1, 28, 28], 64, 4, 2, 1), G::new([64, 14, 14], 128, 4, 2, 1), G::new([128, 7, 7], 256, 3, 1, 0)];
    let d_pass = |parts: Parts, first_input: bool| {
        let mut v = Vec::new();
        for (i, g) in convs.into_iter().enumerate() {
            let input = parts.input && (i > 0 || first_input);
            v.extend(Products::conv_parts(g, batch, Parts { input, ..parts }));
        }
        v.extend(Products::linear_parts(6400, 1024, batch, parts));
        v.extend(Products::linear_parts(1024, 1, batch, parts));
        v
    };
    let d_forward = || d_pass(Parts::FORWARD, false);
    [
        // The generator's step: D's weight gradients are not needed, its input's is.
        g_forward(),
        d_forward(),
        d_pass(Parts::backward(false, true), true),
        g_backward(),
        // The discriminator's step, on fakes then on the real batch.
        g_forward(),
        d_forward(),
        d_pass(Parts::backward(true, true), false),
        d_forward(),
        d_pass(Parts::backward(true, true), false),
    ]
    .concat()
}

/// The row of the `gan` workload: one iteration of the DCGAN (SGD with Nesterov momentum, as
/// the `dcgan` example's default) at `batch`, against its products.
fn gan_row(threads: usize, batch: usize, rng: &mut Rng, cli: &Cli) -> Row {
    let x = Array2::from_shape_simple_fn((batch, 784), || rng.uniform() as f32);
    let z = Array2::from_shape_simple_fn((2 * batch, 32), || rng.uniform_in(-1.0, 1.0) as f32);
    let mut floors = [Gemm::Hdm, Gemm::Matrixmultiply].map(|g| Products::new(gan_products(batch), g));
    let flops = floors[0].flops();
    let sgd = Sgd::new(0.005).momentum(0.8).nesterov(true);
    let (g, d) = (Generator::<f32>::init(0), Discriminator::<f32>::init(1));
    let (gt, dt) = (g.trainer(sgd, batch), d.trainer(sgd, batch));
    let mut gan = hdm::gan::Gan::new(g, gt, d, dt, 0).unwrap();
    let [hdm_floor, mm_floor] = &mut floors;
    let (z1, z2) = (z.slice(ndarray::s![..batch, ..]), z.slice(ndarray::s![batch.., ..]));
    let t = measure(
        cli.seconds,
        [
            &mut || {
                black_box(gan.iteration(x.view(), z1, z2).unwrap());
            },
            &mut || hdm_floor.run(),
            &mut || mm_floor.run(),
        ],
    );
    Row::new("gan", "sgd", threads, batch, t, flops)
}

/// The rows of the convolutional workloads at `batch`.
fn conv_rows(workload: &'static str, threads: usize, batch: usize, rng: &mut Rng, cli: &Cli) -> Row {
    let x = Array2::from_shape_simple_fn((batch, 784), || rng.uniform() as f32);
    let shapes = if workload == "cnn" { lenet_products(batch) } else { discriminator_products(batch) };
    let mut floors = [Gemm::Hdm, Gemm::Matrixmultiply].map(|g| Products::new(shapes.clone(), g));
    let flops = floors[0].flops();
    let t = if workload == "cnn" {
        let labels = Array1::from_shape_simple_fn(batch, || rng.below(10));
        train_row(&LeNet::<f32>::init(0), Adam::default(), &x, labels.view(), &mut floors, cli)
    } else {
        let real = Array2::from_shape_simple_fn((batch, 1), || rng.below(2) as f32);
        train_row(&Discriminator::<f32>::init(0), Adam::new(2e-4), &x, real.view(), &mut floors, cli)
    };
    Row::new(workload, "adam", threads, batch, t, flops)
}

/// The floor of a step with hdm's GEMM (the step's threads) and with matrixmultiply's (one thread).
fn floors(sizes: &[usize], batch: usize, train: bool) -> [Floor; 2] {
    [Gemm::Hdm, Gemm::Matrixmultiply].map(|g| Floor::new(sizes, batch, train, g))
}

fn main() {
    let cli = Cli::parse();
    if !cli.json {
        println!("kernels: {:?}; elementwise: {:?}", hdm::gemm::kernel_info::<f32>(), hdm::simd::level());
        println!(
            "{:<10} {:<9} {:>7} {:>6} {:>11} {:>14} {:>7} {:>9} {:>10} {:>9} {:>7}",
            "workload",
            "optimizer",
            "threads",
            "batch",
            "step_us",
            "gemm_floor_us",
            "ratio",
            "GFLOP/s",
            "mm_1t_us",
            "vs_mm_1t",
            "rtt_ns"
        );
    }
    let mut rng = Rng::new(0);
    for &threads in &cli.threads {
        hdm::set_num_threads(threads);
        for &batch in &cli.conv_batches {
            let mut rows: Vec<Row> = ["cnn", "dcgan-d"]
                .into_iter()
                .filter(|w| cli.workloads.iter().any(|c| c == w))
                .map(|w| conv_rows(w, threads, batch, &mut rng, &cli))
                .collect();
            if cli.workloads.iter().any(|w| w == "gan") {
                rows.push(gan_row(threads, batch, &mut rng, &cli));
            }
            print(&rows, cli.json);
        }
        let dense = ["mlp", "mlp-infer", "tutorial"];
        if !cli.workloads.iter().any(|w| dense.contains(&w.as_str())) {
            continue;
        }
        for &batch in &cli.batches {
            let x = Array2::from_shape_simple_fn((batch, 784), || rng.uniform() as f32);
            let labels = Array1::from_shape_simple_fn(batch, || rng.below(10));
            let mlp = Mlp::<f32>::init(0);
            let mut rows = Vec::new();
            for w in &cli.workloads {
                match w.as_str() {
                    "mlp" => {
                        let mut floor = floors(&[784, 500, 500, 10], batch, true);
                        for o in &cli.optimizers {
                            let t = match o.as_str() {
                                "none" => train_row(&mlp, NoUpdate, &x, labels.view(), &mut floor, &cli),
                                "sgd" => train_row(&mlp, Sgd::new(0.01), &x, labels.view(), &mut floor, &cli),
                                "adam" => train_row(&mlp, Adam::default(), &x, labels.view(), &mut floor, &cli),
                                // Not e = 1: on this fixed batch of random labels it kills the
                                // network within 150 steps and leaves 91% of the momentum
                                // subnormal, whose arithmetic is slow (MNIST at e = 1: 4%).
                                "hdm" => train_row(&mlp, Hdm::new(0.01), &x, labels.view(), &mut floor, &cli),
                                "path-sgd" => train_row(&mlp, PathSgd::new(0.01), &x, labels.view(), &mut floor, &cli),
                                other => {
                                    eprintln!("error: unknown optimizer {other:?} (none, sgd, adam, hdm, path-sgd)");
                                    std::process::exit(2);
                                }
                            };
                            rows.push(Row::new("mlp", o, threads, batch, t, floor[0].flops()));
                        }
                    }
                    "mlp-infer" => {
                        let [hdm_floor, mm_floor] = &mut floors(&[784, 500, 500, 10], batch, false);
                        let mut predictor = mlp.predictor(batch);
                        let t = measure(
                            cli.seconds,
                            [
                                &mut || {
                                    black_box(predictor.forward(&mlp, x.view()).unwrap());
                                },
                                &mut || hdm_floor.run(),
                                &mut || mm_floor.run(),
                            ],
                        );
                        rows.push(Row::new("mlp-infer", "-", threads, batch, t, hdm_floor.flops()));
                    }
                    "tutorial" => {
                        let xt = Array2::from_shape_simple_fn((batch, 100), || rng.normal() as f32);
                        let yt = Array2::from_shape_simple_fn((batch, 10), || rng.normal() as f32);
                        let mut floor = floors(&[100, 1000, 10], batch, true);
                        let model = Tutorial::<f32>::init(0);
                        let t = train_row(&model, Sgd::new(1e-6), &xt, yt.view(), &mut floor, &cli);
                        rows.push(Row::new("tutorial", "sgd", threads, batch, t, floor[0].flops()));
                    }
                    "cnn" | "dcgan-d" | "gan" => {}
                    other => {
                        eprintln!("error: unknown workload {other:?} (mlp, mlp-infer, tutorial, cnn, dcgan-d, gan)");
                        std::process::exit(2);
                    }
                }
            }
            print(&rows, cli.json);
        }
    }
    if !cli.json && cli.threads.iter().any(|&t| t > 1) {
        // Chosen by the first pool of two threads (see `hdm::simd`).
        println!("streaming stores on two threads: {}", if hdm::simd::streaming_stores() { "on" } else { "off" });
    }
}
