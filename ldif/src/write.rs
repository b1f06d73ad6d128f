//! RFC 2849 writer.
//!
//! Values (and DNs) are written plain exactly when they are a SAFE-STRING
//! and carry no trailing space; otherwise `::` base64. Since every byte
//! above 127 forces base64, all output is ASCII and folding at a fixed
//! byte width never splits a character.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::WriteError;
use crate::record::{
    Attr, ChangeKind, Control, Record, RecordType, is_valid_attribute_description, is_valid_control_oid,
};

/// Default folding width (RFC 2849 suggests 76 columns).
pub const DEFAULT_LINE_WIDTH: usize = 76;

/// Whether `v` may be written after `: ` as-is: an RFC 2849 SAFE-STRING
/// without a trailing space (which editors and readers tend to lose).
#[must_use]
pub fn is_safe_string(v: &[u8]) -> bool {
    let init_ok = v.first().is_none_or(|c| !matches!(c, b' ' | b':' | b'<'));
    let tail_ok = v.last() != Some(&b' ');
    init_ok && tail_ok && v.iter().all(|&c| matches!(c, 0x01..=0x7f) && c != b'\r' && c != b'\n')
}

/// Writes records to a sink, one blank line between records.
#[derive(Debug)]
pub struct LdifWriter<W: Write> {
    out: W,
    width: usize,
    version_pending: bool,
    first_type: Option<RecordType>,
}

/// Write records into a byte vector (with a `version: 1` header).
pub fn to_bytes<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<Vec<u8>, WriteError> {
    let mut w = LdifWriter::new(Vec::new()).with_version(true);
    for r in records {
        w.write_record(r)?;
    }
    w.finish()
}

impl<W: Write> LdifWriter<W> {
    /// A writer without a version header, folding at 76 columns.
    pub fn new(out: W) -> Self {
        LdifWriter { out, width: DEFAULT_LINE_WIDTH, version_pending: false, first_type: None }
    }

    /// Whether to start the output with `version: 1`.
    #[must_use]
    pub fn with_version(mut self, yes: bool) -> Self {
        self.version_pending = yes;
        self
    }

    /// Fold lines longer than `width` bytes (at least 2).
    #[must_use]
    pub fn with_line_width(mut self, width: usize) -> Self {
        self.width = width.max(2);
        self
    }

    /// Write one record. The record is checked and formatted completely
    /// before anything reaches the sink, so a refused record writes nothing.
    pub fn write_record(&mut self, record: &Record) -> Result<(), WriteError> {
        let found = record.record_type();
        match self.first_type {
            Some(first) if first != found => return Err(WriteError::MixedRecords { first, found }),
            _ => {}
        }
        let mut buf = Vec::new();
        if std::mem::take(&mut self.version_pending) {
            buf.extend_from_slice(b"version: 1\n\n");
        } else if self.first_type.is_some() {
            buf.push(b'\n');
        }
        self.format(record, &mut buf)?;
        self.out.write_all(&buf)?;
        self.first_type = Some(found);
        Ok(())
    }

