//! Forget: erasing records on every device, for good.
//!
//! A forget is an op (kind 3) in its writer's log, so it travels like any other. Applying it
//! (here, or on import) removes the ops it selects from the log: the values are gone from the
//! database (SQLite's `secure_delete` zeroes the freed space, the WAL is checkpointed, the
//! search index uses FTS5 secure-delete), and only their ids are kept in `forgotten_ops` so no
//! copy is ever imported again. Selection:
//! - with a window `from ..= to`: the selected records' ops with an hlc in it;
//! - without: every op of the selected records that was written without having seen the
//!   forget, i.e. does not descend from it through its parents. A device that applied a forget
//!   names it as the parent of its next write to such a record (there is no other head), so
//!   edits made after the forget survive, and edits made on a device that was offline do not,
//!   whatever their clocks say, even when they arrive later ("pre-insert enforcement").
//!
//! Then each device *purges*: it re-seals its own segments without the forgotten ops (same
//! sequence numbers, chain recomputed), overwrites them in every store with a HEAD that says
//! from where its log was rewritten, and drops the sealed copies it kept of other devices'
//! segments that held forgotten ops (their owners rewrite those).

use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::identity::OwnKeys;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::oplog::{KIND_FORGET, record_ops};
use crate::policy::{Policies, store_state};
use crate::sync::registry::Registry;
use crate::{Error, Result, Vault};
use ferry_format::objects::{SegmentPayload, WireOp, decode};
use ferry_format::seal::{self, Expected, ObjectId, ObjectKind};
use ferry_format::typed::Sealed;
use ferry_format::{DeviceId, Forget, ForgetScope, Hlc, Op, OpId, OpKind};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};

/// What a forget erased on this device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Forgotten {
    /// The forget op (it syncs to every device).
    pub op: String,
    /// Ops erased here.
    pub ops: u64,
    /// Records changed or gone here.
    pub records: u64,
}

/// What a purge rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Purged {
    /// Own segments re-sealed without forgotten ops (to be overwritten in every store).
    pub rewritten_segments: u64,
    /// Kept copies of other devices' segments dropped.
    pub dropped_copies: u64,
}

/// Which records a forget selects, by the forget op's key.
fn selects(forget: &Forget, forget_key: &str, key: &str) -> bool {
    forget.selects(forget_key, key)
}

/// Applies a forget op already in the log: erases the ops it selects and refolds their records.
/// Returns the records changed.
pub(crate) fn apply(conn: &Connection, forget_op: &Op, forget: &Forget) -> Result<(u64, Vec<(String, String)>)> {
    let collection = forget_op.collection.as_str();
    let keys = selected_keys(conn, collection, forget, forget_op.key.as_str())?;
    let mut erased = 0;
    let mut changed = Vec::new();
    let mut policies = Policies::default();
    for key in keys {
        let mut ops = record_ops(conn, collection, &key)?;
        ops.sort_by_key(|op| (op.hlc, op.id.device, op.id.counter));
        let mut descendants: HashSet<OpId> = HashSet::from([forget_op.id]);
        let mut selected = Vec::new();
        for op in &ops {
            let hit = match forget.window {
                Some(_) => forget.in_window(op.hlc, forget_op.hlc),
                None => !op.parents.iter().any(|parent| descendants.contains(parent)),
            };
            if hit {
                selected.push(op.id);
            } else {
                descendants.insert(op.id);
            }
        }
        if selected.is_empty() {
            continue;
        }
        for id in &selected {
            erase_op(conn, *id)?;
        }
        erased += selected.len() as u64;
        let remaining = record_ops(conn, collection, &key)?;
        match crate::merge::fold(remaining.iter()) {
            Some(state) => {
                store_state(conn, &mut policies, collection, &key, state)?;
            }
            None => {
                conn.prepare_cached("DELETE FROM records WHERE collection = ?1 AND key = ?2")?
                    .execute(params![collection, key])?;
                crate::search::mark_dirty(conn, collection, &key)?;
            }
        }
        changed.push((collection.to_owned(), key));
    }
    Ok((erased, changed))
}

