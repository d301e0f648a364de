//! Importing verified ops: insert into the log, fold into the derived state, absorb clocks.

use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::forget::Forgets;
use crate::merge::{self};
use crate::oplog::{insert_op, op_meta, record_state};
use crate::policy::{Policies, refold_collection, store_state};
use crate::{Change, Result};
use ferry_format::{Hlc, HlcClock, Op, OpId, OpKind};
use rusqlite::Connection;

/// What importing a batch changed.
#[derive(Default)]
pub(crate) struct Imported {
    /// Ops new to this device.
    pub(crate) new_ops: u64,
    /// Changes to announce to watchers.
    pub(crate) changes: Vec<Change>,
    /// A forget was applied or a forgotten op refused: copies must be purged.
    pub(crate) forgot: bool,
    /// The furthest an op's clock was ahead of this device's wall clock beyond
    /// [`MAX_CLOCK_AHEAD_MS`], in ms: its clock was imported with it but not adopted.
    pub(crate) clock_held_back_ms: Option<u64>,
}

/// How far ahead of the wall clock an imported op's clock may pull this device's clock. Beyond
/// it the op is imported (every device must hold the same ops) but the local clock does not
/// follow, so one device with a wrong clock (or a hostile one) cannot drag every device's
/// writes years into the future.
pub(crate) const MAX_CLOCK_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;

/// Absorbs a remote clock unless it is too far ahead of `now_ms`; returns how far ahead it was
/// when it was held back.
fn observe_bounded(clock: &mut HlcClock, hlc: Hlc, now_ms: u64) -> Option<u64> {
    let ahead = hlc.wall_ms().saturating_sub(now_ms);
    if ahead > MAX_CLOCK_AHEAD_MS {
        return Some(ahead);
    }
    clock.observe(hlc);
    None
}

/// Imports ops (already verified) inside the caller's transaction. Idempotent: ops already in
/// the log are skipped, so a batch may be delivered any number of times.
pub(crate) fn import_ops(conn: &Connection, ops: &[Op]) -> Result<Imported> {
    let mut clock = HlcClock::resume(Hlc::from_u64(from_sql_u64(meta_get(conn, "hlc")?)?));
    let mut auto_resolved: i64 = meta_get(conn, "auto_resolved")?;
    let mut imported = Imported::default();
    let now = crate::write::now_ms();
    let mut held_back: Option<u64> = None;
    let mut observe = |clock: &mut HlcClock, hlc: Hlc| {
        if let Some(ahead) = observe_bounded(clock, hlc, now) {
            held_back = held_back.max(Some(ahead));
        }
    };
    // Pass 0: forgets first, so that what they select is not imported by this very batch.
    for op in ops {
        if let OpKind::Forget(forget) = &op.kind {
            observe(&mut clock, op.hlc);
            if insert_op(conn, op)? {
                imported.new_ops += 1;
                let (_, changed) = crate::forget::apply(conn, op, forget)?;
                imported.forgot = true;
                imported.changes.extend(changed.into_iter().map(|(collection, key)| Change {
                    collection,
                    key,
                    op: op.id,
                    deleted: true,
                }));
            }
        }
    }
    // Pass 1: append the new ops to the log, parents before children (by clock), unless a
    // forget selects them.
    let forgets = Forgets::load(conn)?;
    let mut sorted: Vec<&Op> = ops.iter().filter(|op| !matches!(op.kind, OpKind::Forget(_))).collect();
    sorted.sort_by_key(|op| (op.hlc, op.id.device, op.id.counter));
    let mut new_ops: Vec<&Op> = Vec::new();
    for op in sorted {
        observe(&mut clock, op.hlc);
        if forgets.drops(conn, op)? {
            conn.prepare_cached("INSERT INTO forgotten_ops (device, counter) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
                .execute(rusqlite::params![&op.id.device.as_bytes()[..], to_sql_u64(op.id.counter)?])?;
            imported.forgot = true;
            continue;
        }
        if insert_op(conn, op)? {
            new_ops.push(op);
        }
    }
    // Pass 2: fold them into the derived state in key order, so each B-tree page of `records`
    // is visited once per batch rather than at random. The fold is order-independent, and
    // "named by an existing op" sees every op of the batch already, which is what the final
    // state needs.
    new_ops.sort_by(|a, b| (a.collection.as_str(), a.key.as_str()).cmp(&(b.collection.as_str(), b.key.as_str())));
    let mut policies = Policies::default();
    let mut changed_policies = std::collections::BTreeSet::new();
    for op in new_ops {
        imported.new_ops += 1;
        let (collection, key) = (op.collection.as_str(), op.key.as_str());
        let current = record_state(conn, collection, key)?;
        let heads_before = current.as_ref().map_or(0, |state| state.heads.len());
        let named = named_by_existing(conn, collection, key, op.id)?;
        let state = merge::absorb(current, &op_meta(op), named);
        if heads_before == 1 && state.heads.len() > 1 {
            auto_resolved += 1; // two writes that did not see each other, merged by the policy
            conn.prepare_cached(
                "INSERT INTO collection_stats (collection, concurrent) VALUES (?1, 1)
                 ON CONFLICT (collection) DO UPDATE SET concurrent = concurrent + 1",
            )?
            .execute([collection])?;
        }
        let (state, changed_policy) = store_state(conn, &mut policies, collection, key, state)?;
        changed_policies.extend(changed_policy);
        imported.changes.push(Change {
            collection: collection.to_owned(),
            key: key.to_owned(),
            op: state.winner.id,
            deleted: state.winner.deleted,
        });
    }
    for collection in changed_policies {
        refold_collection(conn, &collection)?;
    }
    imported.clock_held_back_ms = held_back;
    meta_set(conn, "hlc", to_sql_u64(clock.last().to_u64())?)?;
    meta_set(conn, "auto_resolved", auto_resolved)?;
    Ok(imported)
}

/// Whether an op of the record already names `id` as a parent (it arrived after its child).
fn named_by_existing(conn: &Connection, collection: &str, key: &str, id: OpId) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT parents FROM ops WHERE collection = ?1 AND key = ?2 AND kind != 3")?;
    let mut rows = stmt.query([collection, key])?;
    let needle = id.to_bytes();
    while let Some(row) = rows.next()? {
        let parents: Vec<u8> = row.get(0)?;
        if parents.chunks_exact(OpId::ENCODED_LEN).any(|parent| parent == needle) {
            return Ok(true);
        }
    }
    Ok(false)
}
