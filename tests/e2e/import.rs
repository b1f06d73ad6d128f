//! LDIF import against real slapd: checked first, transactions, a journal,
//! and a slapd killed in the middle of a 20,000-entry import.

use std::io::Write;
use std::time::Duration;

use dirbroker::directory::{Filter, Scope};
use dirbroker::import::{self, ImportError, ImportOptions};
use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{scratch_dir, start};

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

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn import_ok(
    dir: &dirbroker::directory::Directory,
    file: &std::path::Path,
    opts: &ImportOptions,
) -> import::Summary {
    let checked = import::check(Some(dir), file, opts).await.unwrap();
    assert_eq!(checked.problem_count(), 0, "{:#?}", checked.problems);
    import::import(dir, file, opts, &checked, |_, _| {}).await.unwrap()
}

const PEOPLE: &str = "ou=people,dc=example,dc=org";

fn person(uid: &str, extra: &str) -> String {
    format!("dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{extra}\n")
}

async fn strs(dir: &dirbroker::directory::Directory, dn: &str, attr: &str) -> Vec<String> {
    let dn = dirbroker::directory::Dn::parse(dn).unwrap();
    let e = dir.read(&dn, &["*"]).await.unwrap();
    let mut v: Vec<String> = e.strs(attr).unwrap().into_iter().map(str::to_string).collect();
    v.sort();
    v
}

async fn exists(dir: &dirbroker::directory::Directory, dn: &str) -> bool {
    dir.read(&dirbroker::directory::Dn::parse(dn).unwrap(), &["1.1"]).await.is_ok()
}

