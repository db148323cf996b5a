//! Checkpoints that cannot be trusted are refused (issue 16, class 5): a checkpoint of another
//! network whose tensors have the same shapes, data changed after saving (a checksum), optimizer
//! state no run can produce, a step count at the counter's limit. Each leaves the network and
//! the trainer as they were.

use hdm::checkpoint::{optimizer_path, Checkpoint, Metadata, NoParameters};
use hdm::prelude::*;
use ndarray::{Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Relus {
    fc1: Linear<6, 8>,
    act: Relu,
    fc2: Linear<8, 3>,
}

/// The same tensors, another network.
#[network(loss = softmax_cross_entropy)]
struct Tanhs {
    fc1: Linear<6, 8>,
    act: Tanh,
    fc2: Linear<8, 3>,
}

fn bits<M: Parameters<f32>>(m: &M) -> Vec<Vec<u32>> {
    m.state().iter().map(|p| p.data.iter().map(|v| v.to_bits()).collect()).collect()
}

/// A model trained for three Adam steps and its checkpoint at `path`.
fn trained(path: &std::path::Path) -> (Relus<f32>, Trainer<f32, Relus<f32>, Adam>) {
    let mut model = Relus::<f32>::init(1);
    let mut trainer = model.trainer(Adam::new(0.01), 8);
    let mut rng = Rng::new(2);
    let x = Array2::from_shape_simple_fn((8, 6), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(8, || rng.below(3));
    for _ in 0..3 {
        trainer.step(&mut model, x.view(), labels.view()).unwrap();
    }
    trainer.save_checkpoint(path, &model, &Metadata::new()).unwrap();
    (model, trainer)
}

#[test]
fn a_checkpoint_of_another_network_with_the_same_shapes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relus.safetensors");
    trained(&path);
    let mut other = Tanhs::<f32>::init(5);
    let mut trainer = other.trainer(Adam::new(0.01), 8);
    let before = bits(&other);
    let e = trainer.load_checkpoint(&path, &mut other).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("the checkpoint is of network `Relus`") && e.contains("not of `Tanhs`"), "{e}");
    assert!(e.contains("act: Relu") && e.contains("act: Tanh"), "{e}");
    assert_eq!(bits(&other), before);
    assert_eq!(trainer.steps(), 0);
    // The same network loads it.
    let mut same = Relus::<f32>::init(5);
    let mut t = same.trainer(Adam::new(0.01), 8);
    t.load_checkpoint(&path, &mut same).unwrap();
    assert_eq!(t.steps(), 3);
}

#[test]
fn changed_data_fail_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let (model, _) = trained(&path);
    let good = std::fs::read(&path).unwrap();
    // Flip one bit in each of several places of the data (after the header).
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for at in [header, header + 1, (header + good.len()) / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let e = Checkpoint::open(&path).unwrap_err().to_string();
        assert!(e.contains("do not match the checksum"), "byte {at}: {e}");
        let mut fresh = Relus::<f32>::init(9);
        let mut t = fresh.trainer(Adam::new(0.01), 8);
        let before = bits(&fresh);
        assert!(t.load_checkpoint(&path, &mut fresh).is_err());
        assert_eq!(bits(&fresh), before);
    }
    std::fs::write(&path, &good).unwrap();
    let mut fresh = Relus::<f32>::init(9);
    Checkpoint::open(&path).unwrap().load_params(&mut fresh).unwrap();
    assert_eq!(bits(&fresh), bits(&model));
}

/// A change to a checkpoint's optimizer tensors and metadata.
type Edit = dyn Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>, &mut Metadata);

