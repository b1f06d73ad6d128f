//! The directory layer against real slapd: round trips, typed errors,
//! failover, pooling, timeouts, TLS and ldapi.

use std::time::{Duration, Instant};

use dirbroker::directory::{Bind, DirError, Directory, DirectoryConfig, Dn, Filter, Scope, values};
use dirbroker::model::*;
use dirbroker::secret::SecretString;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::start;
use ldap3::Mod;
use time::OffsetDateTime;

fn t(s: &str) -> OffsetDateTime {
    values::parse_generalized_time(s).unwrap()
}

#[tokio::test]
async fn testbed_answers_as_broker() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let who = dir.whoami().await.unwrap();
    assert_eq!(who, format!("dn:{}", bed.layout().broker_dn().unwrap()));
    let ous = dir
        .search(&bed.layout().base, Scope::OneLevel, &Filter::object_class("organizationalUnit"), &["ou"])
        .await
        .unwrap();
    assert_eq!(ous.len(), 11);
}

/// Every kind of entry survives a write and a read back unchanged.
#[tokio::test]
async fn every_entry_type_round_trips() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let layout = dir.layout().clone();

    let mut alice = User::new("alice", "Alice Liddell").unwrap();
    alice.mail = Some("alice@example.org".into());
    alice.level = Level::Admin;
    alice.not_after = Some(t("20301231235959Z"));
    alice.posix = Some(Posix {
        uid_number: 10001,
        gid_number: 10001,
        home_directory: "/home/alice".into(),
        login_shell: Some("/bin/bash".into()),
    });
    alice.ssh_public_keys = vec![
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop".into(),
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIEX/dQ0v4127bEo8eeG1EV0ApO2lWbSnN6RXusqxc8IzAAAABHNzaDo= alice@yubikey".into(),
    ];
    // Multi-valued attributes are sets; the layer returns them sorted.
    alice.ssh_public_keys.sort();
    alice.allowed_from = vec!["10.0.0.0/8".into(), "bastion.example.org".into()];
    alice.public_value = Some(vec![0x02; 256]);
    alice.public_value_time = Some(t("20261122120000Z"));
    alice.password_kdf = Some(b"argon2id$m=65536,t=3,p=1$salt".to_vec());
    alice.keystroke_hardening = true;
    alice.sealed_ssh_private_key = Some(Sealed(vec![0, 1, 2, 255, 254]));
    dir.create(&alice).await.unwrap();
    assert_eq!(dir.load::<User>("alice").await.unwrap(), alice);
    assert_eq!(dir.find_user("alice").await.unwrap().unwrap(), alice);

    let mut anon = User::new("anon-7f3a", "anonymous").unwrap();
    anon.anonymous = true;
    anon.level = Level::Temporary;
    anon.disabled = true;
    dir.create(&anon).await.unwrap();
    assert_eq!(dir.load::<User>("anon-7f3a").await.unwrap(), anon);

    let owner = alice.dn(&layout).unwrap();
    for (id, kind) in [("tok-totp", TokenType::Totp), ("tok-hotp", TokenType::Hotp), ("tok-skey", TokenType::Skey)] {
        let mut tok = OtpToken::new(id, owner.clone(), kind).unwrap();
        tok.description = Some(format!("{} token", kind.as_str()));
        tok.secret = Some(Sealed(vec![9; 40]));
        tok.failure_count = 2;
        tok.not_before = Some(t("20260101000000Z"));
        tok.not_after = Some(t("20270101000000Z"));
        match kind {
            TokenType::Totp => {
                tok.algorithm = Some("sha1".into());
                tok.digits = Some(6);
                tok.period = Some(30);
                tok.totp_watermark = Some(59_059_059);
                tok.clock_offset = Some(-1);
                tok.look_ahead = Some(1);
            }
            TokenType::Hotp => {
                tok.algorithm = Some("sha256".into());
                tok.digits = Some(8);
                tok.hotp_counter = Some(42);
                tok.look_ahead = Some(10);
            }
            TokenType::Skey => {
                tok.algorithm = Some("md5".into());
                tok.skey_seed = Some("ke1234".into());
                tok.skey_sequence = Some(99);
                tok.skey_last_otp = Some(vec![0x9e, 0x87, 0x61, 0x34, 0xd9, 0x04, 0x99, 0xdd]);
            }
        }
        dir.create(&tok).await.unwrap();
        assert_eq!(dir.load::<OtpToken>(id).await.unwrap(), tok);
    }
    assert_eq!(dir.list::<OtpToken>().await.unwrap().len(), 3);

    let mut host = Host::new("node17", "10.1.0.17").unwrap();
    host.aliases = vec!["node17.cluster.example.org".into()];
    host.addresses.push("fd00::17".into());
    host.addresses.sort();
    host.ssh_public_keys =
        vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Rob3N0a2V5MTIzNDU2Nzg5MDEyMzQ1Njc4OTA root@node17".into()];
    host.allowed_from = vec!["node18".into(), "node19".into()];
    host.ssh_port = Some(2222);
    dir.create(&host).await.unwrap();
    assert_eq!(dir.load::<Host>("node17").await.unwrap(), host);

    let mut dc = DataCenter::new("DC-SEOUL-1").unwrap();
    dc.name = Some("Seoul one".into());
    dc.endpoint = Some("dc1.example.org:7443".into());
    dc.certificate = Some(include_bytes!("fixtures/dc-cert.der").to_vec());
    dir.create(&dc).await.unwrap();
    assert_eq!(dir.load::<DataCenter>("DC-SEOUL-1").await.unwrap(), dc);

    let mut ps = PhysicalServer::new("PS-0001", dc.dn(&layout).unwrap()).unwrap();
    ps.endpoint = Some("10.2.0.1:7444".into());
    ps.totp_secret = Some(Sealed(vec![7; 48]));
    ps.algorithm = Some("sha256".into());
    ps.digits = Some(8);
    ps.period = Some(30);
    ps.totp_watermark = Some(1);
    dir.create(&ps).await.unwrap();
    assert_eq!(dir.load::<PhysicalServer>("PS-0001").await.unwrap(), ps);

    let mut svc = Service::new("fileserver").unwrap();
    svc.endpoint = Some("files.example.org:8443".into());
    svc.public_value = Some(vec![0x55; 256]);
    svc.public_value_time = Some(t("20261122120001Z"));
    svc.min_level = Some(Level::Normal);
    dir.create(&svc).await.unwrap();
    assert_eq!(dir.load::<Service>("fileserver").await.unwrap(), svc);

    for (name, role) in [("ams-1", AgentRole::Ams), ("ans-1", AgentRole::Ans)] {
        let mut agent = Agent::new(name, role).unwrap();
        agent.endpoint = Some(format!("{name}.example.org:9443"));
        agent.signing_key = Some(vec![1; 32]);
        agent.encryption_key = Some(vec![2; 32]);
        agent.certificate = Some(include_bytes!("fixtures/dc-cert.der").to_vec());
        dir.create(&agent).await.unwrap();
        assert_eq!(dir.load::<Agent>(name).await.unwrap(), agent);
    }

    let psk = PreSharedKey {
        id: "k1-console1-dc1".into(),
        parties: {
            let mut p = vec![owner.clone(), dc.dn(&layout).unwrap()];
            p.sort();
            p
        },
        secret: Sealed(vec![3; 64]),
        not_before: None,
        not_after: Some(t("20271122000000Z")),
        disabled: false,
    };
    dir.create(&psk).await.unwrap();
    assert_eq!(dir.load::<PreSharedKey>("k1-console1-dc1").await.unwrap(), psk);
}

