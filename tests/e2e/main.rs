//! End-to-end tests against a real slapd started from the Debian package.
//! One binary, so the tree links once; each test starts its own slapd on its
//! own port and directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod acl;
mod brokers;
mod cluster;
mod directory;
mod import;
mod injection;
mod ldif_judge;
mod migration;
mod oidc;
mod otp;
mod posix;
mod schema;
mod sso_register;
mod sso_tickets;
mod web;
mod web_session;
