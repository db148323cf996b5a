//! hdm's side of the side-by-side benchmark (`benches/side_by_side.sh`): the same training step
//! as the peer programs of `../shared/peers` (JAX + optax, PyTorch, NumPy, a hand-written Rust
//! step), with their command line and their one-line result, so that a script can run hdm and a
//! peer in turn and compare medians within a round.
//!
//! ```text
//! cargo run --release --example peer_step -- mlp adam 1 2000 100
//! #   workload (mlp: 784-500-500-10 with biases, softmax cross-entropy; tut: 100-1000-10 without,
//! #   sum of squares), optimizer (sgd, adam, hdm), threads, timed steps, warm-up steps
//! PEERS_BATCH=32 cargo run --release --example peer_step -- mlp sgd 2 2000 100
//! ```
//!
//! Prints, as the peers do:
//! `RESULT peer=hdm workload=mlp opt=adam threads=1 median_us=... mean_us=... p10_us=...
//! p90_us=... steps=... first_loss=... final_loss=... batch=100 subnormal_state=...`.
//!
//! The data are the peers' by default: one fixed batch, inputs uniform in [0, 1), random labels
//! (or targets). A fixed batch lets the loss fall to zero, and then much of Adam's state becomes
//! subnormal, which is slow on some CPUs (`subnormal_state` reports the share at the end). With
//! `PEERS_BATCHES=N` (N > 1) the step cycles through N such batches instead, as training on real
//! data does. `PEERS_FTZ=1` flushes subnormal values in the update
//! (`Trainer::with_flush_subnormals`), as the peers' `PEERS_FTZ=1` turns on the CPU's flush-to-zero
//! mode in PyTorch and the hand-written step. The learning rates are the peers': Adam 1e-3, SGD
//! 0.01 (1e-6 on `tut`); HDM (against Adam's peers) e = 0.01, gamma = 2/3, global norm.

mod common;

use std::time::Instant;

use common::{Mlp, Tutorial};
use hdm::prelude::*;
use ndarray::{Array1, Array2, ArrayView2};

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => {
            v.parse().ok().filter(|&n| n > 0).ok_or_else(|| Error::Other(format!("{name}={v:?}: not a count >= 1")))
        }
    }
}

/// The share of `values` that are subnormal.
fn subnormal_share(values: &[f32]) -> f64 {
    values.iter().filter(|v| v.is_subnormal()).count() as f64 / values.len().max(1) as f64
}

struct Args {
    workload: String,
    opt: String,
    threads: usize,
    steps: usize,
    warmup: usize,
}

fn parse() -> Result<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.first().is_some_and(|s| s == "--help" || s == "-h") {
        println!(
            "hdm's training step with the peers' command line.\n\nUsage: peer_step <mlp|tut> <sgd|adam|hdm> \
             [threads=2] [steps=2000] [warmup=100]\nEnvironment: PEERS_BATCH (default 100), PEERS_BATCHES \
             (batches cycled through, default 1), PEERS_FTZ=1 (flush subnormal values in the update)"
        );
        std::process::exit(0);
    }
    let get = |i: usize, default: &str| a.get(i).cloned().unwrap_or_else(|| default.to_string());
    let count = |i: usize, default: &str| -> Result<usize> {
        let v = get(i, default);
        v.parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Other(format!("argument {}: {v:?} is not a count >= 1", i + 1)))
    };
    let args = Args {
        workload: get(0, "mlp"),
        opt: get(1, "adam"),
        threads: count(2, "2")?,
        steps: count(3, "2000")?,
        warmup: count(4, "100")?,
    };
    if !["mlp", "tut"].contains(&args.workload.as_str()) || !["sgd", "adam", "hdm"].contains(&args.opt.as_str()) {
        return Err(Error::Other(format!(
            "workload {:?} or optimizer {:?}: expected mlp|tut and sgd|adam|hdm",
            args.workload, args.opt
        )));
    }
    Ok(args)
}

