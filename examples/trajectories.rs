//! Optimizer trajectories on small functions, as the optimizer tutorials draw them: each
//! objective is differentiated at compile time by `#[objective]`, each method runs from the same
//! start, and the paths are drawn over the function's contour lines (or, for a function of one
//! variable, on its curve). Every iterate is printed to standard output as CSV,
//! `method,step,x0[,x1],value`, step 0 being the start; a summary goes to standard error.
//!
//! ```text
//! cargo run --release --example trajectories -- --objective elliptic --methods gd,momentum,adagrad,adam --lr 0.3
//! cargo run --release --example trajectories -- --objective xcos --methods newton,newton-abs --lr 0.5 --steps 10
//! cargo run --release --example trajectories -- --objective ill-rotated --methods gd,precond,newton,linesearch
//! ```
//!
//! Objectives: `square` (x^2), `xcos` (x cos(0.15 pi x)), `cosh` (cosh(x / 2)), `logexp`
//! (log(exp(x) + exp(-2x - 3))), `elliptic` (x^2 / 20 + y^2), `quadratic` (x1^2 + 2 x2^2),
//! `rosenbrock`, `beale`, `ill` (0.5 x^2 + 50 y^2) and `ill-rotated` (the same turned by 45
//! degrees). Methods: `gd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam`, `hdm`, `newton`,
//! `newton-abs`, `precond`, `linesearch`, `armijo`; `--lr` is the learning rate of each (HDM's
//! step size `e`, the first trial step of the line searches).

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use hdm::optim::{AdaGrad, Adam, Hdm, RmsProp, Sgd};
use hdm::plot::{contour_paths, function_paths, ContourPlot, FunctionPlot, Series};
use hdm::prelude::*;
use hdm::scalar::{
    minimize, write_csv, Armijo, LineSearch, Method, Newton, NewtonAbs, Preconditioned, Stopping, Trajectory,
};

/// `c` of `x cos(c x)`.
const C: f64 = 0.15 * std::f64::consts::PI;

/// The ill-conditioned quadratic's matrix: `diag(0.5, 50)`, condition number 100.
const ILL: [[f64; 2]; 2] = [[0.5, 0.0], [0.0, 50.0]];

/// `R ILL R^T` with `R` the rotation by 45 degrees.
const ILL_ROTATED: [[f64; 2]; 2] = [[25.25, -24.75], [-24.75, 25.25]];

#[objective]
pub fn square(x: f64) -> f64 {
    x * x
}

#[objective]
pub fn xcos(x: f64) -> f64 {
    x * (C * x).cos()
}

#[objective]
pub fn cosh(x: f64) -> f64 {
    (0.5 * x).cosh()
}

#[objective]
pub fn logexp(x: f64) -> f64 {
    (x.exp() + (-2.0 * x - 3.0).exp()).ln()
}

#[objective]
pub fn elliptic([x, y]: [f64; 2]) -> f64 {
    x * x / 20.0 + y * y
}

#[objective]
pub fn quadratic(x: [f64; 2]) -> f64 {
    x[0] * x[0] + 2.0 * x[1] * x[1]
}

#[objective]
pub fn rosenbrock([x, y]: [f64; 2]) -> f64 {
    let a = 1.0 - x;
    let b = y - x * x;
    a * a + 100.0 * b * b
}

#[objective]
pub fn beale([x, y]: [f64; 2]) -> f64 {
    let a = 1.5 - x + x * y;
    let b = 2.25 - x + x * y.powi(2);
    let c = 2.625 - x + x * y.powi(3);
    a * a + b * b + c * c
}

#[objective]
pub fn ill(x: [f64; 2]) -> f64 {
    quad(&ILL, &x)
}

#[objective]
pub fn ill_rotated(x: [f64; 2]) -> f64 {
    quad(&ILL_ROTATED, &x)
}

/// The built-in objectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveName {
    Square,
    Xcos,
    Cosh,
    Logexp,
    Elliptic,
    Quadratic,
    Rosenbrock,
    Beale,
    Ill,
    IllRotated,
}

/// The methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodName {
    Gd,
    Momentum,
    Nesterov,
    #[value(name = "adagrad")]
    AdaGrad,
    #[value(name = "rmsprop")]
    RmsProp,
    Adam,
    Hdm,
    Newton,
    NewtonAbs,
    Precond,
    Linesearch,
    Armijo,
}

