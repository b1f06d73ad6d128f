//! The request module (seed 001 §4.1): user authentication with a fresh
//! OTP, then the request from the source data center to the destination.
//!
//! ```text
//!  admin                         source DC                       destination DC
//!  start ── Auth_Request ──────► receive_auth_request (draws migration_id)
//!                                 └ OTP verified + consumed by the broker,
//!                                   which signs the user's authorisation
//!  AwaitingAuthReply ◄─ Auth_Reply ┘ OtpToCheck::accepted
//!   └ Mig_Request_Admin ───────► AwaitingMigRequestAdmin
//!                                 └ Mig_Request_DC ─────────────► receive_mig_request_dc
//!                                   (+ the authorisation)          (checks it)
//!                                AwaitingMigResponseDc ◄─ Mig_Response_DC ┘ IncomingMigration::respond
//!  AwaitingMigrationDone ◄─ Migration_Done (after the operation module)
//! ```
//!
//! Each waiting state is a type that consumes exactly the message it waits
//! for; the transcript values (nonce1, nonce_dc, migration_id, the digest of
//! the request) are carried in the state and bound into keys and signatures.

use crate::api::machines::OtpVerifyReply;
use crate::encoding::Lp;
use std::collections::HashMap;

use rand::CryptoRng;
use rustls_pki_types::UnixTime;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::MigrationError;
use super::authorisation::UserAuthorisation;
use super::crypto::{self, CertInfo, Channel, DcIdentity, Trust};
use super::messages::*;
use super::wire::Message;

/// Clock skew tolerated on timestamps, as Kerberos does (RFC 4120 §3.2.3).
pub const MAX_SKEW_SECS: i64 = 300;

/// A pre-shared key K1 between an admin console and a source data center.
pub struct K1 {
    /// The PSK id: names this K1, in clear, in `Auth_Request`.
    pub psk_id: String,
    /// The admin it is shared with (`psk add --admin`).
    pub admin: String,
    /// The DID of the data center it is shared with.
    pub dc: String,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for K1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K1").field("psk_id", &self.psk_id).field("admin", &self.admin).field("dc", &self.dc).finish()
    }
}

impl K1 {
    /// K1 `psk_id` between `admin` and data center `dc`; a key under 16 bytes is refused (`psk add` makes 32).
    pub fn new(psk_id: &str, admin: &str, dc: &str, key: Zeroizing<Vec<u8>>) -> Result<K1, MigrationError> {
        if key.len() < 16 {
            return Err(MigrationError::Local(format!("K1 {psk_id:?} is {} bytes; at least 16 are needed", key.len())));
        }
        Ok(K1 { psk_id: psk_id.into(), admin: admin.into(), dc: dc.into(), key })
    }

    fn single_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        crypto::derive_key(
            &self.key,
            b"",
            &[b"K1", label.as_bytes(), self.psk_id.as_bytes(), self.admin.as_bytes(), self.dc.as_bytes()],
        )
    }

    fn aad(&self, message: &str) -> Vec<u8> {
        Lp::default()
            .raw(message.as_bytes())
            .part(self.psk_id.as_bytes())
            .part(self.admin.as_bytes())
            .part(self.dc.as_bytes())
            .into_bytes()
    }

    fn session(&self, nonce1: &[u8; 16], nonce_dc: &[u8; 16], admin_side: bool) -> Result<Channel, MigrationError> {
        Ok(Channel::derive(
            &self.key,
            &[b"K1 session", self.psk_id.as_bytes(), self.admin.as_bytes(), self.dc.as_bytes(), nonce1, nonce_dc],
            admin_side,
        )?)
    }
}

/// Remembers nonces seen inside the skew window, so a replayed message is
/// refused even before its other checks: the one replay cache
/// ([`crate::replay`]) keyed by the nonce.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: crate::replay::ReplayCache,
}

