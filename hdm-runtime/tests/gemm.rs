//! The vendored GEMM against a naive triple loop (within a rounding bound), against
//! `matrixmultiply::sgemm`/`dgemm` (bit for bit: every element the same chain of FMAs), and the
//! pool against one thread (bit for bit), over shapes around the kernels' tiles and cache blocks,
//! every operand layout the views can express, and several `alpha`/`beta`.

use std::collections::HashSet;
use std::sync::Mutex;

use hdm_runtime::gemm::{self, gemm_with, kernel_info, MatMut, MatRef, Pool, Workspace};
use hdm_runtime::Float;

/// How an operand sits in its buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    RowMajor,
    /// The transpose of a row-major matrix (`MatRef::t`).
    ColMajor,
    /// Row-major with 3 unused elements after each row.
    Padded,
    /// Columns `2..2 + cols` of a row-major matrix 5 columns wider (`MatRef::cols`).
    Block,
    /// Row stride 2, column stride `2 * rows + 1`: no unit stride at all.
    Strided,
}
use Layout::*;

impl Layout {
    /// Row stride, column stride, offset of element (0, 0), buffer length.
    fn geometry(self, rows: usize, cols: usize) -> (usize, usize, usize, usize) {
        match self {
            RowMajor => (cols, 1, 0, rows * cols),
            ColMajor => (1, rows, 0, rows * cols),
            Padded => (cols + 3, 1, 0, rows * (cols + 3)),
            Block => (cols + 5, 1, 2, rows * (cols + 5)),
            Strided => (2, 2 * rows + 1, 0, (2 * rows + 1) * cols.max(1)),
        }
    }

    fn view<T>(self, buf: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
        let (rs, cs, _, _) = self.geometry(rows, cols);
        match self {
            ColMajor => MatRef::row_major(buf, cols, rows).t(),
            Block => MatRef::new(buf, rows, cols + 5, rs, cs).cols(2, cols),
            _ => MatRef::new(buf, rows, cols, rs, cs),
        }
    }

    fn view_mut<T>(self, buf: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
        let (rs, cs, _, _) = self.geometry(rows, cols);
        match self {
            Block => MatMut::new(buf, rows, cols + 5, rs, cs).cols(2, cols),
            _ => MatMut::new(buf, rows, cols, rs, cs),
        }
    }

    fn index(self, rows: usize, cols: usize, i: usize, j: usize) -> usize {
        let (rs, cs, off, _) = self.geometry(rows, cols);
        off + i * rs + j * cs
    }
}

/// A deterministic generator of values in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// An operand: its buffer (elements outside the view hold a sentinel) and layout.
struct Operand<T> {
    buf: Vec<T>,
    layout: Layout,
    rows: usize,
    cols: usize,
}

const SENTINEL: f64 = 12345.0;

impl<T: Float> Operand<T> {
    fn new(layout: Layout, rows: usize, cols: usize, rng: &mut Lcg) -> Self {
        let (_, _, _, len) = layout.geometry(rows, cols);
        let mut buf = vec![T::of(SENTINEL); len];
        for i in 0..rows {
            for j in 0..cols {
                buf[layout.index(rows, cols, i, j)] = T::of(rng.next());
            }
        }
        Operand { buf, layout, rows, cols }
    }

    fn at(&self, i: usize, j: usize) -> T {
        self.buf[self.layout.index(self.rows, self.cols, i, j)]
    }

    fn view(&self) -> MatRef<'_, T> {
        self.layout.view(&self.buf, self.rows, self.cols)
    }

    fn view_mut(&mut self) -> MatMut<'_, T> {
        self.layout.view_mut(&mut self.buf, self.rows, self.cols)
    }

    /// Pointer to element (0, 0) and the strides, for `matrixmultiply`.
    fn raw(&self) -> (*const T, isize, isize) {
        let (rs, cs, off, _) = self.layout.geometry(self.rows, self.cols);
        (self.buf.as_ptr().wrapping_add(off), rs as isize, cs as isize)
    }

    fn raw_mut(&mut self) -> (*mut T, isize, isize) {
        let (rs, cs, off, _) = self.layout.geometry(self.rows, self.cols);
        (self.buf.as_mut_ptr().wrapping_add(off), rs as isize, cs as isize)
    }

    fn bits(&self) -> Vec<u64> {
        self.buf.iter().map(|&x| Float::to_f64(x).to_bits()).collect()
    }

    /// The buffer's elements outside the view still hold the sentinel.
    fn check_outside(&self) {
        let inside: HashSet<usize> = (0..self.rows)
            .flat_map(|i| (0..self.cols).map(move |j| (i, j)))
            .map(|(i, j)| self.layout.index(self.rows, self.cols, i, j))
            .collect();
        for (p, x) in self.buf.iter().enumerate() {
            if !inside.contains(&p) {
                assert_eq!(
                    Float::to_f64(*x),
                    SENTINEL,
                    "element {p} outside the {:?} view of C was written",
                    self.layout
                );
            }
        }
    }
}

