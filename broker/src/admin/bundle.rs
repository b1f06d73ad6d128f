//! The 0600 files a secret is handed out in, once: created new (an existing
//! file is refused, never overwritten), written and synced, removed again
//! when the directory change they belong to fails.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::AdminError;
use crate::directory::{Change, Directory, Dn};
use crate::model::Sealed;

/// Create `path` with mode 0600; refuse an existing file.
pub fn create_new(path: &Path) -> Result<std::fs::File, AdminError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AdminError::Usage(format!("cannot create {}: {e} (it must not exist)", path.display())))
}

/// Write the bundle's text and sync it to disk.
pub fn write(file: &mut std::fs::File, path: &Path, text: &str) -> Result<(), AdminError> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| AdminError::Failed(format!("writing {}: {e}", path.display())))
}

/// Swap a sealed secret for a new one (delete the exact old value, add the
/// new: a concurrent rotation is not overwritten) and hand the new one out
/// in a bundle at `out` (path, text) if given, which must not exist. Nothing
/// is left half-done: no bundle without the directory change.
pub async fn replace_sealed(
    dir: &Directory,
    dn: &Dn,
    attr: &str,
    old: Sealed,
    new: Sealed,
    out: Option<(&Path, &str)>,
) -> Result<(), AdminError> {
    let mut file = match out {
        Some((path, _)) => Some(create_new(path)?),
        None => None,
    };
    let a = attr.as_bytes().to_vec();
    let changed = dir
        .modify(
            dn,
            vec![
                Change::Delete(a.clone(), [old.0].into_iter().collect()),
                Change::Add(a, [new.0].into_iter().collect()),
            ],
        )
        .await;
    if let Err(e) = changed {
        if let Some((path, _)) = out {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.into());
    }
    match (file.as_mut(), out) {
        (Some(f), Some((path, bundle))) => write(f, path, bundle),
        _ => Ok(()),
    }
}
