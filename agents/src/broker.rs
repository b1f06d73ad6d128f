//! What the actors ask the broker (`dirbroker serve`), over mutual TLS with
//! their own certificate: the CA and CRL, their own credentials and nothing
//! else (the broker decides by the certificate), other data centers' public
//! entries, and the check of a user's OTP.

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
use dirbroker_service::client::{ApiClient, ClientError};
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
    /// A client presenting `me` and trusting only the broker CA.
    pub fn new(base: &str, ca_pem: &[u8], me: &DcIdentity) -> Result<Broker, MigrationError> {
        use rustls_pki_types::pem::PemObject;
        let ca = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem).map_err(|e| local(format!("ca.pem: {e}")))?;
        let tls = crate::tls::client_config(&ca, None, Some(me)).map_err(local)?;
        let api = ApiClient::new(base, tls, std::time::Duration::from_secs(30)).map_err(local)?;
        Ok(Broker { api })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, MigrationError> {
        self.api.get(path).await.map_err(local)
    }

    /// The CA certificate and current CRL.
    pub async fn trust(&self) -> Result<Trust, MigrationError> {
        let r: PkiCa = self.get("/v1/pki/ca").await?;
        let crl = r.crl_pem.ok_or_else(|| local("the broker publishes no CRL (run `dirbroker ca refresh-crl`)"))?;
        Ok(Trust::from_pem(r.ca_pem.as_bytes(), crl.as_bytes())?)
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
        // The broker keeps its decision for this migration id: when an
        // answer is lost (timeout, cut connection, 503) the same request
        // again gets it, so a code it accepted is not lost as "already used".
        let mut waits = [Duration::from_millis(500), Duration::from_secs(2)].into_iter();
        let r: OtpVerifyReply = loop {
            match self.api.post("/v1/otp/verify", &req).await {
                Ok(r) => break r,
                Err(e) if e.is_retryable() || matches!(e, ClientError::Unreadable { .. }) => match waits.next() {
                    Some(wait) => {
                        tracing::warn!(uid, "OTP check: {e}; asking again");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(local(format!("OTP check: {e}"))),
                },
                Err(e) => return Err(local(format!("OTP check: {e}"))),
            }
        };
        Ok(OtpConsumed::from_reply(uid, migration_id, r))
    }
}
