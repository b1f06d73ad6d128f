//! The paper's Table 1 claims, played as attacks against the protocol
//! states in-process (the end-to-end versions with real processes live in
//! tests/e2e/migration.rs).

use std::time::Duration;

use dirbroker::ca::{Ca, CertKind};
use dirbroker_proto::api::machines::OtpVerifyReply;
use dirbroker_proto::otp::Algorithm;
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A seeded RNG for the protocol's nonces, a new seed for each call (so two
/// requests of one test never share a nonce) and the same seeds every run.
fn rng() -> rand::rngs::StdRng {
    use rand::SeedableRng as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    rand::rngs::StdRng::seed_from_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

use super::authorisation::{Authoriser, UserAuthorisation};
use super::crypto::{DcIdentity, Trust};
use super::messages::*;
use super::operation::*;
use super::request::*;
use super::*;

struct Pki {
    _dir: tempfile::TempDir,
    ca: Ca,
    src: DcIdentity,
    dest: DcIdentity,
    src_serial: Vec<u8>,
    broker: Authoriser,
    broker_serial: Vec<u8>,
}

fn now() -> OffsetDateTime {
    dirbroker_service::clock::now()
}

fn unix_now() -> UnixTime {
    dirbroker_service::clock::unix_time()
}

fn identity(ca: &Ca, did: &str) -> (DcIdentity, Vec<u8>) {
    let issued = ca.issue_dc(did, "127.0.0.1", now(), 30).unwrap();
    (DcIdentity::from_pem(issued.key_pem.as_bytes(), issued.cert_pem.as_bytes()).unwrap(), issued.serial)
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(&dir.path().join("ca.key"), &dir.path().join("ca.pem"), "test CA", now(), 1).unwrap();
    let (src, src_serial) = identity(&ca, "DC-SRC");
    let (dest, _) = identity(&ca, "DC-DEST");
    let (broker, broker_serial) = broker_signer(&ca);
    Pki { _dir: dir, ca, src, dest, src_serial, broker, broker_serial }
}

/// The broker's signer of migration authorisations: its HTTPS key and certificate from `ca`.
fn broker_signer(ca: &Ca) -> (Authoriser, Vec<u8>) {
    use rustls_pki_types::pem::PemObject as _;
    let issued = ca.issue(CertKind::Broker, "broker-1", &["127.0.0.1".into()], now(), 30).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    (Authoriser::from_der(key.secret_der(), issued.cert_der).unwrap(), issued.serial)
}

/// The broker's authorisation, as `/v1/otp/verify` signs it for DC-SRC, of a fresh migration id.
fn authorised(p: &Pki, uid: &str) -> UserAuthorisation {
    p.broker.authorise(uid, "DC-SRC", &crypto::nonce(&mut rng()), t0()).unwrap()
}

fn trust(p: &Pki, revoked: &[Vec<u8>]) -> Trust {
    let list: Vec<_> = revoked.iter().map(|s| (s.clone(), now())).collect();
    Trust::new(p.ca.cert_der.clone(), p.ca.crl(&list, 2, now()).unwrap())
}

fn k1() -> K1 {
    K1::new("k1-alice-src", "alice", "DC-SRC", Zeroizing::new(vec![42u8; 32])).unwrap()
}

fn store() -> K1Store {
    let mut s = K1Store::default();
    s.insert(k1());
    s
}

fn user(otp: &str) -> MigAuthRequest {
    MigAuthRequest { uid: "bob".into(), otp: Zeroizing::new(otp.into()) }
}

fn order() -> MigRqst {
    MigRqst { vm: "vm1.qcow2".into(), source_server: "PS-1".into(), dest_server: "PS-9".into() }
}

fn t0() -> i64 {
    now().unix_timestamp()
}

/// The broker's accepting answer: for `uid` and migration `id`, with an
/// authorisation (the source does not check its signature; the destination
/// does, see `destination_requires_the_users_authorisation`).
fn accepting_reply(uid: &str, id: [u8; 16]) -> OtpVerifyReply {
    let authorisation = UserAuthorisation {
        uid: uid.into(),
        src_did: "DC-SRC".into(),
        migration_id: id,
        issued_at: t0(),
        expires_at: t0() + 300,
        broker_cert: Vec::new(),
        signature: Vec::new(),
    };
    OtpVerifyReply { accepted: true, reason: None, authorisation: Some(authorisation) }
}

/// The broker's accepting answer for the user of `check`, then `Auth_Reply`.
fn broker_accepts(check: OtpToCheck<'_>) -> Result<(AuthReply, AwaitingMigRequestAdmin<'_>), MigrationError> {
    let reply = accepting_reply(&check.uid, check.migration_id);
    let consumed = OtpConsumed::from_reply(&check.uid, &check.migration_id, reply).unwrap();
    check.accepted(consumed, &mut rng())
}

/// No `Auth_Reply` without the broker's acceptance of this very user's OTP:
/// a refusal gives no witness, and one for another user does not fit.
#[test]
fn auth_reply_needs_the_brokers_acceptance_for_this_user() {
    let refused = OtpConsumed::from_reply(
        "bob",
        &[0; 16],
        OtpVerifyReply { accepted: false, reason: Some("spent".into()), authorisation: None },
    );
    assert_eq!(refused.unwrap_err(), "spent");
    let (keys, k1) = (store(), k1());
    let mut cache = ReplayCache::default();
    let (req, _) = start(&k1, &user("123456"), t0(), &mut rng()).unwrap();
    let check = receive_auth_request(&keys, "DC-SRC", &req, &mut cache, t0(), &mut rng()).unwrap();
    let for_eve = OtpConsumed::from_reply("eve", &check.migration_id, accepting_reply("eve", check.migration_id));
    let e = check.accepted(for_eve.unwrap(), &mut rng()).unwrap_err();
    assert!(e.to_string().contains("this request is \"bob\"'s"), "{e}");
    // An acceptance without an authorisation, or one for another migration, is no witness.
    let bare = OtpVerifyReply { accepted: true, reason: None, authorisation: None };
    assert!(OtpConsumed::from_reply("bob", &[7; 16], bare).unwrap_err().contains("no authorisation"));
    let other = OtpConsumed::from_reply("bob", &[7; 16], accepting_reply("bob", [8; 16]));
    assert!(other.unwrap_err().contains("another user or migration"));
}

#[test]
fn request_module_honest_run() {
    let (keys, k1) = (store(), k1());
    let mut cache = ReplayCache::default();
    let (req, waiting) = start(&k1, &user("123456"), t0(), &mut rng()).unwrap();
    let check = receive_auth_request(&keys, "DC-SRC", &req, &mut cache, t0() + 1, &mut rng()).unwrap();
    assert_eq!((check.uid.as_str(), check.otp.as_str(), check.admin()), ("bob", "123456", "alice"));
    let (reply, dc_waiting) = broker_accepts(check).unwrap();
    let (mig, admin_waiting) = waiting.receive(&k1, &reply, order(), "DC-DEST").unwrap();
    let (body, session) = dc_waiting.receive(&mig).unwrap();
    assert_eq!(body, MigRequestAdminBody { mig_rqst: order(), dest_did: "DC-DEST".into(), uid: "bob".into() });
    let done = session
        .done(&MigrationDoneBody { migration_id: [1; 16], outcome: Ok(Transferred { bytes: 5, blake3: [2; 32] }) })
        .unwrap();
    assert_eq!(admin_waiting.receive(&done).unwrap().outcome, Ok(Transferred { bytes: 5, blake3: [2; 32] }));
}

#[test]
fn replayed_auth_request_is_refused() {
    let (keys, k1) = (store(), k1());
    let mut cache = ReplayCache::default();
    let (req, _) = start(&k1, &user("123456"), t0(), &mut rng()).unwrap();
    receive_auth_request(&keys, "DC-SRC", &req, &mut cache, t0(), &mut rng()).unwrap();
    let e = receive_auth_request(&keys, "DC-SRC", &req, &mut cache, t0() + 10, &mut rng()).unwrap_err();
    assert!(matches!(e, MigrationError::Replay { what: "Auth_Request", .. }), "{e}");
    // Replayed after the cache would have forgotten it: the timestamp is stale.
    let e =
        receive_auth_request(&keys, "DC-SRC", &req, &mut ReplayCache::default(), t0() + 301, &mut rng()).unwrap_err();
    assert!(e.to_string().contains("timestamp is 301 s away"), "{e}");
}

#[test]
fn auth_request_tampering_and_wrong_keys_are_refused() {
    let (keys, k1) = (store(), k1());
    let (req, _) = start(&k1, &user("123456"), t0(), &mut rng()).unwrap();
    for i in 0..req.sealed.len() {
        let mut bad = req.clone();
        bad.sealed[i] ^= 0x10;
        let e = receive_auth_request(&keys, "DC-SRC", &bad, &mut ReplayCache::default(), t0(), &mut rng()).unwrap_err();
        assert!(matches!(e, MigrationError::Crypto(CryptoError::Tampered { .. })), "byte {i}: {e}");
    }
    // Claiming another admin for the same K1, or another K1, or another DC.
    let mut other = req.clone();
    other.admin = "mallory".into();
    assert!(matches!(
        receive_auth_request(&keys, "DC-SRC", &other, &mut ReplayCache::default(), t0(), &mut rng()),
        Err(MigrationError::Unknown { .. })
    ));
    assert!(receive_auth_request(&keys, "DC-OTHER", &req, &mut ReplayCache::default(), t0(), &mut rng()).is_err());
    let wrong = K1::new("k1-alice-src", "alice", "DC-SRC", Zeroizing::new(vec![7u8; 32])).unwrap();
    let (forged, _) = start(&wrong, &user("123456"), t0(), &mut rng()).unwrap();
    assert!(receive_auth_request(&keys, "DC-SRC", &forged, &mut ReplayCache::default(), t0(), &mut rng()).is_err());
}

#[test]
fn auth_reply_for_another_request_is_refused() {
    let (keys, k1) = (store(), k1());
    let (req1, waiting1) = start(&k1, &user("111111"), t0(), &mut rng()).unwrap();
    let (req2, _waiting2) = start(&k1, &user("222222"), t0(), &mut rng()).unwrap();
    let mut cache = ReplayCache::default();
    receive_auth_request(&keys, "DC-SRC", &req1, &mut cache, t0(), &mut rng()).unwrap();
    let (reply2, _) =
        broker_accepts(receive_auth_request(&keys, "DC-SRC", &req2, &mut cache, t0(), &mut rng()).unwrap()).unwrap();
    // The reply to request 2 (a replay from another session) does not answer request 1.
    let e = waiting1.receive(&k1, &reply2, order(), "DC-DEST").unwrap_err();
    assert!(e.to_string().contains("answers another request"), "{e}");
}

#[test]
fn mig_request_admin_replayed_into_another_session_is_refused() {
    let (keys, k1) = (store(), k1());
    let mut cache = ReplayCache::default();
    let run = |cache: &mut ReplayCache, otp: &str| {
        let (req, waiting) = start(&k1, &user(otp), t0(), &mut rng()).unwrap();
        let (reply, dc) =
            broker_accepts(receive_auth_request(&keys, "DC-SRC", &req, cache, t0(), &mut rng()).unwrap()).unwrap();
        let (mig, _) = waiting.receive(&k1, &reply, order(), "DC-DEST").unwrap();
        (mig, dc)
    };
    let (mig1, _) = run(&mut cache, "111111");
    let (_, dc2) = run(&mut cache, "222222");
    assert!(matches!(dc2.receive(&mig1), Err(MigrationError::Crypto(CryptoError::Tampered { .. }))));
}

#[test]
fn dc_to_dc_request_and_signed_response() {
    let p = pki();
    let t = trust(&p, &[]);
    let admin_order = MigRequestAdminBody { mig_rqst: order(), dest_did: "DC-DEST".into(), uid: "bob".into() };
    let dest_info = t.verify_dc(&p.dest.cert_der, Some("DC-DEST"), unix_now()).unwrap();
    let (req, waiting) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let mut cache = ReplayCache::default();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(t0() as u64 + 5));
    let incoming = receive_mig_request_dc(&p.dest, &t, &req, &p.src.cert_der, &mut cache, now).unwrap();
    assert_eq!((incoming.body.src_did.as_str(), incoming.body.uid.as_str()), ("DC-SRC", "bob"));
    // The same request again is a replay.
    let e = receive_mig_request_dc(&p.dest, &t, &req, &p.src.cert_der, &mut cache, now).unwrap_err();
    assert!(matches!(e, MigrationError::Replay { .. }), "{e}");
    let resp = incoming.respond(&p.dest, Ack::Accepted).unwrap();
    let ack = waiting.receive(&p.src, &t, &resp, unix_now()).unwrap();
    // Non-repudiation: the signature verifies with the destination's
    // certified key over Dest_DID ‖ Ack ‖ migration ‖ request, for anyone.
    let signed = response_signed_bytes("DC-DEST", &Ack::Accepted, &ack.request.migration_id, &ack.request_digest);
    crypto::verify_signature(&ack.dest.public_point, &signed, &ack.signature, "x").unwrap();
    let refused =
        response_signed_bytes("DC-DEST", &Ack::Refused("no".into()), &ack.request.migration_id, &ack.request_digest);
    assert!(crypto::verify_signature(&ack.dest.public_point, &refused, &ack.signature, "x").is_err());
}

