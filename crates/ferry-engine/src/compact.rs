//! Compaction: dropping history that no merge, conflict or forget needs, so the local log
//! grows with the data, not with how often it changed.
//!
//! An op is dropped when it is older than the kept history, already in a segment (sealed or
//! imported), and *superseded*: not a head of its record, not the op whose value the record
//! shows, not a parent of a head while the record has several (the `fields` merge compares a
//! head with its parents), and not a forget. Records whose shown op is not a head (a device
//! whose clock went backwards), and records with an op naming a parent this device has not
//! received yet (that op is what keeps the parent from becoming a head when it arrives), are
//! left whole. What is left folds to the same state, so
//! `ferry repair` and every merge give the same answers after compaction as before.
//!
//! Per device, the highest dropped counter is remembered (`compacted`): an old copy of a
//! dropped op (a rewritten log, another device's snapshot) is never imported again.

use crate::database::{from_sql_u64, meta_get, to_sql_u64};
use crate::oplog::{KIND_FORGET, record_ops, record_state};
use crate::sync::snapshot::{last_counter_seen, raise_compacted};
use crate::write::now_ms;
use crate::{Result, Vault};
use ferry_format::{DeviceId, Hlc, OpId};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashSet;

/// What compaction dropped (or, for a dry run, would drop).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Compacted {
    /// Superseded ops dropped from the log.
    pub ops: u64,
    /// Kept copies of segments dropped (a snapshot this device holds stands for them).
    pub segment_copies: u64,
    /// The database file's size before and after, in bytes.
    pub database_bytes: (u64, u64),
}

