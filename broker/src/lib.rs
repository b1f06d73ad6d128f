//! dirbroker: an LDAP-backed identity and SSO broker.
//!
//! The broker's library: directory access (`directory`), typed entries
//! (`model`), OTP (`otp`), the data-center CA (`ca`), sealed secrets
//! (`seal`), SSH lookups for nodes (`ssh`), LDIF import and export
//! (`import`, `generate`) and the HTTPS service (`serve`). The binaries are
//! in `dirbroker-cli`, the private slapd in `dirbroker-testbed`.

pub mod admin;
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
pub mod serve;
pub mod ssh;
pub mod subschema;
pub mod syslog;

pub use dirbroker_service::{client, clock, install_crypto_provider, secret};