#[test]
fn forged_or_revoked_certificates_are_refused() {
    let p = pki();
    // A certificate from another CA with the same DID.
    let dir = tempfile::tempdir().unwrap();
    let rogue_ca = Ca::init(&dir.path().join("k"), &dir.path().join("c"), "rogue", now(), 1).unwrap();
    let (rogue, _) = identity(&rogue_ca, "DC-SRC");
    let t = trust(&p, &[]);
    let e = t.verify_dc(&rogue.cert_der, Some("DC-SRC"), unix_now()).unwrap_err();
    assert!(e.to_string().contains("not issued by the broker CA"), "{e}");
    // A revoked one.
    let revoked = trust(&p, std::slice::from_ref(&p.src_serial));
    let e = revoked.verify_dc(&p.src.cert_der, Some("DC-SRC"), unix_now()).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    // The wrong DID.
    let e = t.verify_dc(&p.src.cert_der, Some("DC-DEST"), unix_now()).unwrap_err();
    assert!(e.to_string().contains("expected \"DC-DEST\""), "{e}");
    // A request carrying a rogue Cert_Src is refused by the destination.
    let admin_order = MigRequestAdminBody { mig_rqst: order(), dest_did: "DC-DEST".into(), uid: "bob".into() };
    let dest_info = t.verify_dc(&p.dest.cert_der, None, unix_now()).unwrap();
    let (req, _) = mig_request_dc(&rogue, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(t0() as u64));
    let e = receive_mig_request_dc(&p.dest, &t, &req, &rogue.cert_der, &mut ReplayCache::default(), now).unwrap_err();
    assert!(matches!(e, MigrationError::Crypto(CryptoError::Certificate(_))), "{e}");
    // …and so is a revoked source, and a Cert_Src that is not the TLS peer's.
    let (req, _) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    assert!(
        receive_mig_request_dc(&p.dest, &revoked, &req, &p.src.cert_der, &mut ReplayCache::default(), now).is_err()
    );
    let e = receive_mig_request_dc(&p.dest, &t, &req, &p.dest.cert_der, &mut ReplayCache::default(), now).unwrap_err();
    assert!(e.to_string().contains("not the certificate of the connection"), "{e}");
}

