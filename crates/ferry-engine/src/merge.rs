//! The merge rule: a record's state is a pure, deterministic fold of its ops.
//!
//! The replicated state is the grow-only set of ops, so whatever order ops arrive in, and
//! however often, every device folds the same set into the same state:
//! - the **winner** is the op with the greatest `(hlc, device_id)` (last writer wins); a winning
//!   delete means the record is deleted, and a later put revives it. A device never issues one
//!   hlc twice, but a damaged or hostile peer might: the counter then breaks the tie, so the
//!   order is total and every device still picks the same winner;
//! - the **heads** are the ops that no other op of the record names as a parent. One head is
//!   the normal case; more are concurrent writes (see `docs/CONFLICTS.md`).
//!
//! [`absorb`] is the incremental form used on every write and import; [`fold`] recomputes from
//! scratch (repair). Tests check that both agree for every order of delivery.

use ferry_format::{DeviceId, Hlc, OpId};

/// What the fold needs to know of an op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpMeta {
    pub(crate) id: OpId,
    pub(crate) hlc: Hlc,
    pub(crate) deleted: bool,
    pub(crate) parents: Vec<OpId>,
}

impl OpMeta {
    fn rank(&self) -> (Hlc, DeviceId, u64) {
        (self.hlc, self.id.device, self.id.counter)
    }
}

/// The winning op of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Winner {
    pub(crate) id: OpId,
    pub(crate) hlc: Hlc,
    pub(crate) deleted: bool,
}

/// The folded state of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordState {
    pub(crate) winner: Winner,
    /// Sorted, without duplicates.
    pub(crate) heads: Vec<OpId>,
}

impl Winner {
    fn of(op: &OpMeta) -> Self {
        Self { id: op.id, hlc: op.hlc, deleted: op.deleted }
    }

    fn rank(&self) -> (Hlc, DeviceId, u64) {
        (self.hlc, self.id.device, self.id.counter)
    }
}

/// Folds a record's whole op set (in any order, duplicates allowed); `None` for no ops.
pub(crate) fn fold<'a>(ops: impl IntoIterator<Item = &'a OpMeta> + Clone) -> Option<RecordState> {
    let winner = ops.clone().into_iter().max_by_key(|op| op.rank())?;
    let named: std::collections::HashSet<OpId> =
        ops.clone().into_iter().flat_map(|op| op.parents.iter().copied()).collect();
    let mut heads: Vec<OpId> = ops.into_iter().map(|op| op.id).filter(|id| !named.contains(id)).collect();
    heads.sort_unstable();
    heads.dedup();
    Some(RecordState { winner: Winner::of(winner), heads })
}

/// Adds one op that the record did not have yet to its state.
///
/// `named_by_existing` says whether an op already in the record lists `op` as a parent
/// (possible when ops arrive out of order); then `op` is not a head.
pub(crate) fn absorb(state: Option<RecordState>, op: &OpMeta, named_by_existing: bool) -> RecordState {
    let Some(mut state) = state else {
        return RecordState { winner: Winner::of(op), heads: vec![op.id] };
    };
    if op.rank() > state.winner.rank() {
        state.winner = Winner::of(op);
    }
    state.heads.retain(|head| !op.parents.contains(head));
    if !named_by_existing && let Err(at) = state.heads.binary_search(&op.id) {
        state.heads.insert(at, op.id);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(device: u8, counter: u64) -> OpId {
        OpId { device: DeviceId::from_bytes([device; 16]), counter }
    }

    fn op(device: u8, counter: u64, hlc: u64, parents: &[OpId]) -> OpMeta {
        OpMeta { id: id(device, counter), hlc: Hlc::from_u64(hlc), deleted: false, parents: parents.to_vec() }
    }

    #[test]
    fn later_hlc_wins_and_device_id_breaks_ties() {
        let a = op(1, 1, 100, &[]);
        let b = op(2, 1, 100, &[]);
        let c = op(1, 2, 99, &[]);
        let state = fold([&a, &b, &c]).unwrap();
        assert_eq!(state.winner.id, b.id, "equal hlc: the greater device id wins");
        assert_eq!(state.heads, vec![a.id, c.id, b.id]);
    }

    #[test]
    fn a_write_that_saw_both_heads_merges_them() {
        let a = op(1, 1, 10, &[]);
        let b = op(2, 1, 11, &[]);
        let merged = op(1, 2, 12, &[a.id, b.id]);
        assert_eq!(fold([&a, &b, &merged]).unwrap().heads, vec![merged.id]);
    }

    #[test]
    fn delete_wins_only_when_latest() {
        let put = op(1, 1, 10, &[]);
        let delete = OpMeta { deleted: true, ..op(1, 2, 11, &[put.id]) };
        let revive = op(2, 1, 12, &[delete.id]);
        assert!(fold([&put, &delete]).unwrap().winner.deleted);
        assert!(!fold([&put, &delete, &revive]).unwrap().winner.deleted);
    }

    /// Random histories: ops from 3 devices, each naming a random subset of earlier ops.
    fn history() -> impl Strategy<Value = Vec<OpMeta>> {
        proptest::collection::vec(
            (0u8..3, 0u64..50, any::<bool>(), proptest::collection::vec(any::<prop::sample::Index>(), 0..3)),
            1..25,
        )
        .prop_map(|specs| {
            let mut ops: Vec<OpMeta> = Vec::new();
            let mut counters = [0u64; 3];
            for (device, hlc, deleted, parent_picks) in specs {
                counters[device as usize] += 1;
                let mut parents: Vec<OpId> = if ops.is_empty() {
                    vec![]
                } else {
                    parent_picks.iter().map(|pick| ops[pick.index(ops.len())].id).collect()
                };
                parents.sort_unstable();
                parents.dedup();
                ops.push(OpMeta { deleted, ..op(device, counters[device as usize], hlc, &parents) });
            }
            ops
        })
    }

    proptest! {
        /// Delivering the same op set in any order, with duplicates, gives the state of the fold.
        #[test]
        fn absorb_in_any_order_equals_fold(ops in history(), order in any::<prop::sample::Index>(), duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..5)) {
            let expected = fold(&ops);
            let mut delivery = ops.clone();
            let rotate = order.index(delivery.len());
            delivery.rotate_left(rotate);
            delivery.reverse();
            for pick in duplicates {
                delivery.push(ops[pick.index(ops.len())].clone());
            }
            let mut seen: Vec<OpMeta> = Vec::new();
            let mut state = None;
            for op in &delivery {
                if seen.iter().any(|s| s.id == op.id) {
                    continue; // the op log refuses duplicates before the fold sees them
                }
                let named = seen.iter().any(|s| s.parents.contains(&op.id));
                state = Some(absorb(state, op, named));
                seen.push(op.clone());
            }
            prop_assert_eq!(state, expected);
        }
    }
}
