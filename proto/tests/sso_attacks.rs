//! Attack tests (issue #6 item 6): each plays the attack and asserts the
//! specific error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dirbroker_proto::sso::anon::anonymous_id;
use dirbroker_proto::sso::epoch::EPOCH_SECONDS;
use dirbroker_proto::sso::error::SsoError;
use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::level::{Level, require_level};
use dirbroker_proto::sso::preauth::{remember_proof, verify_pw_proof};
use dirbroker_proto::sso::primitives::{Bytes, Ed25519Key, Lp, X25519KeyPair, aead_open, generator, group, hkdf32};
use dirbroker_proto::sso::registration::*;
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::session::{
    ClientAwaitingTicketReply, ClientCredential, LoginSession, ServiceReply, ServiceVerifier,
};
use dirbroker_proto::sso::tickets::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

const PASSWORD: &[u8] = b"correct horse battery staple";
const T0: i64 = 1_700_000_000;
const BROKER: &str = "https://broker.example";
const SERVICE: &str = "svc-wiki";
const KDF: KdfParams = KdfParams::INSECURE_TEST;
const MASTER: [u8; 32] = [3u8; 32];

struct Registration {
    published: Published,
    ans_key: ed25519_dalek::VerifyingKey,
    /// Every message, serialized as it would go on the wire.
    wire: Vec<String>,
    s_a: Bytes,
    g1: Bytes,
    g2: Bytes,
    m_code: dirbroker_proto::sso::primitives::SealedBox,
    user_level: UserLevel,
}

fn json<T: Serialize>(wire: &mut Vec<String>, m: &T) {
    wire.push(serde_json::to_string(m).unwrap());
}

fn ans(rng: &mut StdRng) -> Ans {
    Ans { box_key: X25519KeyPair::generate(rng).unwrap(), signing_key: Ed25519Key::generate(rng) }
}

fn register(rng: &mut StdRng) -> Registration {
    let ans = ans(rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans.box_key.public() };
    let mut wire = Vec::new();
    let (req, client) = client_start_registration("alice", PASSWORD, KDF, rng).unwrap();
    json(&mut wire, &req);
    let (agent_req, broker) = broker_receive_registration(&req, BROKER, "sso-agent-v1", Level::Normal, rng).unwrap();
    json(&mut wire, &agent_req);
    let created = ams.create_agent(&agent_req, T0, rng).unwrap();
    json(&mut wire, &created.to_ans);
    json(&mut wire, &created.to_client);
    json(&mut wire, &created.to_broker);
    let broker = broker.receive_agent_created(&created.to_broker).unwrap();
    let ans_state = ans.receive_mcode(&created.to_ans, Level::Normal, T0).unwrap();
    let share = client.receive_agent(&created.to_client).unwrap();
    json(&mut wire, &share);
    let to_broker = ans_state.receive_share(&ans, &share).unwrap();
    json(&mut wire, &to_broker);
    let published = broker.receive_user_level(&to_broker, &ans.signing_key.verifying_key(), T0).unwrap();
    json(&mut wire, &published);
    Registration {
        published,
        ans_key: ans.signing_key.verifying_key(),
        wire,
        s_a: created.to_client.s_a.clone(),
        g1: req.g1.clone(),
        g2: share.g2.clone(),
        m_code: created.to_ans.m_code.clone(),
        user_level: to_broker.user_level.clone(),
    }
}

struct World {
    rng: StdRng,
    reg: Registration,
    issuer: TicketIssuer,
    issuer_seed: [u8; 32],
    verifier: ServiceVerifier,
    service_entry: ServiceEntry,
    client_entry: ClientEntry,
    /// The AS exchange.
    login: LoginReply,
    session: LoginSession,
    /// The TGS exchange.
    treq: TicketRequest,
    waiting: ClientAwaitingTicketReply,
    reply: TicketReply,
    cred: ClientCredential,
}

fn issuer() -> TicketIssuer {
    TicketIssuer::new(BROKER, Ed25519Key::from_seed([7u8; 32]), &MASTER).unwrap()
}

fn world(seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let reg = register(&mut rng);
    let issuer_seed = [7u8; 32];
    let issuer = issuer();
    let service_key = ServiceKey::generate(SERVICE, &mut rng).unwrap();
    let service_entry = ServiceEntry::try_from(&service_key.registration(T0)).unwrap();
    let client_entry = ClientEntry::try_from(&reg.published).unwrap();
    let cred = ClientCredential::derive("alice", PASSWORD, reg.published.salt.as_slice(), &reg.published.kdf).unwrap();
    let lreq = cred.login_request(BROKER, T0, &mut rng).unwrap();
    let login = issuer.login(&client_entry, &lreq, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap();
    let session = cred.open_login(&login, &issuer.jwks(), BROKER, T0).unwrap();
    let (treq, waiting) = session.request_ticket(SERVICE, T0, &mut rng).unwrap();
    let reply = issuer.grant(&treq, &service_entry, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap();
    let verifier = ServiceVerifier::new(service_key, BROKER, issuer.jwks());
    World {
        rng,
        reg,
        issuer,
        issuer_seed,
        verifier,
        service_entry,
        client_entry,
        login,
        session,
        treq,
        waiting,
        reply,
        cred,
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Replaces the payload of a compact JWS, keeping header and signature.
fn with_payload(token: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    f(&mut claims);
    format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&claims).unwrap()), parts[2])
}

fn claims_of(token: &str) -> serde_json::Value {
    let p: Vec<&str> = token.split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).unwrap()).unwrap()
}

fn sign_with(seed: [u8; 32], kid: &str, claims: &serde_json::Value) -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key.to_pkcs8_der().unwrap();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

#[test]
fn split_is_multiplicative_p_c_equals_g_pw() {
    let w = world(1);
    let pw = derive_pw(PASSWORD, w.reg.published.salt.as_slice(), &KDF).unwrap();
    let g_pw = group().exp(generator(), &pw.to_exponent().unwrap()).unwrap();
    assert_eq!(w.reg.published.p_c.as_slice(), g_pw.as_bytes());
    assert_eq!(w.cred.p_c(), &g_pw);
    let g1 = group().decode(w.reg.g1.as_slice()).unwrap();
    let g2 = group().decode(w.reg.g2.as_slice()).unwrap();
    assert_eq!(group().mul(&g1, &g2).unwrap(), g_pw);
    assert_ne!(g1, g_pw);
    assert_eq!(w.reg.published.level, Level::Normal);
    assert_eq!(w.reg.published.t_c, T0);
}

