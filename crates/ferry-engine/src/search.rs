//! Full-text search over every record this device holds, from every device (SQLite FTS5).
//!
//! Each live record is one document: the JSON string values of its fields (all of them, or
//! the fields set for its collection with [`Vault::set_search_fields`]). Writes and imports only
//! append the record's name to `search_dirty` (an append, the cheapest insert), and a search first indexes what
//! changed: writing stays as fast as it was, and a search always sees everything imported. The
//! index uses FTS5's `secure-delete`, so a forgotten record's words leave the index itself, not
//! only its visible rows.

use crate::database::to_sql_u64;
use crate::policy::SETTINGS_COLLECTION;
use crate::{Error, Result, Vault};
use ferry_format::{Collection, JsonValue, OpKind, RecordKey};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// One search result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Found {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// Where the words matched, with `[` `]` around them.
    pub snippet: String,
    /// Relevance (BM25; lower is better).
    pub rank: f64,
}

/// Marks a record as changed for the search index (called wherever `records` changes).
pub(crate) fn mark_dirty(conn: &Connection, collection: &str, key: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO search_dirty (collection, key) VALUES (?1, ?2)")?
        .execute(params![collection, key])?;
    Ok(())
}

/// The key of a collection's search fields in the settings collection.
fn fields_key(collection: &str) -> String {
    format!("search/{collection}")
}

/// The fields of `collection` that are indexed (`None`: every string).
fn search_fields(conn: &Connection, collection: &str) -> Result<Option<Vec<String>>> {
    let value = crate::policy::setting(conn, &fields_key(collection))?;
    Ok(value.and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok()))
}

/// The text of a value: its strings, one per line (numbers and names are not indexed).
fn text_of(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|item| text_of(item, out)),
        Value::Object(map) => map.values().for_each(|item| text_of(item, out)),
        _ => {}
    }
}

/// Brings the index up to date with every record marked as changed.
pub(crate) fn catch_up(conn: &Connection) -> Result<u64> {
    let dirty: Vec<(String, String)> = conn
        .prepare("SELECT DISTINCT collection, key FROM search_dirty")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut fields_of: std::collections::HashMap<String, Option<Vec<String>>> = std::collections::HashMap::new();
    for (collection, key) in &dirty {
        let old: Option<i64> = conn
            .prepare_cached("SELECT id FROM search_rows WHERE collection = ?1 AND key = ?2")?
            .query_row(params![collection, key], |row| row.get(0))
            .optional()?;
        if let Some(id) = old {
            conn.prepare_cached("DELETE FROM search_index WHERE rowid = ?1")?.execute([id])?;
            conn.prepare_cached("DELETE FROM search_rows WHERE id = ?1")?.execute([id])?;
        }
        if collection.starts_with('_') {
            continue; // ferry's own settings are not searched
        }
        let value: Option<String> = conn
            .prepare_cached(
                "SELECT coalesce(r.merged, o.value) FROM records r
                 JOIN ops o ON o.device = r.winner_device AND o.counter = r.winner_counter
                 WHERE r.collection = ?1 AND r.key = ?2 AND NOT r.deleted",
            )?
            .query_row(params![collection, key], |row| row.get(0))
            .optional()?
            .flatten();
        let Some(value) = value else { continue };
        let value: Value =
            serde_json::from_str(&value).map_err(|e| Error::Corrupt(format!("{collection}/{key}: {e}")))?;
        if !fields_of.contains_key(collection) {
            fields_of.insert(collection.clone(), search_fields(conn, collection)?);
        }
        let mut text = String::new();
        match (fields_of.get(collection).and_then(Option::as_ref), &value) {
            (Some(fields), Value::Object(map)) => {
                fields.iter().filter_map(|field| map.get(field)).for_each(|v| text_of(v, &mut text));
            }
            _ => text_of(&value, &mut text),
        }
        if text.is_empty() {
            continue;
        }
        conn.prepare_cached("INSERT INTO search_rows (collection, key) VALUES (?1, ?2)")?
            .execute(params![collection, key])?;
        let id = conn.last_insert_rowid();
        conn.prepare_cached("INSERT INTO search_index (rowid, text) VALUES (?1, ?2)")?.execute(params![id, text])?;
    }
    conn.execute("DELETE FROM search_dirty", [])?;
    Ok(dirty.len() as u64)
}

/// A person's words as an FTS5 query: every word must occur (a trailing `*` matches a prefix);
/// quotes keep FTS5's operators from being read into the words.
fn fts_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .filter_map(|word| {
            let (word, prefix) = word.strip_suffix('*').map_or((word, false), |w| (w, true));
            let word = word.replace('"', "");
            (!word.is_empty()).then(|| format!("\"{word}\"{}", if prefix { "*" } else { "" }))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

impl Vault {
    /// Finds live records whose text holds every word of `words`, best first.
    ///
    /// # Errors
    /// A bad collection name; database failures.
    pub fn find(&mut self, words: &str, collection: Option<&str>, limit: usize) -> Result<Vec<Found>> {
        let collection = collection.map(Collection::new).transpose()?;
        let Some(query) = fts_query(words) else { return Ok(Vec::new()) };
        let tx = self.conn.transaction()?;
        catch_up(&tx)?;
        tx.commit()?;
        let mut stmt = self.conn.prepare(
            "SELECT r.collection, r.key, snippet(search_index, 0, '[', ']', '…', 10), bm25(search_index)
             FROM search_index JOIN search_rows r ON r.id = search_index.rowid
             WHERE search_index MATCH ?1 AND (?2 IS NULL OR r.collection = ?2)
             ORDER BY bm25(search_index) LIMIT ?3",
        )?;
        let limit = to_sql_u64(limit as u64)?;
        let rows = stmt.query_map(params![query, collection.as_ref().map(Collection::as_str), limit], |row| {
            Ok(Found {
                collection: row.get(0)?,
                key: row.get(1)?,
                snippet: row.get::<_, String>(2)?.trim().replace('\n', " · "),
                rank: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets which top-level fields of a collection's records are searched (`None`: every
    /// string value). The setting syncs like a record.
    ///
    /// # Errors
    /// A bad collection name; database failures.
    pub fn set_search_fields(&mut self, collection: &str, fields: Option<&[String]>) -> Result<()> {
        let collection = Collection::new(collection)?;
        let settings = Collection::any(SETTINGS_COLLECTION)?;
        let key = RecordKey::new(&fields_key(collection.as_str()))?;
        let kind = match fields {
            Some(fields) => OpKind::Put(JsonValue::from_value(&serde_json::json!(fields))?),
            None => OpKind::Delete,
        };
        let has_setting = search_fields(&self.conn, collection.as_str())?.is_some();
        if fields.is_none() && !has_setting {
            return Ok(());
        }
        self.write(|writer| writer.write_any(settings, key, kind))?;
        Ok(())
    }
}

/// Marks every record of a collection changed (its search fields changed).
pub(crate) fn mark_collection_dirty(conn: &Connection, collection: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO search_dirty (collection, key) SELECT collection, key FROM records WHERE collection = ?1",
        [collection],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_a_safe_fts_query() {
        assert_eq!(fts_query("meet  Alice").as_deref(), Some(r#""meet" "Alice""#));
        assert_eq!(fts_query(r#"pro* "AND" OR"#).as_deref(), Some(r#""pro"* "AND" "OR""#));
        assert_eq!(fts_query("  \" "), None);
    }
}
