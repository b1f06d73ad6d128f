//! `dirbroker serve` as the machine actors meet it: the real binary on a
//! loopback port, a real slapd behind it, reqwest (rustls) as the client with
//! certificates from `dirbroker dc add` / `ca issue`, `openssl verify` as the
//! judge of the certificates and `oathtool` as the maker of OTP codes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const SECRET_HEX: &str = "3132333435363738393031323334353637383930";
const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// `ca issue` makes a certificate of each kind that openssl accepts for
/// exactly the purposes of the kind, names the kind in the subject, and
/// `ca revoke` puts it on the CRL.
#[test]
fn serve_certificates_of_each_kind_verify_for_their_purpose() {
    let (tmp, cfg, _down) = cli_bed();
    let run = |args: &[&str]| dirbroker(args, Some(&cfg), "");
    assert_eq!(code(&run(&["ca", "init"])), 0);
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, stdout(&run(&["ca", "cert"]))).unwrap();
    let ca = ca.to_str().unwrap();

    // (kind, serverAuth, clientAuth)
    let kinds = [
        ("broker", true, true),
        ("ams", true, true),
        ("ans", true, true),
        ("service", true, true),
        ("admin", false, true),
        ("ps", true, true),
    ];
    let mut serials = Vec::new();
    for (kind, server, client) in kinds {
        let out = tmp.path().join(kind);
        let o = run(&[
            "ca",
            "issue",
            kind,
            &format!("{kind}-1"),
            "--dns",
            &format!("{kind}1.example.org"),
            "--ip",
            "127.0.0.1",
            "--out",
            out.to_str().unwrap(),
            "--output",
            "json",
        ]);
        assert_eq!(code(&o), 0, "{kind}: {}", text(&o));
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        serials.push(report["serial"].as_str().unwrap().to_string());
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(out.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
        let cert = out.join("cert.pem");
        let cert = cert.to_str().unwrap();
        let (ok, msg) = openssl_verify(&["-CAfile", ca, cert]);
        assert!(ok, "{kind}: {msg}");
        let (ok, msg) = openssl_verify(&["-purpose", "sslserver", "-CAfile", ca, cert]);
        assert_eq!(ok, server, "{kind} as a TLS server: {msg}");
        let (ok, msg) = openssl_verify(&["-purpose", "sslclient", "-CAfile", ca, cert]);
        assert_eq!(ok, client, "{kind} as a TLS client: {msg}");
        let subject =
            Command::new("openssl").args(["x509", "-noout", "-subject", "-serial", "-in", cert]).output().unwrap();
        let subject = stdout(&subject);
        assert!(subject.contains(&format!("CN = {kind}-1, O = dirbroker {kind}")), "{subject}");
        assert!(
            subject.to_lowercase().contains(&format!("serial={}", report["serial"].as_str().unwrap())),
            "{subject}"
        );
        let sans =
            Command::new("openssl").args(["x509", "-noout", "-ext", "subjectAltName", "-in", cert]).output().unwrap();
        assert!(stdout(&sans).contains(&format!("DNS:{kind}1.example.org")), "{}", stdout(&sans));
        assert!(stdout(&sans).contains("IP Address:127.0.0.1"), "{}", stdout(&sans));
    }

    // Revocation by certificate file and by serial (openssl's colon form).
    let crl = tmp.path().join("crl.pem");
    let crl_check = |kind: &str| {
        std::fs::write(&crl, stdout(&run(&["ca", "crl"]))).unwrap();
        let cert = tmp.path().join(kind).join("cert.pem");
        openssl_verify(&["-crl_check", "-CAfile", ca, "-CRLfile", crl.to_str().unwrap(), cert.to_str().unwrap()])
    };
    assert!(crl_check("broker").0);
    let o = run(&["ca", "revoke", "--cert", tmp.path().join("broker/cert.pem").to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let (ok, msg) = crl_check("broker");
    assert!(!ok && msg.contains("revoked"), "{msg}");
    let colons: Vec<String> =
        serials[4].as_bytes().chunks(2).map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase()).collect();
    assert_eq!(code(&run(&["ca", "revoke", "--serial", &colons.join(":")])), 0);
    assert!(!crl_check("admin").0);
    assert!(!crl_check("broker").0, "the earlier revocation stays");
    assert!(crl_check("ams").0, "the others stay valid");

    // Bad input: clear errors, nothing written.
    let nope = tmp.path().join("nope");
    for (args, want) in [
        (vec!["ca", "issue", "broker", "b2", "--out", nope.to_str().unwrap()], "--dns or --ip"),
        (vec!["ca", "issue", "dc", "DC-1", "--out", nope.to_str().unwrap()], "invalid value"),
        (vec!["ca", "issue", "ams", "a", "--ip", "not-an-ip", "--out", nope.to_str().unwrap()], "not-an-ip"),
        (vec!["ca", "issue", "ams", "ams-1", "--out", tmp.path().join("ams").to_str().unwrap()], "exists"),
        (vec!["ca", "revoke", "--serial", "xyz"], "serial"),
        (vec!["ca", "revoke"], "--serial"),
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    assert!(!nope.exists());
}

/// A client trusting only the broker CA, with the bundle in `identity` (a
/// `dc add` / `ca issue` output directory) as its certificate if given.
fn client(ca_pem: &[u8], identity: Option<&Path>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .timeout(Duration::from_secs(20));
    if let Some(d) = identity {
        let mut pem = std::fs::read(d.join("cert.pem")).unwrap();
        pem.extend(std::fs::read(d.join("key.pem")).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}")))
}

async fn post(c: &reqwest::Client, url: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = c.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")))
}

fn bundle_field(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))).unwrap().trim_matches('"').to_string()
}

