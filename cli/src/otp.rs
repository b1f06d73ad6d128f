//! `dirbroker otp …`: enrol, import, list and administer OTP tokens, and
//! verify codes. `dirbroker secrets …`: the master keys that seal them.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use dirbroker::admin::otp::{self as admin_otp, Start};
use dirbroker::directory::{DirError, Directory, Dn};
use dirbroker::model::{DirEntry, OtpToken, TokenType};
use dirbroker::otp::codes::Algorithm;
use dirbroker::otp::enroll::{self, SecretFormat, UriParams};
use dirbroker::otp::skey::SkeyAlgorithm;
use dirbroker::otp::verify::{self, Outcome, Refusal};

use super::{CliResult, Ctx, Failure, Output, delete_named, load_named};
use crate::exit::Exit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Totp,
    Hotp,
    Skey,
}

impl From<Kind> for TokenType {
    fn from(k: Kind) -> TokenType {
        match k {
            Kind::Totp => TokenType::Totp,
            Kind::Hotp => TokenType::Hotp,
            Kind::Skey => TokenType::Skey,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OtpCmd {
    /// Create a token for USER: show the secret as a QR code, then require one valid code.
    #[command(after_help = "Examples:\n  dirbroker otp enroll alice\n  dirbroker otp enroll alice --type hotp\n  \
        printf 'correct horse battery\\n' | dirbroker otp enroll alice --type skey --count 100\n\n\
        TOTP/HOTP: scan the QR code (or type the otpauth:// URI) into an authenticator app,\n\
        then type the code it shows; the token is stored only after that code checks out.\n\
        The defaults SHA1, 6 digits, 30 s are what nearly every app supports; many apps\n\
        silently ignore other algorithm/digits/period settings and then show wrong codes.\n\
        S/KEY: the user's passphrase (10+ characters) is read from standard input; only\n\
        the derived one-time password is stored.")]
    Enroll(EnrollArgs),
    /// Store a token with a known secret (read from a file or stdin, never argv).
    #[command(after_help = "Examples:\n  dirbroker otp import alice --type totp --secret-file seed.b32\n  \
        dirbroker otp import alice --type hotp --format hex --counter 5 --secret-file - < seed.hex\n  \
        dirbroker otp import alice --uri-file - < exported-otpauth-uri.txt")]
    Import(ImportArgs),
    /// List tokens (all, or one user's).
    #[command(after_help = "Examples:\n  dirbroker otp list\n  dirbroker otp list alice --output json")]
    List(ListArgs),
    /// Disable a token (codes are refused until enabled).
    #[command(after_help = "Example:\n  dirbroker otp disable alice-totp-3f2a")]
    Disable(IdArg),
    /// Enable a disabled token.
    #[command(after_help = "Example:\n  dirbroker otp enable alice-totp-3f2a")]
    Enable(IdArg),
    /// Delete a token.
    #[command(after_help = "Example:\n  dirbroker otp delete alice-totp-3f2a")]
    Delete(IdArg),
    /// Resynchronise a drifted HOTP/TOTP token with two consecutive codes from stdin.
    #[command(after_help = "Example:\n  printf '123456 654321\\n' | dirbroker otp resync alice-hotp-91c0")]
    Resync(IdArg),
    /// Clear the failure count of a locked token.
    #[command(after_help = "Example:\n  dirbroker otp unlock alice-totp-3f2a")]
    Unlock(IdArg),
    /// Check a code read from stdin: exit 0 accepted, 1 refused (reason on stderr).
    #[command(after_help = "Examples:\n  echo 492039 | dirbroker otp verify alice\n  \
        oathtool --totp -b \"$SECRET\" | dirbroker otp verify alice --token alice-totp-3f2a\n\n\
        A code is accepted once: the same code again, or the same code at the same\n\
        moment on another broker, is refused.")]
    Verify(VerifyArgs),
    /// Show the RFC 2289 challenge of USER's S/KEY tokens (`otp-md5 99 ke1234`).
    #[command(after_help = "Examples:\n  dirbroker otp challenge alice\n  \
        dirbroker otp challenge alice --output json\n\n\
        The user answers with the password of that number from their S/KEY calculator\n\
        (e.g. `opiekey 99 ke1234`). `otp verify` shows the same challenge before it reads\n\
        the answer when USER has an S/KEY token.")]
    Challenge(VerifyArgs),
}

/// Code parameters shared by `enroll` and `import`.
#[derive(Args, Debug)]
pub struct CodeParams {
    /// HMAC algorithm (TOTP/HOTP: sha1, sha256, sha512; S/KEY: md5, sha1).
    #[arg(long)]
    algorithm: Option<String>,
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(6..=8))]
    digits: u8,
    /// TOTP time step in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    period: u32,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    user: String,
    #[arg(long = "type", value_enum, default_value_t = Kind::Totp)]
    kind: Kind,
    #[command(flatten)]
    params: CodeParams,
    /// S/KEY: number of one-time passwords in the sequence.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=10000))]
    count: u32,
    /// Token id (default: USER-TYPE-random).
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Do not draw the QR code.
    #[arg(long)]
    no_qr: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    user: String,
    /// Token type (not needed with --uri-file).
    #[arg(long = "type", value_enum, required_unless_present = "uri_file")]
    kind: Option<Kind>,
    /// File holding the secret ('-' for standard input).
    #[arg(long, value_name = "FILE", required_unless_present = "uri_file", conflicts_with = "uri_file")]
    secret_file: Option<PathBuf>,
    /// File holding an otpauth:// URI ('-' for standard input); it sets type and parameters.
    #[arg(long, value_name = "FILE")]
    uri_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = SecretFormatArg::Base32)]
    format: SecretFormatArg,
    #[command(flatten)]
    params: CodeParams,
    /// HOTP: the next counter value.
    #[arg(long, default_value_t = 0)]
    counter: u64,
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    user: Option<String>,
}

