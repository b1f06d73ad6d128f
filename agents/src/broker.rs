//! What the actors ask the broker (`dirbroker serve`, one or several side by
//! side, failed over by [`ApiClient`]), over mutual TLS with their own certificate: the CA and CRL, their own credentials and nothing
//! else (the broker decides by the certificate), other data centers' public
//! entries, and the check of a user's OTP.
//!
//! The client accepts only a broker certificate of the CA (not a data
//! center's, an ANS's, … named like the broker's host), judged by the CRL
//! the last [`Broker::trust`] read (the DC daemon reads it every
//! `--refresh`); a CRL past its nextUpdate refuses the broker until a fresh
//! one is read ([`dirbroker_service::pki`]).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use dirbroker_proto::api::machines::{
    DcCredentials as CredentialsReply, DcEntry, OtpVerifyReply, OtpVerifyRequest, PkiCa,
};
use dirbroker_proto::group::Group;
use dirbroker_proto::otp::Algorithm;
use dirbroker_proto::otp::{SecretFormat, parse_secret};
use dirbroker_proto::speke::{PreparedPassword, Speke};
use dirbroker_service::client::{ApiClient, Repeat};
use dirbroker_service::holder::CertKind;
use dirbroker_service::pki::Pki;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::migration::MigrationError;
use crate::migration::crypto::{DcIdentity, Trust};
use crate::migration::operation::TotpKey;
use crate::migration::request::{K1, K1Store, OtpConsumed};

/// A client of the broker's HTTPS API, presenting the data center's certificate.
#[derive(Debug, Clone)]
pub struct Broker {
    api: ApiClient,
    /// For `/v1/pki/ca` only: the CRL's revocations apply, its nextUpdate
    /// does not, so a stale CRL can be replaced.
    fetching: ApiClient,
    pki: std::sync::Arc<Pki>,
}

fn local(e: impl std::fmt::Display) -> MigrationError {
    MigrationError::Local(format!("broker: {e}"))
}

/// A physical server of ours: its TOTP key and control endpoint.
#[derive(Debug)]
pub struct Server {
    pub key: TotpKey,
    pub endpoint: String,
}

/// Everything a data center holds, fetched at start.
#[derive(Debug, Default)]
pub struct DcCredentials {
    pub k1: K1Store,
    /// SPEKE passwords shared with other data centers, by their DID,
    /// prepared once (generator and its fixed-base table) for every session.
    pub peers: HashMap<String, PreparedPassword<'static>>,
    pub servers: HashMap<String, Server>,
}

/// Another data center's public entry.
#[derive(Debug)]
pub struct DcPublic {
    pub endpoint: String,
    pub cert_der: Vec<u8>,
}

