//! Tests of the `dirbroker` binary itself, as users and OpenSSH run it. One
//! test binary (it needs `CARGO_BIN_EXE_dirbroker`, which only this package gets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ca;
mod flow;
mod ldif;
mod otp;
mod output;
mod posix;
mod serve;
mod ssh;
mod sssd;
mod support;
mod wait;
