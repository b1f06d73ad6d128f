//! Streaming RFC 2849 parser.
//!
//! [`LdifReader`] reads one record at a time from any [`BufRead`]: memory
//! is bounded by the largest record (itself capped by
//! [`ParseOptions::max_record_size`]), never by the file.
//!
//! ```text
//! physical lines ──unfold (bytes)──▶ logical lines ──blank line──▶ record
//!   "cn: Ba"                          "cn: Babs"                   Entry / ChangeRecord
//!   " bs"
//! ```
//!
//! Lines are unfolded as bytes before any UTF-8 decoding, so a fold inside
//! a multi-byte character is harmless. Plain values accept bytes above 127
//! (common practice, though RFC 2849's SAFE-STRING is ASCII); NUL, CR and
//! LF are refused. A leading space in a plain value cannot be told apart
//! from the FILL after the colon and is dropped, which is why the writer
//! base64-encodes such values.
//!
//! Where `ldapadd`/`ldapmodify` (OpenLDAP's libldap) accept what RFC 2849
//! does not, so does this parser, and it says so ([`LdifReader::take_warnings`]):
//! an attribute value starting with `:` or `<` after the FILL (`cn: <x` is
//! the value `<x`), a modify record whose last change has no closing `-`,
//! and a file mixing content and change records (content records read as
//! adds, as `ldapmodify -a` does).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ErrorKind, LdifError, LdifWarning};
use crate::record::{
    Attr, ChangeKind, ChangeRecord, Control, Entry, ModOp, ModSpec, Record, RecordType, is_valid_attribute_description,
    is_valid_control_oid, scan_attribute_description,
};

/// Default for [`ParseOptions::max_record_size`]: 64 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 64 * 1024 * 1024;

/// How the parser treats untrusted input.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The largest record accepted, in bytes of input (physical lines plus
    /// the contents of `:<` files). Larger records are refused with
    /// [`ErrorKind::RecordTooLarge`].
    pub max_record_size: usize,
    /// The directory `:< file://` values may be read from; `None` (the
    /// default) refuses all URL values.
    pub url_base: Option<PathBuf>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { max_record_size: DEFAULT_MAX_RECORD_SIZE, url_base: None }
    }
}

impl ParseOptions {
    /// Allow `:< file://` values for files inside `dir` (after resolving
    /// symlinks and `..`).
    #[must_use]
    pub fn with_url_base(mut self, dir: impl Into<PathBuf>) -> Self {
        self.url_base = Some(dir.into());
        self
    }

    /// Set the maximum record size in bytes.
    #[must_use]
    pub fn with_max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self
    }
}

/// Parse a whole input into memory (convenience for small inputs and tests;
/// use [`LdifReader`] to stream).
pub fn parse_all<R: BufRead>(input: R, options: ParseOptions) -> Result<Vec<Record>, LdifError> {
    LdifReader::with_options(input, options).collect()
}

/// Iterator over the records of an LDIF stream.
///
/// After a record-level error the iterator resumes at the next record, so a
/// caller can report every bad record; a read error ends the iteration.
#[derive(Debug)]
pub struct LdifReader<R> {
    input: R,
    options: ParseOptions,
    /// Physical lines read so far.
    line: usize,
    at_start: bool,
    first_type: Option<RecordType>,
    done: bool,
    /// First physical line of the last record read.
    record_start: usize,
    /// What was accepted although RFC 2849 does not allow it, not yet taken.
    warnings: Vec<LdifWarning>,
    /// Whether mixing content and change records was reported already.
    mixed_reported: bool,
}

/// An unfolded line and where its bytes came from, for error positions.
#[derive(Debug)]
struct LogicalLine {
    bytes: Vec<u8>,
    /// (logical offset, physical line, column of that offset).
    segs: Vec<(usize, usize, usize)>,
}

