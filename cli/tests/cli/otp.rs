//! `dirbroker otp …` as separate processes: enrolment with a code computed
//! by oathtool, two processes racing the same codes, lockout that holds
//! across processes, and bad input.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::support::*;

const SECRET_HEX: &str = "3132333435363738393031323334353637383930";
const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Bed {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Bed {
    fn up() -> Bed {
        let tmp = scratch_dir();
        let dir = tmp.path().join("bed");
        let o = dirbroker(&["testbed", "up", "--dir", dir.to_str().unwrap()], None, "");
        assert_eq!(code(&o), 0, "{}", text(&o));
        let config = dir.join("dirbroker.toml");
        let o = dirbroker(&["user", "add", "alice", "--name", "Alice"], Some(&config), "");
        assert_eq!(code(&o), 0, "{}", text(&o));
        Bed { _tmp: tmp, dir, config }
    }

    fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        dirbroker(args, Some(&self.config), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let o = self.run(args, stdin);
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
        stdout(&o)
    }

    fn import_hotp(&self, id: &str) {
        let secret = secret_file(self.dir.as_path(), &format!("{id}.hex"), SECRET_HEX, 0o600);
        self.ok(
            &[
                "otp",
                "import",
                "alice",
                "--type",
                "hotp",
                "--format",
                "hex",
                "--secret-file",
                secret.to_str().unwrap(),
                "--id",
                id,
            ],
            "",
        );
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = dirbroker(&["testbed", "down", "--dir", self.dir.to_str().unwrap()], None, "");
    }
}

fn oathtool(args: &[&str]) -> String {
    let out = Command::new("oathtool").args(args).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_processes_race_the_same_code_a_thousand_times() {
    let bed = Bed::up();
    bed.import_hotp("race");
    // oathtool prints the codes for counters 0..=999.
    let codes: Vec<String> = oathtool(&["-c", "0", "-w", "999", SECRET_HEX]).lines().map(str::to_string).collect();
    assert_eq!(codes.len(), 1000);
    let spawn = |code: &str| {
        let mut child = Command::new(BIN)
            .args(["otp", "verify", "alice", "--token", "race"])
            .env("DIRBROKER_CONFIG", &bed.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{code}\n").as_bytes()).unwrap();
        child
    };
    let mut accepted_total = 0;
    for (i, c) in codes.iter().enumerate() {
        let (a, b) = (spawn(c), spawn(c));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let accepted = [&a, &b].iter().filter(|o| o.status.success()).count();
        assert_eq!(accepted, 1, "counter {i}: {} / {}", text(&a), text(&b));
        let loser = if a.status.success() { &b } else { &a };
        assert_eq!(loser.status.code(), Some(1), "counter {i}: {}", text(loser));
        accepted_total += accepted;
    }
    assert_eq!(accepted_total, 1000);
    // Nothing was locked by the losers of the races.
    let list = bed.ok(&["otp", "list", "alice", "--output", "json"], "");
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(tokens[0]["counter"], 1000);
    assert_eq!(tokens[0]["failures"], 0);
}

#[test]
fn lockout_holds_across_processes_until_unlocked() {
    let bed = Bed::up();
    bed.import_hotp("lock");
    let good = oathtool(&["-c", "0", SECRET_HEX]);
    for _ in 0..10 {
        let o = bed.run(&["otp", "verify", "alice"], "000000\n");
        assert_eq!(code(&o), 1);
        assert!(text(&o).contains("wrong code"), "{}", text(&o));
    }
    let o = bed.run(&["otp", "verify", "alice"], &good);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("locked"), "{}", text(&o));
    // The listing says so, and until when.
    let row = |listing: String| listing.lines().find(|l| l.starts_with("lock ")).unwrap_or_default().to_string();
    let listed = row(bed.ok(&["otp", "list", "alice"], ""));
    assert_eq!(listed.split_whitespace().nth(3), Some("locked"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["--output", "json", "otp", "list"], "")).unwrap();
    assert_eq!((json[0]["state"].as_str(), json[0]["locked_until"].is_i64()), (Some("locked"), true), "{json}");
    bed.ok(&["otp", "unlock", "lock"], "");
    let listed = row(bed.ok(&["otp", "list", "alice"], ""));
    assert_eq!(listed.split_whitespace().nth(3), Some("enabled"), "{listed}");
    bed.ok(&["otp", "verify", "alice"], &good);
    let o = bed.run(&["otp", "verify", "alice"], &good);
    assert!(text(&o).contains("already used"), "{}", text(&o));
    // Disabled tokens refuse even good codes.
    bed.ok(&["otp", "disable", "lock"], "");
    let next = oathtool(&["-c", "1", SECRET_HEX]);
    assert_eq!(code(&bed.run(&["otp", "verify", "alice", "--token", "lock"], &next)), 1);
    bed.ok(&["otp", "enable", "lock"], "");
    bed.ok(&["otp", "verify", "alice", "--token", "lock"], &next);
}

/// Enrolment shows the secret, and stores the token only after a code from
/// it (computed here by oathtool, as an app would) checks out.
#[test]
fn enrolment_requires_a_valid_code() {
    let bed = Bed::up();
    let enroll = |confirm: &dyn Fn(&str) -> String| {
        let mut child = Command::new(BIN)
            .args(["--output", "json", "otp", "enroll", "alice", "--type", "hotp", "--id", "enrolled"])
            .env("DIRBROKER_CONFIG", &bed.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut json = String::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "enroll printed no URI");
            json.push_str(&line);
            if line.starts_with('}') {
                break;
            }
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let uri = v["otpauth_uri"].as_str().unwrap().to_string();
        assert!(uri.starts_with("otpauth://hotp/dirbroker:alice?"), "{uri}");
        let b32 = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap().to_string();
        child.stdin.take().unwrap().write_all(confirm(&b32).as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out, b32)
    };
    // A wrong confirmation stores nothing.
    let (out, _) = enroll(&|_| "000000\n".to_string());
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("nothing was stored"), "{}", text(&out));
    assert_eq!(bed.ok(&["otp", "list", "alice", "--output", "json"], "").trim(), "[]");
    // The right one activates the token and is itself consumed.
    let (out, b32) = enroll(&|b32| oathtool(&["-b", "-c", "0", b32]));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let first = oathtool(&["-b", "-c", "0", &b32]);
    assert_eq!(code(&bed.run(&["otp", "verify", "alice"], &first)), 1);
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-b", "-c", "1", &b32]));
    // The secret is nowhere in the directory in clear.
    let dump = Command::new("ldapsearch")
        .args(["-LLL", "-x", "-o", "ldif-wrap=no", "-H"])
        .arg(
            std::fs::read_to_string(&bed.config)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("uris"))
                .unwrap()
                .split('"')
                .nth(1)
                .unwrap(),
        )
        .args(["-D", "cn=admin,dc=example,dc=org", "-y"])
        .arg(bed.dir.join("admin.pw"))
        .args(["-b", "dc=example,dc=org"])
        .output()
        .unwrap();
    assert!(dump.status.success());
    assert!(!String::from_utf8_lossy(&dump.stdout).contains(&b32));
}

