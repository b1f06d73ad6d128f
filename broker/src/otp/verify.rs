//! OTP verification that cannot be replayed, across any number of broker
//! processes: the accepted HOTP counter, TOTP time step or S/KEY value is
//! written back with one LDAP modify that deletes the exact old value and
//! adds the new one. A second use of the same code, or a concurrent one,
//! finds the old value gone and fails at the directory (noSuchAttribute),
//! as FreeIPA's ipa-otp-counter plugin enforces (RFC 6238 §5.2: a verifier
//! MUST NOT accept the second attempt of the same OTP).
//!
//! ```text
//!  load token ─► disabled / outside validity / locked out? ─► refuse
//!             ─► open sealed secret ─► search the window above the watermark
//!  match  ─► modify: delete old watermark, add new; failures := 0   (one op,
//!             │                    asserting the lock state it was decided on)
//!             └─ noSuchAttribute ─► someone used it first: refuse
//!  no match ─► modify: increment failure count, last failure := now (RFC 4226 §7.3)
//!             and read the new count back: past the limit ─► "locked"
//! ```
//!
//! The lockout is part of the guarded writes, so concurrent guesses cannot
//! overshoot it: a code is accepted only by a write asserting that the token
//! is still below the limit (or, once the back-off has run out, that nobody
//! else has tried since); a wrong guess learns "wrong" only when its own
//! count, read back from the increment, is within the limit.
//!
//! Lockout decays: after `max_failures` the token is locked for
//! `lockout`, doubled for every further failure up to `max_lockout`, counted
//! from the last failure; then one attempt at a time is let through. A right
//! code resets the count; an admin's `otp unlock` still clears it at once.
//!
//! Time is a parameter (`now`), never read here.
//!
//! A long-running verifier (`dirbroker serve`) keeps a [`TokenCache`]: the
//! token state it last read or wrote, with the entry's `entryCSN`. Accepting
//! from remembered state sends the same single modify, guarded by an
//! Assertion control on that `entryCSN` (RFC 4528) and reading the new state
//! back (RFC 4527 Post-Read): if anyone changed the token since (another
//! broker consumed a code, an admin disabled or re-enrolled it, a failure was
//! counted), the write fails at the directory and the token is read again.
//! Every refusal is decided on freshly read state. The outcome is what a
//! read-then-write verifier would decide, one round trip cheaper.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::codes::{self, Algorithm};
use super::skey::{self, SkeyAlgorithm};
use crate::directory::values::{generalized_time, int_value};
use crate::directory::{Change, DirError, Directory, Dn, Entry, Filter};
use crate::model::{DirEntry, OtpToken, Sealed, TokenType, Unusable, Usable as _};
use crate::seal::{Keyring, SealError, context};

/// Windows and limits; the defaults follow RFC 6238 §5.2 and FreeIPA.
#[derive(Clone, Debug)]
pub struct Policy {
    /// TOTP: steps accepted on either side of now.
    pub totp_window: u32,
    /// HOTP: counters accepted ahead of the expected one.
    pub hotp_look_ahead: u32,
    /// Failed attempts after which the token is locked.
    pub max_failures: i64,
    /// How long a token stays locked after `max_failures` (doubled for each
    /// further failure, at most `max_lockout`); zero: until an admin unlocks it.
    pub lockout: time::Duration,
    pub max_lockout: time::Duration,
    /// Resynchronisation search range (TOTP steps either side, HOTP counters ahead).
    pub totp_sync_window: u32,
    pub hotp_sync_window: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            totp_window: 1,
            hotp_look_ahead: 10,
            max_failures: 10,
            lockout: time::Duration::minutes(1),
            max_lockout: time::Duration::hours(1),
            totp_sync_window: 2880,
            hotp_sync_window: 100,
        }
    }
}