#[derive(Args, Debug)]
pub struct IdArg {
    id: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    user: String,
    /// Check this token only (default: each enabled token of USER).
    #[arg(long)]
    token: Option<String>,
}

fn now() -> OffsetDateTime {
    dirbroker::clock::now()
}

async fn user_dn(dir: &Directory, uid: &str) -> Result<Dn, Failure> {
    Ok(super::existing_user(dir, uid).await?.dn(dir.layout())?)
}

async fn tokens_of(dir: &Directory, owner: &Dn) -> Result<Vec<OtpToken>, Failure> {
    let entries = dir.owner_token_entries(owner, &["*"]).await?;
    let mut v: Vec<OtpToken> = entries.iter().map(OtpToken::from_entry).collect::<Result<_, _>>()?;
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(v)
}

fn algorithm(a: Option<&str>) -> Result<Algorithm, Failure> {
    match a {
        None => Ok(Algorithm::Sha1),
        Some(s) => Algorithm::parse(s).ok_or_else(|| Failure::usage(format!("{s:?}: use sha1, sha256 or sha512"))),
    }
}

/// Read one line of standard input (a code, a passphrase).
fn read_line(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    use std::io::Read;
    if !prompt.is_empty() {
        eprint!("{prompt}");
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("reading standard input: {e}")))?;
    Ok(Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string()))
}

fn token_json(t: &OtpToken) -> serde_json::Value {
    json!({
        "id": t.id, "owner": t.owner.as_str(), "type": t.kind.as_str(), "algorithm": t.algorithm,
        "digits": t.digits, "period": t.period, "counter": t.hotp_counter, "watermark": t.totp_watermark,
        "clock_offset": t.clock_offset, "skey_sequence": t.skey_sequence, "skey_seed": t.skey_seed,
        "failures": t.failure_count, "disabled": t.disabled, "description": t.description,
    })
}

