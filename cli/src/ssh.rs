//! `dirbroker ssh …`: the commands OpenSSH runs (authorized-keys,
//! known-hosts) and private-key escrow.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use dirbroker::directory::{Bind, DirError, Directory};
use dirbroker::model::DirEntry;
use dirbroker::model::User;
use dirbroker::ssh::escrow;
use dirbroker::ssh::node;

use crate::node::{AuthorizedKeysArgs, KnownHostsArgs, plain_authorized_keys};

use super::{CliResult, Ctx, Failure, existing_user};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum SshCmd {
    /// Print a user's public keys for sshd (AuthorizedKeysCommand).
    #[command(after_help = "In /etc/ssh/sshd_config (the node binary dirbroker-ssh does the same, faster):\n  \
        AuthorizedKeysCommand /usr/local/bin/dirbroker-ssh --config /etc/dirbroker/node.toml authorized-keys --fingerprint %f -- %u\n  \
        AuthorizedKeysCommandUser dirbroker-keys\n\n\
        Examples:\n  dirbroker ssh authorized-keys alice\n  dirbroker ssh authorized-keys alice --fingerprint SHA256:abc…\n\n\
        Prints authorized_keys lines on stdout and nothing else. Unknown, disabled and\n\
        expired users get no lines and exit 0. When the directory is unreachable, a\n\
        cached answer younger than [ssh] cache_ttl_s is served if [ssh] cache_dir is\n\
        set; otherwise nothing is printed and the exit code is 3. Logs go to syslog\n\
        (authpriv) and stderr. See docs/ssh.md.")]
    AuthorizedKeys(AuthorizedKeysArgs),
    /// Print known_hosts lines for a host (KnownHostsCommand).
    #[command(after_help = "In ssh_config (the node binary dirbroker-ssh does the same, faster):\n  \
        KnownHostsCommand /usr/local/bin/dirbroker-ssh --config /etc/dirbroker/hosts.toml known-hosts %H\n\n\
        Examples:\n  dirbroker ssh known-hosts node17\n  dirbroker ssh known-hosts '[10.1.0.17]:2222'\n  \
        dirbroker ssh known-hosts 10.1.0.17 2222\n\n\
        ssh passes %H as [host]:port when the port is not 22. Host keys are public:\n\
        hosts.toml may bind anonymously (no bind_dn).")]
    KnownHosts(KnownHostsArgs),
    /// Private-key escrow: store or remove a user's passphrase-protected key.
    #[command(subcommand)]
    Escrow(EscrowCmd),
    /// Fetch your escrowed key (binding as you) and add it to the running ssh-agent.
    #[command(after_help = "Examples:\n  eval $(ssh-agent)\n  dirbroker ssh agent-load alice < ~/.ldap-password\n  \
        dirbroker ssh agent-load alice --password-file ~/.ldap-password\n\n\
        The key goes to `ssh-add -` through a pipe: it is never written to disk and never\n\
        on a command line. ssh-add asks for the key's passphrase itself.")]
    AgentLoad(AgentLoadArgs),
}

#[derive(Subcommand, Debug)]
pub enum EscrowCmd {
    /// Store USER's passphrase-protected OpenSSH private key (readable by USER only).
    #[command(after_help = "Examples:\n  dirbroker ssh escrow put alice ~alice/.ssh/id_ed25519\n  \
        dirbroker ssh escrow put alice - < id_ed25519\n\nKeys without a passphrase are refused.")]
    Put(EscrowPutArgs),
    /// Remove USER's escrowed key.
    #[command(after_help = "Example:\n  dirbroker ssh escrow remove alice")]
    Remove(UserArg),
}

#[derive(Args, Debug)]
pub struct EscrowPutArgs {
    user: String,
    /// The private key file ('-' for standard input).
    keyfile: PathBuf,
}

#[derive(Args, Debug)]
pub struct UserArg {
    user: String,
}

#[derive(Args, Debug)]
pub struct AgentLoadArgs {
    /// Your uid.
    user: String,
    /// Your LDAP password from FILE (default: standard input).
    #[arg(long, value_name = "FILE", default_value = "-")]
    password_file: PathBuf,
}

pub async fn run(ctx: &Ctx, cmd: SshCmd) -> CliResult {
    match cmd {
        SshCmd::AuthorizedKeys(a) => authorized_keys(ctx, a).await,
        SshCmd::KnownHosts(a) => {
            let lines = node::known_hosts(&ctx.config()?, &a.host, a.port).await?;
            node::print_lines(&lines);
            Ok(())
        }
        SshCmd::Escrow(EscrowCmd::Put(a)) => {
            let text = read_key_file(&a.keyfile)?;
            let cipher = escrow::check_private_key(&text).map_err(|e| Failure::usage(e.to_string()))?;
            let dir = ctx.directory().await?;
            let user = existing_user(&dir, &a.user).await?;
            let dn = user.dn(dir.layout())?;
            dir.modify(
                &dn,
                vec![ldap3::Mod::Replace(
                    b"dirbrokerSealedSshPrivateKey".to_vec(),
                    [text.into_bytes()].into_iter().collect(),
                )],
            )
            .await?;
            ctx.report(
                serde_json::json!({ "user": a.user, "escrowed": true, "cipher": cipher }),
                &format!(
                    "escrowed the private key of {} (encrypted with {cipher}); only {} can read it",
                    a.user, a.user
                ),
            );
            Ok(())
        }
        SshCmd::Escrow(EscrowCmd::Remove(a)) => {
            let dir = ctx.directory().await?;
            let user = existing_user(&dir, &a.user).await?;
            if user.sealed_ssh_private_key.is_none() {
                return Err(Failure::new(Exit::Failed, format!("{} has no escrowed key", a.user)));
            }
            dir.modify(
                &user.dn(dir.layout())?,
                vec![ldap3::Mod::Delete(b"dirbrokerSealedSshPrivateKey".to_vec(), Default::default())],
            )
            .await?;
            ctx.report(serde_json::json!({ "user": a.user, "escrowed": false }), "escrowed key removed");
            Ok(())
        }
        SshCmd::AgentLoad(a) => agent_load(ctx, a).await,
    }
}

