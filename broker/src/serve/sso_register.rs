//! SSO registration, stages 1–2 of seed 002 (Seo & Lee, "A Study on Single
//! Sign-On Authentication Model using Multi Agent"), as the broker's HTTPS
//! routes. The protocol itself is `dirbroker_proto::sso::registration`; this
//! module moves its messages between the client, the AMS and the ANS (each
//! its own process) and LDAP. docs/protocols/sso-registration.md has the
//! whole picture.
//!
//! ```text
//!  client ── GET /v1/sso/params ─────────────────────────► broker: KDF parameters
//!  client ── POST /v1/sso/register (RegistrationRequest, invitation) ─► broker
//!            broker: invitation valid? ─► AgentRequest ─► AMS POST /v1/agents (mTLS)
//!            broker ◄── AgentCreation (to_ans, to_client, to_broker)
//!            broker ── McodeToAns + level ─► ANS POST /v1/mcode (mTLS)
//!  client ◄── AgentToClient + ANS URL + sealed state blob
//!  client ── ShareToAns + blob ─► ANS POST /v1/share
//!            ANS ── AnsToBroker + blob ─► broker POST /v1/sso/userlevel (mTLS, ANS only)
//!            broker: open blob, verify ANS signatures, P_c = G1·G2,
//!            one modify: delete the invitation value, publish P_c, T_c, level, KDF
//!  client ◄── ANS ◄── Published
//! ```
//!
//! The broker keeps nothing between the two requests: its
//! `BrokerAwaitingUserLevel` travels sealed under the broker keyring, bound
//! to the user and the registration id, and expires after
//! [`STATE_LIFETIME_S`].

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dirbroker_proto::sso::kdf::KdfParams;
use dirbroker_proto::sso::level::Level;
use dirbroker_proto::sso::primitives::{Bytes, b64, unb64};
use dirbroker_proto::sso::registration::{
    AgentCreation, BrokerAwaitingUserLevel, BrokerRegistrationState, Published, broker_receive_registration,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use dirbroker_proto::api::sso::{
    AGENT_CODE, CreateAgentRequest, McodeRequest, ParamsReply, PasswordKdf, RegisterReply, RegisterRequest,
    STATE_LIFETIME_S, ShareRequest, UserLevelRequest,
};

pub use dirbroker_service::api_error::sso_error;

use super::api::{ApiError, body, require};
use super::{AppState, Peer, ServeError};
use crate::ca::{self, CertKind, Holder};
use crate::client::ApiClient;
use crate::config::Config;
use crate::directory::values::{bool_value, generalized_time, int_value};
use crate::directory::{Change, DirError};
use crate::invitation::{self, Invitation};
use crate::model::{Agent, AgentRole, DirEntry, Sealed};

/// What the state blob seals.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    state: BrokerRegistrationState,
    /// The exact `dirbrokerInvitation` value to delete on publication.
    invitation: String,
    level: Level,
    keystroke_hardening: bool,
    expires: i64,
}

fn seal_context(uid: &str, registration_id: &[u8]) -> crate::seal::Context {
    crate::seal::context::sso_registration(uid, &b64(registration_id))
}

// ---------------------------------------------------------------------------
// The broker's side of the agents
// ---------------------------------------------------------------------------

/// How the broker reaches AMS and ANS: their URLs and an HTTPS client
/// presenting the broker's certificate, trusting only the broker CA, judging
/// by the CRL in force (`dirbroker serve` puts each new CRL from LDAP in
/// force, see [`Registrar::pki`]) and accepting only an AMS certificate from
/// the AMS and an ANS certificate from the ANS.
#[derive(Debug)]
pub struct Registrar {
    pki: Arc<dirbroker_service::pki::Pki>,
    ams: ApiClient,
    ans: ApiClient,
    ans_url: String,
    broker_id: String,
    kdf: KdfParams,
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::Config(format!("{}: {reason}", path.display()))
}

