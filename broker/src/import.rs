//! LDIF import: check the whole file first, then add its entries in LDAP
//! transactions of `batch` entries, journaling each committed batch, so an
//! interrupted import (Ctrl-C, a crash, a killed slapd) is finished by
//! running the same command again — nothing lost, nothing added twice.
//!
//! ```text
//!  pass 1: parse every record, DN syntax, schema (the server's subschema),
//!          our own syntaxes, duplicate DNs, parents, sha256 ─► report (nothing written on errors)
//!  pass 2: batch k ─► start txn ─► add … add ─► commit ─► journal "batch k"  (fsync)
//!          resume: skip journaled batches; in the first unjournaled one an
//!          entry that already exists was committed just before the crash.
//! ```

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use dirbroker_ldif::{ChangeKind, LdifReader, ParseOptions, Record};
use sha2::{Digest, Sha256};

use crate::directory::{Attrs, DirError, Directory, Dn};

#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Entries per transaction. 900 keeps a whole batch in flight at once
    /// under slapd's default olcConnMaxPendingAuth (1000).
    pub batch: usize,
    /// Write nothing; only check.
    pub dry_run: bool,
    /// Add what can be added, report the rest.
    pub continue_on_error: bool,
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
    #[error("batch {batch} failed at {dn}: {source}")]
    Batch { batch: usize, dn: String, source: DirError },
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

/// The entry a record adds, or why it cannot be imported.
fn entry_of(record: Record) -> Result<(String, Attrs), String> {
    let (dn, attrs) = match record {
        Record::Content(e) => (e.dn, e.attrs),
        Record::Change(c) => match c.kind {
            ChangeKind::Add(attrs) => (c.dn, attrs),
            _ => return Err("only content records and changetype: add are imported".into()),
        },
    };
    let attrs: Attrs = attrs.into_iter().map(|a| (a.name, a.values)).collect();
    if !attrs.iter().any(|(n, _)| n.eq_ignore_ascii_case("objectClass")) {
        return Err("no objectClass".into());
    }
    Ok((dn, attrs))
}

/// 16 bytes standing for a DN in the duplicate and parent checks (ASCII
/// case folded; two spellings of one DN with different escapes count as two).
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

