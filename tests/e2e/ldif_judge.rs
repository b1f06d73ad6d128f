//! `dirbroker import` judged by `ldapadd`/`ldapmodify` (Debian's ldap-utils):
//! each fixture in `fixtures/ldif/` is loaded by their tool into one fresh
//! slapd and by ours into another, both trees are dumped the same way and
//! must be equal; our warnings and errors are asserted as a user reads them.
//! The corpus: RFC 2849's own examples, the grammar's corners, and one file
//! per difference issue #14 found. Last, a whole-tree export of a populated
//! slapd imports back with `--upsert` into a fresh one, and sealed secrets
//! travel (with `--include-secrets`) to a broker with the same keyring only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dirbroker_testbed::Identity;
use dirbroker_testbed::harness::{Bed, dirbroker_bin, scratch_dir, start, text};

const PEOPLE: &str = "ou=people,dc=example,dc=org";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/fixtures/ldif").join(name)
}

/// The fixture copied into `dir` (the import writes its journal beside the
/// file), `@DIR@` replaced by `dir`.
fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let to = dir.join(name);
    std::fs::write(&to, text.replace("@DIR@", &dir.display().to_string())).unwrap();
    to
}

/// `dirbroker ARGS` with the testbed's configuration (bound as the broker).
fn dirbroker(bed: &Bed, args: &[&str]) -> Output {
    Command::new(dirbroker_bin())
        .args(args)
        .env("DIRBROKER_CONFIG", bed.dir().join("dirbroker.toml"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The whole tree under the suffix as the admin sees it: user attributes
/// (with objectClass) plus the user-settable operational authzTo/authzFrom;
/// entries sorted by DN, each entry's lines sorted, attribute names in
/// lower case; `ignore` (lower case) left out, and the system identities'
/// passwords (every fresh testbed makes its own).
fn tree(bed: &Bed, ignore: &[&str]) -> String {
    let out = bed.ldap_tool_admin(
        "ldapsearch",
        &["-LLL", "-o", "ldif-wrap=no", "-b", "dc=example,dc=org", "(objectClass=*)", "*", "authzTo", "authzFrom"],
        "",
    );
    assert!(out.status.success(), "ldapsearch: {}", text(&out));
    let dump = String::from_utf8(out.stdout).unwrap();
    let mut entries: Vec<String> = dump
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let dn = lines.next().unwrap_or_default().to_string();
            let system = dn.to_ascii_lowercase().ends_with(",ou=system,dc=example,dc=org");
            let mut attrs: Vec<String> = lines
                .filter_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    let name = name.to_ascii_lowercase();
                    let skip = ignore.contains(&name.as_str()) || (system && name == "userpassword");
                    (!skip).then(|| format!("{name}:{value}"))
                })
                .collect();
            attrs.sort();
            format!("{dn}\n{}", attrs.join("\n"))
        })
        .collect();
    entries.sort_by_key(|e| e.to_ascii_lowercase());
    entries.join("\n\n")
}

/// What each side made of one fixture.
struct Judged {
    theirs: Output,
    ours: Output,
    theirs_tree: String,
    ours_tree: String,
    /// The file our import read (its name appears in our messages).
    file: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Judged {
    fn ours_text(&self) -> String {
        text(&self.ours)
    }

    /// The trees are equal, and hold (or lack) an entry, so that two
    /// failed loads cannot pass as agreement.
    fn assert_same_tree(&self, has: &[&str], lacks: &[&str]) {
        assert_eq!(
            self.ours_tree,
            self.theirs_tree,
            "trees differ\n--- ldap-utils said:\n{}\n--- dirbroker said:\n{}",
            text(&self.theirs),
            self.ours_text()
        );
        // ldapsearch writes a DN that is not ASCII in base64.
        let listed = |dn: &str| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(dn);
            self.ours_tree.contains(&format!("dn: {dn}\n")) || self.ours_tree.contains(&format!("dn:: {b64}\n"))
        };
        for dn in has {
            assert!(listed(dn), "{dn} missing:\n{}", self.ours_tree);
        }
        for dn in lacks {
            assert!(!listed(dn), "{dn} present:\n{}", self.ours_tree);
        }
    }
}

