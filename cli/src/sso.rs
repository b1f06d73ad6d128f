//! `dirbroker sso init` (the ticket-signing key) and `dirbroker service …`
//! (seed 002 stage 3: Kerberized services publish P_k = g^r_k).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dirbroker::directory::DirError;
use dirbroker::model::{DirEntry as _, Service, UserLevel};
use dirbroker_proto::sso::primitives::Ed25519Key;
use dirbroker_proto::sso::tickets::{ServiceKey, ServiceKeyFile, TicketSigner};
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{CliResult, Ctx, Failure, Output, load_named};
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

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Register a Kerberized service: draws r_k into FILE (0600), publishes P_k = g^r_k in LDAP.
    #[command(
        after_help = "Example:\n  dirbroker service add wiki --endpoint wiki.example.org:7000 --min-level 1 --out /etc/wiki/sso.key\n\n\
        The key file stays with the service (`dirbroker-agents example-service --key-file …`);\n\
        r_k never goes to LDAP."
    )]
    Add(AddArgs),
    /// List the registered services.
    List,
    /// Remove a service (its tickets stop being issued at once).
    Remove {
        /// The service id (ID_k).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The service id (ID_k), as clients name it in `dirbroker ticket get`.
    id: String,
    /// Where clients reach it (HOST:PORT).
    #[arg(long)]
    endpoint: Option<String>,
    /// The lowest user level the broker issues tickets for it to (1–4).
    #[arg(long, default_value_t = 1)]
    min_level: i64,
    /// The service's key file to write (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Creates `path` with mode 0600, refusing to overwrite.
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
            aws_lc_rs::rand::fill(seed.as_mut_slice()).map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
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

fn show(s: &Service) -> serde_json::Value {
    json!({
        "id": s.id,
        "endpoint": s.endpoint,
        "min_level": s.min_level.map(UserLevel::number),
        "registered": s.public_value_time.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "has_p_k": s.public_value.is_some(),
        "disabled": s.disabled,
    })
}

pub async fn run_service(ctx: &Ctx, cmd: ServiceCmd) -> CliResult {
    let dir = ctx.directory().await?;
    match cmd {
        ServiceCmd::Add(a) => {
            let level = UserLevel::from_number(a.min_level)
                .ok_or_else(|| Failure::usage("--min-level must be 1 (temporary) to 4 (administrator)"))?;
            let mut svc = Service::new(&a.id)?;
            if dir.load::<Service>(&a.id).await.is_ok() {
                return Err(Failure::new(Exit::Failed, format!("service {:?} exists already", a.id)));
            }
            let key =
                ServiceKey::generate(&a.id, &mut rand::rng()).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let file = Zeroizing::new(
                serde_json::to_vec_pretty(&ServiceKeyFile::of(&key))
                    .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?,
            );
            create_private(&a.out, &file)?;
            svc.endpoint = a.endpoint.clone();
            svc.public_value = Some(key.public().to_bytes());
            svc.public_value_time = Some(OffsetDateTime::now_utc());
            svc.min_level = Some(level);
            if let Err(e) = dir.create(&svc).await {
                let _ = std::fs::remove_file(&a.out);
                return Err(e.into());
            }
            ctx.report(
                show(&svc),
                &format!(
                    "service {} registered (P_k published, min level {}); its key is in {} (0600)",
                    a.id,
                    level.number(),
                    a.out.display()
                ),
            );
            Ok(())
        }
        ServiceCmd::List => {
            let mut all = dir.list::<Service>().await?;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            if ctx.output == Output::Json {
                ctx.json(&json!(all.iter().map(show).collect::<Vec<_>>()));
            } else if all.is_empty() {
                println!("no services (add one with `dirbroker service add`)");
            } else {
                println!("{:<24} {:<28} {:>9}  STATUS", "SERVICE", "ENDPOINT", "MIN-LEVEL");
                for s in &all {
                    let status = if s.disabled {
                        "disabled"
                    } else if s.public_value.is_none() {
                        "no P_k"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<28} {:>9}  {status}",
                        s.id,
                        s.endpoint.as_deref().unwrap_or("-"),
                        s.min_level.map(UserLevel::number).unwrap_or(1)
                    );
                }
            }
            Ok(())
        }
        ServiceCmd::Remove { id } => {
            let svc: Service = load_named(&dir, &id, "service").await?;
            let dn = svc.dn(dir.layout())?;
            match dir.delete(&dn).await {
                Ok(()) | Err(DirError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.report(json!({ "removed": id }), &format!("service {id} removed"));
            Ok(())
        }
    }
}