#[test]
fn password_and_pw_never_on_the_wire() {
    let mut rng = StdRng::seed_from_u64(2);
    let reg = register(&mut rng);
    let pw = derive_pw(PASSWORD, reg.published.salt.as_slice(), &KDF).unwrap();
    let pw_bytes = pw.to_fixed_bytes();
    let pw_raw = &pw_bytes[pw_bytes.iter().position(|&b| b != 0).unwrap()..];
    let needles: Vec<Vec<u8>> = vec![PASSWORD.to_vec(), pw_bytes.to_vec(), pw_raw[..32].to_vec()];
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    assert_eq!(reg.wire.len(), 8);
    for msg in &reg.wire {
        let text = msg.as_bytes();
        let mut blobs = vec![text.to_vec()];
        let mut ss = Vec::new();
        strings(&serde_json::from_str(msg).unwrap(), &mut ss);
        for s in ss {
            if let Ok(d) = URL_SAFE_NO_PAD.decode(&s) {
                blobs.push(d);
            }
        }
        for blob in &blobs {
            for n in &needles {
                assert!(!blob.windows(n.len()).any(|w| w == n.as_slice()), "secret found in {msg}");
            }
        }
        assert!(!msg.contains(&b64(&pw_bytes)) && !msg.contains("correct horse"));
    }
}

#[test]
fn ams_lying_about_s_a_is_caught() {
    let mut rng = StdRng::seed_from_u64(3);
    let ans = ans(&mut rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans.box_key.public() };
    let (req, client) = client_start_registration("alice", PASSWORD, KDF, &mut rng).unwrap();
    let (agent_req, _) = broker_receive_registration(&req, BROKER, "a", Level::Normal, &mut rng).unwrap();
    let mut created = ams.create_agent(&agent_req, T0, &mut rng).unwrap();
    let mut s_a = created.to_client.s_a.0.clone();
    s_a[100] ^= 1;
    created.to_client.s_a = Bytes(s_a);
    assert_eq!(client.receive_agent(&created.to_client).unwrap_err(), SsoError::SaMismatch);
}

#[test]
fn broker_swapping_g1_is_caught() {
    let mut rng = StdRng::seed_from_u64(4);
    let ans = ans(&mut rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans.box_key.public() };
    let (req, client) = client_start_registration("alice", PASSWORD, KDF, &mut rng).unwrap();
    let (mut agent_req, _) = broker_receive_registration(&req, BROKER, "a", Level::Normal, &mut rng).unwrap();
    // The broker substitutes a G1 whose discrete log it knows.
    let evil = dirbroker_proto::sso::primitives::Scalar::random(&mut rng).public().unwrap();
    agent_req.g1 = Bytes(evil.to_bytes());
    let created = ams.create_agent(&agent_req, T0, &mut rng).unwrap();
    assert_eq!(client.receive_agent(&created.to_client).unwrap_err(), SsoError::SaMismatch);
}

#[test]
fn share_without_k_is_refused_by_ans() {
    let mut rng = StdRng::seed_from_u64(5);
    let ans = ans(&mut rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans.box_key.public() };
    let (req, client) = client_start_registration("alice", PASSWORD, KDF, &mut rng).unwrap();
    let (agent_req, _) = broker_receive_registration(&req, BROKER, "a", Level::Normal, &mut rng).unwrap();
    let created = ams.create_agent(&agent_req, T0, &mut rng).unwrap();
    let state = ans.receive_mcode(&created.to_ans, Level::Normal, T0).unwrap();
    let mut share = client.receive_agent(&created.to_client).unwrap();
    // A man in the middle substitutes his own G2 (so P_c would be his).
    share.g2 = Bytes(dirbroker_proto::sso::primitives::Scalar::random(&mut rng).public().unwrap().to_bytes());
    assert_eq!(state.receive_share(&ans, &share).unwrap_err(), SsoError::ShareNotBound);
}

#[test]
fn m_code_for_another_ans_or_tampered_does_not_open() {
    let mut rng = StdRng::seed_from_u64(6);
    let ans1 = ans(&mut rng);
    let ans2 = ans(&mut rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans1.box_key.public() };
    let (req, _) = client_start_registration("alice", PASSWORD, KDF, &mut rng).unwrap();
    let (agent_req, _) = broker_receive_registration(&req, BROKER, "a", Level::Normal, &mut rng).unwrap();
    let created = ams.create_agent(&agent_req, T0, &mut rng).unwrap();
    assert_eq!(ans2.receive_mcode(&created.to_ans, Level::Normal, T0).unwrap_err(), SsoError::SealedBoxOpen);
    let mut bad = created.to_ans.clone();
    bad.m_a = Bytes(b"other request".to_vec());
    assert_eq!(ans1.receive_mcode(&bad, Level::Normal, T0).unwrap_err(), SsoError::MaMismatch);
}

#[test]
fn non_repudiation_ans_signatures() {
    let mut rng = StdRng::seed_from_u64(7);
    let reg = register(&mut rng);
    reg.user_level.verify(&reg.ans_key, &reg.m_code).unwrap();
    let other = Ed25519Key::generate(&mut rng);
    assert_eq!(reg.user_level.verify(&other.verifying_key(), &reg.m_code).unwrap_err(), SsoError::AnsSignature);
    let mut flipped = reg.user_level.clone();
    flipped.signature.0[5] ^= 0x10;
    assert_eq!(flipped.verify(&reg.ans_key, &reg.m_code).unwrap_err(), SsoError::AnsSignature);
    let mut raised = reg.user_level.clone();
    raised.level = Level::Admin;
    assert_eq!(raised.verify(&reg.ans_key, &reg.m_code).unwrap_err(), SsoError::AnsSignature);
}

#[test]
fn broker_refuses_forged_ans_message_and_foreign_userlevel() {
    let mut rng = StdRng::seed_from_u64(8);
    let ans = ans(&mut rng);
    let ams = Ams { id: "ams-1".into(), ans_box_key: ans.box_key.public() };
    let run = |rng: &mut StdRng| {
        let (req, client) = client_start_registration("alice", PASSWORD, KDF, rng).unwrap();
        let (agent_req, broker) = broker_receive_registration(&req, BROKER, "a", Level::Normal, rng).unwrap();
        let created = ams.create_agent(&agent_req, T0, rng).unwrap();
        let broker = broker.receive_agent_created(&created.to_broker).unwrap();
        let st = ans.receive_mcode(&created.to_ans, Level::Normal, T0).unwrap();
        let share = client.receive_agent(&created.to_client).unwrap();
        (broker, st.receive_share(&ans, &share).unwrap())
    };
    let (broker, mut msg) = run(&mut rng);
    let key = ans.signing_key.verifying_key();
    msg.user_level.level = Level::Admin; // level raised in transit
    assert_eq!(broker.receive_user_level(&msg, &key, T0).unwrap_err(), SsoError::AnsSignature);
    // A genuine, ANS-signed Userlevel from another registration.
    let (broker_a, msg_a) = run(&mut rng);
    let (_, msg_b) = run(&mut rng);
    let mut spliced = msg_a.clone();
    spliced.user_level = msg_b.user_level.clone();
    assert_eq!(broker_a.receive_user_level(&spliced, &key, T0).unwrap_err(), SsoError::AnsSignature);
    let other = Ed25519Key::generate(&mut rng);
    let (broker_c, msg_c) = run(&mut rng);
    assert_eq!(broker_c.receive_user_level(&msg_c, &other.verifying_key(), T0).unwrap_err(), SsoError::AnsSignature);
}

