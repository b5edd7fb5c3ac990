//! The trainer's one worker pool (chip caches, evaluations): each worker owns its own state (its own copy of the
//! models: tract plans are not shared between threads) and takes items in order from a shared
//! counter, so a slow item never holds up a whole chunk.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Maps `items` with `work` on `threads` workers, each with state made by `init`. Results come back
/// in item order; the first error stops nothing but is returned.
pub fn map_with<I, S, R>(
    items: &[I],
    threads: usize,
    init: impl Fn() -> anyhow::Result<S> + Sync,
    work: impl Fn(&mut S, usize, &I) -> anyhow::Result<R> + Sync,
    progress: impl Fn(usize) + Sync,
) -> anyhow::Result<Vec<R>>
where
    I: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let threads = threads.clamp(1, 64).min(items.len().max(1));
    let results: Vec<anyhow::Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, R)>> {
                    let mut state = init()?;
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, work(&mut state, i, item)?));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    Ok(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_and_errors_surface() {
        let items: Vec<u32> = (0..100).collect();
        let out = map_with(
            &items,
            3,
            || Ok(0u32),
            |n, _, x| {
                *n += 1;
                Ok(x * 2)
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let err = map_with(
            &items,
            2,
            || Ok(()),
            |_, _, x| {
                anyhow::ensure!(*x != 50, "item 50 is bad");
                Ok(())
            },
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("item 50"));
    }
}
