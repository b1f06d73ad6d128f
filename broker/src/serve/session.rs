//! The browser session of `dirbroker serve` (issue #17): the web sign-in
//! runs the SSO login's checks ([`super::sso_tickets::authenticate`], the
//! same function as `/v1/sso/login`) and answers with a session cookie
//! instead of a TGT. The OpenID Connect provider (`oidc.rs`) signs users in
//! to applications on the strength of that cookie.
//!
//! ```text
//! POST /web/login    {proof, p_anon?, otp?} (as /v1/sso/login)  same-origin + JSON only
//!                    → 200 {uid, level, expires}, Set-Cookie: __Host-dirbroker-session=…
//! GET  /web/session  → 200 {uid, level, expires} | 401
//! POST /web/logout   same-origin + JSON only → 204, the cookie cleared, its sid ended here
//! ```
//!
//! The cookie is the session itself, sealed with the keyring (AES-256-GCM,
//! its own seal context), so every broker with the keyring accepts it and
//! none stores it. A cookie is always minted anew at login: one presented
//! with the login is never looked at (no session fixation). What is per
//! process: the list of sessions ended by `/web/logout` (docs/oidc.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dirbroker_proto::sso::level::Level;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::api::{ApiError, body};
use super::sso_login::source_of;
use super::sso_tickets::{Authenticated, LoginBody, authenticate, check_holder, no_store, unix_now};
use crate::config::Config;
use crate::model::Sealed;
use crate::seal::Context;

/// The cookie's name: `__Host-` makes browsers keep it to this very origin
/// (Secure, Path=/, no Domain), so a sibling host cannot plant one.
pub const COOKIE: &str = "__Host-dirbroker-session";
/// A cookie value longer than this is not opened.
const MAX_COOKIE_LEN: usize = 1024;
/// Sessions ended by logout that one process remembers.
const MAX_ENDED: usize = 100_000;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    pub uid: String,
    pub level: Level,
    /// When the user proved the password (unix seconds), OIDC's `auth_time`.
    pub auth_time: i64,
    pub expires: i64,
    /// Names this session (logout ends it; OIDC's `sid`).
    pub sid: String,
}

/// What the session routes share.
#[derive(Debug)]
pub struct WebState {
    public_origin: Option<String>,
    lifetime: i64,
    /// sid → expiry of sessions ended by `/web/logout` on this process.
    ended: Mutex<HashMap<String, i64>>,
}

impl WebState {
    pub fn from_config(config: &Config) -> Result<WebState, String> {
        let public_origin = match &config.serve.public_url {
            None => None,
            Some(u) => Some(origin_of(u).ok_or_else(|| {
                format!("[serve] public_url {u:?} must be an https:// origin (scheme, host, optional port; no path)")
            })?),
        };
        let lifetime = i64::try_from(config.sso.web_session_lifetime_s).unwrap_or(i64::MAX).clamp(60, 30 * 86_400);
        Ok(WebState { public_origin, lifetime, ended: Mutex::new(HashMap::new()) })
    }

    /// The broker's origin for this request: `[serve] public_url`, or
    /// `https://` and the Host (the `:authority` of HTTP/2).
    pub fn origin(&self, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        if let Some(o) = &self.public_origin {
            return Some(o.clone());
        }
        let host = match headers.get(header::HOST) {
            Some(h) => h.to_str().ok()?.to_owned(),
            None => uri.authority()?.as_str().to_owned(),
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            return None;
        }
        Some(format!("https://{}", host.to_ascii_lowercase()))
    }

    fn is_ended(&self, sid: &str) -> bool {
        self.ended.lock().map_or(true, |m| m.contains_key(sid))
    }

    fn end(&self, s: &WebSession, now: i64) {
        if let Ok(mut m) = self.ended.lock() {
            if m.len() >= MAX_ENDED {
                m.retain(|_, &mut expires| expires > now);
            }
            if m.len() < MAX_ENDED {
                m.insert(s.sid.clone(), s.expires);
            }
        }
    }
}

