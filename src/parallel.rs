//! Mapping a batch over every core, in order: for the CPU-bound stages of ingestion (parsing
//! manifests, decoding and serialising documents). One pool of long-lived threads (rayon's) serves
//! every shard at once, so fifty namespaces syncing together start no more threads than one.
//! Callers run it on a blocking thread, never on an async worker. The index resolves a relist's
//! pipelines on this pool while it holds its write lock, and a pool thread that waits may run
//! any other job meanwhile: so no job here ever takes the index's lock.

use rayon::prelude::*;

/// `f` of every item, in order. A panic in `f` propagates: callers catch their own.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    items.par_iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_across_threads() {
        let items: Vec<usize> = (0..1000).collect();
        assert_eq!(super::map(&items, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[usize], |i| *i).is_empty());
    }
}
