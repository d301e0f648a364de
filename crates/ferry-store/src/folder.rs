//! A store in a directory: a NAS share, a USB disk, a Syncthing folder.
//!
//! Immutable objects are written to a temporary file in `<root>/.ferry-tmp/`, flushed, and then
//! hard-linked to their name, which fails if the name exists: create-if-absent, atomic, and a
//! reader never sees a partial object. Filesystems without hard links (FAT, some network
//! mounts) fall back to check-then-rename, which is safe because each device writes only under
//! its own prefix. HEADs are replaced by rename. Etags are `mtime-size-inode`.

use crate::{Created, Fetched, Store, StoreError, StoreErrorKind, check_path};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

const TMP_DIR: &str = ".ferry-tmp";
/// A temporary file older than this was left by a writer that was killed: no live write takes
/// a day between creating its file and linking it.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// A store rooted at a directory.
#[derive(Debug, Clone)]
pub struct FolderStore {
    root: PathBuf,
    /// Abandoned temporaries are removed once per store handle, before its first write.
    swept: std::sync::Arc<std::sync::Once>,
}

impl FolderStore {
    /// The objects under `prefix`, sorted, with their sizes if `sized` (one stat each).
    fn walk(&self, prefix: &str, sized: bool) -> Result<Vec<crate::Listed>, StoreError> {
        check_path(prefix)?;
        self.check_root()?;
        let mut out = Vec::new();
        let mut pending = vec![self.root.join(prefix)];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::from_io(prefix, &e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::from_io(prefix, &e))?;
                let path = entry.path();
                let Ok(relative) = path.strip_prefix(&self.root) else { continue };
                let Some(relative) = relative.to_str().map(|r| r.replace('\\', "/")) else { continue };
                if relative.starts_with(TMP_DIR) {
                    continue;
                }
                if entry.file_type().map_err(|e| StoreError::from_io(prefix, &e))?.is_dir() {
                    pending.push(path);
                } else if check_path(&relative).is_ok() {
                    // Names ferry never writes (sync-tool temporaries, conflict copies) are skipped.
                    // A file gone between the listing and its stat is left out.
                    let size = match sized {
                        false => None,
                        true => match entry.metadata() {
                            Ok(metadata) => Some(metadata.len()),
                            Err(e) if e.kind() == ErrorKind::NotFound => continue,
                            Err(e) => return Err(StoreError::from_io(prefix, &e)),
                        },
                    };
                    out.push(crate::Listed { path: relative, size });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A store at `root`, which must exist (see `prepare`). Reads and writes of a missing root report [`StoreErrorKind::Unavailable`]: an
    /// unmounted disk must not look like an empty store.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), swept: std::sync::Arc::new(std::sync::Once::new()) }
    }

    /// Removes temporary files that killed writers left in `.ferry-tmp/` (older than a day).
    fn sweep_abandoned(&self) {
        self.swept.call_once(|| remove_older_than(&self.root.join(TMP_DIR), "tmp", ABANDONED_AFTER));
    }

    fn file(&self, path: &str) -> Result<PathBuf, StoreError> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    fn check_root(&self) -> Result<(), StoreError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            // Most often an unmounted disk or share: worth retrying, never to be taken as empty.
            Err(StoreError::new(
                StoreErrorKind::Unavailable,
                self.root.display().to_string(),
                "the store folder does not exist (is the disk or share mounted?)",
            ))
        }
    }

    /// Writes `bytes` to a fresh temporary file, flushed to disk.
    fn temp_file(&self, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        self.sweep_abandoned();
        let dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::from_io(TMP_DIR, &e))?;
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|e| StoreError::new(StoreErrorKind::Other, TMP_DIR, e.to_string()))?;
        let tmp = dir.join(format!("{}.tmp", hex::encode(name)));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create_new(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::from_io(TMP_DIR, &e)
        })?;
        Ok(tmp)
    }
}

