//! The data-parallel step against the same step without communication, on the processes of
//! `mpirun` (feature `mpi`): how much of the gradient exchange the backward pass hides.
//!
//! ```text
//! cargo build --release --features mpi --example dist_bench
//! mpirun -np 2 target/release/examples/dist_bench [mlp|cnn] [batch=100] [rounds=5] [steps=50]
//! ```
//!
//! Each round times `steps` steps of each variant in turn (after a few untimed ones), on a
//! rotation of 8 random batches:
//!
//! - `alone`: each process's share of the batch (`batch / P` rows) through `Trainer::step`, no
//!   communication: the floor;
//! - `overlapped`: `DataParallel` with each bucket's exchange started from the backward pass;
//! - `after`: `DataParallel` with every bucket exchanged after the backward pass
//!   (`Config::overlap = false`), as a framework without the compiler's order would.
//!
//! Process 0 prints, per variant, the median over rounds of the mean step time, and for the
//! data-parallel variants the mean time per step spent waiting for exchanges (the part the pass
//! did not hide), with the gradient's size, the buckets, and the processes' CPU.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{LeNet, Mlp};
use hdm::distributed::{Config, DataParallel, Exchange};
use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(feature = "mpi")]
fn exchange() -> Result<Arc<dyn Exchange>> {
    Ok(hdm::distributed::Mpi::init()?)
}

#[cfg(not(feature = "mpi"))]
fn exchange() -> Result<Arc<dyn Exchange>> {
    Ok(Arc::new(hdm::distributed::Local))
}

fn bench<M>(ex: &Arc<dyn Exchange>, batch: usize, rounds: usize, steps: usize) -> Result<()>
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
{
    let (p, rank) = (ex.ranks(), ex.rank());
    let mut rng = Rng::new(1);
    let x = Array2::from_shape_simple_fn((8 * batch, M::INPUT), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(8 * batch, || rng.below(M::OUTPUT));
    let model = M::init(0);
    let share = batch / p;
    let (mut m0, mut m1, mut m2) = (model.clone(), model.clone(), model.clone());
    let mut alone = m0.trainer(Adam::new(1e-3), share);
    let mut over = DataParallel::new(&m1, Adam::new(1e-3), batch, Config::default(), Arc::clone(ex))?;
    let after_cfg = Config { overlap: false, ..Config::default() };
    let mut after = DataParallel::new(&m2, Adam::new(1e-3), batch, after_cfg, Arc::clone(ex))?;
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut waits = [Vec::new(), Vec::new()];
    let mut k = 0;
    for round in 0..rounds + 1 {
        for (v, t) in times.iter_mut().enumerate() {
            let wait0 = [over.exchange_wait(), after.exchange_wait()];
            let start = Instant::now();
            for _ in 0..steps {
                let (a, b) = ((k % 8) * batch, (k % 8 + 1) * batch);
                k += 1;
                let (xs, ys) = (x.slice(s![a..b, ..]), y.slice(s![a..b]));
                match v {
                    0 => {
                        let (a, b) = (rank * share, (rank + 1) * share);
                        alone.step(&mut m0, xs.slice(s![a..b, ..]), ys.slice(s![a..b]))?;
                    }
                    1 => {
                        over.step(&mut m1, xs, ys)?;
                    }
                    _ => {
                        after.step(&mut m2, xs, ys)?;
                    }
                };
            }
            if round > 0 {
                t.push(start.elapsed().as_secs_f64() / steps as f64);
                if v > 0 {
                    let w = [over.exchange_wait(), after.exchange_wait()][v - 1] - wait0[v - 1];
                    waits[v - 1].push(w.as_secs_f64() / steps as f64);
                }
            }
        }
    }
    if rank == 0 {
        println!(
            "{}: {} parameters ({:.2} MB of f32 gradients), batch {batch} on {p} processes ({share} rows each), \
             {} buckets, {} threads per process, {rounds} rounds of {steps} steps",
            M::NAME,
            model.num_params(),
            model.num_params() as f64 * 4e-6,
            over.buckets(),
            hdm::num_threads()
        );
        let ms = |v: f64| v * 1e3;
        let floor = median(times[0].clone());
        println!("  alone       {:8.3} ms/step", ms(floor));
        for (i, name) in ["overlapped", "after"].iter().enumerate() {
            let t = median(times[i + 1].clone());
            let w = median(waits[i].clone());
            println!(
                "  {name:<11} {:8.3} ms/step  ({:.2}x alone; waiting for exchanges {:.3} ms/step)",
                ms(t),
                t / floor,
                ms(w)
            );
        }
    }
    Ok(())
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    if std::env::args().nth(1).is_some_and(|a| a == "--help" || a == "-h") {
        println!(
            "The data-parallel step against the step alone, on the processes of mpirun.\n\nUsage: mpirun -np 2 \
             dist_bench [mlp|cnn] [batch=100] [rounds=5] [steps=50]"
        );
        return;
    }
    common::run(|| {
        let ex = exchange()?;
        let workload = std::env::args().nth(1).unwrap_or_else(|| "mlp".into());
        let (batch, rounds, steps) = (arg(2, 100), arg(3, 5), arg(4, 50));
        if ex.rank() == 0 {
            let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            });
            println!(
                "CPU: {} ({:?}); {} cores",
                cpu.unwrap_or_else(|| "unknown".into()),
                hdm::simd::level(),
                num_cores()
            );
        }
        match workload.as_str() {
            "mlp" => bench::<Mlp<f32>>(&ex, batch, rounds, steps),
            "cnn" => bench::<LeNet<f32>>(&ex, batch, rounds, steps),
            other => Err(Error::Other(format!("unknown workload {other:?} (mlp or cnn)"))),
        }
    })
}
