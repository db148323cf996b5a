//! Data-parallel training: every process holds the whole network, computes the gradient of its
//! shards of each batch, and the gradients are summed across processes, each layer's as soon as
//! the backward pass has finished it.
//!
//! # The step
//!
//! A batch of `B` rows is cut into `S` shards of consecutive rows (as even as they come: the first
//! `B mod S` shards have one row more). Each of `P` processes takes `S / P` consecutive shards, and
//! for each runs the forward pass, the loss and the backward pass on its own rows (batch
//! normalisation normalises a shard with the shard's statistics, as PyTorch's DDP does without
//! `SyncBatchNorm`). The batch's gradient and loss are
//!
//! ```text
//! g = w_0 g_0 + w_1 g_1 + ... + w_{S-1} g_{S-1},   w_s = rows of shard s / B
//! ```
//!
//! summed in that order, element by element, by the process that owns the element's chunk (see
//! the exchange below). So the result does not depend on the number of processes: a single
//! process with the same `S` computes the same bits as `P` processes for every `P` dividing `S`,
//! and with `S = 1` the bits of [`Trainer::step`] on the whole batch. Against the unsharded
//! step the shards change only the rounding of the sum (and the batch statistics of batch
//! normalisation).
//!
//! The running statistics of batch normalisation are blended from shard 0's batch statistics on
//! every process (process 0 sends them along with the first exchange), so they too are the same
//! on every process and for every `P`.
//!
//! # The exchange, planned by the compiler
//!
//! `#[network]` knows, while compiling, the order in which the backward pass finishes each
//! tensor's gradient ([`Network::READY_ORDER`]). The trainer cuts that order into buckets once
//! (the first small, so that communication starts early, then up to [`Config::bucket_bytes`]),
//! and the generated backward pass starts each bucket's exchange the moment its last tensor is
//! final, on a communication thread, while the pass goes on with the layers below. A bucket is
//! waited for only when its tensors are about to be updated (in the pass itself when an earlier
//! bucket is already back, otherwise after it). Optimizers that need every gradient first (a
//! global norm, gradient clipping, the finite guard) wait for all of them.
//!
//! A bucket is summed in three moves (all-to-all of chunks, a weighted sum of each chunk in shard
//! order, all-gather), which with one shard per process move as much as a ring all-reduce, and
//! make the sum's order fixed, which MPI's own reductions do not promise.
//!
//! # Processes
//!
//! The processes meet through an [`Exchange`]: [`Local`] for one process (the sharded step
//! without communication: to check the bits against a run on several processes, or to
//! accumulate gradients over shards), or `Mpi` (feature `mpi`) for processes started by `mpirun`.
//! Every process must run the same program with the same flags and data: [`DataParallel::new`]
//! compares the network, its initial weights, the optimizer and the sharding across processes
//! and refuses to start when they differ ([`check_same`] compares more, such as the data).
//!
//! # Example
//!
//! The README's section "Distributed training" has a complete program (run as a test): four
//! shards on one process ([`Local`]), which the same program started by `mpirun -np 2` or `-np 4`
//! with `Mpi::init()?` in place of `Arc::new(Local)` matches bit for bit. The examples `mnist`
//! and `cnn` (`--distributed`) show a whole training run, `dist_bench` the cost of the exchange;
//! `docs/distributed.md` the design, the measurements and a model of the step on a cluster.

mod reducer;

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use mpi::Mpi;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{ArrayView1, ArrayView2};

use crate::data::{Batch, Dataset};
use crate::gemm::{MatRef, Pool};
use crate::network::{check_input, check_train_batch, update_tensor, BackwardHook, BackwardPass, ReadOnly};
use crate::optim::Optimizer;
use crate::optim::Requirement;
use crate::path::Accepts;
use crate::train::{Evaluator, Solver};
use crate::{Error, Float, Network, Result, Trainer};

use reducer::{Layout, Reducer};

