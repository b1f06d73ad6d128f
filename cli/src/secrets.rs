//! `dirbroker secrets …`: the master keyring that seals secrets stored in
//! LDAP (OTP seeds, server TOTP secrets, pre-shared keys). Re-sealing is
//! `dirbroker::admin::secrets`; the format is `dirbroker::seal`.

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
    /// Re-seal every value still in the v1 sealing format as v2, bound to its
    /// entry's owner, parties or data center as they are now.
    #[command(after_help = "Examples:\n  dirbroker secrets upgrade\n  dirbroker secrets upgrade --output json\n\n\
        Run it once, right after upgrading every broker to a version that seals v2: until\n\
        then OTP verification, data-center credentials and SSO second factors refuse v1\n\
        values. The keyring file is not changed. A v1 value bound only its entry id, so\n\
        the command lists what each upgraded value is bound to now: check that owners,\n\
        parties and data centers are the ones you expect. Running it again changes nothing.")]
    Upgrade,
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
            let done = admin::secrets::reseal_all(&dir, &ring).await?;
            ctx.report(
                json!({ "key_id": ring.current_id(), "resealed": done.resealed, "upgraded": done.upgraded }),
                &format!(
                    "new key {}; re-sealed {} secret(s){}",
                    ring.current_id(),
                    done.resealed,
                    upgraded_text(&done.upgraded)
                ),
            );
            Ok(())
        }
        SecretsCmd::Upgrade => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let done = admin::secrets::reseal_all(&dir, &ring).await?;
            ctx.report(
                json!({ "key_id": ring.current_id(), "resealed": done.resealed, "upgraded": done.upgraded }),
                &format!(
                    "{} v1 value(s) re-sealed as v2 under key {}{}",
                    done.upgraded.len(),
                    ring.current_id(),
                    upgraded_text(&done.upgraded)
                ),
            );
            Ok(())
        }
    }
}

/// The upgraded values, one a line, for the admin to check.
fn upgraded_text(upgraded: &[String]) -> String {
    upgraded.iter().map(|u| format!("\n  {u}")).collect()
}
