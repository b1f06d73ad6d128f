//! Benchmark driver for bench/cluster.sh (not part of the CLI): a
//! 3-provider cluster (`dirbroker_testbed::cluster`, one writer) and two
//! brokers' directory layers on it (the URI list in two orders), measured in
//! one run:
//!
//! - OTP verifications/s through the two brokers (token cache, sealed
//!   secret, the entryCSN-guarded consume on the writer) against a raw ldap3
//!   delete-old/add-new modify on the writer;
//! - lookup latency (a user by uid) on a non-writer;
//! - `dirbroker-ssh authorized-keys` with p1 SIGSTOPped then SIGKILLed (first
//!   call and next call, ms);
//! - replication lag (write on the writer, poll p2 until visible) p50/p95,
//!   idle and under a burst of adds;
//! - double accepts when the two brokers race the same code.
//!
//!   cluster_bench WORKDIR N_OTP BURST
//!
//! Prints one `key=value` line per figure and the `RESULT` line last.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dirbroker::directory::{Attrs, Directory, Dn, Filter, Scope};
use dirbroker::model::{DirEntry, OtpToken, Sealed, TokenType, User};
use dirbroker::otp::codes::{self, Algorithm};
use dirbroker::otp::verify::{Outcome, Policy, TokenCache};
use dirbroker::seal::{Keyring, context};
use dirbroker_testbed::Identity;
use dirbroker_testbed::cluster::{Cluster, ClusterOptions};
use ldap3::{LdapConnAsync, Mod};
use nix::sys::signal::Signal;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn host(name: &str) -> Attrs {
    vec![
        ("objectClass".into(), vec![b"device".to_vec(), b"ipHost".to_vec()]),
        ("cn".into(), vec![name.as_bytes().to_vec()]),
        ("ipHostNumber".into(), vec![b"10.0.0.1".to_vec()]),
    ]
}

async fn broker(c: &Cluster, uris: Vec<String>) -> Directory {
    let mut cfg = c.directory_config(Identity::Broker).unwrap();
    cfg.uris = uris;
    Directory::connect(cfg).await.unwrap()
}

