//! SSO registration (seed 002, stages 1–2) end to end, every party its own
//! process: `dirbroker serve` (the broker), `dirbroker-agents ams`,
//! `dirbroker-agents ans` and the client `dirbroker register`, on the
//! project's slapd. The tests judge with the proto library (P_c must be g^pw
//! for the password and the published salt), with reqwest playing the client
//! in-process where every body has to be seen, and with LDAP.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dirbroker::directory::{Change, Directory};
use dirbroker::model::{DirEntry, User};
use dirbroker_proto::api::sso::{ParamsReply, PasswordKdf, RegisterReply, RegisterRequest, ShareRequest};
use dirbroker_proto::sso::kdf::derive_pw;
use dirbroker_proto::sso::registration::client_start_registration;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{
    Bed, Daemon, agents_bin, dirbroker_bin, free_port, run_with_stdin, scratch_dir, serve_section, start, text,
};
use serde_json::Value;

const PASSWORD: &str = "Tr0ub4dor&3-correct-horse";

struct Site {
    bed: Bed,
    _tmp: tempfile::TempDir,
    t: PathBuf,
    cfg: PathBuf,
    broker: Daemon,
    ams: Daemon,
    ans: Daemon,
}

fn dirbroker(cfg: &Path, args: &[&str]) -> Output {
    let o = Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", cfg).output().unwrap();
    assert!(o.status.success(), "dirbroker {args:?}: {}", text(&o));
    o
}

async fn site() -> Site {
    site_with(&[]).await
}

/// The site with `ans_args` added to the ANS's command line. Every process
/// reads the CRL again each second (`--crl-refresh 1`, `crl_refresh_s = 1`).
async fn site_with(ans_args: &[&str]) -> Site {
    let bed = start().await;
    let tmp = scratch_dir();
    let t = tmp.path().to_path_buf();
    let cfg = bed.dir().join("dirbroker.toml");
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    let (ams_port, ans_port) = (free_port(), free_port());
    let run = |args: &[&str]| dirbroker(&cfg, args);
    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--ip", "127.0.0.1", "--out", &p("broker")]);
    run(&["ca", "issue", "service", "svc-1", "--ip", "127.0.0.1", "--out", &p("svc")]);
    run(&["agent", "add", "ans", "ans-1", "--endpoint", &format!("127.0.0.1:{ans_port}"), "--out", &p("ans")]);
    run(&["agent", "add", "ams", "ams-1", "--endpoint", &format!("127.0.0.1:{ams_port}"), "--out", &p("ams")]);
    for uid in ["alice", "bob", "carol", "dave", "erin"] {
        run(&["user", "add", uid, "--name", uid]);
    }
    let toml = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(toml.matches("[sso]\n").count(), 1, "{toml}");
    let mut toml = toml.replace(
        "[sso]\n",
        &format!(
            "[sso]\nams_url = \"https://127.0.0.1:{ams_port}\"\nans_url = \"https://127.0.0.1:{ans_port}\"\n\
             kdf_memory_kib = 8\nkdf_iterations = 1\n"
        ),
    );
    toml.push_str(&serve_section(&t.join("broker"), "crl_refresh_s = 1\n"));
    std::fs::write(&cfg, toml).unwrap();
    let broker = Daemon::start_at(
        Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", &cfg),
        t.join("serve.log"),
        "debug",
    );
    let url = format!("https://{}", broker.addr);
    let agent = |role: &str, port: u16, extra: &[&str]| {
        let mut cmd = Command::new(agents_bin());
        cmd.args([role, "--bundle", &p(role), "--broker", &url, "--listen", &format!("127.0.0.1:{port}")]);
        cmd.args(["--crl-refresh", "1"]).args(extra);
        Daemon::start_at(&mut cmd, t.join(format!("{role}.log")), "debug")
    };
    let ans = agent("ans", ans_port, ans_args);
    let ams = agent("ams", ams_port, &[]);
    Site { bed, _tmp: tmp, t, cfg, broker, ams, ans }
}

