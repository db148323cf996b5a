//! "No allocation per product": a counting global allocator watches `gemm_with` after
//! `Workspace::new`, `Pool::gemm`/`join`/`broadcast` after `Pool::new`, and `gemm` after
//! `prepare`.
//!
//! The counter is global (every thread's allocations count, the pool's workers included), so
//! this file holds a single test: nothing else runs in the process meanwhile.

#[path = "support/counting.rs"]
mod counting;

use counting::allocations;

use hdm_runtime::gemm::{self, gemm_with, MatMut, MatRef, Pool, Workspace};

/// Shapes `(m, k, n)`: tiny, edge tiles, several cache blocks, big enough for a pool of 3 to split
/// (`[4]`, `[5]`), a narrow output, more than one block of columns.
const SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (3, 0, 5), (17, 9, 13), (65, 257, 33), (64, 128, 100), (100, 96, 120), (100, 500, 10), (3, 7, 1100)];

struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

/// Runs `product` on every shape, as `A B`, `A^T B` (A stored transposed) and into a column-major
/// C, with `beta` 0 and 1; the buffers are made before, outside the count.
fn every_product(
    ops: &mut [Operands],
    mut product: impl FnMut(MatRef<'_, f32>, MatRef<'_, f32>, f32, MatMut<'_, f32>),
) {
    for (&(m, k, n), o) in SHAPES.iter().zip(ops.iter_mut()) {
        for beta in [0.0, 1.0] {
            product(
                MatRef::row_major(&o.a, m, k),
                MatRef::row_major(&o.b, k, n),
                beta,
                MatMut::row_major(&mut o.c, m, n),
            );
            product(
                MatRef::row_major(&o.a, k, m).t(),
                MatRef::row_major(&o.b, k, n),
                beta,
                MatMut::new(&mut o.c, m, n, 1, m),
            );
        }
    }
}

fn operands() -> Vec<Operands> {
    SHAPES
        .iter()
        .map(|&(m, k, n)| Operands {
            a: (0..m * k).map(|i| (i % 17) as f32 * 0.125 - 1.0).collect(),
            b: (0..k * n).map(|i| (i % 13) as f32 * 0.25 - 1.5).collect(),
            c: vec![0.0; m * n],
        })
        .collect()
}

#[test]
fn products_do_not_allocate() {
    let mut ops = operands();

    // The counter works: a workspace is an allocation.
    let before = allocations();
    let mut ws = Workspace::<f32>::new();
    let mut ws64 = Workspace::<f64>::new();
    assert!(allocations() > before, "the counting allocator does not see allocations");

    // gemm_with: none at all.
    let before = allocations();
    every_product(&mut ops, |a, b, beta, c| gemm_with(&mut ws, 1.0, a, b, beta, c));
    let (a, b, mut c) = ([1.0f64; 6], [2.0f64; 6], [0.0f64; 4]);
    gemm_with(
        &mut ws64,
        1.0,
        MatRef::row_major(&a, 2, 3),
        MatRef::row_major(&b, 3, 2),
        0.0,
        MatMut::row_major(&mut c, 2, 2),
    );
    assert_eq!(allocations() - before, 0, "gemm_with allocated");

    // A pool allocates when made (threads, workspaces), then never again: products split over
    // its threads, join, broadcast. 3 threads on any machine, so the split paths run.
    for threads in [1, 2, 3] {
        let pool = Pool::<f32>::new(threads);
        let before = allocations();
        for _ in 0..2 {
            every_product(&mut ops, |a, b, beta, c| pool.gemm(1.0, a, b, beta, c));
        }
        let (x, rest) = ops.split_at_mut(5);
        let (o4, o5) = (&mut x[4], &mut rest[0]);
        let (d, e) = (MatMut::row_major(&mut o4.c, 64, 100), MatMut::row_major(&mut o5.c, 100, 120));
        let (r1, r2) = pool.join(
            |ws| {
                gemm_with(ws, 1.0, MatRef::row_major(&o4.a, 64, 128), MatRef::row_major(&o4.b, 128, 100), 0.0, d);
                1
            },
            |ws| {
                gemm_with(ws, 1.0, MatRef::row_major(&o5.a, 100, 96), MatRef::row_major(&o5.b, 96, 120), 0.0, e);
                2
            },
        );
        assert_eq!((r1, r2), (1, 2));
        pool.broadcast(|i, ws| assert!(i < threads && ws.size_bytes() > 0));
        assert_eq!(allocations() - before, 0, "a pool of {threads} threads allocated");
    }

    // The convenient gemm: after `prepare` (the default pool, or this thread's workspace
    // without the `threading` feature), none.
    gemm::prepare::<f32>();
    let before = allocations();
    every_product(&mut ops, |a, b, beta, c| gemm::gemm(1.0, a, b, beta, c));
    assert_eq!(allocations() - before, 0, "gemm allocated after prepare");
}
