//! What every daemon of dirbroker shares, the broker's HTTPS service and the
//! agents alike: the mutual-TLS accept loop ([`accept`]), the caller's
//! certificate ([`holder`], [`Peer`]), the service frames of seed 002's
//! Kerberized services ([`frame`]), the JSON error answer and caller checks
//! ([`api_error`]), the one HTTPS client ([`client`]), Prometheus metrics
//! ([`metrics`]), the CA and the CRL in force
//! ([`pki`]), secrets read from files and the terminal ([`secret`]), and the
//! clock and RNG at the edge ([`clock`]). No LDAP: the agents link this, not
//! the broker library.

pub mod accept;
pub mod api_error;
pub mod client;
pub mod clock;
pub mod frame;
pub mod holder;
pub mod idempotent;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod rate;
pub mod secret;

use holder::Holder;

/// The verified client certificate of a connection, if one was sent.
#[derive(Clone, Debug)]
pub struct Peer(pub Option<Holder>);

/// Install the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