impl Site {
    fn p(&self, name: &str) -> String {
        self.t.join(name).to_str().unwrap().to_string()
    }

    fn broker_url(&self) -> String {
        format!("https://{}", self.broker.addr)
    }

    fn invite(&self, uid: &str, extra: &[&str]) -> PathBuf {
        let out = self.t.join(format!("{uid}-{}.invite", free_port()));
        let mut args = vec!["user", "invite", uid, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        dirbroker(&self.cfg, &args);
        out
    }

    /// `dirbroker register`, the password on stdin.
    fn register(&self, uid: &str, invite: &Path, keystrokes: Option<&[u32]>) -> Output {
        let mut cmd = Command::new(dirbroker_bin());
        cmd.args([
            "--output",
            "json",
            "register",
            uid,
            "--broker",
            &self.broker_url(),
            "--ca",
            &self.p("broker/ca.pem"),
        ])
        .args(["--invite-file", invite.to_str().unwrap(), "--allow-weak-kdf"]);
        if let Some(d) = keystrokes {
            let f = self.t.join(format!("{uid}-{}.keys.json", free_port()));
            std::fs::write(&f, serde_json::to_string(d).unwrap()).unwrap();
            cmd.args(["--keystroke-file", f.to_str().unwrap()]);
        }
        run_with_stdin(&mut cmd, &format!("{PASSWORD}\n"))
    }

    async fn admin(&self) -> Directory {
        self.bed.dir_as(Identity::Admin).await
    }

    async fn user(&self, uid: &str) -> User {
        self.admin().await.find_user(uid).await.unwrap().unwrap()
    }

    async fn invitation_value(&self, uid: &str) -> Option<Vec<u8>> {
        let dir = self.admin().await;
        let dn = self.user(uid).await.dn(dir.layout()).unwrap();
        let e = dir.read(&dn, &["dirbrokerInvitation"]).await.unwrap();
        e.bytes("dirbrokerInvitation").unwrap().map(<[u8]>::to_vec)
    }

    /// An HTTPS client trusting the broker CA, presenting the bundle in `dir` if given.
    fn http(&self, identity: Option<&str>) -> reqwest::Client {
        use rustls_pki_types::pem::PemObject;
        dirbroker::install_crypto_provider();
        let ca = rustls_pki_types::CertificateDer::from_pem_file(self.p("broker/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let b = rustls::ClientConfig::builder().with_root_certificates(roots);
        let tls = match identity {
            None => b.with_no_client_auth(),
            Some(dir) => {
                let chain = rustls_pki_types::CertificateDer::pem_file_iter(self.p(&format!("{dir}/cert.pem")))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = rustls_pki_types::PrivateKeyDer::from_pem_file(self.p(&format!("{dir}/key.pem"))).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        };
        reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
    }
}

/// g^pw for `input` with the salt and parameters published on the user.
fn recomputed_p_c(input: &[u8], kdf: &PasswordKdf) -> Vec<u8> {
    derive_pw(input, kdf.salt.as_slice(), &kdf.params).unwrap().public().unwrap().to_bytes()
}

fn published_kdf(u: &User) -> PasswordKdf {
    PasswordKdf::parse(u.password_kdf.as_deref().expect("dirbrokerPasswordKdf")).expect("argon2id JSON")
}

/// Every body of one in-process registration, in order (requests and answers).
struct Captured {
    bodies: Vec<String>,
    share_status: u16,
    share_body: Value,
}

/// The client half-way: registered with the broker, share not yet sent.
struct Begun {
    bodies: Vec<String>,
    share: dirbroker_proto::sso::registration::ShareToAns,
    reply: RegisterReply,
}

/// Plays `dirbroker register` in-process, recording every body; `tamper`
/// may change the state blob before it goes to ANS.
async fn register_in_process(s: &Site, uid: &str, invite: &Path, tamper: impl FnOnce(&mut String)) -> Captured {
    let b = begin(s, uid, invite).await;
    finish(s, b, tamper).await
}

/// Stage 1 as a client would start it: the broker's status and answer.
async fn try_register(s: &Site, uid: &str, invite: &Path) -> (u16, Value) {
    let http = s.http(None);
    let params: ParamsReply =
        http.get(format!("{}/v1/sso/params", s.broker_url())).send().await.unwrap().json().await.unwrap();
    let (request, _) =
        client_start_registration(uid, PASSWORD.as_bytes(), params.kdf, &mut dirbroker::clock::rng()).unwrap();
    let code = std::fs::read_to_string(invite).unwrap().trim().to_string();
    let body = RegisterRequest { registration: request, invitation: code, keystroke_hardening: false };
    let r = http.post(format!("{}/v1/sso/register", s.broker_url())).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls `ok` every 100 ms until it holds: how long that took, or `None`
/// when it did not within `limit`.
async fn within<F: std::future::Future<Output = bool>>(limit: Duration, mut ok: impl FnMut() -> F) -> Option<Duration> {
    let start = Instant::now();
    while !ok().await {
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(start.elapsed())
}

impl Site {
    /// The three daemons' logs, for a failure message.
    fn logs(&self) -> String {
        format!("--- serve\n{}\n--- ams\n{}\n--- ans\n{}", self.broker.log(), self.ams.log(), self.ans.log())
    }
}

async fn begin(s: &Site, uid: &str, invite: &Path) -> Begun {
    let http = s.http(None);
    let mut bodies = Vec::new();
    let r = http.get(format!("{}/v1/sso/params", s.broker_url())).send().await.unwrap();
    let t = r.text().await.unwrap();
    bodies.push(t.clone());
    let params: ParamsReply = serde_json::from_str(&t).unwrap();
    let (request, awaiting) =
        client_start_registration(uid, PASSWORD.as_bytes(), params.kdf, &mut dirbroker::clock::rng()).unwrap();
    let code = std::fs::read_to_string(invite).unwrap().trim().to_string();
    let body =
        serde_json::to_string(&RegisterRequest { registration: request, invitation: code, keystroke_hardening: false })
            .unwrap();
    bodies.push(body.clone());
    let r = http
        .post(format!("{}/v1/sso/register", s.broker_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = r.text().await.unwrap();
    bodies.push(t.clone());
    let reply: RegisterReply = serde_json::from_str(&t).unwrap();
    let share = awaiting.receive_agent(&reply.agent).unwrap();
    Begun { bodies, share, reply }
}

async fn finish(s: &Site, b: Begun, tamper: impl FnOnce(&mut String)) -> Captured {
    let Begun { bodies, share, reply } = b;
    let mut state = reply.state.clone();
    tamper(&mut state);
    send_share(s, bodies, &reply.ans_url, &ShareRequest { share, state }).await
}

/// Posts a share to ANS, keeping the request and answer bodies with those before.
async fn send_share(s: &Site, mut bodies: Vec<String>, ans_url: &str, req: &ShareRequest) -> Captured {
    let body = serde_json::to_string(req).unwrap();
    bodies.push(body.clone());
    let r = s
        .http(None)
        .post(format!("{ans_url}/v1/share"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let share_status = r.status().as_u16();
    let t = r.text().await.unwrap();
    bodies.push(t.clone());
    Captured { bodies, share_status, share_body: serde_json::from_str(&t).unwrap() }
}

/// Sends `b`'s share with its binder altered (one bit), keeping `b` for the real one.
async fn wrong_share(s: &Site, b: &Begun) -> Captured {
    let mut share = b.share.clone();
    if let Some(x) = share.binder.0.first_mut() {
        *x ^= 1;
    }
    send_share(s, Vec::new(), &b.reply.ans_url, &ShareRequest { share, state: b.reply.state.clone() }).await
}

#[tokio::test]
async fn sso_register_publishes_g_pw_without_the_password_leaving_the_client() {
    let s = site().await;

    // The real client: exit 0, and P_c on the entry is g^pw for the password.
    let invite = s.invite("alice", &["--level", "3"]);
    assert_eq!(std::fs::metadata(&invite).unwrap().permissions().mode() & 0o777, 0o600);
    let o = s.register("alice", &invite, None);
    assert_eq!(o.status.code(), Some(0), "{}\n--- serve\n{}\n--- ans\n{}", text(&o), s.broker.log(), s.ans.log());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["registered"]["uid"], "alice");
    assert_eq!(v["registered"]["level"], 3);
    let alice = s.user("alice").await;
    let kdf = published_kdf(&alice);
    assert_eq!((kdf.params.m_cost_kib, kdf.params.t_cost), (8, 1));
    let p_c = alice.public_value.clone().expect("P_c published");
    assert_eq!(p_c, recomputed_p_c(PASSWORD.as_bytes(), &kdf));
    assert_ne!(p_c, recomputed_p_c(b"wrong password", &kdf));
    assert_eq!(URL_SAFE_NO_PAD.encode(&p_c), v["registered"]["p_c"].as_str().unwrap());
    assert!(alice.public_value_time.is_some());
    assert_eq!(alice.level.number(), 3);
    assert!(!alice.keystroke_hardening);
    assert_eq!(s.invitation_value("alice").await, None, "the invitation is consumed");

    // The same flow in-process: the password and pw are in no body.
    let invite = s.invite("bob", &[]);
    let c = register_in_process(&s, "bob", &invite, |_| {}).await;
    assert_eq!(c.share_status, 200, "{}", c.share_body);
    let bob = s.user("bob").await;
    let kdf = published_kdf(&bob);
    assert_eq!(bob.public_value.as_deref(), Some(recomputed_p_c(PASSWORD.as_bytes(), &kdf).as_slice()));
    let pw = derive_pw(PASSWORD.as_bytes(), kdf.salt.as_slice(), &kdf.params).unwrap().to_fixed_bytes();
    let b64 = base64::engine::general_purpose::STANDARD;
    let needles = [
        PASSWORD.to_string(),
        URL_SAFE_NO_PAD.encode(PASSWORD),
        b64.encode(PASSWORD),
        URL_SAFE_NO_PAD.encode(pw.as_slice()),
        b64.encode(pw.as_slice()),
        pw.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ];
    assert_eq!(c.bodies.len(), 5);
    for body in &c.bodies {
        for n in &needles {
            assert!(!body.contains(n.as_str()), "a secret in a body: {body}");
        }
    }
    // Nor in any process's log (debug level).
    for (name, log) in [("serve", s.broker.log()), ("ams", s.ams.log()), ("ans", s.ans.log())] {
        assert!(log.contains("INFO") || log.contains("DEBUG"), "{name} logged nothing");
        for n in &needles {
            assert!(!log.contains(n.as_str()), "a secret in the {name} log");
        }
    }
    assert!(s.broker.log().contains("P_c published"), "{}", s.broker.log());

    // Keystroke hardening: P_c comes from the hardened password, not the
    // plain one, and the same rhythm (jittered) reproduces it.
    let rhythm: Vec<u32> = PASSWORD.chars().enumerate().map(|(i, _)| if i % 3 == 0 { 260 } else { 70 }).collect();
    let invite = s.invite("erin", &[]);
    let o = s.register("erin", &invite, Some(&rhythm));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let erin = s.user("erin").await;
    assert!(erin.keystroke_hardening);
    let kdf = published_kdf(&erin);
    let hardened = dirbroker_proto::keystroke::harden(PASSWORD, &rhythm).unwrap();
    let p_c = erin.public_value.clone().unwrap();
    assert_eq!(p_c, recomputed_p_c(hardened.as_bytes(), &kdf));
    assert_ne!(p_c, recomputed_p_c(PASSWORD.as_bytes(), &kdf));
    let jitter: Vec<u32> = rhythm.iter().enumerate().map(|(i, d)| d + (i as u32 % 4) * 7).collect();
    let again = dirbroker_proto::keystroke::harden(PASSWORD, &jitter).unwrap();
    assert_eq!(p_c, recomputed_p_c(again.as_bytes(), &kdf));
    let other: Vec<u32> = PASSWORD.chars().enumerate().map(|(i, _)| if i % 3 == 1 { 260 } else { 70 }).collect();
    let wrong = dirbroker_proto::keystroke::harden(PASSWORD, &other).unwrap();
    assert_ne!(p_c, recomputed_p_c(wrong.as_bytes(), &kdf));

    // A rhythm that cannot be classified is refused before anything is sent.
    let mut ambiguous = vec![100u32; PASSWORD.chars().count()];
    if let Some(first) = ambiguous.first_mut() {
        *first = 250;
    }
    if let Some(second) = ambiguous.get_mut(1) {
        *second = 180;
    }
    let invite = s.invite("dave", &[]);
    let o = s.register("dave", &invite, Some(&ambiguous));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("keystroke"), "{}", text(&o));
    assert!(s.user("dave").await.public_value.is_none());
}

#[tokio::test]
async fn sso_register_invitation_works_once_and_not_after_expiry() {
    let s = site().await;
    let invite = s.invite("carol", &[]);
    let o = s.register("carol", &invite, None);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o), s.broker.log());
    let before = s.user("carol").await;

    // Second use: refused, nothing written.
    let o = s.register("carol", &invite, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("invitation is invalid, expired or used"), "{}", text(&o));
    assert_eq!(s.user("carol").await, before);

    // A fresh invitation for carol, but dave's code: refused, nothing written.
    let _carol_again = s.invite("carol", &[]);
    let dave_invite = s.invite("dave", &[]);
    let o = s.register("carol", &dave_invite, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(s.user("carol").await, before);
    assert!(s.broker.log().contains("wrong invitation code"), "{}", s.broker.log());

    // Expired: the stored expiry moved into the past (as time would).
    let value = String::from_utf8(s.invitation_value("dave").await.unwrap()).unwrap();
    let past: String = value
        .split(';')
        .map(|part| if part.starts_with("expires=") { "expires=1000000000".to_string() } else { part.to_string() })
        .collect::<Vec<_>>()
        .join(";");
    let dir = s.admin().await;
    let dn = s.user("dave").await.dn(dir.layout()).unwrap();
    dir.modify(&dn, vec![Change::Replace(b"dirbrokerInvitation".to_vec(), [past.into_bytes()].into_iter().collect())])
        .await
        .unwrap();
    let o = s.register("dave", &dave_invite, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("expired"), "{}", text(&o));
    assert!(s.user("dave").await.public_value.is_none());
    assert!(s.broker.log().contains("invitation expired"), "{}", s.broker.log());

    // Two registrations racing with one invitation: both reach ANS, one publishes.
    let invite = s.invite("erin", &[]);
    let first = begin(&s, "erin", &invite).await;
    let second = begin(&s, "erin", &invite).await;
    let (a, b) = tokio::join!(finish(&s, first, |_| {}), finish(&s, second, |_| {}));
    let mut statuses = [a.share_status, b.share_status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", a.share_body, b.share_body);
}

#[tokio::test]
async fn sso_register_refuses_tampered_state_wrong_certificates_and_bad_json() {
    let s = site().await;

    // A state blob with one bit flipped: refused by the broker, through ANS; nothing written.
    let invite = s.invite("alice", &[]);
    let c = register_in_process(&s, "alice", &invite, |state| {
        let mut raw = URL_SAFE_NO_PAD.decode(state.as_bytes()).unwrap();
        let last = raw.len() - 20;
        raw[last] ^= 1;
        *state = URL_SAFE_NO_PAD.encode(raw);
    })
    .await;
    assert_eq!(c.share_status, 400, "{}", c.share_body);
    assert!(c.share_body["error"].as_str().unwrap().contains("does not open"), "{}", c.share_body);
    let alice = s.user("alice").await;
    assert!(alice.public_value.is_none() && alice.password_kdf.is_none());
    assert!(s.invitation_value("alice").await.is_some(), "a refused registration keeps the invitation");

    // ANS's /v1/mcode: broker only.
    let ans = format!("https://{}", s.ans.addr);
    let body = serde_json::json!({ "mcode": {}, "level": 2 });
    let r = s.http(Some("svc")).post(format!("{ans}/v1/mcode")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("service certificate may not"), "{v}");
    let r = s.http(None).post(format!("{ans}/v1/mcode")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // AMS's /v1/agents: broker only (the ANS's own certificate is not enough).
    let r = s
        .http(Some("ans"))
        .post(format!("https://{}/v1/agents", s.ams.addr))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The broker's /v1/sso/userlevel: ANS only.
    for who in [Some("ams"), Some("broker"), Some("svc"), None] {
        let r = s
            .http(who)
            .post(format!("{}/v1/sso/userlevel", s.broker_url()))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if who.is_none() { 401 } else { 403 }, "{who:?}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
    }

    // Malformed and oversized JSON: 4xx with a message.
    let http = s.http(None);
    for (url, body, want) in [
        (format!("{}/v1/sso/register", s.broker_url()), "{\"registration\": 1".to_string(), 400),
        (format!("{}/v1/sso/register", s.broker_url()), "{\"invitation\": \"x\"}".to_string(), 400),
        (format!("{ans}/v1/share"), "[1,2,3]".to_string(), 400),
        (format!("{}/v1/sso/register", s.broker_url()), format!("{{\"pad\": \"{}\"}}", "x".repeat(80 * 1024)), 413),
        (format!("{ans}/v1/share"), format!("{{\"pad\": \"{}\"}}", "x".repeat(80 * 1024)), 413),
    ] {
        let r = http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{url}");
        let v: Value = r.json().await.unwrap();
        assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    }
    assert!(s.user("alice").await.public_value.is_none());
    assert!(s.user("bob").await.public_value.is_none());
}

/// A client with the bundle `who` reaches `url`'s route: the TLS handshake
/// passes (whatever the route then answers).
async fn handshake_passes(s: &Site, who: &str, url: &str) -> bool {
    s.http(Some(who)).post(url).json(&serde_json::json!({})).send().await.is_ok()
}

/// Issue #13 item 12: AMS and ANS read the CRL again (`--crl-refresh`), and
/// the broker's client to them does too (`crl_refresh_s`): a certificate
/// revoked after they started is refused within the interval.
#[tokio::test]
async fn sso_agents_and_the_broker_refuse_certificates_revoked_after_they_started() {
    let s = site().await;
    dirbroker(&s.cfg, &["ca", "issue", "broker", "broker-2", "--ip", "127.0.0.1", "--out", &s.p("broker2")]);
    let ams = format!("https://{}/v1/agents", s.ams.addr);
    let ans = format!("https://{}/v1/mcode", s.ans.addr);
    // Before: both take broker-2's certificate (the empty body is what they refuse).
    for url in [&ams, &ans] {
        let r = s.http(Some("broker2")).post(url.as_str()).json(&serde_json::json!({})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
    }
    let invite = s.invite("alice", &[]);
    let c = register_in_process(&s, "alice", &invite, |_| {}).await;
    assert_eq!(c.share_status, 200, "{}", c.share_body);

    // Revoked while AMS and ANS run: refused by both within a few refreshes.
    dirbroker(&s.cfg, &["ca", "revoke", "--cert", &s.p("broker2/cert.pem")]);
    within(Duration::from_secs(10), || async {
        !handshake_passes(&s, "broker2", &ams).await && !handshake_passes(&s, "broker2", &ans).await
    })
    .await
    .unwrap_or_else(|| panic!("AMS and ANS still take the revoked certificate after 10 s\n{}", s.logs()));
    assert!(s.ams.log().contains("new CRL in force"), "{}", s.ams.log());
    assert!(s.ans.log().contains("new CRL in force"), "{}", s.ans.log());
    // The broker's own certificate is not revoked: registration still works.
    let invite = s.invite("bob", &[]);
    let c = register_in_process(&s, "bob", &invite, |_| {}).await;
    assert_eq!(c.share_status, 200, "{}", c.share_body);

    // The AMS's certificate revoked while the broker runs: the broker's
    // client to the AMS refuses it within a few refreshes.
    dirbroker(&s.cfg, &["ca", "revoke", "--cert", &s.p("ams/cert.pem")]);
    let invite = s.invite("carol", &[]);
    let start = Instant::now();
    let last = loop {
        let (status, body) = try_register(&s, "carol", &invite).await;
        if status == 502 {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the broker still takes the revoked AMS: {status} {body}\n{}",
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let err = last["error"].as_str().unwrap();
    assert!(err.contains("AMS") && err.contains("Revoked"), "{err}");
    assert!(s.user("carol").await.public_value.is_none());
}

/// Issue #13 item 12: a CRL past its nextUpdate refuses every certificate
/// (fail closed, logged), and a fresh CRL read the usual way ends that.
#[tokio::test]
async fn sso_agents_refuse_every_certificate_while_the_crl_is_past_next_update() {
    let s = site().await;
    dirbroker(&s.cfg, &["ca", "issue", "broker", "broker-2", "--ip", "127.0.0.1", "--out", &s.p("broker2")]);
    let ams = format!("https://{}/v1/agents", s.ams.addr);
    let ans = format!("https://{}/v1/mcode", s.ans.addr);
    assert!(handshake_passes(&s, "broker2", &ams).await && handshake_passes(&s, "broker2", &ans).await);

    // A CRL the CA signed eight days ago (valid seven): no serial in it, but stale.
    let config = dirbroker::config::Config::load(&s.cfg).unwrap();
    let ca = dirbroker::ca::Ca::load(&config.ca.key_file, &config.ca.cert_file).unwrap();
    let dir = s.admin().await;
    let dn = dir.layout().pki.child("cn", "ca").unwrap();
    let attr = "certificateRevocationList;binary";
    let current = dir.read(&dn, &[attr]).await.unwrap();
    let der = dirbroker::serve::tls::binary(&current, attr).unwrap();
    let (number, revoked) = dirbroker::ca::parse_crl(&der).unwrap();
    let stale = ca.crl(&revoked, number + 1, dirbroker::clock::now() - time::Duration::days(8)).unwrap();
    dir.modify(&dn, vec![Change::Replace(attr.as_bytes().to_vec(), [stale].into_iter().collect())]).await.unwrap();

    within(Duration::from_secs(10), || async {
        !handshake_passes(&s, "broker2", &ams).await && !handshake_passes(&s, "broker2", &ans).await
    })
    .await
    .unwrap_or_else(|| panic!("AMS and ANS still take a certificate under a stale CRL\n{}", s.logs()));
    for (name, log) in [("ams", s.ams.log()), ("ans", s.ans.log()), ("serve", s.broker.log())] {
        assert!(log.contains("past its nextUpdate"), "{name}: {log}");
    }
    // Registration needs the broker and its agents to accept each other: refused.
    let invite = s.invite("alice", &[]);
    let (status, body) = try_register(&s, "alice", &invite).await;
    assert_eq!(status, 502, "{body}");

    // A fresh CRL (the cron job's `ca refresh-crl`) is read although the
    // one in force is stale, and ends the refusal.
    dirbroker(&s.cfg, &["ca", "refresh-crl"]);
    within(Duration::from_secs(10), || async {
        handshake_passes(&s, "broker2", &ams).await && handshake_passes(&s, "broker2", &ans).await
    })
    .await
    .unwrap_or_else(|| panic!("AMS and ANS still refuse under a fresh CRL\n{}", s.logs()));
    let c = register_in_process(&s, "alice", &invite, |_| {}).await;
    assert_eq!(c.share_status, 200, "{}", c.share_body);
}

/// Issue #13 item 12 (S1): clients take "the broker" by kind, not only by CA
/// and host name. The ANS's certificate is valid, from the same CA, for the
/// same address: the registration client, an AMS and a data center that are
/// pointed at it as their broker refuse it.
#[tokio::test]
async fn a_valid_certificate_of_another_kind_is_not_taken_for_the_broker() {
    let s = site().await;
    let impostor = format!("https://{}", s.ans.addr);

    let invite = s.invite("alice", &[]);
    let mut cmd = Command::new(dirbroker_bin());
    cmd.args(["register", "alice", "--broker", &impostor, "--ca", &s.p("broker/ca.pem")]).args([
        "--invite-file",
        invite.to_str().unwrap(),
        "--allow-weak-kdf",
    ]);
    let o = run_with_stdin(&mut cmd, &format!("{PASSWORD}\n"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ans certificate, not a broker one"), "{}", text(&o));

    let o = Command::new(agents_bin())
        .args(["ams", "--bundle", &s.p("ams"), "--broker", &impostor, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("ans certificate, not a broker one"), "{}", text(&o));

    dirbroker(&s.cfg, &["dc", "add", "DC-TEST-1", "--endpoint", "127.0.0.1:1", "--out", &s.p("dc")]);
    let o = Command::new(agents_bin())
        .args(["dc", "--bundle", &s.p("dc"), "--broker", &impostor, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("ans certificate, not a broker one"), "{}", text(&o));

    // The real broker, same CA and address: taken.
    let o = s.register("alice", &invite, None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Issue #13 item 13: ANS checks the share before it lets the registration
/// go, and bounds the registrations waiting for a share, per user (one
/// invitation names one user) and in all.
#[tokio::test]
async fn ans_keeps_a_registration_through_a_wrong_share_and_bounds_pending_ones() {
    let s = site_with(&["--max-pending-per-user", "2", "--max-pending", "3"]).await;
    let alice_invite = s.invite("alice", &[]);
    let first = begin(&s, "alice", &alice_invite).await;
    let _second = begin(&s, "alice", &alice_invite).await;

    // One invitation cannot hold more than its bound: a clear refusal, 429.
    let (status, body) = try_register(&s, "alice", &alice_invite).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("waiting for their share"), "{body}");

    // Another invitation still works while alice is at her bound.
    let bob_invite = s.invite("bob", &[]);
    let bob = begin(&s, "bob", &bob_invite).await;

    // The ANS's bound in all: 503, retry later.
    let carol_invite = s.invite("carol", &[]);
    let (status, body) = try_register(&s, "carol", &carol_invite).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("registrations are waiting"), "{body}");

    // A wrong share (one bit of the binder) is refused and consumes nothing:
    // the right share afterwards publishes.
    let wrong = wrong_share(&s, &first).await;
    assert_eq!(wrong.share_status, 403, "{}", wrong.share_body);
    assert!(s.ans.log().contains("the registration still waits"), "{}", s.ans.log());
    let right = finish(&s, first, |_| {}).await;
    assert_eq!(right.share_status, 200, "{}", right.share_body);
    assert!(s.user("alice").await.public_value.is_some());
    let right = finish(&s, bob, |_| {}).await;
    assert_eq!(right.share_status, 200, "{}", right.share_body);

    // Published registrations free their places: carol gets in now.
    let carol = begin(&s, "carol", &carol_invite).await;
    let c = finish(&s, carol, |_| {}).await;
    assert_eq!(c.share_status, 200, "{}", c.share_body);
}
