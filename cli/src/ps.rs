//! `dirbroker ps …`: the physical servers of data centers (seed 001) and
//! their TOTP secrets, shared with their data center. A server's secret is
//! handed to it once, in a 0600 enrolment bundle; the directory keeps it
//! sealed; data centers fetch theirs from `dirbroker serve`
//! (`GET /v1/dc/credentials`). The work is `dirbroker::admin::ps`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::admin::{self, ps::NewServer};
use dirbroker::model::{DataCenter, DirEntry, PhysicalServer};
use dirbroker::otp::codes::Algorithm;

use super::{CliResult, Ctx, Failure, IdArg, delete_named, load_named};

#[derive(Subcommand, Debug)]
pub enum PsCmd {
    /// Register a physical server of a data center and write its one-time enrolment bundle.
    #[command(
        after_help = "Examples:\n  dirbroker ps add PS-0001 --dc DC-SEOUL-1 --endpoint 10.2.0.1:7444 --out ps-0001.bundle\n\n\
        The bundle (mode 0600, never overwritten) holds the server's TOTP secret; install\n\
        it on the server and delete it here. The directory keeps the secret sealed only."
    )]
    Add(PsAddArgs),
    /// List physical servers.
    #[command(after_help = "Example:\n  dirbroker ps list --dc DC-SEOUL-1")]
    List(PsListArgs),
    /// Give a server a new TOTP secret (the old one stops working) and a new bundle.
    #[command(after_help = "Example:\n  dirbroker ps rotate PS-0001 --out ps-0001.bundle")]
    Rotate(PsRotateArgs),
    /// Remove a physical server.
    #[command(after_help = "Example:\n  dirbroker ps remove PS-0001")]
    Remove(IdArg),
}

#[derive(Args, Debug)]
pub struct PsAddArgs {
    /// Physical-server identifier (PID).
    id: String,
    /// Its data center (DID).
    #[arg(long)]
    dc: String,
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value = "sha1")]
    algorithm: String,
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(6..=8))]
    digits: u8,
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    period: u32,
    /// Enrolment bundle to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PsListArgs {
    /// Only this data center's servers.
    #[arg(long)]
    dc: Option<String>,
}

#[derive(Args, Debug)]
pub struct PsRotateArgs {
    id: String,
    #[arg(long)]
    out: PathBuf,
}

pub async fn run_ps(ctx: &Ctx, cmd: PsCmd) -> CliResult {
    match cmd {
        PsCmd::Add(a) => {
            let algorithm = Algorithm::parse(&a.algorithm)
                .ok_or_else(|| Failure::usage(format!("{:?}: use sha1, sha256 or sha512", a.algorithm)))?;
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let spec = NewServer {
                id: &a.id,
                dc: &a.dc,
                endpoint: a.endpoint.clone(),
                algorithm,
                digits: a.digits,
                period: a.period,
            };
            let dn = admin::ps::add(&dir, &ring, &spec, &a.out).await?;
            ctx.report(
                json!({ "server": a.id, "dn": dn.to_string(), "bundle": a.out }),
                &format!("registered {dn}; enrolment bundle {}", a.out.display()),
            );
            Ok(())
        }
        PsCmd::List(a) => {
            let dir = ctx.directory().await?;
            let filter_dc = match &a.dc {
                Some(d) => Some(load_named::<DataCenter>(&dir, d, "data center").await?.dn(dir.layout())?),
                None => None,
            };
            let mut servers: Vec<PhysicalServer> = dir
                .list::<PhysicalServer>()
                .await?
                .into_iter()
                .filter(|p| filter_dc.as_ref().is_none_or(|d| p.datacenter.is_within(d) && d.is_within(&p.datacenter)))
                .collect();
            servers.sort_by(|a, b| a.id.cmp(&b.id));
            // The data center by its id, as `dc list` shows it (the DN's first RDN value).
            let dc_id =
                |p: &PhysicalServer| p.datacenter.first_rdn().map_or_else(|| p.datacenter.to_string(), |(_, v)| v);
            ctx.list(
                &servers,
                |p| {
                    json!({ "id": p.id, "datacenter": dc_id(p), "datacenter_dn": p.datacenter.as_str(),
                            "endpoint": p.endpoint, "disabled": p.disabled })
                },
                |p| format!("{:<16} {:<16} {}", p.id, dc_id(p), p.endpoint.as_deref().unwrap_or("-")),
            );
            Ok(())
        }
        PsCmd::Rotate(a) => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let id = admin::ps::rotate(&dir, &ring, &a.id, &a.out).await?;
            ctx.report(
                json!({ "server": id, "bundle": a.out }),
                &format!("new secret for {id}; bundle {}", a.out.display()),
            );
            Ok(())
        }
        PsCmd::Remove(a) => {
            let ps = delete_named::<PhysicalServer>(&ctx.directory().await?, &a.id, "physical server").await?;
            ctx.report(json!({ "removed": ps.id }), &format!("removed {}", ps.id));
            Ok(())
        }
    }
}
