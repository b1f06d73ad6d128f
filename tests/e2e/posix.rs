//! POSIX ids, accounts and groups (issue #14): the directory's id counter
//! under races, taken and reserved ids, range exhaustion, slapd's unique
//! overlay, user-private groups, groups with hostile names, and entries
//! written by `ldapadd` made usable.

use std::collections::HashSet;

use dirbroker::admin::AdminError;
use dirbroker::admin::posix::{self, PosixRequest, UserModify};
use dirbroker::config::PosixSection;
use dirbroker::directory::{Bind, Change, DirError, Directory, WriteOp};
use dirbroker::model::{DirEntry, Group, Posix, User};
use dirbroker::secret::SecretString;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::start;

fn posix_user(uid: &str, uid_number: u32, gid_number: u32) -> User {
    let mut u = User::new(uid, uid).unwrap();
    u.posix = Some(Posix { uid_number, gid_number, home_directory: format!("/home/{uid}"), login_shell: None });
    u
}

fn range(min: u32, max: u32) -> PosixSection {
    PosixSection { uid_min: min, uid_max: max, ..PosixSection::default() }
}

#[tokio::test]
async fn concurrent_allocations_never_share_an_id() {
    let bed = start().await;
    // Two writers with their own connection pools, as two brokers or two admins would be.
    let a = bed.dir_as(Identity::Broker).await;
    let b = bed.dir_as(Identity::Broker).await;
    let cfg = PosixSection::default();
    let mut tasks = Vec::new();
    for dir in [a.clone(), b.clone(), a, b] {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..20 {
                got.push(posix::allocate_id(&dir, &cfg).await.unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 80, "some id was handed out twice: {all:?}");
    // Nothing was lost or skipped: the counter started at uid_min, no id was taken.
    assert_eq!(distinct, (10000..10080).collect::<HashSet<u32>>());
    // The counter entry is where the docs say, with the next id.
    let dir = bed.dir_as(Identity::Broker).await;
    let counter = dir.read(&posix::counter_dn(&dir).unwrap(), &["dirbrokerNextId", "objectClass"]).await.unwrap();
    assert_eq!(counter.dn.to_string(), "cn=posix-ids,ou=system,dc=example,dc=org");
    assert!(counter.has_class("dirbrokerIdCounter"));
    assert_eq!(counter.int("dirbrokerNextId").unwrap(), Some(10080));
}

#[tokio::test]
async fn taken_and_reserved_ids_are_skipped_and_exhaustion_is_an_error() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    // Ids written by hand (or by another tool) are never handed out again.
    dir.create(&posix_user("hand", 10000, 10000)).await.unwrap();
    dir.create(&Group::new("staff", 10001).unwrap()).await.unwrap();
    let cfg = PosixSection::default();
    assert_eq!(posix::allocate_id(&dir, &cfg).await.unwrap(), 10002);
    // A range over 65534 (nobody) skips it; then it is used up.
    let tight = range(65533, 65535);
    assert_eq!(posix::allocate_id(&dir, &tight).await.unwrap(), 65533);
    assert_eq!(posix::allocate_id(&dir, &tight).await.unwrap(), 65535);
    match posix::allocate_id(&dir, &tight).await {
        Err(AdminError::Refused(m)) => {
            assert!(m.contains("no free POSIX id left"), "{m}");
            assert!(m.contains("65533..65535"), "{m}");
        }
        other => panic!("expected exhaustion, got {other:?}"),
    }
    // A range whose every id is taken is exhausted too.
    let full = range(10000, 10001);
    assert!(matches!(posix::allocate_id(&dir, &full).await, Err(AdminError::Refused(_))));
    // Reserved ids are refused when asked for explicitly.
    for id in [0, 65534, u32::MAX] {
        assert!(matches!(posix::check_uid_number_free(&dir, id).await, Err(AdminError::Usage(_))), "{id}");
    }
}

#[tokio::test]
async fn only_the_broker_reads_or_writes_the_counter() {
    let bed = start().await;
    let broker = bed.dir_as(Identity::Broker).await;
    posix::allocate_id(&broker, &PosixSection::default()).await.unwrap();
    let dn = posix::counter_dn(&broker).unwrap();
    let bump = || {
        vec![
            Change::Delete(b"dirbrokerNextId".to_vec(), [b"10001".to_vec()].into_iter().collect()),
            Change::Add(b"dirbrokerNextId".to_vec(), [b"10".to_vec()].into_iter().collect()),
        ]
    };
    // A user and the node identity: neither sees it nor moves it.
    let user = posix_user("alice", 20000, 20000);
    broker.create(&user).await.unwrap();
    let alice_dn = user.dn(broker.layout()).unwrap();
    broker.set_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap();
    let mut cfg = bed.directory_config(Identity::Anonymous).unwrap();
    cfg.bind = Bind::Simple { dn: alice_dn.to_string(), password: SecretString::new("alice-pw-1".into()) };
    let alice = Directory::connect(cfg).await.unwrap();
    for (who, dir) in [
        ("node", bed.dir_as(Identity::NodeReader).await),
        ("user", alice),
        ("anon", bed.dir_as(Identity::Anonymous).await),
    ] {
        match dir.read(&dn, &["dirbrokerNextId"]).await {
            Err(DirError::NotFound { .. }) => {}
            Ok(e) => assert!(!e.has("dirbrokerNextId"), "{who} reads the counter"),
            Err(e) => panic!("{who}: {e}"),
        }
        let w = dir.modify(&dn, bump()).await;
        assert!(matches!(w, Err(DirError::AccessDenied { .. } | DirError::NotFound { .. })), "{who}: {w:?}");
    }
    assert_eq!(broker.read(&dn, &["dirbrokerNextId"]).await.unwrap().int("dirbrokerNextId").unwrap(), Some(10001));
}

#[tokio::test]
async fn slapd_refuses_duplicate_ids_from_any_writer() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    dir.create(&posix_user("alice", 10500, 10500)).await.unwrap();
    dir.create(&Group::new("devs", 10600).unwrap()).await.unwrap();
    // Written past the tool's own checks: the unique overlay says no.
    match dir.create(&posix_user("mallory", 10500, 1)).await {
        Err(DirError::ConstraintViolation { message, .. }) => assert!(message.contains("non-unique"), "{message}"),
        other => panic!("duplicate uidNumber accepted: {other:?}"),
    }
    match dir.create(&Group::new("ops", 10600).unwrap()).await {
        Err(DirError::ConstraintViolation { message, .. }) => assert!(message.contains("non-unique"), "{message}"),
        other => panic!("duplicate gidNumber accepted: {other:?}"),
    }
    // Inside an LDAP transaction (as user add writes a user with its private group) too.
    let g = Group::new("ops", 10600).unwrap();
    let u = posix_user("trent", 10500, 10600);
    let r = dir
        .apply_in_transaction(vec![
            WriteOp::Add(g.dn(dir.layout()).unwrap(), g.to_attrs()),
            WriteOp::Add(u.dn(dir.layout()).unwrap(), u.to_attrs()),
        ])
        .await;
    assert!(matches!(r, Err(DirError::ConstraintViolation { .. })), "{r:?}");
    assert!(dir.find_user("trent").await.unwrap().is_none());
    assert!(matches!(dir.load::<Group>("ops").await, Err(DirError::NotFound { .. })));
    // The same gid as a user's primary group is of course fine.
    dir.create(&posix_user("bob", 10501, 10600)).await.unwrap();
    assert!(dir.find_user("mallory").await.unwrap().is_none());
}