/// `matrixmultiply::sgemm` or `dgemm`.
trait Reference: Float {
    #[allow(clippy::too_many_arguments)]
    unsafe fn reference(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Reference for f32 {
    unsafe fn reference(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl Reference for f64 {
    unsafe fn reference(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        unsafe { matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// Shapes `(m, k, n)` around the kernels' tiles (4, 8, 16) and the cache blocks (mc = 64,
/// kc = 256, nc = 1024), and degenerate ones.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 5, 1),
    (1, 1, 7),
    (7, 1, 1),
    (3, 0, 4),
    (0, 3, 4),
    (4, 3, 0),
    (2, 3, 5),
    (9, 17, 13),
    (16, 16, 16),
    (33, 9, 8),
    (8, 33, 9),
    (63, 255, 17),
    (64, 256, 32),
    (65, 257, 33),
    (129, 40, 9),
    (5, 513, 12),
    (17, 20, 1023),
    (3, 7, 1025),
    (70, 300, 130),
    (97, 260, 40),
    (193, 20, 17),
    // one row: the unpacked path (kc blocks, column chunks of 64, 32 and 8, tails)
    (1, 784, 500),
    (1, 300, 37),
    (1, 9, 1025),
    (1, 263, 103),
];

/// Layouts of (A, B, C): plain, each transpose, column blocks, padding and general strides.
const LAYOUTS: &[(Layout, Layout, Layout)] = &[
    (RowMajor, RowMajor, RowMajor),
    (ColMajor, RowMajor, RowMajor),
    (RowMajor, ColMajor, RowMajor),
    (ColMajor, ColMajor, ColMajor),
    (Padded, Block, Block),
    (Block, Strided, Padded),
    (Strided, Padded, ColMajor),
    (RowMajor, RowMajor, Strided),
];

const ALPHA_BETA: &[(f64, f64)] = &[(1.0, 0.0), (-0.5, 1.0), (2.0, 0.3), (0.0, -1.0)];

/// Every shape, layout and `(alpha, beta)`: calls `check` with the operands and scalars. With
/// `beta == 0`, C starts as NaN (which must not leak into the result).
fn for_each_case<T: Float>(mut check: impl FnMut(&Operand<T>, &Operand<T>, &Operand<T>, T, T)) {
    let mut rng = Lcg(7);
    for &(m, k, n) in SHAPES {
        for &(la, lb, lc) in LAYOUTS {
            for &(alpha, beta) in ALPHA_BETA {
                let a = Operand::new(la, m, k, &mut rng);
                let b = Operand::new(lb, k, n, &mut rng);
                let mut c = Operand::new(lc, m, n, &mut rng);
                if beta == 0.0 {
                    for i in 0..m {
                        for j in 0..n {
                            c.buf[lc.index(m, n, i, j)] = T::nan();
                        }
                    }
                }
                check(&a, &b, &c, T::of(alpha), T::of(beta));
            }
        }
    }
}

fn clone<T: Clone>(c: &Operand<T>) -> Operand<T> {
    Operand { buf: c.buf.clone(), ..*c }
}

fn agrees_with_a_naive_product<T: Float>() {
    let mut ws = Workspace::<T>::new();
    let mut cases = 0;
    for_each_case::<T>(|a, b, c0, alpha, beta| {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut c = clone(c0);
        gemm_with(&mut ws, alpha, a.view(), b.view(), beta, c.view_mut());
        c.check_outside();
        let eps = T::epsilon().to_f64();
        for i in 0..m {
            for j in 0..n {
                let (mut dot, mut size) = (0.0, 0.0);
                for p in 0..k {
                    let x = a.at(i, p).to_f64() * b.at(p, j).to_f64();
                    dot += x;
                    size += x.abs();
                }
                let (alpha, beta) = (alpha.to_f64(), beta.to_f64());
                let old = if beta == 0.0 { 0.0 } else { beta * c0.at(i, j).to_f64() };
                let want = alpha * dot + old;
                // A bound on the rounding of any summation order, with or without FMA.
                let bound = (k + 2) as f64 * eps * (alpha.abs() * size + old.abs()) + f64::MIN_POSITIVE;
                let got = c.at(i, j).to_f64();
                assert!(
                    (got - want).abs() <= bound,
                    "{m}x{k}x{n} {:?} alpha {alpha} beta {beta}: C[{i}, {j}] = {got}, want {want} (bound {bound})",
                    (a.layout, b.layout, c.layout)
                );
            }
        }
        cases += 1;
    });
    assert_eq!(cases, SHAPES.len() * LAYOUTS.len() * ALPHA_BETA.len());
}

#[test]
fn f32_agrees_with_a_naive_product() {
    agrees_with_a_naive_product::<f32>();
}

#[test]
fn f64_agrees_with_a_naive_product() {
    agrees_with_a_naive_product::<f64>();
}

fn bit_identical_to_matrixmultiply<T: Reference>() {
    let mut ws = Workspace::<T>::new();
    for_each_case::<T>(|a, b, c0, alpha, beta| {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut ours = clone(c0);
        gemm_with(&mut ws, alpha, a.view(), b.view(), beta, ours.view_mut());
        let mut theirs = clone(c0);
        let ((pa, rsa, csa), (pb, rsb, csb), (pc, rsc, csc)) = (a.raw(), b.raw(), theirs.raw_mut());
        // SAFETY: the pointers and strides describe the operands' views inside their buffers;
        // `theirs` is a separate buffer.
        unsafe { T::reference(m, k, n, alpha, pa, rsa, csa, pb, rsb, csb, beta, pc, rsc, csc) };
        assert!(
            ours.bits() == theirs.bits(),
            "{m}x{k}x{n} {:?} alpha {alpha} beta {beta}: not the bits of matrixmultiply",
            (a.layout, b.layout, ours.layout)
        );
        // The convenient form (the default pool) gives the same bits.
        let mut plain = clone(c0);
        gemm::gemm(alpha, a.view(), b.view(), beta, plain.view_mut());
        assert!(ours.bits() == plain.bits(), "{m}x{k}x{n}: gemm differs from gemm_with");
    });
}

#[test]
fn f32_is_bit_identical_to_matrixmultiply_sgemm() {
    bit_identical_to_matrixmultiply::<f32>();
}

#[test]
fn f64_is_bit_identical_to_matrixmultiply_dgemm() {
    bit_identical_to_matrixmultiply::<f64>();
}

#[test]
fn beta_zero_ignores_nan_in_c() {
    let mut ws = Workspace::<f32>::new();
    // k == 0 too: C <- 0, not NaN * 0
    for (m, k, n) in [(5, 3, 7), (17, 1, 9), (3, 0, 4), (64, 256, 33)] {
        let a = vec![1.0f32; m * k];
        let b = vec![2.0f32; k * n];
        let mut c = vec![f32::NAN; m * n];
        gemm_with(
            &mut ws,
            1.0,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            0.0,
            MatMut::row_major(&mut c, m, n),
        );
        assert!(c.iter().all(|&x| x == 2.0 * k as f32), "{m}x{k}x{n}: {:?}", &c[..4]);
        let mut c = vec![f32::NAN; m * n];
        Pool::new(2).gemm(
            1.0,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            0.0,
            MatMut::row_major(&mut c, m, n),
        );
        assert!(c.iter().all(|&x| x == 2.0 * k as f32), "pool, {m}x{k}x{n}");
    }
    // and beta != 0 does read C: NaN stays
    let mut c = vec![f32::NAN; 4];
    gemm_with(
        &mut ws,
        1.0,
        MatRef::row_major(&[1.0], 2, 0),
        MatRef::row_major(&[], 0, 2),
        1.0,
        MatMut::row_major(&mut c, 2, 2),
    );
    assert!(c.iter().all(|x| x.is_nan()));
}

/// Products big enough for the pool to split (2^18 multiply-adds per thread), by columns or, when
/// the output is narrow, by rows, with partial last tiles and strided C.
fn pool_matches_one_thread<T: Float>() {
    let nr = kernel_info::<T>().nr;
    let mut rng = Lcg(11);
    let mut ws = Workspace::<T>::new();
    let pools: Vec<Pool<T>> = (1..=4).map(Pool::new).collect();
    for (m, k, n) in [
        (100, 784, 500),
        (64, 256, 70),
        (37, 300, 8 * nr + 3),
        (300, 100, 4 * nr - 1),
        (9, 1100, 2 * nr + 1),
        (1000, 300, 10),
        (203, 700, nr + 1),
    ] {
        for (la, lb, lc) in
            [(RowMajor, ColMajor, RowMajor), (ColMajor, RowMajor, Block), (RowMajor, RowMajor, ColMajor)]
        {
            for (alpha, beta) in [(1.0, 0.0), (-0.75, 0.5)] {
                let (alpha, beta) = (T::of(alpha), T::of(beta));
                let a = Operand::<T>::new(la, m, k, &mut rng);
                let b = Operand::<T>::new(lb, k, n, &mut rng);
                let c0 = Operand::<T>::new(lc, m, n, &mut rng);
                let mut one = clone(&c0);
                gemm_with(&mut ws, alpha, a.view(), b.view(), beta, one.view_mut());
                for pool in &pools {
                    let mut c = clone(&c0);
                    pool.gemm(alpha, a.view(), b.view(), beta, c.view_mut());
                    c.check_outside();
                    assert!(c.bits() == one.bits(), "{m}x{k}x{n} {:?} on {} threads", (la, lb, lc), pool.threads());
                }
            }
        }
    }
}

#[test]
fn f32_pool_is_bit_identical_to_one_thread() {
    pool_matches_one_thread::<f32>();
}

#[test]
fn f64_pool_is_bit_identical_to_one_thread() {
    pool_matches_one_thread::<f64>();
}

#[test]
fn join_runs_both_sides_on_two_threads() {
    let pool = Pool::<f32>::new(2);
    let x: Vec<f32> = (0..40 * 30).map(|i| (i % 13) as f32 - 6.0).collect();
    let x = MatRef::row_major(&x, 40, 30);
    let (mut g, mut h) = (vec![f32::NAN; 30 * 30], vec![f32::NAN; 40 * 40]);
    let main = std::thread::current().id();
    let (ta, tb) = pool.join(
        |ws| {
            gemm_with(ws, 1.0, x.t(), x, 0.0, MatMut::row_major(&mut g, 30, 30));
            std::thread::current().id()
        },
        |ws| {
            gemm_with(ws, 1.0, x, x.t(), 0.0, MatMut::row_major(&mut h, 40, 40));
            std::thread::current().id()
        },
    );
    assert_eq!(ta, main, "the first closure runs on the calling thread");
    if cfg!(feature = "threading") {
        assert_ne!(tb, main, "the second closure runs on a worker");
    } else {
        assert_eq!(tb, main, "without the threading feature everything runs inline");
    }
    let mut ws = Workspace::new();
    let (mut g1, mut h1) = (vec![0.0; 30 * 30], vec![0.0; 40 * 40]);
    gemm_with(&mut ws, 1.0, x.t(), x, 0.0, MatMut::row_major(&mut g1, 30, 30));
    gemm_with(&mut ws, 1.0, x, x.t(), 0.0, MatMut::row_major(&mut h1, 40, 40));
    assert_eq!((g, h), (g1, h1));

    // One thread: both inline, in order.
    let order = Mutex::new(Vec::new());
    let one = Pool::<f32>::new(1);
    let (a, b) = one.join(|_| order.lock().unwrap().push("a"), |_| order.lock().unwrap().push("b"));
    assert_eq!((a, b), ((), ()));
    assert_eq!(*order.lock().unwrap(), ["a", "b"]);
}

#[test]
fn join_reraises_a_panic_and_the_pool_still_works() {
    let pool = Pool::<f64>::new(2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.join(|_| 1, |_| -> i32 { panic!("side b failed") })
    }));
    let payload = r.expect_err("join must panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"side b failed"));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.join(|_| -> i32 { panic!("side a failed") }, |_| 2)
    }));
    assert!(r.is_err());
    assert_eq!(pool.join(|_| 3, |_| 4), (3, 4));
    let mut c = [0.0; 1];
    pool.gemm(
        1.0,
        MatRef::row_major(&[2.0], 1, 1),
        MatRef::row_major(&[3.0], 1, 1),
        0.0,
        MatMut::row_major(&mut c, 1, 1),
    );
    assert_eq!(c, [6.0]);
}

#[test]
fn broadcast_runs_each_index_once_on_its_own_thread() {
    for threads in [1, 2, 3] {
        let pool = Pool::<f32>::new(threads);
        let threads = if cfg!(feature = "threading") { threads } else { 1 };
        assert_eq!(pool.threads(), threads);
        let seen = Mutex::new(Vec::new());
        pool.broadcast(|i, ws| {
            assert!(ws.size_bytes() > 0);
            seen.lock().unwrap().push((i, std::thread::current().id()));
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_by_key(|s| s.0);
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), (0..threads).collect::<Vec<_>>());
        assert_eq!(seen[0].1, std::thread::current().id());
        let ids: HashSet<_> = seen.iter().map(|s| s.1).collect();
        assert_eq!(ids.len(), threads, "every index on a thread of its own");
    }
}

#[test]
fn a_busy_pool_runs_inline_with_the_same_bits() {
    // A job that uses the pool again from inside (the caller's workspace is taken).
    let pool = Pool::<f32>::new(2);
    let a: Vec<f32> = (0..64 * 300).map(|i| ((i * 7) % 19) as f32 * 0.1 - 0.9).collect();
    let a = MatRef::row_major(&a, 64, 300);
    let mut inner = vec![0.0; 64 * 64];
    pool.join(|_| pool.gemm(1.0, a, a.t(), 0.0, MatMut::row_major(&mut inner, 64, 64)), |_| ());
    let mut one = vec![0.0; 64 * 64];
    gemm_with(&mut Workspace::new(), 1.0, a, a.t(), 0.0, MatMut::row_major(&mut one, 64, 64));
    assert_eq!(inner, one);
}

#[test]
fn pools_and_workspaces_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    send_sync::<Pool<f32>>();
    send_sync::<Pool<f64>>();
    send_sync::<Workspace<f32>>();
    send_sync::<std::sync::Arc<Pool<f64>>>();
}

#[test]
fn the_default_pool_follows_set_num_threads() {
    // (Other tests use `gemm` meanwhile: any pool gives them the same bits.)
    hdm_runtime::set_num_threads(3);
    if cfg!(feature = "threading") {
        assert_eq!(hdm_runtime::num_threads(), 3);
        assert_eq!(gemm::default_pool::<f32>().threads(), 3);
        assert_eq!(gemm::default_pool::<f64>().threads(), 3);
        hdm_runtime::set_num_threads(1);
        assert_eq!(gemm::default_pool::<f32>().threads(), 1);
    } else {
        assert_eq!(hdm_runtime::num_threads(), 1);
        assert_eq!(gemm::default_pool::<f32>().threads(), 1);
    }
    hdm_runtime::set_num_threads(0); // back to HDM_NUM_THREADS or the machine's parallelism
    assert!(hdm_runtime::num_threads() >= 1);
}

#[test]
#[should_panic(expected = "overlaps itself")]
fn a_zero_row_stride_is_rejected() {
    let mut c = [0.0f32; 4];
    MatMut::new(&mut c, 2, 2, 0, 1);
}

#[test]
#[should_panic(expected = "overlaps itself")]
fn a_zero_column_stride_is_rejected() {
    let mut c = [0.0f32; 4];
    MatMut::new(&mut c, 2, 2, 2, 0);
}

#[test]
#[should_panic(expected = "overlaps itself")]
fn interleaved_strides_are_rejected() {
    let mut c = [0.0f32; 8];
    MatMut::new(&mut c, 3, 3, 2, 1);
}

#[test]
fn zero_strides_along_a_single_line_are_fine() {
    let mut c = [0.0f32; 3];
    MatMut::new(&mut c, 1, 3, 0, 1);
    MatMut::new(&mut c, 3, 1, 1, 0);
}
