//! Snapshots (DESIGN §10): the merged state of the vault at a cut, sealed as write-once objects,
//! so a new device, or one that comes back after the store was pruned, starts from one object
//! set instead of replaying every op ever written.
//!
//! - **Writing**: the ops this device holds (after compaction: heads, what merges and forgets
//!   need, and recent history) up to a *cut*: per device, the last segment imported (its
//!   own: the last sealed). Parts of at most [`PART_MAX_OPS`] ops, sorted by record, then a
//!   manifest that names the cut and each part's hash. Kept locally (served to peers, carried
//!   to every store) until a newer one replaces it.
//! - **Reading**: a manifest must be signed by an active device (never a revoked or unknown
//!   one), name only known devices, and stay within each revoked device's last accepted
//!   segment; each part must hash to what the manifest says and hold only ops within the cut.
//!   Anything else is skipped and reported like any bad object.
//! - **Loading**: the ops are imported (on a device with an empty log, through a bulk path that
//!   writes each record once, in order); then the cursors move to the cut, and ops at or below
//!   it that the snapshot left out are remembered as compacted, so no old copy brings them
//!   back. A crash part-way leaves ops imported but the cursors where they were: the next pull
//!   loads it again (imports are idempotent).

use super::StoreHandle;
use super::import::import_ops;
use super::pull::PullReport;
use super::registry::{Registry, Trusted};
use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::identity::{DeviceKeys, VaultKeys};
use crate::merge;
use crate::oplog::{OP_COLUMNS, insert_op, op_from_row, write_record_state_unindexed};
use crate::policy::refold_collection;
use crate::write::now_ms;
use crate::{Error, Result, Vault, random};
use ferry_format::objects::{
    ByteArray32, CutEntry, SnapshotOp, SnapshotPartPayload, SnapshotPayload, decode, encode, paths,
};
use ferry_format::seal::{ObjectId, OpenError};
use ferry_format::typed::Sealed;
use ferry_format::{DeviceId, Op, OpKind};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::{BTreeSet, HashMap};

/// Most ops in one snapshot part.
pub(crate) const PART_MAX_OPS: usize = 20_000;
/// Most bytes of values in one part (before compression).
const PART_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;
/// Most parts a manifest may name: beyond the 64 MiB payload limit of any real vault's state.
const MAX_PARTS: usize = 1_000_000;
/// Manifests of one writer a reader considers, newest first.
const MANIFESTS_PER_WRITER: usize = 8;
/// Parts fetched in one round trip.
const FETCH_AHEAD: usize = 4;

/// A snapshot this device knows of: its own, one it loaded, or one it saw in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnownSnapshot {
    pub(crate) writer: DeviceId,
    pub(crate) n: u64,
    pub(crate) created_ms: u64,
    pub(crate) seen_ms: u64,
    pub(crate) ops: u64,
    pub(crate) parts: u64,
    pub(crate) cut: Vec<CutEntry>,
    /// Every object of it is kept locally.
    pub(crate) held: bool,
}

impl KnownSnapshot {
    /// The last segment of `device` it covers (0: none).
    pub(crate) fn covers(&self, device: DeviceId) -> u64 {
        self.cut.iter().find(|entry| entry.d == *device.as_bytes()).map_or(0, |entry| entry.seq)
    }

    /// The log generation of `device` it covers (0: none).
    pub(crate) fn generation_of(&self, device: DeviceId) -> u32 {
        self.cut.iter().find(|entry| entry.d == *device.as_bytes()).map_or(0, |entry| entry.g)
    }

    /// Whether it covers at least what `other` covers, for every device.
    pub(crate) fn dominates(&self, other: &KnownSnapshot) -> bool {
        other.cut.iter().all(|entry| self.covers(DeviceId::from_bytes(entry.d)) >= entry.seq)
    }

    /// The store path of its manifest.
    pub(crate) fn path(&self) -> String {
        paths::snapshot(self.writer, self.n)
    }
}

/// What writing a snapshot made.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SnapshotWritten {
    /// Its manifest's store path.
    pub path: String,
    /// Ops it holds.
    pub ops: u64,
    /// Its parts.
    pub parts: u64,
    /// Sealed bytes in all (manifest and parts).
    pub bytes: u64,
}

