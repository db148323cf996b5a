// A body with an error still gives its struct and impl: code using them reports nothing more.
use hdm::prelude::*;

#[objective]
fn f(x: [f64; 2]) -> f64 {
    x[0].atan() + x[1]
}

fn main() {
    let _ = F.gradient([1.0, 2.0]);
    let _ = F.value_grad_hess([1.0, 2.0]);
    let _ = F.value([1.0, 2.0]);
}
