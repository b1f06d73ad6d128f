//! The directory's schema as data: attribute types and object classes parsed
//! from RFC 4512 descriptions (the server's `cn=Subschema`, or schema LDIF
//! files offline), and checks of an entry against them before it is written.

use std::collections::{HashMap, HashSet};

use crate::directory::{DirError, Directory, Dn, Filter, Scope};

#[derive(Clone, Debug, Default)]
struct AttrType {
    names: Vec<String>,
    sup: Option<String>,
    single: bool,
    /// `USAGE` other than userApplications: allowed on any entry, whatever its classes.
    operational: bool,
    /// The `EQUALITY` rule (lower case), if the type names one (else its supertype's).
    equality: Option<String>,
}

/// Attribute types slapd builds in and users may set, but hides from
/// `cn=Subschema` (`SLAP_AT_HIDE`): an LDIF that ldapadd loads may carry
/// them. Operational (`distributedOperation`), so no object class is needed.
const HIDDEN_USER_SETTABLE: [&str; 2] = [
    "( 1.3.6.1.4.1.4203.666.1.8 NAME ( 'authzTo' 'saslAuthzTo' ) USAGE distributedOperation )",
    "( 1.3.6.1.4.1.4203.666.1.9 NAME ( 'authzFrom' 'saslAuthzFrom' ) USAGE distributedOperation )",
];

#[derive(Clone, Debug, Default)]
struct ObjClass {
    names: Vec<String>,
    sups: Vec<String>,
    must: Vec<String>,
    may: Vec<String>,
}

/// What a set of object classes allows: computed once per distinct set.
#[derive(Debug, Default)]
struct Rules {
    unknown: Vec<String>,
    extensible: bool,
    must: HashSet<String>,
    may: HashSet<String>,
}

/// Attribute types and object classes by lower-cased name and OID.
#[derive(Debug, Default)]
pub struct Subschema {
    attrs: HashMap<String, AttrType>,
    classes: HashMap<String, ObjClass>,
    rules: std::sync::Mutex<HashMap<Vec<String>, std::sync::Arc<Rules>>>,
}

fn tokens(def: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = def.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' | '$' => out.push(c.to_string()),
            '\'' => {
                let mut s = String::new();
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    s.push(d);
                }
                out.push(format!("'{s}"));
            }
            c if c.is_whitespace() => {}
            _ => {
                let mut s = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_whitespace() || d == '(' || d == ')' || d == '$' || d == '\'' {
                        break;
                    }
                    s.push(d);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    out
}

/// The value list after keyword `kw`: one item or `( a $ b )`.
fn list_after(toks: &[String], kw: &str) -> Vec<String> {
    let Some(i) = toks.iter().position(|t| t == kw) else { return Vec::new() };
    let clean = |t: &str| t.trim_start_matches('\'').to_ascii_lowercase();
    match toks.get(i + 1).map(String::as_str) {
        Some("(") => {
            toks.iter().skip(i + 2).take_while(|t| *t != ")").filter(|t| *t != "$").map(|t| clean(t)).collect()
        }
        Some(t) => vec![clean(t)],
        None => Vec::new(),
    }
}

impl Subschema {
    /// Add one `attributeTypes` description.
    pub fn add_attribute_type(&mut self, def: &str) {
        let toks = tokens(def);
        let Some(oid) = toks.get(1).map(|t| t.to_ascii_lowercase()) else { return };
        let at = AttrType {
            names: list_after(&toks, "NAME"),
            sup: list_after(&toks, "SUP").into_iter().next(),
            single: toks.iter().any(|t| t == "SINGLE-VALUE"),
            operational: list_after(&toks, "USAGE").first().is_some_and(|u| u != "userapplications"),
            equality: list_after(&toks, "EQUALITY").into_iter().next(),
        };
        for key in at.names.iter().cloned().chain(std::iter::once(oid)) {
            self.attrs.insert(key, at.clone());
        }
    }

