//! The edge of the pure layers: the one place in this crate that reads the
//! clock, draws from the operating system's randomness or sleeps. Everything
//! else takes `now` and `rng` as parameters, so a test can stand at T = 59 or
//! T = 20000000000 and replay a seeded run; `clippy.toml` refuses the direct
//! calls anywhere but here (and `dirbroker::clock`, for the `time` crate).
#![expect(clippy::disallowed_methods, reason = "the one edge module that may read the clock and the OS RNG")]

use std::time::{Duration, SystemTime};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The wall clock, now.
pub fn system_now() -> SystemTime {
    SystemTime::now()
}

/// The wall clock as rustls and webpki take it.
pub fn unix_time() -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::now()
}

/// The process's cryptographically secure RNG (rand's thread RNG, seeded from the OS).
pub fn rng() -> rand::rngs::ThreadRng {
    rand::rng()
}

/// Fill `buf` from aws-lc's system RNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified> {
    aws_lc_rs::rand::fill(buf)
}

/// Block this thread for `d` (process supervision and polling only; tests
/// wait for a condition instead).
pub fn sleep(d: Duration) {
    std::thread::sleep(d)
}
