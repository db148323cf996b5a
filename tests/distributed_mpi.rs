//! Data-parallel training on MPI processes (feature `mpi`; needs `mpirun`, Open MPI here): each
//! test starts this test binary under `mpirun` with a scenario in `HDM_MPI_SCENARIO`, and the
//! processes run [`mpi_process`]; the test then reads what each process wrote and compares it
//! with the same training on one process ([`hdm::distributed::Local`]) with the same shards.
//!
//! - 2 processes, 2 shards, and 3 processes, 6 shards: every process ends with the same bits, and
//!   those of one process computing every shard (an MLP with Adam, and a convolutional network
//!   with batch normalisation and SGD with momentum), through `train::run`, with the sharded
//!   evaluation's figures those of one process;
//! - a run stopped after 2 epochs and resumed from process 0's checkpoint ends as an uninterrupted
//!   one;
//! - a process returning an `Err`, panicking, or killed (SIGKILL) ends the whole job with an error
//!   (a hang fails the test after two minutes);
//! - processes started with different seeds are refused at start-up, on every process.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdm::data::Dataset;
use hdm::distributed::{Config, DataParallel, DataParallelSolver, Exchange, Local, Mpi};
use hdm::prelude::*;
use hdm::train::{self, FitConfig};
use ndarray::{Array1, Array2};

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

const SCENARIO: &str = "HDM_MPI_SCENARIO";
const OUT: &str = "HDM_MPI_OUT";
const SHARDS: &str = "HDM_MPI_SHARDS";

/// A synthetic classification set: `n` rows of `rows x cols` features in 4 classes.
fn dataset(n: usize, rows: usize, cols: usize, seed: u64) -> Dataset<f32> {
    let mut rng = Rng::new(seed);
    let labels = Array1::from_shape_simple_fn(n, || rng.below(4));
    let images = Array2::from_shape_fn((n, rows * cols), |(i, j)| {
        (rng.normal() * 0.5 + if j % 4 == labels[i] { 1.0 } else { 0.0 }) as f32
    });
    Dataset::new(images, labels, rows, cols).unwrap()
}

