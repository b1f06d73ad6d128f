//! Optional on-disk cache for AuthorizedKeysCommand answers: when the
//! directory cannot be reached, a fresh-enough answer may be served; a stale
//! or missing one fails closed. One 0600 file per user, named by a hash of
//! the user name so no input reaches a path.
//!
//! A cached answer decides who may log in while the directory is down, so
//! only one this process's user could have written counts: the directory
//! must be ours and writable by no one else, the entry a regular file (not
//! a symlink) of ours with mode 0600. Anything else is ignored (and the
//! lookup fails closed).

use dirbroker_proto::encoding::hex;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::write_private_file;

const MAGIC: &str = "dirbroker-keys-cache v1";

/// The entry that lists unreachable directory URIs (no user name has a NUL).
const UNREACHABLE_KEY: &str = "\0unreachable";

/// How long a node tries a hung or unreachable directory server last.
pub const UNREACHABLE_FOR: time::Duration = time::Duration::seconds(30);

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

    /// Why the cache directory cannot be trusted, if it cannot: it must be a
    /// real directory (not a symlink), owned by the effective user, and
    /// writable by no group and no one else.
    pub fn untrusted_dir(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt as _;
        let me = nix::unistd::geteuid().as_raw();
        let d = self.dir.display();
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) => Some(format!("{d}: {e}")),
            Ok(m) if !m.file_type().is_dir() => Some(format!("{d} is not a directory (a symlink?)")),
            Ok(m) if m.uid() != me => Some(format!("{d} is owned by uid {}, not by us ({me})", m.uid())),
            Ok(m) if m.mode() & 0o022 != 0 => Some(format!("{d} is writable by others (mode {:o})", m.mode() & 0o7777)),
            Ok(_) => None,
        }
    }

    /// The text of `user`'s entry if it is a regular file of ours, mode 0600,
    /// and the same file when opened as when looked at (no symlink swapped in).
    fn read_trusted(&self, user: &str) -> Option<String> {
        use std::io::Read as _;
        use std::os::unix::fs::MetadataExt as _;
        let path = self.path(user);
        let seen = std::fs::symlink_metadata(&path).ok()?;
        let me = nix::unistd::geteuid().as_raw();
        if !seen.file_type().is_file() || seen.uid() != me || seen.mode() & 0o077 != 0 {
            return None;
        }
        let mut file = std::fs::File::open(&path).ok()?;
        let opened = file.metadata().ok()?;
        if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
            return None;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The answer stored for `user` if it is younger than the TTL at `now`
    /// and the cache can be trusted.
    pub fn load_fresh(&self, user: &str, now: OffsetDateTime) -> Option<Vec<String>> {
        if let Some(why) = self.untrusted_dir() {
            eprintln!("dirbroker: key cache not used: {why}");
            return None;
        }
        let text = self.read_trusted(user)?;
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

    /// The directory URIs an earlier lookup found hung or unreachable less
    /// than [`UNREACHABLE_FOR`] ago, each with when it was found so.
    pub fn unreachable(&self, now: OffsetDateTime) -> Vec<(String, OffsetDateTime)> {
        if self.untrusted_dir().is_some() {
            return Vec::new();
        }
        let Some(text) = self.read_trusted(UNREACHABLE_KEY) else {
            return Vec::new();
        };
        let mut lines = text.lines();
        if lines.next().is_none_or(|h| !h.starts_with(MAGIC)) {
            return Vec::new();
        }
        lines
            .filter_map(|l| {
                let (uri, ts) = l.rsplit_once(' ')?;
                let at = OffsetDateTime::from_unix_timestamp(ts.parse().ok()?).ok()?;
                let age = now - at;
                (!age.is_negative() && age <= UNREACHABLE_FOR).then(|| (uri.to_string(), at))
            })
            .collect()
    }

    /// Remember which URIs failed, and since when (an empty list forgets).
    pub fn remember_unreachable(&self, uris: &[(String, OffsetDateTime)], now: OffsetDateTime) -> std::io::Result<()> {
        if uris.is_empty() {
            self.forget(UNREACHABLE_KEY);
            return Ok(());
        }
        let lines: Vec<String> = uris.iter().map(|(u, at)| format!("{u} {}", at.unix_timestamp())).collect();
        self.store(UNREACHABLE_KEY, &lines, now)
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

    /// A planted answer is not served: a symlink to a file with a fresh
    /// header, a file another user could write, a directory others can write.
    #[test]
    fn planted_or_loose_entries_are_not_served() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let cache = KeyCache::new(dir.path(), Duration::from_secs(60));
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let lines = vec!["ssh-ed25519 AAAA carol".to_string()];
        // A symlink in place of root's entry, to a well-formed answer elsewhere.
        let elsewhere = tempfile::tempdir().unwrap();
        let planted = KeyCache::new(elsewhere.path(), Duration::from_secs(60));
        planted.store("root", &lines, t0).unwrap();
        std::os::unix::fs::symlink(planted.path("root"), cache.path("root")).unwrap();
        assert_eq!(planted.load_fresh("root", t0).unwrap(), lines, "the planted answer itself is well-formed");
        assert!(cache.load_fresh("root", t0).is_none(), "a symlink is not an answer");
        std::fs::remove_file(cache.path("root")).unwrap();
        // Our own file, but writable by others.
        cache.store("root", &lines, t0).unwrap();
        assert_eq!(cache.load_fresh("root", t0).unwrap(), lines);
        std::fs::set_permissions(cache.path("root"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(cache.load_fresh("root", t0).is_none(), "mode 0666 is not trusted");
        std::fs::set_permissions(cache.path("root"), std::fs::Permissions::from_mode(0o600)).unwrap();
        // A file of another user (as root, the tests can make one).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(cache.path("root"), Some(65534), None).unwrap();
            assert!(cache.load_fresh("root", t0).is_none(), "another user's file is not trusted");
            std::os::unix::fs::chown(cache.path("root"), Some(0), None).unwrap();
        }
        // A directory others may write to (as /tmp): nothing in it counts.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(cache.untrusted_dir().unwrap().contains("writable by others"));
        assert!(cache.load_fresh("root", t0).is_none());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(cache.load_fresh("root", t0).unwrap(), lines);
    }
}