// ---------------------------------------------------------------------------
// Pre-authentication
// ---------------------------------------------------------------------------

#[test]
fn schnorr_preauth() {
    let mut w = world(10);
    let p_c = group().decode(w.reg.published.p_c.as_slice()).unwrap();
    let mut cache = ReplayCache::new();
    let proof = w.cred.prove(SERVICE, T0, &mut w.rng).unwrap();
    verify_pw_proof(&p_c, &proof, T0 + 5, &mut cache).unwrap();
    assert_eq!(verify_pw_proof(&p_c, &proof, T0 + 6, &mut cache).unwrap_err(), SsoError::Replay);
    let wrong = ClientCredential::derive("alice", b"wrong", w.reg.published.salt.as_slice(), &KDF).unwrap();
    let bad = wrong.prove(SERVICE, T0, &mut w.rng).unwrap();
    assert_eq!(verify_pw_proof(&p_c, &bad, T0, &mut cache).unwrap_err(), SsoError::ProofInvalid);
    let stale = w.cred.prove(SERVICE, T0 - 301, &mut w.rng).unwrap();
    assert_eq!(verify_pw_proof(&p_c, &stale, T0, &mut cache).unwrap_err(), SsoError::Skew(301));
    // The proof is bound to the service: re-targeting it fails.
    let mut moved = w.cred.prove(SERVICE, T0, &mut w.rng).unwrap();
    moved.service = "svc-admin".into();
    assert_eq!(verify_pw_proof(&p_c, &moved, T0, &mut cache).unwrap_err(), SsoError::ProofInvalid);
}

// ---------------------------------------------------------------------------
// Confidentiality of the ticket keys
// ---------------------------------------------------------------------------

#[test]
fn ticket_keys_not_derivable_from_public_values() {
    let mut w = world(11);
    let g = group();
    let el = |b: &[u8]| g.decode(b).unwrap();
    let p_c = el(w.reg.published.p_c.as_slice());
    let g1 = el(w.reg.g1.as_slice());
    let g2 = el(w.reg.g2.as_slice());
    let p_k = w.verifier.key.public().clone();
    let alpha = el(w.login.client_part.alpha.as_slice());
    let server_claims = claims_of(&w.reply.server_ticket);
    let cnf = &server_claims["cnf"]["dirbroker_sealed"];
    let big_b = el(&URL_SAFE_NO_PAD.decode(cnf["b"].as_str().unwrap()).unwrap());
    let epoch = cnf["epoch"].as_i64().unwrap();
    let v_k = URL_SAFE_NO_PAD.decode(cnf["v"].as_str().unwrap()).unwrap();
    let tgt_claims = claims_of(&w.login.tgt);
    let v_tgt = URL_SAFE_NO_PAD.decode(tgt_claims["cnf"]["dirbroker_tgt"].as_str().unwrap()).unwrap();
    // Candidate shared secrets from public values, paper-style and otherwise.
    let mut candidates: Vec<Vec<u8>> = vec![
        g.mul(&p_c, &g2).unwrap().to_bytes(), // K_a1 = H(P_c · g^pw2 ‖ ID_c)
        g.mul(&p_c, &g1).unwrap().to_bytes(),
        g.mul(&alpha, &p_c).unwrap().to_bytes(),
        g.mul(&big_b, &p_k).unwrap().to_bytes(),
        alpha.to_bytes(),
        big_b.to_bytes(),
        p_c.to_bytes(),
        p_k.to_bytes(),
        g1.to_bytes(),
        g2.to_bytes(),
        w.reg.s_a.0.clone(),
        generator().to_bytes(),
        w.login.tgt.as_bytes().to_vec(),
    ];
    let mut with_ids = Vec::new();
    for c in &candidates {
        with_ids.push(Lp::default().part(c).part(b"alice").into_bytes());
        with_ids.push([c.as_slice(), b"alice"].concat());
        with_ids.push([c.as_slice(), SERVICE.as_bytes()].concat());
    }
    candidates.extend(with_ids);
    let info_login = Lp::sso("login key").part(alpha.as_bytes()).part(b"alice").part(BROKER.as_bytes());
    let info_k = Lp::sso("service epoch key").part(big_b.as_bytes()).part(SERVICE.as_bytes()).int(epoch);
    let c: TicketClaims = serde_json::from_value(server_claims.clone()).unwrap();
    let aad_k = Lp::sso("V_k")
        .part(c.iss.as_bytes())
        .part(c.sub.as_bytes())
        .part(c.aud.as_bytes())
        .int(c.iat)
        .int(c.nbf)
        .int(c.exp)
        .part(c.jti.as_bytes())
        .part(&[c.level.as_u8()])
        .part(b"service")
        .int(epoch)
        .part(big_b.as_bytes())
        .into_bytes();
    let aad_login = Lp::sso("AS-REP").part(w.login.tgt.as_bytes()).part(alpha.as_bytes()).into_bytes();
    let aad_c = Lp::sso("V_c").part(w.reply.client_ticket.as_bytes()).into_bytes();
    let mut tries = 0;
    for ikm in &candidates {
        for info in [info_login.bytes(), info_k.bytes(), b"".as_slice()] {
            let key = hkdf32(ikm, info).unwrap();
            let raw: [u8; 32] = dirbroker_proto::sso::primitives::sha256(ikm);
            for k in [*key, raw] {
                // Directly, and as the long-lived key of a per-ticket derivation.
                let info_t = Lp::sso("service ticket key").part(c.jti.as_bytes()).part(b"alice");
                let sub = hkdf32(&k, info_t.bytes()).unwrap();
                let sub2 = dirbroker_proto::sso::primitives::hkdf_expand32(&k, info_t.bytes()).unwrap();
                for k in [k, *sub, *sub2] {
                    tries += 4;
                    assert!(aead_open(&k, [0; 12], &aad_login, &w.login.client_part.v.0).is_none());
                    assert!(aead_open(&k, [0; 12], &aad_k, &v_k).is_none());
                    assert!(aead_open(&k, [0; 12], &aad_c, &w.reply.client_part.0).is_none());
                    assert!(aead_open(&k, [0; 12], b"", &v_tgt).is_none());
                }
            }
        }
    }
    assert!(tries > 100);
    // The honest holders succeed.
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (req, _) = session.request(b"GET /", T0, &mut w.rng).unwrap();
    let (auth, _) = w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap();
    assert_eq!(auth.client, "alice");
    // A wrong password does not open the login reply (so never gets SK,
    // and so never C_ck).
    let wrong = ClientCredential::derive("alice", b"not it", w.reg.published.salt.as_slice(), &KDF).unwrap();
    assert_eq!(wrong.open_login(&w.login, &w.issuer.jwks(), BROKER, T0).unwrap_err(), SsoError::SessionKeyOpen);
    // Another user's SK does not open this client part.
    let mut rng = StdRng::seed_from_u64(111);
    let (other_session, _) = other_login(&w, &mut rng);
    let (_, waiting_b) = other_session.request_ticket(SERVICE, T0, &mut rng).unwrap();
    assert!(matches!(
        waiting_b.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap_err(),
        SsoError::WrongSubject | SsoError::SessionKeyOpen
    ));
}

