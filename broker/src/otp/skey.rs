//! S/KEY one-time passwords, RFC 2289 ("A One-Time Password System").
//!
//! ```text
//! S(0) = fold64(H(lowercase(seed) || pass-phrase))        (§6.0, initial step)
//! S(i) = fold64(H(S(i-1)))                                (§6.0, computation step)
//! OTP(n) = S(n)
//!
//! server                                   user
//!   stores OTP(n)
//!   "otp-md5 <n-1> <seed>"  ------------>
//!                           <------------  R = OTP(n-1), as hex or six words
//!   accepts if fold64(H(R)) == OTP(n), then stores R
//! ```
//!
//! `fold64` is H-specific (Appendix A): MD5 XORs the two 64-bit halves;
//! SHA1 XORs the five 32-bit words as (w0^w2^w4, w1^w3) and, because the
//! reference code copies those words out of a little-endian host's memory,
//! writes each of the two words little-endian.
//!
//! The six-word form (Appendix B, dictionary in Appendix D) encodes the 64
//! bits plus a 2-bit checksum (the sum of the 32 bit-pairs) as six 11-bit
//! indices. MD4 is not supported.

use std::collections::HashMap;
use std::sync::OnceLock;

use md5::Md5;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// The hash of an S/KEY sequence (`otp-md5`, `otp-sha1` in challenges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkeyAlgorithm {
    Md5,
    Sha1,
}

impl SkeyAlgorithm {
    /// Parse "md5" or "sha1", in any case.
    pub fn parse(s: &str) -> Option<SkeyAlgorithm> {
        [SkeyAlgorithm::Md5, SkeyAlgorithm::Sha1].into_iter().find(|alg| alg.as_str().eq_ignore_ascii_case(s))
    }

    /// The lower-case name as used in challenges: "md5" or "sha1".
    pub fn as_str(self) -> &'static str {
        match self {
            SkeyAlgorithm::Md5 => "md5",
            SkeyAlgorithm::Sha1 => "sha1",
        }
    }
}

/// The shortest pass-phrase accepted (RFC 2289 §6.0 asks for at least 10 characters).
pub const MIN_PASSPHRASE_CHARS: usize = 10;
/// The longest seed (RFC 2289 §6.0: 1 to 16 characters).
pub const MAX_SEED_CHARS: usize = 16;

/// Why an S/KEY value could not be computed or a response was refused.
///
/// No variant echoes what was typed: a person who types the secret
/// pass-phrase at the response prompt must not find it in a log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SkeyError {
    #[error("the S/KEY seed must be 1 to 16 characters long, not {found}")]
    SeedLength { found: usize },
    #[error("the S/KEY seed may contain only the letters A-Z, a-z and digits 0-9: character {position} is not one")]
    SeedCharacter { position: usize },
    #[error("the S/KEY pass-phrase is too short: use at least 10 characters")]
    PassphraseTooShort,
    #[error("no response was entered: type six words or 16 hex digits")]
    Empty,
    #[error("the response contains a character that is not ASCII at position {position}")]
    NonAscii { position: usize },
    #[error("a word response has six words, this one has {found}")]
    WordCount { found: usize },
    #[error("word {position} of the response is not in the S/KEY dictionary: check its spelling")]
    UnknownWord { position: usize },
    #[error("the six words fail their checksum: one of them is probably mistyped")]
    Checksum,
    #[error("a hex response has 16 hex digits, this one has {found}")]
    HexLength { found: usize },
    #[error("the hex response contains a character that is not a hex digit at position {position}")]
    HexCharacter { position: usize },
}

/// OTP(count) for this seed and pass-phrase: the initial step, then `count`
/// applications of the folded hash (RFC 2289 §6.0).
///
/// The RFC 2289 challenge for the next password of an S/KEY token whose
/// next expected sequence number is `sequence`: `otp-md5 99 ke1234`.
/// `None` when the sequence is used up.
pub fn challenge(alg: SkeyAlgorithm, sequence: i64, seed: &str) -> Option<String> {
    (sequence > 0).then(|| format!("otp-{} {} {seed}", alg.as_str(), sequence - 1))
}

