//! The `dirbroker` command-line tool: argument parsing, output formats and
//! exit codes ([`exit::Exit`]), one file per noun. The work itself is done by
//! the `dirbroker` library (and `dirbroker-agents` for `migrate`); the node
//! binary `dirbroker-ssh` shares [`node`] and [`exit`] with it.

pub mod exit;
pub mod node;

mod agent;
mod ca;
mod check;
mod cluster;
mod dc;
mod group;
mod host;
mod ldif;
mod login;
mod migrate;
mod oidc;
mod otp;
mod ps;
mod psk;
mod register;
mod secrets;
mod serve;
mod service;
mod ssh;
mod sso;
mod testbed;
mod ticket;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use dirbroker::admin::AdminError;
use dirbroker::client::{ApiClient, ClientError};
use dirbroker::config::{Config, ConfigError, DEFAULT_PATH, ENV_CONFIG};
use dirbroker::directory::{DirError, Directory};

use exit::Exit;

const EXIT_HELP: &str = exit::HELP;

#[derive(Parser, Debug)]
#[command(
    name = "dirbroker",
    version,
    about = "LDAP-backed identity and SSO broker",
    long_about = "dirbroker keeps users, OTP seeds, SSH keys, data-center certificates and \
                  server TOTP secrets in OpenLDAP, and issues Kerberos-style tickets.",
    after_help = format!("Examples:\n  dirbroker testbed up                      # private slapd in ./.dirbroker/testbed\n  dirbroker --config .dirbroker/testbed/dirbroker.toml check\n  dirbroker user add alice --name 'Alice Liddell' --password-file alice.pw\n  dirbroker user show alice --output json\n\n{EXIT_HELP}")
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = ENV_CONFIG, default_value = DEFAULT_PATH, value_name = "FILE")]
    config: PathBuf,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A private slapd for trying dirbroker out and for tests.
    #[command(subcommand, after_help = EXIT_HELP)]
    Testbed(testbed::TestbedCmd),
    /// Replicated providers: which one writes, compare them, change the writer.
    #[command(subcommand, after_help = EXIT_HELP)]
    Cluster(cluster::ClusterCmd),
    /// Check that the directory answers and holds the dirbroker schema.
    #[command(after_help = format!("Examples:\n  dirbroker check\n  dirbroker check --output json\n\n{EXIT_HELP}"))]
    Check,
    /// Manage users and their SSH keys.
    #[command(subcommand, after_help = EXIT_HELP)]
    User(user::UserCmd),
    /// Unix groups (posixGroup, memberUid) for the nodes' NSS.
    #[command(subcommand, after_help = EXIT_HELP)]
    Group(group::GroupCmd),
    /// Manage hosts: names, addresses, host keys, allowed-from lists.
    #[command(subcommand, after_help = EXIT_HELP)]
    Host(host::HostCmd),
    /// OTP tokens: enrol, import, verify, administer.
    #[command(subcommand, after_help = EXIT_HELP)]
    Otp(otp::OtpCmd),
    /// The master keys that seal secrets stored in LDAP.
    #[command(subcommand, after_help = EXIT_HELP)]
    Secrets(secrets::SecretsCmd),
    /// The data-center certificate authority.
    #[command(subcommand, after_help = EXIT_HELP)]
    Ca(ca::CaCmd),
    /// Data centers: certificates and revocation.
    #[command(subcommand, after_help = EXIT_HELP)]
    Dc(dc::DcCmd),
    /// Import entries or change records from an LDIF file: checked first, then in journaled transactions.
    #[command(after_help = format!("Examples:\n  dirbroker import users.ldif\n  dirbroker import users.ldif --dry-run\n  \
        dirbroker import users.ldif --batch 2000 --output json\n  dirbroker import users.ldif --upsert\n  \
        dirbroker import changes.ldif     # changetype: add, delete, modify, modrdn/moddn\n\n\
        The whole file is checked first; if it has problems nothing is written (unless\n\
        --continue-on-error). Records are applied in the file's order in LDAP transactions\n\
        of --batch records and each committed batch is journaled in FILE.journal: after an\n\
        interruption run the same command again and it finishes the job without applying\n\
        anything twice.\n\n{EXIT_HELP}"))]
    Import(ldif::ImportArgs),
    /// LDIF files: check, and generate from passwd, authorized_keys, host keys and known_hosts.
    #[command(subcommand, after_help = EXIT_HELP)]
    Ldif(ldif::LdifCmd),
    /// Export entries to LDIF (secrets left out unless --include-secrets, and then only sealed).
    #[command(after_help = format!("Examples:\n  dirbroker export > all.ldif\n  \
        dirbroker export --base ou=people,dc=example,dc=org --filter '(objectClass=posixAccount)'\n  \
        dirbroker export --include-secrets --out backup.ldif\n\n\
        Entries come parents first, so the file imports as it is; the tree is read a level\n\
        at a time with paged searches and written as it arrives (memory stays flat).\n\n{EXIT_HELP}"))]
    Export(ldif::ExportArgs),
    /// Physical servers of data centers and their TOTP secrets.
    #[command(subcommand, after_help = EXIT_HELP)]
    Ps(ps::PsCmd),
    /// Pre-shared keys between admin consoles and data centers (K1).
    #[command(subcommand, after_help = EXIT_HELP)]
    Psk(psk::PskCmd),
    /// Run the broker's HTTPS JSON service for machines (mutual TLS); stops cleanly on SIGTERM.
    #[command(after_help = format!("Examples:\n  dirbroker serve\n  dirbroker --config /etc/dirbroker/dirbroker.toml serve\n  \
        DIRBROKER_LOG=debug dirbroker serve\n\n\
        Settings are in the [serve] section of the configuration (listen address, the broker's\n\
        certificate and key from `dirbroker ca issue broker …`, timeouts, limits); see\n\
        docs/serve.md. Prints `listening on ADDR` once it accepts connections; logs go to\n\
        standard error (DIRBROKER_LOG, default info).\n\n{EXIT_HELP}"))]
    Serve(serve::ServeArgs),
    /// Migrate a VM image between data centers (the admin console; asks for the user's OTP).
    #[command(after_help = format!("Example:\n  dirbroker migrate vm1.qcow2 --from DC-SEOUL-1 --to DC-BUSAN-2 --source-server PS-0001 \\\n      \
        --dest-server PS-0101 --user bob --k1 k1.bundle\n\n\
        Runs the admin console with the source data center's endpoint from the\n\
        directory and the CA certificate from [ca]. The user's OTP is read from the terminal\n\
        (or stdin). See docs/protocols/migration.md.\n\n{EXIT_HELP}"))]
    Migrate(migrate::MigrateArgs),
    /// SSO agent services (AMS, ANS): certificates, key pairs, directory entries.
    #[command(subcommand, after_help = EXIT_HELP)]
    Agent(agent::AgentCmd),
    /// Register for SSO (stages 1–2 of seed 002): publish P_c = g^pw without sending the password.
    #[command(after_help = register::REGISTER_HELP)]
    Register(register::RegisterArgs),
    /// Commands for OpenSSH (authorized-keys, known-hosts) and key escrow.
    #[command(subcommand, after_help = EXIT_HELP)]
    Ssh(ssh::SshCmd),
    /// Node wiring: an sssd.conf and sshd_config lines for a machine people log in to.
    #[command(subcommand, after_help = EXIT_HELP)]
    Node(node::NodeCmd),
    /// SSO setup on the broker host: the ticket-signing key.
    #[command(subcommand, after_help = EXIT_HELP)]
    Sso(sso::SsoCmd),
    /// Kerberized services: register (P_k), list, remove.
    #[command(subcommand, after_help = EXIT_HELP)]
    Service(service::ServiceCmd),
    /// OpenID Connect relying parties: add (secret shown once), list, remove.
    #[command(subcommand, after_help = EXIT_HELP)]
    Oidc(oidc::OidcCmd),
    /// SSO login: prove the password to the broker, store the TGT in the credential cache.
    #[command(after_help = format!("Examples:\n  dirbroker login alice --broker https://broker:8443 --ca ca.pem --password-file alice.pw\n  \
        dirbroker login alice --broker https://broker:8443 --ca ca.pem --password-file alice.pw --otp-file code\n  \
        dirbroker login --anonymous --broker https://broker:8443 --ca ca.pem\n\n\
        The broker answers a wrong password and a missing or wrong OTP code alike. On a terminal the\n\
        code is asked after the password (empty if you have no token); without one, pass --otp-file.\n\
        Anonymous login works only on a broker with [sso] allow_anonymous = true.\n\n{EXIT_HELP}"))]
    Login(login::LoginArgs),
    /// List the credential cache, like klist.
    #[command(after_help = format!("Examples:\n  dirbroker tickets\n  dirbroker tickets --output json\n\n{EXIT_HELP}"))]
    Tickets(ticket::TicketsArgs),
    /// Service tickets: get one with the TGT, use one at a Kerberized service.
    #[command(subcommand, after_help = EXIT_HELP)]
    Ticket(ticket::TicketCmd),
}

