//! `dirbroker ps …` and `dirbroker psk …`: the credentials of the machine
//! actors of VM migration (seeds 000/001) — a physical server's TOTP secret
//! shared with its data center, and the pre-shared key K1 between an admin
//! console and a data center, or the SPEKE password between two data
//! centers. All are stored sealed. A server secret and an admin's K1 are
//! handed to their holder once, in a 0600 bundle file; data centers fetch
//! theirs from `dirbroker serve` (`GET /v1/dc/credentials`).

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
use crate::exit::Exit;

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
        .map_err(|e| Failure::new(Exit::Failed, format!("writing {}: {e}", path.display())))
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
            let secret = enroll::generate_secret().map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            ps.endpoint = a.endpoint;
            ps.algorithm = Some(alg.as_str().into());
            ps.digits = Some(a.digits);
            ps.period = Some(a.period);
            ps.totp_watermark = Some(0);
            ps.totp_secret = Some(
                ring.seal(&context::server_totp(&a.id), &secret)
                    .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?,
            );
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
            let old =
                ps.totp_secret.clone().ok_or_else(|| Failure::new(Exit::Failed, format!("{} has no secret", a.id)))?;
            let secret = enroll::generate_secret().map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let sealed = ring
                .seal(&context::server_totp(&a.id), &secret)
                .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let did = ps.datacenter.first_rdn().map(|(_, v)| v).unwrap_or_default();
            let bundle = ps_bundle(&ps, &did, &secret);
            replace_sealed(
                &dir,
                &ps.dn(dir.layout())?,
                "dirbrokerServerTotpSecret",
                old,
                sealed,
                Some((&a.out, bundle.as_str())),
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
            // K1 (admin ↔ DC, bundle for the admin) or a DC ↔ DC password (no bundle).
            let (admin_uid, out) = match (&a.admin, a.dc.as_slice(), &a.out) {
                (Some(u), [_], Some(out)) => (Some(u.clone()), Some(out.clone())),
                (Some(_), [_], None) => return Err(Failure::usage("--admin needs --out for the admin's bundle")),
                (Some(_), _, _) => return Err(Failure::usage("--admin takes exactly one --dc")),
                (None, [x, y], None) if x != y => (None, None),
                (None, [_, _], None) => return Err(Failure::usage("two different data centers are needed")),
                (None, [_, _], Some(_)) => {
                    return Err(Failure::usage("a key between two data centers has no bundle: drop --out"));
                }
                (None, _, _) => return Err(Failure::usage("give --admin U --dc D, or two --dc without --admin")),
            };
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let mut parties = Vec::new();
            if let Some(uid) = &admin_uid {
                let admin = dir
                    .find_user(uid)
                    .await?
                    .ok_or_else(|| Failure::new(Exit::Failed, format!("no user with uid {uid:?}")))?;
                parties.push(admin.dn(dir.layout())?);
            }
            for d in &a.dc {
                parties.push(load_named::<DataCenter>(&dir, d, "data center").await?.dn(dir.layout())?);
            }
            dirbroker::directory::dn::check_value("psk id", &a.id)?;
            let mut key = Zeroizing::new(vec![0u8; 32]);
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
            let psk = PreSharedKey {
                id: a.id.clone(),
                parties,
                secret: ring.seal(&context::psk(&a.id), &key).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?,
                not_before: None,
                not_after: None,
                disabled: false,
            };
            let mut file = match &out {
                Some(p) => Some(create_bundle(p)?),
                None => None,
            };
            let dn = match dir.create(&psk).await {
                Ok(dn) => dn,
                Err(e) => {
                    if let Some(p) = &out {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e.into());
                }
            };
            if let (Some(f), Some(p), Some(uid), Some(did)) = (file.as_mut(), &out, &admin_uid, a.dc.first())
                && let Err(e) = write_bundle(f, p, &psk_bundle(&a.id, uid, did, &key))
            {
                let _ = dir.delete(&dn).await;
                let _ = std::fs::remove_file(p);
                return Err(e);
            }
            match &out {
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
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
            let sealed =
                ring.seal(&context::psk(&a.id), &key).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            let layout = dir.layout();
            let name = |within: &dirbroker::directory::Dn| {
                psk.parties
                    .iter()
                    .find(|d| d.is_within(within))
                    .and_then(|d| d.first_rdn())
                    .map(|(_, v)| v)
                    .unwrap_or_default()
            };
            let has_admin = psk.parties.iter().any(|d| d.is_within(&layout.people));
            let (admin, did) = (name(&layout.people), name(&layout.datacenters));
            let dn = psk.dn(dir.layout())?;
            let bundle = psk_bundle(&a.id, &admin, &did, &key);
            let out = match (&a.out, has_admin) {
                (Some(p), true) => Some((p.as_path(), bundle.as_str())),
                (None, true) => return Err(Failure::usage(format!("{} has an admin party: give --out", a.id))),
                (Some(_), false) => {
                    return Err(Failure::usage(format!("{} is between data centers: it has no bundle", a.id)));
                }
                (None, false) => None,
            };
            replace_sealed(&dir, &dn, "dirbrokerPskSecret", psk.secret, sealed, out).await?;
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
/// in a bundle at `out` (path, text) if given, which must not exist. Nothing
/// is left half-done: no bundle without the directory change.
async fn replace_sealed(
    dir: &Directory,
    dn: &Dn,
    attr: &str,
    old: Sealed,
    new: Sealed,
    out: Option<(&Path, &str)>,
) -> Result<(), Failure> {
    let mut file = match out {
        Some((path, _)) => Some(create_bundle(path)?),
        None => None,
    };
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
        if let Some((path, _)) = out {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.into());
    }
    match (file.as_mut(), out) {
        (Some(f), Some((path, bundle))) => write_bundle(f, path, bundle),
        _ => Ok(()),
    }
}
