//! Who holds a certificate of the broker CA: its kind (the subject's O) and
//! name (CN), as every server reads it from a verified client certificate.

/// A certificate that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("certificate: {0}")]
pub struct CertError(pub String);

/// What a certificate from this CA is for; encoded in the subject's O so a
/// verifier knows the holder's role from the certificate alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertKind {
    /// A data center (`dc add`); O = "dirbroker data center".
    Dc,
    /// The broker: its HTTPS service, and its client identity towards AMS/ANS.
    Broker,
    /// The Agent Management System (seed 002).
    Ams,
    /// The Agent Name Server (seed 002).
    Ans,
    /// A Kerberized service that trusts the broker's tickets.
    Service,
    /// An admin console of the migration protocol (client only).
    Admin,
    /// A physical server of a data center.
    Ps,
}

impl CertKind {
    pub const ALL: [CertKind; 7] = [
        CertKind::Dc,
        CertKind::Broker,
        CertKind::Ams,
        CertKind::Ans,
        CertKind::Service,
        CertKind::Admin,
        CertKind::Ps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Dc => "dc",
            CertKind::Broker => "broker",
            CertKind::Ams => "ams",
            CertKind::Ans => "ans",
            CertKind::Service => "service",
            CertKind::Admin => "admin",
            CertKind::Ps => "ps",
        }
    }

    pub fn parse(s: &str) -> Option<CertKind> {
        CertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The subject's O attribute for this kind.
    pub fn organization(self) -> &'static str {
        match self {
            CertKind::Dc => "dirbroker data center",
            CertKind::Broker => "dirbroker broker",
            CertKind::Ams => "dirbroker ams",
            CertKind::Ans => "dirbroker ans",
            CertKind::Service => "dirbroker service",
            CertKind::Admin => "dirbroker admin",
            CertKind::Ps => "dirbroker ps",
        }
    }

    /// The kind whose subject O is `org`.
    pub fn from_organization(org: &str) -> Option<CertKind> {
        CertKind::ALL.into_iter().find(|k| k.organization() == org)
    }

    /// Whether holders listen (TLS server authentication).
    pub fn server_auth(self) -> bool {
        !matches!(self, CertKind::Admin)
    }

    /// Whether holders connect with the certificate (TLS client
    /// authentication): every kind, the broker too (it calls AMS and ANS
    /// over mutual TLS).
    pub fn client_auth(self) -> bool {
        CertKind::ALL.contains(&self)
    }
}

impl std::fmt::Display for CertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who holds a certificate of this CA: its kind and name (subject O and CN)
/// and its serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub kind: CertKind,
    pub name: String,
    pub serial: Vec<u8>,
}

impl Holder {
    /// Serial number in lower-case hex, as `ca revoke --serial` takes it.
    pub fn serial_hex(&self) -> String {
        serial_hex(&self.serial)
    }
}

/// The holder named in a DER certificate's subject; `None` when its O is not
/// one of ours or it has no single CN.
pub fn holder(der: &[u8]) -> Result<Option<Holder>, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError(e.to_string()))?;
    let subject = cert.subject();
    let (Some(org), Some(cn)) = (only_value(subject.iter_organization()), only_value(subject.iter_common_name()))
    else {
        return Ok(None);
    };
    Ok(CertKind::from_organization(&org).map(|kind| Holder { kind, name: cn, serial: cert.raw_serial().to_vec() }))
}

/// The value of an attribute that occurs exactly once.
fn only_value<'a>(mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>) -> Option<String> {
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_string)
}

/// Lower-case hex of a serial number.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}
