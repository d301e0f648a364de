//! `ferry export` / `ferry import`: the whole vault in one encrypted file.
//!
//! An export is the store objects this device holds (the vault file, key history, device
//! records and revocations, every device's segments and HEAD, blobs) exactly as sealed, after a
//! header that carries the newest vault key, all inside one age file encrypted to the vault's
//! recovery key or to a passphrase. Importing unpacks it into a temporary folder store and
//! pulls from it like from any store, with the same verification, so an import merges: ops
//! already present are kept once, and nothing in the file is trusted without its signature.
//! The database itself is never exported.

use crate::identity::{DeviceKeys, VaultKeys};
use crate::sync::epochs::read_key_chain;
use crate::sync::{StoreHandle, enroll::check_fingerprint, enroll::read_vault_file};
use crate::unlock::{KdfCost, Unlock};
use crate::vault::{CreateOptions, Membership};
use crate::write::now_ms;
use crate::{Error, Home, Result, Vault, random};
use ferry_format::RecoveryPhrase;
use ferry_format::objects::{ExportHeader, ExportItem, VaultFile, decode_from, encode, paths};
use ferry_format::{MasterKey, VaultId};
use ferry_store::{FolderStore, Store};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What an export is encrypted to.
#[derive(Clone, Debug)]
pub enum ExportTo {
    /// The vault's recovery key: the recovery phrase opens it.
    RecoveryKey,
    /// A passphrase (scrypt; the cost of the unlock settings' KDF).
    Passphrase(Unlock),
}