/// Rewrites the optimizer file of the checkpoint at `path` (with a valid checksum) after `edit`
/// changes its tensors or metadata.
fn rewrite(path: &std::path::Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>, &mut Metadata)) {
    let opt_path = optimizer_path(path);
    let ck = Checkpoint::open(&opt_path).unwrap();
    let mut meta = ck.metadata().clone();
    let mut extra: Vec<(String, Vec<usize>, Vec<f32>)> =
        ck.names().map(|n| (n.to_string(), ck.shape(n).unwrap().to_vec(), ck.tensor::<f32>(n).unwrap())).collect();
    edit(&mut extra, &mut meta);
    let views = extra.iter().map(|(n, s, d)| (n.clone(), s.clone(), &d[..]));
    hdm::checkpoint::save(&opt_path, &NoParameters, views, &meta).unwrap();
}

#[test]
fn impossible_optimizer_state_and_step_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let cases: [(&str, Box<Edit>); 4] = [
        (
            "optimizer state optim.fc1.weight.exp_avg_sq holds -1 at element 2, where it must be a finite value >= 0",
            Box::new(|t, _| t.iter_mut().find(|(n, ..)| n == "optim.fc1.weight.exp_avg_sq").unwrap().2[2] = -1.0),
        ),
        (
            "optimizer state optim.fc2.bias.exp_avg holds NaN at element 0, where it must be finite",
            Box::new(|t, _| t.iter_mut().find(|(n, ..)| n == "optim.fc2.bias.exp_avg").unwrap().2[0] = f32::NAN),
        ),
        (
            "hdm.step = 18446744073709551615 is not a step count a run can reach",
            Box::new(|_, m| {
                m.insert("hdm.step".into(), u64::MAX.to_string());
            }),
        ),
        (
            "metadata \"hdm.step\" = \"-3\" cannot be read",
            Box::new(|_, m| {
                m.insert("hdm.step".into(), "-3".into());
            }),
        ),
    ];
    for (expected, edit) in cases {
        trained(&path);
        rewrite(&path, edit);
        let mut fresh = Relus::<f32>::init(9);
        let mut t = fresh.trainer(Adam::new(0.01), 8);
        let before = bits(&fresh);
        let e = t.load_checkpoint(&path, &mut fresh).unwrap_err().to_string();
        assert!(e.starts_with(&optimizer_path(&path).display().to_string()) && e.contains(expected), "{e}");
        assert_eq!((bits(&fresh), t.steps()), (before, 0));
    }
    // Unedited, it loads.
    trained(&path);
    rewrite(&path, |_, _| {});
    let mut fresh = Relus::<f32>::init(9);
    fresh.trainer(Adam::new(0.01), 8).load_checkpoint(&path, &mut fresh).unwrap();
}

/// The two files of a checkpoint: the model alone (PyTorch's `state_dict`, nothing else) and
/// the optimizer's state with the training metadata, tied to the model file by its checksum.
#[test]
fn a_checkpoint_is_a_model_file_and_an_optimizer_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adam.safetensors");
    let (model, _) = trained(&path);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(files, ["adam.optim.safetensors", "adam.safetensors"]);
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.names().collect::<Vec<_>>(), ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert_eq!(ck.get("hdm.network"), Some("Relus"));
    assert_eq!(ck.get("hdm.step"), None, "training metadata lives in the optimizer file");
    // A plain model loads it strictly, as torch's load_state_dict(strict=True) does.
    let mut plain = Relus::<f32>::zeros();
    ck.load(&mut plain, std::iter::empty::<hdm::ParamMut<f32>>()).unwrap();
    assert_eq!(bits(&plain), bits(&model));
    let opt = Checkpoint::open(optimizer_path(&path)).unwrap();
    assert!(opt.names().all(|n| n.starts_with("optim.")), "{:?}", opt.names().collect::<Vec<_>>());
    assert_eq!(opt.get("hdm.step"), Some("3"));
    assert_eq!(opt.get("hdm.optimizer"), Some("adam"));
    assert_eq!(opt.get(hdm::checkpoint::MODEL_CHECKSUM_KEY), ck.get(hdm::checkpoint::CHECKSUM_KEY));
}

