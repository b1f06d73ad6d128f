//! The operation module (seed 001 §4.2), after the request module:
//!
//! 1. the two data centers agree a session key with SPEKE
//!    (`speke_session` in `dirbroker-agents`), repaired as ISO/IEC 11770-4:2017;
//! 2. each data center authenticates its physical server with TOTP and
//!    hands it SK (this file): `DC_PS_Auth_Request`, `DC_PS_Auth_Response`,
//!    `E_TOTP(SK)`;
//! 3. the source server streams the image to the destination server
//!    (`VM_Data_Tran`, `crate::stream`).
//!
//! `E_TOTP` keys come from the full HMAC of the TOTP step (RFC 6238 before
//! truncation, never the six digits), HKDF'd with both identities, the step,
//! the nonces and a direction label. A physical server accepts each time
//! step once and only steps above the last it accepted, so a captured
//! request (or TOTP) is useless in the next session — the paper's "one
//! session only".
//!
//! ```text
//!  DC                                        PS
//!  dc_ps_auth_request ── DC_PS_Auth_Request ──► receive_dc_ps_auth_request
//!  AwaitingDcPsAuthResponse ◄─ DC_PS_Auth_Response ┘ (PsChannel)
//!   └ DcChannel ── E_TOTP(SK) ─► ── PS_Ready ◄─ ── Transfer_Report ◄─
//! ```

use crate::otp::Algorithm;
use rand::CryptoRng;
use zeroize::Zeroizing;

use super::MigrationError;
use super::crypto::{self, Channel};
use super::messages::*;
use super::wire::Message;

/// Steps accepted on either side of the server's clock (RFC 6238 §5.2).
pub const STEP_WINDOW: u64 = 1;

/// A physical server's TOTP secret and parameters, as both ends hold them.
pub struct TotpKey {
    /// `DID`: the data center the server belongs to.
    pub did: String,
    /// `PID`: the physical server.
    pub pid: String,
    /// The HMAC hash of the TOTP.
    pub algorithm: Algorithm,
    /// The time step in seconds (RFC 6238 `X`).
    pub period: u64,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpKey").field("did", &self.did).field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl TotpKey {
    /// The key of server `pid` of data center `did`; a secret under 128 bits or a zero period is refused.
    pub fn new(
        did: &str,
        pid: &str,
        algorithm: Algorithm,
        period: u64,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<TotpKey, MigrationError> {
        if secret.len() < 16 {
            return Err(MigrationError::Local(format!("the TOTP secret of {pid} is shorter than 128 bits")));
        }
        if period == 0 {
            return Err(MigrationError::Local(format!("the TOTP period of {pid} is 0")));
        }
        Ok(TotpKey { did: did.into(), pid: pid.into(), algorithm, period, secret })
    }

    /// The RFC 6238 time step of `unix_time`.
    pub fn step(&self, unix_time: u64) -> u64 {
        unix_time / self.period
    }

    fn material(&self, step: u64) -> Zeroizing<Vec<u8>> {
        crypto::totp_material(&self.secret, step, self.algorithm)
    }

    fn request_key(&self, step: u64) -> Zeroizing<[u8; 32]> {
        let s = step.to_be_bytes();
        crypto::derive_key(
            &self.material(step),
            b"",
            &[b"DC_PS_Auth_Request dc->ps", self.did.as_bytes(), self.pid.as_bytes(), &s],
        )
    }

    fn response_key(&self, step: u64, nonce2: &[u8; 16], nonce_ps: &[u8; 16]) -> Zeroizing<[u8; 32]> {
        let s = step.to_be_bytes();
        crypto::derive_key(
            &self.material(step),
            b"",
            &[b"DC_PS_Auth_Response ps->dc", self.did.as_bytes(), self.pid.as_bytes(), &s, nonce2, nonce_ps],
        )
    }

    fn channel(
        &self,
        step: u64,
        nonce2: &[u8; 16],
        nonce_ps: &[u8; 16],
        dc_side: bool,
    ) -> Result<Channel, MigrationError> {
        let s = step.to_be_bytes();
        Ok(Channel::derive(
            &self.material(step),
            &[b"DC_PS session", self.did.as_bytes(), self.pid.as_bytes(), &s, nonce2, nonce_ps],
            dc_side,
        )?)
    }
}

fn header_aad(did: &str, pid: &str, step: u64) -> Vec<u8> {
    let mut a = DcPsAuthRequest::NAME.as_bytes().to_vec();
    for part in [did, pid] {
        a.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        a.extend_from_slice(part.as_bytes());
    }
    a.extend_from_slice(&step.to_be_bytes());
    a
}

/// Step 3 (DC side): `DC_PS_Auth_Request` for time step `step`.
pub fn dc_ps_auth_request<'k, R: CryptoRng + ?Sized>(
    key: &'k TotpKey,
    step: u64,
    rng: &mut R,
) -> Result<(DcPsAuthRequest, AwaitingDcPsAuthResponse<'k>), MigrationError> {
    let nonce2 = crypto::nonce(rng);
    let body = DcPsAuthRequestBody { did: key.did.clone(), pid: key.pid.clone(), nonce2 };
    let sealed = crypto::seal(
        &key.request_key(step),
        &header_aad(&key.did, &key.pid, step),
        &body_bytes(&body, DcPsAuthRequest::NAME)?,
    )?;
    let msg = DcPsAuthRequest { did: key.did.clone(), pid: key.pid.clone(), step, sealed };
    Ok((msg, AwaitingDcPsAuthResponse { key, step, nonce2 }))
}

