//! Push: publish queued objects, then own segments, then the HEAD that names the last one.
//!
//! Order matters for readers: a HEAD is written only after every segment it covers, so a
//! reader that sees a HEAD finds its segments. A push killed at any point is finished by the
//! next one: segments already in the store are found with identical bytes and kept.

use super::StoreHandle;
use crate::database::{from_sql_u64, meta_get, to_sql_u64};
use crate::identity::{DeviceKeys, OwnKeys, VaultKeys};
use crate::{Error, Result, Vault, random};
use ferry_format::objects::HeadPayload;
use ferry_format::objects::paths::{self, StorePath};
use ferry_format::seal::ObjectId;
use ferry_format::typed::Sealed;
use ferry_store::{Created, Fetched};
use rusqlite::{OptionalExtension, params};

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PushReport {
    /// Segments sealed from new local ops.
    pub sealed_segments: u64,
    /// Segments written to the store.
    pub uploaded_segments: u64,
    /// Ops in those segments.
    pub uploaded_ops: u64,
    /// Other objects written (vault file, key slots, device records, blob chunks and manifests).
    pub uploaded_objects: u64,
    /// The store's HEAD for this device after the push (0: nothing published yet).
    pub head_seq: u64,
    /// Other devices' objects carried to this store (device records, segments, HEADs).
    pub relayed_objects: u64,
    /// Snapshot objects written (the newest snapshot this device holds, if the store lacked it).
    pub uploaded_snapshot_objects: u64,
    /// Own segments overwritten after a purge (forget).
    pub rewritten_segments: u64,
    /// The store had lost or rolled back this device's HEAD, and it was published again.
    pub republished_head: bool,
    /// Objects at this device's own paths that were not this device's (junk, a sync tool's
    /// leftovers, another vault's), replaced by what this device wrote there.
    pub replaced_strays: Vec<String>,
    /// The store had lost the vault (emptied): this device published again the vault file,
    /// the current key slots of every member and the recovery key, the key history and
    /// revocations, every device record, segment, HEAD and blob it holds.
    pub rebuilt_store: bool,
    /// The store was listed and compared with what this device holds (every
    /// [`super::AUDIT_EVERY`], and after its HEAD was lost): what it lacked and was put back.
    pub audit: Option<super::AuditReport>,
}