/// Why a code was refused, as the user or admin should hear it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    WrongCode,
    /// The code was valid once and has been used.
    AlreadyUsed,
    /// Another verifier accepted this code at the same moment.
    LostRace,
    Disabled,
    NotYetValid,
    Expired,
    /// Too many failed attempts; `until` is when the next attempt is let
    /// through (`None`: only an admin's unlock opens it).
    LockedOut {
        failures: i64,
        until: Option<OffsetDateTime>,
    },
    /// A wrong code that took the token to (or back into) its lockout.
    LockedNow {
        failures: i64,
        until: Option<OffsetDateTime>,
    },
    Malformed(String),
    /// S/KEY sequence used up: re-initialise the token.
    Exhausted,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongCode => f.write_str("wrong code"),
            Refusal::AlreadyUsed => f.write_str("this code was already used"),
            Refusal::LostRace => f.write_str("this code was just used by another request"),
            Refusal::Disabled => f.write_str("the token is disabled"),
            Refusal::NotYetValid => f.write_str("the token is not valid yet"),
            Refusal::Expired => f.write_str("the token has expired"),
            Refusal::LockedOut { failures, until } => {
                write!(f, "the token is locked after {failures} failed attempts")?;
                locked_until(f, *until)
            }
            Refusal::LockedNow { failures, until } => {
                write!(f, "wrong code; the token is now locked after {failures} failed attempts")?;
                locked_until(f, *until)
            }
            Refusal::Malformed(why) => write!(f, "malformed code: {why}"),
            Refusal::Exhausted => f.write_str("the S/KEY sequence is used up; initialise the token again"),
        }
    }
}

