//! The change feed: every change to the vault's records, whichever handle or process made it,
//! read from the op log itself so that nothing is missed between two looks.
//!
//! Each device numbers its ops without gaps and this device receives every device's ops in
//! that order (a segment imports only after the one before it), so "what changed since" is a
//! version vector: per device, the last op counter seen. [`ChangeCursor`] is that vector; it
//! survives restarts as text ([`ChangeCursor::to_token`]), so an app can persist it next to its
//! own state and resume exactly where it stopped. Reading since a cursor is one primary-key
//! range scan per device: nothing extra is written per op, so writes cost what they did.
//!
//! [`Subscription`] follows the feed live from a thread with its own connection: it polls
//! SQLite's `data_version` (one page read; it changes on every commit by another connection,
//! in this process or any other), and reads since its cursor when it moved.

use crate::database::{from_sql_u64, to_sql_u64};
use crate::oplog::KIND_DELETE;
use crate::{Change, Error, Result, Vault};
use ferry_format::{DeviceId, OpId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often a [`Subscription`] looks for commits.
const POLL: Duration = Duration::from_millis(25);

/// A position in the change feed: per device, the last op counter already seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    seen: BTreeMap<DeviceId, u64>,
}

impl ChangeCursor {
    /// The start of the feed: every change the vault holds comes after it.
    pub fn beginning() -> Self {
        Self::default()
    }

    /// Text to keep (in an app's own database, a file) and give back to [`ChangeCursor::parse`]:
    /// `<device hex>.<counter>` per device, comma-separated; empty at the beginning.
    pub fn to_token(&self) -> String {
        self.seen.iter().map(|(device, counter)| format!("{device}.{counter}")).collect::<Vec<_>>().join(",")
    }

    /// Reads [`ChangeCursor::to_token`]'s text.
    ///
    /// # Errors
    /// [`Error::BadCursor`] when the text is not a cursor.
    pub fn parse(token: &str) -> Result<Self> {
        let mut seen = BTreeMap::new();
        for part in token.split(',').filter(|part| !part.is_empty()) {
            let id = part.parse::<OpId>().map_err(|_| Error::BadCursor { token: token.to_owned() })?;
            seen.insert(id.device, id.counter);
        }
        Ok(Self { seen })
    }

    /// The last op counter of `device` this cursor has seen (0: none).
    pub fn seen(&self, device: DeviceId) -> u64 {
        self.seen.get(&device).copied().unwrap_or(0)
    }

    fn advance(&mut self, op: OpId) {
        let counter = self.seen.entry(op.device).or_default();
        *counter = (*counter).max(op.counter);
    }
}

/// Changes read from the feed, and the cursor to read on from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeBatch {
    /// The changes, oldest first (by hybrid logical clock).
    pub changes: Vec<Change>,
    /// Everything up to and including these changes.
    pub cursor: ChangeCursor,
    /// Whether more changes wait beyond the limit.
    pub more: bool,
}

