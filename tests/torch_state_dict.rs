//! PyTorch's weights into hdm (`hdm::checkpoint::load_state_dict`): a state dict that PyTorch saved
//! with `safetensors.torch.save_file` in f16, bf16, f32 and f64 loads into an hdm network of the
//! same structure, and gives PyTorch's logits (fixtures written once by
//! `tests/fixtures/torch/make_state_dict_fixtures.py`). A file of another network is an error
//! listing every name, shape and dtype that differs, and changes nothing.

mod common;

use common::fixture::{close_to, Fixture};

use hdm::checkpoint::{load_state_dict, Checkpoint};
use hdm::prelude::*;
use ndarray::Array2;

/// PyTorch's `Small` of the fixture script.
#[network(input = [1, 6, 6], loss = softmax_cross_entropy)]
struct Small {
    conv: Conv2d<1, 2, 3>,
    bn: BatchNorm2d<2>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<8, 3>,
}

/// The same layers with a wider classifier and another name for the normalisation.
#[network(input = [1, 6, 6], loss = softmax_cross_entropy)]
struct Other {
    conv: Conv2d<1, 2, 3>,
    norm: BatchNorm2d<2>,
    act: Relu,
    pool: MaxPool2d<2>,
    flat: Flatten,
    fc: Linear<8, 4>,
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch").join(name)
}

fn logits<T: hdm::Float>(model: &Small<T>, x: &[f64]) -> Vec<f64> {
    let x = Array2::from_shape_vec((4, 36), x.iter().map(|&v| T::of(v)).collect()).unwrap();
    model.forward(x.view()).unwrap().iter().map(|v| hdm::Float::to_f64(*v)).collect()
}

#[test]
fn pytorch_state_dicts_of_every_float_width_load_and_give_pytorchs_logits() {
    let expected = Fixture::open("state_dict_expected.safetensors");
    let x = expected.get("x");
    for dtype in ["f16", "bf16", "f32", "f64"] {
        let file = fixture(&format!("state_dict_{dtype}.safetensors"));
        let reference = expected.get(&format!("logits_{dtype}"));
        // In f64 every stored value converts exactly: the logits agree to rounding.
        let mut model = Small::<f64>::zeros();
        load_state_dict(&file, &mut model).unwrap();
        assert_eq!(model.bn.num_batches_tracked(), 4, "{dtype}: the int64 counter");
        close_to(&format!("{dtype} into f64"), &logits(&model, x), reference, 1e-12);
        // In f32: f16, bf16 and f32 values are exact, f64 ones rounded.
        let mut model = Small::<f32>::zeros();
        load_state_dict(&file, &mut model).unwrap();
        close_to(&format!("{dtype} into f32"), &logits(&model, x), reference, 1e-5);
    }
    // The narrow files hold other values than the f64 one: the logits differ, so the test above
    // would notice a conversion that ignored the dtype.
    let (half, double) = (expected.get("logits_f16"), expected.get("logits_f64"));
    assert!(half.iter().zip(double).any(|(a, b)| (a - b).abs() > 1e-4));
}

#[test]
fn another_networks_state_dict_is_an_error_listing_the_differences() {
    let file = fixture("state_dict_f16.safetensors");
    let mut other = Other::<f32>::init(3);
    let before: Vec<Vec<f32>> = other.state().iter().map(|p| p.data.to_vec()).collect();
    let e = load_state_dict(&file, &mut other).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.starts_with(&file.display().to_string()), "{e}");
    for line in [
        "different shape: fc.weight is [3, 8] in the file, [4, 8] here",
        "different shape: fc.bias is [3] in the file, [4] here",
        "missing: norm.weight [2] F32",
        "missing: norm.running_var [2] F32",
        "missing: norm.num_batches_tracked [] I64",
        "unexpected: bn.weight [2] F16",
        "unexpected: bn.num_batches_tracked [] I64",
    ] {
        assert!(e.contains(line), "{line:?} in {e}");
    }
    let after: Vec<Vec<f32>> = other.state().iter().map(|p| p.data.to_vec()).collect();
    assert_eq!(before, after, "nothing changed");
    // The strict, same-dtype load of hdm's own checkpoints still refuses another dtype.
    let mut small = Small::<f32>::zeros();
    let e = Checkpoint::open(&file).unwrap().load_params(&mut small).unwrap_err().to_string();
    assert!(e.contains("different dtype: conv.weight is F16 in the file, F32 here"), "{e}");
}