#[tokio::test]
async fn errors_are_typed() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let user = User::new("bob", "Bob Builder").unwrap();
    let dn = dir.create(&user).await.unwrap();

    assert!(matches!(dir.create(&user).await, Err(DirError::AlreadyExists { .. })));
    assert!(matches!(dir.load::<User>("nobody").await, Err(DirError::NotFound { .. })));
    assert!(dir.find_user("nobody").await.unwrap().is_none());

    // Schema violations: a second value for a SINGLE-VALUE attribute, an undefined attribute,
    // a level that is not an INTEGER.
    let r = dir.modify(&dn, vec![Mod::Add(b"dirbrokerUserLevel".to_vec(), [b"3".to_vec()].into())]).await;
    assert!(matches!(r, Err(DirError::ConstraintViolation { .. })), "{r:?}");
    let r = dir.modify(&dn, vec![Mod::Add(b"noSuchAttr".to_vec(), [b"x".to_vec()].into())]).await;
    assert!(matches!(r, Err(DirError::ConstraintViolation { .. })), "{r:?}");
    let r = dir.modify(&dn, vec![Mod::Replace(b"dirbrokerUserLevel".to_vec(), [b"high".to_vec()].into())]).await;
    assert!(matches!(r, Err(DirError::ConstraintViolation { .. })), "{r:?}");

    // A modify that fails part-way changes nothing: the first change is not applied either.
    let r = dir
        .modify(
            &dn,
            vec![
                Mod::Replace(b"mail".to_vec(), [b"bob@example.org".to_vec()].into()),
                Mod::Add(b"noSuchAttr".to_vec(), [b"x".to_vec()].into()),
            ],
        )
        .await;
    assert!(r.is_err());
    assert_eq!(dir.load::<User>("bob").await.unwrap().mail, None);

    // A value the layer cannot interpret is reported with its entry and attribute.
    let admin = bed.dir_as(Identity::Admin).await;
    admin.modify(&dn, vec![Mod::Replace(b"dirbrokerUserLevel".to_vec(), [b"9".to_vec()].into())]).await.unwrap();
    match dir.load::<User>("bob").await {
        Err(DirError::MalformedEntry { dn: d, attr, .. }) => {
            assert_eq!(d, dn.to_string());
            assert_eq!(attr, "dirbrokerUserLevel");
        }
        other => panic!("expected MalformedEntry, got {other:?}"),
    }
    dir.delete(&dn).await.unwrap();
    assert!(matches!(dir.delete(&dn).await, Err(DirError::NotFound { .. })));
}