#[test]
fn mig_response_dc_with_a_bad_signature_is_refused() {
    let p = pki();
    let t = trust(&p, &[]);
    let admin_order = MigRequestAdminBody { mig_rqst: order(), dest_did: "DC-DEST".into(), uid: "bob".into() };
    let dest_info = t.verify_dc(&p.dest.cert_der, None, unix_now()).unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(t0() as u64));
    // A third data center, certified by the same CA, signs in DEST's name
    // but must attach DEST's certificate to pass the DID check.
    let (other, _) = identity(&p.ca, "DC-OTHER");
    let (req, waiting) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let incoming =
        receive_mig_request_dc(&p.dest, &t, &req, &p.src.cert_der, &mut ReplayCache::default(), now).unwrap();
    let forged = incoming.respond(&other, Ack::Accepted).unwrap();
    let forged = MigResponseDc { sealed: forged.sealed, cert_dest: p.dest.cert_der.clone() };
    let e = waiting.receive(&p.src, &t, &forged, unix_now()).unwrap_err();
    assert!(matches!(e, MigrationError::Crypto(CryptoError::BadSignature { .. })), "{e}");
    // A signature for another request (same destination) is refused too.
    let (req_a, waiting_a) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let (req_b, _) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let _ = req_a;
    let inc_b = receive_mig_request_dc(&p.dest, &t, &req_b, &p.src.cert_der, &mut ReplayCache::default(), now).unwrap();
    let resp_b = inc_b.respond(&p.dest, Ack::Accepted).unwrap();
    assert!(waiting_a.receive(&p.src, &t, &resp_b, unix_now()).is_err());
    // A refusal is reported as one.
    let (req, waiting) = mig_request_dc(&p.src, &dest_info, &admin_order, &authorised(&p, "bob"), t0()).unwrap();
    let inc = receive_mig_request_dc(&p.dest, &t, &req, &p.src.cert_der, &mut ReplayCache::default(), now).unwrap();
    let no = inc.respond(&p.dest, Ack::Refused("PS-9 is full".into())).unwrap();
    let e = waiting.receive(&p.src, &t, &no, unix_now()).unwrap_err();
    assert_eq!(e.to_string(), "DC-DEST refused the migration: PS-9 is full");
}