impl ReplayCache {
    /// Accepts `nonce` once, if `timestamp` is within the skew of `now`.
    pub fn check(
        &mut self,
        what: &'static str,
        nonce: &[u8; 16],
        timestamp: i64,
        now: i64,
    ) -> Result<(), MigrationError> {
        if now.abs_diff(timestamp) > MAX_SKEW_SECS.unsigned_abs() {
            return Err(MigrationError::Replay {
                what,
                detail: format!(
                    "timestamp is {} s away from now (limit {MAX_SKEW_SECS} s)",
                    now.saturating_sub(timestamp)
                ),
            });
        }
        let mut key = [0u8; 32];
        if let Some(head) = key.get_mut(..16) {
            head.copy_from_slice(nonce);
        }
        self.seen
            .check_and_insert(key, timestamp.saturating_add(2 * MAX_SKEW_SECS), now)
            .map_err(|_| MigrationError::Replay { what, detail: "this nonce was already used".into() })
    }
}

// ---- admin console -------------------------------------------------------

/// Step 2: the admin turns the user's `Mig_Auth_Request` into `Auth_Request`.
pub fn start<R: CryptoRng + ?Sized>(
    k1: &K1,
    user: &MigAuthRequest,
    now: i64,
    rng: &mut R,
) -> Result<(AuthRequest, AwaitingAuthReply), MigrationError> {
    let nonce1 = crypto::nonce(rng);
    let body = AuthRequestBody { uid: user.uid.clone(), otp: user.otp.to_string(), nonce1, timestamp: now };
    let plain = body_bytes(&body, AuthRequest::NAME)?;
    drop(body);
    let sealed = crypto::seal(&k1.single_key("admin->dc"), &k1.aad(AuthRequest::NAME), &plain)?;
    let msg = AuthRequest { psk_id: k1.psk_id.clone(), admin: k1.admin.clone(), sealed };
    Ok((msg, AwaitingAuthReply { uid: user.uid.clone(), nonce1 }))
}

/// The admin waits for `Auth_Reply`.
#[derive(Debug)]
pub struct AwaitingAuthReply {
    uid: String,
    nonce1: [u8; 16],
}

impl AwaitingAuthReply {
    /// Step 4: check UID and nonce1 came back, then send `Mig_Request_Admin`.
    pub fn receive(
        self,
        k1: &K1,
        reply: &AuthReply,
        mig_rqst: MigRqst,
        dest_did: &str,
    ) -> Result<(MigRequestAdmin, AwaitingMigrationDone), MigrationError> {
        let plain =
            crypto::open(&k1.single_key("dc->admin"), &k1.aad(AuthReply::NAME), &reply.sealed, AuthReply::NAME)?;
        let body: AuthReplyBody = parse_body(&plain, AuthReply::NAME)?;
        if body.nonce1 != self.nonce1 || body.uid != self.uid {
            return Err(MigrationError::Mismatch {
                what: AuthReply::NAME,
                detail: "it answers another request (UID or nonce1 differ)".into(),
            });
        }
        let mut channel = k1.session(&self.nonce1, &body.nonce_dc, true)?;
        let order = MigRequestAdminBody { mig_rqst, dest_did: dest_did.to_string(), uid: self.uid };
        let sealed = channel.seal(MigRequestAdmin::NAME, &body_bytes(&order, MigRequestAdmin::NAME)?)?;
        Ok((MigRequestAdmin { sealed }, AwaitingMigrationDone { channel }))
    }
}

/// The admin waits for the outcome.
#[derive(Debug)]
pub struct AwaitingMigrationDone {
    channel: Channel,
}

impl AwaitingMigrationDone {
    /// `Migration_Done`: the outcome, on this session's K1 channel.
    pub fn receive(mut self, done: &MigrationDone) -> Result<MigrationDoneBody, MigrationError> {
        let plain = self.channel.open(MigrationDone::NAME, &done.sealed)?;
        Ok(parse_body(&plain, MigrationDone::NAME)?)
    }
}

// ---- source data center: the admin side ---------------------------------