/// The cost grows with `count` (one hash per step); callers choose sequence
/// numbers, never the person at the prompt.
pub fn skey(alg: SkeyAlgorithm, seed: &str, passphrase: &[u8], count: u32) -> Result<[u8; 8], SkeyError> {
    check_seed(seed)?;
    check_passphrase(passphrase)?;
    // The seed is case-insensitive and hashed in lower case; the RFC vectors
    // (seed "TeSt") only come out this way.
    let seed = seed.to_ascii_lowercase();
    let mut otp = Zeroizing::new(match alg {
        SkeyAlgorithm::Md5 => {
            fold_md5(Md5::new().chain_update(seed.as_bytes()).chain_update(passphrase).finalize().into())
        }
        SkeyAlgorithm::Sha1 => {
            fold_sha1(Sha1::new().chain_update(seed.as_bytes()).chain_update(passphrase).finalize().into())
        }
    });
    for _ in 0..count {
        *otp = step(alg, *otp);
    }
    Ok(*otp)
}

/// One application of the folded hash: `step(OTP(n-1)) == OTP(n)`.
pub fn step(alg: SkeyAlgorithm, otp: [u8; 8]) -> [u8; 8] {
    match alg {
        SkeyAlgorithm::Md5 => fold_md5(Md5::digest(otp).into()),
        SkeyAlgorithm::Sha1 => fold_sha1(Sha1::digest(otp).into()),
    }
}

fn check_seed(seed: &str) -> Result<(), SkeyError> {
    if let Some(index) = seed.chars().position(|c| !c.is_ascii_alphanumeric()) {
        return Err(SkeyError::SeedCharacter { position: index.saturating_add(1) });
    }
    // Only ASCII remains, so bytes and characters agree.
    if seed.is_empty() || seed.len() > MAX_SEED_CHARS {
        return Err(SkeyError::SeedLength { found: seed.len() });
    }
    Ok(())
}

fn check_passphrase(passphrase: &[u8]) -> Result<(), SkeyError> {
    // Count characters when the pass-phrase is text, bytes otherwise.
    let length = match std::str::from_utf8(passphrase) {
        Ok(text) => text.chars().count(),
        Err(_) => passphrase.len(),
    };
    if length < MIN_PASSPHRASE_CHARS {
        return Err(SkeyError::PassphraseTooShort);
    }
    Ok(())
}

/// MD5 fold (Appendix A): XOR the first 8 bytes with the last 8.
fn fold_md5(digest: [u8; 16]) -> [u8; 8] {
    let mut out = [0u8; 8];
    let (low, high) = digest.split_at(8);
    for (o, (a, b)) in out.iter_mut().zip(low.iter().zip(high)) {
        *o = a ^ b;
    }
    out
}

/// SHA1 fold (Appendix A): the reference code XORs the 32-bit words
/// (w0 ^= w2, w1 ^= w3, w0 ^= w4) and then copies w0, w1 out of host
/// memory; on the little-endian hosts that produced the vectors each word
/// comes out byte-reversed.
fn fold_sha1(digest: [u8; 20]) -> [u8; 8] {
    let mut words = [0u32; 5];
    for (word, chunk) in words.iter_mut().zip(digest.chunks_exact(4)) {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(chunk);
        *word = u32::from_be_bytes(bytes);
    }
    let [w0, w1, w2, w3, w4] = words;
    let [a0, a1, a2, a3] = (w0 ^ w2 ^ w4).to_le_bytes();
    let [b0, b1, b2, b3] = (w1 ^ w3).to_le_bytes();
    [a0, a1, a2, a3, b0, b1, b2, b3]
}

