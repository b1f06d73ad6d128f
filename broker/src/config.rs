//! The dirbroker configuration file (TOML).
//!
//! ```toml
//! [directory]
//! uris = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]
//! writer = "ldaps://ldap1.example.org"   # default: the first URI; writes always try it first
//! base_dn = "dc=example,dc=org"
//! bind_dn = "cn=broker,ou=system,dc=example,dc=org"
//! bind_password_file = "/etc/dirbroker/bind.pw"   # or env DIRBROKER_BIND_PASSWORD_FILE
//! connect_timeout_ms = 3000
//! op_timeout_ms = 5000
//! pool_size = 4
//! allow_cleartext_bind = false   # password binds over plain ldap:// only to loopback
//!
//! [directory.tls]
//! starttls = false
//! ca_file = "/etc/dirbroker/ldap-ca.pem"
//!
//! [secrets]
//! keyring_file = "/etc/dirbroker/master.keys"   # or env DIRBROKER_KEYRING_FILE
//!
//! [ca]
//! key_file = "/etc/dirbroker/ca.key"     # 0600
//! cert_file = "/etc/dirbroker/ca.pem"
//!
//! [otp]
//! issuer = "dirbroker"
//! totp_window = 1          # steps either side of now
//! hotp_look_ahead = 10
//! max_failures = 10        # then locked until `dirbroker otp unlock`
//!
//! [serve]                                 # `dirbroker serve`, the HTTPS JSON service
//! listen = "127.0.0.1:8443"
//! cert_file = "/etc/dirbroker/broker/cert.pem"   # from `dirbroker ca issue broker …`
//! key_file = "/etc/dirbroker/broker/key.pem"     # 0600
//! # client_ca_file = "/etc/dirbroker/ca.pem"     # default: the CA certificate in LDAP
//! handshake_timeout_s = 10
//! request_timeout_s = 30
//! max_body_bytes = 65536
//! max_connections = 1024
//! max_connections_per_source = 64     # more from one address are closed at once
//! reserved_for_certificates = 256     # slots only client-certificate holders keep
//! idle_timeout_s = 60                 # no request in flight this long: closed
//! shutdown_grace_s = 10
//! crl_refresh_s = 300
//! # public_url = "https://sso.example.org"   # the origin browsers use (web sign-in CSRF check, OIDC issuer);
//! #                                           # default: https:// + the request's Host
//!
//! [sso]                                   # the SSO of seed 002 (docs/protocols/sso.md)
//! issuer = "dirbroker"                    # iss of every ticket
//! signing_key_file = "/etc/dirbroker/ticket-signing.pem"   # Ed25519 PKCS#8, 0600 (`dirbroker sso init`)
//! ticket_lifetime_s = 36000
//! ams_url = "https://ams.example.org:9443"    # the AMS agent service
//! ans_url = "https://ans.example.org:9444"    # the ANS agent service
//! # The broker's client identity towards AMS/ANS (mutual TLS); default: [serve] cert/key.
//! # client_cert_file = "/etc/dirbroker/broker/cert.pem"
//! # client_key_file = "/etc/dirbroker/broker/key.pem"
//! kdf_memory_kib = 65536                  # Argon2id parameters handed to clients for pw
//! kdf_iterations = 3
//! web_session_lifetime_s = 28800          # the browser session cookie of /web/login
//! oidc_code_lifetime_s = 60               # OpenID Connect authorization codes
//! oidc_token_lifetime_s = 3600            # id_tokens and access tokens
//!
//! [ssh]                                   # node-side SSH commands
//! cache_dir = "/var/cache/dirbroker"      # off when unset
//! cache_ttl_s = 3600
//! host = "node17"                         # this node's entry in ou=hosts
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::{Bind, DirectoryConfig, TlsSettings};
use crate::secret::read_secret_file;

pub const DEFAULT_PATH: &str = "/etc/dirbroker/dirbroker.toml";
/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "DIRBROKER_CONFIG";
/// Environment variable naming the bind password file (overrides the config).
pub const ENV_BIND_PASSWORD_FILE: &str = "DIRBROKER_BIND_PASSWORD_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub directory: DirectorySection,
    #[serde(default)]
    pub ssh: SshSection,
    #[serde(default)]
    pub secrets: SecretsSection,
    #[serde(default)]
    pub otp: OtpSection,
    #[serde(default)]
    pub ca: CaSection,
    #[serde(default)]
    pub serve: ServeSection,
    #[serde(default)]
    pub sso: SsoSection,
    #[serde(default)]
    pub cluster: ClusterSection,
    #[serde(default)]
    pub posix: PosixSection,
    /// Where the file was read from (for messages).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The replicated providers, for `dirbroker cluster …` (docs/replication.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(default, rename = "provider")]
    pub providers: Vec<ClusterProvider>,
}

