//! A small persistent thread pool for GEMM, and the default pool behind [`gemm`](super::gemm).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use super::sealed::Scalar;
use super::{check_shapes, gemm_unchecked, gemm_with, kernel_info, MatMut, MatRef, Workspace};
use crate::Float;

/// Products smaller than this many multiply-adds per thread are not split further.
const MIN_WORK_PER_THREAD: usize = 1 << 18;

/// Passes over fewer values than this are not split over threads ([`Pool::split_ranges`]):
/// waking a thread would cost more than it saves.
const MIN_SPLIT_VALUES: usize = 1 << 15;

/// Locks a mutex, ignoring poisoning: what the pool's mutexes guard stays valid when a job panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fixed set of threads, each with its own [`Workspace`], for GEMMs and pairs of independent
/// jobs.
///
/// Made once ([`Pool::new`]); afterwards [`gemm`](Pool::gemm), [`join`](Pool::join) and
/// [`broadcast`](Pool::broadcast) spawn nothing and allocate nothing. With one thread, or
/// without the `threading` feature, everything runs inline on the calling thread. Dropping the
/// pool stops its threads.
///
/// ```
/// use hdm_runtime::gemm::{gemm_with, MatMut, MatRef, Pool, Workspace};
/// let pool = Pool::<f32>::new(2);
/// let a: Vec<f32> = (0..64 * 32).map(|i| (i % 7) as f32).collect();
/// let b: Vec<f32> = (0..32 * 48).map(|i| (i % 5) as f32).collect();
/// let (a, b) = (MatRef::row_major(&a, 64, 32), MatRef::row_major(&b, 32, 48));
/// let mut c = vec![0.0; 64 * 48];
/// pool.gemm(1.0, a, b, 0.0, MatMut::row_major(&mut c, 64, 48));
///
/// // The same bits as on one thread.
/// let mut one = vec![0.0; 64 * 48];
/// gemm_with(&mut Workspace::new(), 1.0, a, b, 0.0, MatMut::row_major(&mut one, 64, 48));
/// assert_eq!(c, one);
///
/// // Two independent products side by side, each in its thread's workspace.
/// let (mut d, mut e) = (vec![0.0; 64 * 64], vec![0.0; 32 * 32]);
/// pool.join(
///     |ws| gemm_with(ws, 1.0, a, a.t(), 0.0, MatMut::row_major(&mut d, 64, 64)),
///     |ws| gemm_with(ws, 1.0, a.t(), a, 0.0, MatMut::row_major(&mut e, 32, 32)),
/// );
/// ```
///
/// # How it works
///
/// [`Pool::new`]`(n)` starts `n - 1` worker threads, each owning a [`Workspace`], and keeps one
/// more workspace for the calling thread, which takes part in every job as thread 0. A job is a
/// closure on the caller's stack, `Fn(usize, &mut Workspace<T>) + Sync`: the caller publishes a
/// pointer to it (type-erased into a data pointer and a monomorphised `fn` pointer, so no `Box`)
/// and bumps an epoch counter; each worker sees the new epoch, runs the closure with its own
/// index and workspace, and decrements a pending count; the caller runs its own share, then waits
/// for the count to reach zero before returning, even when its share panics, so the borrowed
/// closure outlives every use. Workers spin briefly for the next job, then yield, then sleep on a
/// condition variable; the caller does the same while waiting for them. Nothing on this path
/// allocates: it uses atomics, std's `Mutex` and `Condvar` (which allocate nothing) and closures
/// on the stack.
///
/// # When the pool is busy
///
/// Jobs are serialised by the caller workspace's mutex. A caller that finds the pool busy (used
/// by another thread, or called again from inside one of its own jobs) does not wait: it runs the
/// whole job on its own thread, in that thread's workspace (made the first time), which gives the
/// same bits.
pub struct Pool<T> {
    threads: usize,
    /// The calling thread's workspace; its lock also lets one job at a time use the workers.
    caller: Mutex<Workspace<T>>,
    #[cfg(feature = "threading")]
    workers: Option<imp::Workers<T>>,
}

impl<T: Float> Pool<T> {
    /// A pool of `threads` threads: the calling thread and `threads - 1` workers started now,
    /// each with a [`Workspace`] allocated now. `0` is taken as 1; without the `threading`
    /// feature the pool always has one thread. Returns once every worker is ready, so the pool
    /// does not allocate after this.
    ///
    /// If the system refuses to start a thread, the pool has the threads it could start.
    pub fn new(threads: usize) -> Self {
        let threads = if cfg!(feature = "threading") { threads.max(1) } else { 1 };
        let caller = Mutex::new(Workspace::new());
        #[cfg(feature = "threading")]
        {
            let workers = imp::Workers::start(threads - 1);
            let threads = 1 + workers.as_ref().map_or(0, |w| w.count());
            let pool = Pool { threads, caller, workers };
            if threads > 1 {
                crate::simd::decide_streaming(|| pool.plain_stores_wait());
            }
            pool
        }
        #[cfg(not(feature = "threading"))]
        Pool { threads, caller }
    }

