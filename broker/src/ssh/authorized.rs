//! `AuthorizedKeysCommand`: the public keys sshd may accept for a user.
//!
//! ```text
//!  sshd ── dirbroker ssh authorized-keys [--fingerprint %f] -- %u ──► LDAP (node identity)
//!          user entry: sshPublicKey, dirbrokerAllowedFrom, disabled, validity
//!          host entry (this node): dirbrokerAllowedFrom   ── the paper's hosts.equiv
//!       ◄─ authorized_keys lines on stdout, with from="…" where a list applies
//! ```
//!
//! Unknown, disabled or expired users get no keys. The user's own list wins
//! over the host's; when both exist only patterns on both lists are kept.

use time::OffsetDateTime;

use super::keys::SshKey;
use crate::directory::{DirError, Directory, Entry, Filter, Result, Scope, SearchQuery};

/// What sshd asked for.
#[derive(Clone, Debug, Default)]
pub struct KeyQuery {
    pub user: String,
    /// `%f`: only the key with this fingerprint.
    pub fingerprint: Option<String>,
    /// `%k`: only the key with this base64 blob.
    pub key_blob: Option<String>,
    /// This node's host entry name, whose allowed-from list applies to everyone.
    pub host: Option<String>,
}

/// The answer, before filtering by fingerprint (that is what gets cached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAnswer {
    pub lines: Vec<String>,
    /// Keys left out, with the reason, for the log.
    pub skipped: Vec<String>,
}

const USER_ATTRS: &[&str] =
    &["uid", "sshPublicKey", "dirbrokerAllowedFrom", "dirbrokerDisabled", "dirbrokerNotBefore", "dirbrokerNotAfter"];

/// Look the user (and this host) up and build the authorized_keys lines.
pub async fn lookup(dir: &Directory, q: &KeyQuery, now: OffsetDateTime) -> Result<KeyAnswer> {
    crate::directory::dn::check_value("user", &q.user)?;
    let layout = dir.layout();
    let user_filter = Filter::eq("uid", q.user.clone());
    let mut queries =
        vec![SearchQuery { base: &layout.people, scope: Scope::Subtree, filter: &user_filter, attrs: USER_ATTRS }];
    let host_filter;
    if let Some(h) = &q.host {
        host_filter = Filter::and([Filter::object_class("ipHost"), Filter::eq("cn", h.clone())]);
        queries.push(SearchQuery {
            base: &layout.hosts,
            scope: Scope::Subtree,
            filter: &host_filter,
            attrs: &["dirbrokerAllowedFrom"],
        });
    }
    let mut results = dir.search_batch(&queries).await?.into_iter();
    let users = results.next().unwrap_or_default();
    // A configured host must be exactly one entry: a missing (renamed,
    // deleted, mistyped) or ambiguous one would silently drop its
    // allowed-from list, so it denies instead (fail closed).
    let host_list = match (&q.host, results.next()) {
        (None, _) => Vec::new(),
        (Some(_), Some(hosts)) if hosts.len() == 1 => match hosts.first() {
            Some(host) => allowed(host)?,
            None => Vec::new(),
        },
        (Some(h), hosts) => {
            let n = hosts.map_or(0, |v| v.len());
            return Err(DirError::Config(format!(
                "this node's host entry {h:?} matches {n} entries in the directory (want 1): \
                 its allowed-from list cannot be applied, so no keys are given ([ssh] host or --host)"
            )));
        }
    };
    let Some(entry) = exact_uid(users, &q.user)? else {
        return Ok(KeyAnswer { lines: Vec::new(), skipped: Vec::new() });
    };
    if !usable(&entry, now)? {
        return Ok(KeyAnswer { lines: Vec::new(), skipped: vec!["account disabled or outside its validity".into()] });
    }
    let user_list = allowed(&entry)?;
    let from = combine(&user_list, &host_list);
    let mut answer = KeyAnswer { lines: Vec::new(), skipped: Vec::new() };
    if !user_list.is_empty() && !host_list.is_empty() && from.is_empty() {
        answer.skipped.push("the user's and the host's allowed-from lists have nothing in common".into());
        return Ok(answer);
    }
    for (i, raw) in entry.values("sshPublicKey").iter().enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            answer.skipped.push(format!("value {i}: not UTF-8"));
            continue;
        };
        match SshKey::parse(text) {
            Ok(key) => match key.authorized_line(&from) {
                Some(line) => answer.lines.push(line),
                None => answer.skipped.push(format!("{}: has its own from= and a list applies", key.fingerprint())),
            },
            Err(e) => answer.skipped.push(format!("value {i}: {e}")),
        }
    }
    Ok(answer)
}

/// Keep only the lines for the key sshd offered (`%f` or `%k`), if given.
pub fn select(lines: &[String], q: &KeyQuery) -> Vec<String> {
    if q.fingerprint.is_none() && q.key_blob.is_none() {
        return lines.to_vec();
    }
    lines
        .iter()
        .filter(|l| match SshKey::parse(l) {
            Ok(k) => {
                q.fingerprint.as_ref().is_none_or(|f| *f == k.fingerprint())
                    && q.key_blob.as_ref().is_none_or(|b| *b == k.blob_base64())
            }
            Err(_) => false,
        })
        .cloned()
        .collect()
}

/// The entry whose uid is exactly `user` (LDAP matching ignores case).
/// Two such entries are an error, as the broker's own lookup says: which
/// one is served would depend on the server's order.
fn exact_uid(entries: Vec<Entry>, user: &str) -> Result<Option<Entry>> {
    let mut exact = entries.into_iter().filter(|e| e.strs("uid").is_ok_and(|v| v.contains(&user)));
    let first = exact.next();
    if let (Some(one), Some(other)) = (&first, exact.next()) {
        return Err(DirError::MalformedEntry {
            dn: one.dn.to_string(),
            attr: "uid".into(),
            reason: format!("{} has the same uid {user:?}: no keys for an ambiguous user", other.dn),
        });
    }
    Ok(first)
}

fn usable(e: &Entry, now: OffsetDateTime) -> Result<bool> {
    Ok(crate::model::Validity::from_entry(e)?.usable_at(now).is_ok())
}

fn allowed(e: &Entry) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in e.strs("dirbrokerAllowedFrom")? {
        super::keys::check_from_pattern(p).map_err(|err| DirError::MalformedEntry {
            dn: e.dn.to_string(),
            attr: "dirbrokerAllowedFrom".into(),
            reason: err.to_string(),
        })?;
        out.push(p.to_string());
    }
    Ok(out)
}

/// The user's list wins; with both, keep the patterns on both lists.
fn combine(user: &[String], host: &[String]) -> Vec<String> {
    match (user.is_empty(), host.is_empty()) {
        (true, _) => host.to_vec(),
        (false, true) => user.to_vec(),
        (false, false) => user.iter().filter(|p| host.iter().any(|h| h.eq_ignore_ascii_case(p))).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_combine_by_intersection() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(combine(&v(&[]), &v(&["a"])), v(&["a"]));
        assert_eq!(combine(&v(&["b"]), &v(&[])), v(&["b"]));
        assert_eq!(combine(&v(&["a", "B"]), &v(&["b", "c"])), v(&["B"]));
        assert!(combine(&v(&["a"]), &v(&["c"])).is_empty());
    }
}