/// One provider: its data URI (as in `[directory] uris`) and where its
/// cn=config answers to SASL EXTERNAL (ldapi:// on that machine as root, or
/// TLS with a client certificate).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProvider {
    pub uri: String,
    #[serde(default)]
    pub config_uri: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    pub uris: Vec<String>,
    /// The provider that takes writes (one of `uris`; default the first).
    #[serde(default)]
    pub writer: Option<String>,
    pub base_dn: String,
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Bind with SASL EXTERNAL (ldapi:// peer credentials or a TLS client certificate).
    #[serde(default)]
    pub sasl_external: bool,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_op_ms")]
    pub op_timeout_ms: u64,
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Allow password binds over plain ldap:// to non-loopback servers
    /// (private networks only). Off by default.
    #[serde(default)]
    pub allow_cleartext_bind: bool,
}

/// The data-center CA's files (see `dirbroker ca`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    #[serde(default = "default_ca_key")]
    pub key_file: PathBuf,
    #[serde(default = "default_ca_cert")]
    pub cert_file: PathBuf,
}

impl Default for CaSection {
    fn default() -> Self {
        CaSection { key_file: default_ca_key(), cert_file: default_ca_cert() }
    }
}

fn default_ca_key() -> PathBuf {
    PathBuf::from("/etc/dirbroker/ca.key")
}
fn default_ca_cert() -> PathBuf {
    PathBuf::from("/etc/dirbroker/ca.pem")
}