/// The K1 keys a data center holds, by PSK id.
#[derive(Debug, Default)]
pub struct K1Store {
    keys: HashMap<String, K1>,
}

impl K1Store {
    /// Adds a K1, replacing any with the same PSK id.
    pub fn insert(&mut self, k1: K1) {
        self.keys.insert(k1.psk_id.clone(), k1);
    }
    /// How many K1 it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Holds no K1.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Step 3, first half: open `Auth_Request`; the OTP inside must now be
/// verified (and consumed) by the broker before [`OtpToCheck::accepted`].
/// The migration id is drawn here, so the broker can sign the user's
/// authorisation of exactly this migration ([`super::authorisation`]).
pub fn receive_auth_request<'k, R: CryptoRng + ?Sized>(
    keys: &'k K1Store,
    my_did: &str,
    req: &AuthRequest,
    replay: &mut ReplayCache,
    now: i64,
    rng: &mut R,
) -> Result<OtpToCheck<'k>, MigrationError> {
    let k1 = keys
        .keys
        .get(&req.psk_id)
        .filter(|k| k.admin == req.admin && k.dc == my_did)
        .ok_or_else(|| MigrationError::Unknown { what: "pre-shared key", name: req.psk_id.clone() })?;
    let plain = crypto::open(&k1.single_key("admin->dc"), &k1.aad(AuthRequest::NAME), &req.sealed, AuthRequest::NAME)?;
    let body: AuthRequestBody = parse_body(&plain, AuthRequest::NAME)?;
    replay.check(AuthRequest::NAME, &body.nonce1, body.timestamp, now)?;
    Ok(OtpToCheck {
        k1,
        uid: body.uid.clone(),
        otp: Zeroizing::new(body.otp.clone()),
        nonce1: body.nonce1,
        migration_id: crypto::nonce(rng),
    })
}

/// Proof that the broker verified and consumed the user's OTP (request
/// module step 3), with its signed authorisation of the migration. Only an
/// accepting answer of `POST /v1/otp/verify` makes one
/// ([`OtpConsumed::from_reply`]), and [`OtpToCheck::accepted`] takes it:
/// the source cannot send `Auth_Reply` for a user the broker did not accept.
#[derive(Debug)]
pub struct OtpConsumed {
    uid: String,
    authorisation: UserAuthorisation,
}

impl OtpConsumed {
    /// The broker's answer for `uid` and migration `migration_id`: the
    /// witness when it accepted (and consumed) the code and signed the
    /// authorisation of this migration, the broker's reason when it refused.
    /// (The source does not check the signature; the destination does.)
    pub fn from_reply(uid: &str, migration_id: &[u8; 16], reply: OtpVerifyReply) -> Result<OtpConsumed, String> {
        if !reply.accepted {
            return Err(reply.reason.unwrap_or_else(|| "refused".into()));
        }
        match reply.authorisation {
            Some(a) if a.uid == uid && &a.migration_id == migration_id => {
                Ok(OtpConsumed { uid: uid.to_string(), authorisation: a })
            }
            Some(_) => Err("the broker's authorisation is for another user or migration".into()),
            None => Err("the broker accepted the code but signed no authorisation for the migration".into()),
        }
    }
}

/// An opened `Auth_Request` whose OTP the broker must verify.
pub struct OtpToCheck<'k> {
    k1: &'k K1,
    /// `UID` from the request: whose OTP it is.
    pub uid: String,
    /// The OTP to hand to the broker; wiped on drop.
    pub otp: Zeroizing<String>,
    nonce1: [u8; 16],
    /// The id of the migration this authentication is for, drawn by the source; the broker
    /// signs it into the user's authorisation, and `Mig_Request_DC` carries it.
    pub migration_id: [u8; 16],
}

impl std::fmt::Debug for OtpToCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpToCheck").field("uid", &self.uid).finish_non_exhaustive()
    }
}

impl<'k> OtpToCheck<'k> {
    /// The admin whose K1 sealed the request, for the log.
    pub fn admin(&self) -> &str {
        &self.k1.admin
    }

