//! Craig Reynolds' boids, as the tutorial's JavaScript page has them (rules in `sim.rs`), in
//! Rust: a GIF of the flock, a picture of its trails and its statistics per step; a live page in
//! the browser; and flocks of 100,000 boids through a grid search on hdm's thread pool.
//!
//! ```text
//! cargo run --release --example boids                         # 30 boids, 500 steps -> runs/boids
//! cargo run --release --example boids -- --start scattered --boids 200 --sight 50 --steps 1500
//! cargo run --release --example boids -- --serve              # http://127.0.0.1:8080
//! cargo run --release --example boids -- --bench              # steps per second, both searches
//! ```
//!
//! Writes to `--out` (default `runs/boids`): `flock.gif` (at most `--frames` frames spread over
//! the run) and `final.png` (the last state with each boid's last `--trail` positions). Prints
//! per-step statistics as CSV on stdout (`step,mean_speed,polarisation,groups`, step 0 is the
//! initial state): polarisation is `|mean unit velocity|` (near 0 for random headings, 1 when all
//! fly one way) and groups are the connected components of boids within sight of each other.
//!
//! `--serve [ADDR]` (default `127.0.0.1:8080`) runs the simulation in Rust at 60 steps per second
//! and serves a page that draws it live, with the tutorial's sliders (sight radius, avoidance
//! distance) and its button that adds a boid; see `serve.rs` for the HTTP interface.

pub mod draw;
pub mod serve;
pub mod sim;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};

use draw::{Canvas, Gif, Trails, View};
use sim::{Params, Search, Sim};

