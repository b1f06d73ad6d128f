//! The arguments of the two node commands (`authorized-keys`, `known-hosts`),
//! one definition for both binaries (`dirbroker ssh …` and `dirbroker-ssh …`),
//! and the fast path that recognises the plain form sshd runs on every login
//! without building clap's parser; and `dirbroker node sssd-conf`, the
//! wiring of a node's SSSD and sshd (docs/nodes.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use dirbroker::ssh::authorized::KeyQuery;
use dirbroker::ssh::sssd_conf::{self, Authtok, SshdWiring, SssdConfError};

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

/// Recognise the plain form sshd runs, `[--config FILE] VERB… [--fingerprint F]
/// [--key K] [--host H] [--] USER` (options before or after USER; after `--`
/// USER may start with '-') (`VERB…` is `ssh authorized-keys`
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
    // USER and the options in any order, as clap takes them; after `--`
    // only USER, which may then start with '-' (the sshd line documented in
    // docs/ssh.md ends in `-- %u`, so no user name is ever read as an option).
    let mut parsed = AuthorizedKeysArgs { user: String::new(), fingerprint: None, key: None, host: None };
    let mut user = None;
    let mut options: &[String] = rest;
    while let [flag, tail @ ..] = options {
        let tail: &[String] = tail;
        if flag == "--" {
            let [last] = tail else { return None };
            if user.replace(last.clone()).is_some() {
                return None;
            }
            break;
        }
        if !flag.starts_with('-') {
            if user.replace(flag.clone()).is_some() {
                return None;
            }
            options = tail;
            continue;
        }
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
    parsed.user = user.filter(|u| !u.is_empty())?;
    let config = config
        .or_else(|| std::env::var_os(dirbroker::config::ENV_CONFIG).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default_config));
    Some((config, parsed))
}

/// `dirbroker node …`: configuration for the machines people log in to.
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Print an sssd.conf for this node (or, with --sshd, the sshd_config lines).
    #[command(after_help = SSSD_CONF_HELP)]
    SssdConf(SssdConfArgs),
}

const SSSD_CONF_HELP: &str = "Examples:\n  \
    dirbroker --config /etc/dirbroker/node.toml node sssd-conf                 # review it, password left out\n  \
    dirbroker --config /etc/dirbroker/node.toml node sssd-conf --out /etc/sssd/sssd.conf\n  \
    dirbroker --config /etc/dirbroker/node.toml node sssd-conf --sshd > /etc/ssh/sshd_config.d/10-dirbroker.conf\n\n\
    The [directory] section of the node configuration (the one dirbroker-ssh reads: uris,\n\
    base_dn, bind_dn of the node identity, bind_password_file, tls.ca_file, timeouts) becomes\n\
    an SSSD ldap domain: NSS for people and groups, sss_ssh_authorizedkeys, and a PAM account\n\
    check that denies disabled users (ldap_access_filter) and users past dirbrokerNotAfter.\n\
    The node identity's password is never printed and never taken from the command line:\n\
    --out FILE copies it from bind_password_file into FILE, written with mode 0600.\n\
    SSSD knows nothing of allowed-from lists or dirbrokerNotBefore; dirbroker-ssh does\n\
    (docs/nodes.md has the table).\n\n\
    Exit codes: 0 written, 2 usage, 4 configuration (unreadable config or password file,\n\
    anonymous bind, a value that cannot go into sssd.conf), 1 the output file cannot be written.";

#[derive(Args, Debug)]
pub struct SssdConfArgs {
    /// Write the complete file, with the node identity's password, to FILE (mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "sshd")]
    pub out: Option<PathBuf>,
    /// The SSSD domain name (users appear as USER or USER@DOMAIN).
    #[arg(long, default_value = "dirbroker", value_name = "NAME")]
    pub domain: String,
    /// Print the sshd_config lines instead (AuthorizedKeysCommand dirbroker-ssh, UsePAM).
    #[arg(long)]
    pub sshd: bool,
    /// With --sshd: the installed node binary.
    #[arg(long, default_value = "/usr/local/bin/dirbroker-ssh", value_name = "PATH")]
    pub ssh_command: PathBuf,
    /// With --sshd: the user sshd runs the command as (AuthorizedKeysCommandUser).
    #[arg(long, default_value = "dirbroker-keys", value_name = "USER")]
    pub keys_user: String,
}

fn conf_failure(e: SssdConfError) -> crate::Failure {
    crate::Failure::new(crate::exit::Exit::Config, e.to_string())
}

/// `dirbroker node …`.
pub fn run(ctx: &crate::Ctx, cmd: NodeCmd) -> crate::CliResult {
    match cmd {
        NodeCmd::SssdConf(args) => sssd_conf(ctx, args),
    }
}

fn sssd_conf(ctx: &crate::Ctx, args: SssdConfArgs) -> crate::CliResult {
    use crate::Failure;
    use crate::exit::Exit;
    if ctx.output == crate::Output::Json {
        return Err(Failure::usage("node sssd-conf writes configuration files; --output json does not apply"));
    }
    let config = ctx.config()?;
    if args.sshd {
        let node_config = std::path::absolute(&ctx.config_path)
            .map_err(|e| Failure::new(Exit::Config, format!("{}: {e}", ctx.config_path.display())))?;
        let lines = sssd_conf::sshd_lines(&SshdWiring {
            command: &args.ssh_command,
            node_config: &node_config,
            keys_user: &args.keys_user,
        })
        .map_err(conf_failure)?;
        print!("{lines}");
        return Ok(());
    }
    let dir = config.directory_config()?;
    match &args.out {
        None => {
            let text = sssd_conf::render(&dir, &args.domain, Authtok::Omitted).map_err(conf_failure)?;
            print!("{}", text.as_str());
        }
        Some(path) => {
            let text = sssd_conf::render(&dir, &args.domain, Authtok::Inline).map_err(conf_failure)?;
            dirbroker::secret::write_private_file(path, text.as_bytes())
                .map_err(|e| Failure::new(Exit::Failed, format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {} (mode 0600); SSSD wants it owned by root", path.display());
        }
    }
    Ok(())
}

/// `known-hosts` arguments, as ssh passes them (both binaries).
#[derive(Args, Debug)]
pub struct KnownHostsArgs {
    /// Host name or address (%H), or [host]:port.
    pub host: String,
    /// Port, when not given as [host]:port; lines use [host]:port when it is not 22.
    pub port: Option<u16>,
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
        // The documented sshd line ends in `-- %u`: a user name that looks
        // like an option is a user name there.
        let (_, a) = parse(&["authorized-keys", "--fingerprint", "SHA256:y", "--", "-h"]).unwrap();
        assert_eq!((a.user.as_str(), a.fingerprint.as_deref()), ("-h", Some("SHA256:y")));
        let (_, a) = parse(&["authorized-keys", "--", "--config=/x"]).unwrap();
        assert_eq!(a.user, "--config=/x");
        for other in [
            &["authorized-keys", "--", "alice", "extra"][..],
            &["authorized-keys", "alice", "--", "bob"],
            &["authorized-keys", "--"],
            &["authorized-keys", "-h"],
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
