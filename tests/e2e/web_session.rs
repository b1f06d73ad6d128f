//! The browser session of `dirbroker serve` (issue #17): `/web/login`,
//! `/web/session`, `/web/logout`, driven as a browser would with reqwest's
//! cookie jar against the real binary and the project's slapd. The login
//! body is built with the proto client code, as `dirbroker login` does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dirbroker::model::Level;
use dirbroker_proto::api::sso::PasswordKdf;
use dirbroker_proto::sso::session::ClientCredential;
use dirbroker_testbed::harness::{Bed, Daemon, dirbroker_bin, scratch_dir, serve_section, start, text};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use crate::sso_tickets::register;

pub(crate) const CK: &str = "__Host-dirbroker-session";
/// The relying parties the fixture registers: app1 confidential, app2 public.
pub(crate) const APP1_CB: &str = "https://app1.example/cb";
pub(crate) const APP2_CB: &str = "https://app2.example/cb";

const LOGIN_REFUSED: &str = "login refused: wrong password or OTP code";

/// A broker with SSO on, users alice (level 2) and carol (level 1), and
/// two OpenID Connect relying parties.
pub(crate) struct Web {
    pub _bed: Bed,
    _tmp: tempfile::TempDir,
    pub t: PathBuf,
    pub cfg: PathBuf,
    pub broker: Daemon,
    /// app1's client secret, as `dirbroker oidc client add` showed it.
    pub app1_secret: &'static str,
}

pub(crate) fn dirbroker(cfg: &Path, args: &[&str]) -> Output {
    Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", cfg).output().unwrap()
}

pub(crate) fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

impl Web {
    pub async fn start() -> Web {
        let bed = start().await;
        let tmp = scratch_dir();
        let t = tmp.path().to_path_buf();
        let cfg = bed.dir().join("dirbroker.toml");
        let p = |name: &str| t.join(name).to_str().unwrap().to_string();
        ok(&dirbroker(&cfg, &["ca", "init"]));
        ok(&dirbroker(&cfg, &["ca", "issue", "broker", "broker-1", "--ip", "127.0.0.1", "--out", &p("broker")]));
        let toml = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{toml}{}", serve_section(&t.join("broker"), ""))).unwrap();
        ok(&dirbroker(&cfg, &["sso", "init"]));
        // The relying parties, as the admin registers them.
        let app1 =
            ok(&dirbroker(&cfg, &["--output", "json", "oidc", "client", "add", "app1", "--redirect-uri", APP1_CB]));
        let app1: Value = serde_json::from_str(&app1).unwrap();
        let app1_secret: &'static str = Box::leak(app1["client_secret"].as_str().unwrap().to_string().into_boxed_str());
        let other = "https://app2.example/other";
        ok(&dirbroker(
            &cfg,
            &["oidc", "client", "add", "app2", "--public", "--redirect-uri", APP2_CB, "--redirect-uri", other],
        ));
        register(&bed, "alice", "alice password", Level::Normal, true).await;
        register(&bed, "carol", "carol password", Level::Temporary, true).await;
        let broker = Web::serve(&cfg, &t, "serve.log");
        Web { _bed: bed, _tmp: tmp, t, cfg, broker, app1_secret }
    }

