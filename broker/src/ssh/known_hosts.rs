//! `KnownHostsCommand`: known_hosts lines for a host's keys from LDAP, so a
//! client verifies a server it has never seen without a copied file.
//!
//! ```text
//!  ssh ── dirbroker ssh known-hosts %H ──► LDAP: ou=hosts, cn=host or ipHostNumber=host
//!      ◄─ "host type base64" lines ("[host]:port …" off port 22)
//!
//! ssh passes `%H` as `[host]:port` when the port is not 22; a bare host and
//! a separate port argument are accepted too.
//! ```

use super::keys::SshKey;
use crate::directory::{DirError, Directory, Filter, Result, Scope};

/// Split ssh's `%H`, which is `[host]:port` off port 22, into host and port.
pub fn split_host_port(h: &str) -> (&str, Option<u16>) {
    if let Some(rest) = h.strip_prefix('[')
        && let Some((host, port)) = rest.rsplit_once("]:")
        && let Ok(port) = port.parse::<u16>()
    {
        return (host, Some(port));
    }
    (h, None)
}

/// known_hosts lines for `host` (a name or address as ssh gives it in `%H`,
/// `[host]:port` included). Returns the lines and, for the log, the keys left out.
pub async fn lookup(dir: &Directory, host: &str, port: Option<u16>) -> Result<(Vec<String>, Vec<String>)> {
    let (host, bracket_port) = split_host_port(host);
    let port = bracket_port.or(port);
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

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn bracketed_host_port() {
        assert_eq!(split_host_port("[127.0.0.1]:2222"), ("127.0.0.1", Some(2222)));
        assert_eq!(split_host_port("[fe80::1]:22"), ("fe80::1", Some(22)));
        assert_eq!(split_host_port("node17"), ("node17", None));
        assert_eq!(split_host_port("[node17]:x"), ("[node17]:x", None));
    }
}