/// Optimizer trajectories over contour plots of small functions.
#[derive(Parser, Clone, Debug)]
#[command(version, about)]
pub struct Args {
    /// The function to minimise.
    #[arg(long, value_enum, default_value = "elliptic")]
    pub objective: ObjectiveName,
    /// The methods to run, separated by commas.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "gd,momentum,adagrad,adam")]
    pub methods: Vec<MethodName>,
    /// The learning rate of every method (HDM's step size e, the line searches' first step).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// The start point, `x` or `x,y` (default: the objective's usual one).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub start: Option<Vec<f64>>,
    /// The number of steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Stop a method earlier once its gradient norm is at most this.
    #[arg(long)]
    pub grad_tol: Option<f64>,
    /// The folder of the plot (`<objective>.svg` and `.png`).
    #[arg(long, default_value = "runs/trajectories")]
    pub out: PathBuf,
    /// Skip the plot: only print the trajectories.
    #[arg(long)]
    pub no_plot: bool,
    /// The momentum factor of `momentum` and `nesterov`.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// The small constant in the denominators of AdaGrad, RMSProp and Adam (default: each one's
    /// torch default, 1e-10, 1e-8 and 1e-8).
    #[arg(long)]
    pub eps: Option<f64>,
    /// RMSProp's smoothing constant.
    #[arg(long, default_value_t = 0.99)]
    pub alpha: f64,
    /// Adam's beta1.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    /// Adam's beta2.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// HDM's friction gamma (its step size e is --lr).
    #[arg(long, default_value_t = 2.0 / 3.0)]
    pub gamma: f64,
    /// Added to |eigenvalue| by newton-abs.
    #[arg(long, default_value_t = 0.0)]
    pub damping: f64,
    /// Added to |H_ii| by precond.
    #[arg(long, default_value_t = 0.0)]
    pub precond_eps: f64,
    /// Armijo's sufficient-decrease constant c.
    #[arg(long, default_value_t = 1e-4)]
    pub armijo_c: f64,
    /// The factor by which Armijo shrinks a rejected step.
    #[arg(long, default_value_t = 0.5)]
    pub shrink: f64,
}

/// An objective's usual start point and the part of the plane (or line) to draw.
struct View<const N: usize> {
    start: [f64; N],
    lo: [f64; N],
    hi: [f64; N],
}

/// Runs every method, writes the CSV to `csv` and a summary to `log`, draws the plot (unless
/// `--no-plot`); returns the files written.
pub fn run(args: &Args, csv: &mut dyn Write, log: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let view1 = |start, lo, hi| View { start: [start], lo: [lo], hi: [hi] };
    let view2 = |start, lo, hi| View { start, lo, hi };
    match args.objective {
        ObjectiveName::Square => run_on(&Square, view1(10.0, -12.0, 12.0), args, csv, log),
        ObjectiveName::Xcos => run_on(&Xcos, view1(10.0, -20.0, 30.0), args, csv, log),
        ObjectiveName::Cosh => run_on(&Cosh, view1(10.0, -12.0, 12.0), args, csv, log),
        ObjectiveName::Logexp => run_on(&Logexp, view1(1.0, -3.0, 3.0), args, csv, log),
        ObjectiveName::Elliptic => run_on(&Elliptic, view2([-7.0, 2.0], [-10.0, -5.0], [10.0, 5.0]), args, csv, log),
        ObjectiveName::Quadratic => run_on(&Quadratic, view2([-5.0, -2.0], [-5.5, -3.0], [1.0, 3.0]), args, csv, log),
        ObjectiveName::Rosenbrock => run_on(&Rosenbrock, view2([-1.2, 1.0], [-2.0, -1.0], [2.0, 3.0]), args, csv, log),
        ObjectiveName::Beale => run_on(&Beale, view2([1.0, 1.5], [-4.5, -4.5], [4.5, 4.5]), args, csv, log),
        ObjectiveName::Ill => run_on(&Ill, view2([-9.0, 1.0], [-10.0, -2.0], [10.0, 2.0]), args, csv, log),
        ObjectiveName::IllRotated => run_on(&IllRotated, view2([-6.0, -4.0], [-8.0, -8.0], [8.0, 8.0]), args, csv, log),
    }
}