impl Vault {
    /// The feed's current end: a cursor that has seen every change so far.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn change_cursor(&self) -> Result<ChangeCursor> {
        let mut stmt = self.conn.prepare_cached("SELECT device, max(counter) FROM ops GROUP BY device")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))?;
        let mut cursor = ChangeCursor::default();
        for row in rows {
            let (device, counter) = row?;
            cursor.advance(OpId { device: device_of(&device)?, counter: from_sql_u64(counter)? });
        }
        Ok(cursor)
    }

    /// Up to `limit` changes after `cursor`, made here or imported, by this handle or any
    /// other; each names the record and whether it is deleted now.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn changes_since(&self, cursor: &ChangeCursor, limit: usize) -> Result<ChangeBatch> {
        let mut devices = self.conn.prepare_cached("SELECT DISTINCT device FROM ops")?;
        let devices = devices
            .query_map([], |row| row.get::<_, Vec<u8>>(0))?
            .map(|device| device_of(&device?))
            .collect::<Result<Vec<_>>>()?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.counter, o.hlc, o.collection, o.key, o.kind, r.deleted
             FROM ops o LEFT JOIN records r ON r.collection = o.collection AND r.key = o.key
             WHERE o.device = ?1 AND o.counter > ?2 ORDER BY o.counter LIMIT ?3",
        )?;
        // Per device, its next ops in counter order; merged by clock, so the batch holds a
        // prefix of each device's list and the cursor can advance per device.
        let mut queues = Vec::new();
        for device in devices {
            let rows = stmt.query_map(
                rusqlite::params![&device.as_bytes()[..], to_sql_u64(cursor.seen(device))?, fetch],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<bool>>(5)?,
                    ))
                },
            )?;
            let mut queue = VecDeque::new();
            for row in rows {
                let (counter, hlc, collection, key, kind, deleted) = row?;
                let op = OpId { device, counter: from_sql_u64(counter)? };
                // No record row: the record was forgotten, or the op is a forget.
                let deleted = deleted.unwrap_or(true) || kind == KIND_DELETE && deleted.is_none();
                queue.push_back((from_sql_u64(hlc)?, Change { collection, key, op, deleted }));
            }
            queues.push(queue);
        }
        let mut next = cursor.clone();
        let mut changes = Vec::new();
        while changes.len() < limit {
            let Some(queue) =
                queues.iter_mut().filter(|q| !q.is_empty()).min_by_key(|q| q.front().map(|(hlc, _)| *hlc))
            else {
                break;
            };
            let Some((_, change)) = queue.pop_front() else { break };
            next.advance(change.op);
            changes.push(change);
        }
        let more = queues.iter().any(|q| !q.is_empty());
        Ok(ChangeBatch { changes, cursor: next, more })
    }

    /// Follows the change feed from `from` (`None`: from now) on a thread with its own
    /// connection, so it sees commits by every handle and every process (the daemon's imports,
    /// another app). Dropping the [`Subscription`] stops the thread.
    ///
    /// # Errors
    /// The second connection cannot be opened; database failures.
    pub fn subscribe(&self, from: Option<ChangeCursor>) -> Result<Subscription> {
        let follower = self.reopen()?;
        let cursor = match from {
            Some(cursor) => cursor,
            None => follower.change_cursor()?,
        };
        let (sender, receiver) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("ferry-changes".into())
            .spawn(move || follow(&follower, cursor, &sender, &flag))
            .map_err(|source| Error::Thread { what: "cannot start the change feed's thread", source })?;
        Ok(Subscription { receiver, stop })
    }
}

/// What a [`Subscription`] delivers: a change, with the cursor just after it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedItem {
    /// The change.
    pub change: Change,
    /// A cursor that has seen this change and everything delivered before it.
    pub cursor: ChangeCursor,
}

/// A live follower of the change feed ([`Vault::subscribe`]). Iterate it, or use
/// [`Subscription::recv_timeout`]; it ends (yields `None`) if the database fails.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Result<FeedItem>>,
    stop: Arc<AtomicBool>,
}

impl Subscription {
    /// The next change, waiting at most `timeout` (`None`: nothing came).
    ///
    /// # Errors
    /// The follower's database read failed; it has stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<FeedItem>> {
        match self.receiver.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::FeedStopped),
        }
    }

    /// The changes already delivered and not yet taken, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Result<FeedItem>> + '_ {
        self.receiver.try_iter()
    }
}

