//! The shortest complete use of hdm: define a network, train it on generated data, watch the
//! loss fall, save the model (`runs/quickstart/model.safetensors`, which PyTorch loads).
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use hdm::prelude::*;
use ndarray::{Array1, Array2};

/// A two-layer classifier of points in the plane by quadrant.
#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<2, 32>,
    act1: Relu,
    fc2: Linear<32, 4>,
}

fn main() -> Result<()> {
    // No flags: it is the shortest program that trains. `--help` says so; anything else is an error.
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" {
            println!("Trains a 2-32-4 classifier of points by quadrant with Adam for 200 steps.\n\nUsage: quickstart");
            return Ok(());
        }
        eprintln!("error: quickstart takes no arguments (got {arg:?}); see --help");
        std::process::exit(2);
    }
    // Data: 512 points, labelled by their quadrant.
    let mut rng = Rng::new(0);
    let x = Array2::from_shape_simple_fn((512, 2), || rng.uniform_in(-1.0, 1.0) as f32);
    let labels: Array1<usize> = x.outer_iter().map(|p| (p[0] > 0.0) as usize + 2 * (p[1] > 0.0) as usize).collect();

    let mut model = Mlp::init(42);
    let mut trainer = model.trainer(Adam::new(0.01), 512);
    for epoch in 0..=200 {
        let loss = trainer.step(&mut model, x.view(), labels.view())?;
        if epoch % 20 == 0 {
            println!("step {epoch:3}  loss {loss:.4}");
        }
    }
    let logits = model.forward(x.view())?;
    let correct = logits
        .outer_iter()
        .zip(&labels)
        .filter(|(row, &l)| {
            row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 == l
        })
        .count();
    println!("accuracy {:.1}%", 100.0 * correct as f64 / labels.len() as f64);

    // The model alone, as PyTorch's state dict (`torch.nn.Module.load_state_dict` takes it).
    let dir = std::path::Path::new("runs/quickstart");
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    hdm::checkpoint::save_params(dir.join("model.safetensors"), &model, &Default::default())?;
    Ok(())
}
