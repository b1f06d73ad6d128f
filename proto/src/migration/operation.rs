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
//! `DC_PS_Auth_Request` and `DC_PS_Auth_Response` are sealed under keys from
//! the full HMAC of the TOTP step (RFC 6238 before truncation, never the six
//! digits), HKDF'd with both identities, the step, the nonces and a
//! direction label. A physical server accepts each time step once and only
//! steps above the last it accepted, so a captured request (or TOTP) is
//! useless in the next session — the paper's "one session only".
//!
//! The two also carry an ephemeral X25519 key each (not in the paper; audit
//! F3): the DC's inside the request's seal, the server's in clear with the
//! response, whose seal binds both keys as associated data. So each side
//! knows the other's key came from a holder of the TOTP secret in this
//! session. The channel that carries `E_TOTP(SK)` is keyed from the TOTP
//! HMAC *and* the X25519 secret: someone who recorded the frames and later
//! learns the TOTP secret can open the two authentication messages, but not
//! SK nor, therefore, the image.
//!
//! ```text
//!  DC                                        PS
//!  dc_ps_auth_request ── DC_PS_Auth_Request ──► receive_dc_ps_auth_request
//!   (nonce2, X25519 e_DC sealed)                 (nonce_PS, X25519 e_PS)
//!  AwaitingDcPsAuthResponse ◄─ DC_PS_Auth_Response ┘ (PsChannel)
//!   └ DcChannel ── E_TOTP(SK) ─► ── PS_Ready ◄─ ── Transfer_Report ◄─
//! ```

use crate::encoding::Lp;
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

    /// The session channel: HKDF over the step's TOTP HMAC ‖ the X25519
    /// secret, with the identities, the step, both nonces and both ephemeral
    /// public keys in the info.
    fn channel(&self, step: u64, t: &Transcript, dh: &[u8; 32], dc_side: bool) -> Result<Channel, MigrationError> {
        let s = step.to_be_bytes();
        let mut ikm = self.material(step);
        ikm.extend_from_slice(dh);
        Ok(Channel::derive(
            &ikm,
            &[
                b"DC_PS session v2",
                self.did.as_bytes(),
                self.pid.as_bytes(),
                &s,
                &t.nonce2,
                &t.nonce_ps,
                &t.dc_ephemeral,
                &t.ps_ephemeral,
            ],
            dc_side,
        )?)
    }
}

/// What both ends of a DC↔PS session saw: the nonces and the ephemeral public keys.
#[derive(Debug)]
struct Transcript {
    nonce2: [u8; 16],
    nonce_ps: [u8; 16],
    dc_ephemeral: [u8; 32],
    ps_ephemeral: [u8; 32],
}

impl Transcript {
    /// `DC_PS_Auth_Response`'s associated data: its name and both ephemeral keys, so the
    /// response's TOTP-keyed tag authenticates the server's key and the DC's it answered.
    fn response_aad(&self) -> Vec<u8> {
        let mut a = DcPsAuthResponse::NAME.as_bytes().to_vec();
        a.extend_from_slice(&self.dc_ephemeral);
        a.extend_from_slice(&self.ps_ephemeral);
        a
    }
}

fn header_aad(did: &str, pid: &str, step: u64) -> Vec<u8> {
    Lp::default()
        .raw(DcPsAuthRequest::NAME.as_bytes())
        .part(did.as_bytes())
        .part(pid.as_bytes())
        .raw(&step.to_be_bytes())
        .into_bytes()
}

/// Step 3 (DC side): `DC_PS_Auth_Request` for time step `step`.
pub fn dc_ps_auth_request<'k, R: CryptoRng + ?Sized>(
    key: &'k TotpKey,
    step: u64,
    rng: &mut R,
) -> Result<(DcPsAuthRequest, AwaitingDcPsAuthResponse<'k>), MigrationError> {
    let nonce2 = crypto::nonce(rng);
    let ephemeral = crypto::Ephemeral::generate(rng)?;
    let body =
        DcPsAuthRequestBody { did: key.did.clone(), pid: key.pid.clone(), nonce2, dc_ephemeral: ephemeral.public };
    let sealed = crypto::seal(
        &key.request_key(step),
        &header_aad(&key.did, &key.pid, step),
        &body_bytes(&body, DcPsAuthRequest::NAME)?,
    )?;
    let msg = DcPsAuthRequest { did: key.did.clone(), pid: key.pid.clone(), step, sealed };
    Ok((msg, AwaitingDcPsAuthResponse { key, step, nonce2, ephemeral }))
}

/// The DC waits for `DC_PS_Auth_Response`, holding its ephemeral X25519 key.
#[derive(Debug)]
pub struct AwaitingDcPsAuthResponse<'k> {
    key: &'k TotpKey,
    step: u64,
    nonce2: [u8; 16],
    ephemeral: crypto::Ephemeral,
}

