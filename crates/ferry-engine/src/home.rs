//! The device home directory: where one device keeps its local state.
//!
//! ```text
//! <home>/vault.db        SQLCipher database: records, op log, device keys (all encrypted)
//! <home>/local-key.age   the database key, age-encrypted to the passphrase (scrypt)
//! <home>/blobs/xx/<id>   sealed blob chunks and manifests (encrypted like in a store)
//! ```
//! Nothing in the home is ever copied to a store.

use crate::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The files of one device home.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLCipher database.
    pub fn database(&self) -> PathBuf {
        self.root.join("vault.db")
    }

    /// The passphrase-wrapped database key.
    pub fn local_key_file(&self) -> PathBuf {
        self.root.join("local-key.age")
    }

    /// Sealed blob objects this device holds.
    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Whether a vault has been created here.
    pub fn has_vault(&self) -> bool {
        self.database().exists()
    }

    /// Creates the directory, readable by this user only.
    pub(crate) fn create_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(Error::io("cannot create directory", &self.root))?;
        restrict_to_owner(&self.root)
    }
}

/// Writes a file atomically: a temporary sibling is written, flushed to disk and renamed over
/// `path`, so a crash leaves either the old file or the new one, never a torn one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(Error::io("cannot write", &tmp))?;
    restrict_to_owner(&tmp)?;
    fs::rename(&tmp, path).map_err(Error::io("cannot replace", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Flushes a directory entry so a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("cannot sync directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn restrict_to_owner(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(Error::io("cannot set permissions of", path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
