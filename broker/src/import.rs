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

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use dirbroker_ldif::{ChangeKind, LdifReader, ModOp, ParseOptions, Record};
use sha2::{Digest, Sha256};

use crate::directory::{Attrs, Change, DirError, Directory, Dn, WriteOp};

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

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or(&[]);
        self.hash.update(got);
        self.size += n as u64;
        Ok(n)
    }
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
        ChangeKind::Modify(mods) => {
            if mods.is_empty() {
                return Err("a modify record without any add:/delete:/replace:/increment: block".into());
            }
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

/// Attribute descriptions and values a modify adds or puts in place, for
/// the schema and syntax checks.
fn change_values(changes: &[Change]) -> Attrs {
    changes
        .iter()
        .map(|c| match c {
            Change::Add(a, v) | Change::Replace(a, v) => {
                (String::from_utf8_lossy(a).into_owned(), v.iter().cloned().collect())
            }
            Change::Delete(a, _) | Change::Increment(a, _) => (String::from_utf8_lossy(a).into_owned(), Vec::new()),
        })
        .collect()
}

/// A secret attribute, the attribute naming its owner, and the seal context.
type SecretKind = (&'static str, &'static str, fn(&str) -> String);

const SECRETS: [SecretKind; 3] = [
    ("dirbrokerotpsecret", "dirbrokerTokenId", crate::seal::context::otp_token),
    ("dirbrokerservertotpsecret", "dirbrokerServerId", crate::seal::context::server_totp),
    ("dirbrokerpsksecret", "dirbrokerPskId", crate::seal::context::psk),
];

/// Seal secrets given in clear (the hook for provisioning files); values
/// already sealed must open with the keyring. `seal == false` only checks.
fn seal_secrets(attrs: &mut Attrs, keyring: Option<&crate::seal::Keyring>, seal: bool) -> Result<(), String> {
    for (secret_attr, id_attr, context_of) in SECRETS {
        let Some(idx) = attrs.iter().position(|(n, _)| n.eq_ignore_ascii_case(secret_attr)) else { continue };
        let id = attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(id_attr))
            .and_then(|(_, v)| v.first())
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or_else(|| format!("{id_attr} is needed to seal {secret_attr}"))?
            .to_string();
        let context = context_of(&id);
        let Some(keyring) = keyring else {
            return Err(format!("{id_attr} {id}: a secret needs the broker keyring ([secrets] keyring_file)"));
        };
        let Some((_, values)) = attrs.get_mut(idx) else { continue };
        for v in values.iter_mut() {
            let sealed = crate::model::Sealed(v.clone());
            if v.starts_with(b"DBS1") {
                keyring.open(&context, &sealed).map_err(|e| format!("{id_attr} {id}: {e}"))?;
            } else if seal {
                *v = keyring.seal(&context, v).map_err(|e| e.to_string())?.0;
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

/// The file's view of the tree while it is checked: DNs the file has
/// added, deleted or renamed so far (by [`dn_key`]), then what the
/// directory holds. 17 bytes per DN the file touches.
struct Tree<'a> {
    dir: Option<&'a Directory>,
    /// `true`: present after the records so far; `false`: deleted or renamed away.
    file: HashMap<[u8; 16], bool>,
    /// Directory answers already asked.
    known: HashMap<[u8; 16], bool>,
}

impl Tree<'_> {
    /// Whether `dn` exists at this point of the file; `None` offline for a
    /// DN the file has not touched.
    async fn exists(&mut self, dn: &Dn) -> Result<Option<bool>, ImportError> {
        let k = dn_key(dn);
        if let Some(&state) = self.file.get(&k) {
            return Ok(Some(state));
        }
        if let Some(&state) = self.known.get(&k) {
            return Ok(Some(state));
        }
        let found = in_directory(self.dir, dn).await?;
        if let Some(f) = found {
            self.known.insert(k, f);
        }
        Ok(found)
    }

    /// Why `dn` cannot be changed here, if it cannot.
    async fn must_exist(&mut self, dn: &Dn) -> Result<Option<String>, ImportError> {
        Ok(match (self.file.get(&dn_key(dn)).copied(), self.exists(dn).await?) {
            (Some(false), _) => Some(format!("{dn} was deleted or renamed earlier in the file")),
            (_, Some(false)) => Some(format!("{dn} does not exist in the directory nor earlier in the file")),
            _ => None,
        })
    }
}

/// Pass 1: read the whole file; report every problem at once. Memory holds
/// 17 bytes per DN the file touches (for duplicate, existence and parent
/// checks), not the entries.
pub async fn check(dir: Option<&Directory>, path: &Path, opts: &ImportOptions) -> Result<Checked, ImportError> {
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let mut hashing = Hashing { inner: file, hash: Sha256::new(), size: 0 };
    let mut out = Checked::default();
    let schema = match dir {
        Some(d) => crate::subschema::Subschema::from_directory(d).await?,
        None => crate::subschema::Subschema::offline(),
    };
    let mut tree = Tree { dir, file: HashMap::new(), known: HashMap::new() };
    {
        let mut reader = LdifReader::with_options(BufReader::new(&mut hashing), options(opts));
        while let Some(item) = reader.next() {
            let line = reader.record_line();
            let record = match item {
                Ok(r) => r,
                Err(e) => {
                    out.note(Problem { line: e.line, dn: String::new(), reason: e.to_string() });
                    continue;
                }
            };
            out.records += 1;
            let dn_text = record.dn().to_string();
            let bad = |reason: String| Problem { line, dn: dn_text.clone(), reason };
            let mut op = match op_of(record) {
                Ok(op) => op,
                Err(r) => {
                    out.note(bad(r));
                    continue;
                }
            };
            match &mut op {
                WriteOp::Add(dn, attrs) => {
                    if let Err(reason) = seal_secrets(attrs, opts.keyring.as_deref(), false) {
                        out.note(bad(reason));
                    }
                    if !schema.is_empty() {
                        for reason in schema.check_entry(attrs) {
                            out.note(bad(reason));
                        }
                    }
                    let k = dn_key(dn);
                    if tree.file.get(&k) == Some(&true) {
                        out.note(bad("this DN appears earlier in the file".into()));
                        continue;
                    }
                    if let Some(parent) = dn.parent() {
                        match tree.exists(&parent).await? {
                            Some(true) | None => {}
                            Some(false) => out.note(bad(format!(
                                "parent {parent} is neither in the directory nor earlier in the file"
                            ))),
                        }
                    }
                    tree.file.insert(k, true);
                }
                WriteOp::Delete(dn) => {
                    if let Some(reason) = tree.must_exist(dn).await? {
                        out.note(bad(format!("cannot delete: {reason}")));
                    }
                    tree.file.insert(dn_key(dn), false);
                }
                WriteOp::Modify(dn, changes) => {
                    if let Some(reason) = tree.must_exist(dn).await? {
                        out.note(bad(format!("cannot modify: {reason}")));
                    }
                    let values = change_values(changes);
                    if let Some((secret, _)) =
                        values.iter().find(|(n, _)| SECRETS.iter().any(|(s, _, _)| n.eq_ignore_ascii_case(s)))
                    {
                        out.note(bad(format!(
                            "{secret} can only be provisioned in an add record (it is sealed to the entry's id)"
                        )));
                    }
                    for reason in schema.check_changes(&values) {
                        out.note(bad(reason));
                    }
                }
                WriteOp::ModDn { dn, new_rdn, new_superior, .. } => {
                    if let Some(reason) = tree.must_exist(dn).await? {
                        out.note(bad(format!("cannot rename: {reason}")));
                    }
                    if let Some(sup) = new_superior.as_ref()
                        && let Some(reason) = tree.must_exist(sup).await?
                    {
                        out.note(bad(format!("newsuperior: {reason}")));
                    }
                    match renamed_dn(dn, new_rdn, new_superior.as_ref()) {
                        Some(target) => {
                            if tree.exists(&target).await? == Some(true) {
                                out.note(bad(format!("cannot rename to {target}: it exists already")));
                            }
                            tree.file.insert(dn_key(dn), false);
                            tree.file.insert(dn_key(&target), true);
                        }
                        None => out.note(bad(format!("the new DN from newrdn {new_rdn:?} is not a DN"))),
                    }
                }
            }
        }
    }
    let mut rest = Vec::new();
    let _ = hashing.read_to_end(&mut rest);
    out.digest = hashing.hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    out.size = hashing.size;
    Ok(out)
}

struct Journal {
    path: PathBuf,
    done: HashSet<usize>,
    /// Batches whose transaction was started (`begin k`) in an earlier run.
    begun: HashSet<usize>,
    file: Option<File>,
}

impl Journal {
    fn open(path: &Path, header: &str, dry_run: bool) -> Result<Journal, ImportError> {
        let mut done = HashSet::new();
        let mut begun = HashSet::new();
        let resumed = path.exists();
        if resumed {
            let f = File::open(path).map_err(|e| file_err(path, e))?;
            let mut lines = BufReader::new(f).lines();
            let first = lines.next().transpose().map_err(|e| file_err(path, e))?.unwrap_or_default();
            if first != header {
                return Err(ImportError::ForeignJournal { path: path.display().to_string() });
            }
            let number = |l: &str, p: &str| l.strip_prefix(p).and_then(|r| r.split_whitespace().next()?.parse().ok());
            for l in lines {
                let l = l.map_err(|e| file_err(path, e))?;
                if let Some(n) = number(&l, "batch ") {
                    done.insert(n);
                } else if let Some(n) = number(&l, "begin ") {
                    begun.insert(n);
                }
            }
        }
        if dry_run {
            return Ok(Journal { path: path.to_path_buf(), done, begun, file: None });
        }
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| file_err(path, e))?;
        if !resumed {
            writeln!(file, "{header}").and_then(|()| file.sync_all()).map_err(|e| file_err(path, e))?;
        }
        Ok(Journal { path: path.to_path_buf(), done, begun, file: Some(file) })
    }

    fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<(), ImportError> {
        if let Some(f) = self.file.as_mut() {
            f.write_fmt(text)
                .and_then(|()| f.write_all(b"\n"))
                .and_then(|()| f.sync_all())
                .map_err(|e| file_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Before the batch's first write: a rerun then knows it may have been committed.
    fn begin(&mut self, batch: usize) -> Result<(), ImportError> {
        self.line(format_args!("begin {batch}"))
    }

    fn commit(&mut self, batch: usize, count: usize) -> Result<(), ImportError> {
        self.line(format_args!("batch {batch} {count}"))?;
        self.done.insert(batch);
        Ok(())
    }
}

/// One operation of a batch, with the line of its record.
#[derive(Debug)]
struct Planned {
    line: usize,
    op: WriteOp,
    /// `--upsert` found the entry already as the file has it.
    unchanged: bool,
}

/// Pass 2 (after a clean check): apply the records in transactions.
/// `progress(done_records, total_records)` is called after each batch.
pub async fn import(
    dir: &Directory,
    path: &Path,
    opts: &ImportOptions,
    checked: &Checked,
    mut progress: impl FnMut(usize, usize),
) -> Result<Summary, ImportError> {
    if checked.problem_count() > 0 && !opts.continue_on_error {
        return Err(ImportError::Invalid(checked.problems.clone()));
    }
    let bad_lines = &checked.bad_lines;
    let journal_path = opts.journal.clone().unwrap_or_else(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".journal");
        PathBuf::from(p)
    });
    let header = format!("dirbroker-import v2 {} {}", checked.size, checked.digest);
    let mut journal = Journal::open(&journal_path, &header, opts.dry_run)?;
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let mut reader = LdifReader::with_options(BufReader::new(file), options(opts));
    let mut summary = Summary::default();
    let batch_size = opts.batch.max(1);
    let mut index = 0usize;
    let mut seen_records = 0usize;
    // A record read that belongs to the next batch.
    let mut pending: Option<Planned> = None;
    let mut done_reading = false;
    loop {
        // Fill a batch: up to `batch` adds, or one delete, modify or rename
        // on its own (see run_batch).
        let mut plan: Vec<Planned> = Vec::with_capacity(batch_size.min(4096));
        plan.extend(pending.take());
        while !done_reading && plan.len() < batch_size && plan.first().is_none_or(|p| matches!(p.op, WriteOp::Add(..)))
        {
            let Some(item) = reader.next() else {
                done_reading = true;
                break;
            };
            let line = reader.record_line();
            let Ok(record) = item else { continue };
            seen_records += 1;
            if bad_lines.contains(&line) {
                continue;
            }
            let Ok(mut op) = op_of(record) else { continue };
            if let WriteOp::Add(_, attrs) = &mut op
                && seal_secrets(attrs, opts.keyring.as_deref(), true).is_err()
            {
                continue; // reported by the check
            }
            let p = Planned { line, op, unchanged: false };
            if !matches!(p.op, WriteOp::Add(..)) && !plan.is_empty() {
                pending = Some(p);
                break;
            }
            plan.push(p);
        }
        if plan.is_empty() {
            break;
        }
        let count = plan.len();
        if journal.done.contains(&index) {
            summary.already_imported += count;
        } else {
            // After an interruption, a batch begun before may have been
            // committed just before its journal line was written.
            let mut tolerant = false;
            let mut skip = false;
            if journal.begun.contains(&index) {
                match probe(dir, &plan, opts.upsert).await? {
                    Some(true) => skip = true,
                    Some(false) => {}
                    None if plan.iter().any(|p| has_increment(&p.op)) => {
                        let (first, last) = (plan.first().map_or(0, |p| p.line), plan.last().map_or(0, |p| p.line));
                        return Err(ImportError::Undecidable { batch: index, first, last });
                    }
                    None => tolerant = true,
                }
            }
            if skip {
                summary.already_imported += count;
                journal.commit(index, count)?;
            } else {
                if opts.upsert {
                    upsert(dir, &mut plan).await?;
                }
                if opts.dry_run {
                    for p in &plan {
                        summary.count(p);
                    }
                } else {
                    journal.begin(index)?;
                    run_batch(dir, index, plan, tolerant, opts, &mut summary).await?;
                    journal.commit(index, count)?;
                }
            }
        }
        summary.batches += 1;
        index += 1;
        progress(seen_records, checked.records);
    }
    Ok(summary)
}

fn has_increment(op: &WriteOp) -> bool {
    matches!(op, WriteOp::Modify(_, changes) if changes.iter().any(|c| matches!(c, Change::Increment(..))))
}

/// Whether a batch that was begun before an interruption was committed,
/// judged by the entries it creates or removes (a transaction is all or
/// nothing): `Some(true)` if every such entry is as after the batch,
/// `Some(false)` if every one is as before it, `None` if the batch creates
/// or removes nothing (only modifies; with `--upsert`, adds are left out:
/// they are idempotent) or the directory is in between.
async fn probe(dir: &Directory, plan: &[Planned], upsert: bool) -> Result<Option<bool>, ImportError> {
    // DN key -> (DN, exists before the batch, exists after it).
    let mut net: HashMap<[u8; 16], (Dn, bool, bool)> = HashMap::new();
    let mut touch = |dn: &Dn, before: bool, after: bool| {
        net.entry(dn_key(dn)).and_modify(|e| e.2 = after).or_insert((dn.clone(), before, after));
    };
    for p in plan {
        match &p.op {
            WriteOp::Add(dn, _) if !upsert => touch(dn, false, true),
            WriteOp::Add(dn, _) | WriteOp::Modify(dn, _) => touch(dn, true, true),
            WriteOp::Delete(dn) => touch(dn, true, false),
            WriteOp::ModDn { dn, new_rdn, new_superior, .. } => {
                touch(dn, true, false);
                if let Some(target) = renamed_dn(dn, new_rdn, new_superior.as_ref()) {
                    touch(&target, false, true);
                }
            }
        }
    }
    let (mut as_after, mut as_before) = (0usize, 0usize);
    for (dn, before, after) in net.values() {
        if before == after {
            continue;
        }
        match in_directory(Some(dir), dn).await? {
            Some(now) if now == *after => as_after += 1,
            Some(_) => as_before += 1,
            None => {}
        }
    }
    Ok(match (as_after, as_before) {
        (0, 0) => None,
        (_, 0) => Some(true),
        (0, _) => Some(false),
        _ => None,
    })
}

/// `--upsert`: an add whose entry exists becomes the minimal modify that
/// turns the entry into the file's version (or nothing, if it is already).
/// Adds of DNs an earlier record of the same batch touches stay adds.
async fn upsert(dir: &Directory, plan: &mut [Planned]) -> Result<(), ImportError> {
    let mut touched: HashSet<[u8; 16]> = HashSet::new();
    let mut candidates = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let k = dn_key(p.op.dn());
        if matches!(p.op, WriteOp::Add(..)) && !touched.contains(&k) {
            candidates.push(i);
        }
        touched.insert(k);
        if let WriteOp::ModDn { dn, new_rdn, new_superior, .. } = &p.op
            && let Some(t) = renamed_dn(dn, new_rdn, new_superior.as_ref())
        {
            touched.insert(dn_key(&t));
        }
    }
    // Read the existing entries a window at a time, concurrently.
    for window in candidates.chunks(64) {
        let reads = window.iter().filter_map(|&i| plan.get(i)).map(|p| dir.read(p.op.dn(), &["*"]));
        let found = futures_util::future::join_all(reads).await;
        for (&i, got) in window.iter().zip(found) {
            let existing = match got {
                Ok(e) => e,
                Err(DirError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(p) = plan.get_mut(i) else { continue };
            let WriteOp::Add(dn, attrs) = &p.op else { continue };
            let changes = minimal_modify(&existing, attrs);
            p.unchanged = changes.is_empty();
            p.op = WriteOp::Modify(dn.clone(), changes);
        }
    }
    Ok(())
}

/// The changes turning `existing` into an entry with exactly `wanted`'s
/// user attributes. Attribute descriptions compare case-insensitively,
/// values exactly (bytes). Operational attributes are not read, so they are
/// left alone; so are secret attributes the file leaves out (an export
/// leaves them out: importing it must not wipe passwords and seeds).
pub fn minimal_modify(existing: &crate::directory::Entry, wanted: &Attrs) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut named: HashSet<String> = HashSet::new();
    for (name, values) in wanted {
        let key = name.to_ascii_lowercase();
        if !named.insert(key) {
            continue;
        }
        let have = existing.values(name);
        let want: Vec<&Vec<u8>> = {
            let mut w: Vec<&Vec<u8>> = Vec::new();
            for v in values {
                if !w.contains(&v) {
                    w.push(v);
                }
            }
            w
        };
        let gone: HashSet<Vec<u8>> = have.iter().filter(|v| !want.contains(v)).cloned().collect();
        let new: HashSet<Vec<u8>> = want.iter().filter(|v| !have.contains(v)).map(|v| (*v).clone()).collect();
        if !gone.is_empty() {
            changes.push(Change::Delete(name.as_bytes().to_vec(), gone));
        }
        if !new.is_empty() {
            changes.push(Change::Add(name.as_bytes().to_vec(), new));
        }
    }
    for name in existing.attribute_names() {
        let key = name.to_ascii_lowercase();
        let base = key.split(';').next().unwrap_or(&key);
        if named.contains(&key) || SECRET_ATTRS.contains(&base) {
            continue;
        }
        changes.push(Change::Delete(name.as_bytes().to_vec(), HashSet::new()));
    }
    changes
}

/// Attributes `export` leaves out unless asked, and `--upsert` does not
/// remove when the file leaves them out.
pub const SECRET_ATTRS: &[&str] = &[
    "userpassword",
    "dirbrokerotpsecret",
    "dirbrokerservertotpsecret",
    "dirbrokerpsksecret",
    "dirbrokersealedsshprivatekey",
];

impl Summary {
    fn count(&mut self, p: &Planned) {
        match &p.op {
            _ if p.unchanged => self.unchanged += 1,
            WriteOp::Add(..) => self.added += 1,
            WriteOp::Modify(..) => self.modified += 1,
            WriteOp::Delete(_) => self.deleted += 1,
            WriteOp::ModDn { .. } => self.renamed += 1,
        }
    }
}

async fn run_batch(
    dir: &Directory,
    index: usize,
    plan: Vec<Planned>,
    tolerant: bool,
    opts: &ImportOptions,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    // Only adds go into the transaction. Deletes, modifies and renames are
    // batches of one (an operation is atomic by itself), and --upsert's
    // modifies follow the batch's adds one by one: with modifies in its
    // transactions, the Debian slapd 2.5 here answered later operations with
    // "internal error" or crashed (segfault) now and then.
    let (adds, others): (Vec<Planned>, Vec<Planned>) =
        plan.into_iter().partition(|p| matches!(p.op, WriteOp::Add(..)) && !p.unchanged);
    let ops: Vec<WriteOp> = adds.iter().map(|p| p.op.clone()).collect();
    let outcome = if ops.is_empty() { Ok(()) } else { dir.apply_in_transaction(ops).await };
    let plan = match outcome {
        Ok(()) => {
            for p in &adds {
                summary.count(p);
            }
            others
        }
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(_) => adds.into_iter().chain(others).collect(),
    };
    // What is left goes one by one: the operations that are not adds, or,
    // when slapd refused the transaction as a whole, everything, to find out
    // which records are at fault (and, after an interruption that left the
    // directory in between, which are applied already).
    for p in plan {
        if p.unchanged {
            summary.count(&p);
            continue;
        }
        match dir.apply(&p.op).await {
            Ok(()) => summary.count(&p),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) if tolerant && already_applied(&p.op, &e) => summary.already_imported += 1,
            Err(e) if opts.continue_on_error => {
                summary.failed.push(Problem { line: p.line, dn: p.op.dn().to_string(), reason: e.to_string() })
            }
            Err(e) => {
                return Err(ImportError::Batch { batch: index, line: p.line, dn: p.op.dn().to_string(), source: e });
            }
        }
    }
    Ok(())
}

/// Whether `e` says `op` was applied before (tolerated only for a batch an
/// interruption left in between).
fn already_applied(op: &WriteOp, e: &DirError) -> bool {
    match op {
        WriteOp::Add(..) => matches!(e, DirError::AlreadyExists { .. }),
        WriteOp::Delete(_) | WriteOp::ModDn { .. } => matches!(e, DirError::NotFound { .. }),
        WriteOp::Modify(..) => e.is_stale_value(),
    }
}
