//! Replication through stores: enrolling in a store, sealing and pushing this device's ops,
//! pulling and importing everyone else's, and the status of it all.
//!
//! What goes where (DESIGN §4):
//! - `enroll`: `ferry init --store` and `ferry join`: the vault file, key slots, device records.
//! - `outbox`: sealing own ops into hash-chained segments, once; objects waiting for a store.
//! - `push`: publishing the outbox and own segments, then the HEAD.
//! - `pull`: reading HEADs (1 + D requests when nothing changed), verifying and importing.
//! - `snapshot`: the merged state at a cut, written, published, verified and loaded.
//! - `prune`: deleting what a snapshot stands for, after a grace period.
//! - `audit`: listing a store to put back what it lost (own and relayed objects).
//! - `status`: per-store state, cursors, skipped objects with reasons.
//!
//! **Nothing here changes a record except through the op log and the fold**, and nothing reads
//! an object that is not complete and verified.

mod audit;
mod checks;
pub(crate) mod enroll;
pub(crate) mod epochs;
mod held;
pub(crate) mod import;
mod inflight;
mod outbox;
mod pair;
mod plan;
mod prune;
mod pull;
mod push;
pub(crate) mod registry;
mod replace;
mod schedule;
pub(crate) mod snapshot;
mod status;

pub use audit::{AUDIT_EVERY, AuditReport};
pub use checks::StoreKeyCheck;
pub use enroll::{JoinOptions, JoinWith, StoreVault};
pub use epochs::Revoked;
pub use pair::{Pairing, PairingConfirmation, PairingRequest, end_invite};
pub use prune::StorePruned;
pub use pull::PullReport;
pub use push::PushReport;
pub use schedule::{Backoff, Due, DueBecause, SyncReason, WaitBecause, due};
pub use snapshot::SnapshotWritten;
pub use status::{
    DeviceCursor, Direction, HistoryStatus, SkippedObject, StoreSize, StoreState, StoreStatus, SyncReport, SyncStatus,
};

use crate::{Error, Result, Vault};
use ferry_store::{Store, StoreError};

/// A store's (or a peer address's) id in this device's database; ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct StoreId(pub(crate) i64);

impl StoreId {
    /// The number `ferry store ls` shows.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for StoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl rusqlite::ToSql for StoreId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for StoreId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(Self)
    }
}

/// A store this device syncs with: its id in the local database and an open handle.
#[derive(Clone, Copy)]
pub struct StoreHandle<'a> {
    /// The local id of the store (see [`Vault::stores`]).
    pub id: StoreId,
    /// The open store.
    pub store: &'a dyn Store,
}

impl std::fmt::Debug for StoreHandle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreHandle({}, {})", self.id, self.store.location())
    }
}

/// A store as configured on this device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConfiguredStore {
    /// The local id.
    pub id: StoreId,
    /// The location as the user gave it (never with credentials).
    pub url: String,
}

impl Vault {
    /// The stores this device syncs with.
    ///
    /// # Errors
    /// Database failures.
    pub fn stores(&self) -> Result<Vec<ConfiguredStore>> {
        let mut stmt = self.conn.prepare("SELECT id, url FROM stores WHERE NOT peer ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok(ConfiguredStore { id: row.get(0)?, url: row.get(1)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}
