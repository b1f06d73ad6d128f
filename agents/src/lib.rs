//! Services that act beside the dirbroker broker: the VM-migration actors
//! (admin console, data center, physical server) of seeds 000/001, and —
//! with the SSO work — the AMS and ANS agent services of seed 002. Each runs
//! as its own process (`dirbroker-agents dc|ps|migrate`) and reaches the
//! broker over mutual TLS.

pub mod admin;
pub mod broker;
pub mod dc;
pub mod example_service;
pub mod migration;
pub mod ps;
pub mod tls;
pub mod wire;
