//! Making OTP tokens: what `dirbroker otp enroll` and `otp import` do
//! between reading the operator's input and printing the result. A HOTP or
//! TOTP token from `enroll` is stored only once a code from the app proves
//! it holds the secret (that code is consumed at once); an imported one is
//! stored as given; an S/KEY token starts from a passphrase.

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::directory::Directory;
use crate::model::{DirEntry as _, OtpToken, TokenType};
use crate::otp::codes::{self, Algorithm};
use crate::otp::enroll;
use crate::otp::skey::SkeyAlgorithm;
use crate::seal::{Keyring, context};

use super::AdminError;

/// How a HOTP or TOTP token makes its codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeParams {
    pub algorithm: Algorithm,
    pub digits: u8,
    /// TOTP step in seconds.
    pub period: u32,
}

/// Where a new HOTP/TOTP token starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Enrolled: the confirming code was made at this counter (HOTP) or
    /// time step (TOTP) and is used up.
    Confirmed(u64),
    /// Imported: HOTP at this counter, TOTP with nothing used yet.
    Imported(u64),
}

/// A token of `kind` for the user `uid`, not yet stored: its id is `id` or
/// `UID-KIND-xxxxxx`, checked as a DN value; the owner must exist.
pub async fn draft(
    dir: &Directory,
    uid: &str,
    kind: TokenType,
    id: Option<String>,
    description: Option<String>,
) -> Result<OtpToken, AdminError> {
    let id = match id {
        Some(id) => id,
        None => {
            let mut r = [0u8; 3];
            crate::clock::fill_random(&mut r).map_err(|_| AdminError::Failed("no randomness".into()))?;
            format!("{uid}-{}-{:02x}{:02x}{:02x}", kind.as_str(), r[0], r[1], r[2])
        }
    };
    crate::directory::dn::check_value("token id", &id)?;
    let owner = super::existing_user(dir, uid).await?.dn(dir.layout())?;
    let mut t = OtpToken::new(&id, owner, kind)?;
    t.description = description;
    Ok(t)
}

/// The counter (HOTP: 0 to 10) or time step (TOTP: now, one before or one
/// after) at which `code` was made from `secret`; `None` if none matches.
pub fn confirming_counter(
    kind: TokenType,
    secret: &[u8],
    p: &CodeParams,
    code: &str,
    now: OffsetDateTime,
) -> Result<Option<u64>, AdminError> {
    let digits = u32::from(p.digits);
    let code = codes::parse_code(code, digits).map_err(|e| AdminError::Usage(e.to_string()))?;
    let matches =
        |counter: &u64| codes::hotp(secret, *counter, digits, p.algorithm).is_ok_and(|c| codes::codes_equal(&c, &code));
    Ok(match kind {
        TokenType::Totp => {
            let step = codes::totp_counter(u64::try_from(now.unix_timestamp()).unwrap_or(0), u64::from(p.period))
                .map_err(|e| AdminError::Failed(e.to_string()))?;
            [step, step.saturating_sub(1), step + 1].into_iter().find(matches)
        }
        _ => (0..=10u64).find(matches),
    })
}

/// Gives the draft `t` its parameters and starting state, seals `secret`
/// for it (bound to the owner and the parameters just set) and stores it.
pub async fn store(
    dir: &Directory,
    ring: &Keyring,
    mut t: OtpToken,
    secret: &[u8],
    p: &CodeParams,
    start: Start,
) -> Result<OtpToken, AdminError> {
    let counter = |c: u64| i64::try_from(c).map_err(|_| AdminError::Usage("counter too large".into()));
    t.algorithm = Some(p.algorithm.as_str().into());
    t.digits = Some(p.digits);
    match (t.kind, start) {
        (TokenType::Totp, start) => {
            t.period = Some(p.period);
            t.totp_watermark = Some(match start {
                Start::Confirmed(step) => counter(step)?,
                Start::Imported(_) => 0,
            });
            t.clock_offset = Some(0);
        }
        (_, Start::Confirmed(c)) => t.hotp_counter = Some(counter(c)?.saturating_add(1)),
        (_, Start::Imported(c)) => t.hotp_counter = Some(counter(c)?),
    }
    t.secret = Some(ring.seal(&context::otp_token(&t), secret).map_err(|e| AdminError::Failed(e.to_string()))?);
    dir.create(&t).await?;
    Ok(t)
}

/// An S/KEY token from `passphrase` with `count` passwords: a fresh seed,
/// the chain's start stored; returns the token and its seed.
pub async fn store_skey(
    dir: &Directory,
    mut t: OtpToken,
    algorithm: SkeyAlgorithm,
    passphrase: &Zeroizing<String>,
    count: u32,
) -> Result<(OtpToken, String), AdminError> {
    let seed = enroll::generate_skey_seed().map_err(|e| AdminError::Failed(e.to_string()))?;
    let first = enroll::skey_initial(algorithm, &seed, passphrase.as_bytes(), count)
        .map_err(|e| AdminError::Usage(e.to_string()))?;
    t.algorithm = Some(algorithm.as_str().into());
    t.skey_seed = Some(seed.clone());
    t.skey_sequence = Some(i64::from(count));
    t.skey_last_otp = Some(first.to_vec());
    dir.create(&t).await?;
    Ok((t, seed))
}