#[derive(Args, Debug)]
/// One entry, named by its id.
pub struct IdArg {
    id: String,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(code: Exit, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }
}

impl From<DirError> for Failure {
    fn from(e: DirError) -> Self {
        Failure::new(Exit::from(&e), e.to_string())
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        Failure::new(e.fault().into(), e.to_string())
    }
}

/// A call to the broker or an agent: unreachable or failing (5xx) is worth a
/// retry (3), a refusal (4xx) or an unreadable answer is not (1).
impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Setup(_) => Exit::Usage,
            ClientError::Unreachable { .. } => Exit::Unavailable,
            ClientError::Refused { status, .. } => Exit::from_http_status(*status >= 500),
            ClientError::Unreadable { .. } => Exit::Failed,
        };
        Failure::new(code, e.to_string())
    }
}

/// The HTTPS client of `bases` (tried in order, [`ApiClient`]) trusting only the CA certificate in the file
/// `ca` (`--ca`), and from it only a server certificate of `kind` (the
/// broker, or the ANS): a valid certificate of another kind is refused.
pub fn https_client<S: AsRef<str>>(
    bases: &[S],
    ca: &std::path::Path,
    kind: dirbroker_service::holder::CertKind,
    timeout: std::time::Duration,
) -> Result<ApiClient, Failure> {
    let bases = dirbroker::client::base_urls(bases).map_err(|e| Failure::usage(e.to_string()))?;
    let pem = std::fs::read(ca).map_err(|e| Failure::usage(format!("--ca {}: {e}", ca.display())))?;
    ApiClient::trusting(&bases, &pem, kind, timeout).map_err(|e| Failure::usage(format!("--ca {}: {e}", ca.display())))
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::new(Exit::Config, e.to_string())
    }
}

