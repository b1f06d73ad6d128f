//! An sssd.conf for a node that reads the directory as the node identity
//! (`dirbroker node sssd-conf`), and the sshd_config lines that go with it.
//! docs/nodes.md says which component enforces what.
//!
//! ```text
//!  node.toml [directory] ─► render() ─► sssd.conf: NSS (passwd, group), PAM account
//!                                        (access filter + expiry), sss_ssh_authorizedkeys
//!                           sshd_lines() ─► AuthorizedKeysCommand dirbroker-ssh …
//! ```

use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::directory::{Bind, DirectoryConfig, Layout};
use crate::secret::SecretString;

/// Denies a login (PAM account phase, `pam_sss`) to entries that are not
/// POSIX accounts and to disabled users. SSSD evaluates it on the server,
/// online, at every login. Time bounds cannot be written as a static
/// filter (LDAP has no "now"), so expiry is SSSD's `expire` check below.
pub const ACCESS_FILTER: &str = "(&(objectClass=posixAccount)(!(dirbrokerDisabled=TRUE)))";

/// Why no configuration was written.
#[derive(Debug, thiserror::Error)]
pub enum SssdConfError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{what} {value:?} cannot go into sssd.conf: it has a control character or surrounding white space")]
    BadValue { what: &'static str, value: String },
    #[error("the bind password cannot go into sssd.conf: it has a control character or surrounding white space")]
    BadPassword,
}

/// Whether the node identity's password goes into the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authtok {
    /// Write `ldap_default_authtok` (for a 0600 file only).
    Inline,
    /// Leave it out and say where it comes from (for standard output).
    Omitted,
}

/// What the sshd_config lines refer to.
#[derive(Clone, Debug)]
pub struct SshdWiring<'a> {
    /// The installed node binary, e.g. `/usr/local/bin/dirbroker-ssh`.
    pub command: &'a Path,
    /// The node configuration that binary reads.
    pub node_config: &'a Path,
    /// `AuthorizedKeysCommandUser`.
    pub keys_user: &'a str,
}

fn plain<'v>(what: &'static str, value: &'v str) -> Result<&'v str, SssdConfError> {
    if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
        return Err(SssdConfError::BadValue { what, value: value.to_string() });
    }
    Ok(value)
}

fn path_value<'p>(what: &'static str, p: &'p Path) -> Result<&'p str, SssdConfError> {
    let s = p.to_str().ok_or_else(|| SssdConfError::BadValue { what, value: p.to_string_lossy().into_owned() })?;
    plain(what, s)
}

/// Whole seconds, rounded up, at least 1 (SSSD's timeouts are in seconds).
fn secs(d: Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(u64::MAX).max(1)
}