impl Registrar {
    /// From `[sso]` (ams_url, ans_url, client identity, KDF) and the CA (and
    /// CRL) the broker trusts; `None` when ams_url / ans_url are not set.
    pub fn from_config(config: &Config, ca_der: &[u8], crl: Option<&[u8]>) -> Result<Option<Registrar>, ServeError> {
        use dirbroker_service::pki::Pki;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
        use std::os::unix::fs::PermissionsExt;
        let s = &config.sso;
        let (Some(ams), Some(ans)) = (&s.ams_url, &s.ans_url) else {
            return Ok(None);
        };
        let kdf = KdfParams { m_cost_kib: s.kdf_memory_kib, t_cost: s.kdf_iterations, p_cost: 1 };
        if kdf.m_cost_kib < 8 || kdf.t_cost < 1 {
            return Err(ServeError::Config("[sso] kdf_memory_kib must be ≥ 8 and kdf_iterations ≥ 1".into()));
        }
        if !kdf.meets_minimum() {
            tracing::warn!("[sso] KDF parameters are below the client minimum; clients refuse them by default");
        }
        let missing = || ServeError::Config("[sso] client_cert_file / [serve] cert_file is not set".into());
        let cert_file = s.client_cert_file.clone().or_else(|| config.serve.cert_file.clone()).ok_or_else(missing)?;
        let key_file = s.client_key_file.clone().or_else(|| config.serve.key_file.clone()).ok_or_else(missing)?;
        let mode = std::fs::metadata(&key_file).map_err(|e| file_error(&key_file, e))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_error(&key_file, format!("mode {mode:o}; run: chmod 600 {}", key_file.display())));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
            .map_err(|e| file_error(&cert_file, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(&cert_file, e))?;
        let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| file_error(&key_file, e))?;
        let crl = crl.map(|c| CertificateRevocationListDer::from(c.to_vec()));
        let pki = Pki::new(CertificateDer::from(ca_der.to_vec()), crl)
            .map_err(|e| ServeError::Config(format!("agent server verifier: {e}")))?;
        let timeout = std::time::Duration::from_secs(15);
        let client = |url: &str, kind: CertKind| {
            let tls = pki
                .client_config(kind, Some((chain.clone(), key.clone_key())))
                .map_err(|e| ServeError::Config(format!("[sso] client certificate: {e}")))?;
            ApiClient::new(&[url], tls, timeout).map_err(|e| ServeError::Config(e.to_string()))
        };
        Ok(Some(Registrar {
            ams: client(ams, CertKind::Ams)?,
            ans: client(ans, CertKind::Ans)?,
            pki: pki.clone(),
            ans_url: ans.trim_end_matches('/').to_string(),
            broker_id: s.issuer.clone(),
            kdf,
        }))
    }

    /// Passes a client's ShareToAns to ANS unchanged and returns ANS's answer
    /// (the Published record): the sign-in page's way to ANS (pages.rs).
    pub(crate) async fn relay_share(&self, req: &ShareRequest) -> Result<Published, ApiError> {
        Registrar::post("ANS", &self.ans, "/v1/share", req).await
    }

    /// The CA and CRL the clients to AMS and ANS judge by; a new CRL put in
    /// force here judges the next call.
    pub fn pki(&self) -> &Arc<dirbroker_service::pki::Pki> {
        &self.pki
    }

    /// POST `body` to an agent; its JSON answer, or a 502 that says which
    /// agent failed and how.
    async fn post<T: Serialize, R: for<'de> Deserialize<'de>>(
        who: &str,
        agent: &ApiClient,
        path: &str,
        body: &T,
    ) -> Result<R, ApiError> {
        agent.post(path, body).await.map_err(|e| {
            tracing::warn!("{who}: {e}");
            match &e {
                // A bound of the agent (ANS: pending registrations): its
                // refusal and status, so the client knows to wait.
                dirbroker_service::client::ClientError::Refused { status: s @ (429 | 503), message, .. } => {
                    ApiError::new(
                        StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_GATEWAY),
                        format!("the {who} refused: {message}"),
                    )
                }
                _ => ApiError::new(StatusCode::BAD_GATEWAY, format!("the {who} failed: {e}")),
            }
        })
    }
}

/// The enabled agent of `role` that serves `url` (by its endpoint), or the
/// only enabled one.
fn pick(agents: Vec<Agent>, role: AgentRole, url: &str) -> Option<Agent> {
    let live: Vec<Agent> = agents.into_iter().filter(|a| a.role == role && !a.disabled).collect();
    let authority = url.strip_prefix("https://").unwrap_or(url).split('/').next().unwrap_or_default().to_string();
    if let Some(a) = live.iter().find(|a| a.endpoint.as_deref() == Some(authority.as_str())) {
        return Some(a.clone());
    }
    match live.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

/// The registration routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sso/params", get(params))
        .route("/v1/sso/register", post(register))
        .route("/v1/sso/userlevel", post(userlevel))
}

type ApiResult = Result<Response, ApiError>;

pub(crate) fn registrar(st: &AppState) -> Result<&Registrar, ApiError> {
    st.sso_register.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SSO registration is not configured on this broker ([sso] ams_url and ans_url)",
        )
    })
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, m)
}

async fn params(State(st): State<AppState>) -> ApiResult {
    let r = registrar(&st)?;
    Ok(Json(ParamsReply { kdf: r.kdf, broker: r.broker_id.clone() }).into_response())
}

