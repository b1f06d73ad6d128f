//! Tickets issued per second (stage 4 for one client+service pair: g^a,
//! P_c^a, P_k^a with a 256-bit a, two HKDFs, two AES-GCM seals, two EdDSA
//! JWT signatures) against raw ed25519-dalek signatures, in the same run.
//! Also times one Argon2id derive at the production parameters.
//!
//! `cargo run --release --example ticket_rate`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::level::Level;
use dirbroker_proto::sso::primitives::{Bytes, Ed25519Key, Scalar, generator, group};
use dirbroker_proto::sso::registration::Published;
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

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let pw = Scalar::random(&mut rng);
    let published = Published {
        id_c: "alice".into(),
        p_c: Bytes(pw.public().unwrap().to_bytes()),
        t_c: 0,
        level: Level::Normal,
        salt: Bytes(vec![0; 16]),
        kdf: KdfParams::INTERACTIVE,
    };
    let client = ClientEntry::try_from(&published).unwrap();
    let service_key = ServiceKey::generate("svc", &mut rng).unwrap();
    let service = ServiceEntry::try_from(&service_key.registration(0)).unwrap();
    let issuer = TicketIssuer::new("https://broker.example", Ed25519Key::generate(&mut rng)).unwrap();

    let secs = Duration::from_secs(3);
    let tickets = rate(secs, || {
        issuer.issue(&client, &service, Level::Normal, 3600, 1_700_000_000, &mut rng).unwrap();
    });
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let msg = [0u8; 300];
    let signs = rate(secs, || {
        std::hint::black_box(dalek.sign(std::hint::black_box(&msg)));
    });
    let a = Scalar::random_short(&mut rng).to_exponent().unwrap();
    let exps = rate(secs, || {
        std::hint::black_box(group().exp(generator(), &a).unwrap());
    });
    let full = Scalar::random(&mut rng).to_exponent().unwrap();
    let full_exps = rate(secs, || {
        std::hint::black_box(group().exp(generator(), &full).unwrap());
    });
    println!("tickets/s (sign + seal, 3 x 256-bit modexp): {tickets:.1}");
    println!("raw ed25519-dalek signs/s:                   {signs:.0}");
    println!("ratio tickets/signs:                         {:.5} (target >= 0.5)", tickets / signs);
    println!("256-bit-exponent modexp/s (2048-bit p):      {exps:.1}");
    println!("full-exponent modexp/s (2047-bit q):         {full_exps:.1}");
    for (name, p) in
        [("INTERACTIVE (64 MiB, t=3, p=1)", KdfParams::INTERACTIVE), ("MINIMUM (19 MiB, t=2)", KdfParams::MINIMUM)]
    {
        let start = Instant::now();
        let _ = derive_pw(b"correct horse battery staple", &[1u8; 16], &p).unwrap();
        println!("Argon2id derive_pw {name}: {:.0} ms", start.elapsed().as_secs_f64() * 1000.0);
    }
}
