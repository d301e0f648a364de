//! Putting a vault into a store (`ferry init --store`) and joining one (`ferry join`).
//!
//! Both only *queue* the objects the store needs (vault file, key slots, device record) in the
//! local outbox; the next push publishes them. A crash or an unreachable store at any point
//! leaves a local vault that the next `ferry sync` completes, and nothing half-written remote.

use super::epochs::{EpochObject, read_key_chain};
use super::registry::{Registry, open_device_record};
use crate::database::meta_get;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::unlock::{KdfCost, Unlock};
use crate::vault::{CreateOptions, Created, Membership};
use crate::write::now_ms;
use crate::{Error, Home, Result, Vault, random};
use ferry_format::objects::{DevicePayload, VaultFile, paths, vault_id_of};
use ferry_format::seal::ObjectId;
use ferry_format::{EpochRef, MasterKey, RecoveryPhrase, VaultId};
use ferry_store::Store;
use rusqlite::params;

/// How to join a vault that exists in a store.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// This device's name.
    pub device_name: String,
    /// Unlocks this device from now on. With [`JoinWith::Passphrase`] it is also the vault
    /// passphrase that opens the store's passphrase slot.
    pub unlock: Unlock,
    /// Which secret opens the vault key.
    pub with: JoinWith,
}

/// The secret a device joins with.
#[derive(Clone, Debug)]
pub enum JoinWith {
    /// The vault passphrase (the store's passphrase slot).
    Passphrase,
    /// The recovery phrase (the store's recovery slot): every device was lost.
    RecoveryPhrase(RecoveryPhrase),
}

/// What a store's vault file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreVault {
    /// The vault.
    pub vault_id: VaultId,
    /// Its key fingerprint.
    pub fingerprint: String,
}

/// What a device publishes when it enrolls in a store.
#[derive(Clone, Copy)]
enum Role<'a> {
    /// The first device in this store: also the vault file, and the passphrase and recovery
    /// slots (the passphrase slot is wrapped with `unlock`).
    Creator { unlock: &'a Unlock },
    /// A device joining a store that holds the vault: its own key slot and device record.
    Joiner,
}

/// scrypt cost of the store's passphrase slot: anyone who can read the store can try to guess
/// it offline, so it costs more than the local unlock (256 MiB, about a second).
pub(crate) fn store_slot_log_n(cost: KdfCost) -> u8 {
    match cost {
        KdfCost::Standard => 18,
        KdfCost::WorkFactor(log_n) => log_n,
    }
}

/// A key slot: the master key age-encrypted to one recipient.
pub(crate) fn wrap_key(recipient: &impl age::Recipient, master_key: &MasterKey) -> Result<Vec<u8>> {
    age::encrypt(recipient, master_key.expose())
        .map_err(|e| Error::KeyFile { path: "key slot".into(), reason: e.to_string() })
}

/// Reads the store's vault file; `None` if there is none.
pub(crate) fn read_vault_file(store: &dyn Store) -> Result<Option<StoreVault>> {
    let Some(bytes) = store.get(paths::VAULT_FILE)? else { return Ok(None) };
    let bad =
        |reason: String| Error::BadStoreObject { location: store.location(), path: paths::VAULT_FILE.into(), reason };
    let file: VaultFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let vault_id = vault_id_of(&file).map_err(bad)?;
    Ok(Some(StoreVault { vault_id, fingerprint: file.fingerprint }))
}

/// Whether the vault passphrase may be wrapped for key epoch `epoch`: always at epoch 0, and
/// after a rotation only once `ferry key passphrase` chose one at that epoch (recorded as
/// `passphrase_epoch`).
pub(crate) fn passphrase_set_for(conn: &rusqlite::Connection, epoch: u32) -> Result<bool> {
    use rusqlite::OptionalExtension;
    let set: Option<u32> =
        conn.query_row("SELECT value FROM meta WHERE name = 'passphrase_epoch'", [], |row| row.get(0)).optional()?;
    Ok(epoch == 0 || set == Some(epoch))
}

/// Refuses to create a vault where one is, or where a removed one left objects.
fn ensure_empty(store: &dyn Store) -> Result<()> {
    if let Some(found) = read_vault_file(store)? {
        return Err(Error::StoreHasVault { location: store.location(), vault_id: found.vault_id.to_string() });
    }
    for prefix in ["keys/", paths::DEVICES, "log/"] {
        if !store.list(prefix)?.is_empty() {
            return Err(Error::StoreNotEmpty { location: store.location() });
        }
    }
    Ok(())
}