/// The processes of a data-parallel run and the two collectives the gradient exchange needs,
/// on bytes, with MPI's counts and displacements (in bytes).
///
/// Every process calls the collectives in the same order; they block until the data is there.
pub trait Exchange: Send + Sync {
    /// This process's number, from 0.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn ranks(&self) -> usize;
    /// `MPI_Alltoallv`: `send[send_displs[q]..][..send_counts[q]]` goes to process `q`, and what
    /// process `q` sends here arrives at `recv[recv_displs[q]..][..recv_counts[q]]`.
    fn all_to_all(
        &self,
        send: &[u8],
        send_counts: &[i32],
        send_displs: &[i32],
        recv: &mut [u8],
        recv_counts: &[i32],
        recv_displs: &[i32],
    );
    /// `MPI_Allgatherv`: every process's `send` arrives at `recv[displs[q]..][..counts[q]]`.
    fn all_gather(&self, send: &[u8], recv: &mut [u8], counts: &[i32], displs: &[i32]);
    /// Ends every process of the run: prints `message` (naming this process) and exits with an
    /// error, so that no process waits forever for one that has failed.
    fn abort(&self, message: &str) -> !;
}

/// One process: the collectives are copies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Exchange for Local {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn all_to_all(&self, send: &[u8], sc: &[i32], sd: &[i32], recv: &mut [u8], rc: &[i32], rd: &[i32]) {
        let (sd, rd, n) = (sd[0] as usize, rd[0] as usize, sc[0].min(rc[0]) as usize);
        recv[rd..rd + n].copy_from_slice(&send[sd..sd + n]);
    }
    fn all_gather(&self, send: &[u8], recv: &mut [u8], counts: &[i32], displs: &[i32]) {
        let (d, n) = (displs[0] as usize, counts[0] as usize);
        recv[d..d + n].copy_from_slice(&send[..n]);
    }
    fn abort(&self, message: &str) -> ! {
        eprintln!("error: {message}");
        std::process::exit(1)
    }
}

/// A 64-bit FNV-1a hash of `bytes`, to compare what processes hold without sending it.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Compares `items` (`(what, fingerprint)`) across processes: an `Err` on every process naming
/// the first item that differs and the processes whose value is not process 0's.
pub fn check_same(exchange: &dyn Exchange, items: &[(&str, u64)]) -> Result<()> {
    let ranks = exchange.ranks();
    let mine: Vec<u8> = items.iter().flat_map(|(_, h)| h.to_le_bytes()).collect();
    let mut all = vec![0u8; mine.len() * ranks];
    let counts = vec![mine.len() as i32; ranks];
    let displs: Vec<i32> = (0..ranks).map(|q| (q * mine.len()) as i32).collect();
    exchange.all_gather(&mine, &mut all, &counts, &displs);
    for (i, (what, _)) in items.iter().enumerate() {
        let of = |q: usize| {
            let at = q * mine.len() + 8 * i;
            u64::from_le_bytes(all[at..at + 8].try_into().expect("8 bytes"))
        };
        let differ: Vec<String> = (1..ranks).filter(|&q| of(q) != of(0)).map(|q| q.to_string()).collect();
        if !differ.is_empty() {
            return Err(Error::Other(format!(
                "data-parallel run: the {what} of process(es) {} differ(s) from process 0's; every process must run \
                 the same program with the same flags and data",
                differ.join(", ")
            )));
        }
    }
    Ok(())
}