impl Vault {
    /// Seals a snapshot of what this device holds, up to what it published and imported, and
    /// keeps it to publish to every store on the next push. `None` when there is nothing to
    /// snapshot (no segment published or imported yet).
    ///
    /// # Errors
    /// Local failures.
    pub fn write_snapshot(&mut self) -> Result<Option<SnapshotWritten>> {
        self.seal_pending_ops()?;
        let me = self.device_id();
        // One read transaction: the cut and the ops are the same moment of the log.
        let tx = self.conn.transaction()?;
        let cut = current_cut(&tx, me)?;
        if cut.is_empty() {
            return Ok(None);
        }
        let bounds: HashMap<[u8; 16], u64> = cut.iter().map(|entry| (entry.d, entry.c)).collect();
        let n = from_sql_u64(meta_get(&tx, "snapshot_counter")?)? + 1;
        let keys = VaultKeys::load(&tx)?;
        let device_keys = DeviceKeys::load(&tx)?;
        let sealer = keys.sealer(me, &device_keys);
        let seal_err = |e: ferry_format::seal::SealError| Error::Encode(e.to_string());
        let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
        let mut hashes = Vec::new();
        let mut total = 0u64;
        {
            let mut select = tx.prepare(&format!("SELECT {OP_COLUMNS} FROM ops ORDER BY device, counter"))?;
            let mut rows = select.query([])?;
            let mut batch: Vec<SnapshotOp> = Vec::new();
            let mut batch_bytes = 0usize;
            loop {
                let op = rows.next()?.map(op_from_row).transpose()?;
                let full = batch.len() >= PART_MAX_OPS || batch_bytes >= PART_MAX_VALUE_BYTES;
                if (op.is_none() || full) && !batch.is_empty() {
                    let part = u32::try_from(hashes.len()).map_err(|_| Error::Encode("too many parts".into()))?;
                    total += batch.len() as u64;
                    let payload = SnapshotPartPayload { n, part, ops: std::mem::take(&mut batch) };
                    let bytes =
                        sealer.seal(ObjectId::snapshot_part(n, part), random::bytes()?, &payload).map_err(seal_err)?;
                    hashes.push(ByteArray32(*blake3::hash(&bytes).as_bytes()));
                    objects.push((paths::snapshot_part(me, n, part), bytes));
                    batch_bytes = 0;
                }
                let Some(op) = op else { break };
                // Only what the cut covers: an op sealed or imported after it is not in it.
                if bounds.get(op.id.device.as_bytes()).is_none_or(|last| op.id.counter > *last) {
                    continue;
                }
                batch_bytes += op.key.as_str().len() + 64 + value_len(&op);
                batch.push(SnapshotOp::from_op(&op));
            }
        }
        let created_ms = now_ms();
        let manifest = SnapshotPayload { n, created_ms, cut: cut.clone(), parts: hashes, ops: total };
        let manifest_bytes = sealer.seal(ObjectId::snapshot(n), random::bytes()?, &manifest).map_err(seal_err)?;
        objects.push((paths::snapshot(me, n), manifest_bytes));
        drop(tx);

        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if from_sql_u64(meta_get(&tx, "snapshot_counter")?)? + 1 != n {
            // Another handle wrote one meanwhile: its snapshot stands, this one is dropped.
            return Ok(None);
        }
        let mut bytes = 0u64;
        for (path, sealed) in &objects {
            bytes += sealed.len() as u64;
            tx.execute(
                "INSERT INTO snapshot_objects (path, writer, n, bytes) VALUES (?1, ?2, ?3, ?4)",
                params![path, &me.as_bytes()[..], to_sql_u64(n)?, sealed],
            )?;
        }
        let parts = (objects.len() - 1) as u64;
        let known =
            KnownSnapshot { writer: me, n, created_ms, seen_ms: created_ms, ops: total, parts, cut, held: true };
        remember(&tx, &known)?;
        meta_set(&tx, "snapshot_counter", to_sql_u64(n)?)?;
        tx.commit()?;
        Ok(Some(SnapshotWritten { path: known.path(), ops: total, parts, bytes }))
    }

