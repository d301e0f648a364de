//! Pure decisions of a pull: what to do about another device's HEAD, given what this device
//! imported from it before. No I/O: `pull.rs` gathers the facts, asks, and carries the answer
//! out; the rules are tested here as a table.

use ferry_format::DeviceId;

/// What a store's HEAD of another device says (verified and opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadSeen {
    /// The last segment it names.
    pub seq: u64,
    /// That segment's hash.
    pub hash: [u8; 32],
    /// Its log generation (raised when the device re-sealed its log after a forget).
    pub generation: u32,
    /// The first segment re-sealed in this generation.
    pub rewritten_from: Option<u64>,
}

impl HeadSeen {
    /// Where a rewritten log is verified again from.
    pub(crate) fn rewrite_start(&self) -> u64 {
        self.rewritten_from.unwrap_or(1).max(1)
    }
}

/// What this device imported from that device before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Imported {
    /// The last segment imported (0: none) and its hash.
    pub seq: u64,
    /// Its hash.
    pub hash: Option<[u8; 32]>,
    /// The log generation imported.
    pub generation: u32,
    /// The kept hash of the segment just before [`HeadSeen::rewrite_start`], if any.
    pub kept_before_rewrite: Option<[u8; 32]>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeadPlan {
    /// Nothing to import; the HEAD is the one imported.
    UpToDate,
    /// Refuse the HEAD (it is recorded as skipped with this reason); the cursor stays.
    Refuse(String),
    /// Import segments `after.0 + 1 ..= to`, each chained to the one before, starting from
    /// `after` (seq, hash). `rewriting`: the log was re-sealed, and ops up to the last counter
    /// already seen may only be removed, never added.
    Fetch {
        /// The segment to chain from.
        after: (u64, Option<[u8; 32]>),
        /// The last segment to import (the HEAD's, or the revocation's limit).
        to: u64,
        /// Whether the log was rewritten.
        rewriting: bool,
    },
}

/// Decides what to do about `head` of `device`, given what was `imported` and, for a revoked
/// (or left-out) device, the last segment its revoker had imported (`revoked_after`).
pub(crate) fn plan_head(
    device: DeviceId,
    head: &HeadSeen,
    imported: &Imported,
    revoked_after: Option<u64>,
) -> HeadPlan {
    if head.generation < imported.generation {
        return HeadPlan::Refuse(format!(
            "rollback: the store's HEAD is of log generation {}, but generation {} was already imported",
            head.generation, imported.generation
        ));
    }
    let rewriting = head.generation > imported.generation;
    if rewriting && revoked_after.is_some() {
        // A revoked device's log is frozen at its revocation: a rewrite would let it re-open
        // segments it wrote before and fill them with new ops.
        return HeadPlan::Refuse(format!(
            "refused: log generation {} of device {device}, which is revoked or not a member; its log cannot be rewritten",
            head.generation
        ));
    }
    let (mut seq, mut hash) = (imported.seq, imported.hash);
    if rewriting {
        // Verify and import again from the first rewritten segment (from the start if the
        // copy before it was not kept).
        let from = head.rewrite_start();
        if from <= seq {
            (seq, hash) = (0, None);
            if from > 1
                && let Some(before) = imported.kept_before_rewrite
            {
                (seq, hash) = (from - 1, Some(before));
            }
        }
    }
    if head.seq < seq {
        return HeadPlan::Refuse(format!(
            "rollback: the store's HEAD names segment {}, but segment {seq} was already imported",
            head.seq
        ));
    }
    if head.seq == seq && Some(head.hash) != hash {
        return HeadPlan::Refuse(format!(
            "fork: the store's HEAD names a different segment {seq} than the one imported"
        ));
    }
    // A revoked device's segments count up to the last one its revoker had imported.
    let to = revoked_after.map_or(head.seq, |last| last.min(head.seq));
    if to <= seq && !rewriting {
        return HeadPlan::UpToDate;
    }
    HeadPlan::Fetch { after: (seq, hash), to, rewriting }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xa; 32];
    const B: [u8; 32] = [0xb; 32];

    fn head(seq: u64, hash: [u8; 32], generation: u32, rewritten_from: Option<u64>) -> HeadSeen {
        HeadSeen { seq, hash, generation, rewritten_from }
    }

    fn imported(seq: u64, hash: Option<[u8; 32]>, generation: u32, kept: Option<[u8; 32]>) -> Imported {
        Imported { seq, hash, generation, kept_before_rewrite: kept }
    }

    #[test]
    fn what_a_pull_does_about_a_head() {
        let device = DeviceId::from_bytes([7; 16]);
        let fetch = |after: (u64, Option<[u8; 32]>), to, rewriting| HeadPlan::Fetch { after, to, rewriting };
        let refused =
            |plan: &HeadPlan, word: &str| matches!(plan, HeadPlan::Refuse(reason) if reason.starts_with(word));
        /// A case: its name, the HEAD, what was imported, the revocation limit, the plan (or
        /// the first word of the refusal).
        type Case = (&'static str, HeadSeen, Imported, Option<u64>, Result<HeadPlan, &'static str>);
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            ("first pull", head(3, A, 0, None), imported(0, None, 0, None), None, Ok(fetch((0, None), 3, false))),
            ("new segments", head(5, A, 0, None), imported(3, Some(B), 0, None), None, Ok(fetch((3, Some(B)), 5, false))),
            ("the same head", head(3, A, 0, None), imported(3, Some(A), 0, None), None, Ok(HeadPlan::UpToDate)),
            ("an older head", head(2, A, 0, None), imported(3, Some(A), 0, None), None, Err("rollback")),
            ("same number, other segment", head(3, B, 0, None), imported(3, Some(A), 0, None), None, Err("fork")),
            ("an older generation", head(9, A, 1, None), imported(3, Some(A), 2, None), None, Err("rollback")),
            // a revoked device counts up to its revoker's last import, and no further
            ("revoked: up to the limit", head(9, A, 0, None), imported(3, Some(B), 0, None), Some(5), Ok(fetch((3, Some(B)), 5, false))),
            ("revoked: at the limit", head(9, A, 0, None), imported(5, Some(B), 0, None), Some(5), Ok(HeadPlan::UpToDate)),
            ("revoked: rewrite refused", head(9, A, 1, Some(2)), imported(5, Some(B), 0, None), Some(5), Err("refused")),
            // a rewrite re-imports from the first rewritten segment, chained to the kept one before it
            ("rewrite with the one before kept", head(5, A, 1, Some(3)), imported(5, Some(B), 0, Some(B)), None, Ok(fetch((2, Some(B)), 5, true))),
            ("rewrite, nothing kept before", head(5, A, 1, Some(3)), imported(5, Some(B), 0, None), None, Ok(fetch((0, None), 5, true))),
            ("rewrite from the start", head(5, A, 1, None), imported(5, Some(B), 0, Some(A)), None, Ok(fetch((0, None), 5, true))),
            ("rewrite beyond what was imported", head(7, A, 1, Some(6)), imported(5, Some(B), 0, None), None, Ok(fetch((5, Some(B)), 7, true))),
        ];
        for (case, head, imported, revoked_after, expected) in table {
            let plan = plan_head(device, &head, &imported, revoked_after);
            match expected {
                Ok(expected) => assert_eq!(plan, expected, "{case}"),
                Err(word) => assert!(refused(&plan, word), "{case}: {plan:?}"),
            }
        }
    }
}
