//! Creating and opening a device's vault, and the handle apps hold.

use crate::database::{self, from_sql_u64, meta_get, meta_set};
use crate::home::{Home, sync_dir};
use crate::identity::{self, DeviceKeys, VaultKeys, load_device_id};
use crate::sync::epochs::{EpochObject, save_epoch_objects};
use crate::sync::registry::DeviceRecord;
use crate::unlock::{LocalKey, Unlock};
use crate::watch::Watchers;
use crate::write::{Writer, now_ms};
use crate::{Change, Error, Result, random};
use ferry_format::{DeviceId, Fingerprint, Hlc, OpId, RecoveryPhrase, VaultId};
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::PathBuf;
use std::sync::mpsc;

/// How to create a vault on a new device.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// A name people recognise the device by ("laptop").
    pub device_name: String,
    /// The passphrase that will unlock this device's local database.
    pub unlock: Unlock,
}

/// What a new device of a vault starts with: the vault's keys and, when it was paired, the
/// identity and record its inviter made for it.
pub(crate) struct Membership<'a> {
    pub(crate) keys: &'a VaultKeys,
    /// The key epoch objects below the current epoch (read when joining).
    pub(crate) epoch_objects: &'a [EpochObject],
    pub(crate) recovery_recipient: &'a str,
    pub(crate) paired: Option<PairedIdentity>,
}

/// A device identity made before the vault existed locally (pairing), with its record.
pub(crate) struct PairedIdentity {
    pub(crate) keys: DeviceKeys,
    pub(crate) record: DeviceRecord,
}

/// A freshly created vault and its recovery phrase.
#[derive(Debug)]
#[non_exhaustive]
pub struct Created {
    /// The open vault.
    pub vault: Vault,
    /// Shown to the user once and never stored: with every device lost, it is the only way back.
    pub recovery_phrase: RecoveryPhrase,
}

/// One device's open vault: the local database of records and ops.
///
/// A `Vault` is one SQLite connection: use it from one thread at a time (it is `Send`), or open
/// one per thread; several handles, in one process or several, may share a home safely.
pub struct Vault {
    pub(crate) conn: Connection,
    pub(crate) home: Home,
    pub(crate) local_key: LocalKey,
    unlocked_with: UnlockedWith,
    device_id: DeviceId,
    vault_id: VaultId,
    watchers: Watchers,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("home", &self.home.root()).field("device_id", &self.device_id).finish()
    }
}

/// How a vault was unlocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum UnlockedWith {
    /// The passphrase opened `local-key.age`.
    Passphrase,
    /// The OS keychain held the key.
    Keychain,
}

/// A summary of the local vault.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The device home directory.
    pub home: PathBuf,
    /// The vault.
    pub vault_id: String,
    /// This device.
    pub device_id: String,
    /// This device's name.
    pub device_name: String,
    /// Fingerprint of this device's signing key.
    pub device_fingerprint: String,
    /// Fingerprint of the current vault key: equal on every device of the vault.
    pub vault_key_fingerprint: String,
    /// The current key epoch.
    pub key_epoch: u32,
    /// How this vault was unlocked now.
    pub unlocked_with: UnlockedWith,
    /// Whether the OS keychain holds this device's key (commands need no passphrase).
    pub key_in_keychain: bool,
    /// The OS keychain's state for this device, in words.
    pub keychain: String,
    /// When the vault was created on this device (ms since the Unix epoch).
    pub created_ms: u64,
    /// Collections with at least one record (live or deleted).
    pub collections: u64,
    /// Live records.
    pub records: u64,
    /// Deleted records (kept as the ops that deleted them).
    pub deleted_records: u64,
    /// Ops in the log, from every device.
    pub ops: u64,
    /// Ops written here that not every store has yet (all of them while there is no store).
    pub unpublished_ops: u64,
}

