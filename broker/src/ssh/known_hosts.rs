//! `KnownHostsCommand`: known_hosts lines for a host's keys from LDAP, so a
//! client verifies a server it has never seen without a copied file.
//!
//! ```text
//!  ssh ── dirbroker ssh known-hosts %H %p ──► LDAP: ou=hosts, cn=%H or ipHostNumber=%H
//!      ◄─ "%H type base64" lines ("[%H]:%p …" off port 22)
//! ```

use super::keys::SshKey;
use crate::directory::{DirError, Directory, Filter, Result, Scope};

/// known_hosts lines for `host` (a name or address as ssh gives it in `%H`).
/// Returns the lines and, for the log, the keys left out.
pub async fn lookup(dir: &Directory, host: &str, port: Option<u16>) -> Result<(Vec<String>, Vec<String>)> {
    crate::directory::dn::check_value("host", host)?;
    if host.contains(|c: char| c.is_whitespace() || c == ',' || c == '#') {
        return Err(DirError::bad_input("host", "contains white space, ',' or '#'"));
    }
    let filter = Filter::and([
        Filter::object_class("ldapPublicKey"),
        Filter::or([Filter::eq("cn", host), Filter::eq("ipHostNumber", host)]),
    ]);
    let entries =
        dir.search(&dir.layout().hosts, Scope::Subtree, &filter, &["sshPublicKey", "dirbrokerDisabled"]).await?;
    let name = match port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_string(),
    };
    let mut lines = Vec::new();
    let mut skipped = Vec::new();
    for e in entries {
        if e.bool("dirbrokerDisabled")?.unwrap_or(false) {
            skipped.push(format!("{}: host disabled", e.dn));
            continue;
        }
        for v in e.strs("sshPublicKey")? {
            match SshKey::parse(v) {
                Ok(k) if k.options().is_none() => {
                    let line = format!("{name} {} {}", k.key_type(), k.blob_base64());
                    if !lines.contains(&line) {
                        lines.push(line);
                    }
                }
                Ok(k) => skipped.push(format!("{}: host key with options", k.fingerprint())),
                Err(err) => skipped.push(format!("{}: {err}", e.dn)),
            }
        }
    }
    Ok((lines, skipped))
}
