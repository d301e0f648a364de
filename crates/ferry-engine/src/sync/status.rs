//! Sync attempts and the status of sync: per store, per device, and what was skipped.

use super::{PullReport, PushReport, StoreHandle, StoreId};
use crate::database::{from_sql_u64, meta_get, to_sql_u64};
use crate::write::now_ms;
use crate::{Error, Result, Vault};
use ferry_format::DeviceId;
use rusqlite::params;

/// Which way to sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Publish local changes only.
    Push,
    /// Fetch others' changes only.
    Pull,
    /// Push, then pull.
    Both,
}

/// What one sync with one store did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// The push, if one ran.
    pub push: Option<PushReport>,
    /// The pull, if one ran.
    pub pull: Option<PullReport>,
}

/// The state of one store, as of the last attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StoreState {
    /// Never synced yet.
    NeverSynced,
    /// The last sync worked and nothing local waits for it.
    UpToDate,
    /// The last sync worked, and local changes made since wait for the next.
    Pending,
    /// The last attempt could not reach the store; it will be retried.
    Offline,
    /// The last attempt failed in a way retrying will not fix (see the error).
    Error,
}

/// One store's sync status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoreStatus {
    /// Local id.
    pub id: StoreId,
    /// A device pulled from directly (`ferry sync --peer`), not a store.
    pub peer: bool,
    /// Location (never with credentials).
    pub url: String,
    /// The state.
    pub state: StoreState,
    /// When the last attempt started (ms since the Unix epoch).
    pub last_attempt_ms: Option<u64>,
    /// When the last successful sync finished.
    pub last_success_ms: Option<u64>,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// Consecutive failed attempts.
    pub failures: u64,
    /// When to try again after failures (backoff with jitter).
    pub next_retry_ms: Option<u64>,
    /// This device's last segment the store has.
    pub uploaded_seq: u64,
    /// Own segments sealed but not yet in this store.
    pub pending_segments: u64,
    /// Objects queued for this store (enrollment).
    pub queued_objects: u64,
    /// After a forget: the first own segment the next push overwrites here without the
    /// forgotten ops (`None`: no purge pending).
    pub pending_purge: Option<u64>,
    /// What the store held when it was last listed (a store check, every hour; a prune).
    pub size: Option<StoreSize>,
}

/// A store's size as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoreSize {
    /// Objects of this vault (and anything else under its location).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was listed (ms since the Unix epoch).
    pub listed_ms: u64,
}

/// How much history this device keeps, and what a prune would drop.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HistoryStatus {
    /// Ops in the log.
    pub ops: u64,
    /// Records (live or deleted) they make.
    pub records: u64,
    /// Ops older than the retention that are not a record's current one: at most this many go
    /// with the next `ferry prune` (heads of concurrent writes and what merges need stay).
    pub prunable_ops: u64,
    /// The vault's retention.
    pub retention: crate::Retention,
    /// The newest snapshot this device holds (its manifest's path) and when it was written.
    pub snapshot: Option<(String, u64)>,
    /// The database file and its write-ahead log, in bytes.
    pub database_bytes: u64,
}

/// Import progress from one other device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DeviceCursor {
    /// The device.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// Its last segment imported here (0: none).
    pub imported_seq: u64,
    /// Ops imported from it.
    pub imported_ops: u64,
}

/// An object that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SkippedObject {
    /// The store it is in.
    pub store: String,
    /// Its path.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Everything `ferry sync status` shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SyncStatus {
    /// Each store.
    pub stores: Vec<StoreStatus>,
    /// Own ops that not every store has.
    pub unpublished_ops: u64,
    /// Import progress per other device.
    pub devices: Vec<DeviceCursor>,
    /// Objects skipped, with reasons.
    pub skipped: Vec<SkippedObject>,
    /// Concurrent writes merged automatically by the collection's policy, ever.
    pub auto_resolved_conflicts: u64,
    /// Records that now have more than one head (concurrent writes not yet superseded).
    pub records_with_concurrent_heads: u64,
    /// History kept here and what a prune would drop.
    pub history: HistoryStatus,
}

impl Vault {
    /// Syncs with one store and records the attempt (for status and backoff).
    ///
    /// # Errors
    /// As [`Vault::push`] and [`Vault::pull`]; the failure is also recorded.
    pub fn sync(&mut self, handle: StoreHandle<'_>, direction: Direction) -> Result<SyncReport> {
        let started = now_ms();
        let outcome = (|| -> Result<SyncReport> {
            let push = matches!(direction, Direction::Push | Direction::Both).then(|| self.push(handle)).transpose();
            // A push refused for what the store holds (a copied home, a taken name) must not
            // also keep this device from receiving others' changes: pull anyway, then report
            // the push's error. A store that cannot be reached or refuses access is left alone.
            let pull = match &push {
                Err(Error::Store(_)) => None,
                _ => matches!(direction, Direction::Pull | Direction::Both).then(|| self.pull(handle)).transpose()?,
            };
            let push = push?;
            // A pull may have brought this device's own revocation: say so rather than succeed.
            self.ensure_not_revoked()?;
            Ok(SyncReport { push, pull })
        })();
        self.record_attempt(handle.id, started, outcome.as_ref().err())?;
        outcome
    }

