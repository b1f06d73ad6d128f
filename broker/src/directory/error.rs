//! Directory errors, split by who is at fault: the caller's input, the
//! directory's state (not found, exists, constraint), or the directory being
//! out of reach (retryable).

use dirbroker_proto::fault::Fault;
use ldap3::LdapError;

/// LDAP result codes that dirbroker tells apart (RFC 4511 appendix A).
pub mod rc {
    pub const STRONG_AUTH_REQUIRED: u32 = 8;
    pub const CONFIDENTIALITY_REQUIRED: u32 = 13;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const INVALID_ATTRIBUTE_SYNTAX: u32 = 21;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_DN_SYNTAX: u32 = 34;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const NOT_ALLOWED_ON_NON_LEAF: u32 = 66;
    pub const ALREADY_EXISTS: u32 = 68;
    pub const ASSERTION_FAILED: u32 = 122;
    pub const SERVER_DOWN: u32 = 81;
    pub const TIMEOUT: u32 = 85;
    pub const CONNECT_ERROR: u32 = 91;

    /// The RFC 4511 name of a result code a write can be refused with, in
    /// words ("object class violation"), so a refusal says which rule it broke.
    pub fn name(rc: u32) -> &'static str {
        match rc {
            NO_SUCH_ATTRIBUTE => "no such attribute",
            UNDEFINED_ATTRIBUTE_TYPE => "undefined attribute type",
            CONSTRAINT_VIOLATION => "constraint violation",
            ATTRIBUTE_OR_VALUE_EXISTS => "attribute or value exists",
            INVALID_ATTRIBUTE_SYNTAX => "invalid attribute syntax",
            OBJECT_CLASS_VIOLATION => "object class violation",
            NOT_ALLOWED_ON_NON_LEAF => "not allowed on non-leaf",
            ASSERTION_FAILED => "assertion failed",
            _ => "refused by the directory",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The entry asked for does not exist (or the caller may not see it).
    #[error("not found: {what}")]
    NotFound { what: String },

    /// An entry with that name exists already.
    #[error("already exists: {dn}")]
    AlreadyExists { dn: String },

    /// The directory refused the change because of its schema or a value
    /// constraint; `rc` is the LDAP result code. `noSuchAttribute` (16) on a
    /// delete-old/add-new modify means somebody else changed the value first.
    #[error("{} on {dn} (LDAP result {rc}): {message}", rc::name(*rc))]
    ConstraintViolation { dn: String, rc: u32, message: String },

    /// The bound identity may not do this.
    #[error("access denied on {dn}: {message}")]
    AccessDenied { dn: String, message: String },

    /// Bind with a wrong DN or password.
    #[error("invalid credentials for {dn}")]
    InvalidCredentials { dn: String },

    /// No directory server answered in time; worth retrying later.
    #[error("directory unavailable: {detail}")]
    Unavailable { detail: String },

    /// Input that cannot be used: says which field and why.
    #[error("bad input in {field}: {reason}")]
    BadInput { field: String, reason: String },

    /// A value read from the directory does not have the form dirbroker expects.
    #[error("malformed directory data in {dn}, attribute {attr}: {reason}")]
    MalformedEntry { dn: String, attr: String, reason: String },

    /// Local configuration is wrong (files, URIs, TLS material).
    #[error("configuration: {0}")]
    Config(String),

    /// Any other LDAP result.
    #[error("LDAP error on {dn} (result {rc}): {message}")]
    Ldap { dn: String, rc: u32, message: String },
}

impl DirError {
    pub fn bad_input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DirError::BadInput { field: field.into(), reason: reason.into() }
    }

    /// Who is at fault: the caller's request (refused, malformed, denied),
    /// the directory being unreachable, our configuration, or data or a
    /// server answer we cannot use.
    pub fn fault(&self) -> Fault {
        match self {
            DirError::NotFound { .. }
            | DirError::AlreadyExists { .. }
            | DirError::InvalidCredentials { .. }
            | DirError::ConstraintViolation { .. } => Fault::User,
            DirError::BadInput { .. } => Fault::Malformed,
            DirError::AccessDenied { .. } => Fault::Denied,
            DirError::Unavailable { .. } => Fault::Unavailable,
            DirError::Config(_) => Fault::Config,
            DirError::MalformedEntry { .. } => Fault::Local,
            DirError::Ldap { .. } => Fault::Bug,
        }
    }

