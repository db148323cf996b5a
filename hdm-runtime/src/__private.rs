//! Helpers for generated code only; not a stable API.

/// The largest of `values` (0 for none), in a constant: a network's scratch memory per thread.
pub const fn max_of(values: &[usize]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < values.len() {
        if values[i] > max {
            max = values[i];
        }
        i += 1;
    }
    max
}
