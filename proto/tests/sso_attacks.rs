//! Attack tests (issue #6 item 6): each plays the attack and asserts the
//! specific error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dirbroker_proto::sso::anon::anonymous_id;
use dirbroker_proto::sso::error::SsoError;
use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::level::{Level, require_level};
use dirbroker_proto::sso::preauth::verify_pw_proof;
use dirbroker_proto::sso::primitives::{Bytes, Ed25519Key, Lp, X25519KeyPair, aead_open, generator, group, hkdf32};
use dirbroker_proto::sso::registration::*;
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::session::{ClientCredential, ServiceReply, ServiceVerifier};
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
    reply: TicketReply,
    cred: ClientCredential,
}

fn world(seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let reg = register(&mut rng);
    let issuer_seed = [7u8; 32];
    let issuer = TicketIssuer::new(BROKER, Ed25519Key::from_seed(issuer_seed)).unwrap();
    let service_key = ServiceKey::generate(SERVICE, &mut rng).unwrap();
    let service_entry = ServiceEntry::try_from(&service_key.registration(T0)).unwrap();
    let client_entry = ClientEntry::try_from(&reg.published).unwrap();
    let reply = issuer.issue(&client_entry, &service_entry, Level::Normal, 3600, T0, &mut rng).unwrap();
    let verifier = ServiceVerifier { key: service_key, issuer: BROKER.into(), jwks: issuer.jwks() };
    let cred = ClientCredential::derive("alice", PASSWORD, reg.published.salt.as_slice(), &reg.published.kdf).unwrap();
    World { rng, reg, issuer, issuer_seed, verifier, reply, cred }
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
    let alpha = el(w.reply.client_part.alpha.as_slice());
    let server_claims = claims_of(&w.reply.server_ticket);
    let cnf = &server_claims["cnf"]["dirbroker_sealed"];
    let alpha_k = URL_SAFE_NO_PAD.decode(cnf["alpha"].as_str().unwrap()).unwrap();
    let v_k = URL_SAFE_NO_PAD.decode(cnf["v"].as_str().unwrap()).unwrap();
    assert_eq!(alpha_k, alpha.to_bytes());
    // Candidate shared secrets from public values, paper-style and otherwise.
    let mut candidates: Vec<Vec<u8>> = vec![
        g.mul(&p_c, &g2).unwrap().to_bytes(), // K_a1 = H(P_c · g^pw2 ‖ ID_c)
        g.mul(&p_c, &g1).unwrap().to_bytes(),
        g.mul(&alpha, &p_c).unwrap().to_bytes(),
        g.mul(&alpha, &p_k).unwrap().to_bytes(),
        alpha.to_bytes(),
        p_c.to_bytes(),
        p_k.to_bytes(),
        g1.to_bytes(),
        g2.to_bytes(),
        w.reg.s_a.0.clone(),
        generator().to_bytes(),
    ];
    let mut with_ids = Vec::new();
    for c in &candidates {
        with_ids.push(Lp::default().part(c).part(b"alice").into_bytes());
        with_ids.push([c.as_slice(), b"alice"].concat());
        with_ids.push([c.as_slice(), SERVICE.as_bytes()].concat());
    }
    candidates.extend(with_ids);
    let info_c = Lp::new("ticket key").part(alpha.as_bytes()).part(b"alice").part(SERVICE.as_bytes()).part(b"client");
    let info_k = Lp::new("ticket key").part(alpha.as_bytes()).part(SERVICE.as_bytes()).part(b"alice").part(b"service");
    let v_c = w.reply.client_part.v.0.clone();
    let aad_c = Lp::new("V_c").part(w.reply.client_ticket.as_bytes()).part(alpha.as_bytes()).into_bytes();
    let c: TicketClaims = serde_json::from_value(server_claims.clone()).unwrap();
    let aad_k = Lp::new("V_k")
        .part(c.iss.as_bytes())
        .part(c.sub.as_bytes())
        .part(c.aud.as_bytes())
        .int(c.iat)
        .int(c.nbf)
        .int(c.exp)
        .part(c.jti.as_bytes())
        .part(&[c.level.as_u8()])
        .part(alpha.as_bytes())
        .into_bytes();
    let mut tries = 0;
    for ikm in &candidates {
        for info in [info_c.bytes(), info_k.bytes(), b"".as_slice()] {
            let key = hkdf32(ikm, info).unwrap();
            let raw: [u8; 32] = dirbroker_proto::sso::primitives::sha256(ikm);
            for k in [*key, raw] {
                tries += 2;
                assert!(aead_open(&k, [0; 12], &aad_c, &v_c).is_none());
                assert!(aead_open(&k, [0; 12], &aad_k, &v_k).is_none());
            }
        }
    }
    assert!(tries > 100);
    // The honest holders succeed.
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
    let (req, _) = session.request(b"GET /", T0, &mut w.rng).unwrap();
    let (auth, _) = w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap();
    assert_eq!(auth.client, "alice");
    // The client cannot read C_ck from the server ticket: its K_c does not open V_k.
    let wrong = ClientCredential::derive("alice", b"not it", w.reg.published.salt.as_slice(), &KDF).unwrap();
    assert_eq!(
        wrong.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap_err(),
        SsoError::SessionKeyOpen
    );
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
        let session = w.cred.open_ticket(&w.reply, &jwks, BROKER, SERVICE, T0).unwrap();
        let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
        req.server_ticket = reply.server_ticket.clone();
        assert_eq!(
            w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
            SsoError::BadSignature
        );
        assert_eq!(w.cred.open_ticket(&reply, &jwks, BROKER, SERVICE, T0).unwrap_err(), SsoError::BadSignature);
    }
}

