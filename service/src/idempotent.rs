//! Decisions remembered by request key, so that a caller who lost an answer
//! (its request timed out, the connection dropped) and asks again with the
//! same key gets the decision that was made, not a second one. A repeat that
//! arrives while the first is still being decided waits for it.
//!
//! Only decisions are remembered: an error (the directory was down) leaves
//! the key free, and the next attempt decides afresh. Keys are forgotten
//! `ttl` after they were first used; at most `max_keys` are held.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

type Slot<V> = (Instant, Arc<OnceCell<V>>);

#[derive(Debug)]
pub struct Decisions<K, V> {
    ttl: Duration,
    max_keys: usize,
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Decisions<K, V> {
    pub fn new(ttl: Duration, max_keys: usize) -> Decisions<K, V> {
        Decisions { ttl, max_keys, slots: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, key: &K, now: Instant) -> Arc<OnceCell<V>> {
        let Ok(mut slots) = self.slots.lock() else { return Arc::new(OnceCell::new()) };
        if let Some((since, cell)) = slots.get(key)
            && now.saturating_duration_since(*since) < self.ttl
        {
            return cell.clone();
        }
        if slots.len() >= self.max_keys {
            let ttl = self.ttl;
            slots.retain(|_, (since, _)| now.saturating_duration_since(*since) < ttl);
            if slots.len() >= self.max_keys {
                slots.clear();
            }
        }
        let cell = Arc::new(OnceCell::new());
        slots.insert(key.clone(), (now, cell.clone()));
        cell
    }

    /// The decision for `key`: remembered, being made by another request
    /// (waited for), or made now by `decide`.
    pub async fn decide<E, F, Fut>(&self, key: &K, now: Instant, decide: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self.slot(key, now);
        cell.get_or_try_init(decide).await.cloned()
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_repeat_gets_the_first_decision_and_an_error_is_not_remembered() {
        let d: Decisions<&str, u32> = Decisions::new(Duration::from_secs(60), 10);
        let runs = AtomicUsize::new(0);
        let t0 = Instant::now();
        let make = |v: u32| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<u32, ()>(v)
            }
        };
        assert_eq!(d.decide(&"k", t0, make(1)).await, Ok(1));
        assert_eq!(d.decide(&"k", t0, make(2)).await, Ok(1), "the first decision stands");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // After the ttl the key is free again.
        assert_eq!(d.decide(&"k", t0 + Duration::from_secs(60), make(3)).await, Ok(3));
        // An error leaves the key free.
        assert_eq!(d.decide(&"e", t0, || async { Err::<u32, ()>(()) }).await, Err(()));
        assert_eq!(d.decide(&"e", t0, make(4)).await, Ok(4));
    }

    #[tokio::test]
    async fn a_repeat_in_flight_waits_for_the_first() {
        let d: Arc<Decisions<&str, u32>> = Arc::new(Decisions::new(Duration::from_secs(60), 10));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let t0 = Instant::now();
        let first = {
            let d = d.clone();
            tokio::spawn(async move {
                d.decide(&"k", t0, || async move {
                    let _ = wait.await;
                    Ok::<u32, ()>(7)
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let second = {
            let d = d.clone();
            tokio::spawn(async move { d.decide(&"k", t0, || async { Ok::<u32, ()>(8) }).await })
        };
        tokio::task::yield_now().await;
        let _ = release.send(());
        assert_eq!(first.await.unwrap(), Ok(7));
        assert_eq!(second.await.unwrap(), Ok(7), "the repeat waited for the first decision");
    }

    #[tokio::test]
    async fn many_keys_stay_bounded() {
        let d: Decisions<u32, u32> = Decisions::new(Duration::from_secs(60), 20);
        let t0 = Instant::now();
        for k in 0..1000 {
            assert_eq!(d.decide(&k, t0, || async { Ok::<u32, ()>(1) }).await, Ok(1));
            assert!(d.len() <= 20);
        }
    }
}