fn dn_key(dn: &Dn) -> [u8; 16] {
    let folded = dn.as_str().to_ascii_lowercase();
    let d = Sha256::digest(folded.as_bytes());
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

/// Pass 1: read the whole file; report every problem at once. Memory holds
/// 16 bytes per entry (for duplicate and parent checks), not the entries.
pub async fn check(dir: Option<&Directory>, path: &Path, opts: &ImportOptions) -> Result<Checked, ImportError> {
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let mut hashing = Hashing { inner: file, hash: Sha256::new(), size: 0 };
    let mut out = Checked::default();
    let schema = match dir {
        Some(d) => crate::subschema::Subschema::from_directory(d).await?,
        None => crate::subschema::Subschema::offline(),
    };
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut parents_known: HashSet<[u8; 16]> = HashSet::new();
    {
        let mut reader = LdifReader::with_options(BufReader::new(&mut hashing), options(opts));
        while let Some(item) = reader.next() {
            let line = reader.line_number();
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
            let (dn_str, mut attrs) = match entry_of(record) {
                Ok(e) => e,
                Err(r) => {
                    out.note(bad(r));
                    continue;
                }
            };
            let dn = match Dn::parse(&dn_str) {
                Ok(d) if !d.is_root() => d,
                Ok(_) => {
                    out.note(bad("the root DSE cannot be imported".into()));
                    continue;
                }
                Err(e) => {
                    out.note(bad(e.to_string()));
                    continue;
                }
            };
            if let Err(reason) = seal_secrets(&mut attrs, opts.keyring.as_deref(), false) {
                out.note(bad(reason));
            }
            if !schema.is_empty() {
                for reason in schema.check_entry(&attrs) {
                    out.note(bad(reason));
                }
            }
            if !seen.insert(dn_key(&dn)) {
                out.note(bad("this DN appears earlier in the file".into()));
                continue;
            }
            if let Some(parent) = dn.parent() {
                let pk = dn_key(&parent);
                if !seen.contains(&pk) && !parents_known.contains(&pk) {
                    let exists = match dir {
                        Some(d) => d.read(&parent, &["1.1"]).await.is_ok(),
                        None => true,
                    };
                    if exists {
                        parents_known.insert(pk);
                    } else {
                        out.note(bad(format!("parent {parent} is neither in the directory nor earlier in the file")));
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
    resumed: bool,
    file: Option<File>,
}

impl Journal {
    fn open(path: &Path, header: &str, dry_run: bool) -> Result<Journal, ImportError> {
        let mut done = HashSet::new();
        let resumed = path.exists();
        if resumed {
            let f = File::open(path).map_err(|e| file_err(path, e))?;
            let mut lines = BufReader::new(f).lines();
            let first = lines.next().transpose().map_err(|e| file_err(path, e))?.unwrap_or_default();
            if first != header {
                return Err(ImportError::ForeignJournal { path: path.display().to_string() });
            }
            for l in lines {
                let l = l.map_err(|e| file_err(path, e))?;
                if let Some(n) = l.strip_prefix("batch ").and_then(|r| r.split_whitespace().next()?.parse().ok()) {
                    done.insert(n);
                }
            }
        }
        if dry_run {
            return Ok(Journal { path: path.to_path_buf(), done, resumed, file: None });
        }
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| file_err(path, e))?;
        if !resumed {
            writeln!(file, "{header}").and_then(|()| file.sync_all()).map_err(|e| file_err(path, e))?;
        }
        Ok(Journal { path: path.to_path_buf(), done, resumed, file: Some(file) })
    }

    fn commit(&mut self, batch: usize, count: usize) -> Result<(), ImportError> {
        if let Some(f) = self.file.as_mut() {
            writeln!(f, "batch {batch} {count}").and_then(|()| f.sync_all()).map_err(|e| file_err(&self.path, e))?;
        }
        self.done.insert(batch);
        Ok(())
    }
}

/// Pass 2 (after a clean check): add the entries in transactions.
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
    let header = format!("dirbroker-import v1 {} {}", checked.size, checked.digest);
    let mut journal = Journal::open(&journal_path, &header, opts.dry_run)?;
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let mut reader = LdifReader::with_options(BufReader::new(file), options(opts));
    let mut summary = Summary::default();
    let batch_size = opts.batch.max(1);
    let mut batch: Vec<(Dn, Attrs)> = Vec::with_capacity(batch_size);
    let mut index = 0usize;
    let mut seen_records = 0usize;
    let mut first_unjournaled = true;
    loop {
        let next = reader.next();
        let line = reader.line_number();
        let at_end = next.is_none();
        if let Some(item) = next {
            let Ok(record) = item else { continue };
            seen_records += 1;
            if bad_lines.contains(&line) {
                continue;
            }
            let Ok((dn, mut attrs)) = entry_of(record) else { continue };
            let Ok(dn) = Dn::parse(&dn) else { continue };
            if seal_secrets(&mut attrs, opts.keyring.as_deref(), true).is_err() {
                continue; // reported by the check
            }
            batch.push((dn, attrs));
        }
        if batch.len() < batch_size && !at_end {
            continue;
        }
        if !batch.is_empty() {
            let count = batch.len();
            if journal.done.contains(&index) {
                summary.already_imported += count;
            } else if !opts.dry_run {
                let tolerate_existing = journal.resumed && first_unjournaled;
                first_unjournaled = false;
                run_batch(dir, index, std::mem::take(&mut batch), tolerate_existing, opts, &mut summary).await?;
                journal.commit(index, count)?;
            } else {
                summary.added += count;
            }
            summary.batches += 1;
            batch.clear();
            index += 1;
            progress(seen_records, checked.records);
        }
        if at_end {
            break;
        }
    }
    Ok(summary)
}

async fn run_batch(
    dir: &Directory,
    index: usize,
    batch: Vec<(Dn, Attrs)>,
    tolerate_existing: bool,
    opts: &ImportOptions,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let count = batch.len();
    match dir.add_in_transaction(batch.clone()).await {
        Ok(()) => {
            summary.added += count;
            return Ok(());
        }
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(_) => {}
    }
    // The transaction was refused as a whole: add one by one to find out
    // which entries are at fault (and, after a crash, which are there already).
    for (dn, attrs) in batch {
        match dir.add(&dn, attrs).await {
            Ok(()) => summary.added += 1,
            Err(DirError::AlreadyExists { .. }) if tolerate_existing => summary.already_imported += 1,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) if opts.continue_on_error => {
                summary.failed.push(Problem { line: 0, dn: dn.to_string(), reason: e.to_string() })
            }
            Err(e) => return Err(ImportError::Batch { batch: index, dn: dn.to_string(), source: e }),
        }
    }
    Ok(())
}