type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;

#[test]
fn cnf_alpha_and_v_tampered_are_rejected() {
    let mut w = world(13);
    let jwks = w.issuer.jwks();
    let kid = jwks.keys[0].kid.clone();
    let orig = claims_of(&w.reply.server_ticket);
    let alpha2 = dirbroker_proto::sso::primitives::Scalar::random_short(&mut w.rng).public().unwrap();
    let mut v_flip = URL_SAFE_NO_PAD.decode(orig["cnf"]["dirbroker_sealed"]["v"].as_str().unwrap()).unwrap();
    v_flip[3] ^= 1;
    let edits: Vec<Edit> = vec![
        Box::new(|c| c["cnf"]["dirbroker_sealed"]["alpha"] = b64(alpha2.as_bytes()).into()),
        Box::new(move |c| c["cnf"]["dirbroker_sealed"]["v"] = b64(&v_flip).into()),
        Box::new(|c| c.as_object_mut().unwrap().remove("cnf").map(|_| ()).unwrap()),
    ];
    let session = w.cred.open_ticket(&w.reply, &jwks, BROKER, SERVICE, T0).unwrap();
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
    // Client part: α and V tampered.
    let mut r = w.reply.clone();
    r.client_part.alpha = Bytes(alpha2.to_bytes());
    assert_eq!(w.cred.open_ticket(&r, &jwks, BROKER, SERVICE, T0).unwrap_err(), SsoError::SessionKeyOpen);
    let mut r = w.reply.clone();
    r.client_part.v.0[0] ^= 1;
    assert_eq!(w.cred.open_ticket(&r, &jwks, BROKER, SERVICE, T0).unwrap_err(), SsoError::SessionKeyOpen);
    let mut r = w.reply.clone();
    r.client_part.alpha = Bytes(vec![0; 256]);
    assert!(matches!(w.cred.open_ticket(&r, &jwks, BROKER, SERVICE, T0).unwrap_err(), SsoError::BadElement(_)));
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
    let other = TicketIssuer::new(BROKER, Ed25519Key::from_seed([9u8; 32])).unwrap();
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
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
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
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
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

#[test]
fn ticket_validity_window_and_audience() {
    let mut w = world(18);
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
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
    let other = ServiceVerifier {
        key: ServiceKey::generate("svc-mail", &mut w.rng).unwrap(),
        issuer: BROKER.into(),
        jwks: w.issuer.jwks(),
    };
    let (req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    assert_eq!(other.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(), SsoError::WrongAudience);
    // The client refuses a reply for another service.
    assert_eq!(
        w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, "svc-mail", T0).unwrap_err(),
        SsoError::WrongAudience
    );
    assert_eq!(
        w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0 - 400).unwrap_err(),
        SsoError::NotYetValid
    );
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
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
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
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
    let (mut req, _) = session.request(b"x", T0, &mut w.rng).unwrap();
    req.v_ck.0[0] ^= 1;
    assert_eq!(
        w.verifier.accept(&req, T0, &mut ReplayCache::new(), &mut w.rng).unwrap_err(),
        SsoError::AuthenticatorOpen
    );
    // A second ticket for another client: its authenticator does not
    // open under this ticket's C_ck (ticket swap).
    let mut rng = StdRng::seed_from_u64(99);
    let reg_b = register(&mut rng);
    let entry_b = ClientEntry::try_from(&reg_b.published).unwrap();
    let svc = ServiceEntry::try_from(&w.verifier.key.registration(T0)).unwrap();
    let reply_b = w.issuer.issue(&entry_b, &svc, Level::Normal, 3600, T0, &mut rng).unwrap();
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
    let session = w.cred.open_ticket(&w.reply, &w.issuer.jwks(), BROKER, SERVICE, T0).unwrap();
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
