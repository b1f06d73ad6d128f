//! Command-line interface: argument parsing, exit codes, output formats.
//!
//! Exit codes (also in `dirbroker --help`):
//! 0 success · 1 failed (not found, check failed, wrong password) ·
//! 2 bad input or usage · 3 directory unavailable (retry later) ·
//! 4 configuration error · 5 access denied by the directory.

mod check;
mod testbed;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use dirbroker::config::{Config, ConfigError, DEFAULT_PATH, ENV_CONFIG};
use dirbroker::directory::{DirError, Directory};

const EXIT_HELP: &str = "\
Exit codes: 0 success, 1 failed (not found, check failed, wrong password),
2 bad input or usage, 3 directory unavailable (retry later), 4 configuration
error, 5 access denied by the directory.

Secrets (passwords) are read from files or standard input, never from the
command line. Set DIRBROKER_LOG=debug for more detail on standard error.";

#[derive(Parser, Debug)]
#[command(
    name = "dirbroker",
    version,
    about = "LDAP-backed identity and SSO broker",
    long_about = "dirbroker keeps users, OTP seeds, SSH keys, data-center certificates and \
                  server TOTP secrets in OpenLDAP, and issues Kerberos-style tickets.",
    after_help = "Examples:\n  dirbroker testbed up                      # private slapd in ./.dirbroker/testbed\n  dirbroker --config .dirbroker/testbed/dirbroker.toml check\n  dirbroker user add alice --name 'Alice Liddell' --password-file alice.pw\n  dirbroker user show alice --output json\n\n"
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
    /// Check that the directory answers and holds the dirbroker schema.
    #[command(after_help = format!("Examples:\n  dirbroker check\n  dirbroker check --output json\n\n{EXIT_HELP}"))]
    Check,
    /// Manage users.
    #[command(subcommand, after_help = EXIT_HELP)]
    User(user::UserCmd),
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(2, message)
    }
}

impl From<DirError> for Failure {
    fn from(e: DirError) -> Self {
        let code = match &e {
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
        };
        Failure::new(code, e.to_string())
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::new(4, e.to_string())
    }
}

pub type CliResult = Result<(), Failure>;

/// Context passed to every command.
pub struct Ctx {
    pub config_path: PathBuf,
    pub output: Output,
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

    pub async fn directory(&self) -> Result<Directory, Failure> {
        let cfg = self.config()?.directory_config()?;
        Ok(Directory::connect(cfg).await?)
    }

    /// Print a JSON value (for `--output json`).
    pub fn json(&self, value: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
    }
}

pub fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dirbroker: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ctx = Ctx { config_path: cli.config, output: cli.output };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Testbed(cmd) => testbed::run(&ctx, cmd).await,
            Command::Check => check::run(&ctx).await,
            Command::User(cmd) => user::run(&ctx, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if ctx.output == Output::Json {
                println!("{}", serde_json::json!({ "error": f.message, "exit_code": f.code }));
            }
            eprintln!("dirbroker: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIRBROKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
