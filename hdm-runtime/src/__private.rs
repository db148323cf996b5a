//! Helpers for generated code only; not a stable API.

pub use crate::aligned::AlignedVec;

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

/// An error making layer `field` of `network`, with both names in front.
pub fn in_layer(network: &str, field: &str, e: crate::Error) -> crate::Error {
    crate::Error::Other(format!("{network}.{field}: {e}"))
}

/// A zeroed buffer of `rows x width` elements for `network`, aligned to a cache line (see
/// [`crate::aligned`]), or an `Err` when its size overflows or the memory cannot be had (rather
/// than an abort): a trainer or predictor made for a huge batch, or a forward pass over a huge
/// view.
pub fn zeroed<T: crate::Float>(network: &str, rows: usize, width: usize) -> crate::Result<AlignedVec<T>> {
    let too_large = |what: String| {
        crate::Error::Other(format!("{network}: buffers for {rows} rows of {width} values {what}: use a smaller batch"))
    };
    let len = rows.checked_mul(width).ok_or_else(|| too_large("overflow usize".into()))?;
    let bytes = len.checked_mul(std::mem::size_of::<T>()).filter(|&b| b <= isize::MAX as usize);
    let bytes = bytes.ok_or_else(|| too_large("are larger than any memory".into()))?;
    AlignedVec::try_zeroed(len).ok_or_else(|| too_large(format!("need {bytes} bytes, which cannot be allocated")))
}
