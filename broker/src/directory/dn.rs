//! Distinguished names (RFC 4514). A [`Dn`] is only ever built by parsing a
//! whole DN or by adding one escaped RDN below another DN, never by pasting
//! input into a string.

use std::fmt;

use super::error::{DirError, Result};

/// Longest attribute value dirbroker puts into an RDN.
pub const MAX_RDN_VALUE_LEN: usize = 256;

/// A syntactically valid DN, kept in the string form it was given or built in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dn(String);

impl Dn {
    /// Parse and validate a DN string (RFC 4514 §3). The empty DN (root DSE) is allowed.
    pub fn parse(s: &str) -> Result<Dn> {
        if s.is_empty() {
            return Ok(Dn(String::new()));
        }
        if s.len() > 8192 {
            return Err(DirError::bad_input("DN", "longer than 8192 bytes"));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(DirError::bad_input("DN", format!("contains control character U+{:04X}", c as u32)));
        }
        for rdn in split_unescaped(s, b',').map_err(|r| DirError::bad_input("DN", format!("{s:?}: {r}")))? {
            parse_rdn(rdn).map_err(|r| DirError::bad_input("DN", format!("{s:?}: {r}")))?;
        }
        Ok(Dn(s.to_string()))
    }

    /// The DN `attr=value,self`, with `value` escaped per RFC 4514.
    ///
    /// `attr` is a schema name chosen by code, never input. `value` may contain
    /// anything printable, including DN specials; control characters and
    /// overlong values are refused.
    pub fn child(&self, attr: &'static str, value: &str) -> Result<Dn> {
        check_value(attr, value)?;
        let rdn = format!("{attr}={}", ldap3::dn_escape(value));
        if self.0.is_empty() { Ok(Dn(rdn)) } else { Ok(Dn(format!("{rdn},{}", self.0))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The attribute type and unescaped value of the first RDN, if it has a
    /// single attribute-value assertion.
    pub fn first_rdn(&self) -> Option<(String, String)> {
        let rdns = split_unescaped(&self.0, b',').ok()?;
        let first = rdns.first()?;
        let avas = split_unescaped(first, b'+').ok()?;
        if avas.len() != 1 {
            return None;
        }
        let (attr, value) = avas.first()?.split_once('=')?;
        Some((attr.trim().to_string(), unescape_value(value).ok()?))
    }

    /// The DN one level up; `None` for a single-RDN DN or the root.
    pub fn parent(&self) -> Option<Dn> {
        let rdns = split_unescaped(&self.0, b',').ok()?;
        if rdns.len() < 2 {
            return None;
        }
        let first_len = rdns.first()?.len();
        Some(Dn(self.0.get(first_len + 1..)?.to_string()))
    }

    /// The number of RDNs (0 for the root DSE).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() { 0 } else { split_unescaped(&self.0, b',').map_or(0, |r| r.len()) }
    }

    /// A matching key: two DNs with the same key name the same entry under
    /// RFC 4514/4517 distinguishedNameMatch for case-ignoring naming
    /// attributes (all of dirbroker's, and `cn`, `ou`, `dc`, `uid`): the
    /// attribute types and values compared without case, escapes decoded
    /// (`cn=A\,B` is `cn=A\2CB`), insignificant spaces dropped (RFC 4518
    /// §2.6.1), multi-valued RDNs in any order. `#hex` values are compared as
    /// written. A numeric OID and its name (`2.5.4.3=x`, `cn=x`) differ here.
    pub fn normalized(&self) -> String {
        normalized_rdns(&self.0).map_or_else(|| self.0.to_lowercase(), |r| r.join(","))
    }

    /// Whether this DN is `base` or lies below it. Compares RDNs ASCII
    /// case-insensitively after unescaping, which is right for the
    /// case-ignoring naming attributes dirbroker uses.
    pub fn is_within(&self, base: &Dn) -> bool {
        let (Some(mine), Some(theirs)) = (normalized_rdns(&self.0), normalized_rdns(&base.0)) else {
            return false;
        };
        mine.len() >= theirs.len() && mine.iter().rev().zip(theirs.iter().rev()).all(|(a, b)| a == b)
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dn({:?})", self.0)
    }
}

/// Refuse values that no naming attribute of ours should hold: empty, over
/// [`MAX_RDN_VALUE_LEN`], surrounded by white space, or with control characters.
pub fn check_value(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(DirError::bad_input(field, "is empty"));
    }
    if value.len() > MAX_RDN_VALUE_LEN {
        return Err(DirError::bad_input(
            field,
            format!("is {} bytes long; the limit is {MAX_RDN_VALUE_LEN}", value.len()),
        ));
    }
    if value.trim() != value {
        // LDAP matching ignores leading and trailing spaces (RFC 4518), so
        // " alice" would find "alice": refuse rather than surprise.
        return Err(DirError::bad_input(field, "begins or ends with white space"));
    }
    if let Some((i, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(DirError::bad_input(field, format!("contains control character U+{:04X} at byte {i}", c as u32)));
    }
    Ok(())
}

fn normalized_rdns(s: &str) -> Option<Vec<String>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    split_unescaped(s, b',')
        .ok()?
        .into_iter()
        .map(|rdn| {
            let avas = split_unescaped(rdn, b'+').ok()?;
            let mut out = Vec::new();
            for ava in avas {
                let (a, v) = ava.split_once('=')?;
                let value = unescape_value(v).ok()?.to_lowercase();
                let value = value.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
                out.push(format!("{}={}", a.trim().to_ascii_lowercase(), value));
            }
            out.sort_unstable();
            Some(out.join("+"))
        })
        .collect()
}

/// Split on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: u8) -> std::result::Result<Vec<&str>, String> {
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'\\') => i += 2,
            Some(&b) if b == sep => {
                parts.push(s.get(start..i).ok_or("split inside a character")?);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if i > bytes.len() {
        return Err("ends with a lone backslash".into());
    }
    parts.push(s.get(start..).ok_or("split inside a character")?);
    Ok(parts)
}

