//! Per-collection merge policies: which value a record shows when writes were concurrent.
//!
//! A policy only matters for a record with more than one head (writes that did not see each
//! other); with one head every policy shows that head. Policies are records themselves, in the
//! reserved collection `_ferry` under `policy/<collection>`, so they replicate like data and
//! every device applies the same rule; when one changes, the records of its collection that
//! have several heads are folded again. See `docs/CONFLICTS.md`.
//!
//! - `lww`: the op with the greatest `(hlc, device, counter)` (the default).
//! - `fields`: like `lww`, then every top-level JSON field that another head changed (relative
//!   to its parents) and no later head changed is taken from that head: a title edited on one
//!   device and a body on another keeps both.
//! - `priority`: among the heads, the device listed first wins; then `lww`.
//! - `manual`: shows the `lww` pick and flags the record as a conflict until a write that saw
//!   every head resolves it.

use crate::database::from_sql_u64;
use crate::merge::{RecordState, Winner};
use crate::{Error, Result};
use ferry_format::{DeviceId, Hlc, OpId};
use rusqlite::{Connection, OptionalExtension, params};

/// The reserved collection that holds policies.
pub(crate) const SETTINGS_COLLECTION: &str = "_ferry";

/// The key of a collection's policy in [`SETTINGS_COLLECTION`].
pub(crate) fn policy_key(collection: &str) -> String {
    format!("policy/{collection}")
}

/// The current JSON text of the setting `key` in [`SETTINGS_COLLECTION`] (`None`: never set,
/// or deleted).
pub(crate) fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    let value: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT o.value FROM records r JOIN ops o ON o.device = r.winner_device AND o.counter = r.winner_counter
             WHERE r.collection = ?1 AND r.key = ?2 AND NOT r.deleted",
        )?
        .query_row(params![SETTINGS_COLLECTION, key], |row| row.get(0))
        .optional()?;
    Ok(value.flatten())
}

/// A collection's merge policy.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum Policy {
    /// Last writer wins (the default).
    #[default]
    Lww,
    /// Merge top-level JSON fields of concurrent writes.
    Fields,
    /// The first device of `order` wins among concurrent writes, then last writer.
    Priority {
        /// Device ids, the most trusted first.
        order: Vec<String>,
    },
    /// Concurrent writes are flagged until a person resolves them.
    Manual,
}

impl Policy {
    /// Its name: `lww`, `fields`, `priority` or `manual`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lww => "lww",
            Self::Fields => "fields",
            Self::Priority { .. } => "priority",
            Self::Manual => "manual",
        }
    }
}

/// Reads a collection's policy from `table` (`records`, or a table being rebuilt). A policy
/// record this build cannot read counts as `lww`, the rule every device can apply.
pub(crate) fn policy_of(conn: &Connection, table: &str, collection: &str) -> Result<Policy> {
    let value: Option<Option<String>> = conn
        .prepare_cached(&format!(
            "SELECT o.value FROM {table} r JOIN ops o ON o.device = r.winner_device AND o.counter = r.winner_counter
             WHERE r.collection = ?1 AND r.key = ?2 AND NOT r.deleted"
        ))?
        .query_row(params![SETTINGS_COLLECTION, policy_key(collection)], |row| row.get(0))
        .optional()?;
    Ok(value.flatten().and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default())
}

/// What the policy needs of a head.
struct Head {
    id: OpId,
    hlc: Hlc,
    /// The value's text as its writer made it (`None`: a delete).
    value: Option<String>,
    parents: Vec<OpId>,
}