#[derive(Parser, Debug)]
#[command(about = "Craig Reynolds' boids: a GIF, a picture of trails and statistics per step, or a live page")]
pub struct Cli {
    /// Number of boids.
    #[arg(long, default_value_t = 30)]
    pub boids: usize,
    /// Steps to simulate.
    #[arg(long, default_value_t = 500)]
    pub steps: u64,
    /// Seed of the initial positions and velocities (and of boids added later).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sight radius: a boid sees the boids strictly closer than this.
    #[arg(long, default_value_t = 100.0)]
    pub sight: f64,
    /// Avoidance distance: a boid steers away from the boids it sees strictly closer than this.
    #[arg(long, default_value_t = 20.0)]
    pub avoid: f64,
    /// Width of the field (the soft walls push boids back inside it).
    #[arg(long, default_value_t = 1000.0)]
    pub width: f64,
    /// Height of the field.
    #[arg(long, default_value_t = 500.0)]
    pub height: f64,
    /// How the flock starts: the tutorial's (the middle of the field, velocities in [0, 1)^2, so
    /// all headed the same quarter), or scattered over the field in every direction.
    #[arg(long, value_enum, default_value_t = Start::Tutorial)]
    pub start: Start,
    /// Neighbour search: the tutorial's all pairs, or the grid (the same results, faster).
    #[arg(long, value_enum, default_value_t = SearchArg::Grid)]
    pub search: SearchArg,
    /// Output folder.
    #[arg(long, default_value = "runs/boids")]
    pub out: PathBuf,
    /// At most this many GIF frames, spread evenly over the run.
    #[arg(long, default_value_t = 125)]
    pub frames: u64,
    /// Positions of each boid's trail drawn in final.png.
    #[arg(long, default_value_t = 100)]
    pub trail: usize,
    /// Width of the pictures in pixels (at most the field's width plus margins).
    #[arg(long, default_value_t = 1000)]
    pub image_width: u32,
    /// Draw each boid's sight circle.
    #[arg(long)]
    pub show_sight: bool,
    /// Serve the live page at ADDR instead of writing files.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub serve: Option<String>,
    /// Print steps per second for 30 to 100,000 boids, both searches, instead.
    #[arg(long)]
    pub bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Start {
    Tutorial,
    Scattered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SearchArg {
    AllPairs,
    Grid,
}

impl From<SearchArg> for Search {
    fn from(s: SearchArg) -> Search {
        match s {
            SearchArg::AllPairs => Search::AllPairs,
            SearchArg::Grid => Search::Grid,
        }
    }
}

/// The most boids a run takes: far beyond what a step of a second handles.
pub const MAX_BOIDS: usize = 10_000_000;

impl Cli {
    /// The rules from the flags, checked.
    pub fn params(&self) -> hdm::Result<Params> {
        let bad = |what: &str| Err(hdm::Error::Other(what.to_string()));
        let field = 1e7;
        let distance = |d: f64| d.is_finite() && d >= 0.0;
        if !distance(self.sight) || !distance(self.avoid) {
            return bad("--sight and --avoid must be finite and not negative");
        }
        if !(self.width > 0.0 && self.width <= field && self.height > 0.0 && self.height <= field) {
            return bad("--width and --height must be above 0 and at most 10,000,000");
        }
        if self.boids > MAX_BOIDS {
            return bad("--boids must be at most 10,000,000");
        }
        if self.boids.saturating_mul(self.trail) > 50_000_000 {
            return bad("--boids times --trail must be at most 50,000,000 (the trails are kept in memory)");
        }
        Ok(Params { sight: self.sight, avoid: self.avoid, width: self.width, height: self.height, ..Params::default() })
    }

    /// The flock the flags ask for.
    pub fn sim(&self, params: Params) -> Sim {
        match self.start {
            Start::Tutorial => Sim::new(self.boids, params, self.seed),
            Start::Scattered => {
                let flock = sim::Flock::scattered(self.boids, &params, &mut hdm::Rng::new(self.seed));
                Sim::with_flock(flock, params, self.seed)
            }
        }
    }
}

pub fn main() {
    let cli = Cli::parse();
    let result = if cli.bench {
        bench(&mut std::io::stdout().lock())
    } else if let Some(addr) = &cli.serve {
        cli.params().and_then(|p| serve::run(addr, cli.sim(p)))
    } else {
        run(&cli, &mut std::io::stdout().lock())
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Simulates `cli.steps` steps, writing the GIF and the final picture to `cli.out` and the
/// statistics of each step as CSV to `csv`.
pub fn run(cli: &Cli, csv: &mut dyn Write) -> hdm::Result<()> {
    let params = cli.params()?;
    let out = &cli.out;
    std::fs::create_dir_all(out).map_err(|e| hdm::Error::Io { path: out.clone(), source: e })?;
    let stdout = |e: std::io::Error| hdm::Error::Other(format!("writing the statistics: {e}"));
    let mut sim = cli.sim(params);
    let view = View::new(&params, image_width(cli.image_width)?);
    let mut gif = Gif::create(&out.join("flock.gif"), view, 4)?;
    let every = cli.steps.div_ceil(cli.frames.max(1)).max(1);
    let mut trails = Trails::new(cli.boids, cli.trail);
    writeln!(csv, "step,mean_speed,polarisation,groups").map_err(stdout)?;
    loop {
        let s = sim.stats();
        writeln!(csv, "{},{:.6},{:.6},{}", sim.steps, s.mean_speed, s.polarisation, s.groups).map_err(stdout)?;
        trails.record(&sim.flock);
        if sim.steps.is_multiple_of(every) || sim.steps == cli.steps {
            let mut canvas = Canvas::new(view);
            canvas.field(&sim.params);
            canvas.flock(&sim.flock, &sim.params, cli.show_sight);
            gif.frame(&canvas)?;
        }
        if sim.steps == cli.steps {
            break;
        }
        sim.step(cli.search.into());
    }
    let mut canvas = Canvas::new(view);
    canvas.field(&sim.params);
    canvas.trails(&trails);
    canvas.flock(&sim.flock, &sim.params, cli.show_sight);
    canvas.save_png(&out.join("final.png"))
}

/// Steps per second of each search for 30, 1,000, 10,000 and 100,000 boids, as a Markdown table.
///
/// Up to 1,000 boids fly on the tutorial's 1000 x 500 field; beyond, the field grows with the
/// flock (the same area per boid as 1,000 on the tutorial's field), since 100,000 boids in the
/// tutorial's middle quarter would each see thousands of others. Each flock first flies 100 grid
/// steps from its random start, so that it has formed groups; each search then steps for about a
/// second (all pairs at least once).
pub fn bench(out: &mut dyn Write) -> hdm::Result<()> {
    let w = |e: std::io::Error| hdm::Error::Other(format!("writing the table: {e}"));
    writeln!(out, "| boids | field | all pairs (steps/s) | grid (steps/s) | grid / all pairs |").map_err(w)?;
    writeln!(out, "|---|---|---|---|---|").map_err(w)?;
    for n in [30, 1_000, 10_000, 100_000] {
        let side = (n.max(1000) as f64 / 1000.0).sqrt();
        let p = Params { width: 1000.0 * side, height: 500.0 * side, ..Params::default() };
        let mut sim = Sim::new(n, p, 1);
        for _ in 0..100 {
            sim.step(Search::Grid);
        }
        let rate = |search: Search| {
            let mut probe = Sim::with_flock(sim.flock.clone(), p, 1);
            let start = Instant::now();
            let mut steps = 0;
            while steps == 0 || start.elapsed().as_secs_f64() < 1.0 {
                probe.step(search);
                steps += 1;
            }
            steps as f64 / start.elapsed().as_secs_f64()
        };
        let (all, grid) = (rate(Search::AllPairs), rate(Search::Grid));
        writeln!(out, "| {n} | {:.0} x {:.0} | {} | {} | {:.1} |", p.width, p.height, fmt(all), fmt(grid), grid / all)
            .map_err(w)?;
    }
    Ok(())
}

fn image_width(w: u32) -> hdm::Result<u32> {
    if (16..=4096).contains(&w) {
        Ok(w)
    } else {
        Err(hdm::Error::Other(format!("--image-width must be in [16, 4096], not {w}")))
    }
}

fn fmt(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 1.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.3}")
    }
}
