//! `dirbroker service …`: Kerberized services that trust the broker's
//! tickets (seed 002): each gets its key pair (r_k in a 0600 file, P_k in
//! LDAP).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use dirbroker::directory::DirError;
use dirbroker::model::{DirEntry as _, Level, Service};
use dirbroker_proto::sso::tickets::{ServiceKey, ServiceKeyFile};
use serde_json::json;
use zeroize::Zeroizing;

use super::sso::create_private;
use super::{CliResult, Ctx, Failure, Output, load_named};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Register a Kerberized service: draws r_k into FILE (0600), publishes P_k = g^r_k in LDAP.
    #[command(
        after_help = "Examples:\n  dirbroker service add wiki --endpoint wiki.example.org:7000 --min-level 2 --out /etc/wiki/sso.key\n  \
        dirbroker service add motd --min-level 1 --allow-anonymous --out /etc/motd/sso.key\n\n\
        The key file stays with the service (`dirbroker-agents example-service --key-file …`);\n\
        r_k never goes to LDAP. Anonymous users (when the broker has [sso] allow_anonymous = true)\n\
        get tickets only for services added with --allow-anonymous."
    )]
    Add(AddArgs),
    /// List the registered services.
    #[command(after_help = "Examples:\n  dirbroker service list\n  dirbroker service list --output json")]
    List,
    /// Remove a service (its tickets stop being issued at once).
    #[command(after_help = "Examples:\n  dirbroker service remove wiki\n\n\
        Tickets already issued for it stay valid until they expire; the service's key file can be deleted.")]
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
    /// Let the broker issue tickets for this service to anonymous users (level 1 pseudonyms).
    #[arg(long)]
    allow_anonymous: bool,
    /// The service's key file to write (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Creates `path` with mode 0600, refusing to overwrite.
fn show(s: &Service) -> serde_json::Value {
    json!({
        "id": s.id,
        "endpoint": s.endpoint,
        "min_level": s.min_level.map(Level::number),
        "allow_anonymous": s.allow_anonymous,
        "registered": s.public_value_time.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "has_p_k": s.public_value.is_some(),
        "disabled": s.disabled,
    })
}

pub async fn run(ctx: &Ctx, cmd: ServiceCmd) -> CliResult {
    let dir = ctx.directory().await?;
    match cmd {
        ServiceCmd::Add(a) => {
            let level = Level::from_number(a.min_level)
                .ok_or_else(|| Failure::usage("--min-level must be 1 (temporary) to 4 (administrator)"))?;
            let mut svc = Service::new(&a.id)?;
            if dir.load::<Service>(&a.id).await.is_ok() {
                return Err(Failure::new(Exit::Failed, format!("service {:?} exists already", a.id)));
            }
            let key = ServiceKey::generate(&a.id, &mut dirbroker::clock::rng())
                .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let file = Zeroizing::new(
                serde_json::to_vec_pretty(&ServiceKeyFile::of(&key))
                    .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?,
            );
            create_private(&a.out, &file)?;
            svc.endpoint = a.endpoint.clone();
            svc.public_value = Some(key.public().to_bytes());
            svc.public_value_time = Some(dirbroker::clock::now());
            svc.min_level = Some(level);
            svc.allow_anonymous = a.allow_anonymous;
            if let Err(e) = dir.create(&svc).await {
                let _ = std::fs::remove_file(&a.out);
                return Err(e.into());
            }
            ctx.report(
                show(&svc),
                &format!(
                    "service {} registered (P_k published, min level {}{}); its key is in {} (0600)",
                    a.id,
                    level.number(),
                    if a.allow_anonymous { ", admits anonymous users" } else { "" },
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
                println!("{:<24} {:<28} {:>9} {:>5}  STATUS", "SERVICE", "ENDPOINT", "MIN-LEVEL", "ANON");
                for s in &all {
                    let status = if s.disabled {
                        "disabled"
                    } else if s.public_value.is_none() {
                        "no P_k"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<28} {:>9} {:>5}  {status}",
                        s.id,
                        s.endpoint.as_deref().unwrap_or("-"),
                        s.min_level.map(Level::number).unwrap_or(1),
                        if s.allow_anonymous { "yes" } else { "no" }
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
