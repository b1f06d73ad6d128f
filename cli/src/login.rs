//! The SSO client's login: `dirbroker login` (AS exchange → TGT in the
//! credential cache); the tickets are `dirbroker tickets|ticket` (ticket.rs).
//! See docs/protocols/sso.md.
//!
//! The credential cache ("ccache") is a 0600 JSON file holding, like a
//! Kerberos ccache, the tickets and their session keys in clear (SK for the
//! TGT, C_ck per service), the broker's URL, CA path and JWKS; never the
//! password nor pw.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::Args;
use dirbroker::secret::{read_secret_file, write_private_file};
use dirbroker_proto::api::sso::PasswordKdf;
use dirbroker_proto::sso::kdf::KdfParams;
use dirbroker_proto::sso::session::{CachedLogin, CachedTicket, ClientCredential};
use dirbroker_proto::sso::tickets::{Jwks, LoginReply};
use dirbroker_service::holder::CertKind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::{CliResult, Ctx, Failure};
use crate::exit::Exit;

/// Environment variable naming the credential cache.
pub const ENV_CCACHE: &str = "DIRBROKER_CCACHE";

#[derive(Args, Debug)]
pub struct CcacheArg {
    /// The credential cache (default: $DIRBROKER_CCACHE, else $XDG_RUNTIME_DIR/dirbroker/ccache,
    /// else ~/.cache/dirbroker/ccache).
    #[arg(long, value_name = "FILE")]
    ccache: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The user id (omit with --anonymous).
    #[arg(required_unless_present = "anonymous")]
    user: Option<String>,
    /// The brokers' base URLs (https://HOST:PORT), tried in order: `--broker URL,URL…` or the
    /// flag repeated. The list is kept in the credential cache for `dirbroker ticket get`.
    #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
    brokers: Vec<String>,
    /// The broker CA certificate (PEM) to trust.
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// Read the password from FILE (`-`: standard input); default: standard input.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// JSON array of key hold durations (ms), one per password character, for a user
    /// registered with keystroke hardening (seed 004): the same input `dirbroker register` used.
    #[arg(long, value_name = "FILE")]
    keystroke_file: Option<PathBuf>,
    /// Read the OTP code from FILE. Default: asked on the terminal together with the password
    /// (leave it empty if you have no token); without a terminal, no code is sent.
    #[arg(long, value_name = "FILE")]
    otp_file: Option<PathBuf>,
    /// Log in anonymously: a broker-assigned pseudonym at level 1 (paper §5). Only when the
    /// broker has `[sso] allow_anonymous = true`, and only services added with
    /// `--allow-anonymous` issue tickets to it.
    #[arg(long, conflicts_with_all = ["user", "password_file", "otp_file", "keystroke_file"])]
    anonymous: bool,
    #[command(flatten)]
    cc: CcacheArg,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Ccache {
    pub(crate) version: u32,
    /// The brokers' base URLs, in order (a single string in a cache of an older version).
    #[serde(rename = "broker", deserialize_with = "one_or_many")]
    pub(crate) brokers: Vec<String>,
    pub(crate) ca_file: PathBuf,
    pub(crate) issuer: String,
    pub(crate) principal: String,
    pub(crate) jwks: Jwks,
    pub(crate) login: CachedLogin,
    #[serde(default)]
    pub(crate) tickets: BTreeMap<String, CachedTicket>,
}

/// A list of URLs, or one URL as a string (a cache written before several brokers).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

pub(crate) fn ccache_path(a: &CcacheArg) -> Result<PathBuf, Failure> {
    if let Some(p) = &a.ccache {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os(ENV_CCACHE).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("dirbroker").join("ccache"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h).join(".cache").join("dirbroker").join("ccache"));
    }
    Err(Failure::usage(format!("no credential cache path: pass --ccache FILE or set {ENV_CCACHE}")))
}

pub(crate) fn save(path: &Path, cc: &Ccache) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", dir.display())))?;
    }
    let text = Zeroizing::new(serde_json::to_vec_pretty(cc).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?);
    write_private_file(path, &text).map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", path.display())))
}

pub(crate) fn load(path: &Path) -> Result<Ccache, Failure> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::new(
                Exit::Failed,
                format!("no credential cache at {}: run `dirbroker login` first", path.display()),
            )
        } else {
            Failure::new(Exit::Failed, format!("{}: {e}", path.display()))
        }
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::new(
            Exit::Failed,
            format!("{} is readable by others; remove it and log in again", path.display()),
        ));
    }
    let text = Zeroizing::new(
        std::fs::read(path).map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", path.display())))?,
    );
    serde_json::from_slice(&text)
        .map_err(|e| Failure::new(Exit::Failed, format!("{}: not a credential cache: {e}", path.display())))
}

pub(crate) fn now() -> i64 {
    dirbroker::clock::now().unix_timestamp()
}

#[derive(Deserialize)]
struct Params {
    kdf: PasswordKdf,
    issuer: String,
}

#[derive(Deserialize)]
struct LoginAnswer {
    principal: String,
    level: u8,
    reply: LoginReply,
}

fn read_line_secret(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    let v = dirbroker::secret::read_line(prompt)
        .map_err(|e| Failure::new(Exit::Usage, format!("reading standard input: {e}")))?;
    if v.is_empty() {
        return Err(Failure::usage(format!("no input for {}", prompt.trim_end_matches([':', ' ']))));
    }
    Ok(v)
}

pub(crate) fn sso_err(what: &str) -> impl Fn(dirbroker_proto::sso::error::SsoError) -> Failure + '_ {
    move |e| Failure::new(Exit::Failed, format!("{what}: {e}"))
}

