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
use super::cache::KeyCache;
use super::known_hosts;
use crate::config::Config;
use crate::directory::{DirError, Directory};
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
    let looked_up = match connect(config).await {
        Ok(dir) => authorized::lookup(&dir, &query, now).await,
        Err(e) => Err(e),
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
    let dir = Directory::connect_once(cfg).await?;
    let (lines, skipped) = known_hosts::lookup(&dir, host, port).await?;
    for s in &skipped {
        eprintln!("dirbroker: known-hosts {host}: skipped {s}");
    }
    Ok(lines)
}

/// One connection, bound as the node identity (no pool: one lookup, then exit).
async fn connect(config: &Config) -> Result<Directory, DirError> {
    let cfg = config.directory_config().map_err(|e| DirError::Config(e.to_string()))?;
    Directory::connect_once(cfg).await
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