pub async fn run(ctx: &Ctx, cmd: OtpCmd) -> CliResult {
    match cmd {
        OtpCmd::Enroll(a) => enroll_token(ctx, a).await,
        OtpCmd::Import(a) => import(ctx, a).await,
        OtpCmd::List(a) => {
            let dir = ctx.directory().await?;
            let tokens = match &a.user {
                Some(u) => tokens_of(&dir, &user_dn(&dir, u).await?).await?,
                None => {
                    let mut v = match dir.list::<OtpToken>().await {
                        Ok(v) => v,
                        // slapd hides a subtree the identity may not read as
                        // "no such object"; ou=otp always exists (dirbroker check).
                        Err(DirError::NotFound { what }) if what.eq_ignore_ascii_case(dir.layout().otp.as_str()) => {
                            let who = dir.whoami().await.unwrap_or_default();
                            return Err(DirError::AccessDenied {
                                dn: what,
                                message: format!("{who} may not read OTP tokens (bind as the broker identity)"),
                            }
                            .into());
                        }
                        Err(e) => return Err(e.into()),
                    };
                    v.sort_by(|a, b| a.id.cmp(&b.id));
                    v
                }
            };
            let policy = ctx.config()?.otp_policy();
            let state = |t: &OtpToken| match verify::state_refusal(t, now(), &policy) {
                None => ("enabled", None),
                Some(Refusal::Disabled) => ("disabled", None),
                Some(Refusal::NotYetValid) => ("not-yet-valid", None),
                Some(Refusal::Expired) => ("expired", None),
                Some(Refusal::LockedOut { until, .. }) => ("locked", until),
                Some(_) => ("unusable", None),
            };
            if ctx.output == Output::Json {
                let list = tokens.iter().map(|t| {
                    let mut j = token_json(t);
                    let (s, until) = state(t);
                    if let Some(o) = j.as_object_mut() {
                        o.insert("state".into(), json!(s));
                        o.insert("locked_until".into(), json!(until.map(|u| u.unix_timestamp())));
                    }
                    j
                });
                ctx.json(&serde_json::Value::Array(list.collect()));
            } else {
                println!("{:<28} {:<5} {:<8} {:<13} OWNER", "ID", "TYPE", "FAILURES", "STATE");
                for t in &tokens {
                    let (s, _) = state(t);
                    println!("{:<28} {:<5} {:<8} {:<13} {}", t.id, t.kind.as_str(), t.failure_count, s, t.owner);
                }
            }
            Ok(())
        }
        OtpCmd::Disable(a) | OtpCmd::Enable(a) if a.id.is_empty() => Err(Failure::usage("empty token id")),
        OtpCmd::Disable(a) => set_disabled(ctx, &a.id, true).await,
        OtpCmd::Enable(a) => set_disabled(ctx, &a.id, false).await,
        OtpCmd::Delete(a) => {
            let t = delete_named::<OtpToken>(&ctx.directory().await?, &a.id, "token").await?;
            ctx.report(json!({ "deleted": t.id }), &format!("deleted token {}", t.id));
            Ok(())
        }
        OtpCmd::Unlock(a) => {
            let dir = ctx.directory().await?;
            let t = load_named::<OtpToken>(&dir, &a.id, "token").await?;
            verify::unlock(&dir, &t).await?;
            ctx.report(json!({ "unlocked": t.id }), &format!("token {} unlocked", t.id));
            Ok(())
        }
        OtpCmd::Resync(a) => {
            let line = read_line("")?;
            let mut parts = line.split_whitespace();
            let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(Failure::usage("give two consecutive codes on one line of standard input"));
            };
            let config = ctx.config()?;
            let ring = ctx.keyring()?;
            let dir = ctx.directory().await?;
            let t = load_named::<OtpToken>(&dir, &a.id, "token").await?;
            let out = verify::resync(&dir, &ring, &t, first, second, now(), &config.otp_policy())
                .await
                .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
            outcome(ctx, &t, out)
        }
        OtpCmd::Verify(a) => verify_code(ctx, a).await,
        OtpCmd::Challenge(a) => show_challenge(ctx, a).await,
    }
}

fn outcome(ctx: &Ctx, t: &OtpToken, out: Outcome) -> CliResult {
    match out {
        Outcome::Accepted { counter } => {
            ctx.report(json!({ "token": t.id, "accepted": true, "counter": counter }), "accepted");
            Ok(())
        }
        Outcome::Refused(r) => {
            if ctx.output == Output::Json {
                ctx.json(&json!({ "token": t.id, "accepted": false, "reason": r.to_string() }));
            }
            Err(Failure::new(Exit::Failed, format!("refused: {r}")))
        }
    }
}

async fn set_disabled(ctx: &Ctx, id: &str, disabled: bool) -> CliResult {
    let dir = ctx.directory().await?;
    let t = load_named::<OtpToken>(&dir, id, "token").await?;
    let v = dirbroker::directory::values::bool_value(disabled);
    dir.modify(
        &t.dn(dir.layout())?,
        vec![dirbroker::directory::Change::Replace(b"dirbrokerDisabled".to_vec(), [v].into_iter().collect())],
    )
    .await?;
    let word = if disabled { "disabled" } else { "enabled" };
    ctx.report(json!({ "token": t.id, "disabled": disabled }), &format!("token {} {word}", t.id));
    Ok(())
}