/// The fingerprint of a dataset (its shape, every pixel and every label).
pub fn dataset_fingerprint<T: Float>(data: &Dataset<T>) -> u64 {
    let mut h = fingerprint(format!("{:?} {} {}", data.images.dim(), data.rows, data.cols).as_bytes());
    for &x in data.images.iter() {
        h = (h ^ x.to_f64().to_bits()).wrapping_mul(0x0100_0000_01b3);
    }
    for &l in data.labels.iter() {
        h = (h ^ l as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A target that can be cut into shards of rows: class labels, or a matrix of targets.
pub trait Rows: Copy {
    /// Rows `start..end`.
    fn rows(self, start: usize, end: usize) -> Self;
}

impl Rows for ArrayView1<'_, usize> {
    fn rows(self, start: usize, end: usize) -> Self {
        self.slice_move(ndarray::s![start..end])
    }
}

impl<T> Rows for ArrayView2<'_, T> {
    fn rows(self, start: usize, end: usize) -> Self {
        self.slice_move(ndarray::s![start..end, ..])
    }
}

/// How a [`DataParallel`] trainer shards and exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Shards per batch, a multiple of the number of processes (the default, 0, means one per
    /// process). Fix it to get the same bits on any number of processes dividing it.
    pub shards: usize,
    /// Bytes of gradients per bucket: the first bucket (finished first) and the others, as
    /// PyTorch's DDP (1 MB and 25 MB by default; `bucket_cap_mb`).
    pub bucket_bytes: (usize, usize),
    /// Start each bucket's exchange from the backward pass as soon as it is complete (the
    /// default); `false` waits for the end of the pass and then exchanges every bucket, for
    /// comparison.
    pub overlap: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { shards: 0, bucket_bytes: (1 << 20, 25 << 20), overlap: true }
    }
}

/// A trainer whose steps are data-parallel across the processes of an [`Exchange`] (see the
/// module's documentation). Every process makes one from the same network and optimizer and
/// calls [`step`](DataParallel::step) with the same whole batch; each computes its own shards.
/// After each step the parameters, the optimizer's state and the running statistics are the same
/// on every process. Does not allocate inside a step.
pub struct DataParallel<T: Float, M: Network<T>, O: Optimizer<T>> {
    trainer: Trainer<T, M, O>,
    /// The gradients of the local shards but the last (whose gradient the trainer holds).
    others: Vec<M>,
    reducer: Reducer<T>,
    exchange: Arc<dyn Exchange>,
    shards: usize,
    max_batch: usize,
    overlap: bool,
    weights: Vec<T>,
    /// Time spent waiting for exchanges (the part the backward pass did not hide).
    waited: Duration,
    /// Whether the trainer's gradients are not yet the last batch's (kept in the buckets).
    grads_stale: bool,
}