    /// Whether plain stores to lines the worker has just read are more than twice as slow as
    /// streaming stores (see [streaming stores](crate::simd#streaming-stores)): the best of three
    /// timings of each on a 2 MB buffer. About 1 ms where they are not, 10 ms where they are.
    #[cfg(feature = "threading")]
    fn plain_stores_wait(&self) -> bool {
        const WORDS: usize = 1 << 18;
        let mut buf = vec![0u64; WORDS];
        let src = [1u64; 512];
        let (mut plain, mut streaming) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for round in 0..6u64 {
            // The worker reads every line; then this thread writes every word of every line.
            let read = |_: &mut Workspace<T>| std::hint::black_box(buf.iter().step_by(8).sum::<u64>());
            self.join(|_| (), read);
            let start = std::time::Instant::now();
            if round % 2 == 0 {
                for w in buf.iter_mut() {
                    // SAFETY: `w` is a valid, aligned `&mut u64`. Volatile keeps the stores plain
                    // (not turned into a `memset` that may stream).
                    unsafe { std::ptr::write_volatile(w, round) };
                }
                plain = plain.min(start.elapsed());
            } else {
                for chunk in buf.chunks_mut(src.len()) {
                    crate::simd::copy_streaming(chunk, &src[..chunk.len()]);
                }
                crate::simd::streaming_fence();
                streaming = streaming.min(start.elapsed());
            }
        }
        plain > streaming * 2
    }

    /// Number of threads, the calling one included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `C <- alpha * A * B + beta * C`, split over the pool's threads by blocks of columns of `C`
    /// or of rows when that leaves the busiest thread clearly less work, counting its kernel tiles
    /// and the values it packs: rows for a classifier's few outputs, or for a product whose A is
    /// much larger than its B.
    ///
    /// Each thread computes a contiguous block of whole kernel tiles of columns (multiples of the
    /// kernel's NR, [`kernel_info`]) or rows (multiples of MR), with its own workspace, so every
    /// element of `C` goes through the same kernel code with the same order of operations as in
    /// [`gemm_with`] on one thread: the result is bit-identical. Products too small to be worth
    /// splitting (about 2^18 multiply-adds per thread) use fewer threads, down to running inline.
    ///
    /// With `beta == 0`, `C` is only written, never read. Panics when the shapes do not agree.
    /// Does not allocate, except when the pool is busy (see [when the pool is busy](Pool#when-the-pool-is-busy)).
    pub fn gemm(&self, alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
        check_shapes(&a, &b, &c);
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let info = kernel_info::<T>();
        self.gemm_in_blocks(split_for(self.threads, m, k, n, info.mr, info.nr), alpha, a, b, beta, c);
    }

    /// [`Pool::gemm`] in two blocks of rows of `C`, the first `height` rows (raised to half the
    /// rows if fewer, and rounded up to the kernel's MR) and the rest, on two threads: for a
    /// product whose result the next job splits at the same row, so that each thread reads what
    /// it wrote itself. Runs on one thread when the pool has one, or when `height` leaves a block
    /// empty. Bit-identical to one thread, as [`Pool::gemm`] is.
    pub(crate) fn gemm_in_two_row_blocks(
        &self,
        height: usize,
        alpha: T,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        beta: T,
        c: MatMut<'_, T>,
    ) {
        let mr = kernel_info::<T>().mr;
        // At least half the rows, so that two blocks cover them.
        let height = height.max(a.rows.div_ceil(2)).next_multiple_of(mr);
        let split = if self.threads < 2 || height >= a.rows {
            Split::Rows(a.rows.next_multiple_of(mr).max(mr))
        } else {
            Split::Rows(height)
        };
        self.gemm_in_blocks(split, alpha, a, b, beta, c);
    }

    /// [`Pool::gemm`] in blocks of rows or columns of `C`, one per thread (the block size a
    /// multiple of the kernel's MR or NR, and at most `self.threads` blocks).
    fn gemm_in_blocks(&self, split: Split, alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
        check_shapes(&a, &b, &c);
        let (m, n) = (a.rows, b.cols);
        let (len, size, tile, stride) = match split {
            Split::Rows(height) => (m, height, kernel_info::<T>().mr, c.rs),
            Split::Columns(width) => (n, width, kernel_info::<T>().nr, c.cs),
        };
        let parts = if m == 0 || n == 0 { 1 } else { len.div_ceil(size) };
        assert!(parts <= self.threads && size.is_multiple_of(tile));
        if parts <= 1 {
            return self.run(1, &|_: usize, _: &mut Workspace<T>| (), |ws| gemm_with(ws, alpha, a, b, beta, c));
        }
        let (rsc, csc) = (c.rs, c.cs);
        let c = SharedMut(c.data.as_mut_ptr());
        let block = |i: usize, ws: &mut Workspace<T>| {
            let start = i * size;
            let count = size.min(len - start);
            let (a, b) = match split {
                Split::Rows(_) => (a.rows(start, count), b),
                Split::Columns(_) => (a, b.cols(start, count)),
            };
            // SAFETY: `c` is a checked view (in its slice, no element reached twice) borrowed
            // uniquely for this call, which returns only after every block is done; `start < len`
            // and `m, n > 0`, so `start * stride` is inside the slice; blocks `i` cover disjoint
            // row or column ranges, hence disjoint elements, and each index runs once.
            unsafe { gemm_unchecked(ws, alpha, a, b, beta, c.get().add(start * stride), rsc, csc, None) }
        };
        self.run(parts, &block, |ws| block(0, ws));
    }