/// The 64-bit value as 16 lower-case hex digits.
pub fn to_hex(otp: [u8; 8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(16);
    for byte in otp {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The six-word form: upper-case dictionary words separated by single spaces.
pub fn to_words(otp: [u8; 8]) -> String {
    let words = &dictionary().words;
    let indices = word_indices(u64::from_be_bytes(otp));
    let mut out = String::with_capacity(6 * 5);
    for (i, index) in indices.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // `index` is 11 bits and the dictionary has 2048 words.
        out.push_str(words.get(usize::from(index)).copied().unwrap_or_default());
    }
    out
}

/// Split 64 bits plus the 2-bit checksum into six 11-bit indices.
fn word_indices(value: u64) -> [u16; 6] {
    let eleven = |shift: u32| ((value >> shift) & 0x7ff) as u16;
    let last = (((value & 0x1ff) << 2) | checksum(value)) as u16;
    [eleven(53), eleven(42), eleven(31), eleven(20), eleven(9), last]
}

/// RFC 2289 Appendix B: the sum of the 32 two-bit pairs, modulo 4.
fn checksum(value: u64) -> u64 {
    (0..32).map(|pair| (value >> (2 * pair)) & 0b11).sum::<u64>() & 0b11
}

/// Parse a response typed by a person: 16 hex digits (any case, white
/// space between groups allowed) or six dictionary words (any case, any
/// white space), whose 2-bit checksum must hold.
///
/// Six tokens that are all dictionary words are read as words, even when
/// they also happen to spell 16 hex digits ("ACE BAD BED BEE CAB A"); if
/// such words fail the checksum, the hex reading is used.
pub fn parse_response(input: &str) -> Result<[u8; 8], SkeyError> {
    if let Some(index) = input.chars().position(|c| !c.is_ascii()) {
        return Err(SkeyError::NonAscii { position: index.saturating_add(1) });
    }
    let tokens: Vec<&str> = input.split_ascii_whitespace().collect();
    if tokens.is_empty() {
        return Err(SkeyError::Empty);
    }
    let has_digit = input.bytes().any(|b| b.is_ascii_digit());
    let indices: Vec<Option<u16>> = tokens.iter().map(|t| lookup(t)).collect();
    let all_words = !has_digit && indices.iter().all(Option::is_some);
    let hex = parse_hex(input);

    if all_words {
        if tokens.len() != 6 {
            return Err(SkeyError::WordCount { found: tokens.len() });
        }
        let decoded = decode_words(&indices);
        return match (decoded, hex) {
            (Ok(otp), _) => Ok(otp),
            (Err(SkeyError::Checksum), Ok(otp)) => Ok(otp),
            (Err(e), _) => Err(e),
        };
    }
    if has_digit || input.bytes().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace()) {
        return hex;
    }
    if tokens.len() != 6 {
        return Err(SkeyError::WordCount { found: tokens.len() });
    }
    decode_words(&indices)
}

/// The hex reading: white space anywhere is ignored.
fn parse_hex(input: &str) -> Result<[u8; 8], SkeyError> {
    let mut value: u64 = 0;
    let mut count: usize = 0;
    for (index, c) in input.chars().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let nibble = c.to_digit(16).ok_or(SkeyError::HexCharacter { position: index.saturating_add(1) })?;
        value = (value << 4) | u64::from(nibble);
        count = count.saturating_add(1);
    }
    if count != 16 {
        return Err(SkeyError::HexLength { found: count });
    }
    Ok(value.to_be_bytes())
}

/// Decode six looked-up words; the first unknown one is reported.
fn decode_words(indices: &[Option<u16>]) -> Result<[u8; 8], SkeyError> {
    let mut value: u64 = 0;
    let mut last: u64 = 0;
    for (i, index) in indices.iter().enumerate() {
        let index = u64::from(index.ok_or(SkeyError::UnknownWord { position: i.saturating_add(1) })?);
        if i < 5 {
            value = (value << 11) | index;
        } else {
            last = index;
        }
    }
    value = (value << 9) | (last >> 2);
    if last & 0b11 != checksum(value) {
        return Err(SkeyError::Checksum);
    }
    Ok(value.to_be_bytes())
}

/// The dictionary index of a word, in any case.
fn lookup(word: &str) -> Option<u16> {
    // Dictionary words have 1 to 4 letters; don't upper-case long input.
    if word.len() > 4 {
        return None;
    }
    dictionary().index.get(word.to_ascii_uppercase().as_str()).copied()
}

/// RFC 2289 Appendix D, one word per line, in order.
const WORD_LIST: &str = include_str!("skey_words.txt");

const fn count_lines(text: &str) -> usize {
    let mut rest = text.as_bytes();
    let mut lines = 0;
    while let [first, tail @ ..] = rest {
        if *first == b'\n' {
            lines += 1;
        }
        rest = tail;
    }
    lines
}

// A damaged word list fails the build rather than the first login.
const _: () = assert!(count_lines(WORD_LIST) == 2048, "skey_words.txt must hold 2048 lines");

