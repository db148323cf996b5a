//! The gradient exchange of a data-parallel step: buckets of tensors in the order the backward
//! pass finishes them, each summed across processes in a fixed order as soon as it is complete.
//!
//! A bucket's vector (its tensors' gradients one after another; the first bucket also carries the
//! shards' losses) is cut into one chunk per process. Its exchange is three moves:
//!
//! 1. all-to-all: every process sends chunk `c` of each of its shards' vectors to process `c`;
//! 2. process `c` sums its chunk over all the shards of the batch, shard 0 first, each weighted by
//!    its share of the batch's rows: `g = w_0 g_0 + w_1 g_1 + ... + w_{S-1} g_{S-1}`, left to right,
//!    element by element (no fused multiply-add, so the vector width changes nothing);
//! 3. all-gather: every process receives every summed chunk.
//!
//! Each element is thus summed in the same order whatever the number of processes, and one process
//! holding all `S` shards computes the same bits. With one shard per process it moves what a ring
//! all-reduce moves (each process sends and receives `2 (P - 1) / P` of the vector); a process with
//! `k` shards sends `k` times as much in the first move.
//!
//! On several processes the moves run on a communication thread, so that they overlap the rest of
//! the backward pass; the step waits for a bucket only when it is about to update its tensors.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::Exchange;
use crate::{Error, Float, Result};

/// Where a tensor's gradient lies in its bucket.
#[derive(Clone, Copy, Debug)]
struct Slot {
    bucket: usize,
    offset: usize,
    len: usize,
}

/// A bucket's tensors and the split of its vector among the processes.
#[derive(Debug)]
struct BucketLayout {
    /// Its tensors, in the order the backward pass finishes them.
    tensors: Vec<usize>,
    /// Elements summed: the tensors' gradients, and in the first bucket the losses' slot.
    len: usize,
    /// Elements process 0 sends ahead of its chunk in the all-gather (the first shard's batch
    /// statistics, in the first bucket only).
    head: usize,
    /// Each process's chunk: `(start, len)` in the vector.
    chunks: Vec<(usize, usize)>,
}

/// The plan of the buckets, made once from the network's [`READY_ORDER`](crate::Network::READY_ORDER).
#[derive(Debug)]
pub(crate) struct Layout {
    ranks: usize,
    rank: usize,
    /// Shards per process.
    local: usize,
    slots: Vec<Slot>,
    buckets: Vec<BucketLayout>,
    /// Where the losses' slot is in the first bucket's vector.
    loss_at: usize,
}

impl Layout {
    /// Buckets of consecutive tensors of `order` (tensor `i` has `lens[i]` elements): the first
    /// closed once it holds `first_cap` elements, the others at `cap` (as PyTorch's DDP makes a
    /// small first bucket, so that communication starts early). `head` elements of batch
    /// statistics ride with the first bucket.
    pub(crate) fn new(
        order: &[usize],
        lens: &[usize],
        ranks: usize,
        rank: usize,
        local: usize,
        caps: (usize, usize),
        head: usize,
    ) -> Result<Self> {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        if sorted != (0..lens.len()).collect::<Vec<_>>() {
            return Err(Error::Other(format!(
                "the backward pass's order of tensors {order:?} is not an order of the {} tensors",
                lens.len()
            )));
        }
        let mut slots = vec![Slot { bucket: 0, offset: 0, len: 0 }; lens.len()];
        let mut buckets: Vec<BucketLayout> = Vec::new();
        let mut current = BucketLayout { tensors: Vec::new(), len: 0, head, chunks: Vec::new() };
        for &t in order {
            slots[t] = Slot { bucket: buckets.len(), offset: current.len, len: lens[t] };
            current.tensors.push(t);
            current.len += lens[t];
            let cap = if buckets.is_empty() { caps.0 } else { caps.1 };
            if current.len >= cap {
                buckets.push(std::mem::replace(
                    &mut current,
                    BucketLayout { tensors: Vec::new(), len: 0, head: 0, chunks: Vec::new() },
                ));
            }
        }
        if !current.tensors.is_empty() || buckets.is_empty() {
            buckets.push(current);
        }
        // The shards' losses are summed with the first bucket's gradients.
        let loss_at = buckets[0].len;
        buckets[0].len += 1;
        for b in &mut buckets {
            b.chunks = (0..ranks).map(|c| (c * b.len / ranks, (c + 1) * b.len / ranks - c * b.len / ranks)).collect();
        }
        Ok(Layout { ranks, rank, local, slots, buckets, loss_at })
    }

    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The tensors of bucket `b`, in order.
    #[cfg(test)]
    pub(crate) fn tensors(&self, b: usize) -> &[usize] {
        &self.buckets[b].tensors
    }