/// The S/KEY challenges of `tokens`, as `(token id, challenge)`.
fn challenges(tokens: &[OtpToken]) -> Vec<(String, String)> {
    tokens
        .iter()
        .filter(|t| t.kind == TokenType::Skey)
        .filter_map(|t| {
            let alg = t.algorithm.as_deref().map_or(Some(SkeyAlgorithm::Md5), SkeyAlgorithm::parse)?;
            let c = dirbroker::otp::skey::challenge(alg, t.skey_sequence?, t.skey_seed.as_deref()?)?;
            Some((t.id.clone(), c))
        })
        .collect()
}

async fn show_challenge(ctx: &Ctx, a: VerifyArgs) -> CliResult {
    let dir = ctx.directory().await?;
    let user = super::existing_user(&dir, &a.user).await?;
    let owner = user.dn(dir.layout())?;
    let tokens: Vec<OtpToken> = tokens_of(&dir, &owner)
        .await?
        .into_iter()
        .filter(|t| !t.disabled && a.token.as_ref().is_none_or(|id| *id == t.id))
        .collect();
    let list = challenges(&tokens);
    if list.is_empty() {
        return Err(Failure::new(Exit::Failed, format!("{} has no enabled S/KEY token with passwords left", a.user)));
    }
    let text = list.iter().map(|(id, c)| format!("{c}    ({id})")).collect::<Vec<_>>().join("\n");
    ctx.report(json!(list.iter().map(|(id, c)| json!({ "token": id, "challenge": c })).collect::<Vec<_>>()), &text);
    Ok(())
}

async fn verify_code(ctx: &Ctx, a: VerifyArgs) -> CliResult {
    let config = ctx.config()?;
    let ring = ctx.keyring()?;
    let dir = ctx.directory().await?;
    let user = super::existing_user(&dir, &a.user).await?;
    // The account rule: a disabled or expired user's codes are refused.
    if let Err(why) = dirbroker::model::Usable::usable_at(&user, now()) {
        return Err(Failure::new(Exit::Failed, format!("refused: the account of {} is {why}", a.user)));
    }
    let owner = user.dn(dir.layout())?;
    let candidates = match &a.token {
        Some(id) => {
            let t = load_named::<OtpToken>(&dir, id, "token").await?;
            if !t.owner.is_within(&owner) || !owner.is_within(&t.owner) {
                return Err(Failure::new(Exit::Failed, format!("token {id} does not belong to {}", a.user)));
            }
            vec![t]
        }
        None => tokens_of(&dir, &owner).await?.into_iter().filter(|t| !t.disabled).collect(),
    };
    if candidates.is_empty() {
        return Err(Failure::new(Exit::Failed, format!("{} has no enabled token", a.user)));
    }
    // RFC 2289 §5: the challenge comes before the response.
    for (_, c) in challenges(&candidates) {
        eprintln!("{c}");
    }
    let code = read_line("")?;
    let policy = config.otp_policy();
    match verify::verify_any(&dir, &ring, &candidates, &code, now(), &policy)
        .await
        .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?
    {
        Some((i, out)) => match candidates.get(i) {
            Some(t) => outcome(ctx, t, out),
            None => Err(Failure::new(Exit::Failed, "refused")),
        },
        None => Err(Failure::new(Exit::Failed, "refused: wrong code")),
    }
}