/// A device of the vault, as this device knows it.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The device id.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// Fingerprint of its signing key.
    pub fingerprint: String,
    /// When it was enrolled (ms since the Unix epoch).
    pub enrolled_ms: u64,
    /// The device that enrolled it (itself when it joined with the passphrase or recovery
    /// phrase).
    pub enrolled_by: Option<String>,
    /// When it last wrote, as far as this device has seen (ms since the Unix epoch).
    pub last_write_ms: Option<u64>,
    /// The device that revoked it, if it is revoked.
    pub revoked_by: Option<String>,
    /// When it was revoked.
    pub revoked_ms: Option<u64>,
    /// Whether it is a member now: not revoked, nor left out of a key rotation.
    pub active: bool,
    /// Whether it is the device running this code.
    pub this_device: bool,
}

impl Vault {
    /// Creates a new vault with this device as its first member.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if the home holds a vault; I/O and database failures.
    pub fn create(home: &Home, options: CreateOptions) -> Result<Created> {
        let recovery_phrase = RecoveryPhrase::from_entropy(random::bytes()?);
        let recovery_recipient = identity::recovery_identity(&recovery_phrase)?.to_public().to_string();
        // The first key derives from the phrase, so the phrase authenticates the vault.
        let keys = VaultKeys::single(
            ferry_format::VaultId::from_bytes(random::bytes()?),
            ferry_format::EpochRef::FIRST,
            recovery_phrase.first_vault_key(),
        );
        let membership =
            Membership { keys: &keys, epoch_objects: &[], recovery_recipient: &recovery_recipient, paired: None };
        let vault = Self::create_device(home, &options, membership)?;
        Ok(Created { vault, recovery_phrase })
    }

