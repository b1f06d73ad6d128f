//! The schema and ACL files shipped in `schema/`, embedded so the binary can
//! set up a directory without the source tree.

/// cn=config form of the dirbroker schema.
pub const DIRBROKER_LDIF: &str = include_str!("../../schema/dirbroker.ldif");
/// slapd.conf form of the dirbroker schema.
pub const DIRBROKER_SCHEMA: &str = include_str!("../../schema/dirbroker.schema");
/// openssh-lpk (`sshPublicKey`, `ldapPublicKey`), for servers that lack it.
pub const OPENSSH_LPK_LDIF: &str = include_str!("../../schema/openssh-lpk.ldif");
/// Access control for the data database, written for `dc=example,dc=org` in `olcDatabase={1}mdb`.
pub const ACL_LDIF: &str = include_str!("../../schema/acl.ldif");
/// Equality indexes for the data database.
pub const INDEXES_LDIF: &str = include_str!("../../schema/indexes.ldif");

/// The unique overlay on uidNumber (`ou=people`) and gidNumber (`ou=groups`),
/// written for `dc=example,dc=org` in `olcDatabase={1}mdb`.
pub const UNIQUE_LDIF: &str = include_str!("../../schema/unique.ldif");

/// The suffix the shipped ACL file is written for.
pub const ACL_SUFFIX: &str = "dc=example,dc=org";

/// The ACL file for another suffix and database (e.g. `olcDatabase={1}mdb,cn=config`).
pub fn acl_ldif_for(suffix: &str, database_dn: &str) -> String {
    ACL_LDIF.replace("olcDatabase={1}mdb,cn=config", database_dn).replace(ACL_SUFFIX, suffix)
}

/// The index file for another database.
pub fn indexes_ldif_for(database_dn: &str) -> String {
    INDEXES_LDIF.replace("olcDatabase={1}mdb,cn=config", database_dn)
}

/// The unique-overlay file for another suffix and database; without
/// `load_module` the record that loads the `unique` module is left out (a
/// slapd with the overlay built in, or the module loaded already).
pub fn unique_ldif_for(suffix: &str, database_dn: &str, load_module: bool) -> String {
    let text = UNIQUE_LDIF.replace("olcDatabase={1}mdb,cn=config", database_dn).replace(ACL_SUFFIX, suffix);
    if load_module {
        return text;
    }
    let mut records: Vec<&str> = text.split("\n\n").collect();
    records.retain(|r| !r.contains("olcModuleLoad: unique"));
    records.join("\n\n")
}

/// Object classes every dirbroker schema load defines; used to check a server.
pub const REQUIRED_CLASSES: &[&str] = &[
    "dirbrokerUser",
    "dirbrokerOtpToken",
    "dirbrokerHost",
    "dirbrokerDataCenter",
    "dirbrokerPhysicalServer",
    "dirbrokerService",
    "dirbrokerAgent",
    "dirbrokerPreSharedKey",
    "dirbrokerIdCounter",
    "dirbrokerOidcClient",
    "ldapPublicKey",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms must define the same attribute types and object classes.
    #[test]
    fn ldif_and_schema_forms_agree() {
        fn defs(text: &str, prefixes: &[&str]) -> Vec<String> {
            let mut out = Vec::new();
            let mut cur: Option<String> = None;
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                if line.starts_with(' ') || line.starts_with('\t') {
                    if let Some(c) = cur.as_mut() {
                        c.push(' ');
                        c.push_str(line.trim());
                    }
                    continue;
                }
                out.extend(cur.take());
                cur = prefixes.iter().find_map(|p| line.strip_prefix(p)).map(|rest| rest.trim().to_string());
            }
            out.extend(cur);
            out.into_iter().map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
        }
        let ldif = defs(DIRBROKER_LDIF, &["olcAttributeTypes:", "olcObjectClasses:"]);
        let conf = defs(DIRBROKER_SCHEMA, &["attributetype", "objectclass"]);
        assert!(ldif.len() > 40, "found only {} definitions", ldif.len());
        assert_eq!(ldif, conf);
        for class in REQUIRED_CLASSES.iter().filter(|c| c.starts_with("dirbroker")) {
            assert!(DIRBROKER_LDIF.contains(&format!("'{class}'")), "{class} missing");
        }
    }

    #[test]
    fn acl_rewrites_suffix_everywhere() {
        let acl = acl_ldif_for("o=corp", "olcDatabase={2}mdb,cn=config");
        assert!(!acl.contains(ACL_SUFFIX));
        assert!(acl.contains("cn=broker,ou=system,o=corp"));
        assert!(acl.contains("dn: olcDatabase={2}mdb,cn=config"));
    }
}
