//! Enrolment: fresh secrets, otpauth:// URIs and terminal QR codes, secrets
//! given by an admin (base32 or hex), and S/KEY initialisation.

use std::fmt;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use super::codes::Algorithm;
use super::skey::{self, SkeyAlgorithm};
use crate::model::TokenType;

/// Secret length for new HOTP/TOTP tokens: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_LEN: usize = 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrollError {
    #[error("secret: {0}")]
    Secret(String),
    #[error("{0}")]
    Param(String),
    #[error("no randomness available")]
    Random,
}

impl From<dirbroker_proto::otp::SecretError> for EnrollError {
    fn from(e: dirbroker_proto::otp::SecretError) -> Self {
        EnrollError::Secret(e.0)
    }
}

/// A fresh random secret.
pub fn generate_secret() -> Result<Zeroizing<Vec<u8>>, EnrollError> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_LEN]);
    crate::clock::fill_random(&mut s).map_err(|_| EnrollError::Random)?;
    Ok(s)
}

pub use dirbroker_proto::otp::{SecretError, SecretFormat};

/// Decode a secret; at least 128 bits (RFC 4226 §4), at most 1024.
pub fn parse_secret(text: &str, format: SecretFormat) -> Result<Zeroizing<Vec<u8>>, EnrollError> {
    Ok(dirbroker_proto::otp::parse_secret(text, format)?)
}

/// What an otpauth:// URI describes.
pub struct UriParams<'a> {
    pub kind: TokenType,
    pub issuer: &'a str,
    pub account: &'a str,
    pub secret: &'a [u8],
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub counter: u64,
}

impl fmt::Debug for UriParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UriParams").field("kind", &self.kind).field("account", &self.account).finish_non_exhaustive()
    }
}

fn rfc_algorithm(a: Algorithm) -> totp_rs::Algorithm {
    match a {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    }
}

/// The Key Uri Format authenticator apps read (`otpauth://totp/…` or `hotp`).
pub fn otpauth_uri(p: &UriParams<'_>) -> Result<String, EnrollError> {
    if p.issuer.contains(':') || p.account.contains(':') {
        return Err(EnrollError::Param("issuer and account name may not contain ':'".into()));
    }
    match p.kind {
        TokenType::Totp => {
            let digits = u8::try_from(p.digits).map_err(|_| EnrollError::Param("digits".into()))?;
            let totp = totp_rs::Builder::new()
                .with_algorithm(rfc_algorithm(p.algorithm))
                .with_digits(digits)
                .with_step_duration(u64::from(p.period))
                .with_secret(totp_rs::Secret::new(p.secret.to_vec().into_boxed_slice()))
                .with_issuer(Some(p.issuer))
                .with_account_name(p.account)
                .build()
                .map_err(|e| EnrollError::Param(e.to_string()))?;
            totp.to_url().map_err(|e| EnrollError::Param(e.to_string()))
        }
        TokenType::Hotp => {
            // totp-rs writes TOTP URIs only; HOTP differs by host and the counter.
            let b32 = totp_rs::Secret::new(p.secret.to_vec().into_boxed_slice()).to_base32();
            let issuer = utf8_percent_encode(p.issuer, NON_ALPHANUMERIC).to_string();
            let account = utf8_percent_encode(p.account, NON_ALPHANUMERIC).to_string();
            Ok(format!(
                "otpauth://hotp/{issuer}:{account}?secret={b32}&issuer={issuer}&algorithm={}&digits={}&counter={}",
                p.algorithm.as_str().to_ascii_uppercase(),
                p.digits,
                p.counter
            ))
        }
        TokenType::Skey => Err(EnrollError::Param("S/KEY has no otpauth URI".into())),
    }
}

/// What an otpauth:// URI carries, parsed and checked.
pub struct ParsedUri {
    pub kind: TokenType,
    pub secret: Zeroizing<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub counter: u64,
    pub label: String,
}

impl fmt::Debug for ParsedUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedUri").field("kind", &self.kind).field("label", &self.label).finish_non_exhaustive()
    }
}