fn totp_key() -> TotpKey {
    TotpKey::new("DC-SRC", "PS-1", Algorithm::Sha1, 30, Zeroizing::new(b"12345678901234567890".to_vec())).unwrap()
}

#[test]
fn dc_ps_mutual_authentication_and_sk_delivery() {
    let (dc_key, ps_key) = (totp_key(), totp_key());
    let now = 1_800_000_000u64;
    let step = dc_key.step(now);
    let (req, waiting) = dc_ps_auth_request(&dc_key, step, &mut rng()).unwrap();
    let mut guard = StepGuard::default();
    let (resp, ps) = receive_dc_ps_auth_request(&ps_key, &req, &mut guard, now + 10, &mut rng()).unwrap();
    let dc = waiting.receive(&resp).unwrap();
    let job = Job::Send { vm: "vm1".into(), to: "127.0.0.1:9".into() };
    let (sk, dc) = dc.deliver(&SkDeliveryBody { sk: [9; 32], migration_id: [3; 16], job: job.clone() }).unwrap();
    // E_TOTP(SK) replayed into the next session with the same server (the
    // next step, fresh nonces) does not open there.
    let (req2, _) = dc_ps_auth_request(&dc_key, step + 1, &mut rng()).unwrap();
    let (_, ps2) = receive_dc_ps_auth_request(&ps_key, &req2, &mut guard, now + 40, &mut rng()).unwrap();
    assert!(matches!(ps2.receive_sk(&sk), Err(MigrationError::Crypto(CryptoError::Tampered { .. }))));
    let (got, ps) = ps.receive_sk(&sk).unwrap();
    assert_eq!((got.sk, &got.job), ([9; 32], &job));
    let (ready, ps) = ps.ready(&PsReadyBody { data_addr: None }).unwrap();
    let (ready, dc) = dc.receive(&ready).unwrap();
    assert_eq!(ready.data_addr, None);
    let sent = Transferred { bytes: 7, blake3: [1; 32] };
    let report = ps.report(&TransferReportBody { outcome: Ok(sent.clone()) }).unwrap();
    assert_eq!(dc.receive(&report).unwrap().outcome, Ok(sent));
}