const REFUSED: &str = "the invitation is invalid, expired or used; ask an administrator for a new one";

/// Pre-stage and stage 1: check the invitation, have the AMS make the agent,
/// hand ANS its M_code, answer the client with the sealed state.
async fn register(State(st): State<AppState>, req: Result<Json<RegisterRequest>, JsonRejection>) -> ApiResult {
    let reg = registrar(&st)?;
    let req = body(req)?;
    let uid = req.registration.id_c.clone();
    crate::directory::dn::check_value("uid", &uid).map_err(|e| bad_request(e.to_string()))?;
    if req.registration.kdf != reg.kdf {
        return Err(bad_request("the KDF parameters are not the broker's (GET /v1/sso/params)"));
    }
    let refused = || ApiError::new(StatusCode::FORBIDDEN, REFUSED);
    let user = match st.dir.find_user(&uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(refused()),
        Err(e) => return Err(st.dir_error(e)),
    };
    // The account rule, with the invitation's answer: an unauthenticated
    // caller learns nothing of the account's state.
    if let Err(why) = crate::model::Usable::usable_at(&user, crate::clock::now()) {
        tracing::info!(uid = %uid, "SSO registration refused: the account is {why}");
        return Err(refused());
    }
    let dn = user.dn(st.dir.layout()).map_err(|e| st.dir_error(e))?;
    let entry = st.dir.read(&dn, &[invitation::ATTR]).await.map_err(|e| st.dir_error(e))?;
    let value = entry.bytes(invitation::ATTR).ok().flatten().map(<[u8]>::to_vec).ok_or_else(refused)?;
    let now = crate::clock::now().unix_timestamp();
    let inv = Invitation::parse(&value).ok_or_else(refused)?;
    if !inv.matches(&uid, &req.invitation) {
        tracing::info!(uid = %uid, "registration refused: wrong invitation code");
        return Err(refused());
    }
    if inv.expires <= now {
        tracing::info!(uid = %uid, "registration refused: invitation expired");
        return Err(refused());
    }
    let level = Level::try_from(inv.level).map_err(|e| sso_error(&e, "invitation level"))?;
    let (agent_request, awaiting) = {
        let mut rng = crate::clock::rng();
        broker_receive_registration(&req.registration, &reg.broker_id, AGENT_CODE, level, &mut rng)
            .map_err(|e| sso_error(&e, "registration request"))?
    };
    let agents = st.dir.list::<Agent>().await.map_err(|e| st.dir_error(e))?;
    let ans = pick(agents, AgentRole::Ans, &reg.ans_url).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no enabled ANS agent in the directory (`dirbroker agent add ans`)",
        )
    })?;
    let ans_box_key = ans.encryption_key.clone().filter(|k| k.len() == 32).ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("ANS {:?} has no X25519 key in the directory", ans.name))
    })?;
    let creation: AgentCreation = Registrar::post(
        "AMS",
        &reg.ams,
        "/v1/agents",
        &CreateAgentRequest { agent_request, ans_box_key: Bytes(ans_box_key) },
    )
    .await?;
    let awaiting = awaiting.receive_agent_created(&creation.to_broker).map_err(|e| {
        tracing::warn!(security = true, "AMS answered for another registration: {e}");
        ApiError::new(StatusCode::BAD_GATEWAY, format!("the AMS misbehaved: {e}"))
    })?;
    let _: serde_json::Value =
        Registrar::post("ANS", &reg.ans, "/v1/mcode", &McodeRequest { mcode: creation.to_ans, level }).await?;
    let expires = now.saturating_add(STATE_LIFETIME_S);
    let pending = Pending {
        state: awaiting.to_state(),
        invitation: String::from_utf8_lossy(&value).into_owned(),
        level,
        keystroke_hardening: req.keystroke_hardening,
        expires,
    };
    let plain = Zeroizing::new(serde_json::to_vec(&pending).map_err(|e| {
        tracing::error!("state JSON: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the registration state")
    })?);
    let sealed = st.keyring.seal(&seal_context(&uid, awaiting.registration_id()), &plain).map_err(|e| {
        tracing::error!("sealing the registration state: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot seal the registration state (see the broker's log)")
    })?;
    tracing::info!(uid = %uid, level = %level, "registration started: agent created, M_code with ANS");
    Ok(Json(RegisterReply { agent: creation.to_client, ans_url: reg.ans_url.clone(), state: b64(&sealed.0), expires })
        .into_response())
}

