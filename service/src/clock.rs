//! The clock and the RNG at the broker's edges: `time`'s "now", and the
//! protocol crate's edge ([`dirbroker_proto::edge`]) re-exported, so every
//! crate above reads them in one place. `clippy.toml` refuses direct calls
//! elsewhere; pure code takes `now` and `rng` as parameters.
#![expect(clippy::disallowed_methods, reason = "the one edge module that may read the clock and the OS RNG")]

pub use dirbroker_proto::edge::{fill_random, rng, sleep, system_now, unix_now, unix_time};

/// Now, in UTC.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
