// Every construct #[objective] cannot differentiate is reported, all in one compilation.
use hdm::prelude::*;

fn helper(x: f64) -> f64 {
    x
}

#[objective]
fn f(x: [f64; 2]) -> f64 {
    let a = if x[0] > 0.0 { x[0] } else { -x[0] };
    let b = x[1].atan() + helper(x[0]);
    let c = x[0] % 2.0 + (x[1] as f32) as f64;
    a + b + c + x[0].max(x[1])
}

fn main() {}
