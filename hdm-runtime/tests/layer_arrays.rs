//! `from_arrays` of the layers with parameters: the arrays are taken as given, and a weight or a
//! bias of the wrong shape (or a bias given to a `NoBias` layer, or missing from one with bias)
//! is an error naming the layer, the tensor and both shapes.

use hdm_runtime::ndarray::{Array1, Array2, Array4};
use hdm_runtime::{Conv2d, ConvTranspose2d, Linear, NoBias};

fn message<T>(r: hdm_runtime::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn linear_arrays() {
    let w = Array2::from_shape_fn((3, 2), |(i, j)| (10 * i + j) as f32);
    let l = Linear::<f32, 2, 3>::from_arrays(w.clone(), Some(Array1::from_vec(vec![1.0, 2.0, 3.0]))).unwrap();
    assert_eq!(l.weight_slice(), &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    assert_eq!(l.bias_slice(), &[1.0, 2.0, 3.0]);
    // A transposed (column-major) weight is stored row-major.
    let l = Linear::<f32, 2, 3>::from_arrays(w.t().to_owned().reversed_axes(), Some(Array1::zeros(3))).unwrap();
    assert_eq!(l.weight_slice(), &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);

    assert_eq!(
        message(Linear::<f32, 2, 3>::from_arrays(Array2::zeros((2, 3)), Some(Array1::zeros(3)))),
        "Linear weight: expected [3, 2], got [2, 3]"
    );
    assert_eq!(
        message(Linear::<f32, 2, 3>::from_arrays(w.clone(), Some(Array1::zeros(2)))),
        "Linear bias: expected [3], got [2]"
    );
    assert_eq!(message(Linear::<f32, 2, 3>::from_arrays(w.clone(), None)), "Linear bias: expected [3], got no bias");
    assert_eq!(
        message(Linear::<f32, 2, 3, NoBias>::from_arrays(w.clone(), Some(Array1::zeros(3)))),
        "Linear bias: expected no bias, got [3]"
    );
    assert!(Linear::<f32, 2, 3, NoBias>::from_arrays(w, None).unwrap().bias_slice().is_empty());
}

#[test]
fn conv_arrays() {
    let w = Array4::from_shape_fn((4, 2, 3, 3), |(o, i, h, x)| (1000 * o + 100 * i + 10 * h + x) as f32);
    let c = Conv2d::<f32, 2, 4, 3>::from_arrays(w.clone(), Some(Array1::zeros(4))).unwrap();
    assert_eq!(&c.weight_slice()[..4], &[0.0, 1.0, 2.0, 10.0]);
    assert_eq!(c.weight_slice()[3 * 3 * 2], 1000.0);

    assert_eq!(
        message(Conv2d::<f32, 2, 4, 3>::from_arrays(Array4::zeros((2, 4, 3, 3)), Some(Array1::zeros(4)))),
        "Conv2d weight: expected [4, 2, 3, 3], got [2, 4, 3, 3]"
    );
    assert_eq!(
        message(Conv2d::<f32, 2, 4, 3, 1, 0, NoBias>::from_arrays(w.clone(), Some(Array1::zeros(4)))),
        "Conv2d bias: expected no bias, got [4]"
    );
    // The transposed convolution's weight is `[IN, OUT, K, K]`, its bias `[OUT]`.
    let t = ConvTranspose2d::<f32, 4, 2, 3>::from_arrays(w.clone(), Some(Array1::zeros(2))).unwrap();
    assert_eq!(t.weight_slice()[3 * 3 * 2], 1000.0);
    assert_eq!(
        message(ConvTranspose2d::<f32, 4, 2, 3>::from_arrays(w.clone(), Some(Array1::zeros(4)))),
        "ConvTranspose2d bias: expected [2], got [4]"
    );
    assert_eq!(
        message(ConvTranspose2d::<f32, 4, 2, 3>::from_arrays(w, None)),
        "ConvTranspose2d bias: expected [2], got no bias"
    );
}