/// Settings of `dirbroker serve` (see docs/serve.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The broker's server certificate (PEM, with its chain if any).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// CA for client certificates; unset: the broker CA published in LDAP.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default = "default_handshake_s")]
    pub handshake_timeout_s: u64,
    #[serde(default = "default_request_s")]
    pub request_timeout_s: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one source address may hold at once.
    #[serde(default = "default_per_source")]
    pub max_connections_per_source: usize,
    /// Of `max_connections`, the slots only connections with a verified
    /// client certificate keep once past the handshake.
    #[serde(default = "default_reserved")]
    pub reserved_for_certificates: usize,
    /// A connection with no request in flight this long is closed.
    #[serde(default = "default_idle_s")]
    pub idle_timeout_s: u64,
    #[serde(default = "default_grace_s")]
    pub shutdown_grace_s: u64,
    /// How often the CRL is read again from LDAP.
    #[serde(default = "default_crl_refresh_s")]
    pub crl_refresh_s: u64,
    /// The broker's own origin as browsers see it (`https://host[:port]`, no
    /// path): the web sign-in's CSRF check and the OpenID Connect issuer.
    /// Unset: `https://` and the request's Host (one broker, no balancer
    /// renaming it).
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            listen: default_listen(),
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            handshake_timeout_s: default_handshake_s(),
            request_timeout_s: default_request_s(),
            max_body_bytes: default_max_body(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_per_source(),
            reserved_for_certificates: default_reserved(),
            idle_timeout_s: default_idle_s(),
            shutdown_grace_s: default_grace_s(),
            crl_refresh_s: default_crl_refresh_s(),
            public_url: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_handshake_s() -> u64 {
    10
}
fn default_request_s() -> u64 {
    30
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_per_source() -> usize {
    64
}
fn default_reserved() -> usize {
    256
}
fn default_idle_s() -> u64 {
    60
}
fn default_grace_s() -> u64 {
    10
}
fn default_crl_refresh_s() -> u64 {
    300
}

/// Settings of the SSO of seed 002: tickets, and the AMS/ANS agent services.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSection {
    /// `iss` of every ticket.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The broker's Ed25519 ticket-signing key (PKCS#8 PEM, mode 0600).
    #[serde(default = "default_signing_key")]
    pub signing_key_file: PathBuf,
    #[serde(default = "default_ticket_lifetime_s")]
    pub ticket_lifetime_s: u64,
    /// Base URL of the AMS agent service.
    #[serde(default)]
    pub ams_url: Option<String>,
    /// Base URL of the ANS agent service.
    #[serde(default)]
    pub ans_url: Option<String>,
    /// The broker's client certificate towards AMS/ANS; default: [serve] cert_file.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its key; default: [serve] key_file.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Argon2id memory (KiB) and iterations the broker hands to clients for pw.
    #[serde(default = "default_kdf_memory_kib")]
    pub kdf_memory_kib: u32,
    #[serde(default = "default_kdf_iterations")]
    pub kdf_iterations: u32,
    /// Anonymous login (paper §5: a broker-assigned pseudonym at level 1).
    /// Off by default; with it on, an anonymous user still gets tickets only
    /// for services added with `--allow-anonymous`.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Failed SSO logins (wrong password or OTP, unknown user) a user id may
    /// have per minute before further attempts are refused (429) for the
    /// rest of that minute.
    #[serde(default = "default_login_failures_per_user")]
    pub login_failures_per_user: u32,
    /// The same per source address (an IPv6 /64 counts as one source).
    #[serde(default = "default_login_failures_per_source")]
    pub login_failures_per_source: u32,
    /// How long a browser session (`/web/login`) lasts.
    #[serde(default = "default_web_session_lifetime_s")]
    pub web_session_lifetime_s: u64,
    /// How long an OpenID Connect authorization code may be redeemed.
    #[serde(default = "default_oidc_code_lifetime_s")]
    pub oidc_code_lifetime_s: u64,
    /// How long OpenID Connect id_tokens and access tokens last.
    #[serde(default = "default_oidc_token_lifetime_s")]
    pub oidc_token_lifetime_s: u64,
}

impl Default for SsoSection {
    fn default() -> Self {
        SsoSection {
            issuer: default_issuer(),
            signing_key_file: default_signing_key(),
            ticket_lifetime_s: default_ticket_lifetime_s(),
            ams_url: None,
            ans_url: None,
            client_cert_file: None,
            client_key_file: None,
            kdf_memory_kib: default_kdf_memory_kib(),
            kdf_iterations: default_kdf_iterations(),
            allow_anonymous: false,
            login_failures_per_user: default_login_failures_per_user(),
            login_failures_per_source: default_login_failures_per_source(),
            web_session_lifetime_s: default_web_session_lifetime_s(),
            oidc_code_lifetime_s: default_oidc_code_lifetime_s(),
            oidc_token_lifetime_s: default_oidc_token_lifetime_s(),
        }
    }
}

fn default_signing_key() -> PathBuf {
    PathBuf::from("/etc/dirbroker/ticket-signing.pem")
}
fn default_ticket_lifetime_s() -> u64 {
    36_000
}
fn default_kdf_memory_kib() -> u32 {
    64 * 1024
}
fn default_kdf_iterations() -> u32 {
    3
}
fn default_login_failures_per_user() -> u32 {
    5
}
fn default_login_failures_per_source() -> u32 {
    30
}
fn default_web_session_lifetime_s() -> u64 {
    8 * 3600
}
fn default_oidc_code_lifetime_s() -> u64 {
    60
}
fn default_oidc_token_lifetime_s() -> u64 {
    3600
}

/// POSIX account defaults for `user add` (issue #14, part 1).
///
/// uidNumbers are drawn from `[uid_min, uid_max]`; 0, 65534 (nobody) and
/// 4294967295 (-1) are never handed out. When `default_gid` is unset a
/// user's gidNumber is its uidNumber (a user-private group id); the group
/// entries themselves come with the groups part of issue #14.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosixSection {
    #[serde(default = "default_uid_min")]
    pub uid_min: u32,
    #[serde(default = "default_uid_max")]
    pub uid_max: u32,
    #[serde(default = "default_home_base")]
    pub home_base: String,
    #[serde(default = "default_shell")]
    pub default_shell: String,
    #[serde(default)]
    pub default_gid: Option<u32>,
}

impl Default for PosixSection {
    fn default() -> Self {
        PosixSection {
            uid_min: default_uid_min(),
            uid_max: default_uid_max(),
            home_base: default_home_base(),
            default_shell: default_shell(),
            default_gid: None,
        }
    }
}

/// Ids no allocator may hand out and no `--uid-number` may ask for.
pub const RESERVED_IDS: [u32; 3] = [0, 65534, u32::MAX];