    /// Creates this device's local vault for a vault that exists (new, or joined from a store).
    pub(crate) fn create_device(home: &Home, options: &CreateOptions, membership: Membership<'_>) -> Result<Self> {
        let device_name = validate_device_name(&options.device_name)?;
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        home.create_dir()?;
        let local_key = LocalKey::generate()?;
        local_key.write_wrapped(&home.local_key_file(), &options.unlock)?;

        // Build the database under a temporary name: a crash leaves no half-made vault.
        let creating = home.root().join("vault.db.creating");
        for stale in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{stale}", creating.display()));
            if path.exists() {
                std::fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
            }
        }
        {
            let mut conn = database::open(&creating, &local_key, true)?;
            database::migrate(&mut conn)?;
            let tx = conn.transaction()?;
            let (device_id, device_keys, record) = match membership.paired {
                Some(paired) => (paired.record.device_id, paired.keys, Some(paired.record)),
                None => (DeviceId::from_bytes(random::bytes()?), DeviceKeys::generate()?, None),
            };
            let created_ms = database::to_sql_u64(now_ms())?;
            meta_set(&tx, "device_id", &device_id.as_bytes()[..])?;
            meta_set(&tx, "device_name", device_name)?;
            meta_set(&tx, "created_ms", created_ms)?;
            meta_set(&tx, "op_counter", 0)?;
            meta_set(&tx, "hlc", 0)?;
            meta_set(&tx, "recovery_recipient", membership.recovery_recipient)?;
            device_keys.save(&tx)?;
            membership.keys.save(&tx)?;
            save_epoch_objects(&tx, membership.epoch_objects)?;
            let (enrolled_by, sealed, record_epoch) = match &record {
                Some(record) => (record.enrolled_by, Some(record.sealed.clone()), record.epoch),
                None => (device_id, None, membership.keys.epoch),
            };
            tx.execute(
                "INSERT INTO devices (device_id, name, signing_public, enrolled_ms, recipient, enrolled_by, record, record_epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &device_id.as_bytes()[..],
                    device_name,
                    &device_keys.signing_public()[..],
                    created_ms,
                    device_keys.recipient(),
                    &enrolled_by.as_bytes()[..],
                    sealed,
                    record_epoch,
                ],
            )?;
            tx.commit()?;
            conn.pragma_update(None, "journal_mode", "DELETE")?;
        }
        std::fs::rename(&creating, home.database()).map_err(Error::io("cannot create", home.database()))?;
        sync_dir(home.root())?;
        Self::open(home, &options.unlock)
    }

    /// Opens this device's vault.
    ///
    /// # Errors
    /// [`Error::NoVault`], [`Error::WrongPassphrase`] (nothing is modified), damage, I/O.
    pub fn open(home: &Home, unlock: &Unlock) -> Result<Self> {
        if !home.has_vault() {
            return Err(Error::NoVault { home: home.root().to_owned() });
        }
        let local_key = LocalKey::read_wrapped(&home.local_key_file(), home.root(), unlock)?;
        Self::open_with_key(home, local_key, UnlockedWith::Passphrase)
    }

    /// Opens this device's vault with the key kept in the OS keychain, if there is one.
    /// `Ok(None)` when the keychain is unavailable or holds no (working) key for this home:
    /// then open with the passphrase.
    ///
    /// # Errors
    /// [`Error::NoVault`]; damage, I/O.
    pub fn open_from_keychain(home: &Home) -> Result<Option<Self>> {
        if !home.has_vault() {
            return Err(Error::NoVault { home: home.root().to_owned() });
        }
        match crate::keychain::lookup(home) {
            crate::keychain::Lookup::Found(key) => match Self::open_with_key(home, key, UnlockedWith::Keychain) {
                Ok(vault) => Ok(Some(vault)),
                // A stale entry (the home was re-created): the passphrase decides.
                Err(Error::DatabaseKeyMismatch { .. }) => Ok(None),
                Err(err) => Err(err),
            },
            crate::keychain::Lookup::Missing | crate::keychain::Lookup::Unavailable(_) => Ok(None),
        }
    }

    fn open_with_key(home: &Home, local_key: LocalKey, unlocked_with: UnlockedWith) -> Result<Self> {
        let mut conn = database::open(&home.database(), &local_key, false)?;
        database::migrate(&mut conn)?;
        let device_id = load_device_id(&conn)?;
        let vault_id = VaultKeys::load(&conn)?.vault_id;
        Ok(Self {
            conn,
            home: home.clone(),
            local_key,
            unlocked_with,
            device_id,
            vault_id,
            watchers: Watchers::default(),
        })
    }

    /// Opens a second handle on this vault (another database connection), for a thread that
    /// serves or syncs while this one writes. No passphrase is asked: the key is in memory.
    ///
    /// # Errors
    /// Database failures.
    pub fn reopen(&self) -> Result<Self> {
        Self::open_with_key(&self.home, self.local_key.clone(), self.unlocked_with)
    }

    /// Keeps this device's database key in the OS keychain, so it opens without the passphrase
    /// ([`Vault::open_from_keychain`]). The passphrase keeps working.
    ///
    /// # Errors
    /// [`Error::KeychainUnavailable`] when there is no usable keychain.
    pub fn remember_in_keychain(&self) -> Result<()> {
        crate::keychain::store(&self.home, &self.local_key)
    }

    /// Removes this device's key from the OS keychain: the passphrase is needed again.
    ///
    /// # Errors
    /// [`Error::KeychainUnavailable`] when the keychain cannot be reached.
    pub fn forget_keychain(&self) -> Result<()> {
        crate::keychain::forget(&self.home)
    }

    /// The home this vault lives in.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The vault's id.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// Runs `f` in one transaction: every op it writes commits together, or none does.
    /// Batching many writes in one call is much faster than one call each.
    ///
    /// # Errors
    /// Whatever `f` returns, and database failures; on error nothing is written.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = Writer::begin(&tx, self.device_id)?;
        let out = f(&mut writer)?;
        let changes = writer.finish()?;
        tx.commit()?;
        self.watchers.notify(&changes);
        Ok(out)
    }

    /// Sets a record's value (one transaction).
    ///
    /// # Errors
    /// See [`Writer::put`].
    pub fn put(&mut self, collection: &str, key: &str, value: &serde_json::Value) -> Result<OpId> {
        self.write(|w| w.put(collection, key, value))
    }

    /// Sets a record's value from JSON text (one transaction).
    ///
    /// # Errors
    /// See [`Writer::put_json`].
    pub fn put_json(&mut self, collection: &str, key: &str, json: &str) -> Result<OpId> {
        self.write(|w| w.put_json(collection, key, json))
    }

    /// Deletes a record (one transaction).
    ///
    /// # Errors
    /// See [`Writer::delete`].
    pub fn delete(&mut self, collection: &str, key: &str) -> Result<OpId> {
        self.write(|w| w.delete(collection, key))
    }

    /// Announces committed changes to watchers.
    pub(crate) fn notify(&self, changes: &[Change]) {
        self.watchers.notify(changes);
    }

    /// Subscribes to changes: every committed change from now on is sent to the receiver.
    pub fn watch(&self) -> mpsc::Receiver<Change> {
        self.watchers.subscribe()
    }

    /// A summary of the local vault.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn status(&self) -> Result<Status> {
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let (records, deleted_records, collections): (i64, i64, i64) = self.conn.query_row(
            "SELECT count(*) FILTER (WHERE NOT deleted), count(*) FILTER (WHERE deleted), count(DISTINCT collection) FROM records",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let ops: i64 = self.conn.query_row("SELECT count(*) FROM ops", [], |row| row.get(0))?;
        let unpublished_ops = self.unpublished_ops()?;
        let keychain = crate::keychain::lookup(&self.home);
        Ok(Status {
            home: self.home.root().to_owned(),
            vault_id: self.vault_id.to_string(),
            device_id: self.device_id.to_string(),
            device_name: meta_get(&self.conn, "device_name")?,
            device_fingerprint: device_keys.fingerprint().to_string(),
            vault_key_fingerprint: keys.fingerprint().to_string(),
            key_epoch: keys.epoch,
            unlocked_with: self.unlocked_with,
            key_in_keychain: matches!(keychain, crate::keychain::Lookup::Found(_)),
            keychain: match keychain {
                crate::keychain::Lookup::Found(_) => "holds this device's key".to_owned(),
                crate::keychain::Lookup::Missing => "available, without this device's key".to_owned(),
                crate::keychain::Lookup::Unavailable(reason) => format!("unavailable: {reason}"),
            },
            created_ms: from_sql_u64(meta_get(&self.conn, "created_ms")?)?,
            collections: from_sql_u64(collections)?,
            records: from_sql_u64(records)?,
            deleted_records: from_sql_u64(deleted_records)?,
            ops: from_sql_u64(ops)?,
            unpublished_ops,
        })
    }

    /// The devices of the vault known here, the revoked ones included.
    ///
    /// # Errors
    /// Database failures or damage.
    pub fn devices(&self) -> Result<Vec<DeviceInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, name, signing_public, enrolled_ms, enrolled_by, revoked_by, revoked_ms, last_write_ms,
                    revoked_last_seq IS NULL
             FROM devices ORDER BY enrolled_ms, device_id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<Vec<u8>>>(4)?,
                row.get::<_, Option<Vec<u8>>>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<i64>>(7)?,
                row.get::<_, bool>(8)?,
            ))
        })?;
        let own_last_write = Hlc::from_u64(meta_get::<i64>(&self.conn, "hlc")?.cast_unsigned()).wall_ms();
        let id_text = |bytes: Option<Vec<u8>>| bytes.as_deref().and_then(DeviceId::from_slice).map(|id| id.to_string());
        rows.map(|row| {
            let (id, name, signing_public, enrolled_ms, enrolled_by, revoked_by, revoked_ms, last_write_ms, active) =
                row?;
            let device_id =
                DeviceId::from_slice(&id).ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            let signing_public: [u8; 32] = signing_public
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt(format!("device registry: malformed key of {device_id}")))?;
            let this_device = device_id == self.device_id;
            let last_write_ms = if this_device {
                (own_last_write > 0).then_some(own_last_write)
            } else {
                last_write_ms.map(from_sql_u64).transpose()?
            };
            Ok(DeviceInfo {
                device_id: device_id.to_string(),
                name,
                fingerprint: Fingerprint::of_device_key(&signing_public).to_string(),
                enrolled_ms: from_sql_u64(enrolled_ms)?,
                enrolled_by: id_text(enrolled_by),
                last_write_ms,
                revoked_by: id_text(revoked_by),
                revoked_ms: revoked_ms.map(from_sql_u64).transpose()?,
                active,
                this_device,
            })
        })
        .collect()
    }
}

pub(crate) fn validate_device_name(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.len() > 64 || trimmed.chars().any(char::is_control) {
        return Err(Error::InvalidDeviceName(name.to_owned()));
    }
    Ok(trimmed)
}
