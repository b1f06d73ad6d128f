//! `dirbroker secrets …`: the master keyring that seals secrets stored in
//! LDAP (OTP seeds, server TOTP secrets, pre-shared keys). Re-sealing is
//! `dirbroker::admin::secrets`.

use clap::Subcommand;
use serde_json::json;

use dirbroker::admin;
use dirbroker::seal::Keyring;

use super::{CliResult, Ctx, Failure};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Create the keyring file with a first master key (mode 0600).
    #[command(
        after_help = "Examples:\n  dirbroker secrets init\n  DIRBROKER_KEYRING_FILE=/etc/dirbroker/master.keys dirbroker secrets init\n\n\
        Back the file up: without it, sealed secrets cannot be opened."
    )]
    Init,
    /// Add a new master key and re-seal every sealed secret under it.
    #[command(after_help = "Example:\n  dirbroker secrets rotate\n\n\
        Copy the new keyring file to every broker right away: values re-sealed under the\n\
        new key do not open with the old file. Values under old keys keep opening, so\n\
        remove old key lines only once nothing is sealed under them.")]
    Rotate,
}

pub async fn run(ctx: &Ctx, cmd: SecretsCmd) -> CliResult {
    let path = ctx.config()?.keyring_path();
    match cmd {
        SecretsCmd::Init => {
            let ring = Keyring::create(&path).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            ctx.report(
                json!({ "keyring": path, "key_id": ring.current_id() }),
                &format!("created {} with key {}; back it up", path.display(), ring.current_id()),
            );
            Ok(())
        }
        SecretsCmd::Rotate => {
            let ring = Keyring::rotate(&path).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let dir = ctx.directory().await?;
            let resealed = admin::secrets::reseal_all(&dir, &ring).await?;
            ctx.report(
                json!({ "key_id": ring.current_id(), "resealed": resealed }),
                &format!("new key {}; re-sealed {resealed} secret(s)", ring.current_id()),
            );
            Ok(())
        }
    }
}