    /// True for errors where trying again later (or on another server) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.fault().is_retryable()
    }

    /// True when a write based on what the caller had read lost a race: a
    /// delete-old/add-new modify found the old value gone (`noSuchAttribute`)
    /// or the new one already there, or the entry no longer matched the
    /// write's assertion (RFC 4528 `assertionFailed`).
    pub fn is_stale_value(&self) -> bool {
        matches!(
            self,
            DirError::ConstraintViolation {
                rc: rc::NO_SUCH_ATTRIBUTE | rc::ATTRIBUTE_OR_VALUE_EXISTS | rc::ASSERTION_FAILED,
                ..
            }
        )
    }

    /// The entry no longer matched a write's Assertion control (RFC 4528).
    pub fn is_assertion_failed(&self) -> bool {
        matches!(self, DirError::ConstraintViolation { rc: rc::ASSERTION_FAILED, .. })
    }

    /// Classify an ldap3 error raised by an operation on `dn`.
    pub fn from_ldap(err: LdapError, dn: &str) -> Self {
        match err {
            LdapError::LdapResult { result } => Self::from_result_code(result.rc, result.text, dn),
            LdapError::Timeout { .. } => DirError::Unavailable { detail: "operation timed out".into() },
            LdapError::Io { source } => DirError::Unavailable { detail: format!("I/O: {source}") },
            LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream => DirError::Unavailable { detail: "connection closed".into() },
            LdapError::Rustls { source } => DirError::Unavailable { detail: format!("TLS: {source}") },
            LdapError::UrlParsing { .. }
            | LdapError::UnknownScheme(_)
            | LdapError::EmptyUnixPath
            | LdapError::PortInUnixPath
            | LdapError::DNSName { .. } => DirError::Config(format!("directory URI: {err}")),
            LdapError::FilterParsing => DirError::bad_input("filter", "not a valid RFC 4515 filter"),
            other => DirError::Ldap { dn: dn.to_string(), rc: 0, message: other.to_string() },
        }
    }

    pub fn from_result_code(rc: u32, text: String, dn: &str) -> Self {
        let dn = dn.to_string();
        match rc {
            rc::NO_SUCH_OBJECT => DirError::NotFound { what: dn },
            rc::ALREADY_EXISTS => DirError::AlreadyExists { dn },
            rc::NO_SUCH_ATTRIBUTE
            | rc::UNDEFINED_ATTRIBUTE_TYPE
            | rc::CONSTRAINT_VIOLATION
            | rc::ATTRIBUTE_OR_VALUE_EXISTS
            | rc::INVALID_ATTRIBUTE_SYNTAX
            | rc::OBJECT_CLASS_VIOLATION
            | rc::NOT_ALLOWED_ON_NON_LEAF
            | rc::ASSERTION_FAILED => DirError::ConstraintViolation { dn, rc, message: text },
            rc::INVALID_DN_SYNTAX => DirError::BadInput { field: "DN".into(), reason: format!("{dn}: {text}") },
            rc::INVALID_CREDENTIALS => DirError::InvalidCredentials { dn },
            rc::INSUFFICIENT_ACCESS | rc::STRONG_AUTH_REQUIRED | rc::CONFIDENTIALITY_REQUIRED => {
                DirError::AccessDenied { dn, message: text }
            }
            rc::BUSY | rc::UNAVAILABLE | rc::SERVER_DOWN | rc::TIMEOUT | rc::CONNECT_ERROR => {
                DirError::Unavailable { detail: format!("{dn}: LDAP result {rc} {text}") }
            }
            _ => DirError::Ldap { dn, rc, message: text },
        }
    }
}

pub type Result<T, E = DirError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_refusals_are_named_and_stale_values_unchanged() {
        let e = DirError::from_result_code(rc::OBJECT_CLASS_VIOLATION, "no objectClass".into(), "uid=a");
        assert_eq!(e.to_string(), "object class violation on uid=a (LDAP result 65): no objectClass");
        assert!(!e.is_stale_value());
        let e = DirError::from_result_code(rc::INVALID_ATTRIBUTE_SYNTAX, "bad".into(), "uid=a");
        assert!(e.to_string().starts_with("invalid attribute syntax on uid=a (LDAP result 21)"), "{e}");
        assert!(!e.is_stale_value());
        for code in [rc::NO_SUCH_ATTRIBUTE, rc::ATTRIBUTE_OR_VALUE_EXISTS, rc::ASSERTION_FAILED] {
            assert!(DirError::from_result_code(code, String::new(), "uid=a").is_stale_value(), "{code}");
        }
        let e = DirError::from_result_code(rc::CONSTRAINT_VIOLATION, "x".into(), "uid=a");
        assert!(e.to_string().starts_with("constraint violation on"), "{e}");
        assert!(!e.is_stale_value());
    }
}
