//! `dirbroker agent …`: the AMS and ANS agent services of seed 002 — their
//! certificates, key pairs and public `Agent` entries.
//!
//! ```text
//!  agent add ams|ans NAME --endpoint HOST:PORT --out DIR
//!    ─► certificate (CA, kind ams/ans, SAN = HOST)       ─► DIR/key.pem, cert.pem, ca.pem
//!    ─► ANS: Ed25519 (Sig_ANS) + X25519 (E_ANS) secrets   ─► DIR/signing.key, DIR/box.key (0600)
//!    ─► Agent entry: role, endpoint, public keys, certificate ─► LDAP cn=NAME,ou=agents
//! ```
//!
//! The AMS signs nothing in the protocol (`Ams::create_agent`), so its only
//! key pair is its TLS one; the ANS opens M_code and signs Userlevel and its
//! messages to the broker, so it gets both keys.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

use dirbroker::ca::{self, CertKind};
use dirbroker::model::{Agent, AgentRole, DirEntry};

use super::ca::{load_ca, reissue_crl, write_bundle};
use super::{CliResult, Ctx, Failure, Output, load_named};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Create an AMS or ANS: certificate, key pairs, bundle directory, LDAP entry.
    #[command(
        after_help = "Examples:\n  dirbroker agent add ans ans1 --endpoint ans1.example.org:9444 --out /etc/dirbroker/ans1\n  \
        dirbroker agent add ams ams1 --endpoint ams1.example.org:9443 --out /etc/dirbroker/ams1\n\n\
        Writes --out (a new 0700 directory): key.pem (0600), cert.pem, ca.pem, agent.json, and\n\
        for an ANS signing.key and box.key (0600; Ed25519 and X25519 secrets). Start the service\n\
        with `dirbroker-agents ams|ans --bundle DIR --broker URL`."
    )]
    Add(AddArgs),
    /// List the agent services.
    #[command(after_help = "Examples:\n  dirbroker agent list\n  dirbroker agent list --output json")]
    List,
    /// Remove an agent service: revoke its certificate and delete its entry.
    #[command(after_help = "Example:\n  dirbroker agent remove ams1")]
    Remove(NameArg),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Ams,
    Ans,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    role: Role,
    /// The agent's name (certificate CN and LDAP cn).
    name: String,
    /// Where it listens, HOST:PORT (HOST goes into the certificate).
    #[arg(long)]
    endpoint: String,
    /// Bundle directory (default ./ROLE-NAME; must not exist).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Certificate lifetime in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

#[derive(Args, Debug)]
pub struct NameArg {
    name: String,
}

fn random32() -> Result<Zeroizing<[u8; 32]>, Failure> {
    let mut b = Zeroizing::new([0u8; 32]);
    dirbroker::clock::fill_random(b.as_mut_slice()).map_err(|_| Failure::new(Exit::Failed, "no randomness"))?;
    Ok(b)
}

fn agent_json(a: &Agent) -> serde_json::Value {
    let serial = a.certificate.as_deref().and_then(|c| ca::cert_serial(c).ok()).map(|s| ca::serial_hex(&s));
    json!({
        "name": a.name,
        "role": a.role.as_str(),
        "endpoint": a.endpoint,
        "signing_key": a.signing_key.as_deref().map(|k| URL_SAFE_NO_PAD.encode(k)),
        "encryption_key": a.encryption_key.as_deref().map(|k| URL_SAFE_NO_PAD.encode(k)),
        "serial": serial,
        "disabled": a.disabled,
    })
}

