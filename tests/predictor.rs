//! `Predictor`: the values of `Network::forward` and `Network::loss`, from buffers made once, on
//! one thread or two, for any batch up to its maximum; and a clear error for bad input.

use std::sync::Arc;

use hdm::gemm::Pool;
use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<300, 200>,
    act1: Relu,
    fc2: Linear<200, 100>,
    act2: Tanh,
    fc3: Linear<100, 10>,
}

fn bits(a: ndarray::ArrayView2<'_, f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn a_predictor_gives_the_values_of_forward_and_loss() {
    let mut rng = Rng::new(8);
    let x = Array2::from_shape_simple_fn((150, 300), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(150, || rng.below(10));
    let model = Mlp::<f32>::init(3);
    for threads in [1, 2] {
        let mut predictor = model.predictor(150).with_pool(Arc::new(Pool::new(threads)));
        assert_eq!(predictor.max_batch(), 150);
        // largest batch first, then smaller ones reusing the same buffers
        for rows in [150, 1, 37, 150] {
            let (xs, ls) = (x.slice(s![..rows, ..]), labels.slice(s![..rows]));
            let want = model.forward(xs).unwrap();
            let got = predictor.forward(&model, xs).unwrap();
            assert_eq!(got.dim(), (rows, 10));
            assert_eq!(bits(got), bits(want.view()), "{rows} rows on {threads} threads");
            let loss = predictor.loss(&model, xs, ls).unwrap();
            assert_eq!(loss.to_bits(), model.loss(xs, ls).unwrap().to_bits(), "{rows} rows");
        }
    }
    // The predictor follows the model it is given: after a training step, the new weights.
    let mut trained = model.clone();
    let mut trainer = trained.trainer(Sgd::new(0.1), 150);
    trainer.step(&mut trained, x.view(), labels.view()).unwrap();
    let mut predictor = model.predictor(150);
    let before = predictor.forward(&model, x.view()).unwrap().to_owned();
    let after = predictor.forward(&trained, x.view()).unwrap();
    assert_ne!(bits(before.view()), bits(after));
    assert_eq!(bits(after), bits(trained.forward(x.view()).unwrap().view()));
}

#[test]
fn a_predictor_rejects_bad_input_with_a_message() {
    let model = Mlp::<f32>::init(0);
    let mut predictor = model.predictor(10);
    let too_many = Array2::<f32>::zeros((11, 300));
    let err = predictor.forward(&model, too_many.view()).unwrap_err().to_string();
    assert!(err.contains("11") && err.contains("10"), "{err}");
    let narrow = Array2::<f32>::zeros((4, 299));
    let err = predictor.forward(&model, narrow.view()).unwrap_err().to_string();
    assert!(err.contains("Mlp") && err.contains("300") && err.contains("299"), "{err}");
    let empty = Array2::<f32>::zeros((0, 300));
    let err = predictor.forward(&model, empty.view()).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let x = Array2::<f32>::zeros((4, 300));
    let err = predictor.loss(&model, x.view(), Array1::from_elem(3, 0).view()).unwrap_err().to_string();
    assert!(err.contains('3') && err.contains('4'), "{err}");
    let err = predictor.loss(&model, x.view(), Array1::from_elem(4, 10).view()).unwrap_err().to_string();
    assert!(err.contains("10"), "{err}");
}
