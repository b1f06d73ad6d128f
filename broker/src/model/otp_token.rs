//! An OTP token: a `dirbrokerOtpToken` entry under `ou=otp`.

use time::OffsetDateTime;

use super::Sealed;
use crate::directory::{Dn, Result};

/// OTP token type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Hotp,
    Totp,
    Skey,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Hotp => "hotp",
            TokenType::Totp => "totp",
            TokenType::Skey => "skey",
        }
    }

    pub fn parse(s: &str) -> Option<TokenType> {
        match s.to_ascii_lowercase().as_str() {
            "hotp" => Some(TokenType::Hotp),
            "totp" => Some(TokenType::Totp),
            "skey" => Some(TokenType::Skey),
            _ => None,
        }
    }
}

/// An OTP token (mirrors OATH-LDAP / FreeIPA token semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpToken {
    pub id: String,
    pub owner: Dn,
    pub kind: TokenType,
    pub description: Option<String>,
    pub algorithm: Option<String>,
    pub digits: Option<u8>,
    pub period: Option<u32>,
    pub secret: Option<Sealed>,
    /// HOTP: next counter value.
    pub hotp_counter: Option<i64>,
    /// TOTP: last accepted time step.
    pub totp_watermark: Option<i64>,
    pub clock_offset: Option<i64>,
    pub look_ahead: Option<u32>,
    pub failure_count: i64,
    pub skey_seed: Option<String>,
    pub skey_sequence: Option<i64>,
    pub skey_last_otp: Option<Vec<u8>>,
    pub disabled: bool,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// When the last failure was counted: the lockout back-off runs from it.
    pub last_failure: Option<OffsetDateTime>,
}

impl OtpToken {
    pub fn new(id: &str, owner: Dn, kind: TokenType) -> Result<OtpToken> {
        crate::directory::dn::check_value("token id", id)?;
        Ok(OtpToken {
            id: id.to_string(),
            owner,
            kind,
            description: None,
            algorithm: None,
            digits: None,
            period: None,
            secret: None,
            hotp_counter: None,
            totp_watermark: None,
            clock_offset: None,
            look_ahead: None,
            failure_count: 0,
            skey_seed: None,
            skey_sequence: None,
            skey_last_otp: None,
            disabled: false,
            not_before: None,
            not_after: None,
            last_failure: None,
        })
    }
}
