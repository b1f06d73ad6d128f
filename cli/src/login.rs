//! The SSO client: `dirbroker login` (AS exchange → TGT in the credential
//! cache), `dirbroker tickets` (like klist), `dirbroker ticket get SERVICE`
//! (TGS exchange) and `dirbroker ticket use SERVICE` (stages 5–7 against a
//! Kerberized service). See docs/protocols/sso.md.
//!
//! The credential cache ("ccache") is a 0600 JSON file holding, like a
//! Kerberos ccache, the tickets and their session keys in clear (SK for the
//! TGT, C_ck per service), the broker's URL, CA path and JWKS; never the
//! password nor pw.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dirbroker::secret::{read_secret_file, write_private_file};
use dirbroker_proto::api::sso::PasswordKdf;
use dirbroker_proto::sso::kdf::KdfParams;
use dirbroker_proto::sso::session::{CachedLogin, CachedTicket, ClientCredential, ClientSession, LoginSession};
use dirbroker_proto::sso::tickets::{Jwks, LoginReply, TicketClaims, TicketReply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{CliResult, Ctx, Failure, Output};
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
    /// The broker's base URL (https://HOST:PORT).
    #[arg(long)]
    broker: String,
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
    /// Read the OTP code from FILE; default: asked on the terminal when the user has a token.
    #[arg(long, value_name = "FILE")]
    otp_file: Option<PathBuf>,
    /// Log in anonymously: a broker-assigned pseudonym at level 1 (paper §5).
    #[arg(long, conflicts_with_all = ["user", "password_file", "otp_file", "keystroke_file"])]
    anonymous: bool,
    #[command(flatten)]
    cc: CcacheArg,
}

#[derive(Args, Debug)]
pub struct TicketsArgs {
    #[command(flatten)]
    cc: CcacheArg,
}

#[derive(Subcommand, Debug)]
pub enum TicketCmd {
    /// Ask the broker for a ticket to SERVICE with the TGT, and cache it.
    #[command(after_help = "Example:\n  dirbroker ticket get wiki\n\nNeeds a TGT from `dirbroker login`.")]
    Get {
        /// The service id (ID_k).
        service: String,
        #[command(flatten)]
        cc: CcacheArg,
    },
    /// Call SERVICE with its ticket (asked for first if not cached): sends V_ck, checks the
    /// mutual-authentication reply, prints the service's answer.
    #[command(
        after_help = "Example:\n  dirbroker ticket use wiki --endpoint wiki.example.org:7000 --request 'read home'\n\n\
        Exit 1 when the service refuses (e.g. the user's level is too low) or its reply does\n\
        not authenticate it."
    )]
    Use {
        /// The service id (ID_k).
        service: String,
        /// Where the service listens (HOST:PORT).
        #[arg(long)]
        endpoint: String,
        /// M_request, e.g. "read KEY", "write KEY VALUE", "admin stats".
        #[arg(long)]
        request: String,
        /// Also write the framed request sent to FILE (for replay tests).
        #[arg(long, value_name = "FILE", hide = true)]
        dump_request: Option<PathBuf>,
        #[command(flatten)]
        cc: CcacheArg,
    },
}

/// The credential cache file.
#[derive(Serialize, Deserialize)]
struct Ccache {
    version: u32,
    broker: String,
    ca_file: PathBuf,
    issuer: String,
    principal: String,
    jwks: Jwks,
    login: CachedLogin,
    #[serde(default)]
    tickets: BTreeMap<String, CachedTicket>,
}

