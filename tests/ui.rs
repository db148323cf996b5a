//! Compile-time diagnostics of `#[network]` and `#[objective]`: every case in `tests/ui/<topic>/`
//! must fail to compile with exactly the message in its `.stderr` snapshot.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
}
