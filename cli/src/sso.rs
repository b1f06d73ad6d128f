//! `dirbroker sso init` (the ticket-signing key) and `dirbroker service …`
//! (seed 002 stage 3: Kerberized services publish P_k = g^r_k).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use dirbroker_proto::sso::primitives::Ed25519Key;
use dirbroker_proto::sso::tickets::TicketSigner;
use serde_json::json;
use zeroize::Zeroizing;

use super::{CliResult, Ctx, Failure};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum SsoCmd {
    /// Create the broker's Ed25519 ticket-signing key (mode 0600; never overwrites).
    #[command(
        after_help = "Examples:\n  dirbroker sso init\n  dirbroker sso init --out /etc/dirbroker/ticket-signing.pem\n\n\
        Default path: [sso] signing_key_file of the configuration. Restart `dirbroker serve`\n\
        afterwards; its /.well-known/jwks.json then publishes the public key."
    )]
    Init {
        /// Where to write the key (default: [sso] signing_key_file).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::new(Exit::Failed, format!("{} exists already; not overwriting it", path.display()))
        } else {
            Failure::new(Exit::Failed, format!("{}: {e}", path.display()))
        }
    })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", path.display())))
}

pub async fn run_sso(ctx: &Ctx, cmd: SsoCmd) -> CliResult {
    match cmd {
        SsoCmd::Init { out } => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let cfg = ctx.config()?;
            let path = out.unwrap_or(cfg.sso.signing_key_file.clone());
            let mut seed = Zeroizing::new([0u8; 32]);
            dirbroker::clock::fill_random(seed.as_mut_slice())
                .map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| Failure::new(Exit::Failed, format!("PKCS#8: {e}")))?;
            create_private(&path, pem.as_bytes())?;
            let signer = TicketSigner::new(&cfg.sso.issuer, Ed25519Key::from_seed(*seed))
                .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            ctx.report(
                json!({ "key_file": path.display().to_string(), "kid": signer.kid(), "issuer": cfg.sso.issuer }),
                &format!(
                    "ticket-signing key written to {} (kid {}); restart `dirbroker serve` to publish it",
                    path.display(),
                    signer.kid()
                ),
            );
            Ok(())
        }
    }
}
