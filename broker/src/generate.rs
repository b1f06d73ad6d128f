//! LDIF generators for migrating old systems (seed 003's account migration
//! tool, extended to emit keys, and SSHHKTLDAP as LDIF): /etc/passwd and
//! /etc/group, a directory of per-user authorized_keys files, known_hosts
//! files and host key directories become entries of dirbroker's schema.

use std::path::Path;

use dirbroker_ldif::{Attr, ChangeKind, ChangeRecord, Entry, ModOp, ModSpec, Record};

use crate::directory::{DirError, Layout};
use crate::model::{DirEntry, Host, Posix, User};
use crate::ssh::SshKey;

/// A line that was left out, and why (for stderr).
pub type Skipped = (usize, String);

/// Users from passwd lines (`name:x:uid:gid:gecos:home:shell`) with
/// `min_uid <= uid <= max_uid`; keys from `keys_dir/NAME` when given.
pub fn users_from_passwd(
    passwd: &str,
    min_uid: u32,
    max_uid: u32,
    keys_dir: Option<&Path>,
) -> (Vec<User>, Vec<Skipped>) {
    let mut users = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in passwd.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let [name, _pw, uid, gid, gecos, home, shell] = f.as_slice() else {
            skipped.push((line_no, "expected 7 ':'-separated fields".into()));
            continue;
        };
        let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
            skipped.push((line_no, "uid or gid is not a number".into()));
            continue;
        };
        if uid < min_uid || uid > max_uid {
            continue;
        }
        let full = gecos.split(',').next().filter(|g| !g.trim().is_empty()).unwrap_or(name).trim();
        let mut user = match User::new(name, full) {
            Ok(u) => u,
            Err(e) => {
                skipped.push((line_no, e.to_string()));
                continue;
            }
        };
        user.posix = Some(Posix {
            uid_number: uid,
            gid_number: gid,
            home_directory: if home.is_empty() { format!("/home/{name}") } else { home.to_string() },
            login_shell: (!shell.is_empty()).then(|| shell.to_string()),
        });
        if let Some(dir) = keys_dir {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => {
                    for (k, l) in text.lines().enumerate() {
                        let l = l.trim();
                        if l.is_empty() || l.starts_with('#') {
                            continue;
                        }
                        match SshKey::parse(l).and_then(|key| key.check_policy().map(|()| key)) {
                            Ok(key)
                                if !user
                                    .ssh_public_keys
                                    .iter()
                                    .any(|o| SshKey::parse(o).is_ok_and(|o| o.same_key(&key))) =>
                            {
                                user.ssh_public_keys.push(key.to_string())
                            }
                            Ok(_) => {}
                            Err(e) => skipped.push((line_no, format!("{name}'s key file line {}: {e}", k + 1))),
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => skipped.push((line_no, format!("{name}'s key file: {e}"))),
            }
        }
        users.push(user);
    }
    (users, skipped)
}

/// posixGroup entries from group lines (`name:x:gid:member,member`).
pub fn groups_from_group(layout: &Layout, group: &str, min_gid: u32, max_gid: u32) -> (Vec<Record>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in group.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let [name, _pw, gid, members] = f.as_slice() else {
            skipped.push((n + 1, "expected 4 ':'-separated fields".into()));
            continue;
        };
        let Ok(gid) = gid.parse::<u32>() else {
            skipped.push((n + 1, "gid is not a number".into()));
            continue;
        };
        if gid < min_gid || gid > max_gid {
            continue;
        }
        let dn = match layout.groups.child("cn", name) {
            Ok(d) => d,
            Err(e) => {
                skipped.push((n + 1, e.to_string()));
                continue;
            }
        };
        let mut attrs = vec![
            Attr { name: "objectClass".into(), values: vec![b"posixGroup".to_vec()] },
            Attr { name: "cn".into(), values: vec![name.as_bytes().to_vec()] },
            Attr { name: "gidNumber".into(), values: vec![gid.to_string().into_bytes()] },
        ];
        let members: Vec<Vec<u8>> =
            members.split(',').map(str::trim).filter(|m| !m.is_empty()).map(|m| m.as_bytes().to_vec()).collect();
        if !members.is_empty() {
            attrs.push(Attr { name: "memberUid".into(), values: members });
        }
        out.push(Record::Content(Entry { dn: dn.to_string(), attrs }));
    }
    (out, skipped)
}

