//! The OpenID Connect provider of `dirbroker serve` (issue #17): the
//! authorization-code flow with PKCE (S256 only) on top of the browser
//! session of [`super::session`].
//!
//! ```text
//! GET  /.well-known/openid-configuration   discovery
//! GET  /oidc/authorize   client_id, redirect_uri (exact), scope=openid, state, nonce, S256 challenge
//!        no session ─► 303 /signin?next=<this path and query>
//!        session    ─► 303 redirect_uri?code=…&state=…
//! POST /oidc/token       code + code_verifier (+ client secret) ─► id_token (EdDSA), access_token
//! GET  /oidc/userinfo    Bearer access_token ─► {sub, level}
//! ```
//!
//! Codes and access tokens are sealed with the keyring (bound to the client
//! id), so any broker with the keyring redeems them; the list of redeemed
//! codes is per process (docs/oidc.md). id_tokens are signed with their own
//! Ed25519 key, derived from the keyring and published in the same JWKS as
//! the ticket key: an id_token never verifies as an SSO ticket.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dirbroker_proto::sso::level::Level;
use dirbroker_proto::sso::primitives::{Ed25519Key, sha256};
use dirbroker_proto::sso::tickets::{Jwks, TicketSigner};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::AppState;
use super::session::{WebSession, checked};
use super::sso_tickets::{check_holder, no_store, unix_now};
use crate::config::Config;
use crate::directory::DirError;
use crate::model::OidcClient;
use crate::model::Sealed;
use crate::seal::{Context, Keyring};

/// The keyring label of the id_token signing key.
pub const KEYRING_LABEL: &str = "oidc-id-token-v1";
/// Any one authorize parameter longer than this is refused.
const MAX_PARAM: usize = 512;
/// Codes one process remembers as redeemed.
const MAX_USED: usize = 100_000;

/// What the OIDC routes share.
pub struct OidcState {
    signer: TicketSigner,
    code_lifetime: i64,
    token_lifetime: i64,
    /// jti → expiry of codes redeemed on this process.
    used: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for OidcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcState").field("kid", &self.signer.kid()).finish_non_exhaustive()
    }
}

impl OidcState {
    pub fn load(config: &Config, keyring: &Keyring) -> Result<OidcState, String> {
        let seed = keyring.derive(KEYRING_LABEL).map_err(|e| e.to_string())?;
        let signer = TicketSigner::new("oidc", Ed25519Key::from_seed(*seed)).map_err(|e| e.to_string())?;
        let life = |s: u64, max: i64| i64::try_from(s).unwrap_or(max).clamp(1, max);
        Ok(OidcState {
            signer,
            code_lifetime: life(config.sso.oidc_code_lifetime_s, 600),
            token_lifetime: life(config.sso.oidc_token_lifetime_s, 86_400),
            used: Mutex::new(HashMap::new()),
        })
    }

    /// The id_token key, for the JWKS.
    pub fn jwks(&self) -> Jwks {
        self.signer.jwks()
    }

    /// Remembers code `jti`; false when it was redeemed here before.
    fn first_use(&self, jti: &str, expires: i64, now: i64) -> bool {
        let Ok(mut used) = self.used.lock() else { return false };
        if used.len() >= MAX_USED {
            used.retain(|_, &mut e| e > now);
        }
        if used.len() >= MAX_USED || used.contains_key(jti) {
            return false;
        }
        used.insert(jti.to_owned(), expires);
        true
    }
}

/// The enabled relying party `id` from the directory; `Ok(None)` when there
/// is none (or the id cannot be one).
async fn client(st: &AppState, id: &str) -> Result<Option<OidcClient>, Box<Response>> {
    if crate::directory::dn::check_value("client id", id).is_err() {
        return Ok(None);
    }
    match st.dir.load::<OidcClient>(id).await {
        Ok(c) => Ok((!c.disabled).then_some(c)),
        Err(DirError::NotFound { .. } | DirError::BadInput { .. }) => Ok(None),
        Err(e) => Err(Box::new(st.dir_error(e).into_response())),
    }
}

fn oidc(st: &AppState) -> Result<&OidcState, Box<Response>> {
    st.oidc.as_deref().ok_or_else(|| {
        Box::new(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "OpenID Connect is off: the broker has no SSO signing key (dirbroker sso init)",
        ))
    })
}

/// An error shown to the browser instead of a redirect (RFC 6749 §4.1.2.1:
/// never redirect to an unchecked redirect_uri). Plain text: nothing the
/// request sent is reflected as HTML.
fn page(status: StatusCode, message: &str) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut()
        .insert("content-security-policy", HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    no_store(r)
}

