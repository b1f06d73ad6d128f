//! Tickets issued per second by the broker's TGS (`TicketIssuer::grant`:
//! open the TGT with K_tgt, open and check the authenticator, replay cache,
//! then the client ticket and the server ticket — two EdDSA JWT signatures,
//! three HKDFs, two AES-GCM seals; P_k^b cached per epoch), counted as JWTs
//! issued (two per answer), against raw Ed25519 signatures in the same run.
//! Also the login (AS) cost and one Argon2id derive at production parameters.
//!
//! `cargo run --release --example ticket_rate`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::level::Level;
use dirbroker_proto::sso::primitives::{Bytes, Ed25519Key, Scalar};
use dirbroker_proto::sso::registration::Published;
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::session::ClientCredential;
use dirbroker_proto::sso::tickets::{ClientEntry, ServiceEntry, ServiceKey, TicketIssuer};
use ed25519_dalek::Signer as _;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rate(min: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Two rates measured in alternating slices (the machine is shared: a
/// load change then hits both sides alike).
fn rates(total: Duration, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let slice = Duration::from_millis(200);
    let rounds = (total.as_millis() / slice.as_millis()).max(1);
    let (mut na, mut ta, mut nb, mut tb) = (0u64, 0f64, 0u64, 0f64);
    for _ in 0..rounds {
        for (f, n, t) in
            [(&mut a as &mut dyn FnMut(), &mut na, &mut ta), (&mut b as &mut dyn FnMut(), &mut nb, &mut tb)]
        {
            let start = Instant::now();
            while start.elapsed() < slice {
                f();
                *n += 1;
            }
            *t += start.elapsed().as_secs_f64();
        }
    }
    (na as f64 / ta, nb as f64 / tb)
}

const NOW: i64 = 1_700_000_000;

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let secs = Duration::from_secs(std::env::var("RATE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let salt = [9u8; 16];
    let cred = ClientCredential::derive("alice", b"pw", &salt, &KdfParams::INSECURE_TEST).unwrap();
    let published = Published {
        id_c: "alice".into(),
        p_c: Bytes(cred.p_c().to_bytes()),
        t_c: 0,
        level: Level::Normal,
        salt: Bytes(salt.to_vec()),
        kdf: KdfParams::INSECURE_TEST,
    };
    let client = ClientEntry::try_from(&published).unwrap();
    let service_key = ServiceKey::generate("svc", &mut rng).unwrap();
    let service = ServiceEntry::try_from(&service_key.registration(0)).unwrap();
    let issuer = TicketIssuer::new("https://broker.example", Ed25519Key::generate(&mut rng), &[3u8; 32]).unwrap();
    let jwks = issuer.jwks();

    // Login (AS exchange), broker side: proof check + TGT.
    let mut cache = ReplayCache::new();
    let lreq = cred.login_request(issuer.issuer(), NOW, &mut rng).unwrap();
    let login = issuer.login(&client, &lreq, 36_000, NOW, &mut cache, &mut rng).unwrap();
    let session = cred.open_login(&login, &jwks, issuer.issuer(), NOW).unwrap();
    let logins = rate(secs, || {
        let lreq = cred.login_request(issuer.issuer(), NOW, &mut rng).unwrap();
        issuer.login(&client, &lreq, 36_000, NOW, &mut ReplayCache::new(), &mut rng).unwrap();
    });

    // TGS: the client's requests are made outside the timed loop.
    let reqs: Vec<_> = (0..20_000).map(|_| session.request_ticket("svc", NOW, &mut rng).unwrap().0).collect();
    let mut i = 0usize;
    let mut tgs_cache = ReplayCache::new();
    let msg = [0u8; 300];
    let awslc = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[5u8; 32]).unwrap();
    let (answers, awslc_signs) = rates(
        secs * 2,
        || {
            let req = reqs.get(i % reqs.len()).unwrap();
            if i.is_multiple_of(reqs.len()) && i > 0 {
                tgs_cache = ReplayCache::new();
            }
            i += 1;
            std::hint::black_box(issuer.grant(req, &service, 3600, NOW, &mut tgs_cache, &mut rng).unwrap());
        },
        || {
            std::hint::black_box(awslc.sign(std::hint::black_box(&msg)));
        },
    );
    let tickets = answers * 2.0;
    let (tgt_claims, sk) = issuer.open_tgt(session.tgt(), NOW).unwrap();
    let issue_only = 2.0
        * rate(secs, || {
            std::hint::black_box(issuer.issue(&tgt_claims, &sk, &service, 3600, NOW, &mut rng).unwrap());
        });

    let dalek = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let dalek_signs = rate(secs, || {
        std::hint::black_box(dalek.sign(std::hint::black_box(&msg)));
    });
    // jsonwebtoken::encode as the old issuer used it (PKCS#8 re-parsed per call).
    let der = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        dalek.to_pkcs8_der().unwrap()
    };
    let enc = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
    let claims = serde_json::json!({"iss": "https://broker.example", "sub": "alice", "aud": "svc", "exp": NOW});
    let jwt_encodes = rate(secs, || {
        std::hint::black_box(
            jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA), &claims, &enc).unwrap(),
        );
    });
    // The baseline is aws-lc (the signer the tickets use, and the faster
    // one here); dalek is shown for reference.
    let signs = awslc_signs;
    println!("TGS tickets/s (2 JWTs per answer, TGT + authenticator checked): {tickets:.0}");
    println!("issue-only tickets/s (sign + seal):                             {issue_only:.0}");
    println!(
        "raw Ed25519 signs/s (300-byte message): aws-lc {signs:.0} (baseline, measured interleaved with the TGS), ed25519-dalek {dalek_signs:.0}"
    );
    println!("jsonwebtoken::encode EdDSA/s (re-parses PKCS#8 each call):      {jwt_encodes:.0}");
    println!("logins/s at the broker (Schnorr check + g^a + P_c^a + TGT):     {logins:.1}");
    println!("ratio TGS tickets/signs: {:.3}  (issue-only {:.3}; target >= 0.5)", tickets / signs, issue_only / signs);
    for (name, p) in
        [("INTERACTIVE (64 MiB, t=3, p=1)", KdfParams::INTERACTIVE), ("MINIMUM (19 MiB, t=2)", KdfParams::MINIMUM)]
    {
        let start = Instant::now();
        let _ = derive_pw(b"correct horse battery staple", &[1u8; 16], &p).unwrap();
        println!("Argon2id derive_pw {name}: {:.0} ms", start.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = Scalar::random(&mut rng);
    println!("RATIO {:.4}", tickets / signs);
}
