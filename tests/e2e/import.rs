//! LDIF import against real slapd: checked first, transactions, a journal,
//! and a slapd killed in the middle of a 20,000-entry import.

use std::io::Write;
use std::time::Duration;

use dirbroker::directory::{Filter, Scope};
use dirbroker::import::{self, ImportError, ImportOptions};
use dirbroker::testbed::Identity;
use dirbroker_tests::{scratch_dir, start};

fn users_ldif(path: &std::path::Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        write!(
            f,
            "dn: uid=imp{i},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             uid: imp{i}\ncn: Imported {i}\nsn: {i}\nuidNumber: {}\ngidNumber: 100\nhomeDirectory: /home/imp{i}\n\n",
            20000 + i
        )
        .unwrap();
    }
}

async fn count_people(dir: &dirbroker::directory::Directory) -> usize {
    dir.search(&dir.layout().people, Scope::OneLevel, &Filter::object_class("posixAccount"), &["1.1"])
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn killed_slapd_mid_import_then_rerun_gives_exactly_the_file() {
    let mut bed = start().await;
    let tmp = scratch_dir();
    let file = tmp.path().join("users.ldif");
    users_ldif(&file, 20_000);
    let opts = ImportOptions { batch: 250, ..Default::default() };
    let journal = tmp.path().join("users.ldif.journal");

    let dir = bed.dir_as(Identity::Broker).await;
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    assert_eq!((checked.records, checked.problems.len()), (20_000, 0));

    // Kill slapd (SIGKILL: no clean shutdown) once a few batches are committed.
    let run = {
        let (dir, file, opts, checked) = (dir.clone(), file.clone(), opts.clone(), checked.clone());
        tokio::spawn(async move { import::import(&dir, &file, &opts, &checked, |_, _| {}).await })
    };
    loop {
        let lines = std::fs::read_to_string(&journal).map(|t| t.lines().count()).unwrap_or(0);
        if lines > 8 {
            break;
        }
        assert!(!run.is_finished(), "import finished before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bed.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    let first = run.await.unwrap();
    assert!(matches!(first, Err(ImportError::Directory(ref e)) if e.is_retryable()), "{first:?}");

    bed.restart().await.unwrap();
    let dir = bed.dir_as(Identity::Broker).await;
    let before = count_people(&dir).await;
    assert!(before > 0 && before < 20_000, "{before} entries after the kill");
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let summary = import::import(&dir, &file, &opts, &checked, |_, _| {}).await.unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.added + summary.already_imported, 20_000);
    assert_eq!(count_people(&dir).await, 20_000, "exactly the file's entries");
    for i in [0, 7_777, 19_999] {
        let u = dir.find_user(&format!("imp{i}")).await.unwrap().unwrap();
        assert_eq!(u.posix.unwrap().uid_number, 20_000 + i as u32);
    }
    // A third run adds nothing.
    let again = import::import(&dir, &file, &opts, &checked, |_, _| {}).await.unwrap();
    assert_eq!((again.added, again.already_imported), (0, 20_000));
}

#[tokio::test]
async fn a_file_with_problems_writes_nothing() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let file = tmp.path().join("bad.ldif");
    std::fs::write(
        &file,
        "dn: uid=ok1,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ok1\ncn: a\nsn: a\n\n\
         dn: uid=ok1,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ok1\ncn: a\nsn: a\n\n\
         dn: uid=orphan,ou=nowhere,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: orphan\ncn: a\nsn: a\n\n\
         dn: uid=nocls,ou=people,dc=example,dc=org\nuid: nocls\n\n\
         dn: not a dn\nobjectClass: top\n\n\
         dn: uid=b64,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\ncn:: !!!\n\n",
    )
    .unwrap();
    let opts = ImportOptions::default();
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let reasons: Vec<String> = checked.problems.iter().map(|p| format!("{}: {}", p.line, p.reason)).collect();
    assert_eq!(checked.problems.len(), 5, "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.contains("earlier in the file")), "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.contains("parent")), "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.contains("objectClass")), "{reasons:#?}");
    let r = import::import(&dir, &file, &opts, &checked, |_, _| {}).await;
    assert!(matches!(r, Err(ImportError::Invalid(_))), "{r:?}");
    assert!(dir.find_user("ok1").await.unwrap().is_none(), "nothing may be written");
    // With --continue-on-error the good entry goes in, the rest is reported.
    let opts = ImportOptions { continue_on_error: true, ..Default::default() };
    let s = import::import(&dir, &file, &opts, &checked, |_, _| {}).await.unwrap();
    assert_eq!(s.added, 1);
    assert!(dir.find_user("ok1").await.unwrap().is_some());
    // A journal made for another file is refused.
    std::fs::write(
        &file,
        "dn: uid=x,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\n\n",
    )
    .unwrap();
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let r = import::import(&dir, &file, &opts, &checked, |_, _| {}).await;
    assert!(matches!(r, Err(ImportError::ForeignJournal { .. })), "{r:?}");
}

/// Schema problems are found before anything is written, from the server's
/// own subschema, as are values dirbroker could not use.
#[tokio::test]
async fn schema_violations_are_found_before_writing() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let file = tmp.path().join("schema.ldif");
    std::fs::write(
        &file,
        "dn: uid=good,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: good\ncn: g\nsn: g\n\n\
         dn: uid=posix,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         objectClass: ldapPublicKey\nuid: posix\ncn: p\nsn: p\nuidNumber: 3000\ngidNumber: 100\nhomeDirectory: /home/p\n\
         loginShell: /bin/sh\nmail: p@example.org\n\n\
         dn: uid=nosn,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: nosn\ncn: n\n\n\
         dn: uid=odd,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: odd\ncn: o\nsn: o\nshoeSize: 44\n\n\
         dn: uid=two,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: dirbrokerUser\nuid: two\ncn: t\nsn: t\n\
         dirbrokerUserLevel: 2\ndirbrokerUserLevel: 3\n\n\
         dn: uid=key,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: ldapPublicKey\nuid: key\ncn: k\nsn: k\n\
         sshPublicKey: ssh-rsa notakey\n\n\
         dn: uid=lvl,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: dirbrokerUser\nuid: lvl\ncn: l\nsn: l\n\
         dirbrokerUserLevel: 9\n\n",
    )
    .unwrap();
    let opts = ImportOptions::default();
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let text: Vec<String> = checked.problems.iter().map(|p| format!("{}: {} ({})", p.line, p.reason, p.dn)).collect();
    for want in ["required attribute sn", "shoeSize", "single-valued", "sshPublicKey", "1 to 4"] {
        assert!(text.iter().any(|t| t.contains(want)), "{want} not reported:\n{}", text.join("\n"));
    }
    assert!(!text.iter().any(|t| t.contains("uid=good") || t.contains("uid=posix")), "{text:#?}");
    let r = import::import(&dir, &file, &opts, &checked, |_, _| {}).await;
    assert!(matches!(r, Err(ImportError::Invalid(_))));
    assert!(dir.find_user("good").await.unwrap().is_none(), "nothing is written");
    // Offline, the shipped schema files give the same verdicts.
    let offline = import::check(None, &file, &opts).await.unwrap();
    assert_eq!(offline.problems.len(), checked.problems.len(), "{:#?}", offline.problems);
}

/// A file with a problem in every record: all are counted, a bounded number listed.
#[tokio::test]
async fn problems_are_counted_but_listed_up_to_a_bound() {
    let tmp = scratch_dir();
    let file = tmp.path().join("all-bad.ldif");
    let mut text = String::new();
    for i in 0..12_000 {
        text.push_str(&format!("dn: uid=b{i},ou=people,dc=example,dc=org\nuid: b{i}\n\n"));
    }
    std::fs::write(&file, text).unwrap();
    let checked = import::check(None, &file, &ImportOptions::default()).await.unwrap();
    assert_eq!(checked.problems.len(), import::MAX_LISTED_PROBLEMS);
    assert_eq!(checked.problem_count(), 12_000);
    assert_eq!(checked.bad_lines.len(), 12_000);
}