fn run_on<O: Objective<N, Scalar = f64>, const N: usize>(
    f: &O,
    view: View<N>,
    args: &Args,
    csv: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Vec<PathBuf>, String> {
    let start = match &args.start {
        None => view.start,
        Some(coords) => <[f64; N]>::try_from(coords.as_slice()).map_err(|_| {
            format!(
                "--start has {} coordinate{}, but {} is a function of {N} variable{}",
                coords.len(),
                if coords.len() == 1 { "" } else { "s" },
                f.name(),
                if N == 1 { "" } else { "s" },
            )
        })?,
    };
    if args.methods.is_empty() {
        return Err("--methods names no method".into());
    }
    let mut stopping = Stopping::steps(args.steps);
    stopping.grad_tol = args.grad_tol;
    let runs: Vec<Trajectory<f64, N>> =
        args.methods.iter().map(|&method| run_method(f, method, args, start, stopping)).collect();

    write_csv(&mut *csv, &runs).map_err(|e| format!("cannot write the CSV: {e}"))?;
    for run in &runs {
        let summary = format!(
            "{:>10}: {} after {} step{} at {:?}, f = {:.6}",
            run.method,
            run.stop,
            run.steps(),
            if run.steps() == 1 { "" } else { "s" },
            run.last(),
            run.last_value()
        );
        writeln!(log, "{summary}").map_err(|e| e.to_string())?;
    }
    if args.no_plot {
        return Ok(Vec::new());
    }
    let written = plot(f, &view, args, &runs)?;
    for path in &written {
        writeln!(log, "wrote {}", path.display()).map_err(|e| e.to_string())?;
    }
    Ok(written)
}

/// Runs one method by name with the flags' hyperparameters; the trajectory carries the name.
fn run_method<O: Objective<N, Scalar = f64>, const N: usize>(
    f: &O,
    method: MethodName,
    args: &Args,
    start: [f64; N],
    stopping: Stopping,
) -> Trajectory<f64, N> {
    fn go<O: Objective<N, Scalar = f64>, M: Method<f64, N>, const N: usize>(
        f: &O,
        method: M,
        start: [f64; N],
        stopping: Stopping,
    ) -> Trajectory<f64, N> {
        minimize(f, &method, start, stopping)
    }
    let lr = args.lr;
    let mut run = match method {
        MethodName::Gd => go(f, Sgd::new(lr), start, stopping),
        MethodName::Momentum => go(f, Sgd::new(lr).momentum(args.momentum), start, stopping),
        MethodName::Nesterov => go(f, Sgd::new(lr).momentum(args.momentum).nesterov(true), start, stopping),
        MethodName::AdaGrad => {
            let opt = AdaGrad::new(lr);
            go(f, opt.eps(args.eps.unwrap_or(opt.eps)), start, stopping)
        }
        MethodName::RmsProp => {
            let opt = RmsProp::new(lr).alpha(args.alpha);
            go(f, opt.eps(args.eps.unwrap_or(opt.eps)), start, stopping)
        }
        MethodName::Adam => {
            let opt = Adam::new(lr).betas(args.beta1, args.beta2);
            go(f, opt.eps(args.eps.unwrap_or(opt.eps)), start, stopping)
        }
        MethodName::Hdm => go(f, Hdm::new(lr).gamma(args.gamma), start, stopping),
        MethodName::Newton => go(f, Newton::new(lr), start, stopping),
        MethodName::NewtonAbs => go(f, NewtonAbs::new(lr).damping(args.damping), start, stopping),
        MethodName::Precond => go(f, Preconditioned::new(lr).eps(args.precond_eps), start, stopping),
        MethodName::Linesearch => go(f, LineSearch::new(lr), start, stopping),
        MethodName::Armijo => go(f, Armijo::new(lr).c(args.armijo_c).shrink(args.shrink), start, stopping),
    };
    run.method = method.to_possible_value().expect("no variant is skipped").get_name().to_string();
    run
}

/// The contour plot with the paths (two variables), or the curve with the iterates (one).
fn plot<O: Objective<N, Scalar = f64>, const N: usize>(
    f: &O,
    view: &View<N>,
    args: &Args,
    runs: &[Trajectory<f64, N>],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let path = args.out.join(f.name());
    let (mut lo, mut hi) = (view.lo, view.hi);
    // Widen the view to take in every iterate, up to ten times its size (a diverging method
    // leaves the plot rather than squashing it).
    for i in 0..N {
        let (a, b) = (view.lo[i], view.hi[i]);
        let reach = 10.0 * (b - a);
        for x in runs.iter().flat_map(|r| r.points.iter().map(move |p| p[i])).filter(|x| x.is_finite()) {
            lo[i] = lo[i].min(x.max(a - reach));
            hi[i] = hi[i].max(x.min(b + reach));
        }
    }
    let title = format!("{}: lr {}, {} steps", f.name(), args.lr, args.steps);
    let point = |coords: &[f64]| {
        let mut p = [0.0; N];
        for (pi, &c) in p.iter_mut().zip(coords) {
            *pi = c;
        }
        p
    };
    let written = if N == 1 {
        let g = |x: f64| f.value(point(&[x]));
        let paths = runs
            .iter()
            .map(|r| Series::new(&r.method, r.points.iter().zip(&r.values).map(|(p, &v)| (p[0], v)).collect()))
            .collect();
        function_paths(&path, &FunctionPlot { title, f: &g, x_range: lo[0]..hi[0], log_y: false, paths })
    } else {
        let g = |x: f64, y: f64| f.value(point(&[x, y]));
        let paths =
            runs.iter().map(|r| Series::new(&r.method, r.points.iter().map(|p| (p[0], p[1])).collect())).collect();
        contour_paths(
            &path,
            &ContourPlot { title, f: &g, x_range: lo[0]..hi[0], y_range: lo[1]..hi[1], levels: Vec::new(), paths },
        )
    };
    written.map_err(|e| e.to_string())
}

fn main() {
    let args = Args::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    if let Err(message) = run(&args, &mut out, &mut err) {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}
