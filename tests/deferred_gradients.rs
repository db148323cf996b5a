//! At batch 1 a trainer keeps each Linear weight's gradient as the outer product `dy^T x` it is,
//! and writes it into its gradients only when they are read (`Trainer::gradients`) or before a
//! pass that may read or keep them. Whatever passes follow a step, the gradients read must be
//! those of the last pass that made them, bit for bit.

use hdm::prelude::*;
use ndarray::{s, Array1, Array2};

#[network(loss = softmax_cross_entropy)]
struct Mlp {
    fc1: Linear<20, 33>,
    act1: Relu,
    fc2: Linear<33, 17>,
    act2: Gelu,
    fc3: Linear<17, 5>,
}

fn bits(m: &Mlp<f32>) -> Vec<u32> {
    m.params().iter().flat_map(|p| p.data.iter().map(|v| v.to_bits())).collect()
}

fn data() -> (Array2<f32>, Array1<usize>) {
    let mut rng = Rng::new(3);
    let x = Array2::from_shape_simple_fn((4, 20), || rng.normal() as f32);
    let labels = Array1::from_shape_simple_fn(4, || rng.below(5));
    (x, labels)
}

/// The gradients read after a batch-1 step are those of the step: the network's own gradients
/// of that row at the weights before the step, on one thread and two, with SGD and Adam.
#[test]
fn a_batch_of_one_reads_the_gradients_of_its_step() {
    let (x, labels) = data();
    for threads in [1, 2] {
        let pool = std::sync::Arc::new(hdm::gemm::Pool::new(threads));
        let mut model = Mlp::<f32>::init(1);
        let mut sgd = model.trainer(Sgd::new(0.1), 4).with_pool(pool.clone());
        let mut adam = model.clone().trainer(Adam::new(1e-2), 4).with_pool(pool);
        let mut other = model.clone();
        for i in 0..4 {
            let (xi, li) = (x.slice(s![i..i + 1, ..]), labels.slice(s![i..i + 1]));
            let (_, want) = model.gradients(xi, li).unwrap();
            sgd.step(&mut model, xi, li).unwrap();
            assert_eq!(bits(sgd.gradients()), bits(&want), "SGD, step {i}, {threads} threads");
            let (_, want) = other.gradients(xi, li).unwrap();
            adam.step(&mut other, xi, li).unwrap();
            assert_eq!(bits(adam.gradients()), bits(&want), "Adam, step {i}, {threads} threads");
        }
    }
}

/// After a batch-1 step, an accumulating pass's gradients replace the step's (read after it,
/// and added to by the next pass); a pass that discards its parameters' gradients leaves the
/// step's.
#[test]
fn passes_after_a_batch_of_one_see_the_right_gradients() {
    let (x, labels) = data();
    let mut model = Mlp::<f32>::init(2);
    let mut trainer = model.trainer(Sgd::new(0.1), 4);
    let (x0, l0) = (x.slice(s![..1, ..]), labels.slice(s![..1]));
    let (x1, l1) = (x.slice(s![1..3, ..]), labels.slice(s![1..3]));

    // A step, then a pass that discards: the step's gradients stay.
    let (_, step_grads) = model.gradients(x0, l0).unwrap();
    trainer.step(&mut model, x0, l0).unwrap();
    assert_eq!(bits(trainer.gradients()), bits(&step_grads), "after the step");
    trainer.forward(&mut model, x1).unwrap();
    trainer.backward(&mut model, l1, Then::Discard, true).unwrap();
    assert_eq!(bits(trainer.gradients()), bits(&step_grads), "after a discarding pass");

    // A step, then an accumulating pass: its gradients, not the step's.
    trainer.step(&mut model, x0, l0).unwrap();
    let (_, acc_grads) = model.gradients(x1, l1).unwrap();
    trainer.forward(&mut model, x1).unwrap();
    trainer.backward(&mut model, l1, Then::Accumulate, false).unwrap();
    assert_eq!(bits(trainer.gradients()), bits(&acc_grads), "after an accumulating pass");

    // A step, then an accumulating pass not read, then an updating pass: the sum of the two
    // passes' gradients (as the whole update of an eager trainer makes it). (New trainers: the
    // one above holds the accumulated gradients of a pass that no update has taken.)
    let mut eager = model.clone();
    let mut trainer = model.trainer(Sgd::new(0.1), 4);
    let mut eager_trainer = eager.trainer(Sgd::new(0.1), 4).with_clip_grad_norm(1e30);
    for (m, t) in [(&mut model, &mut trainer), (&mut eager, &mut eager_trainer)] {
        t.step(m, x0, l0).unwrap();
        t.forward(m, x1).unwrap();
        t.backward(m, l1, Then::Accumulate, false).unwrap();
        t.forward(m, x0).unwrap();
        t.backward(m, l0, Then::Update, false).unwrap();
    }
    assert_eq!(bits(trainer.gradients()), bits(eager_trainer.gradients()), "accumulated then updated");
    assert_eq!(bits(&model), bits(&eager), "the weights after it");
}
