//! The `trajectories` example's own code (included from `examples/`), run as a library: flags in,
//! CSV and plots out.

#[allow(dead_code)] // its `main` is not called here
#[path = "../examples/trajectories.rs"]
mod trajectories;

use clap::Parser;
use trajectories::{run, Args};

/// Runs the example with `flags`, returning the CSV, the log and the files written.
fn example(flags: &[&str]) -> Result<(String, String, Vec<std::path::PathBuf>), String> {
    let args = Args::try_parse_from(std::iter::once("trajectories").chain(flags.iter().copied()))
        .map_err(|e| e.to_string())?;
    let (mut csv, mut log) = (Vec::new(), Vec::new());
    let written = run(&args, &mut csv, &mut log)?;
    Ok((String::from_utf8(csv).unwrap(), String::from_utf8(log).unwrap(), written))
}

#[test]
fn csv_of_gradient_descent_on_the_parabola() {
    let (csv, log, written) =
        example(&["--objective", "square", "--methods", "gd,newton", "--lr", "0.2", "--steps", "10", "--no-plot"])
            .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "method,step,x0,value");
    assert_eq!(lines[1], "gd,0,10,100");
    // The tutorial's 0.060466 after 10 steps, then Newton (lr 0.2 scales the exact step).
    let last_gd: Vec<&str> = lines[11].split(',').collect();
    assert_eq!((last_gd[0], last_gd[1]), ("gd", "10"));
    assert_eq!(format!("{:.6}", last_gd[2].parse::<f64>().unwrap()), "0.060466");
    assert_eq!(lines[12], "newton,0,10,100");
    assert_eq!(lines[13], "newton,1,8,64");
    assert_eq!(lines.len(), 1 + 11 + 11);
    assert!(log.contains("gd: reached the step limit after 10 steps"), "{log}");
    assert!(written.is_empty());
}

#[test]
fn contour_plot_and_csv_for_two_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots");
    let (csv, _, written) = example(&[
        "--objective",
        "quadratic",
        "--methods",
        "gd,newton-abs,linesearch",
        "--lr",
        "0.1",
        "--steps",
        "20",
        "--start=-5,-2",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "method,step,x0,x1,value");
    let gd_20: Vec<f64> = lines[21].split(',').skip(2).map(|v| v.parse().unwrap()).collect();
    assert!(lines[21].starts_with("gd,20,"));
    assert_eq!(format!("{:.6},{:.6}", gd_20[0], gd_20[1]), "-0.057646,-0.000073");
    assert!(csv.contains("\nnewton-abs,0,-5,-2,33\n") && csv.contains("\nlinesearch,20,"));
    assert_eq!(written, vec![out.join("quadratic.svg"), out.join("quadratic.png")]);
    let svg = std::fs::read_to_string(&written[0]).unwrap();
    assert!(svg.contains("newton-abs") && svg.contains("linesearch"));
}

#[test]
fn function_plot_for_one_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (_, _, written) =
        example(&["--objective", "xcos", "--methods", "newton", "--lr", "0.5", "--steps", "10", "--out", out]).unwrap();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|p| p.metadata().unwrap().len() > 1000));
}

#[test]
fn every_objective_and_method_runs() {
    let objectives =
        ["square", "xcos", "cosh", "logexp", "elliptic", "quadratic", "rosenbrock", "beale", "ill", "ill-rotated"];
    let methods = "gd,momentum,nesterov,adagrad,rmsprop,adam,hdm,newton,newton-abs,precond,linesearch,armijo";
    for objective in objectives {
        let (csv, log, _) =
            example(&["--objective", objective, "--methods", methods, "--lr", "0.01", "--steps", "5", "--no-plot"])
                .unwrap_or_else(|e| panic!("{objective}: {e}"));
        for method in methods.split(',') {
            assert!(csv.contains(&format!("\n{method},0,")), "{objective}/{method}");
            assert!(log.contains(&format!("{method}: ")), "{objective}/{method}: {log}");
        }
    }
}

#[test]
fn bad_flags_are_errors_not_panics() {
    let err = example(&["--objective", "himmelblau"]).unwrap_err();
    assert!(err.contains("invalid value 'himmelblau'") && err.contains("rosenbrock"), "{err}");
    let err = example(&["--methods", "gd,sgd"]).unwrap_err();
    assert!(err.contains("invalid value 'sgd'") && err.contains("newton-abs"), "{err}");
    let err = example(&["--objective", "rosenbrock", "--start", "1", "--no-plot"]).unwrap_err();
    assert_eq!(err, "--start has 1 coordinate, but rosenbrock is a function of 2 variables");
    let err = example(&["--objective", "cosh", "--start=1,2,3", "--no-plot"]).unwrap_err();
    assert_eq!(err, "--start has 3 coordinates, but cosh is a function of 1 variable");
    let err = example(&["--lr", "fast"]).unwrap_err();
    assert!(err.contains("invalid value 'fast' for '--lr"), "{err}");
}