    /// The bucket of tensor `t`.
    pub(crate) fn bucket_of(&self, t: usize) -> usize {
        self.slots[t].bucket
    }
}

/// One bucket's memory, made once.
struct Buffers<T> {
    /// This process's shards' vectors, laid out by destination: for each process `q`, chunk `q`
    /// of each local shard.
    send: crate::aligned::AlignedVec<T>,
    /// Chunk `rank` of every shard of the batch, shard by shard.
    recv: crate::aligned::AlignedVec<T>,
    /// What this process gives the all-gather: (on process 0, the head, then) its summed chunk.
    mine: crate::aligned::AlignedVec<T>,
    /// The head, then the summed vector.
    gathered: crate::aligned::AlignedVec<T>,
    /// The weight of each shard of the batch in the sum.
    weights: Vec<T>,
    /// Tensors not yet put this step.
    waiting: usize,
    /// Byte counts and displacements of the two collectives.
    send_counts: Vec<i32>,
    send_displs: Vec<i32>,
    recv_counts: Vec<i32>,
    recv_displs: Vec<i32>,
    gather_counts: Vec<i32>,
    gather_displs: Vec<i32>,
}

#[derive(Default)]
struct Progress {
    submitted: u64,
    done: u64,
    stop: bool,
}

struct Shared<T> {
    layout: Layout,
    buckets: Vec<Mutex<Buffers<T>>>,
    progress: Mutex<Progress>,
    changed: Condvar,
    exchange: Arc<dyn Exchange>,
}

/// The exchange of a data-parallel trainer's gradients (see the module's documentation).
pub(crate) struct Reducer<T: Float> {
    shared: Arc<Shared<T>>,
    /// Buckets submitted before this step.
    base: u64,
    thread: Option<JoinHandle<()>>,
}

/// The byte counts and displacements of `(start, len)` parts of a buffer of `size`-byte elements,
/// as MPI takes them (`int`).
fn counts(parts: &[(usize, usize)], size: usize, what: &str) -> Result<(Vec<i32>, Vec<i32>)> {
    let mut c = Vec::with_capacity(parts.len());
    let mut d = Vec::with_capacity(parts.len());
    for &(start, len) in parts {
        let end = i32::try_from((start + len) * size).map_err(|_| {
            Error::Other(format!(
                "a gradient bucket's {what} of {} elements is more than MPI can count in bytes; \
                 use more processes or smaller buckets",
                start + len
            ))
        })?;
        c.push((len * size) as i32);
        d.push(end - (len * size) as i32);
    }
    Ok((c, d))
}