impl Iterator for Subscription {
    type Item = Result<FeedItem>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The follower thread: reads on from `cursor` whenever another connection committed.
fn follow(vault: &Vault, mut cursor: ChangeCursor, sender: &mpsc::Sender<Result<FeedItem>>, stop: &AtomicBool) {
    let mut seen_version = None;
    while !stop.load(Ordering::Relaxed) {
        let version = match vault.data_version() {
            Ok(version) => version,
            Err(err) => {
                let _ = sender.send(Err(err));
                return;
            }
        };
        if seen_version != Some(version) {
            seen_version = Some(version);
            loop {
                let batch = match vault.changes_since(&cursor, 1_000) {
                    Ok(batch) => batch,
                    Err(err) => {
                        let _ = sender.send(Err(err));
                        return;
                    }
                };
                let mut delivered = cursor.clone();
                for change in batch.changes {
                    delivered.advance(change.op);
                    if sender.send(Ok(FeedItem { change, cursor: delivered.clone() })).is_err() {
                        return;
                    }
                }
                cursor = batch.cursor;
                if !batch.more {
                    break;
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

fn device_of(bytes: &[u8]) -> Result<DeviceId> {
    DeviceId::from_slice(bytes).ok_or_else(|| Error::Corrupt("op log: malformed device id".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_tests::{first_device, join, sync};
    use ferry_store::MemoryStore;
    use serde_json::json;

    #[test]
    fn cursors_survive_as_text_and_bad_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "a", &store);
        assert_eq!(ChangeCursor::parse("").unwrap(), ChangeCursor::beginning());
        a.put("notes", "n1", &json!(1)).unwrap();
        let cursor = a.change_cursor().unwrap();
        assert_eq!(cursor.seen(a.device_id()), 1);
        assert_eq!(ChangeCursor::parse(&cursor.to_token()).unwrap(), cursor);
        for bad in ["x", "00.1", "zz.zz", ",.,"] {
            assert!(matches!(ChangeCursor::parse(bad), Err(Error::BadCursor { .. })), "{bad}");
        }
    }

    #[test]
    fn paging_through_local_and_imported_changes_skips_and_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "a", &store);
        sync(&mut a, &store);
        let mut b = join(dir.path(), "b", &store);
        for i in 0..5 {
            a.put("notes", &format!("a{i}"), &json!(i)).unwrap();
            b.put("notes", &format!("b{i}"), &json!(i)).unwrap();
        }
        b.delete("notes", "b0").unwrap();
        sync(&mut b, &store);
        sync(&mut a, &store);

        let all = a.changes_since(&ChangeCursor::beginning(), 100).unwrap();
        assert!(!all.more);
        assert_eq!(all.changes.len(), 11);
        assert!(all.changes.iter().any(|c| c.key == "b0" && c.deleted), "the delete is a change, deleted");
        assert!(all.changes.iter().filter(|c| c.key == "b0").all(|c| c.deleted), "deleted is the state now");

        for limit in [1, 2, 3, 7] {
            let mut cursor = ChangeCursor::beginning();
            let mut walked = Vec::new();
            for _ in 0..20 {
                let batch = a.changes_since(&cursor, limit).unwrap();
                assert!(batch.changes.len() <= limit);
                walked.extend(batch.changes.iter().map(|c| c.op));
                cursor = batch.cursor;
                if !batch.more {
                    break;
                }
            }
            let mut expected: Vec<OpId> = all.changes.iter().map(|c| c.op).collect();
            expected.sort();
            walked.sort();
            assert_eq!(walked, expected, "limit {limit}");
            assert_eq!(cursor, a.change_cursor().unwrap());
        }
    }

    #[test]
    fn a_subscription_sees_commits_of_other_handles_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::default();
        let mut a = first_device(dir.path(), "a", &store);
        a.put("notes", "before", &json!(0)).unwrap();
        let feed = a.subscribe(None).unwrap();
        let mut other = a.reopen().unwrap();
        other.put("notes", "other", &json!(1)).unwrap();
        a.put("notes", "mine", &json!(2)).unwrap();
        let mut keys = Vec::new();
        while keys.len() < 2 {
            let item = feed.recv_timeout(Duration::from_secs(5)).unwrap().expect("a change within 5 s");
            keys.push(item.change.key);
        }
        assert_eq!(keys, ["other", "mine"], "from now on, in commit order; `before` is not replayed");
        drop(feed);

        let from_start = a.subscribe(Some(ChangeCursor::beginning())).unwrap();
        let first = from_start.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(first.change.key, "before");
    }
}