/// The step of `DC_PS_Auth_Request` travels in clear before anything is
/// authenticated: a hostile one at the end of the range is refused, never
/// overflowed; so is an `Auth_Request` timestamp at the end of its range.
#[test]
fn steps_and_timestamps_at_the_ends_of_their_range_are_refused() {
    let (dc_key, ps_key) = (totp_key(), totp_key());
    let now = 1_800_000_000u64;
    let (mut req, _) = dc_ps_auth_request(&dc_key, dc_key.step(now), &mut rng()).unwrap();
    for step in [u64::MAX, u64::MAX - 1, 0] {
        req.step = step;
        let e = receive_dc_ps_auth_request(&ps_key, &req, &mut StepGuard::default(), now, &mut rng()).unwrap_err();
        assert!(e.to_string().contains("outside"), "{step}: {e}");
    }
    let mut cache = ReplayCache::default();
    for timestamp in [i64::MIN, i64::MAX] {
        let e = cache.check("Auth_Request", &[7; 16], timestamp, 1_800_000_000).unwrap_err();
        assert!(e.to_string().contains("s away from now"), "{timestamp}: {e}");
    }
    let e = cache.check("Auth_Request", &[7; 16], 0, i64::MAX).unwrap_err();
    assert!(matches!(e, MigrationError::Replay { .. }), "{e}");
}

/// The OTP never shows in a log line made with `{:?}`.
#[test]
fn debug_output_never_shows_the_otp() {
    let typed = MigAuthRequest { uid: "bob".into(), otp: Zeroizing::new("493817".into()) };
    let body = AuthRequestBody { uid: "bob".into(), otp: "493817".into(), nonce1: [0; 16], timestamp: 0 };
    for shown in [format!("{typed:?}"), format!("{body:?}")] {
        assert!(shown.contains("bob") && !shown.contains("493817"), "{shown}");
    }
}

#[test]
fn replayed_dc_ps_auth_request_and_old_sessions_are_refused() {
    let (dc_key, ps_key) = (totp_key(), totp_key());
    let now = 1_800_000_000u64;
    let step = dc_key.step(now);
    let mut guard = StepGuard::default();
    let (req, waiting) = dc_ps_auth_request(&dc_key, step, &mut rng()).unwrap();
    let (resp, _) = receive_dc_ps_auth_request(&ps_key, &req, &mut guard, now, &mut rng()).unwrap();
    // The captured request replayed in the same step: one session per step.
    let e = receive_dc_ps_auth_request(&ps_key, &req, &mut guard, now + 1, &mut rng()).unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    // Replayed in a later session: the step is too old.
    let e = receive_dc_ps_auth_request(&ps_key, &req, &mut StepGuard::default(), now + 90, &mut rng()).unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    // A response captured from the previous session does not complete a new one.
    let (_req2, waiting2) = dc_ps_auth_request(&dc_key, step + 1, &mut rng()).unwrap();
    assert!(waiting2.receive(&resp).is_err());
    let _ = waiting;
    // A request forged with a guessed 6-digit code as key does not open:
    // the key is the full HMAC, never the digits.
    let code = dirbroker_proto::otp::totp(b"12345678901234567890", now, 30, 6, Algorithm::Sha1).unwrap();
    let weak = TotpKey::new("DC-SRC", "PS-1", Algorithm::Sha1, 30, Zeroizing::new(format!("{code:0>16}").into_bytes()))
        .unwrap();
    let (forged, _) = dc_ps_auth_request(&weak, step + 2, &mut rng()).unwrap();
    let e = receive_dc_ps_auth_request(&ps_key, &forged, &mut StepGuard::default(), now + 60, &mut rng()).unwrap_err();
    assert!(matches!(e, MigrationError::Crypto(CryptoError::Tampered { .. })), "{e}");
}

