//! Blobs: large payloads, stored apart from records, content-addressed, deduplicated, streamed.
//!
//! A blob is cut into chunks of 1 MiB. Each chunk is sealed as its own object named by a keyed
//! hash of its plaintext (so identical chunks are stored once, and ids reveal nothing to anyone
//! without the vault key); a manifest lists the chunks and is named by the keyed hash of the
//! whole blob. Memory stays at one chunk whatever the blob's size. Records refer to a blob by
//! its id (an app puts the id in a record's JSON).

use crate::database::{from_sql_u64, to_sql_u64};
use crate::home::write_atomically;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::sync::StoreHandle;
use crate::sync::registry::Registry;
use crate::write::now_ms;
use crate::{Error, Result, Vault, random};
use ferry_format::objects::{BlobManifest, ByteArray32, decode, encode, paths};
use ferry_format::seal::{self, Expected, ObjectId, ObjectKind, OpenError};
use ferry_store::Created;
use rusqlite::params;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Bytes of plaintext per chunk.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// A blob's id: the keyed BLAKE3 hash of its content. Text form: 64 hexadecimal characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobId(pub [u8; 32]);

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for BlobId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(text, &mut id).map_err(|_| Error::InvalidBlobId(text.to_owned()))?;
        Ok(Self(id))
    }
}

/// What [`Vault::put_blob`] stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BlobInfo {
    /// The blob's id.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its chunks.
    pub chunks: u64,
    /// Chunks this device did not hold already (the rest were deduplicated).
    pub new_chunks: u64,
}

/// The keyed hash that names blob content. Chunks and whole blobs use different keys, so a
/// one-chunk blob and its chunk never share a name.
struct IdHasher(blake3::Hasher);

impl IdHasher {
    fn new(keys: &VaultKeys, kind: ObjectKind) -> Self {
        let context = match kind {
            ObjectKind::BlobChunk => "ferry 2026-11 blob chunk id v1",
            _ => "ferry 2026-11 blob id v1",
        };
        Self(blake3::Hasher::new_keyed(&blake3::derive_key(context, keys.first().expose())))
    }

    fn chunk_id(keys: &VaultKeys, bytes: &[u8]) -> BlobId {
        let mut hasher = Self::new(keys, ObjectKind::BlobChunk);
        hasher.0.update(bytes);
        hasher.finish()
    }

    fn finish(&self) -> BlobId {
        BlobId(*self.0.finalize().as_bytes())
    }
}

impl Vault {
    pub(crate) fn blob_file(&self, id: &BlobId) -> PathBuf {
        let relative = paths::blob(&id.0);
        self.home.blob_dir().join(relative.trim_start_matches("blobs/"))
    }

    /// The ids of the blob objects (chunks and manifests) this device holds.
    pub(crate) fn blob_ids(&self) -> Result<Vec<BlobId>> {
        let mut stmt = self.conn.prepare("SELECT id FROM blob_objects ORDER BY id")?;
        let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
        rows.map(|row| {
            let id: [u8; 32] = row?.as_slice().try_into().map_err(|_| Error::Corrupt("malformed blob id".into()))?;
            Ok(BlobId(id))
        })
        .collect()
    }