/// What the newest key epoch's slot of one name gave.
pub(crate) enum NewestSlot {
    /// It opened: the epoch and its key.
    Opened(EpochRef, MasterKey),
    /// There is such a slot, and the secret does not open it.
    WrongSecret,
    /// The store has no such slot in its newest epoch.
    Missing,
}

/// Opens the slot named `slot` (`passphrase`, `recovery`) of the newest key epoch the store
/// lists. A slot that is damaged (not an age file, an altered header) is an error naming it, not
/// a wrong secret. Older epochs are never used (their passphrase may be known to a
/// revoked device); among several directories of the newest number (only one was started by a
/// real rotation, others could be anyone's) the one that opens is taken, and the key chain
/// read below it must then verify.
pub(crate) fn open_newest_slot(
    store: &dyn Store,
    slot: &str,
    open: impl Fn(&[u8]) -> Result<Vec<u8>, age::DecryptError>,
) -> Result<NewestSlot> {
    let listed = store.list("keys/")?;
    let epochs = paths::key_epochs_listed(&listed);
    let newest = epochs.first().map_or(0, |epoch| epoch.number);
    let mut found_any = false;
    let mut damaged = None;
    for epoch in epochs.into_iter().filter(|epoch| epoch.number == newest) {
        let path = paths::key_slot(&epoch, slot);
        if !listed.contains(&path) {
            continue;
        }
        let Some(wrapped) = store.get(&path)? else { continue };
        found_any = true;
        match open(&wrapped) {
            Ok(key) => match <[u8; 32]>::try_from(key.as_slice()) {
                Ok(key) => return Ok(NewestSlot::Opened(epoch, MasterKey::new(key))),
                Err(_) => damaged = Some((path, "it does not hold a 32-byte key".to_owned())),
            },
            // Not an age file, or its header altered: damage, not a wrong secret.
            Err(
                err @ (age::DecryptError::InvalidHeader
                | age::DecryptError::InvalidMac
                | age::DecryptError::UnknownFormat
                | age::DecryptError::Io(_)),
            ) => damaged = Some((path, format!("it is damaged ({err})"))),
            Err(_) => {}
        }
    }
    if let Some((path, why)) = damaged {
        return Err(Error::BadStoreObject {
            location: store.location(),
            path,
            reason: format!(
                "{why}: this is not a wrong passphrase or phrase; a device of the vault can write a new key slot, \
                 or the file can be restored from a backup"
            ),
        });
    }
    Ok(if found_any { NewestSlot::WrongSecret } else { NewestSlot::Missing })
}

/// Opens the newest epoch's passphrase or recovery slot and reads the key chain below it.
fn open_join_slot(
    store: &dyn Store,
    vault_id: VaultId,
    options: &JoinOptions,
) -> Result<(VaultKeys, Vec<EpochObject>)> {
    let location = store.location();
    let opened = match &options.with {
        JoinWith::Passphrase => {
            let mut identity = age::scrypt::Identity::new(options.unlock.passphrase.secret());
            identity.set_max_work_factor(
                store_slot_log_n(KdfCost::Standard).max(store_slot_log_n(options.unlock.kdf_cost)),
            );
            match open_newest_slot(store, "passphrase", |slot| age::decrypt(&identity, slot))? {
                NewestSlot::Opened(epoch, key) => (epoch, key),
                NewestSlot::WrongSecret => {
                    return Err(Error::WrongStorePassphrase { location, vault_id: vault_id.to_string() });
                }
                NewestSlot::Missing => return Err(Error::NoPassphraseSlot { location }),
            }
        }
        JoinWith::RecoveryPhrase(phrase) => {
            let identity = crate::identity::recovery_identity(phrase)?;
            match open_newest_slot(store, "recovery", |slot| age::decrypt(&identity, slot))? {
                NewestSlot::Opened(epoch, key) => (epoch, key),
                NewestSlot::WrongSecret => {
                    return Err(Error::WrongRecoveryPhrase { location, vault_id: vault_id.to_string() });
                }
                NewestSlot::Missing => {
                    return Err(Error::BadStoreObject {
                        location,
                        path: paths::key_slot(&EpochRef::FIRST, "recovery"),
                        reason: "missing: the store holds no recovery slot (an incomplete copy of the vault?)".into(),
                    });
                }
            }
        }
    };
    let (epoch, master) = opened;
    let mut keys = VaultKeys::single(vault_id, epoch, master);
    let chain = read_key_chain(store, &mut keys)?;
    super::epochs::refuse_hidden_newer_epoch(store, &keys)?;
    if let JoinWith::RecoveryPhrase(phrase) = &options.with
        && !keys.key(0).is_some_and(|first| phrase.made(first))
    {
        // Anyone can wrap a key to the public recovery recipient: the chain must end at the
        // first key the phrase itself derives, or this is not the phrase's vault.
        return Err(Error::BadStoreObject {
            location,
            path: "keys/".into(),
            reason: "the key history does not lead to the vault key of this recovery phrase: the store holds a \
                     forged or another vault; nothing was written"
                .into(),
        });
    }
    Ok((keys, chain))
}