/// Delete-old/add-new in one modify: the second writer that read the same old
/// value fails with noSuchAttribute, which is what OTP replay protection needs.
#[tokio::test]
async fn delete_old_add_new_loses_races_cleanly() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let owner = bed.layout().people.child("uid", "carol").unwrap();
    let mut tok = OtpToken::new("race", owner, TokenType::Hotp).unwrap();
    tok.hotp_counter = Some(5);
    let dn = dir.create(&tok).await.unwrap();
    let step = |old: i64, new: i64| {
        vec![
            Mod::Delete(b"dirbrokerHotpCounter".to_vec(), [old.to_string().into_bytes()].into()),
            Mod::Add(b"dirbrokerHotpCounter".to_vec(), [new.to_string().into_bytes()].into()),
        ]
    };
    // Two concurrent writers that both read 5.
    let (a, b) = tokio::join!(dir.modify(&dn, step(5, 6)), dir.modify(&dn, step(5, 6)));
    let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one writer wins: {a:?} {b:?}");
    let loser = if a.is_err() { a } else { b };
    let err = loser.unwrap_err();
    assert!(err.is_stale_value(), "{err:?}");
    assert_eq!(dir.load::<OtpToken>("race").await.unwrap().hotp_counter, Some(6));
}

#[tokio::test]
async fn passwords_are_hashed_checked_and_empty_ones_refused() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let dn = dir.create(&User::new("dave", "Dave").unwrap()).await.unwrap();
    let pw = SecretString::new("correct horse battery staple".into());
    dir.set_password(&dn, &pw).await.unwrap();
    assert!(dir.check_password(&dn, &pw).await.unwrap());
    assert!(!dir.check_password(&dn, &SecretString::new("wrong".into())).await.unwrap());
    // An empty password would be an unauthenticated bind that "succeeds".
    assert!(matches!(dir.check_password(&dn, &SecretString::new(String::new())).await, Err(DirError::BadInput { .. })));
    assert!(matches!(dir.set_password(&dn, &SecretString::new(String::new())).await, Err(DirError::BadInput { .. })));
    // slapd stored a hash, not the password.
    let admin = bed.dir_as(Identity::Admin).await;
    let stored = admin.read(&dn, &["userPassword"]).await.unwrap();
    let v = String::from_utf8(stored.values("userPassword")[0].clone()).unwrap();
    assert!(v.starts_with("{ARGON2}") || v.starts_with("{SSHA}"), "{v}");
    assert!(!v.contains("staple"));
    // The pool keeps its identity after a password check.
    assert_eq!(dir.whoami().await.unwrap(), format!("dn:{}", bed.layout().broker_dn().unwrap()));
}

#[tokio::test]
async fn wrong_service_password_is_invalid_credentials_not_unavailable() {
    let bed = start().await;
    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.bind =
        Bind::Simple { dn: bed.layout().broker_dn().unwrap().to_string(), password: SecretString::new("nope".into()) };
    let r = Directory::connect(cfg).await;
    assert!(matches!(r, Err(DirError::InvalidCredentials { .. })), "{r:?}");
}

/// URIs are tried in order: a dead first server is skipped.
#[tokio::test]
async fn fails_over_to_the_next_uri() {
    let bed = start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.uris = vec![format!("ldap://127.0.0.1:{dead}"), bed.uri()];
    let dir = Directory::connect(cfg).await.unwrap();
    assert!(dir.whoami().await.unwrap().contains("cn=broker"));
}

