//! Strided matrix views and the general matrix product, on [`matrixmultiply`].
//!
//! A view is a slice plus a shape and two strides, so a transpose ([`MatRef::t`]) or a block of
//! columns ([`MatRef::cols`]) is a new view of the same memory: no copy is ever made to feed a
//! product.

use crate::Float;

/// A read-only `rows x cols` matrix inside a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MatRef<'_, T> {}

/// A mutable `rows x cols` matrix inside a slice; see [`MatRef`].
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// The number of elements a strided view reaches, or `None` when it does not fit in `usize`.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)?.checked_add(1)
}

fn check_view(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    let need = extent(rows, cols, rs, cs);
    assert!(
        need.is_some_and(|n| n <= len),
        "a {rows}x{cols} view with strides ({rs}, {cs}) does not fit in {len} elements"
    );
}

impl<'a, T> MatRef<'a, T> {
    /// A strided view. Panics when the view reaches past the end of `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        check_view(data.len(), rows, cols, rs, cs);
        MatRef { data, rows, cols, rs, cs }
    }

    /// The first `rows * cols` elements of `data` as a row-major matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose: the same memory with the strides swapped.
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, data: self.data }
    }

    /// Columns `start..start + n` of this matrix.
    pub fn cols(self, start: usize, n: usize) -> Self {
        assert!(start + n <= self.cols, "columns {start}..{} of {}", start + n, self.cols);
        let data = if n == 0 || self.rows == 0 { &self.data[..0] } else { &self.data[start * self.cs..] };
        MatRef { data, rows: self.rows, cols: n, rs: self.rs, cs: self.cs }
    }

    /// Rows `start..start + n` of this matrix.
    pub fn rows(self, start: usize, n: usize) -> Self {
        self.t().cols(start, n).t()
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> &T {
        assert!(i < self.rows && j < self.cols);
        &self.data[i * self.rs + j * self.cs]
    }

    /// Row `i` as a slice, when the columns are contiguous (`cs == 1`).
    pub fn row(&self, i: usize) -> &'a [T] {
        assert!(self.cs == 1 && i < self.rows, "row {i} of a view with column stride {}", self.cs);
        &self.data[i * self.rs..i * self.rs + self.cols]
    }

    /// Row `i` as an iterator of values, whatever the column stride.
    pub fn at_row(&self, i: usize) -> impl Iterator<Item = T> + 'a
    where
        T: Copy,
    {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        let (rs, cs, data) = (self.rs, self.cs, self.data);
        (0..self.cols).map(move |j| data[i * rs + j * cs])
    }

    /// The view's row and column strides.
    pub fn strides(&self) -> (usize, usize) {
        (self.rs, self.cs)
    }
}

impl<'a, T: Copy> From<ndarray::ArrayView2<'a, T>> for MatRef<'a, T> {
    /// Views an ndarray matrix without copying. Panics on negative strides (reversed axes), which
    /// hdm never produces.
    fn from(a: ndarray::ArrayView2<'a, T>) -> Self {
        let (rows, cols) = a.dim();
        let s = a.strides();
        assert!(s[0] >= 0 && s[1] >= 0, "matrices with negative strides are not supported");
        let (rs, cs) = (s[0] as usize, s[1] as usize);
        let len = extent(rows, cols, rs, cs).expect("view extent overflows");
        if len == 0 {
            return MatRef { data: &[], rows, cols, rs, cs };
        }
        // SAFETY: the view's first element is at `as_ptr()` and, with non-negative strides, its
        // last one at offset `len - 1`; all lie in the array's allocation, borrowed for `'a`.
        let data = unsafe { std::slice::from_raw_parts(a.as_ptr(), len) };
        MatRef { data, rows, cols, rs, cs }
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A strided mutable view. Panics when the view reaches past the end of `data` or when two
    /// index pairs could reach the same element.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        check_view(data.len(), rows, cols, rs, cs);
        assert!(
            rows <= 1 || cols <= 1 || (rs >= cols * cs) || (cs >= rows * rs),
            "a {rows}x{cols} view with strides ({rs}, {cs}) overlaps itself"
        );
        MatMut { data, rows, cols, rs, cs }
    }

    /// The first `rows * cols` elements of `data` as a row-major matrix.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// A read-only view of the same matrix.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef { data: self.data, rows: self.rows, cols: self.cols, rs: self.rs, cs: self.cs }
    }

    /// Reborrows the view for a shorter lifetime.
    pub fn rb(&mut self) -> MatMut<'_, T> {
        MatMut { data: self.data, rows: self.rows, cols: self.cols, rs: self.rs, cs: self.cs }
    }

    /// Columns `start..start + n` of this matrix.
    pub fn cols(self, start: usize, n: usize) -> Self {
        assert!(start + n <= self.cols, "columns {start}..{} of {}", start + n, self.cols);
        let data = if n == 0 || self.rows == 0 { &mut self.data[..0] } else { &mut self.data[start * self.cs..] };
        MatMut { data, rows: self.rows, cols: n, rs: self.rs, cs: self.cs }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.cols
    }

    /// Row `i` as a mutable slice, when the columns are contiguous (`cs == 1`).
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        assert!(self.cs == 1 && i < self.rows, "row {i} of a view with column stride {}", self.cs);
        &mut self.data[i * self.rs..i * self.rs + self.cols]
    }
}

