//! `dirbroker ca …`: the broker CA, certificates for the broker and the
//! other machine actors, revocation. The directory side is
//! `dirbroker::admin::ca`; data centers are `dirbroker dc …` (dc.rs).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::admin;
use dirbroker::ca::{self, Ca};
use dirbroker::directory::{DirError, Directory};

use super::{CliResult, Ctx, Failure};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the CA (key in a 0600 file) and publish its certificate and an empty CRL in LDAP.
    #[command(after_help = "Examples:\n  dirbroker ca init\n  dirbroker ca init --name 'Example DC CA' --years 10")]
    Init(CaInitArgs),
    /// Print the CA certificate (PEM) as published in LDAP.
    #[command(after_help = "Example:\n  dirbroker ca cert > ca.pem")]
    Cert,
    /// Re-issue the CRL (same revocations, next number, fresh 7-day validity); run it from cron.
    #[command(after_help = "Example (daily, from cron):\n  dirbroker ca refresh-crl\n\n\
        A CRL is valid for 7 days; after that `openssl verify -crl_check` rejects every\n\
        certificate, so re-issue it well before.")]
    RefreshCrl,
    /// Print the current CRL (PEM) as published in LDAP.
    #[command(
        after_help = "Example:\n  dirbroker ca crl > crl.pem && openssl verify -crl_check -CAfile ca.pem -CRLfile crl.pem dc.pem"
    )]
    Crl,
    /// Issue a certificate for the broker's service, an agent, a Kerberized service, an admin console or a physical server.
    #[command(
        after_help = "Examples:\n  dirbroker ca issue broker broker1 --dns broker1.example.org --ip 10.0.0.5 --out /etc/dirbroker/broker\n  \
        dirbroker ca issue ams ams1 --dns ams1.example.org\n  \
        dirbroker ca issue admin alice --out alice-console\n  \
        dirbroker ca issue ps PS-0001 --ip 10.2.0.1 --days 90\n\n\
        The subject is CN = NAME, O = \"dirbroker KIND\"; `dirbroker serve` reads the caller's\n\
        kind and name from it. broker (needs --dns or --ip; also its client identity towards\n\
        AMS/ANS), ams, ans, service, ps: serverAuth and clientAuth; admin: clientAuth only. Data centers get theirs from\n\
        `dirbroker dc add`. Writes --out (default ./KIND-NAME, a new 0700 directory):\n\
        key.pem (0600), cert.pem, ca.pem. The serial is printed: keep it to revoke."
    )]
    Issue(CaIssueArgs),
    /// Revoke a certificate of this CA by serial number or certificate file (re-issues the CRL).
    #[command(
        after_help = "Examples:\n  dirbroker ca revoke --serial 3a:f1:09:…\n  dirbroker ca revoke --cert broker1/cert.pem\n\n\
        For data centers use `dirbroker dc revoke DID`, which also disables the entry.\n\
        Run revocations one at a time (see docs/ca.md). `dirbroker serve` picks the new\n\
        CRL up within crl_refresh_s."
    )]
    Revoke(CaRevokeArgs),
}

/// Kinds that `ca issue` makes (data centers come from `dc add`), by the
/// names `CertKind` gives them.
fn issue_kind() -> impl clap::builder::TypedValueParser<Value = ca::CertKind> {
    let names: Vec<&'static str> =
        ca::CertKind::ALL.into_iter().filter(|k| *k != ca::CertKind::Dc).map(ca::CertKind::as_str).collect();
    clap::builder::TypedValueParser::try_map(clap::builder::PossibleValuesParser::new(names), |name: String| {
        ca::CertKind::parse(&name).ok_or_else(|| format!("{name:?} is not a certificate kind"))
    })
}

#[derive(Args, Debug)]
pub struct CaIssueArgs {
    #[arg(value_parser = issue_kind())]
    kind: ca::CertKind,
    /// The holder's name (CN): host or service name, uid, PID.
    name: String,
    /// DNS name for subjectAltName (repeatable).
    #[arg(long = "dns", value_name = "HOST")]
    dns: Vec<String>,
    /// IP address for subjectAltName (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    ip: Vec<std::net::IpAddr>,
    #[arg(long, default_value_t = 397, value_parser = clap::value_parser!(i64).range(1..=3650))]
    days: i64,
    /// Directory for the key bundle (default ./KIND-NAME).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct CaRevokeArgs {
    /// Serial number in hex (colons allowed, as `openssl x509 -serial` prints it).
    #[arg(long)]
    serial: Option<String>,
    /// The certificate (PEM) to revoke.
    #[arg(long)]
    cert: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CaInitArgs {
    #[arg(long, default_value = "dirbroker data-center CA")]
    name: String,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=30))]
    years: i64,
}