    /// Add one `objectClasses` description.
    pub fn add_object_class(&mut self, def: &str) {
        let toks = tokens(def);
        let Some(oid) = toks.get(1).map(|t| t.to_ascii_lowercase()) else { return };
        let oc = ObjClass {
            names: list_after(&toks, "NAME"),
            sups: list_after(&toks, "SUP"),
            must: list_after(&toks, "MUST"),
            may: list_after(&toks, "MAY"),
        };
        for key in oc.names.iter().cloned().chain(std::iter::once(oid)) {
            self.classes.insert(key, oc.clone());
        }
    }

    /// Read the server's subschema (readable by anyone on a stock slapd).
    pub async fn from_directory(dir: &Directory) -> Result<Subschema, DirError> {
        let base = Dn::parse("cn=Subschema")?;
        let found = dir.search(&base, Scope::Base, &Filter::any(), &["attributeTypes", "objectClasses"]).await?;
        let mut s = Subschema::default();
        if let Some(e) = found.first() {
            for d in e.strs("attributeTypes")? {
                s.add_attribute_type(d);
            }
            for d in e.strs("objectClasses")? {
                s.add_object_class(d);
            }
            s.add_hidden();
        }
        Ok(s)
    }

    /// Parse cn=config schema LDIF text (`olcAttributeTypes:`/`olcObjectClasses:`).
    pub fn add_schema_ldif(&mut self, text: &str) {
        let reader = dirbroker_ldif::LdifReader::new(std::io::Cursor::new(text.as_bytes()));
        for rec in reader.flatten() {
            let attrs = match rec {
                dirbroker_ldif::Record::Content(e) => e.attrs,
                dirbroker_ldif::Record::Change(c) => match c.kind {
                    dirbroker_ldif::ChangeKind::Add(a) => a,
                    _ => continue,
                },
            };
            for a in attrs {
                let name = a.name.to_ascii_lowercase();
                for v in a.values {
                    let v = String::from_utf8_lossy(&v);
                    // cn=config values may carry an ordering prefix: "{3}( 1.2.3 …".
                    let v = v.trim_start_matches(|c: char| c == '{' || c.is_ascii_digit() || c == '}');
                    match name.as_str() {
                        "olcattributetypes" => self.add_attribute_type(v),
                        "olcobjectclasses" => self.add_object_class(v),
                        _ => {}
                    }
                }
            }
        }
    }

    fn add_hidden(&mut self) {
        for at in HIDDEN_USER_SETTABLE {
            if !self.attrs.contains_key(&tokens(at).get(1).map(|t| t.to_ascii_lowercase()).unwrap_or_default()) {
                self.add_attribute_type(at);
            }
        }
    }

