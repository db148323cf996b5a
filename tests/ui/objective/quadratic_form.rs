// quad(&A, &x): a reference to a const matrix and the array argument (or an array of expressions).
use hdm::prelude::*;

const A: [[f64; 2]; 2] = [[1.0, 0.0], [0.0, 1.0]];
const A_REF: &[[f64; 2]; 2] = &A;

#[objective]
fn f(x: [f64; 2]) -> f64 {
    let v = [x[0], x[1]];
    quad(&[[1.0, 0.0], [0.0, 1.0]], &x) + quad(A_REF, &x) + quad(&A, &A[0]) + v[0]
}

fn main() {}