/// A save interrupted at any point leaves a pair that loads: the previous optimizer file is kept
/// as `.prev` until the new model file is in place. Files of different saves never pair up.
#[test]
fn an_interrupted_save_leaves_a_pair_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let opt = optimizer_path(&path);
    let prev = dir.path().join("ck.optim.safetensors.prev");
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    // Step 3 saved, kept aside; then step 6 saved over it.
    let (model3, mut trainer) = trained(&path);
    for f in [&path, &opt] {
        std::fs::copy(f, old.join(f.file_name().unwrap())).unwrap();
    }
    let mut model = model3.clone();
    let x = Array2::from_shape_fn((8, 6), |(i, j)| (i * 6 + j) as f32 * 0.01);
    let labels = Array1::from_shape_fn(8, |i| i % 3);
    for _ in 0..3 {
        trainer.step(&mut model, x.view(), labels.view()).unwrap();
    }
    trainer.save_checkpoint(&path, &model, &Metadata::new()).unwrap();
    assert!(!prev.exists(), "the .prev file is removed once the save is complete");
    let (old_model, old_opt) = (old.join("ck.safetensors"), old.join("ck.optim.safetensors"));
    let resume = |expected_steps: u64, expected: &Relus<f32>| {
        let mut fresh = Relus::<f32>::init(9);
        let mut t = fresh.trainer(Adam::new(0.01), 8);
        t.load_checkpoint(&path, &mut fresh).unwrap();
        assert_eq!((t.steps(), bits(&fresh)), (expected_steps, bits(expected)));
    };
    resume(6, &model);
    // Killed after the old optimizer file was moved aside: old model, .prev.
    std::fs::copy(&old_model, &path).unwrap();
    std::fs::remove_file(&opt).unwrap();
    std::fs::copy(&old_opt, &prev).unwrap();
    resume(3, &model3);
    // Killed after the new optimizer file was written: old model, new optimizer file, .prev.
    trainer.save_checkpoint(dir.path().join("new.safetensors"), &model, &Metadata::new()).unwrap();
    std::fs::copy(dir.path().join("new.optim.safetensors"), &opt).unwrap();
    resume(3, &model3);
    // Without the .prev, nothing pairs: an error naming the model file and the optimizer file.
    std::fs::remove_file(&prev).unwrap();
    let mut fresh = Relus::<f32>::init(9);
    let mut t = fresh.trainer(Adam::new(0.01), 8);
    let before = bits(&fresh);
    let e = t.load_checkpoint(&path, &mut fresh).unwrap_err().to_string();
    assert!(
        e.starts_with(&path.display().to_string())
            && e.contains(&format!("the optimizer state in {} was saved with another version", opt.display())),
        "{e}"
    );
    assert_eq!((bits(&fresh), t.steps()), (before, 0));
    std::fs::remove_file(&opt).unwrap();
    let e = t.load_checkpoint(&path, &mut fresh).unwrap_err().to_string();
    assert!(e.contains("no optimizer state beside it") && e.contains("ck.optim.safetensors is missing"), "{e}");
}

/// A single file holding the model and its optimizer's state, as hdm saved checkpoints before
/// the split, still resumes.
#[test]
fn a_single_file_checkpoint_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let (model, trainer) = trained(&path);
    let single = dir.path().join("single.safetensors");
    let meta = Checkpoint::open(optimizer_path(&path)).unwrap().metadata().clone();
    hdm::checkpoint::save(&single, &model, trainer.optimizer_tensors(), &meta).unwrap();
    let mut fresh = Relus::<f32>::init(9);
    let mut t = fresh.trainer(Adam::new(0.01), 8);
    t.load_checkpoint(&single, &mut fresh).unwrap();
    assert_eq!((t.steps(), bits(&fresh)), (3, bits(&model)));
    let state = |t: &Trainer<f32, Relus<f32>, Adam>| -> Vec<Vec<u32>> {
        t.optimizer_tensors().iter().map(|p| p.data.iter().map(|v| v.to_bits()).collect()).collect()
    };
    assert_eq!(state(&t), state(&trainer));
}
