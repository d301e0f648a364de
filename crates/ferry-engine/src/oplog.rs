//! Rows of the `ops` and `records` tables: the only code that encodes ops for SQLite.

use crate::database::{from_sql_u64, to_sql_u64};
use crate::merge::{OpMeta, RecordState, Winner};
use crate::{Error, Result};
use ferry_format::{Collection, DeviceId, Hlc, JsonValue, Op, OpId, OpKind, RecordKey};
use rusqlite::{Connection, OptionalExtension, Row, params};

const KIND_PUT: i64 = 1;
pub(crate) const KIND_DELETE: i64 = 2;
/// Forget ops are kept in the log (so they are sealed and travel) but never folded into a record.
pub(crate) const KIND_FORGET: i64 = 3;

/// The columns [`op_from_row`] reads, in order.
pub(crate) const OP_COLUMNS: &str = "device, counter, hlc, collection, key, kind, value, parents";

/// Inserts an op; `false` if the op log already had it (imports are idempotent).
pub(crate) fn insert_op(conn: &Connection, op: &Op) -> Result<bool> {
    let selector;
    let (kind, value) = match &op.kind {
        OpKind::Put(value) => (KIND_PUT, Some(value.as_str())),
        OpKind::Delete => (KIND_DELETE, None),
        OpKind::Forget(forget) => {
            selector = serde_json::to_string(forget).map_err(|e| Error::Encode(e.to_string()))?;
            (KIND_FORGET, Some(selector.as_str()))
        }
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ops (device, counter, hlc, collection, key, kind, value, parents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            &op.id.device.as_bytes()[..],
            to_sql_u64(op.id.counter)?,
            to_sql_u64(op.hlc.to_u64())?,
            op.collection.as_str(),
            op.key.as_str(),
            kind,
            value,
            OpId::encode_list(&op.parents),
        ])?;
    Ok(inserted == 1)
}

/// Decodes a row selected with [`OP_COLUMNS`]. Damage is reported, never a panic.
pub(crate) fn op_from_row(row: &Row<'_>) -> Result<Op> {
    let device: Vec<u8> = row.get(0)?;
    let id = OpId {
        device: DeviceId::from_slice(&device).ok_or_else(|| Error::Corrupt("op with a malformed device id".into()))?,
        counter: from_sql_u64(row.get(1)?)?,
    };
    let collection: String = row.get(3)?;
    let key: String = row.get(4)?;
    let kind = match (row.get::<_, i64>(5)?, row.get::<_, Option<String>>(6)?) {
        (KIND_PUT, Some(value)) => OpKind::Put(JsonValue::from_normalised(value)),
        (KIND_DELETE, None) => OpKind::Delete,
        (KIND_FORGET, Some(selector)) => OpKind::Forget(
            serde_json::from_str(&selector).map_err(|e| Error::Corrupt(format!("op {id}: forget selector: {e}")))?,
        ),
        (kind, _) => return Err(Error::Corrupt(format!("op {id} has unknown kind {kind}"))),
    };
    let parents: Vec<u8> = row.get(7)?;
    Ok(Op {
        id,
        hlc: Hlc::from_u64(from_sql_u64(row.get(2)?)?),
        collection: Collection::any(&collection).map_err(|e| Error::Corrupt(format!("op {id}: {e}")))?,
        key: RecordKey::new(&key).map_err(|e| Error::Corrupt(format!("op {id}: {e}")))?,
        kind,
        parents: OpId::decode_list(&parents).ok_or_else(|| Error::Corrupt(format!("op {id} has malformed parents")))?,
    })
}

/// What the fold needs of an op.
pub(crate) fn op_meta(op: &Op) -> OpMeta {
    OpMeta { id: op.id, hlc: op.hlc, deleted: matches!(op.kind, OpKind::Delete), parents: op.parents.clone() }
}

/// Reads the folded state of a record from the derived table.
pub(crate) fn record_state(conn: &Connection, collection: &str, key: &str) -> Result<Option<RecordState>> {
    conn.prepare_cached(
        "SELECT winner_device, winner_counter, winner_hlc, deleted, heads FROM records WHERE collection = ?1 AND key = ?2",
    )?
    .query_row(params![collection, key], |row| {
        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get::<_, bool>(3)?, row.get::<_, Vec<u8>>(4)?))
    })
    .optional()?
    .map(|(device, counter, hlc, deleted, heads)| {
        let damaged = || Error::Corrupt(format!("derived state of {collection}/{key}"));
        Ok(RecordState {
            winner: Winner {
                id: OpId { device: DeviceId::from_slice(&device).ok_or_else(damaged)?, counter: from_sql_u64(counter)? },
                hlc: Hlc::from_u64(from_sql_u64(hlc)?),
                deleted,
            },
            heads: OpId::decode_list(&heads).ok_or_else(damaged)?,
        })
    })
    .transpose()
}

/// Writes the folded state of a record into `table` (`records`, or a rebuild table).
pub(crate) fn write_record_state(
    conn: &Connection,
    table: &str,
    collection: &str,
    key: &str,
    state: &RecordState,
    merged: Option<&str>,
) -> Result<()> {
    upsert_record_state(conn, table, collection, key, state, merged)?;
    if table == "records" {
        crate::search::mark_dirty(conn, collection, key)?;
    }
    Ok(())
}

/// [`write_record_state`] into `records` without marking the record for the search index: a
/// bulk load marks every record at the end in one statement.
pub(crate) fn write_record_state_unindexed(
    conn: &Connection,
    collection: &str,
    key: &str,
    state: &RecordState,
) -> Result<()> {
    upsert_record_state(conn, "records", collection, key, state, None)
}

fn upsert_record_state(
    conn: &Connection,
    table: &str,
    collection: &str,
    key: &str,
    state: &RecordState,
    merged: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} (collection, key, winner_device, winner_counter, winner_hlc, deleted, heads, merged)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        collection,
        key,
        &state.winner.id.device.as_bytes()[..],
        to_sql_u64(state.winner.id.counter)?,
        to_sql_u64(state.winner.hlc.to_u64())?,
        state.winner.deleted,
        OpId::encode_list(&state.heads),
        merged,
    ])?;
    Ok(())
}

/// What the fold needs of every op of one record.
pub(crate) fn record_ops(conn: &Connection, collection: &str, key: &str) -> Result<Vec<OpMeta>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OP_COLUMNS} FROM ops WHERE collection = ?1 AND key = ?2 AND kind != {KIND_FORGET}"
    ))?;
    let mut rows = stmt.query(params![collection, key])?;
    let mut ops = Vec::new();
    while let Some(row) = rows.next()? {
        ops.push(op_meta(&op_from_row(row)?));
    }
    Ok(ops)
}
