//! LDIF import: check the whole file first, then apply its records in the
//! file's order — adds in LDAP transactions of `batch` entries, each delete,
//! modify or modrdn as a step of its own — journaling each batch, so an
//! interrupted import (Ctrl-C, a crash, a killed slapd) is finished by
//! running the same command again — nothing lost, nothing applied twice.
//!
//! ```text
//!  pass 1: parse every record, DN syntax, schema (the server's subschema),
//!          our own syntaxes, duplicate DNs, parents, entries that a change
//!          needs (in the directory or added earlier, not deleted earlier),
//!          sha256 ─► report (nothing written on errors)
//!  pass 2: batch k (adds, or one change) ─► journal "begin k" ─► [--upsert:
//!          read; adds of existing entries become minimal modifies] ─► txn of
//!          the adds ─► other operations one by one ─► journal "batch k"
//!          (each journal line fsynced)
//!  resume: skip journaled batches; a batch begun but not journaled is probed:
//!          the entries it creates or removes show whether it was done.
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dirbroker_ldif::{ChangeKind, ModOp, ParseOptions, Record};
use sha2::{Digest, Sha256};

use crate::directory::{Attrs, Change, DirError, Directory, Dn, WriteOp};

mod apply;
mod check;
mod journal;
mod upsert;

pub use apply::import;
pub use check::check;
pub use upsert::{SECRET_ATTRS, minimal_modify};

/// What an entry is, for `export` and `--upsert`: the user attributes, and
/// the operational ones users set (authzTo, authzFrom), which `*` leaves out.
pub const ENTRY_ATTRS: &[&str] = &["*", "authzTo", "authzFrom"];

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Entries per transaction. 900 keeps a whole batch in flight at once
    /// under slapd's default olcConnMaxPendingAuth (1000).
    pub batch: usize,
    /// Write nothing; only check.
    pub dry_run: bool,
    /// Add what can be added, report the rest.
    pub continue_on_error: bool,
    /// An add of an entry that exists becomes a minimal modify to the file's version.
    pub upsert: bool,
    /// Journal file (default: FILE.journal).
    pub journal: Option<PathBuf>,
    /// Directory `:< file://` values may come from (off when unset).
    pub url_base: Option<PathBuf>,
    /// Seals secrets a provisioning file gives in clear (OTP seeds, server
    /// TOTP secrets, pre-shared keys) before they reach LDAP.
    pub keyring: Option<std::sync::Arc<crate::seal::Keyring>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch: 900,
            dry_run: false,
            continue_on_error: false,
            upsert: false,
            journal: None,
            url_base: None,
            keyring: None,
        }
    }
}

/// A problem with one record, located in the file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub dn: String,
    pub reason: String,
}

/// A hostile file could have a problem in every record: only this many are
/// kept in full, the rest are counted (memory stays bounded).
pub const MAX_LISTED_PROBLEMS: usize = 10_000;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Checked {
    pub records: usize,
    /// The first [`MAX_LISTED_PROBLEMS`] problems, for people to read.
    pub problems: Vec<Problem>,
    /// What the file has that RFC 2849 does not allow but `ldapadd` and
    /// `ldapmodify` accept, and so does the import (see [`dirbroker_ldif::LdifWarning`]).
    pub warnings: Vec<Problem>,
    /// Problems beyond those listed.
    pub more_problems: usize,
    /// Lines of every record with a problem (import skips them).
    #[serde(skip)]
    pub bad_lines: HashSet<usize>,
    #[serde(skip)]
    pub digest: String,
    #[serde(skip)]
    pub size: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub added: usize,
    /// Modify records applied, and (`--upsert`) existing entries changed.
    pub modified: usize,
    pub deleted: usize,
    pub renamed: usize,
    /// `--upsert`: existing entries already as the file has them.
    pub unchanged: usize,
    /// In batches a previous run committed.
    pub already_imported: usize,
    pub failed: Vec<Problem>,
    pub batches: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("the file has problems (the first {} listed); nothing was written", .0.len())]
    Invalid(Vec<Problem>),
    #[error("journal {path} belongs to another version of this file; finish with that file or delete the journal")]
    ForeignJournal { path: String },
    #[error("batch {batch} failed at line {line} ({dn}): {source}")]
    Batch { batch: usize, line: usize, dn: String, source: DirError },
    #[error(
        "cannot tell whether batch {batch} (records at lines {first}-{last}), interrupted while it was written, was \
         committed: it only modifies entries and has an increment, which must not be applied twice. Look at those \
         entries; if the changes are there, append the line 'batch {batch} 0' to the journal; then run again"
    )]
    Undecidable { batch: usize, first: usize, last: usize },
    #[error("{dn}: {reason}")]
    Reseal { dn: String, reason: String },
    #[error(transparent)]
    Directory(#[from] DirError),
}

