//! Tests of the LDIF parser and writer, in one binary.

// Test helpers outside #[test] fns may panic like the tests themselves.
#![allow(clippy::panic, clippy::indexing_slicing)]

mod fuzz_regressions;
mod hostile;
mod rfc2849;
mod roundtrip;
