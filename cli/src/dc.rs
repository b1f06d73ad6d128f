//! `dirbroker dc …`: data centers, registered with a certificate from the
//! broker CA and revoked through its CRL. The work is `dirbroker::admin::dc`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::admin;
use dirbroker::model::DataCenter;

use super::ca::load_ca;
use super::{CliResult, Ctx, Failure};

#[derive(Subcommand, Debug)]
pub enum DcCmd {
    /// Register a data center: issue its key pair and certificate, publish the certificate.
    #[command(after_help = "Examples:\n  dirbroker dc add DC-SEOUL-1 --endpoint dc1.example.org:7443\n  \
        dirbroker dc add DC-BUSAN-2 --endpoint 10.2.0.1:7443 --out /root/dc-busan-2\n\n\
        Writes the bundle for the data center to --out (a new directory, mode 0700):\n\
        key.pem (0600), cert.pem and ca.pem. Move it to the data center and delete it here.")]
    Add(DcAddArgs),
    /// List data centers.
    #[command(after_help = "Example:\n  dirbroker dc list --output json")]
    List,
    /// Revoke a data center's certificate (CRL) and disable its entry.
    #[command(after_help = "Example:\n  dirbroker dc revoke DC-BUSAN-2")]
    Revoke(DidArg),
}

#[derive(Args, Debug)]
pub struct DcAddArgs {
    /// Data-center identifier (DID).
    did: String,
    /// host:port where the data center listens.
    #[arg(long)]
    endpoint: String,
    /// Directory for the key bundle (default ./dc-DID).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 397, value_parser = clap::value_parser!(i64).range(1..=3650))]
    days: i64,
}

#[derive(Args, Debug)]
pub struct DidArg {
    did: String,
}

pub async fn run_dc(ctx: &Ctx, cmd: DcCmd) -> CliResult {
    match cmd {
        DcCmd::Add(a) => {
            let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("dc-{}", a.did)));
            if out.exists() {
                return Err(Failure::usage(format!("{} exists already", out.display())));
            }
            let authority = load_ca(ctx)?;
            let dir = ctx.directory().await?;
            let now = dirbroker::clock::now();
            let dn = admin::dc::add(&dir, &authority, &a.did, &a.endpoint, a.days, &out, now).await?;
            ctx.report(
                json!({ "dc": a.did, "dn": dn.to_string(), "bundle": out }),
                &format!("registered {dn}; bundle for the data center in {}", out.display()),
            );
            Ok(())
        }
        DcCmd::List => {
            let dir = ctx.directory().await?;
            let mut dcs = dir.list::<DataCenter>().await?;
            dcs.sort_by(|a, b| a.id.cmp(&b.id));
            ctx.list(
                &dcs,
                |d| json!({ "did": d.id, "endpoint": d.endpoint, "disabled": d.disabled, "has_certificate": d.certificate.is_some() }),
                |d| {
                    let state = if d.disabled { "revoked/disabled" } else { "active" };
                    format!("{:<20} {:<28} {state}", d.id, d.endpoint.as_deref().unwrap_or("-"))
                },
            );
            Ok(())
        }
        DcCmd::Revoke(a) => {
            let authority = load_ca(ctx)?;
            let dir = ctx.directory().await?;
            let number = admin::dc::revoke(&dir, &authority, &a.did, dirbroker::clock::now()).await?;
            ctx.report(
                json!({ "revoked": a.did, "crl_number": number }),
                &format!("revoked the certificate of {} (CRL number {number})", a.did),
            );
            Ok(())
        }
    }
}
