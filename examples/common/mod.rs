//! What the examples share: the command-line flags every one of them takes, and small helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use clap::Args;

/// Flags with the same names in every example.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Folder with the MNIST files [default: $HDM_DATA_DIR, else data/mnist]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Folder for metrics.csv, the plots and the checkpoints [default: runs/<example>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Number of epochs [default: the example's own]
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Mini-batch size [default: the example's own]
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Seed of the initial weights and of the data order
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Threads for the matrix products [default: $HDM_NUM_THREADS, else all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print nothing but errors
    #[arg(long)]
    pub quiet: bool,
}

impl CommonArgs {
    /// The output folder, created.
    pub fn out_dir(&self, example: &str) -> hdm::Result<PathBuf> {
        let dir = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(example));
        std::fs::create_dir_all(&dir).map_err(|source| hdm::Error::Io { path: dir.clone(), source })?;
        Ok(dir)
    }

    /// Applies `--threads`.
    pub fn apply_threads(&self) {
        if let Some(n) = self.threads {
            hdm::set_num_threads(n);
        }
    }
}

/// Runs `body`, printing its error (if any) as one line and exiting with status 1: a user's
/// mistake (a missing file, a bad flag value) is a message, not a panic.
pub fn run(body: impl FnOnce() -> hdm::Result<()>) {
    if let Err(e) = body() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