/// Load `name` with `tool` (ldapadd, ldapmodify, with their flags) as the
/// admin into one fresh slapd, and with `dirbroker import FLAGS` into
/// another; dump both.
async fn judge(name: &str, tool: &[&str], flags: &[&str]) -> Judged {
    judge_steps(&[(name, tool, flags)]).await
}

/// [`judge`] for several files loaded one after the other; every step but
/// the last must succeed on both sides, the outputs are the last step's.
async fn judge_steps(steps: &[(&str, &[&str], &[&str])]) -> Judged {
    let (theirs_bed, ours_bed) = (start().await, start().await);
    let tmp = scratch_dir();
    std::fs::write(tmp.path().join("description.txt"), "read from a file").unwrap();
    let mut last = None;
    for (i, (name, tool, flags)) in steps.iter().enumerate() {
        let file = copy_fixture(name, tmp.path());
        let file_str = file.display().to_string();
        let (program, tool_flags) = tool.split_first().unwrap();
        let theirs = theirs_bed.ldap_tool_admin(program, &[tool_flags, &["-f", &file_str]].concat(), "");
        let ours = dirbroker(&ours_bed, &[&["import", &file_str], *flags].concat());
        if i + 1 < steps.len() {
            assert!(theirs.status.success(), "{name}: {}", text(&theirs));
            assert!(ours.status.success(), "{name}: {}", text(&ours));
        }
        last = Some((theirs, ours, file));
    }
    let (theirs, ours, file) = last.unwrap();
    Judged { theirs_tree: tree(&theirs_bed, &[]), ours_tree: tree(&ours_bed, &[]), theirs, ours, file, _tmp: tmp }
}

/// RFC 2849's examples 1-4: folded and base64 values, a value with a CR,
/// UTF-8 DNs and values, language options.
#[tokio::test]
async fn rfc2849_content_examples_load_as_with_ldapadd() {
    let j = judge("rfc2849-content.ldif", &["ldapadd"], &[]).await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(
        &[
            "cn=Barbara Jensen,ou=people,dc=example,dc=org",
            "cn=Gern Jensen,ou=people,dc=example,dc=org",
            "uid=rogasawara,ou=\u{55b6}\u{696d}\u{90e8},ou=people,dc=example,dc=org",
        ],
        &[],
    );
    assert!(j.ours_text().contains("5 added"), "{}", j.ours_text());
}

/// RFC 2849's example 6: add, delete, modrdn with and without newsuperior,
/// modify with add, delete (all values and one), replace (with values and
/// without), on DNs written with spaces after the commas.
#[tokio::test]
async fn rfc2849_change_examples_apply_as_with_ldapmodify() {
    let j = judge_steps(&[
        ("rfc2849-changes-base.ldif", &["ldapadd"], &[]),
        ("rfc2849-changes.ldif", &["ldapmodify"], &[]),
    ])
    .await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(
        &[
            "cn=Fiona Jensen,ou=people,dc=example,dc=org",
            "cn=Paula Jensen,ou=people,dc=example,dc=org",
            "ou=Product Development Accountants,ou=Accounting,dc=example,dc=org",
        ],
        &["cn=Robert Jensen,ou=people,dc=example,dc=org", "cn=Paul Jensen,ou=people,dc=example,dc=org"],
    );
}

/// The grammar's corners: CRLF, a DN with trailing spaces, attribute names
/// in other case, several spaces after the colon, trailing spaces and a tab
/// in a value, base64 with a leading space, plain UTF-8, folded comments,
/// values and DNs.
#[tokio::test]
async fn grammar_corners_read_as_ldapadd_reads_them() {
    let j = judge("grammar-corners.ldif", &["ldapadd"], &[]).await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(&["cn=corner,ou=hosts,dc=example,dc=org"], &[]);
}

