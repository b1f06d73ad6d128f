//! `dirbroker migrate`: the admin console of the VM-migration protocol.
//! It looks up what the directory knows (the source data center's endpoint,
//! the CA certificate from the configuration) and then runs the console of
//! `dirbroker-agents` in this process, which asks for the user's OTP and runs
//! the request module.

use std::path::PathBuf;

use clap::Args;
use dirbroker::model::DataCenter;
use dirbroker_agents::console::{self, ConsoleError, MigrationArgs};

use super::{CliResult, Ctx, Failure, Output, load_named};
use crate::exit::Exit;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    migration: MigrationArgs,
    /// The broker CA certificate (default: [ca] cert_file of the configuration).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The source data center's endpoint (default: its directory entry).
    #[arg(long)]
    endpoint: Option<String>,
}

pub async fn run(ctx: &Ctx, a: MigrateArgs) -> CliResult {
    let ca = match a.ca {
        Some(p) => p,
        None => ctx.config()?.ca.cert_file,
    };
    let from = &a.migration.from;
    let endpoint = match a.endpoint {
        Some(e) => e,
        None => {
            let dir = ctx.directory().await?;
            let dc = load_named::<DataCenter>(&dir, from, "data center").await?;
            if dc.disabled {
                return Err(Failure::new(Exit::Failed, format!("data center {from} is disabled")));
            }
            dc.endpoint.ok_or_else(|| Failure::new(Exit::Failed, format!("data center {from} has no endpoint")))?
        }
    };
    match console::run(a.migration, ca, endpoint, ctx.output == Output::Json).await {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(e @ ConsoleError::Usage(_)) => Err(Failure::usage(e.to_string())),
        Err(e @ ConsoleError::Failed(_)) => Err(Failure::new(Exit::Failed, e.to_string())),
    }
}
