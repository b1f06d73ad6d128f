//! The browser's side of the broker (issue #17, seed 004's web sign-in): the
//! sign-in, registration and account pages, their scripts (web/) and the one
//! route the registration page needs besides the SSO API.
//!
//! ```text
//!  GET  /signin?next=…  /register  /account    static HTML (nothing from the request is echoed)
//!  GET  /web/assets/NAME                        scripts and style, embedded at compile time
//!  page: /v1/sso/params, /v1/sso/register        as `dirbroker register` (web/sso.js)
//!  POST /web/register/share  ─► ANS /v1/share    the page's ShareToAns, relayed unchanged
//!  page: /v1/sso/params/UID, POST /web/login     as `dirbroker login`; the broker sets the session cookie
//! ```
//!
//! Every page and asset carries a Content-Security-Policy that allows only
//! this origin's scripts (no inline script, no eval; WebAssembly for
//! Argon2id), no framing (`frame-ancestors 'none'` and `X-Frame-Options:
//! DENY`), no referrer and no caching of the pages. The assets live in the
//! binary (no CDN): web/*.js, web/*.css and hash-wasm's Argon2id from
//! web/node_modules (broker/build.rs checks `npm ci` ran).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, extract::Path};
use dirbroker_proto::api::sso::ShareRequest;

use super::AppState;
use super::api::{ApiError, body};

/// What the pages may load and who may frame them.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

macro_rules! web_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/", $name))
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The assets by the name the pages use: (content type, bytes).
fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "argon2.js" => (JS, web_file!("node_modules/hash-wasm/dist/argon2.umd.min.js")),
        "keystroke.js" => (JS, web_file!("keystroke.js")),
        "sso.js" => (JS, web_file!("sso.js")),
        "capture.js" => (JS, web_file!("capture.js")),
        "ui.js" => (JS, web_file!("ui.js")),
        "signin.js" => (JS, web_file!("signin.js")),
        "register.js" => (JS, web_file!("register.js")),
        "account.js" => (JS, web_file!("account.js")),
        "style.css" => (CSS, web_file!("style.css")),
        _ => return None,
    })
}

/// The page routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(|| page(web_file!("signin.html"))))
        .route("/register", get(|| page(web_file!("register.html"))))
        .route("/account", get(|| page(web_file!("account.html"))))
        .route("/web/assets/{name}", get(assets))
        .route("/web/register/share", post(share))
}

/// `bytes` as `content_type` with the headers every page and asset carries.
fn hardened(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    r
}

async fn page(html: &'static [u8]) -> Response {
    hardened(HTML, html)
}

async fn assets(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (content_type, bytes) = asset(&name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such asset"))?;
    Ok(hardened(content_type, bytes))
}

/// Stage 2 ①(가) for the page: a page can only reach the origin that served
/// it, so the broker passes the browser's ShareToAns to ANS as it is, like
/// `dirbroker register` sends it. The broker learns nothing new: G2 reaches it
/// anyway in ANS's signed AnsToBroker, and the binder (an HMAC under K, which
/// only the client that opened E_c knows) keeps it from changing G2.
async fn share(
    State(st): State<AppState>,
    req: Result<Json<ShareRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let registrar = super::sso_register::registrar(&st)?;
    Ok(Json(registrar.relay_share(&req).await?).into_response())
}