#[tokio::test]
async fn create_user_makes_a_posix_account_and_its_private_group_or_nothing() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let cfg = PosixSection::default();
    let req = PosixRequest::default();
    let made =
        posix::create_user(&dir, &cfg, User::new("alice", "Alice Liddell").unwrap(), Some(&req), None).await.unwrap();
    let p = made.user.posix.clone().unwrap();
    assert_eq!((p.uid_number, p.gid_number), (10000, 10000));
    assert_eq!(p.home_directory, "/home/alice");
    assert_eq!(p.login_shell.as_deref(), Some("/bin/bash"));
    let back = dir.find_user("alice").await.unwrap().unwrap();
    assert_eq!(back.posix, Some(p));
    let entry = dir.read(&made.dn, &["objectClass"]).await.unwrap();
    for class in ["inetOrgPerson", "posixAccount", "ldapPublicKey", "dirbrokerUser"] {
        assert!(entry.has_class(class), "{class}");
    }
    let g = dir.load::<Group>("alice").await.unwrap();
    assert_eq!((g.gid_number, g.members.len()), (10000, 0));

    // A uidNumber someone has: refused, and neither the user nor a group appears.
    let clash = PosixRequest { uid_number: Some(10000), ..Default::default() };
    match posix::create_user(&dir, &cfg, User::new("bob", "Bob").unwrap(), Some(&clash), None).await {
        Err(AdminError::Refused(m)) => {
            assert!(m.contains("uidNumber 10000 is already used by uid=alice"), "{m}");
            assert!(m.contains("nothing written"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(dir.find_user("bob").await.unwrap().is_none());
    assert!(matches!(dir.load::<Group>("bob").await, Err(DirError::NotFound { .. })));

    // With a configured default group no private group is made.
    let shared = PosixSection { default_gid: Some(100), ..PosixSection::default() };
    let made = posix::create_user(&dir, &shared, User::new("carol", "Carol").unwrap(), Some(&req), None).await.unwrap();
    assert_eq!(made.user.posix.as_ref().map(|p| p.gid_number), Some(100));
    assert!(made.group.is_none());
    assert!(matches!(dir.load::<Group>("carol").await, Err(DirError::NotFound { .. })));

    // A group named like the user blocks the private group: refused before anything is written.
    dir.create(&Group::new("dave", 15000).unwrap()).await.unwrap();
    let r = posix::create_user(&dir, &cfg, User::new("dave", "Dave").unwrap(), Some(&req), None).await;
    assert!(matches!(r, Err(AdminError::Refused(ref m)) if m.contains("--gid-number")), "{r:?}");
    assert!(dir.find_user("dave").await.unwrap().is_none());

    // A uid that is no POSIX name: refused for a POSIX account.
    let r = posix::create_user(&dir, &cfg, User::new("a,b", "Comma").unwrap(), Some(&req), None).await;
    assert!(matches!(r, Err(AdminError::Directory(DirError::BadInput { .. }) | AdminError::Usage(_))), "{r:?}");

    // Deleting the user takes its private group and its memberships with it.
    dir.create(&Group::new("devs", 16000).unwrap()).await.unwrap();
    posix::add_members(&dir, "devs", &["alice".into()]).await.unwrap();
    let (_, gone) = posix::delete_user(&dir, "alice").await.unwrap();
    assert_eq!(gone.map(|g| g.name).as_deref(), Some("alice"));
    assert!(matches!(dir.load::<Group>("alice").await, Err(DirError::NotFound { .. })));
    assert!(dir.load::<Group>("devs").await.unwrap().members.is_empty());
}

#[tokio::test]
async fn groups_members_and_hostile_names() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let cfg = PosixSection::default();
    let req = PosixRequest::default();
    posix::create_user(&dir, &cfg, User::new("alice", "Alice").unwrap(), Some(&req), None).await.unwrap();
    posix::create_user(&dir, &cfg, User::new("bob", "Bob").unwrap(), Some(&req), None).await.unwrap();
    let devs = posix::create_group(&dir, &cfg, "devs", None, Some("developers")).await.unwrap();
    assert_eq!(devs.gid_number, 10002);
    assert_eq!(devs.dn(dir.layout()).unwrap().to_string(), "cn=devs,ou=groups,dc=example,dc=org");
    let e = dir.read(&devs.dn(dir.layout()).unwrap(), &["objectClass"]).await.unwrap();
    assert!(e.has_class("posixGroup"));

    // Members: all exist or nothing is added.
    let r = posix::add_members(&dir, "devs", &["alice".into(), "zed".into()]).await;
    assert!(matches!(r, Err(AdminError::Refused(ref m)) if m.contains("no user with uid \"zed\"")), "{r:?}");
    assert!(dir.load::<Group>("devs").await.unwrap().members.is_empty());
    let g = posix::add_members(&dir, "devs", &["alice".into(), "bob".into()]).await.unwrap();
    assert_eq!(g.members, ["alice", "bob"]);
    assert!(posix::add_members(&dir, "devs", &["bob".into()]).await.is_err());
    let r = posix::remove_members(&dir, "devs", &["bob".into(), "carol".into()]).await;
    assert!(r.is_err());
    assert_eq!(dir.load::<Group>("devs").await.unwrap().members, ["alice", "bob"]);
    let g = posix::remove_members(&dir, "devs", &["bob".into()]).await.unwrap();
    assert_eq!(g.members, ["alice"]);

    // Duplicate names and gids.
    assert!(matches!(posix::create_group(&dir, &cfg, "devs", None, None).await, Err(AdminError::Refused(_))));
    let r = posix::create_group(&dir, &cfg, "ops", Some(10002), None).await;
    assert!(matches!(r, Err(AdminError::Refused(ref m)) if m.contains("gidNumber 10002")), "{r:?}");
    assert!(matches!(posix::create_group(&dir, &cfg, "ops", Some(0), None).await, Err(AdminError::Usage(_))));

    // Hostile names: refused with a message naming the field; nothing made.
    for bad in ["a,b", "cn=x", "*", "x)(cn=*", "a=b", "-rf", "..", "root\u{0}", "de vs", "a/b"] {
        match posix::create_group(&dir, &cfg, bad, None, None).await {
            Err(AdminError::Directory(DirError::BadInput { field, .. })) => assert_eq!(field, "group name", "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(posix::existing_group(&dir, bad).await.is_err());
    }
    // Injection through a member uid matches no one.
    for bad in ["*", "alice)(uid=*", "*)(|(uid=*"] {
        assert!(posix::add_members(&dir, "devs", &[bad.into()]).await.is_err(), "{bad:?}");
    }
    assert_eq!(dir.load::<Group>("devs").await.unwrap().members, ["alice"]);
    assert_eq!(dir.list::<Group>().await.unwrap().len(), 3);

    // A private group still someone's primary group is kept unless forced.
    let r = posix::delete_group(&dir, "alice", false).await;
    assert!(matches!(r, Err(AdminError::Refused(ref m)) if m.contains("primary group of alice")), "{r:?}");
    posix::delete_group(&dir, "alice", true).await.unwrap();
    posix::delete_group(&dir, "devs", false).await.unwrap();
    assert_eq!(dir.list::<Group>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_ldapadd_written_user_gets_keys_and_a_unix_login() {
    let bed = start().await;
    let ldif = "dn: uid=legacy,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: legacy\ncn: Legacy User\nsn: User\n";
    let o = bed.ldap_tool_admin("ldapadd", &[], ldif);
    assert!(o.status.success(), "{}", dirbroker_testbed::harness::text(&o));
    let dir = bed.dir_as(Identity::Broker).await;
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl legacy";
    let add_key = || vec![Change::Add(b"sshPublicKey".to_vec(), [key.as_bytes().to_vec()].into_iter().collect())];
    // What `user key add` met before: the entry lacks ldapPublicKey.
    let dn = dir.find_user("legacy").await.unwrap().unwrap().dn(dir.layout()).unwrap();
    assert!(matches!(dir.modify(&dn, add_key()).await, Err(DirError::ConstraintViolation { .. })));
    // With the missing classes in the same modify it works.
    posix::modify_user(&dir, "legacy", add_key()).await.unwrap();
    let allowed = vec![Change::Add(b"dirbrokerAllowedFrom".to_vec(), [b"10.0.0.0/8".to_vec()].into_iter().collect())];
    posix::modify_user(&dir, "legacy", allowed).await.unwrap();
    let u = dir.find_user("legacy").await.unwrap().unwrap();
    assert_eq!((u.ssh_public_keys.len(), u.allowed_from.len()), (1, 1));
    assert!(u.posix.is_none());

    // POSIX attributes need --posix; with it the user becomes an account with a private group.
    let cfg = PosixSection::default();
    let shell_only = UserModify { shell: Some(Some("/bin/zsh".into())), ..Default::default() };
    assert!(matches!(posix::update_user(&dir, &cfg, "legacy", &shell_only).await, Err(AdminError::Usage(_))));
    let make = UserModify { posix: true, mail: Some(Some("legacy@example.org".into())), ..Default::default() };
    let u = posix::update_user(&dir, &cfg, "legacy", &make).await.unwrap();
    let p = u.posix.clone().unwrap();
    assert_eq!((p.uid_number, p.gid_number, p.home_directory.as_str()), (10000, 10000, "/home/legacy"));
    assert_eq!(u.mail.as_deref(), Some("legacy@example.org"));
    assert_eq!(dir.load::<Group>("legacy").await.unwrap().gid_number, 10000);
    // Set and clear.
    let change = UserModify {
        name: Some("Legacy Person".into()),
        mail: Some(None),
        shell: Some(None),
        home: Some("/srv/legacy".into()),
        uid_number: Some(20000),
        ..Default::default()
    };
    let u = posix::update_user(&dir, &cfg, "legacy", &change).await.unwrap();
    let p = u.posix.clone().unwrap();
    assert_eq!((u.cn.as_str(), u.mail.as_deref()), ("Legacy Person", None));
    assert_eq!((p.uid_number, p.home_directory.as_str(), p.login_shell.as_deref()), (20000, "/srv/legacy", None));
    // A uidNumber in use is refused and nothing changes.
    posix::create_user(&dir, &cfg, User::new("other", "Other").unwrap(), Some(&PosixRequest::default()), None)
        .await
        .unwrap();
    let steal = UserModify { uid_number: Some(20000), name: Some("Thief".into()), ..Default::default() };
    assert!(matches!(posix::update_user(&dir, &cfg, "other", &steal).await, Err(AdminError::Refused(_))));
    assert_eq!(dir.find_user("other").await.unwrap().unwrap().cn, "Other");
}