/// What one process reports: every epoch's figures, then the model's state, as text.
fn report<M: Network<f32>>(model: &M, history: &[train::EpochStats]) -> String {
    let mut out = String::new();
    for s in history {
        out += &format!(
            "epoch {} loss {:e} test {:?} {:?}\n",
            s.epoch,
            s.train_loss,
            s.test_loss.map(f64::to_bits),
            s.test_accuracy
        );
    }
    for p in model.state() {
        out += &format!("{} {:?}\n", p.name, p.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
    out += &format!("{:?}\n", model.counters());
    out
}

/// Trains `M` for epochs `from..=to` (from a checkpoint in `resume` when given), saving
/// checkpoints to `save` when given; returns the report.
fn train<M, O>(
    exchange: Arc<dyn Exchange>,
    shards: usize,
    optimizer: O,
    epochs: (usize, usize),
    resume: Option<&Path>,
    save: Option<&Path>,
    seed: u64,
) -> hdm::Result<String>
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let (h, w) = if M::INPUT == 12 { (3, 4) } else { (8, 9) };
    let (train_set, test_set) = (dataset(66, h, w, 1), dataset(31, h, w, 2));
    let mut model = M::init(seed);
    let mut dp = DataParallel::new(&model, optimizer, 12, Config { shards, ..Config::default() }, exchange)?;
    let mut config = FitConfig {
        epochs: epochs.1,
        seed: 3,
        eval_batch: 7,
        checkpoint: save.map(PathBuf::from),
        ..Default::default()
    };
    if let Some(path) = resume {
        let meta = dp.trainer_mut().load_checkpoint(path, &mut model)?;
        config = config.resuming(&meta)?;
        assert_eq!(config.start_epoch, epochs.0);
    }
    let mut solver = DataParallelSolver::new(&mut dp, &mut model, Some(&test_set), 7);
    let history = train::run(&mut solver, &train_set, &config, &mut [])?;
    Ok(report(&model, &history))
}

/// Not a test: the body of each MPI process of the tests below (it returns at once when not
/// started by them).
#[test]
fn mpi_process() {
    let Ok(scenario) = std::env::var(SCENARIO) else { return };
    let out = PathBuf::from(std::env::var(OUT).unwrap());
    let shards: usize = std::env::var(SHARDS).unwrap().parse().unwrap();
    let mpi = Mpi::init().unwrap();
    let rank = mpi.rank();
    let ex: Arc<dyn Exchange> = mpi.clone();
    let text = match scenario.as_str() {
        "train" => {
            let a = mpi.exit_on_error(train::<Mlp<f32>, _>(ex.clone(), shards, Adam::new(0.01), (1, 3), None, None, 5));
            let b = mpi.exit_on_error(train::<ConvBn<f32>, _>(
                ex,
                shards,
                Sgd::new(0.05).momentum(0.9),
                (1, 3),
                None,
                None,
                6,
            ));
            a + &b
        }
        "resume" => {
            let ck = out.join("ck.safetensors");
            mpi.exit_on_error(train::<ConvBn<f32>, _>(ex.clone(), shards, Adam::new(0.01), (1, 2), None, Some(&ck), 6));
            mpi.barrier(); // process 0's checkpoint is written
            mpi.exit_on_error(train::<ConvBn<f32>, _>(ex, shards, Adam::new(0.01), (3, 4), Some(&ck), None, 6))
        }
        "mismatch" => {
            mpi.exit_on_error(train::<Mlp<f32>, _>(ex, shards, Adam::new(0.01), (1, 1), None, None, 5 + rank as u64));
            String::new()
        }
        "err" | "panic" | "kill" => {
            let model = Mlp::<f32>::init(5);
            let mut m = model.clone();
            let mut dp = mpi.exit_on_error(DataParallel::new(&model, Adam::new(0.01), 12, Config::default(), ex));
            let data = dataset(12, 3, 4, 1);
            for step in 0..1_000_000 {
                if step == 3 && rank == 1 {
                    match scenario.as_str() {
                        "err" => mpi.exit_on_error(Err::<(), _>(hdm::Error::Other("a failure of this process".into()))),
                        "panic" => panic!("a bug in this process"),
                        _ => {
                            Command::new("kill").args(["-9", &std::process::id().to_string()]).status().unwrap();
                            std::thread::sleep(Duration::from_secs(60));
                        }
                    }
                }
                mpi.exit_on_error(dp.step(&mut m, data.images.view(), data.labels.view()));
            }
            String::new()
        }
        other => panic!("unknown scenario {other}"),
    };
    std::fs::write(out.join(format!("rank{rank}.txt")), text).unwrap();
}

/// Runs `mpirun -np <np>` on this binary's [`mpi_process`] with `scenario`; returns whether it
/// succeeded and its output. A run longer than two minutes (a hang) fails the test.
fn mpirun(np: usize, shards: usize, scenario: &str, out: &Path) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none"])
        .args(["-np", &np.to_string(), "-x", SCENARIO, "-x", OUT, "-x", SHARDS])
        .arg(&exe)
        .args(["--exact", "mpi_process", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .env(OUT, out)
        .env(SHARDS, shards.to_string())
        .env("HDM_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev) must be on the PATH");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "mpirun -np {np} ({scenario}) hung for two minutes:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn rank_report(out: &Path, rank: usize) -> String {
    std::fs::read_to_string(out.join(format!("rank{rank}.txt"))).unwrap()
}

/// `np` processes with `shards` shards: every process's report equals one process's with as
/// many shards.
fn same_bits_as_one_process(np: usize, shards: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = mpirun(np, shards, "train", dir.path());
    assert!(ok, "{text}");
    let local: Arc<dyn Exchange> = Arc::new(Local);
    let mut one = train::<Mlp<f32>, _>(local.clone(), shards, Adam::new(0.01), (1, 3), None, None, 5).unwrap();
    one += &train::<ConvBn<f32>, _>(local, shards, Sgd::new(0.05).momentum(0.9), (1, 3), None, None, 6).unwrap();
    for rank in 0..np {
        let got = rank_report(dir.path(), rank);
        // The test loss is summed over the processes' shares of the test set: its rounding
        // depends on their number; the rest is bit for bit.
        let strip = |s: &str| s.lines().map(|l| l.split(" test ").next().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(strip(&got), strip(&one), "process {rank} of {np}");
        for (g, o) in got.lines().zip(one.lines()).filter(|(g, _)| g.starts_with("epoch")) {
            let acc = |l: &str| l.rsplit(' ').next().unwrap().to_string();
            assert_eq!(acc(g), acc(o), "the test accuracy: {g} / {o}");
        }
    }
}

#[test]
fn two_processes_compute_the_bits_of_one() {
    same_bits_as_one_process(2, 2);
}

#[test]
fn three_processes_with_six_shards_compute_the_bits_of_one() {
    same_bits_as_one_process(3, 6);
}

#[test]
fn a_resumed_run_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = mpirun(2, 2, "resume", dir.path());
    assert!(ok, "{text}");
    let local: Arc<dyn Exchange> = Arc::new(Local);
    let whole = train::<ConvBn<f32>, _>(local, 2, Adam::new(0.01), (1, 4), None, None, 6).unwrap();
    let tail = |s: &str| s.lines().filter(|l| !l.starts_with("epoch")).map(String::from).collect::<Vec<_>>();
    for rank in 0..2 {
        assert_eq!(tail(&rank_report(dir.path(), rank)), tail(&whole), "process {rank}");
    }
    assert!(dir.path().join("ck.safetensors").exists() && dir.path().join("ck.optim.safetensors").exists());
}

fn fails(scenario: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (ok, text) = mpirun(2, 2, scenario, dir.path());
    assert!(!ok, "{scenario}: the job succeeded:\n{text}");
    assert!(text.contains(expect), "{scenario}: no {expect:?} in:\n{text}");
    eprintln!("{scenario}: the job ended in {:.1} s", start.elapsed().as_secs_f64());
}

#[test]
fn a_failing_process_ends_the_job() {
    fails("err", "error on process 1 of 2: a failure of this process");
    fails("panic", "a bug in this process");
    fails("kill", "signal 9");
}

#[test]
fn processes_that_differ_are_refused_at_start_up() {
    fails("mismatch", "the initial weights of process(es) 1 differ(s) from process 0's");
}

/// The `mnist` example on 2 processes (`--distributed`), then resumed for one more epoch: one
/// process prints and writes one metrics row per epoch; the checkpoint pair is written.
#[test]
fn the_mnist_example_runs_and_resumes_distributed() {
    let Ok(data) = std::env::var("HDM_DATA_DIR") else {
        eprintln!("HDM_DATA_DIR is not set: skipped (CI sets it)");
        return;
    };
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let exe = deps.parent().unwrap().join("examples").join("mnist");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let o = Command::new("mpirun")
            .args(["--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none"])
            .args(["-np", "2"])
            .arg(&exe)
            .args(["--distributed", "--optimizers", "adam", "--threads", "1", "--data", &data, "--out", &out])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
        text
    };
    let first = run(&["--epochs", "1"]);
    assert_eq!(first.matches("adam   epoch   1").count(), 1, "{first}");
    assert!(first.contains("data-parallel on 2 processes, 2 shards of each batch"), "{first}");
    let second = run(&["--epochs", "2", "--resume"]);
    assert!(second.contains("adam: resuming after epoch 1 (step 100"), "{second}");
    assert_eq!(second.matches("adam   epoch   2").count(), 1, "{second}");
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(dir.path().join("adam.safetensors").exists() && dir.path().join("adam.optim.safetensors").exists());
}
