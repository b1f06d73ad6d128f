//! What a Unix login or group name may be. NSS and the tools behind it
//! (passwd/group files, `id`, sshd's `AllowUsers`, home directory paths) give
//! meaning to `:`, `,`, `/`, white space and leading `-`; dirbroker writes
//! POSIX accounts and groups only with names every node can use: letters,
//! digits, `.`, `_`, `-` and `@`, optionally ending in `$` (machine accounts),
//! not starting with `-`, not `.` or `..`, at most 64 bytes.

use crate::directory::{DirError, Result};

/// The longest POSIX name accepted (glibc has no limit; useradd's is 32, SSSD's none).
pub const MAX_LEN: usize = 64;

/// Refuses anything but a portable POSIX user or group name; `field` names it in the error.
pub fn check(field: &str, name: &str) -> Result<()> {
    crate::directory::dn::check_value(field, name)?;
    let why = if name.len() > MAX_LEN {
        Some(format!("is {} bytes long; the limit for a POSIX name is {MAX_LEN}", name.len()))
    } else if name.starts_with('-') {
        Some("starts with '-'".to_string())
    } else if name == "." || name == ".." {
        Some("is . or ..".to_string())
    } else {
        let body = name.strip_suffix('$').unwrap_or(name);
        body.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))).map(|c| {
            format!("contains {c:?}; a POSIX name has only letters, digits, '.', '_', '-', '@' (and a final '$')")
        })
    };
    match why {
        Some(reason) => Err(DirError::bad_input(field, format!("{name:?} {reason}"))),
        None => Ok(()),
    }
}

/// Refuses a path NSS cannot hold: relative, with `:` (the passwd field
/// separator), control characters, or over 4096 bytes.
pub fn check_path(field: &str, path: &str) -> Result<()> {
    let why = if !path.starts_with('/') {
        Some("is not an absolute path")
    } else if path.contains(':') {
        Some("contains ':' (the passwd field separator)")
    } else if path.chars().any(char::is_control) {
        Some("contains a control character")
    } else if path.len() > 4096 {
        Some("is longer than 4096 bytes")
    } else {
        None
    };
    match why {
        Some(reason) => Err(DirError::bad_input(field, format!("{path:?} {reason}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_names() {
        for ok in ["alice", "a.b-c_d", "svc$", "j@example.org", "x1"] {
            assert!(check("uid", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".", "..", "a,b", "a=b", "*", "a b", "a/b", "a:b", "a$b", "é", "a\n", &"x".repeat(65)] {
            assert!(check("uid", bad).is_err(), "{bad:?}");
        }
        assert!(check_path("home", "/home/a").is_ok());
        for bad in ["home/a", "/a:b", "/a\nb"] {
            assert!(check_path("home", bad).is_err(), "{bad:?}");
        }
    }
}