impl<T: Float, M: Network<T>, O: Optimizer<T>> DataParallel<T, M, O> {
    /// A trainer for batches of up to `max_batch` rows. Compares the network, its weights, the
    /// optimizer and `config` across the processes first: an `Err` when they differ.
    pub fn new(model: &M, optimizer: O, max_batch: usize, config: Config, exchange: Arc<dyn Exchange>) -> Result<Self>
    where
        M::PathCapability: Accepts<O::Requires>,
    {
        let (ranks, rank) = (exchange.ranks(), exchange.rank());
        let shards = if config.shards == 0 { ranks } else { config.shards };
        if shards % ranks != 0 {
            return Err(Error::Other(format!(
                "{}: {shards} shards cannot be shared by {ranks} processes (make it a multiple)",
                M::NAME
            )));
        }
        if max_batch < shards {
            return Err(Error::Other(format!("{}: a batch of {max_batch} rows cannot fill {shards} shards", M::NAME)));
        }
        let mut weights_hash = 0xcbf2_9ce4_8422_2325u64;
        for i in 0..M::TENSORS {
            for &x in model.__tensor(i) {
                weights_hash = (weights_hash ^ x.to_f64().to_bits()).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let setup = format!(
            "{} {} {max_batch} {shards} {:?} {}",
            optimizer.name(),
            crate::train::settings(&optimizer.hyperparameters()),
            config.bucket_bytes,
            config.overlap
        );
        check_same(
            &*exchange,
            &[
                ("network", fingerprint(format!("{} {}", M::NAME, M::STRUCTURE).as_bytes())),
                ("initial weights", weights_hash),
                ("optimizer, batch or sharding", fingerprint(setup.as_bytes())),
            ],
        )?;
        let local = shards / ranks;
        let trainer = Trainer::try_new(model, optimizer, max_batch.div_ceil(shards))?;
        let lens: Vec<usize> = (0..M::TENSORS).map(|i| model.__tensor(i).len()).collect();
        let size = std::mem::size_of::<T>();
        let caps = (config.bucket_bytes.0.div_ceil(size).max(1), config.bucket_bytes.1.div_ceil(size).max(1));
        let head = stats_len::<T, M>()?;
        let layout = Layout::new(M::READY_ORDER, &lens, ranks, rank, local, caps, head)?;
        let others = (0..local - 1).map(|_| M::try_zeros()).collect::<Result<Vec<_>>>()?;
        Ok(DataParallel {
            trainer,
            others,
            reducer: Reducer::new(layout, Arc::clone(&exchange))?,
            exchange,
            shards,
            max_batch,
            overlap: config.overlap,
            weights: vec![T::zero(); shards],
            waited: Duration::ZERO,
            grads_stale: false,
        })
    }

    /// Clips the batch's gradient to a global norm of `max_norm` before each update
    /// ([`Trainer::with_clip_grad_norm`]); the updates then wait for every bucket.
    ///
    /// # Panics
    /// If `max_norm` is not a positive number.
    pub fn with_clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.trainer = self.trainer.with_clip_grad_norm(max_norm);
        self
    }

    /// Scales the learning rate by `schedule` at every step ([`Trainer::with_schedule`]).
    pub fn with_schedule(mut self, schedule: crate::Schedule) -> Self {
        self.trainer = self.trainer.with_schedule(schedule);
        self
    }

    /// Checks the batch's loss and gradient for non-finite values before each update
    /// ([`Trainer::with_finite_guard`]); every process decides alike, on the same sums.
    pub fn with_finite_guard(mut self, on: crate::OnNonFinite) -> Self {
        self.trainer = self.trainer.with_finite_guard(on);
        self
    }

    /// Flushes subnormal values in the optimizer's update ([`Trainer::with_flush_subnormals`]).
    pub fn with_flush_subnormals(mut self, on: bool) -> Self {
        self.trainer = self.trainer.with_flush_subnormals(on);
        self
    }

    /// Runs the passes on `pool` ([`Trainer::with_pool`]).
    pub fn with_pool(mut self, pool: Arc<Pool<T>>) -> Self {
        self.trainer = self.trainer.with_pool(pool);
        self
    }

    /// The gradient of the last step's batch (the weighted sum of its shards'), shaped like the
    /// network; clipped when the trainer clips.
    pub fn gradients(&mut self) -> &M {
        if std::mem::take(&mut self.grads_stale) {
            let grads = &mut self.trainer.grads;
            for b in 0..self.reducer.layout().buckets() {
                self.reducer.each_sum(b, |i, g| grads.__tensor_mut(i).copy_from_slice(g));
            }
        }
        &self.trainer.grads
    }

    /// The single-process trainer inside: its optimizer, state, step count, checkpoints (its
    /// own `gradients` are those of a shard: the batch's are [`gradients`](Self::gradients)).
    /// Its batches are shards.
    pub fn trainer(&self) -> &Trainer<T, M, O> {
        &self.trainer
    }

    /// The same, mutable (to load a checkpoint, or set a schedule or clipping).
    pub fn trainer_mut(&mut self) -> &mut Trainer<T, M, O> {
        self.gradients();
        &mut self.trainer
    }

    /// The processes.
    pub fn exchange(&self) -> &Arc<dyn Exchange> {
        &self.exchange
    }

    /// Shards per batch.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The largest batch.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Gradient buckets.
    pub fn buckets(&self) -> usize {
        self.reducer.layout().buckets()
    }

    /// Time this process has spent waiting for gradient exchanges to finish, over every step
    /// so far: the communication the backward pass did not hide.
    pub fn exchange_wait(&self) -> Duration {
        self.waited
    }

    /// One data-parallel step on a whole batch (every process passes the same): this process's
    /// shards forward and backward, the gradients exchanged, the update. Returns the batch's
    /// loss (its shards' losses weighted by their rows), the same on every process.
    pub fn step<'x, 't>(
        &mut self,
        model: &mut M,
        x: impl crate::network::Input<'x, T>,
        target: M::Target<'t>,
    ) -> Result<T>
    where
        M::Target<'t>: Rows,
    {
        self.trainer.optimizer.validate()?;
        let x = x.__rows(M::INPUT_SHAPE, M::NAME)?;
        let batch = check_input::<T, M>(&x, Some(self.max_batch))?;
        M::__check_target(&target, batch)?;
        if batch < self.shards {
            return Err(Error::Other(format!(
                "{}: a batch of {batch} rows cannot fill {} shards",
                M::NAME,
                self.shards
            )));
        }
        check_train_batch::<T, M>(batch / self.shards)?;
        for s in 0..self.shards {
            let (a, b) = shard_rows(batch, self.shards, s);
            self.weights[s] = T::of((b - a) as f64 / batch as f64);
        }
        self.reducer.begin(&self.weights);
        let pool = Arc::clone(&self.trainer.pool);
        let _awake = pool.awake();
        let tr = &mut self.trainer;
        // (Gradients a step of the trainer alone kept as outer products are stale from here.)
        tr.write_deferred_gradients();
        let t = tr.t + 1;
        let step = tr.prepare(t);
        if O::Requires::PATH_SCALES {
            model.__path_scales(&mut tr.buffers, &mut tr.states, &pool);
        }
        let immediate = self.overlap && tr.clip_grad_norm.is_none() && tr.on_nonfinite == crate::OnNonFinite::Update;
        let local = self.others.len() + 1;
        let first = self.exchange.rank() * local;
        let pass = BackwardPass { accumulate: false, input_grad: false, params: true };
        let mut sum = T::zero();
        let mut applied = 0;
        for l in 0..local {
            let (a, b) = shard_rows(batch, self.shards, first + l);
            let xs = MatRef::from(x.slice(ndarray::s![a..b, ..]));
            model.__forward(&mut tr.buffers, xs, b - a, &pool, true);
            let loss = M::__loss(&mut tr.buffers, target.rows(a, b), b - a, true);
            self.reducer.put_loss(l, loss);
            if first + l == 0 {
                let mut at = 0;
                for i in 0..M::BATCH_STATS {
                    let st = M::__batch_stats(&mut tr.buffers, i);
                    self.reducer.put_head(at, st);
                    at += st.len();
                }
            }
            if l + 1 < local {
                M::__backward(&mut ReadOnly(&*model), &mut self.others[l], &mut tr.buffers, xs, b - a, &pool, pass);
                continue;
            }
            let mut hook = ExchangeHook {
                model: &mut *model,
                others: &self.others,
                reducer: &self.reducer,
                optimizer: &tr.optimizer,
                states: &mut tr.states,
                step,
                immediate,
                overlap: self.overlap,
                sum: T::zero(),
                pool: &pool,
                applied: 0,
            };
            M::__backward(&mut hook, &mut tr.grads, &mut tr.buffers, xs, b - a, &pool, pass);
            (sum, applied) = (hook.sum, hook.applied);
        }
        if !self.overlap {
            for &i in M::READY_ORDER {
                self.reducer.tensor_ready(i);
            }
        }
        // The rest of the buckets: waited for, their tensors updated when they may be at once.
        for b in applied..self.reducer.layout().buckets() {
            if !self.reducer.is_done(b) {
                let since = Instant::now();
                self.reducer.wait(b);
                self.waited += since.elapsed();
            }
            let (grads, states, optimizer) = (&mut tr.grads, &mut tr.states, &tr.optimizer);
            self.reducer.each_sum(b, |i, g| {
                if immediate {
                    sum += update_tensor(&pool, optimizer, &step, model.__tensor_mut(i), g, &mut states[i]);
                } else {
                    // Clipping and the finite guard read the batch's gradient from the trainer.
                    grads.__tensor_mut(i).copy_from_slice(g);
                }
            });
        }
        // Otherwise it is copied there when asked for (`gradients`).
        self.grads_stale = immediate;
        let loss = self.reducer.loss();
        let mut norm2 = None;
        if !immediate {
            if !tr.guard("the loss", loss.to_f64())? {
                return Ok(loss);
            }
            norm2 = tr.deferred_norm2();
            if !tr.guard_gradients(norm2)? {
                return Ok(loss);
            }
        }
        if M::BATCH_STATS > 0 {
            let buffers = &mut tr.buffers;
            self.reducer.head(|head| {
                let mut at = 0;
                for i in 0..M::BATCH_STATS {
                    let st = M::__batch_stats(buffers, i);
                    st.copy_from_slice(&head[at..at + st.len()]);
                    at += st.len();
                }
            });
            let (a, b) = shard_rows(batch, self.shards, 0);
            model.__update_running_stats(&tr.buffers, b - a);
        }
        tr.t = t;
        tr.finish_update(model, step, sum, !immediate, norm2);
        Ok(loss)
    }
}

/// The length of all the batch statistics a training forward pass leaves in `trainer`'s buffers.
fn stats_len<T: Float, M: Network<T>>() -> Result<usize> {
    // Their size does not depend on the batch; a set of buffers for one row tells it.
    let mut b = M::__buffers(1, false)?;
    Ok((0..M::BATCH_STATS).map(|i| M::__batch_stats(&mut b, i).len()).sum())
}

/// Rows `start..end` of shard `s` of `shards` of a batch of `batch` rows: the first
/// `batch % shards` shards have one row more.
fn shard_rows(batch: usize, shards: usize, s: usize) -> (usize, usize) {
    let (base, extra) = (batch / shards, batch % shards);
    let start = s * base + s.min(extra);
    (start, start + base + usize::from(s < extra))
}

/// The backward hook of the step's last local shard: puts each finished tensor's gradients into
/// its bucket, starts the bucket's exchange when it is complete, and updates the tensors of the
/// buckets already back.
struct ExchangeHook<'a, T: Float, M, O: Optimizer<T>> {
    model: &'a mut M,
    others: &'a [M],
    reducer: &'a Reducer<T>,
    optimizer: &'a O,
    states: &'a mut [O::State],
    step: O::Step,
    immediate: bool,
    overlap: bool,
    sum: T,
    pool: &'a Pool<T>,
    applied: usize,
}