    /// Step 3, second half: the OTP was accepted; answer with `Auth_Reply`.
    pub fn accepted<R: CryptoRng + ?Sized>(
        self,
        consumed: OtpConsumed,
        rng: &mut R,
    ) -> Result<(AuthReply, AwaitingMigRequestAdmin<'k>), MigrationError> {
        if consumed.uid != self.uid {
            return Err(MigrationError::Mismatch {
                what: "OTP check",
                detail: format!("the broker's acceptance is for {:?}, this request is {:?}'s", consumed.uid, self.uid),
            });
        }
        if consumed.authorisation.migration_id != self.migration_id {
            return Err(MigrationError::Mismatch {
                what: "OTP check",
                detail: "the broker's authorisation is for another migration".into(),
            });
        }
        let nonce_dc = crypto::nonce(rng);
        let body = AuthReplyBody { uid: self.uid.clone(), nonce1: self.nonce1, nonce_dc };
        let sealed = crypto::seal(
            &self.k1.single_key("dc->admin"),
            &self.k1.aad(AuthReply::NAME),
            &body_bytes(&body, AuthReply::NAME)?,
        )?;
        let channel = self.k1.session(&self.nonce1, &nonce_dc, false)?;
        let authorisation = consumed.authorisation;
        Ok((AuthReply { sealed }, AwaitingMigRequestAdmin { k1: self.k1, uid: self.uid, channel, authorisation }))
    }
}

/// The source DC waits for `Mig_Request_Admin`.
#[derive(Debug)]
pub struct AwaitingMigRequestAdmin<'k> {
    k1: &'k K1,
    uid: String,
    channel: Channel,
    authorisation: UserAuthorisation,
}

impl AwaitingMigRequestAdmin<'_> {
    /// Step 5, first half: the order, for the user just authenticated only.
    pub fn receive(mut self, m: &MigRequestAdmin) -> Result<(MigRequestAdminBody, AdminSession), MigrationError> {
        let plain = self.channel.open(MigRequestAdmin::NAME, &m.sealed)?;
        let order: MigRequestAdminBody = parse_body(&plain, MigRequestAdmin::NAME)?;
        if order.uid != self.uid {
            return Err(MigrationError::Mismatch {
                what: MigRequestAdmin::NAME,
                detail: format!("UID {:?} is not the user who authenticated", order.uid),
            });
        }
        if order.dest_did == self.k1.dc {
            return Err(MigrationError::Mismatch {
                what: MigRequestAdmin::NAME,
                detail: "the destination is this data center".into(),
            });
        }
        Ok((order, AdminSession { channel: self.channel, authorisation: self.authorisation }))
    }
}

/// The source DC's open session with the admin, for the final report.
#[derive(Debug)]
pub struct AdminSession {
    channel: Channel,
    authorisation: UserAuthorisation,
}

impl AdminSession {
    /// The broker's signed authorisation of this session's migration, for [`mig_request_dc`].
    pub fn authorisation(&self) -> &UserAuthorisation {
        &self.authorisation
    }

    /// `Migration_Done`: the last message to the admin, whatever the outcome.
    pub fn done(mut self, body: &MigrationDoneBody) -> Result<MigrationDone, MigrationError> {
        Ok(MigrationDone { sealed: self.channel.seal(MigrationDone::NAME, &body_bytes(body, MigrationDone::NAME)?)? })
    }
}

// ---- source DC ↔ destination DC -----------------------------------------

const E_PB_REQUEST: &str = "Mig_Request_DC";
const E_PB_RESPONSE: &str = "Mig_Response_DC";

fn request_digest(body_plain: &[u8], cert_src: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((body_plain.len() as u64).to_be_bytes());
    h.update(body_plain);
    h.update(cert_src);
    h.finalize().into()
}

