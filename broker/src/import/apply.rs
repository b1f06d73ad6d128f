//! Pass 2: apply the checked records batch by batch, journaled, resuming after an interruption.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use dirbroker_ldif::LdifReader;

use super::journal::Journal;
use super::upsert::upsert;
use super::{
    Checked, ImportError, ImportOptions, Problem, Summary, dn_key, file_err, in_directory, op_of, options, renamed_dn,
    seal_secrets,
};
use crate::directory::{Change, DirError, Directory, Dn, WriteOp};

/// One operation of a batch, with the line of its record.
#[derive(Debug)]
pub(super) struct Planned {
    line: usize,
    pub(super) op: WriteOp,
    /// `--upsert` found the entry already as the file has it.
    pub(super) unchanged: bool,
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
    // v3: which records the check refuses changed (repeated values, RDN
    // conflicts, authzTo, a valid copy after an invalid one), and with it
    // how the records fall into batches: a v2 journal would skip the wrong ones.
    let header = format!("dirbroker-import v3 {} {}", checked.size, checked.digest);
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
            if let WriteOp::Add(dn, attrs) = &mut op
                && seal_secrets(dn, attrs, opts.keyring.as_deref(), true).is_err()
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
                    upsert(dir, &mut plan, opts.keyring.as_deref()).await?;
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
        match dir.apply(&p.op).await.map_err(|e| explained(&p.op, e)) {
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

/// An add answered noSuchObject lacks its parent: say so, naming the parent
/// (the server's error names the entry itself).
fn explained(op: &WriteOp, e: DirError) -> DirError {
    match (op, e) {
        (WriteOp::Add(dn, _), DirError::NotFound { .. }) if dn.parent().is_some() => DirError::NotFound {
            what: format!(
                "parent {} is missing (needed to add {dn})",
                dn.parent().map(|p| p.to_string()).unwrap_or_default()
            ),
        },
        (_, e) => e,
    }
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
