//! `dirbroker psk …`: pre-shared keys of VM migration (seeds 000/001) — K1
//! between an admin console and a data center (handed to the admin once, in
//! a 0600 bundle), or the SPEKE password between two data centers (fetched
//! by them from `dirbroker serve`, `GET /v1/dc/credentials`). The directory
//! keeps keys sealed. The work is `dirbroker::admin::psk`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::admin::{self, psk::Parties};
use dirbroker::model::PreSharedKey;

use super::{CliResult, Ctx, Failure, IdArg, delete_named};

#[derive(Subcommand, Debug)]
pub enum PskCmd {
    /// Create a pre-shared key: K1 between an admin (uid) and a data center, or a SPEKE password between two data centers.
    #[command(
        after_help = "Examples:\n  dirbroker psk add k1-alice-dc1 --admin alice --dc DC-SEOUL-1 --out k1.bundle\n  \
        dirbroker psk add speke-seoul-busan --dc DC-SEOUL-1 --dc DC-BUSAN-2\n\n\
        With --admin: the bundle (--out, 0600) is for the admin console. With two --dc and\n\
        no admin: no bundle is written. Data centers obtain their keys from the broker\n\
        (`dirbroker serve`, GET /v1/dc/credentials). The directory keeps keys sealed only."
    )]
    Add(PskAddArgs),
    /// List pre-shared keys (never their values).
    #[command(after_help = "Example:\n  dirbroker psk list --output json")]
    List,
    /// Replace a pre-shared key with a fresh one (and write a new admin bundle for K1).
    #[command(after_help = "Examples:\n  dirbroker psk rotate k1-alice-dc1 --out k1.bundle\n  \
        dirbroker psk rotate speke-seoul-busan")]
    Rotate(PskRotateArgs),
    /// Remove a pre-shared key.
    #[command(after_help = "Example:\n  dirbroker psk remove k1-alice-dc1")]
    Remove(IdArg),
}

#[derive(Args, Debug)]
pub struct PskAddArgs {
    id: String,
    /// The admin console's user (uid); then exactly one --dc.
    #[arg(long)]
    admin: Option<String>,
    /// A data center (DID): one with --admin, two without.
    #[arg(long, required = true)]
    dc: Vec<String>,
    /// The admin's bundle (with --admin only).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PskRotateArgs {
    id: String,
    /// The admin's new bundle (for keys with an admin party; not for DC-DC keys).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn run_psk(ctx: &Ctx, cmd: PskCmd) -> CliResult {
    match cmd {
        PskCmd::Add(a) => {
            // K1 (admin ↔ DC, bundle for the admin) or a DC ↔ DC password (no bundle).
            let parties = match (&a.admin, a.dc.as_slice(), &a.out) {
                (Some(uid), [did], Some(bundle)) => Parties::Admin { uid, did, bundle },
                (Some(_), [_], None) => return Err(Failure::usage("--admin needs --out for the admin's bundle")),
                (Some(_), _, _) => return Err(Failure::usage("--admin takes exactly one --dc")),
                (None, [x, y], None) if x != y => Parties::DataCenters(x, y),
                (None, [_, _], None) => return Err(Failure::usage("two different data centers are needed")),
                (None, [_, _], Some(_)) => {
                    return Err(Failure::usage("a key between two data centers has no bundle: drop --out"));
                }
                (None, _, _) => return Err(Failure::usage("give --admin U --dc D, or two --dc without --admin")),
            };
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let dn = admin::psk::create(&dir, &ring, &a.id, &parties).await?;
            match &a.out {
                Some(p) => ctx.report(
                    json!({ "psk": a.id, "dn": dn.to_string(), "bundle": p }),
                    &format!("created {dn}; admin bundle {}", p.display()),
                ),
                None => ctx.report(
                    json!({ "psk": a.id, "dn": dn.to_string(), "bundle": null }),
                    &format!("created {dn}; the data centers fetch it from the broker (GET /v1/dc/credentials)"),
                ),
            }
            Ok(())
        }
        PskCmd::List => {
            let dir = ctx.directory().await?;
            let mut all = dir.list::<PreSharedKey>().await?;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            let parties = |p: &PreSharedKey| p.parties.iter().map(|d| d.to_string()).collect::<Vec<_>>();
            ctx.list(
                &all,
                |p| json!({ "id": p.id, "parties": parties(p), "disabled": p.disabled }),
                |p| format!("{:<24} {}", p.id, parties(p).join(" <-> ")),
            );
            Ok(())
        }
        PskCmd::Rotate(a) => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            admin::psk::rotate(&dir, &ring, &a.id, a.out.as_deref()).await?;
            match &a.out {
                Some(p) => ctx.report(
                    json!({ "psk": a.id, "bundle": p }),
                    &format!("new key for {}; bundle {}", a.id, p.display()),
                ),
                None => ctx.report(
                    json!({ "psk": a.id, "bundle": null }),
                    &format!("new key for {}; the data centers fetch it from the broker", a.id),
                ),
            }
            Ok(())
        }
        PskCmd::Remove(a) => {
            let psk = delete_named::<PreSharedKey>(&ctx.directory().await?, &a.id, "pre-shared key").await?;
            ctx.report(json!({ "removed": psk.id }), &format!("removed {}", psk.id));
            Ok(())
        }
    }
}
