//! Rebuilding the derived state from the op log.

use crate::merge::{self, OpMeta};
use crate::oplog::{OP_COLUMNS, op_from_row, op_meta, record_ops, write_record_state};
use crate::policy::{apply, needs_policy, policy_of};
use crate::{Result, Vault};
use rusqlite::Connection;

/// What [`Vault::repair`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// Ops read from the log.
    pub ops: u64,
    /// Records rebuilt.
    pub records: u64,
    /// Rows of the old derived table that were wrong, missing or extra.
    pub corrected: u64,
}

impl Vault {
    /// Rebuilds the derived table of current values from the op log, in one transaction, and
    /// reports how many rows were wrong. The log is the truth; this never changes it.
    ///
    /// # Errors
    /// Database failures or damage in the log itself.
    pub fn repair(&mut self) -> Result<RepairReport> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS records_rebuilt;
             CREATE TABLE records_rebuilt AS SELECT * FROM records WHERE 0;",
        )?;
        let (ops, records) = rebuild_into(&tx, "records_rebuilt")?;
        // Policies are records too: with every record folded, apply them where they decide.
        let collections: Vec<String> = tx
            .prepare("SELECT DISTINCT collection FROM records_rebuilt")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for collection in collections {
            let policy = policy_of(&tx, "records_rebuilt", &collection)?;
            // Only records with several heads, or whose single head is not the winner.
            let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> = tx
                .prepare("SELECT key, heads, winner_device, winner_counter FROM records_rebuilt WHERE collection = ?1")?
                .query_map([&collection], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let keys = rows.into_iter().filter_map(|(key, heads, device, counter)| {
                let mut winner = device;
                winner.extend_from_slice(&counter.to_be_bytes());
                (heads != winner).then_some(key)
            });
            for key in keys {
                let Some(state) = merge::fold(record_ops(&tx, &collection, &key)?.iter()) else { continue };
                if !needs_policy(&state) {
                    continue;
                }
                let (state, merged) = apply(&tx, &policy, state)?;
                // The rebuild table has no key to replace on (CREATE TABLE … AS): replace by hand.
                tx.execute(
                    "DELETE FROM records_rebuilt WHERE collection = ?1 AND key = ?2",
                    rusqlite::params![collection, key],
                )?;
                write_record_state(&tx, "records_rebuilt", &collection, &key, &state, merged.as_deref())?;
            }
        }
        let corrected: i64 = tx.query_row(
            "SELECT (SELECT count(*) FROM (SELECT * FROM records EXCEPT SELECT * FROM records_rebuilt))
                  + (SELECT count(*) FROM (SELECT * FROM records_rebuilt EXCEPT SELECT * FROM records))",
            [],
            |row| row.get(0),
        )?;
        tx.execute_batch(
            "DELETE FROM records;
             INSERT INTO records SELECT * FROM records_rebuilt;
             DROP TABLE records_rebuilt;
             DELETE FROM search_index;
             DELETE FROM search_rows;
             INSERT INTO search_dirty (collection, key) SELECT collection, key FROM records;",
        )?;
        tx.commit()?;
        Ok(RepairReport { ops, records, corrected: u64::try_from(corrected).unwrap_or(0) })
    }
}

/// Folds every record's ops into `table`, streaming the log one record at a time.
fn rebuild_into(conn: &Connection, table: &str) -> Result<(u64, u64)> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {OP_COLUMNS} FROM ops WHERE kind != {} ORDER BY collection, key",
        crate::oplog::KIND_FORGET
    ))?;
    let mut rows = stmt.query([])?;
    let (mut ops, mut records) = (0u64, 0u64);
    let mut current: Option<(String, String)> = None;
    let mut group: Vec<OpMeta> = Vec::new();
    let mut flush = |record: &(String, String), group: &mut Vec<OpMeta>| -> Result<()> {
        if let Some(state) = merge::fold(group.iter()) {
            write_record_state(conn, table, &record.0, &record.1, &state, None)?;
            records += 1;
        }
        group.clear();
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let op = op_from_row(row)?;
        ops += 1;
        let record = (op.collection.to_string(), op.key.to_string());
        if current.as_ref() != Some(&record)
            && let Some(previous) = current.replace(record)
        {
            flush(&previous, &mut group)?;
        }
        group.push(op_meta(&op));
    }
    if let Some(last) = current {
        flush(&last, &mut group)?;
    }
    Ok((ops, records))
}