async fn enroll_token(ctx: &Ctx, a: EnrollArgs) -> CliResult {
    let config = ctx.config()?;
    let kind: TokenType = a.kind.into();
    let ring = ctx.keyring()?;
    let dir = ctx.directory().await?;
    let t = admin_otp::draft(&dir, &a.user, kind, a.id.clone(), a.description.clone()).await?;
    let id = t.id.clone();
    if kind == TokenType::Skey {
        let alg = match a.params.algorithm.as_deref() {
            None => SkeyAlgorithm::Md5,
            Some(s) => SkeyAlgorithm::parse(s).ok_or_else(|| Failure::usage(format!("{s:?}: use md5 or sha1")))?,
        };
        let pass = read_line("S/KEY passphrase (10+ characters): ")?;
        let (_, seed) = admin_otp::store_skey(&dir, t, alg, &pass, a.count).await?;
        ctx.report(
            json!({ "token": id, "type": "skey", "seed": seed, "sequence": a.count - 1, "algorithm": alg.as_str() }),
            &format!(
                "created S/KEY token {id}: seed {seed}, algorithm {}; the next password is number {}\n\
                 (e.g. `otp-{} {} {seed}`)",
                alg.as_str(),
                a.count - 1,
                alg.as_str(),
                a.count - 1
            ),
        );
        return Ok(());
    }
    let params = admin_otp::CodeParams {
        algorithm: algorithm(a.params.algorithm.as_deref())?,
        digits: a.params.digits,
        period: a.params.period,
    };
    let secret = enroll::generate_secret().map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
    let uri = enroll::otpauth_uri(&UriParams {
        kind,
        issuer: &config.otp.issuer,
        account: &a.user,
        secret: &secret,
        algorithm: params.algorithm,
        digits: u32::from(params.digits),
        period: params.period,
        counter: 0,
    })
    .map_err(|e| Failure::usage(e.to_string()))?;
    if ctx.output == Output::Json {
        ctx.json(&json!({ "token": id, "otpauth_uri": uri, "confirm": "send one code on standard input" }));
    } else {
        if !a.no_qr {
            println!("{}", enroll::qr_text(&uri).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?);
        }
        println!("{uri}");
        if params.algorithm != Algorithm::Sha1 || params.digits != 6 || params.period != 30 {
            eprintln!("note: many authenticator apps ignore algorithm/digits/period and will show wrong codes");
        }
    }
    let code = read_line("code from the app: ")?;
    let Some(counter) = admin_otp::confirming_counter(kind, &secret, &params, &code, now())? else {
        return Err(Failure::new(Exit::Failed, "that code does not match: nothing was stored; enrol again"));
    };
    admin_otp::store(&dir, &ring, t, &secret, &params, Start::Confirmed(counter)).await?;
    ctx.report(json!({ "token": id, "type": kind.as_str(), "active": true }), &format!("token {id} is active"));
    Ok(())
}

async fn import(ctx: &Ctx, a: ImportArgs) -> CliResult {
    let (kind, secret, params, counter) = match (&a.uri_file, &a.secret_file) {
        (Some(f), _) => {
            let text = dirbroker::secret::read_secret_file(f).map_err(|e| Failure::usage(e.to_string()))?;
            let u = enroll::parse_otpauth_uri(text.expose()).map_err(|e| Failure::usage(e.to_string()))?;
            let digits = u8::try_from(u.digits).map_err(|_| Failure::usage("digits"))?;
            (u.kind, u.secret, admin_otp::CodeParams { algorithm: u.algorithm, digits, period: u.period }, u.counter)
        }
        (None, Some(f)) => {
            let kind: TokenType = a.kind.ok_or_else(|| Failure::usage("--type is required with --secret-file"))?.into();
            let text = dirbroker::secret::read_secret_file(f).map_err(|e| Failure::usage(e.to_string()))?;
            let secret =
                enroll::parse_secret(text.expose(), a.format.into()).map_err(|e| Failure::usage(e.to_string()))?;
            let algorithm = algorithm(a.params.algorithm.as_deref())?;
            (
                kind,
                secret,
                admin_otp::CodeParams { algorithm, digits: a.params.digits, period: a.params.period },
                a.counter,
            )
        }
        (None, None) => return Err(Failure::usage("give --secret-file or --uri-file")),
    };
    if kind == TokenType::Skey {
        return Err(Failure::usage("S/KEY tokens are made with `otp enroll --type skey`"));
    }
    let ring = ctx.keyring()?;
    let dir = ctx.directory().await?;
    let t = admin_otp::draft(&dir, &a.user, kind, a.id.clone(), a.description).await?;
    let t = admin_otp::store(&dir, &ring, t, &secret, &params, Start::Imported(counter)).await?;
    ctx.report(json!({ "token": t.id, "type": kind.as_str() }), &format!("imported token {}", t.id));
    Ok(())
}

/// How an imported secret is written (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SecretFormatArg {
    /// Base32 (RFC 4648, as in otpauth URIs); spaces and padding allowed.
    Base32,
    /// Hexadecimal, as oathtool takes it.
    Hex,
}

impl From<SecretFormatArg> for SecretFormat {
    fn from(f: SecretFormatArg) -> SecretFormat {
        match f {
            SecretFormatArg::Base32 => SecretFormat::Base32,
            SecretFormatArg::Hex => SecretFormat::Hex,
        }
    }
}