/// A changes file: deletes, every kind of modify, modrdn with and without a
/// new superior, an add and a modify of what it added — in the file's order,
/// in one transaction, resumable from the journal.
#[tokio::test]
async fn change_records_apply_in_file_order_and_resume() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let base = tmp.path().join("base.ldif");
    write(
        &base,
        &format!(
            "{}\n{}\n{}\ndn: ou=alumni,dc=example,dc=org\nobjectClass: organizationalUnit\nou: alumni\n\n\
             dn: uid=cnt,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: cnt\ncn: c\nsn: c\n\
             uidNumber: 5000\ngidNumber: 100\nhomeDirectory: /home/cnt\n\n",
            person("gone", ""),
            person("mod", "mail: old@example.org\ndescription: keep\ndescription: drop\n"),
            person("mover", "")
        ),
    );
    let s = import_ok(&dir, &base, &ImportOptions::default()).await;
    assert_eq!(s.added, 5);

    let changes = tmp.path().join("changes.ldif");
    write(
        &changes,
        &format!(
            "version: 1\n\n\
             dn: uid=gone,{PEOPLE}\nchangetype: delete\n\n\
             dn: uid=mod,{PEOPLE}\nchangetype: modify\nadd: telephoneNumber\ntelephoneNumber: +1 555 0100\n-\n\
             delete: description\ndescription: drop\n-\nreplace: mail\nmail: new@example.org\n-\n\n\
             dn: uid=cnt,{PEOPLE}\nchangetype: modify\nincrement: uidNumber\nuidNumber: 5\n-\n\n\
             dn: uid=mover,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=moved\ndeleteoldrdn: 1\n\
             newsuperior: ou=alumni,dc=example,dc=org\n\n\
             dn: uid=new,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new\ncn: n\nsn: n\n\n\
             dn: uid=new,{PEOPLE}\nchangetype: modify\nreplace: cn\ncn: Newly Added\n-\n\n\
             dn: uid=new,{PEOPLE}\nchangetype: moddn\nnewrdn: uid=newer\ndeleteoldrdn: 0\n\n"
        ),
    );
    let opts = ImportOptions::default();
    let s = import_ok(&dir, &changes, &opts).await;
    // The add is a batch, each other record one of its own.
    assert_eq!((s.added, s.modified, s.deleted, s.renamed, s.batches), (1, 3, 1, 2, 7), "{s:?}");
    assert!(!exists(&dir, &format!("uid=gone,{PEOPLE}")).await);
    assert_eq!(strs(&dir, &format!("uid=mod,{PEOPLE}"), "description").await, ["keep"]);
    assert_eq!(strs(&dir, &format!("uid=mod,{PEOPLE}"), "mail").await, ["new@example.org"]);
    assert_eq!(strs(&dir, &format!("uid=mod,{PEOPLE}"), "telephoneNumber").await, ["+1 555 0100"]);
    assert_eq!(strs(&dir, &format!("uid=cnt,{PEOPLE}"), "uidNumber").await, ["5005"]);
    assert!(!exists(&dir, &format!("uid=mover,{PEOPLE}")).await);
    assert_eq!(strs(&dir, "uid=moved,ou=alumni,dc=example,dc=org", "uid").await, ["moved"], "deleteoldrdn: 1");
    assert_eq!(strs(&dir, &format!("uid=newer,{PEOPLE}"), "uid").await, ["new", "newer"], "deleteoldrdn: 0");
    assert_eq!(strs(&dir, &format!("uid=newer,{PEOPLE}"), "cn").await, ["Newly Added"]);

    // Run again: the journal says it is done; nothing is applied twice.
    let again = import::import(&dir, &changes, &opts, &import::check(None, &changes, &opts).await.unwrap(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((again.already_imported, again.modified), (7, 0));
    assert_eq!(strs(&dir, &format!("uid=cnt,{PEOPLE}"), "uidNumber").await, ["5005"]);

    // Interrupted between the last batch's commit and its journal line: the
    // journal has "begin 6" but not "batch 6". The rerun sees the rename
    // done (uid=new gone, uid=newer there) and skips it.
    let journal = tmp.path().join("changes.ldif.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let cut: Vec<&str> = text.lines().filter(|l| !l.starts_with("batch 6 ")).collect();
    assert!(cut.contains(&"begin 6") && cut.len() + 1 == text.lines().count(), "{text}");
    write(&journal, &(cut.join("\n") + "\n"));
    let again = import::import(&dir, &changes, &opts, &import::check(None, &changes, &opts).await.unwrap(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((again.already_imported, again.modified, again.added), (7, 0, 0), "{again:?}");
    assert_eq!(strs(&dir, &format!("uid=cnt,{PEOPLE}"), "uidNumber").await, ["5005"]);

    // A batch of modifies only cannot be judged by entries appearing or
    // disappearing: with an increment the rerun refuses and says what to do.
    let inc = tmp.path().join("inc.ldif");
    write(&inc, &format!("dn: uid=cnt,{PEOPLE}\nchangetype: modify\nincrement: uidNumber\nuidNumber: 1\n-\n\n"));
    assert_eq!(import_ok(&dir, &inc, &opts).await.modified, 1);
    forget_commits(&tmp.path().join("inc.ldif.journal"));
    let checked = import::check(Some(&dir), &inc, &opts).await.unwrap();
    let r = import::import(&dir, &inc, &opts, &checked, |_, _| {}).await;
    assert!(matches!(r, Err(ImportError::Undecidable { batch: 0, first: 1, last: 1 })), "{r:?}");
    assert_eq!(strs(&dir, &format!("uid=cnt,{PEOPLE}"), "uidNumber").await, ["5006"]);
    // Without an increment, values already there show the batch was applied.
    let add = tmp.path().join("add.ldif");
    write(&add, &format!("dn: uid=cnt,{PEOPLE}\nchangetype: modify\nadd: mail\nmail: c@example.org\n-\n\n"));
    assert_eq!(import_ok(&dir, &add, &opts).await.modified, 1);
    forget_commits(&tmp.path().join("add.ldif.journal"));
    let s = import_ok(&dir, &add, &opts).await;
    assert_eq!((s.already_imported, s.modified), (1, 0), "{s:?}");
}

/// Hostile change files: every problem found first, with its line, and
/// nothing written.
#[tokio::test]
async fn hostile_change_files_are_refused_with_lines() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let base = tmp.path().join("base.ldif");
    write(&base, &format!("{}\n{}", person("a", ""), person("b", "")));
    import_ok(&dir, &base, &ImportOptions::default()).await;
    let file = tmp.path().join("hostile.ldif");
    write(
        &file,
        &format!(
            "dn: uid=a,{PEOPLE}\nchangetype: delete\n\n\
             dn: uid=a,{PEOPLE}\nchangetype: modify\nreplace: cn\ncn: x\n-\n\n\
             dn: uid=nobody,{PEOPLE}\nchangetype: delete\n\n\
             dn: uid=b,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=a\ndeleteoldrdn: 1\n\n\
             dn: UID=B,{PEOPLE}\nchangetype: modify\nreplace: cn\ncn: y\n-\n\n\
             dn: uid=a,{PEOPLE}\nchangetype: modify\nincrement: cn\ncn: many\n-\n\n\
             dn: uid=a,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=c,ou=x\ndeleteoldrdn: 1\n\n\
             dn: uid=a,{PEOPLE}\nchangetype: modify\nadd: shoeSize\nshoeSize: 44\n-\n\n"
        ),
    );
    let opts = ImportOptions::default();
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let got: Vec<(usize, String)> = checked.problems.iter().map(|p| (p.line, p.reason.clone())).collect();
    let want = [
        (4, "was deleted or renamed earlier"),  // modify of the entry deleted at line 1
        (10, "does not exist"),                 // delete of an entry that is not there
        (18, "was deleted or renamed earlier"), // UID=B was renamed at line 13 (case differs)
        (24, "exactly one integer"),            // increment: cn many
        (30, "not a single RDN"),               // newrdn with two RDNs
        (35, "unknown attribute"),              // shoeSize
    ];
    for (line, what) in want {
        assert!(got.iter().any(|(l, r)| *l == line && r.contains(what)), "line {line}: {what} not in {got:#?}");
    }
    // The rename of b to a (a is deleted by then) is fine.
    assert!(!got.iter().any(|(l, _)| *l == 13), "{got:#?}");
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let r = import::import(&dir, &file, &opts, &checked, |_, _| {}).await;
    assert!(matches!(r, Err(ImportError::Invalid(_))), "{r:?}");
    assert!(exists(&dir, &format!("uid=a,{PEOPLE}")).await, "nothing written");
    assert!(exists(&dir, &format!("uid=b,{PEOPLE}")).await, "nothing written");
}

/// Duplicates are decided by distinguishedNameMatch (RFC 4517 §4.2.15):
/// escapes decoded, attribute types and (caseIgnoreMatch) values without
/// case, insignificant spaces dropped. `cn=A\,B` is one RDN, `cn=A,cn=B` two.
#[tokio::test]
async fn duplicate_dns_by_case_and_escaping() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let file = tmp.path().join("dups.ldif");
    let grp = |dn: &str, cn: &str| format!("dn: {dn}\nobjectClass: organizationalRole\ncn: {cn}\n\n");
    let text = [
        grp(r"cn=A\,B,dc=example,dc=org", "A,B"),             // line 1
        grp(r"cn=A\2CB,dc=example,dc=org", "A,B"),            // 5: the same DN, hex escape
        grp("CN=x,dc=example,dc=org", "x"),                   // 9
        grp("cn=X,DC=Example,dc=ORG", "X"),                   // 13: the same, other case
        grp("cn=two  words,dc=example,dc=org", "two words"),  // 17
        grp("cn= two words ,dc=example,dc=org", "two words"), // 21: insignificant spaces
        grp("cn=A,cn=B,dc=example,dc=org", "A"),              // 25: another DN (and no parent)
        grp("cn=AB,dc=example,dc=org", "AB"),                 // 29: another DN
    ]
    .concat();
    write(&file, &text);
    let opts = ImportOptions::default();
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let got: Vec<(usize, String)> = checked.problems.iter().map(|p| (p.line, p.reason.clone())).collect();
    for line in [5, 13, 21] {
        assert!(got.iter().any(|(l, r)| *l == line && r.contains("appears earlier")), "line {line}: {got:#?}");
    }
    assert!(got.iter().any(|(l, r)| *l == 25 && r.contains("parent cn=B")), "{got:#?}");
    assert_eq!(got.len(), 4, "{got:#?}");
    // With --continue-on-error the first spelling of each goes in, once.
    let opts = ImportOptions { continue_on_error: true, ..Default::default() };
    let s = import::import(&dir, &file, &opts, &checked, |_, _| {}).await.unwrap();
    assert_eq!((s.added, s.failed.len()), (4, 0), "{s:?}");
    assert!(exists(&dir, r"cn=a\2cb,dc=example,dc=org").await);
}

/// --upsert: new entries are added, changed ones get a minimal modify, equal
/// ones are left alone and counted; without it an existing DN is a failure.
#[tokio::test]
async fn upsert_turns_entries_into_the_files_version() {
    let bed = start().await;
    let dir = bed.dir_as(Identity::Broker).await;
    let tmp = scratch_dir();
    let base = tmp.path().join("base.ldif");
    write(
        &base,
        &format!(
            "{}\n{}",
            person("same", "mail: same@example.org\n"),
            person("chg", "mail: a@example.org\nmail: b@example.org\ndescription: goes away\n")
        ),
    );
    import_ok(&dir, &base, &ImportOptions::default()).await;
    let chg_dn = dirbroker::directory::Dn::parse(&format!("uid=chg,{PEOPLE}")).unwrap();
    let pw = dirbroker::secret::SecretString::new("chg-password-1".into());
    dir.set_password(&chg_dn, &pw).await.unwrap();
    let file = tmp.path().join("upsert.ldif");
    write(
        &file,
        &format!(
            "{}\ndn: uid=chg,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: chg\ncn: chg\nsn: chg\n\
             mail: b@example.org\nmail: c@example.org\nuidNumber: 7000\ngidNumber: 100\nhomeDirectory: /home/chg\n\n{}",
            person("same", "MAIL: same@example.org\n"),
            person("fresh", "")
        ),
    );
    // Without --upsert: existing entries fail.
    let opts = ImportOptions { continue_on_error: true, ..Default::default() };
    let s = import_ok(&dir, &file, &opts).await;
    assert_eq!((s.added, s.failed.len()), (1, 2), "{s:?}");
    assert!(s.failed.iter().all(|f| f.reason.contains("exists") && f.line > 0), "{:?}", s.failed);
    std::fs::remove_file(tmp.path().join("upsert.ldif.journal")).unwrap();

    let opts = ImportOptions { upsert: true, ..Default::default() };
    let checked = import::check(Some(&dir), &file, &opts).await.unwrap();
    let dry = import::import(&dir, &file, &ImportOptions { dry_run: true, ..opts.clone() }, &checked, |_, _| {})
        .await
        .unwrap();
    assert_eq!((dry.added, dry.modified, dry.unchanged), (0, 1, 2), "{dry:?}");
    let s = import::import(&dir, &file, &opts, &checked, |_, _| {}).await.unwrap();
    assert_eq!((s.added, s.modified, s.unchanged), (0, 1, 2), "{s:?}");
    let chg = format!("uid=chg,{PEOPLE}");
    assert_eq!(strs(&dir, &chg, "mail").await, ["b@example.org", "c@example.org"]);
    assert_eq!(strs(&dir, &chg, "description").await, Vec::<String>::new(), "left out of the file: removed");
    assert_eq!(strs(&dir, &chg, "uidNumber").await, ["7000"]);
    assert_eq!(strs(&dir, &chg, "objectClass").await, ["inetOrgPerson", "posixAccount"]);
    assert!(dir.check_password(&chg_dn, &pw).await.unwrap(), "secrets the file leaves out stay");
    // The minimal modify touched only what differs.
    let e = dir.read(&dirbroker::directory::Dn::parse(&chg).unwrap(), &["*"]).await.unwrap();
    let wanted = vec![
        ("objectClass".to_string(), vec![b"inetOrgPerson".to_vec()]),
        ("uid".to_string(), vec![b"chg".to_vec()]),
        ("cn".to_string(), vec![b"chg".to_vec()]),
        ("sn".to_string(), vec![b"chg".to_vec()]),
        ("mail".to_string(), vec![b"c@example.org".to_vec(), b"d@example.org".to_vec()]),
    ];
    let changes = import::minimal_modify(&e, &wanted);
    let shown: Vec<String> = changes
        .iter()
        .map(|c| match c {
            ldap3::Mod::Add(a, v) => format!("add {} {}", String::from_utf8_lossy(a), v.len()),
            ldap3::Mod::Delete(a, v) => format!("delete {} {}", String::from_utf8_lossy(a), v.len()),
            other => format!("{other:?}"),
        })
        .collect();
    let mut shown = shown;
    shown.sort();
    assert_eq!(
        shown,
        [
            "add mail 1",
            "delete gidNumber 0",
            "delete homeDirectory 0",
            "delete mail 1",
            "delete objectClass 1",
            "delete uidNumber 0"
        ]
    );
}

/// A journal as a crash between a batch's commit and its `batch` line leaves
/// it: every `begin` kept, every `batch` gone.
fn forget_commits(journal: &std::path::Path) {
    let text = std::fs::read_to_string(journal).unwrap();
    write(journal, &(text.lines().filter(|l| !l.starts_with("batch ")).collect::<Vec<_>>().join("\n") + "\n"));
}