fn issuer(st: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<String, Box<Response>> {
    st.web.origin(headers, uri).ok_or_else(|| Box::new(page(StatusCode::BAD_REQUEST, "no usable Host header")))
}

async fn discovery(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = oidc(&st) {
        return *r;
    }
    let iss = match issuer(&st, &headers, &uri) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "end_session_endpoint": format!("{iss}/web/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "level"],
    }))
    .into_response()
}

/// What an authorization code carries, sealed for its client.
#[derive(Debug, Serialize, Deserialize)]
struct Code {
    jti: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    uid: String,
    level: Level,
    auth_time: i64,
    sid: String,
    exp: i64,
}

/// What an access token carries, sealed for its client.
#[derive(Debug, Serialize, Deserialize)]
struct Access {
    uid: String,
    level: Level,
    client_id: String,
    exp: i64,
}

fn code_context(client_id: &str) -> Context {
    Context::new("oidc-code", client_id)
}

fn access_context() -> Context {
    Context::new("oidc-access", "v1")
}

fn random_id() -> Option<String> {
    let mut b = [0u8; 16];
    crate::clock::fill_random(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    no_store(r)
}

/// The error redirect of RFC 6749 §4.1.2.1 to a checked redirect_uri.
fn redirect_error(redirect_uri: &str, error: &str, description: &str, state: Option<&str>) -> Response {
    let Ok(mut u) = url::Url::parse(redirect_uri) else {
        return page(StatusCode::BAD_REQUEST, "the redirect_uri is not a URL");
    };
    u.query_pairs_mut().append_pair("error", error).append_pair("error_description", description);
    if let Some(s) = state {
        u.query_pairs_mut().append_pair("state", s);
    }
    redirect(u.as_str())
}

async fn authorize(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let o = match oidc(&st) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    if uri.query().is_some_and(|s| s.len() > 8 * MAX_PARAM) || q.values().any(|v| v.len() > MAX_PARAM) {
        return page(StatusCode::BAD_REQUEST, "a parameter of this sign-in request is too long");
    }
    let p = |name: &str| q.get(name).map(String::as_str);
    // The client and its redirect_uri first: until both are known, errors
    // are a page here, never a redirect.
    let client = match client(&st, p("client_id").unwrap_or_default()).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(client) = client else {
        return page(StatusCode::BAD_REQUEST, "unknown client_id: the application is not registered with this broker");
    };
    let Some(redirect_uri) = p("redirect_uri").filter(|r| client.redirect_uris.iter().any(|u| u == r)) else {
        tracing::warn!(security = true, client = %client.id, "authorize refused: unregistered redirect_uri");
        return page(StatusCode::BAD_REQUEST, "this redirect_uri is not registered for the application");
    };
    let state = p("state");
    let invalid = |d: &str| redirect_error(redirect_uri, "invalid_request", d, state);
    if p("response_type") != Some("code") {
        return redirect_error(redirect_uri, "unsupported_response_type", "only response_type=code", state);
    }
    if !p("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
        return redirect_error(redirect_uri, "invalid_scope", "scope must include openid", state);
    }
    if p("code_challenge_method") != Some("S256") {
        return invalid("PKCE is required with code_challenge_method=S256 (plain is refused)");
    }
    let Some(challenge) = p("code_challenge").filter(|c| c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok()) else {
        return invalid("code_challenge must be a base64url SHA-256 (43 characters)");
    };
    let session = match checked(&st, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Some(session) = session else {
        if p("prompt") == Some("none") {
            return redirect_error(redirect_uri, "login_required", "not signed in", state);
        }
        let here = uri.path_and_query().map_or("/oidc/authorize", |pq| pq.as_str());
        let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return redirect(&format!("/signin?next={next}"));
    };
    match issue_code(&st, o, &client, redirect_uri, challenge, p("nonce"), &session) {
        Some(code) => {
            let Ok(mut u) = url::Url::parse(redirect_uri) else {
                return page(StatusCode::BAD_REQUEST, "the redirect_uri is not a URL");
            };
            u.query_pairs_mut().append_pair("code", &code);
            if let Some(s) = state {
                u.query_pairs_mut().append_pair("state", s);
            }
            tracing::info!(uid = %session.uid, client = %client.id, "OIDC: authorization code issued");
            redirect(u.as_str())
        }
        None => page(StatusCode::INTERNAL_SERVER_ERROR, "the sign-in failed (see the broker's log)"),
    }
}

fn issue_code(
    st: &AppState,
    o: &OidcState,
    client: &OidcClient,
    redirect_uri: &str,
    challenge: &str,
    nonce: Option<&str>,
    s: &WebSession,
) -> Option<String> {
    let code = Code {
        jti: random_id()?,
        redirect_uri: redirect_uri.to_owned(),
        challenge: challenge.to_owned(),
        nonce: nonce.map(str::to_owned),
        uid: s.uid.clone(),
        level: s.level,
        auth_time: s.auth_time,
        sid: s.sid.clone(),
        exp: unix_now().saturating_add(o.code_lifetime),
    };
    let plain = serde_json::to_vec(&code).ok()?;
    match st.keyring.seal(&code_context(&client.id), &plain) {
        Ok(sealed) => Some(URL_SAFE_NO_PAD.encode(&sealed.0)),
        Err(e) => {
            tracing::error!("OIDC code: {e}");
            None
        }
    }
}

/// A code opened for its client may be redeemed at `now` with this
/// redirect_uri and PKCE verifier (RFC 7636 §4.6).
fn check_code(code: &Code, now: i64, redirect_uri: Option<&str>, verifier: Option<&str>) -> Result<(), &'static str> {
    if code.exp <= now {
        return Err("the code has expired");
    }
    if redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err("redirect_uri differs from the authorization request");
    }
    let Some(verifier) = verifier.filter(|v| (43..=128).contains(&v.len())) else {
        return Err("code_verifier is missing or not 43 to 128 characters");
    };
    let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    if !bool::from(computed.as_bytes().ct_eq(code.challenge.as_bytes())) {
        return Err("code_verifier does not match the code_challenge");
    }
    Ok(())
}

