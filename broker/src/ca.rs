//! The broker's certificate authority for data centers (seeds 000/001: each
//! data center holds an X.509 certificate from a CA; the migration actors use
//! them for mutual TLS and signatures). rcgen issues; the CA certificate and
//! its CRL are published under `cn=ca,ou=pki` (pkiCA), each data center's
//! certificate under its entry (`userCertificate;binary`).
//!
//! ```text
//!  ca init  ─► CA key (0600 file) + self-signed CA cert ─► LDAP cn=ca,ou=pki
//!  dc add   ─► DC key + cert (CN = DID, SAN = endpoint host) ─► LDAP + 0600 bundle
//!  dc revoke ─► CRL with the serial, crlNumber + 1, signed ─► LDAP
//! ```

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use dirbroker_service::holder::{CertError, CertKind, Holder, holder, serial_hex};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("certificate: {0}")]
    Cert(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Holder(#[from] CertError),
}

fn cert_err(e: rcgen::Error) -> CaError {
    CaError::Cert(e.to_string())
}

fn file_err(path: &Path, reason: impl ToString) -> CaError {
    CaError::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// A CA able to issue: its certificate and signing key.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_der_len", &self.cert_der.len()).finish_non_exhaustive()
    }
}

/// A certificate just issued, with its private key.
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: Zeroizing<String>,
    pub serial: Vec<u8>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("serial", &self.serial).finish_non_exhaustive()
    }
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut s = [0u8; 16];
    crate::clock::fill_random(&mut s).map_err(|_| CaError::Cert("no randomness".into()))?;
    // Positive and without a leading zero byte: 1..=127 in the top byte.
    if let Some(top) = s.first_mut() {
        *top = (*top & 0x7f).max(1);
    }
    Ok(SerialNumber::from_slice(&s))
}

impl Ca {
    /// Make a new CA: key written to `key_file` (0600, refuses to overwrite),
    /// certificate to `cert_file`.
    pub fn init(key_file: &Path, cert_file: &Path, name: &str, now: OffsetDateTime, years: i64) -> Result<Ca, CaError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(CaError::Input("the CA name must be 1 to 64 printable characters".into()));
        }
        for p in [key_file, cert_file] {
            if p.exists() {
                return Err(file_err(p, "exists already; not overwriting a CA"));
            }
        }
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "dirbroker");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial()?);
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(365 * years);
        let cert = params.self_signed(&key).map_err(cert_err)?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        crate::secret::write_private_file(key_file, key_pem.as_bytes()).map_err(|e| file_err(key_file, e))?;
        std::fs::write(cert_file, cert.pem()).map_err(|e| file_err(cert_file, e))?;
        Ok(Ca { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), issuer: Issuer::new(params, key) })
    }

    /// Load the CA from its files; the key file must not be readable by others.
    pub fn load(key_file: &Path, cert_file: &Path) -> Result<Ca, CaError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_file).map_err(|e| file_err(key_file, e))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_err(key_file, format!("mode {mode:o}; run: chmod 600 {}", key_file.display())));
        }
        let key_pem = Zeroizing::new(std::fs::read_to_string(key_file).map_err(|e| file_err(key_file, e))?);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| file_err(key_file, e))?;
        let cert_pem = std::fs::read_to_string(cert_file).map_err(|e| file_err(cert_file, e))?;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| file_err(cert_file, e))?;
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| file_err(cert_file, e))?;
        Ok(Ca { cert_der: der.to_vec(), cert_pem, issuer })
    }

    /// Issue a data center's certificate: CN = DID, SAN = the endpoint's host,
    /// usable for TLS server and client authentication (mutual TLS).
    pub fn issue_dc(&self, did: &str, endpoint_host: &str, now: OffsetDateTime, days: i64) -> Result<Issued, CaError> {
        if endpoint_host.is_empty() || endpoint_host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CaError::Input(format!("{endpoint_host:?} is not a host name or address")));
        }
        self.issue(CertKind::Dc, did, &[endpoint_host.to_string()], now, days)
    }

    /// Issue a certificate of `kind` for `name` (CN = name, O = the kind's
    /// organisation), with `sans` as subjectAltNames (DNS names or IP
    /// addresses), valid `days` from five minutes back.
    pub fn issue(
        &self,
        kind: CertKind,
        name: &str,
        sans: &[String],
        now: OffsetDateTime,
        days: i64,
    ) -> Result<Issued, CaError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(CaError::Input("the name must be 1 to 64 printable characters".into()));
        }
        if kind == CertKind::Broker && sans.is_empty() {
            return Err(CaError::Input("a broker certificate needs at least one --dns or --ip name".into()));
        }
        for h in sans {
            if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CaError::Input(format!("{h:?} is not a host name or address")));
            }
        }
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(sans.to_vec()).map_err(cert_err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, kind.organization());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
        params.extended_key_usages = Vec::new();
        if kind.server_auth() {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if kind.client_auth() {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            serial: serial.to_bytes(),
        })
    }

    /// A CRL listing `revoked` (serial, time), numbered `number`.
    pub fn crl(&self, revoked: &[Revoked], number: u64, now: OffsetDateTime) -> Result<Vec<u8>, CaError> {
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, at)| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: *at,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer).map_err(cert_err)?.der().to_vec())
    }
}

