//! dirbroker: an LDAP-backed identity and SSO broker.
//!
//! This crate holds the broker's library (directory access, typed entries,
//! the local slapd testbed) and the `dirbroker` command-line tool.

pub mod ca;
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
pub mod testbed;

/// Install the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