/// A second registered user ("alice" too, another registration) logged in
/// at the same broker: (session, its TGT reply).
fn other_login(w: &World, rng: &mut StdRng) -> (LoginSession, LoginReply) {
    let reg_b = register(rng);
    let entry_b = ClientEntry { id_c: "bob".into(), ..ClientEntry::try_from(&reg_b.published).unwrap() };
    let cred_b = ClientCredential::derive("bob", PASSWORD, reg_b.published.salt.as_slice(), &KDF).unwrap();
    let lreq = cred_b.login_request(BROKER, T0, rng).unwrap();
    let login_b = w.issuer.login(&entry_b, &lreq, 3600, T0, &mut ReplayCache::new(), rng).unwrap();
    (cred_b.open_login(&login_b, &w.issuer.jwks(), BROKER, T0).unwrap(), login_b)
}

// ---------------------------------------------------------------------------
// Ticket integrity
// ---------------------------------------------------------------------------

#[test]
fn every_claim_tampered_is_rejected() {
    let mut w = world(12);
    let jwks = w.issuer.jwks();
    let edits: Vec<(&str, serde_json::Value)> = vec![
        ("sub", "mallory".into()),
        ("aud", "svc-other".into()),
        ("level", 4.into()),
        ("exp", (T0 + 999_999).into()),
        ("nbf", (T0 - 999).into()),
        ("jti", "AAAAAAAAAAAAAAAAAAAAAA".into()),
        ("iss", "https://evil.example".into()),
        ("iat", (T0 + 1).into()),
    ];
    for (claim, value) in &edits {
        for token in [&w.reply.server_ticket, &w.reply.client_ticket] {
            let t = with_payload(token, |c| c[*claim] = value.clone());
            assert_eq!(verify_ticket(&t, &jwks, BROKER, T0).unwrap_err(), SsoError::BadSignature, "{claim}");
        }
        let mut reply = w.reply.clone();
        reply.server_ticket = with_payload(&w.reply.server_ticket, |c| c[*claim] = value.clone());
        let session = w.waiting.receive(&w.reply, &jwks, BROKER, T0).unwrap();
        let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
        req.server_ticket = reply.server_ticket.clone();
        assert_eq!(
            w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
            SsoError::BadSignature
        );
        assert_eq!(w.waiting.receive(&reply, &jwks, BROKER, T0).unwrap_err(), SsoError::BadSignature);
    }
}

type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;

#[test]
fn cnf_b_epoch_and_v_tampered_are_rejected() {
    let mut w = world(13);
    let jwks = w.issuer.jwks();
    let kid = jwks.keys[0].kid.clone();
    let orig = claims_of(&w.reply.server_ticket);
    let b2 = dirbroker_proto::sso::primitives::Scalar::random_short(&mut w.rng).public().unwrap();
    let mut v_flip = URL_SAFE_NO_PAD.decode(orig["cnf"]["dirbroker_sealed"]["v"].as_str().unwrap()).unwrap();
    v_flip[3] ^= 1;
    let epoch = orig["cnf"]["dirbroker_sealed"]["epoch"].as_i64().unwrap();
    let edits: Vec<Edit> = vec![
        Box::new(|c| c["cnf"]["dirbroker_sealed"]["b"] = b64(b2.as_bytes()).into()),
        Box::new(move |c| c["cnf"]["dirbroker_sealed"]["v"] = b64(&v_flip).into()),
        Box::new(|c| c.as_object_mut().unwrap().remove("cnf").map(|_| ()).unwrap()),
        Box::new(move |c| c["cnf"]["dirbroker_sealed"]["epoch"] = (epoch + 1).into()),
    ];
    let session = w.waiting.receive(&w.reply, &jwks, BROKER, T0).unwrap();
    for (i, edit) in edits.iter().enumerate() {
        // Without the broker's key: the signature fails.
        let unsigned = with_payload(&w.reply.server_ticket, edit);
        let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
        req.server_ticket = unsigned;
        assert_eq!(
            w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
            SsoError::BadSignature
        );
        // Even re-signed with the broker's own key (a cnf transplanted or
        // altered by a buggy broker), the sealed key does not open.
        let mut c = orig.clone();
        edit(&mut c);
        let resigned = sign_with(w.issuer_seed, &kid, &c);
        let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
        req.server_ticket = resigned;
        let err = w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err();
        let expected = if i == 2 { SsoError::WrongTicketKind } else { SsoError::SessionKeyOpen };
        assert_eq!(err, expected, "edit {i}");
    }
    // cnf moved into a ticket with a raised level: AAD binds the claims.
    let mut raised = orig.clone();
    raised["level"] = 4.into();
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.server_ticket = sign_with(w.issuer_seed, &kid, &raised);
    assert_eq!(w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(), SsoError::SessionKeyOpen);
    // Client part of the TGS reply tampered.
    let mut r = w.reply.clone();
    r.client_part.0[0] ^= 1;
    assert_eq!(w.waiting.receive(&r, &jwks, BROKER, T0).unwrap_err(), SsoError::SessionKeyOpen);
    // Login reply: α and V tampered.
    let mut l = w.login.clone();
    l.client_part.alpha = Bytes(b2.to_bytes());
    assert_eq!(w.cred.open_login(&l, &jwks, BROKER, T0).unwrap_err(), SsoError::SessionKeyOpen);
    let mut l = w.login.clone();
    l.client_part.v.0[0] ^= 1;
    assert_eq!(w.cred.open_login(&l, &jwks, BROKER, T0).unwrap_err(), SsoError::SessionKeyOpen);
    let mut l = w.login.clone();
    l.client_part.alpha = Bytes(vec![0; 256]);
    assert!(matches!(w.cred.open_login(&l, &jwks, BROKER, T0).unwrap_err(), SsoError::BadElement(_)));
}

