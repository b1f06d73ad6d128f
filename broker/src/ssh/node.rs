//! The two commands OpenSSH runs on every node, as one call each: shared by
//! `dirbroker ssh authorized-keys|known-hosts` and the small node binary
//! `dirbroker-ssh authorized-keys|known-hosts` (what sshd_config points to;
//! it links only this path, so it starts faster).
//!
//! ```text
//!  config ─► node identity bind ─► lookup ─► lines on stdout (nothing else)
//!                 └─ unreachable ─► fresh cache (if [ssh] cache_dir) or deny
//! ```
//!
//! Diagnostics (skipped keys, a cached answer, a refusal) go to stderr and
//! syslog (authpriv), never to stdout, where sshd reads keys.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;

use super::authorized::{self, KeyQuery};
use super::cache::KeyCache;
use super::known_hosts;
use crate::config::Config;
use crate::directory::{DirError, Directory};
use crate::syslog::{self, Level};

/// `authorized-keys` arguments, as sshd passes them (both binaries).
#[derive(Args, Debug)]
pub struct AuthorizedKeysArgs {
    /// The user sshd asks about (%u).
    pub user: String,
    /// Only the key with this fingerprint (%f).
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Option<String>,
    /// Only the key with this base64 blob (%k).
    #[arg(long, value_name = "BASE64")]
    pub key: Option<String>,
    /// This node's host entry, overriding [ssh] host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

impl From<AuthorizedKeysArgs> for KeyQuery {
    fn from(a: AuthorizedKeysArgs) -> KeyQuery {
        KeyQuery { user: a.user, fingerprint: a.fingerprint, key_blob: a.key, host: a.host }
    }
}

/// Recognise the plain form sshd runs, `[--config FILE] VERB… USER
/// [--fingerprint F] [--key K] [--host H]` (`VERB…` is `ssh authorized-keys`
/// for `dirbroker`, `authorized-keys` for `dirbroker-ssh`), and return the
/// config path (flag, then $DIRBROKER_CONFIG, then `default_config`, as clap
/// would) and the arguments, without building the argument parser: sshd runs
/// this on every login. Anything else (help, other flags) is for clap.
pub fn plain_authorized_keys(
    args: impl Iterator<Item = std::ffi::OsString>,
    verb: &[&str],
    default_config: &str,
) -> Option<(PathBuf, AuthorizedKeysArgs)> {
    let args: Vec<String> = args.map(|a| a.into_string().ok()).collect::<Option<_>>()?;
    let mut rest = args.as_slice();
    let mut config = None;
    match rest {
        [flag, value, tail @ ..] if flag == "--config" => {
            config = Some(PathBuf::from(value));
            rest = tail;
        }
        [flag, tail @ ..] if flag.starts_with("--config=") => {
            config = Some(PathBuf::from(flag.strip_prefix("--config=")?));
            rest = tail;
        }
        _ => {}
    }
    let (words, rest) = (rest.get(..verb.len())?, rest.get(verb.len()..)?);
    if words.iter().zip(verb).any(|(w, v)| w != v) {
        return None;
    }
    let [user, options @ ..] = rest else { return None };
    let mut options: &[String] = options;
    if user.starts_with('-') || user.is_empty() {
        return None;
    }
    let mut parsed = AuthorizedKeysArgs { user: user.clone(), fingerprint: None, key: None, host: None };
    while let [flag, tail @ ..] = options {
        let tail: &[String] = tail;
        let (name, value, tail) = match flag.split_once('=') {
            Some((n, v)) => (n, v.to_string(), tail),
            None => match tail {
                [v, rest @ ..] => (flag.as_str(), v.clone(), rest),
                [] => return None,
            },
        };
        let slot = match name {
            "--fingerprint" => &mut parsed.fingerprint,
            "--key" => &mut parsed.key,
            "--host" => &mut parsed.host,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
        options = tail;
    }
    let config = config
        .or_else(|| std::env::var_os(crate::config::ENV_CONFIG).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default_config));
    Some((config, parsed))
}

/// `known-hosts` arguments, as ssh passes them (both binaries).
#[derive(Args, Debug)]
pub struct KnownHostsArgs {
    /// Host name or address (%H), or [host]:port.
    pub host: String,
    /// Port, when not given as [host]:port; lines use [host]:port when it is not 22.
    pub port: Option<u16>,
}

/// The authorized_keys lines sshd may accept for `query.user`: from the
/// directory, or from a fresh cache when the directory is unreachable and the
/// cache is on; an error (nothing printed, sshd denies) otherwise.
pub async fn authorized_keys(config: &Config, mut query: KeyQuery) -> Result<Vec<String>, DirError> {
    if query.host.is_none() {
        query.host.clone_from(&config.ssh.host);
    }
    let cache = config.ssh.cache_dir.as_ref().map(|d| KeyCache::new(d, Duration::from_secs(config.ssh.cache_ttl_s)));
    let now = OffsetDateTime::now_utc();
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
    let dir = connect(config).await?;
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

/// The exit code a directory error maps to, the same for every command:
/// 1 refused by the directory, 2 bad input, 3 unreachable, 4 configuration,
/// 5 access denied.
pub fn exit_code(e: &DirError) -> u8 {
    match e {
        DirError::NotFound { .. }
        | DirError::AlreadyExists { .. }
        | DirError::InvalidCredentials { .. }
        | DirError::ConstraintViolation { .. }
        | DirError::MalformedEntry { .. }
        | DirError::Ldap { .. } => 1,
        DirError::BadInput { .. } => 2,
        DirError::Unavailable { .. } => 3,
        DirError::Config(_) => 4,
        DirError::AccessDenied { .. } => 5,
    }
}

fn warn(msg: &str) {
    eprintln!("dirbroker: {msg}");
    syslog::send(Level::Warning, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<(PathBuf, AuthorizedKeysArgs)> {
        plain_authorized_keys(args.iter().map(std::ffi::OsString::from), &["authorized-keys"], "/etc/node.toml")
    }

    /// The node binary's fast path takes sshd's forms and leaves the rest to clap.
    #[test]
    fn node_fast_path_takes_exactly_the_plain_form() {
        let (cfg, a) =
            parse(&["--config", "/n.toml", "authorized-keys", "alice", "--fingerprint", "SHA256:x"]).unwrap();
        assert_eq!(cfg, PathBuf::from("/n.toml"));
        assert_eq!((a.user.as_str(), a.fingerprint.as_deref()), ("alice", Some("SHA256:x")));
        let (_, a) = parse(&["authorized-keys", "bob", "--key=AAAA", "--host", "n1"]).unwrap();
        assert_eq!((a.user.as_str(), a.key.as_deref(), a.host.as_deref()), ("bob", Some("AAAA"), Some("n1")));
        for other in [
            &["authorized-keys"][..],
            &["ssh", "authorized-keys", "alice"],
            &["authorized-keys", "--help"],
            &["authorized-keys", "-x"],
            &["authorized-keys", "alice", "--fingerprint"],
            &["authorized-keys", "alice", "extra"],
            &["authorized-keys", "alice", "--key", "a", "--key", "b"],
            &["known-hosts", "node17"],
            &["--version"],
        ] {
            assert!(parse(other).is_none(), "{other:?} must go to clap");
        }
    }
}
