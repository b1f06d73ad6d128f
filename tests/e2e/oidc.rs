//! The OpenID Connect provider of `dirbroker serve` (issue #17). The judge
//! is the `openidconnect` crate, a relying-party library nobody here wrote:
//! it discovers the provider, builds the authorization request (PKCE S256,
//! state, nonce), redeems the code and validates the EdDSA id_token against
//! the broker's JWKS. The browser is reqwest with a cookie jar signing in
//! through `/web/login`; the attacks are played with raw requests.

use std::collections::HashMap;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse as _,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, LOCATION};
use serde_json::Value;

use crate::web_session::{APP1_CB, APP2_CB, Web, dirbroker, ok};

/// The library's HTTP client: our reqwest, trusting the broker CA.
async fn send(c: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let r = c.execute(reqwest::Request::try_from(req)?).await?;
    let mut out = http_response(r.status().as_u16());
    *out.headers_mut() = r.headers().clone();
    *out.body_mut() = r.bytes().await?.to_vec();
    Ok(out)
}

fn http_response(status: u16) -> HttpResponse {
    let mut r = HttpResponse::new(Vec::new());
    *r.status_mut() = openidconnect::http::StatusCode::from_u16(status).unwrap();
    r
}

/// Where a 303 goes, and its query.
fn location(r: &reqwest::Response) -> (String, HashMap<String, String>) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.headers());
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    let base = to.split('?').next().unwrap().to_string();
    let query = to.split_once('?').map_or("", |(_, q)| q);
    (base, url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
}

struct Rp {
    client: CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
}

async fn rp(w: &Web, id: &str, secret: Option<&str>, cb: &str) -> Rp {
    let http = |req| send(w.plain(), req);
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(w.origin()).unwrap(), &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(meta, ClientId::new(id.into()), secret.map(|s| ClientSecret::new(s.into())))
            .set_redirect_uri(RedirectUrl::new(cb.into()).unwrap());
    Rp { client }
}

/// The library's authorization request: (URL, state, nonce, verifier).
fn auth_request(rp: &Rp) -> (String, CsrfToken, Nonce, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), state, nonce, verifier)
}

