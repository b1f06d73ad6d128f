//! The import journal: which batches a run began and committed, so a rerun finishes the job.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{ImportError, file_err};

pub(super) struct Journal {
    path: PathBuf,
    pub(super) done: HashSet<usize>,
    /// Batches whose transaction was started (`begin k`) in an earlier run.
    pub(super) begun: HashSet<usize>,
    file: Option<File>,
}

impl Journal {
    pub(super) fn open(path: &Path, header: &str, dry_run: bool) -> Result<Journal, ImportError> {
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
    pub(super) fn begin(&mut self, batch: usize) -> Result<(), ImportError> {
        self.line(format_args!("begin {batch}"))
    }

    pub(super) fn commit(&mut self, batch: usize, count: usize) -> Result<(), ImportError> {
        self.line(format_args!("batch {batch} {count}"))?;
        self.done.insert(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "dirbroker-import v2 1234 00ff";

    fn sorted(set: &HashSet<usize>) -> Vec<usize> {
        let mut v: Vec<usize> = set.iter().copied().collect();
        v.sort();
        v
    }

    #[test]
    fn journal_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.ldif.journal");
        let mut journal = Journal::open(&path, HEADER, false).unwrap();
        assert!(journal.done.is_empty() && journal.begun.is_empty());
        journal.begin(0).unwrap();
        journal.commit(0, 900).unwrap();
        journal.begin(1).unwrap();
        assert_eq!(sorted(&journal.done), [0]);
        drop(journal);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{HEADER}\nbegin 0\nbatch 0 900\nbegin 1\n"));

        // What the Undecidable error tells a person to append by hand, and a
        // line a rerun does not know, which it skips.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, "batch 7 0\nsomething else").unwrap();
        drop(f);

        let mut resumed = Journal::open(&path, HEADER, false).unwrap();
        assert_eq!(sorted(&resumed.done), [0, 7]);
        assert_eq!(sorted(&resumed.begun), [0, 1]);
        resumed.commit(1, 3).unwrap();
        drop(resumed);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(HEADER).count(), 1, "a resumed journal is appended to: {text}");
        assert!(text.ends_with("something else\nbatch 1 3\n"), "{text}");
        assert_eq!(sorted(&Journal::open(&path, HEADER, false).unwrap().done), [0, 1, 7]);
    }

    #[test]
    fn journal_of_another_file_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        Journal::open(&path, HEADER, false).unwrap().commit(0, 1).unwrap();
        let before = std::fs::read(&path).unwrap();
        for dry_run in [false, true] {
            match Journal::open(&path, "dirbroker-import v2 1235 00ff", dry_run) {
                Err(ImportError::ForeignJournal { path: p }) => assert_eq!(p, path.display().to_string()),
                other => panic!("dry_run {dry_run}: {:?}", other.map(|j| sorted(&j.done))),
            }
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn dry_run_reads_the_journal_but_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.journal");
        let mut journal = Journal::open(&fresh, HEADER, true).unwrap();
        journal.begin(0).unwrap();
        journal.commit(0, 5).unwrap();
        assert_eq!(sorted(&journal.done), [0], "counted in memory");
        assert!(!fresh.exists(), "a dry run creates no journal");

        let kept = dir.path().join("kept.journal");
        let mut real = Journal::open(&kept, HEADER, false).unwrap();
        real.begin(0).unwrap();
        real.commit(0, 5).unwrap();
        real.begin(1).unwrap();
        drop(real);
        let before = std::fs::read(&kept).unwrap();
        let mut dry = Journal::open(&kept, HEADER, true).unwrap();
        assert_eq!((sorted(&dry.done), sorted(&dry.begun)), (vec![0], vec![0, 1]));
        dry.begin(2).unwrap();
        dry.commit(2, 1).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), before);
    }
}