impl<T: Float> Reducer<T> {
    pub(crate) fn new(layout: Layout, exchange: Arc<dyn Exchange>) -> Result<Self> {
        let (ranks, rank, k) = (layout.ranks, layout.rank, layout.local);
        let shards = ranks * k;
        let size = std::mem::size_of::<T>();
        let mut buckets = Vec::with_capacity(layout.buckets.len());
        for b in &layout.buckets {
            let (_, mine_len) = b.chunks[rank];
            let own_head = if rank == 0 { b.head } else { 0 };
            let send_parts: Vec<(usize, usize)> = b.chunks.iter().map(|&(s, l)| (k * s, k * l)).collect();
            let recv_parts: Vec<(usize, usize)> = (0..ranks).map(|q| (q * k * mine_len, k * mine_len)).collect();
            let gather_parts: Vec<(usize, usize)> = b
                .chunks
                .iter()
                .enumerate()
                .map(|(q, &(s, l))| if q == 0 { (0, b.head + l) } else { (b.head + s, l) })
                .collect();
            let (send_counts, send_displs) = counts(&send_parts, size, "send buffer")?;
            let (recv_counts, recv_displs) = counts(&recv_parts, size, "receive buffer")?;
            let (gather_counts, gather_displs) = counts(&gather_parts, size, "gathered vector")?;
            buckets.push(Mutex::new(Buffers {
                send: crate::__private::zeroed("the gradient exchange", k, b.len)?,
                recv: crate::__private::zeroed("the gradient exchange", shards, mine_len)?,
                mine: crate::__private::zeroed("the gradient exchange", 1, own_head + mine_len)?,
                gathered: crate::__private::zeroed("the gradient exchange", 1, b.head + b.len)?,
                weights: vec![T::zero(); shards],
                waiting: b.tensors.len(),
                send_counts,
                send_displs,
                recv_counts,
                recv_displs,
                gather_counts,
                gather_displs,
            }));
        }
        let shared = Arc::new(Shared {
            layout,
            buckets,
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            exchange,
        });
        let thread = if ranks > 1 {
            let s = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("hdm-exchange".into())
                    .spawn(move || communicate(&s))
                    .map_err(|e| Error::Other(format!("cannot start the gradient exchange's thread: {e}")))?,
            )
        } else {
            None
        };
        Ok(Reducer { shared, base: 0, thread })
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.shared.layout
    }

    fn bucket(&self, b: usize) -> MutexGuard<'_, Buffers<T>> {
        self.shared.buckets[b].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.shared.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a step: the weight of each shard of the batch in the sums.
    pub(crate) fn begin(&mut self, weights: &[T]) {
        let submitted = self.progress().submitted;
        self.base = submitted;
        for (b, layout) in self.shared.buckets.iter().zip(&self.shared.layout.buckets) {
            let mut buf = b.lock().unwrap_or_else(|e| e.into_inner());
            buf.weights.copy_from_slice(weights);
            buf.waiting = layout.tensors.len();
        }
    }

    /// Where element `at` of local shard `l`'s vector of bucket `b` goes in its send buffer.
    fn send_index(&self, b: usize, l: usize, at: usize) -> usize {
        let layout = &self.shared.layout.buckets[b];
        let k = self.shared.layout.local;
        // The chunk holding `at` (chunks are contiguous and in order).
        let q = layout.chunks.partition_point(|&(s, len)| s + len <= at);
        let (start, len) = layout.chunks[q];
        k * start + l * len + (at - start)
    }

    /// Copies `values` into local shard `l`'s vector of bucket `b` from element `at`.
    fn put_at(buf: &mut Buffers<T>, this: &Self, b: usize, l: usize, mut at: usize, mut values: &[T]) {
        let chunks = &this.shared.layout.buckets[b].chunks;
        while !values.is_empty() {
            let q = chunks.partition_point(|&(s, len)| s + len <= at);
            let (start, len) = chunks[q];
            let n = values.len().min(start + len - at);
            let i = this.send_index(b, l, at);
            buf.send[i..i + n].copy_from_slice(&values[..n]);
            values = &values[n..];
            at += n;
        }
    }

    /// Local shard `l`'s loss.
    pub(crate) fn put_loss(&self, l: usize, loss: T) {
        let mut buf = self.bucket(0);
        Self::put_at(&mut buf, self, 0, l, self.shared.layout.loss_at, &[loss]);
    }

    /// The first shard's batch statistics (process 0 only), batch normalisation `i` at `offset`.
    pub(crate) fn put_head(&self, offset: usize, stats: &[T]) {
        let mut buf = self.bucket(0);
        buf.mine[offset..offset + stats.len()].copy_from_slice(stats);
    }

    /// Tensor `t`'s gradient of local shard `l`.
    pub(crate) fn put(&self, t: usize, l: usize, grad: &[T]) {
        let slot = self.shared.layout.slots[t];
        debug_assert_eq!(grad.len(), slot.len);
        let mut buf = self.bucket(slot.bucket);
        Self::put_at(&mut buf, self, slot.bucket, l, slot.offset, grad);
    }

    /// Tensor `t` is put for every local shard: its bucket's exchange starts when it was the
    /// bucket's last.
    pub(crate) fn tensor_ready(&self, t: usize) {
        let b = self.shared.layout.slots[t].bucket;
        let complete = {
            let mut buf = self.bucket(b);
            buf.waiting -= 1;
            buf.waiting == 0
        };
        if !complete {
            return;
        }
        if self.thread.is_none() {
            exchange_bucket(&self.shared, b);
            let mut p = self.progress();
            p.submitted += 1;
            p.done += 1;
        } else {
            let mut p = self.progress();
            debug_assert_eq!(p.submitted, self.base + b as u64, "buckets complete in order");
            p.submitted += 1;
            self.shared.changed.notify_all();
        }
    }

    /// Whether bucket `b`'s exchange has finished this step.
    pub(crate) fn is_done(&self, b: usize) -> bool {
        self.progress().done > self.base + b as u64
    }

    /// Waits for bucket `b`'s exchange.
    pub(crate) fn wait(&self, b: usize) {
        let mut p = self.progress();
        while p.done <= self.base + b as u64 {
            p = self.shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Calls `f(tensor, summed gradient)` for each tensor of bucket `b` (after [`wait`](Self::wait)).
    pub(crate) fn each_sum(&self, b: usize, mut f: impl FnMut(usize, &[T])) {
        let layout = &self.shared.layout;
        let buf = self.bucket(b);
        let head = layout.buckets[b].head;
        for &t in &layout.buckets[b].tensors {
            let s = layout.slots[t];
            f(t, &buf.gathered[head + s.offset..head + s.offset + s.len]);
        }
    }

    /// The batch's loss: the shards' losses summed with their weights (after bucket 0's exchange).
    pub(crate) fn loss(&self) -> T {
        let buf = self.bucket(0);
        buf.gathered[self.shared.layout.buckets[0].head + self.shared.layout.loss_at]
    }

    /// The first shard's batch statistics, as process 0 put them (after bucket 0's exchange).
    pub(crate) fn head(&self, mut f: impl FnMut(&[T])) {
        let buf = self.bucket(0);
        f(&buf.gathered[..self.shared.layout.buckets[0].head]);
    }
}

impl<T: Float> Drop for Reducer<T> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.progress().stop = true;
            self.shared.changed.notify_all();
            let _ = thread.join();
        }
    }
}