/// Parse an otpauth:// URI (Key Uri Format) as authenticator exports give
/// them. Every problem is named; the secret is never echoed.
pub fn parse_otpauth_uri(text: &str) -> Result<ParsedUri, EnrollError> {
    let bad = |m: &str| EnrollError::Param(format!("otpauth URI: {m}"));
    let uri = url::Url::parse(text.trim()).map_err(|e| bad(&format!("not a URI ({e})")))?;
    if uri.scheme() != "otpauth" {
        return Err(bad(&format!("scheme is {:?}, expected otpauth", uri.scheme())));
    }
    let kind = match uri.host_str() {
        Some("totp") => TokenType::Totp,
        Some("hotp") => TokenType::Hotp,
        Some(other) => return Err(bad(&format!("type {other:?} is neither totp nor hotp"))),
        None => return Err(bad("no type (otpauth://totp/… or otpauth://hotp/…)")),
    };
    let label =
        percent_encoding::percent_decode_str(uri.path().trim_start_matches('/')).decode_utf8_lossy().into_owned();
    let (mut secret, mut algorithm, mut digits, mut period, mut counter) = (None, Algorithm::Sha1, 6u32, 30u32, None);
    for (k, v) in uri.query_pairs() {
        match k.as_ref() {
            "secret" => secret = Some(parse_secret(&v, SecretFormat::Base32)?),
            "algorithm" => algorithm = Algorithm::parse(&v).ok_or_else(|| bad(&format!("unknown algorithm {v:?}")))?,
            "digits" => {
                digits =
                    v.parse().ok().filter(|d| (6..=8).contains(d)).ok_or_else(|| bad("digits must be 6, 7 or 8"))?
            }
            "period" => {
                period =
                    v.parse().ok().filter(|p| (1..=3600).contains(p)).ok_or_else(|| bad("period must be 1 to 3600"))?
            }
            "counter" => counter = Some(v.parse().map_err(|_| bad("counter is not a number"))?),
            "issuer" | "image" => {}
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let secret = secret.ok_or_else(|| bad("no secret parameter"))?;
    if kind == TokenType::Hotp && counter.is_none() {
        return Err(bad("a hotp URI needs a counter parameter"));
    }
    Ok(ParsedUri { kind, secret, algorithm, digits, period, counter: counter.unwrap_or(0), label })
}

/// A QR code of `text` drawn with Unicode half blocks, for a terminal.
pub fn qr_text(text: &str) -> Result<String, EnrollError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| EnrollError::Param(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// A random S/KEY seed: two letters and four digits, lower case (RFC 2289 §6).
pub fn generate_skey_seed() -> Result<String, EnrollError> {
    let mut r = [0u8; 6];
    crate::clock::fill_random(&mut r).map_err(|_| EnrollError::Random)?;
    let letters: String = r.iter().take(2).map(|b| char::from(b'a' + b % 26)).collect();
    let digits: String = r.iter().skip(2).map(|b| char::from(b'0' + b % 10)).collect();
    Ok(format!("{letters}{digits}"))
}

/// The S/KEY OTP for sequence `count` from the user's passphrase; the server
/// stores it and never the passphrase.
pub fn skey_initial(alg: SkeyAlgorithm, seed: &str, passphrase: &[u8], count: u32) -> Result<[u8; 8], EnrollError> {
    skey::skey(alg, seed, passphrase, count).map_err(|e| EnrollError::Param(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_in_both_forms_and_short_ones_are_refused() {
        let rfc = b"12345678901234567890";
        assert_eq!(parse_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", SecretFormat::Base32).unwrap().as_slice(), rfc);
        assert_eq!(
            parse_secret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", SecretFormat::Base32).unwrap().as_slice(),
            rfc
        );
        assert_eq!(
            parse_secret("3132333435363738393031323334353637383930", SecretFormat::Hex).unwrap().as_slice(),
            rfc
        );
        for (bad, f) in [
            ("", SecretFormat::Hex),
            ("abc", SecretFormat::Hex),
            ("zz", SecretFormat::Hex),
            ("GEZDGNBV", SecretFormat::Base32),
            ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", SecretFormat::Base32),
            ("ÄÖÜ", SecretFormat::Base32),
        ] {
            assert!(parse_secret(bad, f).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uris_carry_the_parameters() {
        let secret = b"12345678901234567890";
        let mut p = UriParams {
            kind: TokenType::Totp,
            issuer: "dirbroker",
            account: "alice",
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
        };
        let u = otpauth_uri(&p).unwrap();
        assert!(u.starts_with("otpauth://totp/dirbroker:alice?"), "{u}");
        assert!(u.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{u}");
        p.kind = TokenType::Hotp;
        p.counter = 7;
        let u = otpauth_uri(&p).unwrap();
        assert!(u.starts_with("otpauth://hotp/dirbroker:alice?") && u.contains("counter=7"), "{u}");
        let back = parse_otpauth_uri(&u).unwrap();
        assert_eq!(
            (back.kind, back.counter, back.digits, back.secret.as_slice()),
            (TokenType::Hotp, 7, 6, &secret[..])
        );
        p.kind = TokenType::Totp;
        p.algorithm = Algorithm::Sha256;
        p.digits = 8;
        let back = parse_otpauth_uri(&otpauth_uri(&p).unwrap()).unwrap();
        assert_eq!((back.kind, back.algorithm, back.digits, back.period), (TokenType::Totp, Algorithm::Sha256, 8, 30));
        for (bad, want) in [
            ("http://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "scheme"),
            ("otpauth://motp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "neither"),
            ("otpauth://totp/x", "no secret"),
            ("otpauth://totp/x?secret=!!!", "base32"),
            ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=9", "digits"),
            ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=MD5", "algorithm"),
            ("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "counter"),
            ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period=0", "period"),
            ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&foo=1", "unknown parameter"),
            ("not a uri", "not a URI"),
        ] {
            let e = parse_otpauth_uri(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("GEZDGNBV"), "the secret is echoed: {e}");
        }
        p.account = "a:b";
        assert!(otpauth_uri(&p).is_err());
        assert!(qr_text("otpauth://totp/x").unwrap().lines().count() > 10);
    }
}