    fn record_attempt(&self, store: StoreId, started_ms: u64, error: Option<&Error>) -> Result<()> {
        let started = to_sql_u64(started_ms)?;
        match error {
            None => {
                self.conn.execute(
                    "UPDATE stores SET last_attempt_ms = ?1, last_success_ms = ?2, last_error = NULL,
                     error_transient = 0, failures = 0, next_retry_ms = NULL WHERE id = ?3",
                    params![started, to_sql_u64(now_ms())?, store],
                )?;
            }
            Some(error) => {
                let failures: i64 =
                    self.conn.query_row("SELECT failures FROM stores WHERE id = ?1", [store], |row| row.get(0))?;
                let failures = from_sql_u64(failures)? + 1;
                let transient = matches!(error, Error::Store(e) if e.is_transient());
                let pause = super::Backoff::DEFAULT.pause_now(failures);
                let next_retry = now_ms().saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
                self.conn.execute(
                    "UPDATE stores SET last_attempt_ms = ?1, last_error = ?2, error_transient = ?3, failures = ?4,
                     next_retry_ms = ?5 WHERE id = ?6",
                    params![
                        started,
                        error.with_causes(),
                        transient,
                        to_sql_u64(failures)?,
                        to_sql_u64(next_retry)?,
                        store
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Own ops that not every store has (all of them while there is no store).
    pub(crate) fn unpublished_ops(&self) -> Result<u64> {
        let op_counter = from_sql_u64(meta_get(&self.conn, "op_counter")?)?;
        let published: Option<i64> = self.conn.query_row(
            "SELECT min(coalesce((SELECT last_counter FROM own_segments WHERE seq = s.uploaded_seq), 0)) FROM stores s WHERE NOT s.peer",
            [],
            |row| row.get(0),
        )?;
        Ok(op_counter.saturating_sub(published.map(from_sql_u64).transpose()?.unwrap_or(0)))
    }

    /// The sync status of this device.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let unpublished_ops = self.unpublished_ops()?;
        let concurrent: i64 =
            self.conn.query_row("SELECT count(*) FROM records WHERE length(heads) > 24", [], |row| row.get(0))?;
        Ok(SyncStatus {
            stores: self.store_statuses(unpublished_ops)?,
            unpublished_ops,
            devices: self.device_cursors()?,
            skipped: self.skipped_objects()?,
            auto_resolved_conflicts: from_sql_u64(meta_get(&self.conn, "auto_resolved")?)?,
            records_with_concurrent_heads: from_sql_u64(concurrent)?,
            history: self.history_status()?,
        })
    }

    /// History kept here and what a prune would drop (an upper bound, read from the log's
    /// record index without folding anything).
    fn history_status(&self) -> Result<HistoryStatus> {
        let retention = self.retention()?;
        let horizon = crate::write::now_ms().saturating_sub(retention.keep_ms()).min(ferry_format::Hlc::MAX_WALL_MS);
        let horizon = i64::try_from(horizon << 16).unwrap_or(i64::MAX);
        let (ops, records, prunable): (i64, i64, i64) = self.conn.query_row(
            "SELECT (SELECT count(*) FROM ops), (SELECT count(*) FROM records),
                    (SELECT count(*) FROM ops o WHERE o.kind != 3 AND o.hlc < ?1 AND NOT EXISTS
                        (SELECT 1 FROM records r WHERE r.collection = o.collection AND r.key = o.key
                            AND r.winner_device = o.device AND r.winner_counter = o.counter))",
            [horizon],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let snapshot = self.newest_held_snapshot()?.map(|s| (s.path(), s.created_ms));
        Ok(HistoryStatus {
            ops: from_sql_u64(ops)?,
            records: from_sql_u64(records)?,
            prunable_ops: from_sql_u64(prunable)?,
            retention,
            snapshot,
            database_bytes: self.database_bytes(),
        })
    }

    /// Remembers what a listing of the store showed (for `sync status`).
    pub(crate) fn note_store_size(&self, store: StoreId, objects: u64, bytes: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE stores SET listed_objects = ?1, listed_bytes = ?2, listed_ms = ?3 WHERE id = ?4",
            params![to_sql_u64(objects)?, to_sql_u64(bytes)?, to_sql_u64(crate::write::now_ms())?, store],
        )?;
        Ok(())
    }

    /// Each store's (and peer's) status, as of its last attempt.
    fn store_statuses(&self, unpublished_ops: u64) -> Result<Vec<StoreStatus>> {
        let last_seq: i64 =
            self.conn.query_row("SELECT coalesce(max(seq), 0) FROM own_segments", [], |row| row.get(0))?;
        let mut stmt = self.conn.prepare(
            "SELECT id, url, last_attempt_ms, last_success_ms, last_error, error_transient, failures, next_retry_ms,
                    uploaded_seq, (SELECT count(*) FROM store_outbox o WHERE o.store = s.id), peer,
                    listed_objects, listed_bytes, listed_ms
             FROM stores s ORDER BY peer, id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, StoreId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, bool>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, Option<i64>>(7)?,
                row.get::<_, i64>(8)?,
                row.get::<_, i64>(9)?,
                row.get::<_, bool>(10)?,
                (row.get::<_, Option<i64>>(11)?, row.get::<_, Option<i64>>(12)?, row.get::<_, Option<i64>>(13)?),
            ))
        })?;
        let optional = |value: Option<i64>| value.map(from_sql_u64).transpose();
        let mut stores = Vec::new();
        for row in rows {
            let (id, url, attempt, success, error, transient, failures, retry, uploaded, queued, peer, listed) = row?;
            let size = match listed {
                (Some(objects), Some(bytes), Some(at)) => Some(StoreSize {
                    objects: from_sql_u64(objects)?,
                    bytes: from_sql_u64(bytes)?,
                    listed_ms: from_sql_u64(at)?,
                }),
                _ => None,
            };
            let pending_segments = from_sql_u64(last_seq.saturating_sub(uploaded))?;
            let pending_purge = self.pending_rewrite(id)?;
            let waiting = pending_segments > 0 || queued > 0 || unpublished_ops > 0 || pending_purge.is_some();
            let last = match (&error, success) {
                (Some(_), _) if transient => LastAttempt::Unreachable,
                (Some(_), _) => LastAttempt::Failed,
                (None, None) => LastAttempt::Never,
                (None, Some(_)) => LastAttempt::Worked,
            };
            stores.push(StoreStatus {
                id,
                url,
                peer,
                state: store_state(last, waiting),
                last_attempt_ms: optional(attempt)?,
                last_success_ms: optional(success)?,
                last_error: error,
                failures: from_sql_u64(failures)?,
                next_retry_ms: optional(retry)?,
                uploaded_seq: from_sql_u64(uploaded)?,
                pending_segments,
                queued_objects: from_sql_u64(queued)?,
                pending_purge,
                size,
            });
        }
        Ok(stores)
    }

    /// Import progress from every other device.
    fn device_cursors(&self) -> Result<Vec<DeviceCursor>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.device_id, d.name, coalesce(c.seq, 0), coalesce(c.ops, 0)
             FROM devices d LEFT JOIN cursors c ON c.device = d.device_id WHERE d.device_id != ?1 ORDER BY d.name, d.device_id",
        )?;
        let rows = stmt.query_map([&self.device_id().as_bytes()[..]], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
        })?;
        let mut devices = Vec::new();
        for row in rows {
            let (id, name, seq, ops) = row?;
            let id = DeviceId::from_slice(&id).ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            devices.push(DeviceCursor {
                device_id: id.to_string(),
                name,
                imported_seq: from_sql_u64(seq)?,
                imported_ops: from_sql_u64(ops)?,
            });
        }
        Ok(devices)
    }

    /// Objects refused, with their reasons, oldest first.
    fn skipped_objects(&self) -> Result<Vec<SkippedObject>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.url, k.path, k.reason, k.at_ms FROM skipped k JOIN stores s ON s.id = k.store ORDER BY k.at_ms, k.path",
        )?;
        stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?, row.get::<_, i64>(3)?)))?
            .map(|row| {
                let (store, path, reason, at) = row?;
                Ok(SkippedObject { store, path, reason, at_ms: from_sql_u64(at)? })
            })
            .collect()
    }
}

