//! Store check: does the store still hold what this device holds?
//!
//! NAS shares, USB disks, sync-tool folders and buckets with lifecycle rules lose objects. A
//! push notices a lost or rolled-back own HEAD with the one read it already makes; a lost
//! segment in the middle of a log, another device's lost blob or a lost key slot show only in a
//! listing. So every [`AUDIT_EVERY`] (and on demand) a push lists the whole store once and puts
//! back every object this device holds that the store lacks, exactly the bytes their writers
//! sealed. Damaged objects — refused by a pull, or listed with another size than the copy held
//! and not verifying (truncated) — are replaced by the verified copy this device holds. Nothing
//! is ever replaced by an older version of itself: a HEAD is written only where none is, and a
//! copy that verifies is left whatever its size (its writer re-sealed it after a forget).

use super::StoreHandle;
use crate::database::{from_sql_u64, to_sql_u64};
use crate::identity::VaultKeys;
use crate::write::now_ms;
use crate::{Result, Vault};
use ferry_format::objects::paths::{self, StorePath};
use ferry_store::{Created, StoreErrorKind};
use rusqlite::{OptionalExtension, params};
use std::collections::HashSet;

/// How often a push lists the whole store to check it still holds what this device holds.
pub const AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// What a store check found (and a repair put back).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct AuditReport {
    /// Objects the store listed.
    pub listed: u64,
    /// Objects this device holds that the store lacked, by path.
    pub missing: Vec<String>,
    /// Objects the store holds damaged, for which this device holds a good copy, by path: a
    /// pull refused them, or their listed size differs and they do not verify, or (the vault
    /// file) they do not parse.
    pub damaged: Vec<String>,
    /// Objects written back (missing and damaged ones).
    pub restored: u64,
    /// The vault file or a current key slot (this device's, the recovery key's) was missing; a
    /// repair queues them again with every device record and the key history.
    pub keys_missing: bool,
}

impl AuditReport {
    /// Whether the store held everything this device holds.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty() && !self.keys_missing
    }
}

impl Vault {
    /// Lists the store and compares it with what this device holds: what the store lacks, and
    /// which of the objects pulls refused this device holds a good copy of. One listing; nothing
    /// is written (`ferry doctor`, `ferry store check`).
    ///
    /// # Errors
    /// The store is unreachable or refuses ([`crate::Error::Store`]); local failures.
    pub fn check_store_contents(&self, handle: StoreHandle<'_>) -> Result<AuditReport> {
        Ok(self.audit(handle)?.0)
    }