/// A pool of two serves many concurrent operations without reconnecting per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_connections_under_load() {
    let bed = start().await;
    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.pool_size = 2;
    let dir = Directory::connect(cfg).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (dir, people) = (dir.clone(), bed.layout().people.clone());
        tasks.spawn(async move { dir.read(&people, &["ou"]).await });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
        done += 1;
    }
    assert_eq!(done, 200);
    let conns = count_established(bed.port());
    assert!((1..=2).contains(&conns), "{conns} connections for a pool of 2");
}

/// Established TCP connections from this process to 127.0.0.1:port.
fn count_established(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let needle = format!("0100007F:{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[2] == needle && cols[3] == "01"
        })
        .count()
}

#[tokio::test]
async fn stopped_slapd_is_unavailable_within_the_timeout() {
    let mut bed = start().await;
    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.op_timeout = Duration::from_millis(800);
    let dir = Directory::connect(cfg.clone()).await.unwrap();
    bed.stop();
    let started = Instant::now();
    let r = dir.read(&bed.layout().people, &["ou"]).await;
    assert!(matches!(r, Err(DirError::Unavailable { .. })), "{r:?}");
    assert!(r.unwrap_err().is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // A new handle cannot connect either, and says so quickly.
    let started = Instant::now();
    let r = Directory::connect(cfg).await;
    assert!(matches!(r, Err(DirError::Unavailable { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // After a restart the same handle works again.
    bed.restart().await.unwrap();
    dir.read(&bed.layout().people, &["ou"]).await.unwrap();
}

/// A hung server (SIGSTOP) costs at most the operation timeout.
#[tokio::test]
async fn hung_slapd_times_out() {
    let bed = start().await;
    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.op_timeout = Duration::from_millis(700);
    let dir = Directory::connect(cfg).await.unwrap();
    bed.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    // SIGSTOP is asynchronous: wait until the kernel shows slapd stopped, or
    // a request sent at once may still be answered.
    let stat = format!("/proc/{}/stat", bed.pid());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&stat).is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('T'))) {
        assert!(Instant::now() < deadline, "slapd did not stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let r = dir.read(&bed.layout().people, &["ou"]).await;
    let took = started.elapsed();
    bed.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(matches!(r, Err(DirError::Unavailable { .. })), "{r:?}");
    // One attempt: a timed-out operation is not asked again on a fresh
    // connection (about one operation timeout; generous slack for a loaded machine).
    assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(10), "took {took:?}: {r:?}");
}

#[tokio::test]
async fn tls_ldaps_and_starttls_with_a_pinned_ca() {
    let bed = dirbroker_testbed::harness::start_with(|o| o.tls = true).await;
    let tls = bed.tls().unwrap().clone();
    let ldaps = format!("ldaps://127.0.0.1:{}", tls.ldaps_port);

    let mut cfg = bed.directory_config(Identity::Broker).unwrap();
    cfg.uris = vec![ldaps.clone()];
    let dir = Directory::connect(cfg.clone()).await.unwrap();
    assert!(dir.whoami().await.unwrap().contains("cn=broker"));

    let mut st = cfg.clone();
    st.uris = vec![bed.uri()];
    st.tls.starttls = true;
    let dir = Directory::connect(st).await.unwrap();
    assert!(dir.whoami().await.unwrap().contains("cn=broker"));

    // A CA that did not sign the server's certificate is refused.
    let other = dirbroker_testbed::harness::scratch_dir();
    let other_ca = other.path().join("other-ca.pem");
    std::fs::write(&other_ca, include_str!("fixtures/other-ca.pem")).unwrap();
    let mut wrong = cfg.clone();
    wrong.tls.ca_file = Some(other_ca);
    let r = Directory::connect(wrong).await;
    let msg = format!("{r:?}");
    assert!(r.is_err() && msg.to_lowercase().contains("cert"), "{msg}");

    // A CA file that is not PEM is a configuration error naming the file.
    let mut junk = cfg;
    let junk_file = other.path().join("junk.pem");
    std::fs::write(&junk_file, "not a certificate").unwrap();
    junk.tls.ca_file = Some(junk_file.clone());
    match Directory::connect(junk).await {
        Err(DirError::Config(m)) => assert!(m.contains(junk_file.to_str().unwrap()), "{m}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn ldapi_with_sasl_external() {
    let bed = start().await;
    let cfg = DirectoryConfig::new(vec![bed.ldapi_uri()], bed.suffix().to_string(), Bind::External);
    let dir = Directory::connect(cfg).await.unwrap();
    let who = dir.whoami().await.unwrap();
    assert!(who.contains("cn=peercred,cn=external,cn=auth"), "{who}");
}

#[tokio::test]
async fn bad_configuration_is_refused_before_dialling() {
    let cfg = DirectoryConfig::new(vec!["http://example.org".into()], "dc=example,dc=org", Bind::Anonymous);
    assert!(matches!(Directory::connect(cfg).await, Err(DirError::Config(_))));
    let cfg = DirectoryConfig::new(vec![], "dc=example,dc=org", Bind::Anonymous);
    assert!(matches!(Directory::connect(cfg).await, Err(DirError::Config(_))));
    let cfg = DirectoryConfig::new(vec!["ldap://127.0.0.1:1".into()], "not a dn", Bind::Anonymous);
    assert!(matches!(Directory::connect(cfg).await, Err(DirError::Config(_))));
    let _ = Dn::parse("dc=ok").unwrap();
}

/// Adds in one transaction: all or none, parents before children.
#[tokio::test]
async fn transactions_add_all_or_nothing() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let layout = bed.layout().clone();
    let user = |uid: &str| {
        let u = User::new(uid, "Txn User").unwrap();
        (u.dn(&layout).unwrap(), u.to_attrs())
    };
    dir.add_in_transaction(vec![user("t1"), user("t2"), user("t3")]).await.unwrap();
    for uid in ["t1", "t2", "t3"] {
        assert!(dir.find_user(uid).await.unwrap().is_some(), "{uid}");
    }
    // One conflicting entry: none of the batch is added.
    let r = dir.add_in_transaction(vec![user("t4"), user("t2"), user("t5")]).await;
    assert!(matches!(r, Err(DirError::AlreadyExists { .. })), "{r:?}");
    assert!(dir.find_user("t4").await.unwrap().is_none(), "t4 must have been rolled back");
    assert!(dir.find_user("t5").await.unwrap().is_none());
    // A child after its parent in the same transaction.
    let ou = layout.people.child("ou", "lab").unwrap();
    let child = layout.people.child("ou", "lab").unwrap().child("uid", "deep").unwrap();
    let (_, attrs) = user("deep");
    dir.add_in_transaction(vec![
        (
            ou.clone(),
            vec![("objectClass".into(), vec![b"organizationalUnit".to_vec()]), ("ou".into(), vec![b"lab".to_vec()])],
        ),
        (child, attrs),
    ])
    .await
    .unwrap();
    assert!(dir.find_user("deep").await.unwrap().is_some());
    // The pooled connections are fine afterwards.
    dir.whoami().await.unwrap();
}

/// Twenty revocations at once, with CRL refreshes among them, as concurrent
/// `ca revoke` runs or a revoke racing a cron `ca refresh-crl` make them:
/// every serial ends in the CRL, and the CRL number counted every re-issue
/// (the read-modify-write is guarded by the entry's entryCSN).
#[tokio::test]
async fn concurrent_revocations_are_all_kept() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = dirbroker_testbed::harness::scratch_dir();
    let now = dirbroker::clock::now();
    let (ca, _) =
        dirbroker::admin::ca::init(&dir, &tmp.path().join("ca.key"), &tmp.path().join("ca.pem"), "race CA", 1, now)
            .await
            .unwrap();
    let ca = std::sync::Arc::new(ca);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=25u8 {
        let (dir, ca) = (dir.clone(), ca.clone());
        // Every fifth is a refresh (no serial), as cron's refresh-crl.
        let serial = (i % 5 != 0).then(|| vec![0x10, i]);
        tasks.spawn(async move { dirbroker::admin::ca::reissue_crl(&dir, &ca, serial, now).await.unwrap() });
    }
    let mut numbers: Vec<u64> = tasks.join_all().await;
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=26).collect::<Vec<u64>>(), "each re-issue got its own CRL number");
    let entry =
        dir.read(&dirbroker::admin::ca::ca_dn(&dir).unwrap(), &["certificateRevocationList;binary"]).await.unwrap();
    let der = entry.bytes("certificateRevocationList;binary").unwrap().unwrap();
    let (number, revoked) = dirbroker::ca::parse_crl(der).unwrap();
    assert_eq!(number, 26);
    let mut serials: Vec<Vec<u8>> = revoked.into_iter().map(|(s, _)| s).collect();
    serials.sort();
    let want: Vec<Vec<u8>> = (1..=25u8).filter(|i| i % 5 != 0).map(|i| vec![0x10, i]).collect();
    assert_eq!(serials, want, "no revocation lost");
}
