//! The routes of `dirbroker serve` and their JSON. Errors are always
//! `{"error": "…"}` with a status that says whose fault it is: 4xx for the
//! caller (what is wrong with the request), 503 when the directory is
//! unavailable (retry), 500 for our own trouble (details in the log only).

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use dirbroker_proto::api::machines::{
    DcCredentials, DcEntry, Health, OtpVerifyReply, OtpVerifyRequest, Party, PkiCa, PskCredential, ServerCredential,
};

pub use dirbroker_service::api_error::{ApiError, body, method_not_allowed, not_found, require};

use super::{AppState, Peer, tls};
use crate::ca::{self, CertKind, Holder};
use crate::directory::{DirError, Dn, Filter, Scope};
use crate::model::{DataCenter, DirEntry, OtpToken, PhysicalServer, PreSharedKey, Usable as _};
use crate::otp::verify::{self, Outcome};
use crate::seal::context;
use dirbroker_proto::sso::primitives::Lp;

pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .merge(super::sso_tickets::router())
        .merge(super::session::router())
        .merge(super::oidc::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/pki/ca", get(pki_ca))
        .route("/v1/otp/verify", post(otp_verify))
        .route("/v1/dc/credentials", get(dc_credentials))
        .route("/v1/dc/{did}", get(dc_entry))
        .merge(super::sso_register::routes())
        .merge(super::pages::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

type ApiResult = Result<Response, ApiError>;

impl AppState {
    /// A directory failure as the caller should see it; counted and logged.
    pub(crate) fn dir_error(&self, e: DirError) -> ApiError {
        super::metrics::inc(&self.metrics.ldap_errors);
        match e {
            DirError::Unavailable { .. } => {
                tracing::warn!("directory: {e}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the directory is unavailable; retry later")
            }
            e => {
                tracing::error!("directory: {e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "directory error (see the broker's log)")
            }
        }
    }
}

/// Per-request timeout and metrics, around every route and the fallbacks.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    // The route template the router matched (`/v1/dc/{did}`), so the labels
    // stay as few as the routes; the fallbacks have none.
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "other".to_string(),
    };
    let start = Instant::now();
    let resp = match tokio::time::timeout(st.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the request took too long; retry later").into_response()
        }
    };
    st.metrics.observe(&route, &method, resp.status().as_u16(), start.elapsed());
    resp
}

/// The data center presenting `h`: its entry must exist, be enabled and hold
/// this very certificate (a superseded one is refused even before it is revoked).
async fn caller_dc(st: &AppState, h: &Holder) -> Result<DataCenter, ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
    let dc = match st.dir.load::<DataCenter>(&h.name).await {
        Ok(dc) => dc,
        Err(DirError::NotFound { .. } | DirError::BadInput { .. }) => {
            return Err(forbidden(format!("no data center {:?} in the directory", h.name)));
        }
        Err(e) => return Err(st.dir_error(e)),
    };
    if dc.disabled {
        return Err(forbidden(format!("data center {:?} is disabled", h.name)));
    }
    let current = dc.certificate.as_deref().map(ca::cert_serial).transpose().ok().flatten();
    if current.as_deref() != Some(h.serial.as_slice()) {
        return Err(forbidden(format!("this is not the current certificate of data center {:?}", h.name)));
    }
    Ok(dc)
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.dir.whoami().await {
        Ok(_) => Json(Health { status: "ok".into(), ldap: "ok".into() }).into_response(),
        Err(e) => {
            super::metrics::inc(&st.metrics.ldap_errors);
            tracing::warn!("healthz: directory: {e}");
            // The detail (URIs, TLS errors) stays in the log: anyone may ask.
            let health = Health { status: "unavailable".into(), ldap: "unavailable".into() };
            (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.metrics.render();
    if let Some(sso) = &st.sso {
        use std::fmt::Write as _;
        let _ = write!(
            text,
            "# HELP dirbroker_sso_login_proofs_verified_total SSO login proofs whose Schnorr equation was computed \
             (replayed and backed-off logins cost none).\n\
             # TYPE dirbroker_sso_login_proofs_verified_total counter\n\
             dirbroker_sso_login_proofs_verified_total {}\n",
            sso.gate.verifications()
        );
    }
    let mut r = text.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

async fn pki_ca(State(st): State<AppState>) -> ApiResult {
    let (ca_der, crl) = match tls::published(&st.dir).await {
        Ok(v) => v,
        Err(DirError::NotFound { .. }) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no CA in the directory yet"));
        }
        Err(e) => return Err(st.dir_error(e)),
    };
    let ca_der =
        ca_der.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no CA certificate in the directory yet"))?;
    Ok(Json(PkiCa { ca_pem: ca::pem("CERTIFICATE", &ca_der), crl_pem: crl.as_deref().map(ca::crl_pem) })
        .into_response())
}

/// Check and consume a user's OTP for the data center that asks (step 3 of
/// the migration request module). A decided verification is 200 either way:
/// `accepted` says the outcome, `reason` why not; 4xx/5xx mean no decision.
/// With a `migration_id`, an accepted code also gets the user's signed
/// authorisation of that migration from this data center (audit F11), which
/// the destination checks.
async fn otp_verify(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    req: Result<Json<OtpVerifyRequest>, JsonRejection>,
) -> ApiResult {
    let h = require(&peer, &[CertKind::Dc])?;
    let req = body(req)?;
    crate::directory::dn::check_value("uid", &req.uid)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let dc = caller_dc(&st, h).await?;
    if let Err(wait) = st.otp_verify_limit.check(&(h.name.clone(), req.uid.clone()), Instant::now()) {
        tracing::warn!(dc = %h.name, uid = %req.uid, security = true, "OTP verification rate limit reached");
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many verifications for this user from this data center; retry in {} s", wait.as_secs() + 1),
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
        return Ok(r);
    }
    // Decided before the code is looked at, so a code is never consumed for nothing.
    let authoriser = match (req.migration_id, &st.authoriser) {
        (None, _) => None,
        (Some(id), Some(a)) => Some((id, a.clone())),
        (Some(_), None) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this broker cannot sign migration authorisations: its [serve] key is not a P-256 key (see its log)",
            ));
        }
    };
    // With a migration id the request has a key: a data center that lost
    // the answer (timeout, cut connection) and asks again gets the
    // acceptance that was made, even while it is still being made (issue #13
    // item 10). Refusals consume nothing and are decided afresh (an admin
    // may have enabled the user meanwhile).
    let decided = match req.migration_id {
        Some(id) => {
            let key = Lp::sso("otp-verify")
                .part(h.name.as_bytes())
                .part(&id)
                .part(req.uid.as_bytes())
                .part(req.code.as_bytes())
                .hash();
            let accepted = st
                .otp_decisions
                .decide(&key, Instant::now(), || async {
                    match decide_otp(&st, &h.name, &dc, &req.uid, &req.code).await {
                        Ok(OtpDecision::Accepted) => Ok(OtpDecision::Accepted),
                        Ok(refused) => Err(Ok(refused)),
                        Err(e) => Err(Err(e)),
                    }
                })
                .await;
            match accepted {
                Ok(d) | Err(Ok(d)) => d,
                Err(Err(e)) => return Err(e),
            }
        }
        None => decide_otp(&st, &h.name, &dc, &req.uid, &req.code).await?,
    };
    match decided {
        OtpDecision::Accepted => {
            let authorisation = match authoriser {
                None => None,
                Some((id, a)) => {
                    let now = crate::clock::now().unix_timestamp();
                    Some(a.authorise(&req.uid, &h.name, &id, now).map_err(|e| {
                        tracing::error!(uid = %req.uid, "migration authorisation: {e}");
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the authorisation could not be signed")
                    })?)
                }
            };
            Ok(Json(OtpVerifyReply { accepted: true, reason: None, authorisation }).into_response())
        }
        OtpDecision::Refused(reason) => {
            Ok(Json(OtpVerifyReply { accepted: false, reason: Some(reason), authorisation: None }).into_response())
        }
    }
}

