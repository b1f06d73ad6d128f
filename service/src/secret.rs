//! Secrets held in memory (zeroed on drop, redacted in Debug) and read from
//! files — never from argv, where `ps` would show them.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// A secret string, e.g. a bind password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A fresh random password of `len` characters from an unambiguous alphabet.
    pub fn generate(len: usize) -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = crate::clock::rng();
        let s: String = (0..len)
            .map(|_| {
                let i = rng.random_range(0..ALPHABET.len());
                ALPHABET.get(i).copied().map(char::from).unwrap_or('x')
            })
            .collect();
        SecretString::new(s)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read secret file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("secret file {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: String, mode: u32 },
    #[error("secret file {path} is empty")]
    Empty { path: String },
    #[error("secret file {path} is not UTF-8 text")]
    NotText { path: String },
    #[error("secret file {path} is larger than 64 KiB")]
    TooLarge { path: String },
}

/// Read a secret from `path`, or from standard input when `path` is `-`.
/// The file must not be world-readable. One trailing newline is removed.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let shown = path.display().to_string();
    let io = |source| SecretFileError::Io { path: shown.clone(), source };
    let mut buf = Zeroizing::new(Vec::new());
    if path == Path::new("-") {
        std::io::stdin().take(65537).read_to_end(&mut buf).map_err(io)?;
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o004 != 0 {
            return Err(SecretFileError::TooOpen { path: shown, mode: mode & 0o777 });
        }
        file.take(65537).read_to_end(&mut buf).map_err(io)?;
    }
    if buf.len() > 65536 {
        return Err(SecretFileError::TooLarge { path: shown });
    }
    let text = std::str::from_utf8(&buf).map_err(|_| SecretFileError::NotText { path: shown.clone() })?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    if text.is_empty() {
        return Err(SecretFileError::Empty { path: shown });
    }
    Ok(SecretString::new(text.to_string()))
}

/// One line of a secret typed at the terminal (with `prompt` on standard
/// error) or piped on standard input, without its line ending; at most 64 KiB.
pub fn read_line(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = Zeroizing::new(String::new());
    stdin.lock().take(65536).read_line(&mut line)?;
    Ok(Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// Write `contents` to `path` with mode 0600, replacing it atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let result = f.write_all(contents).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_private_and_nonempty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        write_private_file(&p, b"hunter2\n").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_secret_file(&p).unwrap().expose(), "hunter2");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_secret_file(&p), Err(SecretFileError::TooOpen { .. })));
        write_private_file(&p, b"\n").unwrap();
        assert!(matches!(read_secret_file(&p), Err(SecretFileError::Empty { .. })));
        write_private_file(&p, b"\xff\xfe").unwrap();
        assert!(matches!(read_secret_file(&p), Err(SecretFileError::NotText { .. })));
        assert!(format!("{:?}", SecretString::new("x".into())).contains("redacted"));
    }
}