struct Dictionary {
    words: [&'static str; 2048],
    index: HashMap<&'static str, u16>,
}

fn dictionary() -> &'static Dictionary {
    static DICTIONARY: OnceLock<Dictionary> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let mut words = [""; 2048];
        for (slot, word) in words.iter_mut().zip(WORD_LIST.lines()) {
            *slot = word.trim();
        }
        let index = (0u16..).zip(words).map(|(i, w)| (w, i)).collect();
        Dictionary { words, index }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// RFC 2289 Appendix C (MD5 and SHA1; MD4 is not supported).
    const VECTORS: [(SkeyAlgorithm, &str, &str, u32, &str, &str); 18] = [
        (SkeyAlgorithm::Md5, "This is a test.", "TeSt", 0, "9E87 6134 D904 99DD", "INCH SEA ANNE LONG AHEM TOUR"),
        (SkeyAlgorithm::Md5, "This is a test.", "TeSt", 1, "7965 E054 36F5 029F", "EASE OIL FUM CURE AWRY AVIS"),
        (SkeyAlgorithm::Md5, "This is a test.", "TeSt", 99, "50FE 1962 C496 5880", "BAIL TUFT BITS GANG CHEF THY"),
        (SkeyAlgorithm::Md5, "AbCdEfGhIjK", "alpha1", 0, "8706 6DD9 644B F206", "FULL PEW DOWN ONCE MORT ARC"),
        (SkeyAlgorithm::Md5, "AbCdEfGhIjK", "alpha1", 1, "7CD3 4C10 40AD D14B", "FACT HOOF AT FIST SITE KENT"),
        (SkeyAlgorithm::Md5, "AbCdEfGhIjK", "alpha1", 99, "5AA3 7A81 F212 146C", "BODE HOP JAKE STOW JUT RAP"),
        (SkeyAlgorithm::Md5, "OTP's are good", "correct", 0, "F205 7539 43DE 4CF9", "ULAN NEW ARMY FUSE SUIT EYED"),
        (SkeyAlgorithm::Md5, "OTP's are good", "correct", 1, "DDCD AC95 6F23 4937", "SKIM CULT LOB SLAM POE HOWL"),
        (SkeyAlgorithm::Md5, "OTP's are good", "correct", 99, "B203 E28F A525 BE47", "LONG IVY JULY AJAR BOND LEE"),
        (SkeyAlgorithm::Sha1, "This is a test.", "TeSt", 0, "BB9E 6AE1 979D 8FF4", "MILT VARY MAST OK SEES WENT"),
        (SkeyAlgorithm::Sha1, "This is a test.", "TeSt", 1, "63D9 3663 9734 385B", "CART OTTO HIVE ODE VAT NUT"),
        (SkeyAlgorithm::Sha1, "This is a test.", "TeSt", 99, "87FE C776 8B73 CCF9", "GAFF WAIT SKID GIG SKY EYED"),
        (SkeyAlgorithm::Sha1, "AbCdEfGhIjK", "alpha1", 0, "AD85 F658 EBE3 83C9", "LEST OR HEEL SCOT ROB SUIT"),
        (SkeyAlgorithm::Sha1, "AbCdEfGhIjK", "alpha1", 1, "D07C E229 B5CF 119B", "RITE TAKE GELD COST TUNE RECK"),
        (SkeyAlgorithm::Sha1, "AbCdEfGhIjK", "alpha1", 99, "27BC 7103 5AAF 3DC6", "MAY STAR TIN LYON VEDA STAN"),
        (SkeyAlgorithm::Sha1, "OTP's are good", "correct", 0, "D51F 3E99 BF8E 6F0B", "RUST WELT KICK FELL TAIL FRAU"),
        (SkeyAlgorithm::Sha1, "OTP's are good", "correct", 1, "82AE B52D 9437 74E4", "FLIT DOSE ALSO MEW DRUM DEFY"),
        (SkeyAlgorithm::Sha1, "OTP's are good", "correct", 99, "4F29 6A74 FE15 67EC", "AURA ALOE HURL WING BERG WAIT"),
    ];

    fn hex_of(grouped: &str) -> String {
        grouped.replace(' ', "").to_lowercase()
    }

