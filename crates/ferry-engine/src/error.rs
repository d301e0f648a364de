//! The engine's error type: what went wrong, and what the user can do about it.

use crate::Hint;
use std::path::PathBuf;

/// Everything that can go wrong in the engine. Messages say what to do, not only what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vault exists in the home directory.
    #[error("no ferry vault in {home}")]
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
    #[error("the local database is damaged: {0}")]
    Corrupt(String),
    /// Encoding or sealing something this device made failed: a bug, not damage.
    #[error("cannot encode an object ({0}): this is a bug in ferry, please report it")]
    Encode(String),
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
    /// A change-feed cursor given back in a form no cursor has.
    #[error(
        "{token:?} is not a change cursor: give back the text `ChangeCursor::to_token` made, or start over from the beginning"
    )]
    BadCursor {
        /// The text given.
        token: String,
    },
    /// A change subscription's thread has stopped (its database read failed, reported before).
    #[error("the change subscription has stopped: subscribe again")]
    FeedStopped,
    /// A thread could not be started.
    #[error("{what}")]
    Thread {
        /// What the thread was for.
        what: &'static str,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A device to reach directly has no known address.
    #[error("no known address for device {0}")]
    NoPeerAddress(String),
    /// Something that goes through a store (pairing, sync) and this device has none.
    #[error("this device has no store")]
    NoStore,
    /// A store failed (unreachable, refusing, or missing).
    #[error("store error")]
    Store(#[source] ferry_store::StoreError),
    /// `init` found a vault in the store already.
    #[error("the store {location} already holds vault {vault_id}: join it instead of creating a new vault")]
    StoreHasVault {
        /// The store.
        location: String,
        /// The vault it holds.
        vault_id: String,
    },
    /// `join` found no vault in the store.
    #[error("no ferry vault in {location}")]
    NoVaultInStore {
        /// The store.
        location: String,
    },
    /// The store (or backup) holds another vault, or other keys, than this device's.
    #[error(
        "key mismatch: {location} holds vault {found} with key fingerprint {found_fingerprint}, but this device holds vault {ours} with key fingerprint {our_fingerprint}; nothing was written, here or there"
    )]
    KeyMismatch {
        /// The store or backup.
        location: String,
        /// The vault it holds.
        found: String,
        /// Its key fingerprint.
        found_fingerprint: String,
        /// This device's vault.
        ours: String,
        /// This device's key fingerprint.
        our_fingerprint: String,
    },
    /// The store has no passphrase slot for the current key epoch.
    #[error("{location} has no passphrase slot for its current key (it was retired when a device was revoked)")]
    NoPassphraseSlot {
        /// The store.
        location: String,
    },
    /// The recovery phrase does not open the vault's recovery slot.
    #[error("the recovery phrase does not open vault {vault_id} in {location}: nothing was written")]
    WrongRecoveryPhrase {
        /// The store.
        location: String,
        /// The vault in the store.
        vault_id: String,
    },
    /// A pairing invite or exchange is not valid.
    #[error(transparent)]
    Pairing(#[from] ferry_format::pairing::PairingError),
    /// The invite has expired.
    #[error("this invite expired at {expired}")]
    InviteExpired {
        /// When (RFC 3339).
        expired: String,
    },
    /// Another device answered the invite first.
    #[error("this invite was used already (by another device, or an earlier attempt)")]
    InviteUsed,
    /// The typed confirmation code is not the one the new device shows.
    #[error(
        "the code does not match the one computed here: the device that answered is not the one you are pairing; nothing was enrolled"
    )]
    PairingCodeMismatch,
    /// No answer came before the invite expired.
    #[error("no device answered the invite before it expired")]
    PairingTimedOut,
    /// This device was revoked.
    #[error(
        "this device was revoked by {by} at {at}: other devices no longer accept its changes and it cannot read newer ones"
    )]
    Revoked {
        /// The revoking device.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
    /// The op picked to resolve a conflict is not one of the record's heads.
    #[error("{op} is not a head of this record: pick one of {heads:?}")]
    NotAHead {
        /// The op given.
        op: String,
        /// The heads.
        heads: Vec<String>,
    },
    /// No device with that id (or id prefix) is known.
    #[error("no device `{0}` in this vault")]
    UnknownDevice(String),
    /// The device cannot be revoked from here.
    #[error("{0}")]
    CannotRevoke(String),
    /// A backup file that cannot be used.
    #[error("backup {path}: {reason}")]
    BadBackup {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The secret does not open the backup.
    #[error("the {secret} does not open backup {path}: nothing was changed")]
    WrongBackupSecret {
        /// The file.
        path: PathBuf,
        /// "recovery phrase" or "passphrase".
        secret: &'static str,
    },
    /// `init --force` needs the old vault's recovery phrase, verified.
    #[error(
        "the recovery phrase given does not open the vault in {location} (vault {vault_id}): refusing to replace a vault whose recovery phrase was not confirmed; nothing was changed"
    )]
    RecoveryNotConfirmed {
        /// The store.
        location: String,
        /// The vault in the store.
        vault_id: String,
    },
    /// A store with objects but no vault file.
    #[error(
        "{location} is not empty but holds no ferry vault file: choose an empty location (ferry does not write among other files)"
    )]
    StoreNotEmpty {
        /// The store.
        location: String,
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
        "the store {location} holds a different {path} than this device wrote, signed with this device's own key: another copy of this device is writing there (a copied home directory?)"
    )]
    ForeignOwnObject {
        /// The store.
        location: String,
        /// The object.
        path: String,
    },
    /// The inviting device received another request than this device's: someone who holds
    /// the invite replaced it. Nothing was confirmed.
    #[error(
        "the inviting device received another request than this device's: someone who has the invite line interfered. Nothing was enrolled; make a new invite and keep the line private"
    )]
    PairingInterfered,
    /// A name a rotation needs holds someone else's object: a store writer raced the
    /// revocation as it was being published. Other devices will not accept the revocation.
    #[error(
        "the store {location} holds a different {path} than this device wrote for its revocation: someone who can write to the store took the name while it was being published; other devices have not accepted the revocation"
    )]
    RotationObjectTaken {
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
    #[error("`{0}` is not a blob id: expected 64 hexadecimal characters")]
    InvalidBlobId(String),
    /// Neither this device nor any store has the blob.
    #[error(
        "blob {0} is not on this device nor in any store: the device that added it has not pushed it yet, or a store lost it (the devices holding it put it back at their next store check)"
    )]
    BlobNotFound(String),
    /// The store is configured already.
    #[error("this device syncs with {0} already")]
    StoreAlreadyAdded(String),
    /// No store is configured with that id.
    #[error("no store {0} on this device")]
    UnknownStore(String),
    /// SQLite failed.
    #[error("local database error")]
    Sqlite(#[from] rusqlite::Error),
}

