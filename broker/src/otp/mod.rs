//! One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238), S/KEY (RFC 2289).
pub mod codes;
pub mod enroll;
pub mod skey;
pub mod verify;