    /// Runs `f` on the calling thread with the pool's workspace (or, when the pool is busy, with
    /// this thread's own, see [when the pool is busy](Pool#when-the-pool-is-busy)).
    pub(crate) fn on_caller<R>(&self, f: impl FnOnce(&mut Workspace<T>) -> R) -> R {
        self.run(1, &|_: usize, _: &mut Workspace<T>| (), f)
    }

    /// Keeps the workers awake until the guard drops: between jobs they spin and yield instead of
    /// sleeping, so that a burst of jobs separated by short serial work (a training step: its
    /// products, updates and passes) does not pay for waking a sleeping thread, tens of
    /// microseconds on a virtual machine, at every job. Sleeping workers are woken now. The
    /// workers then use their cores while idle, yielding them to any other runnable thread.
    pub fn awake(&self) -> Awake<'_, T> {
        #[cfg(feature = "threading")]
        if let Some(w) = &self.workers {
            w.keep_awake();
        }
        Awake(self)
    }

    /// Runs `a` and `b` side by side: `a` on the calling thread, `b` on a worker, each with its
    /// thread's workspace, and returns both results (like `rayon::join`).
    ///
    /// With one thread, or when the pool is busy, runs `a` then `b` on the calling thread. If
    /// either panics, `join` panics with the same payload once both are finished. Does not
    /// allocate (except when the pool is busy, see [when the pool is busy](Pool#when-the-pool-is-busy)).
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce(&mut Workspace<T>) -> RA,
        B: FnOnce(&mut Workspace<T>) -> RB + Send,
        RB: Send,
    {
        let b = Mutex::new(Some(b));
        let rb = Mutex::new(None);
        let side = |i: usize, ws: &mut Workspace<T>| {
            debug_assert_eq!(i, 1);
            let b = lock(&b).take();
            if let Some(b) = b {
                let r = b(ws);
                *lock(&rb) = Some(r);
            }
        };
        let ra = self.run(2, &side, a);
        let rb = rb.into_inner().unwrap_or_else(PoisonError::into_inner);
        (ra, rb.expect("the second closure of join ran"))
    }

    /// Runs `f(i, workspace)` once for every `i` in `0..self.threads()`, each on its own thread
    /// (`i = 0` on the calling one), and returns when all are done. If one panics, `broadcast`
    /// panics with its payload once all are finished. When the pool is busy, all run in turn on
    /// the calling thread.
    pub fn broadcast<F>(&self, f: F)
    where
        F: Fn(usize, &mut Workspace<T>) + Sync,
    {
        self.run(self.threads, &f, |ws| f(0, ws));
    }

    /// Runs `f(i, workspace)` for every `i` in `0..parts` (at most [`threads`](Self::threads)),
    /// each on its own thread (`i = 0` on the calling one), and returns when all are done; as
    /// [`broadcast`](Self::broadcast) on fewer threads.
    pub fn run_parts<F>(&self, parts: usize, f: F)
    where
        F: Fn(usize, &mut Workspace<T>) + Sync,
    {
        assert!(parts <= self.threads, "{parts} parts on a pool of {} threads", self.threads);
        self.run(parts.max(1), &f, |ws| f(0, ws));
    }

    /// Runs `f` on contiguous ranges covering `0..items`, one per thread (at most
    /// [`threads`](Self::threads), none empty unless `items` is 0), for a pass that goes through
    /// `values` values; on the calling thread over the whole range when it has fewer than
    /// `MIN_SPLIT_VALUES` (for kernels split by samples or channels, each part computed as on one
    /// thread).
    pub(crate) fn split_ranges(&self, items: usize, values: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
        let parts = if values >= MIN_SPLIT_VALUES { self.threads.min(items).max(1) } else { 1 };
        let per = items.div_ceil(parts).max(1);
        self.run_parts(parts, |part, _| {
            let start = (part * per).min(items);
            f(start..((part + 1) * per).min(items));
        });
    }

    /// Makes every thread's scratch memory at least `len` elements long
    /// ([`Workspace::reserve_scratch`]), so that the convolutions of a network with that need
    /// ([`Network::SCRATCH`](crate::Network::SCRATCH)) do not allocate. Allocates now if shorter.
    pub fn reserve_scratch(&self, len: usize) {
        if len > 0 {
            self.broadcast(|_, ws| ws.reserve_scratch(len));
        }
    }

    /// Runs `own` on the calling thread and `f(i, ..)` for `i` in `1..parts` on the workers, or
    /// everything in turn on the calling thread when there is one thread or the pool is busy.
    fn run<F, O, R>(&self, parts: usize, f: &F, own: O) -> R
    where
        F: Fn(usize, &mut Workspace<T>) + Sync,
        O: FnOnce(&mut Workspace<T>) -> R,
    {
        let inline = |ws: &mut Workspace<T>, own: O| {
            let r = own(ws);
            (1..parts).for_each(|i| f(i, ws));
            r
        };
        let mut caller = match self.caller.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return T::with_thread_workspace(|ws| inline(ws, own)),
        };
        #[cfg(feature = "threading")]
        if let (Some(workers), true) = (&self.workers, parts > 1) {
            return workers.run(parts, f, || own(&mut caller));
        }
        inline(&mut caller, own)
    }
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads).finish_non_exhaustive()
    }
}