#[test]
fn alg_none_and_hs256_are_rejected() {
    let w = world(14);
    let jwks = w.issuer.jwks();
    let claims = claims_of(&w.reply.server_ticket);
    let payload = b64(&serde_json::to_vec(&claims).unwrap());
    let kid = &jwks.keys[0].kid;
    let none = format!("{}.{}.", b64(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#).as_bytes()), payload);
    assert_eq!(verify_ticket(&none, &jwks, BROKER, T0).unwrap_err(), SsoError::AlgorithmNotAllowed("none".into()));
    // HS256 keyed with the broker's public key bytes (key confusion).
    let x = URL_SAFE_NO_PAD.decode(&jwks.keys[0].x).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.clone());
    let hs = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&x)).unwrap();
    assert_eq!(verify_ticket(&hs, &jwks, BROKER, T0).unwrap_err(), SsoError::AlgorithmNotAllowed("HS256".into()));
    let hs2 = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(jwks.keys[0].x.as_bytes())).unwrap();
    assert_eq!(verify_ticket(&hs2, &jwks, BROKER, T0).unwrap_err(), SsoError::AlgorithmNotAllowed("HS256".into()));
}

#[test]
fn broker_signature_verifies_and_forgeries_fail() {
    let w = world(15);
    let jwks = w.issuer.jwks();
    let c = verify_ticket(&w.reply.server_ticket, &jwks, BROKER, T0).unwrap();
    assert_eq!(
        (c.sub.as_str(), c.aud.as_str(), c.level, c.tkt),
        ("alice", SERVICE, Level::Normal, TicketKind::Service)
    );
    // JWKS shape (RFC 8037) for PyJWT.
    let j = serde_json::to_value(&jwks).unwrap();
    assert_eq!(j["keys"][0]["kty"], "OKP");
    assert_eq!(j["keys"][0]["crv"], "Ed25519");
    assert_eq!(j["keys"][0]["alg"], "EdDSA");
    assert_eq!(j["keys"][0]["use"], "sig");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(w.reply.server_ticket.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], j["keys"][0]["kid"]);
    // Another key claiming the broker's kid.
    let forged = sign_with([9u8; 32], &jwks.keys[0].kid, &claims_of(&w.reply.server_ticket));
    assert_eq!(verify_ticket(&forged, &jwks, BROKER, T0).unwrap_err(), SsoError::BadSignature);
    // Another key under its own kid.
    let other = TicketIssuer::new(BROKER, Ed25519Key::from_seed([9u8; 32]), &MASTER).unwrap();
    let forged2 = sign_with([9u8; 32], &other.jwks().keys[0].kid, &claims_of(&w.reply.server_ticket));
    assert_eq!(verify_ticket(&forged2, &jwks, BROKER, T0).unwrap_err(), SsoError::UnknownKeyId);
    // Flipped signature bits.
    let mut parts: Vec<String> = w.reply.server_ticket.split('.').map(String::from).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[10] ^= 0x04;
    parts[2] = b64(&sig);
    assert_eq!(verify_ticket(&parts.join("."), &jwks, BROKER, T0).unwrap_err(), SsoError::BadSignature);
    assert_eq!(verify_ticket(&w.reply.server_ticket, &jwks, "https://other", T0).unwrap_err(), SsoError::WrongIssuer);
}

// ---------------------------------------------------------------------------
// Stages 5–7
// ---------------------------------------------------------------------------

#[test]
fn end_to_end_with_level_policy() {
    let mut w = world(16);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (req, waiting) = session.request(b"PUT /page", T0 + 10, &mut w.rng).unwrap();
    let (auth, reply) = w.verifier.accept(&req, T0 + 12, &mut ReplayCache::new(), &mut w.rng).unwrap();
    assert_eq!(auth.request, b"PUT /page");
    assert_eq!(auth.level, Level::Normal);
    require_level(auth.level, Level::WRITE).unwrap();
    assert_eq!(require_level(auth.level, Level::ADMIN).unwrap_err(), SsoError::InsufficientLevel { have: 2, need: 4 });
    waiting.receive_reply(&reply).unwrap();
}

#[test]
fn replayed_authenticator_is_rejected() {
    let mut w = world(17);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    let mut cache = ReplayCache::new();
    w.verifier.accept(&req, T0, &mut cache, &mut w.rng).unwrap();
    assert_eq!(w.verifier.accept(&req, T0 + 1, &mut cache, &mut w.rng).unwrap_err(), SsoError::Replay);
    // A fresh authenticator under the same ticket is fine.
    let (req2, _) = session.request(b"y", T0 + 2, &mut w.rng).unwrap();
    w.verifier.accept(&req2, T0 + 2, &mut cache, &mut w.rng).unwrap();
    // A service that lost its cache refuses for one skew interval.
    let mut fresh = ReplayCache::new_after_restart(T0 + 3);
    assert_eq!(w.verifier.accept(&req, T0 + 3, &mut fresh, &mut w.rng).unwrap_err(), SsoError::Replay);
}

/// The replay cache holds an authenticator only while the skew check would
/// let it in again (ctime + 300 s), not until the ticket expires: a client
/// making many requests with one ticket cannot grow it for hours.
#[test]
fn replay_entries_last_as_long_as_the_skew_not_the_ticket() {
    let mut w = world(37);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    assert!(session.claims().exp >= T0 + 3600, "a ticket valid for an hour");
    let mut cache = ReplayCache::new();
    for i in 0..200 {
        let (req, _) = session.request(b"x", T0 + i, &mut w.rng).unwrap();
        w.verifier.accept(&req, T0 + i, &mut cache, &mut w.rng).unwrap();
    }
    assert_eq!(cache.len(), 200);
    // The last one is still refused at the edge of the skew window …
    let (last, _) = session.request(b"y", T0 + 1000, &mut w.rng).unwrap();
    w.verifier.accept(&last, T0 + 1000, &mut cache, &mut w.rng).unwrap();
    assert_eq!(w.verifier.accept(&last, T0 + 1300, &mut cache, &mut w.rng).unwrap_err(), SsoError::Replay);
    // … and past it refused by the skew check, so the cache may forget it.
    assert_eq!(w.verifier.accept(&last, T0 + 1301, &mut cache, &mut w.rng).unwrap_err(), SsoError::Skew(301));
    assert_eq!(cache.len(), 1, "only the entry still inside its skew window is held");
}

