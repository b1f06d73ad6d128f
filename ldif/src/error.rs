//! Errors. Parse errors are the input's fault and say where (line, column)
//! and what was expected; write errors are the caller's (a record LDIF cannot
//! express) or the sink's (I/O).

use std::path::PathBuf;

use crate::record::RecordType;

/// A parse error at a position in the input. Lines and columns are 1-based;
/// columns count bytes of the physical line (so a position inside a folded
/// line points at the continuation line where the byte really is).
#[derive(Debug, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct LdifError {
    /// Physical line number (1-based).
    pub line: usize,
    /// Byte column within that line (1-based).
    pub column: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl LdifError {
    pub(crate) fn new(line: usize, column: usize, kind: ErrorKind) -> Self {
        LdifError { line, column, kind }
    }
}

/// What went wrong while parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The underlying reader failed.
    #[error("read failed: {0}")]
    Io(std::io::Error),
    /// The record (or a line, or a `:<` file) is larger than allowed.
    #[error("record exceeds the maximum size of {limit} bytes (ParseOptions::max_record_size)")]
    RecordTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A line starting with a space, with nothing before it to continue.
    #[error("continuation line (starting with a space) does not continue any line")]
    FoldWithoutLine,
    /// A line that should start with an attribute description does not.
    #[error("expected an attribute description, found {found:?}")]
    ExpectedAttributeDescription {
        /// The offending text (truncated).
        found: String,
    },
    /// `;` not followed by an option.
    #[error("expected an attribute option after ';'")]
    EmptyOption,
    /// The attribute description is not followed by `:`.
    #[error("expected ':' after the attribute description")]
    ExpectedColon,
    /// `version:` other than 1.
    #[error("unsupported LDIF version {0:?}; expected 'version: 1'")]
    UnsupportedVersion(String),
    /// The record does not start with `dn:`.
    #[error("expected 'dn:' to start the record, found {found:?}")]
    ExpectedDn {
        /// The attribute found instead.
        found: String,
    },
    /// A `::` value is not valid base64.
    #[error("invalid base64 value: {0}")]
    InvalidBase64(String),
    /// A byte not allowed in a plain (SAFE-STRING) value.
    #[error("byte 0x{0:02x} is not allowed in a plain value; write it as '::' base64")]
    UnsafeByte(u8),
    /// A DN or keyword given as a plain value starting with ':' or '<'.
    #[error("a plain value must not start with {0:?}; write it as '::' base64")]
    UnsafeInitChar(char),
    /// A DN, RDN or similar text field that is not UTF-8.
    #[error("the {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// `:<` where only a literal value may appear.
    #[error("a ':<' URL value is not allowed for the {0}")]
    UrlNotAllowed(&'static str),
    /// `:<` used while URL values are disabled.
    #[error(
        "a ':<' value reads a file, which is off by default; allow files from one directory with \
         --allow-file-urls DIR"
    )]
    UrlDisabled,
    /// A URL other than `file:///path` or `file://localhost/path`.
    #[error("unsupported URL {0:?}; only file:///path URLs are allowed")]
    UnsupportedUrl(String),
    /// A `file://` URL that resolves outside the allowed directory.
    #[error("{path} resolves outside the allowed directory {base}")]
    UrlOutsideBase {
        /// The resolved path.
        path: PathBuf,
        /// The allowed directory.
        base: PathBuf,
    },
    /// A `file://` URL that cannot be read.
    #[error("cannot read {url}: {source}")]
    UrlRead {
        /// The URL as written.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// `changetype:` with an unknown value.
    #[error("unknown changetype {0:?}; expected add, delete, modify, modrdn or moddn")]
    UnknownChangeType(String),
    /// `control:` lines not followed by `changetype:`.
    #[error("expected 'changetype:' after the 'control:' lines")]
    ExpectedChangeType,
    /// A malformed `control:` line.
    #[error("invalid control: {0}")]
    InvalidControl(&'static str),
    /// An entry or add record without attributes.
    #[error("expected at least one attribute after the DN")]
    NoAttributes,
    /// Something other than what the grammar allows here.
    #[error("expected {expected}, found {found:?}")]
    Unexpected {
        /// What the grammar allows.
        expected: &'static str,
        /// What was there (truncated).
        found: String,
    },
    /// A modify block without its `-` line.
    #[error("expected '-' to end the modification of {0:?}")]
    MissingModSeparator(String),
    /// A value line in a modify block naming another attribute.
    #[error("attribute {found:?} inside the modification of {expected:?}; expected {expected:?} or '-'")]
    ModAttrMismatch {
        /// The block's attribute.
        expected: String,
        /// The line's attribute.
        found: String,
    },
    /// `deleteoldrdn:` other than 0 or 1.
    #[error("deleteoldrdn must be 0 or 1, found {0:?}")]
    InvalidDeleteOldRdn(String),
}

/// Something the parser accepted although RFC 2849 does not allow it, as
/// `ldapadd`/`ldapmodify` accept it: worth telling a person, not a reason
/// to refuse the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifWarning {
    /// Physical line number (1-based).
    pub line: usize,
    /// What was accepted and how it was read.
    pub message: String,
}

impl std::fmt::Display for LdifWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The sink failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// An attribute description that is not RFC 2849 syntax.
    #[error("invalid attribute description {0:?}")]
    InvalidAttributeDescription(String),
    /// An attribute with no values in an entry or add record: LDIF has no
    /// way to say that.
    #[error("attribute {0:?} has no values; an entry or add record cannot express that")]
    NoValues(String),
    /// An entry or add record without attributes.
    #[error("record {0:?} has no attributes; RFC 2849 requires at least one")]
    NoAttributes(String),
    /// An entry whose first attribute would make it read as a change record.
    #[error("an entry cannot start with attribute {0:?}: it would read back as a change record")]
    ReservedFirstAttribute(String),
    /// A control OID that is not an OID.
    #[error("invalid control OID {0:?}")]
    InvalidControlOid(String),
    /// A record of the other type than the ones already written.
    #[error("cannot write a {found} record after {first} records; RFC 2849 forbids mixing them")]
    MixedRecords {
        /// The type of the first record written.
        first: RecordType,
        /// The type of this record.
        found: RecordType,
    },
}
