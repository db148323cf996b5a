//! The examples' command lines behave alike (issue 15): `--help` works on every one, and bad
//! values are clear errors before any work starts (exit status 2 for a flag, 1 for a file).
//! `cargo test` builds the examples beside the tests; this runs the built programs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    deps.parent().unwrap().join("examples").join(name)
}

fn run(name: &str, args: &[&str]) -> Output {
    let path = example(name);
    Command::new(&path).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_works_on_every_example() {
    for name in [
        "mnist",
        "cnn",
        "dcgan",
        "regression",
        "path_sgd",
        "trajectories",
        "bench",
        "boids",
        "quickstart",
        "peer_step",
        "dist_bench",
    ] {
        let o = run(name, &["--help"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out.contains("Usage"), "{name} --help: {out} {}", stderr(&o));
    }
    let o = run("quickstart", &["--epochs", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("quickstart takes no arguments"), "{}", stderr(&o));
}

#[test]
fn bad_values_are_errors_before_work_starts() {
    let cases: [(&str, &[&str], &str); 11] = [
        ("mnist", &["--shards", "2"], "the following required arguments were not provided:\n  --distributed"),
        ("cnn", &["--distributed", "--shards", "0"], "invalid value '0' for '--shards <N>': must be at least 1"),
        ("mnist", &["--epochs", "0"], "invalid value '0' for '--epochs <N>': must be at least 1"),
        ("mnist", &["--epochs", "-1"], "invalid value '-1' for '--epochs <N>': must be at least 1, not negative"),
        ("cnn", &["--batch", "0"], "invalid value '0' for '--batch <N>': must be at least 1"),
        ("regression", &["--threads", "0"], "invalid value '0' for '--threads <N>': must be at least 1"),
        ("mnist", &["--adam-lr", "NaN"], "'--adam-lr <ADAM_LR>': must be a finite number >= 0, not NaN"),
        ("path_sgd", &["--sgd-lr", "-0.5"], "'--sgd-lr <SGD_LR>': must be a finite number >= 0, not -0.5"),
        ("regression", &["--momentum", "1"], "'--momentum <MOMENTUM>': must be in [0, 1), not 1"),
        ("dcgan", &["--seed", "-1"], "invalid value '-1' for '--seed <N>': must be a whole number"),
        ("dcgan", &["--limit", "0"], "invalid value '0' for '--limit <N>': must be at least 1"),
    ];
    for (name, args, expected) in cases {
        let o = run(name, args);
        assert_eq!(o.status.code(), Some(2), "{name} {args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{name} {args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_out_that_is_a_file_and_missing_data_are_short_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "not a folder").unwrap();
    let nowhere = dir.path().join("no-data");
    let (file_s, nowhere_s) = (file.to_str().unwrap(), nowhere.to_str().unwrap());
    let o = run("mnist", &["--out", file_s, "--data", nowhere_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("--out {file_s}: this is a file, not a folder")), "{}", stderr(&o));
    let out = dir.path().join("out");
    let o = run("mnist", &["--out", out.to_str().unwrap(), "--data", nowhere_s]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(e.contains(&format!("{nowhere_s}: no such folder. The MNIST folder holds train-images-idx3-ubyte")), "{e}");
    assert!(e.contains("--data DIR or HDM_DATA_DIR"), "{e}");
    let o = run("cnn", &["--out", out.to_str().unwrap(), "--data", nowhere_s]);
    assert!(stderr(&o).contains("The Fashion-MNIST folder") && stderr(&o).contains("HDM_FASHION_MNIST_DIR"));
    assert!(!stderr(&o).contains("--features download"), "only MNIST can be downloaded: {}", stderr(&o));
}

/// Without the `mpi` feature, `--distributed` says how to get it; with it, a run of one process
/// (no `mpirun`) is a data-parallel run of one.
#[test]
fn distributed_without_mpi_says_what_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run("mnist", &["--distributed", "--out", out, "--data", out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    if cfg!(feature = "mpi") {
        assert!(stderr(&o).contains("The MNIST folder holds"), "{}", stderr(&o));
    } else {
        assert!(stderr(&o).contains("--distributed needs the `mpi` feature: mpirun -np 2 cargo run --release --features mpi --example mnist -- --distributed"), "{}", stderr(&o));
    }
}
