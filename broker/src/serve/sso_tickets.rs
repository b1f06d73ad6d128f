//! The SSO ticket routes of `dirbroker serve` (seed 002 stages 3–7; see
//! docs/protocols/sso.md): the JWKS, the login (AS exchange), ticket
//! requests (TGS exchange) and the public KDF parameters a client needs to
//! derive pw.
//!
//! ```text
//! GET  /.well-known/jwks.json   RFC 8037 OKP JWKS of the ticket-signing key
//! GET  /v1/sso/params/{uid}     {kdf: {alg, salt, m_cost_kib, t_cost, p_cost}, issuer}
//! POST /v1/sso/login            LoginRequest (+ otp) → LoginReply (TGT, {SK}K_c)
//! POST /v1/sso/ticket           TicketRequest (TGT, authenticator, ID_k) → TicketReply
//! ```
//!
//! Stateless like the rest of the service: users and services come from
//! LDAP, K_tgt / the epoch seed / the anonymous-ID secret are derived from
//! the keyring. The replay caches are per process (see the docs: a proof or
//! authenticator replayed to another replica only yields an answer sealed
//! for the original client).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dirbroker_proto::sso::error::{Fault, SsoError};
use dirbroker_proto::sso::kdf::KdfParams;
use dirbroker_proto::sso::level::Level;
use dirbroker_proto::sso::primitives::{Bytes, Ed25519Key, decode_element, hmac_sha256};
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::tickets::{ClientEntry, LoginRequest, ServiceEntry, TicketIssuer, TicketRequest};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::AppState;
use super::api::{ApiError, body};
use super::sso_login::{AnonymousRefusal, LoginGate, Refusal, source_of};
use crate::config::SsoSection;
use crate::directory::DirError;
use crate::model::Usable as _;
use crate::model::{Service, User};
use crate::otp::verify::{self, Outcome};
use crate::seal::Keyring;
use dirbroker_proto::api::sso::PasswordKdf;

/// The keyring label the SSO secrets are derived under.
pub const KEYRING_LABEL: &str = "sso-tickets-v1";

/// Everything the ticket routes share.
pub struct SsoState {
    pub issuer: TicketIssuer,
    pub lifetime: i64,
    pub kdf: KdfParams,
    /// `[sso] allow_anonymous`.
    pub allow_anonymous: bool,
    /// Login proofs seen, failures per user and per source.
    pub gate: LoginGate,
    tgs_cache: Mutex<ReplayCache>,
}

impl std::fmt::Debug for SsoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoState")
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

/// Reads the Ed25519 ticket-signing key (PKCS#8 PEM, not readable by others).
pub fn load_signing_key(path: &Path) -> Result<Ed25519Key, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!("{shown}: the ticket-signing key must not be readable by others; run: chmod 600 {shown}"));
    }
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?);
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("{shown}: not an Ed25519 PKCS#8 PEM key: {e}"))?;
    Ok(Ed25519Key::from_seed(key.to_bytes()))
}

impl SsoState {
    /// `None` when there is no signing key yet (the routes then answer 503).
    pub fn load(cfg: &SsoSection, keyring: &Keyring) -> Result<Option<SsoState>, String> {
        if !cfg.signing_key_file.exists() {
            tracing::warn!(
                "no ticket-signing key at {}: SSO routes are off until `dirbroker sso init`",
                cfg.signing_key_file.display()
            );
            return Ok(None);
        }
        let key = load_signing_key(&cfg.signing_key_file)?;
        let master = keyring.derive(KEYRING_LABEL).map_err(|e| e.to_string())?;
        let issuer = TicketIssuer::new(&cfg.issuer, key, master.as_slice()).map_err(|e| e.to_string())?;
        let lifetime = i64::try_from(cfg.ticket_lifetime_s).unwrap_or(i64::MAX).clamp(1, 10 * 3600);
        let kdf = KdfParams { m_cost_kib: cfg.kdf_memory_kib, t_cost: cfg.kdf_iterations, p_cost: 1 };
        tracing::info!(
            issuer = %cfg.issuer, kid = %issuer.signer().kid(), allow_anonymous = cfg.allow_anonymous,
            "SSO tickets on"
        );
        Ok(Some(SsoState {
            issuer,
            lifetime,
            kdf,
            allow_anonymous: cfg.allow_anonymous,
            gate: LoginGate::new(cfg.login_failures_per_user, cfg.login_failures_per_source),
            tgs_cache: Mutex::new(ReplayCache::new()),
        }))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/sso/params/{uid}", get(params))
        .route("/v1/sso/login", post(login))
        .route("/v1/sso/ticket", post(ticket))
}

pub(crate) fn sso(st: &AppState) -> Result<Arc<SsoState>, ApiError> {
    st.sso.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SSO tickets are not set up on this broker: run `dirbroker sso init` and restart it",
        )
    })
}

