//! The one documented setting of the kernels, how many threads the work of a step may
//! use, and the threads themselves.
//!
//! The setting is process-wide (an atomic integer). Until [`set_num_threads`] is
//! called it is [`default_num_threads`]: the cores the process may use, at most 4 (the
//! examples' `--threads` has the same default). It changes *speed only*: every output
//! tile of a matrix product is computed by exactly one thread with a fixed order over
//! the inner dimension, so the results are bit-identical whatever the thread count
//! (see [`gemm`](crate::kernels::gemm)). The cap: the models' matrices are small
//! (100-row minibatches), and beyond a few threads each one gets too little work to
//! pay for starting it.
//!
//! The threads are kept alive between products and steps: a pool of `threads - 1`
//! helper threads (a [`rayon`] pool, so that they can borrow the caller's slices
//! without `unsafe`) joins the calling thread (`helper_pool`). Handing work to a
//! kept-alive helper costs less than starting and joining a scoped thread for every
//! product (`cargo bench --bench gemm` measures both), and after each threaded pass the
//! helpers keep looking for the next one for a millisecond before they sleep
//! (`KEEP_AWAKE`), since waking a sleeping thread costs more than most gaps between a
//! step's threaded passes. What the threads do is
//! always cut up by the problem, never by how many threads there are (the bands of a
//! product, the chunks of an optimiser update, the two products of a layer's backward
//! pass run side by side by [`join`]), so results stay bit-identical.
//!
//! ```
//! gumbelgrad::kernels::set_num_threads(2);
//! assert_eq!(gumbelgrad::kernels::num_threads(), 2);
//! gumbelgrad::kernels::set_num_threads(1);
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most threads [`default_num_threads`] picks.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// The thread count; 0 until set or first read.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The thread count used until [`set_num_threads`] is called: the cores the process may
/// use ([`std::thread::available_parallelism`], 1 if unknown), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_num_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_DEFAULT_THREADS)
}

/// Sets how many threads matrix products may use (values below 1 are treated as 1).
pub fn set_num_threads(threads: usize) {
    NUM_THREADS.store(threads.max(1), Ordering::Relaxed);
}

thread_local! {
    /// The most threads the work of this thread may use while it runs one of several
    /// tasks running in parallel ([`on_threads`]); 0 when no such limit is set.
    static THREAD_LIMIT: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with [`num_threads`] returning at most `threads` on this thread: for work
/// that is itself one of several parallel tasks (one of the two products of [`join`], a
/// shard of a data-parallel training step), whose products and passes should leave the
/// other threads to the other tasks. Results are the same either way; only the speed
/// changes.
pub(crate) fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_LIMIT.with(|limit| limit.set(self.0));
        }
    }
    let outer = THREAD_LIMIT.with(Cell::get);
    let limit = match outer {
        0 => threads.max(1),
        outer => outer.min(threads.max(1)),
    };
    let _restore = Restore(THREAD_LIMIT.with(|cell| cell.replace(limit)));
    f()
}

/// [`on_threads`] with one thread.
pub(crate) fn on_one_thread<R>(f: impl FnOnce() -> R) -> R {
    on_threads(1, f)
}

