//! The two commands OpenSSH runs on every node, as one call each: shared by
//! `dirbroker ssh authorized-keys|known-hosts` and the small node binary
//! `dirbroker-ssh authorized-keys|known-hosts` (what sshd_config points to;
//! it links only this path, so it starts faster). Their arguments are the
//! CLI's (`dirbroker_cli::node`).
//!
//! ```text
//!  config ─► node identity bind ─► lookup ─► lines on stdout (nothing else)
//!                 └─ unreachable ─► fresh cache (if [ssh] cache_dir) or deny
//! ```
//!
//! Diagnostics (skipped keys, a cached answer, a refusal) go to stderr and
//! syslog (authpriv), never to stdout, where sshd reads keys.

use std::io::Write;
use std::time::Duration;

use super::authorized::{self, KeyQuery};
use super::cache::{KeyCache, UNREACHABLE_FOR};
use super::known_hosts;
use crate::config::Config;
use crate::directory::{DirError, Directory, DirectoryConfig};
use crate::syslog::{self, Level};

/// The authorized_keys lines sshd may accept for `query.user`: from the
/// directory, or from a fresh cache when the directory is unreachable and the
/// cache is on; an error (nothing printed, sshd denies) otherwise.
pub async fn authorized_keys(config: &Config, mut query: KeyQuery) -> Result<Vec<String>, DirError> {
    if query.host.is_none() {
        query.host.clone_from(&config.ssh.host);
    }
    let cache = config.ssh.cache_dir.as_ref().map(|d| KeyCache::new(d, Duration::from_secs(config.ssh.cache_ttl_s)));
    let now = crate::clock::now();
    let looked_up = match Servers::new(config, cache.as_ref(), now) {
        Err(e) => Err(e),
        // Every server failed moments ago: a fresh cached answer at once,
        // rather than waiting for each to time out again.
        Ok(servers)
            if servers.all_unreachable()
                && cache.as_ref().is_some_and(|c| c.load_fresh(&query.user, now).is_some()) =>
        {
            Err(DirError::Unavailable {
                detail: format!("every directory server failed less than {UNREACHABLE_FOR} ago"),
            })
        }
        Ok(servers) => match servers.connect().await {
            Ok(dir) => {
                let r = authorized::lookup(&dir, &query, now).await;
                servers.remember(Some(&dir));
                r
            }
            Err(e) => {
                servers.remember(None);
                Err(e)
            }
        },
    };
    match looked_up {
        Ok(answer) => {
            for s in &answer.skipped {
                warn(&format!("authorized-keys {}: skipped {s}", query.user));
            }
            if let Some(c) = &cache {
                let stored = if answer.lines.is_empty() {
                    c.forget(&query.user);
                    Ok(())
                } else {
                    c.store(&query.user, &answer.lines, now)
                };
                if let Err(e) = stored {
                    eprintln!("dirbroker: cannot write the key cache in {}: {e}", c.dir().display());
                }
            }
            // A plain answer is not logged: sshd logs the key it accepts.
            Ok(authorized::select(&answer.lines, &query))
        }
        Err(e @ DirError::Unavailable { .. }) => {
            if let Some(lines) = cache.as_ref().and_then(|c| c.load_fresh(&query.user, now)) {
                let lines = authorized::select(&lines, &query);
                warn(&format!(
                    "authorized-keys {}: directory unavailable ({e}); served {} cached key(s)",
                    query.user,
                    lines.len()
                ));
                return Ok(lines);
            }
            syslog::send(Level::Warning, &format!("authorized-keys {}: {e}; no fresh cache, denying", query.user));
            Err(e)
        }
        Err(e) => {
            syslog::send(Level::Warning, &format!("authorized-keys {}: {e}", query.user));
            Err(e)
        }
    }
}

/// known_hosts lines for `host` (a name, an address or `[host]:port`).
pub async fn known_hosts(config: &Config, host: &str, port: Option<u16>) -> Result<Vec<String>, DirError> {
    let cfg = config.directory_config().map_err(|e| DirError::Config(e.to_string()))?;
    if let Err(e) = cfg.check_authenticated_transport("host keys") {
        syslog::send(Level::Warning, &format!("known-hosts {host}: {e}"));
        return Err(e);
    }
    let cache = config.ssh.cache_dir.as_ref().map(|d| KeyCache::new(d, Duration::from_secs(config.ssh.cache_ttl_s)));
    let servers = Servers::with(cfg, cache.as_ref(), crate::clock::now());
    let dir = match servers.connect().await {
        Ok(dir) => dir,
        Err(e) => {
            servers.remember(None);
            return Err(e);
        }
    };
    let looked_up = known_hosts::lookup(&dir, host, port).await;
    servers.remember(Some(&dir));
    let (lines, skipped) = looked_up?;
    for s in &skipped {
        eprintln!("dirbroker: known-hosts {host}: skipped {s}");
    }
    Ok(lines)
}

/// The directory servers of one lookup, and what the node remembers of them
/// between lookups: a server that hung or could not be reached is tried last
/// for [`UNREACHABLE_FOR`] (in `[ssh] cache_dir`), so only the first lookup
/// after a server hangs waits for its timeout.
struct Servers<'a> {
    cfg: DirectoryConfig,
    cache: Option<&'a KeyCache>,
    known: Vec<(String, time::OffsetDateTime)>,
    now: time::OffsetDateTime,
}

impl<'a> Servers<'a> {
    fn new(config: &Config, cache: Option<&'a KeyCache>, now: time::OffsetDateTime) -> Result<Self, DirError> {
        let cfg = config.directory_config().map_err(|e| DirError::Config(e.to_string()))?;
        Ok(Self::with(cfg, cache, now))
    }

    fn with(mut cfg: DirectoryConfig, cache: Option<&'a KeyCache>, now: time::OffsetDateTime) -> Self {
        let known = cache.map(|c| c.unreachable(now)).unwrap_or_default();
        cfg.try_last = known.iter().map(|(u, _)| u.clone()).filter(|u| cfg.uris.contains(u)).collect();
        Servers { cfg, cache, known, now }
    }

    fn all_unreachable(&self) -> bool {
        self.cfg.uris.iter().all(|u| self.cfg.try_last.contains(u))
    }

    /// One connection, bound as the node identity (no pool: one lookup, then exit).
    async fn connect(&self) -> Result<Directory, DirError> {
        Directory::connect_once(self.cfg.clone()).await
    }

    /// Write down which servers failed: those `dir` saw fail (newly: since
    /// now; remembered ones keep their time), or every one when none answered.
    fn remember(&self, dir: Option<&Directory>) {
        let Some(cache) = self.cache else { return };
        let failed = match dir {
            Some(d) => d.failed_uris(),
            None => self.cfg.uris.clone(),
        };
        let list: Vec<(String, time::OffsetDateTime)> = failed
            .into_iter()
            .map(|u| {
                let since = self.known.iter().find(|(k, _)| *k == u).map_or(self.now, |(_, at)| *at);
                (u, since)
            })
            .collect();
        if list.is_empty() && self.known.is_empty() {
            return;
        }
        if let Err(e) = cache.remember_unreachable(&list, self.now) {
            eprintln!("dirbroker: cannot write the key cache in {}: {e}", cache.dir().display());
        }
    }
}

/// Write lines to stdout; a reader that went away (EPIPE) is not an error.
pub fn print_lines(lines: &[String]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

fn warn(msg: &str) {
    eprintln!("dirbroker: {msg}");
    syslog::send(Level::Warning, msg);
}