fn locked_until(f: &mut std::fmt::Formatter<'_>, until: Option<OffsetDateTime>) -> std::fmt::Result {
    match until.and_then(|u| u.format(&time::format_description::well_known::Rfc3339).ok()) {
        Some(u) => write!(f, " until {u}; an admin can unlock it sooner"),
        None => f.write_str("; an admin can unlock it"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted at this counter / time step / S/KEY sequence number.
    Accepted {
        counter: i64,
    },
    Refused(Refusal),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Directory(#[from] DirError),
    #[error("token {token}: {source}")]
    Seal { token: String, source: SealError },
    #[error("token {token} is misconfigured: {reason}")]
    Misconfigured { token: String, reason: String },
}

/// Parameters of a HOTP/TOTP token with the defaults filled in.
struct Params {
    alg: Algorithm,
    digits: u32,
    period: u64,
}

fn params(t: &OtpToken) -> Result<Params, VerifyError> {
    let bad = |reason: String| VerifyError::Misconfigured { token: t.id.clone(), reason };
    let alg = match t.algorithm.as_deref() {
        None => Algorithm::Sha1,
        Some(a) => Algorithm::parse(a).ok_or_else(|| bad(format!("unknown algorithm {a:?}")))?,
    };
    let digits = u32::from(t.digits.unwrap_or(6));
    if !(6..=8).contains(&digits) {
        return Err(bad(format!("{digits} digits")));
    }
    let period = u64::from(t.period.unwrap_or(30));
    if period == 0 {
        return Err(bad("period 0".into()));
    }
    Ok(Params { alg, digits, period })
}

fn secret(keyring: &Keyring, t: &OtpToken) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    let sealed = t
        .secret
        .as_ref()
        .ok_or_else(|| VerifyError::Misconfigured { token: t.id.clone(), reason: "no secret".into() })?;
    keyring.open(&context::otp_token(t), sealed).map_err(|source| VerifyError::Seal { token: t.id.clone(), source })
}

fn unix(now: OffsetDateTime) -> u64 {
    u64::try_from(now.unix_timestamp()).unwrap_or(0)
}

fn cas(attr: &str, old: &[u8], new: &[u8]) -> [Change; 2] {
    [
        Change::Delete(attr.as_bytes().to_vec(), [old.to_vec()].into_iter().collect()),
        Change::Add(attr.as_bytes().to_vec(), [new.to_vec()].into_iter().collect()),
    ]
}

fn replace(attr: &str, value: Vec<u8>) -> Change {
    Change::Replace(attr.as_bytes().to_vec(), [value].into_iter().collect())
}

/// Refusals that need no secret: state of the token itself.
fn precheck(t: &OtpToken, now: OffsetDateTime, policy: &Policy) -> Option<Refusal> {
    match t.usable_at(now) {
        Err(Unusable::Disabled) => return Some(Refusal::Disabled),
        Err(Unusable::NotYetValid(_)) => return Some(Refusal::NotYetValid),
        Err(Unusable::Expired(_)) => return Some(Refusal::Expired),
        Ok(()) => {}
    }
    match lock_state(t, now, policy) {
        Lock::Locked { until } => Some(Refusal::LockedOut { failures: t.failure_count, until }),
        Lock::Open | Lock::Decayed { .. } => None,
    }
}

/// What a token's state alone says at `now`, before any code: usable
/// (`None`), or the refusal every code would get (disabled, outside its
/// validity, locked).
pub fn state_refusal(t: &OtpToken, now: OffsetDateTime, policy: &Policy) -> Option<Refusal> {
    precheck(t, now, policy)
}

/// Where a token stands with respect to its failed attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lock {
    /// Below the limit.
    Open,
    /// At or past the limit; `until` as in [`Refusal::LockedOut`].
    Locked { until: Option<OffsetDateTime> },
    /// Past the limit, but the back-off since the failure at `last` has run
    /// out: one attempt may go through.
    Decayed { last: OffsetDateTime },
}

fn lock_state(t: &OtpToken, now: OffsetDateTime, policy: &Policy) -> Lock {
    if t.failure_count < policy.max_failures {
        return Lock::Open;
    }
    // A lock written without a time (by another tool, or before the back-off
    // existed) waits for the admin.
    let (Some(last), true) = (t.last_failure, policy.lockout.is_positive()) else {
        return Lock::Locked { until: None };
    };
    let until = last.saturating_add(lockout_after(t.failure_count, policy));
    if now >= until { Lock::Decayed { last } } else { Lock::Locked { until: Some(until) } }
}

/// How long a token with `failures` counted stays locked.
fn lockout_after(failures: i64, policy: &Policy) -> time::Duration {
    let doublings = u32::try_from(failures.saturating_sub(policy.max_failures)).unwrap_or(u32::MAX).min(30);
    policy.lockout.saturating_mul(1i32 << doublings).min(policy.max_lockout.max(policy.lockout))
}

/// What an accepting write asserts: the lock state the code was decided on.
fn still(lock: Lock, policy: &Policy) -> Filter {
    match lock {
        Lock::Decayed { last } => {
            Filter::eq("dirbrokerOtpLastFailure", String::from_utf8_lossy(&generalized_time(last)).into_owned())
        }
        Lock::Open | Lock::Locked { .. } => {
            Filter::Not(Box::new(Filter::Ge("dirbrokerOtpFailureCount", policy.max_failures.to_string())))
        }
    }
}

/// Verify `code` for `token` at `now`, consuming it on success.
pub async fn verify(
    dir: &Directory,
    keyring: &Keyring,
    token: &OtpToken,
    code: &str,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Outcome, VerifyError> {
    // Consume-once: read and write on the writer (replicas may lag).
    let dir = &dir.primary();
    let decision = decide(keyring, token, code, now, policy)?;
    apply(dir, token, decision, now, policy).await
}

/// Verify `code` against several tokens of one user: the first that accepts
/// consumes it. Failures are counted only when none accepts (on each token
/// tried), so using one token never locks another. Returns the index of the
/// token the outcome is about.
pub async fn verify_any(
    dir: &Directory,
    keyring: &Keyring,
    tokens: &[OtpToken],
    code: &str,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Option<(usize, Outcome)>, VerifyError> {
    // Consume-once: read and write on the writer (replicas may lag).
    let dir = &dir.primary();
    let mut refused = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match decide(keyring, t, code, now, policy)? {
            d @ Decision::Accept { .. } => return Ok(Some((i, apply(dir, t, d, now, policy).await?))),
            d => refused.push((i, d)),
        }
    }
    let mut last = None;
    for (i, d) in refused {
        if let Some(t) = tokens.get(i) {
            last = Some((i, apply(dir, t, d, now, policy).await?));
        }
    }
    Ok(last)
}

fn decide(
    keyring: &Keyring,
    token: &OtpToken,
    code: &str,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Decision, VerifyError> {
    if let Some(r) = precheck(token, now, policy) {
        return Ok(Decision::Skip(r));
    }
    match token.kind {
        TokenType::Totp => decide_totp(keyring, token, code, now, policy),
        TokenType::Hotp => decide_hotp(keyring, token, code, policy),
        TokenType::Skey => decide_skey(token, code),
    }
}

/// Write what was decided on `token` as read (not from a [`TokenCache`]).
async fn apply(
    dir: &Directory,
    token: &OtpToken,
    decision: Decision,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Outcome, VerifyError> {
    let dn = token.dn(dir.layout())?;
    let lock = lock_state(token, now, policy);
    match decision {
        Decision::Skip(r) => Ok(Outcome::Refused(r)),
        Decision::Accept { counter, mut changes } => {
            if token.failure_count != 0 {
                changes.push(replace("dirbrokerOtpFailureCount", int_value(0)));
            }
            match dir.modify_if(&dn, changes, &still(lock, policy), &["1.1"]).await {
                Ok(_) => Ok(Outcome::Accepted { counter }),
                // Failures were counted meanwhile, up to the limit: what the
                // token says now is the answer.
                Err(e) if e.is_assertion_failed() => {
                    let fresh = OtpToken::from_entry(&dir.read(&dn, &["*"]).await?)?;
                    Ok(Outcome::Refused(precheck(&fresh, now, policy).unwrap_or(Refusal::LostRace)))
                }
                Err(e) if e.is_stale_value() => Ok(Outcome::Refused(Refusal::LostRace)),
                Err(e) => Err(e.into()),
            }
        }
        Decision::Refuse(refusal) => {
            // Failed guesses count towards the lockout (RFC 4226 §7.3). A code
            // that was valid but is spent reveals nothing about the secret, so
            // a replay (or a double submit) does not lock the owner out; nor
            // does input that is not a code at all (anyone who may submit
            // could otherwise lock any user out without guessing anything).
            let counts = !matches!(refusal, Refusal::Exhausted | Refusal::AlreadyUsed | Refusal::Malformed(_));
            if !counts {
                return Ok(Outcome::Refused(refusal));
            }
            let Some(failures) = count_failure(dir, &dn, lock, now).await? else {
                // Another attempt took the one the back-off let through.
                let until = Some(now.saturating_add(lockout_after(token.failure_count + 1, policy)));
                return Ok(Outcome::Refused(Refusal::LockedOut { failures: token.failure_count + 1, until }));
            };
            let until = match policy.lockout.is_positive() {
                true => Some(now.saturating_add(lockout_after(failures, policy))),
                false => None,
            };
            if failures > policy.max_failures && lock == Lock::Open {
                // Concurrent guesses past the limit learn nothing.
                return Ok(Outcome::Refused(Refusal::LockedOut { failures, until }));
            }
            if failures >= policy.max_failures {
                tracing::warn!(
                    token = %token.id, owner = %token.owner, failures, security = true,
                    "OTP token locked after {failures} failed attempts"
                );
                return Ok(Outcome::Refused(Refusal::LockedNow { failures, until }));
            }
            Ok(Outcome::Refused(refusal))
        }
    }
}

/// One more failure on the token `dn`, at `now`; the count it reached, or
/// `None` when the token was in back-off and another attempt was counted
/// first. A token written by another tool may lack
/// `dirbrokerOtpFailureCount` (the schema allows it), and slapd refuses to
/// increment a missing attribute: then the count starts at 1, and if a
/// concurrent failure added it first, the increment is tried again. A
/// failure is never left uncounted.
async fn count_failure(dir: &Directory, dn: &Dn, lock: Lock, now: OffsetDateTime) -> Result<Option<i64>, VerifyError> {
    const ATTR: &str = "dirbrokerOtpFailureCount";
    let when = || replace("dirbrokerOtpLastFailure", generalized_time(now));
    let increment = || vec![Change::Increment(ATTR.as_bytes().to_vec(), b"1".to_vec()), when()];
    // Past the limit, only the attempt that finds the last failure where it
    // was may count (and so be decided); any other is refused unseen.
    let guard = match lock {
        Lock::Decayed { last } => {
            Filter::eq("dirbrokerOtpLastFailure", String::from_utf8_lossy(&generalized_time(last)).into_owned())
        }
        Lock::Open | Lock::Locked { .. } => Filter::any(),
    };
    let count = |e: Entry| -> Result<Option<i64>, VerifyError> { Ok(Some(e.int(ATTR)?.unwrap_or(1))) };
    match dir.modify_if(dn, increment(), &guard, &[ATTR]).await {
        Err(e) if e.is_assertion_failed() => return Ok(None),
        Err(e) if e.is_stale_value() => {}
        other => return count(other?),
    }
    let add = vec![Change::Add(ATTR.as_bytes().to_vec(), [b"1".to_vec()].into_iter().collect()), when()];
    match dir.modify_if(dn, add, &guard, &[ATTR]).await {
        Err(e) if e.is_assertion_failed() => Ok(None),
        Err(e) if e.is_stale_value() => count(dir.modify_if(dn, increment(), &guard, &[ATTR]).await?),
        other => count(other?),
    }
}

enum Decision {
    Accept {
        counter: i64,
        changes: Vec<Change>,
    },
    /// Refused after checking the code: counted as a failure where it should be.
    Refuse(Refusal),
    /// Refused from the token's state alone (disabled, locked, …): nothing to write.
    Skip(Refusal),
}

fn decide_totp(
    keyring: &Keyring,
    t: &OtpToken,
    code: &str,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Decision, VerifyError> {
    let p = params(t)?;
    let code = match codes::parse_code(code, p.digits) {
        Ok(c) => c,
        Err(e) => return Ok(Decision::Refuse(Refusal::Malformed(e.to_string()))),
    };
    let secret = secret(keyring, t)?;
    let raw = i64::try_from(codes::totp_counter(unix(now), p.period).unwrap_or(0)).unwrap_or(i64::MAX);
    let offset = t.clock_offset.unwrap_or(0);
    let watermark = t.totp_watermark.unwrap_or(0);
    let w = i64::from(policy.totp_window);
    // Nearest steps first: now, then one back, one ahead, …
    let mut deltas = vec![0i64];
    for d in 1..=w {
        deltas.push(-d);
        deltas.push(d);
    }
    let mut used = false;
    for d in deltas {
        let step = raw.saturating_add(offset).saturating_add(d);
        let Ok(step_u) = u64::try_from(step) else { continue };
        let candidate = codes::hotp(&secret, step_u, p.digits, p.alg).map_err(|e| misconfigured(t, e))?;
        if !codes::codes_equal(&candidate, &code) {
            continue;
        }
        if step <= watermark {
            used = true;
            continue;
        }
        let mut changes = cas("dirbrokerTotpWatermark", &int_value(watermark), &int_value(step)).to_vec();
        let drift = step - raw;
        if drift != offset {
            changes.push(replace("dirbrokerTotpClockOffset", int_value(drift)));
        }
        return Ok(Decision::Accept { counter: step, changes });
    }
    Ok(Decision::Refuse(if used { Refusal::AlreadyUsed } else { Refusal::WrongCode }))
}

/// The largest HOTP look-ahead any token gets, whatever its entry says.
pub const MAX_HOTP_LOOK_AHEAD: u32 = 100;

fn decide_hotp(keyring: &Keyring, t: &OtpToken, code: &str, policy: &Policy) -> Result<Decision, VerifyError> {
    let p = params(t)?;
    let code = match codes::parse_code(code, p.digits) {
        Ok(c) => c,
        Err(e) => return Ok(Decision::Refuse(Refusal::Malformed(e.to_string()))),
    };
    let secret = secret(keyring, t)?;
    let next = t.hotp_counter.unwrap_or(0);
    // A token's own look-ahead (dirbrokerOtpLookAhead, which imports and
    // other tools may set to anything) is bounded: a huge one would make
    // every verification compute billions of HMACs on a runtime worker and
    // accept almost any code.
    let look_ahead = i64::from(t.look_ahead.unwrap_or(policy.hotp_look_ahead).min(MAX_HOTP_LOOK_AHEAD));
    for c in next..=next.saturating_add(look_ahead) {
        let Ok(cu) = u64::try_from(c) else { continue };
        let candidate = codes::hotp(&secret, cu, p.digits, p.alg).map_err(|e| misconfigured(t, e))?;
        if codes::codes_equal(&candidate, &code) {
            let changes = cas("dirbrokerHotpCounter", &int_value(next), &int_value(c + 1)).to_vec();
            return Ok(Decision::Accept { counter: c, changes });
        }
    }
    // Tell a replay from a plain wrong code (for the log; both are refused).
    for c in next.saturating_sub(look_ahead).max(0)..next {
        let Ok(cu) = u64::try_from(c) else { continue };
        if codes::hotp(&secret, cu, p.digits, p.alg).is_ok_and(|cand| codes::codes_equal(&cand, &code)) {
            return Ok(Decision::Refuse(Refusal::AlreadyUsed));
        }
    }
    Ok(Decision::Refuse(Refusal::WrongCode))
}

fn decide_skey(t: &OtpToken, response: &str) -> Result<Decision, VerifyError> {
    let bad = |reason: &str| VerifyError::Misconfigured { token: t.id.clone(), reason: reason.into() };
    let alg = match t.algorithm.as_deref() {
        None => SkeyAlgorithm::Md5,
        Some(a) => SkeyAlgorithm::parse(a).ok_or_else(|| bad("unknown S/KEY algorithm"))?,
    };
    let seq = t.skey_sequence.ok_or_else(|| bad("no sequence number"))?;
    let last: [u8; 8] = t.skey_last_otp.as_deref().and_then(|l| l.try_into().ok()).ok_or_else(|| bad("no last OTP"))?;
    let r = match skey::parse_response(response) {
        Ok(r) => r,
        Err(e) => return Ok(Decision::Refuse(Refusal::Malformed(e.to_string()))),
    };
    if r == last {
        return Ok(Decision::Refuse(Refusal::AlreadyUsed));
    }
    if seq <= 0 {
        return Ok(Decision::Refuse(Refusal::Exhausted));
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&skey::step(alg, r)[..], &last[..])) {
        return Ok(Decision::Refuse(Refusal::WrongCode));
    }
    let mut changes = cas("dirbrokerSkeyLastOtp", &last, &r).to_vec();
    changes.extend(cas("dirbrokerSkeySequence", &int_value(seq), &int_value(seq - 1)));
    Ok(Decision::Accept { counter: seq - 1, changes })
}

fn misconfigured(t: &OtpToken, e: codes::OtpError) -> VerifyError {
    VerifyError::Misconfigured { token: t.id.clone(), reason: e.to_string() }
}

/// Resynchronise a HOTP or TOTP token whose counter or clock drifted, with
/// two consecutive codes; the second becomes the last one used.
pub async fn resync(
    dir: &Directory,
    keyring: &Keyring,
    t: &OtpToken,
    first: &str,
    second: &str,
    now: OffsetDateTime,
    policy: &Policy,
) -> Result<Outcome, VerifyError> {
    // Consume-once: read and write on the writer (replicas may lag).
    let dir = &dir.primary();
    if let Some(r) = precheck(t, now, policy) {
        return Ok(Outcome::Refused(r));
    }
    let p = params(t)?;
    let (Ok(a), Ok(b)) = (codes::parse_code(first, p.digits), codes::parse_code(second, p.digits)) else {
        return Ok(Outcome::Refused(Refusal::Malformed(format!("two {}-digit codes are needed", p.digits))));
    };
    let secret = secret(keyring, t)?;
    let at = |c: i64| u64::try_from(c).ok().and_then(|c| codes::hotp(&secret, c, p.digits, p.alg).ok());
    let matches = |c: i64| {
        at(c).is_some_and(|x| codes::codes_equal(&x, &a)) && at(c + 1).is_some_and(|y| codes::codes_equal(&y, &b))
    };
    let dn = t.dn(dir.layout())?;
    let (counter, changes) = match t.kind {
        TokenType::Hotp => {
            let next = t.hotp_counter.unwrap_or(0);
            let Some(c) = (next..=next.saturating_add(i64::from(policy.hotp_sync_window))).find(|c| matches(*c)) else {
                return Ok(Outcome::Refused(Refusal::WrongCode));
            };
            (c + 1, cas("dirbrokerHotpCounter", &int_value(next), &int_value(c + 2)).to_vec())
        }
        TokenType::Totp => {
            let raw = i64::try_from(codes::totp_counter(unix(now), p.period).unwrap_or(0)).unwrap_or(i64::MAX);
            let watermark = t.totp_watermark.unwrap_or(0);
            let w = i64::from(policy.totp_sync_window);
            let Some(s) = (raw - w..=raw + w).find(|s| *s + 1 > watermark && matches(*s)) else {
                return Ok(Outcome::Refused(Refusal::WrongCode));
            };
            let mut ch = cas("dirbrokerTotpWatermark", &int_value(watermark), &int_value(s + 1)).to_vec();
            ch.push(replace("dirbrokerTotpClockOffset", int_value(s + 1 - raw)));
            (s + 1, ch)
        }
        TokenType::Skey => {
            return Ok(Outcome::Refused(Refusal::Malformed("S/KEY tokens do not drift".into())));
        }
    };
    let mut changes = changes;
    changes.push(replace("dirbrokerOtpFailureCount", int_value(0)));
    match dir.modify(&dn, changes).await {
        Ok(()) => Ok(Outcome::Accepted { counter }),
        Err(e) if e.is_stale_value() => Ok(Outcome::Refused(Refusal::LostRace)),
        Err(e) => Err(e.into()),
    }
}

/// Admin: clear the failure count of a locked token.
pub async fn unlock(dir: &Directory, t: &OtpToken) -> Result<(), DirError> {
    dir.modify(&t.dn(dir.layout())?, vec![replace("dirbrokerOtpFailureCount", int_value(0))]).await
}

/// Seal a new secret for the token `t`, bound to its owner and parameters:
/// set them before sealing.
pub fn seal_secret(keyring: &Keyring, t: &OtpToken, secret: &[u8]) -> Result<Sealed, SealError> {
    keyring.seal(&context::otp_token(t), secret)
}

/// Attributes read with a token: its own and its change sequence number.
const TOKEN_ATTRS: &[&str] = &["*", "entryCSN"];

/// How many times a verification reads the token again after the directory
/// refused a write because the token had just changed.
const STALE_RETRIES: usize = 3;

/// Tokens remembered at most; past this the cache starts over.
const CACHE_CAPACITY: usize = 100_000;

/// A token as last read or written, with the `entryCSN` it had then.
#[derive(Clone, Debug)]
struct Known {
    csn: String,
    token: OtpToken,
}

impl Known {
    fn from_entry(entry: &Entry) -> Result<Known, VerifyError> {
        let token = OtpToken::from_entry(entry)?;
        let csn = entry.required_str("entryCSN")?.to_string();
        Ok(Known { csn, token })
    }
}

/// Token state kept between verifications (see the module documentation):
/// sealed secrets as stored in LDAP, never opened ones.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Known>>,
    /// Owner DN (normalised) → ids of the owner's enabled tokens.
    owners: Mutex<HashMap<String, Vec<String>>>,
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    fn get(&self, id: &str) -> Option<Known> {
        self.tokens.lock().ok()?.get(id).cloned()
    }

    fn put(&self, known: Known) {
        if let Ok(mut map) = self.tokens.lock() {
            if map.len() >= CACHE_CAPACITY && !map.contains_key(&known.token.id) {
                map.clear();
            }
            map.insert(known.token.id.clone(), known);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut map) = self.tokens.lock() {
            map.remove(id);
        }
    }

    /// The remembered tokens of `owner` that are still theirs as last seen: a
    /// token read since under another owner is not offered for this one.
    fn owner_tokens(&self, owner: &Dn) -> Vec<Known> {
        let key = owner.normalized();
        let ids = self.owners.lock().ok().and_then(|m| m.get(&key).cloned()).unwrap_or_default();
        ids.iter().filter_map(|id| self.get(id)).filter(|k| k.token.owner.normalized() == key).collect()
    }

    fn put_owner(&self, owner: &Dn, known: &[Known]) {
        if let Ok(mut map) = self.owners.lock() {
            if map.len() >= CACHE_CAPACITY {
                map.clear();
            }
            map.insert(owner.normalized(), known.iter().map(|k| k.token.id.clone()).collect());
        }
        for k in known {
            self.put(k.clone());
        }
    }

    /// Verify `code` for the token `id` at `now`, consuming it on success;
    /// the same outcome as [`verify`] on a freshly loaded token.
    pub async fn verify(
        &self,
        dir: &Directory,
        keyring: &Keyring,
        id: &str,
        code: &str,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> Result<Outcome, VerifyError> {
        // Consume-once: read and write on the writer (replicas may lag).
        let dir = &dir.primary();
        // Remembered state may only accept; anything else (a refusal, or a
        // seal that does not open) is decided again on fresh state.
        if let Some(known) = self.get(id)
            && let Ok(Decision::Accept { counter, changes }) = decide(keyring, &known.token, code, now, policy)
            && let Some(outcome) = self.commit(dir, &known, counter, changes).await?
        {
            return Ok(outcome);
        }
        let dn = <OtpToken as DirEntry>::dn_for(dir.layout(), id)?;
        for _ in 0..STALE_RETRIES {
            let known = Known::from_entry(&dir.read(&dn, TOKEN_ATTRS).await?)?;
            self.put(known.clone());
            match decide(keyring, &known.token, code, now, policy)? {
                Decision::Accept { counter, changes } => {
                    if let Some(outcome) = self.commit(dir, &known, counter, changes).await? {
                        return Ok(outcome);
                    }
                }
                other => return apply(dir, &known.token, other, now, policy).await,
            }
        }
        Ok(Outcome::Refused(Refusal::LostRace))
    }

    /// Verify `code` against the enabled tokens of `owner`, as [`verify_any`]
    /// does on freshly searched tokens; returns the token the outcome is
    /// about, `None` when the owner has no enabled token.
    pub async fn verify_owner(
        &self,
        dir: &Directory,
        keyring: &Keyring,
        owner: &Dn,
        code: &str,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> Result<Option<(OtpToken, Outcome)>, VerifyError> {
        // Consume-once: read and write on the writer (replicas may lag).
        let dir = &dir.primary();
        for known in self.owner_tokens(owner) {
            if let Ok(Decision::Accept { counter, changes }) = decide(keyring, &known.token, code, now, policy)
                && let Some(outcome) = self.commit(dir, &known, counter, changes).await?
            {
                return Ok(Some((known.token, outcome)));
            }
        }
        let mut raced = None;
        for _ in 0..STALE_RETRIES {
            let entries = dir.owner_token_entries(owner, TOKEN_ATTRS).await?;
            let mut known: Vec<Known> =
                entries.iter().filter_map(|e| Known::from_entry(e).ok()).filter(|k| !k.token.disabled).collect();
            known.sort_by(|a, b| a.token.id.cmp(&b.token.id));
            self.put_owner(owner, &known);
            let mut refused = Vec::new();
            let mut stale = false;
            for k in &known {
                match decide(keyring, &k.token, code, now, policy)? {
                    Decision::Accept { counter, changes } => match self.commit(dir, k, counter, changes).await? {
                        Some(outcome) => return Ok(Some((k.token.clone(), outcome))),
                        None => {
                            raced = Some(k.token.clone());
                            stale = true;
                            break;
                        }
                    },
                    d => refused.push((k, d)),
                }
            }
            if stale {
                continue;
            }
            let mut last = None;
            for (k, d) in refused {
                self.forget(&k.token.id);
                last = Some((k.token.clone(), apply(dir, &k.token, d, now, policy).await?));
            }
            return Ok(last);
        }
        Ok(raced.map(|t| (t, Outcome::Refused(Refusal::LostRace))))
    }

    /// Write an accepted code from `known`, guarded by its `entryCSN`.
    /// `None` when the token changed since (it is forgotten; read it again).
    async fn commit(
        &self,
        dir: &Directory,
        known: &Known,
        counter: i64,
        mut changes: Vec<Change>,
    ) -> Result<Option<Outcome>, VerifyError> {
        if known.token.failure_count != 0 {
            changes.push(replace("dirbrokerOtpFailureCount", int_value(0)));
        }
        let dn = known.token.dn(dir.layout())?;
        let unchanged = Filter::eq("entryCSN", known.csn.clone());
        match dir.modify_if(&dn, changes, &unchanged, TOKEN_ATTRS).await {
            Ok(entry) => {
                match Known::from_entry(&entry) {
                    Ok(k) => self.put(k),
                    Err(_) => self.forget(&known.token.id),
                }
                Ok(Some(Outcome::Accepted { counter }))
            }
            // Changed or deleted since: the caller reads the token again.
            Err(e) if e.is_stale_value() || matches!(e, DirError::NotFound { .. }) => {
                self.forget(&known.token.id);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
