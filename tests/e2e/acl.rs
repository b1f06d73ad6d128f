//! The ACL matrix of schema/acl.ldif, played against real slapd: each
//! identity tries to read each kind of attribute, and a few writes.

use dirbroker::directory::{Bind, DirError, Directory, Dn, Filter, Scope};
use dirbroker::model::*;
use dirbroker::secret::SecretString;
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{Bed, start};
use ldap3::Mod;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// alice, reading her own entry and token.
    Owner,
    /// bob, another user.
    Other,
    Node,
    Broker,
}

const ALL: [Who; 5] = [Who::Anonymous, Who::Owner, Who::Other, Who::Node, Who::Broker];

async fn bind_as(bed: &Bed, who: Who, alice: &Dn, bob: &Dn) -> Directory {
    let user = |dn: &Dn, pw: &str| {
        let mut cfg = bed.directory_config(Identity::Anonymous).unwrap();
        cfg.bind = Bind::Simple { dn: dn.to_string(), password: SecretString::new(pw.into()) };
        cfg
    };
    match who {
        Who::Anonymous => bed.dir_as(Identity::Anonymous).await,
        Who::Owner => Directory::connect(user(alice, "alice-pw-1")).await.unwrap(),
        Who::Other => Directory::connect(user(bob, "bob-pw-1")).await.unwrap(),
        Who::Node => bed.dir_as(Identity::NodeReader).await,
        Who::Broker => bed.dir_as(Identity::Broker).await,
    }
}

/// Can `dir` read a value of `attr` on `dn`?
async fn can_read(dir: &Directory, dn: &Dn, attr: &str) -> bool {
    match dir.read(dn, &[attr]).await {
        Ok(e) => e.has(attr),
        Err(DirError::NotFound { .. }) => false,
        Err(e) => panic!("reading {attr} of {dn}: {e}"),
    }
}