/// The DC waits for `DC_PS_Auth_Response`.
#[derive(Debug)]
pub struct AwaitingDcPsAuthResponse<'k> {
    key: &'k TotpKey,
    step: u64,
    nonce2: [u8; 16],
}

impl AwaitingDcPsAuthResponse<'_> {
    /// Step 5 (DC side): the server proved it holds the secret; open the channel.
    pub fn receive(self, resp: &DcPsAuthResponse) -> Result<DcChannel, MigrationError> {
        let k = self.key.response_key(self.step, &self.nonce2, &resp.nonce_ps);
        let plain = crypto::open(&k, DcPsAuthResponse::NAME.as_bytes(), &resp.sealed, DcPsAuthResponse::NAME)?;
        let body: DcPsAuthResponseBody = parse_body(&plain, DcPsAuthResponse::NAME)?;
        if body.did != self.key.did || body.nonce2 != self.nonce2 {
            return Err(MigrationError::Mismatch {
                what: DcPsAuthResponse::NAME,
                detail: "DID or nonce2 differ".into(),
            });
        }
        Ok(DcChannel { channel: self.key.channel(self.step, &self.nonce2, &resp.nonce_ps, true)? })
    }
}

/// The DC's authenticated channel to its physical server, before the job:
/// each message moves it on, so the order is the type's, not the caller's.
#[derive(Debug)]
pub struct DcChannel {
    channel: Channel,
}

impl DcChannel {
    /// `E_TOTP(SK)` with the job; then wait for `PS_Ready`.
    pub fn deliver(mut self, body: &SkDeliveryBody) -> Result<(SkDelivery, DcAwaitingPsReady), MigrationError> {
        let sealed = self.channel.seal(SkDelivery::NAME, &body_bytes(body, SkDelivery::NAME)?)?;
        Ok((SkDelivery { sealed }, DcAwaitingPsReady { channel: self.channel }))
    }
}

/// The DC waits for its server's `PS_Ready`.
#[derive(Debug)]
pub struct DcAwaitingPsReady {
    channel: Channel,
}

impl DcAwaitingPsReady {
    /// `PS_Ready`: the server is ready for its job; a receiving server names its data port.
    pub fn receive(mut self, m: &PsReady) -> Result<(PsReadyBody, DcAwaitingReport), MigrationError> {
        let body = parse_body(&self.channel.open(PsReady::NAME, &m.sealed)?, PsReady::NAME)?;
        Ok((body, DcAwaitingReport { channel: self.channel }))
    }
}

/// The DC waits for its server's `Transfer_Report`.
#[derive(Debug)]
pub struct DcAwaitingReport {
    channel: Channel,
}

impl DcAwaitingReport {
    /// `Transfer_Report`: how `VM_Data_Tran` ended, as the server saw it; the session ends.
    pub fn receive(mut self, m: &TransferReport) -> Result<TransferReportBody, MigrationError> {
        Ok(parse_body(&self.channel.open(TransferReport::NAME, &m.sealed)?, TransferReport::NAME)?)
    }
}

/// What a physical server remembers between sessions: the last step it
/// accepted (each step serves one session only).
#[derive(Debug, Default)]
pub struct StepGuard {
    last: Option<u64>,
}