fn read_key_file(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let mut buf = Vec::new();
    let res = if path == std::path::Path::new("-") {
        std::io::stdin().take(16 * 1024 + 1).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(16 * 1024 + 1).read_to_end(&mut buf))
    };
    res.map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(buf).map_err(|_| Failure::usage(format!("{} is not text", path.display())))?;
    Ok(text)
}

/// Recognise the plain form sshd uses,
/// `[--config FILE] ssh authorized-keys USER [--fingerprint F] [--key K] [--host H]`,
/// and return the config path (flag, then $DIRBROKER_CONFIG, then the
/// default, as clap would) and the arguments. Anything else is for clap.
pub fn fast_authorized_keys_args(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Option<(PathBuf, AuthorizedKeysArgs)> {
    plain_authorized_keys(args, &["ssh", "authorized-keys"], dirbroker::config::DEFAULT_PATH)
}

pub async fn authorized_keys(ctx: &Ctx, a: AuthorizedKeysArgs) -> CliResult {
    let lines = node::authorized_keys(&ctx.config()?, a.into()).await?;
    node::print_lines(&lines);
    Ok(())
}

async fn agent_load(ctx: &Ctx, a: AgentLoadArgs) -> CliResult {
    let password = dirbroker::secret::read_secret_file(&a.password_file).map_err(|e| Failure::usage(e.to_string()))?;
    let config = ctx.config()?;
    let service = Directory::lazy(config.directory_config()?)?;
    let dn = User::dn_for(service.layout(), &a.user)?;
    // Bind as the user: only the owner may read the escrowed key.
    let mine = service.with_bind(Bind::Simple { dn: dn.to_string(), password })?;
    let attrs = ["dirbrokerSealedSshPrivateKey", "dirbrokerDisabled", "dirbrokerNotBefore", "dirbrokerNotAfter"];
    let entry = mine.read(&dn, &attrs).await.map_err(|e| match e {
        DirError::InvalidCredentials { .. } => {
            Failure::new(Exit::Failed, format!("wrong password for {}, or the account is disabled", a.user))
        }
        other => other.into(),
    })?;
    // The account rule: an expired account gets no key (slapd already
    // refuses a disabled one's bind).
    if let Err(why) = dirbroker::model::Validity::from_entry(&entry)?.usable_at(dirbroker::clock::now()) {
        return Err(Failure::new(Exit::Failed, format!("the account of {} is {why}", a.user)));
    }
    let key = entry
        .bytes("dirbrokerSealedSshPrivateKey")?
        .ok_or_else(|| Failure::new(Exit::Failed, format!("{} has no escrowed key", a.user)))?
        .to_vec();
    let key = zeroize::Zeroizing::new(key);
    let mut child = std::process::Command::new("ssh-add")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(Exit::Failed, format!("cannot run ssh-add: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&key).map_err(|e| Failure::new(Exit::Failed, format!("writing to ssh-add: {e}")))?;
    }
    let status = child.wait().map_err(|e| Failure::new(Exit::Failed, format!("ssh-add: {e}")))?;
    if status.success() { Ok(()) } else { Err(Failure::new(Exit::Failed, format!("ssh-add failed ({status})"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<(PathBuf, AuthorizedKeysArgs)> {
        fast_authorized_keys_args(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn fast_path_takes_exactly_the_plain_form() {
        let (cfg, a) =
            parse(&["--config", "/etc/n.toml", "ssh", "authorized-keys", "alice", "--fingerprint", "SHA256:x"])
                .unwrap();
        assert_eq!(cfg, PathBuf::from("/etc/n.toml"));
        assert_eq!((a.user.as_str(), a.fingerprint.as_deref()), ("alice", Some("SHA256:x")));
        let (_, a) = parse(&["--config=/c", "ssh", "authorized-keys", "bob", "--key=AAAA", "--host", "n1"]).unwrap();
        assert_eq!((a.key.as_deref(), a.host.as_deref()), (Some("AAAA"), Some("n1")));
        for other in [
            &["ssh", "authorized-keys"][..],
            &["ssh", "authorized-keys", "--help"],
            &["ssh", "authorized-keys", "alice", "--help"],
            &["ssh", "authorized-keys", "alice", "--fingerprint"],
            &["ssh", "authorized-keys", "alice", "--fingerprint", "a", "--fingerprint", "b"],
            &["--output", "json", "ssh", "authorized-keys", "alice"],
            &["ssh", "known-hosts", "alice"],
            &["ssh", "authorized-keys", "alice", "extra"],
        ] {
            assert!(parse(other).is_none(), "{other:?} must go to clap");
        }
    }
}