    /// The snapshots this device knows of, newest first.
    pub(crate) fn known_snapshots(&self) -> Result<Vec<KnownSnapshot>> {
        type Row = (Vec<u8>, i64, i64, i64, i64, i64, Vec<u8>, bool);
        let rows: Vec<Row> = self
            .conn
            .prepare(
                "SELECT writer, n, created_ms, seen_ms, ops, parts, cut, held FROM snapshots
                 ORDER BY created_ms DESC, writer, n DESC",
            )?
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(writer, n, created_ms, seen_ms, ops, parts, cut, held)| {
                Ok(KnownSnapshot {
                    writer: DeviceId::from_slice(&writer).ok_or_else(|| Error::Corrupt("snapshot writer".into()))?,
                    n: from_sql_u64(n)?,
                    created_ms: from_sql_u64(created_ms)?,
                    seen_ms: from_sql_u64(seen_ms)?,
                    ops: from_sql_u64(ops)?,
                    parts: from_sql_u64(parts)?,
                    cut: decode(&cut).map_err(|e| Error::Corrupt(format!("snapshot cut: {e}")))?,
                    held,
                })
            })
            .collect()
    }

    /// The newest snapshot this device holds whole (its own or one it loaded).
    pub(crate) fn newest_held_snapshot(&self) -> Result<Option<KnownSnapshot>> {
        Ok(self.known_snapshots()?.into_iter().find(|snapshot| snapshot.held))
    }

    /// The verified snapshots a store holds, newest first, given a listing of
    /// [`paths::SNAPSHOTS`]: manifests not seen before are read and checked (and remembered);
    /// refused ones are recorded as skipped.
    pub(crate) fn snapshots_in(
        &self,
        handle: StoreHandle<'_>,
        listed: &[String],
        report: &mut PullReport,
    ) -> Result<Vec<KnownSnapshot>> {
        let known: HashMap<(DeviceId, u64), KnownSnapshot> =
            self.known_snapshots()?.into_iter().map(|s| ((s.writer, s.n), s)).collect();
        let keys = VaultKeys::load(&self.conn)?;
        let registry = Registry::load(&self.conn)?;
        let mut found = Vec::new();
        // Each writer's newest few only: names anyone can write must not make every pull read
        // thousands of objects (a writer has one or two at a time).
        let mut manifests: Vec<(DeviceId, u64, &String)> = listed
            .iter()
            .filter_map(|path| match paths::parse(path) {
                Some(paths::StorePath::Snapshot(writer, n)) => Some((writer, n, path)),
                _ => None,
            })
            .collect();
        manifests.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut per_writer: HashMap<DeviceId, usize> = HashMap::new();
        manifests.retain(|(writer, ..)| {
            let seen = per_writer.entry(*writer).or_default();
            *seen += 1;
            *seen <= MANIFESTS_PER_WRITER
        });
        for (writer, n, path) in manifests {
            if let Some(snapshot) = known.get(&(writer, n)) {
                // Checked again: a revocation learned since may rule it out.
                if registry.is_active(writer) && beyond_revocation(&snapshot.cut, &registry).is_none() {
                    found.push(snapshot.clone());
                }
                continue;
            }
            // (A manifest refused once, e.g. by a device that did not know its writer yet, is
            // read again: the refusal stays recorded only while it holds.)
            let Some(bytes) = handle.store.get(path)? else { continue };
            match open_manifest(&bytes, writer, n, &keys, &registry) {
                Ok(manifest) => {
                    let now = now_ms();
                    let snapshot = KnownSnapshot {
                        writer,
                        n,
                        created_ms: manifest.created_ms,
                        seen_ms: now,
                        ops: manifest.ops,
                        parts: manifest.parts.len() as u64,
                        cut: manifest.cut,
                        held: false,
                    };
                    remember(&self.conn, &snapshot)?;
                    self.forget_skip(handle.id, path)?;
                    found.push(snapshot);
                }
                Err(reason) => self.record_skip(handle.id, path, &format!("snapshot refused: {reason}"), report)?,
            }
        }
        // A snapshot refused earlier that the store no longer holds is no longer a problem.
        let refused: Vec<String> = self
            .conn
            .prepare("SELECT path FROM skipped WHERE store = ?1 AND path LIKE 'snapshots/%'")?
            .query_map([handle.id], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for path in refused.iter().filter(|path| !listed.contains(path)) {
            self.forget_skip(handle.id, path)?;
        }
        found.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.n.cmp(&a.n)));
        Ok(found)
    }

    /// Loads the newest snapshot of the store that covers segment `need` of a device (any
    /// snapshot when `need` is `None`: a device with nothing imported yet) and moves ahead of
    /// what this device imported. `true` when one was loaded.
    pub(crate) fn load_snapshot_from(
        &mut self,
        handle: StoreHandle<'_>,
        need: Option<(DeviceId, u64, u32)>,
        report: &mut PullReport,
    ) -> Result<bool> {
        let listed = handle.store.list(paths::SNAPSHOTS)?;
        if listed.is_empty() {
            return Ok(false);
        }
        let me = self.device_id();
        for snapshot in self.snapshots_in(handle, &listed, report)? {
            let useful = match need {
                // (Of the log's generation being read: a rewritten log chains anew.)
                Some((device, seq, generation)) => {
                    snapshot.covers(device) >= seq && snapshot.generation_of(device) >= generation
                }
                None => self.snapshot_is_ahead(&snapshot, me)?,
            };
            if !useful {
                continue;
            }
            match self.load_snapshot(handle, &snapshot, report)? {
                Ok(()) => return Ok(true),
                Err(reason) => {
                    self.record_skip(handle.id, &snapshot.path(), &format!("snapshot refused: {reason}"), report)?;
                }
            }
        }
        Ok(false)
    }

    /// Whether a snapshot covers any other device's log beyond this device's cursor.
    fn snapshot_is_ahead(&self, snapshot: &KnownSnapshot, me: DeviceId) -> Result<bool> {
        for entry in &snapshot.cut {
            let device = DeviceId::from_bytes(entry.d);
            if device != me && entry.seq > self.cursor(device)?.0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Fetches, verifies and imports one snapshot, then moves the cursors to its cut. The inner
    /// error is why the snapshot was refused (nothing of a refused part is imported).
    fn load_snapshot(
        &mut self,
        handle: StoreHandle<'_>,
        snapshot: &KnownSnapshot,
        report: &mut PullReport,
    ) -> Result<std::result::Result<(), String>> {
        let keys = VaultKeys::load(&self.conn)?;
        let registry = Registry::load(&self.conn)?;
        let Some(manifest_bytes) = handle.store.get(&snapshot.path())? else {
            return Ok(Err("its manifest is gone from the store".into()));
        };
        let manifest = match open_manifest(&manifest_bytes, snapshot.writer, snapshot.n, &keys, &registry) {
            Ok(manifest) => manifest,
            Err(reason) => return Ok(Err(reason.to_string())),
        };
        let load = Load { handle, snapshot, manifest: &manifest, manifest_bytes: &manifest_bytes, keys, registry };
        let loaded = if self.conn.prepare("SELECT 1 FROM ops LIMIT 1")?.exists([])? {
            self.load_parts(&load, report)?
        } else {
            // A first load: one transaction and a large page cache, so each page of the log
            // is written once, at the end, however the parts' ops fall in it.
            // Where no other connection has the database open (a device joining), a rollback
            // journal instead of the write-ahead log: new pages are then written once, not to
            // the log and again to the database.
            let journal: String = self.conn.query_row("PRAGMA journal_mode = TRUNCATE", [], |row| row.get(0))?;
            self.conn.execute_batch(&format!(
                "PRAGMA cache_size = {BULK_CACHE}; BEGIN IMMEDIATE; DROP INDEX ops_by_record;"
            ))?;
            let loaded = self.bulk_load(&load, report);
            let end = if matches!(loaded, Ok(Ok(()))) { "COMMIT" } else { "ROLLBACK" };
            if !self.conn.is_autocommit() {
                self.conn.execute_batch(end)?;
            }
            if journal != "wal" {
                self.conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            }
            self.conn.execute_batch(&format!("PRAGMA cache_size = {}", crate::database::CACHE_SIZE))?;
            loaded?
        };
        if let Err(reason) = loaded {
            return Ok(Err(reason));
        }
        report.snapshot = Some(snapshot.path());
        if report.forgot {
            self.purge_forgotten()?;
        }
        Ok(Ok(()))
    }

    /// Imports the parts of a snapshot into a log that already holds ops: one transaction per
    /// part, through the usual import; then [`finish_load`].
    fn load_parts(&mut self, load: &Load<'_>, report: &mut PullReport) -> Result<std::result::Result<(), String>> {
        // The ids the snapshot holds, to tell afterwards which ops this device holds within the
        // cut that the writer had compacted away.
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS snapshot_ids (device BLOB, counter INTEGER, PRIMARY KEY (device, counter))
                 WITHOUT ROWID;
             DELETE FROM temp.snapshot_ids;",
        )?;
        let mut parts = load.parts();
        while let Some(next) = parts.next_part()? {
            let (path, bytes, ops) = match next {
                Ok(part) => part,
                Err(reason) => return Ok(Err(reason)),
            };
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut note = tx.prepare_cached("INSERT OR IGNORE INTO temp.snapshot_ids VALUES (?1, ?2)")?;
                for op in &ops {
                    note.execute(params![&op.id.device.as_bytes()[..], to_sql_u64(op.id.counter)?])?;
                }
            }
            let ops = without_compacted(&tx, ops)?;
            let imported = import_ops(&tx, &ops)?;
            report.forgot |= imported.forgot;
            report.imported_ops += imported.new_ops;
            keep_object(&tx, load.snapshot, &path, &bytes)?;
            tx.commit()?;
            self.notify(&imported.changes);
        }
        let me = self.device_id();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changes = drop_compacted_by_writer(&tx, load.manifest)?;
        finish_load(&tx, load, me)?;
        tx.commit()?;
        self.conn.execute_batch("DELETE FROM temp.snapshot_ids")?;
        self.notify(&changes);
        Ok(Ok(()))
    }

    /// Imports the parts of a snapshot into an empty log, inside the caller's transaction,
    /// through [`BulkLoad`]; then [`finish_load`].
    fn bulk_load(&mut self, load: &Load<'_>, report: &mut PullReport) -> Result<std::result::Result<(), String>> {
        let mut bulk = BulkLoad::default();
        let mut parts = load.parts();
        while let Some(next) = parts.next_part()? {
            let (path, bytes, ops) = match next {
                Ok(part) => part,
                Err(reason) => return Ok(Err(reason)),
            };
            report.imported_ops += bulk.import(&self.conn, &ops)?;
            keep_object(&self.conn, load.snapshot, &path, &bytes)?;
        }
        bulk.finish(&self.conn)?;
        finish_load(&self.conn, load, self.device_id())?;
        Ok(Ok(()))
    }

    /// Publishes the newest snapshot this device holds to a store that lacks it: its parts,
    /// then its manifest (a reader never finds a manifest whose parts are not there yet).
    /// Returns how many objects were written.
    pub(crate) fn push_snapshot(&mut self, handle: StoreHandle<'_>) -> Result<u64> {
        let Some(snapshot) = self.newest_held_snapshot()? else { return Ok(0) };
        let (writer, n) = (&snapshot.writer.as_bytes()[..], to_sql_u64(snapshot.n)?);
        let there: bool = self
            .conn
            .prepare_cached("SELECT 1 FROM store_snapshots WHERE store = ?1 AND writer = ?2 AND n = ?3")?
            .exists(params![handle.id, writer, n])?;
        if there {
            return Ok(0);
        }
        let manifest = snapshot.path();
        let parts: Vec<String> = self
            .conn
            .prepare("SELECT path FROM snapshot_objects WHERE writer = ?1 AND n = ?2 AND path != ?3 ORDER BY path")?
            .query_map(params![writer, n, manifest], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut written = 0;
        for path in parts.iter().chain(std::iter::once(&manifest)) {
            let bytes: Vec<u8> =
                self.conn.query_row("SELECT bytes FROM snapshot_objects WHERE path = ?1", [path], |row| row.get(0))?;
            if handle.store.put_if_absent(path, &bytes)? == ferry_store::Created::New {
                written += 1;
            }
        }
        self.conn.execute(
            "INSERT INTO store_snapshots (store, writer, n) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![handle.id, writer, n],
        )?;
        Ok(written)
    }

    /// After a forget: every snapshot this device holds may carry what was forgotten. They are
    /// dropped here, this device's own are queued for deletion from the stores that have them,
    /// and a new one (which cannot hold forgotten ops: they are gone from the log) stands for
    /// the segment copies they stood for.
    pub(crate) fn replace_snapshots_after_forget(&mut self) -> Result<()> {
        let known = self.known_snapshots()?;
        if known.is_empty() {
            return Ok(()); // no store was ever pruned with a snapshot this device knows of
        }
        let held: Vec<KnownSnapshot> = known.into_iter().filter(|s| s.held).collect();
        let me = self.device_id();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for snapshot in &held {
            let (writer, n) = (&snapshot.writer.as_bytes()[..], to_sql_u64(snapshot.n)?);
            if snapshot.writer == me {
                // From every store, not only those known to have it: a push cut short may
                // have written it without noting so.
                tx.execute(
                    "INSERT INTO store_deletions (store, path)
                     SELECT s.id, o.path FROM stores s, snapshot_objects o
                     WHERE NOT s.peer AND o.writer = ?1 AND o.n = ?2
                     ON CONFLICT DO NOTHING",
                    params![writer, n],
                )?;
            }
            tx.execute("DELETE FROM snapshot_objects WHERE writer = ?1 AND n = ?2", params![writer, n])?;
            tx.execute("DELETE FROM store_snapshots WHERE writer = ?1 AND n = ?2", params![writer, n])?;
            tx.execute("UPDATE snapshots SET held = 0 WHERE writer = ?1 AND n = ?2", params![writer, n])?;
        }
        tx.commit()?;
        self.write_snapshot()?;
        Ok(())
    }

    /// After this device rewrote its log (a forget), a snapshot of the new generation must stand
    /// for the segments that snapshots covered: readers verify a rewritten log again, and the
    /// store may have pruned its first segments. Written here if the newest one this device
    /// holds is of an older generation (a purge cut short before it wrote one).
    pub(crate) fn snapshot_after_rewrite(&mut self) -> Result<()> {
        let Some(newest) = self.newest_held_snapshot()? else { return Ok(()) };
        let generation: u32 = meta_get(&self.conn, "log_generation")?;
        if newest.generation_of(self.device_id()) < generation && newest.covers(self.device_id()) > 0 {
            self.write_snapshot()?;
        }
        Ok(())
    }

    /// Deletes the own objects queued for deletion from this store (manifests first). Returns
    /// how many went.
    pub(crate) fn delete_queued(&mut self, handle: StoreHandle<'_>) -> Result<u64> {
        let mut queued: Vec<String> = self
            .conn
            .prepare("SELECT path FROM store_deletions WHERE store = ?1")?
            .query_map([handle.id], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        queued.sort_by_key(|path| !path.ends_with(".snap"));
        let mut deleted = 0;
        for path in queued {
            match handle.store.delete(&path) {
                Ok(()) => deleted += 1,
                // A hub deletes nothing of a log but pairing objects: prune cannot either.
                Err(err) if err.kind == ferry_store::StoreErrorKind::Denied => {}
                Err(err) => return Err(err.into()),
            }
            self.conn
                .execute("DELETE FROM store_deletions WHERE store = ?1 AND path = ?2", params![handle.id, path])?;
        }
        Ok(deleted)
    }

    /// The newest held snapshot a store was given or loaded from, for relaying: segments it
    /// covers need not be carried there.
    pub(crate) fn snapshot_in_store(&self, store: crate::StoreId) -> Result<Option<KnownSnapshot>> {
        let in_store: BTreeSet<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT writer, n FROM store_snapshots WHERE store = ?1")?
            .query_map([store], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(self.known_snapshots()?.into_iter().find(|snapshot| {
            snapshot.held
                && i64::try_from(snapshot.n).is_ok_and(|n| in_store.contains(&(snapshot.writer.as_bytes().to_vec(), n)))
        }))
    }
}

/// A page cache of 128 MiB for a first load (the usual one is 32 MiB).
const BULK_CACHE: i64 = -131_072;

/// One snapshot being loaded: what was read and checked of it, and where it comes from.
struct Load<'a> {
    handle: StoreHandle<'a>,
    snapshot: &'a KnownSnapshot,
    manifest: &'a SnapshotPayload,
    manifest_bytes: &'a [u8],
    keys: VaultKeys,
    registry: Registry,
}

impl<'a> Load<'a> {
    fn parts(&'a self) -> Parts<'a> {
        Parts {
            load: self,
            bounds: self.manifest.cut.iter().map(|entry| (entry.d, entry.c)).collect(),
            next: 0,
            fetched: std::collections::VecDeque::new(),
        }
    }
}

/// The parts of a snapshot, fetched a few at a time and checked one by one.
struct Parts<'a> {
    load: &'a Load<'a>,
    bounds: HashMap<[u8; 16], u64>,
    next: usize,
    fetched: std::collections::VecDeque<(String, Option<Vec<u8>>)>,
}

/// A part: its path, its sealed bytes and its ops; or why it was refused.
type Part = std::result::Result<(String, Vec<u8>, Vec<Op>), String>;

impl Parts<'_> {
    /// The next part, checked; `None` after the last.
    fn next_part(&mut self) -> Result<Option<Part>> {
        let (load, total) = (self.load, self.load.manifest.parts.len());
        if self.next >= total {
            return Ok(None);
        }
        let (writer, n) = (load.snapshot.writer, load.snapshot.n);
        if self.fetched.is_empty() {
            let run: Vec<String> = (self.next..total.min(self.next + FETCH_AHEAD))
                .map(|i| u32::try_from(i).map(|i| paths::snapshot_part(writer, n, i)))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::Corrupt("snapshot part number".into()))?;
            let bytes = load.handle.store.get_many(&run)?;
            self.fetched.extend(run.into_iter().zip(bytes));
        }
        let index = self.next;
        self.next += 1;
        let Some((path, Some(bytes))) = self.fetched.pop_front() else {
            return Ok(Some(Err(format!("part {index} is missing from the store"))));
        };
        let expected = &load.manifest.parts[index].0;
        Ok(Some(match open_part(&bytes, writer, n, index, expected, &self.bounds, &load.keys, &load.registry) {
            Ok(ops) => Ok((path, bytes, ops)),
            Err(reason) => Err(format!("part {index}: {reason}")),
        }))
    }
}

