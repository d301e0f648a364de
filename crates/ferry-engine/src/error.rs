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
    /// A store failed (unreachable, refusing, or missing).
    #[error("store error")]
    Store(#[source] ferry_store::StoreError),
    /// `init` found a vault in the store already.
    #[error(
        "the store {location} already holds vault {vault_id}: join it with `ferry join {location}` instead of creating a new vault"
    )]
    StoreHasVault {
        /// The store.
        location: String,
        /// The vault it holds.
        vault_id: String,
    },
    /// `join` found no vault in the store.
    #[error("no ferry vault in {location}: check the location, or create one with `ferry init --store {location}`")]
    NoVaultInStore {
        /// The store.
        location: String,
    },
    /// The store holds another vault than this device's.
    #[error(
        "the store {location} holds vault {found}, but this device belongs to vault {ours}: nothing was written; check the store location"
    )]
    StoreVaultMismatch {
        /// The store.
        location: String,
        /// The vault in the store.
        found: String,
        /// This device's vault.
        ours: String,
    },
    /// The passphrase does not open the store's passphrase slot.
    #[error(
        "the passphrase does not open vault {vault_id} in {location}: nothing was written; use the passphrase of the device that created the vault"
    )]
    WrongStorePassphrase {
        /// The store.
        location: String,
        /// The vault in the store.
        vault_id: String,
    },
    /// The store has a different object where this device's own segment should be.
    #[error(
        "the store {location} holds a different {path} than this device wrote: another device is using this device's identity (a copied home directory?); stop using one of the copies"
    )]
    ForeignOwnObject {
        /// The store.
        location: String,
        /// The object.
        path: String,
    },
    /// An object of the store cannot be used, and the operation needs it.
    #[error("{path} in {location}: {reason}")]
    BadStoreObject {
        /// The store.
        location: String,
        /// The object.
        path: String,
        /// Why.
        reason: String,
    },
    /// The OS keychain cannot be used.
    #[error("the OS keychain is not available ({0}); the passphrase unlocks this device instead")]
    KeychainUnavailable(String),
    /// Not a blob id.
    #[error("`{0}` is not a blob id: expected 64 hexadecimal characters, as printed by `ferry blob put`")]
    InvalidBlobId(String),
    /// Neither this device nor any store has the blob.
    #[error("blob {0} is not on this device nor in any store: the device that added it has not pushed it yet")]
    BlobNotFound(String),
    /// The store is configured already.
    #[error("this device syncs with {0} already: see `ferry store ls`")]
    StoreAlreadyAdded(String),
    /// No store is configured with that id.
    #[error("no store with id {0} on this device: see `ferry sync status`")]
    UnknownStore(i64),
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
    /// A store or peer cannot be reached now; trying again later may work.
    Unavailable,
    /// Anything else: I/O, damage, the operating system.
    Other,
}

impl ErrorClass {
    /// The class of a store failure.
    pub fn of_store_error(kind: ferry_store::StoreErrorKind) -> Self {
        use ferry_store::StoreErrorKind as Kind;
        match kind {
            Kind::Unavailable => Self::Unavailable,
            Kind::Missing => Self::Setup,
            Kind::InvalidPath => Self::BadInput,
            Kind::Denied | Kind::Other => Self::Other,
        }
    }
}

impl Error {
    /// The error and its causes on one line, `what: why: detail`, for status and logs.
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Name(_) | Self::Value(_) | Self::InvalidDeviceName(_) | Self::InvalidBlobId(_) => {
                ErrorClass::BadInput
            }
            Self::NoSuchRecord { .. } | Self::BlobNotFound(_) => ErrorClass::NotFound,
            Self::WrongPassphrase { .. } | Self::DatabaseKeyMismatch { .. } | Self::KeyFile { .. } => {
                ErrorClass::Locked
            }
            Self::NoVault { .. }
            | Self::AlreadyInitialized { .. }
            | Self::StoreHasVault { .. }
            | Self::NoVaultInStore { .. }
            | Self::StoreVaultMismatch { .. }
            | Self::UnknownStore(_)
            | Self::StoreAlreadyAdded(_) => ErrorClass::Setup,
            Self::WrongStorePassphrase { .. } | Self::KeychainUnavailable(_) => ErrorClass::Locked,
            Self::Store(e) => ErrorClass::of_store_error(e.kind),
            Self::ForeignOwnObject { .. } | Self::BadStoreObject { .. } => ErrorClass::Other,
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