/// Runs two independent pieces of work at the same time: `left` on the calling thread,
/// `right` on a kept-alive helper, each with half of [`num_threads`] (`left` gets the odd
/// one). If no helper has started `right` by the time `left` is done, the calling
/// thread runs it too. With one thread, `left` then `right`.
///
/// For work that splits better by task than by data: the backward pass of a layer
/// computes `dX = G W^T` and `dW = X^T G`, two products of the same size that read the
/// same `G` and write different buffers. Run side by side, each on one thread, neither
/// is cut into bands, so neither packs its small operand once per band. When each
/// task's values do not depend on the thread count, neither do the results; a custom
/// op can use it so. (The crate's own `ops::linear` and `ops::matmul` go one step
/// further: the helper, once `dW` is done, takes the last bands of `dX`, which also
/// packs all of `W`; see [`gemm`](super::gemm).)
///
/// ```
/// use gumbelgrad::kernels::matmul::gemm;
/// use gumbelgrad::kernels::threads::join;
/// let (g, w, x) = (vec![1.0f32; 4 * 8], vec![0.5f32; 3 * 8], vec![2.0f32; 4 * 3]);
/// let (mut dx, mut dw) = (vec![0.0f32; 4 * 3], vec![0.0f32; 3 * 8]);
/// join(
///     || gemm(false, true, 4, 3, 8, &g, &w, &mut dx), // dX = G W^T
///     || gemm(true, false, 3, 8, 4, &x, &g, &mut dw), // dW = X^T G
/// );
/// assert_eq!((dx[0], dw[0]), (4.0, 8.0));
/// ```
pub fn join<A: Send, B: Send>(
    left: impl FnOnce() -> A,
    right: impl FnOnce() -> B + Send,
) -> (A, B) {
    let threads = num_threads();
    let pool = helpers_for(threads);
    let Some(pool) = pool else {
        return (left(), right());
    };
    let right_threads = threads / 2;
    // `right` goes to whichever thread reaches it first: a helper, or the calling thread
    // once `left` is done (a helper that has not started by then, say on a machine whose
    // other core is busy, does not keep the caller waiting).
    let right = FirstComer::new(right);
    let left_result = threaded_pass(&pool, threads - 1, |pass| {
        pass.spawn(|| right.run(right_threads));
        let left_result = on_threads(threads - right_threads, left);
        right.run(right_threads);
        left_result
    });
    (left_result, right.into_result())
}

/// A task that runs once, on whichever thread comes to it first, and then its result:
/// the second task of [`join`] and of a product run beside another task
/// ([`gemm`](super::gemm)), which a helper starts if it is free and the calling thread
/// otherwise.
pub(crate) struct FirstComer<F, R> {
    task: Mutex<Option<F>>,
    result: Mutex<Option<R>>,
}

impl<F: FnOnce() -> R, R> FirstComer<F, R> {
    /// `task`, not yet run.
    pub(crate) fn new(task: F) -> Self {
        FirstComer {
            task: Mutex::new(Some(task)),
            result: Mutex::new(None),
        }
    }

    /// Runs the task with at most `threads` threads ([`on_threads`]), unless a thread
    /// has already taken it.
    pub(crate) fn run(&self, threads: usize) {
        if let Some(task) = self.take() {
            let result = on_threads(threads, task);
            *lock(&self.result) = Some(result);
        }
    }

    /// The task, unless a thread has already taken it: for a caller that runs it later.
    pub(crate) fn take(&self) -> Option<F> {
        lock(&self.task).take()
    }

    /// The result of the task, which a thread has run ([`FirstComer::run`]).
    ///
    /// # Panics
    /// If no thread has run it: the callers end a threaded pass, which runs every task
    /// it spawned, before they ask.
    pub(crate) fn into_result(self) -> R {
        self.result
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .expect("a scope returns after all its tasks have run")
    }
}