    #[test]
    fn dictionary_is_rfc2289_appendix_d() {
        let words = &dictionary().words;
        assert_eq!(words.len(), 2048);
        assert_eq!(dictionary().index.len(), 2048, "words are unique");
        let set: HashSet<&str> = words.iter().copied().collect();
        assert_eq!(set.len(), 2048);
        // Appendix D: 571 words of 1-3 letters, then 1477 of 4, each run sorted.
        let (short, long) = words.split_at(571);
        assert!(short.iter().all(|w| (1..=3).contains(&w.len())));
        assert!(long.iter().all(|w| w.len() == 4));
        assert!(short.windows(2).all(|p| p[0] < p[1]));
        assert!(long.windows(2).all(|p| p[0] < p[1]));
        assert!(words.iter().all(|w| w.bytes().all(|b| b.is_ascii_uppercase())));
        assert_eq!((words[0], words[570], words[571], words[2047]), ("A", "YOU", "ABED", "YOKE"));
    }

    #[test]
    fn rfc2289_appendix_c_vectors() {
        for (alg, pass, seed, count, hex, words) in VECTORS {
            let otp = skey(alg, seed, pass.as_bytes(), count).unwrap();
            let what = format!("{} {seed} {count}", alg.as_str());
            assert_eq!(to_hex(otp), hex_of(hex), "hex of {what}");
            assert_eq!(to_words(otp), words, "words of {what}");
            assert_eq!(parse_response(words).unwrap(), otp, "parsing words of {what}");
            assert_eq!(parse_response(&words.to_lowercase()).unwrap(), otp, "lower-case words of {what}");
            assert_eq!(parse_response(hex).unwrap(), otp, "parsing grouped hex of {what}");
            assert_eq!(parse_response(&hex_of(hex)).unwrap(), otp, "parsing hex of {what}");
        }
    }

    #[test]
    fn seed_is_case_insensitive() {
        let a = skey(SkeyAlgorithm::Md5, "TeSt", b"This is a test.", 5).unwrap();
        let b = skey(SkeyAlgorithm::Md5, "test", b"This is a test.", 5).unwrap();
        let c = skey(SkeyAlgorithm::Md5, "TEST", b"This is a test.", 5).unwrap();
        assert_eq!((a, b), (c, c));
    }

    #[test]
    fn step_advances_the_sequence() {
        for alg in [SkeyAlgorithm::Md5, SkeyAlgorithm::Sha1] {
            let mut previous = skey(alg, "alpha1", b"AbCdEfGhIjK", 0).unwrap();
            for n in 1..=100 {
                let current = skey(alg, "alpha1", b"AbCdEfGhIjK", n).unwrap();
                assert_eq!(step(alg, previous), current, "{} n = {n}", alg.as_str());
                previous = current;
            }
            // The server's check: the response for n - 1 steps to the stored OTP(n).
            let stored = skey(alg, "TeSt", b"This is a test.", 100).unwrap();
            let response = parse_response(&to_words(skey(alg, "TeSt", b"This is a test.", 99).unwrap())).unwrap();
            assert_eq!(step(alg, response), stored);
            assert_ne!(step(alg, stored), stored);
        }
        // The two hashes give different sequences.
        assert_ne!(
            skey(SkeyAlgorithm::Md5, "TeSt", b"This is a test.", 0).unwrap(),
            skey(SkeyAlgorithm::Sha1, "TeSt", b"This is a test.", 0).unwrap()
        );
    }