fn load_head(conn: &Connection, id: OpId) -> Result<Option<Head>> {
    let row: Option<(i64, Option<String>, Vec<u8>)> = conn
        .prepare_cached("SELECT hlc, value, parents FROM ops WHERE device = ?1 AND counter = ?2")?
        .query_row(params![&id.device.as_bytes()[..], crate::database::to_sql_u64(id.counter)?], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((hlc, value, parents)) = row else { return Ok(None) };
    Ok(Some(Head {
        id,
        hlc: Hlc::from_u64(from_sql_u64(hlc)?),
        value,
        parents: OpId::decode_list(&parents).ok_or_else(|| Error::Corrupt(format!("op {id} has malformed parents")))?,
    }))
}

/// Applies the policy to a record folded by last-writer-wins: returns the state to store and,
/// for `fields`, the merged value when it differs from the winner's.
pub(crate) fn apply(conn: &Connection, policy: &Policy, state: RecordState) -> Result<(RecordState, Option<String>)> {
    if state.heads.len() <= 1 {
        // One head: it is the winner under `priority` (which chooses among heads). Under the
        // other policies the winner is the greatest op, which is the head unless a device broke
        // the clock's causality; either way the state depends only on the op set.
        if let (Policy::Priority { .. }, [head]) = (policy, state.heads.as_slice())
            && state.winner.id != *head
            && let Some(loaded) = load_head(conn, *head)?
        {
            let winner = Winner { id: loaded.id, hlc: loaded.hlc, deleted: loaded.value.is_none() };
            return Ok((RecordState { winner, heads: state.heads }, None));
        }
        return Ok((state, None));
    }
    match policy {
        Policy::Lww | Policy::Manual => Ok((state, None)),
        Policy::Priority { order } => {
            let rank = |device: DeviceId| {
                let text = device.to_string();
                order.iter().position(|d| *d == text).map_or(0, |i| order.len() - i)
            };
            let mut best: Option<Head> = None;
            for id in &state.heads {
                let Some(head) = load_head(conn, *id)? else { continue };
                let key = (rank(head.id.device), head.hlc, head.id.device, head.id.counter);
                if best.as_ref().is_none_or(|b| key > (rank(b.id.device), b.hlc, b.id.device, b.id.counter)) {
                    best = Some(head);
                }
            }
            let Some(best) = best else { return Ok((state, None)) };
            let winner = Winner { id: best.id, hlc: best.hlc, deleted: best.value.is_none() };
            Ok((RecordState { winner, heads: state.heads }, None))
        }
        Policy::Fields => {
            let merged = merge_fields(conn, &state)?;
            Ok((state, merged))
        }
    }
}

/// The `fields` merge: the winner's object, plus each field that a lower-ranked head changed
/// and no higher-ranked head did. `None` when the result is the winner's value as it is.
fn merge_fields(conn: &Connection, state: &RecordState) -> Result<Option<String>> {
    if state.winner.deleted {
        return Ok(None);
    }
    let mut heads = Vec::new();
    for id in &state.heads {
        if let Some(head) = load_head(conn, *id)? {
            heads.push(head);
        }
    }
    // Highest rank first: the winner, then the others by (hlc, device, counter) descending.
    heads.sort_by_key(|head| std::cmp::Reverse((head.hlc, head.id.device, head.id.counter)));
    let Some(base) = heads.first().and_then(|head| fields_of(head.value.as_deref())) else { return Ok(None) };
    let mut merged = base.clone();
    let mut claimed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for head in &heads {
        let Some(fields) = fields_of(head.value.as_deref()) else { continue };
        let parents: Vec<Fields> = head
            .parents
            .iter()
            .map(|parent| Ok(load_head(conn, *parent)?.and_then(|p| fields_of(p.value.as_deref())).unwrap_or_default()))
            .collect::<Result<_>>()?;
        let changed = |name: &str| {
            let now = fields.get(name).map(|raw| raw.get());
            parents.is_empty() || parents.iter().all(|parent| parent.get(name).map(|raw| raw.get()) != now)
        };
        let names: std::collections::BTreeSet<String> =
            fields.keys().chain(parents.iter().flat_map(|p| p.keys())).cloned().collect();
        for name in names {
            if !changed(&name) || !claimed.insert(name.clone()) {
                continue; // inherited, or a higher-ranked head changed it
            }
            match fields.get(&name) {
                Some(value) => merged.insert(name, value.clone()),
                None => merged.remove(&name),
            };
        }
    }
    let same = |a: &Fields, b: &Fields| a.iter().map(|(k, v)| (k, v.get())).eq(b.iter().map(|(k, v)| (k, v.get())));
    if same(&merged, &base) {
        return Ok(None);
    }
    // Fields keep their writers' bytes; names are sorted and escaped as canonical JSON.
    let text = serde_json::to_string(&merged).map_err(|e| Error::Corrupt(format!("merged value: {e}")))?;
    Ok(Some(text))
}

/// A JSON object's fields, each as its writer's text.
type Fields = std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>;

/// The fields of a value that is a JSON object; `None` for a delete or any other value.
fn fields_of(value: Option<&str>) -> Option<Fields> {
    serde_json::from_str(value?).ok()
}

/// Policies read during one transaction.
#[derive(Default)]
pub(crate) struct Policies(std::collections::HashMap<String, Policy>);

impl Policies {
    fn get(&mut self, conn: &Connection, collection: &str) -> Result<&Policy> {
        if !self.0.contains_key(collection) {
            let policy = policy_of(conn, "records", collection)?;
            self.0.insert(collection.to_owned(), policy);
        }
        self.0.get(collection).ok_or_else(|| Error::Corrupt("policy cache".into()))
    }
}

/// Stores a record's state after an op was absorbed, under its collection's policy. Returns
/// the state stored, and whether the op changed a policy (then [`refold_collection`] must run
/// for the collection it names, after the batch).
pub(crate) fn store_state(
    conn: &Connection,
    policies: &mut Policies,
    collection: &str,
    key: &str,
    state: RecordState,
) -> Result<(RecordState, Option<String>)> {
    let (state, merged) = if needs_policy(&state) {
        let policy = policies.get(conn, collection)?.clone();
        apply(conn, &policy, state)?
    } else {
        (state, None)
    };
    crate::oplog::write_record_state(conn, "records", collection, key, &state, merged.as_deref())?;
    if collection == SETTINGS_COLLECTION
        && let Some(searched) = key.strip_prefix("search/")
    {
        crate::search::mark_collection_dirty(conn, searched)?;
    }
    let changed_policy =
        (collection == SETTINGS_COLLECTION).then(|| key.strip_prefix("policy/").map(str::to_owned)).flatten();
    Ok((state, changed_policy))
}

/// Whether a policy may decide this state: several heads, or a single head that is not the
/// greatest op (only a device that broke clock causality makes those).
pub(crate) fn needs_policy(state: &RecordState) -> bool {
    state.heads.len() > 1 || state.heads.first().is_some_and(|head| *head != state.winner.id)
}

/// Folds again, under its current policy, every record of `collection` (a policy change is
/// rare; folding all of them keeps the result a function of the op set alone).
pub(crate) fn refold_collection(conn: &Connection, collection: &str) -> Result<u64> {
    let policy = policy_of(conn, "records", collection)?;
    let keys: Vec<String> = conn
        .prepare("SELECT key FROM records WHERE collection = ?1")?
        .query_map(params![collection], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for key in &keys {
        let ops = crate::oplog::record_ops(conn, collection, key)?;
        let Some(state) = crate::merge::fold(ops.iter()) else { continue };
        let (state, merged) = apply(conn, &policy, state)?;
        crate::oplog::write_record_state(conn, "records", collection, key, &state, merged.as_deref())?;
    }
    Ok(keys.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_roundtrip_as_json() {
        for policy in [Policy::Lww, Policy::Fields, Policy::Manual, Policy::Priority { order: vec!["ab".into()] }] {
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy, "{json}");
        }
        assert_eq!(serde_json::to_string(&Policy::Fields).unwrap(), r#"{"policy":"fields"}"#);
    }
}