pub async fn login(ctx: &Ctx, a: LoginArgs) -> CliResult {
    let started = std::time::Instant::now();
    let mut kdf_ms = 0.0;
    let client = crate::https_client(&a.brokers, &a.ca, CertKind::Broker, std::time::Duration::from_secs(30))?;
    let jwks: Jwks = client.get("/.well-known/jwks.json").await?;
    let path = ccache_path(&a.cc)?;
    let (cred, issuer, otp) = if a.anonymous {
        let p: Params = client.get("/v1/sso/params/anonymous").await?;
        (ClientCredential::anonymous(&mut dirbroker::clock::rng()).map_err(sso_err("anonymous key"))?, p.issuer, None)
    } else {
        let uid = a.user.clone().ok_or_else(|| Failure::usage("name the user, or pass --anonymous"))?;
        if dirbroker::directory::dn::check_value("uid", &uid).is_err() {
            return Err(Failure::usage(format!("{uid:?} is not a valid user id")));
        }
        let p: Params = client.get(&format!("/v1/sso/params/{uid}")).await?;
        if p.kdf.alg != "argon2id" {
            return Err(Failure::new(
                Exit::Failed,
                format!("the broker names an unknown password KDF {:?}", p.kdf.alg),
            ));
        }
        let (salt, kdf) = (p.kdf.salt.0.clone(), p.kdf.params);
        if !kdf.meets_minimum() {
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "the broker hands out KDF parameters below the minimum ({} KiB, t={}; need ≥ {} KiB, t ≥ {}); refusing",
                    kdf.m_cost_kib,
                    kdf.t_cost,
                    KdfParams::MINIMUM.m_cost_kib,
                    KdfParams::MINIMUM.t_cost
                ),
            ));
        }
        let password = match &a.password_file {
            Some(f) => Zeroizing::new(
                read_secret_file(f).map_err(|e| Failure::new(Exit::Usage, e.to_string()))?.expose().to_string(),
            ),
            None => read_line_secret(&format!("Password for {uid}: "))?,
        };
        // The broker answers a wrong password and a missing or wrong OTP code
        // alike (it does not tell whether the password was right), so the
        // code is asked up front, optional, as sssd/FreeIPA ask for a
        // "Second Factor (optional)": once, on the terminal.
        let otp = match &a.otp_file {
            Some(f) => Some(Zeroizing::new(
                read_secret_file(f).map_err(|e| Failure::new(Exit::Usage, e.to_string()))?.expose().trim().to_string(),
            )),
            None if std::io::stdin().is_terminal() => {
                let code = dirbroker::secret::read_line("OTP code (empty if you have no token): ")
                    .map_err(|e| Failure::new(Exit::Usage, format!("reading standard input: {e}")))?;
                Some(code).filter(|c| !c.trim().is_empty())
            }
            None => None,
        };
        let hardened = match &a.keystroke_file {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
                let durations: Vec<u32> = serde_json::from_str(&text).map_err(|e| {
                    Failure::usage(format!("{}: not a JSON array of durations in ms: {e}", path.display()))
                })?;
                Some(
                    dirbroker_proto::keystroke::harden(&password, &durations)
                        .map_err(|e| Failure::usage(format!("keystroke hardening: {e}")))?,
                )
            }
        };
        let input: &[u8] = match &hardened {
            Some(h) => h.as_bytes(),
            None => password.as_bytes(),
        };
        let kdf_start = std::time::Instant::now();
        let cred = ClientCredential::derive(&uid, input, &salt, &kdf).map_err(sso_err("password"))?;
        kdf_ms = kdf_start.elapsed().as_secs_f64() * 1000.0;
        (cred, p.issuer, otp)
    };
    let attempt = |otp: Option<&str>| {
        let req = cred.login_request(&issuer, now(), &mut dirbroker::clock::rng());
        let mut body = req.ok().map(|r| serde_json::to_value(r).unwrap_or_default()).unwrap_or_default();
        if let (Some(code), Some(obj)) = (otp, body.as_object_mut()) {
            obj.insert("otp".into(), json!(code));
        }
        body
    };
    let answer: Result<LoginAnswer, Failure> =
        client.post("/v1/sso/login", &attempt(otp.as_deref().map(|s| s.as_str()))).await.map_err(Failure::from);
    let answer = answer.map_err(|mut f| {
        if otp.is_none() && !a.anonymous && f.message.contains("wrong password or OTP code") {
            f.message.push_str("; if this user has an OTP token, pass --otp-file FILE");
        }
        f
    })?;
    let session = cred.open_login(&answer.reply, &jwks, &issuer, now()).map_err(sso_err("the broker's answer"))?;
    let ca_file = std::fs::canonicalize(&a.ca).unwrap_or(a.ca.clone());
    let cc = Ccache {
        version: 1,
        brokers: client.bases().to_vec(),
        ca_file,
        issuer,
        principal: answer.principal.clone(),
        jwks,
        login: session.to_cached(),
        tickets: BTreeMap::new(),
    };
    save(&path, &cc)?;
    let c = session.claims();
    ctx.report(
        json!({
            "principal": answer.principal, "level": answer.level, "expires": c.exp,
            "ccache": path.display().to_string(),
            "timings_ms": { "kdf": kdf_ms, "total": started.elapsed().as_secs_f64() * 1000.0 },
        }),
        &format!(
            "logged in as {} (level {}); TGT valid until {}; credentials in {}",
            answer.principal,
            answer.level,
            super::ticket::fmt_time(c.exp),
            path.display()
        ),
    );
    Ok(())
}