/// An RFC 6749 §5.2 error answer.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    if status == StatusCode::UNAUTHORIZED || error == "invalid_grant" {
        tracing::warn!(security = true, "OIDC token refused: {error}: {description}");
    }
    let mut r = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"dirbroker\""));
    }
    no_store(r)
}

/// The client the token request authenticates as: HTTP Basic or the form's
/// client_id (+ client_secret). A confidential client must prove its secret.
async fn token_client(
    st: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<OidcClient, Box<Response>> {
    let invalid = || Box::new(token_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"));
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b| {
            let raw = STANDARD.decode(b.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (id, secret) = text.split_once(':')?;
            let dec =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            Some((dec(id)?, dec(secret)?))
        });
    let (id, secret) = match basic {
        Some(Some((id, secret))) => (id, Some(secret)),
        Some(None) => return Err(invalid()),
        None => (form.get("client_id").cloned().ok_or_else(invalid)?, form.get("client_secret").cloned()),
    };
    let client = client(st, &id).await?.ok_or_else(invalid)?;
    match (&client.secret_sha256, secret) {
        (None, None) => Ok(client),
        (Some(want), Some(got)) => {
            if bool::from(sha256(got.as_bytes()).ct_eq(want)) {
                Ok(client)
            } else {
                Err(invalid())
            }
        }
        _ => Err(invalid()),
    }
}

async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let o = match oidc(&st) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    if form.values().any(|v| v.len() > 4 * MAX_PARAM) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_request", "a parameter is too long");
    }
    let client = match token_client(&st, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let f = |name: &str| form.get(name).map(String::as_str);
    if f("grant_type") != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    let grant = |d: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(code) = f("code").and_then(|c| URL_SAFE_NO_PAD.decode(c).ok()) else {
        return grant("no code");
    };
    // Sealed for the client it was issued to: another client's code does not open.
    let Ok(plain) = st.keyring.open(&code_context(&client.id), &Sealed(code)) else {
        return grant("the code is not valid for this client");
    };
    let Ok(code) = serde_json::from_slice::<Code>(&plain) else {
        return grant("the code is not valid for this client");
    };
    let now = unix_now();
    if let Err(why) = check_code(&code, now, f("redirect_uri"), f("code_verifier")) {
        return grant(why);
    }
    if !o.first_use(&code.jti, code.exp, now) {
        return grant("the code was already redeemed");
    }
    if let Err(e) = check_holder(&st, &code.uid, code.level).await {
        if e.status() == StatusCode::FORBIDDEN {
            return grant("the account is disabled or expired, or its level changed");
        }
        return e.into_response();
    }
    let iss = match issuer(&st, &headers, &uri) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let exp = now.saturating_add(o.token_lifetime);
    let mut claims = json!({
        "iss": iss, "sub": code.uid, "aud": client.id, "iat": now, "exp": exp,
        "auth_time": code.auth_time, "sid": code.sid, "level": code.level.as_u8(),
    });
    if let (Some(nonce), Some(m)) = (&code.nonce, claims.as_object_mut()) {
        m.insert("nonce".into(), json!(nonce));
    }
    let id_token = o.signer.sign_json(&claims);
    let access = Access { uid: code.uid.clone(), level: code.level, client_id: client.id.clone(), exp };
    let access = serde_json::to_vec(&access).ok().and_then(|a| st.keyring.seal(&access_context(), &a).ok());
    let (Ok(id_token), Some(access)) = (id_token, access) else {
        tracing::error!("OIDC: token signing or sealing failed");
        return token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "see the broker's log");
    };
    tracing::info!(uid = %code.uid, client = %client.id, "OIDC: tokens issued");
    no_store(
        Json(json!({
            "access_token": URL_SAFE_NO_PAD.encode(&access.0),
            "token_type": "Bearer",
            "expires_in": o.token_lifetime,
            "id_token": id_token,
            "scope": "openid",
        }))
        .into_response(),
    )
}