fn file_err(path: &Path, e: impl ToString) -> ImportError {
    ImportError::File { path: path.display().to_string(), reason: e.to_string() }
}

fn options(o: &ImportOptions) -> ParseOptions {
    let mut p = ParseOptions::default();
    if let Some(b) = &o.url_base {
        p = p.with_url_base(b.clone());
    }
    p
}

/// What a record asks of the directory, or why it cannot be imported.
/// Content records and `changetype: add` are adds.
fn op_of(record: Record) -> Result<WriteOp, String> {
    let parse_dn = |dn: &str| -> Result<Dn, String> {
        match Dn::parse(dn) {
            Ok(d) if d.is_root() => Err("the root DSE cannot be imported or changed".into()),
            Ok(d) => Ok(d),
            Err(e) => Err(e.to_string()),
        }
    };
    let (dn, kind) = match record {
        Record::Content(e) => (e.dn, ChangeKind::Add(e.attrs)),
        Record::Change(c) => (c.dn, c.kind),
    };
    let dn = parse_dn(&dn)?;
    Ok(match kind {
        ChangeKind::Add(attrs) => {
            let attrs: Attrs = attrs.into_iter().map(|a| (a.name, a.values)).collect();
            if !attrs.iter().any(|(n, _)| n.eq_ignore_ascii_case("objectClass")) {
                return Err("no objectClass".into());
            }
            WriteOp::Add(dn, attrs)
        }
        ChangeKind::Delete => WriteOp::Delete(dn),
        // An empty modify (RFC 2849 allows it) is sent as it is, as
        // ldapmodify does: it changes nothing and fails if the entry is missing.
        ChangeKind::Modify(mods) => {
            let mut changes = Vec::with_capacity(mods.len());
            for m in mods {
                let name = m.attr.into_bytes();
                let attr = String::from_utf8_lossy(&name).into_owned();
                changes.push(match m.op {
                    ModOp::Add if m.values.is_empty() => return Err(format!("add: {attr} without values")),
                    ModOp::Add => Change::Add(name, m.values.into_iter().collect()),
                    ModOp::Delete => Change::Delete(name, m.values.into_iter().collect()),
                    ModOp::Replace => Change::Replace(name, m.values.into_iter().collect()),
                    ModOp::Increment => match <[Vec<u8>; 1]>::try_from(m.values) {
                        Ok([v]) if std::str::from_utf8(&v).is_ok_and(|t| t.parse::<i64>().is_ok()) => {
                            Change::Increment(name, v)
                        }
                        _ => return Err(format!("increment: {attr} needs exactly one integer value")),
                    },
                });
            }
            WriteOp::Modify(dn, changes)
        }
        ChangeKind::ModRdn { new_rdn, delete_old_rdn, new_superior } => {
            let rdn = Dn::parse(&new_rdn).map_err(|e| format!("newrdn: {e}"))?;
            if rdn.depth() != 1 {
                return Err(format!("newrdn {new_rdn:?} is not a single RDN"));
            }
            let new_superior =
                new_superior.map(|s| parse_dn(&s).map_err(|e| format!("newsuperior: {e}"))).transpose()?;
            WriteOp::ModDn { dn, new_rdn, delete_old_rdn, new_superior }
        }
    })
}

