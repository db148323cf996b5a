//! Checkpoints of convolutional networks: parameters, batch normalisation's running statistics
//! and `num_batches_tracked` are saved under PyTorch's names and restored exactly, a resumed run
//! gives the bits of an uninterrupted one, and (when torch is installed) the model file loads
//! into the equivalent `torch.nn` module with `load_state_dict(strict=True)` and gives the same
//! outputs.

use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(input = [1, 10, 10], loss = softmax_cross_entropy)]
struct Small {
    conv1: Conv2d<1, 4, 3>,
    bn1: BatchNorm2d<4>,
    act1: Relu,
    pool1: MaxPool2d<2>,
    up: ConvTranspose2d<4, 3, 2, 2>,
    act2: LeakyRelu<0.1>,
    pool2: AvgPool2d<2>,
    flat: Flatten,
    fc1: Linear<48, 16>,
    bn2: BatchNorm1d<16>,
    act3: Tanh,
    fc2: Linear<16, 5>,
}

fn data() -> (Array2<f32>, Array1<usize>) {
    let mut rng = Rng::new(3);
    (Array2::from_shape_simple_fn((24, 100), || rng.normal() as f32), Array1::from_shape_simple_fn(24, || rng.below(5)))
}

fn bits(m: &Small<f32>) -> Vec<u32> {
    m.state().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect()
}

#[test]
fn a_resumed_run_gives_the_bits_of_an_uninterrupted_one() {
    let (x, y) = data();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    let batches = |i: usize| (x.slice(s![i % 3 * 8..i % 3 * 8 + 8, ..]), y.slice(s![i % 3 * 8..i % 3 * 8 + 8]));

    let mut straight = Small::<f32>::init(1);
    let mut trainer = straight.trainer(Adam::new(1e-2), 8);
    for i in 0..6 {
        let (xb, yb) = batches(i);
        trainer.step(&mut straight, xb, yb).unwrap();
    }

    let mut first = Small::<f32>::init(1);
    let mut trainer = first.trainer(Adam::new(1e-2), 8);
    for i in 0..3 {
        let (xb, yb) = batches(i);
        trainer.step(&mut first, xb, yb).unwrap();
    }
    trainer.save_checkpoint(&path, &first, &Default::default()).unwrap();

    let mut resumed = Small::<f32>::zeros();
    let mut trainer = resumed.trainer(Adam::new(1e-2), 8);
    trainer.load_checkpoint(&path, &mut resumed).unwrap();
    assert_eq!(bits(&resumed), bits(&first), "the checkpoint did not restore the state");
    assert_eq!(
        resumed.counters(),
        vec![("bn1.num_batches_tracked".to_string(), 3), ("bn2.num_batches_tracked".to_string(), 3)]
    );
    for i in 3..6 {
        let (xb, yb) = batches(i);
        trainer.step(&mut resumed, xb, yb).unwrap();
    }
    assert_eq!(bits(&resumed), bits(&straight));
    assert_eq!(resumed.counters(), straight.counters());
}

#[test]
fn the_file_holds_pytorchs_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = Small::<f32>::init(2);
    hdm::checkpoint::save_params(&path, &model, &Default::default()).unwrap();
    let ck = hdm::checkpoint::Checkpoint::open(&path).unwrap();
    let names: Vec<&str> = ck.names().collect();
    let expected = [
        "bn1.bias",
        "bn1.num_batches_tracked",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.weight",
        "bn2.bias",
        "bn2.num_batches_tracked",
        "bn2.running_mean",
        "bn2.running_var",
        "bn2.weight",
        "conv1.bias",
        "conv1.weight",
        "fc1.bias",
        "fc1.weight",
        "fc2.bias",
        "fc2.weight",
        "up.bias",
        "up.weight",
    ];
    assert_eq!(names, expected);
    assert_eq!(ck.shape("conv1.weight"), Some(&[4, 1, 3, 3][..]));
    assert_eq!(ck.shape("up.weight"), Some(&[4, 3, 2, 2][..]), "ConvTranspose2d keeps [in, out, k, k]");
    assert_eq!(ck.shape("bn1.num_batches_tracked"), Some(&[][..]));
    assert_eq!(ck.dtype("bn1.num_batches_tracked").as_deref(), Some("I64"));

    // A checkpoint of another network is refused, listing the differences, and changes nothing.
    let mut other = Small::<f32>::init(3);
    let before = bits(&other);
    let wrong = hdm::checkpoint::Checkpoint::open(&path).unwrap();
    #[network(input = [1, 10, 10], loss = softmax_cross_entropy)]
    struct Other {
        conv1: Conv2d<1, 4, 3>,
        bn1: BatchNorm2d<4>,
        flat: Flatten,
        fc1: Linear<256, 5>,
    }
    let mut o = Other::<f32>::init(0);
    let err = wrong.load_params(&mut o).unwrap_err().to_string();
    assert!(err.contains("different shape: fc1.weight"), "{err}");
    assert!(err.contains("unexpected: bn2.num_batches_tracked [] I64"), "{err}");
    wrong.load_params(&mut other).unwrap();
    assert_ne!(bits(&other), before);
    assert_eq!(bits(&other), bits(&model));
}

/// The Python lines of the README, run when torch is installed (CI need not have it).
#[test]
fn pytorch_loads_the_model_strictly_and_agrees() {
    let probe = std::process::Command::new("python3").args(["-c", "import torch, safetensors"]).output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        eprintln!("skipped: python3 with torch and safetensors is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (model_path, x_path, y_path) =
        (dir.path().join("small.safetensors"), dir.path().join("x.bin"), dir.path().join("y.bin"));
    // A trained model: running statistics and counters that are not the initial ones.
    let (x, y) = data();
    let mut model = Small::<f32>::init(4);
    let mut trainer = model.trainer(Sgd::new(0.05).momentum(0.9), 24);
    for _ in 0..5 {
        trainer.step(&mut model, x.view(), y.view()).unwrap();
    }
    // The trainer's checkpoint, as every example writes it: its model file is the state dict.
    trainer.save_checkpoint(&model_path, &model, &Default::default()).unwrap();
    let out = model.forward(x.view()).unwrap();
    let le = |a: &[f32]| a.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(&x_path, le(x.as_slice().unwrap())).unwrap();
    std::fs::write(&y_path, le(out.as_slice().unwrap())).unwrap();
    let script = r#"
import sys, numpy as np, torch, torch.nn as nn
from safetensors.torch import load_file

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.up = nn.ConvTranspose2d(4, 3, 2, 2)
        self.fc1 = nn.Linear(48, 16)
        self.bn2 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 5)
    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.avg_pool2d(nn.functional.leaky_relu(self.up(x), 0.1), 2)
        return self.fc2(torch.tanh(self.bn2(self.fc1(x.flatten(1)))))

model = Small()
model.load_state_dict(load_file(sys.argv[1]), strict=True)
model.eval()
assert int(model.bn1.num_batches_tracked) == 5, model.bn1.num_batches_tracked
x = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4").reshape(24, 1, 10, 10))
want = torch.from_numpy(np.fromfile(sys.argv[3], dtype="<f4").reshape(24, 5))
with torch.no_grad():
    got = model(x)
err = (got - want).abs().max().item()
assert err < 1e-4, err
print("max difference", err)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&model_path)
        .arg(&x_path)
        .arg(&y_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "torch refused the checkpoint: {}", String::from_utf8_lossy(&out.stderr));
}
