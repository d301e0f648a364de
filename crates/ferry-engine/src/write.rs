//! Local writes: every change becomes an op in the log and updates the derived state.

use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::forget::Forgets;
use crate::oplog::{insert_op, op_meta, record_state};
use crate::policy::{Policies, refold_collection, store_state};
use crate::{Change, Error, Result, merge};
use ferry_format::{Collection, DeviceId, Forget, Hlc, HlcClock, JsonValue, Op, OpId, OpKind, RecordKey};
use rusqlite::Connection;

/// Writes of one transaction, handed out by [`crate::Vault::write`]. Everything written
/// through one `Writer` commits together or not at all.
pub struct Writer<'a> {
    conn: &'a Connection,
    device: DeviceId,
    clock: HlcClock,
    counter: u64,
    changes: Vec<Change>,
    /// The forgets in the log, read when a write creates a record (it names those selecting it).
    forgets: Option<Forgets>,
}

impl<'a> Writer<'a> {
    /// Starts writing inside an open (immediate) transaction. The counter and the clock are read
    /// inside it, so two processes writing to one vault never issue the same op id.
    pub(crate) fn begin(conn: &'a Connection, device: DeviceId) -> Result<Self> {
        let counter = from_sql_u64(meta_get(conn, "op_counter")?)?;
        let clock = HlcClock::resume(Hlc::from_u64(from_sql_u64(meta_get(conn, "hlc")?)?));
        Ok(Self { conn, device, clock, counter, changes: Vec::new(), forgets: None })
    }

    /// Persists the counter and the clock; returns the changes to announce after commit.
    pub(crate) fn finish(self) -> Result<Vec<Change>> {
        if !self.changes.is_empty() {
            meta_set(self.conn, "op_counter", to_sql_u64(self.counter)?)?;
            meta_set(self.conn, "hlc", to_sql_u64(self.clock.last().to_u64())?)?;
        }
        Ok(self.changes)
    }

    /// Sets a record's value.
    ///
    /// # Errors
    /// A bad collection name or key, a value over the size limit, or a database failure.
    pub fn put(&mut self, collection: &str, key: &str, value: &serde_json::Value) -> Result<OpId> {
        let kind = OpKind::Put(JsonValue::from_value(value)?);
        self.record(Collection::new(collection)?, RecordKey::new(key)?, kind)
    }

    /// Sets a record's value from JSON text.
    ///
    /// # Errors
    /// Invalid JSON, a bad collection name or key, or a database failure.
    pub fn put_json(&mut self, collection: &str, key: &str, json: &str) -> Result<OpId> {
        let collection = Collection::new(collection)?;
        let key = RecordKey::new(key)?;
        self.record(collection, key, OpKind::put_json(json)?)
    }

    /// Deletes a record (an op like any other: a later put revives it).
    ///
    /// # Errors
    /// [`Error::NoSuchRecord`] when the record does not exist or is already deleted.
    pub fn delete(&mut self, collection: &str, key: &str) -> Result<OpId> {
        self.record(Collection::new(collection)?, RecordKey::new(key)?, OpKind::Delete)
    }

    fn record(&mut self, collection: Collection, key: RecordKey, kind: OpKind) -> Result<OpId> {
        let current = record_state(self.conn, collection.as_str(), key.as_str())?;
        let is_live = current.as_ref().is_some_and(|state| !state.winner.deleted);
        if kind == OpKind::Delete && !is_live {
            return Err(Error::NoSuchRecord { collection: collection.to_string(), key: key.to_string() });
        }
        self.append(collection, key, kind)
    }

    /// Writes an op on any record, ferry's reserved collections included, with no check of the
    /// record's state (settings, and resolving a conflict with a delete).
    pub(crate) fn write_any(&mut self, collection: Collection, key: RecordKey, kind: OpKind) -> Result<OpId> {
        self.append(collection, key, kind)
    }

    /// Appends an op whose parents are the record's heads, and folds it in.
    fn append(&mut self, collection: Collection, key: RecordKey, kind: OpKind) -> Result<OpId> {
        let current = record_state(self.conn, collection.as_str(), key.as_str())?;
        let parents = match &current {
            Some(state) => state.heads.clone(),
            // A new record (or one forgotten): it comes after every forget that selects it.
            None => {
                if self.forgets.is_none() {
                    self.forgets = Some(Forgets::load(self.conn)?);
                }
                self.forgets
                    .as_ref()
                    .map(|f| f.parents_for_new_record(collection.as_str(), key.as_str()))
                    .unwrap_or_default()
            }
        };
        let op = self.log(collection, key, kind, parents)?;
        // A fresh local op is named by no other op: it is always a head.
        let state = merge::absorb(current, &op_meta(&op), false);
        let (state, changed_policy) =
            store_state(self.conn, &mut Policies::default(), op.collection.as_str(), op.key.as_str(), state)?;
        if let Some(collection) = changed_policy {
            refold_collection(self.conn, &collection)?;
        }
        self.changes.push(Change {
            collection: op.collection.to_string(),
            key: op.key.to_string(),
            op: op.id,
            deleted: state.winner.deleted,
        });
        Ok(op.id)
    }
}

impl Writer<'_> {
    /// Issues the next op id and clock reading, and appends the op to the log.
    fn log(&mut self, collection: Collection, key: RecordKey, kind: OpKind, parents: Vec<OpId>) -> Result<Op> {
        self.counter += 1;
        let op = Op {
            id: OpId { device: self.device, counter: self.counter },
            hlc: self.clock.tick(now_ms())?,
            collection,
            key,
            kind,
            parents,
        };
        if !insert_op(self.conn, &op)? {
            return Err(Error::Corrupt(format!("op id {} was issued twice", op.id)));
        }
        Ok(op)
    }

    /// Writes a forget op and applies it: returns the op, the ops erased and the records changed.
    pub(crate) fn forget(
        &mut self,
        collection: Collection,
        key: RecordKey,
        forget: Forget,
    ) -> Result<(OpId, u64, u64)> {
        let op = self.log(collection, key, OpKind::Forget(forget.clone()), Vec::new())?;
        let (erased, changed) = crate::forget::apply(self.conn, &op, &forget)?;
        self.forgets = None;
        for (collection, key) in &changed {
            self.changes.push(Change { collection: collection.clone(), key: key.clone(), op: op.id, deleted: true });
        }
        if changed.is_empty() {
            // Nothing here yet: still a change of this device's log (the forget must be sealed).
            self.changes.push(Change {
                collection: op.collection.to_string(),
                key: op.key.to_string(),
                op: op.id,
                deleted: true,
            });
        }
        Ok((op.id, erased, changed.len() as u64))
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if the clock is before 1970: the
/// hybrid logical clock then keeps counting from its last value).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