    /// One more `dirbroker serve` on the same configuration (a replica).
    pub fn serve(cfg: &Path, t: &Path, log: &str) -> Daemon {
        Daemon::start(Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", cfg), t.join(log))
    }

    pub fn origin(&self) -> String {
        format!("https://{}", self.broker.addr)
    }

    fn client(&self, jar: Option<Arc<reqwest::cookie::Jar>>) -> reqwest::Client {
        use rustls_pki_types::pem::PemObject;
        dirbroker::install_crypto_provider();
        let ca = rustls_pki_types::CertificateDer::from_pem_file(self.t.join("broker/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let b = reqwest::Client::builder().use_preconfigured_tls(tls).redirect(reqwest::redirect::Policy::none());
        match jar {
            Some(j) => b.cookie_provider(j).build().unwrap(),
            None => b.build().unwrap(),
        }
    }

    /// A browser: an HTTPS client with a cookie jar that follows no redirect
    /// by itself (the tests look at each one).
    pub fn browser(&self) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        (self.client(Some(jar.clone())), jar)
    }

    /// A client without cookies (an application's back end, an attacker).
    pub fn plain(&self) -> reqwest::Client {
        self.client(None)
    }

    /// The body `/v1/sso/login` and `/web/login` take, made as `dirbroker
    /// login` makes it: the published KDF record, pw, the Schnorr proof.
    pub async fn login_body(&self, uid: &str, password: &str) -> Value {
        let params = self.get_json(&format!("/v1/sso/params/{uid}"), None).await;
        let kdf: PasswordKdf = serde_json::from_value(params["kdf"].clone()).unwrap();
        let cred = ClientCredential::derive(uid, password.as_bytes(), &kdf.salt.0, &kdf.params).unwrap();
        let now = dirbroker::clock::now().unix_timestamp();
        let issuer = params["issuer"].as_str().unwrap();
        let req = cred.login_request(issuer, now, &mut dirbroker::clock::rng()).unwrap();
        // The body of /v1/sso/login: the LoginRequest's fields (+ "otp").
        serde_json::to_value(req).unwrap()
    }

    /// GET `path` on the broker without cookies (with a bearer token): the JSON answer.
    pub async fn get_json(&self, path: &str, bearer: Option<&str>) -> Value {
        let mut r = self.plain().get(format!("{}{path}", self.origin()));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap().json().await.unwrap()
    }

    /// POSTs `body` to `/web/login` as the broker's own page does.
    pub async fn web_login(&self, c: &reqwest::Client, body: &Value) -> reqwest::Response {
        c.post(format!("{}/web/login", self.origin())).header(ORIGIN, self.origin()).json(body).send().await.unwrap()
    }

    /// Signs `uid` in through `/web/login` in a new browser.
    pub async fn signed_in(&self, uid: &str, password: &str) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let (c, jar) = self.browser();
        let r = self.web_login(&c, &self.login_body(uid, password).await).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        (c, jar)
    }

    pub async fn session(&self, c: &reqwest::Client) -> (StatusCode, Value) {
        let r = c.get(format!("{}/web/session", self.origin())).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// `/web/session` with exactly this cookie value.
    pub async fn session_with(&self, value: &str) -> StatusCode {
        let r = self
            .plain()
            .get(format!("{}/web/session", self.origin()))
            .header(COOKIE, format!("{CK}={value}"))
            .send()
            .await
            .unwrap();
        r.status()
    }
}

/// The session cookie's value in a response (and the whole header).
pub(crate) fn set_cookie(r: &reqwest::Response) -> Option<(String, String)> {
    let h = r.headers().get_all(SET_COOKIE).iter().find(|h| h.to_str().unwrap().starts_with(CK))?;
    let h = h.to_str().unwrap().to_string();
    let value = h.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    Some((value, h))
}

/// The cookie value the jar holds for the broker.
pub(crate) fn jar_value(w: &Web, jar: &reqwest::cookie::Jar) -> Option<String> {
    use reqwest::cookie::CookieStore as _;
    let url = w.origin().parse().unwrap();
    let all = jar.cookies(&url)?;
    all.to_str().unwrap().split("; ").find_map(|c| c.strip_prefix(&format!("{CK}=")).map(str::to_string))
}

#[tokio::test]
async fn web_login_sets_a_session_cookie_and_logout_ends_it() {
    let w = Web::start().await;
    let (c, jar) = w.browser();
    assert_eq!(w.session(&c).await.0, StatusCode::UNAUTHORIZED);

    let r = w.web_login(&c, &w.login_body("alice", "alice password").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (value, header) = set_cookie(&r).unwrap();
    assert_eq!(header, format!("{CK}={value}; Path=/; Secure; HttpOnly; SameSite=Lax"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["uid"], "alice");
    assert_eq!(body["level"], 2);
    let now = dirbroker::clock::now().unix_timestamp();
    let expires = body["expires"].as_i64().unwrap();
    assert!(expires > now && expires <= now + 8 * 3600 + 5, "{body}");
    // The cookie says nothing readable: no uid in it.
    assert!(!value.contains("alice"));
    assert_eq!(jar_value(&w, &jar).as_deref(), Some(value.as_str()));

    let (status, s) = w.session(&c).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (s["uid"].as_str(), s["level"].as_u64(), s["expires"].as_i64()),
        (Some("alice"), Some(2), Some(expires))
    );

    // A replica with the same keyring accepts the cookie (stateless brokers).
    let replica = Web::serve(&w.cfg, &w.t, "replica.log");
    let r =
        w.plain().get(replica.https_url("/web/session")).header(COOKIE, format!("{CK}={value}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Logout from another origin is refused and ends nothing.
    let r = c
        .post(format!("{}/web/logout", w.origin()))
        .header(ORIGIN, "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.session(&c).await.0, StatusCode::OK);

    let r =
        c.post(format!("{}/web/logout", w.origin())).header(ORIGIN, w.origin()).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (cleared, header) = set_cookie(&r).unwrap();
    assert_eq!(cleared, "");
    assert!(header.contains("Max-Age=0") && header.contains("Secure") && header.contains("HttpOnly"), "{header}");
    assert_eq!(w.session(&c).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(jar_value(&w, &jar), None);
    // The old cookie, kept by whoever copied it, is ended on this broker.
    assert_eq!(w.session_with(&value).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_csrf_forged_cookies_fixation_and_disabled_users_are_refused() {
    let w = Web::start().await;
    let url = format!("{}/web/login", w.origin());
    let body = w.login_body("alice", "alice password").await;

    // Login CSRF: another origin, no origin at all, a cross-site fetch, a
    // form's content type. Each is refused before the proof is looked at:
    // the very same body then signs in from the page.
    let c = w.plain();
    let tries = [
        c.post(&url).header(ORIGIN, "https://evil.example").json(&body),
        c.post(&url).header(ORIGIN, "null").json(&body),
        c.post(&url).header(ORIGIN, format!("http://{}", w.broker.addr)).json(&body),
        c.post(&url).json(&body),
        c.post(&url).header("sec-fetch-site", "cross-site").json(&body),
        c.post(&url).header(ORIGIN, w.origin()).header(CONTENT_TYPE, "text/plain").body(body.to_string()),
        c.post(&url)
            .header(ORIGIN, w.origin())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_string()),
    ];
    for t in tries {
        let r = t.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&r).is_none());
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().starts_with("refused: "), "{e}");
    }
    // Without Origin, a same-origin fetch (Sec-Fetch-Site) is admitted.
    let r = c.post(&url).header("sec-fetch-site", "same-origin").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (alice_cookie, _) = set_cookie(&r).unwrap();
    // The same body again is a replay, as at /v1/sso/login.
    let r = w.web_login(&c, &body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Anonymous sign-in is off on this broker, as at /v1/sso/login.
    let anon = ClientCredential::anonymous(&mut dirbroker::clock::rng()).unwrap();
    let now = dirbroker::clock::now().unix_timestamp();
    let anon =
        serde_json::to_value(anon.login_request("dirbroker", now, &mut dirbroker::clock::rng()).unwrap()).unwrap();
    let r = w.web_login(&c, &anon).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r).is_none());
    assert!(r.text().await.unwrap().contains("anonymous login is off"));

    // Malformed bodies: clear 4xx, no cookie.
    for bad in [json!({}), json!({"proof": 5}), json!([1, 2])] {
        let r = w.web_login(&c, &bad).await;
        assert!(r.status().is_client_error() && set_cookie(&r).is_none(), "{}", r.status());
    }

    // A wrong password: the one answer of /v1/sso/login, no cookie.
    let r = w.web_login(&c, &w.login_body("alice", "not the password").await).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r).is_none());
    assert!(r.text().await.unwrap().contains(LOGIN_REFUSED));

    // Forged and tampered cookies.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = b64.decode(&alice_cookie).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let tampered = b64.encode(&raw);
    let mut middle = b64.decode(&alice_cookie).unwrap();
    middle[30] ^= 0x80;
    for forged in [
        tampered,
        b64.encode(&middle),
        b64.encode(b"{\"uid\":\"alice\",\"level\":4,\"auth_time\":0,\"expires\":99999999999,\"sid\":\"x\"}"),
        b64.encode([0u8; 80]),
        "not base64 at all!".to_string(),
        "A".repeat(5000),
        String::new(),
    ] {
        assert_eq!(w.session_with(&forged).await, StatusCode::UNAUTHORIZED, "{forged:.40}");
    }
    assert_eq!(w.session_with(&alice_cookie).await, StatusCode::OK);
    assert!(w.broker.log().contains("a session cookie that does not open"));

    // Session fixation: a browser that holds carol's cookie (or one an
    // attacker planted) and signs in as alice gets a new cookie, and the
    // planted one stays carol's.
    let (carol, carol_jar) = w.signed_in("carol", "carol password").await;
    let planted = jar_value(&w, &carol_jar).unwrap();
    let r = w.web_login(&carol, &w.login_body("alice", "alice password").await).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (fresh, _) = set_cookie(&r).unwrap();
    assert_ne!(fresh, planted);
    assert_eq!(jar_value(&w, &carol_jar).as_deref(), Some(fresh.as_str()));
    assert_eq!(w.session(&carol).await.1["uid"], "alice");
    let r = w.plain().get(format!("{}/web/session", w.origin())).header(COOKIE, format!("{CK}={planted}"));
    assert_eq!(r.send().await.unwrap().json::<Value>().await.unwrap()["uid"], "carol");

    // A disabled user: refused at login with the wrong password's answer,
    // and their open session no longer counts; enabled again, it does.
    let (carol2, _) = w.signed_in("carol", "carol password").await;
    ok(&dirbroker(&w.cfg, &["user", "disable", "carol"]));
    let r = w.web_login(&w.plain(), &w.login_body("carol", "carol password").await).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r).is_none());
    assert!(r.text().await.unwrap().contains(LOGIN_REFUSED));
    assert_eq!(w.session(&carol2).await.0, StatusCode::UNAUTHORIZED);
    ok(&dirbroker(&w.cfg, &["user", "enable", "carol"]));
    assert_eq!(w.session(&carol2).await.0, StatusCode::OK);
}
