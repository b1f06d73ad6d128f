//! Optional on-disk cache for AuthorizedKeysCommand answers: when the
//! directory cannot be reached, a fresh-enough answer may be served; a stale
//! or missing one fails closed. One 0600 file per user, named by a hash of
//! the user name so no input reaches a path.

use dirbroker_proto::encoding::hex;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::write_private_file;

const MAGIC: &str = "dirbroker-keys-cache v1";

#[derive(Clone, Debug)]
pub struct KeyCache {
    dir: PathBuf,
    ttl: Duration,
}

impl KeyCache {
    pub fn new(dir: impl Into<PathBuf>, ttl: Duration) -> Self {
        KeyCache { dir: dir.into(), ttl }
    }

    fn path(&self, user: &str) -> PathBuf {
        let digest = Sha256::digest(user.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    /// Remember `lines` as the answer for `user` at `now`.
    pub fn store(&self, user: &str, lines: &[String], now: OffsetDateTime) -> std::io::Result<()> {
        let mut text = format!("{MAGIC} {} {}\n", now.unix_timestamp(), hex(user.as_bytes()));
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        write_private_file(&self.path(user), text.as_bytes())
    }

    /// The answer stored for `user` if it is younger than the TTL at `now`.
    pub fn load_fresh(&self, user: &str, now: OffsetDateTime) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.path(user)).ok()?;
        let mut lines = text.lines();
        let header = lines.next()?;
        let rest = header.strip_prefix(MAGIC)?.trim();
        let (ts, who) = rest.split_once(' ')?;
        if who != hex(user.as_bytes()) {
            return None;
        }
        let stored = OffsetDateTime::from_unix_timestamp(ts.parse().ok()?).ok()?;
        let age = now - stored;
        if age.is_negative() || age > self.ttl {
            return None;
        }
        Some(lines.map(str::to_string).collect())
    }

    /// Drop what is stored for `user` (e.g. the user was removed).
    pub fn forget(&self, user: &str) {
        let _ = std::fs::remove_file(self.path(user));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_answers_are_served_stale_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::new(dir.path(), Duration::from_secs(60));
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let lines = vec!["ssh-ed25519 AAAA a".to_string(), "ssh-rsa BBBB b".to_string()];
        cache.store("../../etc/passwd", &lines, t0).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "one hashed file, inside the dir");
        assert_eq!(cache.load_fresh("../../etc/passwd", t0 + time::Duration::seconds(59)).unwrap(), lines);
        assert!(cache.load_fresh("../../etc/passwd", t0 + time::Duration::seconds(61)).is_none());
        assert!(cache.load_fresh("../../etc/passwd", t0 - time::Duration::seconds(1)).is_none(), "from the future");
        assert!(cache.load_fresh("someone-else", t0).is_none());
        cache.forget("../../etc/passwd");
        assert!(cache.load_fresh("../../etc/passwd", t0).is_none());
    }
}
