//! SSO's use of the one replay cache ([`crate::replay`]), and the clock-skew
//! rule of its timestamps.

pub use crate::replay::{MAX_SKEW, ReplayCache, Replayed};
use crate::sso::error::SsoError;

/// |now − t| ≤ 300 s, else [`SsoError::Skew`].
pub fn check_skew(t: i64, now: i64) -> Result<(), SsoError> {
    let d = now.saturating_sub(t);
    if d.saturating_abs() > MAX_SKEW { Err(SsoError::Skew(d)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_300_seconds_either_way() {
        assert!(check_skew(0, 300).is_ok() && check_skew(300, 0).is_ok());
        assert_eq!(check_skew(0, 301), Err(SsoError::Skew(301)));
    }
}