/// Values given twice in one attribute of an add, or in one add:/replace:
/// block of a modify — byte for byte, or equal by the attribute's equality
/// rule where the check knows it ([`crate::subschema::Subschema::equal_values`]):
/// slapd refuses such a record (attributeOrValueExists, "provided more than
/// once") and so does the check, where the directory would otherwise get the
/// values merged. (A delete: block naming a value twice slapd takes, so it
/// is not listed.)
fn repeated_values(record: &Record, schema: &crate::subschema::Subschema) -> Vec<String> {
    let blocks: Vec<(&str, &[Vec<u8>])> = match record {
        Record::Content(e) => e.attrs.iter().map(|a| (a.name.as_str(), a.values.as_slice())).collect(),
        Record::Change(c) => match &c.kind {
            ChangeKind::Add(attrs) => attrs.iter().map(|a| (a.name.as_str(), a.values.as_slice())).collect(),
            ChangeKind::Modify(mods) => mods
                .iter()
                .filter(|m| matches!(m.op, ModOp::Add | ModOp::Replace))
                .map(|m| (m.attr.as_str(), m.values.as_slice()))
                .collect(),
            ChangeKind::Delete | ChangeKind::ModRdn { .. } => Vec::new(),
        },
    };
    let mut out = Vec::new();
    for (attr, values) in blocks {
        // A handful of values each (compared pairwise), rarely many (hashed).
        let mut repeated: Vec<&[u8]> = Vec::new();
        if values.len() <= 16 {
            for (i, v) in values.iter().enumerate() {
                let earlier = values.get(..i).unwrap_or_default();
                if earlier.contains(v) && !repeated.contains(&v.as_slice()) {
                    repeated.push(v);
                }
            }
        } else {
            let mut seen: HashSet<&[u8]> = HashSet::new();
            for v in values {
                if !seen.insert(v) && !repeated.contains(&v.as_slice()) {
                    repeated.push(v);
                }
            }
        }
        for v in &repeated {
            out.push(format!(
                "{attr}: value {:?} is given more than once (the directory refuses that: attributeOrValueExists)",
                String::from_utf8_lossy(v)
            ));
        }
        if repeated.is_empty()
            && values.len() > 1
            && let Some((a, b, rule)) = schema.equal_values(attr, values)
        {
            out.push(format!(
                "{attr}: values {:?} and {:?} are equal by {rule} (the directory refuses that: \
                 attributeOrValueExists)",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ));
        }
    }
    out
}

/// The DN an entry has after a modrdn.
fn renamed_dn(dn: &Dn, new_rdn: &str, new_superior: Option<&Dn>) -> Option<Dn> {
    let parent = match new_superior {
        Some(s) => Some(s.clone()),
        None => dn.parent(),
    };
    let text = match parent {
        Some(p) => format!("{new_rdn},{p}"),
        None => new_rdn.to_string(),
    };
    Dn::parse(&text).ok()
}

/// The sealed attributes (lower case).
const SECRETS: [&str; 3] = ["dirbrokerotpsecret", "dirbrokerservertotpsecret", "dirbrokerpsksecret"];

/// Attributes bound into the seal of their entry's secret (lower case): a
/// modify that changes one would leave the secret unopenable.
const BOUND: [&str; 7] = [
    "dirbrokertokenowner",
    "dirbrokerdatacenter",
    "dirbrokertokentype",
    "dirbrokerotpalgorithm",
    "dirbrokerotpdigits",
    "dirbrokerotpperiod",
    "dirbrokerpskparty",
];