/// The number of threads matrix products currently may use ([`default_num_threads`]
/// unless set; fewer inside a task that already runs beside others, such as one of the
/// two products of a layer's backward pass or a shard of a data-parallel step).
pub fn num_threads() -> usize {
    let limit = THREAD_LIMIT.with(Cell::get);
    let threads = match NUM_THREADS.load(Ordering::Relaxed) {
        0 => {
            // Computed once: a concurrent `set_num_threads` wins over the default.
            let _ = NUM_THREADS.compare_exchange(
                0,
                default_num_threads(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            NUM_THREADS.load(Ordering::Relaxed)
        }
        threads => threads,
    };
    match limit {
        0 => threads,
        limit => threads.min(limit),
    }
}

/// The helper pools, one per helper count, started on first use and kept for the
/// life of the process.
static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// The kept-alive pool of `helpers` helper threads, started the first time it is asked
/// for; `None` if the operating system refuses to start threads (the caller then does
/// the work alone). Work runs on it through [`threaded_pass`].
pub(crate) fn helper_pool(helpers: usize) -> Option<Arc<rayon::ThreadPool>> {
    let mut pools = lock(&POOLS);
    if let Some((_, pool)) = pools.iter().find(|(count, _)| *count == helpers) {
        return Some(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(helpers.max(1))
        .thread_name(|index| format!("gumbelgrad-{index}"))
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    pools.push((helpers, Arc::clone(&pool)));
    Some(pool)
}

/// The helpers that join the calling thread when work runs on `threads` threads:
/// `None` with one thread, or if the operating system refuses to start threads (the
/// caller then does the work alone).
pub(crate) fn helpers_for(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    (threads > 1).then(|| helper_pool(threads - 1)).flatten()
}

/// How long a helper keeps looking for work after its last task before it goes to sleep.
///
/// A rayon worker with nothing to do sleeps after a few dozen microseconds, and waking
/// it again took tens of microseconds on the machine of `docs/performance.md`, longer
/// than many of the gaps between a training step's threaded passes. So after each
/// threaded pass the helpers are handed a task that keeps them looking for the next one
/// ([`look_for_work`]) for this long.
const KEEP_AWAKE: Duration = Duration::from_millis(1);

/// Helpers currently running [`look_for_work`].
static LOOKING: AtomicUsize = AtomicUsize::new(0);

/// One threaded pass on `pool`: `body` runs on the calling thread inside
/// [`rayon::ThreadPool::in_place_scope`] (tasks it spawns with [`Pass::spawn`] run on
/// the `helpers`, and may borrow from the caller), then the helpers are kept looking
/// for the next pass ([`keep_awake`]).
///
/// When `body` is done and a helper's task is still running, the calling thread spins
/// until it ends ([`wait_for_tasks`]) instead of going to sleep at once: a rayon scope
/// puts the waiting caller to sleep, and waking it costs tens of microseconds, paid
/// by the step's more than twenty passes whenever a helper finishes last.
pub(crate) fn threaded_pass<'scope, R>(
    pool: &rayon::ThreadPool,
    helpers: usize,
    body: impl FnOnce(&Pass<'_, 'scope>) -> R,
) -> R {
    let running = Arc::new(AtomicUsize::new(0));
    let result = pool.in_place_scope(|scope| {
        let result = body(&Pass {
            scope,
            running: &running,
        });
        wait_for_tasks(&running);
        result
    });
    keep_awake(pool, helpers);
    result
}

/// How long the calling thread of a threaded pass, its own share done, keeps checking
/// whether the helpers' tasks have ended before it blocks until they do.
const SPIN_AT_PASS_END: Duration = Duration::from_micros(200);

/// Spins until no task of the pass is running, or for at most [`SPIN_AT_PASS_END`].
fn wait_for_tasks(running: &AtomicUsize) {
    let started = Instant::now();
    while running.load(Ordering::Acquire) != 0 {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if started.elapsed() >= SPIN_AT_PASS_END {
            break;
        }
    }
}

/// The helpers' side of one threaded pass, handed to its body.
pub(crate) struct Pass<'p, 'scope> {
    scope: &'p rayon::Scope<'scope>,
    running: &'p Arc<AtomicUsize>,
}

impl<'scope> Pass<'_, 'scope> {
    /// Starts `task` on a helper (the pass ends once every task has run).
    pub(crate) fn spawn(&self, task: impl FnOnce() + Send + 'scope) {
        let running = Arc::clone(self.running);
        running.fetch_add(1, Ordering::Relaxed);
        self.scope.spawn(move |_| {
            task();
            running.fetch_sub(1, Ordering::Release);
        });
    }
}

/// Hands each of `pool`'s `helpers` that is not already looking for work a task that
/// looks for it for [`KEEP_AWAKE`] (after every threaded pass). Does nothing when
/// called from a helper itself (a pass nested in another), which would otherwise queue
/// the task behind its own work.
fn keep_awake(pool: &rayon::ThreadPool, helpers: usize) {
    if rayon::current_thread_index().is_some() {
        return;
    }
    while LOOKING
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |looking| {
            (looking < helpers).then_some(looking + 1)
        })
        .is_ok()
    {
        pool.spawn(look_for_work);
    }
}

/// Runs the pool's pending tasks as they arrive (`rayon::yield_now`), and returns once
/// none has arrived for [`KEEP_AWAKE`], letting the thread sleep. Only the timing of who
/// does which band or chunk changes, never a result.
fn look_for_work() {
    let mut last_work = Instant::now();
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => last_work = Instant::now(),
            _ if last_work.elapsed() >= KEEP_AWAKE => break,
            _ => std::hint::spin_loop(),
        }
    }
    LOOKING.fetch_sub(1, Ordering::AcqRel);
}

