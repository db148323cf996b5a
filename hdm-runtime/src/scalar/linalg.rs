//! The little linear algebra Newton's method needs: the eigen-decomposition of a small symmetric
//! matrix by cyclic Jacobi rotations.

#![allow(clippy::needless_range_loop)] // Matrix code reads best with explicit indices.

use crate::Float;

/// Eigenvalues and eigenvectors of the symmetric matrix `a` (its upper triangle is mirrored, so a
/// slightly asymmetric input is treated as `(a + a^T) / 2`), by the cyclic Jacobi method.
///
/// Returns `(values, vectors)` with `a = V diag(values) V^T`: column `k` of `vectors`
/// (`vectors[i][k]` for `i` in `0..N`) is the unit eigenvector of `values[k]`. Eigenvalues are in no
/// particular order. Converges quadratically; for the sizes of scalar objectives a handful of
/// sweeps reach machine precision. A non-finite input gives non-finite output, never a panic.
///
/// ```
/// use hdm_runtime::scalar::symmetric_eigen;
/// let (values, vectors) = symmetric_eigen([[2.0, 1.0], [1.0, 2.0]]);
/// let mut sorted = values;
/// sorted.sort_by(f64::total_cmp);
/// assert!((sorted[0] - 1.0).abs() < 1e-15 && (sorted[1] - 3.0).abs() < 1e-15);
/// // Each column is a unit eigenvector.
/// for k in 0..2 {
///     let v = [vectors[0][k], vectors[1][k]];
///     assert!((2.0 * v[0] + v[1] - values[k] * v[0]).abs() < 1e-14);
/// }
/// ```
pub fn symmetric_eigen<T: Float, const N: usize>(a: [[T; N]; N]) -> ([T; N], [[T; N]; N]) {
    let half = T::of(0.5);
    let mut a = a;
    for i in 0..N {
        for j in i + 1..N {
            let m = half * (a[i][j] + a[j][i]);
            a[i][j] = m;
            a[j][i] = m;
        }
    }
    let mut v = [[T::zero(); N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = T::one();
    }
    let finite = a.iter().flatten().all(|x| x.is_finite());
    if finite {
        for _sweep in 0..64 {
            let mut off = T::zero();
            let mut diag = T::zero();
            for (i, row) in a.iter().enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    if i == j {
                        diag += x * x;
                    } else {
                        off += x * x;
                    }
                }
            }
            if off <= T::epsilon() * T::epsilon() * diag || off == T::zero() {
                break;
            }
            for p in 0..N {
                for q in p + 1..N {
                    rotate(&mut a, &mut v, p, q);
                }
            }
        }
    }
    let mut values = [T::zero(); N];
    for (i, value) in values.iter_mut().enumerate() {
        *value = a[i][i];
    }
    (values, v)
}

/// One Jacobi rotation `A <- J^T A J`, `V <- V J`, chosen to zero `A[p][q]`.
fn rotate<T: Float, const N: usize>(a: &mut [[T; N]; N], v: &mut [[T; N]; N], p: usize, q: usize) {
    let apq = a[p][q];
    if apq == T::zero() {
        return;
    }
    // theta = cot(2 phi); t = tan(phi) is the smaller root of t^2 + 2 theta t - 1 = 0.
    let theta = (a[q][q] - a[p][p]) / (T::of(2.0) * apq);
    let t = theta.signum() / (theta.abs() + theta.hypot(T::one()));
    let c = T::one() / t.hypot(T::one());
    let s = t * c;
    for row in a.iter_mut() {
        let (x, y) = (row[p], row[q]);
        row[p] = c * x - s * y;
        row[q] = s * x + c * y;
    }
    for k in 0..N {
        let (x, y) = (a[p][k], a[q][k]);
        a[p][k] = c * x - s * y;
        a[q][k] = s * x + c * y;
    }
    a[p][q] = T::zero();
    a[q][p] = T::zero();
    for row in v.iter_mut() {
        let (x, y) = (row[p], row[q]);
        row[p] = c * x - s * y;
        row[q] = s * x + c * y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconstruct<const N: usize>(values: [f64; N], v: [[f64; N]; N]) -> [[f64; N]; N] {
        let mut a = [[0.0; N]; N];
        for i in 0..N {
            for j in 0..N {
                a[i][j] = (0..N).map(|k| v[i][k] * values[k] * v[j][k]).sum();
            }
        }
        a
    }

    #[test]
    fn reconstructs_a_3x3_matrix_with_orthonormal_vectors() {
        let a = [[4.0, -2.0, 1.0], [-2.0, 1.0, 3.0], [1.0, 3.0, -5.0]];
        let (values, v) = symmetric_eigen(a);
        let back = reconstruct(values, v);
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[i][j] - a[i][j]).abs() < 1e-13, "{back:?}");
                let vtv: f64 = (0..3).map(|k| v[k][i] * v[k][j]).sum();
                assert!((vtv - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
        // The trace and the determinant are the sum and the product of the eigenvalues.
        assert!((values.iter().sum::<f64>() - 0.0).abs() < 1e-13);
        let det = 4.0 * (1.0 * -5.0 - 9.0) + 2.0 * (-2.0 * -5.0 - 3.0) + (-6.0 - 1.0);
        assert!((values.iter().product::<f64>() - det).abs() < 1e-12);
    }

    #[test]
    fn rotated_ill_conditioned_matrix() {
        // R diag(1, 100) R^T with R the rotation by 45 degrees: [[50.5, -49.5], [-49.5, 50.5]].
        let (mut values, _) = symmetric_eigen([[50.5, -49.5], [-49.5, 50.5]]);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-13 && (values[1] - 100.0).abs() < 1e-13);
    }

    #[test]
    fn diagonal_and_non_finite_inputs() {
        assert_eq!(symmetric_eigen([[3.0, 0.0], [0.0, -1.0]]).0, [3.0, -1.0]);
        assert_eq!(symmetric_eigen([[7.0f32]]).0, [7.0]);
        let (values, _) = symmetric_eigen([[f64::NAN, 1.0], [1.0, 0.0]]);
        assert!(values[0].is_nan());
    }
}