fn create_parent(path: &str, file: &Path) -> Result<(), StoreError> {
    if let Some(parent) = file.parent() {
        fs::create_dir_all(parent).map_err(|e| StoreError::from_io(path, &e))?;
    }
    Ok(())
}

fn sync_parent(path: &str, file: &Path) -> Result<(), StoreError> {
    if let Some(parent) = file.parent() {
        fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(|e| StoreError::from_io(path, &e))?;
    }
    Ok(())
}

fn etag(metadata: &fs::Metadata) -> String {
    let modified =
        metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0;
    format!("{modified:x}-{:x}-{inode:x}", metadata.len())
}

/// Removes the files named `*.<extension>` in `dir` last modified longer than `age` ago (best
/// effort: a file that cannot be read or removed is left for the next time).
pub fn remove_older_than(dir: &Path, extension: &str, age: std::time::Duration) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old && path.extension().is_some_and(|e| e == extension) {
            let _ = fs::remove_file(&path);
        }
    }
}

impl Store for FolderStore {
    fn location(&self) -> String {
        format!("folder:{}", self.root.display())
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let file = self.file(path)?;
        match fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => self.check_root().map(|()| None),
            Err(e) => Err(StoreError::from_io(path, &e)),
        }
    }

    fn get_if_changed(&self, path: &str, known: Option<&str>) -> Result<Fetched, StoreError> {
        let file = self.file(path)?;
        let metadata = match fs::metadata(&file) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == ErrorKind::NotFound => return self.check_root().map(|()| Fetched::Missing),
            Err(e) => return Err(StoreError::from_io(path, &e)),
        };
        let current = etag(&metadata);
        if known == Some(current.as_str()) {
            return Ok(Fetched::Unchanged);
        }
        match fs::read(&file) {
            Ok(bytes) => Ok(Fetched::Changed { bytes, etag: Some(current) }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Fetched::Missing),
            Err(e) => Err(StoreError::from_io(path, &e)),
        }
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        let file = self.file(path)?;
        if file.exists() {
            return Ok(Created::Exists);
        }
        self.check_root()?;
        create_parent(path, &file)?;
        let tmp = self.temp_file(bytes)?;
        let linked = fs::hard_link(&tmp, &file);
        let outcome = match linked {
            Ok(()) => Ok(Created::New),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Created::Exists),
            // No hard links here: check, then rename. Only this device writes under its prefix.
            Err(_) if file.exists() => Ok(Created::Exists),
            Err(_) => fs::rename(&tmp, &file).map(|()| Created::New).map_err(|e| StoreError::from_io(path, &e)),
        };
        let _ = fs::remove_file(&tmp);
        let outcome = outcome?;
        sync_parent(path, &file)?;
        Ok(outcome)
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let file = self.file(path)?;
        self.check_root()?;
        create_parent(path, &file)?;
        let tmp = self.temp_file(bytes)?;
        fs::rename(&tmp, &file).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::from_io(path, &e)
        })?;
        sync_parent(path, &file)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.walk(prefix, false)?.into_iter().map(|listed| listed.path).collect())
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<crate::Listed>, StoreError> {
        self.walk(prefix, true)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let file = self.file(path)?;
        match fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::from_io(path, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::time::{Duration, SystemTime};

    #[test]
    fn temporaries_left_by_killed_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        let abandoned = tmp.join("abandoned.tmp");
        let live = tmp.join("live.tmp");
        for path in [&abandoned, &live] {
            fs::write(path, b"half an object").unwrap();
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
        fs::File::options().write(true).open(&abandoned).unwrap().set_modified(two_days_ago).unwrap();

        let store = FolderStore::new(dir.path());
        store.put_if_absent("log/x/HEAD", b"object").unwrap();
        assert!(!abandoned.exists(), "a day-old temporary is gone");
        assert!(live.exists(), "a fresh one (maybe another device's write) stays");
    }
}