/// Keeps a pool's workers awake while alive: made by [`Pool::awake`].
#[must_use = "the workers stay awake only while the guard is alive"]
pub struct Awake<'a, T: Float>(&'a Pool<T>);

impl<T: Float> Drop for Awake<'_, T> {
    fn drop(&mut self) {
        #[cfg(feature = "threading")]
        if let Some(w) = &self.0.workers {
            w.release();
        }
    }
}

impl<T: Float> std::fmt::Debug for Awake<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awake").finish_non_exhaustive()
    }
}

/// How a product is split: blocks of this many rows, or columns, of `C`.
#[derive(Clone, Copy, Debug)]
enum Split {
    Rows(usize),
    Columns(usize),
}

/// How many threads compute an `m x k` by `k x n` product, and the width of each one's block of
/// columns (a multiple of `nr`, the last block narrower). With `m` and `n` swapped and `mr` for
/// `nr`, the height of blocks of rows.
fn column_blocks(threads: usize, m: usize, k: usize, n: usize, nr: usize) -> (usize, usize) {
    let tiles = n.div_ceil(nr);
    let work = m.saturating_mul(n).saturating_mul(k.max(1));
    // A single row of C (or, with `m` and `n` swapped for a split by rows, a single column)
    // reads each value of its large operand once: bound by memory, it pays to share sooner.
    let min = if m == 1 { MIN_WORK_PER_THREAD / 4 } else { MIN_WORK_PER_THREAD };
    let parts = threads.min(tiles).min(work / min).max(1);
    let width = tiles.div_ceil(parts).max(1) * nr;
    (n.div_ceil(width).max(1), width)
}

/// What packing one value costs, in multiply-adds of the kernel (about 0.2 ns against 0.02 ns
/// on an AVX2 core).
const PACK_COST: usize = 10;

/// How to split an `m x k` by `k x n` product over `threads`: by blocks of columns of `C`, or of
/// rows when that gives the busiest thread clearly less work (by more than an eighth). A thread's work is the multiply-adds
/// of its kernel tiles (a partial tile costs a whole one) and the values it packs: all of A and
/// its share of B for a block of columns, all of B and its share of A for a block of rows.
fn split_for(threads: usize, m: usize, k: usize, n: usize, mr: usize, nr: usize) -> Split {
    let (columns, width) = column_blocks(threads, m, k, n, nr);
    let (rows, height) = column_blocks(threads, n, k, m, mr);
    let work = |rows: usize, cols: usize, packed: usize| {
        rows.div_ceil(mr) * cols.div_ceil(nr) * mr * nr * k + PACK_COST * packed
    };
    let by_columns = work(m, width.min(n), m * k + k * width.min(n));
    let by_rows = work(height.min(m), n, k * n + height.min(m) * k);
    // Rows only when clearly better: the model is rough (the MLP's dW1, 500 x 100 x 784, is
    // within 2% either way).
    if rows > 1 && (columns == 1 || by_rows < by_columns - by_columns / 8) {
        Split::Rows(height)
    } else {
        Split::Columns(width)
    }
}

/// The pointer to `C`, shared by the threads that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);

impl<T> SharedMut<T> {
    /// (A method, so that closures capture the `Sync` wrapper, not the raw pointer.)
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: used only in `Pool::gemm`, where each thread writes its own disjoint block of `C`.
unsafe impl<T: Send> Sync for SharedMut<T> {}

#[cfg(feature = "threading")]
mod imp {
    //! The workers and the protocol between them and the caller.