#[test]
fn totp_from_oathtool_now_and_bad_input() {
    let bed = Bed::up();
    let secret = secret_file(bed.dir.as_path(), "s.b32", SECRET_B32, 0o600);
    bed.ok(&["otp", "import", "alice", "--type", "totp", "--secret-file", secret.to_str().unwrap(), "--id", "tt"], "");
    let now = oathtool(&["--totp", SECRET_HEX]);
    bed.ok(&["otp", "verify", "alice"], &now);
    let o = bed.run(&["otp", "verify", "alice"], &now);
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("already used"), "{}", text(&o));

    for (content, mode, want) in [
        ("not base32 at all!", 0o600, "base32"),
        ("GEZDGNBV", 0o600, "128"),
        (SECRET_B32, 0o644, "chmod 600"),
        ("", 0o600, "empty"),
    ] {
        let f = secret_file(bed.dir.as_path(), "bad.b32", content, mode);
        let o = bed.run(&["otp", "import", "alice", "--type", "totp", "--secret-file", f.to_str().unwrap()], "");
        assert_eq!(code(&o), 2, "{content:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{content:?}: {}", text(&o));
    }
    for bad in ["12a456\n", "\n", "1234567\n", "١٢٣٤٥٦\n"] {
        let o = bed.run(&["otp", "verify", "alice"], bad);
        assert_eq!(code(&o), 1, "{bad:?}");
        assert!(text(&o).contains("malformed"), "{bad:?}: {}", text(&o));
    }
    let o = bed.run(&["otp", "verify", "nobody"], "123456\n");
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("no user"), "{}", text(&o));
    // Only the tokens imported above exist: the failed imports wrote nothing.
    let list: serde_json::Value = serde_json::from_str(&bed.ok(&["otp", "list", "--output", "json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// `secrets rotate`: a new master key, every sealed secret re-sealed under it,
/// and codes keep verifying throughout.
#[tokio::test]
async fn rotating_the_master_key_reseals_everything() {
    use dirbroker::model::OtpToken;
    use dirbroker::seal::Keyring;

    let bed = Bed::up();
    bed.import_hotp("rot");
    let config = dirbroker::config::Config::load(&bed.config).unwrap();
    let keys = config.keyring_path();
    let old_ring = Keyring::load(&keys).unwrap();
    let old_copy = bed.dir.join("old.keys");
    std::fs::copy(&keys, &old_copy).unwrap();

    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "0", SECRET_HEX]));
    let out = bed.ok(&["--output", "json", "secrets", "rotate"], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["resealed"], 1, "{out}");
    assert_ne!(v["key_id"].as_str().unwrap(), old_ring.current_id());

    let new_ring = Keyring::load(&keys).unwrap();
    let dir = dirbroker::directory::Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let token = dir.load::<OtpToken>("rot").await.unwrap();
    let ctx = dirbroker::seal::context::otp_token(&token);
    let sealed = token.secret.unwrap();
    assert!(!new_ring.needs_reseal(&sealed), "still under the old key");
    // The old keyring alone no longer opens it; the new one does.
    assert!(Keyring::load(&old_copy).unwrap().open(&ctx, &sealed).is_err());
    assert_eq!(new_ring.open(&ctx, &sealed).unwrap().as_slice(), b"12345678901234567890");
    // Codes go on verifying, and the counter was not disturbed.
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "1", SECRET_HEX]));
    // A second rotation re-seals again; nothing is left under older keys.
    let out = bed.ok(&["--output", "json", "secrets", "rotate"], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["resealed"], 1, "{out}");
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "2", SECRET_HEX]));
}

