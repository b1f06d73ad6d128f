//! `dirbroker user …`: add, show, list, delete users; set and check passwords.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use time::OffsetDateTime;

use dirbroker::admin::posix::{self, PosixRequest, UserModify};
use dirbroker::directory::{Change, Directory};
use dirbroker::invitation::{self, Invitation};
use dirbroker::model::{DirEntry, Level, Usable as _, User};
use dirbroker::secret::{SecretString, read_secret_file, write_private_file};

use dirbroker::ssh::SshKey;
use dirbroker::ssh::keys::check_from_pattern;

use super::{CliResult, Ctx, Failure, Output, existing_user, remove_values};
use crate::exit::Exit;

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user: a POSIX account (inetOrgPerson + posixAccount + ldapPublicKey + dirbrokerUser).
    #[command(after_help = "Examples:\n  dirbroker user add alice --name 'Alice Liddell' --password-file alice.pw\n  \
        printf '%s' \"$PW\" | dirbroker user add bob --name Bob --password-file -\n  \
        dirbroker user add carol --name Carol --level 4 --generate-password carol.pw\n  \
        dirbroker user add dave --name Dave --uid-number 20001 --gid-number 100 --shell /bin/zsh\n  \
        dirbroker user add robot --name 'Web robot' --no-posix\n\n\
        uidNumber comes from the directory's id counter ([posix] uid_min..uid_max) unless\n\
        --uid-number gives one; gidNumber is [posix] default_gid when configured, else a\n\
        user-private group cn=UID,ou=groups is made with the same number. Home is\n\
        [posix] home_base/UID, the shell [posix] default_shell. A uidNumber in use is\n\
        refused and nothing is written. The password is never on the command line; if\n\
        setting it fails, the new entry (and its group) is removed again.")]
    Add(AddArgs),
    /// Change a user's name, mail or POSIX attributes; add the classes other tools' entries lack.
    #[command(
        after_help = "Examples:\n  dirbroker user modify alice --name 'Alice Kingsleigh' --mail alice@example.org\n  \
        dirbroker user modify alice --shell /bin/zsh --home /srv/alice\n  \
        dirbroker user modify alice --no-mail --no-shell\n  \
        dirbroker user modify legacy --posix                # an ldapadd-written user gets a Unix login\n  \
        dirbroker user modify legacy --posix --uid-number 20010 --gid-number 100\n  \
        dirbroker user modify contractor --not-after 2027-03-31      # expires at the start of that day, UTC\n  \
        dirbroker user modify intern --not-before 2027-06-01T08:00:00+02:00 --no-not-after\n\n\
        Every modify also adds ldapPublicKey and dirbrokerUser when the entry lacks them\n\
        (user key add and user allow do the same), so entries written by\n\
        other tools take keys and allowed-from lists. --posix makes the user a POSIX\n\
        account as user add would (ids from the counter, user-private group).\n\
        Outside --not-before..--not-after the account is refused by every path, as a\n\
        disabled one is (SSH keys, OTP, SSO, tickets, escrow); SSSD on nodes enforces\n\
        the expiry but not the start (docs/nodes.md)."
    )]
    Modify(ModifyArgs),
    /// Show one user.
    #[command(after_help = "Examples:\n  dirbroker user show alice\n  dirbroker user show alice --output json")]
    Show(UidArg),
    /// List users.
    #[command(after_help = "Examples:\n  dirbroker user list\n  dirbroker user list --output json | jq -r '.[].uid'")]
    List,
    /// Delete a user.
    #[command(after_help = "Example:\n  dirbroker user delete alice")]
    Delete(UidArg),
    /// Set a user's password (hashed by slapd).
    #[command(after_help = "Example:\n  dirbroker user set-password alice --password-file new.pw")]
    SetPassword(PasswordArgs),
    /// Manage a user's SSH public keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Let USER's keys be used only from PATTERN (from= in authorized_keys).
    #[command(after_help = "Examples:\n  dirbroker user allow alice --from 10.0.0.0/8 --from bastion.example.org\n\n\
        Patterns are sshd from= patterns: names, addresses, CIDR, * and ?, ! to negate.")]
    Allow(AllowArgs),
    /// Remove patterns from USER's allowed-from list (empty list: no restriction).
    #[command(after_help = "Example:\n  dirbroker user disallow alice --from bastion.example.org")]
    Disallow(AllowArgs),
    /// Check a password by binding as the user: exit 0 if right, 1 if wrong.
    #[command(after_help = "Examples:\n  dirbroker user check-password alice < alice.pw\n  \
        dirbroker user check-password alice --password-file alice.pw")]
    CheckPassword(CheckArgs),
    /// Disable a user: no SSH keys, OTP, SSO login, tickets, escrow or LDAP bind until enabled.
    #[command(after_help = "Example:\n  dirbroker user disable alice\n\n\
        Every path that authenticates or authorises refuses a disabled user; slapd refuses\n\
        their bind. Tickets already issued are refused at the next ticket request.")]
    Disable(UidArg),
    /// Enable a disabled user again.
    #[command(after_help = "Example:\n  dirbroker user enable alice")]
    Enable(UidArg),
    /// Name the data centers that may verify USER's OTP codes (for migrations).
    #[command(after_help = "Examples:\n  dirbroker user otp-verifiers alice --dc seoul-1 --dc busan-2\n  \
        dirbroker user otp-verifiers alice --any\n\n\
        Any other data center asking /v1/otp/verify about alice gets the answer for a user\n\
        without tokens (and the broker logs it), so it can neither guess, burn nor lock\n\
        her codes. --any (or no --dc) lets every enabled data center verify again.")]
    OtpVerifiers(OtpVerifiersArgs),
    /// Create a one-time SSO registration invitation (`dirbroker register --invite-file`).
    #[command(after_help = INVITE_HELP)]
    Invite(InviteArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Add public keys (one per line, authorized_keys format) from FILE or stdin.
    #[command(after_help = "Examples:\n  dirbroker user key add alice ~/.ssh/id_ed25519.pub\n  \
        cat keys.pub | dirbroker user key add alice -\n\n\
        Every line is checked before anything is written: malformed keys, DSA keys,\n\
        RSA keys under 2048 bits and duplicates are refused, and then nothing is added.")]
    Add(KeyAddArgs),
    /// List a user's keys with their SHA256 fingerprints (as ssh-keygen -l shows them).
    #[command(after_help = "Examples:\n  dirbroker user key list alice\n  dirbroker user key list alice --output json")]
    List(UidArg),
    /// Remove the key with this fingerprint.
    #[command(
        after_help = "Example:\n  dirbroker user key remove alice SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
    )]
    Remove(KeyRemoveArgs),
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    uid: String,
    /// File of public keys ('-' for standard input).
    #[arg(default_value = "-")]
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct KeyRemoveArgs {
    uid: String,
    /// SHA256:… fingerprint of the key to remove.
    fingerprint: String,
}

