//! The broker CA as every process judges a peer by it, kept current.
//!
//! One [`Pki`] holds the CA certificate and the CRL in force; a refresh
//! swaps in a new CRL ([`Pki::set_crl`]) and the next handshake, client or
//! server side, is judged by it: nothing is rebuilt, nothing restarted.
//! The CRL's nextUpdate is enforced: past it, every certificate of the CA is
//! refused (fail closed) until a fresh CRL is read. A client that dials a
//! server of one kind also checks the kind (the subject's O, [`holder`]),
//! so a valid certificate of another kind is not taken for the broker.
//!
//! ```text
//!  start: CA (bundle or LDAP) + CRL (the broker's /v1/pki/ca or LDAP) ─► Pki
//!  every refresh: the same source ─► Pki::set_crl ─► the next handshake uses it
//!  dial:   CA + CRL (nextUpdate enforced) + host name ─► holder(cert).kind == expected?
//!  accept: client certificate optional; when sent, CA + CRL (nextUpdate enforced)
//! ```
//!
//! Reading a new CRL must work when the one in force is past its
//! nextUpdate, or a stale CRL would lock a process out for good: the
//! fetching client ([`Pki::fetching_client_config`]) checks the CA, the
//! kind and the CRL's revocations but not its nextUpdate. What it fetches
//! (the CA certificate, compared with the bundle's, and a CRL the CA
//! signed) authenticates itself.

use std::sync::{Arc, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};

use crate::holder::{CertKind, holder};

/// Default seconds between two reads of the CRL.
pub const DEFAULT_CRL_REFRESH_S: u64 = 300;

/// The CA or a CRL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PkiError(pub String);

/// The verifiers built from the CA and one CRL.
#[derive(Debug)]
struct Verifiers {
    crl: Option<CertificateRevocationListDer<'static>>,
    next_update: Option<i64>,
    /// CA + CRL, nextUpdate enforced: every connection of the service.
    server: Arc<WebPkiServerVerifier>,
    /// CA + CRL revocations, nextUpdate not enforced: fetching a new CRL.
    fetching: Arc<WebPkiServerVerifier>,
    /// Client certificates (optional): CA + CRL, nextUpdate enforced.
    client: Arc<dyn ClientCertVerifier>,
}

/// The CA and the CRL in force, shared by every TLS configuration of a process.
#[derive(Debug)]
pub struct Pki {
    roots: Arc<RootCertStore>,
    hints: Vec<DistinguishedName>,
    current: RwLock<Arc<Verifiers>>,
}

/// How the CRL in force stands against the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlFreshness {
    /// No CRL yet: nothing is checked for revocation.
    None,
    /// Valid until `next_update` (unix s); `None` when the CRL names no nextUpdate.
    Fresh { next_update: Option<i64> },
    /// Past its nextUpdate (unix s): every certificate is refused.
    Stale { next_update: i64 },
}

/// The nextUpdate of a DER CRL (unix s), if it names one.
pub fn crl_next_update(der: &[u8]) -> Result<Option<i64>, PkiError> {
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| PkiError(format!("the CRL does not parse: {e}")))?;
    Ok(crl.next_update().map(|t| t.timestamp()))
}

fn build(
    roots: &Arc<RootCertStore>,
    crl: Option<CertificateRevocationListDer<'static>>,
) -> Result<Verifiers, PkiError> {
    let next_update = crl.as_ref().map(|c| crl_next_update(c.as_ref())).transpose()?.flatten();
    let crls: Vec<CertificateRevocationListDer<'static>> = crl.iter().cloned().collect();
    let server = WebPkiServerVerifier::builder(roots.clone())
        .with_crls(crls.clone())
        .enforce_revocation_expiration()
        .build()
        .map_err(|e| PkiError(format!("server verifier: {e}")))?;
    let fetching = WebPkiServerVerifier::builder(roots.clone())
        .with_crls(crls.clone())
        .build()
        .map_err(|e| PkiError(format!("server verifier: {e}")))?;
    let client = WebPkiClientVerifier::builder(roots.clone())
        .with_crls(crls)
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError(format!("client verifier: {e}")))?;
    Ok(Verifiers { crl, next_update, server, fetching, client })
}