/// Sealing v1 → v2 (audits F8, F14): a directory written before v2 (the
/// keyring and the sealed values of tests/fixtures/seal-v1, in the v1
/// format) is refused on the normal paths with the command to run; `secrets
/// upgrade` re-seals every value as v2 for its entry, names what each is now
/// bound to, and codes verify again with the counter undisturbed; an LDIF
/// carrying a v1 value (an export from before v2) is re-sealed on import.
#[tokio::test]
async fn upgrading_v1_sealed_values_keeps_them_working() {
    use dirbroker::model::{DataCenter, DirEntry, OtpToken, PhysicalServer, PreSharedKey, Sealed, TokenType};
    use dirbroker::seal::{Format, Keyring, context};
    use std::os::unix::fs::PermissionsExt;

    let bed = Bed::up();
    let config = dirbroker::config::Config::load(&bed.config).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seal-v1");
    let keys = config.keyring_path();
    std::fs::copy(fixtures.join("master.keys"), &keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    };
    let fixture = std::fs::read_to_string(fixtures.join("values.txt")).unwrap();
    let v1 = |ctx: &str| -> (Vec<u8>, Sealed) {
        let line = fixture.lines().find(|l| l.starts_with(&format!("{ctx} "))).unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        (unhex(parts[1]), Sealed(unhex(parts[2])))
    };

    // What a broker before v2 left in the directory.
    bed.ok(&["ca", "init"], "");
    bed.ok(&["dc", "add", "DC-A", "--endpoint", "127.0.0.1:7443", "--out", bed.dir.join("dca").to_str().unwrap()], "");
    bed.ok(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"], "");
    let dir = dirbroker::directory::Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let layout = dir.layout().clone();
    let alice = layout.people.child("uid", "alice").unwrap();
    let dc_a = dir.load::<DataCenter>("DC-A").await.unwrap().dn(&layout).unwrap();
    let mut t = OtpToken::new("legacy-hotp", alice.clone(), TokenType::Hotp).unwrap();
    t.hotp_counter = Some(0);
    t.secret = Some(v1("otp-token:legacy-hotp").1);
    dir.create(&t).await.unwrap();
    let mut ps = PhysicalServer::new("PS-LEGACY", dc_a.clone()).unwrap();
    ps.totp_secret = Some(v1("server-totp:PS-LEGACY").1);
    dir.create(&ps).await.unwrap();
    let psk = PreSharedKey {
        id: "legacy-k1".into(),
        parties: vec![layout.people.child("uid", "admin1").unwrap(), dc_a.clone()],
        secret: v1("psk:legacy-k1").1,
        not_before: None,
        not_after: None,
        disabled: false,
    };
    dir.create(&psk).await.unwrap();

    // The new broker refuses v1 values and says what to run; nothing is consumed.
    let o = bed.run(&["otp", "verify", "alice"], &oathtool(&["-c", "0", SECRET_HEX]));
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("dirbroker secrets upgrade"), "{}", text(&o));
    let ring = Keyring::load(&keys).unwrap();
    for (sealed, ctx) in
        [(&ps.totp_secret.clone().unwrap(), context::server_totp(&ps)), (&psk.secret, context::psk(&psk))]
    {
        let e = ring.open(&ctx, sealed).unwrap_err();
        assert!(e.to_string().contains("dirbroker secrets upgrade"), "{e}");
    }

    let out = bed.ok(&["--output", "json", "secrets", "upgrade"], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["resealed"], 3, "{out}");
    assert_eq!(v["key_id"], "5eed5eed00000001", "upgrading does not rotate: {out}");
    let upgraded: Vec<&str> = v["upgraded"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert_eq!(upgraded.len(), 3, "{out}");
    assert!(upgraded.iter().any(|u| u.contains("legacy-hotp") && u.contains("uid=alice,ou=people")), "{out}");
    let dc = dc_a.normalized();
    assert!(upgraded.iter().any(|u| u.contains("PS-LEGACY") && u.contains(&dc)), "{out}");

    // Codes verify again, from counter 0 (the refused attempt consumed nothing).
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "0", SECRET_HEX]));
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "1", SECRET_HEX]));
    let t = dir.load::<OtpToken>("legacy-hotp").await.unwrap();
    assert_eq!(Format::of(t.secret.as_ref().unwrap()), Some(Format::V2));
    assert_eq!(t.failure_count, 0);
    // The machine secrets open, as v2, to what v1 held.
    let ring = Keyring::load(&keys).unwrap();
    let ps = dir.load::<PhysicalServer>("PS-LEGACY").await.unwrap();
    let opened = ring.open(&context::server_totp(&ps), ps.totp_secret.as_ref().unwrap()).unwrap();
    assert_eq!(opened.as_slice(), v1("server-totp:PS-LEGACY").0.as_slice());
    let psk = dir.load::<PreSharedKey>("legacy-k1").await.unwrap();
    assert_eq!(ring.open(&context::psk(&psk), &psk.secret).unwrap().as_slice(), v1("psk:legacy-k1").0.as_slice());
    // Once is enough.
    let out = bed.ok(&["--output", "json", "secrets", "upgrade"], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["resealed"].as_u64(), v["upgraded"].as_array().map(Vec::len)), (Some(0), Some(0)), "{out}");

    // An export from before v2, imported now: its v1 value is sealed again as v2.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&v1("otp-token:legacy-import").1.0);
    let ldif = bed.dir.join("old-export.ldif");
    std::fs::write(
        &ldif,
        format!(
            "dn: dirbrokerTokenId=legacy-import,ou=otp,dc=example,dc=org\nobjectClass: dirbrokerOtpToken\n\
             dirbrokerTokenId: legacy-import\ndirbrokerTokenOwner: {alice}\ndirbrokerTokenType: hotp\n\
             dirbrokerHotpCounter: 5\ndirbrokerOtpFailureCount: 0\ndirbrokerOtpSecret:: {b64}\n\n"
        ),
    )
    .unwrap();
    bed.ok(&["import", ldif.to_str().unwrap()], "");
    let t = dir.load::<OtpToken>("legacy-import").await.unwrap();
    assert_eq!(Format::of(t.secret.as_ref().unwrap()), Some(Format::V2));
    assert_eq!(
        ring.open(&context::otp_token(&t), t.secret.as_ref().unwrap()).unwrap().as_slice(),
        v1("otp-token:legacy-import").0.as_slice()
    );
    // Counter 14 is beyond legacy-hotp's look-ahead: only the imported token takes it.
    bed.ok(&["otp", "verify", "alice"], &oathtool(&["-c", "14", SECRET_HEX]));
}