pub(crate) fn unix_now() -> i64 {
    crate::clock::now().unix_timestamp()
}

/// A protocol error as the caller sees it; peer misbehaviour is logged as a
/// security event.
fn refused(e: &SsoError, what: &str) -> ApiError {
    let status = match e.fault() {
        Fault::Malformed => StatusCode::BAD_REQUEST,
        Fault::User => StatusCode::FORBIDDEN,
        Fault::PeerIncompatible | Fault::Denied | Fault::Unavailable | Fault::Config | Fault::Local | Fault::Bug => {
            tracing::error!("{what}: {e}");
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed (see the broker's log)"));
        }
        Fault::PeerMisbehaved => StatusCode::UNAUTHORIZED,
    };
    tracing::warn!(security = true, "{what} refused: {e}");
    ApiError::new(status, format!("{what} refused: {e}"))
}

pub(crate) fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn jwks(State(st): State<AppState>) -> Result<Response, ApiError> {
    let s = sso(&st)?;
    Ok(Json(s.issuer.jwks()).into_response())
}

const ANONYMOUS_OFF: &str =
    "anonymous login is off on this broker (the operator may turn it on with [sso] allow_anonymous = true)";

/// Logged (never answered) for a login of a user without a published P_c.
const NOT_REGISTERED: &str = "the user is unknown or not registered for SSO (no published P_c)";

/// The published KDF record of `uid`. Unknown or unregistered users get a
/// stable made-up salt with the default parameters, so this route does not
/// tell who exists (the login gives them the answer of a wrong password).
async fn params(State(st): State<AppState>, UrlPath(uid): UrlPath<String>) -> Result<Response, ApiError> {
    let s = sso(&st)?;
    if crate::directory::dn::check_value("uid", &uid).is_err() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "not a valid uid"));
    }
    let user = st.dir.find_user(&uid).await.map_err(|e| st.dir_error(e))?;
    let record =
        user.filter(|u| u.public_value.is_some()).and_then(|u| u.password_kdf).and_then(|k| PasswordKdf::parse(&k));
    let record = match record {
        Some(r) => r,
        None => {
            let fake = hmac_sha256(s.issuer.anonymous_secret(), format!("fake salt\0{uid}").as_bytes())
                .map_err(|e| refused(&e, "params"))?;
            PasswordKdf {
                alg: "argon2id".into(),
                salt: Bytes(fake.get(..16).unwrap_or_default().to_vec()),
                params: s.kdf,
            }
        }
    };
    Ok(Json(json!({ "uid": uid, "kdf": record, "issuer": s.issuer.issuer() })).into_response())
}

/// The body of `/v1/sso/login` and `/web/login`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginBody {
    #[serde(flatten)]
    request: LoginRequest,
    /// The current OTP code, for users with an enabled token.
    #[serde(default)]
    otp: Option<String>,
}

