//! Policies and conflicts through the library API: setting a collection's policy, listing the
//! records that wait for a person (`manual` collections), seeing every head, resolving.

use crate::database::from_sql_u64;
use crate::policy::{Policy, SETTINGS_COLLECTION, policy_key, policy_of};
use crate::read::Record;
use crate::{Error, Result, Vault};
use ferry_format::{Collection, Hlc, JsonValue, OpId, OpKind, RecordKey};
use rusqlite::params;

/// One head of a record: a write no other write of the record has seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Head {
    /// The op.
    pub op: String,
    /// The device that wrote it.
    pub device_id: String,
    /// That device's name, if known.
    pub device_name: Option<String>,
    /// When (hybrid logical clock).
    pub hlc: u64,
    /// When, as wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The value it wrote (`None`: a delete), as its writer's bytes.
    pub value: Option<JsonValue>,
}

/// A record that has several heads in a `manual` collection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Conflict {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// How many heads.
    pub heads: u64,
}

/// What `ferry conflicts` shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConflictReport {
    /// Records waiting for a person, in `manual` collections.
    pub unresolved: Vec<Conflict>,
    /// Per collection: its policy, and how many concurrent writes were merged by it.
    pub collections: Vec<CollectionConflicts>,
}

/// Conflict counts of one collection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CollectionConflicts {
    /// The collection.
    pub collection: String,
    /// Its policy's name.
    pub policy: String,
    /// Concurrent writes seen (merged automatically, or waiting in a manual collection).
    pub concurrent_writes: u64,
    /// Records with several heads now.
    pub records_with_heads: u64,
}

/// How to resolve a conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Keep one head's value (or its delete).
    Pick(OpId),
    /// Write this value.
    Value(serde_json::Value),
}

impl Vault {
    /// Sets a collection's merge policy; it syncs like a record, and the collection's records
    /// that have several heads are folded again under it (here now, elsewhere on import).
    ///
    /// # Errors
    /// A bad collection name; a priority order naming no known device; database failures.
    pub fn set_policy(&mut self, collection: &str, policy: &Policy) -> Result<()> {
        let collection = Collection::new(collection)?;
        if let Policy::Priority { order } = policy {
            let known: Vec<String> = self.devices()?.into_iter().map(|d| d.device_id).collect();
            if let Some(unknown) = order.iter().find(|d| !known.contains(d)) {
                return Err(Error::UnknownDevice(unknown.clone()));
            }
        }
        let value = serde_json::to_value(policy).map_err(|e| Error::Encode(e.to_string()))?;
        let kind = OpKind::Put(JsonValue::from_value(&value)?);
        let settings = Collection::any(SETTINGS_COLLECTION)?;
        let key = RecordKey::new(&policy_key(collection.as_str()))?;
        self.write(|writer| writer.write_any(settings, key, kind))?;
        Ok(())
    }

    /// A collection's merge policy (`lww` unless set).
    ///
    /// # Errors
    /// A bad collection name; database failures.
    pub fn policy(&self, collection: &str) -> Result<Policy> {
        let collection = Collection::new(collection)?;
        policy_of(&self.conn, "records", collection.as_str())
    }

