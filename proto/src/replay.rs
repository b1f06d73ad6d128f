//! The one replay cache (RFC 4120 §3.2.3: "MUST utilize a replay cache to
//! remember any authenticator presented within the allowable clock skew"),
//! for SSO's login proofs, ticket requests and service authenticators and for
//! the migration protocol's nonces.
//! Time is a parameter; entries are dropped once their expiry passes.
//!
//! In-memory only: a service that restarts loses it and, as RFC 4120 says,
//! must then refuse authenticators for one skew interval (see
//! [`ReplayCache::new_after_restart`]).

use std::collections::HashMap;

/// A key seen before (or refused in the post-restart window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replayed")]
pub struct Replayed;

/// The clock skew allowed everywhere (RFC 4120's default, 300 s).
pub const MAX_SKEW: i64 = 300;

/// Remembers keys until their expiry time.
#[derive(Debug, Default, Clone)]
pub struct ReplayCache {
    seen: HashMap<[u8; 32], i64>,
    /// Refuse everything before this time (cache lost on restart).
    refuse_until: i64,
    /// When expired entries were last swept (at most once per second, so
    /// an insert is O(1) amortized, not a scan of the whole cache).
    swept_at: i64,
}

impl ReplayCache {
    /// An empty cache.
    pub fn new() -> Self {
        ReplayCache::default()
    }

    /// A cache that replaced a lost one at `now`: refuses all entries for
    /// one skew interval, since it cannot know what it saw before.
    pub fn new_after_restart(now: i64) -> Self {
        ReplayCache { seen: HashMap::new(), refuse_until: now.saturating_add(MAX_SKEW), swept_at: now }
    }

    /// Records `key` until `expires_at`; fails with [`Replayed`] if it is
    /// already there (or the cache is in its post-restart window).
    pub fn check_and_insert(&mut self, key: [u8; 32], expires_at: i64, now: i64) -> Result<(), Replayed> {
        if now < self.refuse_until {
            return Err(Replayed);
        }
        if now > self.swept_at {
            self.seen.retain(|_, exp| *exp >= now);
            self.swept_at = now;
        }
        if self.seen.get(&key).is_some_and(|exp| *exp >= now) {
            return Err(Replayed);
        }
        self.seen.insert(key, expires_at);
        Ok(())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_expires_and_restart_window() {
        let mut c = ReplayCache::new();
        c.check_and_insert([1; 32], 100, 0).unwrap();
        assert_eq!(c.check_and_insert([1; 32], 100, 50), Err(Replayed));
        c.check_and_insert([1; 32], 300, 101).unwrap();
        let mut r = ReplayCache::new_after_restart(1000);
        assert_eq!(r.check_and_insert([2; 32], 2000, 1299), Err(Replayed));
        r.check_and_insert([2; 32], 2000, 1300).unwrap();
    }
}