/// An otpauth URI exported from elsewhere imports with its parameters.
#[test]
fn import_from_an_otpauth_uri() {
    let bed = Bed::up();
    let uri =
        format!("otpauth://totp/Example:alice?secret={SECRET_B32}&issuer=Example&algorithm=SHA256&digits=8&period=60");
    let f = secret_file(bed.dir.as_path(), "uri.txt", &uri, 0o600);
    bed.ok(&["otp", "import", "alice", "--uri-file", f.to_str().unwrap(), "--id", "fromuri"], "");
    let list: serde_json::Value = serde_json::from_str(&bed.ok(&["otp", "list", "--output", "json"], "")).unwrap();
    assert_eq!(
        (list[0]["algorithm"].as_str(), list[0]["digits"].as_u64(), list[0]["period"].as_u64()),
        (Some("sha256"), Some(8), Some(60))
    );
    let now_code = oathtool(&["--totp=sha256", "-d", "8", "-s", "60", SECRET_HEX]);
    bed.ok(&["otp", "verify", "alice"], &now_code);
    for (bad, want) in [
        ("otpauth://totp/x", "no secret"),
        ("https://example.org/?secret=AAAA", "scheme"),
        ("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "counter"),
    ] {
        let f = secret_file(bed.dir.as_path(), "bad-uri.txt", bad, 0o600);
        let o = bed.run(&["otp", "import", "alice", "--uri-file", f.to_str().unwrap()], "");
        assert_eq!(code(&o), 2, "{bad}: {}", text(&o));
        assert!(text(&o).contains(want), "{bad}: {}", text(&o));
    }
}

/// An S/KEY user sees the RFC 2289 challenge (`otp-md5 99 seed`) before
/// answering: from `otp challenge`, and on stderr when `otp verify` asks.
/// The answer is computed from the challenge alone, as a calculator would
/// (`skey` is checked against RFC 2289's vectors in its unit tests).
#[test]
fn skey_challenge_is_shown_before_the_response() {
    use dirbroker::otp::skey::{self, SkeyAlgorithm};
    let bed = Bed::up();
    let pass = "This is a test.";
    let enrolled = bed
        .ok(&["--output", "json", "otp", "enroll", "alice", "--type", "skey", "--count", "100"], &format!("{pass}\n"));
    let seed = serde_json::from_str::<serde_json::Value>(&enrolled).unwrap()["seed"].as_str().unwrap().to_string();
    let shown = bed.ok(&["otp", "challenge", "alice"], "");
    assert!(shown.starts_with(&format!("otp-md5 99 {seed}")), "{shown}");
    let answer = |challenge: &str| {
        let parts: Vec<&str> = challenge.split_whitespace().collect();
        let (n, seed) = (parts[1].parse::<u32>().unwrap(), parts[2]);
        skey::to_hex(skey::skey(SkeyAlgorithm::Md5, seed, pass.as_bytes(), n).unwrap())
    };
    let o = bed.run(&["otp", "verify", "alice"], &format!("{}\n", answer(&shown)));
    assert_eq!(code(&o), 0, "{}", text(&o));
    let prompt = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(prompt.starts_with(&format!("otp-md5 99 {seed}")), "{prompt}");
    // The next challenge counts down; the spent answer is refused.
    let json = bed.ok(&["--output", "json", "otp", "challenge", "alice"], "");
    let next = serde_json::from_str::<serde_json::Value>(&json).unwrap()[0]["challenge"].as_str().unwrap().to_string();
    assert_eq!(next, format!("otp-md5 98 {seed}"));
    let o = bed.run(&["otp", "verify", "alice"], &format!("{}\n", answer(&shown)));
    assert_eq!(code(&o), 1, "{}", text(&o));
    bed.ok(&["otp", "verify", "alice"], &format!("{}\n", answer(&next)));
    // No S/KEY token: a clear error.
    bed.ok(&["user", "add", "bob", "--name", "Bob"], "");
    let o = bed.run(&["otp", "challenge", "bob"], "");
    assert_eq!(code(&o), 1);
    assert!(text(&o).contains("no enabled S/KEY token"), "{}", text(&o));
}

/// The read-only node identity may not read OTP tokens: `otp list` says
/// access denied (exit 5), not "not found", while the broker sees the token.
#[test]
fn node_identity_listing_tokens_is_told_access_denied() {
    let bed = Bed::up();
    bed.import_hotp("listed");
    let reader = bed.dir.join("node-reader.toml");
    let o = dirbroker(&["otp", "list"], Some(&reader), "");
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(text(&o).contains("access denied") && text(&o).contains("cn=node-reader"), "{}", text(&o));
    assert!(!text(&o).contains("not found"), "{}", text(&o));
    let o = dirbroker(&["otp", "list"], Some(&bed.config), "");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("listed"), "{}", text(&o));
}