    /// Debian's stock schemas plus the ones dirbroker ships (for offline checks).
    pub fn offline() -> Subschema {
        let mut s = Subschema::default();
        for name in ["core", "cosine", "inetorgperson", "nis"] {
            if let Ok(text) = std::fs::read_to_string(format!("/etc/ldap/schema/{name}.ldif")) {
                s.add_schema_ldif(&text);
            }
        }
        s.add_schema_ldif(crate::schema::OPENSSH_LPK_LDIF);
        s.add_schema_ldif(crate::schema::DIRBROKER_LDIF);
        // Built into slapd (commented out in core.ldif as "system schema").
        for at in [
            "( 2.5.4.0 NAME 'objectClass' )",
            "( 2.5.4.1 NAME ( 'aliasedObjectName' 'aliasedEntryName' ) SINGLE-VALUE )",
            "( 2.5.4.41 NAME 'name' EQUALITY caseIgnoreMatch )",
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
            "( 2.5.4.13 NAME 'description' EQUALITY caseIgnoreMatch )",
            "( 2.5.4.49 NAME 'distinguishedName' )",
            "( 2.5.4.34 NAME 'seeAlso' SUP distinguishedName )",
            "( 2.5.4.35 NAME 'userPassword' EQUALITY octetStringMatch )",
            "( 0.9.2342.19200300.100.1.1 NAME ( 'uid' 'userid' ) EQUALITY caseIgnoreMatch )",
            "( 1.3.6.1.4.1.250.1.57 NAME 'labeledURI' EQUALITY caseExactMatch )",
            "( 1.3.6.1.1.1.1.0 NAME 'uidNumber' EQUALITY integerMatch SINGLE-VALUE )",
            "( 1.3.6.1.1.1.1.1 NAME 'gidNumber' EQUALITY integerMatch SINGLE-VALUE )",
        ] {
            s.add_attribute_type(at);
        }
        s.add_object_class("( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )");
        s.add_object_class("( 2.5.6.1 NAME 'alias' SUP top STRUCTURAL MUST aliasedObjectName )");
        s.add_object_class("( 1.3.6.1.4.1.1466.101.120.111 NAME 'extensibleObject' SUP top AUXILIARY )");
        s.add_hidden();
        s
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// The attribute type and its supertypes, as canonical (first) names.
    fn attr_chain(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Some(name.to_ascii_lowercase());
        while let Some(n) = cur {
            if out.len() > 16 {
                break;
            }
            match self.attrs.get(&n) {
                Some(at) => {
                    out.push(at.names.first().cloned().unwrap_or(n));
                    cur = at.sup.clone();
                }
                None => {
                    out.push(n);
                    cur = None;
                }
            }
        }
        out
    }

    fn canonical_attr(&self, name: &str) -> String {
        let n = name.to_ascii_lowercase();
        self.attrs.get(&n).and_then(|a| a.names.first().cloned()).unwrap_or(n)
    }

    fn rules_for(&self, classes: Vec<String>) -> std::sync::Arc<Rules> {
        if let Some(r) = self.rules.lock().ok().and_then(|m| m.get(&classes).cloned()) {
            return r;
        }
        let mut rules = Rules::default();
        // Every class and its superclasses.
        let mut all: HashSet<String> = HashSet::new();
        let mut todo = classes.clone();
        while let Some(c) = todo.pop() {
            match self.classes.get(&c) {
                Some(oc) => {
                    if all.insert(oc.names.first().cloned().unwrap_or(c.clone())) {
                        todo.extend(oc.sups.iter().cloned());
                    }
                }
                None => rules.unknown.push(c),
            }
        }
        rules.extensible = all.contains("extensibleobject");
        for c in &all {
            if let Some(oc) = self.classes.get(c) {
                rules.must.extend(oc.must.iter().map(|a| self.canonical_attr(a)));
                rules.may.extend(oc.may.iter().map(|a| self.canonical_attr(a)));
            }
        }
        let rules = std::sync::Arc::new(rules);
        if let Ok(mut m) = self.rules.lock() {
            m.insert(classes, rules.clone());
        }
        rules
    }

    /// Check an entry about to be added; every problem is returned.
    pub fn check_entry(&self, attrs: &[(String, Vec<Vec<u8>>)]) -> Vec<String> {
        self.check_entry_assuming(attrs, &[])
    }

    /// [`Subschema::check_entry`], with the attributes named in `kept`
    /// (lower case) counted as present when the file leaves them out: an
    /// `--upsert` of an existing entry keeps its secrets.
    pub fn check_entry_assuming(&self, attrs: &[(String, Vec<Vec<u8>>)], kept: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut classes: Vec<String> = attrs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("objectClass"))
            .flat_map(|(_, vs)| vs.iter().map(|v| String::from_utf8_lossy(v).to_ascii_lowercase()))
            .collect();
        classes.sort();
        classes.dedup();
        let rules = self.rules_for(classes);
        problems.extend(rules.unknown.iter().map(|c| format!("unknown object class {c:?}")));
        let (extensible, must, may) = (rules.extensible, &rules.must, &rules.may);
        let mut present: HashSet<String> = HashSet::new();
        for (desc, values) in attrs {
            let base = desc.split(';').next().unwrap_or(desc).to_ascii_lowercase();
            if !self.attrs.contains_key(&base) {
                problems.push(format!("unknown attribute {desc:?}"));
                continue;
            }
            let chain = self.attr_chain(&base);
            present.extend(chain.iter().cloned());
            let operational = self.attrs.get(&base).is_some_and(|a| a.operational);
            let allowed = extensible || operational || chain.iter().any(|a| must.contains(a) || may.contains(a));
            if !allowed {
                problems.push(format!("attribute {desc:?} is not allowed by the object classes"));
            }
            if self.attrs.get(&base).is_some_and(|a| a.single) && values.len() > 1 {
                problems.push(format!("{desc} is single-valued but has {} values", values.len()));
            }
        }
        let mut missing: Vec<&String> =
            must.iter().filter(|m| !present.contains(*m) && !kept.contains(&m.as_str())).collect();
        missing.sort();
        for m in missing {
            problems.push(format!("required attribute {m} is missing"));
        }
        problems.extend(check_our_syntaxes(attrs));
        problems
    }
}