/// Locks `mutex`, also if a thread panicked holding it (the data are plain values).
pub(crate) fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` on every item of `items` (each item typically a chunk of slices),
/// sharing the items out among [`num_threads`] threads through a queue that the calling
/// thread drains too. The split is whatever `items` yields, fixed by the caller, so when
/// `work` on one item touches only that item's values the result is the same for every
/// thread count.
pub(crate) fn for_each_shared<I: Send>(
    items: impl Iterator<Item = I> + Send,
    work: impl Fn(I) + Sync,
) {
    for_each_shared_with(items, || (), |(), item| work(item));
}

/// [`for_each_shared`] with a scratch state per thread: each thread makes one with
/// `state` and hands it to `work` with every item it takes (buffers reused from item to
/// item). The state must not carry results from one item to the next, or the result
/// would depend on which thread took which item.
pub(crate) fn for_each_shared_with<I: Send, S>(
    items: impl Iterator<Item = I> + Send,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, I) + Sync,
) {
    let threads = num_threads();
    let pool = helpers_for(threads);
    let Some(pool) = pool else {
        let mut state = state();
        items.for_each(|item| work(&mut state, item));
        return;
    };
    let queue = Mutex::new(items);
    let drain = || {
        let mut state = state();
        loop {
            let next = lock(&queue).next();
            match next {
                Some(item) => work(&mut state, item),
                None => break,
            }
        }
    };
    threaded_pass(&pool, threads - 1, |pass| {
        for _ in 1..threads {
            pass.spawn(drain);
        }
        drain();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_available_cores_at_most_four() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_num_threads(), cores.min(MAX_DEFAULT_THREADS));
        assert!((1..=MAX_DEFAULT_THREADS).contains(&default_num_threads()));
    }

    #[test]
    fn a_limit_holds_inside_its_task_only_and_never_widens() {
        let outside = num_threads();
        on_threads(1, || {
            assert_eq!(num_threads(), 1);
            // A task inside a one-thread task cannot take more.
            on_threads(3, || assert_eq!(num_threads(), 1));
            assert_eq!(num_threads(), 1);
        });
        assert_eq!(num_threads(), outside);
    }

    #[test]
    fn join_returns_both_results_in_order() {
        let data: Vec<u64> = (1..=1000).collect();
        let (evens, odds) = join(
            || data.iter().filter(|&&x| x % 2 == 0).sum::<u64>(),
            || data.iter().filter(|&&x| x % 2 == 1).sum::<u64>(),
        );
        assert_eq!((evens, odds), (250_500, 250_000));
        // With a limit of one thread the two run one after the other, same results.
        let sequential = on_one_thread(|| join(|| data[0], || data[999]));
        assert_eq!(sequential, (1, 1000));
    }
}