impl PosixSection {
    /// Whether `id` is one of the reserved ids (root, nobody, -1).
    pub fn is_reserved(id: u32) -> bool {
        RESERVED_IDS.contains(&id)
    }

    fn check(&self) -> Result<(), String> {
        if self.uid_min == 0 || self.uid_min > self.uid_max {
            return Err(format!(
                "[posix] needs 0 < uid_min <= uid_max (got uid_min = {}, uid_max = {})",
                self.uid_min, self.uid_max
            ));
        }
        if let Some(g) = self.default_gid.filter(|g| Self::is_reserved(*g)) {
            return Err(format!("[posix] default_gid = {g} is a reserved id"));
        }
        if !self.home_base.starts_with('/') {
            return Err(format!("[posix] home_base must be an absolute path (got {:?})", self.home_base));
        }
        Ok(())
    }
}

fn default_uid_min() -> u32 {
    10000
}
fn default_uid_max() -> u32 {
    60000
}
fn default_home_base() -> String {
    "/home".into()
}
fn default_shell() -> String {
    "/bin/bash".into()
}

/// Where the broker master keys live (see `dirbroker secrets`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSection {
    #[serde(default = "default_keyring")]
    pub keyring_file: PathBuf,
}

impl Default for SecretsSection {
    fn default() -> Self {
        SecretsSection { keyring_file: default_keyring() }
    }
}

fn default_keyring() -> PathBuf {
    PathBuf::from("/etc/dirbroker/master.keys")
}

/// Environment variable naming the keyring file (overrides the config).
pub const ENV_KEYRING_FILE: &str = "DIRBROKER_KEYRING_FILE";

/// OTP verification settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpSection {
    /// Issuer shown by authenticator apps.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_totp_window")]
    pub totp_window: u32,
    #[serde(default = "default_hotp_look_ahead")]
    pub hotp_look_ahead: u32,
    #[serde(default = "default_max_failures")]
    pub max_failures: i64,
    /// Seconds a token stays locked after `max_failures`, doubled for each
    /// further failure up to `max_lockout_s`; 0: until `dirbroker otp unlock`.
    #[serde(default = "default_lockout_s")]
    pub lockout_s: u32,
    #[serde(default = "default_max_lockout_s")]
    pub max_lockout_s: u32,
}

impl Default for OtpSection {
    fn default() -> Self {
        OtpSection {
            issuer: default_issuer(),
            totp_window: default_totp_window(),
            hotp_look_ahead: default_hotp_look_ahead(),
            max_failures: default_max_failures(),
            lockout_s: default_lockout_s(),
            max_lockout_s: default_max_lockout_s(),
        }
    }
}

fn default_issuer() -> String {
    "dirbroker".into()
}
fn default_totp_window() -> u32 {
    1
}
fn default_hotp_look_ahead() -> u32 {
    10
}
fn default_max_failures() -> i64 {
    10
}
fn default_lockout_s() -> u32 {
    60
}
fn default_max_lockout_s() -> u32 {
    3600
}

impl Config {
    /// The keyring path: `DIRBROKER_KEYRING_FILE`, else `[secrets] keyring_file`.
    pub fn keyring_path(&self) -> PathBuf {
        std::env::var_os(ENV_KEYRING_FILE).map(PathBuf::from).unwrap_or_else(|| self.secrets.keyring_file.clone())
    }

    /// The OTP verification policy.
    pub fn otp_policy(&self) -> crate::otp::verify::Policy {
        crate::otp::verify::Policy {
            totp_window: self.otp.totp_window,
            hotp_look_ahead: self.otp.hotp_look_ahead,
            max_failures: self.otp.max_failures,
            lockout: time::Duration::seconds(self.otp.lockout_s.into()),
            max_lockout: time::Duration::seconds(self.otp.max_lockout_s.into()),
            ..Default::default()
        }
    }
}

/// Settings of the node-side SSH commands.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSection {
    /// Cache `ssh authorized-keys` answers in this directory (off when unset).
    /// It must be writable by sshd's AuthorizedKeysCommandUser only.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Longest age of a cached answer served while the directory is unreachable.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_s: u64,
    /// This node's host entry (cn under ou=hosts); its dirbrokerAllowedFrom
    /// list (the paper's hosts.equiv) then applies to every login here.
    #[serde(default)]
    pub host: Option<String>,
}

impl Default for SshSection {
    fn default() -> Self {
        SshSection { cache_dir: None, cache_ttl_s: default_cache_ttl(), host: None }
    }
}

