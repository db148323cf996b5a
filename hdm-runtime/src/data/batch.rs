//! Mini-batches in a seeded order, copied into buffers made once.

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2};

use super::Dataset;
use crate::{Error, Float, Result, Rng};

/// One mini-batch, borrowed from the [`Batcher`]'s buffers until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a, T> {
    /// `[b, features]`: the examples, one per row (`b` is the batch size, or less for the last
    /// batch of an epoch).
    pub x: ArrayView2<'a, T>,
    /// `[b]`: their labels.
    pub labels: ArrayView1<'a, usize>,
    /// `[b]`: where they are in the dataset.
    pub indices: &'a [usize],
    /// The batch's position in the epoch, from 0.
    pub index: usize,
}

impl<T> Batch<'_, T> {
    /// The number of examples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (never, for a batch a [`Batcher`] yields).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Splits a [`Dataset`] into mini-batches, in a new seeded order each epoch.
///
/// Epoch `e` visits the examples in the order of a Fisher-Yates shuffle ([`Rng::shuffle`]) of
/// `0..n` by `Rng::new(Batcher::epoch_seed(seed, e))`, so the order depends only on the seed and
/// the epoch number: two trainers with the same seed see the same batches, and a run resumed at
/// epoch `e` sees what it would have seen. [`in_order`](Batcher::in_order) keeps the dataset's
/// order (for evaluation).
///
/// Examples are copied into buffers made by [`new`](Batcher::new), so that
/// [`start_epoch`](Batcher::start_epoch) and [`next_batch`](Batcher::next_batch) never allocate.
/// A batcher is a lending iterator: a [`Batch`] borrows those buffers until the next call.
/// The last batch of an epoch is smaller when the batch size does not divide the dataset, unless
/// [`drop_last`](Batcher::drop_last) is set.
#[derive(Debug)]
pub struct Batcher<'d, T> {
    data: &'d Dataset<T>,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    drop_last: bool,
    order: Vec<usize>,
    pos: usize,
    next_index: usize,
    x: Array2<T>,
    labels: Array1<usize>,
}

impl<'d, T: Float> Batcher<'d, T> {
    /// Batches of `batch_size` examples of `data`, shuffled each epoch from `seed`.
    ///
    /// The order starts as epoch 0's ([`start_epoch`](Batcher::start_epoch)`(0)` is implied).
    /// A zero batch size is an error.
    pub fn new(data: &'d Dataset<T>, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Other("the batch size must be at least 1".into()));
        }
        let rows = batch_size.min(data.len());
        let mut batcher = Batcher {
            data,
            batch_size,
            seed,
            shuffle: true,
            drop_last: false,
            order: (0..data.len()).collect(),
            pos: 0,
            next_index: 0,
            x: Array2::zeros((rows, data.features())),
            labels: Array1::zeros(rows),
        };
        batcher.start_epoch(0);
        Ok(batcher)
    }

    /// Batches of `batch_size` examples in the dataset's own order, every epoch.
    pub fn in_order(data: &'d Dataset<T>, batch_size: usize) -> Result<Self> {
        let mut batcher = Self::new(data, batch_size, 0)?;
        batcher.shuffle = false;
        batcher.start_epoch(0);
        Ok(batcher)
    }

    /// Whether to skip the last batch of an epoch when it is smaller than the batch size.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// The seed of epoch `epoch`'s shuffle: a SplitMix64-style mix of `seed` and `epoch`
    /// (which [`Rng::new`] mixes again).
    pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
        let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Starts epoch `epoch` (from 0): computes its order and rewinds. Does not allocate.
    pub fn start_epoch(&mut self, epoch: u64) {
        for (i, slot) in self.order.iter_mut().enumerate() {
            *slot = i;
        }
        if self.shuffle {
            Rng::new(Self::epoch_seed(self.seed, epoch)).shuffle(&mut self.order);
        }
        self.pos = 0;
        self.next_index = 0;
    }

    /// Skips the next `n` batches of the current epoch (to resume a run in the middle of an
    /// epoch).
    pub fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n.saturating_mul(self.batch_size)).min(self.order.len());
        self.next_index += n;
    }

    /// The next batch of the current epoch, or `None` when the epoch is over. Does not allocate.
    pub fn next_batch(&mut self) -> Option<Batch<'_, T>> {
        let remaining = self.order.len() - self.pos;
        let b = remaining.min(self.batch_size);
        if b == 0 || (self.drop_last && b < self.batch_size) {
            return None;
        }
        let indices = &self.order[self.pos..self.pos + b];
        let width = self.x.ncols();
        match (self.x.as_slice_mut(), self.data.images.as_slice()) {
            (Some(dst), Some(src)) => {
                for (k, &i) in indices.iter().enumerate() {
                    if let Some(&ahead) = indices.get(k + AHEAD) {
                        prefetch(&src[ahead * width..(ahead + 1) * width]);
                    }
                    dst[k * width..(k + 1) * width].copy_from_slice(&src[i * width..(i + 1) * width]);
                }
            }
            _ => {
                for (k, &i) in indices.iter().enumerate() {
                    self.x.row_mut(k).assign(&self.data.images.row(i));
                }
            }
        }
        for (k, &i) in indices.iter().enumerate() {
            self.labels[k] = self.data.labels[i];
        }
        self.pos += b;
        let index = self.next_index;
        self.next_index += 1;
        Some(Batch { x: self.x.slice(s![..b, ..]), labels: self.labels.slice(s![..b]), indices, index })
    }

    /// The batch size (the size of every batch but possibly the last).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of batches in an epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &'d Dataset<T> {
        self.data
    }
}