    #[test]
    fn skey_refuses_bad_seeds_and_short_passphrases() {
        let pass = b"This is a test.";
        let md5 = SkeyAlgorithm::Md5;
        assert_eq!(skey(md5, "", pass, 0), Err(SkeyError::SeedLength { found: 0 }));
        assert_eq!(skey(md5, &"a".repeat(17), pass, 0), Err(SkeyError::SeedLength { found: 17 }));
        assert!(skey(md5, &"a".repeat(16), pass, 0).is_ok());
        assert!(skey(md5, "a", pass, 0).is_ok());
        assert_eq!(skey(md5, "te st", pass, 0), Err(SkeyError::SeedCharacter { position: 3 }));
        assert_eq!(skey(md5, "test-1", pass, 0), Err(SkeyError::SeedCharacter { position: 5 }));
        assert_eq!(skey(md5, "tést", pass, 0), Err(SkeyError::SeedCharacter { position: 2 }));
        assert_eq!(skey(md5, "١٢٣", pass, 0), Err(SkeyError::SeedCharacter { position: 1 }));
        assert_eq!(skey(md5, "TeSt", b"", 0), Err(SkeyError::PassphraseTooShort));
        assert_eq!(skey(md5, "TeSt", b"123456789", 0), Err(SkeyError::PassphraseTooShort));
        assert!(skey(md5, "TeSt", b"1234567890", 0).is_ok());
        // Five two-byte characters are five characters, not ten.
        assert_eq!(skey(md5, "TeSt", "ééééé".as_bytes(), 0), Err(SkeyError::PassphraseTooShort));
        assert!(skey(md5, "TeSt", &[0xff; 10], 0).is_ok());
        assert!(skey(md5, "TeSt", &[b'x'; 200], 0).is_ok());
    }

    #[test]
    fn words_round_trip() {
        let samples = [0u64, u64::MAX, 1, 1 << 63, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x5555_5555_5555_5555];
        let mut value: u64 = 0x9e37_79b9_7f4a_7c15;
        let generated = (0..500).map(|_| {
            // xorshift: deterministic, spreads over all bits.
            value ^= value << 13;
            value ^= value >> 7;
            value ^= value << 17;
            value
        });
        for v in samples.into_iter().chain(generated) {
            let otp = v.to_be_bytes();
            let words = to_words(otp);
            assert_eq!(words.split(' ').count(), 6, "{words}");
            assert_eq!(parse_response(&words).unwrap(), otp, "{words}");
            assert_eq!(parse_response(&to_hex(otp)).unwrap(), otp);
            assert_eq!(parse_response(&to_hex(otp).to_uppercase()).unwrap(), otp);
        }
        assert_eq!(to_hex([0, 1, 2, 0xab, 0xcd, 0xef, 0x10, 0xff]), "000102abcdef10ff");
    }

    #[test]
    fn parse_response_tolerates_case_and_white_space() {
        let otp = skey(SkeyAlgorithm::Md5, "TeSt", b"This is a test.", 0).unwrap();
        for input in [
            "  inch  Sea\tANNE\n long ahem   tour  ",
            "INCH SEA ANNE LONG AHEM TOUR\r\n",
            "9e876134d90499dd",
            " 9E87\t6134  d904 99dD \n",
            "9 e 8 7 6 1 3 4 d 9 0 4 9 9 d d",
        ] {
            assert_eq!(parse_response(input).unwrap(), otp, "{input:?}");
        }
    }

    #[test]
    fn parse_response_refuses_hostile_input() {
        let err = |input: &str| parse_response(input).unwrap_err();
        assert_eq!(err(""), SkeyError::Empty);
        assert_eq!(err(" \t\n"), SkeyError::Empty);
        assert_eq!(err("INCH SEA ANNE LONG AHEM"), SkeyError::WordCount { found: 5 });
        assert_eq!(err("INCH SEA ANNE LONG AHEM TOUR TOUR"), SkeyError::WordCount { found: 7 });
        assert_eq!(err("INCH"), SkeyError::WordCount { found: 1 });
        assert_eq!(err("INCH SEA ANNE XYZZY AHEM TOUR"), SkeyError::UnknownWord { position: 4 });
        assert_eq!(err("INCH SEA ANNE LONG AHEM TOURS"), SkeyError::UnknownWord { position: 6 });
        assert_eq!(err("INCH SEA ANNE LONG AHEM QQ"), SkeyError::UnknownWord { position: 6 });
        assert_eq!(err("INCH-SEA ANNE LONG AHEM TOUR X"), SkeyError::UnknownWord { position: 1 });
        assert_eq!(err("9e876134d90499d"), SkeyError::HexLength { found: 15 });
        assert_eq!(err("9e876134d90499ddd"), SkeyError::HexLength { found: 17 });
        assert_eq!(err("9e87 6134 d904 99dg"), SkeyError::HexCharacter { position: 19 });
        assert_eq!(err("0x9e876134d90499dd"), SkeyError::HexCharacter { position: 2 });
        assert_eq!(err("9e87-6134-d904-99dd"), SkeyError::HexCharacter { position: 5 });
        assert_eq!(err("-9e876134d90499dd"), SkeyError::HexCharacter { position: 1 });
        assert_eq!(err("INCH SEA ÄNNE LONG AHEM TOUR"), SkeyError::NonAscii { position: 10 });
        assert_eq!(err("９e876134d90499dd"), SkeyError::NonAscii { position: 1 });
        assert_eq!(err("INCH\u{a0}SEA ANNE LONG AHEM TOUR"), SkeyError::NonAscii { position: 5 });
        // Cyrillic А (U+0410) looks like a Latin A.
        assert_eq!(err("INCH SEA \u{410}NNE LONG AHEM TOUR"), SkeyError::NonAscii { position: 10 });
        // A very long single token is neither a word nor hex.
        assert_eq!(err(&"Z".repeat(100_000)), SkeyError::WordCount { found: 1 });
        assert_eq!(err(&"A".repeat(100_000)), SkeyError::HexLength { found: 100_000 });
    }