    use std::any::Any;
    use std::cell::UnsafeCell;
    use std::hint;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::{self, JoinHandle};

    use super::lock;
    use crate::gemm::Workspace;
    use crate::Float;

    /// Spins before yielding, and yields before sleeping, when waiting for a job or for workers.
    const SPINS: u32 = 1 << 11;
    const YIELDS: u32 = 1 << 5;

    /// A published job: the closure (type-erased) and how many threads take part.
    struct Job<T> {
        data: *const (),
        call: unsafe fn(*const (), usize, &mut Workspace<T>),
        parts: usize,
    }

    impl<T> Clone for Job<T> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<T> Copy for Job<T> {}

    /// Calls the closure `data` points to.
    ///
    /// # Safety
    /// `data` must come from a `&F` that is still alive.
    unsafe fn call<T, F: Fn(usize, &mut Workspace<T>) + Sync>(data: *const (), i: usize, ws: &mut Workspace<T>) {
        // SAFETY: this function's contract.
        let f = unsafe { &*data.cast::<F>() };
        f(i, ws)
    }

    unsafe fn nothing<T>(_: *const (), _: usize, _: &mut Workspace<T>) {}

    struct Shared<T> {
        /// Bumped by the caller to publish a job (or the shutdown).
        epoch: AtomicUsize,
        /// The current job: written by the caller only while no worker reads it, that is between
        /// `pending` reaching 0 and the next `epoch` bump.
        job: UnsafeCell<Job<T>>,
        /// Workers that have not finished the current job (or, at start, are not ready yet).
        pending: AtomicUsize,
        shutdown: AtomicBool,
        /// Workers asleep on `work`, and whether the caller is asleep on `done`.
        sleeping: AtomicUsize,
        /// Live [`Awake`](super::Awake) guards: while any, idle workers (and the caller waiting for
        /// them) yield instead of sleeping.
        awake: AtomicUsize,
        caller_sleeping: AtomicBool,
        lock: Mutex<()>,
        work: Condvar,
        done: Condvar,
        /// The first panic of a worker in the current job.
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    // SAFETY: `job` follows the protocol documented on it; a job's closure is `Sync`, and each
    // worker's workspace is its own. Everything else is atomics and mutexes.
    unsafe impl<T: Send> Sync for Shared<T> {}
    unsafe impl<T: Send> Send for Shared<T> {}

    pub(super) struct Workers<T> {
        shared: Arc<Shared<T>>,
        handles: Vec<JoinHandle<()>>,
    }

    impl<T: Float> Workers<T> {
        /// Starts `n` workers and waits until they are ready; `None` for none.
        pub(super) fn start(n: usize) -> Option<Self> {
            if n == 0 {
                return None;
            }
            let shared = Arc::new(Shared {
                epoch: AtomicUsize::new(0),
                job: UnsafeCell::new(Job { data: std::ptr::null(), call: nothing::<T>, parts: 0 }),
                pending: AtomicUsize::new(n),
                shutdown: AtomicBool::new(false),
                sleeping: AtomicUsize::new(0),
                awake: AtomicUsize::new(0),
                caller_sleeping: AtomicBool::new(false),
                lock: Mutex::new(()),
                work: Condvar::new(),
                done: Condvar::new(),
                panic: Mutex::new(None),
            });
            let mut handles = Vec::with_capacity(n);
            for index in 1..=n {
                let (s, ws) = (Arc::clone(&shared), Workspace::new());
                let spawned =
                    thread::Builder::new().name(format!("hdm-pool-{index}")).spawn(move || worker(&s, index, ws));
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(_) => {
                        // Count the workers that will never report ready as done.
                        shared.pending.fetch_sub(n - handles.len(), SeqCst);
                        break;
                    }
                }
            }
            shared.wait_done();
            if handles.is_empty() {
                return None;
            }
            Some(Workers { shared, handles })
        }

        pub(super) fn count(&self) -> usize {
            self.handles.len()
        }

        /// Keeps idle workers awake until [`release`](Self::release), waking sleeping ones.
        pub(super) fn keep_awake(&self) {
            self.shared.awake.fetch_add(1, SeqCst);
            self.shared.wake_workers();
        }

        pub(super) fn release(&self) {
            self.shared.awake.fetch_sub(1, SeqCst);
        }