    /// [`Self::check_store_contents`], then puts back what the store lacks (key slots through
    /// the outbox, which the caller flushes; the rest directly, exactly as held) and replaces the
    /// damaged copies. A push does this every [`AUDIT_EVERY`].
    ///
    /// # Errors
    /// The store is unreachable or refuses ([`crate::Error::Store`]); local failures.
    pub fn repair_store(&mut self, handle: StoreHandle<'_>) -> Result<AuditReport> {
        let (mut report, damaged) = self.audit(handle)?;
        if report.keys_missing {
            self.queue_rebuild(handle.id)?;
        }
        let uploaded = self.uploaded_seq(handle.id)?;
        let own_head = paths::head(self.device_id());
        for path in &report.missing {
            let bytes = if *path == own_head { Some(self.seal_own_head(uploaded)?) } else { self.sealed_object(path)? };
            let Some(bytes) = bytes else { continue };
            match handle.store.put_if_absent(path, &bytes) {
                Ok(Created::New) => report.restored += 1,
                Ok(Created::Exists) => {}
                // A hub lets only an object's owner write some paths: the owner brings them.
                Err(err) if err.kind == StoreErrorKind::Denied => {}
                Err(err) => return Err(err.into()),
            }
        }
        for (path, bytes) in damaged {
            match handle.store.put(&path, &bytes) {
                Ok(()) => report.restored += 1,
                Err(err) if err.kind == StoreErrorKind::Denied => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.conn
            .execute("UPDATE stores SET audited_ms = ?1 WHERE id = ?2", params![to_sql_u64(now_ms())?, handle.id])?;
        Ok(report)
    }

    /// The report, and the good copies of damaged objects.
    fn audit(&self, handle: StoreHandle<'_>) -> Result<(AuditReport, Vec<GoodCopy>)> {
        let listing = handle.store.list_sized("")?;
        self.note_store_size(handle.id, listing.len() as u64, listing.iter().filter_map(|l| l.size).sum())?;
        let listed: HashSet<String> = listing.iter().map(|l| l.path.clone()).collect();
        let mut report = AuditReport { listed: listed.len() as u64, ..AuditReport::default() };
        let uploaded = self.uploaded_seq(handle.id)?;
        let me = self.device_id();
        if uploaded == 0 && !listed.contains(paths::VAULT_FILE) {
            return Ok((report, Vec::new())); // not enrolled here yet: the first push does it
        }
        let keys = VaultKeys::load(&self.conn)?;
        let required = [
            paths::VAULT_FILE.to_owned(),
            paths::key_slot(&keys.current(), &me.to_string()),
            paths::key_slot(&keys.current(), "recovery"),
        ];
        report.keys_missing = required.iter().any(|path| !listed.contains(path));
        // What a snapshot in the store stands for was pruned, not lost.
        let manifests: Vec<String> =
            listed.iter().filter(|p| matches!(paths::parse(p), Some(StorePath::Snapshot(..)))).cloned().collect();
        let in_store = self.snapshots_in(handle, &manifests, &mut super::PullReport::default())?;
        let pruned = |path: &str| match paths::parse(path) {
            Some(StorePath::Segment(device, seq)) => in_store.iter().any(|s| s.covers(device) >= seq),
            Some(StorePath::Snapshot(writer, n) | StorePath::SnapshotPart(writer, n, _)) => {
                self.known_snapshots().is_ok_and(|known| {
                    known.iter().any(|held| {
                        (held.writer, held.n) == (writer, n)
                            && in_store.iter().any(|s| (s.writer, s.n) != (writer, n) && s.dominates(held))
                    })
                })
            }
            _ => false,
        };
        report.missing = self
            .sealed_paths("")?
            .into_iter()
            .filter(|path| path != paths::VAULT_FILE && !listed.contains(path) && !pruned(path))
            // Own segments beyond what this store was given are the next push's, not lost.
            .filter(|path| !matches!(paths::parse(path), Some(StorePath::Segment(d, seq)) if d == me && seq > uploaded))
            .filter(|path| !(uploaded == 0 && *path == paths::head(me)))
            .collect();
        // Readers find what a HEAD names: records and blobs, then segments, then HEADs.
        report.missing.sort_by_key(|path| restore_rank(path));
        let mut damaged = self.damaged_copies(handle)?;
        damaged.extend(self.damaged_by_size(handle, &listing, uploaded)?);
        damaged.sort();
        damaged.dedup_by(|a, b| a.0 == b.0);
        // A vault file that does not parse (truncated, half-synced) where this device's own
        // objects are: this device writes it again.
        if listed.contains(paths::VAULT_FILE)
            && matches!(super::enroll::read_vault_file(handle.store), Err(crate::Error::BadStoreObject { .. }))
            && self.holds_own_objects(handle)?
        {
            damaged.push((paths::VAULT_FILE.to_owned(), self.vault_file_bytes()?));
        }
        report.damaged = damaged.iter().map(|(path, _)| path.clone()).collect();
        Ok((report, damaged))
    }

    /// Makes the next push to this store check and repair its contents, whenever it was last
    /// checked (`ferry store check --repair`).
    ///
    /// # Errors
    /// [`crate::Error::UnknownStore`]; database failures.
    pub fn check_store_at_next_push(&self, store: crate::StoreId) -> Result<()> {
        if self.conn.execute("UPDATE stores SET audited_ms = NULL WHERE id = ?1", [store])? == 0 {
            return Err(crate::Error::UnknownStore(store.to_string()));
        }
        Ok(())
    }

    /// Whether the store's last check is older than [`AUDIT_EVERY`] (or it was never checked).
    pub(crate) fn audit_due(&self, store: crate::StoreId) -> Result<bool> {
        let audited: Option<i64> = self
            .conn
            .query_row("SELECT audited_ms FROM stores WHERE id = ?1", [store], |row| row.get(0))
            .optional()?
            .flatten();
        let every = u64::try_from(AUDIT_EVERY.as_millis()).unwrap_or(u64::MAX);
        Ok(match audited {
            None => true,
            Some(at) => now_ms().saturating_sub(from_sql_u64(at)?) >= every,
        })
    }

    fn uploaded_seq(&self, store: crate::StoreId) -> Result<u64> {
        let uploaded: i64 = self
            .conn
            .query_row("SELECT uploaded_seq FROM stores WHERE id = ?1", [store], |row| row.get(0))
            .optional()?
            .ok_or_else(|| crate::Error::UnknownStore(store.to_string()))?;
        from_sql_u64(uploaded)
    }

    /// Immutable objects a pull from this store refused that this device holds (verified, from
    /// another store or a peer) and that differ from the store's copy: paths and the good bytes.
    fn damaged_copies(&self, handle: StoreHandle<'_>) -> Result<Vec<GoodCopy>> {
        let skipped: Vec<String> = {
            let mut stmt = self.conn.prepare("SELECT path FROM skipped WHERE store = ?1 ORDER BY path")?;
            stmt.query_map([handle.id], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let mut damaged = Vec::new();
        for path in skipped {
            // HEADs move; only objects that never change are replaced by a held copy.
            if !matches!(
                paths::parse(&path),
                Some(StorePath::Segment(..) | StorePath::DeviceRecord(_) | StorePath::Blob(_))
            ) {
                continue;
            }
            let Some(held) = self.sealed_object(&path)? else { continue };
            if handle.store.get(&path)?.as_deref() != Some(&held[..]) {
                damaged.push((path, held));
            }
        }
        Ok(damaged)
    }

    /// Objects whose listed size differs from the copy this device holds and whose store copy
    /// does not verify (truncated by a full disk, cut by a sync tool): the good copies. A copy
    /// that verifies is left alone, whatever its size (its writer re-sealed it after a forget).
    fn damaged_by_size(
        &self,
        handle: StoreHandle<'_>,
        listing: &[ferry_store::Listed],
        uploaded: u64,
    ) -> Result<Vec<GoodCopy>> {
        let held = self.sealed_sizes()?;
        let me = self.device_id();
        let registry = super::registry::Registry::load(&self.conn)?;
        let vault_id = VaultKeys::load(&self.conn)?.vault_id;
        let mut damaged = Vec::new();
        for listed in listing {
            let (Some(size), Some(&held_size)) = (listed.size, held.get(&listed.path)) else { continue };
            if size == held_size
                || matches!(paths::parse(&listed.path), Some(StorePath::Segment(d, seq)) if d == me && seq > uploaded)
            {
                continue;
            }
            let Some(stored) = handle.store.get(&listed.path)? else { continue };
            if !registry.signed_in_vault(&stored, vault_id)
                && let Some(good) = self.sealed_object(&listed.path)?
            {
                damaged.push((listed.path.clone(), good));
            }
        }
        Ok(damaged)
    }
}

/// A store path and the verified bytes this device holds for it.
type GoodCopy = (String, Vec<u8>);

/// The order objects are put back in, so a reader never finds a name before what it names.
fn restore_rank(path: &str) -> u8 {
    match paths::parse(path) {
        Some(StorePath::KeyEpoch(_) | StorePath::Revocation(..) | StorePath::DeviceRecord(_)) => 0,
        Some(StorePath::Blob(_)) => 1,
        Some(StorePath::Segment(..) | StorePath::SnapshotPart(..)) => 2,
        Some(StorePath::Head(_) | StorePath::Snapshot(..)) => 3,
        _ => 4,
    }
}
