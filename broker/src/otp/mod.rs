//! One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238), S/KEY (RFC 2289).
/// The code math (HOTP, TOTP, their constant-time checks) is the protocol
/// crate's, shared with the migration actors.
pub use dirbroker_proto::otp as codes;
pub mod enroll;
pub mod skey;
pub mod verify;