#[tokio::test]
async fn a_relying_party_library_signs_in_twice_with_one_password() {
    let w = Web::start().await;
    let app1 = rp(&w, "app1", Some(w.app1_secret), APP1_CB).await;
    let (url, state, nonce, verifier) = auth_request(&app1);
    assert!(url.contains("code_challenge_method=S256"), "{url}");

    // Not signed in: the broker sends the browser to its sign-in page,
    // which comes back to this very request.
    let (browser, _jar) = w.browser();
    let (to, q) = location(&browser.get(&url).send().await.unwrap());
    assert_eq!(to, "/signin");
    let next = &q["next"];
    assert!(next.starts_with("/oidc/authorize?") && url.ends_with(next.as_str()), "{next}");
    let r = w.web_login(&browser, &w.login_body("alice", "alice password").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (to, q) = location(&browser.get(format!("{}{next}", w.origin())).send().await.unwrap());
    assert_eq!(to, APP1_CB);
    assert_eq!(&q["state"], state.secret());
    let code = q["code"].clone();

    // The library redeems the code and validates the id_token (EdDSA, JWKS).
    let http = |req| send(w.plain(), req);
    let tokens = app1
        .client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    let verifier = app1.client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), "alice");
    assert_eq!(claims.issuer().as_str(), w.origin());
    assert_eq!(*id_token.signing_alg().unwrap(), openidconnect::core::CoreJwsSigningAlgorithm::EdDsa);
    // A wrong nonce: the library refuses the same token.
    let wrong = id_token.claims(&verifier, &Nonce::new("another nonce".into()));
    assert!(wrong.is_err(), "{wrong:?}");
    // The level claim, and a key apart from the ticket key.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwt = id_token.to_string();
    let payload: Value = serde_json::from_slice(&b64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["level"], 2);
    let header: Value = serde_json::from_slice(&b64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    let jwks = w.get_json("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], header["kid"].as_str().unwrap(), "the id_token key is the second key of the JWKS");

    // userinfo with the access token.
    let at = tokens.access_token().secret();
    let info = w.get_json("/oidc/userinfo", Some(at)).await;
    assert_eq!((info["sub"].as_str(), info["level"].as_u64()), (Some("alice"), Some(2)));
    let r = w.plain().get(format!("{}/oidc/userinfo", w.origin())).bearer_auth(format!("{at}x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The code again: refused (single use on this broker).
    let (_, _, _, v2) = auth_request(&app1);
    let again = app1
        .client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(v2)
        .request_async(&http)
        .await;
    assert!(again.is_err());

    // A second application, a public client: the same browser signs in
    // without typing the password again.
    let app2 = rp(&w, "app2", None, APP2_CB).await;
    let (url, state, nonce, verifier) = auth_request(&app2);
    let (to, q) = location(&browser.get(&url).send().await.unwrap());
    assert_eq!(to, APP2_CB);
    assert_eq!(&q["state"], state.secret());
    let tokens = app2
        .client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens.id_token().unwrap().claims(&app2.client.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), "alice");
    assert_eq!(claims.audiences()[0].as_str(), "app2");

    // Logout ends the browser's session: the next authorize asks to sign in.
    let r = browser
        .post(format!("{}/web/logout", w.origin()))
        .header("origin", w.origin())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (url, ..) = auth_request(&app2);
    assert_eq!(location(&browser.get(&url).send().await.unwrap()).0, "/signin");
}

/// An authorization request as an attacker shapes it.
fn authorize_url(w: &Web, params: &[(&str, &str)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{}/oidc/authorize?{q}", w.origin())
}

const CHALLENGE: &str = "UpIQtgLVIHNX9Q8O2L0I12W5o--9nxUZ5wKaWgJCkDg";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kr6t8vlbm2ibWOK2A3ZLtwUkhDs";

fn good<'a>(client: &'a str, cb: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", cb),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

fn with<'a>(mut p: Vec<(&'a str, &'a str)>, name: &'a str, value: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    p.retain(|(n, _)| *n != name);
    if let Some(v) = value {
        p.push((name, v));
    }
    p
}

async fn redeem(w: &Web, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut r = w.plain().post(format!("{}/oidc/token", w.origin())).form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn authorize_and_token_refuse_hostile_requests() {
    let w = Web::start().await;
    let (browser, _jar) = w.signed_in("alice", "alice password").await;
    let get = |url: String| {
        let b = browser.clone();
        async move { b.get(url).send().await.unwrap() }
    };

    // Unknown client, unregistered redirect_uri (even a prefix or a
    // different case of a registered one): an error page, never a redirect.
    for p in [
        with(good("app1", APP1_CB), "client_id", Some("nobody")),
        with(good("app1", APP1_CB), "redirect_uri", Some("https://evil.example/cb")),
        with(good("app1", APP1_CB), "redirect_uri", Some("https://app1.example/cb/../evil")),
        with(good("app1", APP1_CB), "redirect_uri", Some("https://APP1.example/cb")),
        with(good("app1", APP1_CB), "redirect_uri", Some(APP2_CB)),
        with(good("app1", APP1_CB), "redirect_uri", None),
    ] {
        let r = get(authorize_url(&w, &p)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get(LOCATION).is_none());
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = r.text().await.unwrap();
        assert!(!text.contains("evil"), "nothing reflected: {text}");
    }
    // Oversized parameters: a page.
    let long = "x".repeat(600);
    let r = get(authorize_url(&w, &with(good("app1", APP1_CB), "state", Some(&long)))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(LOCATION).is_none());

    // PKCE missing or plain, no openid scope, another response type: an
    // error redirect to the registered URI with the state, no code.
    for (p, error) in [
        (with(good("app1", APP1_CB), "code_challenge", None), "invalid_request"),
        (with(good("app1", APP1_CB), "code_challenge_method", None), "invalid_request"),
        (with(good("app1", APP1_CB), "code_challenge_method", Some("plain")), "invalid_request"),
        (with(good("app1", APP1_CB), "code_challenge", Some("short")), "invalid_request"),
        (with(good("app1", APP1_CB), "scope", Some("profile")), "invalid_scope"),
        (with(good("app1", APP1_CB), "response_type", Some("token")), "unsupported_response_type"),
    ] {
        let (to, q) = location(&get(authorize_url(&w, &p)).await);
        assert_eq!(to, APP1_CB);
        assert_eq!((q["error"].as_str(), q.get("state").map(String::as_str)), (error, Some("st")));
        assert!(!q.contains_key("code"));
    }

    let code_for = |client: &'static str, cb: &'static str| {
        let url = authorize_url(&w, &good(client, cb));
        async move { location(&get(url).await).1["code"].clone() }
    };
    let form = |code: &str, verifier: &str, cb: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), cb.into()),
            ("code_verifier".into(), verifier.into()),
        ]
    };
    let token = |f: Vec<(String, String)>, basic: Option<(&'static str, &'static str)>| {
        let w = &w;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            redeem(w, &f, basic).await
        }
    };
    let app1 = Some(("app1", w.app1_secret));

    // Client authentication: a wrong or missing secret.
    let code = code_for("app1", APP1_CB).await;
    let (s, e) = token(form(&code, VERIFIER, APP1_CB), Some(("app1", "wrong secret"))).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let mut post = form(&code, VERIFIER, APP1_CB);
    post.push(("client_id".into(), "app1".into()));
    let (s, e) = token(post.clone(), None).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // A wrong or missing verifier, another redirect_uri, another client.
    for (f, basic) in [
        (form(&code, &VERIFIER.replace('d', "e"), APP1_CB), app1),
        (form(&code, "", APP1_CB), app1),
        (form(&code, VERIFIER, "https://app1.example/cb2"), app1),
        (form(&format!("{code}A"), VERIFIER, APP1_CB), app1),
        (form(&"A".repeat(3000), VERIFIER, APP1_CB), app1),
    ] {
        let (s, e) = token(f, basic).await;
        assert!(s == StatusCode::BAD_REQUEST && e["error"].is_string(), "{s} {e}");
    }
    let mut as_app2 = form(&code, VERIFIER, APP1_CB);
    as_app2.push(("client_id".into(), "app2".into()));
    let (s, e) = token(as_app2, None).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // The real thing works after all of that (none of it used the code up)…
    let mut post = form(&code, VERIFIER, APP1_CB);
    post.extend([("client_id".into(), "app1".into()), ("client_secret".into(), w.app1_secret.into())]);
    let (s, t) = token(post.clone(), None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert!(t["id_token"].is_string() && t["token_type"] == "Bearer");
    use base64::Engine as _;
    let payload = t["id_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!((claims["nonce"].as_str(), claims["aud"].as_str()), (Some("n"), Some("app1")), "{claims}");
    // …once: the replay is refused.
    let (s, e) = token(post.clone(), None).await;
    assert_eq!((s, e["error_description"].as_str()), (StatusCode::BAD_REQUEST, Some("the code was already redeemed")));

    // A code redeemed at a replica (same keyring): accepted once there too;
    // the redeemed list is per process (docs/oidc.md).
    let replica = crate::web_session::Web::serve(&w.cfg, &w.t, "replica.log");
    let code = code_for("app2", APP2_CB).await;
    let mut f = form(&code, VERIFIER, APP2_CB);
    f.push(("client_id".into(), "app2".into()));
    let r = w.plain().post(replica.https_url("/oidc/token")).form(&f).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = w.plain().post(replica.https_url("/oidc/token")).form(&f).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A disabled user: the code issued before is refused, and the session
    // no longer signs in to applications.
    let code = code_for("app1", APP1_CB).await;
    ok(&dirbroker(&w.cfg, &["user", "disable", "alice"]));
    let (s, e) = token(form(&code, VERIFIER, APP1_CB), app1).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (to, _) = location(&get(authorize_url(&w, &good("app1", APP1_CB))).await);
    assert_eq!(to, "/signin");
    // Userinfo and tokens without a bearer token, or with garbage.
    let r = w.plain().get(format!("{}/oidc/userinfo", w.origin())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = w
        .plain()
        .get(format!("{}/oidc/userinfo", w.origin()))
        .header(AUTHORIZATION, "Bearer ###")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, e) = redeem(&w, &[("grant_type", "password")], app1).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn relying_parties_are_registered_listed_and_removed_by_the_admin() {
    let w = Web::start().await;
    let list: Value =
        serde_json::from_str(&ok(&dirbroker(&w.cfg, &["--output", "json", "oidc", "client", "list"]))).unwrap();
    assert_eq!(list[0]["id"], "app1");
    assert_eq!(list[0]["confidential"], true);
    assert_eq!(list[1]["id"], "app2");
    assert_eq!(list[1]["confidential"], false);
    assert_eq!(list[1]["redirect_uris"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(w.app1_secret), "the secret is shown once, at add");
    let text = ok(&dirbroker(&w.cfg, &["oidc", "client", "list"]));
    assert!(text.contains("app1") && text.contains("confidential") && !text.contains(w.app1_secret), "{text}");

    // The directory holds the secret's SHA-256, not the secret.
    let admin = w._bed.dir_as(dirbroker_testbed::Identity::Admin).await;
    let c: dirbroker::model::OidcClient = admin.load("app1").await.unwrap();
    assert_eq!(c.secret_sha256, Some(dirbroker_proto::sso::primitives::sha256(w.app1_secret.as_bytes())));

    // Malformed and hostile input: refused with a message, nothing written.
    let refused = |args: &[&str], needle: &str| {
        let o = dirbroker(&w.cfg, args);
        assert!(!o.status.success(), "{args:?}");
        let t = dirbroker_testbed::harness::text(&o);
        assert!(t.contains(needle), "{args:?}: want {needle:?} in {t}");
    };
    refused(&["oidc", "client", "add", "app1", "--redirect-uri", APP1_CB], "exists already");
    refused(&["oidc", "client", "add", "app3", "--redirect-uri", "http://app3.example/cb"], "must be https");
    refused(&["oidc", "client", "add", "app3", "--redirect-uri", "https://app3.example/cb#x"], "no fragment");
    refused(&["oidc", "client", "add", "app3", "--redirect-uri", "javascript:alert(1)"], "must be https");
    refused(&["oidc", "client", "add", "app3"], "--redirect-uri");
    for bad_id in ["bad id", "café", "a:b", " app3", ""] {
        refused(&["oidc", "client", "add", bad_id, "--redirect-uri", APP1_CB], "client id");
    }
    refused(&["oidc", "client", "remove", "nobody"], "nobody");
    let list: Value =
        serde_json::from_str(&ok(&dirbroker(&w.cfg, &["--output", "json", "oidc", "client", "list"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Removed: its sign-in requests get the error page at once.
    let (browser, _jar) = w.signed_in("alice", "alice password").await;
    let url = authorize_url(&w, &good("app2", APP2_CB));
    assert_eq!(location(&browser.get(&url).send().await.unwrap()).0, APP2_CB);
    ok(&dirbroker(&w.cfg, &["oidc", "client", "remove", "app2"]));
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(LOCATION).is_none());
    // Services and clients share ou=services without mixing.
    assert!(ok(&dirbroker(&w.cfg, &["service", "list"])).contains("no services"));
}