impl Subschema {
    /// The equality rule of an attribute type (lower case), its own or its
    /// nearest supertype's.
    fn equality(&self, attr: &str) -> Option<&str> {
        let mut cur = self.attrs.get(&attr.to_ascii_lowercase());
        for _ in 0..16 {
            let at = cur?;
            if let Some(rule) = &at.equality {
                return Some(rule);
            }
            cur = at.sup.as_ref().and_then(|s| self.attrs.get(s));
        }
        None
    }

    /// Two values of `attr` (a description; options ignored) that the
    /// server's equality rule certainly calls equal although their bytes
    /// differ, with the rule's name: for the string rules after RFC 4518's
    /// insignificant-space handling (and case folding where the rule ignores
    /// case), telephone and numeric strings without their spaces (and
    /// hyphens), integers by value, booleans without case. Other rules (DN,
    /// octet string, …) compare bytes here: slapd finds the rest.
    pub fn equal_values<'v>(&self, attr: &str, values: &'v [Vec<u8>]) -> Option<(&'v [u8], &'v [u8], &'static str)> {
        let base = attr.split(';').next().unwrap_or(attr);
        let rule = self.equality(base)?;
        let shown = match rule {
            "caseignorematch" => "caseIgnoreMatch",
            "caseignoreia5match" => "caseIgnoreIA5Match",
            "caseignorelistmatch" => "caseIgnoreListMatch",
            "caseexactmatch" => "caseExactMatch",
            "caseexactia5match" => "caseExactIA5Match",
            "numericstringmatch" => "numericStringMatch",
            "telephonenumbermatch" => "telephoneNumberMatch",
            "integermatch" => "integerMatch",
            "booleanmatch" => "booleanMatch",
            _ => return None,
        };
        let key = |v: &[u8]| -> Option<String> {
            let t = std::str::from_utf8(v).ok()?;
            let spaced = || t.split_whitespace().collect::<Vec<_>>().join(" ");
            Some(match shown {
                "caseIgnoreMatch" | "caseIgnoreIA5Match" | "caseIgnoreListMatch" => spaced().to_lowercase(),
                "caseExactMatch" | "caseExactIA5Match" => spaced(),
                "numericStringMatch" => t.chars().filter(|c| *c != ' ').collect(),
                "telephoneNumberMatch" => {
                    t.chars().filter(|c| *c != ' ' && *c != '-').collect::<String>().to_lowercase()
                }
                "integerMatch" => t.trim().parse::<i128>().ok()?.to_string(),
                _ => t.to_ascii_uppercase(),
            })
        };
        let keys: Vec<Option<String>> = values.iter().map(|v| key(v)).collect();
        for (i, (v, k)) in values.iter().zip(&keys).enumerate() {
            let Some(k) = k else { continue };
            for (w, l) in values.iter().zip(&keys).take(i) {
                if l.as_ref() == Some(k) && w != v {
                    return Some((w.as_slice(), v.as_slice(), shown));
                }
            }
        }
        None
    }

    /// The naming attribute of `dn` (its first RDN, when single-valued) is
    /// single-valued and the entry gives it another value: slapd refuses the
    /// add (namingViolation). Values compare without case and surrounding
    /// spaces (the equality rules of the naming attributes in use: `dc`,
    /// `uidNumber`, `cn`…; a number written `05` against `5` is not caught).
    pub fn check_rdn(&self, dn: &Dn, attrs: &[(String, Vec<Vec<u8>>)]) -> Option<String> {
        // The naming attribute's type first: most (uid, cn, ou) are multi-valued.
        let rdn_type = dn.as_str().split('=').next()?.trim();
        if !self.attrs.get(&rdn_type.to_ascii_lowercase()).is_some_and(|at| at.single) {
            return None;
        }
        let (rdn_attr, rdn_value) = dn.first_rdn()?;
        let canonical = self.canonical_attr(&rdn_attr);
        let fold = |v: &str| v.trim().to_lowercase();
        let want = fold(&rdn_value);
        let given: Vec<String> = attrs
            .iter()
            .filter(|(n, _)| {
                let base = n.split(';').next().unwrap_or(n);
                self.canonical_attr(base) == canonical
            })
            .flat_map(|(_, vs)| vs.iter().map(|v| String::from_utf8_lossy(v).into_owned()))
            .collect();
        let other = given.iter().find(|v| fold(v) != want)?;
        Some(format!(
            "the RDN gives the single-valued naming attribute {rdn_attr} the value {rdn_value:?}, the entry {other:?} \
             (the directory refuses that: namingViolation)"
        ))
    }

    /// Check the attributes a modify record names: unknown attribute types,
    /// and values it adds or puts in place that dirbroker could not use.
    /// (Whether the classes allow them depends on the entry: slapd says.)
    pub fn check_changes(&self, changes: &[(String, Vec<Vec<u8>>)]) -> Vec<String> {
        let mut problems = Vec::new();
        for (desc, _) in changes {
            let base = desc.split(';').next().unwrap_or(desc).to_ascii_lowercase();
            if !self.attrs.is_empty() && !self.attrs.contains_key(&base) {
                problems.push(format!("unknown attribute {desc:?}"));
            }
        }
        problems.extend(check_our_syntaxes(changes));
        problems
    }
}