impl LogicalLine {
    fn pos(&self, offset: usize) -> (usize, usize) {
        self.segs
            .iter()
            .rev()
            .find(|(start, _, _)| *start <= offset)
            .map_or((0, offset + 1), |&(start, line, col)| (line, col + offset - start))
    }

    fn err(&self, offset: usize, kind: ErrorKind) -> LdifError {
        let (line, column) = self.pos(offset);
        LdifError::new(line, column, kind)
    }

    fn from(&self, offset: usize) -> &[u8] {
        self.bytes.get(offset..).unwrap_or_default()
    }
}

/// A parsed `description: value-spec` line.
#[derive(Debug)]
struct Field<'a> {
    line: &'a LogicalLine,
    name: &'a str,
    value: ValueSpec,
}

#[derive(Debug, Clone, Copy)]
enum ValueSpec {
    /// `: SAFE-STRING`, offset just after the colon.
    Plain(usize),
    /// `:: BASE64`, offset after the second colon.
    Base64(usize),
    /// `:< URL`, offset after the `<`.
    Url(usize),
}

fn shown(b: &[u8]) -> String {
    let cut = b.get(..40).unwrap_or(b);
    String::from_utf8_lossy(cut).into_owned()
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

fn trim_end_spaces(b: &[u8]) -> &[u8] {
    let n = b.iter().rev().take_while(|&&c| c == b' ').count();
    b.get(..b.len() - n).unwrap_or_default()
}

fn field(line: &LogicalLine) -> Result<Field<'_>, LdifError> {
    let b = &line.bytes;
    let end = match scan_attribute_description(b) {
        Ok(end) => end,
        Err(0) => {
            return Err(line.err(0, ErrorKind::ExpectedAttributeDescription { found: shown(b) }));
        }
        Err(at) => return Err(line.err(at, ErrorKind::EmptyOption)),
    };
    if b.get(end) != Some(&b':') {
        return Err(line.err(end, ErrorKind::ExpectedColon));
    }
    // The description is ASCII by construction.
    let name = b.get(..end).and_then(|n| std::str::from_utf8(n).ok()).unwrap_or_default();
    let value = match b.get(end + 1) {
        Some(b':') => ValueSpec::Base64(end + 2),
        Some(b'<') => ValueSpec::Url(end + 2),
        _ => ValueSpec::Plain(end + 1),
    };
    Ok(Field { line, name, value })
}

/// A plain value. RFC 2849's SAFE-INIT-CHAR excludes `:` and `<`; a DN or
/// keyword (`strict`) starting with one is refused, an attribute value is
/// taken as written (as libldap does) and the caller warns.
fn plain_value(line: &LogicalLine, offset: usize, strict: bool) -> Result<Vec<u8>, LdifError> {
    let start = skip_spaces(&line.bytes, offset);
    let v = line.from(start);
    if strict && let Some(&c @ (b':' | b'<')) = v.first() {
        return Err(line.err(start, ErrorKind::UnsafeInitChar(char::from(c))));
    }
    if let Some(i) = v.iter().position(|&c| matches!(c, 0 | b'\r' | b'\n')) {
        let byte = v.get(i).copied().unwrap_or_default();
        return Err(line.err(start + i, ErrorKind::UnsafeByte(byte)));
    }
    Ok(v.to_vec())
}

fn base64_value(line: &LogicalLine, offset: usize) -> Result<Vec<u8>, LdifError> {
    let start = skip_spaces(&line.bytes, offset);
    let text = trim_end_spaces(line.from(start));
    STANDARD.decode(text).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => start + i,
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => start + text.len(),
        };
        line.err(at, ErrorKind::InvalidBase64(e.to_string()))
    })
}

fn text(bytes: Vec<u8>, line: &LogicalLine, offset: usize, what: &'static str) -> Result<String, LdifError> {
    String::from_utf8(bytes).map_err(|_| line.err(offset, ErrorKind::NotUtf8(what)))
}