fn parse_rdn(rdn: &str) -> std::result::Result<(), String> {
    for ava in split_unescaped(rdn, b'+')? {
        let (attr, value) = ava.split_once('=').ok_or_else(|| format!("RDN {ava:?} has no '='"))?;
        let attr = attr.trim();
        let is_descr = attr.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let is_oid =
            !attr.is_empty() && attr.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !is_descr && !is_oid {
            return Err(format!("{attr:?} is not an attribute type"));
        }
        if value.is_empty() {
            return Err(format!("attribute {attr} has an empty value"));
        }
        unescape_value(value)?;
    }
    Ok(())
}

/// Decode an RFC 4514 attribute value (string form; `#hex` is kept as is).
fn unescape_value(v: &str) -> std::result::Result<String, String> {
    if v.starts_with('#') {
        return Ok(v.to_string());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1).ok_or("lone backslash at the end of a value")?;
                if next.is_ascii_hexdigit() {
                    let pair = v.get(i + 1..i + 3).ok_or("truncated \\XX escape")?;
                    let byte = u8::from_str_radix(pair, 16).map_err(|_| format!("bad escape \\{pair}"))?;
                    out.push(byte);
                    i += 3;
                } else if b" \"#+,;<=>\\".contains(&next) {
                    out.push(next);
                    i += 2;
                } else {
                    return Err(format!("bad escape \\{}", next as char));
                }
            }
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | 0 => {
                return Err(format!("unescaped {:?} in a value", b as char));
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "escapes do not form UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_escapes_every_special() {
        let base = Dn::parse("ou=people,dc=example,dc=org").unwrap();
        let dn = base.child("uid", r#"a,b+c"d\<e>f;g=h"#).unwrap();
        assert_eq!(dn.as_str(), r"uid=a\2cb\2bc\22d\5c\3ce\3ef\3bg\3dh,ou=people,dc=example,dc=org");
        assert_eq!(dn.first_rdn().unwrap().1, r#"a,b+c"d\<e>f;g=h"#);
        assert_eq!(dn.parent().unwrap(), base);
        assert!(Dn::parse(dn.as_str()).is_ok());
        let lead = base.child("uid", "#x").unwrap();
        assert_eq!(lead.as_str(), r"uid=\23x,ou=people,dc=example,dc=org");
        assert_eq!(lead.first_rdn().unwrap().1, "#x");
    }

    #[test]
    fn parse_rejects_broken_dns() {
        for bad in
            ["uid", "=x", "uid=", "uid=a,", "uid=a\\", "uid=a\\zz", "uid=a,b", "u id=x", "uid=a\"b", "uid=a\u{0}b"]
        {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(Dn::parse("cn=a\\,b+sn=c,dc=example,dc=org").is_ok());
        assert!(Dn::parse("2.5.4.3=x,dc=org").is_ok());
    }

    #[test]
    fn child_refuses_control_and_overlong_values() {
        let base = Dn::parse("dc=org").unwrap();
        assert!(matches!(base.child("uid", "a\u{0}b"), Err(DirError::BadInput { .. })));
        assert!(matches!(base.child("uid", "a\nb"), Err(DirError::BadInput { .. })));
        assert!(matches!(base.child("uid", ""), Err(DirError::BadInput { .. })));
        assert!(matches!(base.child("uid", " alice"), Err(DirError::BadInput { .. })));
        assert!(matches!(base.child("uid", &"x".repeat(257)), Err(DirError::BadInput { .. })));
    }

    #[test]
    fn normalized_matches_per_rfc4517() {
        let n = |s: &str| Dn::parse(s).unwrap().normalized();
        assert_eq!(n(r"cn=A\,B,dc=org"), n(r"cn=A\2CB,dc=org"));
        assert_eq!(n("CN=x,DC=org"), n("cn=X,dc=org"));
        assert_eq!(n("cn=a  b,dc=org"), n("cn=a b,dc=org"));
        assert_eq!(n("cn=a+sn=b,dc=org"), n("SN=b+cn=a,dc=org"));
        assert_ne!(n(r"cn=A\,B,dc=org"), n("cn=A,cn=B,dc=org"));
        assert_ne!(n("cn=ab,dc=org"), n("cn=a b,dc=org"));
        assert_eq!(Dn::parse("cn=a,dc=org").unwrap().depth(), 2);
    }

    #[test]
    fn within_ignores_case_and_escaping() {
        let base = Dn::parse("ou=People,dc=Example,dc=org").unwrap();
        assert!(Dn::parse("uid=x,ou=people,dc=example,DC=ORG").unwrap().is_within(&base));
        assert!(Dn::parse("uid=x,ou=peo\\70le,dc=example,dc=org").unwrap().is_within(&base));
        assert!(!Dn::parse("uid=x,ou=hosts,dc=example,dc=org").unwrap().is_within(&base));
        assert!(!Dn::parse("dc=org").unwrap().is_within(&base));
    }
}