#[test]
fn ticket_validity_window_and_audience() {
    let mut w = world(18);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let exp = session.claims().exp;
    // Expired (past exp + skew), with the authenticator's clock in sync.
    let (req, _) = session.request(b"x", exp + 301, &mut w.rng).unwrap();
    assert_eq!(w.verifier.accept(&req, exp + 301, &mut ReplayCache::new(), &mut w.rng).unwrap_err(), SsoError::Expired);
    let (req, _) = session.request(b"x", exp + 299, &mut w.rng).unwrap();
    w.verifier.accept(&req, exp + 299, &mut ReplayCache::new(), &mut w.rng).unwrap();
    // Not yet valid.
    let (req, _) = session.request(b"x", T0 - 301, &mut w.rng).unwrap();
    assert_eq!(
        w.verifier.accept(&req, T0 - 301, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::NotYetValid
    );
    // Wrong audience: another service presented with this ticket.
    let other = ServiceVerifier::new(ServiceKey::generate("svc-mail", &mut w.rng).unwrap(), BROKER, w.issuer.jwks());
    let (req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    assert_eq!(other.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(), SsoError::WrongAudience);
    // The client refuses a reply for another service.
    assert_eq!(
        w.session
            .request_ticket("svc-mail", T0, &mut w.rng)
            .unwrap()
            .1
            .receive(&w.reply, &w.issuer.jwks(), BROKER, T0)
            .unwrap_err(),
        SsoError::WrongAudience
    );
    assert_eq!(w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0 - 400).unwrap_err(), SsoError::NotYetValid);
    // A client ticket presented as a server ticket.
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.server_ticket = w.reply.client_ticket.clone();
    assert_eq!(
        w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::WrongTicketKind
    );
}

#[test]
fn authenticator_skew_301_rejected_299_accepted() {
    let mut w = world(19);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let now = T0 + 1000;
    for (ctime, ok) in [(now - 301, false), (now + 301, false), (now - 299, true), (now + 299, true)] {
        let (req, _) = session.request(b"x", ctime, &mut w.rng).unwrap();
        let r = w.verifier.accept(&req, now, &mut ReplayCache::new(), &mut w.rng);
        if ok {
            r.unwrap();
        } else {
            assert_eq!(r.unwrap_err(), SsoError::Skew(now - ctime));
        }
    }
}

#[test]
fn authenticator_tampered_or_for_another_client() {
    let mut w = world(20);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.v_ck.0[0] ^= 1;
    assert_eq!(
        w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::AuthenticatorOpen
    );
    // A second ticket for another client: its authenticator does not
    // open under this ticket's C_ck (ticket swap).
    let mut rng = StdRng::seed_from_u64(99);
    let (session_b, _) = other_login(&w, &mut rng);
    let (treq_b, _) = session_b.request_ticket(SERVICE, T0, &mut rng).unwrap();
    let reply_b = w.issuer.grant(&treq_b, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap();
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.server_ticket = reply_b.server_ticket;
    assert_eq!(
        w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::AuthenticatorOpen
    );
}

#[test]
fn mutual_auth_reply_checks() {
    let mut w = world(21);
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    // A party without C_ck (an impostor service) makes up a reply.
    let (_, waiting) = session.request(b"x", T0, &mut w.rng).unwrap();
    let fake = ServiceReply { nonce: Bytes(vec![0; 12]), ct: Bytes(vec![0x55; 40]) };
    assert_eq!(waiting.receive_reply(&fake).unwrap_err(), SsoError::ReplyInvalid);
    // A genuine reply to a different request (wrong nonce / ctime echoed).
    let (req1, waiting1) = session.request(b"x", T0, &mut w.rng).unwrap();
    let (req2, _) = session.request(b"y", T0, &mut w.rng).unwrap();
    let mut cache = ReplayCache::new();
    let (_, rep1) = w.verifier.accept(&req1, T0, &mut cache, &mut w.rng).unwrap();
    let (_, rep2) = w.verifier.accept(&req2, T0, &mut cache, &mut w.rng).unwrap();
    assert_eq!(waiting1.receive_reply(&rep2).unwrap_err(), SsoError::ReplyInvalid);
    // …and the right one is accepted.
    waiting1.receive_reply(&rep1).unwrap();
}

// ---------------------------------------------------------------------------
// Anonymous users
// ---------------------------------------------------------------------------

#[test]
fn anonymous_ids_are_stable_and_unlinkable_without_the_secret() {
    let a = anonymous_id(&[1; 32], b"pubkey-A").unwrap();
    assert_eq!(a, anonymous_id(&[1; 32], b"pubkey-A").unwrap());
    assert_eq!(a.level, Level::Temporary);
    assert!(a.id.starts_with("anon-") && a.id.len() == 5 + 32);
    assert!(a.id[5..].chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
    assert_ne!(a.id, anonymous_id(&[1; 32], b"pubkey-B").unwrap().id);
    assert_ne!(a.id, anonymous_id(&[2; 32], b"pubkey-A").unwrap().id);
    assert!(!a.id.contains("pubkey"));
}

// ---------------------------------------------------------------------------
// The TGT (AS/TGS split) and the epoch keys
// ---------------------------------------------------------------------------

#[test]
fn login_needs_the_password_and_a_fresh_proof_for_this_broker() {
    let mut w = world(30);
    let mut cache = ReplayCache::new();
    let lreq = w.cred.login_request(BROKER, T0, &mut w.rng).unwrap();
    w.issuer.login(&w.client_entry, &lreq, 3600, T0, &mut cache, &mut w.rng).unwrap();
    // The same proof again: replay.
    assert_eq!(
        w.issuer.login(&w.client_entry, &lreq, 3600, T0 + 1, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::Replay
    );
    // A proof made for another broker.
    let elsewhere = w.cred.login_request("https://other-broker", T0, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.login(&w.client_entry, &elsewhere, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::WrongAudience
    );
    // A wrong password.
    let wrong = ClientCredential::derive("alice", b"wrong", w.reg.published.salt.as_slice(), &KDF).unwrap();
    let bad = wrong.login_request(BROKER, T0, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.login(&w.client_entry, &bad, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::ProofInvalid
    );
    // Alice's proof presented for another entry.
    let other = ClientEntry { id_c: "bob".into(), ..w.client_entry.clone() };
    let lreq = w.cred.login_request(BROKER, T0, &mut w.rng).unwrap();
    assert_eq!(w.issuer.login(&other, &lreq, 3600, T0, &mut cache, &mut w.rng).unwrap_err(), SsoError::WrongSubject);
}

#[test]
fn tgt_tampered_or_forged_is_refused() {
    let mut w = world(31);
    let jwks = w.issuer.jwks();
    let kid = jwks.keys[0].kid.clone();
    let mut cache = ReplayCache::new();
    let orig = claims_of(&w.login.tgt);
    let edits: Vec<(&str, serde_json::Value)> = vec![
        ("sub", "mallory".into()),
        ("level", 4.into()),
        ("exp", (T0 + 999_999).into()),
        ("jti", "AAAAAAAAAAAAAAAAAAAAAA".into()),
        ("iat", (T0 + 1).into()),
    ];
    for (claim, value) in &edits {
        // Anyone: the signature no longer verifies (clients, PyJWT).
        let unsigned = with_payload(&w.login.tgt, |c| c[*claim] = value.clone());
        assert_eq!(verify_ticket(&unsigned, &jwks, BROKER, T0).unwrap_err(), SsoError::BadSignature);
        // Even re-signed with the broker's signing key: K_tgt (keyring) binds every claim.
        let mut c = orig.clone();
        c[*claim] = value.clone();
        for tgt in [unsigned, sign_with(w.issuer_seed, &kid, &c)] {
            let (mut treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
            treq.tgt = tgt;
            let err = w.issuer.grant(&treq, &w.service_entry, 3600, T0, &mut cache, &mut w.rng).unwrap_err();
            assert_eq!(err, SsoError::TgtInvalid, "{claim}");
        }
    }
    // The sealed SK flipped.
    let mut c = orig.clone();
    let mut v = URL_SAFE_NO_PAD.decode(c["cnf"]["dirbroker_tgt"].as_str().unwrap()).unwrap();
    v[0] ^= 1;
    c["cnf"]["dirbroker_tgt"] = b64(&v).into();
    let (mut treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    treq.tgt = sign_with(w.issuer_seed, &kid, &c);
    assert_eq!(
        w.issuer.grant(&treq, &w.service_entry, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::TgtInvalid
    );
    // A broker with the same signing key but another keyring cannot use it,
    // and one with the same keyring (a replica) can.
    let stranger = TicketIssuer::new(BROKER, Ed25519Key::from_seed(w.issuer_seed), &[4u8; 32]).unwrap();
    let (treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    assert_eq!(
        stranger.grant(&treq, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::TgtInvalid
    );
    let replica = issuer();
    replica.grant(&treq, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut w.rng).unwrap();
}

#[test]
fn tgt_expired_and_tickets_never_outlive_it() {
    let mut w = world(32);
    let exp = claims_of(&w.login.tgt)["exp"].as_i64().unwrap();
    let (treq, _) = w.session.request_ticket(SERVICE, exp + 301, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.grant(&treq, &w.service_entry, 3600, exp + 301, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::Expired
    );
    // Inside the skew past the TGT's end: still a valid TGT, but a ticket
    // issued now would be born expired, so none is.
    for late in [exp, exp + 200] {
        let (treq, _) = w.session.request_ticket(SERVICE, late, &mut w.rng).unwrap();
        assert_eq!(
            w.issuer.grant(&treq, &w.service_entry, 3600, late, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
            SsoError::Expired
        );
    }
    // Asked for 10 h near the end of the TGT: the ticket ends with it.
    let (treq, waiting) = w.session.request_ticket(SERVICE, exp - 10, &mut w.rng).unwrap();
    let reply = w.issuer.grant(&treq, &w.service_entry, 36_000, exp - 10, &mut ReplayCache::new(), &mut w.rng).unwrap();
    let s = waiting.receive(&reply, &w.issuer.jwks(), BROKER, exp - 10).unwrap();
    assert_eq!(s.claims().exp, exp);
}

#[test]
fn tgs_authenticator_replayed_stale_or_retargeted_is_refused() {
    let mut w = world(33);
    let mut cache = ReplayCache::new();
    let (treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    w.issuer.grant(&treq, &w.service_entry, 3600, T0, &mut cache, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.grant(&treq, &w.service_entry, 3600, T0 + 1, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::Replay
    );
    let (stale, _) = w.session.request_ticket(SERVICE, T0 - 301, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.grant(&stale, &w.service_entry, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::Skew(301)
    );
    // The request re-aimed at another service: the authenticator binds ID_k.
    let admin_key = ServiceKey::generate("svc-admin", &mut w.rng).unwrap();
    let admin = ServiceEntry::try_from(&admin_key.registration(T0)).unwrap();
    let (mut moved, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    moved.service = "svc-admin".into();
    assert_eq!(
        w.issuer.grant(&moved, &admin, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::AuthenticatorOpen
    );
    // The broker answers only for the service the request names.
    let (treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    assert_eq!(w.issuer.grant(&treq, &admin, 3600, T0, &mut cache, &mut w.rng).unwrap_err(), SsoError::WrongAudience);
    // A service above the user's level.
    let strict = ServiceEntry { min_level: Level::Admin, ..w.service_entry.clone() };
    let (treq, _) = w.session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    assert_eq!(
        w.issuer.grant(&treq, &strict, 3600, T0, &mut cache, &mut w.rng).unwrap_err(),
        SsoError::InsufficientLevel { have: 2, need: 4 }
    );
}

#[test]
fn tgt_of_a_with_authenticator_of_b_or_wrong_audience_is_refused() {
    let mut w = world(34);
    let mut rng = StdRng::seed_from_u64(340);
    let (session_b, _) = other_login(&w, &mut rng);
    let (treq_b, _) = session_b.request_ticket(SERVICE, T0, &mut rng).unwrap();
    let mut spliced = treq_b.clone();
    spliced.tgt = w.login.tgt.clone();
    assert_eq!(
        w.issuer.grant(&spliced, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap_err(),
        SsoError::AuthenticatorOpen
    );
    // A server ticket (aud = a service) or a client ticket as a TGT.
    for token in [&w.reply.server_ticket, &w.reply.client_ticket] {
        let mut t = w.treq.clone();
        t.tgt = token.clone();
        assert_eq!(
            w.issuer.grant(&t, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap_err(),
            SsoError::WrongAudience
        );
    }
    // A TGT is not a service ticket: the service refuses it.
    let session = w.waiting.receive(&w.reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.server_ticket = w.login.tgt.clone();
    assert_eq!(w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(), SsoError::WrongAudience);
    // A TGT from a broker with another name.
    let other = TicketIssuer::new("https://other", Ed25519Key::from_seed([7u8; 32]), &MASTER).unwrap();
    assert_eq!(
        other.grant(&w.treq, &w.service_entry, 3600, T0, &mut ReplayCache::new(), &mut rng).unwrap_err(),
        SsoError::WrongIssuer
    );
}

#[test]
fn anonymous_login_gets_a_pseudonym_at_level_1() {
    let mut w = world(35);
    let anon = ClientCredential::anonymous(&mut w.rng).unwrap();
    let lreq = anon.login_request(BROKER, T0, &mut w.rng).unwrap();
    let mut cache = ReplayCache::new();
    let entry = w.issuer.check_anonymous_login(&lreq, T0, &mut cache).unwrap();
    assert!(entry.id_c.starts_with("anon-"));
    assert_eq!(entry.level, Level::Temporary);
    let login = w.issuer.issue_tgt(&entry, 3600, T0, &mut w.rng).unwrap();
    let session = anon.open_login(&login, &w.issuer.jwks(), BROKER, T0).unwrap();
    assert_eq!(session.claims().sub, entry.id_c);
    let (treq, waiting) = session.request_ticket(SERVICE, T0, &mut w.rng).unwrap();
    let reply = w.issuer.grant(&treq, &w.service_entry, 3600, T0, &mut cache, &mut w.rng).unwrap();
    let s = waiting.receive(&reply, &w.issuer.jwks(), BROKER, T0).unwrap();
    let (req, _) = s.request(b"GET /", T0, &mut w.rng).unwrap();
    let (auth, _) = w.verifier.accept(&req, T0, &mut cache, &mut w.rng).unwrap();
    assert_eq!((auth.client.as_str(), auth.level), (entry.id_c.as_str(), Level::Temporary));
    // The same public value: the same pseudonym; someone else's g^x without x: no proof.
    let again = anon.login_request(BROKER, T0 + 1, &mut w.rng).unwrap();
    assert_eq!(w.issuer.check_anonymous_login(&again, T0 + 1, &mut cache).unwrap().id_c, entry.id_c);
    let thief = ClientCredential::anonymous(&mut w.rng).unwrap();
    let mut stolen = thief.login_request(BROKER, T0, &mut w.rng).unwrap();
    stolen.p_anon = lreq.p_anon.clone();
    assert_eq!(w.issuer.check_anonymous_login(&stolen, T0, &mut cache).unwrap_err(), SsoError::ProofInvalid);
}

#[test]
fn a_bogus_login_replayed_is_refused_as_a_replay_before_any_exponentiation() {
    // Audit F1: one bogus anonymous login body (s flipped), sent again and
    // again within the skew window. The first copy costs a verification;
    // every later copy is refused by the replay cache, which the proof
    // entered before it was checked.
    let mut w = world(37);
    let anon = ClientCredential::anonymous(&mut w.rng).unwrap();
    let mut bogus = anon.login_request(BROKER, T0, &mut w.rng).unwrap();
    let last = bogus.proof.s.0.len() - 1;
    bogus.proof.s.0[last] ^= 1;
    let mut cache = ReplayCache::new();
    assert_eq!(w.issuer.check_anonymous_login(&bogus, T0, &mut cache).unwrap_err(), SsoError::ProofInvalid);
    for i in 1..=50 {
        assert_eq!(w.issuer.check_anonymous_login(&bogus, T0 + i, &mut cache).unwrap_err(), SsoError::Replay);
    }
    // The same for a named login with a wrong password, through the split
    // API a server uses (cheap checks, the cache under its lock, the proof outside).
    let wrong = ClientCredential::derive("alice", b"wrong", w.reg.published.salt.as_slice(), &KDF).unwrap();
    let bad = wrong.login_request(BROKER, T0, &mut w.rng).unwrap();
    w.issuer.precheck_login(&bad, T0).unwrap();
    remember_proof(&bad.proof, T0, &mut cache).unwrap();
    assert_eq!(w.issuer.verify_login(&w.client_entry.p_c, &bad).unwrap_err(), SsoError::ProofInvalid);
    assert_eq!(remember_proof(&bad.proof, T0 + 1, &mut cache).unwrap_err(), SsoError::Replay);
    // Another nonce is another proof (and costs a verification again: the
    // broker's per-source and per-user limits bound those).
    let fresh = anon.login_request(BROKER, T0, &mut w.rng).unwrap();
    assert!(w.issuer.check_anonymous_login(&fresh, T0, &mut cache).is_ok());
}

#[test]
fn epoch_keys_are_cached_and_shared_by_replicas() {
    let mut w = world(36);
    let mut cache = ReplayCache::new();
    let replica = issuer();
    let day2 = T0 + EPOCH_SECONDS;
    let lreq = w.cred.login_request(BROKER, day2, &mut w.rng).unwrap();
    let login = replica.login(&w.client_entry, &lreq, 3600, day2, &mut cache, &mut w.rng).unwrap();
    let session = w.cred.open_login(&login, &w.issuer.jwks(), BROKER, day2).unwrap();
    let mut epochs = std::collections::HashSet::new();
    for (issuer, now) in [(&w.issuer, T0), (&replica, T0 + 5), (&w.issuer, day2), (&replica, day2 + 5)] {
        let s = if now < day2 { &w.session } else { &session };
        let (treq, waiting) = s.request_ticket(SERVICE, now, &mut w.rng).unwrap();
        let reply = issuer.grant(&treq, &w.service_entry, 600, now, &mut cache, &mut w.rng).unwrap();
        epochs.insert(claims_of(&reply.server_ticket)["cnf"]["dirbroker_sealed"]["epoch"].as_i64().unwrap());
        let cs = waiting.receive(&reply, &w.issuer.jwks(), BROKER, now).unwrap();
        let (req, waiting) = cs.request(b"GET /", now, &mut w.rng).unwrap();
        let auth = w.verifier.authorize(&req, now, &mut cache).unwrap();
        assert_eq!(waiting.receive_reply(&auth.reply(b"hello", &mut w.rng).unwrap()).unwrap(), b"hello");
    }
    assert_eq!(epochs.len(), 2);
    // One exponentiation per epoch at the service, whichever replica issued.
    assert_eq!(w.verifier.cached_epoch_keys(), 2);
}