pub type CliResult = Result<(), Failure>;

/// Context passed to every command.
#[derive(Debug)]
pub struct Ctx {
    pub config_path: PathBuf,
    pub output: Output,
    /// A JSON document went to stdout already: a refusal after it is told on
    /// stderr only, so stdout holds exactly one document.
    json_printed: std::cell::Cell<bool>,
}

impl Ctx {
    pub fn config(&self) -> Result<Config, Failure> {
        Config::load(&self.config_path).map_err(|e| {
            let mut f = Failure::from(e);
            if self.config_path == std::path::Path::new(DEFAULT_PATH) {
                f.message.push_str(&format!(
                    "\nhint: pass --config FILE or set {ENV_CONFIG}; `dirbroker testbed up` writes one for its slapd"
                ));
            }
            f
        })
    }

    /// The directory, connected now; an unreachable one is waited for up to
    /// `[directory] start_wait_s` (back-off, each wait logged).
    pub async fn directory(&self) -> Result<Directory, Failure> {
        let config = self.config()?;
        let wait = std::time::Duration::from_secs(config.directory.start_wait_s);
        let cfg = config.directory_config()?;
        // Admin commands read and write on the writer: one consistent view,
        // and no admin edit made on a replica (docs/replication.md).
        Ok(Directory::connect_waiting(cfg, wait).await?.primary())
    }