    /// Every collection whose policy was set, with it.
    ///
    /// # Errors
    /// Database failures.
    pub fn policies(&self) -> Result<Vec<(String, Policy)>> {
        let keys: Vec<String> = self
            .conn
            .prepare(
                "SELECT key FROM records WHERE collection = ?1 AND key LIKE 'policy/%' AND NOT deleted ORDER BY key",
            )?
            .query_map([SETTINGS_COLLECTION], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        keys.iter()
            .filter_map(|key| key.strip_prefix("policy/"))
            .map(|collection| Ok((collection.to_owned(), policy_of(&self.conn, "records", collection)?)))
            .collect()
    }

    /// Records waiting for a person, and per-collection counts of concurrent writes.
    ///
    /// # Errors
    /// Database failures.
    pub fn conflicts(&self) -> Result<ConflictReport> {
        let mut collections = Vec::new();
        let mut unresolved = Vec::new();
        let rows: Vec<(String, i64, i64)> = self
            .conn
            .prepare(
                "SELECT c.collection, coalesce(s.concurrent, 0),
                        (SELECT count(*) FROM records r WHERE r.collection = c.collection AND length(r.heads) > ?1)
                 FROM (SELECT DISTINCT collection FROM records WHERE collection NOT LIKE '\\_%' ESCAPE '\\') c
                 LEFT JOIN collection_stats s ON s.collection = c.collection ORDER BY c.collection",
            )?
            .query_map([OpId::ENCODED_LEN], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (collection, concurrent, with_heads) in rows {
            let policy = policy_of(&self.conn, "records", &collection)?;
            if policy == Policy::Manual && with_heads > 0 {
                let mut stmt = self.conn.prepare(
                    "SELECT key, length(heads) FROM records WHERE collection = ?1 AND length(heads) > ?2 ORDER BY key",
                )?;
                for row in stmt.query_map(params![collection, OpId::ENCODED_LEN], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })? {
                    let (key, heads) = row?;
                    let heads = from_sql_u64(heads)? / OpId::ENCODED_LEN as u64;
                    unresolved.push(Conflict { collection: collection.clone(), key, heads });
                }
            }
            if concurrent > 0 || with_heads > 0 || policy != Policy::Lww {
                collections.push(CollectionConflicts {
                    collection,
                    policy: policy.name().to_owned(),
                    concurrent_writes: from_sql_u64(concurrent)?,
                    records_with_heads: from_sql_u64(with_heads)?,
                });
            }
        }
        Ok(ConflictReport { unresolved, collections })
    }

    /// Every head of a record, newest first.
    ///
    /// # Errors
    /// [`Error::NoSuchRecord`]; bad names; database failures.
    pub fn heads(&self, collection: &str, key: &str) -> Result<Vec<Head>> {
        let collection = Collection::new(collection)?;
        let key = RecordKey::new(key)?;
        let state = crate::oplog::record_state(&self.conn, collection.as_str(), key.as_str())?
            .ok_or_else(|| Error::NoSuchRecord { collection: collection.to_string(), key: key.to_string() })?;
        let names: std::collections::HashMap<String, String> =
            self.devices()?.into_iter().map(|d| (d.device_id, d.name)).collect();
        let mut heads = Vec::new();
        for id in state.heads {
            let (hlc, value): (i64, Option<String>) = self.conn.query_row(
                "SELECT hlc, value FROM ops WHERE device = ?1 AND counter = ?2",
                params![&id.device.as_bytes()[..], crate::database::to_sql_u64(id.counter)?],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let hlc = Hlc::from_u64(from_sql_u64(hlc)?);
            heads.push(Head {
                op: id.to_string(),
                device_id: id.device.to_string(),
                device_name: names.get(&id.device.to_string()).cloned(),
                hlc: hlc.to_u64(),
                at_ms: hlc.wall_ms(),
                value: value.map(JsonValue::from_normalised),
            });
        }
        heads.sort_by(|a, b| b.hlc.cmp(&a.hlc).then(b.op.cmp(&a.op)));
        Ok(heads)
    }

    /// Resolves a record's concurrent writes with one write that has seen every head.
    ///
    /// # Errors
    /// [`Error::NoSuchRecord`]; [`Error::NotAHead`] for a pick that is not one of the heads;
    /// bad values; database failures.
    pub fn resolve(&mut self, collection: &str, key: &str, resolution: &Resolution) -> Result<OpId> {
        let heads = self.heads(collection, key)?;
        let kind = match resolution {
            Resolution::Value(value) => OpKind::Put(JsonValue::from_value(value)?),
            Resolution::Pick(op) => {
                let head = heads.iter().find(|h| h.op == op.to_string()).ok_or_else(|| Error::NotAHead {
                    op: op.to_string(),
                    heads: heads.iter().map(|h| h.op.clone()).collect(),
                })?;
                match &head.value {
                    Some(value) => OpKind::Put(value.clone()),
                    None => OpKind::Delete,
                }
            }
        };
        let collection = Collection::new(collection)?;
        let key = RecordKey::new(key)?;
        self.write(|writer| writer.write_any(collection, key, kind))
    }

    /// Whether a live record is an unresolved conflict (several heads in a `manual` collection).
    pub(crate) fn flag_conflicts(&self, records: &mut [Record]) -> Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        let mut collection = first.collection.clone();
        let mut manual = policy_of(&self.conn, "records", &collection)? == Policy::Manual;
        for record in records {
            if record.collection != collection {
                collection = record.collection.clone();
                manual = policy_of(&self.conn, "records", &collection)? == Policy::Manual;
            }
            record.conflict = manual && record.heads > 1;
        }
        Ok(())
    }
}
