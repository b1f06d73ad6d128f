//! The Agent Name Server of seed 002 as its own process
//! (`dirbroker-agents ans`): stage 1 ③ and stage 2 ②.
//!
//! ```text
//!  broker ── POST /v1/mcode (mTLS, broker only): McodeToAns + level ──► ANS
//!            Ans::receive_mcode: open M_code, recheck M_A, keep K, sign Userlevel
//!            kept in memory, keyed by registration id, for STATE_LIFETIME_S;
//!            at most --max-pending-per-user per ID_c (429), --max-pending in all (503)
//!  client ── POST /v1/share (no certificate): ShareToAns + broker's state ──► ANS
//!            AnsAwaitingShare::receive_share: G2 bound to K? ─► AnsToBroker (signed)
//!            only a share that passes takes the registration out; a wrong one leaves it
//!            ANS ── POST broker/v1/sso/userlevel (mTLS, ANS certificate) ──► the first broker that takes it
//!  client ◄── the broker's answer (Published, or its error with its status)
//! ```
//!
//! Keys: `box.key` (X25519, opens M_code = E_ANS) and `signing.key`
//! (Ed25519, Sig_ANS) from the bundle; their public halves are on the
//! ANS's LDAP `Agent` entry, where the broker reads them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dirbroker_proto::api::sso::{McodeRequest, STATE_LIFETIME_S, ShareRequest, UserLevelRequest};
use dirbroker_proto::sso::primitives::{Ed25519Key, X25519KeyPair, b64};
use dirbroker_proto::sso::registration::{Ans, AnsAwaitingShare};
use dirbroker_service::Peer;
use dirbroker_service::api_error::{ApiError, body, method_not_allowed, not_found, require};
use dirbroker_service::client::ApiClient;
use dirbroker_service::client::ClientError;
use dirbroker_service::holder::CertKind;

use crate::ams::{MAX_BODY, sso_error, unix_now};
use crate::https;

/// Default: most registrations waiting for their share at once.
pub const MAX_PENDING: usize = 10_000;

/// Default: most registrations of one user (one invitation names one user)
/// waiting for their share at once. The invitation is consumed only when a
/// registration publishes, so without this bound one invited user could fill
/// the whole table and stall everyone's registration.
pub const MAX_PENDING_PER_USER: usize = 3;

/// How `dirbroker-agents ans` was started.
#[derive(Debug)]
pub struct AnsOptions {
    /// The bundle directory from `dirbroker agent add ans`.
    pub bundle: PathBuf,
    /// The brokers' base URLs, tried in order (CA, CRL, and where AnsToBroker goes).
    pub brokers: Vec<String>,
    /// Listen address.
    pub listen: String,
    /// How often the CRL is read again from the broker.
    pub crl_refresh: Duration,
    /// Most registrations waiting for their share, in all.
    pub max_pending: usize,
    /// Most registrations of one user waiting for their share.
    pub max_pending_per_user: usize,
}

/// A registration waiting for its share.
struct Waiting {
    /// Shared so the share is checked outside the table's lock.
    awaiting: Arc<AnsAwaitingShare>,
    expires: Instant,
}

struct AnsState {
    name: String,
    ans: Ans,
    pending: Mutex<HashMap<Vec<u8>, Waiting>>,
    ttl: Duration,
    max_pending: usize,
    max_pending_per_user: usize,
    broker: ApiClient,
}

impl std::fmt::Debug for AnsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnsState").field("name", &self.name).finish_non_exhaustive()
    }
}

impl AnsState {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Waiting>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Stage 1 ③, for the broker only.
async fn mcode(
    State(st): State<Arc<AnsState>>,
    Extension(peer): Extension<Peer>,
    req: Result<Json<McodeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let h = require(&peer, &[CertKind::Broker])?;
    let req = body(req)?;
    let awaiting = st.ans.receive_mcode(&req.mcode, req.level, unix_now()).map_err(|e| sso_error(&e, "McodeToAns"))?;
    let id = req.mcode.registration_id.0.clone();
    let uid = awaiting.id_c().to_string();
    {
        let mut pending = st.pending();
        let now = Instant::now();
        pending.retain(|_, w| w.expires > now);
        if pending.contains_key(&id) {
            return Err(ApiError::new(StatusCode::CONFLICT, "this registration id is pending already"));
        }
        let of_user = pending.values().filter(|w| w.awaiting.id_c() == uid).count();
        if of_user >= st.max_pending_per_user {
            tracing::warn!(uid = %uid, pending = of_user, "registration refused: the user's bound of pending registrations");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{uid:?} has {of_user} registrations waiting for their share, the most one user may have; \
                     finish one, or start again after {} s",
                    st.ttl.as_secs()
                ),
            ));
        }
        if pending.len() >= st.max_pending {
            tracing::warn!(pending = pending.len(), "registration refused: the ANS's bound of pending registrations");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} registrations are waiting for their share at this ANS, its most; retry later",
                    pending.len()
                ),
            ));
        }
        pending.insert(id.clone(), Waiting { awaiting: Arc::new(awaiting), expires: now + st.ttl });
    }
    tracing::info!(broker = %h.name, registration = %b64(&id), level = %req.level, "M_code opened, Userlevel signed");
    Ok(Json(serde_json::json!({ "accepted": true, "expires_in": st.ttl.as_secs() })).into_response())
}