/// After the parts of a snapshot were imported into a log that held ops already: the ops this
/// device holds within the cut (numbered at or below the cut's counter of their writer) that
/// the snapshot lacks were compacted away by its writer (or forgotten, and the forget came with
/// it): they are superseded everywhere, so they go here too, and their records are folded
/// again from what is left (an old op of this device must not stay a head because the ops that
/// superseded it were compacted before they reached it).
fn drop_compacted_by_writer(conn: &Connection, manifest: &SnapshotPayload) -> Result<Vec<crate::Change>> {
    let mut records: BTreeSet<(String, String)> = BTreeSet::new();
    for entry in &manifest.cut {
        let gone: Vec<(i64, String, String)> = conn
            .prepare_cached(&format!(
                "SELECT o.counter, o.collection, o.key FROM ops o
                 WHERE o.device = ?1 AND o.counter <= ?2 AND o.kind != {}
                   AND NOT EXISTS (SELECT 1 FROM temp.snapshot_ids s WHERE s.device = o.device AND s.counter = o.counter)",
                crate::oplog::KIND_FORGET
            ))?
            .query_map(params![&entry.d[..], to_sql_u64(entry.c)?], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (counter, collection, key) in gone {
            conn.prepare_cached("DELETE FROM ops WHERE device = ?1 AND counter = ?2")?
                .execute(params![&entry.d[..], counter])?;
            records.insert((collection, key));
        }
    }
    let mut policies = crate::policy::Policies::default();
    let mut changes = Vec::new();
    for (collection, key) in records {
        let ops = crate::oplog::record_ops(conn, &collection, &key)?;
        let Some(state) = merge::fold(ops.iter()) else {
            conn.execute("DELETE FROM records WHERE collection = ?1 AND key = ?2", params![collection, key])?;
            continue;
        };
        let (state, _) = crate::policy::store_state(conn, &mut policies, &collection, &key, state)?;
        changes.push(crate::Change { collection, key, op: state.winner.id, deleted: state.winner.deleted });
    }
    Ok(changes)
}

/// Keeps a snapshot object (served to peers, carried to stores).
fn keep_object(conn: &Connection, snapshot: &KnownSnapshot, path: &str, bytes: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO snapshot_objects (path, writer, n, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes",
        params![path, &snapshot.writer.as_bytes()[..], to_sql_u64(snapshot.n)?, bytes],
    )?;
    Ok(())
}

/// After the parts: every device of the cut but this one (`me`) has its cursor moved to the
/// cut where it was behind, and its compacted counter raised to the cut's; the snapshot is
/// kept, and known to be in the store it came from.
fn finish_load(conn: &Connection, load: &Load<'_>, me: DeviceId) -> Result<()> {
    for entry in load.manifest.cut.iter().filter(|entry| entry.d != *me.as_bytes()) {
        // Only forward: a cursor already past the cut stays where it is, unless the cut is of
        // a newer generation of that log (rewritten after a forget: it chains anew from there).
        conn.execute(
            "INSERT INTO cursors (device, seq, hash, ops, generation) VALUES (?1, ?2, ?3, 0, ?4)
             ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                 generation = excluded.generation
             WHERE excluded.generation > cursors.generation
                OR (excluded.generation = cursors.generation AND excluded.seq > cursors.seq)",
            params![&entry.d[..], to_sql_u64(entry.seq)?, &entry.hash[..], entry.g],
        )?;
        raise_compacted(conn, DeviceId::from_bytes(entry.d), entry.c)?;
    }
    // Segments it covers that were missing are no longer gaps, in any store.
    let skipped: Vec<String> = conn
        .prepare("SELECT DISTINCT path FROM skipped")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for path in skipped {
        if let Some(paths::StorePath::Segment(device, seq)) = paths::parse(&path)
            && seq <= load.snapshot.covers(device)
        {
            conn.execute("DELETE FROM skipped WHERE path = ?1", [&path])?;
        }
    }
    keep_object(conn, load.snapshot, &load.snapshot.path(), load.manifest_bytes)?;
    remember(conn, &KnownSnapshot { held: true, ..load.snapshot.clone() })?;
    conn.execute(
        "INSERT INTO store_snapshots (store, writer, n) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![load.handle.id, &load.snapshot.writer.as_bytes()[..], to_sql_u64(load.snapshot.n)?],
    )?;
    Ok(())
}

/// The cut of this device's log now: per other device, its cursor; its own, the last sealed
/// segment. Sorted by device id.
fn current_cut(conn: &Connection, me: DeviceId) -> Result<Vec<CutEntry>> {
    let mut cut = Vec::new();
    let rows: Vec<(Vec<u8>, i64, Vec<u8>, u32)> = conn
        .prepare("SELECT device, seq, hash, generation FROM cursors WHERE seq > 0")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (device, seq, hash, generation) in rows {
        let device = DeviceId::from_slice(&device).ok_or_else(|| Error::Corrupt("cursor device".into()))?;
        if device == me {
            continue;
        }
        let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| Error::Corrupt("cursor hash".into()))?;
        cut.push(CutEntry {
            d: *device.as_bytes(),
            seq: from_sql_u64(seq)?,
            hash,
            g: generation,
            c: last_counter_seen(conn, device)?,
        });
    }
    let own: Option<(i64, Vec<u8>, i64)> = conn
        .query_row("SELECT seq, hash, last_counter FROM own_segments ORDER BY seq DESC LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    if let Some((seq, hash, last_counter)) = own {
        let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| Error::Corrupt("own segment hash".into()))?;
        cut.push(CutEntry {
            d: *me.as_bytes(),
            seq: from_sql_u64(seq)?,
            hash,
            g: meta_get(conn, "log_generation")?,
            c: from_sql_u64(last_counter)?,
        });
    }
    cut.sort_by_key(|entry| entry.d);
    Ok(cut)
}