#[tokio::test]
async fn each_identity_reads_exactly_what_it_should() {
    let bed = start().await;
    let admin = bed.dir_as(Identity::Admin).await;

    let mut alice = User::new("alice", "Alice Liddell").unwrap();
    alice.mail = Some("alice@example.org".into());
    alice.ssh_public_keys =
        vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice".into()];
    alice.allowed_from = vec!["bastion".into()];
    alice.public_value = Some(vec![5; 256]);
    alice.password_kdf = Some(b"salt".to_vec());
    alice.sealed_ssh_private_key = Some(Sealed(b"sealed-private-key".to_vec()));
    alice.not_before = Some(time::macros::datetime!(2020-01-01 0:00 UTC));
    alice.not_after = Some(time::macros::datetime!(2100-01-01 0:00 UTC));
    alice.posix = Some(Posix {
        uid_number: 20001,
        gid_number: 20001,
        home_directory: "/home/alice".into(),
        login_shell: Some("/bin/bash".into()),
    });
    let alice_dn = admin.create(&alice).await.unwrap();
    admin
        .modify(&alice_dn, vec![Mod::Add(b"gecos".to_vec(), [b"Alice Liddell,,,".to_vec()].into_iter().collect())])
        .await
        .unwrap();
    admin.set_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap();
    // A pending SSO invitation (only its hash and expiry are stored).
    admin
        .modify(
            &alice_dn,
            vec![ldap3::Mod::Replace(
                dirbroker::invitation::ATTR.as_bytes().to_vec(),
                [b"v1;level=2;expires=4000000000;sha256=x".to_vec()].into_iter().collect(),
            )],
        )
        .await
        .unwrap();
    let bob_dn = admin.create(&User::new("bob", "Bob").unwrap()).await.unwrap();
    admin.set_password(&bob_dn, &SecretString::new("bob-pw-1".into())).await.unwrap();
    // A disabled user: the flag is what a node's access filter reads.
    let mut carol = User::new("carol", "Carol").unwrap();
    carol.disabled = true;
    let carol_dn = admin.create(&carol).await.unwrap();
    // A POSIX group, with an attribute outside what NSS needs (`o`, allowed by
    // extensibleObject) that nobody but the broker may read.
    let group_dn = bed.layout().groups.child("cn", "staff").unwrap();
    admin
        .add(
            &group_dn,
            vec![
                ("objectClass".into(), vec![b"posixGroup".to_vec(), b"extensibleObject".to_vec()]),
                ("cn".into(), vec![b"staff".to_vec()]),
                ("gidNumber".into(), vec![b"30000".to_vec()]),
                ("memberUid".into(), vec![b"alice".to_vec(), b"bob".to_vec()]),
                ("description".into(), vec![b"Staff".to_vec()]),
                ("o".into(), vec![b"not for nodes".to_vec()]),
            ],
        )
        .await
        .unwrap();

    let mut tok = OtpToken::new("alice-totp", alice_dn.clone(), TokenType::Totp).unwrap();
    tok.secret = Some(Sealed(b"otp-secret".to_vec()));
    tok.totp_watermark = Some(1);
    let tok_dn = admin.create(&tok).await.unwrap();

    let mut dc = DataCenter::new("DC1").unwrap();
    dc.certificate = Some(include_bytes!("fixtures/dc-cert.der").to_vec());
    dc.endpoint = Some("dc1:7443".into());
    let dc_dn = admin.create(&dc).await.unwrap();
    let mut ps = PhysicalServer::new("PS1", dc_dn.clone()).unwrap();
    ps.totp_secret = Some(Sealed(b"ps-totp-secret".to_vec()));
    ps.endpoint = Some("ps1:7444".into());
    let ps_dn = admin.create(&ps).await.unwrap();
    let psk = PreSharedKey {
        id: "k1".into(),
        parties: vec![dc_dn.clone()],
        secret: Sealed(b"k1-secret".to_vec()),
        not_before: None,
        not_after: None,
        disabled: false,
    };
    let psk_dn = admin.create(&psk).await.unwrap();
    let mut host = Host::new("node1", "10.0.0.1").unwrap();
    host.allowed_from = vec!["bastion".into()];
    host.ssh_public_keys =
        vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Rob3N0a2V5MTIzNDU2Nzg5MDEyMzQ1Njc4OTA root@node1".into()];
    let host_dn = admin.create(&host).await.unwrap();
    let mut svc = Service::new("files").unwrap();
    svc.public_value = Some(vec![6; 256]);
    svc.endpoint = Some("files:443".into());
    let svc_dn = admin.create(&svc).await.unwrap();
    // An OpenID Connect relying party beside the services: the broker's alone.
    let mut rp = OidcClient::new("wiki").unwrap();
    rp.redirect_uris = vec!["https://wiki.example.org/cb".into()];
    rp.secret_sha256 = Some([7; 32]);
    let rp_dn = admin.create(&rp).await.unwrap();

    use Who::*;
    // (entry, attribute, identities that may read it)
    let matrix: Vec<(&Dn, &str, Vec<Who>)> = vec![
        (&alice_dn, "userPassword", vec![]),
        (&alice_dn, "dirbrokerSealedSshPrivateKey", vec![Owner, Broker]),
        (&alice_dn, "dirbrokerPublicValue", vec![Owner, Broker]),
        (&alice_dn, "dirbrokerPasswordKdf", vec![Owner, Broker]),
        (&alice_dn, "dirbrokerInvitation", vec![Broker]),
        (&alice_dn, "mail", vec![Owner, Broker]),
        (&alice_dn, "dirbrokerUserLevel", vec![Owner, Broker]),
        (&alice_dn, "sshPublicKey", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "dirbrokerAllowedFrom", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "uid", vec![Owner, Other, Node, Broker]),
        // What NSS (SSSD, nslcd) and a node's access filter read.
        (&alice_dn, "objectClass", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "cn", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "uidNumber", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "gidNumber", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "homeDirectory", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "loginShell", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "gecos", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "dirbrokerNotBefore", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "dirbrokerNotAfter", vec![Owner, Other, Node, Broker]),
        (&carol_dn, "dirbrokerDisabled", vec![Owner, Other, Node, Broker]),
        (&alice_dn, "sn", vec![Owner, Broker]),
        (&group_dn, "objectClass", vec![Owner, Other, Node, Broker]),
        (&group_dn, "cn", vec![Owner, Other, Node, Broker]),
        (&group_dn, "gidNumber", vec![Owner, Other, Node, Broker]),
        (&group_dn, "memberUid", vec![Owner, Other, Node, Broker]),
        (&group_dn, "description", vec![Owner, Other, Node, Broker]),
        (&group_dn, "o", vec![Broker]),
        (&tok_dn, "dirbrokerOtpSecret", vec![Broker]),
        (&tok_dn, "dirbrokerTotpWatermark", vec![Owner, Broker]),
        (&tok_dn, "dirbrokerTokenOwner", vec![Owner, Broker]),
        (&ps_dn, "dirbrokerServerTotpSecret", vec![Broker]),
        (&ps_dn, "dirbrokerEndpoint", vec![Broker]),
        (&psk_dn, "dirbrokerPskSecret", vec![Broker]),
        (&psk_dn, "dirbrokerPskParty", vec![Broker]),
        // Host public keys are public: ssh clients read them without binding.
        (&host_dn, "sshPublicKey", vec![Anonymous, Owner, Other, Node, Broker]),
        (&host_dn, "ipHostNumber", vec![Anonymous, Owner, Other, Node, Broker]),
        (&host_dn, "dirbrokerAllowedFrom", vec![Owner, Other, Node, Broker]),
        (&dc_dn, "userCertificate;binary", vec![Owner, Other, Node, Broker]),
        (&svc_dn, "dirbrokerPublicValue", vec![Broker]),
        (&svc_dn, "dirbrokerEndpoint", vec![Owner, Other, Node, Broker]),
        (&rp_dn, "dirbrokerOidcSecretHash", vec![Broker]),
        (&rp_dn, "dirbrokerOidcRedirectUri", vec![Broker]),
        (&rp_dn, "dirbrokerOidcClientId", vec![Broker]),
        (&rp_dn, "objectClass", vec![Broker]),
    ];
    let mut wrong = Vec::new();
    for who in ALL {
        let dir = bind_as(&bed, who, &alice_dn, &bob_dn).await;
        for (dn, attr, allowed) in &matrix {
            let expected = allowed.contains(&who);
            let got = can_read(&dir, dn, attr).await;
            if got != expected {
                wrong.push(format!("{who:?} reading {attr} of {dn}: expected {expected}, got {got}"));
            }
        }
    }
    assert!(wrong.is_empty(), "ACL matrix mismatches:\n{}", wrong.join("\n"));

    // The rootdn (directory admin) sees everything, including the hashes.
    assert!(can_read(&admin, &alice_dn, "userPassword").await);

    // SSSD finds a user's groups by a subtree search of ou=groups on memberUid:
    // the node identity can make it, anonymous cannot.
    let groups = &bed.layout().groups;
    let node = bed.dir_as(Identity::NodeReader).await;
    let found = node.search(groups, Scope::Subtree, &Filter::eq("memberUid", "alice"), &["cn"]).await.unwrap();
    let names: Vec<&str> = found.iter().filter_map(|e| e.str("cn").ok().flatten()).collect();
    assert_eq!(names, ["staff"], "node-reader finds alice's groups");
    let anon = bed.dir_as(Identity::Anonymous).await;
    let r = anon.search(groups, Scope::Subtree, &Filter::eq("memberUid", "alice"), &["cn"]).await;
    assert!(
        matches!(&r, Ok(v) if v.is_empty()) || matches!(r, Err(DirError::NotFound { .. })),
        "anonymous sees no groups: {r:?}"
    );
}