impl Pki {
    /// The CA certificate and, if there is one yet, its CRL.
    pub fn new(
        ca: CertificateDer<'static>,
        crl: Option<CertificateRevocationListDer<'static>>,
    ) -> Result<Arc<Pki>, PkiError> {
        crate::install_crypto_provider();
        let mut roots = RootCertStore::empty();
        roots.add(ca).map_err(|e| PkiError(format!("the CA certificate is unusable: {e}")))?;
        let roots = Arc::new(roots);
        let verifiers = build(&roots, crl)?;
        let hints = verifiers.client.root_hint_subjects().to_vec();
        Ok(Arc::new(Pki { roots, hints, current: RwLock::new(Arc::new(verifiers)) }))
    }

    fn current(&self) -> Arc<Verifiers> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `crl` in force for every handshake that comes next; `Ok(true)`
    /// when it differs from the one in force. A CRL that does not parse is
    /// refused and the one in force kept.
    pub fn set_crl(&self, crl: CertificateRevocationListDer<'static>) -> Result<bool, PkiError> {
        if self.current().crl.as_ref() == Some(&crl) {
            return Ok(false);
        }
        let verifiers = build(&self.roots, Some(crl))?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(verifiers);
        Ok(true)
    }

    /// The CRL in force (DER), if any.
    pub fn crl(&self) -> Option<CertificateRevocationListDer<'static>> {
        self.current().crl.clone()
    }

    /// How the CRL in force stands at `now` (unix s).
    pub fn freshness(&self, now: i64) -> CrlFreshness {
        let v = self.current();
        match (&v.crl, v.next_update) {
            (None, _) => CrlFreshness::None,
            (Some(_), Some(next)) if next <= now => CrlFreshness::Stale { next_update: next },
            (Some(_), next_update) => CrlFreshness::Fresh { next_update },
        }
    }

    /// Logs (a security event) when the CRL in force is past its
    /// nextUpdate at `now`: certificates are refused until a fresh one comes.
    /// `who` names the process for the log line.
    pub fn warn_if_stale(&self, who: &str, now: i64) -> CrlFreshness {
        let f = self.freshness(now);
        if let CrlFreshness::Stale { next_update } = f {
            tracing::warn!(
                security = true,
                next_update,
                "{who}: the CRL in force is past its nextUpdate; every certificate is refused until a fresh CRL \
                 is published (`dirbroker ca refresh-crl`)"
            );
        }
        f
    }

    /// A client configuration that accepts only servers of `kind` by this
    /// CA and the CRL in force, presenting `identity` (chain, key) if given.
    pub fn client_config(
        self: &Arc<Self>,
        kind: CertKind,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<rustls::ClientConfig, PkiError> {
        self.config(KindVerifier { pki: self.clone(), kind, fetching: false }, identity)
    }

    /// As [`Pki::client_config`], for fetching the CA and a new CRL: the
    /// CRL's revocations apply, its nextUpdate does not (see the module doc).
    pub fn fetching_client_config(
        self: &Arc<Self>,
        kind: CertKind,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<rustls::ClientConfig, PkiError> {
        self.config(KindVerifier { pki: self.clone(), kind, fetching: true }, identity)
    }

    fn config(
        &self,
        verifier: KindVerifier,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<rustls::ClientConfig, PkiError> {
        let builder = rustls::ClientConfig::builder().dangerous().with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match identity {
            Some((chain, key)) => {
                builder.with_client_auth_cert(chain, key).map_err(|e| PkiError(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        // A resumed session skips the certificate, and so the CRL in force.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }

    /// Client certificates, optional, judged by this CA and the CRL in force.
    pub fn client_verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(ReloadingClientVerifier { pki: self.clone() })
    }

    /// A server configuration presenting `chain`, taking client certificates
    /// (optional) judged by the CA and the CRL in force; no session
    /// resumption (a resumed session skips the certificate, and so the CRL).
    pub fn server_config(
        self: &Arc<Self>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<rustls::ServerConfig, PkiError> {
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(self.client_verifier())
            .with_single_cert(chain, key)
            .map_err(|e| PkiError(format!("server certificate: {e}")))?;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }
}

/// A server-certificate check by the CA and the CRL in force, then of the kind.
#[derive(Debug)]
pub struct KindVerifier {
    pki: Arc<Pki>,
    kind: CertKind,
    fetching: bool,
}

impl ServerCertVerifier for KindVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let v = self.pki.current();
        let inner = if self.fetching { &v.fetching } else { &v.server };
        let verified = inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let found = match holder(end_entity.as_ref()) {
            Ok(Some(h)) if h.kind == self.kind => return Ok(verified),
            Ok(Some(h)) => h.kind.to_string(),
            Ok(None) | Err(_) => "foreign".to_string(),
        };
        tracing::warn!(security = true, expected = %self.kind, found = %found, "server certificate of the wrong kind");
        // `General` keeps the sentence in the error the caller logs (rustls
        // prints `InvalidCertificate(Other(..))` with Debug).
        Err(rustls::Error::General(format!("the server presented a {found} certificate, not a {} one", self.kind)))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pki.current().server.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pki.current().server.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.pki.current().server.supported_verify_schemes()
    }
}

/// Client certificates (optional) by the CA and the CRL in force.
#[derive(Debug)]
struct ReloadingClientVerifier {
    pki: Arc<Pki>,
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.pki.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.pki.current().client.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pki.current().client.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pki.current().client.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.pki.current().client.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
        Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    };
    use std::time::Duration;
    use time::OffsetDateTime;

    /// The tests stand at T, a fixed instant (time is a parameter).
    const T: i64 = 1_900_000_000;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn unix(t: i64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(t).unwrap()))
    }

    struct Ca {
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn new_ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.not_before = at(T - 86_400);
        p.not_after = at(T + 365 * 86_400);
        let cert = p.self_signed(&key).unwrap();
        Ca { der: cert.der().clone(), issuer: Issuer::new(p, key) }
    }

    /// A certificate of `kind` for the host `broker.test`, as `ca issue` makes them.
    fn issue(ca: &Ca, kind: CertKind, serial: u8) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["broker.test".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, kind.as_str());
        p.distinguished_name.push(DnType::OrganizationName, kind.organization());
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(SerialNumber::from_slice(&[serial]));
        p.use_authority_key_identifier_extension = true;
        p.not_before = at(T - 3600);
        p.not_after = at(T + 30 * 86_400);
        p.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    /// A CRL listing `revoked`, valid from `this_update` to `next_update`.
    fn crl(ca: &Ca, revoked: &[u8], this_update: i64, next_update: i64) -> CertificateRevocationListDer<'static> {
        let p = CertificateRevocationListParams {
            this_update: at(this_update),
            next_update: at(next_update),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[*s]),
                    revocation_time: at(this_update),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        p.signed_by(&ca.issuer).unwrap().der().clone()
    }

    fn dial(pki: &Arc<Pki>, kind: CertKind, fetching: bool, cert: &CertificateDer<'_>, now: i64) -> Result<(), String> {
        let v = KindVerifier { pki: pki.clone(), kind, fetching };
        let name = ServerName::try_from("broker.test").unwrap();
        v.verify_server_cert(cert, &[], &name, &[], unix(now)).map(|_| ()).map_err(|e| e.to_string())
    }

    fn accept(pki: &Arc<Pki>, cert: &CertificateDer<'_>, now: i64) -> Result<(), String> {
        pki.client_verifier().verify_client_cert(cert, &[], unix(now)).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_crl_put_in_force_judges_the_next_handshake_both_ways() {
        let ca = new_ca();
        let broker = issue(&ca, CertKind::Broker, 7);
        let pki = Pki::new(ca.der.clone(), Some(crl(&ca, &[], T - 60, T + 86_400))).unwrap();
        assert_eq!(dial(&pki, CertKind::Broker, false, &broker, T), Ok(()));
        assert_eq!(accept(&pki, &broker, T), Ok(()));

        // Revoked after the verifiers were made: the same verifiers refuse it.
        let revoking = crl(&ca, &[7], T, T + 86_400);
        assert!(pki.set_crl(revoking.clone()).unwrap());
        let e = dial(&pki, CertKind::Broker, false, &broker, T).unwrap_err();
        assert!(e.contains("Revoked"), "{e}");
        assert!(dial(&pki, CertKind::Broker, true, &broker, T).unwrap_err().contains("Revoked"));
        assert!(accept(&pki, &broker, T).unwrap_err().contains("Revoked"));
        // The same CRL again changes nothing; one that does not parse is refused and the old one kept.
        assert!(!pki.set_crl(revoking).unwrap());
        assert!(pki.set_crl(CertificateRevocationListDer::from(vec![0x30, 0x00])).is_err());
        assert!(accept(&pki, &broker, T).is_err());
    }

    #[test]
    fn past_its_next_update_a_crl_refuses_every_certificate() {
        let ca = new_ca();
        let broker = issue(&ca, CertKind::Broker, 7);
        let next = T + 3600;
        let pki = Pki::new(ca.der.clone(), Some(crl(&ca, &[], T - 60, next))).unwrap();
        assert_eq!(pki.freshness(next - 1), CrlFreshness::Fresh { next_update: Some(next) });
        assert_eq!(dial(&pki, CertKind::Broker, false, &broker, next - 1), Ok(()));
        assert_eq!(accept(&pki, &broker, next - 1), Ok(()));

        assert_eq!(pki.freshness(next + 1), CrlFreshness::Stale { next_update: next });
        assert_eq!(pki.warn_if_stale("test", next + 1), CrlFreshness::Stale { next_update: next });
        let e = dial(&pki, CertKind::Broker, false, &broker, next + 1).unwrap_err();
        assert!(e.contains("revocation list expired"), "{e}");
        assert!(accept(&pki, &broker, next + 1).unwrap_err().contains("revocation list expired"));
        // Fetching a new CRL still works (its revocations apply, not its date).
        assert_eq!(dial(&pki, CertKind::Broker, true, &broker, next + 1), Ok(()));
        // And the fresh one ends the refusal.
        pki.set_crl(crl(&ca, &[], next, next + 86_400)).unwrap();
        assert_eq!(dial(&pki, CertKind::Broker, false, &broker, next + 1), Ok(()));
    }

    #[test]
    fn a_valid_certificate_of_another_kind_is_not_the_server_dialled() {
        let ca = new_ca();
        let pki = Pki::new(ca.der.clone(), Some(crl(&ca, &[], T - 60, T + 86_400))).unwrap();
        for (kind, serial) in [(CertKind::Dc, 1), (CertKind::Ams, 2), (CertKind::Ans, 3), (CertKind::Service, 4)] {
            let cert = issue(&ca, kind, serial);
            // The same CA, the broker's host name, not revoked: refused as the broker.
            let e = dial(&pki, CertKind::Broker, false, &cert, T).unwrap_err();
            assert!(e.contains(&format!("a {kind} certificate, not a broker one")), "{e}");
            assert!(dial(&pki, CertKind::Broker, true, &cert, T).is_err());
            assert_eq!(dial(&pki, kind, false, &cert, T), Ok(()));
        }
        // Another CA's broker certificate (even under the same CA name):
        // refused before its kind is read.
        let other = new_ca();
        let e = dial(&pki, CertKind::Broker, false, &issue(&other, CertKind::Broker, 9), T).unwrap_err();
        assert!(e.contains("BadSignature"), "{e}");
    }
}