/// The highest op counter of `device` this device has imported, forgotten or compacted (0:
/// none).
pub(crate) fn last_counter_seen(conn: &Connection, device: DeviceId) -> Result<u64> {
    let last: i64 = conn.query_row(
        "SELECT max(coalesce((SELECT max(counter) FROM ops WHERE device = ?1), 0),
                    coalesce((SELECT max(counter) FROM forgotten_ops WHERE device = ?1), 0),
                    coalesce((SELECT counter FROM compacted WHERE device = ?1), 0))",
        [&device.as_bytes()[..]],
        |row| row.get(0),
    )?;
    from_sql_u64(last)
}

/// Raises the counter at or below which ops of `device` missing from the log were compacted.
pub(crate) fn raise_compacted(conn: &Connection, device: DeviceId, counter: u64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO compacted (device, counter) VALUES (?1, ?2)
         ON CONFLICT (device) DO UPDATE SET counter = max(counter, excluded.counter)",
    )?
    .execute(params![&device.as_bytes()[..], to_sql_u64(counter)?])?;
    Ok(())
}

/// `ops` without those compacted away here (at or below the device's compacted counter and
/// not in the log): an old copy must not bring back what compaction dropped.
pub(crate) fn without_compacted(conn: &Connection, ops: Vec<Op>) -> Result<Vec<Op>> {
    let mut floors: HashMap<DeviceId, u64> = HashMap::new();
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        let floor = match floors.get(&op.id.device) {
            Some(floor) => *floor,
            None => {
                let floor: i64 = conn
                    .prepare_cached("SELECT counter FROM compacted WHERE device = ?1")?
                    .query_row([&op.id.device.as_bytes()[..]], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let floor = from_sql_u64(floor)?;
                floors.insert(op.id.device, floor);
                floor
            }
        };
        if op.id.counter <= floor {
            let held = conn
                .prepare_cached("SELECT 1 FROM ops WHERE device = ?1 AND counter = ?2")?
                .exists(params![&op.id.device.as_bytes()[..], to_sql_u64(op.id.counter)?])?;
            if !held {
                continue;
            }
        }
        kept.push(op);
    }
    Ok(kept)
}