/// The sssd.conf text for a node bound as `cfg.bind` (normally the node
/// identity), with SSSD domain name `domain`. Zeroed on drop: with
/// [`Authtok::Inline`] it holds the password.
pub fn render(cfg: &DirectoryConfig, domain: &str, authtok: Authtok) -> Result<Zeroizing<String>, SssdConfError> {
    let domain = plain("domain name", domain)?;
    if domain.contains(['[', ']', '/']) {
        return Err(SssdConfError::BadValue { what: "domain name", value: domain.to_string() });
    }
    let (bind_dn, password): (&str, &SecretString) = match &cfg.bind {
        Bind::Simple { dn, password } => (plain("bind_dn", dn)?, password),
        Bind::Anonymous => {
            return Err(SssdConfError::Unsupported(
                "the configuration binds anonymously, which cannot read ou=people: set bind_dn \
                 (the node identity, cn=node-reader,ou=system,<base>) and bind_password_file"
                    .into(),
            ));
        }
        Bind::External => {
            return Err(SssdConfError::Unsupported(
                "SASL EXTERNAL binds are not generated; use bind_dn and bind_password_file (the node identity)".into(),
            ));
        }
    };
    let mut uris = Vec::new();
    for u in &cfg.uris {
        let u = plain("uri", u)?;
        if u.contains(',') {
            return Err(SssdConfError::BadValue { what: "uri", value: u.to_string() });
        }
        uris.push(u);
    }
    if uris.is_empty() {
        return Err(SssdConfError::Unsupported("the configuration lists no directory uris".into()));
    }
    let base = crate::directory::Dn::parse(plain("base_dn", &cfg.base_dn)?)
        .map_err(|_| SssdConfError::BadValue { what: "base_dn", value: cfg.base_dn.clone() })?;
    let layout = Layout::new(base.clone())
        .map_err(|_| SssdConfError::BadValue { what: "base_dn", value: cfg.base_dn.clone() })?;

    let mut out = Zeroizing::new(String::new());
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line("# sssd.conf for a dirbroker node, from `dirbroker node sssd-conf` (docs/nodes.md).");
    line("# Install as /etc/sssd/sssd.conf, owner root, mode 0600: SSSD refuses anything looser.");
    line("[sssd]");
    line("config_file_version = 2");
    line("services = nss, pam, ssh");
    line(&format!("domains = {domain}"));
    line("");
    line("[nss]");
    line("");
    line("[pam]");
    line("");
    line("[ssh]");
    line("");
    line(&format!("[domain/{domain}]"));
    line("id_provider = ldap");
    line("auth_provider = ldap");
    line("access_provider = ldap");
    line("# posixAccount/posixGroup with memberUid (the nis schema slapd loads is RFC 2307).");
    line("ldap_schema = rfc2307");
    line("# Tried in order, as dirbroker-ssh tries [directory] uris.");
    line(&format!("ldap_uri = {}", uris.join(", ")));
    line(&format!("ldap_search_base = {}", base.as_str()));
    line(&format!("ldap_user_search_base = {}", layout.people.as_str()));
    line(&format!("ldap_group_search_base = {}", layout.groups.as_str()));
    line("# The read-only node identity: NSS attributes, keys and validity, no secrets (schema/acl.ldif).");
    line(&format!("ldap_default_bind_dn = {bind_dn}"));
    line("ldap_default_authtok_type = password");
    match authtok {
        Authtok::Inline => {
            let pw = password.expose();
            if pw.trim() != pw || pw.chars().any(char::is_control) {
                return Err(SssdConfError::BadPassword);
            }
            line(&format!("ldap_default_authtok = {pw}"));
        }
        Authtok::Omitted => {
            line("# ldap_default_authtok is not printed: write the file with --out FILE (0600),");
            line("# which copies it from the configuration's bind_password_file.");
        }
    }
    match &cfg.tls.ca_file {
        Some(ca) => line(&format!("ldap_tls_cacert = {}", path_value("ca_file", ca)?)),
        None => line("# No [directory.tls] ca_file: the system's CA store is trusted."),
    }
    line("ldap_tls_reqcert = demand");
    if cfg.tls.starttls {
        line("ldap_id_use_start_tls = true");
    }
    line(&format!("ldap_network_timeout = {}", secs(cfg.connect_timeout)));
    line(&format!("ldap_opt_timeout = {}", secs(cfg.op_timeout)));
    line("ldap_user_gecos = gecos");
    line("# Keys for sss_ssh_authorizedkeys; sshd itself should use dirbroker-ssh (allowed-from lists).");
    line("ldap_user_ssh_public_key = sshPublicKey");
    line("# Access (PAM account): the filter denies disabled users and entries without posixAccount,");
    line("# evaluated online at each login; `expire` denies after dirbrokerNotAfter (read from SSSD's");
    line("# cache, refreshed when the entry is). dirbrokerNotBefore is not checked by SSSD.");
    line("ldap_access_order = filter, expire");
    line(&format!("ldap_access_filter = {ACCESS_FILTER}"));
    line("ldap_account_expire_policy = nds");
    line("ldap_user_nds_login_disabled = dirbrokerDisabled");
    line("ldap_user_nds_login_expiration_time = dirbrokerNotAfter");
    line("cache_credentials = false");
    line("enumerate = false");
    Ok(out)
}