/// Parse a serial number given in hex (colons allowed, as openssl prints them).
pub fn parse_serial_hex(text: &str) -> Result<Vec<u8>, CaError> {
    let digits: String = text.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
    let bad = || CaError::Input(format!("{text:?} is not a serial number in hex"));
    if digits.is_empty() || digits.len() > 40 || !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| digits.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(bad))
        .collect()
}

/// A revoked certificate: its serial number and when it was revoked.
pub type Revoked = (Vec<u8>, OffsetDateTime);

/// The CRL number and revoked serials of a DER CRL.
pub fn parse_crl(der: &[u8]) -> Result<(u64, Vec<Revoked>), CaError> {
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| CaError::Cert(format!("CRL: {e}")))?;
    let number = crl
        .crl_number()
        .map(|n| n.to_bytes_be())
        .and_then(|b| (b.len() <= 8).then(|| b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))))
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| {
            let at = OffsetDateTime::from_unix_timestamp(r.revocation_date.timestamp())
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            (r.raw_serial().to_vec(), at)
        })
        .collect();
    Ok((number, revoked))
}

/// The serial number of a DER certificate, as its raw bytes.
pub fn cert_serial(der: &[u8]) -> Result<Vec<u8>, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CaError::Cert(e.to_string()))?;
    Ok(cert.raw_serial().to_vec())
}

/// PEM of a DER CRL.
pub fn crl_pem(der: &[u8]) -> String {
    pem("X509 CRL", der)
}

/// PEM of DER data under `label` ("CERTIFICATE", "X509 CRL").
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_back_from_the_subject_of_each_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let now = crate::clock::now();
        let ca = Ca::init(&tmp.path().join("k"), &tmp.path().join("c"), "test CA", now, 1).unwrap();
        for kind in CertKind::ALL {
            let issued = ca.issue(kind, "holder-1", &["h1.example.org".into()], now, 1).unwrap();
            let h = holder(&issued.cert_der).unwrap().unwrap();
            assert_eq!((h.kind, h.name.as_str(), h.serial.clone()), (kind, "holder-1", issued.serial.clone()));
            assert_eq!(parse_serial_hex(&h.serial_hex()).unwrap(), issued.serial);
        }
        // The CA's own certificate (O = "dirbroker") names no holder.
        assert_eq!(holder(&ca.cert_der).unwrap(), None);
        assert!(ca.issue(CertKind::Broker, "b", &[], now, 1).is_err(), "a broker needs a name to serve");
        assert!(ca.issue(CertKind::Admin, "", &[], now, 1).is_err());
    }

    #[test]
    fn serials_parse_in_openssl_and_plain_hex() {
        assert_eq!(parse_serial_hex("0A:ff:10").unwrap(), vec![0x0a, 0xff, 0x10]);
        assert_eq!(parse_serial_hex("0aff10").unwrap(), vec![0x0a, 0xff, 0x10]);
        for bad in ["", "abc", "zz", "0x", &"00".repeat(21)] {
            assert!(parse_serial_hex(bad).is_err(), "{bad:?}");
        }
    }
}
