// The body is `let` bindings and a final value.
use hdm::prelude::*;

#[objective]
fn early_return(x: f64) -> f64 {
    let mut y = x * x;
    y += 1.0;
    const K: f64 = 2.0;
    println!("{y}");
    return K * y;
}

#[objective]
fn destructuring(x: [f64; 2]) -> f64 {
    let (a, b) = (x[0], x[1]);
    a * b
}

fn main() {}
