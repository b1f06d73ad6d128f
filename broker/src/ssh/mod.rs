//! SSH keys from the directory (seed 003, "The Design and Implementation of
//! SSH Keys using LDAP for SSH Authentication"): user keys for sshd's
//! `AuthorizedKeysCommand`, host keys for ssh's `KnownHostsCommand`, the
//! allowed-from lists (the paper's hosts.equiv), and private-key escrow.
//! docs/ssh.md maps the paper to this code.

pub mod authorized;
pub mod cache;
pub mod escrow;
pub mod keys;
pub mod known_hosts;
pub mod node;
pub mod sssd_conf;

pub use keys::{KeyError, SshKey};
