//! The worker threads scans run on. One rayon pool per thread count, built on first use
//! and kept: spawning threads for every round of morsels cost each query its spawns and,
//! with glibc, page faults in each new thread's fresh malloc arena (1 to 5 ms of system
//! time per 10M-row query on two threads). A process forked after a pool was built (as
//! Python's `multiprocessing` does on Linux) has none of its threads, so pools are kept
//! per process id and a child builds its own.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::error::{Error, Result};

type Pools = HashMap<(u32, usize), Arc<rayon::ThreadPool>>;

static POOLS: Mutex<Option<Pools>> = Mutex::new(None);

/// The most threads a pool has: a larger `threads=` (say, a typo'd 100000) runs on this
/// many rather than trying to start them all and keeping them.
const MAX_THREADS: usize = 256;

/// Each worker's stack: address space, touched only as deep as a query recurses. The
/// parser's limits (200 nested levels, 10,000 binary and pipe operators) keep the deepest
/// query well inside it: a chain of 20,000 `+` needed more than 32 MB and ran in 64 MB
/// (tests/syntax.rs, `long_chains_run_or_are_refused`, runs the longest the parser accepts).
const STACK_BYTES: usize = 128 << 20;

/// The pool of `threads` workers (at most [`MAX_THREADS`]) for this process.
fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let threads = threads.min(MAX_THREADS);
    let key = (std::process::id(), threads);
    let mut pools = POOLS
        .lock()
        .map_err(|_| Error::internal("the thread pool registry was poisoned"))?;
    let pools = pools.get_or_insert_with(HashMap::new);
    if pools.keys().any(|(pid, _)| *pid != key.0) {
        // Inherited through fork: their threads are not in this process, and dropping
        // them would signal those threads through locks a parent thread may have held
        // at the fork. They are left as they are.
        let (mine, inherited): (Pools, Pools) =
            pools.drain().partition(|((pid, _), _)| *pid == key.0);
        std::mem::forget(inherited);
        *pools = mine;
    }
    if let Some(p) = pools.get(&key) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(STACK_BYTES)
        .thread_name(|i| format!("rmmhunt-{i}"))
        .build()
        .map_err(|e| Error::internal(format!("cannot start {threads} scan threads: {e}")))?;
    let p = Arc::new(p);
    pools.insert(key, p.clone());
    Ok(p)
}

/// `f` run on one of the pool's `threads` workers, or on the caller's thread when that is
/// one thread and the query is not `deep`. On the workers, a query's stack is
/// [`STACK_BYTES`] whatever thread called (a long `or` chain binds and evaluates
/// recursively), and with several threads the thread handing out rounds of morsels and
/// consuming their results is one of the `threads`, not a third thread that wakes and
/// sleeps at every round (involuntary context switches of the founding rule on two
/// threads: 10.8 -> 0.6 a query).
pub fn on_worker<R: Send>(threads: usize, deep: bool, f: impl FnOnce() -> R + Send) -> R {
    if threads <= 1 && !deep {
        return f();
    }
    match pool(threads.max(1)) {
        Ok(p) => p.install(f),
        Err(_) => f(),
    }
}

/// `f(0..n)` on up to `threads` threads, results in index order; a call that panics
/// becomes an error in its place.
pub fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let guarded = |i: usize| {
        catch_unwind(AssertUnwindSafe(|| f(i)))
            .unwrap_or_else(|_| Err(Error::internal("a scan thread panicked")))
    };
    if threads <= 1 || n <= 1 {
        return (0..n).map(guarded).collect();
    }
    match pool(threads) {
        Ok(p) => p.install(|| {
            (0..n)
                .into_par_iter()
                .with_max_len(1)
                .map(guarded)
                .collect()
        }),
        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_kept_and_panics_become_errors() {
        let out = parallel_map(50, 3, |i| {
            if i == 7 {
                panic!("boom");
            }
            Ok(i * 2)
        });
        assert_eq!(out.len(), 50);
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i * 2),
                Err(e) => {
                    assert_eq!(i, 7);
                    assert!(e.message.contains("panicked"), "{}", e.message);
                }
            }
        }
        // The pool survives the panic and is reused.
        let again = parallel_map(4, 3, Ok);
        assert_eq!(
            again.into_iter().map(|r| r.ok()).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), Some(3)]
        );
    }
}