#[tokio::test]
async fn only_the_broker_writes() {
    let bed = start().await;
    let admin = bed.dir_as(Identity::Admin).await;
    let alice_dn = admin.create(&User::new("alice", "Alice").unwrap()).await.unwrap();
    admin.set_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap();
    let bob_dn = admin.create(&User::new("bob", "Bob").unwrap()).await.unwrap();
    admin.set_password(&bob_dn, &SecretString::new("bob-pw-1".into())).await.unwrap();
    let host_dn = admin.create(&Host::new("node1", "10.0.0.1").unwrap()).await.unwrap();

    let set_mail = || vec![Mod::Replace(b"mail".to_vec(), [b"x@example.org".to_vec()].into())];
    let add_key = || vec![Mod::Add(b"sshPublicKey".to_vec(), [b"ssh-ed25519 AAAA evil".to_vec()].into())];
    for who in [Who::Anonymous, Who::Owner, Who::Other, Who::Node] {
        let dir = bind_as(&bed, who, &alice_dn, &bob_dn).await;
        for (dn, changes) in [(&alice_dn, set_mail()), (&alice_dn, add_key()), (&host_dn, add_key())] {
            let r = dir.modify(dn, changes).await;
            assert!(
                matches!(r, Err(DirError::AccessDenied { .. }) | Err(DirError::NotFound { .. })),
                "{who:?} modifying {dn}: {r:?}"
            );
        }
        let r = dir.create(&User::new("mallory", "Mallory").unwrap()).await;
        assert!(r.is_err(), "{who:?} created an entry");
        // Nobody but the broker sets a password.
        // (For bob this is his own password: users change it through the broker.)
        let r = dir.set_password(&bob_dn, &SecretString::new("hijacked".into())).await;
        assert!(r.is_err(), "{who:?} set bob's password");
    }
    // Users cannot even change their own entry (they read it only).
    let owner = bind_as(&bed, Who::Owner, &alice_dn, &bob_dn).await;
    assert!(owner.modify(&alice_dn, set_mail()).await.is_err());
    let broker = bind_as(&bed, Who::Broker, &alice_dn, &bob_dn).await;
    broker.modify(&alice_dn, set_mail()).await.unwrap();
    broker.set_password(&bob_dn, &SecretString::new("bob-pw-2".into())).await.unwrap();
    assert!(broker.check_password(&bob_dn, &SecretString::new("bob-pw-2".into())).await.unwrap());
    // The broker may set a password but not read its hash.
    assert!(!can_read(&broker, &bob_dn, "userPassword").await);
    assert!(!broker.check_password(&bob_dn, &SecretString::new("hijacked".into())).await.unwrap());
}

