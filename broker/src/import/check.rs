//! Pass 1: read the whole file and report every problem before anything is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use dirbroker_ldif::LdifReader;
use sha2::{Digest, Sha256};

use super::{
    BOUND, Checked, ImportError, ImportOptions, MAX_LISTED_PROBLEMS, Problem, SECRET_ATTRS, SECRETS, dn_key, file_err,
    in_directory, op_of, options, renamed_dn, repeated_values, seal_secrets,
};
use crate::directory::{Attrs, Change, Directory, Dn, WriteOp};

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

/// The file's view of the tree while it is checked: DNs the file has
/// added, deleted or renamed so far (by [`dn_key`]), then what the
/// directory holds. 17 bytes per DN the file touches.
struct Tree<'a> {
    dir: Option<&'a Directory>,
    /// `true`: present after the records so far; `false`: deleted or renamed away.
    file: HashMap<[u8; 16], bool>,
    /// Directory answers already asked.
    known: HashMap<[u8; 16], bool>,
    /// Adds the check refused, with their lines: their children have no parent.
    refused: HashMap<[u8; 16], usize>,
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
    let mut tree = Tree { dir, file: HashMap::new(), known: HashMap::new(), refused: HashMap::new() };
    {
        let mut reader = LdifReader::with_options(BufReader::new(&mut hashing), options(opts));
        while let Some(item) = reader.next() {
            let line = reader.record_line();
            for w in reader.take_warnings() {
                if out.warnings.len() < MAX_LISTED_PROBLEMS {
                    let dn = item.as_ref().map(|r| r.dn().to_string()).unwrap_or_default();
                    out.warnings.push(Problem { line: w.line, dn, reason: w.message });
                }
            }
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
            let problems_before = out.problem_count();
            for reason in repeated_values(&record, &schema) {
                out.note(bad(reason));
            }
            let mut op = match op_of(record) {
                Ok(op) => op,
                Err(r) => {
                    out.note(bad(r));
                    continue;
                }
            };
            match &mut op {
                WriteOp::Add(dn, attrs) => {
                    if let Err(reason) = seal_secrets(dn, attrs, opts.keyring.as_deref(), false) {
                        out.note(bad(reason));
                    }
                    let mut schema_problems = Vec::new();
                    if !schema.is_empty() {
                        schema_problems = schema.check_entry(attrs);
                        schema_problems.extend(schema.check_rdn(dn, attrs));
                    }
                    let k = dn_key(dn);
                    if tree.file.get(&k) == Some(&true) {
                        for reason in schema_problems {
                            out.note(bad(reason));
                        }
                        out.note(bad("this DN appears earlier in the file".into()));
                        continue;
                    }
                    let mut parent_missing = None;
                    if let Some(parent) = dn.parent()
                        && tree.exists(&parent).await? == Some(false)
                    {
                        parent_missing = Some(parent);
                    }
                    // An entry in the directory needs no parent (the suffix of
                    // an export has none), and --upsert keeps the secrets the
                    // file leaves out (as an export does): read whether it is
                    // there only when one of those is the trouble (rare).
                    let without_secrets = (!schema_problems.is_empty())
                        .then(|| {
                            let mut kept = schema.check_entry_assuming(attrs, SECRET_ATTRS);
                            kept.extend(schema.check_rdn(dn, attrs));
                            kept
                        })
                        .filter(|kept| kept.len() < schema_problems.len());
                    if (parent_missing.is_some() || without_secrets.is_some()) && tree.exists(dn).await? == Some(true) {
                        parent_missing = None;
                        if let Some(kept) = without_secrets {
                            schema_problems = kept;
                        }
                        if !opts.upsert {
                            out.note(bad(format!(
                                "{dn} is in the directory already: an add of it fails; --upsert makes it the \
                                 file's version (keeping the secrets the file leaves out)"
                            )));
                        }
                    }
                    for reason in schema_problems {
                        out.note(bad(reason));
                    }
                    if let Some(parent) = parent_missing {
                        out.note(bad(match tree.refused.get(&dn_key(&parent)) {
                            Some(at) => format!("parent {parent} is not added: its record (line {at}) has problems"),
                            None => format!("parent {parent} is neither in the directory nor earlier in the file"),
                        }));
                    }
                    // An add that cannot be made does not take its DN: a
                    // later, valid copy is added (as ldapadd -c does).
                    if out.problem_count() == problems_before {
                        tree.file.insert(k, true);
                        tree.refused.remove(&k);
                    } else {
                        tree.refused.insert(k, line);
                    }
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
                        values.iter().find(|(n, _)| SECRETS.iter().any(|s| n.eq_ignore_ascii_case(s)))
                    {
                        out.note(bad(format!(
                            "{secret} can only be provisioned in an add record (it is sealed to the entry's id)"
                        )));
                    }
                    // The owner, parties, data center and OTP parameters are
                    // bound into the sealed secret beside them: changed alone,
                    // the secret would no longer open.
                    if let Some((attr, _)) =
                        values.iter().find(|(n, _)| BOUND.iter().any(|b| n.eq_ignore_ascii_case(b)))
                    {
                        out.note(bad(format!(
                            "{attr} is bound into the entry's sealed secret and cannot be changed by a modify: \
                             delete the entry and add it again with its secret (or enrol it again)"
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
