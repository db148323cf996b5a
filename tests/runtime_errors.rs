//! Bad input to a compiled network is an `Err` that says what was expected, never a panic.

use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Classifier {
    fc1: Linear<6, 8>,
    act: Relu,
    fc2: Linear<8, 3>,
}

#[network(loss = mse)]
struct Regressor {
    fc: Linear<4, 2>,
}

#[test]
fn wrong_input_width_is_an_error_naming_the_network_and_the_shapes() {
    let mut model = Classifier::<f32>::init(0);
    let x = Array2::<f32>::zeros((5, 7));
    let labels = Array1::<usize>::zeros(5);
    let msg = model.forward(x.view()).unwrap_err().to_string();
    assert_eq!(msg, "input of Classifier: expected [batch, 6], got [5, 7]");
    let mut trainer = model.trainer(Sgd::new(0.1), 10);
    let msg = trainer.step(&mut model, x.view(), labels.view()).unwrap_err().to_string();
    assert_eq!(msg, "input of Classifier: expected [batch, 6], got [5, 7]");
}

#[test]
fn a_batch_larger_than_the_trainer_is_an_error() {
    let mut model = Classifier::<f32>::init(0);
    let mut trainer = model.trainer(Sgd::new(0.1), 4);
    let x = Array2::<f32>::zeros((5, 6));
    let labels = Array1::<usize>::zeros(5);
    let err = trainer.step(&mut model, x.view(), labels.view()).unwrap_err();
    assert!(matches!(err, Error::BatchTooLarge { batch: 5, max: 4 }), "{err}");
    assert!(err.to_string().contains("larger than the 4 this trainer was made for"));
    // Any batch up to the maximum works, and an empty one is refused.
    for n in 1..=4 {
        let x = Array2::<f32>::zeros((n, 6));
        trainer.step(&mut model, x.view(), Array1::<usize>::zeros(n).view()).unwrap();
    }
    let x = Array2::<f32>::zeros((0, 6));
    assert!(trainer.step(&mut model, x.view(), Array1::<usize>::zeros(0).view()).is_err());
}

#[test]
fn labels_out_of_range_or_of_the_wrong_count_are_errors() {
    let model = Classifier::<f64>::init(0);
    let x = Array2::<f64>::zeros((3, 6));
    let err = model.loss(x.view(), Array1::from_vec(vec![0, 3, 1]).view()).unwrap_err();
    assert_eq!(err.to_string(), "label 3 at row 1 is out of range: the network has 3 classes");
    let err = model.gradients(x.view(), Array1::from_vec(vec![0, 1]).view()).unwrap_err();
    assert_eq!(err.to_string(), "labels: expected 3 labels (one per input row), got 2");
}

#[test]
fn targets_of_the_wrong_shape_are_errors() {
    let model = Regressor::<f64>::init(0);
    let x = Array2::<f64>::zeros((3, 4));
    let err = model.loss(x.view(), Array2::<f64>::zeros((3, 3)).view()).unwrap_err();
    assert_eq!(err.to_string(), "targets: expected [3, 2], got [3, 3]");
}

#[test]
fn column_major_and_strided_inputs_give_the_same_result() {
    let model = Classifier::<f64>::init(3);
    let x = Array2::from_shape_fn((5, 6), |(i, j)| (i as f64 - j as f64) * 0.3);
    let expected = model.forward(x.view()).unwrap();
    let fortran = x.t().to_owned().reversed_axes(); // same values, column-major memory
    assert_eq!(model.forward(fortran.view()).unwrap(), expected);
    let wide = Array2::from_shape_fn((5, 12), |(i, j)| if j % 2 == 0 { x[[i, j / 2]] } else { f64::NAN });
    let strided = wide.slice(ndarray::s![.., ..;2]);
    assert_eq!(model.forward(strided).unwrap(), expected);
}

#[network(
    loss = mse,
    forward = |x| {
        let h = relu(fc1(x)) + x;
        fc2(concat(h, sigmoid(x)))
    }
)]
struct ReadsInputDirectly {
    fc1: Linear<3, 3>,
    fc2: Linear<6, 2>,
}

#[test]
fn inputs_read_by_elementwise_steps_may_be_strided_too() {
    let model = ReadsInputDirectly::<f64>::init(5);
    let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f64 * 0.7 - j as f64) * 0.4);
    let t = Array2::<f64>::zeros((4, 2));
    let expected = model.gradients(x.view(), t.view()).unwrap();
    let fortran = x.t().to_owned().reversed_axes();
    assert_eq!(model.gradients(fortran.view(), t.view()).unwrap(), expected);
}