#[tokio::test]
async fn a_repeated_value_is_refused_as_ldapadd_does() {
    let j = judge("repeated-value.ldif", &["ldapadd", "-c"], &["--continue-on-error"]).await;
    assert!(text(&j.theirs).contains("Type or value exists (20)"), "{}", text(&j.theirs));
    j.assert_same_tree(
        &[&format!("uid=once,{PEOPLE}")],
        &[&format!("uid=twice,{PEOPLE}"), &format!("uid=cased,{PEOPLE}"), &format!("uid=phoned,{PEOPLE}")],
    );
    assert!(!j.ours.status.success());
    let file = j.file.display();
    let ours = j.ours_text();
    for want in [
        format!(
            "{file}:3: mail: value \"twice@example.org\" is given more than once (the directory refuses that: \
             attributeOrValueExists) (dn: uid=twice,{PEOPLE})"
        ),
        format!(
            "{file}:21: cn: values \"Cased  Name\" and \"cased name\" are equal by caseIgnoreMatch (the directory \
             refuses that: attributeOrValueExists) (dn: uid=cased,{PEOPLE})"
        ),
        format!(
            "{file}:28: telephoneNumber: values \"+1 408 555-1212\" and \"+14085551212\" are equal by \
             telephoneNumberMatch (the directory refuses that: attributeOrValueExists) (dn: uid=phoned,{PEOPLE})"
        ),
    ] {
        assert!(ours.contains(&want), "{want}\nnot in:\n{ours}");
    }
}

#[tokio::test]
async fn authz_to_and_from_are_imported() {
    let j = judge("authz.ldif", &["ldapadd"], &[]).await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(&[&format!("uid=proxy,{PEOPLE}")], &[]);
    assert!(j.ours_tree.contains("authzto: dn.regex:^uid=[^,]*,ou=people,dc=example,dc=org$"), "{}", j.ours_tree);
    assert!(j.ours_tree.contains("authzfrom: dn:uid=admin-tool,"), "{}", j.ours_tree);
}

#[tokio::test]
async fn an_empty_modify_and_a_last_change_without_dash_are_taken_as_ldapmodify_does() {
    let j = judge("modify-lenient.ldif", &["ldapmodify"], &[]).await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(&[&format!("uid=mod,{PEOPLE}")], &[]);
    assert!(j.ours_tree.contains("mail: mod@example.org") && j.ours_tree.contains("description: first"));
    let want = format!(
        "{}:18: warning: the modification of \"mail\" has no closing '-' line before the end of the record; applied \
         as complete, as ldapmodify does (dn: uid=mod,{PEOPLE})",
        j.file.display()
    );
    let ours = j.ours_text();
    assert!(ours.contains(&want), "{ours}");
    assert!(ours.contains("1 added, 2 modified"), "{ours}");
    assert_eq!(ours.matches("warning:").count(), 1, "{ours}");
}

#[tokio::test]
async fn content_and_change_records_mixed_are_read_as_ldapmodify_a_does() {
    let j = judge("mixed.ldif", &["ldapmodify", "-a"], &[]).await;
    assert!(j.theirs.status.success() && j.ours.status.success(), "{}\n{}", text(&j.theirs), j.ours_text());
    j.assert_same_tree(&[&format!("uid=mix1,{PEOPLE}"), &format!("uid=mix2,{PEOPLE}")], &[]);
    assert!(j.ours_tree.contains("sn: changed"), "{}", j.ours_tree);
    let want = format!(
        "{}:8: warning: a change record in a file of content records: RFC 2849 forbids mixing them; read as \
         `ldapmodify -a` does (a content record is an add) (dn: uid=mix1,{PEOPLE})",
        j.file.display()
    );
    assert!(j.ours_text().contains(&want), "{}", j.ours_text());
    // `ldif check --output json` lists it under "warnings", not "problems".
    let bed = start().await;
    let check = dirbroker(&bed, &["--output", "json", "ldif", "check", "--offline", &j.file.display().to_string()]);
    assert!(check.status.success(), "{}", text(&check));
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(0), "{json}");
    assert_eq!(json["warnings"][0]["line"], 8, "{json}");
    assert_eq!(json["warnings"][0]["dn"], format!("uid=mix1,{PEOPLE}"), "{json}");
}

