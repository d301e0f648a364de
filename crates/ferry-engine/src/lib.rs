//! The local side of ferry: one device's encrypted vault of records.
//!
//! Apps embed the `ferry` crate, which groups this crate's API with store opening, pairing and
//! health checks from `ferry-net`; this crate is for what needs no network at all.
//!
//! A [`Vault`] is a SQLCipher database in the device's home directory. Apps put, get, list
//! and delete JSON records; every change is an op appended to the op log, and the current
//! value of each record is a deterministic fold of its ops (the `merge` module), kept in a
//! derived table that [`Vault::repair`] can rebuild from the log at any time.
//!
//! Devices replicate through stores (`ferry-store`): [`Vault::create_for_store`] and
//! [`Vault::join`] enroll a device, [`Vault::sync`] seals and pushes this device's ops and pulls,
//! verifies and imports everyone else's, [`Vault::sync_status`] says how that went. Blobs
//! ([`Vault::put_blob`], [`Vault::get_blob`]) carry large payloads beside the records.
//!
//! ```
//! use ferry_engine::{CreateOptions, Home, KdfCost, ListOptions, Passphrase, Unlock, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let home = Home::new(dir.path().join("laptop"));
//! let unlock = Unlock { passphrase: Passphrase::new("correct horse"), kdf_cost: KdfCost::WorkFactor(10) };
//! let created = Vault::create(&home, CreateOptions { device_name: "laptop".into(), unlock: unlock.clone() })?;
//! println!("write this down: {}", created.recovery_phrase.to_words());
//! let mut vault = created.vault;
//!
//! let changes = vault.watch();
//! vault.put("notes", "n1", &serde_json::json!({"title": "hi"}))?;
//! vault.write(|batch| {
//!     batch.put_json("notes", "n2", r#"{"title":"second"}"#)?;
//!     batch.delete("notes", "n1")
//! })?;
//!
//! let vault = Vault::open(&home, &unlock)?;
//! assert_eq!(vault.get("notes", "n2")?.unwrap().value.as_str(), r#"{"title":"second"}"#);
//! assert!(vault.get("notes", "n1")?.is_none());
//! assert_eq!(vault.list("notes", &ListOptions::default())?.len(), 1);
//! assert_eq!(changes.try_iter().count(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Invariants:
//! - **No key is written in plaintext**: the database key exists on disk only wrapped to the
//!   passphrase (and, where one exists, in the OS keychain); device and vault keys live only
//!   inside the encrypted database; sealed objects are all a store ever receives.
//! - **The op log is the truth**: `records` holds nothing that cannot be recomputed from `ops`.
//! - **The engine speaks no network protocol** and the database never leaves the device.

mod backup;
mod blob;
mod compact;
mod conflicts;
mod database;
mod error;
mod feed;
mod forget;
#[doc(hidden)]
pub mod fuzzing;
mod hint;
mod home;
mod hub_home;
mod identity;
mod keychain;
mod merge;
mod oplog;
mod policy;
mod random;
mod read;
mod repair;
mod retention;
mod search;
mod sync;
mod time;
mod unlock;
mod vault;
mod watch;
mod write;

pub use backup::{BackupSecret, ExportReport, ExportTo, ImportReport};
pub use blob::{BlobId, BlobInfo, CHUNK_SIZE};
pub use compact::Compacted;
pub use conflicts::{CollectionConflicts, Conflict, ConflictReport, Head, Resolution};
pub use error::{Error, ErrorClass, Result};
pub use feed::{ChangeBatch, ChangeCursor, FeedItem, Subscription};
pub use forget::{ForgetTarget, Forgotten, Purged};
pub use hint::Hint;
pub use home::Home;
pub use hub_home::HubHome;
pub use policy::Policy;
pub use read::{CollectionInfo, HistoryFilter, ListOptions, Page, PageRequest, Record};
pub use repair::RepairReport;
pub use retention::{DEFAULT_GRACE_MS, DEFAULT_RETENTION_MS, PRUNE_EVERY, PruneOptions, PruneReport, Retention};
pub use search::Found;
pub use sync::{
    AUDIT_EVERY, AuditReport, Backoff, ConfiguredStore, DeviceCursor, Direction, Due, DueBecause, HistoryStatus,
    JoinOptions, JoinWith, Pairing, PairingConfirmation, PairingRequest, PullReport, PushReport, Revoked,
    SkippedObject, SnapshotWritten, StoreHandle, StoreId, StoreKeyCheck, StorePruned, StoreSize, StoreState,
    StoreStatus, StoreVault, SyncReason, SyncReport, SyncStatus, WaitBecause, due, end_invite,
};
pub use time::{format_duration_ms, parse_duration, parse_time, rfc3339};
pub use unlock::{KdfCost, Passphrase, Unlock};
pub use vault::{CreateOptions, Created, DeviceInfo, Status, UnlockedWith, Vault};
pub use watch::Change;
pub use write::{Writer, now_ms};

#[cfg(test)]
mod forget_tests;
#[cfg(test)]
mod heal_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