    /// Print a JSON value (for `--output json`).
    pub fn json(&self, value: &serde_json::Value) {
        self.json_printed.set(true);
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
    }

    /// Report a result: `value` for `--output json`, `text` otherwise.
    pub fn report(&self, value: serde_json::Value, text: &str) {
        if self.output == Output::Json {
            self.json(&value);
        } else {
            println!("{text}");
        }
    }

    /// Print a list: one JSON array for `--output json`, else one line per item.
    pub fn list<T>(&self, items: &[T], json: impl Fn(&T) -> serde_json::Value, line: impl Fn(&T) -> String) {
        if self.output == Output::Json {
            self.json(&serde_json::Value::Array(items.iter().map(json).collect()));
        } else {
            for item in items {
                println!("{}", line(item));
            }
        }
    }

    /// The broker master keyring named by the configuration.
    pub fn keyring(&self) -> Result<dirbroker::seal::Keyring, Failure> {
        let path = self.config()?.keyring_path();
        dirbroker::seal::Keyring::load(&path).map_err(|e| Failure::new(Exit::Config, e.to_string()))
    }
}

/// The user with this uid; a missing one is "no user with uid …" (exit 1).
pub async fn existing_user(dir: &Directory, uid: &str) -> Result<dirbroker::model::User, Failure> {
    Ok(dirbroker::admin::existing_user(dir, uid).await?)
}

/// Load the entry of kind `T` named `id`; a missing one is "no WHAT ID" (exit 1).
pub async fn load_named<T: dirbroker::model::DirEntry>(dir: &Directory, id: &str, what: &str) -> Result<T, Failure> {
    Ok(dirbroker::admin::load_named(dir, id, what).await?)
}

/// Delete the entry of kind `T` named `id` (a missing one is "no WHAT ID",
/// exit 1); returns the entry as it was.
pub async fn delete_named<T: dirbroker::model::DirEntry>(dir: &Directory, id: &str, what: &str) -> Result<T, Failure> {
    let entry = load_named::<T>(dir, id, what).await?;
    dir.delete(&entry.dn(dir.layout())?).await?;
    Ok(entry)
}

/// Add `new` values to a multi-valued attribute in one modify; values already
/// present are skipped. Returns what was added.
pub async fn add_values(
    dir: &Directory,
    dn: &dirbroker::directory::Dn,
    attr: &str,
    present: &[String],
    new: &[String],
) -> Result<Vec<String>, Failure> {
    let mut added: Vec<String> = Vec::new();
    for v in new {
        if !present.iter().any(|p| p.eq_ignore_ascii_case(v)) && !added.iter().any(|a| a.eq_ignore_ascii_case(v)) {
            added.push(v.clone());
        }
    }
    if !added.is_empty() {
        let values = added.iter().map(|v| v.as_bytes().to_vec()).collect();
        dir.modify(dn, vec![ldap3::Mod::Add(attr.as_bytes().to_vec(), values)]).await?;
    }
    Ok(added)
}

/// Remove `gone` values (those present) from a multi-valued attribute in one modify.
pub async fn remove_values(
    dir: &Directory,
    dn: &dirbroker::directory::Dn,
    attr: &str,
    present: &[String],
    gone: &[String],
) -> Result<Vec<String>, Failure> {
    let removed: Vec<String> =
        present.iter().filter(|p| gone.iter().any(|g| g.eq_ignore_ascii_case(p))).cloned().collect();
    if !removed.is_empty() {
        let values = removed.iter().map(|v| v.as_bytes().to_vec()).collect();
        dir.modify(dn, vec![ldap3::Mod::Delete(attr.as_bytes().to_vec(), values)]).await?;
    }
    Ok(removed)
}