/// `https://host[:port]` of a configured URL, lower-cased, without a
/// trailing slash; `None` for anything else.
fn origin_of(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    if url.scheme() != "https" || url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn seal_context() -> Context {
    Context::new("web-session", "v1")
}

/// The session a request's cookie carries: sealed by a broker with our
/// keyring, not expired, not logged out here. The account itself is not
/// read (see [`checked`]).
pub fn current(st: &AppState, headers: &HeaderMap) -> Option<WebSession> {
    current_at(st, headers, unix_now())
}

fn current_at(st: &AppState, headers: &HeaderMap, now: i64) -> Option<WebSession> {
    cookie_values(headers).find_map(|v| {
        let s = open(st, v)?;
        (s.expires > now && !st.web.is_ended(&s.sid)).then_some(s)
    })
}

/// The session of [`current`] whose account is still usable at the level
/// it signed in with (re-read from the directory).
pub(crate) async fn checked(st: &AppState, headers: &HeaderMap) -> Result<Option<WebSession>, ApiError> {
    let Some(s) = current(st, headers) else { return Ok(None) };
    match check_holder(st, &s.uid, s.level).await {
        // A pseudonym's session ends when the broker stops allowing anonymous login.
        Ok(true) if !st.sso.as_ref().is_some_and(|x| x.allow_anonymous) => Ok(None),
        Ok(_) => Ok(Some(s)),
        Err(e) if e.status() == StatusCode::FORBIDDEN => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every value of our cookie in the request's Cookie headers.
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn open(st: &AppState, value: &str) -> Option<WebSession> {
    if value.len() > MAX_COOKIE_LEN {
        return None;
    }
    let sealed = Sealed(URL_SAFE_NO_PAD.decode(value).ok()?);
    match st.keyring.open(&seal_context(), &sealed) {
        Ok(plain) => serde_json::from_slice(&plain).ok(),
        Err(e) => {
            tracing::warn!(security = true, "a session cookie that does not open: {e}");
            None
        }
    }
}

fn mint(st: &AppState, a: &Authenticated) -> Result<(WebSession, String), ApiError> {
    let mut sid = [0u8; 16];
    let failed = |what: &str| {
        tracing::error!("web session: {what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed (see the broker's log)")
    };
    crate::clock::fill_random(&mut sid).map_err(|_| failed("no randomness"))?;
    let s = WebSession {
        uid: a.entry.id_c.clone(),
        level: a.entry.level,
        auth_time: a.now,
        expires: a.now.saturating_add(st.web.lifetime),
        sid: URL_SAFE_NO_PAD.encode(sid),
    };
    let plain = serde_json::to_vec(&s).map_err(|_| failed("encoding"))?;
    let sealed = st.keyring.seal(&seal_context(), &plain).map_err(|e| failed(&e.to_string()))?;
    Ok((s, URL_SAFE_NO_PAD.encode(&sealed.0)))
}

/// Login CSRF: a state-changing request must come from our own pages. The
/// Origin must be ours (or, without one, `Sec-Fetch-Site: same-origin`),
/// and the body JSON, which a cross-site form cannot send.
pub(crate) fn same_origin_json(st: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    let refuse = |why: &str| {
        tracing::warn!(security = true, "web request refused: {why}");
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("refused: {why}")))
    };
    let own = st.web.origin(headers, uri);
    let origin_ok = match headers.get(header::ORIGIN) {
        Some(o) => own.is_some() && o.to_str().ok() == own.as_deref(),
        None => headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin"),
    };
    if !origin_ok {
        return refuse("the request does not come from this broker's own pages (Origin)");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return refuse("the body must be application/json");
    }
    Ok(())
}

fn set_cookie(value: &str, max_age_zero: bool) -> Result<HeaderValue, ApiError> {
    let tail = if max_age_zero { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax{tail}"))
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed (cookie)"))
}

fn described(s: &WebSession) -> serde_json::Value {
    json!({ "uid": s.uid, "level": s.level.as_u8(), "expires": s.expires })
}

async fn web_login(
    State(st): State<AppState>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
    req: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    same_origin_json(&st, &headers, &uri)?;
    let req = body(req)?;
    let source = source_of(source.map(|Extension(ConnectInfo(a))| a));
    let a = authenticate(&st, source, req).await?;
    let (session, value) = mint(&st, &a)?;
    tracing::info!(uid = %session.uid, level = session.level.as_u8(), "web sign-in");
    let mut r = no_store(Json(described(&session)).into_response());
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&value, false)?);
    Ok(r)
}

async fn web_session(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    match checked(&st, &headers).await? {
        Some(s) => Ok(no_store(Json(described(&s)).into_response())),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "not signed in")),
    }
}

async fn web_logout(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    same_origin_json(&st, &headers, &uri)?;
    if let Some(s) = current(&st, &headers) {
        st.web.end(&s, unix_now());
        tracing::info!(uid = %s.uid, "web sign-out");
    }
    let mut r = no_store(StatusCode::NO_CONTENT.into_response());
    r.headers_mut().insert(header::SET_COOKIE, set_cookie("", true)?);
    Ok(r)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/web/login", post(web_login))
        .route("/web/session", get(web_session))
        .route("/web/logout", post(web_logout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_origins_are_a_public_url() {
        assert_eq!(origin_of("https://SSO.example.org").as_deref(), Some("https://sso.example.org"));
        assert_eq!(origin_of("https://sso.example.org:8443/").as_deref(), Some("https://sso.example.org:8443"));
        assert_eq!(origin_of("https://sso.example.org:443").as_deref(), Some("https://sso.example.org"));
        for bad in ["http://sso.example.org", "https://sso.example.org/app", "https://u@sso.example.org", "sso"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_value_of_the_cookie_is_found() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; __Host-dirbroker-session=xyz;b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("__Host-dirbroker-session=second"));
        h.append(header::COOKIE, HeaderValue::from_static("dirbroker-session=not-ours"));
        assert_eq!(cookie_values(&h).collect::<Vec<_>>(), ["xyz", "second"]);
    }
}