/// What the destination signs: `Dest_DID ‖ Ack`, bound to this migration
/// and this request so the signature cannot be reused for another.
pub fn response_signed_bytes(dest_did: &str, ack: &Ack, migration_id: &[u8; 16], request_digest: &[u8; 32]) -> Vec<u8> {
    let m = Lp::default().raw(b"dirbroker Mig_Response_DC v1").part(dest_did.as_bytes());
    // The refusal text is not prefixed: what follows it has a fixed width.
    let m = match ack {
        Ack::Accepted => m.raw(&[1]),
        Ack::Refused(why) => m.raw(&[0]).raw(why.as_bytes()),
    };
    m.raw(migration_id).raw(request_digest).into_bytes()
}

/// Step 5, second half: `Mig_Request_DC` to the destination's certified key,
/// with the broker's authorisation of the user's OTP
/// ([`AdminSession::authorisation`]), whose migration id it takes.
pub fn mig_request_dc(
    me: &DcIdentity,
    dest: &CertInfo,
    order: &MigRequestAdminBody,
    authorisation: &UserAuthorisation,
    now: i64,
) -> Result<(MigRequestDc, AwaitingMigResponseDc), MigrationError> {
    if dest.common_name != order.dest_did {
        return Err(MigrationError::Local(format!(
            "the certificate is for {:?}, the order names {:?}",
            dest.common_name, order.dest_did
        )));
    }
    if authorisation.uid != order.uid || authorisation.src_did != me.did {
        return Err(MigrationError::Local("the user's authorisation is for another user or data center".into()));
    }
    let body = MigRequestDcBody {
        mig_rqst: order.mig_rqst.clone(),
        src_did: me.did.clone(),
        dest_did: order.dest_did.clone(),
        uid: order.uid.clone(),
        migration_id: authorisation.migration_id,
        timestamp: now,
        authorisation: Some(authorisation.clone()),
    };
    let plain = body_bytes(&body, MigRequestDc::NAME)?;
    let sealed = crypto::seal_to(&dest.public_point, E_PB_REQUEST, &plain)?;
    let digest = request_digest(&plain, &me.cert_der);
    let msg = MigRequestDc { sealed, cert_src: me.cert_der.clone() };
    Ok((msg, AwaitingMigResponseDc { body, digest }))
}

/// The source DC waits for `Mig_Response_DC`.
#[derive(Debug)]
pub struct AwaitingMigResponseDc {
    body: MigRequestDcBody,
    digest: [u8; 32],
}

/// A destination's signed acceptance, kept as evidence (non-repudiation).
#[derive(Clone, Debug)]
pub struct SignedAck {
    /// The request the destination accepted.
    pub request: MigRequestDcBody,
    /// The destination's certificate, verified against the CA, the CRL and `Dest_DID`.
    pub dest: CertInfo,
    /// `Cert_Dest` as received (DER), for whoever checks the evidence later.
    pub cert_dest: Vec<u8>,
    /// The destination's ECDSA signature over [`response_signed_bytes`].
    pub signature: Vec<u8>,
    /// SHA-256(len ‖ request plaintext ‖ `Cert_Src`), bound into the signature.
    pub request_digest: [u8; 32],
}

impl AwaitingMigResponseDc {
    /// The migration id this request carries.
    pub fn migration_id(&self) -> [u8; 16] {
        self.body.migration_id
    }

    /// Step 6 at the source: check `Cert_Dest` against the CA and CRL, open
    /// the response, verify the signature over `Dest_DID ‖ Ack`.
    pub fn receive(
        self,
        me: &DcIdentity,
        trust: &Trust,
        resp: &MigResponseDc,
        now: UnixTime,
    ) -> Result<SignedAck, MigrationError> {
        let dest = trust.verify_dc(&resp.cert_dest, Some(&self.body.dest_did), now)?;
        let plain = crypto::open_from(me, E_PB_RESPONSE, &resp.sealed)?;
        let body: MigResponseDcBody = parse_body(&plain, MigResponseDc::NAME)?;
        let signed = response_signed_bytes(&body.dest_did, &body.ack, &body.migration_id, &self.digest);
        crypto::verify_signature(&dest.public_point, &signed, &body.signature, MigResponseDc::NAME)?;
        if body.dest_did != self.body.dest_did || body.migration_id != self.body.migration_id {
            return Err(MigrationError::Mismatch {
                what: MigResponseDc::NAME,
                detail: "it answers another migration".into(),
            });
        }
        match body.ack {
            Ack::Accepted => Ok(SignedAck {
                request: self.body,
                dest,
                cert_dest: resp.cert_dest.clone(),
                signature: body.signature,
                request_digest: self.digest,
            }),
            Ack::Refused(why) => {
                Err(MigrationError::Refused(format!("{} refused the migration: {why}", body.dest_did)))
            }
        }
    }
}