/// Hosts from known_hosts lines: names grouped per line; a host needs an
/// address (ipHost requires one), so a line naming none is skipped. Hashed
/// names (`|1|…`) and markers (`@revoked`, `@cert-authority`) are skipped.
pub fn hosts_from_known_hosts(text: &str) -> (Vec<Host>, Vec<Skipped>) {
    let mut hosts: Vec<Host> = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') || line.starts_with('|') {
            skipped.push((n + 1, "hashed names and @markers cannot become host entries".into()));
            continue;
        }
        let Some((names, key)) = line.split_once(char::is_whitespace) else {
            skipped.push((n + 1, "no key".into()));
            continue;
        };
        let key = match SshKey::parse(key.trim()) {
            Ok(k) => k,
            Err(e) => {
                skipped.push((n + 1, e.to_string()));
                continue;
            }
        };
        let names: Vec<String> = names
            .split(',')
            .map(|h| {
                let h = h.trim();
                crate::ssh::known_hosts::split_host_port(h).0.to_string()
            })
            .filter(|h| !h.is_empty())
            .collect();
        let addresses: Vec<&String> = names.iter().filter(|h| h.parse::<std::net::IpAddr>().is_ok()).collect();
        let dns: Vec<&String> = names.iter().filter(|h| h.parse::<std::net::IpAddr>().is_err()).collect();
        let Some(first_addr) = addresses.first() else {
            skipped.push((n + 1, "no IP address on the line (ipHost needs one)".into()));
            continue;
        };
        let primary = dns.first().copied().unwrap_or(first_addr);
        let line_key = format!("{} {}", key.key_type(), key.blob_base64());
        if let Some(h) = hosts.iter_mut().find(|h| h.name.eq_ignore_ascii_case(primary)) {
            if !h.ssh_public_keys.contains(&line_key) {
                h.ssh_public_keys.push(line_key);
            }
            continue;
        }
        let mut host = match Host::new(primary, first_addr) {
            Ok(h) => h,
            Err(e) => {
                skipped.push((n + 1, e.to_string()));
                continue;
            }
        };
        host.aliases = dns.iter().skip(1).map(|s| s.to_string()).collect();
        host.addresses = addresses.iter().map(|s| s.to_string()).collect();
        host.ssh_public_keys.push(line_key);
        hosts.push(host);
    }
    (hosts, skipped)
}

/// What [`keys_for_user`] made of an authorized_keys file.
#[derive(Debug, Default)]
pub struct KeyFile {
    /// `changetype: modify` adding the keys to the user, if there is any key.
    pub record: Option<Record>,
    /// How many distinct keys the record adds.
    pub keys: usize,
    /// Lines left out, and why.
    pub skipped: Vec<Skipped>,
    /// Lines whose key is kept but whose options (`from="…"`, `command="…"`,
    /// …) are not: dirbroker serves keys, restrictions are set with `user allow`.
    pub options_dropped: Vec<Skipped>,
}

/// The keys of `user`'s authorized_keys file as one modify record adding
/// `sshPublicKey` values to the existing entry (`uid=USER` under
/// ou=people). Keys are checked like `user key add` does; a key given twice
/// is added once.
pub fn keys_for_user(layout: &Layout, user: &str, text: &str) -> Result<KeyFile, DirError> {
    let dn = layout.people.child("uid", user)?;
    let mut out = KeyFile::default();
    let mut keys: Vec<SshKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (line_no, l) = (n + 1, line.trim());
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match SshKey::parse(l).and_then(|key| key.check_policy().map(|()| key)) {
            Ok(key) if keys.iter().any(|o| o.same_key(&key)) => {
                out.skipped.push((line_no, format!("{} appears earlier in the file", key.fingerprint())))
            }
            Ok(key) => {
                if let Some(o) = key.options() {
                    out.options_dropped.push((line_no, format!("options {o} not carried over (the key is)")));
                }
                keys.push(key);
            }
            Err(e) => out.skipped.push((line_no, e.to_string())),
        }
    }
    out.keys = keys.len();
    if !keys.is_empty() {
        let values = keys.iter().map(|k| k.key_line().into_bytes()).collect();
        out.record = Some(Record::Change(ChangeRecord {
            dn: dn.to_string(),
            controls: Vec::new(),
            kind: ChangeKind::Modify(vec![ModSpec { op: ModOp::Add, attr: "sshPublicKey".into(), values }]),
        }));
    }
    Ok(out)
}

