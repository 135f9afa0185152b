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
//! product, the chunks of an optimiser update), so results stay bit-identical.
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
    /// Set while this thread runs work that is already one of several running in
    /// parallel ([`on_one_thread`]).
    static ON_ONE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with [`num_threads`] returning 1 on this thread: for work that is itself one
/// of several parallel tasks (a shard of a data-parallel training step), whose products
/// and passes should not hand work to the helpers, which are busy with the other tasks.
/// Results are the same either way; only the speed changes.
pub(crate) fn on_one_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_ONE_THREAD.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(ON_ONE_THREAD.with(|flag| flag.replace(true)));
    f()
}

/// The number of threads matrix products currently may use ([`default_num_threads`]
/// unless set; 1 inside a task of a data-parallel step, which already runs beside others).
pub fn num_threads() -> usize {
    if ON_ONE_THREAD.with(Cell::get) {
        return 1;
    }
    match NUM_THREADS.load(Ordering::Relaxed) {
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
    }
}

/// The helper pools, one per helper count, started on first use and kept for the
/// life of the process.
static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// The kept-alive pool of `helpers` helper threads, started the first time it is asked
/// for; `None` if the operating system refuses to start threads (the caller then does
/// the work alone). Work runs on it through [`threaded_pass`].
pub(crate) fn helper_pool(helpers: usize) -> Option<Arc<rayon::ThreadPool>> {
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
/// [`rayon::ThreadPool::in_place_scope`] (tasks it spawns run on the `helpers`, and may
/// borrow from the caller), then the helpers are kept looking for the next pass
/// ([`keep_awake`]).
pub(crate) fn threaded_pass<'scope, R>(
    pool: &rayon::ThreadPool,
    helpers: usize,
    body: impl FnOnce(&rayon::Scope<'scope>) -> R,
) -> R {
    let result = pool.in_place_scope(body);
    keep_awake(pool, helpers);
    result
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
    let pool = (threads > 1).then(|| helper_pool(threads - 1)).flatten();
    let Some(pool) = pool else {
        let mut state = state();
        items.for_each(|item| work(&mut state, item));
        return;
    };
    let queue = Mutex::new(items);
    let drain = || {
        let mut state = state();
        loop {
            let next = queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .next();
            match next {
                Some(item) => work(&mut state, item),
                None => break,
            }
        }
    };
    threaded_pass(&pool, threads - 1, |scope| {
        for _ in 1..threads {
            scope.spawn(|_| drain());
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
}
