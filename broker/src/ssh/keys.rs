//! OpenSSH public keys as stored in `sshPublicKey`: an authorized_keys line,
//! optionally with leading options. Parsing is openssh-keys'; this wrapper
//! splits options itself (so odd input cannot reach the library's byte
//! slicing) and adds dirbroker's key policy.

use std::fmt;

use openssh_keys::{Data, PublicKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an OpenSSH public key: {0}")]
    Malformed(String),
    #[error("{0}")]
    Refused(String),
}

/// A parsed public key line.
#[derive(Clone)]
pub struct SshKey {
    options: Option<String>,
    key: PublicKey,
}

const KEY_TYPE_PREFIXES: &[&str] = &["ssh-", "ecdsa-", "sk-"];

/// Split an authorized_keys line into its first token and the rest, honouring
/// double quotes and backslash escapes in the token (as sshd does for options).
fn split_first_token(line: &str) -> Result<(&str, &str), KeyError> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ' ' | '\t' if !in_quotes => {
                let rest = line.get(i..).unwrap_or("").trim_start();
                return Ok((line.get(..i).unwrap_or(""), rest));
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(KeyError::Malformed("unterminated quote in the options".into()));
    }
    Ok((line, ""))
}

impl SshKey {
    /// Parse one line (`[options] type base64 [comment]`).
    pub fn parse(line: &str) -> Result<SshKey, KeyError> {
        let line = line.trim();
        if line.is_empty() {
            return Err(KeyError::Malformed("empty line".into()));
        }
        if line.len() > 16 * 1024 {
            return Err(KeyError::Malformed(format!("{} bytes is too long for a public key line", line.len())));
        }
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(KeyError::Malformed(format!("contains control character U+{:04X}", c as u32)));
        }
        let (first, rest) = split_first_token(line)?;
        let (options, key_part) = if KEY_TYPE_PREFIXES.iter().any(|p| first.starts_with(p)) {
            (None, line)
        } else {
            if rest.is_empty() {
                return Err(KeyError::Malformed(format!("{first:?} is not a key type")));
            }
            if !first.is_ascii() {
                return Err(KeyError::Malformed(format!("{first:?} is neither a key type nor ASCII options")));
            }
            (Some(first.to_string()), rest)
        };
        let (key_type, _) = split_first_token(key_part)?;
        if !key_type.is_ascii() || !KEY_TYPE_PREFIXES.iter().any(|p| key_type.starts_with(p)) {
            return Err(KeyError::Malformed(format!("{key_type:?} is not a key type")));
        }
        if key_type.contains("-cert-v01@openssh.com") {
            return Err(KeyError::Refused(
                "certificates are not stored as keys; store the CA key with the cert-authority option".into(),
            ));
        }
        let mut key = PublicKey::parse(key_part).map_err(|e| KeyError::Malformed(e.to_string()))?;
        // openssh-keys returns options it found itself; ours were split off already.
        if key.options.is_some() {
            return Err(KeyError::Malformed("unexpected text before the key".into()));
        }
        key.options = None;
        Ok(SshKey { options, key })
    }

    /// Refuse keys dirbroker will not store: DSA (disabled in OpenSSH), RSA under 2048 bits.
    pub fn check_policy(&self) -> Result<(), KeyError> {
        match &self.key.data {
            Data::Dsa { .. } => Err(KeyError::Refused("DSA keys are not accepted (OpenSSH disables them)".into())),
            Data::Rsa { .. } if self.bits() < 2048 => {
                Err(KeyError::Refused(format!("RSA key of {} bits; at least 2048 are required", self.bits())))
            }
            _ => Ok(()),
        }
    }

    /// Key size in bits, as `ssh-keygen -l` prints it.
    pub fn bits(&self) -> usize {
        match &self.key.data {
            Data::Rsa { modulus, .. } => significant_bits(modulus),
            Data::Dsa { p, .. } => significant_bits(p),
            _ => self.key.size(),
        }
    }

    pub fn key_type(&self) -> &'static str {
        self.key.keytype()
    }

    /// `SHA256:<base64>`, as sshd's `%f` and `ssh-keygen -l` show it.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", self.key.fingerprint())
    }

    /// The base64 key blob, as sshd's `%k` gives it.
    pub fn blob_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.key.data())
    }

    pub fn comment(&self) -> Option<&str> {
        self.key.comment.as_deref()
    }

    pub fn options(&self) -> Option<&str> {
        self.options.as_deref()
    }

    /// Same key material, whatever the options and comment.
    pub fn same_key(&self, other: &SshKey) -> bool {
        self.key == other.key
    }

    /// `type base64 [comment]`, without options.
    pub fn key_line(&self) -> String {
        self.key.to_key_format().trim_end().to_string()
    }

    /// `ssh-keygen -l` style: `256 SHA256:… comment (ED25519)`.
    pub fn describe(&self) -> String {
        let kind = match &self.key.data {
            Data::Rsa { .. } => "RSA",
            Data::Dsa { .. } => "DSA",
            Data::Ed25519 { .. } => "ED25519",
            Data::Ed25519Sk { .. } => "ED25519-SK",
            Data::Ecdsa { .. } => "ECDSA",
            Data::EcdsaSk { .. } => "ECDSA-SK",
        };
        format!("{} {} {} ({kind})", self.bits(), self.fingerprint(), self.comment().unwrap_or("no comment"))
    }

    /// The authorized_keys line, with `from="…"` put in front when `from` is
    /// not empty. `None` when the key carries its own `from=` and another
    /// list would apply: the two cannot be combined safely, so the key is left out.
    pub fn authorized_line(&self, from: &[String]) -> Option<String> {
        let own = self.options.as_deref();
        if from.is_empty() {
            return Some(match own {
                Some(o) => format!("{o} {}", self.key_line()),
                None => self.key_line(),
            });
        }
        if own.is_some_and(|o| has_option(o, "from")) {
            return None;
        }
        let list = from.join(",");
        Some(match own {
            Some(o) => format!("from=\"{list}\",{o} {}", self.key_line()),
            None => format!("from=\"{list}\" {}", self.key_line()),
        })
    }
}