/// The sshd_config lines that take user keys from `dirbroker-ssh` and the
/// account check from SSSD (PAM).
pub fn sshd_lines(w: &SshdWiring<'_>) -> Result<String, SssdConfError> {
    let command = path_value("--ssh-command", w.command)?;
    let node_config = path_value("node configuration path", w.node_config)?;
    let user = plain("--keys-user", w.keys_user)?;
    for (what, v) in [("--ssh-command", command), ("node configuration path", node_config), ("--keys-user", user)] {
        if v.contains(char::is_whitespace) || v.contains(['"', '%']) {
            return Err(SssdConfError::BadValue { what, value: v.to_string() });
        }
    }
    if !w.command.is_absolute() || !w.node_config.is_absolute() {
        return Err(SssdConfError::Unsupported(
            "sshd needs absolute paths for the command and its configuration".into(),
        ));
    }
    Ok(format!(
        "# sshd_config for a dirbroker node (docs/nodes.md): put these in an early file,\n\
         # e.g. /etc/ssh/sshd_config.d/10-dirbroker.conf (only the first AuthorizedKeysCommand counts).\n\
         # Keys (with allowed-from lists and validity) from dirbroker-ssh:\n\
         AuthorizedKeysCommand {command} --config {node_config} authorized-keys --fingerprint %f -- %u\n\
         AuthorizedKeysCommandUser {user}\n\
         # Accounts from SSSD (NSS); the PAM account phase runs pam_sss, which applies the access filter:\n\
         UsePAM yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::TlsSettings;

    fn cfg(uris: &[&str]) -> DirectoryConfig {
        let mut c = DirectoryConfig::new(
            uris.iter().map(|s| s.to_string()).collect(),
            "dc=example,dc=org",
            Bind::Simple {
                dn: "cn=node-reader,ou=system,dc=example,dc=org".into(),
                password: SecretString::new("s3cret".into()),
            },
        );
        c.tls = TlsSettings { starttls: false, ca_file: Some("/etc/dirbroker/ldap-ca.pem".into()) };
        c.connect_timeout = Duration::from_millis(1500);
        c
    }

    fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(" = "))
    }

    #[test]
    fn the_password_is_only_in_the_inline_form() {
        let printed =
            render(&cfg(&["ldaps://a.example.org", "ldaps://b.example.org"]), "dirbroker", Authtok::Omitted).unwrap();
        assert!(!printed.contains("s3cret"));
        assert_eq!(value(&printed, "ldap_default_authtok"), None);
        assert_eq!(value(&printed, "ldap_uri"), Some("ldaps://a.example.org, ldaps://b.example.org"));
        assert_eq!(value(&printed, "ldap_user_search_base"), Some("ou=people,dc=example,dc=org"));
        assert_eq!(value(&printed, "ldap_group_search_base"), Some("ou=groups,dc=example,dc=org"));
        assert_eq!(value(&printed, "ldap_tls_cacert"), Some("/etc/dirbroker/ldap-ca.pem"));
        assert_eq!(value(&printed, "ldap_network_timeout"), Some("2"));
        assert_eq!(value(&printed, "ldap_access_filter"), Some(ACCESS_FILTER));
        let inline = render(&cfg(&["ldaps://a.example.org"]), "dirbroker", Authtok::Inline).unwrap();
        assert_eq!(value(&inline, "ldap_default_authtok"), Some("s3cret"));
    }

    #[test]
    fn values_that_would_break_the_ini_file_are_refused() {
        assert!(matches!(
            render(&cfg(&["ldaps://a\nldap_access_filter = (uid=*)"]), "d", Authtok::Omitted),
            Err(SssdConfError::BadValue { what: "uri", .. })
        ));
        assert!(render(&cfg(&["ldaps://a,ldaps://b"]), "d", Authtok::Omitted).is_err());
        assert!(render(&cfg(&["ldaps://a"]), "x]\n[sssd", Authtok::Omitted).is_err());
        let mut c = cfg(&["ldaps://a"]);
        c.bind = Bind::Simple { dn: "cn=n,dc=x".into(), password: SecretString::new("pw\nx = y".into()) };
        assert!(matches!(render(&c, "d", Authtok::Inline), Err(SssdConfError::BadPassword)));
        c.bind = Bind::Anonymous;
        assert!(matches!(render(&c, "d", Authtok::Omitted), Err(SssdConfError::Unsupported(_))));
        let w = SshdWiring {
            command: Path::new("/usr/local/bin/dirbroker-ssh"),
            node_config: Path::new("rel.toml"),
            keys_user: "k",
        };
        assert!(sshd_lines(&w).is_err());
        let w = SshdWiring { node_config: Path::new("/etc/a b.toml"), ..w };
        assert!(sshd_lines(&w).is_err());
    }
}