    #[test]
    fn checksum_catches_every_single_bit_flip_in_the_last_word() {
        let words = "INCH SEA ANNE LONG AHEM TOUR";
        let otp = parse_response(words).unwrap();
        let dict = &dictionary().words;
        let tour = dictionary().index.get("TOUR").copied().unwrap();
        // Flipping either checksum bit must be caught.
        for bit in [0u16, 1] {
            let flipped = dict[usize::from(tour ^ (1 << bit))];
            let input = format!("INCH SEA ANNE LONG AHEM {flipped}");
            assert_eq!(parse_response(&input), Err(SkeyError::Checksum), "{input}");
        }
        // Flipping one data bit without fixing the checksum is caught when
        // it changes the pair sum: one bit flip always changes it by ±1 or ±2.
        for bit in 2u16..11 {
            let flipped = dict[usize::from(tour ^ (1 << bit))];
            let input = format!("INCH SEA ANNE LONG AHEM {flipped}");
            assert_eq!(parse_response(&input), Err(SkeyError::Checksum), "{input}");
        }
        for position in 0..5 {
            let mut list: Vec<&str> = words.split(' ').collect();
            let index = dictionary().index.get(list[position]).copied().unwrap();
            list[position] = dict[usize::from(index ^ 1)];
            let input = list.join(" ");
            assert_eq!(parse_response(&input), Err(SkeyError::Checksum), "{input}");
        }
        assert_eq!(to_words(otp), words);
    }

    #[test]
    fn hex_looking_words_prefer_the_word_reading() {
        // Six dictionary words that also spell 16 hex digits, with a valid
        // checksum: the word reading wins.
        assert_eq!(parse_hex("AAABEABEABEDDEAD").unwrap(), 0xaaab_eabe_abed_deadu64.to_be_bytes());
        assert_eq!(parse_response("A A ABE ABE ABED DEAD").unwrap(), 0x8014_76e1u64.to_be_bytes());
        assert_eq!(to_words(0x8014_76e1u64.to_be_bytes()), "A A ABE ABE ABED DEAD");
        // The same kind of input whose checksum fails is read as hex.
        assert_eq!(decode_words(&["ACE", "BAD", "BED", "BEE", "CAB", "A"].map(lookup)), Err(SkeyError::Checksum));
        assert_eq!(parse_response("ACE BAD BED BEE CAB A").unwrap(), 0xaceb_adbe_dbee_cabau64.to_be_bytes());
    }

    #[test]
    fn errors_do_not_echo_input() {
        for input in ["my secret pass-phrase words", "INCH SEA ANNE secret AHEM TOUR", "secretpassphrase1"] {
            let message = parse_response(input).unwrap_err().to_string();
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn algorithm_names() {
        for alg in [SkeyAlgorithm::Md5, SkeyAlgorithm::Sha1] {
            assert_eq!(SkeyAlgorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(SkeyAlgorithm::parse(&alg.as_str().to_uppercase()), Some(alg));
        }
        for bad in ["", "md4", "sha", "sha256", "otp-md5", " md5"] {
            assert_eq!(SkeyAlgorithm::parse(bad), None, "{bad:?}");
        }
    }
}