        /// Publishes `f` for workers `1..parts`, runs `own` here, waits for the workers, and
        /// re-raises a worker's panic.
        pub(super) fn run<F, R>(&self, parts: usize, f: &F, own: impl FnOnce() -> R) -> R
        where
            F: Fn(usize, &mut Workspace<T>) + Sync,
        {
            let shared = &*self.shared;
            debug_assert!(parts <= self.count() + 1);
            // SAFETY: every worker acknowledged the previous job (`pending == 0`: `start` and
            // the end of every `run` wait for it), and the caller lock held by our caller keeps
            // other callers out, so nobody reads `job` now.
            unsafe { *shared.job.get() = Job { data: (f as *const F).cast(), call: call::<T, F>, parts } };
            shared.pending.store(self.count(), SeqCst);
            shared.epoch.fetch_add(1, SeqCst);
            shared.wake_workers();

            /// Waits for the workers if `own` unwinds: they may still be using `f`.
            struct WaitOnUnwind<'a, T>(&'a Shared<T>);
            impl<T> Drop for WaitOnUnwind<'_, T> {
                fn drop(&mut self) {
                    self.0.wait_done();
                    lock(&self.0.panic).take();
                }
            }
            let guard = WaitOnUnwind(shared);
            let r = own();
            std::mem::forget(guard);
            shared.wait_done();
            if let Some(payload) = lock(&shared.panic).take() {
                panic::resume_unwind(payload);
            }
            r
        }
    }

    impl<T> Drop for Workers<T> {
        fn drop(&mut self) {
            let shared = &*self.shared;
            shared.shutdown.store(true, SeqCst);
            shared.epoch.fetch_add(1, SeqCst);
            shared.wake_workers();
            let me = thread::current().id();
            for h in self.handles.drain(..) {
                // A worker cannot join itself (the last handle to a pool dropped inside one of
                // its own jobs): it exits on its own once the job returns.
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        }
    }

    impl<T> Shared<T> {
        /// Spins, then yields, then sleeps until `cond` holds; `asleep` counts the sleepers.
        fn wait(&self, cond: impl Fn() -> bool, on: &Condvar, asleep: impl Fn(bool), awake: impl Fn() -> bool) {
            loop {
                // Spin, then yield; while `awake` holds, keep yielding rather than sleep.
                let mut i = 0;
                while i < SPINS + YIELDS || awake() {
                    if cond() {
                        return;
                    }
                    if i < SPINS {
                        hint::spin_loop();
                    } else {
                        thread::yield_now();
                    }
                    i = (i + 1).min(SPINS + YIELDS);
                }
                let mut guard = lock(&self.lock);
                asleep(true);
                // The waker changes the condition (or `awake`'s), then checks for sleepers (both
                // `SeqCst`), then takes the lock before notifying; we hold the lock from announcing
                // ourselves until `wait` releases it, so either we see the change or the
                // notification reaches us.
                while !cond() && !awake() {
                    guard = on.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                asleep(false);
                drop(guard);
                if cond() {
                    return;
                }
            }
        }

        fn wait_for_job(&self, seen: usize) -> usize {
            self.wait(
                || self.epoch.load(SeqCst) != seen,
                &self.work,
                |s| {
                    if s {
                        self.sleeping.fetch_add(1, SeqCst);
                    } else {
                        self.sleeping.fetch_sub(1, SeqCst);
                    }
                },
                || self.awake.load(SeqCst) > 0,
            );
            self.epoch.load(SeqCst)
        }

        fn wake_workers(&self) {
            if self.sleeping.load(SeqCst) > 0 {
                drop(lock(&self.lock));
                self.work.notify_all();
            }
        }

        fn wait_done(&self) {
            self.wait(
                || self.pending.load(SeqCst) == 0,
                &self.done,
                |s| self.caller_sleeping.store(s, SeqCst),
                || self.awake.load(SeqCst) > 0,
            );
        }

        fn ack(&self) {
            if self.pending.fetch_sub(1, SeqCst) == 1 && self.caller_sleeping.load(SeqCst) {
                drop(lock(&self.lock));
                self.done.notify_all();
            }
        }
    }

    fn worker<T>(shared: &Shared<T>, index: usize, mut ws: Workspace<T>) {
        shared.ack(); // ready
        let mut seen = 0;
        loop {
            seen = shared.wait_for_job(seen);
            if shared.shutdown.load(SeqCst) {
                return;
            }
            // SAFETY: published before the epoch we saw, unchanged until we acknowledge it.
            let job = unsafe { *shared.job.get() };
            if index < job.parts {
                // SAFETY: `job.data` is the caller's closure, alive until every worker acknowledges.
                let run = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, index, &mut ws) }));
                if let Err(payload) = run {
                    lock(&shared.panic).get_or_insert(payload);
                }
            }
            shared.ack();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Waits up to five seconds for `cond`.
        fn eventually(cond: impl Fn() -> bool) -> bool {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < end {
                if cond() {
                    return true;
                }
                thread::sleep(std::time::Duration::from_millis(1));
            }
            cond()
        }

        #[test]
        fn an_awake_guard_wakes_the_workers_and_keeps_them_from_sleeping() {
            let pool = crate::gemm::Pool::<f32>::new(3);
            let shared = &pool.workers.as_ref().unwrap().shared;
            let asleep = || shared.sleeping.load(SeqCst);
            assert!(eventually(|| asleep() == 2), "idle workers fall asleep");
            let guard = pool.awake();
            assert!(eventually(|| asleep() == 0), "the guard wakes them");
            // Jobs still run, and the workers stay up between them.
            let (a, b) = pool.join(|_| 1, |_| 2);
            assert_eq!((a, b), (1, 2));
            thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(asleep(), 0, "a worker slept while the guard was alive");
            drop(guard);
            assert_eq!(shared.awake.load(SeqCst), 0);
            assert!(eventually(|| asleep() == 2), "without the guard they sleep again");
        }

        #[test]
        fn dropping_the_pool_stops_its_threads() {
            let pool = crate::gemm::Pool::<f32>::new(3);
            let shared = Arc::downgrade(&pool.workers.as_ref().unwrap().shared);
            assert_eq!(shared.strong_count(), 3); // the pool's and two workers'
            drop(pool);
            assert_eq!(shared.strong_count(), 0, "a worker still holds the shared state");
        }
    }
}

