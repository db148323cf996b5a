//! Inputs given as views of part of a user's array (issue 16, class 7): a network reads only the
//! view's own elements, so another thread may write the array's other columns meanwhile (the
//! runtime's `MatRef` holds a pointer, not a slice over the view's whole extent, which would
//! claim those columns too).

use hdm::prelude::*;
use ndarray::{s, Array2, Axis};

#[network(input = [1, 4, 4], loss = mse)]
struct Small {
    conv: Conv2d<1, 2, 3>,
    bn: BatchNorm2d<2>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<2, 3>,
}

#[test]
fn a_column_split_is_read_while_the_other_half_is_written() {
    let mut rng = Rng::new(1);
    let mut data = Array2::<f32>::from_shape_simple_fn((6, 32), || rng.uniform_in(-1.0, 1.0) as f32);
    let left_copy = data.slice(s![.., ..16]).to_owned();
    let model = Small::<f32>::init(2);
    let expected = model.forward(left_copy.view()).unwrap();
    let mut trainer = model.clone().trainer(Sgd::new(0.1), 6);
    let mut trained = model.clone();
    let mut reference = model.clone();
    let mut reference_trainer = model.clone().trainer(Sgd::new(0.1), 6);
    let y = Array2::<f32>::zeros((6, 3));
    reference_trainer.step(&mut reference, left_copy.view(), y.view()).unwrap();
    let (left, mut right) = data.view_mut().split_at(Axis(1), 16);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for k in 0..2000 {
                right.mapv_inplace(|v| v + k as f32);
            }
        });
        // Strided (row stride 32) views of the left half, while the right half changes.
        for _ in 0..20 {
            assert_eq!(model.forward(left.view()).unwrap(), expected);
        }
        trainer.step(&mut trained, left.view(), y.view()).unwrap();
    });
    assert_eq!(trained, reference);
}
