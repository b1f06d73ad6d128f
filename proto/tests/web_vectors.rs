//! The shared test vectors of the sign-in page (web/test/vectors.json): the
//! page's copy of the keystroke classifier, enrolment and hardening
//! (web/keystroke.js) and of the group generator and pw derivation
//! (web/sso.js) must give what this crate gives. This test computes every
//! expected answer with the Rust code and fails if the file says otherwise;
//! web/test/keystroke.test.js (node) and tests/e2e/web.rs (Chromium) check
//! the page's scripts against the same file.
//!
//! After changing the cases below: `DIRBROKER_WRITE_VECTORS=1 cargo test -p
//! dirbroker-proto --test web_vectors` rewrites the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use dirbroker_proto::keystroke::{KeystrokeError, Rhythm, classify, enrol, harden};
use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};
use dirbroker_proto::sso::primitives::generator;
use serde_json::{Value, json};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn error(e: &KeystrokeError) -> Value {
    match e {
        KeystrokeError::EmptyPassword => json!({ "kind": "empty_password" }),
        KeystrokeError::NoDurations => json!({ "kind": "no_durations" }),
        KeystrokeError::PasswordTooLong { chars } => json!({ "kind": "password_too_long", "chars": chars }),
        KeystrokeError::LengthMismatch { chars, durations } => {
            json!({ "kind": "length_mismatch", "chars": chars, "durations": durations })
        }
        KeystrokeError::DurationOutOfRange { position, duration_ms } => {
            json!({ "kind": "duration_out_of_range", "position": position, "duration_ms": duration_ms })
        }
        KeystrokeError::Ambiguous { gap_ms } => json!({ "kind": "ambiguous", "gap_ms": gap_ms }),
        KeystrokeError::SampleCount { got } => json!({ "kind": "sample_count", "got": got }),
        KeystrokeError::SamplesDisagree { sample } => json!({ "kind": "samples_disagree", "sample": sample }),
        other => panic!("a new KeystrokeError variant needs a vector mapping: {other:?}"),
    }
}

fn rhythm(r: Rhythm) -> &'static str {
    match r {
        Rhythm::Even => "even",
        Rhythm::Pattern => "pattern",
    }
}

/// A fixed pseudo-random sequence (xorshift64), so the file never changes by itself.
struct Seq(u64);

impl Seq {
    fn next(&mut self, below: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        u32::try_from(self.0 % u64::from(below)).unwrap()
    }
}

fn classify_cases() -> Vec<Vec<u32>> {
    let mut cases: Vec<Vec<u32>> = vec![
        vec![80, 250, 90, 260, 85, 95],
        vec![100, 200],
        vec![100, 201],
        vec![100, 160, 220],
        vec![100, 150, 250],
        vec![100, 149, 250],
        vec![100, 110, 120, 130],
        vec![100, 150, 250, 500],
        vec![10, 500, 500, 500],
        vec![250],
        vec![1, 10_000],
        vec![],
        vec![80, 0, 90],
        vec![80, 250, 10_001],
        vec![300, 20, 700, 40, 900],
    ];
    let mut seq = Seq(0x5eed_0004);
    for _ in 0..200 {
        let n = 1 + seq.next(12) as usize;
        // Mostly human holds, some near the bounds.
        let spread = [150, 400, 1_000, 10_000][seq.next(4) as usize];
        cases.push((0..n).map(|_| 1 + seq.next(spread)).collect());
    }
    cases
}

