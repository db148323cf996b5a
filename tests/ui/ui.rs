//! Compile-time diagnostics of `#[network]` and `#[objective]`: every case in `tests/ui/<topic>/`
//! must fail to compile with exactly the message in its `.stderr` snapshot.
//!
//! This is the `hdm-ui-tests` package (`tests/ui/Cargo.toml`), so that `trybuild` is not a
//! dev-dependency of `hdm` and `cargo run --example ...` never builds it. Its paths, and those
//! in the snapshots, are relative to `tests/ui/`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("*/*.rs");
}
