//! Reading records, collections and the op log.

use crate::database::{from_sql_u64, to_sql_u64};
use crate::oplog::{OP_COLUMNS, op_from_row};
use crate::{Error, Result, Vault};
use ferry_format::{Collection, DeviceId, Hlc, JsonValue, Op, OpId, RecordKey};
use rusqlite::{OptionalExtension, Row, params};

/// A live record: its current value and the op that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// The current value.
    pub value: JsonValue,
    /// The op that wrote the current value.
    pub version: OpId,
    /// When that op was written, on its device's hybrid logical clock.
    pub hlc: Hlc,
    /// How many heads the record has: more than one means concurrent writes were merged.
    pub heads: usize,
    /// Several heads in a `manual` collection: the value shown is the last writer's pick, and
    /// a person should resolve it (`Vault::resolve`).
    pub conflict: bool,
}

/// A collection and how many records it holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CollectionInfo {
    /// The name.
    pub name: String,
    /// Live records.
    pub records: u64,
    /// Deleted records.
    pub deleted: u64,
}

/// Which ops [`Vault::history`] returns.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Only the ops of this record (collection, key).
    pub record: Option<(String, String)>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// Options of [`Vault::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// At most this many records, newest first.
    pub limit: Option<usize>,
}

/// A request for one page of a collection in key order ([`Vault::page`]).
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Only keys that start with this.
    pub prefix: String,
    /// Only keys after this one: the previous page's [`Page::next`].
    pub after: Option<String>,
    /// At most this many records (0: 100).
    pub limit: usize,
}

/// One page of records in key order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Page {
    /// The records, by key.
    pub records: Vec<Record>,
    /// Where the next page starts (`PageRequest::after`); `None` on the last page.
    pub next: Option<String>,
}

const RECORD_SELECT: &str =
    "SELECT r.collection, r.key, coalesce(r.merged, o.value), r.winner_device, r.winner_counter, r.winner_hlc, length(r.heads)
     FROM records r JOIN ops o ON o.device = r.winner_device AND o.counter = r.winner_counter";

fn record_from_row(row: &Row<'_>) -> Result<Record> {
    let device: Vec<u8> = row.get(3)?;
    let version = OpId {
        device: DeviceId::from_slice(&device)
            .ok_or_else(|| Error::Corrupt("record with a malformed device id".into()))?,
        counter: from_sql_u64(row.get(4)?)?,
    };
    let value: Option<String> = row.get(2)?;
    let value = value.ok_or_else(|| Error::Corrupt(format!("live record whose winner {version} has no value")))?;
    Ok(Record {
        collection: row.get(0)?,
        key: row.get(1)?,
        value: JsonValue::from_normalised(value),
        version,
        hlc: Hlc::from_u64(from_sql_u64(row.get(5)?)?),
        heads: usize::try_from(row.get::<_, i64>(6)?).unwrap_or(0) / OpId::ENCODED_LEN,
        conflict: false,
    })
}

impl Vault {
    /// The live record `(collection, key)`, or `None` if it does not exist or is deleted.
    ///
    /// # Errors
    /// Bad names (reserved collections included); database failures.
    pub fn get(&self, collection: &str, key: &str) -> Result<Option<Record>> {
        let collection = Collection::new(collection)?;
        let key = RecordKey::new(key)?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{RECORD_SELECT} WHERE r.collection = ?1 AND r.key = ?2 AND NOT r.deleted"))?;
        let row =
            stmt.query_row(params![collection.as_str(), key.as_str()], |row| Ok(record_from_row(row))).optional()?;
        let mut records: Vec<Record> = row.transpose()?.into_iter().collect();
        self.flag_conflicts(&mut records)?;
        Ok(records.pop())
    }