pub fn main() -> ExitCode {
    // sshd runs `ssh authorized-keys` on every login: for its plain argument
    // form, skip building the whole command tree and the log subscriber.
    if let Some((config_path, args)) = ssh::fast_authorized_keys_args(std::env::args_os().skip(1)) {
        let ctx = Ctx { config_path, output: Output::Text, json_printed: Default::default() };
        let result = block_on(ssh::authorized_keys(&ctx, args));
        return finish(&ctx, result);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage } else { Exit::Ok };
            if code == Exit::Usage && wants_json(std::env::args_os().skip(1)) {
                let message = first_line(&e.to_string());
                println!("{}", serde_json::json!({ "error": message, "exit_code": code.code() }));
            }
            let _ = e.print();
            return code.into();
        }
    };
    // The daemon and the migration console log progress at info, as `dirbroker-agents` does.
    init_logging(if matches!(cli.command, Command::Serve(_) | Command::Migrate(_)) { "info" } else { "warn" });
    let ctx = Ctx { config_path: cli.config, output: cli.output, json_printed: Default::default() };
    let command = match cli.command {
        Command::Serve(args) => return finish(&ctx, serve::run(&ctx, args)),
        other => other,
    };
    let result = block_on(async {
        match command {
            Command::Serve(_) => Err(Failure::new(Exit::Failed, "serve runs on its own runtime")),
            Command::Testbed(cmd) => testbed::run(&ctx, cmd).await,
            Command::Check => check::run(&ctx).await,
            Command::Cluster(cmd) => cluster::run(&ctx, cmd).await,
            Command::User(cmd) => user::run(&ctx, cmd).await,
            Command::Group(cmd) => group::run(&ctx, cmd).await,
            Command::Host(cmd) => host::run(&ctx, cmd).await,
            Command::Migrate(args) => migrate::run(&ctx, args).await,
            Command::Ssh(cmd) => ssh::run(&ctx, cmd).await,
            Command::Node(cmd) => node::run(&ctx, cmd),
            Command::Otp(cmd) => otp::run(&ctx, cmd).await,
            Command::Ca(cmd) => ca::run_ca(&ctx, cmd).await,
            Command::Ps(cmd) => ps::run_ps(&ctx, cmd).await,
            Command::Import(args) => ldif::import_file(&ctx, args).await,
            Command::Ldif(cmd) => ldif::run(&ctx, cmd).await,
            Command::Export(args) => ldif::export(&ctx, args).await,
            Command::Psk(cmd) => psk::run_psk(&ctx, cmd).await,
            Command::Dc(cmd) => dc::run_dc(&ctx, cmd).await,
            Command::Secrets(cmd) => secrets::run(&ctx, cmd).await,
            Command::Sso(cmd) => sso::run_sso(&ctx, cmd).await,
            Command::Service(cmd) => service::run(&ctx, cmd).await,
            Command::Oidc(cmd) => oidc::run(&ctx, cmd).await,
            Command::Login(args) => login::login(&ctx, args).await,
            Command::Tickets(args) => ticket::tickets(&ctx, args).await,
            Command::Ticket(cmd) => ticket::ticket(&ctx, cmd).await,
            Command::Agent(cmd) => agent::run(&ctx, cmd).await,
            Command::Register(args) => register::run(&ctx, args).await,
        }
    });
    finish(&ctx, result)
}

fn block_on(fut: impl std::future::Future<Output = CliResult>) -> CliResult {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => Err(Failure::new(Exit::Failed, format!("cannot start the async runtime: {e}"))),
    }
}

fn finish(ctx: &Ctx, result: CliResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if ctx.output == Output::Json && !ctx.json_printed.get() {
                println!("{}", serde_json::json!({ "error": f.message, "exit_code": f.code.code() }));
            }
            eprintln!("dirbroker: {}", f.message);
            f.code.into()
        }
    }
}

/// `--output json` (or `--output=json`) among arguments clap refused.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let mut prev_output = false;
    for a in args {
        let a = a.to_string_lossy().into_owned();
        if a == "--output=json" || (prev_output && a == "json") {
            return true;
        }
        prev_output = a == "--output";
    }
    false
}

/// The first line of clap's message, without its "error: " prefix.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

fn init_logging(default: &str) {
    dirbroker_service::logging::init(default);
}
