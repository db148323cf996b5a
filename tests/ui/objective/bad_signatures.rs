// Signatures #[objective] cannot take.
use hdm::prelude::*;

#[objective]
fn integer(_x: i32) -> f64 {
    1.0
}

#[objective]
fn generic<T>(x: f64) -> f64 {
    x
}

#[objective]
fn no_return(_x: f64) {}

#[objective]
fn mixed(x: f64, _y: f32) -> f64 {
    x
}

#[objective]
fn non_literal_length(x: [f64; LEN]) -> f64 {
    x[0]
}

#[objective]
fn no_arguments() -> f64 {
    1.0
}

#[objective]
fn two_arrays(x: [f64; 2], y: [f64; 2]) -> f64 {
    x[0] + y[0]
}

#[objective]
fn tuple_pattern((a, b): (f64, f64)) -> f64 {
    a + b
}

const LEN: usize = 2;

fn main() {}
