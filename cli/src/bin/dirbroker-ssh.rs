//! `dirbroker-ssh`: the node-side commands OpenSSH runs on every login and
//! connection, in a small binary of their own (as SSSD ships
//! `sss_ssh_authorizedkeys`): it links only the lookup path, so a call takes
//! about a fifth less time than the full tool's (bench/ssh-keys.sh), and a
//! node carries no administration code. Same behaviour, output and exit codes as `dirbroker ssh
//! authorized-keys|known-hosts`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dirbroker::config::{Config, ENV_CONFIG};
use dirbroker::ssh::node;
use dirbroker_cli::exit::Exit;
use dirbroker_cli::node::{AuthorizedKeysArgs, KnownHostsArgs, plain_authorized_keys};

/// Where a node keeps its read-only directory configuration.
const NODE_CONFIG: &str = "/etc/dirbroker/node.toml";

#[derive(Parser, Debug)]
#[command(
    name = "dirbroker-ssh",
    version,
    about = "SSH keys from the directory, for sshd and ssh on every node",
    after_help = "In /etc/ssh/sshd_config:\n  \
        AuthorizedKeysCommand /usr/local/bin/dirbroker-ssh authorized-keys --fingerprint %f -- %u\n  \
        AuthorizedKeysCommandUser dirbroker-keys\n\
        In /etc/ssh/ssh_config:\n  \
        KnownHostsCommand /usr/local/bin/dirbroker-ssh --config /etc/dirbroker/hosts.toml known-hosts %H\n\n\
        Examples:\n  dirbroker-ssh authorized-keys alice\n  dirbroker-ssh known-hosts '[node17]:2222'\n\n\
        Exit codes: 0 answered (possibly with no lines), 2 usage, 3 directory unreachable and\n\
        no fresh cache, 4 configuration, 5 access denied, 1 other directory errors.\n\
        See docs/ssh.md."
)]
struct Cli {
    /// Node configuration (read-only directory identity).
    #[arg(long, env = ENV_CONFIG, default_value = NODE_CONFIG, value_name = "FILE")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a user's public keys for sshd (AuthorizedKeysCommand).
    AuthorizedKeys(AuthorizedKeysArgs),
    /// Print known_hosts lines for a host (KnownHostsCommand).
    KnownHosts(KnownHostsArgs),
}

fn main() -> ExitCode {
    // sshd's plain form skips building the argument parser (it runs on every login).
    let fast = plain_authorized_keys(std::env::args_os().skip(1), &["authorized-keys"], NODE_CONFIG);
    let cli = match fast {
        Some((config, a)) => Cli { config, command: Command::AuthorizedKeys(a) },
        None => match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() { Exit::Usage } else { Exit::Ok }.into();
            }
        },
    };
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dirbroker-ssh: {e}");
            return Exit::Config.into();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dirbroker-ssh: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let answer = runtime.block_on(async {
        match cli.command {
            Command::AuthorizedKeys(a) => node::authorized_keys(&config, a.into()).await,
            Command::KnownHosts(a) => node::known_hosts(&config, &a.host, a.port).await,
        }
    });
    match answer {
        Ok(lines) => {
            node::print_lines(&lines);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dirbroker-ssh: {e}");
            Exit::from(&e).into()
        }
    }
}