/// The seal context of the entry an add record creates: its id and the
/// attributes that decide whom the secret serves, as the file gives them.
fn seal_context(secret_attr: &str, entry: &crate::directory::Entry) -> Result<crate::seal::Context, String> {
    use crate::model::{DirEntry, OtpToken, PhysicalServer, PreSharedKey};
    use crate::seal::context;
    match secret_attr {
        "dirbrokerotpsecret" => OtpToken::from_entry(entry).map(|t| context::otp_token(&t)),
        "dirbrokerservertotpsecret" => PhysicalServer::from_entry(entry).map(|p| context::server_totp(&p)),
        _ => PreSharedKey::from_entry(entry).map(|p| context::psk(&p)),
    }
    .map_err(|e| format!("cannot seal {secret_attr}: {e}"))
}

/// Seal secrets given in clear (the hook for provisioning files), for the
/// entry's owner, parties or data center as the file gives them. Values
/// already sealed must open for them; a v1 value (an export from before
/// sealing v2) is re-sealed as v2. `seal == false` only checks.
fn seal_secrets(dn: &Dn, attrs: &mut Attrs, keyring: Option<&crate::seal::Keyring>, seal: bool) -> Result<(), String> {
    use crate::seal::Format;
    for secret_attr in SECRETS {
        let Some(idx) = attrs.iter().position(|(n, _)| n.eq_ignore_ascii_case(secret_attr)) else { continue };
        let Some(keyring) = keyring else {
            return Err(format!("{secret_attr}: a secret needs the broker keyring ([secrets] keyring_file)"));
        };
        let context = seal_context(secret_attr, &crate::directory::Entry::from_attrs(dn.clone(), attrs))?;
        let Some((_, values)) = attrs.get_mut(idx) else { continue };
        for v in values.iter_mut() {
            let sealed = crate::model::Sealed(v.clone());
            match Format::of(&sealed) {
                Some(Format::V2) => {
                    keyring.open(&context, &sealed).map_err(|e| format!("{secret_attr} of {context}: {e}"))?;
                }
                Some(Format::V1) => {
                    let (plain, _) = keyring
                        .open_for_upgrade(&context, &sealed)
                        .map_err(|e| format!("{secret_attr} of {context}: {e}"))?;
                    if seal {
                        *v = keyring.seal(&context, &plain).map_err(|e| e.to_string())?.0;
                    }
                }
                None if seal => *v = keyring.seal(&context, v).map_err(|e| e.to_string())?.0,
                None => {}
            }
        }
    }
    Ok(())
}

/// 16 bytes standing for a DN in the duplicate, existence and parent
/// checks: a hash of [`Dn::normalized`], so `cn=A\,B` and `cn=A\2CB`, or
/// `CN=x` and `cn=X`, are one entry, as the server sees them.
fn dn_key(dn: &Dn) -> [u8; 16] {
    let d = Sha256::digest(dn.normalized().as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
    k
}

impl Checked {
    fn note(&mut self, p: Problem) {
        self.bad_lines.insert(p.line);
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }

    /// How many problems there are in all.
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.more_problems
    }
}

