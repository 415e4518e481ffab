//! A hand-off queue between two threads that wakes its consumer once per batch.
//!
//! Waking a thread (Node's event loop, or a parked Tokio worker) costs more than the work
//! of one session operation, so operations and their results cross in batches: the `wake`
//! function runs only when the queue goes from empty to non-empty, and
//! [`BatchQueue::drain`] takes everything that arrived until the woken side got to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What a queue gathers its items into: a list, or an encoded form built as items arrive
/// (so that the consumer's thread only takes it).
pub trait Batch: Default {
    /// One item.
    type Item;

    /// Adds an item at the end.
    fn add(&mut self, item: Self::Item);

    /// Whether nothing was added.
    fn is_empty(&self) -> bool;
}

impl<T> Batch for Vec<T> {
    type Item = T;

    fn add(&mut self, item: T) {
        self.push(item);
    }

    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

/// A queue with a wake-up on its first item.
pub struct BatchQueue<B> {
    items: Mutex<B>,
    /// Whether items wait, readable without the lock (see [`BatchQueue::is_filled`]).
    filled: AtomicBool,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl<B: Batch> BatchQueue<B> {
    /// A queue that calls `wake` whenever it stops being empty.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            items: Mutex::new(B::default()),
            filled: AtomicBool::new(false),
            wake: Box::new(wake),
        }
    }

    /// Adds an item, waking the consumer if it is the first one since the last drain.
    pub fn push(&self, item: B::Item) {
        self.push_all(std::iter::once(item));
    }

    /// Adds several items at once, waking the consumer if they are the first since the last
    /// drain.
    pub fn push_all(&self, batch: impl IntoIterator<Item = B::Item>) {
        let mut batch = batch.into_iter().peekable();
        if batch.peek().is_none() {
            return;
        }
        let first = {
            let mut items = self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let was_empty = items.is_empty();
            batch.for_each(|item| items.add(item));
            self.filled.store(true, Ordering::SeqCst);
            was_empty
        };
        if first {
            (self.wake)();
        }
    }

    /// Takes everything queued, in the order it was pushed.
    pub fn drain(&self) -> B {
        let mut items = self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.filled.store(false, Ordering::SeqCst);
        std::mem::take(&mut *items)
    }

    /// Whether items wait, without taking the lock: for a consumer that looks often.
    pub fn is_filled(&self) -> bool {
        self.filled.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn wakes_once_per_batch() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let queue = BatchQueue::<Vec<i32>>::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });

        queue.push(1);
        queue.push(2);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(queue.drain(), vec![1, 2]);

        queue.push(3);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(queue.drain().len(), 1);
        assert!(queue.drain().is_empty());
    }

    #[test]
    fn no_item_is_lost_across_threads() {
        let queue = Arc::new(BatchQueue::<Vec<i32>>::new(|| {}));
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let queue = queue.clone();
                std::thread::spawn(move || (0..1000).for_each(|i| queue.push(t * 1000 + i)))
            })
            .collect();

        let mut seen = 0;
        while seen < 4000 {
            seen += queue.drain().len();
            if producers.iter().all(|p| p.is_finished()) {
                seen += queue.drain().len();
                break;
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert_eq!(seen + queue.drain().len(), 4000);
    }
}