/// The one answer to a named login that failed a factor: a wrong password,
/// and for a user with an OTP token a missing or wrong code, read the same
/// (audit F5), so the answer does not tell an attacker that a guessed
/// password was right.
pub const LOGIN_REFUSED: &str =
    "login refused: wrong password or OTP code (a user with an OTP token sends the current code with the password)";

fn login_refused() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, LOGIN_REFUSED)
}

/// An attempt the gate turned away before any proof check.
fn gate_refused(r: Refusal, what: &str) -> ApiError {
    match r {
        Refusal::Replay => {
            tracing::warn!(security = true, "{what} refused: replayed proof");
            ApiError::new(StatusCode::UNAUTHORIZED, format!("{what} refused: {}", SsoError::Replay))
        }
        Refusal::Backoff(wait) => {
            tracing::warn!(security = true, "{what} refused: too many failed logins");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{what} refused: too many failed logins; try again in {} s", wait.as_secs().max(1)),
            )
        }
        Refusal::Internal => {
            tracing::error!("{what}: the login replay cache is poisoned");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed (see the broker's log)"))
        }
    }
}

/// Checks and consumes the user's OTP if they have an enabled token. A
/// missing or refused code is [`LOGIN_REFUSED`]; why is only logged.
async fn check_otp(st: &AppState, user: &User, code: Option<&str>) -> Result<(), ApiError> {
    let tokens = super::api::enabled_tokens(st, user).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let Some(code) = code else {
        tracing::info!(uid = %user.uid, "SSO login refused: the user has an OTP token and sent no code");
        return Err(login_refused());
    };
    let outcome = verify::verify_any(&st.dir, &st.keyring, &tokens, code, crate::clock::now(), &st.otp_policy).await;
    match outcome {
        Ok(Some((_, Outcome::Accepted { .. }))) => Ok(()),
        Ok(Some((_, Outcome::Refused(r)))) => {
            tracing::warn!(security = true, uid = %user.uid, "SSO login: OTP refused: {r}");
            Err(login_refused())
        }
        Ok(None) => {
            tracing::warn!(security = true, uid = %user.uid, "SSO login: OTP refused: wrong code");
            Err(login_refused())
        }
        Err(verify::VerifyError::Directory(e)) => Err(st.dir_error(e)),
        Err(e) => {
            let security = matches!(e, verify::VerifyError::Seal { source: crate::seal::SealError::Tampered, .. });
            tracing::error!(security, uid = %user.uid, "OTP verification: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this user's token cannot be checked (see the broker's log)",
            ))
        }
    }
}

/// Stage 4a (AS exchange): pre-authentication proof (+ OTP) → TGT and SK
/// sealed under K_c. The checks are [`authenticate`]'s, shared with the web
/// sign-in (`/web/login`).
async fn login(
    State(st): State<AppState>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let source = source_of(source.map(|Extension(ConnectInfo(a))| a));
    let Authenticated { sso: s, entry, now } = authenticate(&st, source, req).await?;
    let (s2, e2, lifetime) = (s.clone(), entry.clone(), s.lifetime);
    let reply = run_blocking(move || s2.issuer.issue_tgt(&e2, lifetime, now, &mut crate::clock::rng()))
        .await
        .map_err(|e| refused(&e, "login"))?;
    tracing::info!(principal = %entry.id_c, level = entry.level.as_u8(), "SSO login: TGT issued");
    Ok(no_store(Json(json!({ "principal": entry.id_c, "level": entry.level.as_u8(), "reply": reply })).into_response()))
}

/// Who a login proved to be, and when.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub sso: Arc<SsoState>,
    pub entry: ClientEntry,
    pub now: i64,
}

