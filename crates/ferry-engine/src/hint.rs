//! What a user can do about an error or a failed check, as data: the CLI words each hint as a
//! command (`ferry-cli/src/hints.rs`), an app as a button or a sentence of its own. Error
//! messages say what went wrong; the hint says what to do, and names no command.

/// A next step for the user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "hint", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Hint {
    /// No vault here: create one, or point at the home of an existing device.
    CreateOrPointAtVault,
    /// The local database is damaged: rebuild the derived state, or restore from the stores.
    RepairOrRestore,
    /// A device has no known address: add one, or let the daemon find it on the LAN.
    AddPeerAddress {
        /// The device.
        device: String,
    },
    /// This device has no store: add one.
    AddStore,
    /// The store already holds a vault: join it (or pair), or replace it knowingly.
    JoinInstead {
        /// The store.
        location: String,
    },
    /// The store holds no vault: check the location, or create a vault there.
    CreateVaultInStore {
        /// The store.
        location: String,
    },
    /// Keys differ: compare fingerprints on each device; pair to move this device.
    CompareFingerprints,
    /// Joining with the passphrase is off: pair, join with the recovery phrase, or set a new
    /// vault passphrase on a device.
    PairOrRecoverOrSetPassphrase,
    /// The recovery phrase is wrong: check the words written down when the vault was made.
    CheckRecoveryWords,
    /// The invite cannot be used: make a new one on the inviting device.
    InviteAgain,
    /// Nobody answered in time: make a new invite and answer it on the new device.
    InviteAndAccept,
    /// This device was revoked: pair it again into a new home.
    PairAgain,
    /// Pick one of the record's heads: show the conflict.
    ShowConflicts,
    /// See the vault's devices.
    ListDevices,
    /// Revoke from another device of the vault.
    RevokeFromAnotherDevice,
    /// Use the backup's recovery phrase, or the passphrase it was exported with.
    UseBackupSecret,
    /// Run the revocation again (it gets new names) and check who can write to the store.
    RevokeAgain,
    /// A blob id is printed when the blob is added.
    BlobIdFromPut,
    /// See the stores this device syncs with.
    ListStores,
    /// See the sync status (stores, devices, skipped objects).
    SeeSyncStatus,
    /// Write a new passphrase slot from a device of the vault.
    SetPassphrase,
    /// Sync, so the store receives what it lacks.
    Sync,
    /// The recovery phrase was never confirmed here: check the written copy.
    ConfirmRecoveryPhrase,
    /// A copied home writes as this device: stop one copy, pair the other as a new device.
    StopCopiedHome,
    /// The store lost objects this device holds: put them back now (a push does within the hour).
    RepairStore,
}
