//! `--upsert`: an add of an entry that exists becomes the minimal modify to the file's version.

use std::collections::HashSet;

use super::apply::Planned;
use super::{ImportError, dn_key, renamed_dn};
use crate::directory::{Attrs, Change, DirError, Directory, WriteOp};

/// `--upsert`: an add whose entry exists becomes the minimal modify that
/// turns the entry into the file's version (or nothing, if it is already).
/// Adds of DNs an earlier record of the same batch touches stay adds.
pub(super) async fn upsert(dir: &Directory, plan: &mut [Planned]) -> Result<(), ImportError> {
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
        let reads = window.iter().filter_map(|&i| plan.get(i)).map(|p| dir.read(p.op.dn(), &["*"]));
        let found = futures_util::future::join_all(reads).await;
        for (&i, got) in window.iter().zip(found) {
            let existing = match got {
                Ok(e) => e,
                Err(DirError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(p) = plan.get_mut(i) else { continue };
            let WriteOp::Add(dn, attrs) = &p.op else { continue };
            let changes = minimal_modify(&existing, attrs);
            p.unchanged = changes.is_empty();
            p.op = WriteOp::Modify(dn.clone(), changes);
        }
    }
    Ok(())
}

/// The changes turning `existing` into an entry with exactly `wanted`'s
/// user attributes. Attribute descriptions compare case-insensitively,
/// values exactly (bytes). Operational attributes are not read, so they are
/// left alone; so are secret attributes the file leaves out (an export
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
