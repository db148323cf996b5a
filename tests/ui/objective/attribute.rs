// #[objective] takes no argument but `name = StructName`, and only applies to functions.
use hdm::prelude::*;

#[objective(rename = Other)]
fn f(x: f64) -> f64 {
    x
}

#[objective]
struct NotAFunction;

fn main() {}
