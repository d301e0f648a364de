//! Stores: where devices exchange sealed objects.
//!
//! A store is dumb: `(path) → bytes`, with create-if-absent for immutable objects and plain
//! overwrite for the one mutable kind (a device's HEAD). **The store layer never sees
//! plaintext and knows nothing of records, ops or merge**: everything it holds is sealed by
//! `ferry-format` before it gets here. Crypto, request counting and fault injection are not
//! backend concerns; counting and faults are decorators ([`CountingStore`], [`FaultyStore`])
//! that wrap any store.
//!
//! ```
//! use ferry_store::{Created, Fetched, MemoryStore, Store};
//!
//! let store = MemoryStore::default();
//! assert_eq!(store.put_if_absent("log/a/1.seg", b"sealed")?, Created::New);
//! assert_eq!(store.put_if_absent("log/a/1.seg", b"other")?, Created::Exists);
//! let Fetched::Changed { etag, .. } = store.get_if_changed("log/a/1.seg", None)? else { unreachable!() };
//! assert_eq!(store.get_if_changed("log/a/1.seg", etag.as_deref())?, Fetched::Unchanged);
//! # Ok::<(), ferry_store::StoreError>(())
//! ```

mod decorators;
mod error;
mod folder;
mod hub;
mod memory;
mod s3;
mod url;

pub use decorators::{CallCounts, CountingStore, FaultPlan, FaultyStore};
pub use error::{StoreError, StoreErrorKind};
pub use folder::{FolderStore, remove_older_than};
pub use hub::HubLocation;
pub use memory::MemoryStore;
pub use s3::{S3Credentials, S3Location, S3Store};
pub use url::{HubOpener, OpenOptions, StoreUrl, open, prepare};

/// Runs `f` where blocking is allowed: on this thread, or on a scoped helper thread when this
/// thread is driving an async (tokio) runtime, where blocking would panic or stall the runtime.
/// Every blocking store call of an embedding app goes through here, so ferry's blocking API is
/// safe to call from async code (it still blocks the calling task: use `spawn_blocking` to keep
/// a runtime responsive).
pub fn outside_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The result of [`Store::put_if_absent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written.
    New,
    /// An object already had that path; nothing was written.
    Exists,
}

/// The result of [`Store::get_if_changed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The object still has the given etag.
    Unchanged,
    /// There is no such object.
    Missing,
    /// The object's bytes and its current etag (if the store has etags).
    Changed {
        /// The object.
        bytes: Vec<u8>,
        /// An opaque version tag for the next conditional read.
        etag: Option<String>,
    },
}

/// One place that holds a vault's objects. Object-safe: use it as `Arc<dyn Store>`.
///
/// Paths are relative, `/`-separated, made of ASCII letters, digits, `.`, `_` and `-`
/// (see [`check_path`]); every implementation refuses others.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the store is, for people: never includes credentials.
    fn location(&self) -> String;

    /// Reads an object; `None` if it does not exist.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads an object unless it still has `etag`: one request either way.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError>;

    /// Reads several objects, `None` for each one missing, in the order asked. One round trip
    /// where the store can (a peer answers a batch in one request, S3 reads them at once); the
    /// default reads them one by one.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn get_many(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        paths.iter().map(|path| self.get(path)).collect()
    }

    /// Writes an immutable object unless one exists at `path`. A reader never sees a partial
    /// object.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError>;

    /// Writes or replaces an object atomically (only a device's HEAD is ever replaced).
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// The paths of the objects under `prefix` (a directory-like prefix ending in `/`), sorted.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// [`Store::list`] with each object's size where the store's listing gives it (S3 and
    /// folders do) at no extra request: a store check spots a truncated object without reading
    /// it. The default gives no sizes.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(self.list(prefix)?.into_iter().map(|path| Listed { path, size: None }).collect())
    }

    /// Deletes an object; deleting a missing object is not an error.
    ///
    /// # Errors
    /// The store is unreachable or refuses.
    fn delete(&self, path: &str) -> Result<(), StoreError>;
}

/// An object a listing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its path.
    pub path: String,
    /// Its size in bytes, if the listing says.
    pub size: Option<u64>,
}

/// Checks that `path` is a store path ferry writes: relative, `/`-separated segments of ASCII
/// letters, digits, `.`, `_`, `-`, none empty, `.` or `..`. A prefix may end with `/`.
///
/// # Errors
/// [`StoreErrorKind::InvalidPath`].
pub fn check_path(path: &str) -> Result<(), StoreError> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let valid = trimmed.is_empty()
        || trimmed.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if valid { Ok(()) } else { Err(StoreError::new(StoreErrorKind::InvalidPath, path, "not a ferry object path")) }
}

/// A borrowed store is a store, so decorators can wrap one without owning it.
impl<S: Store + ?Sized> Store for &S {
    fn location(&self) -> String {
        (**self).location()
    }
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(path)
    }
    fn get_if_changed(&self, path: &str, etag: Option<&str>) -> Result<Fetched, StoreError> {
        (**self).get_if_changed(path, etag)
    }
    fn get_many(&self, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        (**self).get_many(paths)
    }
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        (**self).put_if_absent(path, bytes)
    }
    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put(path, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(prefix)
    }
    fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        (**self).list_sized(prefix)
    }
    fn delete(&self, path: &str) -> Result<(), StoreError> {
        (**self).delete(path)
    }
}

#[cfg(test)]
mod contract_tests;
