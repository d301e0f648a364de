//! Store errors, classified so callers can decide between retrying and telling the user.

/// What kind of failure a store reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot be reached now (network down, server error, disk unmounted): retry later.
    Unavailable,
    /// The store refuses this device (permissions, credentials): retrying will not help.
    Denied,
    /// The store itself does not exist (no such folder or bucket).
    Missing,
    /// A path ferry would never write.
    InvalidPath,
    /// Anything else (disk full, I/O error).
    Other,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    /// The class of failure.
    pub kind: StoreErrorKind,
    /// The object or location involved.
    pub path: String,
    /// What happened, for people.
    pub message: String,
}

impl StoreError {
    /// A new error.
    pub fn new(kind: StoreErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, path: path.into(), message: message.into() }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }

    pub(crate) fn from_io(path: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::PermissionDenied | Io::ReadOnlyFilesystem => StoreErrorKind::Denied,
            Io::NotFound => StoreErrorKind::Missing,
            Io::TimedOut | Io::Interrupted | Io::WouldBlock | Io::StaleNetworkFileHandle => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        Self::new(kind, path, err.to_string())
    }
}
