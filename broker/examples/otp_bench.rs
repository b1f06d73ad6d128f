//! Benchmark driver for bench/otp-verify.sh (not part of the CLI): OTP
//! verifications per second end to end as `dirbroker serve` makes them (token
//! state from its cache, open the sealed secret, check the code, one
//! delete-old/add-new modify guarded by the token's entryCSN) against a raw
//! ldap3 loop doing only the same single-modify write, on the same slapd.
//! Also prints the read-then-write rate (the one-shot CLI's path).
//!
//!   otp_bench CONFIG N        (CONFIG: a testbed's dirbroker.toml)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Instant;

use dirbroker::directory::Directory;
use dirbroker::model::{DirEntry, OtpToken, TokenType, User};
use dirbroker::otp::codes::{self, Algorithm};
use dirbroker::otp::verify::{self, Outcome, Policy, TokenCache};
use dirbroker::seal::{Keyring, context};
use ldap3::{LdapConnAsync, Mod};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = dirbroker::config::Config::load(std::path::Path::new(&args[1])).unwrap();
    let n: u64 = args[2].parse().unwrap();
    let cfg = config.directory_config().unwrap();
    let dir = Directory::connect(cfg.clone()).await.unwrap();
    let ring = Keyring::load(&config.keyring_path()).unwrap();
    let secret = b"12345678901234567890";

    // Ours: HOTP verifications as `dirbroker serve` makes them (token cache,
    // entryCSN-guarded write), each consuming one code.
    let owner = dir.create(&User::new("bench", "Bench").unwrap()).await.unwrap();
    let mut t = OtpToken::new("bench-hotp", owner.clone(), TokenType::Hotp).unwrap();
    t.secret = Some(ring.seal(&context::otp_token(&t), secret).unwrap());
    t.hotp_counter = Some(0);
    dir.create(&t).await.unwrap();
    let policy = Policy::default();
    let cache = TokenCache::new();
    let start = Instant::now();
    for c in 0..n {
        let code = codes::hotp(secret, c, 6, Algorithm::Sha1).unwrap();
        let now = dirbroker::clock::now();
        let out = cache.verify(&dir, &ring, "bench-hotp", &code, now, &policy).await.unwrap();
        assert_eq!(out, Outcome::Accepted { counter: c as i64 });
    }
    let ours = n as f64 / start.elapsed().as_secs_f64();

    // For comparison: read the token, then write (the one-shot CLI's path).
    let start = Instant::now();
    for c in n..2 * n {
        let code = codes::hotp(secret, c, 6, Algorithm::Sha1).unwrap();
        let token = dir.load::<OtpToken>("bench-hotp").await.unwrap();
        let out = verify::verify(&dir, &ring, &token, &code, dirbroker::clock::now(), &policy).await.unwrap();
        assert_eq!(out, Outcome::Accepted { counter: c as i64 });
    }
    let uncached = n as f64 / start.elapsed().as_secs_f64();

    // Peer: a raw ldap3 loop, one delete-old/add-new modify per iteration.
    let Some(dirbroker::directory::Bind::Simple { dn, password }) = Some(cfg.bind.clone()) else { panic!() };
    let (conn, mut ldap) = LdapConnAsync::new(&cfg.uris[0]).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&dn, password.expose()).await.unwrap().success().unwrap();
    let target = owner.to_string();
    ldap.modify(&target, vec![Mod::Replace("description", ["d0"].into())]).await.unwrap().success().unwrap();
    let start = Instant::now();
    for i in 0..n {
        let (old, new) = (format!("d{i}"), format!("d{}", i + 1));
        let mods =
            vec![Mod::Delete("description", [old.as_str()].into()), Mod::Add("description", [new.as_str()].into())];
        ldap.modify(&target, mods).await.unwrap().success().unwrap();
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();
    let _ = dir.delete(&t.dn(dir.layout()).unwrap()).await;
    println!("ours {ours:.1} raw {raw:.1} read-then-write {uncached:.1}");
}