/// How a store's last attempt went.
#[derive(Clone, Copy, Debug)]
enum LastAttempt {
    Never,
    Worked,
    /// It failed in a way a retry may fix (the store could not be reached).
    Unreachable,
    Failed,
}

/// A store's state from its last attempt and whether anything local waits for it. Pure.
fn store_state(last: LastAttempt, waiting: bool) -> StoreState {
    match last {
        LastAttempt::Never => StoreState::NeverSynced,
        LastAttempt::Unreachable => StoreState::Offline,
        LastAttempt::Failed => StoreState::Error,
        LastAttempt::Worked if waiting => StoreState::Pending,
        LastAttempt::Worked => StoreState::UpToDate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stores_state_follows_its_last_attempt_then_what_waits() {
        use LastAttempt::*;
        let table = [
            (Never, false, StoreState::NeverSynced),
            (Never, true, StoreState::NeverSynced),
            (Worked, false, StoreState::UpToDate),
            (Worked, true, StoreState::Pending),
            (Unreachable, false, StoreState::Offline),
            (Unreachable, true, StoreState::Offline),
            (Failed, false, StoreState::Error),
            (Failed, true, StoreState::Error),
        ];
        for (last, waiting, expected) in table {
            assert_eq!(store_state(last, waiting), expected, "{last:?}, waiting {waiting}");
        }
    }
}