/// Runs `steps` timed steps after `warmup` and prints the result line.
fn time_steps<M, O>(
    args: &Args,
    model: &mut M,
    trainer: &mut Trainer<f32, M, O>,
    batches: &[(ArrayView2<'_, f32>, M::Target<'_>)],
) -> Result<()>
where
    M: Network<f32>,
    O: Optimizer<f32>,
{
    let mut times = Vec::with_capacity(args.steps);
    let (mut first, mut last) = (0.0, 0.0);
    for it in 0..args.warmup + args.steps {
        let (x, t) = &batches[it % batches.len()];
        let start = Instant::now();
        let loss = trainer.step(model, *x, *t)?;
        let dt = start.elapsed().as_secs_f64();
        if it == 0 {
            first = loss;
        }
        last = loss;
        if it >= args.warmup {
            times.push(dt);
        }
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize] * 1e6;
    let mean = times.iter().sum::<f64>() / times.len() as f64 * 1e6;
    let state: Vec<f32> = trainer.optimizer_tensors().iter().flat_map(|p| p.data.iter().copied()).collect();
    println!(
        "RESULT peer=hdm workload={} opt={} threads={} median_us={:.1} mean_us={mean:.1} p10_us={:.1} p90_us={:.1} steps={} \
         first_loss={first:.4} final_loss={last:.4} batch={} batches={} subnormal_state={:.4}",
        args.workload,
        args.opt,
        args.threads,
        q(0.5),
        q(0.1),
        q(0.9),
        times.len(),
        batches[0].0.nrows(),
        batches.len(),
        subnormal_share(&state),
    );
    Ok(())
}

/// Trains `model` from its initial weights with the optimizer `args.opt` names (SGD at `sgd_lr`,
/// Adam at 1e-3, HDM at e = 0.01 with gamma 2/3 and the global norm) and prints the result.
fn with_optimizer<M: Network<f32>>(
    args: &Args,
    batches: &[(ArrayView2<'_, f32>, M::Target<'_>)],
    sgd_lr: f64,
) -> Result<()> {
    let mut model = M::init(0);
    let batch = batches[0].0.nrows();
    let flush = std::env::var("PEERS_FTZ").is_ok_and(|v| v == "1");
    match args.opt.as_str() {
        "sgd" => {
            let mut t = model.trainer(Sgd::new(sgd_lr), batch).with_flush_subnormals(flush);
            time_steps(args, &mut model, &mut t, batches)
        }
        "adam" => {
            let mut t = model.trainer(Adam::new(1e-3), batch).with_flush_subnormals(flush);
            time_steps(args, &mut model, &mut t, batches)
        }
        _ => {
            let mut t = model.trainer(Hdm::new(0.01), batch).with_flush_subnormals(flush);
            time_steps(args, &mut model, &mut t, batches)
        }
    }
}

fn main() {
    common::run(|| {
        let args = parse()?;
        hdm::set_num_threads(args.threads);
        let batch = env_usize("PEERS_BATCH", 100)?;
        let count = env_usize("PEERS_BATCHES", 1)?;
        let mut rng = Rng::new(0);
        if args.workload == "mlp" {
            let data: Vec<(Array2<f32>, Array1<usize>)> = (0..count)
                .map(|_| {
                    let x = Array2::from_shape_simple_fn((batch, 784), || rng.uniform() as f32);
                    (x, Array1::from_shape_simple_fn(batch, || rng.below(10)))
                })
                .collect();
            let batches: Vec<_> = data.iter().map(|(x, y)| (x.view(), y.view())).collect();
            with_optimizer::<Mlp<f32>>(&args, &batches, 0.01)
        } else {
            let data: Vec<(Array2<f32>, Array2<f32>)> = (0..count)
                .map(|_| {
                    let x = Array2::from_shape_simple_fn((batch, 100), || rng.uniform() as f32);
                    (x, Array2::from_shape_simple_fn((batch, 10), || rng.uniform() as f32))
                })
                .collect();
            let batches: Vec<_> = data.iter().map(|(x, y)| (x.view(), y.view())).collect();
            with_optimizer::<Tutorial<f32>>(&args, &batches, 1e-6)
        }
    })
}
