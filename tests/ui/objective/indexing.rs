// Indices must be integer literals within the array argument; scalars cannot be indexed.
use hdm::prelude::*;

const I: usize = 0;

#[objective]
fn f(x: [f64; 2]) -> f64 {
    let s = x[0] * x[1];
    x[I] + x[2] + s[0] + x.iter().sum::<f64>()
}

fn main() {}
