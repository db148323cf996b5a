//! Every layer, activation and loss gradient-checked against central finite differences, in f64,
//! on networks of odd sizes.

mod common;

use common::*;
use hdm::prelude::*;

/// One of each activation, in a chain, with softmax cross-entropy.
#[network(loss = softmax_cross_entropy)]
struct EveryActivation {
    fc1: Linear<7, 9>,
    a1: Relu,
    fc2: Linear<9, 8>,
    a2: LeakyRelu<0.1>,
    fc3: Linear<8, 7>,
    a3: Sigmoid,
    fc4: Linear<7, 6>,
    a4: Tanh,
    fc5: Linear<6, 5>,
    a5: Softplus,
    fc6: Linear<5, 6>,
    a6: Gelu,
    fc7: Linear<6, 4>,
    a7: Identity,
    fc8: Linear<4, 3>,
}

#[test]
fn every_activation_and_softmax_cross_entropy() {
    let model = EveryActivation::<f64>::init(1);
    let x = inputs(11, 7, 2) * 3.0;
    check_gradients(&model, x.view(), labels(11, 3, 3).view());
}

/// Layers without bias (the tutorial network's shape, smaller) and mean squared error.
#[network(loss = mse)]
struct NoBiasMse {
    fc1: Linear<5, 13, NoBias>,
    act: Relu,
    fc2: Linear<13, 3, NoBias>,
}

#[test]
fn layers_without_bias_and_mean_squared_error() {
    let model = NoBiasMse::<f64>::init(4);
    check_gradients(&model, inputs(9, 5, 5).view(), targets(9, 3, 6).view());
}

#[network(loss = sum_of_squares)]
struct SumOfSquares {
    fc1: Linear<3, 7>,
    act: Tanh,
    fc2: Linear<7, 2, NoBias>,
}

#[test]
fn sum_of_squares() {
    let model = SumOfSquares::<f64>::init(7);
    check_gradients(&model, inputs(5, 3, 8).view(), targets(5, 2, 9).view());
}

#[network(loss = bce_with_logits)]
struct Binary {
    fc1: Linear<4, 6>,
    act: Softplus,
    fc2: Linear<6, 1>,
}

#[test]
fn binary_cross_entropy_with_logits() {
    let model = Binary::<f64>::init(10);
    let t = targets(13, 1, 11).mapv(|v| (v > 0.5) as u8 as f64);
    check_gradients(&model, (inputs(13, 4, 12) * 2.0).view(), t.view());
}

/// A graph: a skip connection, a concatenation that includes the raw input, values feeding
/// several layers, one activation input used twice, and one layer applied twice (shared weights).
#[network(
    loss = mse,
    forward = |x| {
        let h = tanh(fc1(x));
        let a = gelu(fc2(h));
        let s = a + h;
        let c = concat(s, fc3(h), x);
        let z = fc4(c);
        let r = leaky_relu(z, 0.2) + fc2(s);
        fc5(relu(r) + sigmoid(z))
    }
)]
struct Graph {
    fc1: Linear<5, 6>,
    fc2: Linear<6, 6>,
    fc3: Linear<6, 4>,
    fc4: Linear<15, 6>,
    fc5: Linear<6, 3>,
}

#[test]
fn skip_connection_concatenation_fan_out_and_shared_layer() {
    let model = Graph::<f64>::init(13);
    check_gradients(&model, inputs(7, 5, 14).view(), targets(7, 3, 15).view());
}

/// Activation fields used in an explicit forward, and a value added to itself.
#[network(
    loss = softmax_cross_entropy,
    forward = |input| {
        let h = act(fc1(input));
        let twice = h + h;
        fc2(concat(twice, act(fc3(h))))
    }
)]
struct Fields {
    fc1: Linear<3, 5>,
    act: LeakyRelu<0.3>,
    fc3: Linear<5, 2>,
    fc2: Linear<7, 4>,
}

#[test]
fn activation_fields_in_a_graph_and_a_value_added_to_itself() {
    let model = Fields::<f64>::init(16);
    check_gradients(&model, inputs(6, 3, 17).view(), labels(6, 4, 18).view());
}