    /// The live records of a collection, most recently written first.
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn list(&self, collection: &str, options: &ListOptions) -> Result<Vec<Record>> {
        let collection = Collection::new(collection)?;
        let limit = options.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare_cached(&format!(
            "{RECORD_SELECT} WHERE r.collection = ?1 AND NOT r.deleted ORDER BY r.winner_hlc DESC, r.key LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![collection.as_str(), limit], |row| Ok(record_from_row(row)))?;
        let mut records = rows.map(|row| row?).collect::<Result<Vec<_>>>()?;
        self.flag_conflicts(&mut records)?;
        Ok(records)
    }

    /// One page of the live records of a collection whose keys start with `request.prefix`, in
    /// key order: stable under concurrent writes, so paging never repeats or skips a key.
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn page(&self, collection: &str, request: &PageRequest) -> Result<Page> {
        let collection = Collection::new(collection)?;
        let limit = if request.limit == 0 { 100 } else { request.limit };
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let after = request.after.as_deref().filter(|after| *after >= request.prefix.as_str());
        let mut stmt = self.conn.prepare_cached(&format!(
            "{RECORD_SELECT} WHERE r.collection = ?1 AND r.key >= ?2 AND (?3 IS NULL OR r.key > ?3)
             AND substr(r.key, 1, length(?2)) = ?2 AND NOT r.deleted ORDER BY r.key LIMIT ?4"
        ))?;
        let rows =
            stmt.query_map(params![collection.as_str(), request.prefix, after, fetch], |row| Ok(record_from_row(row)))?;
        let mut records = rows.map(|row| row?).collect::<Result<Vec<_>>>()?;
        let next = (records.len() > limit).then(|| {
            records.truncate(limit);
            records.last().map(|r| r.key.clone())
        });
        self.flag_conflicts(&mut records)?;
        Ok(Page { records, next: next.flatten() })
    }

    /// Every collection that has ever held a record, by name (ferry's reserved ones excluded).
    ///
    /// # Errors
    /// Database failures.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT collection, count(*) FILTER (WHERE NOT deleted), count(*) FILTER (WHERE deleted)
             FROM records WHERE collection NOT LIKE '\\_%' ESCAPE '\\' GROUP BY collection ORDER BY collection",
        )?;
        let rows =
            stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)))?;
        rows.map(|row| {
            let (name, records, deleted) = row?;
            Ok(CollectionInfo { name, records: from_sql_u64(records)?, deleted: from_sql_u64(deleted)? })
        })
        .collect()
    }

    /// Whether a collection has ever held a record.
    ///
    /// # Errors
    /// Bad names; database failures.
    pub fn has_collection(&self, collection: &str) -> Result<bool> {
        let collection = Collection::new(collection)?;
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM records WHERE collection = ?1 LIMIT 1")?
            .exists([collection.as_str()])?)
    }

    /// Ops of the log, newest first (by hybrid logical clock, then device).
    ///
    /// # Errors
    /// Bad names; database failures or damage.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<Op>> {
        let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let order = "ORDER BY hlc DESC, device DESC, counter DESC LIMIT ?";
        let ops: Vec<Result<Op>> = match &filter.record {
            Some((collection, key)) => {
                let collection = Collection::new(collection)?;
                let key = RecordKey::new(key)?;
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {OP_COLUMNS} FROM ops WHERE collection = ?1 AND key = ?2 {order}3"
                ))?;
                stmt.query_map(params![collection.as_str(), key.as_str(), limit], |row| Ok(op_from_row(row)))?
                    .collect::<rusqlite::Result<_>>()?
            }
            None => {
                let mut stmt = self.conn.prepare_cached(&format!("SELECT {OP_COLUMNS} FROM ops {order}1"))?;
                stmt.query_map(params![limit], |row| Ok(op_from_row(row)))?.collect::<rusqlite::Result<_>>()?
            }
        };
        ops.into_iter().collect()
    }

    /// Ops of this device with counters greater than `after`, in counter order.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn own_ops_after(&self, after: u64) -> Result<Vec<Op>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {OP_COLUMNS} FROM ops WHERE device = ?1 AND counter > ?2 ORDER BY counter"
        ))?;
        let ops: Vec<Result<Op>> = stmt
            .query_map(params![&self.device_id().as_bytes()[..], to_sql_u64(after)?], |row| Ok(op_from_row(row)))?
            .collect::<rusqlite::Result<_>>()?;
        ops.into_iter().collect()
    }
}