    /// Flush and give back the sink (writing the version header if no record
    /// was written).
    pub fn finish(mut self) -> Result<W, WriteError> {
        if self.version_pending {
            self.out.write_all(b"version: 1\n")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn format(&self, record: &Record, buf: &mut Vec<u8>) -> Result<(), WriteError> {
        match record {
            Record::Content(e) => {
                if let Some(first) = e.attrs.first()
                    && (first.name.eq_ignore_ascii_case("changetype") || first.name.eq_ignore_ascii_case("control"))
                {
                    return Err(WriteError::ReservedFirstAttribute(first.name.clone()));
                }
                self.value_line(buf, "dn", e.dn.as_bytes());
                self.attrs(buf, &e.dn, &e.attrs)?;
            }
            Record::Change(c) => {
                self.value_line(buf, "dn", c.dn.as_bytes());
                for ctl in &c.controls {
                    self.control(buf, ctl)?;
                }
                match &c.kind {
                    ChangeKind::Add(attrs) => {
                        self.fold(buf, b"changetype: add");
                        self.attrs(buf, &c.dn, attrs)?;
                    }
                    ChangeKind::Delete => self.fold(buf, b"changetype: delete"),
                    ChangeKind::Modify(mods) => {
                        self.fold(buf, b"changetype: modify");
                        for m in mods {
                            check_desc(&m.attr)?;
                            self.fold(buf, format!("{}: {}", m.op.keyword(), m.attr).as_bytes());
                            for v in &m.values {
                                self.value_line(buf, &m.attr, v);
                            }
                            self.fold(buf, b"-");
                        }
                    }
                    ChangeKind::ModRdn { new_rdn, delete_old_rdn, new_superior } => {
                        self.fold(buf, b"changetype: modrdn");
                        self.value_line(buf, "newrdn", new_rdn.as_bytes());
                        let d: &[u8] = if *delete_old_rdn { b"deleteoldrdn: 1" } else { b"deleteoldrdn: 0" };
                        self.fold(buf, d);
                        if let Some(sup) = new_superior {
                            self.value_line(buf, "newsuperior", sup.as_bytes());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn attrs(&self, buf: &mut Vec<u8>, dn: &str, attrs: &[Attr]) -> Result<(), WriteError> {
        if attrs.is_empty() {
            return Err(WriteError::NoAttributes(dn.to_owned()));
        }
        for a in attrs {
            check_desc(&a.name)?;
            if a.values.is_empty() {
                return Err(WriteError::NoValues(a.name.clone()));
            }
            for v in &a.values {
                self.value_line(buf, &a.name, v);
            }
        }
        Ok(())
    }

    fn control(&self, buf: &mut Vec<u8>, c: &Control) -> Result<(), WriteError> {
        if !is_valid_control_oid(&c.oid) {
            return Err(WriteError::InvalidControlOid(c.oid.clone()));
        }
        let mut line = format!("control: {}", c.oid).into_bytes();
        if c.critical {
            line.extend_from_slice(b" true");
        }
        if let Some(v) = &c.value {
            push_value_spec(&mut line, v);
        }
        self.fold(buf, &line);
        Ok(())
    }

    fn value_line(&self, buf: &mut Vec<u8>, name: &str, value: &[u8]) {
        let mut line = name.as_bytes().to_vec();
        push_value_spec(&mut line, value);
        self.fold(buf, &line);
    }

    /// Append `line` folded to the configured width, with `\n` line ends.
    fn fold(&self, buf: &mut Vec<u8>, line: &[u8]) {
        let mut rest = line;
        let mut take = self.width;
        loop {
            let (head, tail) = rest.split_at_checked(take.min(rest.len())).unwrap_or((rest, &[]));
            buf.extend_from_slice(head);
            buf.push(b'\n');
            if tail.is_empty() {
                break;
            }
            buf.push(b' ');
            rest = tail;
            take = self.width - 1;
        }
    }
}

fn check_desc(name: &str) -> Result<(), WriteError> {
    if is_valid_attribute_description(name) {
        Ok(())
    } else {
        Err(WriteError::InvalidAttributeDescription(name.to_owned()))
    }
}

fn push_value_spec(line: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        line.push(b':');
    } else if is_safe_string(value) {
        line.extend_from_slice(b": ");
        line.extend_from_slice(value);
    } else {
        line.extend_from_slice(b":: ");
        line.extend_from_slice(STANDARD.encode(value).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Entry;

    #[test]
    fn safe_strings() {
        assert!(is_safe_string(b""));
        assert!(is_safe_string(b"Babs Jensen"));
        for bad in [&b" lead"[..], b":colon", b"<lt", b"trail ", b"a\0b", b"a\rb", b"a\nb", "한".as_bytes()] {
            assert!(!is_safe_string(bad), "{bad:?}");
        }
    }

    #[test]
    fn folds_at_76_and_base64s_unsafe() -> Result<(), WriteError> {
        let rec = Record::Content(Entry {
            dn: "cn=홍길동,dc=example".to_owned(),
            attrs: vec![Attr { name: "description".to_owned(), values: vec![vec![b'x'; 200], b" lead".to_vec()] }],
        });
        let out = String::from_utf8(to_bytes([&rec])?).map_err(|e| WriteError::NoAttributes(e.to_string()))?;
        assert!(out.lines().all(|l| l.len() <= 76), "{out}");
        assert!(out.contains("dn:: "), "{out}");
        assert!(out.contains("description:: IGxlYWQ="), "{out}");
        assert!(out.starts_with("version: 1\n"));
        Ok(())
    }

    #[test]
    fn refuses_unrepresentable() {
        let empty_attr = Record::Content(Entry {
            dn: "cn=x".to_owned(),
            attrs: vec![Attr { name: "cn".to_owned(), values: vec![] }],
        });
        assert!(matches!(to_bytes([&empty_attr]), Err(WriteError::NoValues(_))));
        let reserved = Record::Content(Entry {
            dn: "cn=x".to_owned(),
            attrs: vec![Attr { name: "changetype".to_owned(), values: vec![b"add".to_vec()] }],
        });
        assert!(matches!(to_bytes([&reserved]), Err(WriteError::ReservedFirstAttribute(_))));
        let bad_name = Record::Content(Entry {
            dn: "cn=x".to_owned(),
            attrs: vec![Attr { name: "c n".to_owned(), values: vec![b"a".to_vec()] }],
        });
        assert!(matches!(to_bytes([&bad_name]), Err(WriteError::InvalidAttributeDescription(_))));
    }
}
