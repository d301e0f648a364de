//! Pull: learn new devices, read each device's HEAD, fetch and verify the segments after the
//! cursor, import them.
//!
//! Cost when nothing changed: one listing of `devices/` and one conditional read of each other
//! device's HEAD: 1 + D requests, whatever the length of history. A bad object is skipped and
//! recorded with its reason; it never stops the import of other devices' data.

use super::StoreHandle;
use super::import::import_ops;
use super::plan::{HeadPlan, HeadSeen, Imported, plan_head};
use super::registry::{Registry, Trusted, check_revocation_epoch, open_device_record, open_revocation};
use super::snapshot::{last_counter_seen, without_compacted};
use crate::database::{from_sql_u64, to_sql_u64};
use crate::identity::VaultKeys;
use crate::write::now_ms;
use crate::{Error, Result, Vault};
use ferry_format::objects::{HeadPayload, SegmentPayload, paths};
use ferry_format::seal::{ObjectId, OpenError};
use ferry_format::typed::Sealed;
use ferry_format::{DeviceId, Op};
use ferry_store::Fetched;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// Ops imported per transaction: large transactions write each B-tree page once per batch
/// instead of once per segment (see `docs/PERFORMANCE.md`); memory stays bounded.
const IMPORT_BATCH_OPS: usize = 100_000;
/// How many segments a pull asks for at once.
const FETCH_AHEAD: u64 = 32;

/// Verified segments of one device waiting to be imported together.
#[derive(Default)]
struct ImportBatch {
    ops: Vec<Op>,
    paths: Vec<String>,
    /// The verified segments' sealed bytes, by seq (kept for relaying).
    sealed: Vec<(u64, Vec<u8>)>,
    last: Option<(u64, [u8; 32])>,
}

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PullReport {
    /// Devices newly learned from the store's registry.
    pub new_devices: u64,
    /// Segments verified and imported.
    pub imported_segments: u64,
    /// Ops new to this device.
    pub imported_ops: u64,
    /// Devices newly known to be revoked.
    pub revocations: u64,
    /// The key epoch this device moved to (after a revocation elsewhere), if it did.
    pub adopted_epoch: Option<u32>,
    /// A forget was imported (or a forgotten op refused): copies were purged.
    pub forgot: bool,
    /// Objects skipped this time, with reasons (also kept for `sync status`).
    pub skipped: Vec<(String, String)>,
    /// Devices whose imported ops were dated more than a day ahead of this device's clock,
    /// with how far (ms): the ops were imported, but this device's clock did not follow.
    pub clocks_held_back: Vec<(String, u64)>,
    /// The snapshot loaded (its manifest's store path): this device had nothing yet, or the
    /// segments after its cursor were pruned from the store.
    pub snapshot: Option<String>,
    /// Devices another handle of this process was pulling at the same time (a daemon following
    /// several peers): left to it, not fetched twice. Pull again to see them up to date.
    pub deferred: Vec<String>,
}

/// How reading a device's segments ended.
enum Imports {
    /// Up to the HEAD (or the revocation's limit).
    Done,
    /// At a refused segment (damaged, forged, out of the chain), with the reason.
    Refused(u64, String),
    /// At this missing segment: pruned (a snapshot covers it) or a gap.
    Missing(u64),
}

/// Another device's HEAD as read from a store: opened, with its bytes and etag.
struct FetchedHead {
    head: HeadPayload,
    bytes: Vec<u8>,
    etag: Option<String>,
}

/// The segments of one device to import, as [`plan_head`] decided.
#[derive(Clone, Copy)]
struct Segments<'a> {
    device: DeviceId,
    head: &'a HeadSeen,
    after: (u64, Option<[u8; 32]>),
    to: u64,
    rewriting: bool,
}