/// Every check of a login, for `/v1/sso/login` and `/web/login` alike. An
/// anonymous login (when `[sso] allow_anonymous`) gets a pseudonym at
/// level 1. In front of the proof: the cheap checks, the replay cache and the
/// failure limits ([`LoginGate`]); the proof itself is verified outside any
/// lock; then the account rule and the OTP.
pub(crate) async fn authenticate(st: &AppState, source: IpAddr, req: LoginBody) -> Result<Authenticated, ApiError> {
    let s = sso(st)?;
    let now = unix_now();
    let entry = if req.request.p_anon.is_some() {
        if !s.allow_anonymous {
            return Err(ApiError::new(StatusCode::FORBIDDEN, ANONYMOUS_OFF));
        }
        let (s2, r) = (s.clone(), req.request.clone());
        let clock = Instant::now();
        let entry = tokio::task::spawn_blocking(move || s2.gate.anonymous_login(&s2.issuer, &r, source, now, clock))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "anonymous login failed (worker task)"))?;
        match entry {
            Ok(e) => e,
            Err(AnonymousRefusal::Gate(r)) => return Err(gate_refused(r, "anonymous login")),
            Err(AnonymousRefusal::Proof(e)) => return Err(refused(&e, "anonymous login")),
        }
    } else {
        let uid = req.request.proof.id_c.clone();
        if crate::directory::dn::check_value("uid", &uid).is_err() {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "not a valid uid"));
        }
        s.issuer.precheck_login(&req.request, now).map_err(|e| refused(&e, "login"))?;
        // Counted from here: an unknown or disabled user is a failure too.
        let admission = s
            .gate
            .admit(&req.request.proof, source, Some(&uid), now, Instant::now())
            .map_err(|r| gate_refused(r, "login"))?;
        let user = st.dir.find_user(&uid).await.map_err(|e| st.dir_error(e))?;
        // An unknown or unregistered user is checked against a made-up P_c
        // (no one knows its logarithm), a disabled or expired one against
        // theirs: every failure costs the same proof and gets the one answer
        // (audit F16: the login does not tell who exists or is disabled).
        let (user, p_c) = match user.and_then(|u| u.public_value.clone().map(|p| (u, p))) {
            Some((user, p_c)) => {
                let p_c = decode_element(&p_c.into()).map_err(|e| {
                    tracing::error!(uid = %uid, "published P_c is invalid: {e}");
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "this user's published P_c is invalid")
                })?;
                (Some(user), p_c)
            }
            None => (None, s.issuer.unregistered_p_c(&uid)),
        };
        // The proof first: nobody without the password can burn OTP codes.
        let (s2, r, p2) = (s.clone(), req.request.clone(), p_c.clone());
        s.gate.verifying();
        match run_blocking(move || s2.issuer.verify_login(&p2, &r)).await {
            Ok(()) => {}
            Err(SsoError::ProofInvalid) => {
                let why = if user.is_some() { "password proof does not verify" } else { NOT_REGISTERED };
                tracing::warn!(security = true, uid = %uid, "SSO login refused: {why}");
                return Err(login_refused());
            }
            Err(e) => return Err(refused(&e, "login")),
        }
        let Some(user) = user else {
            tracing::error!(security = true, uid = %uid, "SSO login: a proof verified against the made-up P_c");
            return Err(login_refused());
        };
        if let Err(why) = user.usable_at(crate::clock::now()) {
            tracing::warn!(security = true, uid = %uid, "SSO login refused: the account is {why}");
            return Err(login_refused());
        }
        let entry = ClientEntry { id_c: uid.clone(), p_c, level: user.level };
        check_otp(st, &user, req.otp.as_deref()).await?;
        s.gate.succeeded(&admission);
        entry
    };
    Ok(Authenticated { sso: s, entry, now })
}

