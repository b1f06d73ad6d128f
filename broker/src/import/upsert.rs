//! `--upsert`: an add of an entry that exists becomes the minimal modify to the file's version.

use std::collections::HashSet;

use super::apply::Planned;
use super::{ImportError, SECRETS, dn_key, renamed_dn, seal_context};
use crate::directory::{Attrs, Change, DirError, Directory, Dn, Entry, WriteOp};
use crate::seal::Keyring;

/// `--upsert`: an add whose entry exists becomes the minimal modify that
/// turns the entry into the file's version (or nothing, if it is already).
/// Adds of DNs an earlier record of the same batch touches stay adds.
pub(super) async fn upsert(
    dir: &Directory,
    plan: &mut [Planned],
    keyring: Option<&Keyring>,
) -> Result<(), ImportError> {
    let mut touched: HashSet<[u8; 16]> = HashSet::new();
    let mut candidates = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let k = dn_key(p.op.dn());
        if matches!(p.op, WriteOp::Add(..)) && !touched.contains(&k) {
            candidates.push(i);
        }
        touched.insert(k);
        if let WriteOp::ModDn { dn, new_rdn, new_superior, .. } = &p.op
            && let Some(t) = renamed_dn(dn, new_rdn, new_superior.as_ref())
        {
            touched.insert(dn_key(&t));
        }
    }
    // Read the existing entries a window at a time, concurrently.
    for window in candidates.chunks(64) {
        let reads = window.iter().filter_map(|&i| plan.get(i)).map(|p| dir.read(p.op.dn(), super::ENTRY_ATTRS));
        let found = futures_util::future::join_all(reads).await;
        for (&i, got) in window.iter().zip(found) {
            let existing = match got {
                Ok(e) => e,
                Err(DirError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(p) = plan.get_mut(i) else { continue };
            let WriteOp::Add(dn, attrs) = &p.op else { continue };
            let mut changes = minimal_modify(&existing, attrs);
            changes.extend(reseal_kept_secrets(dn, &existing, attrs, keyring)?);
            p.unchanged = changes.is_empty();
            p.op = WriteOp::Modify(dn.clone(), changes);
        }
    }
    Ok(())
}

/// A secret the file leaves out stays (see [`minimal_modify`]); if the file
/// changes what it is bound to (owner, parties, data center, OTP
/// parameters), it is sealed again for the file's version, in the same
/// modify (the old value deleted by value, so a concurrent change makes the
/// modify fail rather than be overwritten).
fn reseal_kept_secrets(
    dn: &Dn,
    existing: &Entry,
    wanted: &Attrs,
    keyring: Option<&Keyring>,
) -> Result<Vec<Change>, ImportError> {
    let mut changes = Vec::new();
    for secret in SECRETS {
        let [old] = existing.values(secret) else { continue };
        if wanted.iter().any(|(n, _)| n.eq_ignore_ascii_case(secret)) {
            continue; // the file's own value, checked against the file's attributes
        }
        let bad = |reason: String| ImportError::Reseal { dn: dn.to_string(), reason };
        let mut after = wanted.clone();
        after.push((secret.to_string(), vec![old.clone()]));
        let before_ctx = seal_context(secret, existing).map_err(bad)?;
        let after_ctx = seal_context(secret, &Entry::from_attrs(dn.clone(), &after)).map_err(bad)?;
        if before_ctx == after_ctx {
            continue;
        }
        let Some(keyring) = keyring else {
            return Err(bad(format!(
                "the file changes what {secret} is sealed to: re-sealing it needs the broker keyring ([secrets] \
                 keyring_file)"
            )));
        };
        let sealed = crate::model::Sealed(old.clone());
        let (plain, _) = keyring.open_for_upgrade(&before_ctx, &sealed).map_err(|e| bad(format!("{secret}: {e}")))?;
        let fresh = keyring.seal(&after_ctx, &plain).map_err(|e| bad(e.to_string()))?;
        changes.push(Change::Delete(secret.as_bytes().to_vec(), [old.clone()].into_iter().collect()));
        changes.push(Change::Add(secret.as_bytes().to_vec(), [fresh.0].into_iter().collect()));
    }
    Ok(changes)
}

/// The changes turning `existing` into an entry with exactly `wanted`'s
/// user attributes. Attribute descriptions compare case-insensitively,
/// values exactly (bytes). Operational attributes are not read (but for
/// authzTo and authzFrom, see [`super::ENTRY_ATTRS`]), so they are left alone; so are secret attributes the file leaves out (an export
/// leaves them out: importing it must not wipe passwords and seeds).
pub fn minimal_modify(existing: &crate::directory::Entry, wanted: &Attrs) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut named: HashSet<String> = HashSet::new();
    for (name, values) in wanted {
        let key = name.to_ascii_lowercase();
        if !named.insert(key) {
            continue;
        }
        let have = existing.values(name);
        let want: Vec<&Vec<u8>> = {
            let mut w: Vec<&Vec<u8>> = Vec::new();
            for v in values {
                if !w.contains(&v) {
                    w.push(v);
                }
            }
            w
        };
        let gone: HashSet<Vec<u8>> = have.iter().filter(|v| !want.contains(v)).cloned().collect();
        let new: HashSet<Vec<u8>> = want.iter().filter(|v| !have.contains(v)).map(|v| (*v).clone()).collect();
        if !gone.is_empty() {
            changes.push(Change::Delete(name.as_bytes().to_vec(), gone));
        }
        if !new.is_empty() {
            changes.push(Change::Add(name.as_bytes().to_vec(), new));
        }
    }
    for name in existing.attribute_names() {
        let key = name.to_ascii_lowercase();
        let base = key.split(';').next().unwrap_or(&key);
        if named.contains(&key) || SECRET_ATTRS.contains(&base) {
            continue;
        }
        changes.push(Change::Delete(name.as_bytes().to_vec(), HashSet::new()));
    }
    changes
}

