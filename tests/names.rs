//! Names a user may write that generated code must not trip over (issue 16, class 3): raw
//! identifiers, fields named like generated buffers, a user type named like the buffers, derives
//! written by path, an input used twice by one call. Each compiles and trains correctly
//! (gradients checked by finite differences); `struct T` is one clear error (`tests/ui/names/`).

mod common;

use hdm::prelude::*;

#[network(loss = mse)]
struct Raw {
    r#final: Linear<4, 3>,
    r#type: Tanh,
    out: Linear<3, 2>,
}

/// Fields named like the buffers' own fields and like gradient buffers (`d_<value>`).
#[network(loss = mse)]
struct Clash {
    path_in: Linear<4, 3>,
    act: Relu,
    d_path_in: Linear<3, 3>,
    path_out: Linear<3, 2>,
}

/// A user type with the name the buffers had before (`<Name>Buffers`).
#[allow(dead_code)]
struct NetBuffers;

#[network(loss = mse)]
#[derive(std::fmt::Debug, ::core::clone::Clone, core::cmp::PartialEq)]
struct Net {
    fc: Linear<4, 2>,
}

#[network(input = [4], loss = mse, forward = |x| fc1(x + x))]
struct Twice {
    fc1: Linear<4, 2>,
}

#[network(input = [4], loss = mse, forward = |x| {
    let h = concat(x, x);
    fc1(h)
})]
struct Doubled {
    fc1: Linear<8, 2>,
}

#[test]
fn every_name_compiles_and_its_gradients_are_right() {
    let x = common::inputs(5, 4, 1);
    let y = common::targets(5, 2, 2);
    common::check_gradients(&Raw::<f64>::init(0), x.view(), y.view());
    common::check_gradients(&Clash::<f64>::init(0), x.view(), y.view());
    common::check_gradients(&Net::<f64>::init(0), x.view(), y.view());
    common::check_gradients(&Twice::<f64>::init(0), x.view(), y.view());
    common::check_gradients(&Doubled::<f64>::init(0), x.view(), y.view());
}

#[test]
fn raw_identifiers_have_pytorchs_names_in_checkpoints() {
    let names: Vec<String> = Raw::<f32>::init(0).params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["final.weight", "final.bias", "out.weight", "out.bias"]);
    let names: Vec<String> = Clash::<f32>::init(0).params().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names[0], "path_in.weight");
}

#[test]
fn an_input_used_twice_is_summed_as_written() {
    // fc1(x + x) is fc1 applied to 2x: b + W (2x), worked out from the parameters.
    let twice = Twice::<f64>::init(3);
    let x = common::inputs(3, 4, 4);
    let out = twice.forward(x.view()).unwrap();
    let p = twice.params();
    let (w, b) = (p[0].data, p[1].data);
    for r in 0..3 {
        for o in 0..2 {
            let expected = b[o] + (0..4).map(|i| w[o * 4 + i] * 2.0 * x[[r, i]]).sum::<f64>();
            assert!((out[[r, o]] - expected).abs() < 1e-12, "row {r}, output {o}");
        }
    }
}
