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