impl Vault {
    /// Seals new local ops and publishes everything the store lacks.
    ///
    /// # Errors
    /// The store is unreachable or refuses ([`Error::Store`]); it holds another vault
    /// ([`Error::KeyMismatch`]) or a different object under this device's name
    /// ([`Error::ForeignOwnObject`]); local failures. Whatever was published stays published.
    pub fn push(&mut self, handle: StoreHandle<'_>) -> Result<PushReport> {
        self.ensure_not_revoked()?;
        let mut report = PushReport { sealed_segments: self.seal_pending_ops()?, ..PushReport::default() };
        let uploaded: i64 = self
            .conn
            .query_row("SELECT uploaded_seq FROM stores WHERE id = ?1", [handle.id], |row| row.get(0))
            .optional()?
            .ok_or_else(|| Error::UnknownStore(handle.id.to_string()))?;
        let mut uploaded = from_sql_u64(uploaded)?;
        let last_seq: u64 =
            from_sql_u64(self.conn.query_row("SELECT coalesce(max(seq), 0) FROM own_segments", [], |row| row.get(0))?)?;
        if uploaded > 0 && self.own_head_behind(handle, uploaded)? {
            // The store lost or rolled back this device's HEAD: publish the log again from
            // the start (segments it still holds are found identical and kept).
            report.republished_head = true;
            uploaded = 0;
            // Whatever lost the HEAD may have lost blobs too: offer every blob held again
            // (one create-if-absent each; those still there are kept).
            self.conn.execute("DELETE FROM store_blobs WHERE store = ?1", [handle.id])?;
            // (A damaged vault file is not an emptied store: the check below writes it again.)
            if matches!(super::enroll::read_vault_file(handle.store), Ok(None)) {
                // Emptied (`rm -rf`, a bucket wiped): rebuild everything this device can.
                self.queue_rebuild(handle.id)?;
                report.rebuilt_store = true;
            }
        }
        report.head_seq = uploaded;
        if self.has_anything_for(handle.id, last_seq.saturating_sub(uploaded))? {
            // Before writing anything, make sure the store holds this vault with these keys
            // (the location may have been pointed elsewhere since the last push).
            match self.check_store_vault(handle) {
                // A vault file damaged in the store (truncated by a full disk, half-synced by
                // a sync tool) where this device's own objects are: written again.
                Err(Error::BadStoreObject { path, .. })
                    if path == paths::VAULT_FILE && self.holds_own_objects(handle)? =>
                {
                    handle.store.put(paths::VAULT_FILE, &self.vault_file_bytes()?)?;
                    report.replaced_strays.push(path);
                }
                other => other?,
            }
        }
        // Blobs before the segments whose records may name them.
        report.uploaded_objects = self.flush_outbox(handle)? + self.push_blobs(handle)?;
        // Before segments: a store gets the snapshot that stands for segments whose copies this
        // device dropped.
        self.snapshot_after_rewrite()?;
        report.uploaded_snapshot_objects = self.push_snapshot(handle)?;
        // Then the snapshots a forget outdated go.
        self.delete_queued(handle)?;
        if let Some(from) = self.pending_rewrite(handle.id)? {
            // A purge re-sealed segments this store has: overwrite them, then the HEAD says so.
            report.rewritten_segments = self.overwrite_own_segments(handle, from, uploaded)?;
            if last_seq == uploaded {
                handle.store.put(&paths::head(self.device_id()), &self.seal_own_head(last_seq)?)?;
            }
        }
        if last_seq > uploaded {
            report.head_seq = self.push_own_segments(handle, uploaded, last_seq, &mut report)?;
        }
        self.conn.execute("UPDATE stores SET rewrite_from = NULL WHERE id = ?1", [handle.id])?;
        report.relayed_objects = self.relay(handle)?;
        // A rebuild just wrote everything; otherwise a store that lost the HEAD may have lost
        // more, and any store may lose objects in the middle of a log: list it now and then.
        if !report.rebuilt_store && (report.republished_head || self.audit_due(handle.id)?) {
            let audit = self.repair_store(handle)?;
            if audit.keys_missing {
                // The vault file or a key slot was gone: the rebuild queued them (and forgot
                // which blobs and HEADs the store has, so they are offered again).
                report.uploaded_objects += self.flush_outbox(handle)? + self.push_blobs(handle)?;
                report.relayed_objects += self.relay(handle)?;
            }
            report.audit = Some(audit);
        }
        Ok(report)
    }