async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let refused = || {
        let mut r = (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_token" }))).into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        r
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| t.len() <= 4 * MAX_PARAM)
        .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim()).ok());
    let Some(token) = token else { return refused() };
    let Ok(plain) = st.keyring.open(&access_context(), &Sealed(token)) else { return refused() };
    let Ok(a) = serde_json::from_slice::<Access>(&plain) else { return refused() };
    if a.exp <= unix_now() || check_holder(&st, &a.uid, a.level).await.is_err() {
        return refused();
    }
    no_store(Json(json!({ "sub": a.uid, "level": a.level.as_u8() })).into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/authorize", get(authorize))
        .route("/oidc/token", post(token))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(exp: i64) -> Code {
        // The challenge of VERIFIER, computed with `openssl dgst -sha256 -binary | base64url`.
        Code {
            jti: "j".into(),
            redirect_uri: "https://app.example/cb".into(),
            challenge: "UpIQtgLVIHNX9Q8O2L0I12W5o--9nxUZ5wKaWgJCkDg".into(),
            nonce: None,
            uid: "alice".into(),
            level: Level::Normal,
            auth_time: 0,
            sid: "s".into(),
            exp,
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kr6t8vlbm2ibWOK2A3ZLtwUkhDs";
    const CB: Option<&str> = Some("https://app.example/cb");

    #[test]
    fn a_code_is_redeemed_only_in_time_with_its_redirect_uri_and_verifier() {
        assert_eq!(check_code(&code(100), 99, CB, Some(VERIFIER)), Ok(()));
        assert_eq!(check_code(&code(100), 100, CB, Some(VERIFIER)), Err("the code has expired"));
        let other = Some("https://app.example/cb2");
        assert_eq!(
            check_code(&code(100), 0, other, Some(VERIFIER)).unwrap_err(),
            "redirect_uri differs from the authorization request"
        );
        assert!(check_code(&code(100), 0, None, Some(VERIFIER)).is_err());
        for bad in [None, Some("short"), Some(&*"a".repeat(129))] {
            assert!(check_code(&code(100), 0, CB, bad).unwrap_err().contains("missing or not 43"));
        }
        let wrong = "eBjftJeZ4CVP-mJ0kr6t8vlbm2ibWOK2A3ZLtwUkhDs";
        assert_eq!(check_code(&code(100), 0, CB, Some(wrong)), Err("code_verifier does not match the code_challenge"));
    }

    #[test]
    fn a_code_is_redeemed_once_per_process_and_the_list_is_bounded() {
        let o = OidcState {
            signer: TicketSigner::new("oidc", Ed25519Key::from_seed([1; 32])).unwrap(),
            code_lifetime: 60,
            token_lifetime: 60,
            used: Mutex::new(HashMap::new()),
        };
        assert!(o.first_use("a", 100, 0));
        assert!(!o.first_use("a", 100, 50), "a replay");
        assert!(o.first_use("b", 100, 0));
        // Full: expired entries make room, live ones are never dropped.
        for i in 0..MAX_USED - 2 {
            assert!(o.first_use(&i.to_string(), 10, 0));
        }
        assert!(!o.first_use("c", 100, 5), "full of live codes: refused, never forgotten");
        assert!(o.first_use("c", 100, 50));
        assert!(!o.first_use("a", 100, 50));
    }
}
