//! The admin console as a command: one definition of its arguments and of
//! what it prints, for `dirbroker-agents migrate` (everything given) and
//! `dirbroker migrate` (which fills the CA and the source data center's
//! endpoint from the directory and runs this in its own process).

use dirbroker_proto::encoding::hex;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use zeroize::Zeroizing;

use crate::admin;
use crate::migration::MigrationError;
use crate::migration::messages::MigRqst;

/// What the user asks for: the arguments both consoles share.
#[derive(Args, Debug, Clone)]
pub struct MigrationArgs {
    /// The VM image's name on the source physical server.
    pub vm: String,
    /// Source data center (DID).
    #[arg(long)]
    pub from: String,
    /// Destination data center (DID).
    #[arg(long)]
    pub to: String,
    /// The physical server of the source data center that holds the image.
    #[arg(long)]
    pub source_server: String,
    /// The physical server of the destination data center that receives it.
    #[arg(long)]
    pub dest_server: String,
    /// The user who asks for the migration; their OTP token decides.
    #[arg(long)]
    pub user: String,
    /// The admin console's K1 bundle for the source data center (`psk add --admin … --dc …`).
    #[arg(long)]
    pub k1: PathBuf,
    /// Seconds to wait for each protocol message.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Seconds the transfer may take.
    #[arg(long, default_value_t = 3600)]
    pub transfer_timeout: u64,
}

/// Why the console stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No OTP could be read (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The migration was refused or failed (exit 1).
    #[error(transparent)]
    Failed(#[from] MigrationError),
}

/// Reads the user's OTP (from the terminal, or stdin when it is not one),
/// runs the migration and returns the line to print.
pub async fn run(args: MigrationArgs, ca: PathBuf, endpoint: String, json: bool) -> Result<String, ConsoleError> {
    let otp = read_otp(&args.user).map_err(ConsoleError::Usage)?;
    let MigrationArgs { vm, from, to, source_server, dest_server, user, k1, timeout, transfer_timeout } = args;
    let opts = admin::MigrateOptions {
        k1,
        ca,
        endpoint,
        uid: user,
        mig_rqst: MigRqst { vm: vm.clone(), source_server, dest_server },
        from: from.clone(),
        to: to.clone(),
        timeout: Duration::from_secs(timeout),
        transfer_timeout: Duration::from_secs(transfer_timeout),
    };
    let o = admin::migrate(&opts, otp).await?;
    Ok(if json {
        serde_json::json!({
            "vm": vm, "from": from, "to": to,
            "migration_id": hex(&o.migration_id),
            "bytes": o.transferred.bytes,
            "blake3": hex(&o.transferred.blake3),
        })
        .to_string()
    } else {
        format!(
            "migrated {vm} from {from} to {to}: {} bytes, blake3 {}",
            o.transferred.bytes,
            hex(&o.transferred.blake3)
        )
    })
}

fn read_otp(uid: &str) -> Result<Zeroizing<String>, String> {
    let line = dirbroker_service::secret::read_line(&format!("OTP for {uid}: "))
        .map_err(|e| format!("reading the OTP: {e}"))?;
    let code = Zeroizing::new(line.trim().to_string());
    if code.is_empty() {
        return Err("no OTP given".into());
    }
    Ok(code)
}
