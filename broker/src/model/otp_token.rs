//! An OTP token: a `dirbrokerOtpToken` entry under `ou=otp`.

use time::OffsetDateTime;

use super::{AttrsBuilder, DirEntry, Sealed, flag, owned, sealed, small_int};
use crate::directory::values::int_value;
use crate::directory::{Attrs, DirError, Dn, Entry, Layout, Result};

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
        })
    }
}

impl DirEntry for OtpToken {
    const OBJECT_CLASSES: &'static [&'static str] = &["dirbrokerOtpToken"];
    const KIND_CLASS: &'static str = "dirbrokerOtpToken";
    const RDN_ATTR: &'static str = "dirbrokerTokenId";

    fn container(layout: &Layout) -> &Dn {
        &layout.otp
    }
    fn rdn_value(&self) -> &str {
        &self.id
    }

    fn to_attrs(&self) -> Attrs {
        let mut b = AttrsBuilder::classes(Self::OBJECT_CLASSES);
        b.str("dirbrokerTokenId", &self.id);
        b.str("dirbrokerTokenOwner", self.owner.as_str());
        b.str("dirbrokerTokenType", self.kind.as_str());
        b.opt_str("description", self.description.as_deref());
        b.opt_str("dirbrokerOtpAlgorithm", self.algorithm.as_deref());
        b.opt_int("dirbrokerOtpDigits", self.digits.map(i64::from));
        b.opt_int("dirbrokerOtpPeriod", self.period.map(i64::from));
        b.opt_bytes("dirbrokerOtpSecret", self.secret.as_ref().map(|s| s.0.as_slice()));
        b.opt_int("dirbrokerHotpCounter", self.hotp_counter);
        b.opt_int("dirbrokerTotpWatermark", self.totp_watermark);
        b.opt_int("dirbrokerTotpClockOffset", self.clock_offset);
        b.opt_int("dirbrokerOtpLookAhead", self.look_ahead.map(i64::from));
        b.bytes("dirbrokerOtpFailureCount", int_value(self.failure_count));
        b.opt_str("dirbrokerSkeySeed", self.skey_seed.as_deref());
        b.opt_int("dirbrokerSkeySequence", self.skey_sequence);
        b.opt_bytes("dirbrokerSkeyLastOtp", self.skey_last_otp.as_deref());
        b.flag("dirbrokerDisabled", self.disabled);
        b.opt_time("dirbrokerNotBefore", self.not_before);
        b.opt_time("dirbrokerNotAfter", self.not_after);
        b.done()
    }

    fn from_entry(e: &Entry) -> Result<OtpToken> {
        let kind_text = e.required_str("dirbrokerTokenType")?;
        let kind = TokenType::parse(kind_text).ok_or_else(|| DirError::MalformedEntry {
            dn: e.dn.to_string(),
            attr: "dirbrokerTokenType".into(),
            reason: format!("{kind_text:?} is not hotp, totp or skey"),
        })?;
        Ok(OtpToken {
            id: e.required_str("dirbrokerTokenId")?.to_string(),
            owner: e.dn_value("dirbrokerTokenOwner")?.ok_or_else(|| DirError::MalformedEntry {
                dn: e.dn.to_string(),
                attr: "dirbrokerTokenOwner".into(),
                reason: "missing".into(),
            })?,
            kind,
            description: owned(e.str("description")?),
            algorithm: owned(e.str("dirbrokerOtpAlgorithm")?),
            digits: small_int(e, "dirbrokerOtpDigits", "a digit count")?,
            period: small_int(e, "dirbrokerOtpPeriod", "a period")?,
            secret: sealed(e, "dirbrokerOtpSecret")?,
            hotp_counter: e.int("dirbrokerHotpCounter")?,
            totp_watermark: e.int("dirbrokerTotpWatermark")?,
            clock_offset: e.int("dirbrokerTotpClockOffset")?,
            look_ahead: small_int(e, "dirbrokerOtpLookAhead", "a window")?,
            failure_count: e.int("dirbrokerOtpFailureCount")?.unwrap_or(0),
            skey_seed: owned(e.str("dirbrokerSkeySeed")?),
            skey_sequence: e.int("dirbrokerSkeySequence")?,
            skey_last_otp: e.bytes("dirbrokerSkeyLastOtp")?.map(<[u8]>::to_vec),
            disabled: flag(e, "dirbrokerDisabled")?,
            not_before: e.time("dirbrokerNotBefore")?,
            not_after: e.time("dirbrokerNotAfter")?,
        })
    }
}