/// Broad classes of [`Error`], for callers that map errors to exit codes or HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// What the user can do about this error, if something specific.
    pub fn hint(&self) -> Option<Hint> {
        Some(match self {
            Self::NoVault { .. } => Hint::CreateOrPointAtVault,
            Self::Corrupt(_) => Hint::RepairOrRestore,
            Self::NoPeerAddress(device) => Hint::AddPeerAddress { device: device.clone() },
            Self::NoStore => Hint::AddStore,
            Self::StoreHasVault { location, .. } => Hint::JoinInstead { location: location.clone() },
            Self::NoVaultInStore { location } => Hint::CreateVaultInStore { location: location.clone() },
            Self::KeyMismatch { .. } => Hint::CompareFingerprints,
            Self::NoPassphraseSlot { .. } => Hint::PairOrRecoverOrSetPassphrase,
            Self::WrongRecoveryPhrase { .. } => Hint::CheckRecoveryWords,
            Self::InviteExpired { .. } | Self::InviteUsed | Self::PairingCodeMismatch => Hint::InviteAgain,
            Self::PairingTimedOut => Hint::InviteAndAccept,
            Self::Revoked { .. } => Hint::PairAgain,
            Self::NotAHead { .. } => Hint::ShowConflicts,
            Self::UnknownDevice(_) => Hint::ListDevices,
            Self::WrongBackupSecret { .. } => Hint::UseBackupSecret,
            Self::RotationObjectTaken { .. } => Hint::RevokeAgain,
            Self::InvalidBlobId(_) => Hint::BlobIdFromPut,
            Self::StoreAlreadyAdded(_) => Hint::ListStores,
            Self::UnknownStore(_) => Hint::SeeSyncStatus,
            Self::ForeignOwnObject { .. } => Hint::StopCopiedHome,
            Self::CannotRevoke(reason) if reason.contains("itself") => Hint::RevokeFromAnotherDevice,
            Self::CannotRevoke(_) => Hint::ListDevices,
            Self::BadStoreObject { reason, .. } if reason.contains("key slot") => Hint::SetPassphrase,
            _ => return None,
        })
    }

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
            Self::Name(_)
            | Self::Value(_)
            | Self::InvalidDeviceName(_)
            | Self::InvalidBlobId(_)
            | Self::Pairing(_)
            | Self::InviteExpired { .. }
            | Self::InviteUsed
            | Self::PairingCodeMismatch
            | Self::CannotRevoke(_)
            | Self::NotAHead { .. }
            | Self::BadBackup { .. }
            | Self::BadCursor { .. } => ErrorClass::BadInput,
            Self::NoSuchRecord { .. } | Self::BlobNotFound(_) | Self::UnknownDevice(_) | Self::NoPeerAddress(_) => {
                ErrorClass::NotFound
            }
            Self::WrongPassphrase { .. } | Self::DatabaseKeyMismatch { .. } | Self::KeyFile { .. } => {
                ErrorClass::Locked
            }
            Self::NoVault { .. }
            | Self::AlreadyInitialized { .. }
            | Self::StoreHasVault { .. }
            | Self::NoVaultInStore { .. }
            | Self::KeyMismatch { .. }
            | Self::NoPassphraseSlot { .. }
            | Self::Revoked { .. }
            | Self::RecoveryNotConfirmed { .. }
            | Self::StoreNotEmpty { .. }
            | Self::UnknownStore(_)
            | Self::NoStore
            | Self::StoreAlreadyAdded(_) => ErrorClass::Setup,
            Self::WrongStorePassphrase { .. }
            | Self::WrongRecoveryPhrase { .. }
            | Self::WrongBackupSecret { .. }
            | Self::KeychainUnavailable(_) => ErrorClass::Locked,
            Self::PairingTimedOut => ErrorClass::Unavailable,
            Self::Store(e) => ErrorClass::of_store_error(e.kind),
            Self::ForeignOwnObject { .. }
            | Self::BadStoreObject { .. }
            | Self::RotationObjectTaken { .. }
            | Self::PairingInterfered => ErrorClass::Other,
            Self::Clock(_)
            | Self::Random(_)
            | Self::Corrupt(_)
            | Self::Encode(_)
            | Self::Io { .. }
            | Self::Sqlite(_)
            | Self::FeedStopped
            | Self::Thread { .. } => ErrorClass::Other,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