/// Remembers a snapshot (its cut, whether it is held).
fn remember(conn: &Connection, snapshot: &KnownSnapshot) -> Result<()> {
    conn.execute(
        "INSERT INTO snapshots (writer, n, created_ms, seen_ms, ops, parts, cut, held)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (writer, n) DO UPDATE SET held = max(held, excluded.held)",
        params![
            &snapshot.writer.as_bytes()[..],
            to_sql_u64(snapshot.n)?,
            to_sql_u64(snapshot.created_ms)?,
            to_sql_u64(snapshot.seen_ms)?,
            to_sql_u64(snapshot.ops)?,
            to_sql_u64(snapshot.parts)?,
            encode(&snapshot.cut),
            snapshot.held,
        ],
    )?;
    Ok(())
}

fn value_len(op: &Op) -> usize {
    match &op.kind {
        OpKind::Put(value) => value.as_str().len(),
        OpKind::Delete => 0,
        OpKind::Forget(_) => 64,
    }
}

/// Opens and checks a snapshot manifest found at `snapshots/<writer>/<n>.snap`.
pub(crate) fn open_manifest(
    bytes: &[u8],
    writer: DeviceId,
    n: u64,
    keys: &VaultKeys,
    registry: &Registry,
) -> std::result::Result<SnapshotPayload, OpenError> {
    let manifest = Sealed::<SnapshotPayload>::new(bytes)
        .open(keys.named(Some(writer), Some(ObjectId::snapshot(n))), &Trusted { registry, keys })?
        .payload;
    let malformed = |what: String| Err(OpenError::Malformed(what));
    if !registry.is_active(writer) {
        return malformed(format!("written by device {writer}, which is revoked: its snapshots are not trusted"));
    }
    if manifest.n != n {
        return malformed(format!("the manifest says it is snapshot {}, stored as {n}", manifest.n));
    }
    if manifest.parts.len() > MAX_PARTS {
        return malformed(format!("it names {} parts", manifest.parts.len()));
    }
    if manifest.cut.windows(2).any(|pair| pair[0].d >= pair[1].d) {
        return malformed("its cut is not sorted by device, or names a device twice".into());
    }
    for entry in &manifest.cut {
        let device = DeviceId::from_bytes(entry.d);
        if !registry.contains(device) {
            return malformed(format!("its cut names device {device}, which this device does not know"));
        }
    }
    if let Some(why) = beyond_revocation(&manifest.cut, registry) {
        return malformed(why);
    }
    Ok(manifest)
}

