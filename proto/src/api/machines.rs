//! The bodies of the routes the machine actors of VM migration use
//! (seeds 000/001): the CA and CRL, data centers' public entries, a data
//! center's own credentials, and the check of a user's OTP.

use serde::{Deserialize, Serialize};

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// "ok" or "unavailable".
    pub status: String,
    /// "ok", or why the directory does not answer.
    pub ldap: String,
}

/// `GET /v1/pki/ca`: the broker CA and its current CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiCa {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The current CRL (PEM), once one is published.
    pub crl_pem: Option<String>,
}

/// `POST /v1/otp/verify`: check and consume `uid`'s OTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpVerifyRequest {
    /// The user.
    pub uid: String,
    /// The code they typed.
    pub code: String,
    /// For a migration: the id the data center drew for it. When given and the code is
    /// accepted, the reply carries the broker's signed [`OtpVerifyReply::authorisation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_id: Option<[u8; 16]>,
}

/// The answer to a decided verification (200 either way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpVerifyReply {
    /// The code was valid and is now spent.
    pub accepted: bool,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When accepted for a `migration_id`: the broker's signature that this user authorised
    /// that migration from the calling data center, for the destination to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorisation: Option<crate::migration::authorisation::UserAuthorisation>,
}

/// `GET /v1/dc/{did}`: a data center's public entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcEntry {
    /// Its DID.
    pub did: String,
    /// Where its daemon listens (host:port).
    pub endpoint: Option<String>,
    /// Its current certificate (PEM).
    pub certificate_pem: Option<String>,
    /// Disabled data centers take part in no migration.
    #[serde(default)]
    pub disabled: bool,
}

/// `GET /v1/dc/credentials`: the calling data center's own secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DcCredentials {
    /// The caller, as the broker identified it by its certificate.
    pub did: String,
    /// Pre-shared keys it is a party of.
    pub psks: Vec<PskCredential>,
    /// Its physical servers' TOTP secrets.
    pub servers: Vec<ServerCredential>,
}

/// A pre-shared key: K1 with an admin, or a SPEKE password with another data center.
#[derive(Clone, Serialize, Deserialize)]
pub struct PskCredential {
    /// The key's id.
    pub id: String,
    /// Who shares it.
    pub parties: Vec<Party>,
    /// The key (base64).
    pub key_base64: String,
}

impl std::fmt::Debug for PskCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskCredential").field("id", &self.id).field("parties", &self.parties).finish_non_exhaustive()
    }
}

/// A party of a pre-shared key: `{"kind": "admin"|"dc", "name": …}`, or
/// `{"kind": "other", "dn": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// "admin", "dc" or "other".
    pub kind: String,
    /// The admin's uid or the data center's DID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The DN of any other party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
}

impl Party {
    /// An admin console's user.
    pub fn admin(uid: &str) -> Party {
        Party { kind: "admin".into(), name: Some(uid.into()), dn: None }
    }
    /// A data center.
    pub fn dc(did: &str) -> Party {
        Party { kind: "dc".into(), name: Some(did.into()), dn: None }
    }
    /// Anything else, by DN.
    pub fn other(dn: &str) -> Party {
        Party { kind: "other".into(), name: None, dn: Some(dn.into()) }
    }
    /// The admin's uid, if this is an admin.
    pub fn as_admin(&self) -> Option<&str> {
        self.name.as_deref().filter(|_| self.kind == "admin")
    }
    /// The DID, if this is a data center.
    pub fn as_dc(&self) -> Option<&str> {
        self.name.as_deref().filter(|_| self.kind == "dc")
    }
}

/// One of the caller's physical servers.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServerCredential {
    /// The server's id.
    pub id: String,
    /// Its control endpoint (host:port).
    pub endpoint: Option<String>,
    /// HMAC algorithm: sha1, sha256 or sha512.
    pub algorithm: String,
    /// Code digits.
    pub digits: u32,
    /// TOTP period in seconds.
    pub period: u64,
    /// The TOTP secret (base32).
    pub secret_base32: String,
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers keep the shape the agents and earlier brokers read.
    #[test]
    fn wire_shapes() {
        let refused =
            serde_json::to_value(OtpVerifyReply { accepted: false, reason: Some("spent".into()), authorisation: None })
                .ok();
        assert_eq!(refused, Some(serde_json::json!({ "accepted": false, "reason": "spent" })));
        let accepted = serde_json::to_value(OtpVerifyReply { accepted: true, reason: None, authorisation: None }).ok();
        assert_eq!(accepted, Some(serde_json::json!({ "accepted": true })));
        let parties = serde_json::to_value([Party::admin("alice"), Party::dc("DC-1"), Party::other("cn=x")]).ok();
        assert_eq!(
            parties,
            Some(serde_json::json!([
                { "kind": "admin", "name": "alice" },
                { "kind": "dc", "name": "DC-1" },
                { "kind": "other", "dn": "cn=x" }
            ]))
        );
        let unknown: Result<OtpVerifyRequest, _> = serde_json::from_str(r#"{"uid":"a","code":"1","x":1}"#);
        assert!(unknown.is_err(), "unknown fields are refused");
    }
}
