//! `dirbroker import FILE` and `dirbroker ldif check FILE`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::import::{self, ImportError, ImportOptions};

use super::{CliResult, Ctx, Failure, Output};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum LdifCmd {
    /// Check an LDIF file: syntax (with line and column), DNs, duplicates, parents. Exit 1 if any problem.
    #[command(
        after_help = "Examples:\n  dirbroker ldif check users.ldif\n  dirbroker ldif check users.ldif --offline --output json\n\n\
        Every problem is reported in one pass. Parents must exist in the directory or\n\
        come earlier in the file (not checked with --offline). What ldapadd/ldapmodify\n\
        accept beyond RFC 2849 (a value starting with '<', a last modify change without\n\
        '-', content and change records mixed) is accepted and listed as a warning."
    )]
    Check(CheckArgs),
    /// Users (with their keys) and groups from passwd/group files and a keys directory.
    #[command(
        after_help = "Examples:\n  dirbroker ldif from-passwd /etc/passwd --group /etc/group --keys-dir /etc/ssh/authorized_keys > people.ldif\n  \
        dirbroker ldif check people.ldif && dirbroker import people.ldif\n\n\
        Accounts with uid outside --min-uid..--max-uid (system accounts, nobody) are left\n\
        out; lines and keys that cannot be used are listed on stderr with their line."
    )]
    FromPasswd(FromPasswdArgs),
    /// Modify records adding the keys of authorized_keys files to existing users.
    #[command(
        after_help = "Examples:\n  dirbroker ldif from-authorized-keys /etc/ssh/authorized_keys > keys.ldif   # files named after the users\n  \
        dirbroker ldif from-authorized-keys --user alice /home/alice/.ssh/authorized_keys > alice.ldif\n  \
        dirbroker import keys.ldif\n\n\
        Without --user, each PATH is a directory of files named USER or USER.pub, or one\n\
        such file. Keys are checked like `user key add` does; options (from=\"…\",\n\
        command=\"…\") are not carried over and are listed on stderr."
    )]
    FromAuthorizedKeys(FromAuthorizedKeysArgs),
    /// A host entry with the host keys of a directory (the paper's SSHHKTLDAP, as LDIF).
    #[command(
        after_help = "Example:\n  dirbroker ldif from-host-keys node17 --address 10.1.0.17 --dir /etc/ssh > node17.ldif"
    )]
    FromHostKeys(FromHostKeysArgs),
    /// Host entries from a known_hosts file (lines with an IP address; hashed lines are skipped).
    #[command(after_help = "Example:\n  dirbroker ldif from-known-hosts /etc/ssh/ssh_known_hosts > hosts.ldif")]
    FromKnownHosts(FromKnownHostsArgs),
}

fn layout_for(ctx: &Ctx, t: &Target) -> Result<dirbroker::directory::Layout, Failure> {
    let base = match &t.base_dn {
        Some(b) => b.clone(),
        None => ctx.config()?.directory.base_dn,
    };
    let dn = dirbroker::directory::Dn::parse(&base).map_err(|e| Failure::usage(format!("--base-dn: {e}")))?;
    Ok(dirbroker::directory::Layout::new(dn)?)
}