/// The secret that opens an export.
#[derive(Clone, Debug)]
pub enum BackupSecret {
    /// The vault's recovery phrase.
    RecoveryPhrase(RecoveryPhrase),
    /// The passphrase given at export.
    Passphrase(crate::Passphrase),
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ExportReport {
    /// The file.
    pub path: PathBuf,
    /// Store objects in it.
    pub objects: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Ops of all devices it holds.
    pub ops: u64,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// Store objects in the file.
    pub objects: u64,
    /// Ops new to this device.
    pub imported_ops: u64,
    /// Devices newly known.
    pub new_devices: u64,
    /// Blob objects new to this device.
    pub blob_objects: u64,
    /// Objects skipped, with reasons.
    pub skipped: Vec<(String, String)>,
}

impl Vault {
    /// Writes the whole vault, as this device holds it, to one encrypted file (replaced
    /// atomically). Unpublished local ops are sealed first, so they are in it.
    ///
    /// # Errors
    /// I/O; local failures.
    pub fn export(&mut self, path: &Path, to: &ExportTo) -> Result<ExportReport> {
        self.seal_pending_ops()?;
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let header = ExportHeader {
            format: "ferry-export".into(),
            version: ExportHeader::VERSION,
            vault_id: keys.vault_id.to_string(),
            epoch: keys.epoch,
            epoch_tag: keys.current().tag.map(ferry_format::objects::ByteArray16),
            key: *keys.master_key.expose(),
            recovery_recipient: crate::database::meta_get(&self.conn, "recovery_recipient")?,
            exported_ms: now_ms(),
            device: self.device_id().to_string(),
        };
        let tmp = path.with_extension("ferry-export-tmp");
        let file = std::fs::File::create(&tmp).map_err(Error::io("cannot create", &tmp))?;
        let recipient: Box<dyn age::Recipient> = match to {
            ExportTo::RecoveryKey => Box::new(
                header
                    .recovery_recipient
                    .parse::<age::x25519::Recipient>()
                    .map_err(|e| Error::Corrupt(format!("recovery recipient: {e}")))?,
            ),
            ExportTo::Passphrase(unlock) => {
                let mut recipient = age::scrypt::Recipient::new(unlock.passphrase.secret());
                recipient.set_work_factor(match unlock.kdf_cost {
                    KdfCost::Standard => 18,
                    KdfCost::WorkFactor(log_n) => log_n,
                });
                Box::new(recipient)
            }
        };
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient.as_ref()))
            .map_err(|e| Error::KeyFile { path: path.to_owned(), reason: e.to_string() })?;
        let io = Error::io("cannot write", &tmp);
        let mut out = encryptor.wrap_output(BufWriter::new(file)).map_err(Error::io("cannot write", &tmp))?;
        out.write_all(&encode(&header)).map_err(Error::io("cannot write", &tmp))?;
        let mut objects = 0u64;
        let mut write = |path: String, bytes: Vec<u8>| -> Result<()> {
            objects += 1;
            out.write_all(&encode(&ExportItem::Object { path, bytes })).map_err(Error::io("cannot write", &tmp))
        };
        let vault_file = VaultFile {
            format: "ferry-vault".into(),
            version: VaultFile::VERSION,
            vault_id: keys.vault_id.to_string(),
            created_ms: crate::database::from_sql_u64(crate::database::meta_get(&self.conn, "created_ms")?)?,
            fingerprint: keys.fingerprint().to_string(),
        };
        write(
            paths::VAULT_FILE.into(),
            serde_json::to_vec_pretty(&vault_file).map_err(|e| Error::Encode(e.to_string()))?,
        )?;
        for (path, bytes) in self.registry_objects()? {
            write(path, bytes)?;
        }
        write(paths::device_record(self.device_id()), self.own_record(&keys, &device_keys)?)?;
        for (device, record) in
            self.rows::<Vec<u8>>("SELECT device_id, record FROM devices WHERE record IS NOT NULL AND device_id != ?1")?
        {
            write(paths::device_record(device), record)?;
        }
        let own = self.device_id();
        for (seq, bytes) in self.own_segments()? {
            write(paths::segment(own, seq), bytes)?;
        }
        // (The last segment, even where a snapshot stands for its copy.)
        let last_own: i64 =
            self.conn.query_row("SELECT coalesce(max(seq), 0) FROM own_segments", [], |row| row.get(0))?;
        let last_own = crate::database::from_sql_u64(last_own)?;
        if last_own > 0 {
            write(paths::head(own), self.seal_own_head(last_own)?)?;
        }
        for (device, seq, bytes) in self.imported_segments()? {
            write(paths::segment(device, seq), bytes)?;
        }
        for (device, head) in self.rows::<Vec<u8>>("SELECT device, bytes FROM device_heads WHERE device != ?1")? {
            write(paths::head(device), head)?;
        }
        for id in self.blob_ids()? {
            let file = self.blob_file(&id);
            let bytes = std::fs::read(&file).map_err(Error::io("cannot read", &file))?;
            write(paths::blob(&id.0), bytes)?;
        }
        // Snapshots stand for the segments whose copies were dropped after a prune.
        for (path, bytes) in self.snapshot_objects()? {
            write(path, bytes)?;
        }
        out.write_all(&encode(&ExportItem::End { objects })).map_err(Error::io("cannot write", &tmp))?;
        let mut file = out.finish().map_err(Error::io("cannot write", &tmp))?;
        file.flush().map_err(Error::io("cannot write", &tmp))?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(Error::io("cannot write", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(Error::io("cannot create", path))?;
        let bytes = std::fs::metadata(path).map_err(Error::io("cannot read", path))?.len();
        Ok(ExportReport { path: path.to_owned(), objects, bytes, ops: self.status()?.ops })
    }

    /// Merges an export of this vault into this device: new ops, devices, revocations, key
    /// epochs and blobs. What this device has already is kept once.
    ///
    /// # Errors
    /// [`Error::WrongBackupSecret`], [`Error::BadBackup`], [`Error::KeyMismatch`] for an export
    /// of another vault (nothing changes); I/O; local failures.
    pub fn import(&mut self, path: &Path, secret: &BackupSecret) -> Result<ImportReport> {
        let staging = self.home.root().join("import.tmp");
        let result = (|| {
            let (header, objects) = unpack(path, secret, &staging)?;
            let store = FolderStore::new(&staging);
            let keys = VaultKeys::load(&self.conn)?;
            let found = read_vault_file(&store)?.ok_or_else(|| bad(path, "it holds no vault file"))?;
            let mut theirs = VaultKeys::single(found.vault_id, header.epoch_ref(), MasterKey::new(header.key));
            read_key_chain(&store, &mut theirs)?;
            check_made_by(secret, &theirs, path)?;
            check_fingerprint(&store, &found, &theirs).map_err(|_| Error::KeyMismatch {
                location: path.display().to_string(),
                found: found.vault_id.to_string(),
                found_fingerprint: found.fingerprint.clone(),
                ours: keys.vault_id.to_string(),
                our_fingerprint: keys.fingerprint().to_string(),
            })?;
            check_fingerprint(&store, &found, &keys).map_err(|e| match e {
                Error::KeyMismatch { found, found_fingerprint, ours, our_fingerprint, .. } => Error::KeyMismatch {
                    location: path.display().to_string(),
                    found,
                    found_fingerprint,
                    ours,
                    our_fingerprint,
                },
                other => other,
            })?;
            self.absorb(&store, objects)
        })();
        remove_staging(&staging);
        result
    }

    /// Creates this device's vault from an export (every device and store lost): a new device
    /// of the exported vault, holding everything the export held.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`], [`Error::WrongBackupSecret`], [`Error::BadBackup`]
    /// (nothing is created); I/O; local failures.
    pub fn restore(
        home: &Home,
        options: &CreateOptions,
        path: &Path,
        secret: &BackupSecret,
    ) -> Result<(Vault, ImportReport)> {
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        let existed = home.root().exists();
        home.create_dir()?;
        let staging = home.root().join("import.tmp");
        let result = (|| {
            let (header, objects) = unpack(path, secret, &staging)?;
            let store = FolderStore::new(&staging);
            let vault_id: VaultId = header.vault_id.parse().map_err(|_| bad(path, "malformed vault id"))?;
            let mut keys = VaultKeys::single(vault_id, header.epoch_ref(), MasterKey::new(header.key));
            let chain = read_key_chain(&store, &mut keys)?;
            check_made_by(secret, &keys, path)?;
            let found = read_vault_file(&store)?.ok_or_else(|| bad(path, "it holds no vault file"))?;
            check_fingerprint(&store, &found, &keys)?;
            let membership = Membership {
                keys: &keys,
                epoch_objects: &chain,
                recovery_recipient: &header.recovery_recipient,
                paired: None,
            };
            let mut vault = Vault::create_device(home, options, membership)?;
            let report = vault.absorb(&store, objects)?;
            Ok((vault, report))
        })();
        remove_staging(&staging);
        if result.is_err() && !existed {
            let _ = std::fs::remove_dir_all(home.root());
        }
        result
    }

    /// Pulls everything from an unpacked export, as from a store that is then forgotten.
    fn absorb(&mut self, store: &FolderStore, objects: u64) -> Result<ImportReport> {
        let url = format!("import:{}", hex::encode(random::bytes::<8>()?));
        let id = self.add_store(&url)?;
        let pulled = self.pull(StoreHandle { id, store });
        let blob_objects = pulled.as_ref().map_or(Ok(0), |_| self.adopt_blob_objects(store));
        self.detach_store(id)?;
        let (pulled, blob_objects) = (pulled?, blob_objects?);
        Ok(ImportReport {
            objects,
            imported_ops: pulled.imported_ops,
            new_devices: pulled.new_devices,
            blob_objects,
            skipped: pulled.skipped,
        })
    }

    fn rows<T: rusqlite::types::FromSql>(&self, sql: &str) -> Result<Vec<(ferry_format::DeviceId, T)>> {
        let mut stmt = self.conn.prepare(sql)?;
        let own = self.device_id().as_bytes().to_vec();
        let rows = stmt.query_map([own], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, T>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (device, value) = row?;
            let device = ferry_format::DeviceId::from_slice(&device)
                .ok_or_else(|| Error::Corrupt("malformed device id".into()))?;
            out.push((device, value));
        }
        Ok(out)
    }

    /// Every snapshot object this device holds, by store path.
    fn snapshot_objects(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut stmt = self.conn.prepare("SELECT path, bytes FROM snapshot_objects ORDER BY path")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn own_segments(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut stmt = self.conn.prepare("SELECT seq, bytes FROM own_segments WHERE length(bytes) > 0 ORDER BY seq")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
        rows.map(|row| {
            let (seq, bytes) = row?;
            Ok((crate::database::from_sql_u64(seq)?, bytes))
        })
        .collect()
    }

    fn imported_segments(&self) -> Result<Vec<(ferry_format::DeviceId, u64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT device, seq, bytes FROM imported_segments WHERE length(bytes) > 0 ORDER BY device, seq")?;
        let rows = stmt
            .query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?)))?;
        rows.map(|row| {
            let (device, seq, bytes) = row?;
            let device = ferry_format::DeviceId::from_slice(&device)
                .ok_or_else(|| Error::Corrupt("malformed device id".into()))?;
            Ok((device, crate::database::from_sql_u64(seq)?, bytes))
        })
        .collect()
    }
}