impl fmt::Debug for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshKey({} {})", self.key_type(), self.fingerprint())
    }
}

impl fmt::Display for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.options {
            Some(o) => write!(f, "{o} {}", self.key_line()),
            None => f.write_str(&self.key_line()),
        }
    }
}

fn significant_bits(be: &[u8]) -> usize {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let rest = be.get(first..).unwrap_or(&[]);
    match rest.first() {
        Some(top) => (rest.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

/// Whether the comma-separated option list has option `name` (case-insensitive).
fn has_option(options: &str, name: &str) -> bool {
    let mut in_quotes = false;
    let mut start = 0;
    let bytes = options.as_bytes();
    let mut parts = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                parts.push(options.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(options.get(start..).unwrap_or(""));
    parts.iter().any(|p| p.split('=').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name)))
}

/// A pattern for `from=` and the allowed-from lists: host names, addresses,
/// CIDR, with `*`/`?` wildcards and a leading `!` for negation, as sshd reads
/// them. Quotes, commas and white space would break the option, so they are refused.
pub fn check_from_pattern(p: &str) -> Result<(), KeyError> {
    if p.is_empty() || p.len() > 255 {
        return Err(KeyError::Refused("a from pattern must be 1 to 255 characters".into()));
    }
    let ok = p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:*?!/[]%".contains(c));
    if !ok || p == "!" {
        return Err(KeyError::Refused(format!(
            "{p:?} is not a host, address or CIDR pattern (allowed: letters, digits, - _ . : * ? ! / [ ] %)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

    #[test]
    fn parses_plain_and_optioned_lines() {
        let k = SshKey::parse(ED).unwrap();
        assert_eq!(k.key_type(), "ssh-ed25519");
        assert_eq!(k.comment(), Some("alice@laptop"));
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.to_string(), ED);
        let o = SshKey::parse(&format!("no-pty,command=\"echo a b\" {ED}")).unwrap();
        assert_eq!(o.options(), Some("no-pty,command=\"echo a b\""));
        assert!(o.same_key(&k));
        let ca = SshKey::parse(&format!("cert-authority,principals=\"alice\" {ED}")).unwrap();
        assert_eq!(ca.options(), Some("cert-authority,principals=\"alice\""));
    }

    #[test]
    fn from_is_prepended_or_the_key_is_withheld() {
        let k = SshKey::parse(ED).unwrap();
        let pats = vec!["10.0.0.0/8".to_string(), "*.example.org".to_string()];
        assert_eq!(k.authorized_line(&pats).unwrap(), format!("from=\"10.0.0.0/8,*.example.org\" {ED}"));
        let o = SshKey::parse(&format!("no-pty {ED}")).unwrap();
        assert_eq!(o.authorized_line(&pats).unwrap(), format!("from=\"10.0.0.0/8,*.example.org\",no-pty {ED}"));
        let f = SshKey::parse(&format!("from=\"1.2.3.4\" {ED}")).unwrap();
        assert!(f.authorized_line(&pats).is_none());
        assert_eq!(f.authorized_line(&[]).unwrap(), format!("from=\"1.2.3.4\" {ED}"));
    }

    #[test]
    fn hostile_lines_are_errors_not_panics() {
        let cases = [
            "",
            "   ",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64",
            "ssh-ed25519 AAAA",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ünïcödé ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "opt=\"unterminated ssh-ed25519 AAAA",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a\nb",
            "ssh-ed25519-cert-v01@openssh.com AAAA x",
            "\u{0}",
            "x y z",
            "\"\" \"\"",
        ];
        for c in cases {
            assert!(SshKey::parse(c).is_err(), "{c:?} parsed");
        }
        // Random bytes never panic.
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..2000 {
            let len = (seed % 120) as usize;
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let pool = b"ssh-ed25519 AAAA\"\\,= \t\xc3\xbcabc+/";
                    char::from(pool[(seed % pool.len() as u64) as usize])
                })
                .collect();
            let _ = SshKey::parse(&s);
            let _ = SshKey::parse(&format!("{s} {ED}"));
        }
    }

    #[test]
    fn from_patterns_are_checked() {
        for ok in ["10.0.0.0/8", "*.example.org", "!bad.example.org", "fe80::1%eth0", "host?"] {
            check_from_pattern(ok).unwrap();
        }
        for bad in ["", "a b", "a,b", "a\"b", "!", "x\n"] {
            assert!(check_from_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
