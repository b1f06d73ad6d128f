//! `dirbroker user …`: add, show, list, delete users; set and check passwords.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use dirbroker::directory::Directory;
use dirbroker::model::{DirEntry, Posix, User, UserLevel};
use dirbroker::secret::{SecretString, read_secret_file, write_private_file};

use super::{CliResult, Ctx, Failure, Output};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user (inetOrgPerson + ldapPublicKey + dirbrokerUser).
    #[command(after_help = "Examples:\n  dirbroker user add alice --name 'Alice Liddell' --password-file alice.pw\n  \
        printf '%s' \"$PW\" | dirbroker user add bob --name Bob --password-file -\n  \
        dirbroker user add carol --name Carol --level 4 --generate-password carol.pw\n  \
        dirbroker user add dave --name Dave --uid-number 10001 --gid-number 10001 --home /home/dave\n\n\
        Either way the password is never on the command line. If setting the password\n\
        fails, the new entry is removed again.")]
    Add(AddArgs),
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
    /// Check a password by binding as the user: exit 0 if right, 1 if wrong.
    #[command(after_help = "Examples:\n  dirbroker user check-password alice < alice.pw\n  \
        dirbroker user check-password alice --password-file alice.pw")]
    CheckPassword(CheckArgs),
}

#[derive(Args, Debug)]
pub struct UidArg {
    /// The user's uid.
    uid: String,
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
    /// POSIX uid number (makes the user a posixAccount; needs --gid-number).
    #[arg(long, requires = "gid_number")]
    uid_number: Option<u32>,
    #[arg(long, requires = "uid_number")]
    gid_number: Option<u32>,
    /// Home directory for a POSIX account (default /home/UID).
    #[arg(long, requires = "uid_number")]
    home: Option<String>,
    #[arg(long, requires = "uid_number")]
    shell: Option<String>,
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

async fn existing(dir: &Directory, uid: &str) -> Result<User, Failure> {
    dir.find_user(uid).await?.ok_or_else(|| Failure::new(1, format!("no user with uid {uid:?}")))
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
        "posix": u.posix,
        "ssh_public_keys": u.ssh_public_keys,
        "allowed_from": u.allowed_from,
        "has_public_value": u.public_value.is_some(),
        "keystroke_hardening": u.keystroke_hardening,
        "has_escrowed_ssh_key": u.sealed_ssh_private_key.is_some(),
    })
}

pub async fn run(ctx: &Ctx, cmd: UserCmd) -> CliResult {
    match cmd {
        UserCmd::Add(args) => add(ctx, args).await,
        UserCmd::Show(a) => {
            let dir = ctx.directory().await?;
            let u = existing(&dir, &a.uid).await?;
            if ctx.output == Output::Json {
                ctx.json(&user_json(&dir, &u));
            } else {
                println!("uid:      {}", u.uid);
                println!("dn:       {}", u.dn(dir.layout())?);
                println!("name:     {}", u.cn);
                if let Some(m) = &u.mail {
                    println!("mail:     {m}");
                }
                println!("level:    {} ({:?})", u.level.number(), u.level);
                println!("disabled: {}", u.disabled);
                if let Some(p) = &u.posix {
                    println!("posix:    uid {} gid {} home {}", p.uid_number, p.gid_number, p.home_directory);
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
            let u = existing(&dir, &a.uid).await?;
            dir.delete(&u.dn(dir.layout())?).await?;
            report(ctx, json!({ "deleted": u.uid }), &format!("deleted user {}", u.uid));
            Ok(())
        }
        UserCmd::SetPassword(a) => {
            let pw = read_password(&a.password_file)?;
            let dir = ctx.directory().await?;
            let u = existing(&dir, &a.uid).await?;
            dir.set_password(&u.dn(dir.layout())?, &pw).await?;
            report(ctx, json!({ "uid": u.uid, "password_set": true }), &format!("password set for {}", u.uid));
            Ok(())
        }
        UserCmd::CheckPassword(a) => {
            let pw = read_password(&a.password_file)?;
            let dir = ctx.directory().await?;
            let u = existing(&dir, &a.uid).await?;
            let ok = dir.check_password(&u.dn(dir.layout())?, &pw).await?;
            report(
                ctx,
                json!({ "uid": u.uid, "accepted": ok }),
                if ok { "password accepted" } else { "password rejected" },
            );
            if ok { Ok(()) } else { Err(Failure::new(1, format!("wrong password for {}", u.uid))) }
        }
    }
}

fn report(ctx: &Ctx, value: serde_json::Value, text: &str) {
    if ctx.output == Output::Json {
        ctx.json(&value);
    } else {
        println!("{text}");
    }
}

async fn add(ctx: &Ctx, args: AddArgs) -> CliResult {
    let mut user = User::new(&args.uid, &args.name)?;
    user.mail = args.mail;
    user.level = UserLevel::from_number(args.level).ok_or_else(|| Failure::usage("level must be 1 to 4"))?;
    if let (Some(uid_number), Some(gid_number)) = (args.uid_number, args.gid_number) {
        user.posix = Some(Posix {
            uid_number,
            gid_number,
            home_directory: args.home.unwrap_or_else(|| format!("/home/{}", args.uid)),
            login_shell: args.shell,
        });
    }
    let password = match (&args.password_file, &args.generate_password) {
        (Some(f), _) => Some(read_password(f)?),
        (None, Some(_)) => Some(SecretString::generate(20)),
        (None, None) => None,
    };
    let dir = ctx.directory().await?;
    let dn = dir.create(&user).await?;
    if let Some(pw) = &password
        && let Err(e) = dir.set_password(&dn, pw).await
    {
        // Leave nothing half-made behind.
        let cleanup = dir.delete(&dn).await;
        let mut f = Failure::from(e);
        if let Err(c) = cleanup {
            f.message.push_str(&format!("; removing the new entry {dn} failed too: {c}"));
        }
        return Err(f);
    }
    if let (Some(path), Some(pw)) = (&args.generate_password, &password)
        && let Err(e) = write_private_file(path, pw.expose().as_bytes())
    {
        let _ = dir.delete(&dn).await;
        return Err(Failure::new(1, format!("cannot write {}: {e}; user not created", path.display())));
    }
    report(
        ctx,
        json!({ "uid": user.uid, "dn": dn.to_string(), "password_set": password.is_some() }),
        &format!(
            "created {dn}{}",
            if password.is_some() { " with a password" } else { " (no password: cannot log in yet)" }
        ),
    );
    Ok(())
}