#[derive(Args, Debug)]
pub struct AllowArgs {
    uid: String,
    #[arg(long = "from", required = true, value_name = "PATTERN")]
    patterns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UidArg {
    /// The user's uid.
    uid: String,
}

#[derive(Args, Debug)]
pub struct OtpVerifiersArgs {
    /// The user's uid.
    uid: String,
    /// A data center (DID) that may verify; repeat for several.
    #[arg(long = "dc", value_name = "DID", conflicts_with = "any")]
    dcs: Vec<String>,
    /// Let any enabled data center verify (removes the list).
    #[arg(long)]
    any: bool,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The user's uid (login name).
    uid: String,
    /// Full name (cn).
    #[arg(long)]
    name: String,
    #[arg(long)]
    mail: Option<String>,
    /// SSO level: 1 temporary read-only, 2 normal, 3 all services but admin, 4 administrator.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=4))]
    level: i64,
    /// Read the initial password from FILE ('-' for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "generate_password")]
    password_file: Option<PathBuf>,
    /// Generate a random password and write it to FILE (mode 0600).
    #[arg(long, value_name = "FILE")]
    generate_password: Option<PathBuf>,
    /// uidNumber instead of one from the id counter (refused if another account has it).
    #[arg(long)]
    uid_number: Option<u32>,
    /// gidNumber (primary group) instead of a user-private group or [posix] default_gid.
    #[arg(long)]
    gid_number: Option<u32>,
    /// Home directory (default: [posix] home_base/UID).
    #[arg(long)]
    home: Option<String>,
    /// Login shell (default: [posix] default_shell).
    #[arg(long)]
    shell: Option<String>,
    /// No Unix login: no posixAccount, no ids, no group.
    #[arg(long, conflicts_with_all = ["uid_number", "gid_number", "home", "shell"])]
    no_posix: bool,
}

#[derive(Args, Debug)]
pub struct ModifyArgs {
    /// The user's uid.
    uid: String,
    /// Full name (cn).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, conflicts_with = "no_mail")]
    mail: Option<String>,
    /// Remove the mail address.
    #[arg(long)]
    no_mail: bool,
    /// Home directory (POSIX accounts).
    #[arg(long)]
    home: Option<String>,
    /// Login shell (POSIX accounts).
    #[arg(long, conflicts_with = "no_shell")]
    shell: Option<String>,
    /// Remove the login shell (NSS then reports the system default).
    #[arg(long)]
    no_shell: bool,
    #[arg(long)]
    uid_number: Option<u32>,
    #[arg(long)]
    gid_number: Option<u32>,
    /// Make the user a POSIX account (uidNumber, gidNumber, home, shell) if it is not one.
    #[arg(long)]
    posix: bool,
    /// The account may not be used before TIME (a date or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = dirbroker::model::parse_bound, conflicts_with = "no_not_before")]
    not_before: Option<OffsetDateTime>,
    /// Remove the not-before bound.
    #[arg(long)]
    no_not_before: bool,
    /// The account expires after TIME (a date or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = dirbroker::model::parse_bound, conflicts_with = "no_not_after")]
    not_after: Option<OffsetDateTime>,
    /// Remove the expiry.
    #[arg(long)]
    no_not_after: bool,
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    uid: String,
    /// Read the password from FILE ('-' for standard input).
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    uid: String,
    /// Read the password from FILE (default: standard input).
    #[arg(long, value_name = "FILE", default_value = "-")]
    password_file: PathBuf,
}

fn read_password(path: &std::path::Path) -> Result<SecretString, Failure> {
    read_secret_file(path).map_err(|e| Failure::usage(e.to_string()))
}

fn user_json(dir: &Directory, u: &User) -> serde_json::Value {
    json!({
        "uid": u.uid,
        "dn": u.dn(dir.layout()).map(|d| d.to_string()).unwrap_or_default(),
        "name": u.cn,
        "mail": u.mail,
        "level": u.level.number(),
        "anonymous": u.anonymous,
        "disabled": u.disabled,
        "not_before": u.not_before.map(|t| t.unix_timestamp()),
        "not_after": u.not_after.map(|t| t.unix_timestamp()),
        "usable": u.usable_at(dirbroker::clock::now()).map_err(|e| e.to_string()).err().unwrap_or_else(|| "yes".into()),
        "posix": u.posix,
        "ssh_public_keys": u.ssh_public_keys,
        "allowed_from": u.allowed_from,
        "has_public_value": u.public_value.is_some(),
        "keystroke_hardening": u.keystroke_hardening,
        "has_escrowed_ssh_key": u.sealed_ssh_private_key.is_some(),
        "otp_verifiers": u.otp_verifiers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    })
}

async fn set_disabled(ctx: &Ctx, uid: &str, disabled: bool) -> CliResult {
    let dir = ctx.directory().await?;
    let before = dirbroker::admin::users::set_disabled(&dir, uid, disabled).await?;
    let word = if disabled { "disabled" } else { "enabled" };
    let text = if before.disabled == disabled {
        format!("{} was {word} already", before.uid)
    } else {
        format!("{} {word}", before.uid)
    };
    ctx.report(json!({ "uid": before.uid, "disabled": disabled, "changed": before.disabled != disabled }), &text);
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: UserCmd) -> CliResult {
    match cmd {
        UserCmd::Add(args) => add(ctx, args).await,
        UserCmd::Modify(args) => modify(ctx, args).await,
        UserCmd::Invite(args) => invite(ctx, args).await,
        UserCmd::Show(a) => {
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            let groups = posix::groups_of(&dir, &u.uid).await?;
            if ctx.output == Output::Json {
                let mut v = user_json(&dir, &u);
                if let Some(o) = v.as_object_mut() {
                    o.insert("groups".into(), json!(groups));
                }
                ctx.json(&v);
            } else {
                println!("uid:      {}", u.uid);
                println!("dn:       {}", u.dn(dir.layout())?);
                println!("name:     {}", u.cn);
                if let Some(m) = &u.mail {
                    println!("mail:     {m}");
                }
                println!("level:    {} ({:?})", u.level.number(), u.level);
                println!("disabled: {}", u.disabled);
                if u.not_before.is_some() || u.not_after.is_some() {
                    let rfc3339 = |t: Option<OffsetDateTime>| {
                        t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                            .unwrap_or_else(|| "-".into())
                    };
                    println!("valid:    from {} until {}", rfc3339(u.not_before), rfc3339(u.not_after));
                }
                if let Err(why) = u.usable_at(dirbroker::clock::now()) {
                    println!("usable:   no ({why})");
                }
                if let Some(p) = &u.posix {
                    println!("posix:    uid {} gid {} home {}", p.uid_number, p.gid_number, p.home_directory);
                    println!("shell:    {}", p.login_shell.as_deref().unwrap_or("-"));
                }
                if !groups.is_empty() {
                    println!("groups:   {}", groups.join(" "));
                }
                println!("ssh keys: {}", u.ssh_public_keys.len());
            }
            Ok(())
        }
        UserCmd::List => {
            let dir = ctx.directory().await?;
            let mut users = dir.list::<User>().await?;
            users.sort_by(|a, b| a.uid.cmp(&b.uid));
            if ctx.output == Output::Json {
                ctx.json(&serde_json::Value::Array(users.iter().map(|u| user_json(&dir, u)).collect()));
            } else {
                println!("{:<20} {:<5} {:<4} NAME", "UID", "LEVEL", "KEYS");
                for u in &users {
                    println!("{:<20} {:<5} {:<4} {}", u.uid, u.level.number(), u.ssh_public_keys.len(), u.cn);
                }
            }
            Ok(())
        }
        UserCmd::Delete(a) => {
            let dir = ctx.directory().await?;
            let (u, group) = dirbroker::admin::posix::delete_user(&dir, &a.uid).await?;
            let group_name = group.map(|g| g.name);
            let text = match &group_name {
                Some(g) => format!("deleted user {} and its user-private group {g}", u.uid),
                None => format!("deleted user {}", u.uid),
            };
            ctx.report(json!({ "deleted": u.uid, "deleted_group": group_name }), &text);
            Ok(())
        }
        UserCmd::SetPassword(a) => {
            let pw = read_password(&a.password_file)?;
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            dir.set_password(&u.dn(dir.layout())?, &pw).await?;
            ctx.report(json!({ "uid": u.uid, "password_set": true }), &format!("password set for {}", u.uid));
            Ok(())
        }
        UserCmd::Key(k) => key(ctx, k).await,
        UserCmd::Allow(a) => {
            for p in &a.patterns {
                check_from_pattern(p).map_err(|e| Failure::usage(e.to_string()))?;
            }
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            let mut added: Vec<String> = Vec::new();
            for p in &a.patterns {
                if !u.allowed_from.iter().chain(&added).any(|o| o.eq_ignore_ascii_case(p)) {
                    added.push(p.clone());
                }
            }
            if !added.is_empty() {
                // With the classes an entry written by another tool lacks.
                let values = added.iter().map(|v| v.as_bytes().to_vec()).collect();
                let change = Change::Add(b"dirbrokerAllowedFrom".to_vec(), values);
                dirbroker::admin::posix::modify_user(&dir, &u.uid, vec![change]).await?;
            }
            ctx.report(
                json!({ "uid": u.uid, "added": added }),
                &format!("{}: allowed from {}", u.uid, a.patterns.join(", ")),
            );
            Ok(())
        }
        UserCmd::Disallow(a) => {
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            let removed =
                remove_values(&dir, &u.dn(dir.layout())?, "dirbrokerAllowedFrom", &u.allowed_from, &a.patterns).await?;
            ctx.report(
                json!({ "uid": u.uid, "removed": removed }),
                &format!("{}: removed {} pattern(s)", u.uid, removed.len()),
            );
            Ok(())
        }
        UserCmd::OtpVerifiers(a) => {
            if a.dcs.is_empty() && !a.any {
                return Err(Failure::new(Exit::Usage, "name data centers with --dc, or --any to allow every one"));
            }
            let dir = ctx.directory().await?;
            let u = dirbroker::admin::users::set_otp_verifiers(&dir, &a.uid, &a.dcs).await?;
            let text = match a.dcs.is_empty() {
                true => format!("{}: any enabled data center may verify OTP codes", u.uid),
                false => format!("{}: OTP codes verified only by {}", u.uid, a.dcs.join(", ")),
            };
            ctx.report(json!({ "uid": u.uid, "otp_verifiers": a.dcs }), &text);
            Ok(())
        }
        UserCmd::Disable(a) => set_disabled(ctx, &a.uid, true).await,
        UserCmd::Enable(a) => set_disabled(ctx, &a.uid, false).await,
        UserCmd::CheckPassword(a) => {
            let pw = read_password(&a.password_file)?;
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            // The account rule first: a disabled or expired account is
            // refused whatever its password.
            if let Err(why) = u.usable_at(dirbroker::clock::now()) {
                ctx.report(
                    json!({ "uid": u.uid, "accepted": false, "unusable": why.to_string() }),
                    &format!("account {why}"),
                );
                return Err(Failure::new(Exit::Failed, format!("{}: account {why}", u.uid)));
            }
            let ok = dir.check_password(&u.dn(dir.layout())?, &pw).await?;
            ctx.report(
                json!({ "uid": u.uid, "accepted": ok }),
                if ok { "password accepted" } else { "password rejected" },
            );
            if ok { Ok(()) } else { Err(Failure::new(Exit::Failed, format!("wrong password for {}", u.uid))) }
        }
    }
}

async fn add(ctx: &Ctx, args: AddArgs) -> CliResult {
    let mut user = User::new(&args.uid, &args.name)?;
    user.mail = args.mail;
    user.level = Level::from_number(args.level).ok_or_else(|| Failure::usage("level must be 1 to 4"))?;
    let posix = (!args.no_posix).then_some(PosixRequest {
        uid_number: args.uid_number,
        gid_number: args.gid_number,
        home: args.home,
        shell: args.shell,
    });
    let password = match (&args.password_file, &args.generate_password) {
        (Some(f), _) => Some(read_password(f)?),
        (None, Some(_)) => Some(SecretString::generate(20)),
        (None, None) => None,
    };
    let cfg = ctx.config()?;
    let dir = ctx.directory().await?;
    let made = posix::create_user(&dir, &cfg.posix, user, posix.as_ref(), password.as_ref()).await?;
    let dn = &made.dn;
    let group_dn = made.group.as_ref().map(|g| g.dn(dir.layout())).transpose()?;
    if let (Some(path), Some(pw)) = (&args.generate_password, &password)
        && let Err(e) = write_private_file(path, pw.expose().as_bytes())
    {
        let why = Failure::new(Exit::Failed, format!("cannot write {}: {e}; user not created", path.display()));
        let undone = posix::undo(&dir, dn, group_dn.as_ref(), dirbroker::admin::AdminError::Failed(why.message)).await;
        return Err(Failure::new(Exit::Failed, undone.to_string()));
    }
    let p = made.user.posix.as_ref();
    let mut text = format!(
        "created {dn}{}",
        if password.is_some() { " with a password" } else { " (no password: cannot log in yet)" }
    );
    if let Some(p) = p {
        text.push_str(&format!(
            "\nuidNumber {} gidNumber {} home {} shell {}",
            p.uid_number,
            p.gid_number,
            p.home_directory,
            p.login_shell.as_deref().unwrap_or("-")
        ));
    }
    if let Some(g) = &group_dn {
        text.push_str(&format!("\ncreated user-private group {g}"));
    }
    ctx.report(
        json!({
            "uid": made.user.uid, "dn": dn.to_string(), "password_set": password.is_some(),
            "posix": made.user.posix, "group_dn": group_dn.map(|g| g.to_string()),
        }),
        &text,
    );
    Ok(())
}

async fn modify(ctx: &Ctx, a: ModifyArgs) -> CliResult {
    let m = UserModify {
        name: a.name,
        mail: if a.no_mail { Some(None) } else { a.mail.map(Some) },
        home: a.home,
        shell: if a.no_shell { Some(None) } else { a.shell.map(Some) },
        uid_number: a.uid_number,
        gid_number: a.gid_number,
        posix: a.posix,
        not_before: if a.no_not_before { Some(None) } else { a.not_before.map(Some) },
        not_after: if a.no_not_after { Some(None) } else { a.not_after.map(Some) },
    };
    let cfg = ctx.config()?;
    let dir = ctx.directory().await?;
    let u = posix::update_user(&dir, &cfg.posix, &a.uid, &m).await?;
    if ctx.output == Output::Json {
        ctx.json(&user_json(&dir, &u));
    } else {
        println!("modified {}", u.dn(dir.layout())?);
        if let Some(p) = &u.posix {
            println!(
                "uidNumber {} gidNumber {} home {} shell {}",
                p.uid_number,
                p.gid_number,
                p.home_directory,
                p.login_shell.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

fn read_text(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let mut buf = Vec::new();
    let limit = 1024 * 1024;
    let res = if path == std::path::Path::new("-") {
        std::io::stdin().take(limit + 1).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
    };
    res.map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() as u64 > limit {
        return Err(Failure::usage(format!("{} is larger than 1 MiB", path.display())));
    }
    String::from_utf8(buf).map_err(|_| Failure::usage(format!("{} is not UTF-8 text", path.display())))
}

async fn key(ctx: &Ctx, cmd: KeyCmd) -> CliResult {
    match cmd {
        KeyCmd::Add(a) => {
            let text = read_text(&a.file)?;
            let mut new: Vec<SshKey> = Vec::new();
            let mut problems = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match SshKey::parse(line).and_then(|k| k.check_policy().map(|()| k)) {
                    Ok(k) if new.iter().any(|o| o.same_key(&k)) => {
                        problems.push(format!("line {}: the same key appears twice", n + 1))
                    }
                    Ok(k) => new.push(k),
                    Err(e) => problems.push(format!("line {}: {e}", n + 1)),
                }
            }
            if new.is_empty() && problems.is_empty() {
                return Err(Failure::usage(format!("no key found in {}", a.file.display())));
            }
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            for k in &new {
                if u.ssh_public_keys.iter().filter_map(|l| SshKey::parse(l).ok()).any(|o| o.same_key(k)) {
                    problems.push(format!("{} is already a key of {}", k.fingerprint(), u.uid));
                }
            }
            if !problems.is_empty() {
                return Err(Failure::usage(format!("nothing added:\n  {}", problems.join("\n  "))));
            }
            let values = new.iter().map(|k| k.to_string().into_bytes()).collect();
            // With ldapPublicKey (and dirbrokerUser) when an entry written by another tool lacks them.
            dirbroker::admin::posix::modify_user(&dir, &u.uid, vec![Change::Add(b"sshPublicKey".to_vec(), values)])
                .await?;
            if ctx.output == Output::Json {
                let fps: Vec<String> = new.iter().map(SshKey::fingerprint).collect();
                ctx.json(&json!({ "uid": u.uid, "added": fps }));
            } else {
                for k in &new {
                    println!("added {}", k.describe());
                }
            }
            Ok(())
        }
        KeyCmd::List(a) => {
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            let keys: Vec<Result<SshKey, String>> =
                u.ssh_public_keys.iter().map(|l| SshKey::parse(l).map_err(|e| e.to_string())).collect();
            if ctx.output == Output::Json {
                let items: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| match k {
                        Ok(k) => json!({
                            "type": k.key_type(), "bits": k.bits(), "fingerprint": k.fingerprint(),
                            "comment": k.comment(), "options": k.options(),
                        }),
                        Err(e) => json!({ "error": e }),
                    })
                    .collect();
                ctx.json(&serde_json::Value::Array(items));
            } else {
                for k in &keys {
                    match k {
                        Ok(k) => println!("{}", k.describe()),
                        Err(e) => println!("(unusable value: {e})"),
                    }
                }
            }
            Ok(())
        }
        KeyCmd::Remove(a) => {
            let dir = ctx.directory().await?;
            let u = existing_user(&dir, &a.uid).await?;
            let matching: Vec<&String> = u
                .ssh_public_keys
                .iter()
                .filter(|l| SshKey::parse(l).is_ok_and(|k| k.fingerprint() == a.fingerprint))
                .collect();
            if matching.is_empty() {
                return Err(Failure::new(Exit::Failed, format!("{} has no key {}", u.uid, a.fingerprint)));
            }
            let values = matching.iter().map(|l| l.as_bytes().to_vec()).collect();
            dir.modify(&u.dn(dir.layout())?, vec![ldap3::Mod::Delete(b"sshPublicKey".to_vec(), values)]).await?;
            ctx.report(
                json!({ "uid": u.uid, "removed": a.fingerprint }),
                &format!("removed {} from {}", a.fingerprint, u.uid),
            );
            Ok(())
        }
    }
}

pub const INVITE_HELP: &str = "Examples:\n  dirbroker user invite alice --out alice.invite\n  \
    dirbroker user invite bob --level 3 --hours 24\n\n\
    The code is printed once (or written to --out, mode 0600) and stored in LDAP only as a\n\
    hash with its level and expiry; a new invitation replaces the old one. The user runs\n\
    `dirbroker register USER --invite-file FILE …`; the code works once.";

#[derive(Args, Debug)]
pub struct InviteArgs {
    uid: String,
    /// SSO level the registration grants (1–4; default: the user's current level).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    level: Option<u8>,
    /// Hours the invitation stays valid.
    #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=8760))]
    hours: u32,
    /// Write the code to FILE (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub async fn invite(ctx: &Ctx, a: InviteArgs) -> CliResult {
    let dir = ctx.directory().await?;
    let user = existing_user(&dir, &a.uid).await?;
    let level = match a.level {
        Some(l) => l,
        None => u8::try_from(user.level.number()).unwrap_or(2),
    };
    let expires = dirbroker::clock::now().unix_timestamp().saturating_add(i64::from(a.hours) * 3600);
    let (inv, code) = Invitation::new(&a.uid, level, expires).map_err(Failure::usage)?;
    if let Some(out) = &a.out
        && out.exists()
    {
        return Err(Failure::usage(format!("{} exists already", out.display())));
    }
    let dn = user.dn(dir.layout())?;
    dir.modify(
        &dn,
        vec![Change::Replace(invitation::ATTR.as_bytes().to_vec(), [inv.to_value()].into_iter().collect())],
    )
    .await?;
    let until = OffsetDateTime::from_unix_timestamp(expires)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    match &a.out {
        Some(out) => {
            write_private_file(out, format!("{}\n", code.as_str()).as_bytes())
                .map_err(|e| Failure::new(Exit::Failed, format!("{}: {e}", out.display())))?;
            ctx.report(
                json!({ "uid": a.uid, "level": level, "expires": until, "file": out }),
                &format!("invitation for {} (level {level}, until {until}) written to {}", a.uid, out.display()),
            );
        }
        None => ctx.report(
            json!({ "uid": a.uid, "level": level, "expires": until, "code": code.as_str() }),
            &format!("invitation for {} (level {level}, until {until}); shown once:\n{}", a.uid, code.as_str()),
        ),
    }
    Ok(())
}