/// A filter on an attribute the caller may not read matches nothing, so
/// secrets cannot be guessed through search filters.
#[tokio::test]
async fn filters_do_not_leak_unreadable_values() {
    let bed = start().await;
    let admin = bed.dir_as(Identity::Admin).await;
    let mut alice = User::new("alice", "Alice").unwrap();
    alice.mail = Some("alice@example.org".into());
    let alice_dn = admin.create(&alice).await.unwrap();
    let bob_dn = admin.create(&User::new("bob", "Bob").unwrap()).await.unwrap();
    admin.set_password(&bob_dn, &SecretString::new("bob-pw-1".into())).await.unwrap();
    admin.set_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap();

    let bob = bind_as(&bed, Who::Other, &alice_dn, &bob_dn).await;
    let people = &bed.layout().people;
    let by_mail = bob.search(people, Scope::Subtree, &Filter::eq("mail", "alice@example.org"), &["uid"]).await.unwrap();
    assert!(by_mail.is_empty(), "mail is not readable by other users, so it must not match");
    let by_uid = bob.search(people, Scope::Subtree, &Filter::eq("uid", "alice"), &["uid"]).await.unwrap();
    assert_eq!(by_uid.len(), 1, "uid is public to users");
    let anon = bind_as(&bed, Who::Anonymous, &alice_dn, &bob_dn).await;
    let r = anon.search(people, Scope::Subtree, &Filter::eq("uid", "alice"), &["uid"]).await;
    assert!(
        matches!(&r, Ok(v) if v.is_empty()) || matches!(r, Err(DirError::NotFound { .. })),
        "anonymous sees no one"
    );
}

/// A disabled user cannot bind: slapd itself refuses (rule {0} of
/// schema/acl.ldif), as `ldapwhoami` shows, so no PAM or SSSD stack that
/// authenticates by bind lets them in. The broker may still set their
/// password, and enabling them again restores the same password.
#[tokio::test]
async fn a_disabled_user_cannot_bind() {
    let bed = start().await;
    let admin = bed.dir_as(Identity::Admin).await;
    let broker = bed.dir_as(Identity::Broker).await;
    let alice_dn = admin.create(&User::new("alice", "Alice").unwrap()).await.unwrap();
    admin.set_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap();
    let tmp = dirbroker_testbed::harness::scratch_dir();
    let pw = dirbroker_testbed::harness::secret_file(tmp.path(), "alice.pw", "alice-pw-1", 0o600);
    let whoami = || {
        std::process::Command::new("ldapwhoami")
            .args(["-x", "-H", &bed.uri(), "-D", alice_dn.as_str(), "-y"])
            .arg(&pw)
            .output()
            .unwrap()
    };
    let o = whoami();
    assert!(o.status.success(), "{}", dirbroker_testbed::harness::text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("dn:uid=alice,ou=people"));
    assert!(broker.check_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap());

    dirbroker::admin::users::set_disabled(&broker, "alice", true).await.unwrap();
    let o = whoami();
    assert_eq!(o.status.code(), Some(49), "invalidCredentials: {}", dirbroker_testbed::harness::text(&o));
    assert!(!broker.check_password(&alice_dn, &SecretString::new("alice-pw-1".into())).await.unwrap());
    broker.set_password(&alice_dn, &SecretString::new("alice-pw-2".into())).await.unwrap();
    assert!(!broker.check_password(&alice_dn, &SecretString::new("alice-pw-2".into())).await.unwrap());

    dirbroker::admin::users::set_disabled(&broker, "alice", false).await.unwrap();
    assert!(broker.check_password(&alice_dn, &SecretString::new("alice-pw-2".into())).await.unwrap());
    // A user written by another tool, without dirbrokerUser, is disabled too
    // (the class is added with the flag).
    let ldif = "dn: uid=zed,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: zed\ncn: Zed\nsn: Zed\n";
    let o = bed.ldap_tool_admin("ldapadd", &[], ldif);
    assert!(o.status.success(), "{}", dirbroker_testbed::harness::text(&o));
    dirbroker::admin::users::set_disabled(&broker, "zed", true).await.unwrap();
    assert!(admin.find_user("zed").await.unwrap().unwrap().disabled);
}