    /// Publishes own segments `uploaded + 1 ..= last_seq`, then the HEAD naming the last.
    fn push_own_segments(
        &mut self,
        handle: StoreHandle<'_>,
        mut uploaded: u64,
        last_seq: u64,
        report: &mut PushReport,
    ) -> Result<u64> {
        let device = self.device_id();
        while uploaded < last_seq {
            let seq = uploaded + 1;
            let (bytes, op_count): (Vec<u8>, i64) = self.conn.query_row(
                "SELECT bytes, op_count FROM own_segments WHERE seq = ?1",
                [to_sql_u64(seq)?],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if bytes.is_empty() {
                // Dropped: the snapshot just pushed covers it.
                uploaded = seq;
                continue;
            }
            let path = paths::segment(device, seq);
            if self.put_immutable(handle, &path, &bytes)? {
                report.replaced_strays.push(path);
            }
            report.uploaded_segments += 1;
            report.uploaded_ops += from_sql_u64(op_count)?;
            uploaded = seq;
        }
        let head = self.seal_own_head(last_seq)?;
        handle.store.put(&paths::head(device), &head)?;
        self.conn
            .execute("UPDATE stores SET uploaded_seq = ?1 WHERE id = ?2", params![to_sql_u64(last_seq)?, handle.id])?;
        Ok(last_seq)
    }

    /// Overwrites own segments `from ..= to` in the store with their re-sealed bytes.
    fn overwrite_own_segments(&self, handle: StoreHandle<'_>, from: u64, to: u64) -> Result<u64> {
        let device = self.device_id();
        let mut written = 0;
        for seq in from..=to {
            let bytes: Option<Vec<u8>> = self
                .conn
                .query_row("SELECT bytes FROM own_segments WHERE seq = ?1", [to_sql_u64(seq)?], |row| row.get(0))
                .optional()?;
            if let Some(bytes) = bytes.filter(|bytes| !bytes.is_empty()) {
                handle.store.put(&paths::segment(device, seq), &bytes)?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Seals this device's HEAD naming own segment `last_seq`.
    pub(crate) fn seal_own_head(&self, last_seq: u64) -> Result<Vec<u8>> {
        let hash: Vec<u8> =
            self.conn
                .query_row("SELECT hash FROM own_segments WHERE seq = ?1", [to_sql_u64(last_seq)?], |row| row.get(0))?;
        let hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| Error::Corrupt("own segment hash".into()))?;
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        keys.sealer(self.device_id(), &device_keys)
            .seal(
                ObjectId::HEAD,
                random::bytes()?,
                &HeadPayload {
                    seq: last_seq,
                    hash,
                    generation: meta_get(&self.conn, "log_generation")?,
                    rewritten_from: match from_sql_u64(meta_get(&self.conn, "rewritten_from")?)? {
                        0 => None,
                        from => Some(from),
                    },
                },
            )
            .map_err(|e| Error::Encode(e.to_string()))
    }

    /// Publishes other devices' objects this device holds and the store lacks, exactly as their
    /// writers sealed them: device records, segments, and their latest HEAD. This is how data
    /// crosses stores (a device syncing with two stores carries each one's data to the other).
    /// A HEAD is written only if the store's copy did not change since this device last read it,
    /// so a newer HEAD is never replaced by an older one.
    fn relay(&mut self, handle: StoreHandle<'_>) -> Result<u64> {
        let behind: Vec<(Vec<u8>, i64, i64, Option<String>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT c.device, c.seq, coalesce(h.seq, 0), h.etag FROM cursors c
                 LEFT JOIN store_heads h ON h.store = ?1 AND h.device = c.device
                 WHERE c.seq > coalesce(h.seq, 0) AND c.device != ?2",
            )?;
            stmt.query_map(params![handle.id, &self.device_id().as_bytes()[..]], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut relayed = 0;
        let snapshot = self.snapshot_in_store(handle.id)?;
        for (device_bytes, held, in_store, etag) in behind {
            let Some(device) = ferry_format::DeviceId::from_slice(&device_bytes) else { continue };
            let (held, in_store) = (from_sql_u64(held)?, from_sql_u64(in_store)?);
            // What a snapshot the store holds covers need not be carried there.
            let in_store = in_store.max(snapshot.as_ref().map_or(0, |snapshot| snapshot.covers(device)));
            let record: Option<Vec<u8>> = self
                .conn
                .query_row("SELECT record FROM devices WHERE device_id = ?1", [&device_bytes], |row| row.get(0))
                .optional()?
                .flatten();
            let Some(record) = record else { continue };
            if handle.store.put_if_absent(&paths::device_record(device), &record)? == Created::New {
                relayed += 1;
            }
            let mut complete = true;
            for seq in in_store + 1..=held {
                let bytes: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT bytes FROM imported_segments WHERE device = ?1 AND seq = ?2 AND length(bytes) > 0",
                        params![&device_bytes, to_sql_u64(seq)?],
                        |row| row.get(0),
                    )
                    .optional()?;
                let Some(bytes) = bytes else {
                    complete = false;
                    break;
                };
                if handle.store.put_if_absent(&paths::segment(device, seq), &bytes)? == Created::New {
                    relayed += 1;
                }
            }
            let head: Option<(i64, Vec<u8>)> = self
                .conn
                .query_row("SELECT seq, bytes FROM device_heads WHERE device = ?1", [&device_bytes], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((head_seq, head_bytes)) = head else { continue };
            if !complete || from_sql_u64(head_seq)? != held {
                continue;
            }
            // Only over the copy this device last saw (or none): never replace a newer HEAD.
            let head_path = paths::head(device);
            let untouched = match etag.as_deref() {
                Some(etag) if !etag.is_empty() => {
                    matches!(handle.store.get_if_changed(&head_path, Some(etag))?, Fetched::Unchanged)
                }
                _ => matches!(handle.store.get_if_changed(&head_path, None)?, Fetched::Missing),
            };
            if !untouched {
                continue; // the owner (or another device) wrote it since: the next pull learns it
            }
            match handle.store.put(&head_path, &head_bytes) {
                Ok(()) => relayed += 1,
                // A hub lets only a log's owner replace its HEAD: the owner brings it there.
                Err(err) if err.kind == ferry_store::StoreErrorKind::Denied => continue,
                Err(err) => return Err(err.into()),
            }
            self.conn.execute(
                "INSERT INTO store_heads (store, device, etag, seq) VALUES (?1, ?2, '', ?3)
                 ON CONFLICT (store, device) DO UPDATE SET etag = '', seq = excluded.seq",
                params![handle.id, &device_bytes, to_sql_u64(held)?],
            )?;
        }
        Ok(relayed)
    }

    /// Publishes the objects queued for this store (enrollment); returns how many.
    fn flush_outbox(&mut self, handle: StoreHandle<'_>) -> Result<u64> {
        let queued: Vec<(String, Vec<u8>)> = {
            let mut stmt = self.conn.prepare("SELECT path, bytes FROM store_outbox WHERE store = ?1 ORDER BY path")?;
            stmt.query_map([handle.id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?
        };
        let mut published = 0;
        // Key slots first (a device that sees a record or revocation finds its key), the vault
        // file last (a store shows a vault only once its slots and records exist).
        let rank = |path: &str| match path {
            _ if path.starts_with("keys/") => 0,
            paths::VAULT_FILE => 2,
            _ => 1,
        };
        let mut queued = queued;
        queued.sort_by_key(|(path, _)| rank(path));
        for (path, bytes) in queued {
            if path.ends_with("/passphrase.age") && path.starts_with("keys/") {
                // The one key object a person replaces (`ferry key passphrase`).
                handle.store.put(&path, &bytes)?;
                published += 1;
            } else if handle.store.put_if_absent(&path, &bytes)? == Created::New {
                published += 1;
            } else if is_rotation_object(&path) && handle.store.get(&path)?.as_deref() != Some(&bytes[..]) {
                // Read back: a revocation or key epoch object under our name that is not ours
                // means the rotation did not reach this store. Say so; keep it queued.
                return Err(Error::RotationObjectTaken { location: handle.store.location(), path });
            }
            self.conn.execute("DELETE FROM store_outbox WHERE store = ?1 AND path = ?2", params![handle.id, path])?;
        }
        Ok(published)
    }

    /// Whether anything waits for this store: queued objects, blobs or segments.
    fn has_anything_for(&self, store: crate::StoreId, last_seq: u64) -> Result<bool> {
        let waiting: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM store_outbox WHERE store = ?1)
                 OR EXISTS (SELECT 1 FROM blob_objects b WHERE NOT EXISTS
                              (SELECT 1 FROM store_blobs s WHERE s.store = ?1 AND s.id = b.id))",
            [store],
            |row| row.get(0),
        )?;
        Ok(waiting || last_seq > 0)
    }

    /// Refuses a store that holds another vault, or this vault with other keys.
    fn check_store_vault(&self, handle: StoreHandle<'_>) -> Result<()> {
        self.check_store_keys(handle.store).map(|_| ())
    }

    /// Whether the store holds an object of this vault signed by one of its devices (a
    /// segment, a HEAD, a device record, a snapshot: after a prune few segments are left): proof that it is this vault's store whatever its
    /// vault file says. Reads at most 32 of each kind; stops at the first.
    pub(super) fn holds_own_objects(&self, handle: StoreHandle<'_>) -> Result<bool> {
        let registry = super::registry::Registry::load(&self.conn)?;
        let vault_id = VaultKeys::load(&self.conn)?.vault_id;
        for prefix in ["log/", paths::DEVICES, paths::SNAPSHOTS] {
            for path in handle.store.list(prefix)?.into_iter().filter(|p| paths::parse(p).is_some()).take(32) {
                if handle.store.get(&path)?.is_some_and(|bytes| registry.signed_in_vault(&bytes, vault_id)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Whether the store's copy of this device's HEAD is missing, unreadable or names an
    /// earlier segment than the `uploaded` one this device published there (a store restored
    /// from a backup, a sync tool's conflict, a hostile writer). One read per push.
    fn own_head_behind(&self, handle: StoreHandle<'_>, uploaded: u64) -> Result<bool> {
        let Some(bytes) = handle.store.get(&paths::head(self.device_id()))? else { return Ok(true) };
        let keys = VaultKeys::load(&self.conn)?;
        let own_key = DeviceKeys::load(&self.conn)?.signing_key().verifying_key();
        let own = OwnKeys { key: own_key, vault: &keys };
        let head =
            Sealed::<HeadPayload>::new(&bytes).open(keys.named(Some(self.device_id()), Some(ObjectId::HEAD)), &own);
        Ok(head.map_or(true, |head| head.payload.seq < uploaded))
    }

    /// Writes an own immutable object; one already there must be byte-identical. A different
    /// object signed with this device's key means another copy of this device writes here (a
    /// copied home directory): refused. Anything else at this device's own path (junk, a
    /// foreign or damaged object) is a stray: it is replaced, and `true` says so.
    fn put_immutable(&self, handle: StoreHandle<'_>, path: &str, bytes: &[u8]) -> Result<bool> {
        if handle.store.put_if_absent(path, bytes)? == Created::New {
            return Ok(false);
        }
        let Some(existing) = handle.store.get(path)? else {
            handle.store.put(path, bytes)?; // deleted meanwhile
            return Ok(false);
        };
        if existing == bytes {
            return Ok(false);
        }
        let own_key = DeviceKeys::load(&self.conn)?.signing_key().verifying_key();
        let ours = ferry_format::seal::Header::parse(&existing)
            .is_ok_and(|header| header.device_id == self.device_id())
            && ferry_format::seal::verify_signature(&existing, &own_key).is_ok();
        if ours && !self.rewrote(path)? {
            return Err(Error::ForeignOwnObject { location: handle.store.location(), path: path.to_owned() });
        }
        handle.store.put(path, bytes)?;
        Ok(true)
    }
}

impl Vault {
    /// Whether `path` is one of this device's segments that it re-sealed after a forget: an
    /// earlier version signed with its own key is then its own (put back by a device that
    /// kept a copy from before the rewrite), not another copy of this device.
    fn rewrote(&self, path: &str) -> Result<bool> {
        let Some(StorePath::Segment(device, seq)) = paths::parse(path) else { return Ok(false) };
        let generation: u32 = meta_get(&self.conn, "log_generation")?;
        let from = from_sql_u64(meta_get(&self.conn, "rewritten_from")?)?;
        Ok(device == self.device_id() && generation > 0 && seq >= from.max(1))
    }
}

/// A revocation or a key epoch object: the names a rotation must hold for other devices to
/// accept it.
fn is_rotation_object(path: &str) -> bool {
    matches!(paths::parse(path), Some(paths::StorePath::KeyEpoch(_) | paths::StorePath::Revocation(..)))
}