/// What `/v1/otp/verify` decided about a code.
#[derive(Clone, Debug)]
pub(crate) enum OtpDecision {
    Accepted,
    Refused(String),
}

/// Decide (and consume, when right) `code` of `uid` for the data center `dc`.
async fn decide_otp(
    st: &AppState,
    dc_name: &str,
    dc: &DataCenter,
    uid: &str,
    code: &str,
) -> Result<OtpDecision, ApiError> {
    let refused = |reason: &str| Ok(OtpDecision::Refused(reason.to_string()));
    // One answer for an unknown user and a user without tokens: the caller
    // learns nothing about which uids exist.
    const NO_TOKEN: &str = "no enabled OTP token for this user";
    let user = match st.dir.find_user(uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return refused(NO_TOKEN),
        Err(e) => return Err(st.dir_error(e)),
    };
    // The account rule, with the same answer as for no token: a disabled or
    // expired user's codes are refused, and the caller cannot tell why.
    if let Err(why) = user.usable_at(crate::clock::now()) {
        tracing::warn!(dc = %dc_name, uid = %uid, security = true, "OTP refused: the account is {why}");
        return refused(NO_TOKEN);
    }
    // A user bound to some data centers: no other may verify (nor burn, nor
    // lock) their codes; the same answer again, the reason in the log.
    let dc_dn = dc.dn(st.dir.layout()).map_err(|e| st.dir_error(e))?;
    if !user.otp_verifiers.is_empty() && !user.otp_verifiers.iter().any(|v| same(v, &dc_dn)) {
        tracing::warn!(dc = %dc_name, uid = %uid, security = true, "OTP refused: this data center is not one of the user's verifiers");
        return refused(NO_TOKEN);
    }
    let owner = user.dn(st.dir.layout()).map_err(|e| st.dir_error(e))?;
    let outcome =
        st.otp_cache.verify_owner(&st.dir, &st.keyring, &owner, code, crate::clock::now(), &st.otp_policy).await;
    match outcome {
        Ok(Some((_, Outcome::Accepted { .. }))) => {
            tracing::info!(dc = %dc_name, uid = %uid, "OTP accepted");
            Ok(OtpDecision::Accepted)
        }
        Ok(Some((token, Outcome::Refused(r)))) => {
            if matches!(r, verify::Refusal::LockedNow { .. }) {
                // Who locked a user out is a security event.
                tracing::warn!(dc = %dc_name, uid = %uid, token = %token.id, security = true, "OTP refused: {r}");
            } else {
                tracing::info!(dc = %dc_name, uid = %uid, "OTP refused: {r}");
            }
            // What a malformed code should have looked like would tell the
            // caller the token's type: the detail stays in the log.
            match r {
                verify::Refusal::Malformed(_) => refused("malformed code"),
                r => refused(&r.to_string()),
            }
        }
        Ok(None) => refused(NO_TOKEN),
        Err(verify::VerifyError::Directory(e)) => Err(st.dir_error(e)),
        Err(e) => {
            let security = matches!(e, verify::VerifyError::Seal { source: crate::seal::SealError::Tampered, .. });
            tracing::error!(security, uid = %uid, "OTP verification: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this user's token cannot be checked (see the broker's log)",
            ))
        }
    }
}