/// Stage 2 ②: the client's share, forwarded to the broker signed.
async fn share(
    State(st): State<Arc<AnsState>>,
    req: Result<Json<ShareRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let id = req.share.registration_id.0.clone();
    let not_waiting = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no registration of that id is waiting for its share here (expired, used, or never started)",
        )
    };
    // Check first, outside the lock; only a share that passes takes the
    // registration out, so a wrong share (anyone may send one: the route
    // takes no certificate) does not cancel it.
    let awaiting = match st.pending().get(&id) {
        Some(w) if w.expires > Instant::now() => w.awaiting.clone(),
        _ => return Err(not_waiting()),
    };
    let to_broker = awaiting.receive_share(&st.ans, &req.share).map_err(|e| {
        tracing::warn!(security = true, registration = %b64(&id), "share refused, the registration still waits: {e}");
        sso_error(&e, "ShareToAns")
    })?;
    // Two right shares racing: the first takes it, the second finds it gone.
    match st.pending().remove(&id) {
        Some(w) if Arc::ptr_eq(&w.awaiting, &awaiting) => {}
        _ => return Err(not_waiting()),
    }
    // It publishes P_c and consumes the invitation: sent to a second broker
    // only when the first surely did not get it (`Repeat::Once`).
    let sent: Result<serde_json::Value, ClientError> =
        st.broker.post("/v1/sso/userlevel", &UserLevelRequest { ans_to_broker: to_broker, state: req.state }).await;
    match sent {
        Ok(published) => {
            tracing::info!(registration = %b64(&id), "share forwarded to the broker: published");
            Ok(Json(published).into_response())
        }
        Err(ClientError::Refused { status, message, .. }) => {
            tracing::info!(registration = %b64(&id), status, "share forwarded to the broker: {message}");
            Err(ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), message))
        }
        Err(e) => {
            tracing::warn!("{e}");
            Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("the broker cannot be reached: {e}")))
        }
    }
}

fn router(state: AnsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/mcode", post(mcode))
        .route("/v1/share", post(share))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(state))
}

/// Runs the ANS until the process is stopped.
pub async fn run(opts: AnsOptions) -> Result<(), String> {
    let name = https::agent_name(&opts.bundle)?;
    let seed = https::read_key32(&opts.bundle.join("signing.key"))?;
    let box_secret = https::read_key32(&opts.bundle.join("box.key"))?;
    let ans = Ans {
        box_key: X25519KeyPair::from_secret(*box_secret).map_err(|e| format!("box.key: {e}"))?,
        signing_key: Ed25519Key::from_seed(*seed),
    };
    if opts.max_pending == 0 || opts.max_pending_per_user == 0 {
        return Err("--max-pending and --max-pending-per-user must be at least 1".into());
    }
    let tls = https::Tls::load(&opts.bundle, &opts.brokers).await?;
    let acceptor = tls.acceptor()?;
    let broker = tls.client()?;
    let _refresh = tls.keep_fresh("ANS", opts.crl_refresh);
    let listener = https::bind(&opts.listen).await?;
    tracing::info!(ans = %name, "ANS ready");
    let state = AnsState {
        name,
        ans,
        pending: Mutex::new(HashMap::new()),
        ttl: Duration::from_secs(u64::try_from(STATE_LIFETIME_S).unwrap_or(600)),
        max_pending: opts.max_pending,
        max_pending_per_user: opts.max_pending_per_user,
        broker,
    };
    https::serve(listener, acceptor, router(state)).await;
    Ok(())
}