/// Attributes `export` leaves out unless asked, and `--upsert` does not
/// remove when the file leaves them out.
pub const SECRET_ATTRS: &[&str] = &[
    "userpassword",
    "dirbrokerotpsecret",
    "dirbrokerservertotpsecret",
    "dirbrokerpsksecret",
    "dirbrokersealedsshprivatekey",
];

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::directory::Entry;

    /// An entry as the server returns it.
    fn existing(attrs: &[(&str, &[&str])]) -> Entry {
        let attrs: HashMap<String, Vec<String>> =
            attrs.iter().map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect())).collect();
        Entry::from_search(ldap3::SearchEntry {
            dn: "uid=a,ou=people,dc=example,dc=org".into(),
            attrs,
            bin_attrs: HashMap::new(),
        })
        .unwrap()
    }

    fn wanted(attrs: &[(&str, &[&str])]) -> Attrs {
        attrs.iter().map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.as_bytes().to_vec()).collect())).collect()
    }

    fn set(values: &[&str]) -> HashSet<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    #[test]
    fn minimal_modify_changes_only_the_values_that_differ() {
        let have = existing(&[
            ("objectClass", &["top", "person", "inetOrgPerson"]),
            ("uid", &["a"]),
            ("cn", &["Ann"]),
            ("sn", &["Old"]),
            ("mail", &["a@example.org", "b@example.org"]),
            ("description", &["gone from the file"]),
            ("userPassword", &["{SSHA}secret"]),
            ("dirbrokerSealedSshPrivateKey;x-test", &["sealed"]),
        ]);
        let want = wanted(&[
            // Same values in another order, and the attribute spelled otherwise: no change.
            ("objectclass", &["inetOrgPerson", "top", "person"]),
            ("UID", &["a"]),
            ("cn", &["Ann"]),
            ("sn", &["New"]),
            // A repeated value counts once.
            ("mail", &["b@example.org", "c@example.org", "c@example.org"]),
            // Only the first block of a description counts.
            ("Mail", &["z@example.org"]),
        ]);
        assert_eq!(
            minimal_modify(&have, &want),
            vec![
                Change::Delete(b"sn".to_vec(), set(&["Old"])),
                Change::Add(b"sn".to_vec(), set(&["New"])),
                Change::Delete(b"mail".to_vec(), set(&["a@example.org"])),
                Change::Add(b"mail".to_vec(), set(&["c@example.org"])),
                // Left out of the file: removed, except secrets (even with options).
                Change::Delete(b"description".to_vec(), set(&[])),
            ]
        );
    }

    #[test]
    fn minimal_modify_of_an_entry_already_as_the_file_has_it_is_empty() {
        let have = existing(&[
            ("objectClass", &["device"]),
            ("cn", &["h1", "h1.example.org"]),
            ("dirbrokerOtpSecret", &["sealed"]),
        ]);
        assert_eq!(
            minimal_modify(&have, &wanted(&[("objectClass", &["device"]), ("CN", &["h1.example.org", "h1"])])),
            []
        );
        // Values compare as bytes: a case change is a change.
        assert_eq!(
            minimal_modify(&have, &wanted(&[("objectClass", &["device"]), ("cn", &["H1", "h1.example.org"])])),
            vec![Change::Delete(b"cn".to_vec(), set(&["h1"])), Change::Add(b"cn".to_vec(), set(&["H1"]))]
        );
    }
}
