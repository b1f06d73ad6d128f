//! User levels 1–4 (paper §4.2 assumption 3) and the level policy helper.

use serde::{Deserialize, Serialize};

use crate::sso::error::SsoError;

/// A user level. Serialized as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Level {
    /// 1: temporary, read-only (also anonymous users).
    Temporary = 1,
    /// 2: normal user: read and write.
    Normal = 2,
    /// 3: every service except administration.
    Full = 3,
    /// 4: administrator.
    Admin = 4,
}

impl Level {
    /// The minimum level for writes.
    pub const WRITE: Level = Level::Normal;
    /// The minimum level for administration.
    pub const ADMIN: Level = Level::Admin;

    /// The number 1–4.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level numbered `n` (1–4), as the directory stores it.
    pub fn from_number(n: i64) -> Option<Level> {
        u8::try_from(n).ok().and_then(|n| Level::try_from(n).ok())
    }

    /// The number 1–4, as the directory stores it.
    pub fn number(self) -> i64 {
        i64::from(self.as_u8())
    }
}

impl TryFrom<u8> for Level {
    type Error = SsoError;
    fn try_from(v: u8) -> Result<Self, SsoError> {
        match v {
            1 => Ok(Level::Temporary),
            2 => Ok(Level::Normal),
            3 => Ok(Level::Full),
            4 => Ok(Level::Admin),
            _ => Err(SsoError::BadLevel),
        }
    }
}

impl From<Level> for u8 {
    fn from(l: Level) -> u8 {
        l as u8
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// Refuses unless `level ≥ min` (2 for writes, 4 for admin).
pub fn require_level(level: Level, min: Level) -> Result<(), SsoError> {
    if level >= min { Ok(()) } else { Err(SsoError::InsufficientLevel { have: level.as_u8(), need: min.as_u8() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(require_level(Level::Normal, Level::WRITE).is_ok());
        assert_eq!(
            require_level(Level::Temporary, Level::WRITE),
            Err(SsoError::InsufficientLevel { have: 1, need: 2 })
        );
        assert_eq!(require_level(Level::Full, Level::ADMIN), Err(SsoError::InsufficientLevel { have: 3, need: 4 }));
        assert!(require_level(Level::Admin, Level::ADMIN).is_ok());
        assert_eq!(Level::try_from(0), Err(SsoError::BadLevel));
        assert_eq!(Level::try_from(5), Err(SsoError::BadLevel));
        assert_eq!(serde_json::to_string(&Level::Full).unwrap(), "3");
        assert!(serde_json::from_str::<Level>("7").is_err());
    }
}
