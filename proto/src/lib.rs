//! Protocol primitives that both the broker and the agents use:
//!
//! - [`group`]: the RFC 3526 2048-bit MODP group and its prime-order subgroup;
//! - [`speke`]: SPEKE with the ISO/IEC 11770-4:2017 repair (VM migration);
//! - [`stream`]: the chunked streaming AEAD that carries VM images;
//! - [`keystroke`]: keystroke-duration password hardening (seed 004);
//! - [`sso`]: the multi-agent SSO of seed 002: registration through AMS and
//!   ANS, pre-authentication, tickets and the service-side checks.

#![warn(missing_docs)]

pub mod api;
pub mod crypto;
pub mod edge;
pub mod encoding;
pub mod fault;
pub mod group;
pub mod keystroke;
pub mod migration;
pub mod otp;
pub mod replay;
pub mod speke;
pub mod sso;
pub mod stream;