/// Verifications one data center may ask for one user per minute: a
/// migration needs one, a typo a few more.
pub const OTP_VERIFY_PER_MINUTE: u32 = 10;

/// How long a decision of `/v1/otp/verify` with a migration id is kept for
/// a data center asking again.
pub const OTP_DECISION_TTL: std::time::Duration = std::time::Duration::from_secs(300);

pub(crate) fn otp_decisions() -> dirbroker_service::idempotent::Decisions<[u8; 32], OtpDecision> {
    dirbroker_service::idempotent::Decisions::new(OTP_DECISION_TTL, 100_000)
}

pub(crate) fn otp_verify_limit() -> dirbroker_service::rate::RateLimit<(String, String)> {
    dirbroker_service::rate::RateLimit::new(OTP_VERIFY_PER_MINUTE, std::time::Duration::from_secs(60), 100_000)
}

/// A user's enabled OTP tokens, in a stable order (by id).
pub(crate) async fn enabled_tokens(st: &AppState, user: &crate::model::User) -> Result<Vec<OtpToken>, ApiError> {
    let owner = user.dn(st.dir.layout()).map_err(|e| st.dir_error(e))?;
    // Read on the writer: a replica's copy may hold a counter already consumed.
    let entries = st.dir.primary().owner_token_entries(&owner, &["*"]).await.map_err(|e| st.dir_error(e))?;
    let mut tokens: Vec<OtpToken> =
        entries.iter().filter_map(|e| OtpToken::from_entry(e).ok()).filter(|t| !t.disabled).collect();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tokens)
}

/// How a PSK party is shown: an admin by uid, a data center by DID.
fn party(st: &AppState, dn: &Dn) -> Party {
    let layout = st.dir.layout();
    let name = dn.first_rdn().map(|(_, v)| v).unwrap_or_default();
    if dn.is_within(&layout.people) {
        Party::admin(&name)
    } else if dn.is_within(&layout.datacenters) {
        Party::dc(&name)
    } else {
        Party::other(&dn.to_string())
    }
}