impl<T: Float, M: Network<T>, O: Optimizer<T>> BackwardHook<T, M> for ExchangeHook<'_, T, M, O> {
    fn model(&self) -> &M {
        self.model
    }

    fn ready(&mut self, i: usize, grad: &[T]) {
        for (l, g) in self.others.iter().enumerate() {
            self.reducer.put(i, l, g.__tensor(i));
        }
        self.reducer.put(i, self.others.len(), grad);
        if !self.overlap {
            return;
        }
        self.reducer.tensor_ready(i);
        if !self.immediate {
            return;
        }
        // Buckets back from their exchange, before this tensor's: update their tensors now, while
        // the pass goes on (the pass no longer reads them).
        let current = self.reducer.layout().bucket_of(i);
        while self.applied < current && self.reducer.is_done(self.applied) {
            let (model, states, optimizer, step, pool) =
                (&mut *self.model, &mut *self.states, self.optimizer, &self.step, self.pool);
            let mut sum = T::zero();
            self.reducer.each_sum(self.applied, |t, g| {
                sum += update_tensor(pool, optimizer, step, model.__tensor_mut(t), g, &mut states[t]);
            });
            self.sum += sum;
            self.applied += 1;
        }
    }
}

/// The [`Solver`] of a data-parallel classifier for [`train::run`](crate::train::run): each
/// process evaluates its share of the held-out set and the figures are summed; only process 0
/// writes checkpoints. Give hooks (progress, metrics) on process 0 only.
pub struct DataParallelSolver<'a, T: Float, M: Network<T>, O: Optimizer<T>> {
    trainer: &'a mut DataParallel<T, M, O>,
    model: &'a mut M,
    /// This process's share of the held-out set, its evaluator, and the whole set's size.
    test: Option<(Dataset<T>, Evaluator<T, M>, usize)>,
}