#[test]
fn dc_ps_request_for_another_server_or_reflected_is_refused() {
    let dc_key = totp_key();
    let other =
        TotpKey::new("DC-SRC", "PS-2", Algorithm::Sha1, 30, Zeroizing::new(b"12345678901234567890".to_vec())).unwrap();
    let now = 1_800_000_000u64;
    let (req, _) = dc_ps_auth_request(&dc_key, dc_key.step(now), &mut rng()).unwrap();
    let e = receive_dc_ps_auth_request(&other, &req, &mut StepGuard::default(), now, &mut rng()).unwrap_err();
    assert!(matches!(e, MigrationError::Mismatch { .. }), "{e}");
    // Relabelled header (PID swapped to PS-2 under the same secret): the
    // header is bound into the seal, so it does not open.
    let mut relabelled = req.clone();
    relabelled.pid = "PS-2".into();
    assert!(receive_dc_ps_auth_request(&other, &relabelled, &mut StepGuard::default(), now, &mut rng()).is_err());
}

fn prepare(pw: &[u8]) -> dirbroker_proto::speke::PreparedPassword<'static> {
    dirbroker_proto::speke::Speke::prepare(dirbroker_proto::group::Group::modp2048(), pw).unwrap()
}

async fn speke_pair(
    pw_a: &'static [u8],
    pw_b: &'static [u8],
) -> (Result<DcSession, MigrationError>, Result<DcSession, MigrationError>) {
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    let t = Duration::from_secs(5);
    let id = [5u8; 16];
    let (pa, pb) = (prepare(pw_a), prepare(pw_b));
    let fa = async move { speke_session(&mut a, &pa, "DC-SRC", "DC-DEST", true, &id, t).await };
    let fb = async move { speke_session(&mut b, &pb, "DC-DEST", "DC-SRC", false, &id, t).await };
    tokio::join!(fa, fb)
}

#[tokio::test]
async fn speke_session_agrees_and_wrong_password_fails() {
    let (a, b) = speke_pair(b"dc pair password", b"dc pair password").await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(*a.sk, *b.sk);
    // The channel agrees too.
    let ((_, src), (_, dest)) = (a.source().unwrap(), b.destination().unwrap());
    let (ready, _) = dest.ready(&DestReadyBody { data_addr: "127.0.0.1:7".into() }).unwrap();
    assert_eq!(src.receive(&ready).unwrap().0.data_addr, "127.0.0.1:7");
    let (a, b) = speke_pair(b"dc pair password", b"another password").await;
    assert!(a.is_err() && b.is_err());
    // Each side takes only its own role.
    let (a, b) = speke_pair(b"dc pair password", b"dc pair password").await;
    assert!(matches!(a.unwrap().destination(), Err(MigrationError::Local(_))));
    assert!(matches!(b.unwrap().source(), Err(MigrationError::Local(_))));
}

#[tokio::test]
async fn speke_man_in_the_middle_raising_values_is_detected() {
    use dirbroker_proto::group::{Exponent, Group};
    // Mallory relays between the two data centers and raises each SPEKE
    // value to z (Hao–Shahandashti key malleability). Key confirmation fails.
    let (mut a, mut m_a) = tokio::io::duplex(1 << 16);
    let (mut m_b, mut b) = tokio::io::duplex(1 << 16);
    let t = Duration::from_secs(5);
    let id = [5u8; 16];
    let mallory = async move {
        let g = Group::modp2048();
        let z = Exponent::random_short(g, &mut dirbroker_service::clock::rng());
        let raise = |v: &SpekeValue| {
            let e = g.decode(&v.value).unwrap();
            SpekeValue { id: v.id.clone(), value: g.exp(&e, &z).unwrap().to_bytes() }
        };
        let x: SpekeValue = wire::recv(&mut m_a, kind_name, t).await.unwrap();
        wire::send(&mut m_b, &raise(&x)).await.unwrap();
        let y: SpekeValue = wire::recv(&mut m_b, kind_name, t).await.unwrap();
        wire::send(&mut m_a, &raise(&y)).await.unwrap();
        // Relay confirmations unchanged.
        let ca: SpekeConfirm = wire::recv(&mut m_a, kind_name, t).await.unwrap();
        wire::send(&mut m_b, &ca).await.unwrap();
        if let Ok(cb) = wire::recv::<SpekeConfirm, _>(&mut m_b, kind_name, t).await {
            let _ = wire::send(&mut m_a, &cb).await;
        }
    };
    let (pa, pb) = (prepare(b"pw"), prepare(b"pw"));
    let fa = async move { speke_session(&mut a, &pa, "DC-SRC", "DC-DEST", true, &id, t).await };
    let fb = async move { speke_session(&mut b, &pb, "DC-DEST", "DC-SRC", false, &id, t).await };
    let (ra, rb, ()) = tokio::join!(fa, fb, mallory);
    let eb = rb.unwrap_err();
    assert!(matches!(eb, MigrationError::Speke(_)), "{eb}");
    assert!(ra.is_err());
}

