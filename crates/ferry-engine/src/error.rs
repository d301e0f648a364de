//! The engine's error type: what went wrong, and what the user can do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the engine. Messages say what to do, not only what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No vault exists in the home directory.
    #[error(
        "no ferry vault in {home}: run `ferry init` to create one, or point --home / FERRY_HOME at an existing device"
    )]
    NoVault {
        /// The device home directory that was searched.
        home: PathBuf,
    },
    /// A vault already exists in the home directory.
    #[error("a ferry vault already exists in {home}: use it, or choose another --home")]
    AlreadyInitialized {
        /// The device home directory.
        home: PathBuf,
    },
    /// The passphrase does not open this device's local key.
    #[error("wrong passphrase for the vault in {home}: nothing was changed; try again")]
    WrongPassphrase {
        /// The device home directory.
        home: PathBuf,
    },
    /// The local key opened but the database does not accept it.
    #[error(
        "the local database {path} cannot be read with this device's key: it is damaged, or it belongs to another device home"
    )]
    DatabaseKeyMismatch {
        /// The database file.
        path: PathBuf,
    },
    /// A name given by the caller is not acceptable.
    #[error(transparent)]
    Name(#[from] ferry_format::NameError),
    /// A value given by the caller is not acceptable.
    #[error(transparent)]
    Value(#[from] ferry_format::ValueError),
    /// A device name that is empty, too long or has control characters.
    #[error("device name {0:?} is not usable: give 1 to 64 printable characters, e.g. --name laptop")]
    InvalidDeviceName(String),
    /// The record to change does not exist (or is deleted).
    #[error("no record `{key}` in collection `{collection}`")]
    NoSuchRecord {
        /// The collection.
        collection: String,
        /// The key.
        key: String,
    },
    /// The device's clock cannot advance.
    #[error(transparent)]
    Clock(#[from] ferry_format::HlcError),
    /// The operating system refused random bytes.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// Encryption or decryption of local key material failed for a reason other than a wrong passphrase.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The local database holds something ferry did not write (damage or tampering).
    #[error("the local database is damaged: {0}; run `ferry repair`, or restore the device from its stores")]
    Corrupt(String),
    /// A filesystem operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("cannot create", "cannot read"…).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("local database error")]
    Sqlite(#[from] rusqlite::Error),
}

/// Broad classes of [`Error`], for callers that map errors to exit codes or HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller's input was refused; retrying the same input fails the same way.
    BadInput,
    /// What was asked for does not exist.
    NotFound,
    /// The vault could not be unlocked.
    Locked,
    /// The device home is not in the state the command needs (missing or existing vault).
    Setup,
    /// Anything else: I/O, damage, the operating system.
    Other,
}

impl Error {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Name(_) | Self::Value(_) | Self::InvalidDeviceName(_) => ErrorClass::BadInput,
            Self::NoSuchRecord { .. } => ErrorClass::NotFound,
            Self::WrongPassphrase { .. } | Self::DatabaseKeyMismatch { .. } | Self::KeyFile { .. } => {
                ErrorClass::Locked
            }
            Self::NoVault { .. } | Self::AlreadyInitialized { .. } => ErrorClass::Setup,
            Self::Clock(_) | Self::Random(_) | Self::Corrupt(_) | Self::Io { .. } | Self::Sqlite(_) => {
                ErrorClass::Other
            }
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