fn ccache_path(a: &CcacheArg) -> Result<PathBuf, Failure> {
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

fn save(path: &Path, cc: &Ccache) -> Result<(), Failure> {
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

fn load(path: &Path) -> Result<Ccache, Failure> {
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

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
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
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = Zeroizing::new(String::new());
    stdin
        .lock()
        .take(65536)
        .read_line(&mut line)
        .map_err(|e| Failure::new(Exit::Usage, format!("reading standard input: {e}")))?;
    let v = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    if v.is_empty() {
        return Err(Failure::usage(format!("no input for {}", prompt.trim_end_matches([':', ' ']))));
    }
    Ok(v)
}

fn sso_err(what: &str) -> impl Fn(dirbroker_proto::sso::error::SsoError) -> Failure + '_ {
    move |e| Failure::new(Exit::Failed, format!("{what}: {e}"))
}

pub async fn login(ctx: &Ctx, a: LoginArgs) -> CliResult {
    let started = std::time::Instant::now();
    let mut kdf_ms = 0.0;
    let client = crate::https_client(&a.broker, &a.ca, std::time::Duration::from_secs(30))?;
    let jwks: Jwks = client.get("/.well-known/jwks.json").await?;
    let path = ccache_path(&a.cc)?;
    let (cred, issuer, otp) = if a.anonymous {
        let p: Params = client.get("/v1/sso/params/anonymous").await?;
        (ClientCredential::anonymous(&mut rand::rng()).map_err(sso_err("anonymous key"))?, p.issuer, None)
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
        let otp = match &a.otp_file {
            Some(f) => Some(Zeroizing::new(
                read_secret_file(f).map_err(|e| Failure::new(Exit::Usage, e.to_string()))?.expose().trim().to_string(),
            )),
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
        let req = cred.login_request(&issuer, now(), &mut rand::rng());
        let mut body = req.ok().map(|r| serde_json::to_value(r).unwrap_or_default()).unwrap_or_default();
        if let (Some(code), Some(obj)) = (otp, body.as_object_mut()) {
            obj.insert("otp".into(), json!(code));
        }
        body
    };
    let mut answer: Result<LoginAnswer, Failure> =
        client.post("/v1/sso/login", &attempt(otp.as_deref().map(|s| s.as_str()))).await.map_err(Failure::from);
    if let Err(f) = &answer
        && otp.is_none()
        && f.message.contains("an OTP code is required")
    {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(Exit::Failed, format!("{}; pass --otp-file FILE", f.message)));
        }
        let code = read_line_secret("OTP code: ")?;
        answer = client.post("/v1/sso/login", &attempt(Some(code.as_str()))).await.map_err(Failure::from);
    }
    let answer = answer?;
    let session = cred.open_login(&answer.reply, &jwks, &issuer, now()).map_err(sso_err("the broker's answer"))?;
    let ca_file = std::fs::canonicalize(&a.ca).unwrap_or(a.ca.clone());
    let cc = Ccache {
        version: 1,
        broker: a.broker.trim_end_matches('/').to_string(),
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
            fmt_time(c.exp),
            path.display()
        ),
    );
    Ok(())
}

fn fmt_time(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(t).ok().and_then(|d| d.format(&fmt).ok()).unwrap_or_else(|| t.to_string())
}

fn row(c: &TicketClaims, kind: &str, now: i64) -> serde_json::Value {
    json!({
        "principal": c.sub, "service": c.aud, "kind": kind, "level": c.level.as_u8(),
        "valid_from": c.nbf, "valid_until": c.exp, "expired": now > c.exp,
    })
}

pub async fn tickets(ctx: &Ctx, a: TicketsArgs) -> CliResult {
    let path = ccache_path(&a.cc)?;
    let cc = load(&path)?;
    let tgt = LoginSession::from_cached(&cc.login).map_err(sso_err("cached TGT"))?;
    let now = now();
    let mut rows = vec![row(tgt.claims(), "tgt", now)];
    for t in cc.tickets.values() {
        let s = ClientSession::from_cached(t).map_err(sso_err("cached ticket"))?;
        rows.push(row(s.claims(), "service", now));
    }
    if ctx.output == Output::Json {
        ctx.json(&json!({ "ccache": path.display().to_string(), "principal": cc.principal, "broker": cc.broker, "tickets": rows }));
        return Ok(());
    }
    println!("Ticket cache: {}", path.display());
    println!("Default principal: {} (level {})", cc.principal, tgt.claims().level);
    println!();
    println!("{:<20} {:<20} {:<6} Service principal", "Valid starting", "Expires", "Level");
    for r in &rows {
        let from = r["valid_from"].as_i64().unwrap_or_default();
        let until = r["valid_until"].as_i64().unwrap_or_default();
        let service = r["service"].as_str().unwrap_or_default();
        let label = if r["kind"] == "tgt" { format!("{service} (TGT)") } else { service.to_string() };
        let expired = if r["expired"].as_bool().unwrap_or(false) { "  (expired)" } else { "" };
        println!("{:<20} {:<20} {:<6} {label}{expired}", fmt_time(from), fmt_time(until), r["level"]);
    }
    Ok(())
}

