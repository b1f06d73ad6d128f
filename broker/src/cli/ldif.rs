//! `dirbroker import FILE` and `dirbroker ldif check FILE`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::import::{self, ImportError, ImportOptions};

use super::{CliResult, Ctx, Failure, Output};

#[derive(Subcommand, Debug)]
pub enum LdifCmd {
    /// Check an LDIF file: syntax (with line and column), DNs, duplicates, parents. Exit 1 if any problem.
    #[command(
        after_help = "Examples:\n  dirbroker ldif check users.ldif\n  dirbroker ldif check users.ldif --offline --output json\n\n\
        Every problem is reported in one pass. Parents must exist in the directory or\n\
        come earlier in the file (not checked with --offline)."
    )]
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    file: PathBuf,
    /// Do not contact the directory (parents are not checked).
    #[arg(long)]
    offline: bool,
    /// Allow `:< file://` values from files inside DIR.
    #[arg(long, value_name = "DIR")]
    allow_file_urls: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// LDIF file of entries (content records or changetype: add).
    file: PathBuf,
    /// Entries per LDAP transaction.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Check and count, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import what can be imported and report the rest (default: nothing is written if the file has problems).
    #[arg(long)]
    continue_on_error: bool,
    /// Journal of committed batches (default FILE.journal); running again resumes from it.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Allow `:< file://` values from files inside DIR.
    #[arg(long, value_name = "DIR")]
    allow_file_urls: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, cmd: LdifCmd) -> CliResult {
    match cmd {
        LdifCmd::Check(a) => {
            let opts = ImportOptions { url_base: a.allow_file_urls, ..Default::default() };
            let dir = if a.offline { None } else { Some(ctx.directory().await?) };
            let checked =
                import::check(dir.as_ref(), &a.file, &opts).await.map_err(|e| Failure::usage(e.to_string()))?;
            if ctx.output == Output::Json {
                ctx.json(&json!({ "records": checked.records, "problems": checked.problems }));
            } else {
                for p in &checked.problems {
                    eprintln!("{}:{}: {}{}", a.file.display(), p.line, p.reason, dn_suffix(&p.dn));
                }
                println!("{} record(s), {} problem(s)", checked.records, checked.problems.len());
            }
            if checked.problems.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(1, format!("{} problem(s) in {}", checked.problems.len(), a.file.display())))
            }
        }
    }
}

fn dn_suffix(dn: &str) -> String {
    if dn.is_empty() { String::new() } else { format!(" (dn: {dn})") }
}

pub async fn import_file(ctx: &Ctx, a: ImportArgs) -> CliResult {
    let opts = ImportOptions {
        batch: a.batch as usize,
        dry_run: a.dry_run,
        continue_on_error: a.continue_on_error,
        journal: a.journal,
        url_base: a.allow_file_urls,
    };
    let dir = ctx.directory().await?;
    let checked = import::check(Some(&dir), &a.file, &opts).await.map_err(|e| Failure::usage(e.to_string()))?;
    for p in &checked.problems {
        eprintln!("{}:{}: {}{}", a.file.display(), p.line, p.reason, dn_suffix(&p.dn));
    }
    let tty = std::io::stderr().is_terminal() && ctx.output == Output::Text;
    let bar = tty.then(|| {
        let b = indicatif::ProgressBar::new(checked.records as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut last_line = std::time::Instant::now();
    let result = import::import(&dir, &a.file, &opts, &checked, |done, total| match &bar {
        Some(b) => b.set_position(done as u64),
        None if ctx.output == Output::Text && last_line.elapsed().as_secs() >= 5 => {
            eprintln!("import: {done}/{total} entries");
            last_line = std::time::Instant::now();
        }
        None => {}
    })
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let summary = match result {
        Ok(s) => s,
        Err(ImportError::Directory(e)) => return Err(e.into()),
        Err(e @ ImportError::Invalid(_)) => return Err(Failure::new(1, e.to_string())),
        Err(e @ ImportError::Batch { .. }) => {
            return Err(Failure::new(1, format!("{e}; fix it and run the same command again to finish")));
        }
        Err(e) => return Err(Failure::new(1, e.to_string())),
    };
    if ctx.output == Output::Json {
        ctx.json(&json!({
            "records": checked.records, "added": summary.added, "already_imported": summary.already_imported,
            "failed": summary.failed, "problems": checked.problems, "batches": summary.batches, "dry_run": a.dry_run,
        }));
    } else {
        println!(
            "{}{} added, {} already imported, {} failed, {} problem(s) skipped ({} batches)",
            if a.dry_run { "dry run: " } else { "" },
            summary.added,
            summary.already_imported,
            summary.failed.len(),
            checked.problems.len(),
            summary.batches
        );
        for f in &summary.failed {
            eprintln!("failed: {}: {}", f.dn, f.reason);
        }
    }
    if summary.failed.is_empty() && checked.problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(1, "some entries were not imported"))
    }
}
