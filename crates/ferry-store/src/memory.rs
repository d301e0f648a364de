//! A store in memory, for tests and benchmarks.

use crate::{Created, Fetched, Store, StoreError, check_path};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Each object's bytes and version (its etag).
type Objects = BTreeMap<String, (Vec<u8>, u64)>;

/// Objects in a shared map; clones share the same objects. Etags count versions.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<Objects>>,
}

impl MemoryStore {
    fn objects(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces an object's bytes behind ferry's back (tests of tampering).
    pub fn tamper(&self, path: &str, bytes: Vec<u8>) {
        let mut objects = self.objects();
        let version = objects.get(path).map_or(0, |(_, v)| v + 1);
        objects.insert(path.to_owned(), (bytes, version));
    }
}

impl Store for MemoryStore {
    fn location(&self) -> String {
        "memory:".to_owned()
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_path(path)?;
        Ok(self.objects().get(path).map(|(bytes, _)| bytes.clone()))
    }

    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        check_path(path)?;
        Ok(match self.objects().get(path) {
            None => Fetched::Missing,
            Some((_, version)) if etag == Some(version.to_string().as_str()) => Fetched::Unchanged,
            Some((bytes, version)) => Fetched::Changed { bytes: bytes.clone(), etag: Some(version.to_string()) },
        })
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        check_path(path)?;
        let mut objects = self.objects();
        if objects.contains_key(path) {
            return Ok(Created::Exists);
        }
        objects.insert(path.to_owned(), (bytes.to_vec(), 0));
        Ok(Created::New)
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_path(path)?;
        self.tamper(path, bytes.to_vec());
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_path(prefix)?;
        Ok(self.objects().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<crate::Listed>, StoreError> {
        check_path(prefix)?;
        Ok(self
            .objects()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(path, (bytes, _))| crate::Listed { path: path.clone(), size: Some(bytes.len() as u64) })
            .collect())
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        self.objects().remove(path);
        Ok(())
    }
}
