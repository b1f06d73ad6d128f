//! The LDIF data model (RFC 2849 §"Formal Syntax Definition of LDIF").
//!
//! Attribute values are bytes: LDIF carries binary values (certificates,
//! photos) as well as text. DNs and RDNs are UTF-8 strings (RFC 4514); a
//! base64 `dn::` is decoded and must be UTF-8.

/// One record of an LDIF file: either an entry (content file) or a change
/// (changes file). RFC 2849 forbids mixing the two in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An `ldif-attrval-record`: a directory entry.
    Content(Entry),
    /// An `ldif-change-record`: an operation to apply to the directory.
    Change(ChangeRecord),
}

impl Record {
    /// The DN the record is about.
    #[must_use]
    pub fn dn(&self) -> &str {
        match self {
            Record::Content(e) => &e.dn,
            Record::Change(c) => &c.dn,
        }
    }

    /// Whether this is a content or a change record.
    #[must_use]
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Content(_) => RecordType::Content,
            Record::Change(_) => RecordType::Change,
        }
    }
}

/// The two kinds of LDIF file (RFC 2849 `ldif-content` / `ldif-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// Entries (`dn:` followed by attribute values).
    Content,
    /// Change records (`changetype:`).
    Change,
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordType::Content => "content",
            RecordType::Change => "change",
        })
    }
}

/// A directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Distinguished name.
    pub dn: String,
    /// Attributes in first-appearance order; each description appears once
    /// (compared ASCII-case-insensitively, the first spelling is kept).
    pub attrs: Vec<Attr>,
}

/// One attribute and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Attribute description including options, e.g. `userCertificate;binary`
    /// or `cn;lang-ko`.
    pub name: String,
    /// The values, as bytes.
    pub values: Vec<Vec<u8>>,
}

/// A change record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The DN the change applies to.
    pub dn: String,
    /// LDAPv3 controls to attach to the operation (`control:` lines).
    pub controls: Vec<Control>,
    /// The operation.
    pub kind: ChangeKind,
}

/// An LDAPv3 control (RFC 2849 `control:` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// The control type OID.
    pub oid: String,
    /// Criticality; `false` when the line does not say.
    pub critical: bool,
    /// The control value, if any.
    pub value: Option<Vec<u8>>,
}

/// The operation of a change record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// `changetype: add` with the new entry's attributes.
    Add(Vec<Attr>),
    /// `changetype: delete`.
    Delete,
    /// `changetype: modify` with its modification blocks.
    Modify(Vec<ModSpec>),
    /// `changetype: modrdn` (or `moddn`).
    ModRdn {
        /// The new RDN.
        new_rdn: String,
        /// Whether the old RDN values are removed from the entry.
        delete_old_rdn: bool,
        /// The new parent, if the entry moves.
        new_superior: Option<String>,
    },
}

/// One `add:`/`delete:`/`replace:`/`increment:` block of a modify record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModSpec {
    /// The modification operation.
    pub op: ModOp,
    /// The attribute description the block applies to.
    pub attr: String,
    /// The values (may be empty: delete/replace all values).
    pub values: Vec<Vec<u8>>,
}

/// Modification operations (RFC 2849 plus `increment`, RFC 4525).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModOp {
    /// `add:`
    Add,
    /// `delete:`
    Delete,
    /// `replace:`
    Replace,
    /// `increment:` (RFC 4525)
    Increment,
}

impl ModOp {
    /// The LDIF keyword.
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            ModOp::Add => "add",
            ModOp::Delete => "delete",
            ModOp::Replace => "replace",
            ModOp::Increment => "increment",
        }
    }

    /// The operation named by an LDIF keyword (ASCII-case-insensitive).
    #[must_use]
    pub fn from_keyword(s: &str) -> Option<ModOp> {
        [ModOp::Add, ModOp::Delete, ModOp::Replace, ModOp::Increment]
            .into_iter()
            .find(|op| op.keyword().eq_ignore_ascii_case(s))
    }
}

/// Length of the longest prefix of `b` that is an RFC 2849
/// `AttributeDescription` (`AttributeType *(";" option)`), or `Err(offset)`
/// of the first byte that breaks the grammar when no valid prefix exists or
/// an option is empty.
pub(crate) fn scan_attribute_description(b: &[u8]) -> Result<usize, usize> {
    let is_opt = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let mut i = match b.first() {
        Some(c) if c.is_ascii_alphabetic() => 1 + b.iter().skip(1).take_while(|&&c| is_opt(c)).count(),
        Some(c) if c.is_ascii_digit() => b.iter().take_while(|&&c| c.is_ascii_digit() || c == b'.').count(),
        _ => return Err(0),
    };
    while b.get(i) == Some(&b';') {
        i += 1;
        let n = b.iter().skip(i).take_while(|&&c| is_opt(c)).count();
        if n == 0 {
            return Err(i);
        }
        i += n;
    }
    Ok(i)
}

/// Whether `s` is a whole RFC 2849 `AttributeDescription`.
#[must_use]
pub fn is_valid_attribute_description(s: &str) -> bool {
    scan_attribute_description(s.as_bytes()) == Ok(s.len())
}

/// Whether `s` is acceptable as a control OID: a numeric OID (RFC 2849
/// `ldap-oid`, `1*DIGIT *("." 1*DIGIT)`) or a descriptor (`ALPHA *(ALPHA /
/// DIGIT / "-")`). Parser and writer share it, so what one accepts the
/// other can write (the fuzzer found a `-.2.840` the parser took and the
/// writer refused).
#[must_use]
pub fn is_valid_control_oid(s: &str) -> bool {
    let numeric = !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let descr = s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    numeric || descr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_descriptions() {
        for ok in ["cn", "userCertificate;binary", "cn;lang-ko", "2.5.4.3", "ou;lang-ja;phonetic"] {
            assert!(is_valid_attribute_description(ok), "{ok}");
        }
        for bad in ["", "cn;", "-cn", "c n", "cn:", ";x", "cn;a b"] {
            assert!(!is_valid_attribute_description(bad), "{bad}");
        }
    }

    #[test]
    fn control_oids() {
        for ok in ["1.2.840.113556.1.4.805", "0", "manageDsaIT"] {
            assert!(is_valid_control_oid(ok), "{ok}");
        }
        for bad in ["", "-.2.840", "1..2", "1.2.", ".1", "1.2x", "1-2", "a.b"] {
            assert!(!is_valid_control_oid(bad), "{bad}");
        }
    }

    #[test]
    fn mod_op_keywords() {
        assert_eq!(ModOp::from_keyword("REPLACE"), Some(ModOp::Replace));
        assert_eq!(ModOp::from_keyword("frob"), None);
    }
}