/// The thread count configured for the default pools, once resolved.
static THREADS: Mutex<Option<usize>> = Mutex::new(None);

/// Sets the number of threads of the default pools ([`default_pool`], used by
/// [`gemm`](super::gemm)); `0` goes back to the default: the `HDM_NUM_THREADS` environment
/// variable if set, else [`std::thread::available_parallelism`].
///
/// The current default pools are retired (they stop once no one uses them); new ones are made
/// on next use. Without the `threading` feature this has no effect: everything runs on the
/// calling thread.
pub fn set_num_threads(n: usize) {
    let mut threads = lock(&THREADS);
    *threads = Some(if n == 0 { default_threads() } else { n });
    let old = (lock(f32::default_pool_slot()).take(), lock(f64::default_pool_slot()).take());
    drop(threads);
    drop(old);
}

/// The number of threads of the default pools: as set by [`set_num_threads`], else the
/// `HDM_NUM_THREADS` environment variable (read once), else
/// [`std::thread::available_parallelism`]. Always 1 without the `threading` feature.
pub fn num_threads() -> usize {
    if cfg!(feature = "threading") {
        *lock(&THREADS).get_or_insert_with(default_threads)
    } else {
        1
    }
}

fn default_threads() -> usize {
    let var = std::env::var("HDM_NUM_THREADS").ok();
    parse_threads(var.as_deref()).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// `HDM_NUM_THREADS`'s value: a positive integer, or `None` (with a warning when it is set but
/// not one).
fn parse_threads(var: Option<&str>) -> Option<usize> {
    let var = var?.trim();
    match var.parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ if var.is_empty() => None,
        _ => {
            eprintln!("hdm: ignoring HDM_NUM_THREADS={var:?}: expected a positive number of threads");
            None
        }
    }
}