fn bad(path: &Path, reason: &str) -> Error {
    Error::BadBackup { path: path.to_owned(), reason: reason.to_owned() }
}

/// An export opened with the recovery phrase must hold the vault of that phrase: its key chain
/// must lead down to the first key the phrase derives. Anyone can encrypt a file to the
/// public recovery recipient; only the vault's own history passes this.
fn check_made_by(secret: &BackupSecret, keys: &VaultKeys, path: &Path) -> Result<()> {
    let BackupSecret::RecoveryPhrase(phrase) = secret else { return Ok(()) };
    if keys.key(0).is_some_and(|first| phrase.made(first)) {
        return Ok(());
    }
    Err(bad(
        path,
        "it opens with the recovery phrase but does not hold the vault of that phrase (a forged file?): nothing was imported",
    ))
}

fn remove_staging(staging: &Path) {
    let _ = std::fs::remove_dir_all(staging);
}

/// Decrypts an export into a folder store at `staging`; returns its header and object count.
fn unpack(path: &Path, secret: &BackupSecret, staging: &Path) -> Result<(ExportHeader, u64)> {
    let file = std::fs::File::open(path).map_err(Error::io("cannot open", path))?;
    let decryptor =
        age::Decryptor::new(BufReader::new(file)).map_err(|e| bad(path, &format!("not a ferry export ({e})")))?;
    let wrong = |secret: &'static str| Error::WrongBackupSecret { path: path.to_owned(), secret };
    let reader: Box<dyn Read> = match secret {
        BackupSecret::RecoveryPhrase(phrase) => {
            if decryptor.is_scrypt() {
                return Err(wrong("recovery phrase"));
            }
            let identity = crate::identity::recovery_identity(phrase)?;
            Box::new(
                decryptor
                    .decrypt(std::iter::once(&identity as &dyn age::Identity))
                    .map_err(|_| wrong("recovery phrase"))?,
            )
        }
        BackupSecret::Passphrase(passphrase) => {
            if !decryptor.is_scrypt() {
                return Err(wrong("passphrase"));
            }
            let mut identity = age::scrypt::Identity::new(passphrase.secret());
            identity.set_max_work_factor(22);
            Box::new(
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).map_err(|_| wrong("passphrase"))?,
            )
        }
    };
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(Error::io("cannot create directory", staging))?;
    read_export(BufReader::new(reader), &FolderStore::new(staging), path)
}