/// `C <- alpha * A * B + beta * C`.
///
/// With `beta == 0`, `C` is only written, never read (so it may hold anything, NaN included).
/// Panics when the shapes do not agree.
///
/// ```
/// use hdm_runtime::gemm::{gemm, MatMut, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
/// let mut c = [0.0; 4];
/// // A * A^T, the transpose taken by swapping strides.
/// let a = MatRef::row_major(&a, 2, 3);
/// gemm(1.0, a, a.t(), 0.0, MatMut::row_major(&mut c, 2, 2));
/// assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
/// ```
pub fn gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    assert!(
        a.cols == b.rows && a.rows == c.rows && b.cols == c.cols,
        "gemm shapes: ({}x{}) * ({}x{}) into ({}x{})",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // matrixmultiply handles k == 0, but be explicit: C <- beta * C.
        for i in 0..m {
            for j in 0..n {
                let x = &mut c.data[i * c.rs + j * c.cs];
                *x = if beta == T::zero() { T::zero() } else { beta * *x };
            }
        }
        return;
    }
    // SAFETY: the views were checked to lie inside their slices when made; `c` is a unique
    // borrow, so it aliases neither `a` nor `b`, and `MatMut::new` rejected self-overlap.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<f64>, b: MatRef<f64>) -> Vec<f64> {
        let mut out = vec![0.0; a.nrows() * b.ncols()];
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                out[i * b.ncols() + j] = (0..a.ncols()).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        out
    }

    #[test]
    fn transposed_and_column_block_views_multiply_without_copies() {
        let a: Vec<f64> = (0..12).map(|x| x as f64 * 0.5 - 2.0).collect(); // 3x4
        let b: Vec<f64> = (0..20).map(|x| ((x * 7) % 11) as f64 - 5.0).collect(); // 5x4, exact in f64
        let a = MatRef::row_major(&a, 3, 4);
        let b = MatRef::row_major(&b, 5, 4);
        let mut c = vec![f64::NAN; 3 * 5];
        gemm(1.0, a, b.t(), 0.0, MatMut::row_major(&mut c, 3, 5));
        assert_eq!(c, naive(a, b.t()));

        // Columns 1..3 of A times rows 1..3 of B^T, accumulated with beta = 1 into a
        // 3x5 block of a 3x7 buffer.
        let mut wide = vec![1.0; 3 * 7];
        let cm = MatMut::new(&mut wide, 3, 7, 7, 1).cols(2, 5);
        gemm(2.0, a.cols(1, 2), b.t().rows(1, 2), 1.0, cm);
        let want = naive(a.cols(1, 2), b.t().rows(1, 2));
        for i in 0..3 {
            assert_eq!(wide[i * 7], 1.0);
            assert_eq!(wide[i * 7 + 1], 1.0);
            for j in 0..5 {
                assert_eq!(wide[i * 7 + 2 + j], 1.0 + 2.0 * want[i * 5 + j]);
            }
        }
    }

    #[test]
    #[should_panic(expected = "gemm shapes")]
    fn mismatched_shapes_panic() {
        let a = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        gemm(1.0, MatRef::row_major(&a, 2, 3), MatRef::row_major(&a, 2, 3), 0.0, MatMut::row_major(&mut c, 2, 2));
    }
}