/// Asks the broker for SERVICE's tickets with the cached TGT; caches them.
async fn get_ticket(path: &Path, cc: &mut Ccache, service: &str) -> Result<ClientSession, Failure> {
    if dirbroker::directory::dn::check_value("service id", service).is_err() {
        return Err(Failure::usage(format!("{service:?} is not a valid service id")));
    }
    let session = LoginSession::from_cached(&cc.login).map_err(sso_err("cached TGT"))?;
    if session.claims().exp < now() {
        return Err(Failure::new(Exit::Failed, "the TGT has expired: run `dirbroker login` again"));
    }
    let client = crate::https_client(&cc.broker, &cc.ca_file, std::time::Duration::from_secs(30))?;
    let (req, waiting) = session.request_ticket(service, now(), &mut rand::rng()).map_err(sso_err("ticket request"))?;
    let body = serde_json::to_value(&req).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
    let reply: TicketReply = client.post("/v1/sso/ticket", &body).await?;
    let s = waiting.receive(&reply, &cc.jwks, &cc.issuer, now()).map_err(sso_err("the broker's tickets"))?;
    cc.tickets.insert(service.to_string(), s.to_cached());
    save(path, cc)?;
    Ok(s)
}

pub async fn ticket(ctx: &Ctx, cmd: TicketCmd) -> CliResult {
    match cmd {
        TicketCmd::Get { service, cc: arg } => {
            let path = ccache_path(&arg)?;
            let mut cc = load(&path)?;
            let s = get_ticket(&path, &mut cc, &service).await?;
            let c = s.claims();
            ctx.report(
                json!({ "principal": c.sub, "service": c.aud, "level": c.level.as_u8(), "valid_until": c.exp }),
                &format!("ticket for {} as {} (level {}), valid until {}", c.aud, c.sub, c.level, fmt_time(c.exp)),
            );
            Ok(())
        }
        TicketCmd::Use { service, endpoint, request, dump_request, cc: arg } => {
            let path = ccache_path(&arg)?;
            let mut cc = load(&path)?;
            let cached = cc
                .tickets
                .get(&service)
                .and_then(|t| ClientSession::from_cached(t).ok())
                .filter(|s| s.claims().exp > now());
            let session = match cached {
                Some(s) => s,
                None => get_ticket(&path, &mut cc, &service).await?,
            };
            let (req, waiting) =
                session.request(request.as_bytes(), now(), &mut rand::rng()).map_err(sso_err("request"))?;
            let frame =
                encode_frame(&serde_json::to_vec(&req).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?)?;
            if let Some(f) = &dump_request {
                write_private_file(f, &frame)
                    .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", f.display())))?;
            }
            let answer = exchange(&endpoint, &frame).await?;
            let answer: ServiceAnswer = serde_json::from_slice(&answer)
                .map_err(|e| Failure::new(Exit::Failed, format!("the service's answer does not parse: {e}")))?;
            match answer {
                ServiceAnswer { reply: Some(reply), .. } => {
                    let text = waiting.receive_reply(&reply).map_err(sso_err("the service's reply"))?;
                    let text = String::from_utf8_lossy(&text).to_string();
                    ctx.report(json!({ "service": service, "answer": text, "mutual_auth": true }), &text);
                    Ok(())
                }
                ServiceAnswer { error, .. } => Err(Failure::new(
                    Exit::Failed,
                    format!("{service} refused: {}", error.unwrap_or_else(|| "no reason given".into())),
                )),
            }
        }
    }
}

/// The example service's answer frame.
#[derive(Deserialize)]
struct ServiceAnswer {
    #[serde(default)]
    reply: Option<dirbroker_proto::sso::session::ServiceReply>,
    #[serde(default)]
    error: Option<String>,
}

fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, Failure> {
    let len = u32::try_from(payload.len()).map_err(|_| Failure::new(Exit::Failed, "request too large"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    Ok(out)
}

/// Sends one frame, reads one frame (u32 big-endian length, then JSON).
async fn exchange(endpoint: &str, frame: &[u8]) -> Result<Vec<u8>, Failure> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let io = |e: std::io::Error| Failure::new(Exit::Unavailable, format!("{endpoint}: {e}"));
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(endpoint).await.map_err(io)?;
        s.write_all(frame).await.map_err(io)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.map_err(io)?;
        let len = u32::from_be_bytes(len);
        if len > 1 << 20 {
            return Err(Failure::new(Exit::Failed, format!("{endpoint}: answer too large")));
        }
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        s.read_exact(&mut buf).await.map_err(io)?;
        Ok(buf)
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), fut)
        .await
        .map_err(|_| Failure::new(Exit::Unavailable, format!("{endpoint}: no answer within 30 s")))?
}