/// A value that must be literal text (DN, RDN, keywords).
fn text_field(f: &Field<'_>, what: &'static str) -> Result<String, LdifError> {
    match f.value {
        ValueSpec::Plain(at) => text(plain_value(f.line, at, true)?, f.line, skip_spaces(&f.line.bytes, at), what),
        ValueSpec::Base64(at) => text(base64_value(f.line, at)?, f.line, skip_spaces(&f.line.bytes, at), what),
        ValueSpec::Url(at) => Err(f.line.err(at - 1, ErrorKind::UrlNotAllowed(what))),
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

impl<R: BufRead> LdifReader<R> {
    /// A reader with default options (URL values refused, 64 MiB records).
    pub fn new(input: R) -> Self {
        Self::with_options(input, ParseOptions::default())
    }

    /// A reader with the given options.
    pub fn with_options(input: R, options: ParseOptions) -> Self {
        LdifReader {
            input,
            options,
            line: 0,
            at_start: true,
            first_type: None,
            done: false,
            record_start: 0,
            warnings: Vec::new(),
            mixed_reported: false,
        }
    }

    /// What the records read so far had that RFC 2849 does not allow but
    /// `ldapadd`/`ldapmodify` accept (and so does this reader); taken, so
    /// each is returned once. Call after each record to keep them bounded.
    pub fn take_warnings(&mut self) -> Vec<LdifWarning> {
        std::mem::take(&mut self.warnings)
    }

    fn warn(&mut self, line: usize, message: String) {
        // A hostile file could earn a warning on every line: keep a bounded number.
        if self.warnings.len() < 1000 {
            self.warnings.push(LdifWarning { line, message });
        }
    }

    /// Physical lines consumed so far.
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// The first physical line of the record (or error) last returned: where
    /// a person should look.
    pub fn record_line(&self) -> usize {
        self.record_start
    }

    /// Give back the underlying reader.
    pub fn into_inner(self) -> R {
        self.input
    }

    fn io_err(&self, e: std::io::Error) -> LdifError {
        LdifError::new(self.line + 1, 1, ErrorKind::Io(e))
    }

    /// Next physical line without its line end; `Ok(Some(None))` for a line
    /// longer than the record limit (its bytes are skipped, not stored).
    fn physical_line(&mut self) -> Result<Option<Option<Vec<u8>>>, LdifError> {
        let limit = self.options.max_record_size.saturating_add(2);
        let mut buf = Vec::new();
        let n = (&mut self.input)
            .take(u64::try_from(limit).unwrap_or(u64::MAX))
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(Some(buf)));
        }
        if n < limit {
            return Ok(Some(Some(buf))); // last line, no line end
        }
        drop(buf);
        // Skip the rest of the overlong line without storing it.
        loop {
            let line = self.line;
            let chunk = self.input.fill_buf().map_err(|e| LdifError::new(line + 1, 1, ErrorKind::Io(e)))?;
            if chunk.is_empty() {
                break;
            }
            if let Some(i) = chunk.iter().position(|&c| c == b'\n') {
                self.input.consume(i + 1);
                break;
            }
            let len = chunk.len();
            self.input.consume(len);
        }
        Ok(Some(None))
    }

    /// The logical lines of the next block (comments dropped), and the line
    /// number just after it. `None` when the block held no record.
    fn gather_block(&mut self) -> Result<Option<(Vec<LogicalLine>, usize)>, LdifError> {
        let limit = self.options.max_record_size;
        let mut lines: Vec<LogicalLine> = Vec::new();
        let mut size = 0usize;
        let mut in_comment = false;
        let mut started = false;
        // The record starts at its first line that is not a comment.
        let mut located = false;
        let mut error: Option<LdifError> = None;
        let mut last = self.line;
        while let Some(phys) = self.physical_line()? {
            let line = self.line;
            let Some(bytes) = phys else {
                if !started {
                    self.record_start = line;
                }
                started = true;
                error.get_or_insert(LdifError::new(line, 1, ErrorKind::RecordTooLarge { limit }));
                continue;
            };
            if bytes.is_empty() {
                if started {
                    break;
                }
                in_comment = false;
                continue;
            }
            if !started || (!located && !matches!(bytes.first(), Some(b'#' | b' '))) {
                self.record_start = line;
                located = !matches!(bytes.first(), Some(b'#' | b' '));
            }
            started = true;
            last = line;
            size = size.saturating_add(bytes.len() + 1);
            if size > limit {
                error.get_or_insert(LdifError::new(line, 1, ErrorKind::RecordTooLarge { limit }));
            }
            if error.is_some() {
                continue; // consume the rest of the record
            }
            match bytes.first() {
                Some(b' ') => {
                    if in_comment {
                        continue;
                    }
                    match lines.last_mut() {
                        Some(last) => {
                            last.segs.push((last.bytes.len(), line, 2));
                            last.bytes.extend_from_slice(bytes.get(1..).unwrap_or_default());
                        }
                        None => error = Some(LdifError::new(line, 1, ErrorKind::FoldWithoutLine)),
                    }
                }
                Some(b'#') => in_comment = true,
                _ => {
                    in_comment = false;
                    lines.push(LogicalLine { bytes, segs: vec![(0, line, 1)] });
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if lines.is_empty() {
            return Ok(None);
        }
        Ok(Some((lines, last + 1)))
    }

    /// The next record's lines, skipping comment-only blocks (a loop, not
    /// recursion: a file of a million comment blocks must not exhaust the stack).
    fn gather(&mut self) -> Result<Option<(Vec<LogicalLine>, usize)>, LdifError> {
        loop {
            match self.gather_block()? {
                Some(found) => return Ok(Some(found)),
                None if self.at_eof() => return Ok(None),
                None => continue,
            }
        }
    }

    /// Whether nothing is left to read.
    fn at_eof(&mut self) -> bool {
        self.input.fill_buf().map(|b| b.is_empty()).unwrap_or(true)
    }

    fn next_record(&mut self) -> Result<Option<Record>, LdifError> {
        loop {
            let Some((mut lines, end_line)) = self.gather()? else {
                return Ok(None);
            };
            if std::mem::take(&mut self.at_start) {
                let version = lines
                    .first()
                    .map(field)
                    .transpose()
                    .ok()
                    .flatten()
                    .filter(|f| f.name.eq_ignore_ascii_case("version"))
                    .map(|f| text_field(&f, "version"));
                if let Some(v) = version {
                    let first = lines.first();
                    let v = v?;
                    if v != "1" {
                        let (line, col) = first.map_or((1, 1), |l| l.pos(0));
                        return Err(LdifError::new(line, col, ErrorKind::UnsupportedVersion(v)));
                    }
                    lines.remove(0);
                    if lines.is_empty() {
                        continue;
                    }
                    if let Some(l) = lines.first() {
                        self.record_start = l.pos(0).0;
                    }
                }
            }
            let record = self.record(&lines, end_line)?;
            let found = record.record_type();
            match self.first_type {
                None => self.first_type = Some(found),
                Some(first) if first != found && !self.mixed_reported => {
                    self.mixed_reported = true;
                    let line = lines.first().map_or(end_line, |l| l.pos(0).0);
                    self.warn(
                        line,
                        format!(
                            "a {found} record in a file of {first} records: RFC 2849 forbids mixing them; read as \
                             `ldapmodify -a` does (a content record is an add)"
                        ),
                    );
                }
                Some(_) => {}
            }
            return Ok(Some(record));
        }
    }

    fn value(&mut self, f: &Field<'_>) -> Result<Vec<u8>, LdifError> {
        match f.value {
            ValueSpec::Plain(at) => {
                let v = plain_value(f.line, at, false)?;
                if let Some(&c @ (b':' | b'<')) = v.first() {
                    let line = f.line.pos(skip_spaces(&f.line.bytes, at)).0;
                    self.warn(
                        line,
                        format!(
                            "the value of {} starts with {:?}, which RFC 2849 allows only base64-encoded \
                             ('::'); read as the plain value, as ldapadd does",
                            f.name,
                            char::from(c)
                        ),
                    );
                }
                Ok(v)
            }
            ValueSpec::Base64(at) => base64_value(f.line, at),
            ValueSpec::Url(at) => {
                let start = skip_spaces(&f.line.bytes, at);
                let url = text(trim_end_spaces(f.line.from(start)).to_vec(), f.line, start, "URL")?;
                self.read_url(&url).map_err(|kind| f.line.err(start, kind))
            }
        }
    }

    fn read_url(&self, url: &str) -> Result<Vec<u8>, ErrorKind> {
        let base = self.options.url_base.as_deref().ok_or(ErrorKind::UrlDisabled)?;
        let unsupported = || ErrorKind::UnsupportedUrl(url.to_owned());
        let rest = url.strip_prefix("file://").ok_or_else(unsupported)?;
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return Err(unsupported());
        }
        let raw = percent_decode(rest).ok_or_else(unsupported)?;
        let path = PathBuf::from(String::from_utf8(raw).map_err(|_| unsupported())?);
        let read_err = |source| ErrorKind::UrlRead { url: url.to_owned(), source };
        let base = base.canonicalize().map_err(read_err)?;
        let real = path.canonicalize().map_err(read_err)?;
        if !real.starts_with(&base) {
            return Err(ErrorKind::UrlOutsideBase { path: real, base });
        }
        read_limited(&real, self.options.max_record_size).map_err(|e| match e {
            None => ErrorKind::RecordTooLarge { limit: self.options.max_record_size },
            Some(source) => read_err(source),
        })
    }

    fn record(&mut self, lines: &[LogicalLine], end_line: usize) -> Result<Record, LdifError> {
        let mut it = lines.iter().peekable();
        let Some(first) = it.next() else {
            return Err(LdifError::new(end_line, 1, ErrorKind::NoAttributes));
        };
        let f = field(first)?;
        if !f.name.eq_ignore_ascii_case("dn") {
            return Err(first.err(0, ErrorKind::ExpectedDn { found: f.name.to_owned() }));
        }
        let dn = text_field(&f, "DN")?;
        let mut controls = Vec::new();
        let mut changetype = None;
        for line in it.by_ref() {
            let f = field(line)?;
            if f.name.eq_ignore_ascii_case("control") {
                controls.push(control(&f)?);
            } else if f.name.eq_ignore_ascii_case("changetype") {
                changetype = Some((text_field(&f, "changetype")?, line));
                break;
            } else if controls.is_empty() {
                // A content record: this line is its first attribute.
                let attrs = self.attrs(std::iter::once(line).chain(it), end_line)?;
                return Ok(Record::Content(Entry { dn, attrs }));
            } else {
                return Err(line.err(0, ErrorKind::ExpectedChangeType));
            }
        }
        let Some((ct, ct_line)) = changetype else {
            let kind = if controls.is_empty() { ErrorKind::NoAttributes } else { ErrorKind::ExpectedChangeType };
            return Err(LdifError::new(end_line, 1, kind));
        };
        let kind = match ct.to_ascii_lowercase().as_str() {
            "add" => ChangeKind::Add(self.attrs(it, end_line)?),
            "delete" => {
                if let Some(extra) = it.next() {
                    return Err(extra.err(
                        0,
                        ErrorKind::Unexpected {
                            expected: "the end of the record after 'changetype: delete'",
                            found: shown(&extra.bytes),
                        },
                    ));
                }
                ChangeKind::Delete
            }
            "modify" => ChangeKind::Modify(self.mods(it)?),
            "modrdn" | "moddn" => modrdn(it, end_line)?,
            _ => {
                let at = match field(ct_line)?.value {
                    ValueSpec::Plain(at) | ValueSpec::Base64(at) | ValueSpec::Url(at) => {
                        skip_spaces(&ct_line.bytes, at)
                    }
                };
                return Err(ct_line.err(at, ErrorKind::UnknownChangeType(ct)));
            }
        };
        Ok(Record::Change(ChangeRecord { dn, controls, kind }))
    }

    fn attrs<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a LogicalLine>,
        end_line: usize,
    ) -> Result<Vec<Attr>, LdifError> {
        let mut attrs: Vec<Attr> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for line in lines {
            let f = field(line)?;
            let value = self.value(&f)?;
            let key = f.name.to_ascii_lowercase();
            match index.get(&key).and_then(|&i| attrs.get_mut(i)) {
                Some(attr) => attr.values.push(value),
                None => {
                    index.insert(key, attrs.len());
                    attrs.push(Attr { name: f.name.to_owned(), values: vec![value] });
                }
            }
        }
        if attrs.is_empty() {
            return Err(LdifError::new(end_line, 1, ErrorKind::NoAttributes));
        }
        Ok(attrs)
    }

    fn mods<'a>(&mut self, mut lines: impl Iterator<Item = &'a LogicalLine>) -> Result<Vec<ModSpec>, LdifError> {
        let mut mods = Vec::new();
        while let Some(line) = lines.next() {
            let f = field(line)?;
            let Some(op) = ModOp::from_keyword(f.name) else {
                return Err(line.err(
                    0,
                    ErrorKind::Unexpected {
                        expected: "'add:', 'delete:', 'replace:' or 'increment:'",
                        found: f.name.to_owned(),
                    },
                ));
            };
            let attr = text_field(&f, "attribute description")?;
            let attr = attr.trim_end_matches(' ').to_owned();
            if !is_valid_attribute_description(&attr) {
                let at = match f.value {
                    ValueSpec::Plain(at) | ValueSpec::Base64(at) | ValueSpec::Url(at) => at,
                };
                return Err(
                    line.err(skip_spaces(&line.bytes, at), ErrorKind::ExpectedAttributeDescription { found: attr })
                );
            }
            let mut values = Vec::new();
            loop {
                let Some(vline) = lines.next() else {
                    // The record ends without the block's '-': libldap
                    // (ldapmodify) takes the change as complete.
                    let line_no = line.pos(0).0;
                    self.warn(
                        line_no,
                        format!(
                            "the modification of {attr:?} has no closing '-' line before the end of the record; \
                             applied as complete, as ldapmodify does"
                        ),
                    );
                    mods.push(ModSpec { op, attr, values });
                    return Ok(mods);
                };
                if vline.bytes == b"-" {
                    break;
                }
                let vf = field(vline)?;
                if !vf.name.eq_ignore_ascii_case(&attr) {
                    let kind = if ModOp::from_keyword(vf.name).is_some() {
                        ErrorKind::MissingModSeparator(attr)
                    } else {
                        ErrorKind::ModAttrMismatch { expected: attr, found: vf.name.to_owned() }
                    };
                    return Err(vline.err(0, kind));
                }
                values.push(self.value(&vf)?);
            }
            mods.push(ModSpec { op, attr, values });
        }
        Ok(mods)
    }
}

fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, Option<std::io::Error>> {
    let file = File::open(path).map_err(Some)?;
    if !file.metadata().map_err(Some)?.is_file() {
        return Err(Some(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    let mut out = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1)).read_to_end(&mut out).map_err(Some)?;
    if out.len() > limit {
        return Err(None);
    }
    Ok(out)
}

fn control(f: &Field<'_>) -> Result<Control, LdifError> {
    let b = &f.line.bytes;
    let ValueSpec::Plain(after) = f.value else {
        return Err(f.line.err(0, ErrorKind::InvalidControl("expected 'control: OID'")));
    };
    let start = skip_spaces(b, after);
    let len = b.iter().skip(start).take_while(|&&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-').count();
    if len == 0 {
        return Err(f.line.err(start, ErrorKind::InvalidControl("expected an OID")));
    }
    let oid = String::from_utf8_lossy(b.get(start..start + len).unwrap_or_default()).into_owned();
    if !is_valid_control_oid(&oid) {
        return Err(f.line.err(start, ErrorKind::InvalidControl("expected a numeric OID or a descriptor")));
    }
    let mut i = skip_spaces(b, start + len);
    let mut critical = false;
    for (word, value) in [(&b"true"[..], true), (&b"false"[..], false)] {
        if b.get(i..).is_some_and(|r| r.starts_with(word)) {
            critical = value;
            i = skip_spaces(b, i + word.len());
        }
    }
    let value = match b.get(i) {
        None => None,
        Some(b':') => {
            let sub = Field {
                line: f.line,
                name: "control",
                value: match b.get(i + 1) {
                    Some(b':') => ValueSpec::Base64(i + 2),
                    Some(b'<') => ValueSpec::Url(i + 2),
                    _ => ValueSpec::Plain(i + 1),
                },
            };
            Some(match sub.value {
                ValueSpec::Plain(at) => plain_value(f.line, at, true)?,
                ValueSpec::Base64(at) => base64_value(f.line, at)?,
                ValueSpec::Url(at) => {
                    return Err(f.line.err(at - 1, ErrorKind::UrlNotAllowed("control value")));
                }
            })
        }
        Some(_) => {
            return Err(f.line.err(i, ErrorKind::InvalidControl("expected 'true', 'false' or ':' after the OID")));
        }
    };
    Ok(Control { oid, critical, value })
}

fn modrdn<'a>(mut lines: impl Iterator<Item = &'a LogicalLine>, end_line: usize) -> Result<ChangeKind, LdifError> {
    let mut expect = |name: &'static str, expected: &'static str| match lines.next() {
        None => Err(LdifError::new(end_line, 1, ErrorKind::Unexpected { expected, found: "end of record".to_owned() })),
        Some(line) => {
            let f = field(line)?;
            if f.name.eq_ignore_ascii_case(name) {
                Ok(Some(f))
            } else {
                Err(line.err(0, ErrorKind::Unexpected { expected, found: f.name.to_owned() }))
            }
        }
    };
    let new_rdn = match expect("newrdn", "'newrdn:'")? {
        Some(f) => text_field(&f, "new RDN")?,
        None => String::new(),
    };
    let delete_old_rdn = match expect("deleteoldrdn", "'deleteoldrdn:'")? {
        Some(f) => match text_field(&f, "deleteoldrdn")?.as_str() {
            "0" => false,
            "1" => true,
            other => {
                let at = match f.value {
                    ValueSpec::Plain(at) | ValueSpec::Base64(at) | ValueSpec::Url(at) => at,
                };
                return Err(f
                    .line
                    .err(skip_spaces(&f.line.bytes, at), ErrorKind::InvalidDeleteOldRdn(other.to_owned())));
            }
        },
        None => false,
    };
    let new_superior = match lines.next() {
        None => None,
        Some(line) => {
            let f = field(line)?;
            if !f.name.eq_ignore_ascii_case("newsuperior") {
                return Err(line.err(
                    0,
                    ErrorKind::Unexpected {
                        expected: "'newsuperior:' or the end of the record",
                        found: f.name.to_owned(),
                    },
                ));
            }
            Some(text_field(&f, "new superior DN")?)
        }
    };
    if let Some(extra) = lines.next() {
        return Err(extra
            .err(0, ErrorKind::Unexpected { expected: "the end of the modrdn record", found: shown(&extra.bytes) }));
    }
    Ok(ChangeKind::ModRdn { new_rdn, delete_old_rdn, new_superior })
}

impl<R: BufRead> Iterator for LdifReader<R> {
    type Item = Result<Record, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                if matches!(e.kind, ErrorKind::Io(_)) {
                    self.done = true;
                }
                Some(Err(e))
            }
        }
    }
}
