//! Per-key rate limits: at most `limit` events per `window` for each key
//! (a caller and a user, a source address, …), in bounded memory.
//!
//! A fixed window per key: the first event opens a window, events past the
//! limit inside it are refused with the time left. When more keys are live
//! than the map may hold, the expired ones go first; if all are live the map
//! starts over (a flood of distinct keys costs the limits their memory, not
//! the process its memory).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimit<K> {
    limit: u32,
    window: Duration,
    max_keys: usize,
    seen: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> RateLimit<K> {
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> RateLimit<K> {
        RateLimit { limit, window, max_keys, seen: Mutex::new(HashMap::new()) }
    }

    /// Count one event of `key` at `now`; `Err(wait)` when the key is over
    /// its limit, with how long until its window ends.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Ok(mut seen) = self.seen.lock() else { return Ok(()) };
        if !seen.contains_key(key) && seen.len() >= self.max_keys {
            let window = self.window;
            seen.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if seen.len() >= self.max_keys {
                seen.clear();
            }
        }
        let slot = seen.entry(key.clone()).or_insert((now, 0));
        let elapsed = now.saturating_duration_since(slot.0);
        if elapsed >= self.window {
            *slot = (now, 0);
        }
        if slot.1 >= self.limit {
            return Err(self.window.saturating_sub(now.saturating_duration_since(slot.0)));
        }
        slot.1 += 1;
        Ok(())
    }

    /// Give back one event of `key` counted by [`Self::check`]: for limits on
    /// failures, where every attempt is counted up front (so attempts in
    /// flight count too) and a success returns its slot.
    pub fn refund(&self, key: &K) {
        let Ok(mut seen) = self.seen.lock() else { return };
        if let Some(slot) = seen.get_mut(key) {
            slot.1 = slot.1.saturating_sub(1);
        }
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_for_its_window_and_others_do_not() {
        let limit = RateLimit::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.check(&"a", t0), Ok(()));
        }
        assert_eq!(limit.check(&"a", t0 + Duration::from_secs(20)), Err(Duration::from_secs(40)));
        assert_eq!(limit.check(&"b", t0 + Duration::from_secs(20)), Ok(()), "another key is not limited");
        assert_eq!(limit.check(&"a", t0 + Duration::from_secs(60)), Ok(()), "a new window");
    }

    #[test]
    fn a_refunded_event_does_not_count() {
        let limit = RateLimit::new(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limit.check(&"a", t0), Ok(()));
            limit.refund(&"a");
        }
        assert_eq!(limit.check(&"a", t0), Ok(()));
        assert_eq!(limit.check(&"a", t0), Ok(()));
        assert!(limit.check(&"a", t0).is_err());
        limit.refund(&"never seen");
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let limit = RateLimit::new(1, Duration::from_secs(60), 50);
        let t0 = Instant::now();
        for k in 0..10_000u32 {
            assert_eq!(limit.check(&k, t0), Ok(()));
            assert!(limit.len() <= 50);
        }
    }
}
