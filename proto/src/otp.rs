//! HOTP (RFC 4226) and TOTP (RFC 6238): the pure code engine.
//!
//! ```text
//! HOTP(K, C) = Truncate(HMAC(K, C as 8 bytes big-endian)) mod 10^digits   (RFC 4226 §5.3)
//! TOTP(K, t) = HOTP(K, floor((t - T0) / X)),  T0 = 0, X = period           (RFC 6238 §4.2)
//! ```
//!
//! No clock is read here: the Unix time is always a parameter, so tests can
//! stand at T = 59 or T = 20000000000 (past 2038, where a 32-bit counter
//! would wrap). The window check, replay rule and throttling of RFC 4226 §7
//! and RFC 6238 §5.2 belong to the verifier that calls this module.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HMAC hash of an OTP secret (the otpauth `algorithm` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA-1: RFC 4226's HOTP and the otpauth default.
    Sha1,
    /// HMAC-SHA-256 (RFC 6238 §1.2).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238 §1.2).
    Sha512,
}

impl Algorithm {
    /// Parse "sha1", "sha256" or "sha512", in any case ("SHA1" as in otpauth URIs).
    pub fn parse(s: &str) -> Option<Algorithm> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
    }

    /// The lower-case name: "sha1", "sha256" or "sha512".
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// Why a code could not be computed or an entered code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtpError {
    /// Configuration: RFC 4226 §5.3 allows 6 to 8 digits here.
    #[error("an OTP has 6 to 8 digits; {0} digits is not supported")]
    Digits(u32),
    /// Configuration: an empty key would make every code predictable.
    #[error("the OTP secret is empty")]
    Secret,
    /// Configuration: a TOTP time step must be at least one second.
    #[error("the TOTP period must be at least 1 second, not 0")]
    Period,
    /// Our own bug: the HMAC output was too short to truncate.
    #[error("internal error: the HMAC output is too short for dynamic truncation")]
    Truncation,
    /// Input from a person: nothing was entered.
    #[error("no code was entered: type the {digits}-digit code")]
    CodeEmpty {
        /// The number of digits expected.
        digits: u32,
    },
    /// Input from a person: a character other than 0-9.
    #[error(
        "the code may contain only the digits 0-9: character {position} is {kind}; type the {digits}-digit code without spaces or signs"
    )]
    CodeCharacter {
        /// 1-based position of the first offending character (after trimming).
        position: usize,
        /// What the character is, in words (the character itself is not echoed).
        kind: &'static str,
        /// The number of digits expected.
        digits: u32,
    },
    /// Input from a person: all digits, but too few or too many.
    #[error("the code has {found} digits; it must have exactly {expected}")]
    CodeLength {
        /// The number of digits expected.
        expected: u32,
        /// The number of digits entered.
        found: usize,
    },
}

/// The full HMAC(secret, counter as 8 bytes big-endian) of RFC 4226 §5.2.
///
/// Exposed because later code derives keys from it. The caller owns the
/// result and should zeroize it when it is key material.
pub fn hmac_counter(secret: &[u8], counter: u64, alg: Algorithm) -> Vec<u8> {
    let message = counter.to_be_bytes();
    match alg {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(secret, &message),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(secret, &message),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(secret, &message),
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // never fails; an empty output would be caught by `hotp` as Truncation.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// HOTP value for `counter` (RFC 4226 §5.3), zero-padded to `digits`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> Result<String, OtpError> {
    let modulus = modulus(digits)?;
    if secret.is_empty() {
        return Err(OtpError::Secret);
    }
    let hs = Zeroizing::new(hmac_counter(secret, counter, alg));
    let dbc = dynamic_truncation(&hs).ok_or(OtpError::Truncation)?;
    let width = usize::try_from(digits).map_err(|_| OtpError::Digits(digits))?;
    Ok(format!("{:0width$}", dbc % modulus))
}

/// 10^digits, refusing digit counts outside 6..=8.
fn modulus(digits: u32) -> Result<u32, OtpError> {
    if (6..=8).contains(&digits) { Ok(10u32.pow(digits)) } else { Err(OtpError::Digits(digits)) }
}

/// RFC 4226 §5.3: the low 4 bits of the last byte select 4 bytes, read
/// big-endian with the top bit masked off (31 bits).
fn dynamic_truncation(hs: &[u8]) -> Option<u32> {
    let offset = usize::from(hs.last()? & 0x0f);
    let bytes: [u8; 4] = hs.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) & 0x7fff_ffff)
}