fn same(a: &Dn, b: &Dn) -> bool {
    a.is_within(b) && b.is_within(a)
}

/// The calling data center's own secrets: the pre-shared keys it is a party
/// of (K1 with admins, SPEKE passwords with other DCs) and the TOTP secrets of
/// its physical servers. Nothing of any other data center.
async fn dc_credentials(State(st): State<AppState>, Extension(peer): Extension<Peer>) -> ApiResult {
    let h = require(&peer, &[CertKind::Dc])?;
    let dc = caller_dc(&st, h).await?;
    let layout = st.dir.layout();
    let dn = dc.dn(layout).map_err(|e| st.dir_error(e))?;
    let now = crate::clock::now();
    let internal = |what: &str, e: &crate::seal::SealError| {
        // A value that does not open for its entry was altered or re-pointed
        // in LDAP (audit F8): a security event, not only an error.
        let security = matches!(e, crate::seal::SealError::Tampered);
        tracing::error!(security, "{what}: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} cannot be opened (see the broker's log)"))
    };

    let filter =
        Filter::and([Filter::object_class(PreSharedKey::KIND_CLASS), Filter::eq("dirbrokerPskParty", dn.as_str())]);
    let entries = st.dir.search(&layout.psk, Scope::Subtree, &filter, &["*"]).await.map_err(|e| st.dir_error(e))?;
    let mut psks = Vec::new();
    for e in &entries {
        let p = PreSharedKey::from_entry(e).map_err(|e| st.dir_error(e))?;
        if p.usable_at(now).is_err() || !p.parties.iter().any(|d| same(d, &dn)) {
            continue;
        }
        let key = st
            .keyring
            .open(&context::psk(&p), &p.secret)
            .map_err(|e| internal(&format!("pre-shared key {}", p.id), &e))?;
        psks.push(PskCredential {
            id: p.id.clone(),
            parties: p.parties.iter().map(|d| party(&st, d)).collect(),
            key_base64: base64::engine::general_purpose::STANDARD.encode(key.as_slice()),
        });
    }

    let filter =
        Filter::and([Filter::object_class(PhysicalServer::KIND_CLASS), Filter::eq("dirbrokerDataCenter", dn.as_str())]);
    let entries = st.dir.search(&layout.servers, Scope::Subtree, &filter, &["*"]).await.map_err(|e| st.dir_error(e))?;
    let mut servers = Vec::new();
    for e in &entries {
        let ps = PhysicalServer::from_entry(e).map_err(|e| st.dir_error(e))?;
        if ps.usable_at(now).is_err() || !same(&ps.datacenter, &dn) {
            continue;
        }
        let Some(sealed) = ps.totp_secret.as_ref() else { continue };
        let secret = st
            .keyring
            .open(&context::server_totp(&ps), sealed)
            .map_err(|e| internal(&format!("the TOTP secret of {}", ps.id), &e))?;
        servers.push(ServerCredential {
            id: ps.id.clone(),
            endpoint: ps.endpoint.clone(),
            algorithm: ps.algorithm.as_deref().unwrap_or("sha1").to_string(),
            digits: u32::from(ps.digits.unwrap_or(6)),
            period: u64::from(ps.period.unwrap_or(30)),
            secret_base32: totp_rs::Secret::new(secret.to_vec().into_boxed_slice()).to_base32(),
        });
    }
    tracing::info!(dc = %dc.id, psks = psks.len(), servers = servers.len(), "credentials handed out");
    let mut r = Json(DcCredentials { did: dc.id.clone(), psks, servers }).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// A data center's public entry, for any machine with a certificate.
async fn dc_entry(State(st): State<AppState>, Extension(peer): Extension<Peer>, Path(did): Path<String>) -> ApiResult {
    require(&peer, &CertKind::ALL)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no data center {did:?}"));
    if crate::directory::dn::check_value("data-center id", &did).is_err() {
        return Err(not_found());
    }
    let dc = match st.dir.load::<DataCenter>(&did).await {
        Ok(dc) => dc,
        Err(DirError::NotFound { .. } | DirError::BadInput { .. }) => return Err(not_found()),
        Err(e) => return Err(st.dir_error(e)),
    };
    Ok(Json(DcEntry {
        did: dc.id.clone(),
        endpoint: dc.endpoint.clone(),
        certificate_pem: dc.certificate.as_deref().map(|c| ca::pem("CERTIFICATE", c)),
        disabled: dc.disabled,
    })
    .into_response())
}