/// Write one host on the writer, poll `reader` until it sees it: ms.
async fn lag_once(writer: &Directory, reader: &Directory, name: &str) -> f64 {
    let dn = writer.layout().hosts.child("cn", name).unwrap();
    writer.add(&dn, host(name)).await.unwrap();
    let start = Instant::now();
    loop {
        let found = reader.search(&reader.layout().hosts, Scope::OneLevel, &Filter::eq("cn", name), &["cn"]).await;
        if found.map(|f| !f.is_empty()).unwrap_or(false) {
            return ms(start.elapsed());
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{name} never reached p2");
    }
}

fn node_lookup(bin: &std::path::Path, config: &std::path::Path) -> f64 {
    let start = Instant::now();
    let o = std::process::Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "authorized-keys", "alice"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), KEY, "{o:?}");
    ms(start.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = std::path::PathBuf::from(&args[1]);
    let n: u64 = args[2].parse().unwrap();
    let burst: usize = args[3].parse().unwrap();
    let bin_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let c = Cluster::start(ClusterOptions::new(work.join("c"), 3)).await.unwrap();
    let uris = c.uris();
    let a = Arc::new(broker(&c, uris.clone()).await);
    let b = Arc::new(broker(&c, vec![uris[2].clone(), uris[1].clone(), uris[0].clone()]).await);
    let ring = Keyring::load(&c.provider(0).unwrap().keyring_file()).unwrap();
    let secret = b"12345678901234567890";

    // OTP through the two brokers: each verifies its own token, in turn.
    let mut owners = Vec::new();
    for (i, dir) in [&a, &b].into_iter().enumerate() {
        let mut u = User::new(&format!("bench{i}"), "Bench").unwrap();
        if i == 0 {
            u = User::new("alice", "Alice").unwrap();
            u.ssh_public_keys = vec![KEY.into()];
        }
        let owner = dir.create(&u).await.unwrap();
        let mut t = OtpToken::new(&format!("bench-{i}"), owner.clone(), TokenType::Hotp).unwrap();
        t.secret = Some(ring.seal(&context::otp_token(&t), secret).unwrap());
        t.hotp_counter = Some(0);
        dir.create(&t).await.unwrap();
        owners.push(owner);
    }
    c.wait_converged(Duration::from_secs(60)).await.unwrap();
    let policy = Policy::default();
    let caches = [TokenCache::new(), TokenCache::new()];
    let start = Instant::now();
    for k in 0..n {
        for (i, dir) in [&a, &b].into_iter().enumerate() {
            let code = codes::hotp(secret, k, 6, Algorithm::Sha1).unwrap();
            let out = caches[i]
                .verify(dir, &ring, &format!("bench-{i}"), &code, dirbroker::clock::now(), &policy)
                .await
                .unwrap();
            assert_eq!(out, Outcome::Accepted { counter: k as i64 });
        }
    }
    let ours = (2 * n) as f64 / start.elapsed().as_secs_f64();
    let cfg = c.directory_config(Identity::Broker).unwrap();
    let Some(dirbroker::directory::Bind::Simple { dn, password }) = Some(cfg.bind.clone()) else { panic!() };
    let (conn, mut ldap) = LdapConnAsync::new(&uris[0]).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&dn, password.expose()).await.unwrap().success().unwrap();
    let target = owners[1].to_string();
    ldap.modify(&target, vec![Mod::Replace("description", ["d0"].into())]).await.unwrap().success().unwrap();
    let start = Instant::now();
    for i in 0..2 * n {
        let (old, new) = (format!("d{i}"), format!("d{}", i + 1));
        let mods =
            vec![Mod::Delete("description", [old.as_str()].into()), Mod::Add("description", [new.as_str()].into())];
        ldap.modify(&target, mods).await.unwrap().success().unwrap();
    }
    let raw = (2 * n) as f64 / start.elapsed().as_secs_f64();
    println!("otp_through_brokers_per_s={ours:.1} raw_writer_modify_per_s={raw:.1}");

    // Lookup latency on a non-writer (p2 only).
    let p2 = broker(&c, vec![uris[1].clone()]).await;
    let mut lookups = Vec::new();
    for _ in 0..500 {
        let start = Instant::now();
        p2.find_user("alice").await.unwrap().unwrap();
        lookups.push(ms(start.elapsed()));
    }
    println!(
        "lookup_non_writer_p50_ms={:.3} lookup_non_writer_p95_ms={:.3}",
        percentile(&mut lookups, 0.5),
        percentile(&mut lookups, 0.95)
    );

    // Replication lag, idle and under a burst of adds on the writer.
    let mut idle = Vec::new();
    for i in 0..200 {
        idle.push(lag_once(&a, &p2, &format!("idle-{i}")).await);
    }
    let burst_dir = a.clone();
    let burster = tokio::spawn(async move {
        let layout = burst_dir.layout().clone();
        for i in 0..burst {
            let name = format!("burst-{i}");
            burst_dir.add(&layout.hosts.child("cn", &name).unwrap(), host(&name)).await.unwrap();
        }
    });
    let mut busy = Vec::new();
    let mut i = 0;
    while !burster.is_finished() {
        busy.push(lag_once(&a, &p2, &format!("busy-{i}")).await);
        i += 1;
    }
    burster.await.unwrap();
    let (idle50, idle95) = (percentile(&mut idle, 0.5), percentile(&mut idle, 0.95));
    let (busy50, busy95) =
        if busy.is_empty() { (0.0, 0.0) } else { (percentile(&mut busy, 0.5), percentile(&mut busy, 0.95)) };
    println!(
        "lag_idle_p50_ms={idle50:.2} lag_idle_p95_ms={idle95:.2} lag_burst_p50_ms={busy50:.2} lag_burst_p95_ms={busy95:.2} burst_adds={burst} burst_samples={}",
        busy.len()
    );

    // Double accepts: the two brokers race the same code on 200 tokens.
    let mut dns: Vec<Dn> = Vec::new();
    for i in 0..200 {
        let mut t = OtpToken::new(&format!("race-{i}"), owners[0].clone(), TokenType::Hotp).unwrap();
        t.secret = Some(Sealed(vec![1; 40]));
        t.hotp_counter = Some(0);
        a.create(&t).await.unwrap();
        dns.push(t.dn(a.layout()).unwrap());
    }
    c.wait_converged(Duration::from_secs(120)).await.unwrap();
    let consume = || {
        vec![
            Mod::Delete(b"dirbrokerHotpCounter".to_vec(), [b"0".to_vec()].into()),
            Mod::Add(b"dirbrokerHotpCounter".to_vec(), [b"1".to_vec()].into()),
        ]
    };
    let mut double = 0;
    for dn in &dns {
        let (x, y) = tokio::join!(a.modify(dn, consume()), b.modify(dn, consume()));
        if x.is_ok() && y.is_ok() {
            double += 1;
        }
    }
    println!("race_tokens={} double_accepts={double}", dns.len());

    // Node lookups with p1 hung, then dead (op timeout 1 s).
    let node = work.join("node.toml");
    std::fs::write(
        &node,
        format!(
            "[directory]\nuris = {uris:?}\nbase_dn = \"dc=example,dc=org\"\n\
             bind_dn = \"cn=node-reader,ou=system,dc=example,dc=org\"\nbind_password_file = {:?}\n\
             connect_timeout_ms = 1000\nop_timeout_ms = 1000\n\n[ssh]\ncache_dir = {:?}\n",
            c.provider(0).unwrap().password_file(Identity::NodeReader).unwrap().display().to_string(),
            work.join("cache").display().to_string(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(work.join("cache")).unwrap();
    std::fs::set_permissions(work.join("cache"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let ssh = bin_dir.join("dirbroker-ssh");
    node_lookup(&ssh, &node);
    c.signal(0, Signal::SIGSTOP).unwrap();
    while c.is_running(0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = node_lookup(&ssh, &node);
    let next = node_lookup(&ssh, &node);
    c.signal(0, Signal::SIGKILL).unwrap();
    let killed = node_lookup(&ssh, &node);
    println!("failover_first_ms={first:.1} failover_next_ms={next:.1} killed_ms={killed:.1}");
    println!(
        "RESULT otp_ratio_vs_raw_writer={:.3} failover_first_ms={first:.0} failover_next_ms={next:.0} lag_p95_ms={idle95:.2} double_accepts={double}",
        ours / raw
    );
}
