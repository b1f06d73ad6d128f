//! `dirbroker register` (the client of SSO registration, stages 1–2 of
//! seed 002) and `dirbroker user invite` (the one-time invitation it needs).
//!
//! ```text
//!  password (file/stdin) [+ keystroke durations → harden] ─► KDF input
//!  GET  broker/v1/sso/params            ─► Argon2id parameters (refused below the minimum)
//!  client_start_registration            ─► RegistrationRequest (G1 = g^pw1; pw never leaves)
//!  POST broker/v1/sso/register          ─► AgentToClient + ANS URL + sealed state
//!  receive_agent: S_A recomputed from our own G1; a lying AMS/broker stops here
//!  POST ANS/v1/share (G2 = g^pw2, bound to K) ─► ANS ─► broker ─► Published
//!  check: published P_c = g^pw (derived again locally)
//! ```

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use dirbroker::secret::read_secret_file;
use dirbroker_proto::api::sso::{ParamsReply, RegisterReply, RegisterRequest, ShareRequest, published_json};
use dirbroker_proto::sso::error::SsoError;
use dirbroker_proto::sso::kdf::derive_pw;
use dirbroker_proto::sso::registration::{Published, client_start_registration};
use dirbroker_service::holder::CertKind;

use super::{CliResult, Ctx, Failure};
use crate::exit::Exit;

pub const REGISTER_HELP: &str = "Examples:\n  dirbroker register alice --broker https://broker.example.org:8443 --ca ca.pem \\\n      \
    --invite-file alice.invite --password-file alice.pw\n  \
    dirbroker register alice --broker https://broker:8443 --ca ca.pem --invite-file alice.invite \\\n      \
    --keystroke-file alice.durations.json < alice.pw\n\n\
    The password is read from --password-file or standard input, never the command line, and\n\
    never sent: only g^pw1 goes to the broker and g^pw2 to ANS. --keystroke-file is a JSON array\n\
    of key hold times in ms, one per password character (keystroke hardening, seed 004).\n\
    Exit codes: 0 registered, 1 refused or a peer misbehaved (the reason on stderr), 2 bad\n\
    input, 3 broker or agent unavailable.";

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The user's uid (ID_c).
    uid: String,
    /// The brokers' base URLs, tried in order: `--broker URL,URL…` or the flag repeated.
    #[arg(long = "broker", value_name = "URL", value_delimiter = ',', required = true)]
    brokers: Vec<String>,
    /// The broker CA certificate (PEM): trusted for the broker and ANS.
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// Read the password from FILE ('-' for standard input, the default).
    #[arg(long, value_name = "FILE", default_value = "-")]
    password_file: PathBuf,
    /// JSON array of key hold durations (ms), one per password character.
    #[arg(long, value_name = "FILE")]
    keystroke_file: Option<PathBuf>,
    /// The invitation code from `dirbroker user invite` (mode 0600 or stricter).
    #[arg(long, value_name = "FILE")]
    invite_file: PathBuf,
    /// Accept KDF parameters below the Argon2id minimum (tests only: makes P_c cheap to attack).
    #[arg(long, hide = true)]
    allow_weak_kdf: bool,
}

fn sso_failure(e: SsoError) -> Failure {
    match e {
        SsoError::SaMismatch => Failure::new(
            Exit::Failed,
            "S_A does not match our own G1: the AMS or the broker lied; nothing was sent to ANS. \
             Report this to your administrator",
        ),
        e => Failure::new(Exit::Failed, format!("registration: {e}")),
    }
}

pub async fn run(ctx: &Ctx, a: RegisterArgs) -> CliResult {
    dirbroker::directory::dn::check_value("uid", &a.uid).map_err(|e| Failure::usage(e.to_string()))?;
    let password = read_secret_file(&a.password_file).map_err(|e| Failure::usage(e.to_string()))?;
    let code = read_secret_file(&a.invite_file).map_err(|e| Failure::usage(e.to_string()))?;
    let hardened = match &a.keystroke_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            let durations: Vec<u32> = serde_json::from_str(&text)
                .map_err(|e| Failure::usage(format!("{}: not a JSON array of durations in ms: {e}", path.display())))?;
            let h = dirbroker_proto::keystroke::harden(password.expose(), &durations)
                .map_err(|e| Failure::usage(format!("keystroke hardening: {e}")))?;
            Some(h)
        }
    };
    let input: Zeroizing<Vec<u8>> = Zeroizing::new(match &hardened {
        Some(h) => h.as_bytes().to_vec(),
        None => password.expose().as_bytes().to_vec(),
    });
    let timeout = std::time::Duration::from_secs(60);
    let broker = crate::https_client(&a.brokers, &a.ca, CertKind::Broker, timeout)?;
    let params: ParamsReply = broker.get("/v1/sso/params").await?;
    if !params.kdf.meets_minimum() && !a.allow_weak_kdf {
        return Err(Failure::new(
            Exit::Failed,
            format!(
                "the broker asks for Argon2id {} KiB / t={}, below the minimum (19 MiB / t=2): refusing, \
                 since P_c would be cheap to attack",
                params.kdf.m_cost_kib, params.kdf.t_cost
            ),
        ));
    }
    let (request, awaiting) = {
        let mut rng = dirbroker::clock::rng();
        client_start_registration(&a.uid, &input, params.kdf, &mut rng).map_err(sso_failure)?
    };
    let salt = request.salt.clone();
    let body = RegisterRequest {
        registration: request,
        invitation: code.expose().to_string(),
        keystroke_hardening: hardened.is_some(),
    };
    let reply: RegisterReply = broker.post("/v1/sso/register", &body).await?;
    let share = awaiting.receive_agent(&reply.agent).map_err(sso_failure)?;
    let ans = crate::https_client(&[&reply.ans_url], &a.ca, CertKind::Ans, timeout)?;
    let published: Published = ans.post("/v1/share", &ShareRequest { share, state: reply.state }).await?;
    // The broker published P_c = G1·G2; check it is g^pw for our password.
    let pw = derive_pw(&input, salt.as_slice(), &params.kdf).map_err(sso_failure)?;
    let expected = pw.public().map_err(sso_failure)?.to_bytes();
    if published.id_c != a.uid || expected != published.p_c.0 || published.salt != salt {
        return Err(Failure::new(
            Exit::Failed,
            "the published P_c is not g^pw for this password: the broker or ANS misbehaved",
        ));
    }
    ctx.report(
        json!({ "registered": published_json(&published), "keystroke_hardening": hardened.is_some() }),
        &format!(
            "registered {} for SSO: P_c published at T_c {} with level {}{}",
            published.id_c,
            published.t_c,
            published.level,
            if hardened.is_some() { " (keystroke-hardened)" } else { "" }
        ),
    );
    Ok(())
}