impl Broker {
    /// A client presenting `me` and trusting only a broker certificate of
    /// the broker CA (no CRL until [`Broker::trust`] reads one).
    pub fn new(bases: &[String], ca_pem: &[u8], me: &DcIdentity) -> Result<Broker, MigrationError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let ca = CertificateDer::from_pem_slice(ca_pem).map_err(|e| local(format!("ca.pem: {e}")))?;
        let pki = Pki::new(ca, None).map_err(local)?;
        let identity = (
            vec![CertificateDer::from(me.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(me.key_der.to_vec())),
        );
        let timeout = std::time::Duration::from_secs(30);
        let tls = pki.client_config(CertKind::Broker, Some(identity)).map_err(local)?;
        let api = ApiClient::new(bases, tls, timeout).map_err(local)?;
        // `/v1/pki/ca` is public: no certificate, so a broker that refuses
        // ours (its CRL stale) still hands out the CRL.
        let tls = pki.fetching_client_config(CertKind::Broker, None).map_err(local)?;
        let fetching = api.with_tls(tls, timeout).map_err(local)?;
        Ok(Broker { api, fetching, pki })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, MigrationError> {
        self.api.get(path).await.map_err(local)
    }

    /// The CA certificate and current CRL; the CRL is put in force for
    /// this client too (the next call to the broker is judged by it).
    pub async fn trust(&self) -> Result<Trust, MigrationError> {
        let r: PkiCa = self.fetching.get("/v1/pki/ca").await.map_err(local)?;
        let crl = r.crl_pem.ok_or_else(|| local("the broker publishes no CRL (run `dirbroker ca refresh-crl`)"))?;
        let trust = Trust::from_pem(r.ca_pem.as_bytes(), crl.as_bytes())?;
        if self.pki.set_crl(trust.crl_der().clone()).map_err(local)? {
            tracing::debug!("the broker client judges the broker by the new CRL");
        }
        let now = i64::try_from(dirbroker_service::clock::unix_time().as_secs()).unwrap_or(i64::MAX);
        self.pki.warn_if_stale("DC", now);
        Ok(trust)
    }

    /// Our own credentials (the broker chooses them by our certificate).
    pub async fn credentials(&self, me: &str) -> Result<DcCredentials, MigrationError> {
        let r: CredentialsReply = self.get("/v1/dc/credentials").await?;
        if r.did != me {
            return Err(local(format!("the broker answered for {:?}, we are {me:?}", r.did)));
        }
        let mut creds = DcCredentials::default();
        for p in r.psks {
            let key = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(p.key_base64.as_bytes())
                    .map_err(|e| local(format!("pre-shared key {}: {e}", p.id)))?,
            );
            let admins: Vec<&str> = p.parties.iter().filter_map(|x| x.as_admin()).collect();
            let dcs: Vec<&str> = p.parties.iter().filter_map(|x| x.as_dc()).filter(|d| *d != me).collect();
            match (admins.as_slice(), dcs.as_slice()) {
                ([admin], []) => creds.k1.insert(K1::new(&p.id, admin, me, key)?),
                ([], [peer]) => {
                    let prepared = Speke::prepare(Group::modp2048(), &key)
                        .map_err(|e| local(format!("SPEKE password {}: {e}", p.id)))?;
                    creds.peers.insert((*peer).to_string(), prepared);
                }
                _ => tracing::warn!(psk = %p.id, "pre-shared key with unexpected parties ignored"),
            }
        }
        for s in r.servers {
            let algorithm = Algorithm::parse(&s.algorithm)
                .ok_or_else(|| local(format!("server {}: unknown algorithm {:?}", s.id, s.algorithm)))?;
            let secret = parse_secret(&s.secret_base32, SecretFormat::Base32)
                .map_err(|e| local(format!("server {}: {e}", s.id)))?;
            let Some(endpoint) = s.endpoint else {
                tracing::warn!(server = %s.id, "physical server without an endpoint ignored");
                continue;
            };
            let key = TotpKey::new(me, &s.id, algorithm, s.period, secret)?;
            creds.servers.insert(s.id.clone(), Server { key, endpoint });
        }
        Ok(creds)
    }

    /// Another data center's endpoint and certificate (not yet judged).
    pub async fn dc(&self, did: &str) -> Result<DcPublic, MigrationError> {
        let path = format!("/v1/dc/{}", percent_encoding::utf8_percent_encode(did, percent_encoding::NON_ALPHANUMERIC));
        let r: DcEntry = self.get(&path).await?;
        if r.disabled {
            return Err(MigrationError::Refused(format!("data center {did} is disabled")));
        }
        let endpoint = r.endpoint.ok_or_else(|| local(format!("data center {did} has no endpoint")))?;
        let pem = r.certificate_pem.ok_or_else(|| local(format!("data center {did} has no certificate")))?;
        use rustls_pki_types::pem::PemObject;
        let cert = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| local(format!("certificate of {did}: {e}")))?;
        Ok(DcPublic { endpoint, cert_der: cert.as_ref().to_vec() })
    }

    /// Verifies and consumes a user's OTP for migration `migration_id`, and gets the broker's
    /// signed authorisation of it: `Ok(Err(reason))` when refused.
    pub async fn verify_otp(
        &self,
        uid: &str,
        code: &str,
        migration_id: &[u8; 16],
    ) -> Result<Result<OtpConsumed, String>, MigrationError> {
        let req = OtpVerifyRequest { uid: uid.to_string(), code: code.to_string(), migration_id: Some(*migration_id) };
        // The broker keeps its decision for this migration id, in its own
        // process: when an answer is lost (timeout, cut connection, 5xx) the
        // same request to the same broker gets it, so a code it accepted is
        // not lost as "already used". Another broker would not know that
        // decision: the request goes there only if the first surely did not
        // get it (no connection). Either way the code is consumed at most
        // once: the consume is a guarded write on the one writer.
        const WAITS: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];
        let r: OtpVerifyReply = self
            .api
            .post_with("/v1/otp/verify", &req, Repeat::SameUrl(&WAITS))
            .await
            .map_err(|e| local(format!("OTP check: {e}")))?;
        Ok(OtpConsumed::from_reply(uid, migration_id, r))
    }
}
