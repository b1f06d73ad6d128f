//! OTP verification against real slapd, with oathtool as the judge of codes
//! and time standing still where the test says.

use std::process::Command;

use dirbroker::directory::{Change, DirError, Directory};
use dirbroker::model::{DirEntry, OtpToken, Sealed, TokenType, User};
use dirbroker::otp::skey::{self, SkeyAlgorithm};
use dirbroker::otp::verify::{self, Outcome, Policy, Refusal, TokenCache, VerifyError};
use dirbroker::seal::{Keyring, SealError, context};
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{Bed, start};
use time::OffsetDateTime;

const RFC_SHA1: &str = "3132333435363738393031323334353637383930";
const RFC_SHA256: &str = "3132333435363738393031323334353637383930313233343536373839303132";
const RFC_SHA512: &str = "31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334";

fn at(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap()
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

/// oathtool's code: the external judge.
fn oathtool(args: &[&str]) -> String {
    let out = Command::new("oathtool").args(args).output().expect("oathtool");
    assert!(out.status.success(), "oathtool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Setup {
    bed: Bed,
    dir: Directory,
    ring: Keyring,
    _keys: tempfile::TempDir,
}

async fn setup() -> Setup {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    dir.create(&User::new("alice", "Alice").unwrap()).await.unwrap();
    let keys = dirbroker_testbed::harness::scratch_dir();
    let ring = Keyring::create(&keys.path().join("master.keys")).unwrap();
    Setup { bed, dir, ring, _keys: keys }
}

impl Setup {
    async fn token(&self, id: &str, kind: TokenType, secret_hex: &str, f: impl FnOnce(&mut OtpToken)) -> OtpToken {
        let owner = self.dir.layout().people.child("uid", "alice").unwrap();
        let mut t = OtpToken::new(id, owner, kind).unwrap();
        match kind {
            TokenType::Totp => t.totp_watermark = Some(0),
            TokenType::Hotp => t.hotp_counter = Some(0),
            TokenType::Skey => {}
        }
        f(&mut t);
        // Sealed for the owner and parameters as `f` left them.
        t.secret = Some(self.ring.seal(&context::otp_token(&t), &unhex(secret_hex)).unwrap());
        self.dir.create(&t).await.unwrap();
        t
    }

    async fn fresh(&self, id: &str) -> OtpToken {
        self.dir.load::<OtpToken>(id).await.unwrap()
    }

    async fn check(&self, id: &str, code: &str, now: OffsetDateTime) -> Outcome {
        let t = self.fresh(id).await;
        verify::verify(&self.dir, &self.ring, &t, code, now, &Policy::default()).await.unwrap()
    }
}

#[tokio::test]
async fn totp_codes_from_oathtool_are_accepted_once() {
    let s = setup().await;
    for (id, alg, secret, digits) in [
        ("t-sha1", "sha1", RFC_SHA1, "6"),
        ("t-sha256", "sha256", RFC_SHA256, "8"),
        ("t-sha512", "sha512", RFC_SHA512, "8"),
    ] {
        s.token(id, TokenType::Totp, secret, |t| {
            t.algorithm = Some(alg.into());
            t.digits = Some(digits.parse().unwrap());
            t.period = Some(30);
        })
        .await;
        for when in [1_111_111_109i64, 1_234_567_890, 2_000_000_000, 20_000_000_000] {
            let code = oathtool(&[&format!("--totp={alg}"), "-d", digits, "-N", &format!("@{when}"), secret]);
            assert!(matches!(s.check(id, &code, at(when)).await, Outcome::Accepted { .. }), "{id} at {when}");
            // The same code again, even a second later in the same step: refused.
            assert_eq!(s.check(id, &code, at(when + 1)).await, Outcome::Refused(Refusal::AlreadyUsed), "{id} replay");
        }
    }
    // One step of clock skew either way is accepted; two are not.
    s.token("skew", TokenType::Totp, RFC_SHA1, |_| {}).await;
    let t0 = 1_800_000_000i64;
    let behind = oathtool(&["--totp", "-N", &format!("@{}", t0 - 30), RFC_SHA1]);
    assert!(matches!(s.check("skew", &behind, at(t0)).await, Outcome::Accepted { .. }));
    let far = oathtool(&["--totp", "-N", &format!("@{}", t0 + 90), RFC_SHA1]);
    assert_eq!(s.check("skew", &far, at(t0)).await, Outcome::Refused(Refusal::WrongCode));
    // An older step than the last accepted one is refused even inside the window.
    let older = oathtool(&["--totp", "-N", &format!("@{}", t0 - 60), RFC_SHA1]);
    assert_ne!(older, behind);
    assert!(matches!(s.check("skew", &older, at(t0 - 31)).await, Outcome::Refused(_)));
}

#[tokio::test]
async fn hotp_look_ahead_resync_and_replay() {
    let s = setup().await;
    s.token("h", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    assert_eq!(s.check("h", &code(0), at(0)).await, Outcome::Accepted { counter: 0 });
    assert_eq!(s.check("h", &code(0), at(0)).await, Outcome::Refused(Refusal::AlreadyUsed));
    // Within the look-ahead (10): accepted, and the counter moves past it.
    assert_eq!(s.check("h", &code(7), at(0)).await, Outcome::Accepted { counter: 7 });
    assert_eq!(s.fresh("h").await.hotp_counter, Some(8));
    assert_eq!(s.check("h", &code(5), at(0)).await, Outcome::Refused(Refusal::AlreadyUsed));
    // Beyond it: refused, then resynchronised with two consecutive codes.
    assert_eq!(s.check("h", &code(40), at(0)).await, Outcome::Refused(Refusal::WrongCode));
    let t = s.fresh("h").await;
    let r = verify::resync(&s.dir, &s.ring, &t, &code(50), &code(51), at(0), &Policy::default()).await.unwrap();
    assert!(matches!(r, Outcome::Accepted { .. }), "{r:?}");
    let t = s.fresh("h").await;
    assert_eq!((t.hotp_counter, t.failure_count), (Some(52), 0));
    assert_eq!(s.check("h", &code(51), at(0)).await, Outcome::Refused(Refusal::AlreadyUsed));
    assert_eq!(s.check("h", &code(52), at(0)).await, Outcome::Accepted { counter: 52 });
    // Two codes that are not consecutive do not resync.
    let t = s.fresh("h").await;
    let r = verify::resync(&s.dir, &s.ring, &t, &code(60), &code(62), at(0), &Policy::default()).await.unwrap();
    assert_eq!(r, Outcome::Refused(Refusal::WrongCode));
}

/// A token whose own look-ahead is huge (an import can write any value) gets
/// at most verify::MAX_HOTP_LOOK_AHEAD: a code far ahead is refused, and a
/// wrong code costs at most that many HMACs.
#[tokio::test]
async fn a_token_look_ahead_is_bounded() {
    let s = setup().await;
    s.token("wide", TokenType::Hotp, RFC_SHA1, |t| t.look_ahead = Some(u32::MAX)).await;
    let code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    assert_eq!(s.check("wide", &code(1_000), at(0)).await, Outcome::Refused(Refusal::WrongCode));
    assert_eq!(s.check("wide", &code(90), at(0)).await, Outcome::Accepted { counter: 90 });
    assert_eq!(u64::from(verify::MAX_HOTP_LOOK_AHEAD), 100);
}

#[tokio::test]
async fn skey_sequence_counts_down_and_refuses_reuse() {
    let s = setup().await;
    let pass = b"This is a test.";
    let seed = "TeSt";
    let n = 5u32;
    let first = skey::skey(SkeyAlgorithm::Md5, seed, pass, n).unwrap();
    let owner = s.dir.layout().people.child("uid", "alice").unwrap();
    let mut t = OtpToken::new("sk", owner, TokenType::Skey).unwrap();
    t.algorithm = Some("md5".into());
    t.skey_seed = Some(seed.into());
    t.skey_sequence = Some(i64::from(n));
    t.skey_last_otp = Some(first.to_vec());
    s.dir.create(&t).await.unwrap();
    for k in (0..n).rev() {
        let otp = skey::skey(SkeyAlgorithm::Md5, seed, pass, k).unwrap();
        // Six-word form on even steps, hex on odd ones: both are accepted.
        let response = if k % 2 == 0 { skey::to_words(otp) } else { skey::to_hex(otp) };
        assert_eq!(s.check("sk", &response, at(0)).await, Outcome::Accepted { counter: i64::from(k) }, "k={k}");
        assert_eq!(s.check("sk", &response, at(0)).await, Outcome::Refused(Refusal::AlreadyUsed));
    }
    assert_eq!(s.check("sk", "0000000000000000", at(0)).await, Outcome::Refused(Refusal::Exhausted));
}

/// Two brokers (two connections) race the same valid code: exactly one wins.
#[tokio::test]
async fn racing_verifiers_accept_each_code_exactly_once() {
    let s = setup().await;
    s.token("race", TokenType::Totp, RFC_SHA1, |_| {}).await;
    let other = s.bed.dir_as(Identity::Broker).await;
    let mut wins = 0;
    for i in 0..60i64 {
        let when = 1_900_000_000 + 30 * i;
        let code = oathtool(&["--totp", "-N", &format!("@{when}"), RFC_SHA1]);
        let t = s.fresh("race").await;
        let p = Policy::default();
        let (a, b) = tokio::join!(
            verify::verify(&s.dir, &s.ring, &t, &code, at(when), &p),
            verify::verify(&other, &s.ring, &t, &code, at(when), &p)
        );
        let accepted = [a.unwrap(), b.unwrap()].iter().filter(|o| matches!(o, Outcome::Accepted { .. })).count();
        assert_eq!(accepted, 1, "round {i}");
        wins += accepted;
    }
    assert_eq!(wins, 60);
}

#[tokio::test]
async fn lockout_disable_and_validity() {
    let s = setup().await;
    s.token("lk", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let good = oathtool(&["-c", "0", RFC_SHA1]);
    for _ in 0..9 {
        assert_eq!(s.check("lk", "000000", at(0)).await, Outcome::Refused(Refusal::WrongCode));
    }
    let until = Some(at(60));
    assert_eq!(s.check("lk", "000000", at(0)).await, Outcome::Refused(Refusal::LockedNow { failures: 10, until }));
    assert_eq!(s.check("lk", &good, at(0)).await, Outcome::Refused(Refusal::LockedOut { failures: 10, until }));
    verify::unlock(&s.dir, &s.fresh("lk").await).await.unwrap();
    assert_eq!(s.check("lk", &good, at(0)).await, Outcome::Accepted { counter: 0 });

    s.token("off", TokenType::Hotp, RFC_SHA1, |t| t.disabled = true).await;
    assert_eq!(s.check("off", &good, at(0)).await, Outcome::Refused(Refusal::Disabled));
    s.token("late", TokenType::Hotp, RFC_SHA1, |t| t.not_before = Some(at(2_000_000_000))).await;
    assert_eq!(s.check("late", &good, at(1_000_000_000)).await, Outcome::Refused(Refusal::NotYetValid));
    s.token("old", TokenType::Hotp, RFC_SHA1, |t| t.not_after = Some(at(1_000))).await;
    assert_eq!(s.check("old", &good, at(2_000)).await, Outcome::Refused(Refusal::Expired));
    // Malformed input is refused, never a crash, and not counted: whoever
    // may submit codes cannot lock a user out without guessing.
    let before = s.fresh("lk").await.failure_count;
    for _ in 0..3 {
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123 456", "-12345", "9999999999999999999999"] {
            let o = s.check("lk", bad, at(0)).await;
            assert!(matches!(o, Outcome::Refused(Refusal::Malformed(_))), "{bad:?}: {o:?}");
        }
    }
    assert_eq!(s.fresh("lk").await.failure_count, before, "24 malformed inputs counted nothing");
    let next = oathtool(&["-c", "1", RFC_SHA1]);
    assert_eq!(s.check("lk", &next, at(0)).await, Outcome::Accepted { counter: 1 });
}

/// A token without `dirbrokerOtpFailureCount` (another tool wrote it; the
/// schema allows that) still counts failures and locks out: slapd refuses
/// to increment a missing attribute, so the first failure adds it.
#[tokio::test]
async fn a_token_without_a_failure_count_still_locks_out() {
    let s = setup().await;
    let t = s.token("bare", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let dn = t.dn(s.dir.layout()).unwrap();
    let o = s.bed.ldap_tool_admin(
        "ldapmodify",
        &[],
        &format!("dn: {dn}\nchangetype: modify\ndelete: dirbrokerOtpFailureCount\n"),
    );
    assert!(o.status.success(), "{}", dirbroker_testbed::harness::text(&o));
    let entry = s.dir.read(&dn, &["dirbrokerOtpFailureCount"]).await.unwrap();
    assert!(!entry.has("dirbrokerOtpFailureCount"), "the attribute is gone");
    let until = Some(at(60));
    for i in 1..=10 {
        let expected = if i < 10 { Refusal::WrongCode } else { Refusal::LockedNow { failures: 10, until } };
        assert_eq!(s.check("bare", "000000", at(0)).await, Outcome::Refused(expected));
        assert_eq!(s.fresh("bare").await.failure_count, i);
    }
    let good = oathtool(&["-c", "0", RFC_SHA1]);
    assert_eq!(s.check("bare", &good, at(0)).await, Outcome::Refused(Refusal::LockedOut { failures: 10, until }));
}

/// Guesses decided on one state of the token (as concurrent requests,
/// connections or brokers see it) cannot overshoot the lockout: each guess
/// below reuses the token as read before any of them was counted. Without
/// the guarded writes all 40 wrong guesses answer "wrong code" and the right
/// code after them is accepted.
#[tokio::test]
async fn concurrent_guesses_cannot_overshoot_the_lockout() {
    let s = setup().await;
    let stale = s.token("many", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let p = Policy::default();
    let guesses = (0..40).map(|_| verify::verify(&s.dir, &s.ring, &stale, "000000", at(0), &p));
    let outcomes: Vec<Outcome> =
        futures_util::future::join_all(guesses).await.into_iter().map(Result::unwrap).collect();
    let count =
        |f: &dyn Fn(&Refusal) -> bool| outcomes.iter().filter(|o| matches!(o, Outcome::Refused(r) if f(r))).count();
    assert_eq!(count(&|r| *r == Refusal::WrongCode), 9, "{outcomes:?}");
    assert_eq!(count(&|r| matches!(r, Refusal::LockedNow { failures: 10, .. })), 1, "{outcomes:?}");
    assert_eq!(count(&|r| matches!(r, Refusal::LockedOut { .. })), 30, "{outcomes:?}");
    assert_eq!(s.fresh("many").await.failure_count, 40, "every guess was counted");
    // The right code, decided on the same stale state, is refused as locked.
    let good = oathtool(&["-c", "0", RFC_SHA1]);
    let o = verify::verify(&s.dir, &s.ring, &stale, &good, at(0), &p).await.unwrap();
    assert!(matches!(o, Outcome::Refused(Refusal::LockedOut { failures: 40, .. })), "{o:?}");
    assert_eq!(s.fresh("many").await.hotp_counter, Some(0), "the code was not consumed");
}

/// The lockout decays: locked for a minute after ten failures, twice as
/// long after each further one; one attempt at a time goes through when the
/// back-off has run out, and a right code opens the token.
#[tokio::test]
async fn lockout_backs_off_and_decays() {
    let s = setup().await;
    s.token("bo", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    for _ in 0..10 {
        s.check("bo", "000000", at(1_000)).await;
    }
    let locked = |failures, until: i64| Outcome::Refused(Refusal::LockedOut { failures, until: Some(at(until)) });
    assert_eq!(s.check("bo", &code(0), at(1_059)).await, locked(10, 1_060));
    assert_eq!(s.check("bo", &code(0), at(1_060)).await, Outcome::Accepted { counter: 0 });
    assert_eq!(s.fresh("bo").await.failure_count, 0);
    for _ in 0..10 {
        s.check("bo", "000000", at(2_000)).await;
    }
    // Past the minute: a wrong code locks again, for two minutes.
    let stale = s.fresh("bo").await;
    let o = s.check("bo", "000000", at(2_061)).await;
    assert_eq!(o, Outcome::Refused(Refusal::LockedNow { failures: 11, until: Some(at(2_181)) }));
    // A guess decided on the state before that one is not let through too.
    let p = Policy::default();
    let o = verify::verify(&s.dir, &s.ring, &stale, &code(1), at(2_061), &p).await.unwrap();
    assert!(matches!(o, Outcome::Refused(Refusal::LockedOut { .. })), "{o:?}");
    let o = verify::verify(&s.dir, &s.ring, &stale, "000000", at(2_061), &p).await.unwrap();
    assert!(matches!(o, Outcome::Refused(Refusal::LockedOut { .. })), "{o:?}");
    assert_eq!(s.fresh("bo").await.failure_count, 11, "the refused-unseen guess was not counted");
    assert_eq!(s.check("bo", &code(1), at(2_180)).await, locked(11, 2_181));
    assert_eq!(s.check("bo", &code(1), at(2_181)).await, Outcome::Accepted { counter: 1 });
    // With lockout 0 the token waits for the admin, however long.
    let admin_only = Policy { lockout: time::Duration::ZERO, ..Policy::default() };
    for _ in 0..10 {
        verify::verify(&s.dir, &s.ring, &s.fresh("bo").await, "000000", at(3_000), &admin_only).await.unwrap();
    }
    let o = verify::verify(&s.dir, &s.ring, &s.fresh("bo").await, &code(2), at(900_000), &admin_only).await.unwrap();
    assert_eq!(o, Outcome::Refused(Refusal::LockedOut { failures: 10, until: None }));
}

/// A sealed secret moved onto another token does not open there.
#[tokio::test]
async fn swapped_sealed_secret_is_refused() {
    let s = setup().await;
    let a = s.token("a", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    s.token("b", TokenType::Hotp, RFC_SHA256, |_| {}).await;
    let admin = s.bed.dir_as(Identity::Admin).await;
    let b_dn = s.fresh("b").await.dn(s.dir.layout()).unwrap();
    let stolen: Sealed = a.secret.clone().unwrap();
    admin
        .modify(&b_dn, vec![Change::Replace(b"dirbrokerOtpSecret".to_vec(), [stolen.0].into_iter().collect())])
        .await
        .unwrap();
    let t = s.fresh("b").await;
    let r = verify::verify(&s.dir, &s.ring, &t, &oathtool(&["-c", "0", RFC_SHA1]), at(0), &Policy::default()).await;
    assert!(matches!(r, Err(VerifyError::Seal { .. })), "{r:?}");
}

/// Everything the directory admin can dump holds no secret in clear.
#[tokio::test]
async fn an_ldap_dump_reveals_no_secret() {
    let s = setup().await;
    s.token("d1", TokenType::Totp, RFC_SHA1, |_| {}).await;
    s.token("d2", TokenType::Hotp, RFC_SHA512, |_| {}).await;
    let dump = s.bed.ldap_tool_admin("ldapsearch", &["-LLL", "-o", "ldif-wrap=no", "-b", "dc=example,dc=org"], "");
    assert!(dump.status.success());
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("dirbrokerOtpSecret::"), "the sealed values are there");
    let decoded: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|l| l.split_once(":: "))
        .filter_map(|(_, v)| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(v).ok()
        })
        .collect();
    for secret in [RFC_SHA1, RFC_SHA512] {
        let raw = unhex(secret);
        assert!(!text.contains(secret));
        assert!(!text.contains("GEZDGNBVGY3TQOJQ"), "base32 of the secret");
        assert!(!decoded.iter().any(|v| v.windows(16).any(|w| raw.windows(16).any(|r| r == w))), "raw bytes");
    }
}

/// With several tokens, the one the user did not use is not charged a failure.
#[tokio::test]
async fn using_one_token_does_not_lock_another() {
    let s = setup().await;
    s.token("first", TokenType::Hotp, RFC_SHA256, |_| {}).await;
    s.token("second", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let p = Policy::default();
    for c in 0..12u64 {
        let code = oathtool(&["-c", &c.to_string(), RFC_SHA1]);
        let tokens = [s.fresh("first").await, s.fresh("second").await];
        let r = verify::verify_any(&s.dir, &s.ring, &tokens, &code, at(0), &p).await.unwrap();
        assert_eq!(r, Some((1, Outcome::Accepted { counter: c as i64 })));
    }
    assert_eq!(s.fresh("first").await.failure_count, 0);
    // A code neither token knows is charged to both.
    let tokens = [s.fresh("first").await, s.fresh("second").await];
    let r = verify::verify_any(&s.dir, &s.ring, &tokens, "000000", at(0), &p).await.unwrap();
    assert!(matches!(r, Some((_, Outcome::Refused(Refusal::WrongCode)))));
    assert_eq!((s.fresh("first").await.failure_count, s.fresh("second").await.failure_count), (1, 1));
}

/// A TOTP token whose clock runs 5 minutes late is resynchronised with two
/// consecutive codes; the drift is remembered, so the next code inside the
/// normal ±1 window of the *device's* clock is accepted.
#[tokio::test]
async fn totp_drift_is_learned_by_resync() {
    let s = setup().await;
    s.token("drift", TokenType::Totp, RFC_SHA1, |_| {}).await;
    let server_now = 1_850_000_000i64;
    let device = server_now - 300;
    let code_at = |t: i64| oathtool(&["--totp", "-N", &format!("@{t}"), RFC_SHA1]);
    assert_eq!(s.check("drift", &code_at(device), at(server_now)).await, Outcome::Refused(Refusal::WrongCode));
    let t = s.fresh("drift").await;
    let r = verify::resync(
        &s.dir,
        &s.ring,
        &t,
        &code_at(device),
        &code_at(device + 30),
        at(server_now),
        &Policy::default(),
    )
    .await
    .unwrap();
    assert!(matches!(r, Outcome::Accepted { .. }), "{r:?}");
    let t = s.fresh("drift").await;
    assert_eq!(t.clock_offset, Some(-9), "10 steps behind, the second code one step later");
    assert_eq!(t.failure_count, 0);
    // Later, the device (still 5 minutes late) is accepted without resync.
    let later = server_now + 120;
    assert!(matches!(s.check("drift", &code_at(later - 300), at(later)).await, Outcome::Accepted { .. }));
    // The resync codes themselves are spent.
    assert!(matches!(s.check("drift", &code_at(device + 30), at(server_now)).await, Outcome::Refused(_)));
}

fn replace(attr: &str, value: Vec<u8>) -> Change {
    Change::Replace(attr.as_bytes().to_vec(), [value].into_iter().collect())
}

/// Two long-running verifiers (two brokers, each with its own token cache
/// and connections) race the same valid HOTP codes: the entryCSN-guarded
/// writes let exactly one accept each code, and a third, uncached verifier
/// then finds every code spent.
#[tokio::test]
async fn cached_verifiers_race_each_code_exactly_once() {
    let s = setup().await;
    s.token("cr", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let other = s.bed.dir_as(Identity::Broker).await;
    let (ca, cb) = (TokenCache::new(), TokenCache::new());
    let p = Policy::default();
    for c in 0..150u64 {
        let code = oathtool(&["-c", &c.to_string(), RFC_SHA1]);
        let (a, b) = tokio::join!(
            ca.verify(&s.dir, &s.ring, "cr", &code, at(0), &p),
            cb.verify(&other, &s.ring, "cr", &code, at(0), &p)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let accepted = [&a, &b].iter().filter(|o| matches!(o, Outcome::Accepted { .. })).count();
        assert_eq!(accepted, 1, "code {c}: {a:?} {b:?}");
        assert_eq!(s.check("cr", &code, at(0)).await, Outcome::Refused(Refusal::AlreadyUsed), "code {c}");
    }
    let t = s.fresh("cr").await;
    assert_eq!((t.hotp_counter, t.failure_count), (Some(150), 0), "a lost race is no failed guess");
}

/// A verifier's remembered token state never outlives a change made
/// elsewhere: a code spent by another broker, a disabled token, a new secret,
/// failures and a lockout counted by others, a deleted token.
#[tokio::test]
async fn a_cached_token_sees_every_change_made_elsewhere() {
    let s = setup().await;
    s.token("cc", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let admin = s.bed.dir_as(Identity::Admin).await;
    let dn = s.fresh("cc").await.dn(s.dir.layout()).unwrap();
    let cache = TokenCache::new();
    let p = Policy::default();
    let code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    let check = |code: String| {
        let (cache, s, p) = (&cache, &s, &p);
        async move { cache.verify(&s.dir, &s.ring, "cc", &code, at(0), p).await.unwrap() }
    };
    assert_eq!(check(code(0)).await, Outcome::Accepted { counter: 0 });
    // Spent by another broker behind this cache's back.
    assert_eq!(s.check("cc", &code(1), at(0)).await, Outcome::Accepted { counter: 1 });
    assert_eq!(check(code(1)).await, Outcome::Refused(Refusal::AlreadyUsed));
    assert_eq!(check(code(2)).await, Outcome::Accepted { counter: 2 });
    // Disabled by an admin: a valid code is refused, enabled again: accepted.
    admin.modify(&dn, vec![replace("dirbrokerDisabled", b"TRUE".to_vec())]).await.unwrap();
    assert_eq!(check(code(3)).await, Outcome::Refused(Refusal::Disabled));
    admin.modify(&dn, vec![replace("dirbrokerDisabled", b"FALSE".to_vec())]).await.unwrap();
    assert_eq!(check(code(3)).await, Outcome::Accepted { counter: 3 });
    // Re-enrolled with a new secret: the old secret's codes stop working.
    let new_secret = s.ring.seal(&context::otp_token(&s.fresh("cc").await), &unhex(RFC_SHA256)).unwrap();
    admin.modify(&dn, vec![replace("dirbrokerOtpSecret", new_secret.0)]).await.unwrap();
    assert_eq!(check(code(4)).await, Outcome::Refused(Refusal::WrongCode));
    let new_code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA256]);
    assert_eq!(check(new_code(4)).await, Outcome::Accepted { counter: 4 });
    // Failures counted by another broker: the next good code clears them.
    for _ in 0..3 {
        assert_eq!(s.check("cc", "000000", at(0)).await, Outcome::Refused(Refusal::WrongCode));
    }
    assert_eq!(s.fresh("cc").await.failure_count, 3);
    assert_eq!(check(new_code(5)).await, Outcome::Accepted { counter: 5 });
    assert_eq!(s.fresh("cc").await.failure_count, 0);
    // Locked out by failures elsewhere: refused here too, until unlocked.
    for _ in 0..10 {
        s.check("cc", "000000", at(0)).await;
    }
    let until = Some(at(60));
    assert_eq!(check(new_code(6)).await, Outcome::Refused(Refusal::LockedOut { failures: 10, until }));
    verify::unlock(&s.dir, &s.fresh("cc").await).await.unwrap();
    assert_eq!(check(new_code(6)).await, Outcome::Accepted { counter: 6 });
    // Deleted: an error that says so, not an acceptance.
    admin.delete(&dn).await.unwrap();
    let gone = cache.verify(&s.dir, &s.ring, "cc", &new_code(7), at(0), &p).await;
    assert!(matches!(gone, Err(VerifyError::Directory(DirError::NotFound { .. }))), "{gone:?}");
}

/// Verification by owner (what `dirbroker serve` answers data centers with):
/// a token enrolled after the owner's tokens were remembered still works,
/// a disabled one stops, and a user without tokens is told so.
#[tokio::test]
async fn cached_owner_verification_follows_enrolment() {
    let s = setup().await;
    let owner = s.dir.layout().people.child("uid", "alice").unwrap();
    let cache = TokenCache::new();
    let p = Policy::default();
    let verify_owner = |code: String| {
        let (cache, s, p, owner) = (&cache, &s, &p, &owner);
        async move { cache.verify_owner(&s.dir, &s.ring, owner, &code, at(0), p).await.unwrap() }
    };
    assert_eq!(verify_owner("123456".into()).await, None, "no token yet");
    s.token("o1", TokenType::Hotp, RFC_SHA1, |_| {}).await;
    let sha1 = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    let sha256 = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA256]);
    let (t, o) = verify_owner(sha1(0)).await.unwrap();
    assert_eq!((t.id.as_str(), o), ("o1", Outcome::Accepted { counter: 0 }));
    let (_, o) = verify_owner(sha1(0)).await.unwrap();
    assert_eq!(o, Outcome::Refused(Refusal::AlreadyUsed));
    // A second token, enrolled while the first is remembered.
    s.token("o2", TokenType::Hotp, RFC_SHA256, |_| {}).await;
    let (t, o) = verify_owner(sha256(0)).await.unwrap();
    assert_eq!((t.id.as_str(), o), ("o2", Outcome::Accepted { counter: 0 }));
    let (t, o) = verify_owner(sha1(1)).await.unwrap();
    assert_eq!((t.id.as_str(), o), ("o1", Outcome::Accepted { counter: 1 }));
    // Disabled elsewhere: its codes stop working here.
    let admin = s.bed.dir_as(Identity::Admin).await;
    admin
        .modify(&s.fresh("o1").await.dn(s.dir.layout()).unwrap(), vec![replace("dirbrokerDisabled", b"TRUE".to_vec())])
        .await
        .unwrap();
    let (t, o) = verify_owner(sha1(2)).await.unwrap();
    assert_eq!(t.id, "o2");
    assert!(matches!(o, Outcome::Refused(Refusal::WrongCode)), "{o:?}");
    assert_eq!(s.fresh("o1").await.hotp_counter, Some(2));
}

/// Audit F8: the directory admin (LDAP write, no keyring) re-points
/// mallory's token at alice. Before sealing v2 her codes then passed as
/// alice's at `/v1/otp/verify` (this is the call the route makes). Now the
/// seal binds the owner and the OTP parameters: the moved token opens for
/// no one, and works again only once moved back.
#[tokio::test]
async fn a_token_re_pointed_at_another_user_opens_for_no_one() {
    let s = setup().await;
    s.dir.create(&User::new("mallory", "Mallory").unwrap()).await.unwrap();
    let people = &s.dir.layout().people;
    let (alice, mallory) = (people.child("uid", "alice").unwrap(), people.child("uid", "mallory").unwrap());
    let mut t = OtpToken::new("mal-1", mallory.clone(), TokenType::Hotp).unwrap();
    t.hotp_counter = Some(0);
    t.secret = Some(s.ring.seal(&context::otp_token(&t), &unhex(RFC_SHA1)).unwrap());
    let dn = s.dir.create(&t).await.unwrap();
    let code = |c: u64| oathtool(&["-c", &c.to_string(), RFC_SHA1]);
    let cache = TokenCache::new();
    let verify_as = |owner: dirbroker::directory::Dn, code: String| {
        let (dir, ring, cache) = (&s.dir, &s.ring, &cache);
        async move { cache.verify_owner(dir, ring, &owner, &code, at(0), &Policy::default()).await }
    };
    let accepted =
        |r: &Result<Option<(OtpToken, Outcome)>, VerifyError>| matches!(r, Ok(Some((_, Outcome::Accepted { .. }))));
    let unopenable = |r: &Result<Option<(OtpToken, Outcome)>, VerifyError>| matches!(r, Err(VerifyError::Seal { token, source: SealError::Tampered }) if token == "mal-1");
    // Mallory's own code works for mallory, and alice has no token.
    assert!(accepted(&verify_as(mallory.clone(), code(0)).await));
    assert!(matches!(verify_as(alice.clone(), code(1)).await, Ok(None)));

    let ldapmodify = |change: String| {
        let o = s.bed.ldap_tool_admin("ldapmodify", &[], &format!("dn: {dn}\nchangetype: modify\n{change}"));
        assert!(o.status.success(), "{}", dirbroker_testbed::harness::text(&o));
    };
    ldapmodify(format!("replace: dirbrokerTokenOwner\ndirbrokerTokenOwner: {alice}\n"));
    // Alice's verification finds the token and refuses mallory's next code.
    let r = verify_as(alice.clone(), code(1)).await;
    assert!(unopenable(&r), "the moved token must not verify as alice: {r:?}");
    // Mallory no longer owns it; by id (the cache's other path) it does not open either.
    assert!(matches!(verify_as(mallory.clone(), code(1)).await, Ok(None)));
    let r = cache.verify(&s.dir, &s.ring, "mal-1", &code(1), at(0), &Policy::default()).await;
    assert!(matches!(r, Err(VerifyError::Seal { source: SealError::Tampered, .. })), "{r:?}");
    assert_eq!(s.fresh("mal-1").await.hotp_counter, Some(1), "nothing was consumed");

    // Moved back: the binding was the only obstacle.
    ldapmodify(format!("replace: dirbrokerTokenOwner\ndirbrokerTokenOwner: {mallory}\n"));
    assert!(accepted(&verify_as(mallory.clone(), code(1)).await));

    // The parameters are bound too: other digits, another algorithm or type
    // make the token unopenable (a 6-digit token turned into an 8-digit one
    // would otherwise take codes mallory computes from the secret she knows).
    let eight = oathtool(&["-d", "8", "-c", "2", RFC_SHA1]);
    for (change, undo, code) in [
        (
            "replace: dirbrokerOtpDigits\ndirbrokerOtpDigits: 8\n",
            "replace: dirbrokerOtpDigits\ndirbrokerOtpDigits: 6\n",
            &eight,
        ),
        (
            "replace: dirbrokerOtpAlgorithm\ndirbrokerOtpAlgorithm: sha256\n",
            "delete: dirbrokerOtpAlgorithm\n",
            &code(2),
        ),
        (
            "replace: dirbrokerTokenType\ndirbrokerTokenType: totp\n",
            "replace: dirbrokerTokenType\ndirbrokerTokenType: hotp\n",
            &code(2),
        ),
    ] {
        ldapmodify(change.to_string());
        let r = verify_as(mallory.clone(), code.clone()).await;
        assert!(unopenable(&r), "{change}: {r:?}");
        ldapmodify(undo.to_string());
    }
    // Undone (digits 6 written out equals the default): the token works again.
    let r = verify_as(mallory, code(2)).await;
    assert!(accepted(&r), "{r:?}");
}
