//! Services that act beside the dirbroker broker: the VM-migration actors
//! (admin console, data center, physical server) of seeds 000/001, and the
//! AMS and ANS agent services of seed 002. Each runs as its own process
//! (`dirbroker-agents dc|ps|migrate|ams|ans`) and reaches the broker over
//! mutual TLS.

pub mod admin;
pub mod ams;
pub mod ans;
pub mod broker;
pub mod console;
pub mod dc;
pub mod example_service;
pub mod https;
pub mod migration;
pub mod ps;
pub mod tls;
pub mod wire;
