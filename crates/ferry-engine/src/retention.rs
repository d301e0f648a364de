//! Retention (DESIGN §10): how much history the vault keeps, and `prune`, which applies it on
//! this device and in its stores.
//!
//! The retention is a vault setting (the record `_ferry/retention`, so it syncs): superseded
//! ops older than it are compacted away (see `compact`), and a snapshot lets stores drop the
//! segments it covers (see `sync::prune`). A prune: compacts, writes a snapshot when the log
//! moved since the last one, syncs with each store (so the snapshot and everything unpublished
//! are there first), then prunes each store.

use crate::policy::SETTINGS_COLLECTION;
use crate::sync::{StoreHandle, StorePruned};
use crate::{Compacted, Direction, Error, Result, SnapshotWritten, Vault};
use ferry_format::{Collection, JsonValue, OpKind, RecordKey};
use rusqlite::OptionalExtension;

/// The key of the retention setting in `_ferry`.
const RETENTION_KEY: &str = "retention";
/// The retention of a vault that never set one.
pub const DEFAULT_RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// How long a snapshot stands before the objects it replaces are deleted.
pub const DEFAULT_GRACE_MS: u64 = 60 * 60 * 1000;
/// How often a daemon prunes on its own (see [`Vault::prune_due`]).
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// How much superseded history the vault keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    /// Superseded ops are kept this long (ms).
    Keep {
        /// Milliseconds.
        ms: u64,
    },
    /// Nothing is ever compacted away (stores still drop segments a snapshot stands for).
    Forever,
}

impl Default for Retention {
    fn default() -> Self {
        Self::Keep { ms: DEFAULT_RETENTION_MS }
    }
}

impl Retention {
    /// The history kept, in ms (`u64::MAX` for forever).
    pub fn keep_ms(self) -> u64 {
        match self {
            Self::Keep { ms } => ms,
            Self::Forever => u64::MAX,
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forever => f.write_str("forever"),
            Self::Keep { ms } => f.write_str(&crate::time::format_duration_ms(*ms)),
        }
    }
}

/// What `prune` should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneOptions {
    /// History to keep; `None`: the vault's retention.
    pub keep: Option<Retention>,
    /// How long a snapshot stands before what it replaces is deleted from stores.
    pub grace_ms: u64,
    /// Only say what would be removed.
    pub dry_run: bool,
    /// A daemon's own prune: a new snapshot only once the log grew by a tenth of the newest
    /// one (at least 1,000 ops), so a large vault is not sealed again every day for little.
    pub scheduled: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self { keep: None, grace_ms: DEFAULT_GRACE_MS, dry_run: false, scheduled: false }
    }
}

/// What `prune` did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// The retention applied.
    pub keep: Option<Retention>,
    /// On this device.
    pub local: Compacted,
    /// The snapshot written, if the log moved since the last one.
    pub snapshot: Option<SnapshotWritten>,
    /// Per store (its location), what was removed there, or why the store could not be pruned.
    pub stores: Vec<(String, std::result::Result<StorePruned, String>)>,
}

impl Vault {
    /// The vault's retention (30 days unless set).
    ///
    /// # Errors
    /// Local failures.
    pub fn retention(&self) -> Result<Retention> {
        // A setting this build cannot read counts as the default, the rule every device knows.
        let value = crate::policy::setting(&self.conn, RETENTION_KEY)?;
        Ok(value.and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default())
    }

    /// Sets the vault's retention (it syncs to every device).
    ///
    /// # Errors
    /// Local failures.
    pub fn set_retention(&mut self, retention: Retention) -> Result<()> {
        let value = serde_json::to_value(retention).map_err(|e| Error::Encode(e.to_string()))?;
        let kind = OpKind::Put(JsonValue::from_value(&value)?);
        let settings = Collection::any(SETTINGS_COLLECTION)?;
        let key = RecordKey::new(RETENTION_KEY)?;
        self.write(|writer| writer.write_any(settings, key, kind))?;
        Ok(())
    }