    /// Takes every verified blob object of `store` this device lacks (an unpacked export);
    /// returns how many. Objects that do not verify are left out.
    pub(crate) fn adopt_blob_objects(&self, store: &dyn ferry_store::Store) -> Result<u64> {
        let keys = VaultKeys::load(&self.conn)?;
        let registry = Registry::load(&self.conn)?;
        let mut adopted = 0;
        for path in store.list("blobs/")? {
            let Some(id) = path.rsplit('/').next().and_then(|hex| hex.parse::<BlobId>().ok()) else { continue };
            let listed = self.conn.prepare_cached("SELECT 1 FROM blob_objects WHERE id = ?1")?.exists([&id.0[..]])?;
            if listed {
                continue;
            }
            let Some(bytes) = store.get(&path)? else { continue };
            let Ok(header) = seal::Header::parse(&bytes) else { continue };
            let kind = header.kind;
            if !matches!(kind, ObjectKind::BlobChunk | ObjectKind::BlobManifest) {
                continue;
            }
            let expected = Expected { kind, vault_id: keys.vault_id, device_id: None, object_id: Some(ObjectId(id.0)) };
            let Ok((_, plain)) = seal::open(&bytes, &expected, |d| registry.key(d), |e| keys.key(e)) else { continue };
            let size = match kind {
                ObjectKind::BlobManifest => match decode::<BlobManifest>(&plain) {
                    Ok(manifest) => manifest.size,
                    Err(_) => continue,
                },
                _ if IdHasher::chunk_id(&keys, &plain) == id => plain.len() as u64,
                _ => continue,
            };
            let file = self.blob_file(&id);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
            }
            write_atomically(&file, &bytes)?;
            self.conn.execute(
                "INSERT INTO blob_objects (id, kind, size, added_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![&id.0[..], kind as u8, to_sql_u64(size)?, to_sql_u64(now_ms())?],
            )?;
            adopted += 1;
        }
        Ok(adopted)
    }

    /// Seals one blob object into the home (if new) and lists it; returns whether it was new.
    fn keep_blob_object(
        &self,
        kind: ObjectKind,
        id: BlobId,
        size: u64,
        plaintext: &[u8],
        keys: &VaultKeys,
        device: &DeviceKeys,
    ) -> Result<bool> {
        let file = self.blob_file(&id);
        let listed = self.conn.prepare_cached("SELECT 1 FROM blob_objects WHERE id = ?1")?.exists([&id.0[..]])?;
        if listed && file.exists() {
            return Ok(false);
        }
        let sealed = seal::seal(
            kind,
            keys.vault_id,
            self.device_id(),
            ObjectId(id.0),
            random::bytes()?,
            &keys.sealing(device),
            plaintext,
        )
        .map_err(|e| Error::Encode(e.to_string()))?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
        }
        write_atomically(&file, &sealed)?;
        self.conn.execute(
            "INSERT INTO blob_objects (id, kind, size, added_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![&id.0[..], kind as u8, to_sql_u64(size)?, to_sql_u64(now_ms())?],
        )?;
        Ok(true)
    }

    /// Stores a blob read from `reader`, one chunk in memory at a time; push publishes it.
    ///
    /// # Errors
    /// Reading fails, or local storage does.
    pub fn put_blob(&mut self, mut reader: impl Read) -> Result<BlobInfo> {
        // Chunk files a killed `put_blob` left half-written (`<id>.tmp`, older than an hour).
        if let Ok(fan_out) = std::fs::read_dir(self.home.blob_dir()) {
            for dir in fan_out.flatten() {
                ferry_store::remove_older_than(&dir.path(), "tmp", std::time::Duration::from_secs(60 * 60));
            }
        }
        let keys = VaultKeys::load(&self.conn)?;
        let device = DeviceKeys::load(&self.conn)?;
        let mut whole = IdHasher::new(&keys, ObjectKind::BlobManifest);
        let mut chunks = Vec::new();
        let (mut size, mut new_chunks) = (0u64, 0u64);
        let mut buffer = vec![0u8; CHUNK_SIZE];
        loop {
            let filled = read_full(&mut reader, &mut buffer).map_err(Error::io("cannot read", "the blob's source"))?;
            if filled == 0 {
                break;
            }
            let chunk = &buffer[..filled];
            whole.0.update(chunk);
            let id = IdHasher::chunk_id(&keys, chunk);
            if self.keep_blob_object(ObjectKind::BlobChunk, id, filled as u64, chunk, &keys, &device)? {
                new_chunks += 1;
            }
            chunks.push(ByteArray32(id.0));
            size += filled as u64;
            if filled < CHUNK_SIZE {
                break;
            }
        }
        let id = whole.finish();
        let count = chunks.len() as u64;
        self.keep_blob_object(
            ObjectKind::BlobManifest,
            id,
            size,
            &encode(&BlobManifest { size, chunks }),
            &keys,
            &device,
        )?;
        Ok(BlobInfo { id: id.to_string(), size, chunks: count, new_chunks })
    }

    /// Writes a blob's content to `out`, from this device or else from the stores, verifying every
    /// chunk and the whole. Returns the size. On error, `out` may hold a prefix: write to a
    /// temporary file and rename it only on success.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] when neither this device nor any store has it; a damaged or forged
    /// object ([`Error::BadStoreObject`]); I/O.
    pub fn get_blob(&self, id: &BlobId, stores: &[StoreHandle<'_>], mut out: impl Write) -> Result<u64> {
        let keys = VaultKeys::load(&self.conn)?;
        let registry = Registry::load(&self.conn)?;
        let manifest = self.read_blob_object(&keys, &registry, ObjectKind::BlobManifest, id, stores)?;
        let manifest: BlobManifest = decode(&manifest).map_err(|reason| self.bad_blob(id, reason))?;
        let mut whole = IdHasher::new(&keys, ObjectKind::BlobManifest);
        let mut written = 0u64;
        for chunk_id in &manifest.chunks {
            let chunk_id = BlobId(chunk_id.0);
            let chunk = self.read_blob_object(&keys, &registry, ObjectKind::BlobChunk, &chunk_id, stores)?;
            if IdHasher::chunk_id(&keys, &chunk) != chunk_id {
                return Err(self.bad_blob(&chunk_id, "content does not match its id".into()));
            }
            whole.0.update(&chunk);
            out.write_all(&chunk).map_err(Error::io("cannot write", "the blob's destination"))?;
            written += chunk.len() as u64;
        }
        if whole.finish() != *id || written != manifest.size {
            return Err(self.bad_blob(id, "the chunks do not add up to the blob".into()));
        }
        out.flush().map_err(Error::io("cannot write", "the blob's destination"))?;
        Ok(written)
    }

    fn bad_blob(&self, id: &BlobId, reason: String) -> Error {
        Error::BadStoreObject { location: "blob".into(), path: paths::blob(&id.0), reason }
    }

    /// One blob object's plaintext: from the home, else from the first store that has it (and
    /// then kept in the home).
    fn read_blob_object(
        &self,
        keys: &VaultKeys,
        registry: &Registry,
        kind: ObjectKind,
        id: &BlobId,
        stores: &[StoreHandle<'_>],
    ) -> Result<Vec<u8>> {
        let expected = Expected { kind, vault_id: keys.vault_id, device_id: None, object_id: Some(ObjectId(id.0)) };
        let open = |bytes: &[u8]| -> Result<Vec<u8>, OpenError> {
            seal::open(bytes, &expected, |d| registry.key(d), |e| keys.key(e)).map(|(_, p)| p)
        };
        let file = self.blob_file(id);
        if let Ok(bytes) = std::fs::read(&file)
            && let Ok(plain) = open(&bytes)
        {
            return Ok(plain);
        }
        let path = paths::blob(&id.0);
        let mut last_problem = None;
        for handle in stores {
            match handle.store.get(&path) {
                Ok(Some(bytes)) => match open(&bytes) {
                    Ok(plain) => {
                        if let Some(dir) = file.parent() {
                            std::fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
                        }
                        write_atomically(&file, &bytes)?;
                        return Ok(plain);
                    }
                    Err(reason) => {
                        last_problem = Some(Error::BadStoreObject {
                            location: handle.store.location(),
                            path: path.clone(),
                            reason: reason.to_string(),
                        })
                    }
                },
                Ok(None) => {}
                Err(err) => last_problem = Some(err.into()),
            }
        }
        Err(last_problem.unwrap_or(Error::BlobNotFound(id.to_string())))
    }

    /// Uploads the blob objects this store lacks (chunks before manifests); returns how many.
    pub(crate) fn push_blobs(&self, handle: StoreHandle<'_>) -> Result<u64> {
        let pending: Vec<(Vec<u8>, u8)> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, kind FROM blob_objects b WHERE NOT EXISTS
                   (SELECT 1 FROM store_blobs s WHERE s.store = ?1 AND s.id = b.id) ORDER BY kind, id",
            )?;
            stmt.query_map([handle.id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?
        };
        let mut uploaded = 0;
        for (id, _) in pending {
            let id = BlobId(id.as_slice().try_into().map_err(|_| Error::Corrupt("blob id".into()))?);
            let file = self.blob_file(&id);
            let bytes = std::fs::read(&file).map_err(Error::io("cannot read", &file))?;
            if handle.store.put_if_absent(&paths::blob(&id.0), &bytes)? == Created::New {
                uploaded += 1;
            }
            self.conn.execute(
                "INSERT INTO store_blobs (store, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![handle.id, &id.0[..]],
            )?;
        }
        Ok(uploaded)
    }

    /// Blob objects this device holds and their total plaintext size.
    ///
    /// # Errors
    /// Database failures.
    pub fn blob_usage(&self) -> Result<(u64, u64)> {
        let (count, size): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(size) FILTER (WHERE kind = 3), 0) FROM blob_objects",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((from_sql_u64(count)?, from_sql_u64(size)?))
    }
}

/// Reads until `buffer` is full or the reader ends.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blob id vectors of docs/FORMAT.md, recomputed with the code that names blobs.
    #[test]
    fn format_document_states_the_blob_id_vectors() {
        let format = include_str!("../../../docs/FORMAT.md");
        let keys = VaultKeys::single(
            ferry_format::VaultId::from_bytes([1; 16]),
            ferry_format::EpochRef::FIRST,
            ferry_format::MasterKey::new([0x42; 32]),
        );
        let chunk = IdHasher::chunk_id(&keys, b"hello");
        let mut whole = IdHasher::new(&keys, ObjectKind::BlobManifest);
        whole.0.update(b"hello");
        for (name, id) in [("blob chunk id", chunk), ("blob id", whole.finish())] {
            let line = format!("{name}: `{}`", hex::encode(id.0));
            assert!(format.contains(&line), "docs/FORMAT.md must contain the line\n{line}");
        }
    }
}