#[tokio::test]
async fn speke_out_of_range_and_non_subgroup_values_are_refused() {
    let p = dirbroker_proto::group::Group::modp2048().p().clone();
    let len = 256;
    let pad = |v: num_bigint_for_tests::BigUint| {
        let b = v.to_bytes_be();
        let mut out = vec![0u8; len - b.len()];
        out.extend_from_slice(&b);
        out
    };
    let one = num_bigint_for_tests::BigUint::from(1u8);
    // 0, 1, p-1, p and a quadratic non-residue (p-1 is out of range anyway;
    // a non-residue in range: p - 4 = -4 ≡ -(2^2); -1 is a non-residue mod a
    // safe prime p ≡ 3 mod 4, so -4 is one as well).
    let values = vec![
        vec![0u8; len],
        pad(one.clone()),
        pad(&p - &one),
        pad(p.clone()),
        pad(&p - num_bigint_for_tests::BigUint::from(4u8)),
        vec![1u8; 255],
    ];
    for v in values {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let t = Duration::from_secs(5);
        let id = [5u8; 16];
        let pa = prepare(b"pw");
        let fa = async move { speke_session(&mut a, &pa, "DC-SRC", "DC-DEST", true, &id, t).await };
        let fb = async move {
            let _: SpekeValue = wire::recv(&mut b, kind_name, t).await.unwrap();
            wire::send(&mut b, &SpekeValue { id: "DC-DEST".into(), value: v }).await.unwrap();
            b
        };
        let (ra, _b) = tokio::join!(fa, fb);
        let e = ra.unwrap_err();
        assert!(matches!(e, MigrationError::Speke(_)), "{e}");
    }
}

use num_bigint as num_bigint_for_tests;

