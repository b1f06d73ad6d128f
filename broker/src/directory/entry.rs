//! A directory entry as read back: a DN and its attribute values as bytes,
//! with typed accessors that name the entry and attribute when a value is
//! not what dirbroker expects.

use std::collections::BTreeMap;

use ldap3::SearchEntry;
use time::OffsetDateTime;

use super::dn::Dn;
use super::error::{DirError, Result};
use super::values;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    /// Attribute description lower-cased (options included, e.g.
    /// `usercertificate;binary`) to the description as the server spelled
    /// it and its values.
    attrs: BTreeMap<String, (String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// An entry read back through a Pre-/Post-Read control (RFC 4527), which
    /// carries the attributes but not the DN.
    pub(crate) fn from_read_back(dn: Dn, read: ldap3::controls::ReadEntryResp) -> Entry {
        let mut attrs: BTreeMap<String, (String, Vec<Vec<u8>>)> = BTreeMap::new();
        let texts = read.attrs.into_iter().map(|(n, v)| (n, v.into_iter().map(String::into_bytes).collect::<Vec<_>>()));
        for (name, vals) in texts.chain(read.bin_attrs) {
            let slot = attrs.entry(name.to_ascii_lowercase()).or_insert_with(|| (name.clone(), Vec::new()));
            slot.1.extend(vals);
        }
        Entry { dn, attrs }
    }

    /// An entry as an add record would create it (for checks before writing).
    pub(crate) fn from_attrs(dn: Dn, attrs: &super::Attrs) -> Entry {
        let mut out: BTreeMap<String, (String, Vec<Vec<u8>>)> = BTreeMap::new();
        for (name, vals) in attrs {
            let slot = out.entry(name.to_ascii_lowercase()).or_insert_with(|| (name.clone(), Vec::new()));
            slot.1.extend(vals.iter().cloned());
        }
        Entry { dn, attrs: out }
    }

    pub(crate) fn from_search(se: SearchEntry) -> Result<Entry> {
        let dn = Dn::parse(&se.dn).map_err(|e| DirError::MalformedEntry {
            dn: se.dn.clone(),
            attr: "dn".into(),
            reason: e.to_string(),
        })?;
        let mut attrs: BTreeMap<String, (String, Vec<Vec<u8>>)> = BTreeMap::new();
        for (name, vals) in se.attrs {
            let slot = attrs.entry(name.to_ascii_lowercase()).or_insert_with(|| (name.clone(), Vec::new()));
            slot.1.extend(vals.into_iter().map(String::into_bytes));
        }
        for (name, vals) in se.bin_attrs {
            let slot = attrs.entry(name.to_ascii_lowercase()).or_insert_with(|| (name.clone(), Vec::new()));
            slot.1.extend(vals);
        }
        Ok(Entry { dn, attrs })
    }

    /// Every value of `attr` (exact description, case-insensitive).
    pub fn values(&self, attr: &str) -> &[Vec<u8>] {
        self.attrs.get(&attr.to_ascii_lowercase()).map(|(_, v)| v.as_slice()).unwrap_or(&[])
    }

    pub fn has(&self, attr: &str) -> bool {
        !self.values(attr).is_empty()
    }

    /// Attribute descriptions present on the entry, as the server spelled them.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attrs.values().map(|(name, _)| name.as_str())
    }

    fn malformed(&self, attr: &str, reason: impl Into<String>) -> DirError {
        DirError::MalformedEntry { dn: self.dn.to_string(), attr: attr.to_string(), reason: reason.into() }
    }

    /// All values as UTF-8 strings.
    pub fn strs(&self, attr: &str) -> Result<Vec<&str>> {
        self.values(attr)
            .iter()
            .map(|v| std::str::from_utf8(v).map_err(|_| self.malformed(attr, "value is not UTF-8")))
            .collect()
    }

    /// The value of a single-valued attribute, if present.
    pub fn bytes(&self, attr: &str) -> Result<Option<&[u8]>> {
        match self.values(attr) {
            [] => Ok(None),
            [one] => Ok(Some(one.as_slice())),
            many => Err(self.malformed(attr, format!("expected one value, found {}", many.len()))),
        }
    }

    pub fn str(&self, attr: &str) -> Result<Option<&str>> {
        self.bytes(attr)?
            .map(|v| std::str::from_utf8(v).map_err(|_| self.malformed(attr, "value is not UTF-8")))
            .transpose()
    }

    pub fn required_str(&self, attr: &str) -> Result<&str> {
        self.str(attr)?.ok_or_else(|| self.malformed(attr, "missing"))
    }

    pub fn int(&self, attr: &str) -> Result<Option<i64>> {
        self.str(attr)?
            .map(|s| s.parse::<i64>().map_err(|_| self.malformed(attr, format!("{s:?} is not an INTEGER"))))
            .transpose()
    }

    pub fn bool(&self, attr: &str) -> Result<Option<bool>> {
        self.str(attr)?
            .map(|s| match s {
                "TRUE" => Ok(true),
                "FALSE" => Ok(false),
                other => Err(self.malformed(attr, format!("{other:?} is not TRUE or FALSE"))),
            })
            .transpose()
    }

    pub fn time(&self, attr: &str) -> Result<Option<OffsetDateTime>> {
        self.str(attr)?.map(|s| values::parse_generalized_time(s).map_err(|r| self.malformed(attr, r))).transpose()
    }

    pub fn dn_value(&self, attr: &str) -> Result<Option<Dn>> {
        self.str(attr)?.map(|s| Dn::parse(s).map_err(|e| self.malformed(attr, e.to_string()))).transpose()
    }

    pub fn dns(&self, attr: &str) -> Result<Vec<Dn>> {
        self.strs(attr)?.into_iter().map(|s| Dn::parse(s).map_err(|e| self.malformed(attr, e.to_string()))).collect()
    }

    /// Whether `objectClass` holds `class` (case-insensitive).
    pub fn has_class(&self, class: &str) -> bool {
        self.values("objectClass").iter().any(|v| v.eq_ignore_ascii_case(class.as_bytes()))
    }
}