/// Why a cut goes beyond what a revocation allows (a revoked device's segment after its last
/// accepted one), if it does.
fn beyond_revocation(cut: &[CutEntry], registry: &Registry) -> Option<String> {
    cut.iter().find_map(|entry| {
        let device = DeviceId::from_bytes(entry.d);
        let last = registry.revoked_after(device)?;
        (entry.seq > last).then(|| {
            format!("it covers segment {} of device {device}, which was revoked after segment {last}", entry.seq)
        })
    })
}

/// Opens and checks part `index` of snapshot `n` of `writer` against its manifest: its hash,
/// its place, and every op within the cut (`bounds`: per device, the highest counter covered).
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_part(
    bytes: &[u8],
    writer: DeviceId,
    n: u64,
    index: usize,
    expected_hash: &[u8; 32],
    bounds: &HashMap<[u8; 16], u64>,
    keys: &VaultKeys,
    registry: &Registry,
) -> std::result::Result<Vec<Op>, OpenError> {
    if blake3::hash(bytes).as_bytes() != expected_hash {
        return Err(OpenError::Malformed("it is not the part its manifest names (hash differs)".into()));
    }
    let part = u32::try_from(index).map_err(|_| OpenError::Malformed("part number out of range".into()))?;
    let payload = Sealed::<SnapshotPartPayload>::new(bytes)
        .open(keys.named(Some(writer), Some(ObjectId::snapshot_part(n, part))), &Trusted { registry, keys })?
        .payload;
    if payload.n != n || payload.part != part {
        return Err(OpenError::Malformed(format!(
            "it says it is part {} of snapshot {}, stored as part {part} of {n}",
            payload.part, payload.n
        )));
    }
    payload
        .ops
        .into_iter()
        .map(|wire| {
            let device = wire.d;
            let op = wire.into_op().map_err(OpenError::Malformed)?;
            match bounds.get(&device) {
                Some(last) if op.id.counter >= 1 && op.id.counter <= *last => Ok(op),
                _ => Err(OpenError::Malformed(format!("op {} is outside the snapshot's cut", op.id))),
            }
        })
        .collect()
}