impl<'a, T: Float, M, O: Optimizer<T>> DataParallelSolver<'a, T, M, O>
where
    M: for<'b> Network<T, Target<'b> = ArrayView1<'b, usize>>,
{
    /// The solver; `test` is the whole held-out set (each process keeps its share), evaluated
    /// `eval_batch` rows at a time.
    pub fn new(
        trainer: &'a mut DataParallel<T, M, O>,
        model: &'a mut M,
        test: Option<&Dataset<T>>,
        eval_batch: usize,
    ) -> Self {
        let (rank, ranks) = (trainer.exchange.rank(), trainer.exchange.ranks());
        let test = test.map(|t| {
            let n = t.len();
            (t.range(rank * n / ranks, (rank + 1) * n / ranks), Evaluator::new(eval_batch), n)
        });
        DataParallelSolver { trainer, model, test }
    }
}

impl<T: Float, M, O: Optimizer<T>> Solver<T> for DataParallelSolver<'_, T, M, O>
where
    M: for<'b> Network<T, Target<'b> = ArrayView1<'b, usize>>,
{
    fn figures(&self) -> Vec<String> {
        vec!["loss".into()]
    }
    fn batch_size(&self) -> usize {
        self.trainer.max_batch()
    }
    fn steps(&self) -> u64 {
        self.trainer.trainer.steps()
    }
    fn skipped(&self) -> u64 {
        self.trainer.trainer.skipped_steps()
    }
    fn step(&mut self, batch: &Batch<'_, T>, figures: &mut [f64]) -> Result<()> {
        figures[0] = self.trainer.step(self.model, batch.x, batch.labels)?.to_f64();
        Ok(())
    }
    fn describe(&self) -> (String, String) {
        let o = &self.trainer.trainer.optimizer;
        (o.name().to_string(), crate::train::settings(&o.hyperparameters()))
    }
    fn evaluate(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        let Some((part, evaluator, n)) = &mut self.test else { return Ok((None, None)) };
        let rows = part.len() as f64;
        let (loss, accuracy) = if part.is_empty() { (0.0, 0.0) } else { evaluator.evaluate(self.model, part)? };
        let mine: Vec<u8> = [loss * rows, (accuracy * rows).round()].iter().flat_map(|v| v.to_le_bytes()).collect();
        let ex = &self.trainer.exchange;
        let ranks = ex.ranks();
        let mut all = vec![0u8; 16 * ranks];
        let displs: Vec<i32> = (0..ranks as i32).map(|q| 16 * q).collect();
        ex.all_gather(&mine, &mut all, &vec![16; ranks], &displs);
        let value = |at: usize| f64::from_le_bytes(all[at..at + 8].try_into().expect("8 bytes"));
        let (loss, correct) = (0..ranks).fold((0.0, 0.0), |(l, c), q| (l + value(16 * q), c + value(16 * q + 8)));
        let n = (*n).max(1) as f64;
        Ok((Some(loss / n), Some(correct / n)))
    }
    #[cfg(feature = "checkpoint")]
    fn save_checkpoint(&mut self, path: &std::path::Path, metadata: &BTreeMap<String, String>) -> Result<()> {
        if self.trainer.exchange.rank() != 0 {
            return Ok(());
        }
        self.trainer.trainer.save_checkpoint(path, self.model, metadata)
    }
}