/// Samples of the exposition as (name with labels, value), after checking
/// that every sample's family was declared with # HELP and # TYPE first.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_string();
            assert!(matches!(it.next(), Some("counter" | "gauge" | "summary" | "histogram")), "{line}");
            assert!(helped.contains(&name), "TYPE before HELP: {line}");
            typed.insert(name);
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count")).unwrap_or(name);
            assert!(typed.contains(name) || typed.contains(family), "sample without TYPE: {line}");
            samples.push((series.to_string(), value.parse::<f64>().unwrap()));
        }
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v).unwrap_or(0.0)
}

/// The whole service against a real slapd: health, PKI, mutual TLS with the
/// broker CA and its CRL, each data center's own secrets and nothing else,
/// OTP consumption, bad input, a silent client, metrics, a lost directory,
/// SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_machines_over_mutual_tls() {
    dirbroker::install_crypto_provider();
    let tmp = scratch_dir();
    let t = tmp.path();
    let bed = t.join("bed");
    let down = testbed_up(&bed);
    let cfg = bed.join("dirbroker.toml");
    let run = |args: &[&str]| {
        let o = dirbroker(args, Some(&cfg), "");
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
        o
    };
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();

    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--dns", "localhost", "--ip", "127.0.0.1", "--out", &p("broker")]);
    run(&["dc", "add", "DC-A", "--endpoint", "127.0.0.1:7443", "--out", &p("dca")]);
    run(&["dc", "add", "DC-B", "--endpoint", "dcb.example.org:7443", "--out", &p("dcb")]);
    run(&["ca", "issue", "admin", "admin1", "--out", &p("admin")]);
    run(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"]);
    run(&["user", "add", "alice", "--name", "Alice Liddell"]);
    run(&["psk", "add", "k1-a", "--admin", "admin1", "--dc", "DC-A", "--out", &p("k1-a.bundle")]);
    run(&["psk", "add", "k1-b", "--admin", "admin1", "--dc", "DC-B", "--out", &p("k1-b.bundle")]);
    // The DC-DC SPEKE password: no bundle, and the bundle-writing forms of it are refused.
    let o = run(&["psk", "add", "speke-ab", "--dc", "DC-A", "--dc", "DC-B", "--output", "json"]);
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["bundle"], Value::Null);
    for args in [
        vec!["psk", "add", "x1", "--dc", "DC-A", "--dc", "DC-B", "--out", &p("x1")],
        vec!["psk", "add", "x2", "--dc", "DC-A"],
        vec!["psk", "add", "x3", "--dc", "DC-A", "--dc", "DC-A"],
        vec!["psk", "add", "x4", "--admin", "admin1", "--dc", "DC-A", "--dc", "DC-B", "--out", &p("x4")],
        vec!["psk", "rotate", "speke-ab", "--out", &p("x5")],
    ] {
        let o = dirbroker(&args, Some(&cfg), "");
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
    }
    assert!(!t.join("x1").exists() && !t.join("x4").exists() && !t.join("x5").exists());
    run(&["psk", "rotate", "speke-ab"]);
    run(&["ps", "add", "PS-A1", "--dc", "DC-A", "--endpoint", "10.1.0.1:7444", "--out", &p("ps-a1.bundle")]);
    run(&["ps", "add", "PS-B1", "--dc", "DC-B", "--out", &p("ps-b1.bundle")]);
    let seed = secret_file(t, "alice.b32", SECRET_B32, 0o600);
    run(&["otp", "import", "alice", "--type", "totp", "--secret-file", seed.to_str().unwrap(), "--id", "alice-totp"]);

    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str(&format!(
        "\n[serve]\nlisten = \"127.0.0.1:0\"\ncert_file = {:?}\nkey_file = {:?}\ncrl_refresh_s = 1\n\
         handshake_timeout_s = 10\nshutdown_grace_s = 5\nmax_connections = 120\nreserved_for_certificates = 20\n\
         max_connections_per_source = 30\nidle_timeout_s = 3\n",
        p("broker/cert.pem"),
        p("broker/key.pem"),
    ));
    std::fs::write(&cfg, toml).unwrap();
    let mut serve = Daemon::start(Command::new(BIN).arg("serve").env("DIRBROKER_CONFIG", &cfg), t.join("serve.log"));
    let ca = std::fs::read(t.join("broker/ca.pem")).unwrap();
    let anon = client(&ca, None);
    let dc_a = client(&ca, Some(&t.join("dca")));
    let dc_b = client(&ca, Some(&t.join("dcb")));
    let admin = client(&ca, Some(&t.join("admin")));

    // Anyone: health and the PKI.
    let (s, v) = get(&anon, &serve.https_url("/healthz")).await;
    assert_eq!((s, v.clone()), (StatusCode::OK, serde_json::json!({ "status": "ok", "ldap": "ok" })));
    let (s, v) = get(&anon, &serve.https_url("/v1/pki/ca")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ca_pem"].as_str().unwrap().as_bytes(), ca.as_slice());
    assert!(v["crl_pem"].as_str().unwrap().starts_with("-----BEGIN X509 CRL-----"), "{v}");

    // No client certificate: nothing under /v1 but the PKI.
    for path in ["/v1/dc/credentials", "/v1/dc/DC-A"] {
        let (s, v) = get(&anon, &serve.https_url(path)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("client certificate"), "{v}");
    }
    let body = br#"{"uid":"alice","code":"123456"}"#.to_vec();
    let (s, _) = post(&anon, &serve.https_url("/v1/otp/verify"), Some("application/json"), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Each data center gets exactly its own secrets, equal to what the bundles hold.
    let (s, a) = get(&dc_a, &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, b) = get(&dc_b, &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids = |v: &Value, list: &str| -> Vec<String> {
        let mut ids: Vec<String> =
            v[list].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(a["did"], "DC-A");
    assert_eq!(ids(&a, "psks"), ["k1-a", "speke-ab"]);
    assert_eq!(ids(&a, "servers"), ["PS-A1"]);
    assert_eq!(b["did"], "DC-B");
    assert_eq!(ids(&b, "psks"), ["k1-b", "speke-ab"]);
    assert_eq!(ids(&b, "servers"), ["PS-B1"]);
    let find = |v: &Value, list: &str, id: &str| -> Value {
        v[list].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone()
    };
    assert_eq!(find(&a, "psks", "k1-a")["key_base64"], bundle_field(&t.join("k1-a.bundle"), "key_base64"));
    assert_eq!(find(&b, "psks", "k1-b")["key_base64"], bundle_field(&t.join("k1-b.bundle"), "key_base64"));
    let speke = find(&a, "psks", "speke-ab");
    assert_eq!(speke["key_base64"], find(&b, "psks", "speke-ab")["key_base64"], "both DCs hold the same password");
    assert_eq!(speke["key_base64"].as_str().unwrap().len(), 44);
    assert_eq!(
        speke["parties"],
        serde_json::json!([{ "kind": "dc", "name": "DC-A" }, { "kind": "dc", "name": "DC-B" }])
    );
    let ps = find(&a, "servers", "PS-A1");
    assert_eq!(ps["secret_base32"], bundle_field(&t.join("ps-a1.bundle"), "secret_base32"));
    assert_eq!(
        (ps["endpoint"].as_str(), ps["digits"].as_u64(), ps["period"].as_u64()),
        (Some("10.1.0.1:7444"), Some(6), Some(30))
    );
    assert_eq!(find(&b, "servers", "PS-B1")["secret_base32"], bundle_field(&t.join("ps-b1.bundle"), "secret_base32"));
    let all = format!("{a}");
    for other in
        [bundle_field(&t.join("k1-b.bundle"), "key_base64"), bundle_field(&t.join("ps-b1.bundle"), "secret_base32")]
    {
        assert!(!all.contains(&other), "DC-A must not see DC-B's secrets");
    }

    // Other machines: the public DC entry, but no data-center secrets.
    let (s, v) = get(&admin, &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"].as_str().unwrap().contains("admin certificate"), "{v}");
    let (s, v) = get(&admin, &serve.https_url("/v1/dc/DC-B")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["endpoint"], "dcb.example.org:7443");
    assert_eq!(v["certificate_pem"].as_str().unwrap(), std::fs::read_to_string(t.join("dcb/cert.pem")).unwrap());
    let (s, v) = get(&admin, &serve.https_url("/v1/dc/DC-NONE")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = post(&admin, &serve.https_url("/v1/otp/verify"), Some("application/json"), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A certificate from another CA (same name even) does not get past the handshake.
    let other_ca =
        dirbroker::ca::Ca::init(&t.join("other.key"), &t.join("other.pem"), "other CA", dirbroker::clock::now(), 1)
            .unwrap();
    let forged = other_ca.issue_dc("DC-A", "127.0.0.1", dirbroker::clock::now(), 30).unwrap();
    std::fs::create_dir(t.join("forged")).unwrap();
    std::fs::write(t.join("forged/cert.pem"), &forged.cert_pem).unwrap();
    std::fs::write(t.join("forged/key.pem"), forged.key_pem.as_bytes()).unwrap();
    let forged = client(&ca, Some(&t.join("forged")));
    assert!(
        forged.get(serve.https_url("/v1/dc/credentials")).send().await.is_err(),
        "a foreign certificate must be refused"
    );

    // Bad requests: the error says what is wrong, and nothing is written.
    let url = serve.https_url("/v1/otp/verify");
    let json = Some("application/json");
    for (ct, body, status, want) in [
        (json, b"{\"uid\": \"alice\", \"code\": ".to_vec(), StatusCode::BAD_REQUEST, "EOF"),
        (json, b"{\"uid\": \"alice\"}".to_vec(), StatusCode::BAD_REQUEST, "missing field `code`"),
        (json, b"{\"uid\": 7, \"code\": \"123456\"}".to_vec(), StatusCode::BAD_REQUEST, "invalid type"),
        (json, b"{\"uid\": \"alice\", \"code\": \"1\", \"x\": 1}".to_vec(), StatusCode::BAD_REQUEST, "unknown field"),
        (json, b"{\"uid\": \" alice\", \"code\": \"123456\"}".to_vec(), StatusCode::BAD_REQUEST, "uid"),
        (Some("text/plain"), body.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        (None, body.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        (json, vec![b' '; 70 * 1024], StatusCode::PAYLOAD_TOO_LARGE, "length limit"),
    ] {
        let (s, v) = post(&dc_a, &url, ct, body).await;
        assert_eq!(s, status, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "want {want:?}: {v}");
    }
    let (s, v) = get(&dc_a, &serve.https_url("/v1/nothing/here")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].is_string());
    let r = dc_a.delete(serve.https_url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let (s, _) = get(&dc_a, &url).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let config = dirbroker::config::Config::load(&cfg).unwrap();
    let dir = dirbroker::directory::Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let token = dir.load::<dirbroker::model::OtpToken>("alice-totp").await.unwrap();
    assert_eq!((token.failure_count, token.totp_watermark.unwrap_or(0)), (0, 0), "bad requests wrote nothing");

    // The user's OTP: oathtool's code is accepted once, then refused.
    let now = Command::new("oathtool").args(["--totp", SECRET_HEX]).output().unwrap();
    let code_now = String::from_utf8(now.stdout).unwrap().trim().to_string();
    let body = serde_json::to_vec(&serde_json::json!({ "uid": "alice", "code": code_now })).unwrap();
    let (s, v) = post(&dc_a, &url, json, body.clone()).await;
    assert_eq!((s, v.clone()), (StatusCode::OK, serde_json::json!({ "accepted": true })));
    let (s, v) = post(&dc_b, &url, json, body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["accepted"], false);
    assert!(v["reason"].as_str().unwrap().contains("already used"), "{v}");
    let body = serde_json::to_vec(&serde_json::json!({ "uid": "mallory", "code": code_now })).unwrap();
    let (s, v) = post(&dc_a, &url, json, body).await;
    assert_eq!((s, v["accepted"].clone()), (StatusCode::OK, Value::Bool(false)));

    // The account rule: a disabled user's good code is refused, with the
    // answer a user without a token gets, by the API and by the CLI; the
    // same code is accepted once the user is enabled again. This time the
    // data center names a migration, so the acceptance carries the broker's
    // signed authorisation of it (audit F11).
    let later = dirbroker::clock::now().unix_timestamp() + 30;
    let next = Command::new("oathtool").args(["--totp", SECRET_HEX, "-N", &format!("@{later}")]).output().unwrap();
    let code_next = String::from_utf8(next.stdout).unwrap().trim().to_string();
    let migration_id = [0x19u8; 16];
    let body =
        serde_json::to_vec(&serde_json::json!({ "uid": "alice", "code": code_next, "migration_id": migration_id }))
            .unwrap();
    run(&["user", "disable", "alice"]);
    let (s, v) = post(&dc_a, &url, json, body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, serde_json::json!({ "accepted": false, "reason": "no enabled OTP token for this user" }));
    let o = dirbroker(&["otp", "verify", "alice"], Some(&cfg), &format!("{code_next}\n"));
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("the account of alice is disabled"), "{}", text(&o));
    run(&["user", "enable", "alice"]);
    let (s, v) = post(&dc_a, &url, json, body).await;
    assert_eq!((s, v["accepted"].clone()), (StatusCode::OK, Value::Bool(true)), "{v}");
    assert!(serve.log().contains("OTP refused: the account is disabled"));
    // The authorisation verifies with the CA and CRL the data centers fetch, for alice, for
    // DC-A (the caller's certificate, not a value it sent), for this migration id only.
    let reply: dirbroker_proto::api::machines::OtpVerifyReply = serde_json::from_value(v).unwrap();
    let authorisation = reply.authorisation.expect("an authorisation with the acceptance");
    let (_, pki) = get(&dc_a, &serve.https_url("/v1/pki/ca")).await;
    let trust = dirbroker_proto::migration::crypto::Trust::from_pem(
        pki["ca_pem"].as_str().unwrap().as_bytes(),
        pki["crl_pem"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let at = dirbroker_proto::edge::unix_time();
    authorisation.verify(&trust, "alice", "DC-A", &migration_id, at).unwrap();
    assert!(authorisation.verify(&trust, "alice", "DC-B", &migration_id, at).is_err());
    assert!(authorisation.verify(&trust, "mallory", "DC-A", &migration_id, at).is_err());
    assert!(authorisation.verify(&trust, "alice", "DC-A", &[0; 16], at).is_err());

    // A client that connects and says nothing holds up no one.
    let silent = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
    let started = Instant::now();
    let (s, _) = get(&client(&ca, None), &serve.https_url("/healthz")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    // A flood from two other loopback addresses, of idle TCP connections
    // and of handshakes left half done, takes each source's 30 connections
    // and no more; a legitimate client's health check and OTP verification
    // are still answered (the refusal below is the decided one: the code
    // was used above).
    let mut flood = Vec::new();
    for i in 0..200 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("127.0.0.{}:0", 2 + i % 2).parse().unwrap()).unwrap();
        let mut conn = sock.connect(serve.addr.parse().unwrap()).await.unwrap();
        if i % 4 == 0 {
            use tokio::io::AsyncWriteExt as _;
            // The first bytes of a TLS ClientHello, then silence.
            let _ = conn.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
        }
        flood.push(conn);
    }
    let started = Instant::now();
    let (s, v) = get(&client(&ca, None), &serve.https_url("/healthz")).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let body = serde_json::to_vec(&serde_json::json!({ "uid": "alice", "code": code_now })).unwrap();
    let (s, v) = post(&client(&ca, Some(&t.join("dca"))), &url, json, body).await;
    assert_eq!((s, v["accepted"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    drop(flood);

    // Abuse by a legitimate data center. Bob is bound to DC-A: DC-B gets
    // the answer for a user without tokens and his code stays unspent.
    run(&["user", "add", "bob", "--name", "Bob"]);
    run(&["otp", "import", "bob", "--type", "totp", "--secret-file", seed.to_str().unwrap(), "--id", "bob-totp"]);
    run(&["user", "otp-verifiers", "bob", "--dc", "DC-A"]);
    let bob = |code: &str| serde_json::to_vec(&serde_json::json!({ "uid": "bob", "code": code })).unwrap();
    let (s, v) = post(&dc_b, &url, json, bob(&code_now)).await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, serde_json::json!({ "accepted": false, "reason": "no enabled OTP token for this user" }))
    );
    assert!(serve.log().contains("this data center is not one of the user's verifiers"));
    let (s, v) = post(&dc_a, &url, json, bob(&code_now)).await;
    assert_eq!((s, v.clone()), (StatusCode::OK, serde_json::json!({ "accepted": true })), "{v}");
    // Unbound, DC-B may guess, ten times a minute for bob and no more.
    run(&["user", "otp-verifiers", "bob", "--any"]);
    for _ in 0..9 {
        let (s, v) = post(&dc_b, &url, json, bob("000000")).await;
        assert_eq!((s, v["reason"].as_str()), (StatusCode::OK, Some("wrong code")), "{v}");
    }
    let r = dc_b.post(&url).header("content-type", "application/json").body(bob("000000")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() <= 61);
    // The guess that locks the token says so, and the log names who made it.
    let (s, v) = post(&dc_a, &url, json, bob("000000")).await;
    assert_eq!(s, StatusCode::OK);
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.starts_with("wrong code; the token is now locked after 10 failed attempts until "), "{v}");
    assert!(
        serve.log().lines().any(|l| l.contains("DC-A") && l.contains("bob") && l.contains("now locked")),
        "{}",
        serve.log()
    );
    let (_, v) = post(&dc_a, &url, json, bob("000000")).await;
    assert!(v["reason"].as_str().unwrap().starts_with("the token is locked after 10 failed attempts until "), "{v}");
    // A data center whose answer is lost (it timed out, the connection was
    // cut) asks again with the same migration id and gets the decision that
    // was made: the accepted code is not lost as "already used".
    run(&["user", "add", "carol", "--name", "Carol"]);
    run(&["otp", "import", "carol", "--type", "totp", "--secret-file", seed.to_str().unwrap(), "--id", "carol-totp"]);
    let fresh = Command::new("oathtool").args(["--totp", SECRET_HEX]).output().unwrap();
    let fresh = String::from_utf8(fresh.stdout).unwrap().trim().to_string();
    let carol = |id: u8| {
        serde_json::to_vec(&serde_json::json!({ "uid": "carol", "code": fresh, "migration_id": vec![id; 16] })).unwrap()
    };
    let accepted_before = serve.log().matches("OTP accepted").count();
    {
        use rustls_pki_types::pem::PemObject;
        use tokio::io::AsyncWriteExt;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_pki_types::CertificateDer::from_pem_slice(&ca).unwrap()).unwrap();
        let chain = vec![rustls_pki_types::CertificateDer::from_pem_file(t.join("dca/cert.pem")).unwrap()];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(t.join("dca/key.pem")).unwrap();
        let tls =
            rustls::ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key).unwrap();
        let tcp = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)).connect(name, tcp).await.unwrap();
        let body = carol(7);
        let head = format!(
            "POST /v1/otp/verify HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        conn.flush().await.unwrap();
        // The broker decides (and consumes the code) …
        let deadline = Instant::now() + Duration::from_secs(10);
        while serve.log().matches("OTP accepted").count() == accepted_before {
            assert!(Instant::now() < deadline, "the request was not decided: {}", serve.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // … and the data center gives up without reading the answer.
    }
    let (s, v) = post(&dc_a, &url, json, carol(7)).await;
    assert_eq!((s, v["accepted"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    assert!(v["authorisation"].is_object(), "{v}");
    assert_eq!(serve.log().matches("OTP accepted").count(), accepted_before + 1, "decided once");
    // Twice at once: one decision, both told.
    let (a1, a2) = tokio::join!(post(&dc_a, &url, json, carol(7)), post(&dc_a, &url, json, carol(7)));
    assert_eq!((a1.1["accepted"].as_bool(), a2.1["accepted"].as_bool()), (Some(true), Some(true)));
    // Another migration, the same code: spent.
    let (_, v) = post(&dc_a, &url, json, carol(8)).await;
    assert_eq!(v["reason"], "this code was already used", "{v}");
    // A malformed code gets one answer whatever the token's type.
    let malformed = serde_json::to_vec(&serde_json::json!({ "uid": "alice", "code": "12 words" })).unwrap();
    let (_, v) = post(&dc_b, &url, json, malformed).await;
    assert_eq!(v["reason"], "malformed code", "{v}");

    // Metrics: well-formed, and the counters move.
    let scrape = || async {
        let r = anon.get(serve.https_url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        parse_metrics(&r.text().await.unwrap())
    };
    let m1 = scrape().await;
    let healthz = "dirbroker_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"200\"}";
    assert!(sample(&m1, healthz) >= 2.0, "{m1:?}");
    assert!(sample(&m1, "dirbroker_http_requests_total{route=\"/v1/otp/verify\",method=\"POST\",code=\"413\"}") >= 1.0);
    assert!(sample(&m1, "dirbroker_tls_handshake_failures_total") >= 1.0, "the foreign certificate: {m1:?}");
    assert!(sample(&m1, "dirbroker_http_request_duration_seconds_count{route=\"/healthz\"}") >= 2.0);
    assert!(m1.iter().any(|(s, _)| s == "dirbroker_uptime_seconds"));
    // Labels are the routes' templates: one for every data center asked
    // about, "unmatched" for paths no route takes; never the path itself.
    assert!(
        sample(&m1, "dirbroker_http_requests_total{route=\"/v1/dc/{did}\",method=\"GET\",code=\"200\"}") >= 1.0,
        "{m1:?}"
    );
    assert!(
        sample(&m1, "dirbroker_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"}") >= 1.0,
        "{m1:?}"
    );
    assert!(!m1.iter().any(|(s, _)| s.contains("DC-B") || s.contains("/v1/nothing")), "{m1:?}");
    get(&anon, &serve.https_url("/healthz")).await;
    let m2 = scrape().await;
    assert_eq!(sample(&m2, healthz), sample(&m1, healthz) + 1.0);
    drop(silent);
    assert!(sample(&m2, "dirbroker_connections_refused_total") >= 140.0, "200 - 2 × 30: {m2:?}");
    let refusals = serve.log().matches("connection refused").count();
    assert!((1..=11).contains(&refusals), "rate-limited log lines: {refusals}");
    // A keep-alive connection left idle is closed by the service (HTTP/1.1
    // and HTTP/2 alike), and the client's next request simply reconnects.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(sample(&scrape().await, "dirbroker_connections_idle_closed_total") >= 1.0);

    // A revoked data center is refused at the handshake once the CRL is re-read.
    run(&["dc", "revoke", "DC-A"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // A fresh client each time: a pooled connection was accepted before the revocation.
        let fresh = client(&ca, Some(&t.join("dca")));
        if fresh.get(serve.https_url("/v1/dc/credentials")).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "DC-A still accepted: {}", serve.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(serve.log().contains("TLS handshake failed"), "{}", serve.log());
    let (s, _) = get(&client(&ca, Some(&t.join("dcb"))), &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!(s, StatusCode::OK, "DC-B is unaffected");

    // The directory goes away: health says so.
    drop(down);
    let (s, v) = get(&anon, &serve.https_url("/healthz")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    // …without the directory's URIs or errors: anyone may ask.
    assert_eq!(v, serde_json::json!({ "status": "unavailable", "ldap": "unavailable" }));

    // SIGTERM with a request half sent: it is answered, then the process exits 0.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(&ca).unwrap()).unwrap();
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = connector.connect(name, tcp).await.unwrap();
    let body = br#"{"uid":"alice","code":"123456"}"#;
    let head = format!(
        "POST /v1/otp/verify HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.pid() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(serve.try_wait().unwrap().is_none(), "it must wait for the request in flight");
    assert!(tokio::net::TcpStream::connect(&serve.addr).await.is_err(), "no new connections while draining");
    conn.write_all(&body[10..]).await.unwrap();
    conn.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(st) = serve.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "serve did not stop: {}", serve.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", serve.log());
    assert!(stopping.elapsed() < Duration::from_secs(5), "took {:?} to stop", stopping.elapsed());
    let log = serve.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(!log.contains('\u{1b}'), "a log file gets no colour codes: {log}");
    for secret in [SECRET_B32, SECRET_HEX, &code_now, &bundle_field(&t.join("k1-a.bundle"), "key_base64")] {
        assert!(!log.contains(secret), "a secret in the log: {log}");
    }
}

/// Audit F8 over HTTPS: someone with LDAP write access but no keyring
/// re-points sealed secrets (mallory's TOTP token at alice, DC-B added as a
/// party of K1 between admin1 and DC-A, DC-A's server moved to DC-B). None
/// of them is then handed out or accepted: the seal binds the owner, the
/// parties and the data center.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_pointed_secrets_are_refused_over_https() {
    use dirbroker::directory::Change;
    use dirbroker::model::{DataCenter, DirEntry, OtpToken, PhysicalServer, PreSharedKey};

    dirbroker::install_crypto_provider();
    let tmp = scratch_dir();
    let t = tmp.path();
    let bed = t.join("bed");
    let _down = testbed_up(&bed);
    let cfg = bed.join("dirbroker.toml");
    let run = |args: &[&str]| {
        let o = dirbroker(args, Some(&cfg), "");
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
        o
    };
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--dns", "localhost", "--ip", "127.0.0.1", "--out", &p("broker")]);
    run(&["dc", "add", "DC-A", "--endpoint", "127.0.0.1:7443", "--out", &p("dca")]);
    run(&["dc", "add", "DC-B", "--endpoint", "127.0.0.1:7444", "--out", &p("dcb")]);
    run(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"]);
    run(&["user", "add", "alice", "--name", "Alice"]);
    run(&["user", "add", "mallory", "--name", "Mallory"]);
    run(&["psk", "add", "k1-a", "--admin", "admin1", "--dc", "DC-A", "--out", &p("k1-a.bundle")]);
    run(&["ps", "add", "PS-A1", "--dc", "DC-A", "--out", &p("ps-a1.bundle")]);
    let seed = secret_file(t, "mallory.b32", SECRET_B32, 0o600);
    run(&["otp", "import", "mallory", "--type", "totp", "--secret-file", seed.to_str().unwrap(), "--id", "mal-totp"]);

    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str(&format!(
        "\n[serve]\nlisten = \"127.0.0.1:0\"\ncert_file = {:?}\nkey_file = {:?}\n",
        p("broker/cert.pem"),
        p("broker/key.pem"),
    ));
    std::fs::write(&cfg, toml).unwrap();
    let serve = Daemon::start(Command::new(BIN).arg("serve").env("DIRBROKER_CONFIG", &cfg), t.join("serve.log"));
    let ca = std::fs::read(t.join("broker/ca.pem")).unwrap();
    let (dc_a, dc_b) = (client(&ca, Some(&t.join("dca"))), client(&ca, Some(&t.join("dcb"))));
    let ids = |v: &Value, list: &str| -> Vec<String> {
        v[list].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
    };
    let (s, b) = get(&dc_b, &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!((s, ids(&b, "psks"), ids(&b, "servers")), (StatusCode::OK, vec![], vec![]), "{b}");

    // The attacker: the broker's own LDAP identity, without the keyring.
    let config = dirbroker::config::Config::load(&cfg).unwrap();
    let dir = dirbroker::directory::Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let layout = dir.layout().clone();
    let alice = layout.people.child("uid", "alice").unwrap();
    let dc_b_dn = dir.load::<DataCenter>("DC-B").await.unwrap().dn(&layout).unwrap();
    let replace = |attr: &str, v: &str| Change::Replace(attr.as_bytes().to_vec(), [v.as_bytes().to_vec()].into());
    let add = |attr: &str, v: &str| Change::Add(attr.as_bytes().to_vec(), [v.as_bytes().to_vec()].into());
    let token = dir.load::<OtpToken>("mal-totp").await.unwrap().dn(&layout).unwrap();
    dir.modify(&token, vec![replace("dirbrokerTokenOwner", alice.as_str())]).await.unwrap();
    let k1 = dir.load::<PreSharedKey>("k1-a").await.unwrap().dn(&layout).unwrap();
    dir.modify(&k1, vec![add("dirbrokerPskParty", dc_b_dn.as_str())]).await.unwrap();

    // Mallory's code, presented as alice's: not accepted.
    let now = Command::new("oathtool").args(["--totp", SECRET_HEX]).output().unwrap();
    let code_now = String::from_utf8(now.stdout).unwrap().trim().to_string();
    let body = serde_json::to_vec(&serde_json::json!({ "uid": "alice", "code": code_now })).unwrap();
    let (s, v) = post(&dc_a, &serve.https_url("/v1/otp/verify"), Some("application/json"), body).await;
    assert_ne!(v["accepted"], Value::Bool(true), "{s} {v}");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    // DC-B, now listed as a party of K1, does not get the key.
    let k1_key = bundle_field(&t.join("k1-a.bundle"), "key_base64");
    let (s, b) = get(&dc_b, &serve.https_url("/v1/dc/credentials")).await;
    assert!(!b.to_string().contains(&k1_key), "DC-B got K1: {b}");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    // The data-center move: DC-B does not get PS-A1's TOTP secret.
    dir.modify(&k1, vec![Change::Delete(b"dirbrokerPskParty".to_vec(), [dc_b_dn.as_str().as_bytes().to_vec()].into())])
        .await
        .unwrap();
    let ps = dir.load::<PhysicalServer>("PS-A1").await.unwrap().dn(&layout).unwrap();
    dir.modify(&ps, vec![replace("dirbrokerDataCenter", dc_b_dn.as_str())]).await.unwrap();
    let ps_secret = bundle_field(&t.join("ps-a1.bundle"), "secret_base32");
    let (s, b) = get(&dc_b, &serve.https_url("/v1/dc/credentials")).await;
    assert!(!b.to_string().contains(&ps_secret), "DC-B got PS-A1's secret: {b}");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    let log = serve.log();
    for what in ["token mal-totp", "pre-shared key k1-a", "the TOTP secret of PS-A1"] {
        assert!(
            log.lines().any(|l| l.contains(what) && l.contains("does not open") && l.contains("security")),
            "the broker says why, as a security event: {what}: {log}"
        );
    }
    // With the party removed again, K1 is DC-A's once more.
    let (s, a) = get(&dc_a, &serve.https_url("/v1/dc/credentials")).await;
    assert_eq!((s, ids(&a, "psks")), (StatusCode::OK, vec!["k1-a".to_string()]), "{a}");
    assert!(a.to_string().contains(&k1_key));
}