/// The bulk path of a first load: the parts' ops go into the log in the order they come (by
/// writer and counter: each writer's ops are appended to the log's B-tree); then one pass over
/// the log in record order writes each record's state once, policies and the search index are
/// brought up to date in one statement each, and the clock absorbs the newest op.
#[derive(Default)]
struct BulkLoad {
    clock: u64,
}

impl BulkLoad {
    /// Imports one part's ops; returns how many were new.
    fn import(&mut self, conn: &Connection, ops: &[Op]) -> Result<u64> {
        let mut new = 0;
        for op in ops {
            if insert_op(conn, op)? {
                new += 1;
            }
            self.clock = self.clock.max(op.hlc.to_u64());
        }
        Ok(new)
    }

    fn finish(&mut self, conn: &Connection) -> Result<()> {
        // Built once, sorted, rather than entry by entry in random order.
        conn.execute_batch(crate::database::OPS_BY_RECORD)?;
        fold_every_record(conn)?;
        // Collections whose policy is not the last writer's pick are folded again under it.
        let policies: Vec<String> = conn
            .prepare("SELECT substr(key, 8) FROM records WHERE collection = ?1 AND key LIKE 'policy/%'")?
            .query_map([crate::policy::SETTINGS_COLLECTION], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for collection in policies {
            refold_collection(conn, &collection)?;
        }
        conn.execute("INSERT INTO search_dirty (collection, key) SELECT collection, key FROM records", [])?;
        let now = now_ms();
        let clock = ferry_format::Hlc::from_u64(self.clock);
        if clock.wall_ms().saturating_sub(now) <= super::import::MAX_CLOCK_AHEAD_MS {
            let last = ferry_format::Hlc::from_u64(from_sql_u64(meta_get(conn, "hlc")?)?);
            let mut local = ferry_format::HlcClock::resume(last);
            local.observe(clock);
            meta_set(conn, "hlc", to_sql_u64(local.last().to_u64())?)?;
        }
        Ok(())
    }
}

/// Writes every record's state from the log, in one pass in record order over the covering
/// index `ops_by_record` (no lookups into the log): a record with one op is that op; one with
/// several (few, after compaction) is folded from its ops. The last writer's pick; see
/// [`BulkLoad::finish`] for policies.
fn fold_every_record(conn: &Connection) -> Result<()> {
    let mut stmt = conn.prepare(&format!(
        "SELECT collection, key, device, counter, hlc, kind FROM ops INDEXED BY ops_by_record
         WHERE kind != {} ORDER BY collection, key",
        crate::oplog::KIND_FORGET
    ))?;
    let mut rows = stmt.query([])?;
    // The record being read: its name, its first op as a state, and whether it has more.
    let mut current: Option<((String, String), merge::RecordState, bool)> = None;
    let flush = |(record, state, several): ((String, String), merge::RecordState, bool)| -> Result<()> {
        let state = if several {
            merge::fold(crate::oplog::record_ops(conn, &record.0, &record.1)?.iter()).unwrap_or(state)
        } else {
            state
        };
        write_record_state_unindexed(conn, &record.0, &record.1, &state)
    };
    while let Some(row) = rows.next()? {
        let same = current.as_ref().is_some_and(|((c, k), ..)| {
            row.get_ref(0).ok().and_then(|v| v.as_str().ok()) == Some(c.as_str())
                && row.get_ref(1).ok().and_then(|v| v.as_str().ok()) == Some(k.as_str())
        });
        if same {
            if let Some((_, _, several)) = current.as_mut() {
                *several = true;
            }
            continue;
        }
        let device: Vec<u8> = row.get(2)?;
        let id = ferry_format::OpId {
            device: DeviceId::from_slice(&device).ok_or_else(|| Error::Corrupt("an op of the log".into()))?,
            counter: from_sql_u64(row.get(3)?)?,
        };
        let winner = merge::Winner {
            id,
            hlc: ferry_format::Hlc::from_u64(from_sql_u64(row.get(4)?)?),
            deleted: row.get::<_, i64>(5)? == crate::oplog::KIND_DELETE,
        };
        let state = merge::RecordState { winner, heads: vec![id] };
        if let Some(done) = current.replace(((row.get(0)?, row.get(1)?), state, false)) {
            flush(done)?;
        }
    }
    if let Some(done) = current {
        flush(done)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(cut: &[(u8, u64)]) -> KnownSnapshot {
        KnownSnapshot {
            writer: DeviceId::from_bytes([1; 16]),
            n: 1,
            created_ms: 0,
            seen_ms: 0,
            ops: 0,
            parts: 0,
            cut: cut.iter().map(|(d, seq)| CutEntry { d: [*d; 16], seq: *seq, hash: [0; 32], g: 0, c: 0 }).collect(),
            held: true,
        }
    }

    #[test]
    fn a_snapshot_dominates_another_when_it_covers_as_much_of_every_log() {
        let newer = snapshot(&[(1, 10), (2, 5)]);
        assert!(newer.dominates(&snapshot(&[(1, 10), (2, 4)])));
        assert!(newer.dominates(&snapshot(&[(1, 3)])));
        assert!(!newer.dominates(&snapshot(&[(1, 11)])));
        assert!(!newer.dominates(&snapshot(&[(3, 1)])), "a device it does not cover");
        assert_eq!(newer.covers(DeviceId::from_bytes([2; 16])), 5);
        assert_eq!(newer.covers(DeviceId::from_bytes([9; 16])), 0);
    }
}
