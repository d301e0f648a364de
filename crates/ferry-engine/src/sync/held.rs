//! The store objects this device holds, by store path: what it serves to peers (DESIGN §5: "a
//! device serves the objects it holds (its own and those it imported), so sync is
//! transitive"). Everything here is sealed bytes exactly as written; nothing is decrypted.

use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::identity::VaultKeys;
use crate::{Result, Vault};
use ferry_format::objects::VaultFile;
use ferry_format::objects::paths::{self, StorePath};
use ferry_format::{DeviceId, EpochRef};
use rusqlite::OptionalExtension;

/// What a store path names, for the objects a device holds.
enum HeldPath {
    VaultFile,
    KeyEpoch(EpochRef),
    Record(DeviceId),
    Revocation(DeviceId, [u8; 16]),
    Segment(DeviceId, u64),
    Head(DeviceId),
    Blob([u8; 32]),
    Snapshot,
}

fn parse(path: &str) -> Option<HeldPath> {
    Some(match paths::parse(path)? {
        StorePath::VaultFile => HeldPath::VaultFile,
        StorePath::KeyEpoch(epoch) => HeldPath::KeyEpoch(epoch),
        StorePath::DeviceRecord(device) => HeldPath::Record(device),
        StorePath::Revocation(device, tag) => HeldPath::Revocation(device, tag),
        StorePath::Segment(device, seq) => HeldPath::Segment(device, seq),
        StorePath::Head(device) => HeldPath::Head(device),
        StorePath::Blob(id) => HeldPath::Blob(id),
        StorePath::Snapshot(..) | StorePath::SnapshotPart(..) => HeldPath::Snapshot,
        StorePath::KeySlot(..) | StorePath::Pair(..) => return None,
    })
}

impl Vault {
    /// The sealed object this device holds at a store path, if any.
    ///
    /// # Errors
    /// Local failures.
    pub fn held_object(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        if parse(path).is_some_and(|held| matches!(held, HeldPath::Head(device) if device == self.device_id())) {
            // A peer asking for this HEAD wants this device's latest writes: seal them now.
            self.seal_pending_ops()?;
            return self.own_head_bytes();
        }
        self.sealed_object(path)
    }

    /// [`Self::held_object`] without sealing pending ops first: this device's own HEAD as last
    /// sealed.
    pub(crate) fn sealed_object(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(held) = parse(path) else { return Ok(None) };
        let me = self.device_id();
        let one = |sql: &str, key: &[&dyn rusqlite::ToSql]| -> Result<Option<Vec<u8>>> {
            Ok(self.conn.query_row(sql, key, |row| row.get::<_, Option<Vec<u8>>>(0)).optional()?.flatten())
        };
        match held {
            HeldPath::VaultFile => self.vault_file_bytes().map(Some),
            HeldPath::KeyEpoch(epoch) => one(
                "SELECT object FROM key_epochs WHERE epoch = ?1 AND tag = ?2",
                &[&epoch.number, &epoch.tag.map(|tag| tag.to_vec())],
            ),
            HeldPath::Record(device) => {
                one("SELECT record FROM devices WHERE device_id = ?1", &[&&device.as_bytes()[..]])
            }
            HeldPath::Revocation(device, tag) => one(
                "SELECT revocation FROM devices WHERE device_id = ?1 AND revoked_epoch_tag = ?2",
                &[&&device.as_bytes()[..], &&tag[..]],
            ),
            // A segment whose copy was dropped (a snapshot covers it) has empty bytes.
            HeldPath::Segment(device, seq) if device == me => {
                one("SELECT bytes FROM own_segments WHERE seq = ?1 AND length(bytes) > 0", &[&to_sql_u64(seq)?])
            }
            HeldPath::Segment(device, seq) => one(
                "SELECT bytes FROM imported_segments WHERE device = ?1 AND seq = ?2 AND length(bytes) > 0",
                &[&&device.as_bytes()[..], &to_sql_u64(seq)?],
            ),
            HeldPath::Head(device) if device == me => self.own_head_bytes(),
            HeldPath::Head(device) => {
                one("SELECT bytes FROM device_heads WHERE device = ?1", &[&&device.as_bytes()[..]])
            }
            HeldPath::Snapshot => one("SELECT bytes FROM snapshot_objects WHERE path = ?1", &[&path]),
            HeldPath::Blob(id) => {
                let listed = self.conn.prepare_cached("SELECT 1 FROM blob_objects WHERE id = ?1")?.exists([&id[..]])?;
                let file = self.blob_file(&crate::BlobId(id));
                Ok(if listed { std::fs::read(file).ok() } else { None })
            }
        }
    }

    /// The store paths of the objects this device holds under `prefix`, sorted.
    ///
    /// # Errors
    /// Local failures.
    pub fn held_paths(&mut self, prefix: &str) -> Result<Vec<String>> {
        self.seal_pending_ops()?;
        self.sealed_paths(prefix)
    }

