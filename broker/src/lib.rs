//! dirbroker: an LDAP-backed identity and SSO broker.
//!
//! The broker's library: directory access (`directory`), typed entries
//! (`model`), OTP (`otp`), the data-center CA (`ca`), sealed secrets
//! (`seal`), SSH lookups for nodes (`ssh`), LDIF import and export
//! (`import`, `generate`) and the HTTPS service (`serve`). The binaries are
//! in `dirbroker-cli`, the private slapd in `dirbroker-testbed`.

pub mod admin;
pub mod ca;
pub mod client;
pub mod clock;
pub mod config;
pub mod directory;
pub mod generate;
pub mod import;
pub mod invitation;
pub mod model;
pub mod otp;
pub mod schema;
pub mod seal;
pub mod secret;
pub mod serve;
pub mod ssh;
pub mod subschema;
pub mod syslog;

/// Install the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