/// How many rows ahead of the one it copies [`Batcher::next_batch`] asks the CPU to fetch: the
/// rows are scattered over the dataset, so that each costs a trip to memory (or a far cache)
/// the hardware prefetcher cannot foresee.
const AHEAD: usize = 4;

/// Asks the CPU to bring `row` into its caches (a hint: no effect on any value).
#[inline(always)]
fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(row);
        let start = row.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch of an address inside `row`; it reads nothing.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(n: usize) -> Dataset<f64> {
        // Example i has features [i, 10 i] and label i % 3.
        let images = Array2::from_shape_fn((n, 2), |(i, j)| (i * if j == 0 { 1 } else { 10 }) as f64);
        Dataset::new(images, (0..n).map(|i| i % 3).collect(), 1, 2).unwrap()
    }

    fn epoch(b: &mut Batcher<'_, f64>, e: u64) -> Vec<Vec<usize>> {
        b.start_epoch(e);
        let mut out = Vec::new();
        while let Some(batch) = b.next_batch() {
            // The copied rows and labels are those of the indices.
            for (k, &i) in batch.indices.iter().enumerate() {
                assert_eq!(batch.x.row(k).to_vec(), [i as f64, 10.0 * i as f64]);
                assert_eq!(batch.labels[k], i % 3);
            }
            assert_eq!(batch.index, out.len());
            out.push(batch.indices.to_vec());
        }
        out
    }

    #[test]
    fn every_example_once_per_epoch_with_a_partial_last_batch() {
        let data = dataset(10);
        let mut b = Batcher::new(&data, 4, 1).unwrap();
        assert_eq!(b.batches_per_epoch(), 3);
        let e0 = epoch(&mut b, 0);
        assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<usize> = e0.concat();
        assert_ne!(all, (0..10).collect::<Vec<_>>(), "shuffled");
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert!(b.next_batch().is_none());
    }

    #[test]
    fn order_is_the_documented_shuffle_and_depends_on_seed_and_epoch_only() {
        let data = dataset(50);
        let mut b = Batcher::new(&data, 50, 7).unwrap();
        let e3 = epoch(&mut b, 3).concat();
        let mut expected: Vec<usize> = (0..50).collect();
        Rng::new(Batcher::<f64>::epoch_seed(7, 3)).shuffle(&mut expected);
        assert_eq!(e3, expected);
        // Another batcher, after other epochs, gives the same epoch 3.
        let mut c = Batcher::new(&data, 50, 7).unwrap();
        epoch(&mut c, 0);
        epoch(&mut c, 1);
        assert_eq!(epoch(&mut c, 3).concat(), e3);
        assert_ne!(epoch(&mut c, 4).concat(), e3);
        assert_ne!(epoch(&mut Batcher::new(&data, 50, 8).unwrap(), 3).concat(), e3);
    }

    #[test]
    fn drop_last_in_order_and_skip() {
        let data = dataset(10);
        let mut b = Batcher::in_order(&data, 4).unwrap().drop_last(true);
        assert_eq!(b.batches_per_epoch(), 2);
        assert_eq!(epoch(&mut b, 5), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        b.start_epoch(0);
        b.skip(1);
        let batch = b.next_batch().unwrap();
        assert_eq!((batch.indices, batch.index), (&[4, 5, 6, 7][..], 1));
        assert!(b.next_batch().is_none());
    }

    #[test]
    fn batch_larger_than_the_dataset_and_empty_dataset() {
        let data = dataset(3);
        let mut b = Batcher::new(&data, 100, 0).unwrap();
        assert_eq!(epoch(&mut b, 0).len(), 1);
        assert!(Batcher::new(&data, 100, 0).unwrap().drop_last(true).next_batch().is_none());
        let empty = dataset(0);
        let mut b = Batcher::new(&empty, 10, 0).unwrap();
        assert_eq!(b.batches_per_epoch(), 0);
        assert!(b.next_batch().is_none());
        assert!(matches!(Batcher::new(&data, 0, 0), Err(Error::Other(_))));
    }
}