fn read_text(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

fn emit(
    t: &Target,
    records: &[dirbroker_ldif::Record],
    skipped: &[(usize, String)],
    source: &std::path::Path,
) -> CliResult {
    for (line, why) in skipped {
        eprintln!("{}:{line}: skipped: {why}", source.display());
    }
    write_records(t, records, skipped.len())
}

/// Write generated records to --out (never overwritten) or stdout.
fn write_records(t: &Target, records: &[dirbroker_ldif::Record], skipped: usize) -> CliResult {
    let sink: Box<dyn std::io::Write> = match &t.out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = dirbroker_ldif::LdifWriter::new(std::io::BufWriter::new(sink));
    for r in records {
        w.write_record(r).map_err(|e| Failure::new(Exit::Failed, format!("writing LDIF: {e}")))?;
    }
    w.finish().map_err(|e| Failure::new(Exit::Failed, format!("writing LDIF: {e}")))?;
    eprintln!("{} record(s) written, {skipped} line(s) skipped", records.len());
    Ok(())
}

#[derive(Args, Debug)]
pub struct Target {
    /// Base DN of the generated entries (default: base_dn of the configuration).
    #[arg(long, value_name = "DN")]
    base_dn: Option<String>,
    /// Write to FILE (must not exist) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct FromPasswdArgs {
    /// passwd file (name:x:uid:gid:gecos:home:shell).
    passwd: PathBuf,
    /// group file: posixGroup entries under ou=groups.
    #[arg(long, value_name = "FILE")]
    group: Option<PathBuf>,
    /// Directory of per-user authorized_keys files named after the user (e.g. /etc/ssh/authorized_keys).
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    min_uid: u32,
    #[arg(long, default_value_t = 60000)]
    max_uid: u32,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
pub struct FromAuthorizedKeysArgs {
    /// authorized_keys files, or directories of them named after the users.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Every PATH is a file of this user's keys.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
pub struct FromHostKeysArgs {
    /// Host name (cn).
    name: String,
    #[arg(long)]
    address: String,
    /// Directory with ssh_host_*_key.pub.
    #[arg(long, default_value = "/etc/ssh")]
    dir: PathBuf,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
pub struct FromKnownHostsArgs {
    /// known_hosts file.
    file: PathBuf,
    #[command(flatten)]
    target: Target,
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
    /// LDIF file: entries (content records), or change records (add, delete, modify, modrdn/moddn).
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
    /// An entry that exists already is turned into the file's version with a minimal modify.
    #[arg(long)]
    upsert: bool,
    /// Journal of committed batches (default FILE.journal); running again resumes from it.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Allow `:< file://` values from files inside DIR.
    #[arg(long, value_name = "DIR")]
    allow_file_urls: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, cmd: LdifCmd) -> CliResult {
    use dirbroker::generate;
    match cmd {
        LdifCmd::FromPasswd(a) => {
            let layout = layout_for(ctx, &a.target)?;
            let (users, mut skipped) =
                generate::users_from_passwd(&read_text(&a.passwd)?, a.min_uid, a.max_uid, a.keys_dir.as_deref());
            let mut records: Vec<dirbroker_ldif::Record> =
                users.iter().map(|u| generate::record(&layout, u)).collect::<Result<_, _>>()?;
            if let Some(g) = &a.group {
                let (groups, gskipped) = generate::groups_from_group(&layout, &read_text(g)?, a.min_uid, a.max_uid);
                records.extend(groups);
                for (l, why) in gskipped {
                    eprintln!("{}:{l}: skipped: {why}", g.display());
                }
            }
            skipped.sort();
            emit(&a.target, &records, &skipped, &a.passwd)
        }
        LdifCmd::FromAuthorizedKeys(a) => {
            let layout = layout_for(ctx, &a.target)?;
            // (user, file), users in the order given, files of a directory sorted.
            let mut files: Vec<(String, PathBuf)> = Vec::new();
            for p in &a.paths {
                if let Some(u) = &a.user {
                    files.push((u.clone(), p.clone()));
                } else if p.is_dir() {
                    let entries = std::fs::read_dir(p)
                        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?;
                    let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    found.sort();
                    for f in found.into_iter().filter(|f| f.is_file()) {
                        match generate::user_of_key_file(&f) {
                            Some(u) => files.push((u, f)),
                            None => eprintln!("{}: skipped: the name does not say whose keys these are", f.display()),
                        }
                    }
                } else {
                    let u = generate::user_of_key_file(p).ok_or_else(|| {
                        Failure::usage(format!(
                            "{}: the name does not say whose keys these are; use --user",
                            p.display()
                        ))
                    })?;
                    files.push((u, p.clone()));
                }
            }
            let mut records = Vec::new();
            let mut keys = 0usize;
            let mut skipped_lines = 0usize;
            for (user, f) in &files {
                let kf = generate::keys_for_user(&layout, user, &read_text(f)?)
                    .map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
                for (l, why) in &kf.skipped {
                    eprintln!("{}:{l}: skipped: {why}", f.display());
                }
                for (l, why) in &kf.options_dropped {
                    eprintln!("{}:{l}: note: {why}", f.display());
                }
                skipped_lines += kf.skipped.len();
                keys += kf.keys;
                records.extend(kf.record);
            }
            eprintln!("{keys} key(s) for {} user(s)", records.len());
            write_records(&a.target, &records, skipped_lines)
        }
        LdifCmd::FromHostKeys(a) => {
            let layout = layout_for(ctx, &a.target)?;
            a.address
                .parse::<std::net::IpAddr>()
                .map_err(|_| Failure::usage(format!("{:?} is not an IP address", a.address)))?;
            let mut host = dirbroker::model::Host::new(&a.name, &a.address)?;
            // The same reading, checking and de-duplication as `host load`.
            for k in super::host::read_host_keys(&a.dir)? {
                host.ssh_public_keys.push(format!("{} {}", k.key_type(), k.blob_base64()));
            }
            emit(&a.target, &[generate::record(&layout, &host)?], &[], &a.dir)
        }
        LdifCmd::FromKnownHosts(a) => {
            let layout = layout_for(ctx, &a.target)?;
            let (hosts, skipped) = generate::hosts_from_known_hosts(&read_text(&a.file)?);
            let records: Vec<dirbroker_ldif::Record> =
                hosts.iter().map(|h| generate::record(&layout, h)).collect::<Result<_, _>>()?;
            emit(&a.target, &records, &skipped, &a.file)
        }
        LdifCmd::Check(a) => {
            let keyring = ctx.keyring().ok().map(std::sync::Arc::new);
            let opts = ImportOptions { url_base: a.allow_file_urls, keyring, ..Default::default() };
            let dir = if a.offline { None } else { Some(ctx.directory().await?) };
            let checked =
                import::check(dir.as_ref(), &a.file, &opts).await.map_err(|e| Failure::usage(e.to_string()))?;
            if ctx.output == Output::Json {
                ctx.json(&json!({
                    "records": checked.records, "problems": checked.problems,
                    "more_problems": checked.more_problems, "warnings": checked.warnings,
                }));
            } else {
                print_warnings(&a.file, &checked.warnings);
                for p in &checked.problems {
                    eprintln!("{}:{}: {}{}", a.file.display(), p.line, p.reason, dn_suffix(&p.dn));
                }
                if checked.more_problems > 0 {
                    eprintln!("… and {} more problem(s) not listed", checked.more_problems);
                }
                println!("{} record(s), {} problem(s)", checked.records, checked.problem_count());
            }
            if checked.problem_count() == 0 {
                Ok(())
            } else {
                Err(Failure::new(
                    Exit::Failed,
                    format!("{} problem(s) in {}", checked.problem_count(), a.file.display()),
                ))
            }
        }
    }
}

/// `FILE:LINE: warning: …` for what the file has beyond RFC 2849 that
/// ldapadd/ldapmodify accept, as the import does.
fn print_warnings(file: &std::path::Path, warnings: &[import::Problem]) {
    for w in warnings {
        eprintln!("{}:{}: warning: {}{}", file.display(), w.line, w.reason, dn_suffix(&w.dn));
    }
}

fn dn_suffix(dn: &str) -> String {
    if dn.is_empty() { String::new() } else { format!(" (dn: {dn})") }
}

pub async fn import_file(ctx: &Ctx, a: ImportArgs) -> CliResult {
    // The keyring seals secrets given in clear; without one such files are refused.
    let keyring = ctx.keyring().ok().map(std::sync::Arc::new);
    let opts = ImportOptions {
        keyring,
        batch: a.batch as usize,
        dry_run: a.dry_run,
        continue_on_error: a.continue_on_error,
        upsert: a.upsert,
        journal: a.journal,
        url_base: a.allow_file_urls,
    };
    let dir = ctx.directory().await?;
    let checked = import::check(Some(&dir), &a.file, &opts).await.map_err(|e| Failure::usage(e.to_string()))?;
    if ctx.output == Output::Text {
        print_warnings(&a.file, &checked.warnings);
    }
    for p in &checked.problems {
        eprintln!("{}:{}: {}{}", a.file.display(), p.line, p.reason, dn_suffix(&p.dn));
    }
    if checked.more_problems > 0 {
        eprintln!("… and {} more problem(s) not listed", checked.more_problems);
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
        Err(e @ ImportError::Invalid(_)) => return Err(Failure::new(Exit::Failed, e.to_string())),
        Err(e @ ImportError::Batch { .. }) => {
            return Err(Failure::new(Exit::Failed, format!("{e}; fix it and run the same command again to finish")));
        }
        Err(e) => return Err(Failure::new(Exit::Failed, e.to_string())),
    };
    if ctx.output == Output::Json {
        ctx.json(&json!({
            "records": checked.records, "added": summary.added, "modified": summary.modified,
            "unchanged": summary.unchanged, "deleted": summary.deleted, "renamed": summary.renamed,
            "already_imported": summary.already_imported, "failed": summary.failed, "problems": checked.problems,
            "warnings": checked.warnings,
            "batches": summary.batches, "dry_run": a.dry_run,
        }));
    } else {
        let changes = if summary.deleted + summary.renamed > 0 {
            format!(", {} deleted, {} renamed", summary.deleted, summary.renamed)
        } else {
            String::new()
        };
        println!(
            "{}{} added, {} modified, {} unchanged{changes}, {} already imported, {} failed, {} problem(s) skipped ({} batches)",
            if a.dry_run { "dry run: " } else { "" },
            summary.added,
            summary.modified,
            summary.unchanged,
            summary.already_imported,
            summary.failed.len(),
            checked.problem_count(),
            summary.batches
        );
        for f in &summary.failed {
            eprintln!("{}:{}: failed: {}{}", a.file.display(), f.line, f.reason, dn_suffix(&f.dn));
        }
    }
    if summary.failed.is_empty() && checked.problem_count() == 0 {
        Ok(())
    } else {
        Err(Failure::new(Exit::Failed, "some entries were not imported"))
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Subtree to export (default: the configured base DN).
    #[arg(long, value_name = "DN")]
    base: Option<String>,
    /// RFC 4515 filter (default: every entry).
    #[arg(long, value_name = "FILTER")]
    filter: Option<String>,
    /// Keep secret attributes: OTP/TOTP seeds and pre-shared keys sealed as stored (they open only with the
    /// same keyring); password hashes only if the bound identity may read them (the broker may not).
    #[arg(long)]
    include_secrets: bool,
    /// Write to FILE (must not exist; mode 0600 with --include-secrets) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Entries per page of an export search (RFC 2696).
const EXPORT_PAGE: i32 = 500;

/// Export, streaming: one level of the tree at a time (breadth first), each
/// level read with paged searches and written as entries arrive, so parents
/// come before children and memory holds one entry plus the DNs of the
/// entries that have children (`hasSubordinates`), never the result.
pub async fn export(ctx: &Ctx, a: ExportArgs) -> CliResult {
    use dirbroker::directory::{Dn, Filter, Scope};
    if ctx.output == Output::Json {
        return Err(Failure::usage("export writes LDIF; --output json is not supported (leave it out)"));
    }
    let dir = ctx.directory().await?;
    let base = match &a.base {
        Some(b) => Dn::parse(b).map_err(|e| Failure::usage(format!("--base: {e}")))?,
        None => dir.layout().base.clone(),
    };
    let filter = match &a.filter {
        Some(f) => Some(Filter::parse_whole(f)?),
        None => None,
    };
    let sink: Box<dyn std::io::Write> = match &a.out {
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mode = if a.include_secrets { 0o600 } else { 0o644 };
            Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(p)
                    .map_err(|e| Failure::usage(format!("cannot create {}: {e}", p.display())))?,
            )
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = dirbroker_ldif::LdifWriter::new(std::io::BufWriter::new(sink)).with_version(true);
    let (mut written, mut redacted) = (0usize, 0usize);
    let mut write = |e: &dirbroker::directory::Entry| -> Result<(), Failure> {
        let mut attrs = Vec::new();
        for name in e.attribute_names() {
            let base = name.split(';').next().unwrap_or(name).to_ascii_lowercase();
            if base == "hassubordinates" {
                continue; // asked for to walk the tree, not part of the entry
            }
            if !a.include_secrets && import::SECRET_ATTRS.contains(&base.as_str()) {
                redacted += 1;
                continue;
            }
            attrs.push(dirbroker_ldif::Attr { name: name.to_string(), values: e.values(name).to_vec() });
        }
        // objectClass first reads best.
        attrs.sort_by_key(|x| !x.name.eq_ignore_ascii_case("objectclass"));
        let record = dirbroker_ldif::Record::Content(dirbroker_ldif::Entry { dn: e.dn.to_string(), attrs });
        w.write_record(&record).map_err(|e| Failure::new(Exit::Failed, format!("writing LDIF: {e}")))?;
        written += 1;
        Ok(())
    };
    let any = Filter::any();
    let matching = filter.as_ref().unwrap_or(&any);
    let has_children = |e: &dirbroker::directory::Entry| e.values("hasSubordinates").iter().any(|v| v == b"TRUE");
    let mut levels: std::collections::VecDeque<Dn> = std::collections::VecDeque::new();
    let walk = [import::ENTRY_ATTRS, &["hasSubordinates"]].concat();
    dir.search_each(&base, Scope::Base, &any, &walk, 1, |e| {
        if has_children(&e) {
            levels.push_back(e.dn.clone());
        }
        Ok::<(), Failure>(())
    })
    .await?;
    dir.search_each(&base, Scope::Base, matching, import::ENTRY_ATTRS, 1, |e| write(&e)).await?;
    while let Some(parent) = levels.pop_front() {
        if filter.is_none() {
            dir.search_each(&parent, Scope::OneLevel, &any, &walk, EXPORT_PAGE, |e| {
                if has_children(&e) {
                    levels.push_back(e.dn.clone());
                }
                write(&e)
            })
            .await?;
        } else {
            dir.search_each(&parent, Scope::OneLevel, matching, import::ENTRY_ATTRS, EXPORT_PAGE, |e| write(&e))
                .await?;
            dir.search_each(&parent, Scope::OneLevel, &any, &["hasSubordinates"], EXPORT_PAGE, |e| {
                if has_children(&e) {
                    levels.push_back(e.dn.clone());
                }
                Ok::<(), Failure>(())
            })
            .await?;
        }
    }
    w.finish().map_err(|e| Failure::new(Exit::Failed, format!("writing LDIF: {e}")))?;
    eprintln!(
        "{written} entries exported{}",
        if redacted > 0 {
            format!(", {redacted} secret value set(s) left out (--include-secrets keeps them sealed)")
        } else {
            String::new()
        }
    );
    Ok(())
}
