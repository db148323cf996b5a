//! `--distributed` for the `mnist` and `cnn` examples: data-parallel training across the
//! processes of `mpirun` (feature `mpi`).

use std::sync::{Arc, Mutex};

use clap::Args;
use hdm::data::Dataset;
use hdm::distributed::{
    check_same, dataset_fingerprint, fingerprint, Config, DataParallel, DataParallelSolver, Exchange,
};
use hdm::metrics::MetricsWriter;
use hdm::prelude::*;
use hdm::train::{EpochStats, FitConfig, Hook, MetricsHook, Progress};

/// The flags of data-parallel training.
#[derive(Args, Debug, Clone)]
pub struct DistArgs {
    /// Train data-parallel across the processes started by `mpirun` (built with `--features mpi`);
    /// process 0 prints, writes the metrics, the plots and the checkpoints
    #[arg(long)]
    pub distributed: bool,
    /// Shards per batch with --distributed, a multiple of the number of processes [default: one
    /// per process]; the same number gives the same bits on any number of processes dividing it
    #[arg(long, value_name = "N", value_parser = super::at_least_one, allow_negative_numbers = true, requires = "distributed")]
    pub shards: Option<usize>,
}

/// The processes of a `--distributed` run.
pub struct Cluster {
    pub exchange: Arc<dyn Exchange>,
    pub shards: usize,
}

/// Set by a `--distributed` run, so that an error on any process ends the whole job
/// ([`super::run`] calls [`abort_all`]), and MPI is finalised after a success ([`finish`]).
static EXCHANGE: Mutex<Option<Arc<dyn Exchange>>> = Mutex::new(None);

/// Ends the job on every process when this one fails in a `--distributed` run.
pub fn abort_all(message: &str) {
    let ex = EXCHANGE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(ex) = ex.filter(|ex| ex.ranks() > 1) {
        ex.abort(message);
    }
}

/// After a successful `--distributed` run: MPI is finalised (every process gets here).
pub fn finish() {
    drop(EXCHANGE.lock().unwrap_or_else(|e| e.into_inner()).take());
}

impl DistArgs {
    /// The cluster of a `--distributed` run of `example` (MPI initialised), `None` otherwise.
    pub fn start(&self, example: &str) -> hdm::Result<Option<Cluster>> {
        if !self.distributed {
            return Ok(None);
        }
        let exchange = init(example)?;
        *EXCHANGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&exchange));
        let shards = self.shards.unwrap_or(exchange.ranks());
        Ok(Some(Cluster { exchange, shards }))
    }
}

#[cfg(feature = "mpi")]
fn init(_: &str) -> hdm::Result<Arc<dyn Exchange>> {
    Ok(hdm::distributed::Mpi::init()?)
}

#[cfg(not(feature = "mpi"))]
fn init(example: &str) -> hdm::Result<Arc<dyn Exchange>> {
    Err(hdm::Error::Other(format!(
        "--distributed needs the `mpi` feature: mpirun -np 2 cargo run --release --features mpi --example {example} -- \
         --distributed"
    )))
}

impl Cluster {
    /// Whether this is process 0, which reports and writes.
    pub fn is_root(&self) -> bool {
        self.exchange.rank() == 0
    }

    /// Refuses to start unless every process runs the same command line on the same data.
    pub fn check_inputs(&self, train: &Dataset<f32>, test: &Dataset<f32>) -> hdm::Result<()> {
        let args: Vec<String> = std::env::args().collect();
        check_same(
            &*self.exchange,
            &[
                ("command line", fingerprint(args.join("\0").as_bytes())),
                ("training data", dataset_fingerprint(train)),
                ("test data", dataset_fingerprint(test)),
            ],
        )
    }
}

/// One optimizer's run of a `--distributed` job.
pub struct Job<'a> {
    pub label: &'a str,
    pub batch: usize,
    pub config: FitConfig,
    pub resume: bool,
    pub quiet: bool,
    pub on_nonfinite: OnNonFinite,
    /// `--flush-subnormals`
    pub flush: bool,
    pub train: &'a Dataset<f32>,
    pub test: &'a Dataset<f32>,
}

/// Trains `model` data-parallel: every process takes its shards of each batch, process 0 reports
/// (progress bar, the metrics rows when `metrics` is given) and writes the checkpoints; a resume
/// reads process 0's checkpoint on every process.
pub fn fit<M, O>(
    cluster: &Cluster,
    model: &mut M,
    optimizer: O,
    job: Job<'_>,
    metrics: Option<&mut MetricsWriter>,
) -> hdm::Result<Vec<EpochStats>>
where
    M: for<'a> Network<f32, Target<'a> = ndarray::ArrayView1<'a, usize>>,
    O: Optimizer<f32>,
    M::PathCapability: hdm::path::Accepts<O::Requires>,
{
    let root = cluster.is_root();
    let quiet = job.quiet || !root;
    let config = Config { shards: cluster.shards, ..Config::default() };
    let mut dp = DataParallel::new(model, optimizer, job.batch, config, Arc::clone(&cluster.exchange))?
        .with_finite_guard(job.on_nonfinite)
        .with_flush_subnormals(job.flush);
    let config = super::resume(dp.trainer_mut(), model, job.config, job.resume, job.label, quiet)?;
    if !quiet {
        println!(
            "{}: data-parallel on {} processes, {} shards of each batch, {} gradient buckets",
            job.label,
            cluster.exchange.ranks(),
            dp.shards(),
            dp.buckets()
        );
    }
    let mut progress = Progress::new(job.label, quiet);
    let mut rows = metrics.map(|m| MetricsHook::new(m, job.label));
    let mut hooks: Vec<&mut dyn Hook> = Vec::new();
    if root {
        hooks.push(&mut progress);
        if let Some(r) = rows.as_mut() {
            hooks.push(r);
        }
    }
    let mut solver = DataParallelSolver::new(&mut dp, model, Some(job.test), config.eval_batch);
    hdm::train::run(&mut solver, job.train, &config, &mut hooks)
}