/// Buffers for a batch whose size overflows, or that no machine's memory holds (2^50 bytes, past
/// the 2^47 bytes of a process's address space), are an `Err` naming the network, not an abort.
#[test]
fn huge_batches_are_errors_not_aborts() {
    let model = Classifier::<f32>::init(0);
    let e = model.try_trainer(Sgd::new(0.1), usize::MAX).err().expect("an error").to_string();
    assert!(e.starts_with("Classifier: buffers for 18446744073709551615 rows") && e.contains("overflow usize"), "{e}");
    let e = model.try_predictor(usize::MAX / 16).err().expect("an error").to_string();
    assert!(e.contains("larger than any memory"), "{e}");
    let rows = 1usize << 46; // 2^46 rows of 6 + 8 + 3 f32: far beyond 2^47 bytes
    let e = model.try_trainer(Adam::new(0.1), rows).err().expect("an error").to_string();
    assert!(e.contains("cannot be allocated") && e.ends_with("use a smaller batch"), "{e}");
    // A forward pass over a huge view that costs no memory itself (one row, broadcast).
    let row = Array2::<f32>::zeros((1, 6));
    let huge = row.broadcast((rows, 6)).unwrap();
    let e = model.forward(huge).unwrap_err().to_string();
    assert!(e.contains("cannot be allocated"), "{e}");
    // Ordinary sizes still work.
    assert!(model.try_trainer(Sgd::new(0.1), 128).is_ok() && model.try_predictor(128).is_ok());
}

/// One layer of 2^36 weights: the largest the compiler takes (256 GiB of `f32`).
#[network(loss = mse)]
struct Huge {
    wide: Linear<262144, 262144, NoBias>,
}

/// Parameters that no memory holds: `try_init` and `try_zeros` return an `Err` naming the network
/// and the layer (and `Trainer::try_new` passes it on for the gradient), instead of an abort.
/// Linux refuses such a request unless overcommit is set to "always" (`vm.overcommit_memory = 1`),
/// in which case the allocation would succeed and filling it would exhaust the machine: then
/// the test says so and checks nothing.
#[test]
fn parameters_that_no_memory_holds_are_errors_not_aborts() {
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if overcommit.trim() != "0" && overcommit.trim() != "2" {
        eprintln!("vm.overcommit_memory = {overcommit:?}: a 256 GiB allocation may succeed here; not tried");
        return;
    }
    let e = Huge::<f32>::try_init(0).map(drop).expect_err("an error").to_string();
    assert!(
        e.starts_with("Huge.wide: Linear weight: 68719476736 parameters (274877906944 bytes) cannot be allocated"),
        "{e}"
    );
    let e = Huge::<f64>::try_zeros().map(drop).expect_err("an error").to_string();
    assert!(e.starts_with("Huge.wide: Linear weight: 68719476736 parameters (549755813888 bytes)"), "{e}");
    // Ordinary networks are unchanged: try_init gives init's weights.
    assert_eq!(Classifier::<f32>::try_init(3).unwrap().params()[0].data, Classifier::<f32>::init(3).params()[0].data);
}

/// A label out of range names the file it came from, before any step (issue 16, class 6).
#[test]
fn a_label_out_of_range_names_its_file() {
    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
        v.extend_from_slice(data);
        v
    }
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = (dir.path().join("images.idx"), dir.path().join("labels.idx"));
    std::fs::write(&images, idx(&[4, 2, 3], &[7; 24])).unwrap();
    std::fs::write(&labels, idx(&[4], &[0, 2, 3, 1])).unwrap();
    let data = hdm::data::Dataset::<f32>::from_idx_files(&images, &labels).unwrap();
    let mut model = Classifier::<f32>::init(0);
    let before = model.clone();
    let mut trainer = model.trainer(Sgd::new(0.1), 2);
    let config = hdm::train::FitConfig { epochs: 1, ..Default::default() };
    let e = hdm::train::fit(&mut trainer, &mut model, &data, None, &config, &mut []).unwrap_err().to_string();
    assert_eq!(e, format!("{}: label 3 at row 2 is out of range: the network has 3 classes", labels.display()));
    assert_eq!((model, trainer.steps()), (before, 0));
}