#[tokio::test]
async fn a_valid_copy_after_an_invalid_one_is_added_as_ldapadd_c_does() {
    let j = judge("dup-after-invalid.ldif", &["ldapadd", "-c"], &["--continue-on-error"]).await;
    j.assert_same_tree(&[&format!("uid=dup,{PEOPLE}")], &[]);
    assert!(j.ours_tree.contains("sn: second"), "{}", j.ours_tree);
    let ours = j.ours_text();
    assert!(ours.contains(&format!("{}:3: required attribute sn is missing", j.file.display())), "{ours}");
    assert!(!ours.contains("appears earlier"), "{ours}");
    assert!(ours.contains("1 added"), "{ours}");
}

#[tokio::test]
async fn the_child_of_a_refused_entry_is_refused_naming_its_parent() {
    let j = judge("child-of-refused.ldif", &["ldapadd", "-c"], &["--continue-on-error"]).await;
    assert!(text(&j.theirs).contains("No such object (32)"), "{}", text(&j.theirs));
    j.assert_same_tree(&[&format!("uid=after,{PEOPLE}")], &["ou=shop,dc=example,dc=org"]);
    let ours = j.ours_text();
    let file = j.file.display();
    assert!(
        ours.contains(&format!("{file}:3: unknown attribute \"shoeSize\" (dn: ou=shop,dc=example,dc=org)")),
        "{ours}"
    );
    let want = format!(
        "{file}:8: parent ou=shop,dc=example,dc=org is not added: its record (line 3) has problems (dn: \
         uid=clerk,ou=shop,dc=example,dc=org)"
    );
    assert!(ours.contains(&want), "{ours}");
}

#[tokio::test]
async fn an_rdn_conflict_is_found_by_the_check_and_plain_values_starting_with_angle_are_taken() {
    let j = judge("rdn-and-plain-values.ldif", &["ldapadd", "-c"], &["--continue-on-error"]).await;
    assert!(text(&j.theirs).contains("Naming violation (64)"), "{}", text(&j.theirs));
    j.assert_same_tree(&["cn=angle,ou=hosts,dc=example,dc=org"], &["dc=a,ou=hosts,dc=example,dc=org"]);
    assert!(j.ours_tree.contains("description: <not a url") || j.ours_tree.contains("description:: PG5vdCBhIHVybA=="));
    let ours = j.ours_text();
    let conflict = "the RDN gives the single-valued naming attribute dc the value \"a\", the entry \"b\" (the \
                    directory refuses that: namingViolation) (dn: dc=a,ou=hosts,dc=example,dc=org)";
    assert!(ours.contains(&format!("{}:2: {conflict}", j.file.display())), "{ours}");
    assert!(ours.contains(&format!("{}:13: warning: the value of description starts with '<'", j.file.display())));
    assert!(ours.contains(&format!("{}:15: warning: the value of l starts with ':'", j.file.display())));
    // `ldif check` finds the conflict too, offline, before anything is written.
    let bed = start().await;
    let check = dirbroker(&bed, &["ldif", "check", "--offline", &j.file.display().to_string()]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains(conflict), "{}", text(&check));
}