    /// [`Self::held_paths`] without sealing pending ops first.
    pub(crate) fn sealed_paths(&self, prefix: &str) -> Result<Vec<String>> {
        let mut all = vec![paths::VAULT_FILE.to_owned()];
        let strings = |sql: &str| -> Result<Vec<(Vec<u8>, i64)>> {
            Ok(self
                .conn
                .prepare(sql)?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        };
        all.extend(self.registry_objects()?.into_iter().map(|(path, _)| path));
        for (device, _) in strings("SELECT device_id, 0 FROM devices WHERE record IS NOT NULL")? {
            let Some(device) = DeviceId::from_slice(&device) else { continue };
            all.push(paths::device_record(device));
        }
        for (device, seq) in strings("SELECT device, seq FROM imported_segments WHERE length(bytes) > 0")? {
            let Some(device) = DeviceId::from_slice(&device) else { continue };
            all.push(paths::segment(device, from_sql_u64(seq)?));
        }
        for (device, _) in strings("SELECT device, seq FROM device_heads")? {
            let Some(device) = DeviceId::from_slice(&device) else { continue };
            all.push(paths::head(device));
        }
        let me = self.device_id();
        if !strings("SELECT x'', seq FROM own_segments LIMIT 1")?.is_empty() {
            all.push(paths::head(me));
        }
        let own: Vec<(Vec<u8>, i64)> = strings("SELECT x'', seq FROM own_segments WHERE length(bytes) > 0")?;
        for (_, seq) in own {
            all.push(paths::segment(me, from_sql_u64(seq)?));
        }
        for id in self.blob_ids()? {
            all.push(paths::blob(&id.0));
        }
        all.extend(
            self.conn
                .prepare("SELECT path FROM snapshot_objects")?
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
        all.retain(|path| path.starts_with(prefix));
        all.sort();
        Ok(all)
    }

    /// The sizes of the sealed objects this device holds that never change in place (segments,
    /// device records, blobs, key epochs, revocations, snapshots), by store path. Read without loading
    /// the objects: a store check compares them with a listing's sizes.
    pub(crate) fn sealed_sizes(&self) -> Result<std::collections::HashMap<String, u64>> {
        let mut sizes = std::collections::HashMap::new();
        let me = self.device_id();
        let rows = |sql: &str| -> Result<Vec<(Vec<u8>, i64, i64)>> {
            Ok(self
                .conn
                .prepare(sql)?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?)
        };
        for (_, seq, len) in rows("SELECT x'', seq, length(bytes) FROM own_segments WHERE length(bytes) > 0")? {
            sizes.insert(paths::segment(me, from_sql_u64(seq)?), from_sql_u64(len)?);
        }
        for (device, seq, len) in
            rows("SELECT device, seq, length(bytes) FROM imported_segments WHERE length(bytes) > 0")?
        {
            let Some(device) = DeviceId::from_slice(&device) else { continue };
            sizes.insert(paths::segment(device, from_sql_u64(seq)?), from_sql_u64(len)?);
        }
        for (device, _, len) in rows("SELECT device_id, 0, length(record) FROM devices WHERE record IS NOT NULL")? {
            let Some(device) = DeviceId::from_slice(&device) else { continue };
            sizes.insert(paths::device_record(device), from_sql_u64(len)?);
        }
        for (path, bytes) in self.registry_objects()? {
            sizes.insert(path, bytes.len() as u64);
        }
        let snapshots: Vec<(String, i64)> = self
            .conn
            .prepare("SELECT path, length(bytes) FROM snapshot_objects")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (path, len) in snapshots {
            sizes.insert(path, from_sql_u64(len)?);
        }
        for id in self.blob_ids()? {
            if let Ok(metadata) = std::fs::metadata(self.blob_file(&id)) {
                sizes.insert(paths::blob(&id.0), metadata.len());
            }
        }
        Ok(sizes)
    }

    /// Remembers an address where another device of the vault serves (`ferry peers add`):
    /// `ferry serve` pulls from it on every round. Returns its local id.
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] for a device that is not an active member; local failures.
    pub fn add_peer(&mut self, device: &str, addr: &str) -> Result<crate::StoreId> {
        let device = self.find_device(device)?;
        if !self.active_device_keys()?.iter().any(|(d, _)| *d == device) || device == self.device_id() {
            return Err(crate::Error::UnknownDevice(device.to_string()));
        }
        let url = format!("peer:{addr}");
        self.conn.execute(
            "INSERT INTO stores (url, added_ms, peer, peer_device) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (url) DO UPDATE SET peer = 1, peer_device = excluded.peer_device",
            rusqlite::params![url, to_sql_u64(crate::write::now_ms())?, &device.as_bytes()[..]],
        )?;
        Ok(self.conn.query_row("SELECT id FROM stores WHERE url = ?1", [&url], |row| row.get(0))?)
    }

    /// Forgets a stored peer address.
    ///
    /// # Errors
    /// [`crate::Error::UnknownStore`]; local failures.
    pub fn remove_peer(&mut self, addr: &str) -> Result<()> {
        let id: Option<crate::StoreId> = self
            .conn
            .query_row("SELECT id FROM stores WHERE url = ?1 AND peer", [format!("peer:{addr}")], |row| row.get(0))
            .optional()?;
        self.detach_store(id.ok_or_else(|| crate::Error::UnknownStore(format!("peer:{addr}")))?)
    }

    /// The stored peer addresses (`host:port`), with the device expected there.
    ///
    /// # Errors
    /// Local failures.
    pub fn peer_addresses(&self) -> Result<Vec<(String, Option<DeviceId>)>> {
        let rows: Vec<(String, Option<Vec<u8>>)> = self
            .conn
            .prepare("SELECT url, peer_device FROM stores WHERE peer AND peer_device IS NOT NULL ORDER BY id")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(url, device)| {
                Some((url.strip_prefix("peer:")?.to_owned(), device.as_deref().and_then(DeviceId::from_slice)))
            })
            .collect())
    }

    /// Remembers that `device` answered at `addr` (a peer address that worked): the daemon dials
    /// it before other stored addresses next time. `ferry peers forget-address` drops it.
    ///
    /// # Errors
    /// Local failures.
    pub fn note_peer_address(&mut self, device: DeviceId, addr: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO stores (url, added_ms, peer, peer_device) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (url) DO UPDATE SET peer = 1, peer_device = excluded.peer_device",
            rusqlite::params![format!("peer:{addr}"), to_sql_u64(crate::write::now_ms())?, &device.as_bytes()[..]],
        )?;
        Ok(())
    }

    /// The addresses known for `device`, the one that last worked first, then the others in the
    /// order they were added (the daemon's dial order after mDNS).
    ///
    /// # Errors
    /// Local failures.
    pub fn peer_addresses_of(&self, device: DeviceId) -> Result<Vec<String>> {
        let urls: Vec<String> = self
            .conn
            .prepare(
                "SELECT url FROM stores WHERE peer AND peer_device = ?1
                 ORDER BY last_success_ms IS NULL, last_success_ms DESC, id",
            )?
            .query_map([&device.as_bytes()[..]], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(urls.into_iter().filter_map(|url| url.strip_prefix("peer:").map(str::to_owned)).collect())
    }

    /// The device a user means by `text`: its name (any case), or its id or the start of it.
    ///
    /// # Errors
    /// [`crate::Error::UnknownDevice`] when nothing (or several devices) match; local failures.
    pub fn find_device(&self, text: &str) -> Result<DeviceId> {
        let named: Vec<DeviceId> = self
            .devices()?
            .into_iter()
            .filter(|d| d.name.eq_ignore_ascii_case(text.trim()))
            .filter_map(|d| d.device_id.parse().ok())
            .collect();
        match named.as_slice() {
            [device] => Ok(*device),
            _ => self.resolve_device(text),
        }
    }

    /// Seals this device's writes not yet in a segment, so that peers asking now get them.
    /// Returns how many segments were made (0 when there was nothing new).
    ///
    /// # Errors
    /// Local failures.
    pub fn seal_local_writes(&mut self) -> Result<u64> {
        self.seal_pending_ops()
    }

    /// A short text that changes whenever what this device serves changes (its own log, what it
    /// imported or relays, the registry, blobs) and stays the same otherwise, e.g. across a no-op
    /// pull. Peers long-poll on it: comparing it, rather than every commit, keeps two daemons from
    /// waking each other forever.
    ///
    /// # Errors
    /// Local failures.
    pub fn served_state(&self) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT (SELECT coalesce(max(seq), 0) FROM own_segments)
                 || '/' || (SELECT value FROM meta WHERE name = 'log_generation')
                 || '/' || (SELECT count(*) || '.' || coalesce(sum(seq), 0) FROM imported_segments)
                 || '/' || (SELECT coalesce(group_concat(hex(device) || '.' || seq, ','), '') FROM device_heads)
                 || '/' || (SELECT coalesce(group_concat(seq || '.' || generation, ','), '') FROM cursors)
                 || '/' || (SELECT count(record) || '.' || count(revocation) FROM devices)
                 || '/' || (SELECT count(object) FROM key_epochs)
                 || '/' || (SELECT count(*) FROM blob_objects)",
            [],
            |row| row.get(0),
        )?)
    }

    /// A number that changes whenever another connection to this vault's database (another
    /// process, or another handle in this one) commits: SQLite's `data_version`. Cheap enough to
    /// poll many times a second, which is how a daemon notices writes made by apps.
    ///
    /// # Errors
    /// Local failures.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// Pulls from a peer (another device serving what it holds): like a pull from a store, with
    /// the same verification; the peer's progress is kept under its location.
    ///
    /// # Errors
    /// The peer is unreachable or refuses; local failures.
    pub fn pull_from_peer(&mut self, peer: &dyn ferry_store::Store) -> Result<crate::PullReport> {
        let url = peer.location();
        let known: Option<crate::StoreId> =
            self.conn.query_row("SELECT id FROM stores WHERE url = ?1", [&url], |row| row.get(0)).optional()?;
        let id = match known {
            Some(id) => id,
            None => {
                self.conn.execute(
                    "INSERT INTO stores (url, added_ms, peer) VALUES (?1, ?2, 1)",
                    rusqlite::params![url, to_sql_u64(crate::write::now_ms())?],
                )?;
                crate::StoreId(self.conn.last_insert_rowid())
            }
        };
        let handle = crate::StoreHandle { id, store: peer };
        self.sync(handle, crate::Direction::Pull).map(|report| report.pull.unwrap_or_default())
    }

    /// The Ed25519 public keys of the vault's active devices (this one included): the keys a
    /// peer connection may present.
    ///
    /// # Errors
    /// Local failures.
    pub fn active_device_keys(&self) -> Result<Vec<(DeviceId, [u8; 32])>> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare("SELECT device_id, signing_public FROM devices WHERE revoked_last_seq IS NULL")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, key)| Some((DeviceId::from_slice(&id)?, <[u8; 32]>::try_from(key.as_slice()).ok()?)))
            .collect())
    }

    /// This device's Ed25519 secret key, for the one use outside the engine that needs it: the
    /// TLS handshake that proves to a peer that this is the device its registry knows. Keep it
    /// in memory only.
    ///
    /// # Errors
    /// Local failures.
    pub fn device_signing_secret(&self) -> Result<ferry_format::SecretBytes> {
        Ok(ferry_format::SecretBytes::new(crate::identity::DeviceKeys::load(&self.conn)?.signing_key().to_bytes()))
    }

    /// The vault file, as published.
    pub(crate) fn vault_file_bytes(&self) -> Result<Vec<u8>> {
        let keys = VaultKeys::load(&self.conn)?;
        let file = VaultFile {
            format: "ferry-vault".into(),
            version: VaultFile::VERSION,
            vault_id: keys.vault_id.to_string(),
            created_ms: from_sql_u64(meta_get(&self.conn, "created_ms")?)?,
            fingerprint: keys.fingerprint().to_string(),
        };
        serde_json::to_vec_pretty(&file).map_err(|e| crate::Error::Encode(e.to_string()))
    }

    /// This device's HEAD, sealed once per state of its log (so its bytes, and a peer's etag,
    /// change only when the log does).
    fn own_head_bytes(&self) -> Result<Option<Vec<u8>>> {
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM own_segments", [], |row| row.get(0))?;
        if last == 0 {
            return Ok(None);
        }
        let generation: i64 = meta_get(&self.conn, "log_generation")?;
        let state = format!("{last}/{generation}");
        let cached: Option<(String, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT a.value, b.value FROM meta a, meta b WHERE a.name = 'own_head_state' AND b.name = 'own_head'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((cached_state, bytes)) = cached
            && cached_state == state
        {
            return Ok(Some(bytes));
        }
        let bytes = self.seal_own_head(from_sql_u64(last)?)?;
        meta_set(&self.conn, "own_head", &bytes)?;
        meta_set(&self.conn, "own_head_state", &state)?;
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_parse_to_what_they_name() {
        let device = DeviceId::from_bytes([0xab; 16]);
        assert!(matches!(parse(&paths::segment(device, 7)), Some(HeldPath::Segment(d, 7)) if d == device));
        assert!(matches!(parse(&paths::head(device)), Some(HeldPath::Head(d)) if d == device));
        assert!(matches!(parse(&paths::device_record(device)), Some(HeldPath::Record(_))));
        assert!(matches!(parse(&paths::revocation(device, &[1; 16])), Some(HeldPath::Revocation(_, [1, ..]))));
        let third = EpochRef::tagged(3, [2; 16]);
        assert!(matches!(parse(&paths::key_epoch(&third)), Some(HeldPath::KeyEpoch(e)) if e == third));
        assert!(matches!(parse(&paths::blob(&[7; 32])), Some(HeldPath::Blob(_))));
        assert!(matches!(parse(paths::VAULT_FILE), Some(HeldPath::VaultFile)));
        for junk in [
            "log/zz/HEAD",
            "log/abababababababababababababababab/1.seg",
            "blobs/00/07",
            "keys/0/passphrase.age",
            "../x",
        ] {
            assert!(parse(junk).is_none(), "{junk}");
        }
    }
}