/// Whether `dn` exists in the directory; `None` offline.
async fn in_directory(dir: Option<&Directory>, dn: &Dn) -> Result<Option<bool>, ImportError> {
    let Some(d) = dir else { return Ok(None) };
    match d.read(dn, &["1.1"]).await {
        Ok(_) => Ok(Some(true)),
        Err(DirError::NotFound { .. }) => Ok(Some(false)),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(_) => Ok(Some(false)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use dirbroker_ldif::{Attr, ChangeRecord, Entry, ModSpec};

    use super::*;

    /// The one record of an LDIF text, as the parser hands it to the import.
    fn parsed(ldif: &str) -> Record {
        let mut records = dirbroker_ldif::parse_all(ldif.as_bytes(), ParseOptions::default()).unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        records.remove(0)
    }

    fn change(dn: &str, kind: ChangeKind) -> Record {
        Record::Change(ChangeRecord { dn: dn.into(), controls: Vec::new(), kind })
    }

    fn modify(blocks: &[(ModOp, &str, &[&str])]) -> Record {
        let specs = blocks
            .iter()
            .map(|(op, attr, values)| ModSpec {
                op: *op,
                attr: attr.to_string(),
                values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
            })
            .collect();
        change("cn=a,dc=example,dc=org", ChangeKind::Modify(specs))
    }

    fn set(values: &[&str]) -> HashSet<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    #[test]
    fn op_of_content_and_add_records_are_adds_with_the_file_attributes() {
        let content = "dn: cn=a,dc=example,dc=org\nobjectClass: device\ncn: a\ndescription: one\ndescription: two\n";
        let with_changetype = "dn: cn=a,dc=example,dc=org\nchangetype: add\nobjectClass: device\ncn: a\ndescription: one\ndescription: two\n";
        for ldif in [content, with_changetype] {
            let WriteOp::Add(dn, attrs) = op_of(parsed(ldif)).unwrap() else { panic!("not an add: {ldif}") };
            assert_eq!(dn, Dn::parse("cn=a,dc=example,dc=org").unwrap());
            assert_eq!(
                attrs,
                vec![
                    ("objectClass".to_string(), vec![b"device".to_vec()]),
                    ("cn".to_string(), vec![b"a".to_vec()]),
                    ("description".to_string(), vec![b"one".to_vec(), b"two".to_vec()]),
                ]
            );
        }
    }

    #[test]
    fn op_of_maps_each_modify_block_in_order() {
        let record = modify(&[
            (ModOp::Add, "mail", &["a@example.org"]),
            (ModOp::Delete, "description", &[]),
            (ModOp::Replace, "sn", &["B", "C"]),
            (ModOp::Increment, "uidNumber", &["-2"]),
        ]);
        let WriteOp::Modify(dn, changes) = op_of(record).unwrap() else { panic!("not a modify") };
        assert_eq!(dn.as_str(), "cn=a,dc=example,dc=org");
        assert_eq!(
            changes,
            vec![
                Change::Add(b"mail".to_vec(), set(&["a@example.org"])),
                Change::Delete(b"description".to_vec(), set(&[])),
                Change::Replace(b"sn".to_vec(), set(&["B", "C"])),
                Change::Increment(b"uidNumber".to_vec(), b"-2".to_vec()),
            ]
        );
    }

    /// As slapd: a value twice in an add or an add:/replace: block is
    /// refused, in a delete: block taken; an empty modify is a modify.
    #[test]
    fn repeated_values_and_empty_modifies() {
        let twice = parsed("dn: cn=a,dc=example,dc=org\nobjectClass: device\ncn: a\ncn: b\nCN: a\ncn: a\n");
        let schema = crate::subschema::Subschema::offline();
        assert_eq!(
            repeated_values(&twice, &schema),
            ["cn: value \"a\" is given more than once (the directory refuses that: attributeOrValueExists)"]
        );
        let blocks = modify(&[
            (ModOp::Add, "mail", &["m", "m"]),
            (ModOp::Replace, "sn", &["s", "t", "s"]),
            (ModOp::Delete, "description", &["d", "d"]),
        ]);
        let got = repeated_values(&blocks, &schema);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("mail: value \"m\"") && got[1].starts_with("sn: value \"s\""), "{got:?}");
        assert!(
            repeated_values(&parsed("dn: cn=a,dc=example,dc=org\nobjectClass: device\ncn: a\n"), &schema).is_empty()
        );
        // Equal by the equality rule: case and spaces for caseIgnoreMatch,
        // spaces and hyphens for telephone numbers, integers by value; not
        // for caseExact (case) or an octet string.
        let by_rule = parsed(
            "dn: cn=a,dc=example,dc=org\nobjectClass: device\ncn: Two  Words\ncn: two words\n\
             description: A\ndescription: a\n",
        );
        assert_eq!(
            repeated_values(&by_rule, &schema),
            [
                "cn: values \"Two  Words\" and \"two words\" are equal by caseIgnoreMatch (the directory refuses that: \
                 attributeOrValueExists)",
                "description: values \"A\" and \"a\" are equal by caseIgnoreMatch (the directory refuses that: \
                 attributeOrValueExists)",
            ]
        );
        let phone = modify(&[(ModOp::Add, "telephoneNumber", &["+1 555-0100", "+15550100"])]);
        assert!(
            repeated_values(&phone, &schema)[0].contains("telephoneNumberMatch"),
            "{:?}",
            repeated_values(&phone, &schema)
        );
        let distinct = modify(&[
            (ModOp::Replace, "labeledURI", &["http://a", "HTTP://a"]),
            (ModOp::Replace, "userPassword", &["x", "X"]),
        ]);
        assert!(repeated_values(&distinct, &schema).is_empty(), "{:?}", repeated_values(&distinct, &schema));
        let WriteOp::Modify(dn, changes) = op_of(modify(&[])).unwrap() else { panic!("not a modify") };
        assert_eq!((dn.as_str(), changes.len()), ("cn=a,dc=example,dc=org", 0));
    }

    #[test]
    fn op_of_delete_and_modrdn() {
        let WriteOp::Delete(dn) = op_of(change("cn=a,dc=example,dc=org", ChangeKind::Delete)).unwrap() else {
            panic!("not a delete")
        };
        assert_eq!(dn.as_str(), "cn=a,dc=example,dc=org");
        let rename = ChangeKind::ModRdn {
            new_rdn: "cn=b".into(),
            delete_old_rdn: true,
            new_superior: Some("ou=hosts,dc=example,dc=org".into()),
        };
        let WriteOp::ModDn { dn, new_rdn, delete_old_rdn, new_superior } =
            op_of(change("cn=a,dc=example,dc=org", rename)).unwrap()
        else {
            panic!("not a rename")
        };
        assert_eq!((dn.as_str(), new_rdn.as_str(), delete_old_rdn), ("cn=a,dc=example,dc=org", "cn=b", true));
        assert_eq!(new_superior, Some(Dn::parse("ou=hosts,dc=example,dc=org").unwrap()));
    }

    #[test]
    fn op_of_refuses_records_the_directory_cannot_take() {
        let entry = |dn: &str, attrs: &[(&str, &str)]| {
            Record::Content(Entry {
                dn: dn.into(),
                attrs: attrs
                    .iter()
                    .map(|(n, v)| Attr { name: n.to_string(), values: vec![v.as_bytes().to_vec()] })
                    .collect(),
            })
        };
        let rename = |new_rdn: &str, new_superior: Option<&str>| {
            change(
                "cn=a,dc=example,dc=org",
                ChangeKind::ModRdn {
                    new_rdn: new_rdn.into(),
                    delete_old_rdn: false,
                    new_superior: new_superior.map(str::to_string),
                },
            )
        };
        let cases = [
            (entry("cn=a,dc=example,dc=org", &[("cn", "a")]), "no objectClass"),
            (entry("", &[("objectClass", "top")]), "the root DSE cannot be imported or changed"),
            (change("", ChangeKind::Delete), "the root DSE cannot be imported or changed"),
            (modify(&[(ModOp::Add, "mail", &[])]), "add: mail without values"),
            (
                modify(&[(ModOp::Increment, "uidNumber", &["two"])]),
                "increment: uidNumber needs exactly one integer value",
            ),
            (
                modify(&[(ModOp::Increment, "uidNumber", &["1", "2"])]),
                "increment: uidNumber needs exactly one integer value",
            ),
            (modify(&[(ModOp::Increment, "uidNumber", &[])]), "increment: uidNumber needs exactly one integer value"),
            (rename("cn=b,ou=c", None), "newrdn \"cn=b,ou=c\" is not a single RDN"),
            (rename("cn=b", Some("")), "newsuperior: the root DSE cannot be imported or changed"),
        ];
        for (record, reason) in cases {
            let shown = format!("{record:?}");
            assert_eq!(op_of(record).map(|op| format!("{op:?}")), Err(reason.to_string()), "{shown}");
        }
        // A DN that does not parse is refused with the parser's reason.
        assert!(op_of(change("not a dn", ChangeKind::Delete)).is_err());
        assert!(op_of(rename("not an rdn", None)).unwrap_err().starts_with("newrdn: "));
    }
}