/// The keys of the collection a forget selects, read through the `(collection, key)` index.
fn selected_keys(conn: &Connection, collection: &str, forget: &Forget, forget_key: &str) -> Result<Vec<String>> {
    let base = format!("SELECT DISTINCT key FROM ops WHERE collection = ?1 AND kind != {KIND_FORGET}");
    let keys: Vec<String> = match forget.scope {
        ForgetScope::Record => conn
            .prepare_cached(&format!("{base} AND key = ?2"))?
            .query_map(params![collection, forget_key], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?,
        ForgetScope::Prefix => {
            // GLOB is case-sensitive and uses the index for a literal prefix; its wildcards in
            // the prefix are matched literally through classes.
            let escaped: String = forget_key
                .chars()
                .map(|c| if matches!(c, '*' | '?' | '[' | ']') { format!("[{c}]") } else { c.to_string() })
                .collect();
            conn.prepare_cached(&format!("{base} AND key GLOB ?2"))?
                .query_map(params![collection, format!("{escaped}*")], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?
        }
        ForgetScope::All => {
            conn.prepare_cached(&base)?.query_map([collection], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?
        }
    };
    // The index narrowed the search; the rule itself decides.
    Ok(keys.into_iter().filter(|key| selects(forget, forget_key, key)).collect())
}

/// Removes an op from the log, keeping its id as forgotten.
fn erase_op(conn: &Connection, id: OpId) -> Result<()> {
    let (device, counter) = (&id.device.as_bytes()[..], to_sql_u64(id.counter)?);
    conn.prepare_cached("DELETE FROM ops WHERE device = ?1 AND counter = ?2")?.execute(params![device, counter])?;
    conn.prepare_cached("INSERT INTO forgotten_ops (device, counter) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![device, counter])?;
    Ok(())
}

/// The forgets in the log, for checking ops as they arrive.
#[derive(Default)]
pub(crate) struct Forgets {
    by_collection: HashMap<String, Vec<(OpId, Hlc, String, Forget)>>,
    any_forgotten: bool,
}

impl Forgets {
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let mut by_collection: HashMap<String, Vec<(OpId, Hlc, String, Forget)>> = HashMap::new();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {} FROM ops WHERE kind = {KIND_FORGET}", crate::oplog::OP_COLUMNS))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let op = crate::oplog::op_from_row(row)?;
            if let OpKind::Forget(forget) = op.kind {
                by_collection.entry(op.collection.to_string()).or_default().push((
                    op.id,
                    op.hlc,
                    op.key.to_string(),
                    forget,
                ));
            }
        }
        let any_forgotten = conn.query_row("SELECT EXISTS (SELECT 1 FROM forgotten_ops)", [], |row| row.get(0))?;
        Ok(Self { by_collection, any_forgotten })
    }

    /// The forgets without a window that select `(collection, key)`: a new record there names
    /// them as parents, so it is known to come after them.
    pub(crate) fn parents_for_new_record(&self, collection: &str, key: &str) -> Vec<OpId> {
        self.by_collection
            .get(collection)
            .into_iter()
            .flatten()
            .filter(|(_, _, forget_key, forget)| forget.window.is_none() && selects(forget, forget_key, key))
            .map(|(id, _, _, _)| *id)
            .collect()
    }

    /// Whether an arriving op is one a forget erased or selects (then it is not imported).
    pub(crate) fn drops(&self, conn: &Connection, op: &Op) -> Result<bool> {
        if matches!(op.kind, OpKind::Forget(_)) {
            return Ok(false);
        }
        if self.any_forgotten {
            let known: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM forgotten_ops WHERE device = ?1 AND counter = ?2)")?
                .query_row(params![&op.id.device.as_bytes()[..], to_sql_u64(op.id.counter)?], |row| row.get(0))?;
            if known {
                return Ok(true);
            }
        }
        let Some(forgets) = self.by_collection.get(op.collection.as_str()) else { return Ok(false) };
        for (id, forget_hlc, forget_key, forget) in forgets {
            if !selects(forget, forget_key, op.key.as_str()) {
                continue;
            }
            let dropped = match forget.window {
                Some(_) => forget.in_window(op.hlc, *forget_hlc),
                None => !(op.parents.contains(id) || any_parent_present(conn, op)?),
            };
            if dropped {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether one of an op's parents is in the log (for a forgotten record, only ops that came
/// after the forget are).
fn any_parent_present(conn: &Connection, op: &Op) -> Result<bool> {
    for parent in &op.parents {
        let present: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM ops WHERE device = ?1 AND counter = ?2)")?
            .query_row(params![&parent.device.as_bytes()[..], to_sql_u64(parent.counter)?], |row| row.get(0))?;
        if present {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What to forget, for [`Vault::forget`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgetTarget {
    /// One record.
    Record(String),
    /// Every record whose key starts with this (not empty).
    Prefix(String),
    /// Every record of the collection.
    All,
}

impl Vault {
    /// Forgets records everywhere: writes a forget op (it syncs), erases what it selects here,
    /// and purges this device's copies. With a window (`from ..= to`, hybrid logical clock
    /// values, e.g. from [`Hlc::new`]), only the ops written in it are forgotten.
    ///
    /// # Errors
    /// Bad names or an empty prefix; database failures.
    pub fn forget(&mut self, collection: &str, target: &ForgetTarget, window: Option<(Hlc, Hlc)>) -> Result<Forgotten> {
        let (scope, key) = match target {
            ForgetTarget::Record(key) => (ForgetScope::Record, key.as_str()),
            ForgetTarget::Prefix(prefix) => (ForgetScope::Prefix, prefix.as_str()),
            ForgetTarget::All => (ForgetScope::All, "*"),
        };
        let forget = Forget { scope, window: window.map(|(from, to)| (from.to_u64(), to.to_u64())) };
        let collection = ferry_format::Collection::new(collection)?;
        let key = ferry_format::RecordKey::new(key)?;
        let (op, erased, records) = self.write(|writer| writer.forget(collection, key, forget))?;
        self.purge_forgotten()?;
        Ok(Forgotten { op: op.to_string(), ops: erased, records })
    }

    /// Purges what forgets erased: re-seals own segments without forgotten ops (overwritten in
    /// every store on the next push) and drops kept copies of other devices' segments that
    /// held them. Runs after a local forget and after a pull that imported one.
    ///
    /// # Errors
    /// Local failures.
    pub fn purge_forgotten(&mut self) -> Result<Purged> {
        let pending: Vec<(Vec<u8>, i64)> = self
            .conn
            .prepare("SELECT device, counter FROM forgotten_ops WHERE purged = 0")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if pending.is_empty() {
            return Ok(Purged::default());
        }
        let mut by_device: HashMap<DeviceId, HashSet<u64>> = HashMap::new();
        for (device, counter) in pending {
            let device = DeviceId::from_slice(&device).ok_or_else(|| Error::Corrupt("forgotten op id".into()))?;
            by_device.entry(device).or_default().insert(from_sql_u64(counter)?);
        }
        let tx = self.conn.unchecked_transaction()?;
        let mut purged = Purged::default();
        if let Some(own) = by_device.remove(&self.device_id()) {
            purged.rewritten_segments = self.rewrite_own_segments(&own)?;
        }
        for (device, counters) in &by_device {
            purged.dropped_copies += self.drop_copies(*device, counters)?;
        }
        tx.execute("UPDATE forgotten_ops SET purged = 1 WHERE purged = 0", [])?;
        // FTS5 secure-delete removes the words from the index as the rows go.
        crate::search::catch_up(&tx)?;
        tx.commit()?;
        // Snapshots may hold what was forgotten: replaced.
        self.replace_snapshots_after_forget()?;
        // Old page images must not linger in the write-ahead log.
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(purged)
    }

    /// Re-seals own segments from the first that holds a forgotten op, without those ops.
    fn rewrite_own_segments(&self, counters: &HashSet<u64>) -> Result<u64> {
        let Some(lowest) = counters.iter().min() else { return Ok(0) };
        let first: Option<i64> = self.conn.query_row(
            "SELECT min(seq) FROM own_segments WHERE last_counter >= ?1",
            [to_sql_u64(*lowest)?],
            |row| row.get(0),
        )?;
        let Some(first) = first.map(from_sql_u64).transpose()? else { return Ok(0) }; // not sealed yet
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let me = self.device_id();
        let own_key = ed25519_dalek::VerifyingKey::from_bytes(&device_keys.signing_public())
            .map_err(|_| Error::Corrupt("own signing key".into()))?;
        let mut prev: Option<[u8; 32]> = if first > 1 {
            let hash: Vec<u8> = self.conn.query_row(
                "SELECT hash FROM own_segments WHERE seq = ?1",
                [to_sql_u64(first - 1)?],
                |row| row.get(0),
            )?;
            Some(hash.as_slice().try_into().map_err(|_| Error::Corrupt("own segment hash".into()))?)
        } else {
            None
        };
        let segments: Vec<(i64, Vec<u8>, i64)> = self
            .conn
            .prepare("SELECT seq, bytes, last_counter FROM own_segments WHERE seq >= ?1 ORDER BY seq")?
            .query_map([to_sql_u64(first)?], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut counter_before: i64 = self
            .conn
            .query_row("SELECT last_counter FROM own_segments WHERE seq = ?1", [to_sql_u64(first)? - 1], |row| {
                row.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let mut rewritten = 0;
        for (seq, bytes, last_counter) in segments {
            let seq = from_sql_u64(seq)?;
            let own = OwnKeys { key: own_key, vault: &keys };
            let ops: Vec<WireOp> = if bytes.is_empty() {
                // The copy was dropped (a snapshot stands for it): seal what the log still
                // holds of its range (compaction and the forget only ever removed ops).
                self.own_ops_between(counter_before, last_counter)?
            } else {
                Sealed::<SegmentPayload>::new(&bytes)
                    .open(keys.named(Some(me), Some(ObjectId::segment(seq))), &own)
                    .map_err(|e| Error::Corrupt(format!("own segment {seq}: {e}")))?
                    .payload
                    .ops
            };
            counter_before = last_counter;
            let ops: Vec<WireOp> = ops.into_iter().filter(|op| !counters.contains(&op.n)).collect();
            let op_count = ops.len();
            let sealed = keys
                .sealer(me, &device_keys)
                .seal(ObjectId::segment(seq), crate::random::bytes()?, &SegmentPayload { seq, prev, ops })
                .map_err(|e| Error::Encode(e.to_string()))?;
            let hash = *blake3::hash(&sealed).as_bytes();
            self.conn.execute(
                "UPDATE own_segments SET bytes = ?2, hash = ?3, op_count = ?4 WHERE seq = ?1",
                params![to_sql_u64(seq)?, sealed, &hash[..], to_sql_u64(op_count as u64)?],
            )?;
            prev = Some(hash);
            rewritten += 1;
        }
        let generation: u32 = meta_get(&self.conn, "log_generation")?;
        let before: i64 = meta_get(&self.conn, "rewritten_from")?;
        let from = if generation == 0 || before == 0 { first } else { first.min(from_sql_u64(before)?) };
        meta_set(&self.conn, "log_generation", generation + 1)?;
        meta_set(&self.conn, "rewritten_from", to_sql_u64(from)?)?;
        self.conn.execute(
            "UPDATE stores SET rewrite_from = min(coalesce(rewrite_from, ?1), ?1) WHERE uploaded_seq >= ?1",
            [to_sql_u64(first)?],
        )?;
        Ok(rewritten)
    }

    /// This device's ops numbered in `(after, up_to]` still in the log, in wire form.
    fn own_ops_between(&self, after: i64, up_to: i64) -> Result<Vec<WireOp>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM ops WHERE device = ?1 AND counter > ?2 AND counter <= ?3 ORDER BY counter",
            crate::oplog::OP_COLUMNS
        ))?;
        let mut rows = stmt.query(params![&self.device_id().as_bytes()[..], after, up_to])?;
        let mut ops = Vec::new();
        while let Some(row) = rows.next()? {
            ops.push(WireOp::from_op(&crate::oplog::op_from_row(row)?));
        }
        Ok(ops)
    }

    /// Drops the kept sealed copies of another device's segments that hold forgotten ops.
    fn drop_copies(&self, device: DeviceId, counters: &HashSet<u64>) -> Result<u64> {
        let keys = VaultKeys::load(&self.conn)?;
        let registry = Registry::load(&self.conn)?;
        let kept: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare("SELECT seq, bytes FROM imported_segments WHERE device = ?1 AND length(bytes) > 0")?
            .query_map([&device.as_bytes()[..]], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut dropped = 0;
        for (seq, bytes) in kept {
            let expected = Expected {
                kind: ObjectKind::Segment,
                vault_id: keys.vault_id,
                device_id: Some(device),
                object_id: None,
            };
            let holds = seal::open(&bytes, &expected, |d| registry.key(d), |e| keys.key(e))
                .ok()
                .and_then(|(_, plain)| decode::<SegmentPayload>(&plain).ok())
                .is_none_or(|payload| payload.ops.iter().any(|op| counters.contains(&op.n)));
            if holds {
                self.conn.execute(
                    "DELETE FROM imported_segments WHERE device = ?1 AND seq = ?2",
                    params![&device.as_bytes()[..], seq],
                )?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Purges still to publish: per store, the first own segment to overwrite.
    pub(crate) fn pending_rewrite(&self, store: crate::StoreId) -> Result<Option<u64>> {
        let from: Option<Option<i64>> = self
            .conn
            .query_row("SELECT rewrite_from FROM stores WHERE id = ?1", [store], |row| row.get(0))
            .optional()?;
        from.flatten().map(from_sql_u64).transpose()
    }
}
