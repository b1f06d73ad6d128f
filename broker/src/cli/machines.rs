//! `dirbroker ps …` and `dirbroker psk …`: the credentials of the machine
//! actors of VM migration (seeds 000/001) — a physical server's TOTP secret
//! shared with its data center, and the pre-shared key K1 between an admin
//! console and a data center. Both are stored sealed; each is handed to its
//! holder once, in a 0600 bundle file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use dirbroker::directory::{Change, Directory, Dn};
use dirbroker::model::{DataCenter, DirEntry, PhysicalServer, PreSharedKey, Sealed};
use dirbroker::otp::codes::Algorithm;
use dirbroker::otp::enroll;
use dirbroker::seal::context;

use super::{CliResult, Ctx, Failure, Output, load_named};

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

#[derive(Subcommand, Debug)]
pub enum PskCmd {
    /// Create the pre-shared key between an admin (uid) and a data center, and write the admin's bundle.
    #[command(
        after_help = "Example:\n  dirbroker psk add k1-alice-dc1 --admin alice --dc DC-SEOUL-1 --out k1.bundle\n\n\
        The bundle (0600) is for the admin console; the data center obtains the key from\n\
        the broker. The directory keeps it sealed only."
    )]
    Add(PskAddArgs),
    /// List pre-shared keys (never their values).
    #[command(after_help = "Example:\n  dirbroker psk list --output json")]
    List,
    /// Replace a pre-shared key with a fresh one and write a new bundle.
    #[command(after_help = "Example:\n  dirbroker psk rotate k1-alice-dc1 --out k1.bundle")]
    Rotate(PskRotateArgs),
    /// Remove a pre-shared key.
    #[command(after_help = "Example:\n  dirbroker psk remove k1-alice-dc1")]
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

#[derive(Args, Debug)]
pub struct PskAddArgs {
    id: String,
    /// The admin console's user (uid).
    #[arg(long)]
    admin: String,
    /// The data center (DID).
    #[arg(long)]
    dc: String,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PskRotateArgs {
    id: String,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct IdArg {
    id: String,
}

/// Create `path` with mode 0600; refuse an existing file.
fn create_bundle(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e} (it must not exist)", path.display())))
}

fn write_bundle(file: &mut std::fs::File, path: &Path, text: &str) -> Result<(), Failure> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::new(1, format!("writing {}: {e}", path.display())))
}

fn ps_bundle(ps: &PhysicalServer, did: &str, secret: &[u8]) -> Zeroizing<String> {
    let b32 = totp_rs::Secret::new(secret.to_vec().into_boxed_slice()).to_base32();
    Zeroizing::new(format!(
        "# dirbroker physical-server enrolment bundle. Keep it 0600; install it on the\n\
         # server and delete every other copy. It is written once and cannot be fetched again.\n\
         server_id = {:?}\ndatacenter = {did:?}\nalgorithm = {:?}\ndigits = {}\nperiod = {}\nsecret_base32 = {b32:?}\n",
        ps.id,
        ps.algorithm.as_deref().unwrap_or("sha1"),
        ps.digits.unwrap_or(6),
        ps.period.unwrap_or(30),
    ))
}