fn vectors() -> Value {
    let classify_v: Vec<Value> = classify_cases()
        .into_iter()
        .map(|d| match classify(&d) {
            Ok(c) => json!({ "durations": d, "rhythm": rhythm(c.rhythm()), "bits": c.bits().iter().map(u8::from).collect::<Vec<_>>() }),
            Err(e) => json!({ "durations": d, "error": error(&e) }),
        })
        .collect();

    let harden_cases: Vec<(&str, Vec<u32>)> = vec![
        ("ab", vec![80, 250]),
        ("비밀", vec![120, 130]),
        ("secret", vec![80, 250, 90, 260, 85, 95]),
        ("secret", vec![100; 6]),
        ("비밀번호", vec![90, 300, 85, 310]),
        ("😀x", vec![90, 300]),
        ("secret", vec![80, 250, 90]),
        ("", vec![]),
        ("abc", vec![100, 160, 220]),
    ];
    let harden_v: Vec<Value> = harden_cases
        .into_iter()
        .map(|(pw, d)| match harden(pw, &d) {
            Ok(h) => json!({ "password": pw, "durations": d, "hardened": h.to_hex().as_str() }),
            Err(e) => json!({ "password": pw, "durations": d, "error": error(&e) }),
        })
        .collect();

    let pattern = vec![80, 250, 90, 260, 85, 95];
    let enrol_cases: Vec<(&str, Vec<Vec<u32>>)> = vec![
        ("secret", vec![pattern.clone(), vec![95, 240, 80, 275, 70, 110], vec![60, 300, 120, 230, 75, 88]]),
        ("secret", vec![vec![100; 6], vec![120, 130, 110, 100, 150, 140]]),
        ("secret", vec![pattern.clone(), vec![95, 240, 80, 275, 70, 110], vec![80, 250, 300, 260, 85, 95]]),
        ("secret", vec![pattern.clone(), vec![100; 6]]),
        ("abc", vec![vec![100, 300, 110], vec![100, 160, 220]]),
        ("abc", vec![vec![100, 300, 110], vec![100, 300]]),
        ("ab", vec![vec![100, 300]]),
        ("ab", vec![vec![100, 300]; 11]),
    ];
    let enrol_v: Vec<Value> = enrol_cases
        .into_iter()
        .map(|(pw, s)| match enrol(pw, &s) {
            Ok(e) => json!({
                "password": pw, "samples": s, "hardened": e.hardened().to_hex().as_str(),
                "rhythm": rhythm(e.rhythm()), "long_keys": e.long_keys(),
            }),
            Err(e) => json!({ "password": pw, "samples": s, "error": error(&e) }),
        })
        .collect();

    // pw = Argon2id(input, salt) mod q, with the test-only parameters and the floor.
    let pw_v: Vec<Value> = [
        (b"ab".to_vec(), b"0123456789abcdef".to_vec(), KdfParams::INSECURE_TEST),
        (harden("ab", &[80, 250]).unwrap().as_bytes().to_vec(), vec![7; 16], KdfParams::INSECURE_TEST),
        ("비밀번호".as_bytes().to_vec(), vec![0xa5; 16], KdfParams { m_cost_kib: 64, t_cost: 2, p_cost: 1 }),
    ]
    .into_iter()
    .map(|(input, salt, kdf)| {
        let pw = derive_pw(&input, &salt, &kdf).unwrap();
        json!({
            "input": hex(&input), "salt": hex(&salt), "kdf": kdf,
            "pw": hex(&pw.to_fixed_bytes()), "p_c": hex(&pw.public().unwrap().to_bytes()),
        })
    })
    .collect();

    json!({
        "about": "written by proto/tests/web_vectors.rs from the Rust code; do not edit by hand",
        "classify": classify_v,
        "harden": harden_v,
        "enrol": enrol_v,
        "generator": hex(generator().as_bytes()),
        "pw": pw_v,
    })
}

#[test]
fn the_page_vectors_are_what_the_rust_code_computes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/test/vectors.json");
    let want = format!("{}\n", serde_json::to_string_pretty(&vectors()).unwrap());
    if std::env::var_os("DIRBROKER_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{} differs from the Rust code's answers; rewrite it with DIRBROKER_WRITE_VECTORS=1",
        path.display()
    );
}

#[test]
fn the_vectors_cover_every_case() {
    let v = vectors();
    let kinds: Vec<&str> = v["classify"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rhythm"].as_str().or_else(|| c["error"]["kind"].as_str()).unwrap())
        .collect();
    for k in ["even", "pattern", "ambiguous", "duration_out_of_range", "no_durations"] {
        assert!(kinds.iter().filter(|x| **x == k).count() >= 1, "no {k} case");
    }
    // The generated cases exercise all three outcomes, not just one.
    for k in ["even", "pattern", "ambiguous"] {
        assert!(kinds.iter().filter(|x| **x == k).count() >= 10, "too few {k} cases: {kinds:?}");
    }
}