/// The vault's recovery recipient for a device joining with `keys`. From key epoch 1 on it is
/// the one the newest key epoch object carries (signed by the member that rotated, and the
/// object opens only under the key the join slot gave). At epoch 0 every device record that
/// verifies must name the same one: a record planted with the passphrase cannot make a joiner
/// wrap its exports and future keys to a key its planter holds.
fn recovery_recipient_from(store: &dyn Store, keys: &VaultKeys, chain: &[EpochObject]) -> Result<String> {
    if let Some(newest) = chain.iter().max_by_key(|object| object.epoch) {
        return Ok(newest.recovery_recipient.clone());
    }
    let mut registry = Registry::default();
    let mut named = std::collections::BTreeSet::new();
    let mut other_vault = None;
    let mut pending: Vec<(String, ferry_format::DeviceId)> = store
        .list(paths::DEVICES)?
        .into_iter()
        .filter_map(|path| Some((path.clone(), paths::parse_device_record(&path)?)))
        .collect();
    // Self-signed records first, then those signed by a device already verified (pairing).
    loop {
        let before = pending.len();
        let mut still = Vec::new();
        for (path, subject) in pending {
            let Some(bytes) = store.get(&path)? else { continue };
            match open_device_record(&bytes, subject, keys, &registry) {
                Ok(record) => {
                    named.insert(record.payload.recovery_recipient.clone());
                    registry.trust(subject, record.signing_public);
                }
                Err(ferry_format::seal::OpenError::WrongVault { found }) => other_vault = Some(found),
                Err(_) => still.push((path, subject)),
            }
        }
        pending = still;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    let bad =
        |reason: String| Error::BadStoreObject { location: store.location(), path: paths::DEVICES.into(), reason };
    let mut named = named.into_iter();
    match (named.next(), named.next()) {
        (Some(recipient), None) => Ok(recipient),
        (None, _) => Err(match other_vault {
            Some(found) => Error::BadStoreObject {
                location: store.location(),
                path: paths::VAULT_FILE.into(),
                reason: format!(
                    "names vault {}, but the store's device records belong to vault {found}: the vault file was \
                     edited or replaced; restore it from a backup (or from another store of the vault)",
                    keys.vault_id
                ),
            },
            None => bad("no valid device record".into()),
        }),
        (Some(_), Some(_)) => {
            Err(bad("device records name different recovery keys (a record was planted with the vault key): \
             pair this device from an existing one instead"
                .into()))
        }
    }
}

/// Checks that keys obtained for a store's vault are that vault's: the fingerprint in the
/// vault file must be the one the keys give.
pub(crate) fn check_fingerprint(store: &dyn Store, found: &StoreVault, keys: &VaultKeys) -> Result<()> {
    let ours = keys.fingerprint().to_string();
    if found.vault_id != keys.vault_id || found.fingerprint != ours {
        return Err(Error::KeyMismatch {
            location: store.location(),
            found: found.vault_id.to_string(),
            found_fingerprint: found.fingerprint.clone(),
            ours: keys.vault_id.to_string(),
            our_fingerprint: ours,
        });
    }
    Ok(())
}

impl Vault {
    /// Creates a new vault for a store that holds none yet, and queues what the store needs.
    /// Push (or sync) publishes it.
    ///
    /// # Errors
    /// [`Error::StoreHasVault`], [`Error::StoreNotEmpty`] (nothing is created), the store is
    /// unreachable, local failures.
    pub fn create_for_store(home: &Home, options: CreateOptions, url: &str, store: &dyn Store) -> Result<Created> {
        ensure_empty(store)?;
        let created = Self::create(home, options.clone())?;
        let store_id = created.vault.add_store(url)?;
        created.vault.queue_enrollment(
            store_id,
            Role::Creator { unlock: &options.unlock },
            Some(&created.recovery_phrase),
        )?;
        Ok(created)
    }

    /// Joins the vault in `store` as a new device, with the vault passphrase or the recovery
    /// phrase. Queues this device's key slot and record; push publishes them, pull fetches the
    /// data.
    ///
    /// # Errors
    /// [`Error::NoVaultInStore`], [`Error::WrongStorePassphrase`], [`Error::WrongRecoveryPhrase`],
    /// [`Error::NoPassphraseSlot`], [`Error::KeyMismatch`] (nothing is written, locally or
    /// remotely), the store is unreachable, local failures.
    pub fn join(home: &Home, options: JoinOptions, url: &str, store: &dyn Store) -> Result<Self> {
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        let found = read_vault_file(store)?.ok_or_else(|| Error::NoVaultInStore { location: store.location() })?;
        let (keys, chain) = open_join_slot(store, found.vault_id, &options)?;
        check_fingerprint(store, &found, &keys)?;
        let recovery_recipient = recovery_recipient_from(store, &keys, &chain)?;
        let create = CreateOptions { device_name: options.device_name, unlock: options.unlock.clone() };
        let membership =
            Membership { keys: &keys, epoch_objects: &chain, recovery_recipient: &recovery_recipient, paired: None };
        let vault = Self::create_device(home, &create, membership)?;
        let store_id = vault.add_store(url)?;
        vault.queue_enrollment(store_id, Role::Joiner, None)?;
        Ok(vault)
    }

    /// Checks a store's vault file against this device's keys: `Ok(None)` for a store with no
    /// vault, [`Error::KeyMismatch`] for another vault or other keys.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`]; the store is unreachable; a damaged vault file.
    pub fn check_store_keys(&self, store: &dyn Store) -> Result<Option<StoreVault>> {
        let Some(found) = read_vault_file(store)? else { return Ok(None) };
        check_fingerprint(store, &found, &VaultKeys::load(&self.conn)?)?;
        Ok(Some(found))
    }

    /// Adds a store to sync with: one that holds this vault already (another device put it
    /// there), or an empty one, which then receives the vault file and key slots (the passphrase
    /// slot needs `unlock`). Queues this device's key slot and record; the next push publishes
    /// them, with every other device's data this device holds. Returns the store's local id.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] for a store of another vault; [`Error::WrongPassphrase`]
    /// when an empty store needs the passphrase and none (or a wrong one) is given; the store is
    /// unreachable; the location is configured already.
    pub fn attach_store(&mut self, url: &str, store: &dyn Store, unlock: Option<&Unlock>) -> Result<crate::StoreId> {
        if self.stores()?.iter().any(|s| s.url == url) {
            return Err(Error::StoreAlreadyAdded(url.to_owned()));
        }
        let role = match self.check_store_keys(store)? {
            Some(_) => Role::Joiner,
            None => {
                ensure_empty(store)?;
                // The new store's passphrase slot must hold the vault passphrase: check it first.
                let unlock = unlock.ok_or_else(|| Error::WrongPassphrase { home: self.home.root().to_owned() })?;
                crate::unlock::LocalKey::read_wrapped(&self.home.local_key_file(), self.home.root(), unlock)?;
                Role::Creator { unlock }
            }
        };
        let store_id = self.add_store(url)?;
        self.queue_enrollment(store_id, role, None)?;
        Ok(store_id)
    }

    /// Stops syncing with a store. Nothing in the store is deleted.
    ///
    /// # Errors
    /// [`Error::UnknownStore`]; database failures.
    pub fn detach_store(&mut self, id: crate::StoreId) -> Result<()> {
        let tx = self.conn.transaction()?;
        if tx.execute("DELETE FROM stores WHERE id = ?1", [id])? == 0 {
            return Err(Error::UnknownStore(id.to_string()));
        }
        for table in ["store_outbox", "store_heads", "store_blobs", "skipped"] {
            tx.execute(&format!("DELETE FROM {table} WHERE store = ?1"), [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a store this device syncs with; returns its local id.
    pub(crate) fn add_store(&self, url: &str) -> Result<crate::StoreId> {
        self.conn.execute(
            "INSERT INTO stores (url, added_ms) VALUES (?1, ?2)",
            params![url, crate::database::to_sql_u64(now_ms())?],
        )?;
        Ok(crate::StoreId(self.conn.last_insert_rowid()))
    }

    /// The key epoch objects and revocations this device holds, with their store paths.
    pub(crate) fn registry_objects(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut objects = Vec::new();
        let keys = VaultKeys::load(&self.conn)?;
        let mut stmt = self.conn.prepare("SELECT epoch, object FROM key_epochs WHERE object IS NOT NULL")?;
        for row in stmt.query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?)))? {
            let (epoch, object) = row?;
            if let Some(epoch) = keys.epoch_ref(epoch) {
                objects.push((paths::key_epoch(&epoch), object));
            }
        }
        let mut stmt = self.conn.prepare(
            "SELECT device_id, revocation, revoked_epoch_tag FROM devices
             WHERE revocation IS NOT NULL AND revoked_epoch_tag IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, Vec<u8>>(2)?))
        })?;
        for row in rows {
            let (device, revocation, tag) = row?;
            let device = ferry_format::DeviceId::from_slice(&device)
                .ok_or_else(|| Error::Corrupt("device registry: malformed id".into()))?;
            let tag: [u8; 16] =
                tag.as_slice().try_into().map_err(|_| Error::Corrupt("device registry: malformed tag".into()))?;
            objects.push((paths::revocation(device, &tag), revocation));
        }
        Ok(objects)
    }

    /// This device's record as published: the one it already has (made by itself or by the
    /// device that paired it), or a self-signed one sealed now and kept.
    pub(crate) fn own_record(&self, keys: &VaultKeys, device_keys: &DeviceKeys) -> Result<Vec<u8>> {
        let device_id = self.device_id();
        let kept: Option<Vec<u8>> = self.conn.query_row(
            "SELECT record FROM devices WHERE device_id = ?1",
            [&device_id.as_bytes()[..]],
            |row| row.get(0),
        )?;
        if let Some(record) = kept {
            return Ok(record);
        }
        let name: String = meta_get(&self.conn, "device_name")?;
        let created_ms: u64 = crate::database::from_sql_u64(meta_get(&self.conn, "created_ms")?)?;
        let payload = DevicePayload {
            device_id: *device_id.as_bytes(),
            name,
            recipient: device_keys.recipient(),
            enrolled_ms: created_ms,
            recovery_recipient: meta_get(&self.conn, "recovery_recipient")?,
        };
        let record = keys
            .sealer(device_id, device_keys)
            .seal(ObjectId(device_keys.signing_public()), random::bytes()?, &payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        self.conn.execute(
            "UPDATE devices SET record = ?1, record_epoch = ?2 WHERE device_id = ?3",
            params![record, keys.epoch, &device_id.as_bytes()[..]],
        )?;
        Ok(record)
    }

    /// Queues, for a store that lost the vault, everything this device can publish again: the
    /// vault file, the current epoch's key slots for every active device and the recovery key,
    /// the key history, revocations and every device record held; and forgets what it believed
    /// the store held (HEADs, blobs), so relaying and blob pushes bring the rest. Not the
    /// passphrase slot (this device does not keep the passphrase): `ferry key passphrase`
    /// writes one again.
    pub(crate) fn queue_rebuild(&self, store_id: crate::StoreId) -> Result<()> {
        let keys = VaultKeys::load(&self.conn)?;
        let mut objects: Vec<(String, Vec<u8>)> = vec![(paths::VAULT_FILE.into(), self.vault_file_bytes()?)];
        let registry = Registry::load(&self.conn)?;
        let mut stmt = self.conn.prepare("SELECT device_id, recipient, record FROM devices")?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<Vec<u8>>>(2)?))
        })?;
        for row in rows {
            let (id, recipient, record) = row?;
            let Some(device) = ferry_format::DeviceId::from_slice(&id) else { continue };
            if let Some(record) = record {
                objects.push((paths::device_record(device), record));
            }
            if registry.is_active(device)
                && let Ok(recipient) = recipient.parse::<age::x25519::Recipient>()
            {
                objects.push((
                    paths::key_slot(&keys.current(), &device.to_string()),
                    wrap_key(&recipient, &keys.master_key)?,
                ));
            }
        }
        let recovery: String = meta_get(&self.conn, "recovery_recipient")?;
        let recovery: age::x25519::Recipient =
            recovery.parse().map_err(|e: &str| Error::Corrupt(format!("recovery recipient: {e}")))?;
        objects.push((paths::key_slot(&keys.current(), "recovery"), wrap_key(&recovery, &keys.master_key)?));
        objects.extend(self.registry_objects()?);
        let tx = self.conn.unchecked_transaction()?;
        queue_in(&tx, store_id, objects)?;
        tx.execute("DELETE FROM store_heads WHERE store = ?1", [store_id])?;
        tx.execute("DELETE FROM store_blobs WHERE store = ?1", [store_id])?;
        tx.commit()?;
        Ok(())
    }

    /// Seals the enrollment objects for a store into its outbox, in one transaction.
    fn queue_enrollment(
        &self,
        store_id: crate::StoreId,
        role: Role<'_>,
        recovery: Option<&ferry_format::RecoveryPhrase>,
    ) -> Result<()> {
        let keys = VaultKeys::load(&self.conn)?;
        let device_keys = DeviceKeys::load(&self.conn)?;
        let device_id = self.device_id();
        let recovery_recipient: String = meta_get(&self.conn, "recovery_recipient")?;
        let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
        if let Role::Creator { unlock } = role {
            let file = VaultFile {
                format: "ferry-vault".into(),
                version: VaultFile::VERSION,
                vault_id: keys.vault_id.to_string(),
                created_ms: now_ms(),
                fingerprint: keys.fingerprint().to_string(),
            };
            let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Encode(e.to_string()))?;
            objects.push((paths::VAULT_FILE.into(), json));
            // After a revocation the passphrase may be known to the revoked device: the new
            // epoch gets a passphrase slot only once `ferry key passphrase` set a new one.
            if passphrase_set_for(&self.conn, keys.epoch)? {
                let mut passphrase = age::scrypt::Recipient::new(unlock.passphrase.secret());
                passphrase.set_work_factor(store_slot_log_n(unlock.kdf_cost));
                objects
                    .push((paths::key_slot(&keys.current(), "passphrase"), wrap_key(&passphrase, &keys.master_key)?));
            }
            if let Some(phrase) = recovery {
                let recovery_identity = crate::identity::recovery_identity(phrase)?;
                objects.push((
                    paths::key_slot(&keys.current(), "recovery"),
                    wrap_key(&recovery_identity.to_public(), &keys.master_key)?,
                ));
            } else {
                let recipient: age::x25519::Recipient =
                    recovery_recipient.parse().map_err(|e: &str| Error::Corrupt(format!("recovery recipient: {e}")))?;
                objects.push((paths::key_slot(&keys.current(), "recovery"), wrap_key(&recipient, &keys.master_key)?));
            }
        }
        let own: age::x25519::Recipient =
            device_keys.recipient().parse().map_err(|e: &str| Error::Corrupt(format!("device recipient: {e}")))?;
        objects.push((paths::key_slot(&keys.current(), &device_id.to_string()), wrap_key(&own, &keys.master_key)?));

        let record = self.own_record(&keys, &device_keys)?;
        objects.push((paths::device_record(device_id), record));
        // The key history and revocations, so devices joining through this store can read it all.
        objects.extend(self.registry_objects()?);

        let tx = self.conn.unchecked_transaction()?;
        queue_in(&tx, store_id, objects)?;
        tx.commit()?;
        Ok(())
    }
}

/// Queues objects in a store's outbox (objects queued already are kept as they are).
fn queue_in(conn: &rusqlite::Connection, store_id: crate::StoreId, objects: Vec<(String, Vec<u8>)>) -> Result<()> {
    for (path, bytes) in objects {
        conn.execute(
            "INSERT INTO store_outbox (store, path, bytes) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![store_id, path, bytes],
        )?;
    }
    Ok(())
}
