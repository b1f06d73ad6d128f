//! Waiting for the directory at start-up.
//!
//! A broker started together with its directory (a compose testbed, a boot
//! where slapd comes up later) would otherwise exit at once with "directory
//! unavailable". [`Directory::connect_waiting`] retries the first connection
//! with exponential back-off while the failure is one worth retrying
//! ([`DirError::is_retryable`]: unreachable, timed out); a wrong password or
//! a bad configuration is reported at once, as without waiting.

use std::time::Duration;

use super::{DirError, Directory, DirectoryConfig, Result};

/// The waits between connection attempts: 0.5 s, doubled up to 8 s a wait,
/// until their total reaches `limit` (the last wait is cut to fit).
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    left: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(500);
    pub const LONGEST: Duration = Duration::from_secs(8);

    pub fn new(limit: Duration) -> Self {
        Backoff { next: Self::FIRST, left: limit }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.left.is_zero() {
            return None;
        }
        let wait = self.next.min(self.left);
        self.left = self.left.saturating_sub(wait);
        self.next = self.next.saturating_mul(2).min(Self::LONGEST);
        Some(wait)
    }
}

impl Directory {
    /// [`Directory::connect`], tried again after each wait of [`Backoff`]
    /// while the directory is unavailable, for at most `limit` of waiting in
    /// all (zero: one attempt). Each wait is logged at warn level with the
    /// reason; the last error is returned when the time is spent.
    pub async fn connect_waiting(cfg: DirectoryConfig, limit: Duration) -> Result<Directory> {
        let mut waits = Backoff::new(limit);
        let mut attempt: u32 = 1;
        loop {
            let err = match Self::connect(cfg.clone()).await {
                Ok(dir) => return Ok(dir),
                Err(e) => e,
            };
            match waits.next() {
                Some(wait) if err.is_retryable() => {
                    tracing::warn!(
                        "attempt {attempt} to reach the directory failed ({err}); waiting {:.1} s before the next",
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                }
                _ => return Err(give_up(err, attempt)),
            }
        }
    }
}

/// The last error, saying how many attempts were made when there were several.
fn give_up(err: DirError, attempts: u32) -> DirError {
    match err {
        DirError::Unavailable { detail } if attempts > 1 => {
            DirError::Unavailable { detail: format!("{detail} (gave up after {attempts} attempts)") }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_stop_at_the_limit() {
        let waits: Vec<Duration> = Backoff::new(Duration::from_secs(30)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 8000, 6500]);
        assert_eq!(waits.iter().sum::<Duration>(), Duration::from_secs(30));
    }

    #[test]
    fn no_limit_means_no_wait() {
        assert_eq!(Backoff::new(Duration::ZERO).next(), None);
        let short: Vec<Duration> = Backoff::new(Duration::from_millis(200)).collect();
        assert_eq!(short, [Duration::from_millis(200)]);
    }
}
