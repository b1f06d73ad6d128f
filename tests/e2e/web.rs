//! The sign-in pages (issue #17, seed 004's web sign-in) in Debian's headless
//! Chromium, one browser for this file, on the SSO site of sso_tickets.rs
//! (slapd, `dirbroker serve`, AMS, ANS). Keys are typed with DevTools events
//! whose timestamps carry the holds, so the page's `event.timeStamp` sees
//! exactly the rhythm a test chose; proto's classifier judges which rhythms
//! are which, the CLI (`dirbroker register` / `login --keystroke-file`) is the
//! other client, and the browser itself judges framing and injected script.

use std::path::{Path, PathBuf};
use std::process::Command;

use dirbroker_proto::keystroke::{KeystrokeError, Rhythm, classify};
use dirbroker_testbed::harness::chromium::{Browser, Page};
use dirbroker_testbed::harness::{dirbroker_bin, run_with_stdin, text};
use serde_json::json;

use crate::sso_tickets::{Site, dirbroker, oathtool, private, site};

const PASSWORD: &str = "tango7river";
/// Keys 2, 6 and 9 long.
const RHYTHM: [[u32; 11]; 4] = [
    [90, 260, 85, 95, 80, 270, 88, 92, 250, 84, 91],
    [70, 300, 95, 80, 100, 240, 76, 99, 280, 90, 85],
    [110, 240, 70, 105, 90, 290, 95, 70, 260, 100, 75],
    [85, 310, 80, 90, 95, 255, 100, 85, 240, 95, 80],
];
/// The same characters, other keys long (1, 7, 10).
const OTHER: [u32; 11] = [260, 90, 85, 95, 80, 88, 270, 92, 84, 250, 91];
/// Long and short only 80 ms apart: the paper's 1-2-3.
const AMBIGUOUS: [u32; 11] = [60, 180, 100, 100, 100, 180, 100, 100, 180, 100, 100];
const EVEN: [[u32; 11]; 2] =
    [[100, 120, 110, 130, 105, 115, 125, 100, 110, 120, 105], [140, 150, 160, 145, 170, 150, 155, 140, 165, 150, 145]];