impl Vault {
    /// Drops superseded ops older than `keep_ms` (see the module docs) and the kept copies of
    /// segments that the newest snapshot this device holds covers, then gives the freed pages
    /// back to the file system. `dry_run` only counts; `keep_ms` of `u64::MAX` keeps every op
    /// (only the copies go).
    ///
    /// # Errors
    /// Local failures.
    pub fn compact(&mut self, keep_ms: u64, dry_run: bool) -> Result<Compacted> {
        let before = self.database_bytes();
        let horizon = Hlc::new(now_ms().saturating_sub(keep_ms).min(Hlc::MAX_WALL_MS), 0).unwrap_or(Hlc::from_u64(0));
        let me = self.device_id();
        let snapshot = self.newest_held_snapshot()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sealed = from_sql_u64(meta_get(&tx, "sealed_counter")?)?;
        let droppable = if keep_ms == u64::MAX { Vec::new() } else { superseded_ops(&tx, horizon, me, sealed)? };
        let mut report = Compacted { ops: droppable.len() as u64, ..Compacted::default() };
        if !dry_run {
            let mut highest: std::collections::HashMap<DeviceId, u64> = std::collections::HashMap::new();
            let mut delete = tx.prepare_cached("DELETE FROM ops WHERE device = ?1 AND counter = ?2")?;
            for id in &droppable {
                delete.execute(params![&id.device.as_bytes()[..], to_sql_u64(id.counter)?])?;
                let top = highest.entry(id.device).or_default();
                *top = (*top).max(id.counter);
            }
            for (device, counter) in highest {
                raise_compacted(&tx, device, counter)?;
            }
        }
        if let Some(snapshot) = snapshot {
            for entry in &snapshot.cut {
                let device = DeviceId::from_bytes(entry.d);
                let seq = to_sql_u64(entry.seq)?;
                let copies: i64 = if device == me {
                    tx.query_row(
                        "SELECT count(*) FROM own_segments WHERE seq <= ?1 AND length(bytes) > 0",
                        [seq],
                        |row| row.get(0),
                    )?
                } else {
                    tx.query_row(
                        "SELECT count(*) FROM imported_segments WHERE device = ?1 AND seq <= ?2 AND length(bytes) > 0",
                        params![&entry.d[..], seq],
                        |row| row.get(0),
                    )?
                };
                report.segment_copies += from_sql_u64(copies)?;
                if dry_run {
                    continue;
                }
                if device == me {
                    // The row stays (its hash chains the next segment); the bytes go.
                    tx.execute("UPDATE own_segments SET bytes = x'' WHERE seq <= ?1", [seq])?;
                } else {
                    // The hash stays: a rewritten log is verified again from a kept hash.
                    let copies: Vec<(i64, Vec<u8>)> = tx
                        .prepare(
                            "SELECT seq, bytes FROM imported_segments WHERE device = ?1 AND seq <= ?2 AND length(bytes) > 0",
                        )?
                        .query_map(params![&entry.d[..], seq], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    for (seq, bytes) in copies {
                        tx.execute(
                            "UPDATE imported_segments SET hash = ?3, bytes = x'' WHERE device = ?1 AND seq = ?2",
                            params![&entry.d[..], seq, &blake3::hash(&bytes).as_bytes()[..]],
                        )?;
                    }
                }
            }
        }
        if dry_run {
            report.database_bytes = (before, before);
            return Ok(report);
        }
        tx.commit()?;
        give_back_pages(&self.conn)?;
        report.database_bytes = (before, self.database_bytes());
        Ok(report)
    }

    /// The size of the database file and its write-ahead log, in bytes.
    pub(crate) fn database_bytes(&self) -> u64 {
        let db = self.home.database();
        let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
        [db, wal].iter().filter_map(|path| std::fs::metadata(path).ok()).map(|m| m.len()).sum()
    }
}

/// The ops that compaction may drop: see the module docs.
fn superseded_ops(conn: &Connection, horizon: Hlc, me: DeviceId, sealed: u64) -> Result<Vec<OpId>> {
    let horizon = to_sql_u64(horizon.to_u64())?;
    let records: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT collection, key FROM ops WHERE kind != {KIND_FORGET}
             GROUP BY collection, key HAVING count(*) > 1 AND min(hlc) < ?1"
        ))?
        .query_map([horizon], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut droppable = Vec::new();
    let mut seen_up_to: std::collections::HashMap<DeviceId, u64> = std::collections::HashMap::new();
    for (collection, key) in records {
        let Some(state) = record_state(conn, &collection, &key)? else { continue };
        if !state.heads.contains(&state.winner.id) {
            continue; // the shown op is not a head: leave the record whole
        }
        let ops = record_ops(conn, &collection, &key)?;
        // An op that names a parent this device has not seen yet (its writer's segment has not
        // arrived) is what keeps that parent from becoming a head when it does: such a record
        // is left whole until then.
        let mut waiting = false;
        for parent in ops.iter().flat_map(|op| op.parents.iter()) {
            let seen = match seen_up_to.get(&parent.device) {
                Some(seen) => *seen,
                None => *seen_up_to.entry(parent.device).or_insert(last_counter_seen(conn, parent.device)?),
            };
            waiting |= parent.counter > seen;
        }
        if waiting {
            continue;
        }
        let mut needed: HashSet<OpId> = state.heads.iter().copied().collect();
        if state.heads.len() > 1 {
            for op in ops.iter().filter(|op| state.heads.contains(&op.id)) {
                needed.extend(op.parents.iter().copied());
            }
        }
        droppable.extend(
            ops.iter()
                .filter(|op| !needed.contains(&op.id))
                .filter(|op| i64::try_from(op.hlc.to_u64()).is_ok_and(|hlc| hlc < horizon))
                .filter(|op| op.id.device != me || op.id.counter <= sealed)
                .map(|op| op.id),
        );
    }
    Ok(droppable)
}

/// Returns freed pages to the file system: incrementally where the database was made so;
/// an older database is converted once (a full `VACUUM`) when a quarter of it is free.
fn give_back_pages(conn: &Connection) -> Result<()> {
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if auto_vacuum == 2 {
        // (Stepped to the end: each step frees one page.)
        conn.execute_batch("PRAGMA incremental_vacuum")?;
    } else {
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
        if free * 4 > pages {
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}