/// The TGT holder `sub` may still get tickets at `level`: an existing user
/// must be usable now and hold at least `level`; a broker-assigned anonymous
/// identity has no entry. `Ok(true)` for an anonymous holder.
pub(crate) async fn check_holder(st: &AppState, sub: &str, level: Level) -> Result<bool, ApiError> {
    const REFUSED: &str = "this account is disabled or expired, or its level changed: log in again";
    let user = if crate::directory::dn::check_value("uid", sub).is_ok() {
        st.dir.find_user(sub).await.map_err(|e| st.dir_error(e))?
    } else {
        None
    };
    match user {
        Some(u) => {
            if let Err(why) = u.usable_at(crate::clock::now()) {
                tracing::info!(uid = %sub, "ticket refused: the account is {why}");
                return Err(ApiError::new(StatusCode::FORBIDDEN, REFUSED));
            }
            if u.level < level {
                tracing::info!(uid = %sub, "ticket refused: level {} in the TGT, {} now", level, u.level);
                return Err(ApiError::new(StatusCode::FORBIDDEN, REFUSED));
            }
            Ok(false)
        }
        None if dirbroker_proto::sso::anon::is_pseudonym(sub) && level == Level::Temporary => Ok(true),
        None => {
            tracing::info!(uid = %sub, "ticket refused: no such user any more");
            Err(ApiError::new(StatusCode::FORBIDDEN, REFUSED))
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SsoError> + Send + 'static,
) -> Result<T, SsoError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| SsoError::Internal("worker task"))?
}

/// Stage 4b (TGS exchange): TGT + authenticator → client and server tickets.
async fn ticket(
    State(st): State<AppState>,
    req: Result<Json<TicketRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let s = sso(&st)?;
    let req = body(req)?;
    let now = unix_now();
    if crate::directory::dn::check_value("service id", &req.service).is_err() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "not a valid service id"));
    }
    let svc = match st.dir.load::<Service>(&req.service).await {
        Ok(v) => v,
        Err(DirError::NotFound { .. }) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no service {:?}", req.service)));
        }
        Err(e) => return Err(st.dir_error(e)),
    };
    if svc.disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("service {:?} is disabled", svc.id)));
    }
    let p_k = svc.public_value.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("service {:?} has no published P_k (dirbroker service add)", svc.id),
        )
    })?;
    let p_k = decode_element(&p_k.into()).map_err(|e| {
        tracing::error!(service = %svc.id, "published P_k is invalid: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "this service's published P_k is invalid")
    })?;
    // The account rule at every ticket, not only at login: the holder of a
    // TGT is re-read, and a disabled, expired, deleted or lowered user gets
    // no more tickets on the strength of an older login.
    let holder = {
        let (s2, tgt) = (s.clone(), req.tgt.clone());
        run_blocking(move || s2.issuer.open_tgt(&tgt, now).map(|(claims, _)| claims))
            .await
            .map_err(|e| refused(&e, "ticket request"))?
    };
    let anonymous = check_holder(&st, &holder.sub, holder.level).await?;
    // Anonymous holders: only while this broker allows anonymous login (a
    // TGT from before it was turned off, or from a replica that allows it,
    // gets nothing), and only for a service that admits them (audit F2).
    if anonymous && !s.allow_anonymous {
        tracing::info!(principal = %holder.sub, "ticket refused: anonymous login is off");
        return Err(ApiError::new(StatusCode::FORBIDDEN, ANONYMOUS_OFF));
    }
    if anonymous && !svc.allow_anonymous {
        tracing::info!(principal = %holder.sub, service = %svc.id, "ticket refused: the service does not admit anonymous users");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("service {:?} does not admit anonymous users (dirbroker service add --allow-anonymous)", svc.id),
        ));
    }
    let min_level = svc.min_level.unwrap_or(Level::Temporary);
    let entry = ServiceEntry { id_k: svc.id.clone(), p_k, min_level };
    let (s2, lifetime) = (s.clone(), s.lifetime);
    // Cheap (no exponentiation once the epoch key is cached) but CPU-bound.
    let reply = run_blocking(move || {
        let mut cache = s2.tgs_cache.lock().map_err(|_| SsoError::Internal("replay cache"))?;
        s2.issuer.grant(&req, &entry, lifetime, now, &mut cache, &mut crate::clock::rng())
    })
    .await
    .map_err(|e| refused(&e, "ticket request"))?;
    Ok(no_store(Json(reply).into_response()))
}
