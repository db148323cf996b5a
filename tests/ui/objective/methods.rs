// Method calls: only the differentiable ones, with the right arguments.
use hdm::prelude::*;

const N: i32 = 2;

#[objective]
fn f(x: f64) -> f64 {
    x.powi(N) + x.sqrt(2.0) + x.powf() + x.sin().floor()
}

fn main() {}