/// Values of dirbroker's own attributes (and SSH keys, certificates) that
/// the server's syntaxes would accept but dirbroker could not use.
fn check_our_syntaxes(attrs: &[(String, Vec<Vec<u8>>)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (desc, values) in attrs {
        let base = desc.split(';').next().unwrap_or(desc).to_ascii_lowercase();
        for v in values {
            let text = std::str::from_utf8(v).ok();
            let problem = match base.as_str() {
                "sshpublickey" => match text.map(crate::ssh::SshKey::parse) {
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(format!("sshPublicKey: {e}")),
                    None => Some("sshPublicKey is not UTF-8".into()),
                },
                "usercertificate" | "cacertificate" => {
                    x509_parser::parse_x509_certificate(v).err().map(|e| format!("{desc}: not a DER certificate ({e})"))
                }
                "dirbrokeruserlevel" => match text.and_then(|t| t.parse::<i64>().ok()) {
                    Some(1..=4) => None,
                    _ => Some("dirbrokerUserLevel must be 1 to 4".into()),
                },
                "dirbrokerotpdigits" => match text.and_then(|t| t.parse::<i64>().ok()) {
                    Some(6..=8) => None,
                    _ => Some("dirbrokerOtpDigits must be 6 to 8".into()),
                },
                "dirbrokertokentype" => match text.map(|t| t.to_ascii_lowercase()) {
                    Some(t) if ["hotp", "totp", "skey"].contains(&t.as_str()) => None,
                    _ => Some("dirbrokerTokenType must be hotp, totp or skey".into()),
                },
                _ => None,
            };
            problems.extend(problem);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: &str, vs: &[&str]) -> (String, Vec<Vec<u8>>) {
        (n.to_string(), vs.iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    /// Every attribute a class names is defined offline (slapd builds some in).
    #[test]
    fn offline_schema_is_complete() {
        let s = Subschema::offline();
        let mut missing: Vec<String> = s
            .classes
            .values()
            .flat_map(|c| c.must.iter().chain(c.may.iter()))
            .filter(|a| !s.attrs.contains_key(*a))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "undefined offline: {missing:?}");
    }

    /// authzTo and authzFrom are not in cn=Subschema, yet users set them: known, on any entry.
    #[test]
    fn hidden_operational_attributes_are_known_and_allowed_anywhere() {
        let s = Subschema::offline();
        let entry = [
            a("objectClass", &["inetOrgPerson"]),
            a("uid", &["alice"]),
            a("cn", &["Alice"]),
            a("sn", &["L"]),
            a("authzTo", &["dn:uid=x,dc=example,dc=org"]),
            a("saslAuthzFrom", &["dn.exact:uid=y,dc=example,dc=org"]),
        ];
        assert_eq!(s.check_entry(&entry), Vec::<String>::new());
        assert_eq!(s.check_changes(&[a("authzFrom", &["dn:uid=z,dc=example,dc=org"])]), Vec::<String>::new());
    }

    #[test]
    fn an_rdn_conflicting_with_its_single_valued_attribute_is_found() {
        let s = Subschema::offline();
        let dn = |d: &str| Dn::parse(d).unwrap();
        let host = [a("objectClass", &["dcObject", "organizationalUnit"]), a("ou", &["a"]), a("dc", &["b"])];
        assert_eq!(
            s.check_rdn(&dn("dc=a,dc=example,dc=org"), &host).as_deref(),
            Some(
                "the RDN gives the single-valued naming attribute dc the value \"a\", the entry \"b\" (the directory \
                 refuses that: namingViolation)"
            )
        );
        // The same value in another case, a missing value (slapd adds it) and
        // a multi-valued naming attribute are fine.
        let same = [a("objectClass", &["dcObject"]), a("DC", &["A "])];
        assert_eq!(s.check_rdn(&dn("DC=a,dc=example,dc=org"), &same), None);
        assert_eq!(s.check_rdn(&dn("dc=a,dc=example,dc=org"), &[a("objectClass", &["dcObject"])]), None);
        assert_eq!(s.check_rdn(&dn("cn=a,dc=example,dc=org"), &[a("cn", &["b"])]), None);
        let posix = [a("uidNumber", &["6"])];
        assert!(s.check_rdn(&dn("uidNumber=5,ou=people,dc=example,dc=org"), &posix).is_some());
    }

    #[test]
    fn entries_are_checked_against_the_shipped_schema() {
        let s = Subschema::offline();
        assert!(!s.is_empty());
        let ok = [
            a("objectClass", &["inetOrgPerson", "ldapPublicKey", "dirbrokerUser"]),
            a("uid", &["alice"]),
            a("cn", &["Alice"]),
            a("sn", &["L"]),
            a("dirbrokerUserLevel", &["2"]),
        ];
        assert_eq!(s.check_entry(&ok), Vec::<String>::new());
        let bad = [
            a("objectClass", &["inetOrgPerson", "noSuchClass"]),
            a("uid", &["alice"]),
            a("cn", &["Alice"]),
            a("dirbrokerUserLevel", &["2", "3"]),
            a("frobnicate", &["x"]),
            a("ipHostNumber", &["10.0.0.1"]),
            a("sshPublicKey", &["not a key"]),
        ];
        let p = s.check_entry(&bad).join("\n");
        for want in [
            "noSuchClass",
            "single-valued",
            "unknown attribute \"frobnicate\"",
            "ipHostNumber",
            "required attribute sn",
            "sshPublicKey",
        ] {
            assert!(p.to_lowercase().contains(&want.to_lowercase()), "{want} missing in:\n{p}");
        }
    }
}