/// The ANS presenting `h`: its entry must exist, be an enabled ANS and hold
/// this very certificate.
async fn caller_ans(st: &AppState, h: &Holder) -> Result<Agent, ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
    let agent = match st.dir.load::<Agent>(&h.name).await {
        Ok(a) => a,
        Err(DirError::NotFound { .. } | DirError::BadInput { .. }) => {
            return Err(forbidden(format!("no agent {:?} in the directory", h.name)));
        }
        Err(e) => return Err(st.dir_error(e)),
    };
    if agent.role != AgentRole::Ans || agent.disabled {
        return Err(forbidden(format!("agent {:?} is not an enabled ANS", h.name)));
    }
    let current = agent.certificate.as_deref().map(ca::cert_serial).transpose().ok().flatten();
    if current.as_deref() != Some(h.serial.as_slice()) {
        return Err(forbidden(format!("this is not the current certificate of agent {:?}", h.name)));
    }
    Ok(agent)
}

/// Stage 2 ③: ANS's Userlevel and G2 with the client's state blob → check,
/// P_c = G1·G2, consume the invitation and publish, in one modify.
async fn userlevel(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    req: Result<Json<UserLevelRequest>, JsonRejection>,
) -> ApiResult {
    registrar(&st)?;
    let h = require(&peer, &[CertKind::Ans])?;
    let req = body(req)?;
    let ans = caller_ans(&st, h).await?;
    let key = ans
        .signing_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, format!("ANS {:?} has no usable Ed25519 key", ans.name)))?;
    let msg = &req.ans_to_broker;
    let uid = msg.id_c.clone();
    crate::directory::dn::check_value("uid", &uid).map_err(|e| bad_request(e.to_string()))?;
    let sealed = unb64(&req.state).map_err(|_| bad_request("the registration state is not base64url"))?;
    let plain = st.keyring.open(&seal_context(&uid, msg.registration_id.as_slice()), &Sealed(sealed)).map_err(|e| {
        tracing::warn!(security = true, uid = %uid, ans = %ans.name, "registration state refused: {e}");
        bad_request("the registration state does not open: it was altered, or belongs to another registration")
    })?;
    let pending: Pending =
        serde_json::from_slice(&plain).map_err(|_| bad_request("the registration state is malformed"))?;
    let now = crate::clock::now();
    if pending.expires <= now.unix_timestamp() {
        return Err(bad_request("the registration expired; start again with the same invitation"));
    }
    let awaiting =
        BrokerAwaitingUserLevel::from_state(&pending.state).map_err(|e| sso_error(&e, "registration state"))?;
    let published =
        awaiting.receive_user_level(msg, &key, now.unix_timestamp()).map_err(|e| sso_error(&e, "AnsToBroker"))?;
    if published.level != pending.level {
        tracing::warn!(security = true, uid = %uid, "ANS granted level {} instead of {}", published.level, pending.level);
        return Err(ApiError::new(StatusCode::FORBIDDEN, "ANS granted another level than the invitation's"));
    }
    let user = match st.dir.find_user(&uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no user {uid:?}"))),
        Err(e) => return Err(st.dir_error(e)),
    };
    let dn = user.dn(st.dir.layout()).map_err(|e| st.dir_error(e))?;
    let one = |v: Vec<u8>| -> HashSet<Vec<u8>> { [v].into_iter().collect() };
    let kdf = PasswordKdf { alg: "argon2id".into(), salt: published.salt.clone(), params: published.kdf };
    let keystroke = if pending.keystroke_hardening { one(bool_value(true)) } else { HashSet::new() };
    let t_c = OffsetDateTime::from_unix_timestamp(published.t_c).unwrap_or(now);
    let changes: Vec<Change> = vec![
        Change::Delete(invitation::ATTR.as_bytes().to_vec(), one(pending.invitation.into_bytes())),
        Change::Replace(b"dirbrokerPublicValue".to_vec(), one(published.p_c.0.clone())),
        Change::Replace(b"dirbrokerPublicValueTime".to_vec(), one(generalized_time(t_c))),
        Change::Replace(b"dirbrokerUserLevel".to_vec(), one(int_value(i64::from(published.level.as_u8())))),
        Change::Replace(b"dirbrokerPasswordKdf".to_vec(), one(kdf.to_value())),
        Change::Replace(b"dirbrokerKeystrokeHardening".to_vec(), keystroke),
    ];
    match st.dir.modify(&dn, changes).await {
        Ok(()) => {}
        Err(e) if e.is_stale_value() => {
            tracing::info!(uid = %uid, "registration refused: the invitation was used meanwhile");
            return Err(ApiError::new(StatusCode::CONFLICT, REFUSED));
        }
        Err(e) => return Err(st.dir_error(e)),
    }
    tracing::info!(uid = %uid, ans = %ans.name, level = %published.level, "P_c published");
    Ok(Json(published).into_response())
}