impl AwaitingDcPsAuthResponse<'_> {
    /// Step 5 (DC side): the server proved it holds the secret and answered our
    /// ephemeral key with its own; open the channel from the TOTP HMAC and X25519.
    pub fn receive(self, resp: &DcPsAuthResponse) -> Result<DcChannel, MigrationError> {
        let transcript = Transcript {
            nonce2: self.nonce2,
            nonce_ps: resp.nonce_ps,
            dc_ephemeral: self.ephemeral.public,
            ps_ephemeral: resp.ps_ephemeral,
        };
        let k = self.key.response_key(self.step, &self.nonce2, &resp.nonce_ps);
        let plain = crypto::open(&k, &transcript.response_aad(), &resp.sealed, DcPsAuthResponse::NAME)?;
        let body: DcPsAuthResponseBody = parse_body(&plain, DcPsAuthResponse::NAME)?;
        if body.did != self.key.did || body.nonce2 != self.nonce2 {
            return Err(MigrationError::Mismatch {
                what: DcPsAuthResponse::NAME,
                detail: "DID or nonce2 differ".into(),
            });
        }
        let dh = self.ephemeral.agree(&resp.ps_ephemeral, DcPsAuthResponse::NAME)?;
        Ok(DcChannel { channel: self.key.channel(self.step, &transcript, &dh, true)? })
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
    let ephemeral = crypto::Ephemeral::generate(rng)?;
    let transcript =
        Transcript { nonce2: body.nonce2, nonce_ps, dc_ephemeral: body.dc_ephemeral, ps_ephemeral: ephemeral.public };
    let reply = DcPsAuthResponseBody { did: key.did.clone(), nonce2: body.nonce2 };
    let sealed = crypto::seal(
        &key.response_key(req.step, &body.nonce2, &nonce_ps),
        &transcript.response_aad(),
        &body_bytes(&reply, DcPsAuthResponse::NAME)?,
    )?;
    let ps_ephemeral = ephemeral.public;
    let dh = ephemeral.agree(&body.dc_ephemeral, DcPsAuthRequest::NAME)?;
    let channel = key.channel(req.step, &transcript, &dh, false)?;
    Ok((DcPsAuthResponse { nonce_ps, ps_ephemeral, sealed }, PsChannel { channel }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::CryptoError;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const SECRET: &[u8] = b"12345678901234567890";

    fn key() -> TotpKey {
        TotpKey::new("DC-SRC", "PS-1", Algorithm::Sha1, 30, Zeroizing::new(SECRET.to_vec())).unwrap()
    }

    /// The frames of one DC↔PS session as a passive observer records them,
    /// and what each real endpoint ended up with.
    struct Recorded {
        req: DcPsAuthRequest,
        resp: DcPsAuthResponse,
        delivery: SkDelivery,
        ps_channel: PsChannel,
    }

    const SK: [u8; 32] = [0x5a; 32];
    const MIGRATION_ID: [u8; 16] = [3; 16];

    fn run_session(seed: u64) -> Recorded {
        let (dc_key, ps_key) = (key(), key());
        let now = 1_800_000_000u64;
        let (mut dc_rng, mut ps_rng) = (StdRng::seed_from_u64(seed), StdRng::seed_from_u64(seed + 1));
        let (req, waiting) = dc_ps_auth_request(&dc_key, dc_key.step(now), &mut dc_rng).unwrap();
        let (resp, ps_channel) =
            receive_dc_ps_auth_request(&ps_key, &req, &mut StepGuard::default(), now, &mut ps_rng).unwrap();
        let dc = waiting.receive(&resp).unwrap();
        let job = Job::Receive { vm: "vm1".into() };
        let (delivery, _) = dc.deliver(&SkDeliveryBody { sk: SK, migration_id: MIGRATION_ID, job }).unwrap();
        Recorded { req, resp, delivery, ps_channel }
    }

    /// What the attacker of audit F3 rebuilds once the TOTP secret leaks: the
    /// step from the clear header, nonce2 and the DC's ephemeral key by opening
    /// the request with the step's request key, nonce_ps and the server's key
    /// from the response.
    struct Rebuilt {
        material: Zeroizing<Vec<u8>>,
        step: u64,
        body: DcPsAuthRequestBody,
    }

    fn rebuild(stolen: &TotpKey, r: &Recorded) -> Rebuilt {
        let step = r.req.step;
        let plain = crypto::open(
            &stolen.request_key(step),
            &header_aad(&r.req.did, &r.req.pid, step),
            &r.req.sealed,
            DcPsAuthRequest::NAME,
        )
        .expect("the secret opens the recorded request");
        let body: DcPsAuthRequestBody = parse_body(&plain, DcPsAuthRequest::NAME).unwrap();
        Rebuilt { material: stolen.material(step), step, body }
    }

    /// The construction before the fix: the channel keyed from the TOTP HMAC
    /// and values that travel in clear or under the TOTP, nothing else.
    fn old_style_ps_channel(stolen: &TotpKey, b: &Rebuilt, nonce_ps: &[u8; 16]) -> Channel {
        let s = b.step.to_be_bytes();
        Channel::derive(
            &b.material,
            &[b"DC_PS session", stolen.did.as_bytes(), stolen.pid.as_bytes(), &s, &b.body.nonce2, nonce_ps],
            false,
        )
        .unwrap()
    }

    /// Audit F3, played: record a DC↔PS session, then reveal the TOTP secret.
    /// The attacker opens the authentication messages, but no derivation
    /// from the secret and the frames opens `E_TOTP(SK)`, so SK and the
    /// image's transfer key stay out of reach; the real server opens it.
    #[test]
    fn recorded_sk_delivery_stays_sealed_when_the_totp_secret_leaks() {
        let recorded = run_session(18);
        let stolen = key();
        let b = rebuild(&stolen, &recorded);
        assert_eq!(b.body.pid, "PS-1");
        let opens = |mut c: Channel| c.open(SkDelivery::NAME, &recorded.delivery.sealed).is_ok();

        // The control: a delivery sealed the old way opens for this attacker,
        // so the attacker below is the one that worked before the fix.
        let s = b.step.to_be_bytes();
        let old_ctx: [&[u8]; 6] = [b"DC_PS session", b"DC-SRC", b"PS-1", &s, &b.body.nonce2, &recorded.resp.nonce_ps];
        let mut old_dc = Channel::derive(&b.material, &old_ctx, true).unwrap();
        let old_delivery = old_dc.seal(SkDelivery::NAME, &[1, 2, 3]).unwrap();
        assert!(
            old_style_ps_channel(&stolen, &b, &recorded.resp.nonce_ps).open(SkDelivery::NAME, &old_delivery).is_ok()
        );

        // 1. The old derivation from secret + frames.
        assert!(!opens(old_style_ps_channel(&stolen, &b, &recorded.resp.nonce_ps)));
        // 2. Today's context with everything public, but without the X25519
        //    secret: the TOTP HMAC alone, or ‖ a DH the attacker can compute
        //    (its own key against either public key, or the two public keys).
        let t = Transcript {
            nonce2: b.body.nonce2,
            nonce_ps: recorded.resp.nonce_ps,
            dc_ephemeral: b.body.dc_ephemeral,
            ps_ephemeral: recorded.resp.ps_ephemeral,
        };
        let mut attacker_rng = StdRng::seed_from_u64(666);
        let mut guesses: Vec<Option<[u8; 32]>> = vec![None, Some([0; 32]), Some(t.dc_ephemeral), Some(t.ps_ephemeral)];
        for peer in [t.dc_ephemeral, t.ps_ephemeral] {
            let mine = crypto::Ephemeral::generate(&mut attacker_rng).unwrap();
            guesses.push(Some(*mine.agree(&peer, "attack").unwrap()));
        }
        for guess in guesses {
            let channel = match guess {
                Some(dh) => stolen.channel(b.step, &t, &dh, false).unwrap(),
                None => Channel::derive(
                    &b.material,
                    &[
                        b"DC_PS session v2",
                        b"DC-SRC",
                        b"PS-1",
                        &s,
                        &t.nonce2,
                        &t.nonce_ps,
                        &t.dc_ephemeral,
                        &t.ps_ephemeral,
                    ],
                    false,
                )
                .unwrap(),
            };
            assert!(!opens(channel), "opened with guess {guess:?}");
        }
        // The real server opens it, and its transfer key is the DC's.
        let (body, _) = recorded.ps_channel.receive_sk(&recorded.delivery).unwrap();
        assert_eq!((body.sk, body.migration_id), (SK, MIGRATION_ID));
        let ours = crate::stream::TransferKey::derive(&body.sk, &body.migration_id).unwrap();
        assert_eq!(ours.transfer_id(), &MIGRATION_ID);
    }

    /// The ephemeral keys are bound by the TOTP-keyed seals: a server key
    /// swapped in the response (a man in the middle without the secret who
    /// wants to sit between them) is refused; each session has fresh keys.
    #[test]
    fn ephemeral_keys_are_bound_and_fresh() {
        let (dc_key, ps_key) = (key(), key());
        let now = 1_800_000_000u64;
        let mut rng = StdRng::seed_from_u64(19);
        let (req, waiting) = dc_ps_auth_request(&dc_key, dc_key.step(now), &mut rng).unwrap();
        let (mut resp, _) =
            receive_dc_ps_auth_request(&ps_key, &req, &mut StepGuard::default(), now, &mut rng).unwrap();
        let mitm = crypto::Ephemeral::generate(&mut rng).unwrap();
        resp.ps_ephemeral = mitm.public;
        assert!(matches!(waiting.receive(&resp), Err(MigrationError::Crypto(CryptoError::Tampered { .. }))));

        let (a, b) = (run_session(30), run_session(32));
        assert_ne!(a.resp.ps_ephemeral, b.resp.ps_ephemeral);
        assert_ne!(rebuild(&key(), &a).body.dc_ephemeral, rebuild(&key(), &b).body.dc_ephemeral);
        // A seeded run is reproducible: the same seeds give the same keys.
        assert_eq!(run_session(30).resp.ps_ephemeral, a.resp.ps_ephemeral);
    }
}
