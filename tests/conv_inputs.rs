//! A network of images takes a batch as rows `[batch, C * H * W]` or as PyTorch's 4-D
//! `[batch, C, H, W]`: the same results, and errors (not panics) for a wrong shape or a layout that
//! is not NCHW.

use hdm::prelude::*;
use ndarray::{Array1, Array4, Axis};

#[network(input = [3, 5, 4], loss = softmax_cross_entropy)]
struct Net {
    conv: Conv2d<3, 4, 3, 1, 1>,
    bn: BatchNorm2d<4>,
    act: Relu,
    pool: AvgPool2d<2>,
    flat: Flatten,
    fc: Linear<16, 3>,
}

#[test]
fn four_dimensional_batches_are_the_rows_of_the_same_memory() {
    let mut rng = Rng::new(1);
    let images = Array4::from_shape_simple_fn((6, 3, 5, 4), || rng.normal() as f32);
    let rows = images.to_shape((6, 60)).unwrap().to_owned();
    let labels = Array1::from_shape_simple_fn(6, || rng.below(3));
    let (mut a, mut b) = (Net::<f32>::init(2), Net::<f32>::init(2));
    let (mut ta, mut tb) = (a.trainer(Sgd::new(0.1), 6), b.trainer(Sgd::new(0.1), 6));
    for _ in 0..3 {
        let la = ta.step(&mut a, images.view(), labels.view()).unwrap();
        let lb = tb.step(&mut b, rows.view(), labels.view()).unwrap();
        assert_eq!(la.to_bits(), lb.to_bits());
    }
    assert_eq!(a, b);
    assert_eq!(a.forward(images.view()).unwrap(), a.forward(rows.view()).unwrap());
    let mut p = a.predictor(6);
    assert_eq!(p.forward(&a, images.view()).unwrap().to_owned(), a.forward(rows.view()).unwrap());
    assert_eq!(a.loss(images.view(), labels.view()).unwrap(), a.loss(rows.view(), labels.view()).unwrap());
}

#[test]
fn wrong_shapes_and_layouts_are_errors() {
    let model = Net::<f32>::init(0);
    let err = model.forward(Array4::<f32>::zeros((2, 3, 4, 5)).view()).unwrap_err().to_string();
    assert!(err.contains("Net") && err.contains("[batch, 3, 5, 4]") && err.contains("[2, 3, 4, 5]"), "{err}");
    // NHWC memory seen as NCHW: the images are not rows of memory.
    let nhwc = Array4::<f32>::zeros((2, 5, 4, 3));
    let permuted = nhwc.view().permuted_axes([0, 3, 1, 2]);
    let err = model.forward(permuted).unwrap_err().to_string();
    assert!(err.contains("NCHW") && err.contains("as_standard_layout"), "{err}");
    let standard = permuted.as_standard_layout();
    assert_eq!(model.forward(standard.view()).unwrap().dim(), (2, 3));
    // A slice of the batch is fine (the images stay rows).
    let big = Array4::<f32>::zeros((5, 3, 5, 4));
    assert_eq!(model.forward(big.slice_axis(Axis(0), (1..4).into())).unwrap().dim(), (3, 3));
}