/// Audit F11 (issue #13 item 19), played: the destination takes a migration
/// only with the broker's signed authorisation of this user, from this
/// source, for this migration id, in time. A compromised source (it holds
/// its TLS key and can encrypt to the destination) builds `Mig_Request_DC`
/// itself, with a missing, forged, borrowed or stale authorisation.
#[test]
fn destination_requires_the_users_authorisation() {
    let p = pki();
    let t = trust(&p, &[]);
    let admin_order = MigRequestAdminBody { mig_rqst: order(), dest_did: "DC-DEST".into(), uid: "bob".into() };
    let dest_info = t.verify_dc(&p.dest.cert_der, Some("DC-DEST"), unix_now()).unwrap();
    let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs as u64));
    let receive = |req: &MigRequestDc, trust: &Trust, cache: &mut ReplayCache| {
        receive_mig_request_dc(&p.dest, trust, req, &p.src.cert_der, cache, at(t0() + 5))
    };
    let forge = |authorisation: Option<UserAuthorisation>, uid: &str, id: [u8; 16], vm: &str| {
        let mut mig_rqst = order();
        mig_rqst.vm = vm.into();
        let body = MigRequestDcBody {
            mig_rqst,
            src_did: "DC-SRC".into(),
            dest_did: "DC-DEST".into(),
            uid: uid.into(),
            migration_id: id,
            timestamp: t0(),
            authorisation,
        };
        let plain = body_bytes(&body, "Mig_Request_DC").unwrap();
        let sealed = crypto::seal_to(&dest_info.public_point, "Mig_Request_DC", &plain).unwrap();
        MigRequestDc { sealed, cert_src: p.src.cert_der.clone() }
    };
    let sign = |uid: &str, src: &str, id: u8, at: i64| p.broker.authorise(uid, src, &[id; 16], at).unwrap();
    let refused = |req: &MigRequestDc| receive(req, &t, &mut ReplayCache::default()).unwrap_err();

    // The honest path: the source's own request, with the broker's authorisation.
    let good = authorised(&p, "bob");
    let (req, _) = mig_request_dc(&p.src, &dest_info, &admin_order, &good, t0()).unwrap();
    let incoming = receive(&req, &t, &mut ReplayCache::default()).unwrap();
    assert_eq!((incoming.body.authorisation.as_ref(), incoming.body.migration_id), (Some(&good), good.migration_id));
    // The forger's own honest-looking request goes through too (so the refusals below are the authorisation's).
    receive(&forge(Some(sign("bob", "DC-SRC", 1, t0())), "bob", [1; 16], "vm1"), &t, &mut ReplayCache::default())
        .unwrap();

    // Missing.
    let e = refused(&forge(None, "bob", [2; 16], "vm1"));
    assert!(e.to_string().contains("no user authorisation"), "{e}");
    // Forged: signed by the source with its own certified key (not the broker's certificate)…
    let source_signer = Authoriser::from_der(&p.src.key_der, p.src.cert_der.clone()).unwrap();
    let self_signed = source_signer.authorise("bob", "DC-SRC", &[3; 16], t0()).unwrap();
    let e = refused(&forge(Some(self_signed), "bob", [3; 16], "vm1"));
    assert!(matches!(e, MigrationError::Crypto(CryptoError::Certificate(_))), "{e}");
    // …by a "broker" of another CA…
    let dir = tempfile::tempdir().unwrap();
    let rogue_ca = Ca::init(&dir.path().join("k"), &dir.path().join("c"), "rogue", now(), 1).unwrap();
    let (rogue_broker, _) = broker_signer(&rogue_ca);
    let e =
        refused(&forge(Some(rogue_broker.authorise("bob", "DC-SRC", &[4; 16], t0()).unwrap()), "bob", [4; 16], "vm1"));
    assert!(e.to_string().contains("not issued by the broker CA"), "{e}");
    // …or the broker's, altered after signing: the user swapped in, or the expiry pushed out.
    let mut altered = sign("eve", "DC-SRC", 5, t0());
    altered.uid = "bob".into();
    let e = refused(&forge(Some(altered), "bob", [5; 16], "vm1"));
    assert!(matches!(e, MigrationError::Crypto(CryptoError::BadSignature { .. })), "{e}");
    let mut prolonged = sign("bob", "DC-SRC", 6, t0() - 1000);
    prolonged.expires_at = t0() + 1000;
    let e = refused(&forge(Some(prolonged), "bob", [6; 16], "vm1"));
    assert!(matches!(e, MigrationError::Crypto(CryptoError::BadSignature { .. })), "{e}");
    // For another user: eve's OTP, bob's name in the request.
    let e = refused(&forge(Some(sign("eve", "DC-SRC", 7, t0())), "bob", [7; 16], "vm1"));
    assert!(e.to_string().contains("it is \"eve\"'s, the request names \"bob\""), "{e}");
    // For another migration: an authorisation of id 8 on a request with id 9…
    let e = refused(&forge(Some(sign("bob", "DC-SRC", 8, t0())), "bob", [9; 16], "vm1"));
    assert!(e.to_string().contains("another migration id"), "{e}");
    // …or one authorisation used for a second migration (another VM, the same id): the replay cache.
    let once = sign("bob", "DC-SRC", 10, t0());
    let mut cache = ReplayCache::default();
    receive(&forge(Some(once.clone()), "bob", [10; 16], "vm1"), &t, &mut cache).unwrap();
    let e = receive(&forge(Some(once), "bob", [10; 16], "vm2"), &t, &mut cache).unwrap_err();
    assert!(matches!(e, MigrationError::Replay { .. }), "{e}");
    // Given to another data center (the broker names the DC that asked).
    let e = refused(&forge(Some(sign("bob", "DC-OTHER", 11, t0())), "bob", [11; 16], "vm1"));
    assert!(e.to_string().contains("given to \"DC-OTHER\""), "{e}");
    // Expired (accepted 400 s before: 100 s past its 300 s), or issued in the future.
    let e = refused(&forge(Some(sign("bob", "DC-SRC", 12, t0() - 400)), "bob", [12; 16], "vm1"));
    assert!(matches!(e, MigrationError::Replay { .. }) && e.to_string().contains("expired"), "{e}");
    let e = refused(&forge(Some(sign("bob", "DC-SRC", 13, t0() + 1000)), "bob", [13; 16], "vm1"));
    assert!(e.to_string().contains("in the future"), "{e}");
    // Signed with a broker certificate revoked since.
    let revoked = trust(&p, std::slice::from_ref(&p.broker_serial));
    let e = receive(
        &forge(Some(sign("bob", "DC-SRC", 14, t0())), "bob", [14; 16], "vm1"),
        &revoked,
        &mut ReplayCache::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
}