/// The user an authorized_keys file belongs to, from its name: `alice` or
/// `alice.pub` (as in a keys directory, `AuthorizedKeysFile
/// /etc/ssh/authorized_keys/%u`). `authorized_keys` itself names nobody.
pub fn user_of_key_file(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let user = name.strip_suffix(".pub").unwrap_or(name);
    (!user.is_empty() && !user.starts_with('.') && !user.starts_with("authorized_keys")).then(|| user.to_string())
}

/// The LDIF record of an entry of ours.
pub fn record<T: DirEntry>(layout: &Layout, item: &T) -> Result<Record, DirError> {
    let dn = item.dn(layout)?;
    let attrs = item.to_attrs().into_iter().map(|(name, values)| Attr { name, values }).collect();
    Ok(Record::Content(Entry { dn: dn.to_string(), attrs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names_say_whose_keys() {
        let u = |p: &str| user_of_key_file(Path::new(p));
        assert_eq!(u("/etc/ssh/authorized_keys/alice").as_deref(), Some("alice"));
        assert_eq!(u("keys/bob.pub").as_deref(), Some("bob"));
        assert_eq!(u("/home/carol/.ssh/authorized_keys"), None);
        assert_eq!(u("authorized_keys2"), None);
        assert_eq!(u("dir/.hidden"), None);
        assert_eq!(u(".pub"), None);
    }

    #[test]
    fn a_bad_user_name_is_refused_before_any_key() {
        let layout = Layout::new(crate::directory::Dn::parse("dc=example,dc=org").unwrap()).unwrap();
        assert!(keys_for_user(&layout, "a\nb", "").is_err());
        let empty = keys_for_user(&layout, "alice", "# nothing\n\n").unwrap();
        assert!(empty.record.is_none() && empty.skipped.is_empty());
        let bad = keys_for_user(&layout, "alice", "ssh-ed25519 AAAA\n").unwrap();
        assert_eq!(bad.skipped.first().map(|s| s.0), Some(1));
    }

    #[test]
    fn passwd_lines_become_users_and_bad_ones_are_reported() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      alice:x:1000:1000:Alice Liddell,,,:/home/alice:/bin/bash\n\
                      broken line\n\
                      bob:x:notanumber:1:Bob:/home/bob:/bin/sh\n\
                      carol:x:1002:100::/home/carol:\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let (users, skipped) = users_from_passwd(passwd, 1000, 60000, None);
        let names: Vec<&str> = users.iter().map(|u| u.uid.as_str()).collect();
        assert_eq!(names, ["alice", "carol"]);
        assert_eq!(users[0].cn, "Alice Liddell");
        assert_eq!(users[1].cn, "carol");
        assert_eq!(users[1].posix.as_ref().unwrap().login_shell, None);
        assert_eq!(skipped.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn known_hosts_lines_become_hosts() {
        let kh = "node1,10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
                  [node2]:2222,[10.0.0.2]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
                  onlyname ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
                  |1|abc=|def= ssh-ed25519 AAAA\n\
                  10.0.0.3 ssh-ed25519 garbage\n";
        let (hosts, skipped) = hosts_from_known_hosts(kh);
        assert_eq!(hosts.len(), 2);
        assert_eq!((hosts[0].name.as_str(), hosts[0].addresses[0].as_str()), ("node1", "10.0.0.1"));
        assert_eq!(hosts[1].name, "node2");
        assert_eq!(skipped.len(), 3);
    }
}