impl StepGuard {
    /// The last time step accepted, if any since the server started.
    pub fn last(&self) -> Option<u64> {
        self.last
    }
}

/// Step 4 (PS side): open `DC_PS_Auth_Request` with our TOTP of its step,
/// check it names us and our DC, and answer.
pub fn receive_dc_ps_auth_request<R: CryptoRng + ?Sized>(
    key: &TotpKey,
    req: &DcPsAuthRequest,
    guard: &mut StepGuard,
    unix_now: u64,
    rng: &mut R,
) -> Result<(DcPsAuthResponse, PsChannel), MigrationError> {
    if req.did != key.did || req.pid != key.pid {
        return Err(MigrationError::Mismatch {
            what: DcPsAuthRequest::NAME,
            detail: format!("it is from {:?} for {:?}; we are {:?} of {:?}", req.did, req.pid, key.pid, key.did),
        });
    }
    let now = key.step(unix_now);
    // The step arrives in clear, before anything is authenticated: no arithmetic on it may overflow.
    if req.step.saturating_add(STEP_WINDOW) < now || req.step > now.saturating_add(STEP_WINDOW) {
        return Err(MigrationError::Replay {
            what: DcPsAuthRequest::NAME,
            detail: format!("time step {} is outside {}±{STEP_WINDOW}", req.step, now),
        });
    }
    if guard.last.is_some_and(|last| req.step <= last) {
        return Err(MigrationError::Replay {
            what: DcPsAuthRequest::NAME,
            detail: format!("time step {} was already used for a session", req.step),
        });
    }
    let plain = crypto::open(
        &key.request_key(req.step),
        &header_aad(&req.did, &req.pid, req.step),
        &req.sealed,
        DcPsAuthRequest::NAME,
    )?;
    let body: DcPsAuthRequestBody = parse_body(&plain, DcPsAuthRequest::NAME)?;
    if body.did != key.did || body.pid != key.pid {
        return Err(MigrationError::Mismatch {
            what: DcPsAuthRequest::NAME,
            detail: "sealed DID or PID differ".into(),
        });
    }
    // Only an authentic request uses up the step.
    guard.last = Some(req.step);
    let nonce_ps = crypto::nonce(rng);
    let reply = DcPsAuthResponseBody { did: key.did.clone(), nonce2: body.nonce2 };
    let sealed = crypto::seal(
        &key.response_key(req.step, &body.nonce2, &nonce_ps),
        DcPsAuthResponse::NAME.as_bytes(),
        &body_bytes(&reply, DcPsAuthResponse::NAME)?,
    )?;
    let channel = key.channel(req.step, &body.nonce2, &nonce_ps, false)?;
    Ok((DcPsAuthResponse { nonce_ps, sealed }, PsChannel { channel }))
}

/// The physical server's authenticated channel to its DC, waiting for `E_TOTP(SK)`.
#[derive(Debug)]
pub struct PsChannel {
    channel: Channel,
}

impl PsChannel {
    /// `E_TOTP(SK)`: SK, the migration id and the job.
    pub fn receive_sk(mut self, m: &SkDelivery) -> Result<(SkDeliveryBody, PsJob), MigrationError> {
        let body = parse_body(&self.channel.open(SkDelivery::NAME, &m.sealed)?, SkDelivery::NAME)?;
        Ok((body, PsJob { channel: self.channel }))
    }
}

/// The physical server has its job and prepares it.
#[derive(Debug)]
pub struct PsJob {
    channel: Channel,
}

impl PsJob {
    /// `PS_Ready`: ready for the job (a receiving server names its data port).
    pub fn ready(mut self, body: &PsReadyBody) -> Result<(PsReady, PsRunning), MigrationError> {
        let sealed = self.channel.seal(PsReady::NAME, &body_bytes(body, PsReady::NAME)?)?;
        Ok((PsReady { sealed }, PsRunning { channel: self.channel }))
    }
}

/// The physical server runs `VM_Data_Tran`.
#[derive(Debug)]
pub struct PsRunning {
    channel: Channel,
}

impl PsRunning {
    /// `Transfer_Report`: how `VM_Data_Tran` ended, for the DC; the session ends.
    pub fn report(mut self, body: &TransferReportBody) -> Result<TransferReport, MigrationError> {
        let sealed = self.channel.seal(TransferReport::NAME, &body_bytes(body, TransferReport::NAME)?)?;
        Ok(TransferReport { sealed })
    }
}