/// Reads a decrypted export stream (header, objects, end marker) into `store`; `path` names
/// the file in errors. Bytes from a file: every failure is [`Error::BadBackup`].
pub(crate) fn read_export(mut reader: impl Read, store: &dyn Store, path: &Path) -> Result<(ExportHeader, u64)> {
    let header: ExportHeader = decode_from(&mut reader).map_err(|e| bad(path, &format!("header: {e}")))?;
    if header.format != "ferry-export" {
        return Err(bad(path, "not a ferry export"));
    }
    if header.version > ExportHeader::VERSION {
        return Err(bad(path, "made by a newer ferry: upgrade ferry to import it"));
    }
    let mut objects = 0u64;
    loop {
        let item: ExportItem = decode_from(&mut reader)
            .map_err(|e| bad(path, &format!("cut or damaged after {objects} objects ({e})")))?;
        match item {
            ExportItem::Object { path: object_path, bytes } => {
                store.put(&object_path, &bytes).map_err(|e| bad(path, &format!("object {object_path}: {e}")))?;
                objects += 1;
            }
            ExportItem::End { objects: expected } if expected == objects => return Ok((header, objects)),
            ExportItem::End { objects: expected } => {
                return Err(bad(path, &format!("it says {expected} objects but holds {objects}")));
            }
        }
    }
}