    /// Applies the retention here and in `stores` (see the module docs). A store that fails
    /// is reported in [`PruneReport::stores`]; the others are still pruned.
    ///
    /// # Errors
    /// Local failures.
    pub fn prune(&mut self, stores: &[StoreHandle<'_>], options: &PruneOptions) -> Result<PruneReport> {
        let keep = options.keep.map_or_else(|| self.retention(), Ok)?;
        let mut report = PruneReport { keep: Some(keep), ..PruneReport::default() };
        if !options.dry_run {
            // Up to date first: the snapshot then covers what every store has.
            for handle in stores {
                if let Err(err) = self.sync(*handle, Direction::Pull) {
                    report.stores.push((handle.store.location(), Err(err.to_string())));
                }
            }
        }
        report.local = self.compact(keep.keep_ms(), options.dry_run)?;
        if !options.dry_run && self.snapshot_worth_writing(options.scheduled)? {
            report.snapshot = self.write_snapshot()?;
            // Now the snapshot stands for the copies compaction kept for it.
            let copies = self.compact(u64::MAX, false)?;
            report.local.segment_copies += copies.segment_copies;
            report.local.database_bytes.1 = copies.database_bytes.1;
        }
        for handle in stores {
            if report.stores.iter().any(|(location, _)| *location == handle.store.location()) {
                continue;
            }
            let pruned = if options.dry_run {
                self.prune_store(*handle, options.grace_ms, true)
            } else {
                self.sync(*handle, Direction::Push).and_then(|_| self.prune_store(*handle, options.grace_ms, false))
            };
            report.stores.push((handle.store.location(), pruned.map_err(|err| err.to_string())));
        }
        if !options.dry_run {
            crate::database::meta_set(&self.conn, "pruned_ms", crate::database::to_sql_u64(crate::write::now_ms())?)?;
        }
        Ok(report)
    }

    /// Whether a daemon should prune now: never pruned here, or not for [`PRUNE_EVERY`].
    ///
    /// # Errors
    /// Local failures.
    pub fn prune_due(&self) -> Result<bool> {
        let last: Option<i64> =
            self.conn.query_row("SELECT value FROM meta WHERE name = 'pruned_ms'", [], |row| row.get(0)).optional()?;
        let every = u64::try_from(PRUNE_EVERY.as_millis()).unwrap_or(u64::MAX);
        Ok(last
            .and_then(|ms| u64::try_from(ms).ok())
            .is_none_or(|ms| crate::write::now_ms() >= ms.saturating_add(every)))
    }

    /// Whether to write a snapshot now: the log moved since the newest one this device holds
    /// (for a scheduled prune: by a tenth of it, at least 1,000 ops).
    fn snapshot_worth_writing(&mut self, scheduled: bool) -> Result<bool> {
        if !self.log_moved_since_snapshot()? {
            return Ok(false);
        }
        let Some(snapshot) = self.newest_held_snapshot()?.filter(|_| scheduled) else { return Ok(true) };
        let mut new_ops = 0u64;
        let devices: Vec<Vec<u8>> = self
            .conn
            .prepare("SELECT DISTINCT device FROM ops")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for device in devices {
            let covered = snapshot.cut.iter().find(|entry| entry.d[..] == device[..]).map_or(0, |entry| entry.c);
            let count: i64 = self.conn.query_row(
                "SELECT count(*) FROM ops WHERE device = ?1 AND counter > ?2",
                rusqlite::params![device, crate::database::to_sql_u64(covered)?],
                |row| row.get(0),
            )?;
            new_ops += crate::database::from_sql_u64(count)?;
        }
        Ok(new_ops >= (snapshot.ops / 10).max(1_000))
    }

    /// Whether this device published or imported anything its newest snapshot does not cover.
    fn log_moved_since_snapshot(&mut self) -> Result<bool> {
        self.seal_pending_ops()?;
        let Some(snapshot) = self.newest_held_snapshot()? else { return Ok(true) };
        let me = self.device_id();
        if self.own_last_seq()? > snapshot.covers(me) {
            return Ok(true);
        }
        let cursors: Vec<(Vec<u8>, i64)> = self
            .conn
            .prepare("SELECT device, seq FROM cursors")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(cursors.into_iter().any(|(device, seq)| {
            ferry_format::DeviceId::from_slice(&device)
                .is_some_and(|device| u64::try_from(seq).is_ok_and(|seq| seq > snapshot.covers(device)))
        }))
    }

    /// This device's last sealed segment (0: none).
    fn own_last_seq(&self) -> Result<u64> {
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM own_segments", [], |row| row.get(0))?;
        crate::database::from_sql_u64(last)
    }
}