impl Vault {
    /// Fetches, verifies and imports what other devices published to the store.
    ///
    /// # Errors
    /// The store is unreachable or refuses, or holds another vault; local failures. Bad objects
    /// are not errors: they are skipped and reported.
    pub fn pull(&mut self, handle: StoreHandle<'_>) -> Result<PullReport> {
        let mut report = PullReport::default();
        let keys = VaultKeys::load(&self.conn)?;
        self.learn_devices(handle, &keys, &mut report)?;
        self.adopt_epochs(handle, &mut report)?;
        let keys = VaultKeys::load(&self.conn)?;
        if report.adopted_epoch.is_some() {
            // Devices enrolled under the new key were not readable before.
            self.learn_devices(handle, &keys, &mut report)?;
        }
        let registry = Registry::load(&self.conn)?;
        let mut devices: Vec<DeviceId> = registry.devices().filter(|d| *d != self.device_id()).collect();
        devices.sort();
        if !devices.is_empty() && !self.conn.prepare("SELECT 1 FROM cursors LIMIT 1")?.exists([])? {
            // Nothing imported yet: start from the newest snapshot, if the store has one. (A
            // store without one is not listed again on every pull while the others have
            // published nothing: a segment missing later leads to a snapshot all the same.)
            let listed: bool = self
                .conn
                .prepare("SELECT 1 FROM meta WHERE name = 'first_snapshot_check' AND value = ?1")?
                .exists([handle.id])?;
            if !listed {
                self.load_snapshot_from(handle, None, &mut report)?;
                crate::database::meta_set(&self.conn, "first_snapshot_check", handle.id)?;
            }
        }
        for device in devices {
            let Some(_pulling) = super::inflight::claim(self.home.root(), device) else {
                report.deferred.push(device.to_string());
                continue;
            };
            self.pull_device(handle, &keys, &registry, device, &mut report)?;
        }
        // A snapshot refused before is no concern of this device while it reads every log it
        // follows without one (the snapshot's holders repair it: `ferry store check`).
        let refused_now: Vec<&str> = report.skipped.iter().map(|(path, _)| path.as_str()).collect();
        if !refused_now.iter().any(|path| path.starts_with("log/")) {
            let refused: Vec<String> = self
                .conn
                .prepare("SELECT path FROM skipped WHERE store = ?1 AND path LIKE 'snapshots/%'")?
                .query_map([handle.id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for path in refused.iter().filter(|path| !refused_now.contains(&path.as_str())) {
                self.forget_skip(handle.id, path)?;
            }
        }
        if report.forgot {
            self.purge_forgotten()?;
        } else if report.revocations > 0 && self.newest_held_snapshot()?.is_some() {
            // A revoked device's snapshots are no longer trusted, and what it pruned may be
            // covered by nothing else: this device stands for it with a snapshot of its own.
            self.write_snapshot()?;
        }
        Ok(report)
    }

    /// Reads `devices/` and registers every valid record and revocation not known yet.
    fn learn_devices(&mut self, handle: StoreHandle<'_>, keys: &VaultKeys, report: &mut PullReport) -> Result<()> {
        let listed = handle.store.list(paths::DEVICES)?;
        let mut registry = Registry::load(&self.conn)?;
        let revocations: Vec<(String, DeviceId, [u8; 16])> = listed
            .iter()
            .filter_map(|path| {
                let (device, tag) = paths::parse_revocation(path)?;
                Some((path.clone(), device, tag))
            })
            .filter(|(_, device, _)| !registry.has_revocation(*device))
            .collect();
        let unknown: Vec<(String, DeviceId)> = listed
            .into_iter()
            .filter_map(|path| Some((path.clone(), paths::parse_device_record(&path)?)))
            .filter(|(_, device)| !registry.contains(*device))
            .collect();
        self.learn_records(handle, keys, &mut registry, unknown, report)?;
        for (path, device, tag) in revocations {
            if registry.has_revocation(device) {
                continue; // revoked by an earlier object of this listing
            }
            let Some(bytes) = handle.store.get(&path)? else { continue };
            let checked = match open_revocation(&bytes, device, tag, keys, &registry) {
                Ok(revocation) => {
                    let epoch_object = handle.store.get(&paths::key_epoch(&revocation.epoch()))?;
                    check_revocation_epoch(&revocation, epoch_object.as_deref(), keys, &registry).map(|()| revocation)
                }
                Err(reason) => Err(reason),
            };
            let competing = match &checked {
                Ok(revocation) => self.competing_epoch(&revocation.epoch())?,
                Err(_) => None,
            };
            match (checked, competing) {
                (Ok(_), _) if !registry.contains(device) => {
                    self.record_skip(handle.id, &path, "revokes a device this device does not know", report)?;
                }
                (Ok(revocation), Some(taken)) => {
                    let reason = format!(
                        "revocation refused: key epoch {} was started by another rotation ({taken}) this device \
                         accepted first; revoke the device again from an active device",
                        revocation.payload.new_epoch
                    );
                    self.record_skip(handle.id, &path, &reason, report)?;
                }
                (Ok(revocation), None) => {
                    self.register_revocation(device, &revocation)?;
                    self.queue_for_stores(&[(path.clone(), bytes)], Some(handle.id))?;
                    self.forget_skip(handle.id, &path)?;
                    report.revocations += 1;
                    registry = Registry::load(&self.conn)?;
                }
                (Err(reason), _) => {
                    self.record_skip(handle.id, &path, &format!("revocation refused: {reason}"), report)?;
                }
            }
        }
        Ok(())
    }

    /// Registers the valid ones of `unknown` device records.
    fn learn_records(
        &mut self,
        handle: StoreHandle<'_>,
        keys: &VaultKeys,
        registry: &mut Registry,
        unknown: Vec<(String, DeviceId)>,
        report: &mut PullReport,
    ) -> Result<()> {
        // A record may be signed by a device that is itself new: retry until no progress.
        let mut pending = unknown;
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for (path, device) in pending {
                let Some(bytes) = handle.store.get(&path)? else { continue };
                match open_device_record(&bytes, device, keys, registry) {
                    Ok(record) => {
                        self.register_device(&record)?;
                        self.forget_skip(handle.id, &path)?;
                        *registry = Registry::load(&self.conn)?;
                        report.new_devices += 1;
                        progressed = true;
                    }
                    Err(reason) => still.push((path, device, reason)),
                }
            }
            if !progressed || still.is_empty() {
                if still.iter().any(|(_, _, reason)| matches!(reason, OpenError::WrongVault { .. })) {
                    // Another vault's objects: the store was replaced or re-pointed. Name it.
                    self.check_store_keys(handle.store)?;
                }
                for (path, _, reason) in still {
                    self.record_skip(handle.id, &path, &reason.to_string(), report)?;
                }
                return Ok(());
            }
            pending = still.into_iter().map(|(path, device, _)| (path, device)).collect();
        }
    }

    /// Pulls one other device's log: reads its HEAD (if it changed), decides what to do about
    /// it ([`plan_head`]), imports the segments it names, and remembers the HEAD.
    fn pull_device(
        &mut self,
        handle: StoreHandle<'_>,
        keys: &VaultKeys,
        registry: &Registry,
        device: DeviceId,
        report: &mut PullReport,
    ) -> Result<()> {
        let Some(fetched) = self.read_head(handle, keys, registry, device, report)? else { return Ok(()) };
        self.pull_device_log(handle, keys, registry, device, &fetched, report, true)
    }

    /// [`Self::pull_device`] once its HEAD is read. A segment missing from the store that a
    /// snapshot covers (pruned) is not a gap: the snapshot is loaded, and the log read on from
    /// its cut (`may_load`: once).
    #[allow(clippy::too_many_arguments)]
    fn pull_device_log(
        &mut self,
        handle: StoreHandle<'_>,
        keys: &VaultKeys,
        registry: &Registry,
        device: DeviceId,
        fetched: &FetchedHead,
        report: &mut PullReport,
        may_load: bool,
    ) -> Result<()> {
        let head = &fetched.head;
        let seen = HeadSeen {
            seq: head.seq,
            hash: head.hash,
            generation: head.generation,
            rewritten_from: head.rewritten_from,
        };
        let (seq, hash) = self.cursor(device)?;
        let generation: u32 = self
            .conn
            .query_row("SELECT generation FROM cursors WHERE device = ?1", [&device.as_bytes()[..]], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let kept_before_rewrite = match seen.rewrite_start() {
            from if head.generation > generation && from > 1 => self.kept_segment_hash(device, from - 1)?,
            _ => None,
        };
        let imported = Imported { seq, hash, generation, kept_before_rewrite };
        let (after, to, rewriting) = match plan_head(device, &seen, &imported, registry.revoked_after(device)) {
            HeadPlan::Refuse(reason) => return self.record_skip(handle.id, &paths::head(device), &reason, report),
            HeadPlan::UpToDate => ((seq, hash), seq, false),
            HeadPlan::Fetch { after, to, rewriting } => (after, to, rewriting),
        };
        let segments = Segments { device, head: &seen, after, to, rewriting };
        let (next, reason) = match self.import_segments(handle, keys, registry, &segments, report)? {
            Imports::Done => (0, None),
            Imports::Refused(next, reason) => (next, Some(reason)),
            Imports::Missing(next) => (
                next,
                Some(format!("gap in chain: segment {next} is missing (withheld, or not yet visible in the store)")),
            ),
        };
        if let Some(reason) = reason {
            // A snapshot that stands for it (the store pruned it, or lost or damaged a copy
            // nobody holds any more) lets the log be read on past it.
            if may_load && self.load_snapshot_from(handle, Some((device, next, head.generation)), report)? {
                let registry = Registry::load(&self.conn)?;
                return self.pull_device_log(handle, keys, &registry, device, fetched, report, false);
            }
            return self.record_skip(handle.id, &paths::segment(device, next), &reason, report);
        }
        if to < head.seq {
            let reason = format!(
                "written after device {device} was revoked or left out of a key rotation (its last accepted segment is {to}); not imported"
            );
            return self.record_skip(handle.id, &paths::segment(device, to + 1), &reason, report);
        }
        self.note_head(handle, device, fetched, rewriting)
    }

    /// The HEAD of `device` in the store, opened, if it changed since the last pull; a HEAD that
    /// does not open is recorded as skipped (`None`).
    fn read_head(
        &mut self,
        handle: StoreHandle<'_>,
        keys: &VaultKeys,
        registry: &Registry,
        device: DeviceId,
        report: &mut PullReport,
    ) -> Result<Option<FetchedHead>> {
        let head_path = paths::head(device);
        let etag: Option<String> = self
            .conn
            .query_row(
                "SELECT etag FROM store_heads WHERE store = ?1 AND device = ?2",
                params![handle.id, &device.as_bytes()[..]],
                |row| row.get(0),
            )
            .optional()?;
        let (bytes, etag) = match handle.store.get_if_changed(&head_path, etag.as_deref())? {
            Fetched::Unchanged | Fetched::Missing => return Ok(None),
            Fetched::Changed { bytes, etag } => (bytes, etag),
        };
        let trusted = Trusted { registry, keys };
        match Sealed::<HeadPayload>::new(&bytes).open(keys.named(Some(device), Some(ObjectId::HEAD)), &trusted) {
            Ok(opened) => Ok(Some(FetchedHead { head: opened.payload, bytes, etag })),
            Err(reason) => {
                if matches!(reason, OpenError::WrongVault { .. }) {
                    self.check_store_keys(handle.store)?;
                }
                self.record_skip(handle.id, &head_path, &reason.to_string(), report)?;
                Ok(None)
            }
        }
    }

    /// Verifies and imports `segments`, in batches; what came before a missing or refused one
    /// is imported.
    fn import_segments(
        &mut self,
        handle: StoreHandle<'_>,
        keys: &VaultKeys,
        registry: &Registry,
        segments: &Segments<'_>,
        report: &mut PullReport,
    ) -> Result<Imports> {
        let Segments { device, head, after: (mut seq, mut hash), to, rewriting } = *segments;
        // A rewrite (purging forgotten ops) may only remove ops: every op it re-delivers up to
        // the last counter already imported must be one this device has (or forgot).
        let imported_up_to = if rewriting { self.last_counter_seen(device)? } else { 0 };
        let mut batch = ImportBatch::default();
        let mut fetched = std::collections::VecDeque::new();
        while seq < to {
            let next = seq + 1;
            let path = paths::segment(device, next);
            if fetched.is_empty() {
                // The next run of segments in one round trip (a peer's batch, S3 reads at once).
                let last = to.min(seq.saturating_add(FETCH_AHEAD));
                let run: Vec<String> = (next..=last).map(|s| paths::segment(device, s)).collect();
                fetched.extend(handle.store.get_many(&run)?);
            }
            let Some(bytes) = fetched.pop_front().flatten() else {
                self.import_batch(handle.id, device, &mut batch, report)?;
                return Ok(Imports::Missing(next));
            };
            let segment_hash = *blake3::hash(&bytes).as_bytes();
            let segment = Sealed::<SegmentPayload>::new(&bytes)
                .open(keys.named(Some(device), Some(ObjectId::segment(next))), &Trusted { registry, keys })
                .and_then(|opened| check_segment(opened.payload, next, hash, device))
                .and_then(|ops| {
                    if next == head.seq && segment_hash != head.hash {
                        Err(OpenError::Malformed(
                            "HEAD names another segment than the one stored (rollback or fork)".into(),
                        ))
                    } else {
                        Ok(ops)
                    }
                });
            // A local database failure is an error; only what the segment holds is a refusal.
            let segment = match segment {
                Ok(ops) => self.added_by_rewrite(&ops, imported_up_to)?.map_or(Ok(ops), Err),
                Err(reason) => Err(reason),
            };
            let ops = match segment {
                Ok(ops) => ops,
                Err(reason) => {
                    self.import_batch(handle.id, device, &mut batch, report)?;
                    return Ok(Imports::Refused(next, reason.to_string()));
                }
            };
            batch.ops.extend(ops);
            batch.paths.push(path);
            batch.sealed.push((next, bytes));
            batch.last = Some((next, segment_hash));
            if batch.ops.len() >= IMPORT_BATCH_OPS {
                self.import_batch(handle.id, device, &mut batch, report)?;
            }
            seq = next;
            hash = Some(segment_hash);
        }
        self.import_batch(handle.id, device, &mut batch, report)?;
        Ok(Imports::Done)
    }

    /// Remembers a HEAD whose segments are all imported: its bytes (served to peers, relayed to
    /// other stores), its etag in this store, and a raised log generation.
    fn note_head(
        &mut self,
        handle: StoreHandle<'_>,
        device: DeviceId,
        fetched: &FetchedHead,
        rewriting: bool,
    ) -> Result<()> {
        self.forget_skip(handle.id, &paths::head(device))?;
        if rewriting {
            self.conn.execute(
                "UPDATE cursors SET generation = ?2 WHERE device = ?1",
                params![&device.as_bytes()[..], fetched.head.generation],
            )?;
        }
        self.conn.execute(
            "INSERT INTO device_heads (device, seq, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes WHERE excluded.seq >= device_heads.seq",
            params![&device.as_bytes()[..], to_sql_u64(fetched.head.seq)?, fetched.bytes],
        )?;
        self.conn.execute(
            "INSERT INTO store_heads (store, device, etag, seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (store, device) DO UPDATE SET etag = excluded.etag, seq = excluded.seq",
            params![
                handle.id,
                &device.as_bytes()[..],
                fetched.etag.clone().unwrap_or_default(),
                to_sql_u64(fetched.head.seq)?
            ],
        )?;
        Ok(())
    }

    /// Imports the verified segments gathered so far, and moves the device's cursor past them,
    /// in one transaction.
    fn import_batch(
        &mut self,
        store: crate::StoreId,
        device: DeviceId,
        batch: &mut ImportBatch,
        report: &mut PullReport,
    ) -> Result<()> {
        let Some((last_seq, last_hash)) = batch.last.take() else { return Ok(()) };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ops = without_compacted(&tx, std::mem::take(&mut batch.ops))?;
        let imported = import_ops(&tx, &ops)?;
        report.forgot |= imported.forgot;
        if let Some(ahead) = imported.clock_held_back_ms {
            report.clocks_held_back.push((device.to_string(), ahead));
        }
        tx.execute(
            "INSERT INTO cursors (device, seq, hash, ops) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ops = ops + excluded.ops",
            params![&device.as_bytes()[..], to_sql_u64(last_seq)?, &last_hash[..], to_sql_u64(imported.new_ops)?],
        )?;
        for path in &batch.paths {
            tx.execute("DELETE FROM skipped WHERE store = ?1 AND path = ?2", params![store, path])?;
        }
        let last_write = ops.iter().map(|op| op.hlc.wall_ms()).max().unwrap_or(0);
        tx.execute(
            "UPDATE devices SET last_write_ms = max(coalesce(last_write_ms, 0), ?2) WHERE device_id = ?1",
            params![&device.as_bytes()[..], to_sql_u64(last_write)?],
        )?;
        for (seq, sealed) in &batch.sealed {
            tx.execute(
                "INSERT INTO imported_segments (device, seq, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device, seq) DO UPDATE SET bytes = excluded.bytes",
                params![&device.as_bytes()[..], to_sql_u64(*seq)?, sealed],
            )?;
        }
        tx.commit()?;
        self.notify(&imported.changes);
        report.imported_segments += batch.paths.len() as u64;
        report.imported_ops += imported.new_ops;
        batch.ops.clear();
        batch.paths.clear();
        batch.sealed.clear();
        Ok(())
    }

    /// The highest op counter of `device` this device has imported, forgotten or compacted.
    fn last_counter_seen(&self, device: DeviceId) -> Result<u64> {
        last_counter_seen(&self.conn, device)
    }

    /// Why a rewritten segment must be refused, if it adds an op: one numbered at or below
    /// `up_to` (the last counter imported before the rewrite) that this device neither holds nor
    /// forgot.
    fn added_by_rewrite(&self, ops: &[Op], up_to: u64) -> Result<Option<OpenError>> {
        let mut known = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM ops WHERE device = ?1 AND counter = ?2)
                 OR EXISTS (SELECT 1 FROM forgotten_ops WHERE device = ?1 AND counter = ?2)
                 OR EXISTS (SELECT 1 FROM compacted WHERE device = ?1 AND counter >= ?2)",
        )?;
        for op in ops.iter().filter(|op| op.id.counter <= up_to) {
            let held: bool =
                known.query_row(params![&op.id.device.as_bytes()[..], to_sql_u64(op.id.counter)?], |row| row.get(0))?;
            if !held {
                return Ok(Some(OpenError::Malformed(format!(
                    "a rewritten segment adds op {} that the log did not hold before: a rewrite may only remove ops",
                    op.id
                ))));
            }
        }
        Ok(None)
    }

