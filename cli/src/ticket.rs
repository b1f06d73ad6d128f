//! The SSO client's tickets: `dirbroker tickets` (like klist), `dirbroker
//! ticket get SERVICE` (TGS exchange) and `dirbroker ticket use SERVICE`
//! (stages 5–7 against a Kerberized service). See docs/protocols/sso.md.

use dirbroker::secret::write_private_file;
use dirbroker_service::holder::CertKind;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dirbroker_proto::sso::service_frame::{self, FrameError, ServiceAnswer};
use dirbroker_proto::sso::session::{ClientSession, LoginSession};
use dirbroker_proto::sso::tickets::{TicketClaims, TicketReply};
use serde_json::json;
use time::OffsetDateTime;

use super::login::{Ccache, CcacheArg, ccache_path, load, now, save, sso_err};
use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

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
pub(crate) fn fmt_time(t: i64) -> String {
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
        ctx.json(&json!({ "ccache": path.display().to_string(), "principal": cc.principal, "brokers": cc.brokers, "tickets": rows }));
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
    let client = crate::https_client(&cc.brokers, &cc.ca_file, CertKind::Broker, std::time::Duration::from_secs(30))?;
    let (req, waiting) =
        session.request_ticket(service, now(), &mut dirbroker::clock::rng()).map_err(sso_err("ticket request"))?;
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
                session.request(request.as_bytes(), now(), &mut dirbroker::clock::rng()).map_err(sso_err("request"))?;
            let frame = service_frame::encode(&req).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            if let Some(f) = &dump_request {
                write_private_file(f, &frame)
                    .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", f.display())))?;
            }
            match exchange(&endpoint, &frame).await? {
                ServiceAnswer::Reply(reply) => {
                    let text = waiting.receive_reply(&reply).map_err(sso_err("the service's reply"))?;
                    let text = String::from_utf8_lossy(&text).to_string();
                    ctx.report(json!({ "service": service, "answer": text, "mutual_auth": true }), &text);
                    Ok(())
                }
                ServiceAnswer::Error(error) => Err(Failure::new(Exit::Failed, format!("{service} refused: {error}"))),
            }
        }
    }
}

/// Sends one frame, reads the service's answer.
async fn exchange(endpoint: &str, frame: &[u8]) -> Result<ServiceAnswer, Failure> {
    use tokio::io::AsyncWriteExt as _;
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(endpoint).await?;
        s.write_all(frame).await?;
        dirbroker_service::frame::read::<ServiceAnswer, _>(&mut s).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), fut).await {
        Err(_) => Err(Failure::new(Exit::Unavailable, format!("{endpoint}: no answer within 30 s"))),
        Ok(Err(FrameError::Io(e))) => Err(Failure::new(Exit::Unavailable, format!("{endpoint}: {e}"))),
        Ok(Err(e)) => Err(Failure::new(Exit::Failed, format!("{endpoint}: the service's answer: {e}"))),
        Ok(Ok(answer)) => Ok(answer),
    }
}