fn spki_pin(cert: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform der | \
             openssl dgst -sha256 -binary | base64"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The browser trusts exactly the broker's key (its certificate is issued by the test CA).
async fn browser(s: &Site) -> Browser {
    let pin = spki_pin(&s.p("broker/cert.pem"));
    Browser::launch(&[&format!("--ignore-certificate-errors-spki-list={pin}")]).await
}

fn invite(s: &Site, uid: &str) -> String {
    let out = s.t.join(format!("{uid}.invite"));
    let o = dirbroker(&s.cfg, &["user", "invite", uid, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read_to_string(out).unwrap().trim().to_string()
}

async fn set(page: &Page<'_>, id: &str, value: &str) {
    page.eval(&format!("document.getElementById({}).value = {}", json!(id), json!(value))).await;
}

/// Waits for the page to settle: its outcome (`ok`, `refused`, `retype`,
/// `ambiguous`, `error`) or `account` once it moved to /account.
async fn outcome(page: &Page<'_>) -> String {
    let v = page
        .wait_for(
            "location.pathname === '/account' ? 'account' : \
             (['ok','refused','retype','ambiguous','error'].includes(document.body.dataset.state) && \
              document.body.dataset.state)",
        )
        .await;
    v.as_str().unwrap().to_string()
}

async fn status(page: &Page<'_>) -> String {
    page.eval("document.getElementById('status')?.textContent ?? ('no status on ' + location.href)")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn register_in_browser(page: &Page<'_>, s: &Site, uid: &str, code: &str, typings: [&[u32]; 3]) -> String {
    page.goto(&format!("{}/register", s.url())).await;
    set(page, "uid", uid).await;
    set(page, "invite", code).await;
    for (field, holds) in ["pw1", "pw2", "pw3"].into_iter().zip(typings) {
        page.focus(field).await;
        page.type_with_holds(PASSWORD, holds).await;
    }
    page.press("Enter", "Enter", 13).await;
    outcome(page).await
}

async fn sign_in(page: &Page<'_>, s: &Site, query: &str, uid: &str, holds: &[u32], otp: &str) -> String {
    page.goto(&format!("{}/signin{query}", s.url())).await;
    set(page, "uid", uid).await;
    set(page, "otp", otp).await;
    page.focus("pw").await;
    page.type_with_holds(PASSWORD, holds).await;
    page.press("Enter", "Enter", 13).await;
    outcome(page).await
}

fn cli_login(s: &Site, uid: &str, holds: &[u32], otp: Option<&str>) -> std::process::Output {
    let pw = s.t.join(format!("{uid}.web.pw"));
    let keys = s.t.join(format!("{uid}.keys.json"));
    private(&pw, PASSWORD);
    std::fs::write(&keys, serde_json::to_string(holds).unwrap()).unwrap();
    let mut args = vec!["login", uid, "--broker"];
    let url = s.url();
    let ca = s.p("broker/ca.pem");
    args.extend([url.as_str(), "--ca", &ca, "--password-file", pw.to_str().unwrap()]);
    args.extend(["--keystroke-file", keys.to_str().unwrap()]);
    let otp_file = s.t.join("web.otp");
    if let Some(code) = otp {
        private(&otp_file, code);
        args.extend(["--otp-file", otp_file.to_str().unwrap()]);
    }
    s.cli(&format!("{uid}.ccache"), &args)
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[tokio::test(flavor = "multi_thread")]
async fn web_sign_in_with_keystroke_hardening() {
    // proto judges the rhythms the test types.
    for r in RHYTHM.iter().chain([&OTHER]) {
        assert_eq!(classify(r).unwrap().rhythm(), Rhythm::Pattern);
    }
    let bits = |d: &[u32]| classify(d).unwrap().bits().iter().collect::<Vec<_>>();
    assert!(RHYTHM.iter().all(|r| bits(r) == bits(&RHYTHM[0])));
    assert_ne!(bits(&OTHER), bits(&RHYTHM[0]));
    assert!(matches!(classify(&AMBIGUOUS), Err(KeystrokeError::Ambiguous { .. })));
    assert!(EVEN.iter().all(|e| classify(e).unwrap().rhythm() == Rhythm::Even));

    let (_bed, s) = site().await;
    let b = browser(&s).await;
    let page = b.page().await;

    // The sign-in page, for docs/web.md.
    page.goto(&format!("{}/signin", s.url())).await;
    page.screenshot(&docs().join("web-signin.png")).await;

    // The shared vectors, in the browser (web/test/check.js against web/test/vectors.json).
    let check = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/test/check.js")).unwrap();
    let vectors =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/test/vectors.json")).unwrap();
    page.eval(&check).await;
    let r = page.eval(&format!("DirbrokerCheck.checkVectors({vectors})")).await;
    assert_eq!(r["failures"], json!([]), "{r}");
    assert_eq!(r["counts"]["classify"], json!(215), "{r}");

    // Registration in the browser: an ambiguous rhythm is asked again, two
    // typings that disagree too, then three alike register.
    let code = invite(&s, "erin");
    let state = register_in_browser(&page, &s, "erin", &code, [&RHYTHM[0], &AMBIGUOUS, &RHYTHM[1]]).await;
    assert_eq!(state, "ambiguous", "{}", status(&page).await);
    assert!(status(&page).await.contains("too close"), "{}", status(&page).await);
    assert_eq!(page.eval("document.getElementById('pw1').value").await, json!(""));
    let state = register_in_browser(&page, &s, "erin", &code, [&RHYTHM[0], &OTHER, &RHYTHM[1]]).await;
    assert_eq!(state, "retype", "{}", status(&page).await);
    assert!(status(&page).await.contains("did not hold the same keys long"), "{}", status(&page).await);
    let state = register_in_browser(&page, &s, "erin", &code, [&RHYTHM[0], &RHYTHM[1], &RHYTHM[2]]).await;
    assert_eq!(state, "ok", "{}", status(&page).await);
    assert!(status(&page).await.starts_with("Registered erin at level"), "{}", status(&page).await);

    // Registered in the browser → the CLI logs in with the same rhythm, not with another.
    let o = cli_login(&s, "erin", &RHYTHM[3], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli_login(&s, "erin", &OTHER, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Sign-in in the browser: the enrolled rhythm (new jitter) gets in; the
    // right characters with another rhythm are refused; an ambiguous rhythm is
    // asked again, and the retyped password gets in.
    assert_eq!(sign_in(&page, &s, "", "erin", &OTHER, "").await, "refused");
    assert!(status(&page).await.contains("login refused"), "{}", status(&page).await);
    assert_eq!(sign_in(&page, &s, "", "erin", &AMBIGUOUS, "").await, "ambiguous");
    assert_eq!(page.eval("document.getElementById('pw').value").await, json!(""));
    assert_eq!(page.eval("document.activeElement.id").await, json!("pw"));
    page.type_with_holds(PASSWORD, &RHYTHM[3]).await;
    page.press("Enter", "Enter", 13).await;
    assert_eq!(outcome(&page).await, "account", "{}", status(&page).await);
    // The session cookie: /account says who is signed in; signing out (keyboard only) ends it.
    assert_eq!(page.wait_for("document.body.dataset.state").await, json!("signed-in"));
    let who = page.eval("document.getElementById('who').textContent").await;
    assert!(who.as_str().unwrap().starts_with("Signed in as erin (level "), "{who}");
    page.focus("signout").await;
    page.press("Enter", "Enter", 13).await;
    page.wait_for("document.body.dataset.state === 'signed-out'").await;
    assert_eq!(page.eval("document.getElementById('status').textContent").await, json!("Signed out."));

    // Registered with the CLI (an even typist, with an OTP token) → the browser.
    let o = dirbroker(&s.cfg, &["user", "add", "frank", "--name", "frank"]);
    assert!(o.status.success(), "{}", text(&o));
    let code = s.t.join("frank.invite");
    dirbroker(&s.cfg, &["user", "invite", "frank", "--out", code.to_str().unwrap()]);
    let keys = s.t.join("frank.even.json");
    std::fs::write(&keys, serde_json::to_string(&EVEN[0]).unwrap()).unwrap();
    let mut cmd = Command::new(dirbroker_bin());
    cmd.args(["register", "frank", "--broker", &s.url(), "--ca", &s.p("broker/ca.pem")])
        .args(["--invite-file", code.to_str().unwrap(), "--keystroke-file", keys.to_str().unwrap()])
        .env("DIRBROKER_CONFIG", "/nonexistent");
    let o = run_with_stdin(&mut cmd, &format!("{PASSWORD}\n"));
    assert!(o.status.success(), "{}", text(&o));
    let o = dirbroker(&s.cfg, &["otp", "import", "frank", "--type", "hotp", "--secret-file", &s.p("alice.b32")]);
    assert!(o.status.success(), "{}", text(&o));
    // Even typing at another tempo is the same hardened password; the OTP code is the second factor.
    assert_eq!(sign_in(&page, &s, "", "frank", &EVEN[1], "").await, "refused");
    assert_eq!(sign_in(&page, &s, "", "frank", &EVEN[1], &oathtool(0)).await, "account", "{}", status(&page).await);
    assert_eq!(sign_in(&page, &s, "", "frank", &RHYTHM[0], &oathtool(1)).await, "refused");

    // Attacks. Reflected input: `next` and error messages never become markup
    // or script, and `next` leads only to /oidc/authorize on this origin.
    for next in
        ["javascript:alert(1)", "//evil.example/oidc/authorize?x", "/oidc/authorize?x\"><img src=x onerror=alert(1)>"]
    {
        let q = format!("?next={}", urlencode(next));
        let html = s.http().get(format!("{}/signin{q}", s.url())).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("alert(1)") && !html.contains("evil.example"), "{html}");
    }
    let q = format!("?next={}", urlencode("javascript:alert(1)"));
    assert_eq!(sign_in(&page, &s, &q, "erin", &RHYTHM[2], "").await, "account");
    let q = format!("?next={}", urlencode("//evil.example/oidc/authorize?x"));
    assert_eq!(sign_in(&page, &s, &q, "erin", &RHYTHM[1], "").await, "account");
    let hostile = "<img src=x onerror=alert(1)>";
    let state = sign_in(&page, &s, "", hostile, &RHYTHM[0], "").await;
    assert_eq!(state, "refused");
    assert_eq!(page.eval("document.querySelectorAll('img').length").await, json!(0));
    assert!(b.events("Page.javascriptDialogOpening", None).is_empty(), "a script ran");

    // Login CSRF: a valid login body posted from another origin, or as a
    // form's text/plain, is refused and sets no cookie.
    let login = |origin: &'static str, content_type: &'static str| {
        let (http, url) = (s.http(), s.url());
        async move {
            let c = dirbroker_proto::sso::session::ClientCredential::derive(
                "alice",
                b"alice password",
                &dirbroker_proto::sso::primitives::sha256(b"alice")[..16],
                &dirbroker_proto::sso::kdf::KdfParams::MINIMUM,
            )
            .unwrap();
            let issuer = http.get(format!("{url}/v1/sso/params/alice")).send().await.unwrap();
            let issuer: serde_json::Value = issuer.json().await.unwrap();
            let now = dirbroker::clock::now().unix_timestamp();
            let req = c.login_request(issuer["issuer"].as_str().unwrap(), now, &mut dirbroker::clock::rng()).unwrap();
            let body = serde_json::to_value(req).unwrap();
            let origin = if origin == "own" { url.clone() } else { origin.to_string() };
            let r = http
                .post(format!("{url}/web/login"))
                .header("origin", origin)
                .header("content-type", content_type)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("set-cookie"))
        }
    };
    assert_eq!(login("https://evil.example", "application/json").await, (403, false));
    assert_eq!(login("null", "application/json").await, (403, false));
    let (code, cookie) = login("own", "text/plain").await;
    assert!(code >= 400 && !cookie, "{code}");

    // Framed by another origin: the headers say no and the browser does not render it.
    let r = s.http().get(format!("{}/signin", s.url())).send().await.unwrap();
    let h = r.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
    // Another origin (plain HTTP on another loopback port) frames the sign-in
    // page, and /healthz (no framing headers) as a control that frames load.
    let framer = format!(
        "<!doctype html><iframe src=\"{0}/signin\"></iframe><iframe src=\"{0}/healthz\"></iframe>\
         <script>window.loaded=0;for(const f of document.querySelectorAll('iframe'))f.onload=()=>{{window.loaded++}}\
         </script>",
        s.url()
    );
    let framer = serve_once(framer).await;
    page.goto(&framer).await;
    page.wait_for("window.loaded === 2").await;
    // Cross-site frames run in their own renderer (site isolation): ask each
    // what document it shows. A frame the browser refused shows its error page.
    let targets = b.send(None, "Target.getTargets", json!({})).await;
    let mut shown = Vec::new();
    for t in targets["targetInfos"].as_array().unwrap().iter().filter(|t| t["type"] == "iframe") {
        let a = b.send(None, "Target.attachToTarget", json!({ "targetId": t["targetId"], "flatten": true })).await;
        let session = a["sessionId"].as_str().unwrap();
        let r = b
            .send(Some(session), "Runtime.evaluate", json!({ "expression": "location.href", "returnByValue": true }))
            .await;
        shown.push((t["url"].as_str().unwrap().to_string(), r["result"]["value"].as_str().unwrap().to_string()));
    }
    let showing = |url: String| shown.iter().find(|(asked, _)| *asked == url).map(|(_, href)| href.clone());
    assert_eq!(showing(format!("{}/healthz", s.url())), Some(format!("{}/healthz", s.url())), "{shown:?}");
    let signin = showing(format!("{}/signin", s.url())).expect("the framed sign-in target");
    assert!(signin.starts_with("chrome-error://"), "the sign-in page rendered in a frame: {shown:?}");
}

/// An HTTP origin on a loopback port of its own that answers every request with `html`.
async fn serve_once(html: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://localhost:{}/", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    url
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

/// bench/web.sh: browser sign-in wall time (submit → session cookie) and its
/// Argon2id share, over `DIRBROKER_BENCH_SIGNINS` sign-ins (default 15).
/// Prints one JSON line starting with `BENCH`. Not a test: no timing is asserted.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark; bench/web.sh runs it"]
async fn bench_web_signin() {
    let n: usize = std::env::var("DIRBROKER_BENCH_SIGNINS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let (_bed, s) = site().await;
    let b = browser(&s).await;
    let page = b.page().await;
    let code = invite(&s, "erin");
    let state = register_in_browser(&page, &s, "erin", &code, [&RHYTHM[0], &RHYTHM[1], &RHYTHM[2]]).await;
    assert_eq!(state, "ok", "{}", status(&page).await);
    let kdf = s.http().get(format!("{}/v1/sso/params/erin", s.url())).send().await.unwrap();
    let kdf: serde_json::Value = kdf.json().await.unwrap();
    let mut runs = Vec::new();
    for i in 0..n {
        assert_eq!(sign_in(&page, &s, "", "erin", &RHYTHM[i % 4], "").await, "account", "{}", status(&page).await);
        runs.push(page.eval("JSON.parse(sessionStorage.getItem('dirbroker.signin'))").await);
    }
    println!("BENCH {}", json!({ "kdf": kdf["kdf"], "runs": runs }));
}