#[tokio::test]
async fn a_missing_parent_is_named() {
    let j = judge("missing-parent.ldif", &["ldapadd", "-c"], &["--continue-on-error"]).await;
    assert!(text(&j.theirs).contains("No such object (32)"), "{}", text(&j.theirs));
    j.assert_same_tree(&[], &["ou=dept,dc=example,dc=org"]);
    let want = format!(
        "{}:9: failed: not found: parent ou=dept,dc=example,dc=org is missing (needed to add \
         uid=child,ou=dept,dc=example,dc=org)",
        j.file.display()
    );
    assert!(j.ours_text().contains(&want), "{}", j.ours_text());
}

#[tokio::test]
async fn file_urls_need_the_flag_and_then_read_as_ldapadd_reads_them() {
    let dir = scratch_dir();
    let j = judge("file-url.ldif", &["ldapadd"], &["--allow-file-urls", "/tmp"]).await;
    assert!(j.ours.status.success(), "{}", j.ours_text());
    j.assert_same_tree(&["cn=photo,ou=hosts,dc=example,dc=org"], &[]);
    assert!(j.ours_tree.contains("description: read from a file"), "{}", j.ours_tree);
    // Without the flag the message says which flag.
    let bed = start().await;
    std::fs::write(dir.path().join("description.txt"), "x").unwrap();
    let file = copy_fixture("file-url.ldif", dir.path());
    let check = dirbroker(&bed, &["ldif", "check", "--offline", &file.display().to_string()]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let want = "a ':<' value reads a file, which is off by default; allow files from one directory with \
                --allow-file-urls DIR";
    assert!(text(&check).contains(&format!("{}:5: line 5, column ", file.display())), "{}", text(&check));
    assert!(text(&check).contains(want), "{}", text(&check));
}

/// Loads fixtures/ldif/populated.ldif into `bed` with ldapadd and gives
/// alice a password (hashed by slapd).
async fn populate_with_alices_password(bed: &Bed, tmp: &Path) {
    let populated = copy_fixture("populated.ldif", tmp);
    let loaded = bed.ldap_tool_admin("ldapadd", &["-f", &populated.display().to_string()], "");
    assert!(loaded.status.success(), "{}", text(&loaded));
    let alice = dirbroker::directory::Dn::parse(&format!("uid=alice,{PEOPLE}")).unwrap();
    let pw = dirbroker::secret::SecretString::new("alice-password-1".into());
    bed.dir_as(Identity::Broker).await.set_password(&alice, &pw).await.unwrap();
}

/// A whole-tree export of a populated directory imports back with --upsert
/// into a fresh one (which has its own suffix, units and system
/// identities): the suffix's missing parent and the system identities'
/// left-out passwords are no obstacle, the trees are equal but for the
/// secrets, and a password hash does not travel.
#[tokio::test]
async fn a_whole_tree_export_imports_back_with_upsert_into_a_fresh_directory() {
    let (from, to) = (start().await, start().await);
    let tmp = scratch_dir();
    populate_with_alices_password(&from, tmp.path()).await;

    let export = tmp.path().join("all.ldif");
    let out = dirbroker(&from, &["export", "--out", &export.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    // The fresh directory's own entries: without --upsert they are in the way.
    let plain = dirbroker(&to, &["import", &export.display().to_string(), "--dry-run"]);
    assert!(!plain.status.success(), "{}", text(&plain));
    let said = text(&plain);
    // The entries whose add the check could not otherwise judge: the suffix
    // (no parent) and the system identities (no userPassword). The units are
    // found by slapd when the adds run ("already exists").
    for dn in
        ["dc=example,dc=org", "cn=broker,ou=system,dc=example,dc=org", "cn=node-reader,ou=system,dc=example,dc=org"]
    {
        let want = format!(
            "{dn} is in the directory already: an add of it fails; --upsert makes it the file's version (keeping the \
             secrets the file leaves out) (dn: {dn})"
        );
        assert!(said.contains(&want), "{said}");
    }
    assert!(!said.contains("neither in the directory") && !said.contains("userpassword"), "{said}");
    let upsert = dirbroker(&to, &["import", "--upsert", &export.display().to_string()]);
    assert!(upsert.status.success(), "{}", text(&upsert));
    // 4 entries from the file are new; the suffix, its units and the system
    // identities are there already and unchanged.
    assert!(text(&upsert).contains("4 added, 0 modified"), "{}", text(&upsert));

    assert_eq!(tree(&to, &["userpassword"]), tree(&from, &["userpassword"]));
    assert!(tree(&from, &[]).contains("userpassword:"), "the source has alice's password hash");
    assert!(!tree(&to, &[]).contains("userpassword:"), "password hashes do not travel in an export");
    // The fresh directory's own identities still work.
    let again = dirbroker(&to, &["import", "--upsert", &export.display().to_string()]);
    assert!(again.status.success(), "{}", text(&again));
}

/// `export --include-secrets` carries OTP seeds sealed as stored (file
/// 0600), never a password hash (the broker may set userPassword, not read
/// it); the sealed seed opens only with the keyring it was sealed with: a
/// directory with another keyring refuses the file, one whose broker uses
/// the same keyring takes it, and the token then verifies oathtool's code.
#[tokio::test]
async fn sealed_secrets_travel_with_include_secrets_to_a_broker_with_the_same_keyring() {
    use std::os::unix::fs::PermissionsExt;
    let (from, to) = (start().await, start().await);
    let tmp = scratch_dir();
    populate_with_alices_password(&from, tmp.path()).await;
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let seed_file = dirbroker_testbed::harness::secret_file(tmp.path(), "seed.b32", seed, 0o600);
    let enrolled = dirbroker(
        &from,
        &[
            "otp",
            "import",
            "alice",
            "--type",
            "totp",
            "--id",
            "alice-moved",
            "--secret-file",
            &seed_file.display().to_string(),
        ],
    );
    assert!(enrolled.status.success(), "{}", text(&enrolled));

    let export = tmp.path().join("secrets.ldif");
    let out = dirbroker(&from, &["export", "--include-secrets", "--out", &export.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::metadata(&export).unwrap().permissions().mode() & 0o777, 0o600);
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(exported.contains("dirbrokerOtpSecret:: "), "{exported}");
    assert!(!exported.to_ascii_lowercase().contains("userpassword"), "{exported}");
    assert!(!exported.contains(seed), "the seed travels sealed, never in clear");

    // Another keyring cannot open the sealed seed: refused, nothing written.
    let refused = dirbroker(&to, &["import", "--upsert", &export.display().to_string()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("which is not in the keyring"), "{}", text(&refused));
    assert!(text(&refused).contains("nothing was written"), "{}", text(&refused));
    assert!(!tree(&to, &[]).contains("uid=alice"), "nothing written");

    // The receiving broker configured with the sender's keyring takes it.
    let config = std::fs::read_to_string(to.dir().join("dirbroker.toml")).unwrap();
    let same_keys =
        config.replace(&to.keyring_file().display().to_string(), &from.keyring_file().display().to_string());
    assert_ne!(config, same_keys);
    let cfg = dirbroker_testbed::harness::secret_file(tmp.path(), "same-keys.toml", &same_keys, 0o600);
    let run = |args: &[&str], stdin: &str| {
        dirbroker_testbed::harness::run_with_stdin(
            Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", &cfg).env("NO_COLOR", "1"),
            stdin,
        )
    };
    let taken = run(&["import", "--upsert", &export.display().to_string()], "");
    assert!(taken.status.success(), "{}", text(&taken));
    assert_eq!(tree(&to, &["userpassword"]), tree(&from, &["userpassword"]));
    let code = Command::new("oathtool").args(["--totp", "-b", seed]).output().unwrap();
    let code = String::from_utf8(code.stdout).unwrap();
    let verified = run(&["otp", "verify", "alice"], &code);
    assert!(verified.status.success(), "{}", text(&verified));
}
