//! How to reach the directory: URIs (tried in order), identity, TLS, timeouts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, pem::PemObject};
use serde::{Deserialize, Serialize};

use super::error::{DirError, Result};
use crate::secret::SecretString;

/// Who the connection binds as.
#[derive(Clone, Debug)]
pub enum Bind {
    Anonymous,
    /// Simple bind; only over TLS or ldapi outside tests.
    Simple {
        dn: String,
        password: SecretString,
    },
    /// SASL EXTERNAL, e.g. peer credentials over ldapi.
    External,
}

/// TLS settings. `ldaps://` URIs always use TLS; `starttls` upgrades `ldap://`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Upgrade `ldap://` connections with StartTLS (refusing to go on in clear if it fails).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA certificate(s) to trust. When set, only these are
    /// trusted (pinning); when unset, the system's Mozilla roots are.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct DirectoryConfig {
    pub uris: Vec<String>,
    /// The URI of the provider that takes writes (one of `uris`); `None`:
    /// the first. Writes always try it first (docs/replication.md).
    pub writer: Option<String>,
    /// URIs to try only after the others: ones an earlier process found
    /// hung or unreachable moments ago (the node's short-lived lookups).
    pub try_last: Vec<String>,
    pub base_dn: String,
    pub bind: Bind,
    pub tls: TlsSettings,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    pub pool_size: usize,
    /// Allow simple binds (passwords) over plain `ldap://` to non-loopback
    /// servers. Off by default: use ldaps://, StartTLS or ldapi://.
    pub allow_cleartext_bind: bool,
}

/// Whether `uri` is a plain `ldap://` URI to a host other than loopback.
fn cleartext_remote(uri: &str) -> bool {
    let Some(rest) = uri.get(..7).filter(|s| s.eq_ignore_ascii_case("ldap://")).and(uri.get(7..)) else {
        return false;
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport)
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

impl DirectoryConfig {
    /// Refuse to send a password in clear text to another machine.
    pub(crate) fn check_simple_bind_transport(&self) -> Result<()> {
        if self.tls.starttls || self.allow_cleartext_bind {
            return Ok(());
        }
        match self.uris.iter().find(|u| cleartext_remote(u)) {
            Some(uri) => Err(DirError::Config(format!(
                "a password bind over {uri} would cross the network in clear text; use ldaps://, set \
                 [directory.tls] starttls = true, or (private networks only) allow_cleartext_bind = true"
            ))),
            None => Ok(()),
        }
    }

    /// Refuse to take `what` (e.g. host keys, which decide whom ssh trusts)
    /// from another machine over an unauthenticated channel: plain
    /// `ldap://` is fine to loopback only, elsewhere it takes ldaps://,
    /// StartTLS or ldapi://. No switch turns this off.
    pub fn check_authenticated_transport(&self, what: &str) -> Result<()> {
        if self.tls.starttls {
            return Ok(());
        }
        match self.uris.iter().find(|u| cleartext_remote(u)) {
            Some(uri) => Err(DirError::Config(format!(
                "{what} read over {uri} could be forged on the way; use ldaps://, ldapi:// or set \
                 [directory.tls] starttls = true"
            ))),
            None => Ok(()),
        }
    }

    pub fn new(uris: Vec<String>, base_dn: impl Into<String>, bind: Bind) -> Self {
        DirectoryConfig {
            uris,
            writer: None,
            try_last: Vec::new(),
            base_dn: base_dn.into(),
            bind,
            tls: TlsSettings::default(),
            connect_timeout: Duration::from_secs(3),
            op_timeout: Duration::from_secs(5),
            pool_size: 4,
            allow_cleartext_bind: false,
        }
    }

    /// The index in `uris` of the writer.
    pub(crate) fn writer_index(&self) -> usize {
        self.writer.as_ref().and_then(|w| self.uris.iter().position(|u| u == w)).unwrap_or(0)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.uris.is_empty() {
            return Err(DirError::Config("no directory URI configured".into()));
        }
        for uri in &self.uris {
            let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("ldap" | "ldaps" | "ldapi") => {}
                _ => {
                    return Err(DirError::Config(format!("{uri:?} is not an ldap://, ldaps:// or ldapi:// URI")));
                }
            }
        }
        if let Some(w) = &self.writer
            && !self.uris.iter().any(|u| u == w)
        {
            return Err(DirError::Config(format!("writer {w:?} is not one of the directory URIs")));
        }
        if self.pool_size == 0 {
            return Err(DirError::Config("pool_size must be at least 1".into()));
        }
        if self.connect_timeout.is_zero() || self.op_timeout.is_zero() {
            return Err(DirError::Config("timeouts must be greater than zero".into()));
        }
        if matches!(self.bind, Bind::Simple { .. }) {
            self.check_simple_bind_transport()?;
        }
        Ok(())
    }

    /// The rustls client configuration pinning `tls.ca_file`, if set. Without
    /// it, ldap3 trusts the system's certificate store.
    pub(crate) fn rustls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>> {
        let Some(path) = &self.tls.ca_file else {
            return Ok(None);
        };
        crate::install_crypto_provider();
        let bad = |e: &dyn std::fmt::Display| DirError::Config(format!("CA file {}: {e}", path.display()));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"holds no PEM certificate"));
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| bad(&e))?;
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_cross_the_network_in_clear() {
        let simple = Bind::Simple { dn: "cn=x".into(), password: SecretString::new("pw".into()) };
        let mut cfg = DirectoryConfig::new(vec!["ldap://ldap.example.org".into()], "dc=x", simple);
        assert!(matches!(cfg.validate(), Err(DirError::Config(_))));
        cfg.uris = vec!["ldaps://ldap.example.org".into(), "ldap://127.0.0.1:3389".into(), "ldap://[::1]:389".into()];
        cfg.validate().unwrap();
        cfg.uris = vec!["ldap://localhost".into(), "ldapi://%2Frun%2Fldapi".into()];
        cfg.validate().unwrap();
        cfg.uris = vec!["ldap://10.0.0.5:389".into()];
        cfg.tls.starttls = true;
        cfg.validate().unwrap();
        cfg.tls.starttls = false;
        cfg.allow_cleartext_bind = true;
        cfg.validate().unwrap();
        cfg.allow_cleartext_bind = false;
        cfg.bind = Bind::Anonymous;
        cfg.validate().unwrap();
    }
}