pub async fn run_ps(ctx: &Ctx, cmd: PsCmd) -> CliResult {
    match cmd {
        PsCmd::Add(a) => {
            let alg = Algorithm::parse(&a.algorithm)
                .ok_or_else(|| Failure::usage(format!("{:?}: use sha1, sha256 or sha512", a.algorithm)))?;
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let dc = load_named::<DataCenter>(&dir, &a.dc, "data center").await?;
            let mut ps = PhysicalServer::new(&a.id, dc.dn(dir.layout())?)?;
            let secret = enroll::generate_secret().map_err(|e| Failure::new(1, e.to_string()))?;
            ps.endpoint = a.endpoint;
            ps.algorithm = Some(alg.as_str().into());
            ps.digits = Some(a.digits);
            ps.period = Some(a.period);
            ps.totp_watermark = Some(0);
            ps.totp_secret =
                Some(ring.seal(&context::server_totp(&a.id), &secret).map_err(|e| Failure::new(1, e.to_string()))?);
            let mut file = create_bundle(&a.out)?;
            let dn = match dir.create(&ps).await {
                Ok(dn) => dn,
                Err(e) => {
                    let _ = std::fs::remove_file(&a.out);
                    return Err(e.into());
                }
            };
            if let Err(f) = write_bundle(&mut file, &a.out, &ps_bundle(&ps, &dc.id, &secret)) {
                let _ = dir.delete(&dn).await;
                let _ = std::fs::remove_file(&a.out);
                return Err(f);
            }
            ctx.report(
                json!({ "server": ps.id, "dn": dn.to_string(), "bundle": a.out }),
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
            if ctx.output == Output::Json {
                let v: Vec<_> = servers
                    .iter()
                    .map(|p| json!({ "id": p.id, "datacenter": p.datacenter.as_str(), "endpoint": p.endpoint, "disabled": p.disabled }))
                    .collect();
                ctx.json(&serde_json::Value::Array(v));
            } else {
                for p in &servers {
                    println!("{:<16} {:<40} {}", p.id, p.datacenter, p.endpoint.as_deref().unwrap_or("-"));
                }
            }
            Ok(())
        }
        PsCmd::Rotate(a) => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let ps = load_named::<PhysicalServer>(&dir, &a.id, "physical server").await?;
            let old = ps.totp_secret.clone().ok_or_else(|| Failure::new(1, format!("{} has no secret", a.id)))?;
            let secret = enroll::generate_secret().map_err(|e| Failure::new(1, e.to_string()))?;
            let sealed =
                ring.seal(&context::server_totp(&a.id), &secret).map_err(|e| Failure::new(1, e.to_string()))?;
            let did = ps.datacenter.first_rdn().map(|(_, v)| v).unwrap_or_default();
            replace_sealed(
                &dir,
                &ps.dn(dir.layout())?,
                "dirbrokerServerTotpSecret",
                old,
                sealed,
                &a.out,
                &ps_bundle(&ps, &did, &secret),
            )
            .await?;
            ctx.report(
                json!({ "server": ps.id, "bundle": a.out }),
                &format!("new secret for {}; bundle {}", ps.id, a.out.display()),
            );
            Ok(())
        }
        PsCmd::Remove(a) => {
            let dir = ctx.directory().await?;
            let ps = load_named::<PhysicalServer>(&dir, &a.id, "physical server").await?;
            dir.delete(&ps.dn(dir.layout())?).await?;
            ctx.report(json!({ "removed": ps.id }), &format!("removed {}", ps.id));
            Ok(())
        }
    }
}

fn psk_bundle(id: &str, admin: &str, did: &str, key: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
    Zeroizing::new(format!(
        "# dirbroker pre-shared key (K1) for the admin console. Keep it 0600.\n\
         psk_id = {id:?}\nadmin = {admin:?}\ndatacenter = {did:?}\nkey_base64 = {:?}\n",
        b64.as_str()
    ))
}