/// The TOTP time-step counter T = floor(unix_time / period) (RFC 6238 §4.2, T0 = 0).
///
/// 64-bit throughout, so it stays correct after 2038.
pub fn totp_counter(unix_time: u64, period: u64) -> Result<u64, OtpError> {
    unix_time.checked_div(period).ok_or(OtpError::Period)
}

/// TOTP value at `unix_time` (RFC 6238): HOTP over the time-step counter.
pub fn totp(secret: &[u8], unix_time: u64, period: u64, digits: u32, alg: Algorithm) -> Result<String, OtpError> {
    hotp(secret, totp_counter(unix_time, period)?, digits, alg)
}

/// Check what a person typed: surrounding white space is trimmed, and the
/// rest must be exactly `digits` ASCII digits. Returns the bare digits.
pub fn parse_code(input: &str, digits: u32) -> Result<String, OtpError> {
    let expected = usize::try_from(digits).map_err(|_| OtpError::Digits(digits))?;
    modulus(digits)?;
    let code = input.trim();
    if code.is_empty() {
        return Err(OtpError::CodeEmpty { digits });
    }
    if let Some((index, c)) =
        code.char_indices().enumerate().find_map(|(i, (_, c))| if c.is_ascii_digit() { None } else { Some((i, c)) })
    {
        return Err(OtpError::CodeCharacter { position: index.saturating_add(1), kind: describe(c), digits });
    }
    // Only ASCII digits remain, so bytes and characters agree.
    if code.len() != expected {
        return Err(OtpError::CodeLength { expected: digits, found: code.len() });
    }
    Ok(code.to_owned())
}

/// A short description of a refused character, so that the message helps
/// without echoing what was typed (it may be part of a password).
fn describe(c: char) -> &'static str {
    if c.is_whitespace() {
        "a space"
    } else if c == '+' || c == '-' {
        "a sign"
    } else if c.is_numeric() {
        "a digit that is not 0-9 (another script)"
    } else if c.is_ascii_alphabetic() {
        "a letter"
    } else if !c.is_ascii() {
        "a non-ASCII character"
    } else if c.is_ascii_control() {
        "a control character"
    } else {
        "punctuation"
    }
}

/// Compare two codes in constant time (for equal lengths).
pub fn codes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Why a secret does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

/// How an imported secret is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretFormat {
    /// Base32 (RFC 4648, as in otpauth URIs); spaces and padding allowed.
    Base32,
    /// Hexadecimal, as oathtool takes it.
    Hex,
}

