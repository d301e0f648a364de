//! Opening the SQLCipher database and its schema.
//!
//! The tables (see `docs/ARCHITECTURE.md`):
//! - `ops`: the op log, the source of truth. One row per op, keyed by op id.
//! - `records`: derived from `ops` (the current winner and heads of each record); `repair`
//!   rebuilds it from the log at any time.
//! - `meta`: this device's identity, keys and counters.
//! - `key_epochs`: the vault master key of each epoch.
//! - `devices`: the devices of the vault known to this one.

use crate::unlock::LocalKey;
use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 12;

const SCHEMA_V1: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value ANY NOT NULL
) WITHOUT ROWID;

CREATE TABLE key_epochs (
    epoch      INTEGER PRIMARY KEY NOT NULL,
    master_key BLOB NOT NULL
);

CREATE TABLE devices (
    device_id      BLOB PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    signing_public BLOB NOT NULL,
    enrolled_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ops (
    device     BLOB NOT NULL,
    counter    INTEGER NOT NULL,
    hlc        INTEGER NOT NULL,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    kind       INTEGER NOT NULL,     -- 1 put, 2 delete
    value      TEXT,                 -- compact JSON for a put
    parents    BLOB NOT NULL,        -- concatenated 24-byte op ids
    PRIMARY KEY (device, counter)
) WITHOUT ROWID;
CREATE INDEX ops_by_record ON ops (collection, key);

CREATE TABLE records (
    collection     TEXT NOT NULL,
    key            TEXT NOT NULL,
    winner_device  BLOB NOT NULL,
    winner_counter INTEGER NOT NULL,
    winner_hlc     INTEGER NOT NULL,
    deleted        INTEGER NOT NULL, -- the winner is a delete
    heads          BLOB NOT NULL,    -- concatenated 24-byte op ids
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
";

/// Version 2: replication. Own sealed segments (kept: a segment is sealed once, and a store added
/// later gets the same bytes), stores and their progress, per-device import cursors, objects
/// waiting to be published, and objects skipped with their reasons.
const SCHEMA_V2: &str = "
ALTER TABLE devices ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN enrolled_by BLOB;

CREATE TABLE own_segments (
    seq          INTEGER PRIMARY KEY NOT NULL,
    hash         BLOB NOT NULL,          -- BLAKE3 of the sealed bytes
    last_counter INTEGER NOT NULL,       -- the last op counter it holds
    op_count     INTEGER NOT NULL,
    bytes        BLOB NOT NULL           -- the sealed segment, exactly as published
);

CREATE TABLE stores (
    id              INTEGER PRIMARY KEY NOT NULL,
    url             TEXT NOT NULL UNIQUE,
    added_ms        INTEGER NOT NULL,
    uploaded_seq    INTEGER NOT NULL DEFAULT 0,  -- own segments the store has, HEAD included
    last_attempt_ms INTEGER,
    last_success_ms INTEGER,
    last_error      TEXT,
    error_transient INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_retry_ms   INTEGER
);

CREATE TABLE store_outbox (
    store INTEGER NOT NULL,
    path  TEXT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (store, path)
) WITHOUT ROWID;

CREATE TABLE store_heads (
    store  INTEGER NOT NULL,
    device BLOB NOT NULL,
    etag   TEXT NOT NULL,
    PRIMARY KEY (store, device)
) WITHOUT ROWID;

CREATE TABLE cursors (
    device BLOB PRIMARY KEY NOT NULL,
    seq    INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    ops    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE skipped (
    store  INTEGER NOT NULL,
    path   TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms  INTEGER NOT NULL,
    PRIMARY KEY (store, path)
) WITHOUT ROWID;

INSERT INTO meta (name, value) VALUES ('sealed_counter', 0), ('auto_resolved', 0) ON CONFLICT DO NOTHING;
";

/// Version 3: blobs. Sealed blob objects (chunks and manifests) live in `<home>/blobs/`; this
/// table lists them, and `store_blobs` which stores have each.
const SCHEMA_V3: &str = "
CREATE TABLE blob_objects (
    id       BLOB PRIMARY KEY NOT NULL,  -- 32-byte keyed hash
    kind     INTEGER NOT NULL,           -- 3 chunk, 4 manifest
    size     INTEGER NOT NULL,           -- plaintext bytes (a manifest: the whole blob)
    added_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE store_blobs (
    store INTEGER NOT NULL,
    id    BLOB NOT NULL,
    PRIMARY KEY (store, id)
) WITHOUT ROWID;
";

/// Version 4: relaying between stores. The sealed bytes of every device record, imported
/// segment and latest HEAD are kept exactly as their writer sealed them, so this device can
/// publish them to a store that lacks them (data crosses stores, and stores added later get the
/// whole history).
const SCHEMA_V4: &str = "
ALTER TABLE devices ADD COLUMN record BLOB;
ALTER TABLE store_heads ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE imported_segments (
    device BLOB NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;

CREATE TABLE device_heads (
    device BLOB PRIMARY KEY NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL
) WITHOUT ROWID;
";

/// Version 5: key epochs and revocation. Each epoch after the first keeps its sealed
/// `keys/<epoch>/epoch` object (relayed to stores, exported) and its members; devices keep the
/// epoch their record was sealed under, their revocation, and when they last wrote.
const SCHEMA_V5: &str = "
ALTER TABLE key_epochs ADD COLUMN object BLOB;
ALTER TABLE key_epochs ADD COLUMN members BLOB;  -- concatenated 16-byte device ids
ALTER TABLE devices ADD COLUMN record_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN revoked_ms INTEGER;
ALTER TABLE devices ADD COLUMN revoked_by BLOB;
ALTER TABLE devices ADD COLUMN revoked_last_seq INTEGER;
ALTER TABLE devices ADD COLUMN revoked_new_epoch INTEGER;
ALTER TABLE devices ADD COLUMN revocation BLOB;
ALTER TABLE devices ADD COLUMN last_write_ms INTEGER;
";

/// Version 6: merge policies. A record keeps the value its policy merged when that is no
/// single op's value (`fields`); concurrent writes are counted per collection.
const SCHEMA_V6: &str = "
ALTER TABLE records ADD COLUMN merged TEXT;
CREATE TABLE collection_stats (
    collection TEXT PRIMARY KEY NOT NULL,
    concurrent INTEGER NOT NULL DEFAULT 0   -- writes that did not see each other, merged
) WITHOUT ROWID;
";

/// Version 7: search. Live records' text in an FTS5 index (with secure-delete, so deleted
/// words leave the index), its rowids, and the records changed since it was last brought up
/// to date.
const SCHEMA_V7: &str = "
CREATE TABLE search_rows (
    id         INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    UNIQUE (collection, key)
);
CREATE VIRTUAL TABLE search_index USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO search_index (search_index, rank) VALUES ('secure-delete', 1);
CREATE TABLE search_dirty (            -- appended to (cheap on every write), read distinct
    id         INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    key        TEXT NOT NULL
);
INSERT INTO search_dirty (collection, key) SELECT collection, key FROM records;
";

/// Version 8: forget. The ids (only) of forgotten ops, so they are never imported again and
/// their copies are purged; per store, the first own segment to overwrite after a purge; per
/// other device, the generation of its log this device follows.
const SCHEMA_V8: &str = "
CREATE TABLE forgotten_ops (
    device  BLOB NOT NULL,
    counter INTEGER NOT NULL,
    purged  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device, counter)
) WITHOUT ROWID;
CREATE INDEX ops_forgets ON ops (kind) WHERE kind = 3;
ALTER TABLE stores ADD COLUMN rewrite_from INTEGER;
ALTER TABLE cursors ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
INSERT INTO meta (name, value) VALUES ('log_generation', 0), ('rewritten_from', 0) ON CONFLICT DO NOTHING;
";

/// Version 9: peers. A peer this device pulls from keeps its progress (HEAD etags, skipped
/// objects, attempts) in `stores` like a store, marked as a peer so store commands skip it.
const SCHEMA_V9: &str = "
ALTER TABLE stores ADD COLUMN peer INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stores ADD COLUMN peer_device BLOB;  -- the device expected at a stored peer address
";

/// Version 10: tagged key epochs. Each epoch after the first keeps the random tag its rotation
/// chose (its directory is `keys/<epoch>.<tag>/`); a revocation keeps the tag of the epoch it
/// starts. A store writer cannot take those names first, so cannot block a rotation.
const SCHEMA_V10: &str = "
ALTER TABLE key_epochs ADD COLUMN tag BLOB;
ALTER TABLE devices ADD COLUMN revoked_epoch_tag BLOB;
";

/// Version 11: when each store was last listed to check it still holds what this device holds.
const SCHEMA_V11: &str = "
ALTER TABLE stores ADD COLUMN audited_ms INTEGER;
";

/// Version 12: retention. Snapshots this device knows of (its own, the ones it loaded, and
/// ones it saw in stores: their cut), the sealed objects of those it holds (served, relayed),
/// which stores hold which; per device, the highest op counter below which ops missing from the
/// log were compacted away (never imported again).
const SCHEMA_V12: &str = "
CREATE TABLE snapshots (
    writer     BLOB NOT NULL,
    n          INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms    INTEGER NOT NULL,     -- when this device first saw it
    ops        INTEGER NOT NULL,
    parts      INTEGER NOT NULL,
    cut        BLOB NOT NULL,        -- CBOR of the manifest's cut
    held       INTEGER NOT NULL DEFAULT 0,  -- every object of it is in snapshot_objects
    PRIMARY KEY (writer, n)
) WITHOUT ROWID;
CREATE TABLE snapshot_objects (
    path   TEXT PRIMARY KEY NOT NULL,
    writer BLOB NOT NULL,
    n      INTEGER NOT NULL,
    bytes  BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX snapshot_objects_by_snapshot ON snapshot_objects (writer, n);
CREATE TABLE store_snapshots (
    store  INTEGER NOT NULL,
    writer BLOB NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (store, writer, n)
) WITHOUT ROWID;
CREATE TABLE store_deletions (      -- own objects to delete from a store (a snapshot a forget outdated)
    store INTEGER NOT NULL,
    path  TEXT NOT NULL,
    PRIMARY KEY (store, path)
) WITHOUT ROWID;
ALTER TABLE imported_segments ADD COLUMN hash BLOB;
ALTER TABLE stores ADD COLUMN listed_objects INTEGER;  -- the store's size when last listed
ALTER TABLE stores ADD COLUMN listed_bytes INTEGER;
ALTER TABLE stores ADD COLUMN listed_ms INTEGER;  -- kept when the copy is dropped (bytes empty)
CREATE TABLE compacted (
    device  BLOB PRIMARY KEY NOT NULL,
    counter INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('snapshot_counter', 0) ON CONFLICT DO NOTHING;
DROP INDEX ops_by_record;
CREATE INDEX ops_by_record ON ops (collection, key, hlc, kind);
";

/// The index of the log by record (as version 12 made it), covering what folding a record
/// with one op needs: a bulk load drops it and builds it again once, sorted.
pub(crate) const OPS_BY_RECORD: &str = "CREATE INDEX ops_by_record ON ops (collection, key, hlc, kind)";

/// The page cache of a connection, in SQLite's units (negative: KiB).
pub(crate) const CACHE_SIZE: i64 = -32_768;

/// Opens (or creates) the database at `path` with the local key, and checks that the key fits.
pub(crate) fn open(path: &Path, key: &LocalKey, create: bool) -> Result<Connection> {
    owner_only(path, create)?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(&format!("PRAGMA key = {};", key.sqlcipher_literal().as_str()))?;
    // The first read decrypts page 1: a wrong key or a foreign file fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|_| Error::DatabaseKeyMismatch { path: path.to_owned() })?;
    conn.execute_batch(&format!(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = {CACHE_SIZE};",
    ))?;
    Ok(conn)
}

/// Makes the database file (created empty first if `create`) and its WAL and shared-memory
/// files readable by their owner only. SQLite gives the WAL and SHM files the database file's
/// mode when it creates them; the existing ones are set here too.
fn owner_only(path: &Path, create: bool) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create && !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(Error::io("cannot create", path))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(Error::io("cannot set permissions of", &file))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Corrupt(format!(
            "the database has schema version {version}, this ferry understands up to {SCHEMA_VERSION}: upgrade ferry"
        )));
    }
    let steps = [
        SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8, SCHEMA_V9, SCHEMA_V10,
        SCHEMA_V11, SCHEMA_V12,
    ];
    let pending = steps.get(usize::try_from(version).unwrap_or(usize::MAX)..).unwrap_or_default();
    if pending.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for step in pending {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Reads a `meta` value; a missing required entry is damage.
pub(crate) fn meta_get<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> Result<T> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?
        .ok_or_else(|| Error::Corrupt(format!("missing `{name}` in meta")))
}

/// Writes a `meta` value.
pub(crate) fn meta_set(conn: &Connection, name: &str, value: impl rusqlite::ToSql) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// Converts an unsigned counter to SQLite's signed integer.
pub(crate) fn to_sql_u64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Corrupt(format!("counter {value} exceeds the storable range")))
}

/// Reads an unsigned counter stored as SQLite's signed integer.
pub(crate) fn from_sql_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative counter {value}")))
}
