//! Prune: deleting the store objects that a snapshot stands for, lock-free and in two phases.
//!
//! A snapshot is the mark: once written, every device can see which segments it covers. The
//! objects it makes unnecessary (segments at or below its cut, older snapshots it covers, parts
//! of snapshots never finished) are deleted only once the snapshot is older than the grace
//! period, by its writer's clock and by the time this device first saw it, so a device that
//! was reading those objects when the snapshot appeared has long finished. A reader that meets
//! a deleted segment anyway loads the snapshot instead (see `pull`). Nothing else is ever
//! deleted: HEADs, device records, keys and blobs stay, and the newest snapshot past the grace
//! period, and every newer one, are always kept, so each deleted object is covered by a kept
//! snapshot.

use super::StoreHandle;
use super::pull::PullReport;
use super::snapshot::KnownSnapshot;
use crate::write::now_ms;
use crate::{Result, Vault};
use ferry_format::objects::paths::{self, StorePath};
use ferry_store::{Listed, StoreErrorKind};
use std::collections::{HashMap, HashSet};

/// What pruning one store did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StorePruned {
    /// Objects and bytes in the store before.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects deleted (or that would be).
    pub deleted_objects: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Objects a snapshot already stands for that wait for its grace period.
    pub waiting_objects: u64,
    /// Their bytes.
    pub waiting_bytes: u64,
    /// When the waiting ones may go (ms since the Unix epoch).
    pub waiting_until_ms: Option<u64>,
    /// The snapshot the deletions rest on (its manifest's path).
    pub snapshot: Option<String>,
    /// Objects the store refused to delete (a hub lets a device delete only its own log's
    /// segments and snapshots: their owners prune the others), and the first reason.
    pub refused_objects: u64,
    /// The first refusal's reason.
    pub refused: Option<String>,
}

