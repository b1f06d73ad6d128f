//! SSO tickets end to end (seed 002 stages 3–7), every actor its own
//! process: the project's slapd, `dirbroker serve`, the example Kerberized
//! service (`dirbroker-agents example-service`) and the `dirbroker` CLI as a
//! user runs it. Users are registered in-process with the proto library
//! (registration through AMS/ANS is tested elsewhere) and written to LDAP
//! through the model. External judges: `oathtool` makes the OTP codes,
//! Python's PyJWT verifies a server ticket against the broker's JWKS.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dirbroker::model::{Level, User};
use dirbroker_proto::api::sso::PasswordKdf;
use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::session::ClientCredential;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{
    Daemon, agents_bin, dirbroker_bin, free_port, scratch_dir, serve_section, start, text,
};

pub(crate) const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const LIFETIME: i64 = 600;
/// The broker's one answer to a wrong password or a missing or wrong OTP code.
const LOGIN_REFUSED: &str = "login refused: wrong password or OTP code";

pub(crate) fn oathtool(counter: u64) -> String {
    let o = Command::new("oathtool").args(["--hotp", "-b", SECRET_B32, "-c", &counter.to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

pub(crate) fn private(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

pub(crate) struct Site {
    _tmp: tempfile::TempDir,
    pub(crate) t: PathBuf,
    pub(crate) cfg: PathBuf,
    pub(crate) broker: Daemon,
    service: Daemon,
    service_port: u16,
    _ams: Daemon,
    _ans: Daemon,
}

impl Site {
    pub(crate) fn p(&self, name: &str) -> String {
        self.t.join(name).to_str().unwrap().to_string()
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.broker.addr)
    }

    /// `dirbroker ARGS` as a user runs it (no configuration needed).
    pub(crate) fn cli(&self, ccache: &str, args: &[&str]) -> Output {
        Command::new(dirbroker_bin())
            .args(args)
            .env("DIRBROKER_CCACHE", self.p(ccache))
            .env("DIRBROKER_CONFIG", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn login(&self, ccache: &str, uid: &str, password: &str, otp: Option<&str>) -> Output {
        private(&self.t.join(format!("{uid}.pw")), password);
        let mut args: Vec<String> =
            vec!["login".into(), uid.into(), "--broker".into(), self.url(), "--ca".into(), self.p("broker/ca.pem")];
        args.extend(["--password-file".into(), self.p(&format!("{uid}.pw"))]);
        if let Some(code) = otp {
            private(&self.t.join("otp"), code);
            args.extend(["--otp-file".into(), self.p("otp")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(ccache, &args)
    }

    fn call(&self, ccache: &str, request: &str) -> Output {
        self.call_at(ccache, &format!("127.0.0.1:{}", self.service_port), request)
    }

    fn call_at(&self, ccache: &str, endpoint: &str, request: &str) -> Output {
        self.cli(ccache, &["ticket", "use", "kv", "--endpoint", endpoint, "--request", request])
    }
}

pub(crate) fn dirbroker(cfg: &Path, args: &[&str]) -> Output {
    Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", cfg).output().unwrap()
}

/// Registers `uid` in-process: pw from the password (production-minimum
/// Argon2id), P_c = g^pw, the KDF record and the level on the user entry.
pub(crate) async fn register(
    bed: &dirbroker_testbed::harness::Bed,
    uid: &str,
    password: &str,
    level: Level,
    publish: bool,
) {
    let dir = bed.dir_as(Identity::Admin).await;
    let mut u = User::new(uid, &format!("User {uid}")).unwrap();
    u.level = level;
    if publish {
        let salt = dirbroker_proto::sso::primitives::sha256(uid.as_bytes());
        let salt = &salt[..16];
        let pw = derive_pw(password.as_bytes(), salt, &KdfParams::MINIMUM).unwrap();
        u.public_value = Some(pw.public().unwrap().to_bytes());
        u.public_value_time = Some(dirbroker::clock::now());
        let kdf = PasswordKdf { alg: "argon2id".into(), salt: salt.to_vec().into(), params: KdfParams::MINIMUM };
        u.password_kdf = Some(kdf.to_value());
    }
    dir.create(&u).await.unwrap();
}

pub(crate) async fn site() -> (dirbroker_testbed::harness::Bed, Site) {
    let bed = start().await;
    let tmp = scratch_dir();
    let t = tmp.path().to_path_buf();
    let cfg = bed.dir().join("dirbroker.toml");
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let o = dirbroker(&cfg, args);
        assert!(o.status.success(), "dirbroker {args:?}: {}", text(&o));
        o
    };
    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--ip", "127.0.0.1", "--out", &p("broker")]);
    // Registration's agents (stages 1–2), for the test that registers for real.
    let (ams_port, ans_port) = (free_port(), free_port());
    run(&["agent", "add", "ans", "ans-1", "--endpoint", &format!("127.0.0.1:{ans_port}"), "--out", &p("ans")]);
    run(&["agent", "add", "ams", "ams-1", "--endpoint", &format!("127.0.0.1:{ams_port}"), "--out", &p("ams")]);
    // Keys go into the testbed's [sso] section (it has signing_key_file);
    // registration uses the KDF floor clients accept (19 MiB, t=2).
    let toml = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(toml.matches("[sso]").count(), 1);
    let toml = toml.replace(
        "[sso]\n",
        &format!(
            "[sso]\nticket_lifetime_s = {LIFETIME}\nams_url = \"https://127.0.0.1:{ams_port}\"\n\
             ans_url = \"https://127.0.0.1:{ans_port}\"\nkdf_memory_kib = 19456\nkdf_iterations = 2\n"
        ),
    );
    std::fs::write(&cfg, format!("{toml}{}", serve_section(&t.join("broker"), ""))).unwrap();

    // Stage 0: the ticket-signing key, 0600, never overwritten.
    let o = run(&["--output", "json", "sso", "init"]);
    let init: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let key_file = PathBuf::from(init["key_file"].as_str().unwrap());
    assert_eq!(mode(&key_file), 0o600);
    let before = std::fs::read(&key_file).unwrap();
    let again = dirbroker(&cfg, &["sso", "init"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("not overwriting"), "{}", text(&again));
    assert_eq!(std::fs::read(&key_file).unwrap(), before);

    // Stage 3: the service registers P_k; r_k stays in its 0600 key file.
    let service_port = free_port();
    run(&[
        "service",
        "add",
        "kv",
        "--endpoint",
        &format!("127.0.0.1:{service_port}"),
        "--min-level",
        "1",
        "--out",
        &p("kv.key"),
    ]);
    assert_eq!(mode(&t.join("kv.key")), 0o600);
    let list = run(&["--output", "json", "service", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], "kv");
    assert_eq!(list[0]["has_p_k"], true);
    let dup = dirbroker(&cfg, &["service", "add", "kv", "--out", &p("kv2.key")]);
    assert!(!dup.status.success() && !t.join("kv2.key").exists(), "{}", text(&dup));

    let seed = t.join("alice.b32");
    private(&seed, SECRET_B32);
    register(&bed, "alice", "alice password", Level::Normal, true).await;
    register(&bed, "carol", "carol password", Level::Temporary, true).await;
    register(&bed, "dave", "dave password", Level::Admin, true).await;
    register(&bed, "erin", "erin password", Level::Normal, false).await;
    run(&["otp", "import", "alice", "--type", "hotp", "--secret-file", seed.to_str().unwrap(), "--id", "alice-hotp"]);

    let broker =
        Daemon::start(Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", &cfg), t.join("serve.log"));
    let service = example_service(&t, &broker.addr, service_port, 0, "kv.log");
    let agent = |role: &str, port: u16| {
        let mut cmd = Command::new(agents_bin());
        cmd.args([role, "--bundle", &p(role), "--broker", &format!("https://{}", broker.addr)])
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        Daemon::start(&mut cmd, t.join(format!("{role}.log")))
    };
    let _ans = agent("ans", ans_port);
    let _ams = agent("ams", ams_port);
    (bed, Site { _tmp: tmp, t, cfg, broker, service, service_port, _ams, _ans })
}

fn example_service(t: &Path, broker: &str, port: u16, clock_offset: i64, log: &str) -> Daemon {
    example_service_for(t, "kv", broker, port, clock_offset, log)
}

fn example_service_for(t: &Path, id: &str, broker: &str, port: u16, clock_offset: i64, log: &str) -> Daemon {
    let mut cmd = Command::new(agents_bin());
    let key = t.join(format!("{id}.key"));
    cmd.args(["example-service", "--key-file", key.to_str().unwrap(), "--service-id", id])
        .args(["--broker", &format!("https://{broker}"), "--ca", t.join("broker/ca.pem").to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DIRBROKER_INSECURE_TEST_CLOCK_OFFSET_S", clock_offset.to_string());
    Daemon::start(&mut cmd, t.join(log))
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn refused(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(text(o).contains(needle), "want {needle:?} in: {}", text(o));
}

#[tokio::test]
async fn login_tickets_levels_replay_and_expiry() {
    let (bed, s) = site().await;

    // Login with password + OTP; the same OTP again is refused; a wrong password is refused.
    let out = ok(&s.login("cc-alice", "alice", "alice password", Some(&oathtool(0))));
    assert!(out.contains("logged in as alice (level 2)"), "{out}");
    let cc = s.t.join("cc-alice");
    assert_eq!(mode(&cc), 0o600);
    // A used code, a wrong password, no code: one answer (audit F5).
    refused(&s.login("cc-x", "alice", "alice password", Some(&oathtool(0))), LOGIN_REFUSED);
    refused(&s.login("cc-x", "alice", "not the password", Some(&oathtool(1))), LOGIN_REFUSED);
    let no_code = s.login("cc-x", "alice", "alice password", None);
    refused(&no_code, LOGIN_REFUSED);
    assert!(text(&no_code).contains("pass --otp-file FILE"), "{}", text(&no_code));
    // Unregistered and unknown users get the answer of a wrong password.
    let wrong = s.login("cc-x", "alice", "not the password", None);
    for o in [s.login("cc-x", "erin", "erin password", None), s.login("cc-x", "nobody", "x", None)] {
        refused(&o, "wrong password or OTP code");
        assert_eq!(String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&wrong.stderr));
    }
    assert!(!s.t.join("cc-x").exists());

    // The ccache holds the TGT and SK, never the password or pw.
    let cache = std::fs::read_to_string(&cc).unwrap();
    let salt = dirbroker_proto::sso::primitives::sha256(b"alice");
    let pw = derive_pw(b"alice password", &salt[..16], &KdfParams::MINIMUM).unwrap().to_fixed_bytes();
    let pw_b64 = dirbroker_proto::sso::primitives::b64(&pw);
    let pw_hex: String = pw.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!cache.contains("alice password") && !cache.contains(&pw_b64) && !cache.contains(&pw_hex));
    let cache_json: serde_json::Value = serde_json::from_str(&cache).unwrap();
    assert!(cache_json["login"]["tgt"].as_str().unwrap().split('.').count() == 3);

    // klist-like listing.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&s.cli("cc-alice", &["--output", "json", "tickets"]))).unwrap();
    assert_eq!(list["principal"], "alice");
    assert_eq!(list["tickets"][0]["kind"], "tgt");
    assert_eq!(list["tickets"][0]["service"], "dirbroker");
    assert_eq!(list["tickets"][0]["level"], 2);
    let until = list["tickets"][0]["valid_until"].as_i64().unwrap();
    let from = list["tickets"][0]["valid_from"].as_i64().unwrap();
    assert_eq!(until - from, LIFETIME);

    // A service ticket, then the service: level 2 writes and reads, but no admin.
    assert!(ok(&s.cli("cc-alice", &["ticket", "get", "kv"])).contains("ticket for kv as alice (level 2)"));
    let text_list = ok(&s.cli("cc-alice", &["tickets"]));
    assert!(text_list.contains("Default principal: alice (level 2)") && text_list.contains(" kv"), "{text_list}");
    assert!(ok(&s.call("cc-alice", "write motd hello")).contains("ok write by alice (level 2): motd stored"));
    assert!(ok(&s.call("cc-alice", "read motd")).contains("motd = hello"));
    refused(&s.call("cc-alice", "admin stats"), "level 2 is below the required level 4");
    refused(&s.cli("cc-alice", &["ticket", "get", "nope"]), "no service");

    // Level 1 reads but may not write; level 4 administers.
    ok(&s.login("cc-carol", "carol", "carol password", None));
    assert!(ok(&s.call("cc-carol", "read motd")).contains("ok read by carol (level 1): motd = hello"));
    refused(&s.call("cc-carol", "write motd bye"), "level 1 is below the required level 2");
    ok(&s.login("cc-dave", "dave", "dave password", None));
    assert!(ok(&s.call("cc-dave", "admin stats")).contains("ok admin by dave (level 4): 1 keys"));

    // Anonymous login is off unless the operator turns it on (audit F2;
    // the test below turns it on).
    refused(
        &s.cli("cc-anon", &["login", "--anonymous", "--broker", &s.url(), "--ca", &s.p("broker/ca.pem")]),
        "anonymous login is off on this broker",
    );
    assert!(!s.t.join("cc-anon").exists());

    // A captured ServiceRequest sent again, byte for byte, is refused.
    let dump = s.p("captured.frame");
    ok(&s.cli(
        "cc-alice",
        &[
            "ticket",
            "use",
            "kv",
            "--endpoint",
            &format!("127.0.0.1:{}", s.service_port),
            "--request",
            "read motd",
            "--dump-request",
            &dump,
        ],
    ));
    let frame = std::fs::read(&dump).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.service_port)).unwrap();
    sock.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    sock.read_exact(&mut body).unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["error"], "replayed message", "{answer}");
    assert!(answer.get("reply").is_none());
    assert!(s.service.log().contains("request refused: replayed message"));

    // The account rule at every ticket, not only at login: a TGT obtained
    // before the account was disabled, made not yet valid, or lowered in
    // level gets no more tickets; enabled again, the same TGT works.
    let admin = bed.dir_as(Identity::Admin).await;
    let dn = |uid: &str| dirbroker::directory::Dn::parse(&format!("uid={uid},ou=people,dc=example,dc=org")).unwrap();
    let set = |uid: &str, attr: &str, value: String| {
        let (admin, dn) = (&admin, dn(uid));
        let change = dirbroker::directory::Change::Replace(attr.as_bytes().to_vec(), [value.into_bytes()].into());
        async move { admin.modify(&dn, vec![change]).await.unwrap() }
    };
    ok(&dirbroker(&s.cfg, &["user", "disable", "carol"]));
    const AGAIN: &str = "log in again";
    refused(&s.cli("cc-carol", &["ticket", "get", "kv"]), AGAIN);
    // Disabled: the right password gets the answer of a wrong one.
    refused(&s.login("cc-x", "carol", "carol password", None), "wrong password or OTP code");
    assert!(s.broker.log().contains("SSO login refused: the account is disabled"), "{}", s.broker.log());
    assert!(ok(&dirbroker(&s.cfg, &["user", "enable", "carol"])).contains("carol enabled"));
    assert!(ok(&s.cli("cc-carol", &["ticket", "get", "kv"])).contains("ticket for kv as carol (level 1)"));
    set("alice", "dirbrokerNotBefore", "20991231000000Z".into()).await;
    refused(&s.cli("cc-alice", &["ticket", "get", "kv"]), AGAIN);
    set("alice", "dirbrokerNotBefore", "20000101000000Z".into()).await;
    assert!(ok(&s.cli("cc-alice", &["ticket", "get", "kv"])).contains("as alice (level 2)"));
    set("dave", "dirbrokerUserLevel", "2".into()).await;
    refused(&s.cli("cc-dave", &["ticket", "get", "kv"]), AGAIN);
    assert!(s.broker.log().contains("ticket refused: level 4 in the TGT, 2 now"), "{}", s.broker.log());

    // Expired: the same ticket at a service whose clock stands past exp + 300 s skew.
    let late_port = free_port();
    let late = example_service(&s.t, &s.broker.addr, late_port, LIFETIME + 310, "kv-late.log");
    refused(&s.call_at("cc-alice", &format!("127.0.0.1:{late_port}"), "read motd"), "ticket expired");
    drop(late);
    assert!(s.broker.log().contains("SSO login: TGT issued"));
    let _ = &s.cfg;
}

#[tokio::test]
async fn pyjwt_verifies_a_server_ticket_against_the_jwks() {
    let (_bed, s) = site().await;
    ok(&s.login("cc", "dave", "dave password", None));
    ok(&s.cli("cc", &["ticket", "get", "kv"]));
    let cache: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.t.join("cc")).unwrap()).unwrap();
    let ticket = cache["tickets"]["kv"]["server_ticket"].as_str().unwrap().to_string();
    std::fs::write(s.t.join("ticket.jwt"), &ticket).unwrap();
    // The JWKS as any client fetches it.
    let jwks = s.p("jwks.json");
    let o = Command::new("curl")
        .args(["-sSf", "--cacert", &s.p("broker/ca.pem"), "-o", &jwks])
        .arg(format!("{}/.well-known/jwks.json", s.url()))
        .output()
        .unwrap();
    assert!(o.status.success(), "curl: {}", text(&o));
    // A tampered copy: level raised in the payload, signature kept.
    let parts: Vec<&str> = ticket.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    let tampered = format!("{}.{}.{}", parts[0], b64.encode(serde_json::to_vec(&claims).unwrap()), parts[2]);
    std::fs::write(s.t.join("tampered.jwt"), &tampered).unwrap();
    let script = r#"
import json, sys, jwt
jwks = jwt.PyJWKSet.from_dict(json.load(open(sys.argv[1])))
token = open(sys.argv[2]).read().strip()
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks.keys if k.key_id == kid)
try:
    c = jwt.decode(token, key=key.key, algorithms=["EdDSA"], audience=sys.argv[3], issuer=sys.argv[4])
except jwt.InvalidTokenError as e:
    print("REJECTED", type(e).__name__)
    sys.exit(3)
print(json.dumps({"sub": c["sub"], "aud": c["aud"], "iss": c["iss"], "level": c["level"], "tkt": c["tkt"]}))
"#;
    let py = |token: &str, aud: &str| {
        Command::new("/usr/bin/python3").args(["-c", script, &jwks, &s.p(token), aud, "dirbroker"]).output().unwrap()
    };
    let good = py("ticket.jwt", "kv");
    assert!(good.status.success(), "PyJWT: {}", text(&good));
    let c: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(c, serde_json::json!({"sub": "dave", "aud": "kv", "iss": "dirbroker", "level": 4, "tkt": "service"}));
    let bad = py("tampered.jwt", "kv");
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    assert!(text(&bad).contains("REJECTED InvalidSignatureError"), "{}", text(&bad));
    let wrong_aud = py("ticket.jwt", "other-service");
    assert_eq!(wrong_aud.status.code(), Some(3), "{}", text(&wrong_aud));
    assert!(text(&wrong_aud).contains("InvalidAudienceError"), "{}", text(&wrong_aud));
}

#[tokio::test]
async fn registered_through_ams_and_ans_then_logs_in_and_calls_the_service() {
    let (_bed, s) = site().await;
    // Stages 1–2 for real: invitation, `dirbroker register` with AMS and ANS.
    let invite = s.t.join("frank.invite");
    let o = dirbroker(&s.cfg, &["user", "add", "frank", "--name", "Frank"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = dirbroker(&s.cfg, &["user", "invite", "frank", "--level", "3", "--out", invite.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    private(&s.t.join("frank.pw"), "frank's password");
    let o = Command::new(dirbroker_bin())
        .args(["register", "frank", "--broker", &s.url(), "--ca", &s.p("broker/ca.pem")])
        .args(["--invite-file", invite.to_str().unwrap(), "--password-file", &s.p("frank.pw")])
        .env("DIRBROKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "register: {}\n--- serve\n{}", text(&o), s.broker.log());
    // Stages 3–7: the published P_c and KDF record are what login uses.
    let out = ok(&s.login("cc-frank", "frank", "frank's password", None));
    assert!(out.contains("logged in as frank (level 3)"), "{out}");
    refused(&s.login("cc-y", "frank", "not frank's password", None), LOGIN_REFUSED);
    assert!(ok(&s.call("cc-frank", "write motd from-frank")).contains("ok write by frank (level 3)"));
    refused(&s.call("cc-frank", "admin stats"), "level 3 is below the required level 4");

    // Keystroke hardening (seed 004): registered with a rhythm, the user logs
    // in with the same rhythm (jittered); the plain password or another rhythm fails.
    let pw = "gina's password";
    let rhythm: Vec<u32> = pw.chars().enumerate().map(|(i, _)| if i % 3 == 0 { 260 } else { 70 }).collect();
    let jitter: Vec<u32> = rhythm.iter().enumerate().map(|(i, d)| d + (i as u32 % 4) * 7).collect();
    let other: Vec<u32> = pw.chars().enumerate().map(|(i, _)| if i % 3 == 1 { 260 } else { 70 }).collect();
    for (name, d) in [("gina.keys", &rhythm), ("gina-jitter.keys", &jitter), ("gina-other.keys", &other)] {
        std::fs::write(s.t.join(name), serde_json::to_string(d).unwrap()).unwrap();
    }
    let invite = s.t.join("gina.invite");
    assert!(dirbroker(&s.cfg, &["user", "add", "gina", "--name", "Gina"]).status.success());
    assert!(dirbroker(&s.cfg, &["user", "invite", "gina", "--out", invite.to_str().unwrap()]).status.success());
    private(&s.t.join("gina.pw"), pw);
    let o = Command::new(dirbroker_bin())
        .args(["register", "gina", "--broker", &s.url(), "--ca", &s.p("broker/ca.pem")])
        .args(["--invite-file", invite.to_str().unwrap(), "--password-file", &s.p("gina.pw")])
        .args(["--keystroke-file", &s.p("gina.keys")])
        .output()
        .unwrap();
    assert!(o.status.success(), "register: {}", text(&o));
    let login_with = |keys: Option<&str>| {
        let mut args = vec!["login".to_string(), "gina".into(), "--broker".into(), s.url()];
        args.extend(["--ca".into(), s.p("broker/ca.pem"), "--password-file".into(), s.p("gina.pw")]);
        if let Some(k) = keys {
            args.extend(["--keystroke-file".into(), s.p(k)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.cli("cc-gina", &args)
    };
    assert!(ok(&login_with(Some("gina-jitter.keys"))).contains("logged in as gina"));
    refused(&login_with(None), LOGIN_REFUSED);
    refused(&login_with(Some("gina-other.keys")), LOGIN_REFUSED);
}

impl Site {
    /// An HTTPS client trusting the broker CA, without a client certificate
    /// (what anyone on the network has).
    pub(crate) fn http(&self) -> reqwest::Client {
        use rustls_pki_types::pem::PemObject;
        dirbroker::install_crypto_provider();
        let ca = rustls_pki_types::CertificateDer::from_pem_file(self.p("broker/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
    }

    /// POSTs a login body to `broker` as raw bytes: (status, body) as sent back.
    async fn post_login(&self, broker: &str, body: &[u8]) -> (u16, String) {
        let r = self
            .http()
            .post(format!("https://{broker}/v1/sso/login"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The broker's count of login proofs it computed (`GET /metrics`).
    async fn proofs_verified(&self, broker: &str) -> u64 {
        let text = self.http().get(format!("https://{broker}/metrics")).send().await.unwrap().text().await.unwrap();
        let line = text.lines().find(|l| l.starts_with("dirbroker_sso_login_proofs_verified_total ")).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// A second `dirbroker serve` on the same directory and keys, with
    /// `settings` added to its [sso] section.
    fn broker_with(&self, settings: &str, name: &str) -> Daemon {
        let toml = std::fs::read_to_string(&self.cfg).unwrap().replace("[sso]\n", &format!("[sso]\n{settings}\n"));
        let cfg = self.t.join(format!("{name}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        Daemon::start(
            Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", &cfg),
            self.t.join(format!("{name}.log")),
        )
    }
}

/// A login body made in-process for `uid` (as `register` published it),
/// with `password` and, if given, an OTP code: the bytes a client sends.
fn login_body(uid: &str, password: &str, otp: Option<&str>) -> Vec<u8> {
    let salt = dirbroker_proto::sso::primitives::sha256(uid.as_bytes());
    let cred = ClientCredential::derive(uid, password.as_bytes(), &salt[..16], &KdfParams::MINIMUM).unwrap();
    let now = dirbroker::clock::now().unix_timestamp();
    let req = cred.login_request("dirbroker", now, &mut dirbroker::clock::rng()).unwrap();
    let mut v = serde_json::to_value(req).unwrap();
    if let Some(code) = otp {
        v["otp"] = code.into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// Issue #13 item 2 (audit F1, F5): a captured login replayed costs no
/// proof verification; failures back off per user while others log in; a
/// right password without the OTP reads exactly like a wrong password.
#[tokio::test]
async fn login_replays_guessing_and_the_second_factor() {
    let (bed, s) = site().await;
    let broker = s.broker.addr.clone();
    register(&bed, "ivan", "ivan password", Level::Normal, true).await;
    register(&bed, "judy", "judy password", Level::Normal, true).await;

    // One bogus login for alice (wrong password), captured and sent 20
    // times: the first is checked and refused, the rest are replays, and
    // the broker computed one proof for all 20.
    let before = s.proofs_verified(&broker).await;
    let bogus = login_body("alice", "not alice's password", None);
    let (status, first) = s.post_login(&broker, &bogus).await;
    assert_eq!(status, 401, "{first}");
    assert!(first.contains(LOGIN_REFUSED), "{first}");
    for _ in 0..19 {
        let (status, again) = s.post_login(&broker, &bogus).await;
        assert_eq!((status, again.as_str()), (401, r#"{"error":"login refused: replayed message"}"#));
    }
    assert_eq!(s.proofs_verified(&broker).await, before + 1, "replays cost no proof verification");

    // alice has an OTP token. Her right password without a code, or with a
    // wrong code, gets byte for byte the answer of a wrong password.
    let wrong_password = s.post_login(&broker, &login_body("alice", "not alice's password", None)).await;
    let right_no_code = s.post_login(&broker, &login_body("alice", "alice password", None)).await;
    let right_bad_code = s.post_login(&broker, &login_body("alice", "alice password", Some("000000"))).await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(right_no_code, wrong_password);
    assert_eq!(right_bad_code, wrong_password);
    assert!(s.broker.log().contains("the user has an OTP token and sent no code"), "{}", s.broker.log());

    // Per-user back-off: 5 wrong passwords for ivan in a minute; the 6th
    // attempt, even with the right password, is refused before its proof
    // is checked, while judy (same source) logs in.
    for _ in 0..5 {
        let (status, body) = s.post_login(&broker, &login_body("ivan", "guess", None)).await;
        assert_eq!(status, 401, "{body}");
    }
    let verified = s.proofs_verified(&broker).await;
    let (status, body) = s.post_login(&broker, &login_body("ivan", "ivan password", None)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many failed logins; try again in"), "{body}");
    assert_eq!(s.proofs_verified(&broker).await, verified, "a backed-off attempt costs no proof verification");
    refused(&s.login("cc-ivan", "ivan", "ivan password", None), "too many failed logins");
    assert!(ok(&s.login("cc-judy", "judy", "judy password", None)).contains("logged in as judy"));
    // alice, with her code, still logs in: her failures above were 4.
    assert!(ok(&s.login("cc-alice", "alice", "alice password", Some(&oathtool(0)))).contains("logged in as alice"));
}

/// Issue #13 item 5 (audit F2): anonymous login is off by default; turned
/// on, an anonymous TGT gets tickets only for services that admit anonymous
/// users.
#[tokio::test]
async fn anonymous_login_is_opt_in_for_the_broker_and_for_each_service() {
    let (_bed, s) = site().await;
    let anon_login = |broker: &str| {
        s.cli(
            "cc-anon",
            &["login", "--anonymous", "--broker", &format!("https://{broker}"), "--ca", &s.p("broker/ca.pem")],
        )
    };
    // A fresh broker: refused, and a bogus anonymous body costs nothing.
    refused(&anon_login(&s.broker.addr), "anonymous login is off on this broker");
    let anon = ClientCredential::anonymous(&mut dirbroker::clock::rng()).unwrap();
    let now = dirbroker::clock::now().unix_timestamp();
    let body =
        serde_json::to_vec(&anon.login_request("dirbroker", now, &mut dirbroker::clock::rng()).unwrap()).unwrap();
    let (status, answer) = s.post_login(&s.broker.addr, &body).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("[sso] allow_anonymous = true"), "{answer}");

    // Turned on: a pseudonym at level 1, but no ticket for kv (added with
    // the default, no --allow-anonymous).
    let open = s.broker_with("allow_anonymous = true", "serve-anon");
    let out = ok(&anon_login(&open.addr));
    assert!(out.contains("logged in as anon-") && out.contains("(level 1)"), "{out}");
    refused(&s.cli("cc-anon", &["ticket", "get", "kv"]), "service \"kv\" does not admit anonymous users");
    // A replayed bogus anonymous body: one proof computed for all copies.
    let mut bogus: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut s_bytes = dirbroker_proto::sso::primitives::unb64(bogus["proof"]["s"].as_str().unwrap()).unwrap();
    *s_bytes.last_mut().unwrap() ^= 1;
    let flipped = dirbroker_proto::sso::primitives::b64(&s_bytes);
    bogus["proof"]["s"] = flipped.into();
    let bogus = serde_json::to_vec(&bogus).unwrap();
    let before = s.proofs_verified(&open.addr).await;
    let (status, first) = s.post_login(&open.addr, &bogus).await;
    assert_eq!(status, 401, "{first}");
    for _ in 0..10 {
        let (status, again) = s.post_login(&open.addr, &bogus).await;
        assert_eq!((status, again.as_str()), (401, r#"{"error":"anonymous login refused: replayed message"}"#));
    }
    assert_eq!(s.proofs_verified(&open.addr).await, before + 1);

    // A service that admits anonymous users: ticket and call, level 1 reads only.
    let port = free_port();
    let o = dirbroker(
        &s.cfg,
        &[
            "service",
            "add",
            "pub",
            "--endpoint",
            &format!("127.0.0.1:{port}"),
            "--allow-anonymous",
            "--out",
            &s.p("pub.key"),
        ],
    );
    assert!(o.status.success() && text(&o).contains("admits anonymous users"), "{}", text(&o));
    let list: serde_json::Value =
        serde_json::from_str(&ok(&dirbroker(&s.cfg, &["--output", "json", "service", "list"]))).unwrap();
    let flags: Vec<(&str, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v["allow_anonymous"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, [("kv", false), ("pub", true)]);
    assert!(ok(&s.cli("cc-anon", &["ticket", "get", "pub"])).contains("ticket for pub as anon-"));
    // The same anonymous TGT at the broker that has anonymous login off: no ticket.
    let mut cc: serde_json::Value = serde_json::from_slice(&std::fs::read(s.t.join("cc-anon")).unwrap()).unwrap();
    cc["broker"] = s.url().into();
    private(&s.t.join("cc-anon-closed"), &serde_json::to_string(&cc).unwrap());
    refused(&s.cli("cc-anon-closed", &["ticket", "get", "pub"]), "anonymous login is off on this broker");
    let _pub = example_service_for(&s.t, "pub", &open.addr, port, 0, "pub.log");
    let endpoint = format!("127.0.0.1:{port}");
    let use_pub = |req: &str| s.cli("cc-anon", &["ticket", "use", "pub", "--endpoint", &endpoint, "--request", req]);
    assert!(ok(&use_pub("read motd")).contains("(level 1): motd = (unset)"));
    refused(&use_pub("write motd x"), "level 1 is below the required level 2");
}

/// One address cannot fill the example service: its idle connections past
/// the per-source share (64) are closed at once, and a ticket holder from
/// another address is still served.
#[tokio::test]
async fn one_source_cannot_fill_the_example_service() {
    let (_bed, s) = site().await;
    ok(&s.login("cc-carol", "carol", "carol password", None));
    ok(&s.cli("cc-carol", &["ticket", "get", "kv"]));
    let mut idle = Vec::new();
    for _ in 0..100 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(sock.connect(format!("127.0.0.1:{}", s.service_port).parse().unwrap()).await.unwrap());
    }
    // The service closes the ones over the share; the others wait for a request.
    let mut closed = 0;
    for conn in &mut idle {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(std::time::Duration::from_millis(100), conn.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 36, "100 connections, 64 kept");
    assert!(ok(&s.call("cc-carol", "read motd")).contains("ok read by carol (level 1)"));
    assert!(s.service.log().contains("too many from this address"), "{}", s.service.log());
    drop(idle);
}