/// Step 6 at the destination: check `Cert_Src` (CA, CRL, and that it is
/// `tls_peer_cert`, the certificate the mutual-TLS peer presented: a
/// destination without one has no source to answer), open the request,
/// check it is for us and fresh.
pub fn receive_mig_request_dc(
    me: &DcIdentity,
    trust: &Trust,
    req: &MigRequestDc,
    tls_peer_cert: &[u8],
    replay: &mut ReplayCache,
    now: UnixTime,
) -> Result<IncomingMigration, MigrationError> {
    let src = trust.verify_dc(&req.cert_src, None, now)?;
    if tls_peer_cert != req.cert_src.as_slice() {
        return Err(MigrationError::Mismatch {
            what: MigRequestDc::NAME,
            detail: "Cert_Src is not the certificate of the connection".into(),
        });
    }
    let plain = crypto::open_from(me, E_PB_REQUEST, &req.sealed)?;
    let body: MigRequestDcBody = parse_body(&plain, MigRequestDc::NAME)?;
    if body.dest_did != me.did {
        return Err(MigrationError::Mismatch {
            what: MigRequestDc::NAME,
            detail: format!("it is for {:?}", body.dest_did),
        });
    }
    if body.src_did != src.common_name {
        return Err(MigrationError::Mismatch {
            what: MigRequestDc::NAME,
            detail: format!("Src_DID {:?} is not the certificate's {:?}", body.src_did, src.common_name),
        });
    }
    // The user's authorisation, signed by the broker when it accepted the OTP
    // (audit F11): for this UID, this source and this migration id, in time.
    let authorisation = body.authorisation.as_ref().ok_or_else(|| MigrationError::Mismatch {
        what: MigRequestDc::NAME,
        detail: "it carries no user authorisation from the broker".into(),
    })?;
    authorisation.verify(trust, &body.uid, &body.src_did, &body.migration_id, now)?;
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    replay.check(MigRequestDc::NAME, &body.migration_id, body.timestamp, secs)?;
    let digest = request_digest(&plain, &req.cert_src);
    Ok(IncomingMigration { body, src, digest })
}

/// An accepted-for-review request at the destination; answered once
/// ([`IncomingMigration::respond`] consumes it).
#[derive(Debug)]
pub struct IncomingMigration {
    /// The request, opened and checked.
    pub body: MigRequestDcBody,
    /// The source's certificate, verified against the CA and the CRL; its CN is `Src_DID`.
    pub src: CertInfo,
    digest: [u8; 32],
}

impl IncomingMigration {
    /// `Mig_Response_DC`: our signature over `Dest_DID ‖ Ack`, sealed to the source.
    pub fn respond(self, me: &DcIdentity, ack: Ack) -> Result<MigResponseDc, MigrationError> {
        let signed = response_signed_bytes(&me.did, &ack, &self.body.migration_id, &self.digest);
        let body = MigResponseDcBody {
            dest_did: me.did.clone(),
            ack,
            migration_id: self.body.migration_id,
            signature: me.sign(&signed)?,
        };
        let sealed = crypto::seal_to(&self.src.public_point, E_PB_RESPONSE, &body_bytes(&body, MigResponseDc::NAME)?)?;
        Ok(MigResponseDc { sealed, cert_dest: me.cert_der.clone() })
    }
}