pub async fn run(ctx: &Ctx, cmd: AgentCmd) -> CliResult {
    match cmd {
        AgentCmd::Add(a) => add(ctx, a).await,
        AgentCmd::List => {
            let dir = ctx.directory().await?;
            let mut agents = dir.list::<Agent>().await?;
            agents.sort_by(|a, b| a.name.cmp(&b.name));
            if ctx.output == Output::Json {
                ctx.json(&serde_json::Value::Array(agents.iter().map(agent_json).collect()));
            } else {
                for a in &agents {
                    let state = if a.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<16} {:<4} {:<28} {state}",
                        a.name,
                        a.role.as_str(),
                        a.endpoint.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        AgentCmd::Remove(n) => {
            let authority = load_ca(ctx)?;
            let dir = ctx.directory().await?;
            let agent = load_named::<Agent>(&dir, &n.name, "agent").await?;
            let mut number = None;
            if let Some(cert) = &agent.certificate {
                let serial = ca::cert_serial(cert).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
                number = Some(reissue_crl(&dir, &authority, Some(serial)).await?);
            }
            dir.delete(&agent.dn(dir.layout())?).await?;
            ctx.report(
                json!({ "removed": agent.name, "crl_number": number }),
                &format!("removed agent {} and revoked its certificate", agent.name),
            );
            Ok(())
        }
    }
}

async fn add(ctx: &Ctx, a: AddArgs) -> CliResult {
    let (role, kind) = match a.role {
        Role::Ams => (AgentRole::Ams, CertKind::Ams),
        Role::Ans => (AgentRole::Ans, CertKind::Ans),
    };
    let mut agent = Agent::new(&a.name, role)?;
    let host = a
        .endpoint
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .ok_or_else(|| Failure::usage(format!("--endpoint {:?} is not host:port", a.endpoint)))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", role.as_str(), a.name)));
    if out.exists() {
        return Err(Failure::usage(format!("{} exists already", out.display())));
    }
    let authority = load_ca(ctx)?;
    let dir = ctx.directory().await?;
    let issued = authority
        .issue(kind, &a.name, &[host], dirbroker::clock::now(), a.days)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let mut secrets: Vec<(&str, Zeroizing<String>)> = Vec::new();
    if role == AgentRole::Ans {
        let seed = random32()?;
        let signing = dirbroker_proto::sso::primitives::Ed25519Key::from_seed(*seed);
        let box_secret = random32()?;
        let boxkey = dirbroker_proto::sso::primitives::X25519KeyPair::from_secret(*box_secret)
            .map_err(|e| Failure::new(Exit::Failed, format!("X25519 key: {e}")))?;
        agent.signing_key = Some(signing.public_bytes().to_vec());
        agent.encryption_key = Some(boxkey.public().to_vec());
        secrets.push(("signing.key", Zeroizing::new(format!("{}\n", URL_SAFE_NO_PAD.encode(seed.as_slice())))));
        secrets.push(("box.key", Zeroizing::new(format!("{}\n", URL_SAFE_NO_PAD.encode(box_secret.as_slice())))));
    }
    agent.endpoint = Some(a.endpoint.clone());
    agent.certificate = Some(issued.cert_der.clone());
    write_bundle(&out, &issued, &authority.cert_pem).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&out);
    })?;
    let write = |name: &str, data: &[u8]| {
        dirbroker::secret::write_private_file(&out.join(name), data)
            .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", out.join(name).display())))
    };
    let info = json!({ "name": a.name, "role": role.as_str(), "endpoint": a.endpoint });
    let written = secrets
        .iter()
        .try_for_each(|(name, text)| write(name, text.as_bytes()))
        .and_then(|()| write("agent.json", info.to_string().as_bytes()));
    if let Err(f) = written {
        let _ = std::fs::remove_dir_all(&out);
        return Err(f);
    }
    let dn = match dir.create(&agent).await {
        Ok(dn) => dn,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&out);
            return Err(e.into());
        }
    };
    let serial = ca::serial_hex(&issued.serial);
    ctx.report(
        json!({ "agent": a.name, "role": role.as_str(), "dn": dn.to_string(), "bundle": out, "serial": serial }),
        &format!("registered {dn} ({} certificate, serial {serial}); bundle in {}", role.as_str(), out.display()),
    );
    Ok(())
}