pub async fn run_psk(ctx: &Ctx, cmd: PskCmd) -> CliResult {
    match cmd {
        PskCmd::Add(a) => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let admin = dir
                .find_user(&a.admin)
                .await?
                .ok_or_else(|| Failure::new(1, format!("no user with uid {:?}", a.admin)))?;
            let dc = load_named::<DataCenter>(&dir, &a.dc, "data center").await?;
            dirbroker::directory::dn::check_value("psk id", &a.id)?;
            let mut key = Zeroizing::new(vec![0u8; 32]);
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Failure::new(1, "no randomness"))?;
            let psk = PreSharedKey {
                id: a.id.clone(),
                parties: vec![admin.dn(dir.layout())?, dc.dn(dir.layout())?],
                secret: ring.seal(&context::psk(&a.id), &key).map_err(|e| Failure::new(1, e.to_string()))?,
                not_before: None,
                not_after: None,
                disabled: false,
            };
            let mut file = create_bundle(&a.out)?;
            let dn = match dir.create(&psk).await {
                Ok(dn) => dn,
                Err(e) => {
                    let _ = std::fs::remove_file(&a.out);
                    return Err(e.into());
                }
            };
            if let Err(f) = write_bundle(&mut file, &a.out, &psk_bundle(&a.id, &a.admin, &a.dc, &key)) {
                let _ = dir.delete(&dn).await;
                let _ = std::fs::remove_file(&a.out);
                return Err(f);
            }
            ctx.report(
                json!({ "psk": a.id, "dn": dn.to_string(), "bundle": a.out }),
                &format!("created {dn}; admin bundle {}", a.out.display()),
            );
            Ok(())
        }
        PskCmd::List => {
            let dir = ctx.directory().await?;
            let mut all = dir.list::<PreSharedKey>().await?;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            if ctx.output == Output::Json {
                let v: Vec<_> = all
                    .iter()
                    .map(|p| json!({ "id": p.id, "parties": p.parties.iter().map(|d| d.to_string()).collect::<Vec<_>>(), "disabled": p.disabled }))
                    .collect();
                ctx.json(&serde_json::Value::Array(v));
            } else {
                for p in &all {
                    let parties: Vec<String> = p.parties.iter().map(|d| d.to_string()).collect();
                    println!("{:<24} {}", p.id, parties.join(" <-> "));
                }
            }
            Ok(())
        }
        PskCmd::Rotate(a) => {
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let psk = load_named::<PreSharedKey>(&dir, &a.id, "pre-shared key").await?;
            let mut key = Zeroizing::new(vec![0u8; 32]);
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Failure::new(1, "no randomness"))?;
            let sealed = ring.seal(&context::psk(&a.id), &key).map_err(|e| Failure::new(1, e.to_string()))?;
            let layout = dir.layout();
            let name = |within: &dirbroker::directory::Dn| {
                psk.parties
                    .iter()
                    .find(|d| d.is_within(within))
                    .and_then(|d| d.first_rdn())
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            };
            let (admin, did) = (name(&layout.people), name(&layout.datacenters));
            let dn = psk.dn(dir.layout())?;
            replace_sealed(
                &dir,
                &dn,
                "dirbrokerPskSecret",
                psk.secret,
                sealed,
                &a.out,
                &psk_bundle(&a.id, &admin, &did, &key),
            )
            .await?;
            ctx.report(
                json!({ "psk": a.id, "bundle": a.out }),
                &format!("new key for {}; bundle {}", a.id, a.out.display()),
            );
            Ok(())
        }
        PskCmd::Remove(a) => {
            let dir = ctx.directory().await?;
            let psk = load_named::<PreSharedKey>(&dir, &a.id, "pre-shared key").await?;
            dir.delete(&psk.dn(dir.layout())?).await?;
            ctx.report(json!({ "removed": psk.id }), &format!("removed {}", psk.id));
            Ok(())
        }
    }
}

/// Swap a sealed secret for a new one (delete the exact old value, add the
/// new: a concurrent rotation is not overwritten) and hand the new one out
/// in a bundle at `out`, which must not exist. Nothing is left half-done:
/// no bundle without the directory change.
async fn replace_sealed(
    dir: &Directory,
    dn: &Dn,
    attr: &str,
    old: Sealed,
    new: Sealed,
    out: &Path,
    bundle: &str,
) -> Result<(), Failure> {
    let mut file = create_bundle(out)?;
    let a = attr.as_bytes().to_vec();
    let changed = dir
        .modify(
            dn,
            vec![
                Change::Delete(a.clone(), [old.0].into_iter().collect()),
                Change::Add(a, [new.0].into_iter().collect()),
            ],
        )
        .await;
    if let Err(e) = changed {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    write_bundle(&mut file, out, bundle)
}