    /// The hash of another device's segment this device imported, if it kept the copy or its
    /// hash (a copy a snapshot stands for is dropped, its hash kept).
    fn kept_segment_hash(&self, device: DeviceId, seq: u64) -> Result<Option<[u8; 32]>> {
        let kept: Option<(Vec<u8>, Option<Vec<u8>>)> = self
            .conn
            .query_row(
                "SELECT bytes, hash FROM imported_segments WHERE device = ?1 AND seq = ?2",
                params![&device.as_bytes()[..], to_sql_u64(seq)?],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match kept {
            Some((bytes, _)) if !bytes.is_empty() => Some(*blake3::hash(&bytes).as_bytes()),
            Some((_, Some(hash))) => hash.as_slice().try_into().ok(),
            _ => None,
        })
    }

    /// The last segment imported from `device`: its seq (0 for none) and hash.
    pub(crate) fn cursor(&self, device: DeviceId) -> Result<(u64, Option<[u8; 32]>)> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT seq, hash FROM cursors WHERE device = ?1", [&device.as_bytes()[..]], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        match row {
            None => Ok((0, None)),
            Some((seq, hash)) => {
                let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| Error::Corrupt("cursor hash".into()))?;
                Ok((from_sql_u64(seq)?, Some(hash)))
            }
        }
    }

    /// Another key epoch with the same number as `epoch` that this device accepted already (from
    /// another revocation, or the one it holds): the first one accepted stays, so a device never
    /// moves back or sideways. `None` when `epoch` is free or is that one.
    fn competing_epoch(&self, epoch: &ferry_format::EpochRef) -> Result<Option<ferry_format::EpochRef>> {
        let held = VaultKeys::load(&self.conn)?.epoch_ref(epoch.number);
        let announced =
            self.announced_epochs()?.get(&epoch.number).map(|tag| ferry_format::EpochRef::tagged(epoch.number, *tag));
        Ok(held.or(announced).filter(|taken| taken != epoch))
    }

    /// Records a skipped object and its reason; the pull goes on with other devices.
    pub(super) fn record_skip(
        &self,
        store: crate::StoreId,
        path: &str,
        reason: &str,
        report: &mut PullReport,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO skipped (store, path, reason, at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (store, path) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms",
            params![store, path, reason, to_sql_u64(now_ms())?],
        )?;
        report.skipped.push((path.to_owned(), reason.to_owned()));
        Ok(())
    }

    pub(super) fn forget_skip(&self, store: crate::StoreId, path: &str) -> Result<()> {
        self.conn.execute("DELETE FROM skipped WHERE store = ?1 AND path = ?2", params![store, path])?;
        Ok(())
    }
}

/// Checks a segment's place in its device's chain and validates its ops.
fn check_segment(
    payload: SegmentPayload,
    seq: u64,
    prev: Option<[u8; 32]>,
    device: DeviceId,
) -> Result<Vec<Op>, OpenError> {
    if payload.seq != seq {
        return Err(OpenError::Malformed(format!("segment says it is number {}, stored as {seq}", payload.seq)));
    }
    if payload.prev != prev {
        return Err(OpenError::Malformed(format!(
            "chain broken: segment {seq} does not follow the segment imported before it (rollback or fork)"
        )));
    }
    let mut last_counter = 0;
    payload
        .ops
        .into_iter()
        .map(|wire| {
            let op = wire.into_op(device).map_err(OpenError::Malformed)?;
            if op.id.counter <= last_counter {
                return Err(OpenError::Malformed(format!("op counters go backwards at {}", op.id)));
            }
            last_counter = op.id.counter;
            Ok(op)
        })
        .collect()
}