/// Decode a secret; at least 128 bits (RFC 4226 §4), at most 1024.
pub fn parse_secret(text: &str, format: SecretFormat) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    if compact.is_empty() {
        return Err(SecretError("empty".into()));
    }
    let bytes = match format {
        SecretFormat::Hex => {
            if !compact.len().is_multiple_of(2) || !compact.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(SecretError("not an even number of hex digits".into()));
            }
            let b: Option<Vec<u8>> = (0..compact.len())
                .step_by(2)
                .map(|i| compact.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect();
            Zeroizing::new(b.ok_or_else(|| SecretError("bad hex".into()))?)
        }
        SecretFormat::Base32 => {
            let upper: Zeroizing<String> = Zeroizing::new(compact.trim_end_matches('=').to_ascii_uppercase());
            if !upper.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)) {
                return Err(SecretError("not base32 (letters A-Z and digits 2-7)".into()));
            }
            let secret = totp_rs::Secret::try_from_base32(upper.as_str())
                .map_err(|e| SecretError(format!("not base32: {e}")))?;
            Zeroizing::new(secret.as_bytes().to_vec())
        }
    };
    if bytes.len() < 16 {
        return Err(SecretError(format!("{} bits; at least 128 are required", bytes.len() * 8)));
    }
    if bytes.len() > 128 {
        return Err(SecretError("longer than 1024 bits".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc4226_appendix_d_hmac_and_hotp() {
        let table: [(&str, u32, &str); 10] = [
            ("cc93cf18508d94934c64b65d8ba7667fb7cde4b0", 1284755224, "755224"),
            ("75a48a19d4cbe100644e8ac1397eea747a2d33ab", 1094287082, "287082"),
            ("0bacb7fa082fef30782211938bc1c5e70416ff44", 137359152, "359152"),
            ("66c28227d03a2d5529262ff016a1e6ef76557ece", 1726969429, "969429"),
            ("a904c900a64b35909874b33e61c5938a8e15ed1c", 1640338314, "338314"),
            ("a37e783d7b7233c083d4f62926c7a25f238d0316", 868254676, "254676"),
            ("bc9cd28561042c83f219324d3c607256c03272ae", 1918287922, "287922"),
            ("a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", 82162583, "162583"),
            ("1b3c89f65e6c9e883012052823443f048b4332db", 673399871, "399871"),
            ("1637409809a679dc698207310c8c7fc07290d9e5", 645520489, "520489"),
        ];
        for (counter, (hs, dbc, code)) in (0u64..).zip(table) {
            let mac = hmac_counter(SEED20, counter, Algorithm::Sha1);
            assert_eq!(hex(&mac), hs, "HMAC, counter {counter}");
            assert_eq!(dynamic_truncation(&mac), Some(dbc), "DBC, counter {counter}");
            assert_eq!(hotp(SEED20, counter, 6, Algorithm::Sha1).unwrap(), code, "HOTP, counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_totp() {
        let table: [(u64, u64, &str, &str, &str); 6] = [
            (59, 0x1, "94287082", "46119246", "90693936"),
            (1111111109, 0x23523EC, "07081804", "68084774", "25091201"),
            (1111111111, 0x23523ED, "14050471", "67062674", "99943326"),
            (1234567890, 0x273EF07, "89005924", "91819424", "93441116"),
            (2000000000, 0x3F940AA, "69279037", "90698825", "38618901"),
            (20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"),
        ];
        for (t, steps, sha1, sha256, sha512) in table {
            assert_eq!(totp_counter(t, 30).unwrap(), steps, "T at {t}");
            assert_eq!(totp(SEED20, t, 30, 8, Algorithm::Sha1).unwrap(), sha1, "SHA1 at {t}");
            assert_eq!(totp(SEED32, t, 30, 8, Algorithm::Sha256).unwrap(), sha256, "SHA256 at {t}");
            assert_eq!(totp(SEED64, t, 30, 8, Algorithm::Sha512).unwrap(), sha512, "SHA512 at {t}");
        }
    }

    #[test]
    fn time_counter_is_64_bit() {
        // Past 2^32 seconds (year 2106) the counter must not wrap either.
        assert_eq!(totp_counter(u64::MAX, 30).unwrap(), u64::MAX / 30);
        assert_eq!(totp_counter(1 << 40, 1).unwrap(), 1 << 40);
        assert_eq!(totp_counter(29, 30).unwrap(), 0);
        assert_eq!(totp_counter(30, 30).unwrap(), 1);
    }

    #[test]
    fn hotp_and_totp_refuse_bad_parameters() {
        assert_eq!(hotp(SEED20, 0, 5, Algorithm::Sha1), Err(OtpError::Digits(5)));
        assert_eq!(hotp(SEED20, 0, 9, Algorithm::Sha1), Err(OtpError::Digits(9)));
        assert_eq!(hotp(SEED20, 0, 0, Algorithm::Sha1), Err(OtpError::Digits(0)));
        assert_eq!(hotp(b"", 0, 6, Algorithm::Sha1), Err(OtpError::Secret));
        assert_eq!(totp_counter(59, 0), Err(OtpError::Period));
        assert_eq!(totp(SEED20, 59, 0, 6, Algorithm::Sha1), Err(OtpError::Period));
        // 7 digits is allowed, and zero-padded like the rest.
        assert_eq!(hotp(SEED20, 7, 7, Algorithm::Sha1).unwrap(), "2162583");
        assert_eq!(hotp(SEED20, 7, 8, Algorithm::Sha1).unwrap(), "82162583");
    }

    #[test]
    fn hotp_pads_with_leading_zeros() {
        // RFC 6238 at T = 1111111109 gives a code that starts with 0.
        let code = totp(SEED20, 1111111109, 30, 8, Algorithm::Sha1).unwrap();
        assert_eq!(code, "07081804");
        assert_eq!(code.len(), 8);
    }

    #[test]
    fn algorithm_names() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(Algorithm::parse(&alg.as_str().to_uppercase()), Some(alg));
        }
        assert_eq!(Algorithm::parse("Sha256"), Some(Algorithm::Sha256));
        for bad in ["", "md5", "sha-1", "sha 1", " sha1", "sha1 ", "sha384", "SHA1\0"] {
            assert_eq!(Algorithm::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_code_accepts_trimmed_digits() {
        assert_eq!(parse_code("755224", 6).unwrap(), "755224");
        assert_eq!(parse_code("  755224\n", 6).unwrap(), "755224");
        assert_eq!(parse_code("\t07081804 ", 8).unwrap(), "07081804");
        assert_eq!(parse_code("000000", 6).unwrap(), "000000");
    }

    #[test]
    fn parse_code_refuses_hostile_input() {
        assert_eq!(parse_code("", 6), Err(OtpError::CodeEmpty { digits: 6 }));
        assert_eq!(parse_code(" \t\n ", 6), Err(OtpError::CodeEmpty { digits: 6 }));
        let character = |position, kind| OtpError::CodeCharacter { position, kind, digits: 6 };
        assert_eq!(parse_code("755 224", 6), Err(character(4, "a space")));
        assert_eq!(parse_code("+755224", 6), Err(character(1, "a sign")));
        assert_eq!(parse_code("-55224", 6), Err(character(1, "a sign")));
        assert_eq!(parse_code("75522a", 6), Err(character(6, "a letter")));
        assert_eq!(parse_code("0x1234", 6), Err(character(2, "a letter")));
        assert_eq!(parse_code("755.24", 6), Err(character(4, "punctuation")));
        assert_eq!(parse_code("75\u{0}224", 6), Err(character(3, "a control character")));
        // Arabic-Indic and full-width digits are digits, but not 0-9.
        let other = "a digit that is not 0-9 (another script)";
        assert_eq!(parse_code("١٢٣٤٥٦", 6), Err(character(1, other)));
        assert_eq!(parse_code("１２３４５６", 6), Err(character(1, other)));
        assert_eq!(parse_code("12345٦", 6), Err(character(6, other)));
        // A no-break space inside is not trimmed away.
        assert_eq!(parse_code("755\u{a0}224", 6), Err(character(4, "a space")));
        assert_eq!(parse_code("7552é4", 6), Err(character(5, "a non-ASCII character")));
        assert_eq!(parse_code("75522", 6), Err(OtpError::CodeLength { expected: 6, found: 5 }));
        assert_eq!(parse_code("7552241", 6), Err(OtpError::CodeLength { expected: 6, found: 7 }));
        let long = "1".repeat(10_000);
        assert_eq!(parse_code(&long, 8), Err(OtpError::CodeLength { expected: 8, found: 10_000 }));
        assert_eq!(parse_code("755224", 5), Err(OtpError::Digits(5)));
    }

    #[test]
    fn errors_do_not_echo_input() {
        let message = parse_code("hunter2x", 6).unwrap_err().to_string();
        assert!(!message.contains("hunter"), "{message}");
        assert!(message.contains("character 1"), "{message}");
    }

    #[test]
    fn codes_compare() {
        assert!(codes_equal("755224", "755224"));
        assert!(!codes_equal("755224", "755225"));
        assert!(!codes_equal("755224", "7552240"));
        assert!(!codes_equal("755224", ""));
        assert!(codes_equal("", ""));
    }
}
