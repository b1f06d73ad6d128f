//! The Agent Management System of seed 002 as its own process
//! (`dirbroker-agents ams`): stage 1 ②, making the mobile agent.
//!
//! ```text
//!  broker ── POST /v1/agents (mTLS, broker certificate only) ──► AMS
//!            CreateAgentRequest { AgentRequest, ANS's X25519 key }
//!            Ams::create_agent: M_A, K = g^r, S_A, M_code = E_ANS(R_A, S_A, M_info), E_c(r, H(M_A))
//!  broker ◄── AgentCreation { to_ans: McodeToAns, to_client: AgentToClient, to_broker: AgentCreated }
//! ```
//!
//! The AMS keeps nothing: r is wiped when `create_agent` returns. It signs
//! nothing in the protocol, so its only key pair is its TLS one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dirbroker_proto::api::sso::CreateAgentRequest;
use dirbroker_proto::sso::registration::Ams;
use dirbroker_service::Peer;
use dirbroker_service::api_error::{ApiError, body, method_not_allowed, not_found, require};
use dirbroker_service::holder::CertKind;

use crate::https;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// How `dirbroker-agents ams` was started.
#[derive(Debug)]
pub struct AmsOptions {
    /// The bundle directory from `dirbroker agent add ams`.
    pub bundle: PathBuf,
    /// The brokers' base URLs, tried in order (for the CA and CRL).
    pub brokers: Vec<String>,
    /// Listen address.
    pub listen: String,
    /// How often the CRL is read again from the broker.
    pub crl_refresh: Duration,
}

#[derive(Debug)]
struct AmsState {
    name: String,
}

pub use dirbroker_service::api_error::sso_error;

/// Unix time now (shared with ANS).
pub fn unix_now() -> i64 {
    dirbroker_service::clock::system_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Stage 1 ②, for the broker only.
async fn create_agent(
    State(st): State<Arc<AmsState>>,
    Extension(peer): Extension<Peer>,
    req: Result<Json<CreateAgentRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let h = require(&peer, &[CertKind::Broker])?;
    let req = body(req)?;
    let ans_box_key = <[u8; 32]>::try_from(req.ans_box_key.as_slice())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "ans_box_key must be 32 bytes"))?;
    let ams = Ams { id: st.name.clone(), ans_box_key };
    let creation = {
        let mut rng = dirbroker_service::clock::rng();
        ams.create_agent(&req.agent_request, unix_now(), &mut rng).map_err(|e| sso_error(&e, "AgentRequest"))?
    };
    tracing::info!(broker = %h.name, id_c = %req.agent_request.id_c, "mobile agent created");
    Ok(Json(creation).into_response())
}

/// The AMS's routes.
fn router(name: String) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/agents", post(create_agent))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(AmsState { name }))
}

/// Runs the AMS until the process is stopped.
pub async fn run(opts: AmsOptions) -> Result<(), String> {
    let name = https::agent_name(&opts.bundle)?;
    let tls = https::Tls::load(&opts.bundle, &opts.brokers).await?;
    let acceptor = tls.acceptor()?;
    let _refresh = tls.keep_fresh("AMS", opts.crl_refresh);
    let listener = https::bind(&opts.listen).await?;
    tracing::info!(ams = %name, "AMS ready");
    https::serve(listener, acceptor, router(name)).await;
    Ok(())
}
