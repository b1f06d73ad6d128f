//! `dirbroker migrate`: the admin console of the VM-migration protocol.
//! It looks up what the directory knows (the source data center's endpoint,
//! the CA certificate from the configuration) and then becomes
//! `dirbroker-agents migrate`, the console in the agents crate, which asks
//! for the user's OTP and runs the request module.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;
use dirbroker::model::DataCenter;

use super::{CliResult, Ctx, Failure, Output, load_named};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The VM image's name on the source physical server.
    vm: String,
    /// Source data center (DID).
    #[arg(long)]
    from: String,
    /// Destination data center (DID).
    #[arg(long)]
    to: String,
    /// The physical server of the source data center that holds the image.
    #[arg(long)]
    source_server: String,
    /// The physical server of the destination data center that receives it.
    #[arg(long)]
    dest_server: String,
    /// The user who asks for the migration; their OTP token decides.
    #[arg(long)]
    user: String,
    /// The admin console's K1 bundle for the source data center (`psk add --admin … --dc …`).
    #[arg(long)]
    k1: PathBuf,
    /// The broker CA certificate (default: [ca] cert_file of the configuration).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The source data center's endpoint (default: its directory entry).
    #[arg(long)]
    endpoint: Option<String>,
    /// Seconds to wait for each protocol message.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Seconds the transfer may take.
    #[arg(long, default_value_t = 3600)]
    transfer_timeout: u64,
}

/// The agents binary installed next to this one.
fn agents_binary() -> Result<PathBuf, Failure> {
    let me = std::env::current_exe().map_err(|e| Failure::new(4, format!("cannot locate this program: {e}")))?;
    let agents = me.with_file_name("dirbroker-agents");
    if !agents.is_file() {
        return Err(Failure::new(
            4,
            format!("{} is missing: install dirbroker-agents next to dirbroker", agents.display()),
        ));
    }
    Ok(agents)
}

pub async fn run(ctx: &Ctx, a: MigrateArgs) -> CliResult {
    let agents = agents_binary()?;
    let ca = match a.ca {
        Some(p) => p,
        None => ctx.config()?.ca.cert_file,
    };
    let endpoint = match a.endpoint {
        Some(e) => e,
        None => {
            let dir = ctx.directory().await?;
            let dc = load_named::<DataCenter>(&dir, &a.from, "data center").await?;
            if dc.disabled {
                return Err(Failure::new(1, format!("data center {} is disabled", a.from)));
            }
            dc.endpoint.ok_or_else(|| Failure::new(1, format!("data center {} has no endpoint", a.from)))?
        }
    };
    let mut cmd = std::process::Command::new(&agents);
    cmd.arg("migrate")
        .arg(&a.vm)
        .args(["--from", &a.from, "--to", &a.to, "--source-server", &a.source_server])
        .args(["--dest-server", &a.dest_server, "--user", &a.user, "--endpoint", &endpoint])
        .arg("--k1")
        .arg(&a.k1)
        .arg("--ca")
        .arg(&ca)
        .args(["--timeout", &a.timeout.to_string(), "--transfer-timeout", &a.transfer_timeout.to_string()]);
    if ctx.output == Output::Json {
        cmd.arg("--json");
    }
    // Only returns on failure to start it.
    let e = cmd.exec();
    Err(Failure::new(4, format!("cannot run {}: {e}", agents.display())))
}