fn default_cache_ttl() -> u64 {
    3600
}

fn default_connect_ms() -> u64 {
    3000
}
fn default_op_ms() -> u64 {
    5000
}
fn default_pool() -> usize {
    4
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string() })?;
        cfg.path = path.to_path_buf();
        cfg.posix.check().map_err(|message| ConfigError::Invalid { path: shown, message })?;
        Ok(cfg)
    }

    /// The directory settings, with the bind password read from its file.
    /// `DIRBROKER_BIND_PASSWORD_FILE` overrides `bind_password_file`.
    pub fn directory_config(&self) -> Result<DirectoryConfig, ConfigError> {
        let d = &self.directory;
        let invalid = |message: String| ConfigError::Invalid { path: self.path.display().to_string(), message };
        let pw_file =
            std::env::var_os(ENV_BIND_PASSWORD_FILE).map(PathBuf::from).or_else(|| d.bind_password_file.clone());
        let bind = match (&d.bind_dn, d.sasl_external) {
            (Some(_), true) => {
                return Err(invalid("set either bind_dn or sasl_external, not both".into()));
            }
            (None, true) => Bind::External,
            (None, false) => Bind::Anonymous,
            (Some(dn), false) => {
                let file = pw_file.ok_or_else(|| {
                    invalid(format!("bind_dn is set but no bind_password_file (or {ENV_BIND_PASSWORD_FILE})"))
                })?;
                let password = read_secret_file(&file).map_err(|e| invalid(e.to_string()))?;
                Bind::Simple { dn: dn.clone(), password }
            }
        };
        let mut cfg = DirectoryConfig::new(d.uris.clone(), d.base_dn.clone(), bind);
        cfg.writer = d.writer.clone();
        cfg.tls = d.tls.clone();
        cfg.connect_timeout = Duration::from_millis(d.connect_timeout_ms);
        cfg.op_timeout = Duration::from_millis(d.op_timeout_ms);
        cfg.pool_size = d.pool_size;
        cfg.allow_cleartext_bind = d.allow_cleartext_bind;
        cfg.validate().map_err(|e| invalid(e.to_string()))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_types_say_where() {
        let p = Path::new("x.toml");
        let err = Config::parse("[directory]\nuris = [\"ldap://a\"]\nbase_dn = \"dc=x\"\nbind_pw = \"oops\"\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("bind_pw"), "{err}");
        let err = Config::parse("[directory]\nuris = \"ldap://a\"\nbase_dn = \"dc=x\"\n", p).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn posix_defaults_and_bad_ranges() {
        let p = Path::new("p.toml");
        let base = "[directory]\nuris = [\"ldap://a\"]\nbase_dn = \"dc=x\"\n";
        let cfg = Config::parse(base, p).unwrap();
        assert_eq!((cfg.posix.uid_min, cfg.posix.uid_max), (10000, 60000));
        assert_eq!((cfg.posix.home_base.as_str(), cfg.posix.default_shell.as_str()), ("/home", "/bin/bash"));
        assert_eq!(cfg.posix.default_gid, None);
        let err = Config::parse(&format!("{base}[posix]\nuid_min = 500\nuid_max = 100\n"), p).unwrap_err().to_string();
        assert!(err.contains("uid_min"), "{err}");
        let err = Config::parse(&format!("{base}[posix]\ndefault_gid = 0\n"), p).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
        let err = Config::parse(&format!("{base}[posix]\nuid_start = 5\n"), p).unwrap_err().to_string();
        assert!(err.contains("uid_start"), "{err}");
        assert!(PosixSection::is_reserved(65534) && !PosixSection::is_reserved(10000));
    }

    #[test]
    fn bind_dn_needs_a_password_file() {
        let cfg = Config::parse(
            "[directory]\nuris = [\"ldap://a\"]\nbase_dn = \"dc=x\"\nbind_dn = \"cn=b,dc=x\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        if std::env::var_os(ENV_BIND_PASSWORD_FILE).is_none() {
            assert!(cfg.directory_config().unwrap_err().to_string().contains("bind_password_file"));
        }
        let bad_uri =
            Config::parse("[directory]\nuris = [\"http://a\"]\nbase_dn = \"dc=x\"\n", Path::new("c.toml")).unwrap();
        assert!(bad_uri.directory_config().unwrap_err().to_string().contains("http://a"));
    }
}
