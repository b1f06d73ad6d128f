//! Hostile input in names: LDAP filter and DN injection payloads must match
//! nothing extra, never break a query, and round-trip when stored literally.

use dirbroker::directory::{DirError, Directory};
use dirbroker::model::{DirEntry, Host, User};
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::start;

fn payloads() -> Vec<String> {
    vec![
        "*".into(),
        "*)(uid=*".into(),
        "admin)(|(uid=*".into(),
        "alice)(objectClass=*".into(),
        "alice*".into(),
        "*lice".into(),
        "\\2a".into(),
        "\\".into(),
        "(uid=alice)".into(),
        "alice\u{0}".into(),
        "a\u{0}(uid=*)".into(),
        "alice\n".into(),
        "x".repeat(10_000),
        ",+\"\\<>;=".into(),
        "uid=alice,ou=people,dc=example,dc=org".into(),
        "alice,ou=people".into(),
        "#alice".into(),
        " alice".into(),
        "alice ".into(),
        "ALICE".into(),
        "알리스".into(),
        "\u{202e}ecila".into(),
    ]
}

async fn seed(dir: &Directory) {
    for (uid, name) in [("alice", "Alice"), ("bob", "Bob"), ("admin", "Admin")] {
        dir.create(&User::new(uid, name).unwrap()).await.unwrap();
    }
    dir.create(&Host::new("node1", "10.0.0.1").unwrap()).await.unwrap();
}

#[tokio::test]
async fn payloads_match_nothing_and_break_nothing() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    seed(&dir).await;
    let me = dir.whoami().await.unwrap();
    for p in payloads() {
        // Lookup by filter.
        match dir.find_user(&p).await {
            Ok(None) | Err(DirError::BadInput { .. }) => {}
            other => panic!("find_user({p:?}) gave {other:?}"),
        }
        // Lookup by DN.
        match dir.load::<User>(&p).await {
            Err(DirError::NotFound { .. }) | Err(DirError::BadInput { .. }) => {}
            // The DN of uid=ALICE is the DN of uid=alice (case-ignoring match): same entry.
            Ok(u) if p == "ALICE" && u.uid == "alice" => {}
            other => panic!("load::<User>({p:?}) gave {other:?}"),
        }
        match dir.load::<Host>(&p).await {
            Err(DirError::NotFound { .. }) | Err(DirError::BadInput { .. }) => {}
            other => panic!("load::<Host>({p:?}) gave {other:?}"),
        }
        // The pooled connections are still healthy after each payload.
        assert_eq!(dir.whoami().await.unwrap(), me, "after {p:?}");
    }
    // Control characters and overlong values are refused with a message naming the field.
    match dir.find_user("alice\u{0}").await {
        Err(DirError::BadInput { field, reason }) => {
            assert_eq!(field, "uid");
            assert!(reason.contains("U+0000"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match dir.find_user(&"x".repeat(10_000)).await {
        Err(DirError::BadInput { reason, .. }) => assert!(reason.contains("10000 bytes"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Nothing was created or changed by all that.
    assert_eq!(dir.list::<User>().await.unwrap().len(), 3);
}

/// Payloads stored literally as names come back literally, and only themselves.
#[tokio::test]
async fn literal_payload_names_round_trip() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    seed(&dir).await;
    let storable: Vec<String> = payloads()
        .into_iter()
        .filter(|p| !p.chars().any(char::is_control) && p.len() <= 256)
        .filter(|p| p.trim() == p && !p.eq_ignore_ascii_case("alice"))
        .collect();
    for p in &storable {
        let user = User::new(p, "Payload Person").unwrap();
        let dn = dir.create(&user).await.unwrap_or_else(|e| panic!("create {p:?}: {e}"));
        assert_eq!(dn.first_rdn().unwrap().1, *p);
        let back = dir.find_user(p).await.unwrap().unwrap_or_else(|| panic!("{p:?} not found"));
        assert_eq!(back.uid, *p);
        assert_eq!(dir.load::<User>(p).await.unwrap().uid, *p);
        assert_eq!(user.dn(dir.layout()).unwrap(), dn);
    }
    // "*" exists now as a user, yet looking it up returns only that one user.
    assert_eq!(dir.find_user("*").await.unwrap().unwrap().uid, "*");
    assert_eq!(dir.list::<User>().await.unwrap().len(), 3 + storable.len());
    // Leading/trailing spaces are insignificant to LDAP matching, so they are refused.
    assert!(matches!(User::new(" spaced ", "Spaced"), Err(DirError::BadInput { .. })));
}