pub(super) fn load_ca(ctx: &Ctx) -> Result<Ca, Failure> {
    let c = ctx.config()?.ca;
    Ca::load(&c.key_file, &c.cert_file)
        .map_err(|e| Failure::new(Exit::Config, format!("{e} (run `dirbroker ca init` first)")))
}

pub async fn run_ca(ctx: &Ctx, cmd: CaCmd) -> CliResult {
    match cmd {
        CaCmd::Init(a) => {
            let c = ctx.config()?.ca;
            let dir = ctx.directory().await?;
            let (_, dn) =
                admin::ca::init(&dir, &c.key_file, &c.cert_file, &a.name, a.years, dirbroker::clock::now()).await?;
            ctx.report(
                json!({ "ca": dn.to_string(), "key_file": c.key_file, "cert_file": c.cert_file }),
                &format!(
                    "CA created: key {} (0600, back it up), certificate {}, published at {dn}",
                    c.key_file.display(),
                    c.cert_file.display()
                ),
            );
            Ok(())
        }
        CaCmd::RefreshCrl => {
            let authority = load_ca(ctx)?;
            let dir = ctx.directory().await?;
            let number = reissue_crl(&dir, &authority, None).await?;
            ctx.report(json!({ "crl_number": number }), &format!("CRL re-issued (number {number}), valid 7 days"));
            Ok(())
        }
        CaCmd::Issue(a) => {
            let kind = a.kind;
            let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{kind}-{}", a.name)));
            if out.exists() {
                return Err(Failure::usage(format!("{} exists already", out.display())));
            }
            let authority = load_ca(ctx)?;
            let mut sans = a.dns.clone();
            sans.extend(a.ip.iter().map(ToString::to_string));
            let issued = authority
                .issue(kind, &a.name, &sans, dirbroker::clock::now(), a.days)
                .map_err(|e| Failure::usage(e.to_string()))?;
            write_bundle(&out, &issued, &authority.cert_pem).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&out);
            })?;
            let serial = ca::serial_hex(&issued.serial);
            ctx.report(
                json!({ "kind": kind.as_str(), "name": a.name, "serial": serial, "bundle": out, "days": a.days }),
                &format!("issued a {kind} certificate for {} (serial {serial}); bundle in {}", a.name, out.display()),
            );
            Ok(())
        }
        CaCmd::Revoke(a) => {
            let serial = match (&a.serial, &a.cert) {
                (Some(s), _) => ca::parse_serial_hex(s).map_err(|e| Failure::usage(e.to_string()))?,
                (None, Some(path)) => {
                    use rustls_pki_types::pem::PemObject;
                    let der = rustls_pki_types::CertificateDer::from_pem_file(path)
                        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
                    ca::cert_serial(&der).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
                }
                (None, None) => return Err(Failure::usage("give --serial or --cert")),
            };
            let authority = load_ca(ctx)?;
            let dir = ctx.directory().await?;
            let number = reissue_crl(&dir, &authority, Some(serial.clone())).await?;
            let hex = ca::serial_hex(&serial);
            ctx.report(
                json!({ "revoked": hex, "crl_number": number }),
                &format!("revoked serial {hex} (CRL number {number})"),
            );
            Ok(())
        }
        CaCmd::Cert | CaCmd::Crl => {
            let dir = ctx.directory().await?;
            let dn = admin::ca::ca_dn(&dir)?;
            let attr =
                if matches!(cmd, CaCmd::Cert) { "cACertificate;binary" } else { "certificateRevocationList;binary" };
            let e = match dir.read(&dn, &[attr]).await {
                Ok(e) => e,
                Err(DirError::NotFound { .. }) => {
                    return Err(Failure::new(Exit::Failed, "no CA yet: run `dirbroker ca init`"));
                }
                Err(e) => return Err(e.into()),
            };
            let der = binary(&e, attr).ok_or_else(|| Failure::new(Exit::Failed, format!("{dn} has no {attr}")))?;
            if matches!(cmd, CaCmd::Cert) {
                print!("{}", pem("CERTIFICATE", &der));
            } else {
                print!("{}", ca::crl_pem(&der));
            }
            Ok(())
        }
    }
}

use dirbroker::ca::pem;
use dirbroker::serve::tls::binary;

pub(super) fn write_bundle(out: &Path, issued: &ca::Issued, ca_pem: &str) -> Result<(), Failure> {
    Ok(admin::ca::write_cert_bundle(out, issued, ca_pem)?)
}

/// Re-issue the CRL, adding `serial` if given; returns the new CRL number.
pub(super) async fn reissue_crl(dir: &Directory, authority: &Ca, serial: Option<Vec<u8>>) -> Result<u64, Failure> {
    Ok(admin::ca::reissue_crl(dir, authority, serial, dirbroker::clock::now()).await?)
}