/// The default pool for `T`, with [`num_threads`] threads: made by the first call (which
/// allocates its workspaces and starts its threads), shared afterwards (a reference count
/// increment, no allocation).
///
/// `f32` and `f64` have separate pools, made when first used.
pub fn default_pool<T: Float>() -> Arc<Pool<T>> {
    let mut threads = lock(&THREADS);
    let mut slot = lock(T::default_pool_slot());
    if let Some(pool) = &*slot {
        return Arc::clone(pool);
    }
    let pool = Arc::new(Pool::new(*threads.get_or_insert_with(default_threads)));
    *slot = Some(Arc::clone(&pool));
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdm_num_threads_values() {
        assert_eq!(parse_threads(None), None);
        assert_eq!(parse_threads(Some("")), None);
        assert_eq!(parse_threads(Some("3")), Some(3));
        assert_eq!(parse_threads(Some(" 2 ")), Some(2));
        assert_eq!(parse_threads(Some("0")), None);
        assert_eq!(parse_threads(Some("two")), None);
        assert_eq!(parse_threads(Some("-1")), None);
    }

    /// Every block width or height (down to one tile per thread) gives the bits of one thread, with
    /// partial last tiles, strided and transposed operands and `beta != 0`.
    fn blocks_match_one_thread<T: Float>() {
        let nr = kernel_info::<T>().nr;
        let pool = Pool::<T>::new(5);
        let mut ws = Workspace::<T>::new();
        let val = |i: usize| T::of(((i * 37 + 11) % 101) as f64 / 50.0 - 1.0);
        for (m, k, n) in [
            (1, 1, 1),
            (1, 300, 9 * nr + 3),
            (3, 2, nr + 1),
            (9, 17, 2 * nr),
            (17, 40, 3 * nr - 1),
            (70, 260, 5 * nr - 3),
        ] {
            let a: Vec<T> = (0..m * k).map(val).collect();
            let b: Vec<T> = (0..k * n).map(|i| val(i + 3)).collect();
            let c0: Vec<T> = (0..m * n).map(|i| val(i + 5)).collect();
            // A row-major, B transposed (column-major), C column-major
            let (a, b) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, n, k).t());
            for beta in [0.0, 0.5] {
                let (alpha, beta) = (T::of(1.5), T::of(beta));
                let mut one = c0.clone();
                gemm_with(&mut ws, alpha, a, b, beta, MatMut::new(&mut one, m, n, 1, m));
                let (mr, nr) = (kernel_info::<T>().mr, nr);
                let splits = (1..=n.div_ceil(nr))
                    .map(|tiles| (Split::Columns(tiles * nr), n.div_ceil(tiles * nr)))
                    .chain((1..=m.div_ceil(mr)).map(|tiles| (Split::Rows(tiles * mr), m.div_ceil(tiles * mr))));
                for (split, parts) in splits {
                    if parts > pool.threads() {
                        continue;
                    }
                    let mut c = c0.clone();
                    pool.gemm_in_blocks(split, alpha, a, b, beta, MatMut::new(&mut c, m, n, 1, m));
                    let same =
                        c.iter().zip(&one).all(|(&x, &y)| Float::to_f64(x).to_bits() == Float::to_f64(y).to_bits());
                    assert!(same, "{m}x{k}x{n} in blocks {split:?}");
                }
            }
        }
    }

    #[test]
    fn f32_blocks_of_any_width_match_one_thread() {
        blocks_match_one_thread::<f32>();
    }

    #[test]
    fn f64_blocks_of_any_width_match_one_thread() {
        blocks_match_one_thread::<f64>();
    }

    #[test]
    fn two_row_blocks_at_any_height_match_one_thread() {
        let mut ws = Workspace::<f32>::new();
        let val = |i: usize| ((i * 37 + 11) % 101) as f32 / 50.0 - 1.0;
        for threads in [1, 2, 3] {
            let pool = Pool::<f32>::new(threads);
            // a weight gradient at batch 1 (an outer product), the tutorial's at batch 7, one column
            for (m, k, n) in [(500, 1, 784), (1000, 7, 100), (1000, 3, 1), (5, 2, 3)] {
                let a: Vec<f32> = (0..m * k).map(val).collect();
                let b: Vec<f32> = (0..k * n).map(|i| val(i + 3)).collect();
                // A column-major (the transposed dY of a weight gradient), B and C row-major
                let (a, b) = (MatRef::row_major(&a, k, m).t(), MatRef::row_major(&b, k, n));
                let mut one = vec![0.0; m * n];
                gemm_with(&mut ws, 1.0, a, b, 0.0, MatMut::row_major(&mut one, m, n));
                let half = crate::optim::split_point(m * n) / n;
                for height in [0, 1, half, m / 2, m - 1, m, m + 5] {
                    let mut c = vec![f32::NAN; m * n];
                    pool.gemm_in_two_row_blocks(height, 1.0, a, b, 0.0, MatMut::row_major(&mut c, m, n));
                    let same = c.iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}x{k}x{n} at height {height} on {threads} threads");
                }
            }
        }
    }

    #[test]
    fn products_split_where_the_busiest_thread_has_least_to_do() {
        let (mr, nr) = (6, 16);
        let split = |m, k, n| split_for(2, m, k, n, mr, nr);
        // the MLP's first layer at batch 100: A (the batch) is small, B (the weights) large
        assert!(matches!(split(100, 784, 500), Split::Columns(256)));
        // a classifier's 10 outputs at batch 1000: one column tile
        assert!(matches!(split(1000, 500, 10), Split::Rows(504)));
        // the tutorial's dW1 = dZ^T x at batch 100: 7 column tiles share 4/3, 167 row panels 84/83
        assert!(matches!(split(1000, 100, 100), Split::Rows(504)));
        // the MLP's dW1 at batch 100: within the model's error, so columns, as always
        assert!(matches!(split(500, 100, 784), Split::Columns(400)));
        // too small to share either way
        assert!(matches!(split(10, 10, 10), Split::Columns(16)));
    }

    #[test]
    fn column_blocks_are_whole_tiles() {
        // big enough for every thread
        assert_eq!(column_blocks(2, 100, 784, 500, 8), (2, 256));
        assert_eq!(column_blocks(3, 100, 784, 500, 8), (3, 168));
        assert_eq!(column_blocks(4, 500, 100, 784, 16), (4, 208));
        // fewer tiles than threads
        assert_eq!(column_blocks(4, 1000, 1000, 10, 8), (2, 8));
        // too little work to split
        assert_eq!(column_blocks(4, 100, 500, 10, 8), (1, 16));
        assert_eq!(column_blocks(4, 1, 1, 1, 8), (1, 8));
        assert_eq!(column_blocks(4, 1000, 1000, 0, 8), (1, 8));
        // the blocks cover n
        for n in 1..100 {
            let (parts, width) = column_blocks(3, 1000, 1000, n, 8);
            assert_eq!(width % 8, 0);
            assert!((parts - 1) * width < n && n <= parts * width, "n = {n}: {parts} x {width}");
        }
    }
}