impl Vault {
    /// Deletes from the store what the newest snapshot past `grace_ms` makes unnecessary (see
    /// the module docs); `dry_run` only counts.
    ///
    /// # Errors
    /// The store is unreachable; local failures. A store that refuses deletes is reported in
    /// [`StorePruned::refused`].
    pub fn prune_store(&mut self, handle: StoreHandle<'_>, grace_ms: u64, dry_run: bool) -> Result<StorePruned> {
        let listed = handle.store.list_sized("")?;
        let sizes: HashMap<&str, u64> =
            listed.iter().map(|l: &Listed| (l.path.as_str(), l.size.unwrap_or(0))).collect();
        let mut report = StorePruned {
            objects: listed.len() as u64,
            bytes: listed.iter().map(|l| l.size.unwrap_or(0)).sum(),
            ..StorePruned::default()
        };
        self.note_store_size(handle.id, report.objects, report.bytes)?;
        let manifests: Vec<String> = listed
            .iter()
            .filter(|l| matches!(paths::parse(&l.path), Some(StorePath::Snapshot(..))))
            .map(|l| l.path.clone())
            .collect();
        let mut skipped = PullReport::default();
        // Every accepted snapshot counts for what it makes unnecessary (an incomplete older one
        // goes too); only a complete one can be the base.
        let snapshots: Vec<KnownSnapshot> = self.snapshots_in(handle, &manifests, &mut skipped)?;
        let now = now_ms();
        let past_grace = |s: &KnownSnapshot| {
            s.created_ms.saturating_add(grace_ms) <= now && s.seen_ms.saturating_add(grace_ms) <= now
        };
        // Newest first: the first past its grace period is the base; the newest of all says
        // what will go once its grace period is over.
        let base = snapshots.iter().find(|s| complete(s, &sizes) && past_grace(s));
        if let Some(newest) = snapshots.iter().find(|s| complete(s, &sizes)) {
            let waiting: Vec<&str> = unnecessary(&listed, newest, &snapshots)
                .into_iter()
                .filter(|path| base.is_none_or(|base| !unnecessary(&listed, base, &snapshots).contains(path)))
                .collect();
            report.waiting_objects = waiting.len() as u64;
            report.waiting_bytes = waiting.iter().filter_map(|path| sizes.get(path)).sum();
            if !waiting.is_empty() {
                report.waiting_until_ms = Some(newest.created_ms.max(newest.seen_ms).saturating_add(grace_ms));
            }
        }
        let Some(base) = base else { return Ok(report) };
        report.snapshot = Some(base.path());
        let mut doomed = unnecessary(&listed, base, &snapshots);
        // Manifests before their parts (a reader never finds a manifest without its parts),
        // snapshots before segments.
        doomed.sort_by_key(|path| match paths::parse(path) {
            Some(StorePath::Snapshot(..)) => 0,
            Some(StorePath::SnapshotPart(..)) => 1,
            _ => 2,
        });
        for path in doomed {
            if !dry_run {
                match handle.store.delete(path) {
                    Ok(()) => {}
                    Err(err) if err.kind == StoreErrorKind::Denied => {
                        report.refused_objects += 1;
                        report.refused.get_or_insert_with(|| err.to_string());
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            report.deleted_objects += 1;
            report.deleted_bytes += sizes.get(path).copied().unwrap_or(0);
        }
        if !dry_run {
            self.forget_pruned_snapshots(handle.id, base, &snapshots)?;
            let left = report.objects.saturating_sub(report.deleted_objects);
            self.note_store_size(handle.id, left, report.bytes.saturating_sub(report.deleted_bytes))?;
        }
        Ok(report)
    }

    /// After a prune: the store no longer holds the snapshots the base covered.
    fn forget_pruned_snapshots(
        &self,
        store: crate::StoreId,
        base: &KnownSnapshot,
        snapshots: &[KnownSnapshot],
    ) -> Result<()> {
        for old in snapshots.iter().filter(|old| superseded_by(old, base)) {
            self.conn.execute(
                "DELETE FROM store_snapshots WHERE store = ?1 AND writer = ?2 AND n = ?3",
                rusqlite::params![store, &old.writer.as_bytes()[..], crate::database::to_sql_u64(old.n)?],
            )?;
        }
        Ok(())
    }
}

/// Whether every part of a snapshot is listed.
fn complete(snapshot: &KnownSnapshot, sizes: &HashMap<&str, u64>) -> bool {
    (0..snapshot.parts).all(|part| {
        u32::try_from(part)
            .is_ok_and(|part| sizes.contains_key(paths::snapshot_part(snapshot.writer, snapshot.n, part).as_str()))
    })
}

/// Whether `old` may go once `base` stands: an older snapshot that covers nothing more.
fn superseded_by(old: &KnownSnapshot, base: &KnownSnapshot) -> bool {
    (old.writer, old.n) != (base.writer, base.n) && old.created_ms <= base.created_ms && base.dominates(old)
}

/// The listed objects that `base` makes unnecessary: segments it covers, older snapshots it
/// covers (manifest and parts), and parts of a writer's snapshots that never got a manifest
/// while a later one of the same writer did.
fn unnecessary<'a>(listed: &'a [Listed], base: &KnownSnapshot, snapshots: &[KnownSnapshot]) -> Vec<&'a str> {
    let old: HashSet<(ferry_format::DeviceId, u64)> =
        snapshots.iter().filter(|old| superseded_by(old, base)).map(|old| (old.writer, old.n)).collect();
    let manifests: HashSet<(ferry_format::DeviceId, u64)> = listed
        .iter()
        .filter_map(|l| match paths::parse(&l.path) {
            Some(StorePath::Snapshot(writer, n)) => Some((writer, n)),
            _ => None,
        })
        .collect();
    let newest_of = |writer| manifests.iter().filter(|(w, _)| *w == writer).map(|(_, n)| *n).max();
    listed
        .iter()
        .filter(|l| match paths::parse(&l.path) {
            Some(StorePath::Segment(device, seq)) => seq <= base.covers(device),
            Some(StorePath::Snapshot(writer, n)) => old.contains(&(writer, n)),
            Some(StorePath::SnapshotPart(writer, n, _)) => {
                old.contains(&(writer, n))
                    || (!manifests.contains(&(writer, n)) && newest_of(writer).is_some_and(|newest| newest > n))
            }
            _ => false,
        })
        .map(|l| l.path.as_str())
        .collect()
}