/// The communication thread: exchanges the buckets in the order they are submitted.
fn communicate<T: Float>(shared: &Shared<T>) {
    let buckets = shared.layout.buckets.len() as u64;
    let mut next = 0u64;
    loop {
        {
            let mut p = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
            while p.submitted <= next && !p.stop {
                p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.submitted <= next {
                return;
            }
        }
        exchange_bucket(shared, (next % buckets) as usize);
        next += 1;
        let mut p = shared.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.done = next;
        shared.changed.notify_all();
    }
}

/// The three moves of one bucket's exchange.
fn exchange_bucket<T: Float>(shared: &Shared<T>, b: usize) {
    let layout = &shared.layout;
    let bl = &layout.buckets[b];
    let mut guard = shared.buckets[b].lock().unwrap_or_else(|e| e.into_inner());
    let buf = &mut *guard;
    let m = bl.chunks[layout.rank].1;
    if layout.ranks == 1 {
        // One process: its shards' vectors are already laid out as the sum reads them, and the
        // sum goes straight to its place (the collectives would only copy).
        let head = bl.head;
        buf.gathered[..head].copy_from_slice(&buf.mine[..head]);
        weighted_sum(&buf.send, &buf.weights, &mut buf.gathered[head..head + m]);
        return;
    }
    shared.exchange.all_to_all(
        bytes(&buf.send),
        &buf.send_counts,
        &buf.send_displs,
        bytes_mut(&mut buf.recv),
        &buf.recv_counts,
        &buf.recv_displs,
    );
    let own_head = if layout.rank == 0 { bl.head } else { 0 };
    weighted_sum(&buf.recv, &buf.weights, &mut buf.mine[own_head..own_head + m]);
    shared.exchange.all_gather(bytes(&buf.mine), bytes_mut(&mut buf.gathered), &buf.gather_counts, &buf.gather_displs);
}

/// `sum = w_0 g_0 + w_1 g_1 + ...`, left to right, element by element, where `shards` holds the
/// vectors `g_s` one after another (each as long as `sum`).
fn weighted_sum<T: Float>(shards: &[T], weights: &[T], sum: &mut [T]) {
    let m = sum.len();
    if m == 0 {
        return;
    }
    let mut shards = shards.chunks_exact(m).zip(weights);
    if let Some((g, &w)) = shards.next() {
        for (s, &g) in sum.iter_mut().zip(g) {
            *s = w * g;
        }
    }
    for (g, &w) in shards {
        for (s, &g) in sum.iter_mut().zip(g) {
            *s += w * g;
        }
    }
}

/// The bytes of a slice of `f32` or `f64`.
fn bytes<T: Float>(x: &[T]) -> &[u8] {
    // SAFETY: `Float` is sealed and implemented for `f32` and `f64` only: plain old data without
    // padding, every byte initialised.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

fn bytes_mut<T: Float>(x: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes`; any bytes are a valid `f32` or `f64`.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_order_and_the_caps() {
        // Tensors 0..4 of 10, 5, 30, 2 elements, finished last first.
        let l = Layout::new(&[3, 2, 1, 0], &[10, 5, 30, 2], 2, 0, 1, (4, 40), 6).unwrap();
        assert_eq!(l.buckets(), 2);
        assert_eq!(l.tensors(0), &[3, 2]); // closed at 32 >= 4
        assert_eq!(l.tensors(1), &[1, 0]);
        assert_eq!((l.buckets[0].len, l.buckets[0].head, l.loss_at), (33, 6, 32));
        assert_eq!(l.buckets[0].chunks, vec![(0, 16), (16, 17)]);
        assert_eq!(l.bucket_of(0), 1);
        assert!(Layout::new(&[0, 0], &[1, 1], 1, 0, 1, (1, 1), 0).is_err());
    }
}
