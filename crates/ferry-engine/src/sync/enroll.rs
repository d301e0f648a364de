//! Putting a vault into a store (`ferry init --store`) and joining one (`ferry join`).
//!
//! Both only *queue* the objects the store needs (vault file, key slots, device record) in the
//! local outbox; the next push publishes them. A crash or an unreachable store at any point
//! leaves a local vault that the next `ferry sync` completes, and nothing half-written remote.

use super::registry::{Registry, open_device_record};
use crate::database::meta_get;
use crate::identity::{DeviceKeys, VaultKeys};
use crate::unlock::{KdfCost, Unlock};
use crate::vault::{CreateOptions, Created};
use crate::write::now_ms;
use crate::{Error, Home, Result, Vault, random};
use ferry_format::objects::{DevicePayload, VaultFile, encode, paths, vault_id_of};
use ferry_format::seal::{ObjectId, ObjectKind, SealKeys, seal};
use ferry_format::{MasterKey, VaultId};
use ferry_store::Store;
use rusqlite::params;

/// How to join a vault that exists in a store.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// This device's name.
    pub device_name: String,
    /// The vault passphrase: it opens the store's passphrase slot and will unlock this device.
    pub unlock: Unlock,
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
fn store_slot_log_n(cost: KdfCost) -> u8 {
    match cost {
        KdfCost::Standard => 18,
        KdfCost::WorkFactor(log_n) => log_n,
    }
}

/// A key slot: the master key age-encrypted to one recipient.
fn wrap_key(recipient: &impl age::Recipient, master_key: &MasterKey) -> Result<Vec<u8>> {
    age::encrypt(recipient, master_key.expose())
        .map_err(|e| Error::KeyFile { path: "key slot".into(), reason: e.to_string() })
}

/// Reads the store's vault file; `None` if there is none.
pub(crate) fn read_vault_file(store: &dyn Store) -> Result<Option<VaultId>> {
    let Some(bytes) = store.get(paths::VAULT_FILE)? else { return Ok(None) };
    let bad =
        |reason: String| Error::BadStoreObject { location: store.location(), path: paths::VAULT_FILE.into(), reason };
    let file: VaultFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    vault_id_of(&file).map(Some).map_err(bad)
}

impl Vault {
    /// Creates a new vault for a store that holds none yet, and queues what the store needs.
    /// Push (or sync) publishes it.
    ///
    /// # Errors
    /// [`Error::StoreHasVault`] (nothing is created), the store is unreachable, local failures.
    pub fn create_for_store(home: &Home, options: CreateOptions, url: &str, store: &dyn Store) -> Result<Created> {
        if let Some(vault_id) = read_vault_file(store)? {
            return Err(Error::StoreHasVault { location: store.location(), vault_id: vault_id.to_string() });
        }
        let created = Self::create(home, options.clone())?;
        let store_id = created.vault.add_store(url)?;
        created.vault.queue_enrollment(
            store_id,
            Role::Creator { unlock: &options.unlock },
            Some(&created.recovery_phrase),
        )?;
        Ok(created)
    }

    /// Joins the vault in `store` as a new device, unlocking it with the passphrase slot.
    /// Queues this device's key slot and record; push publishes them, pull fetches the data.
    ///
    /// # Errors
    /// [`Error::NoVaultInStore`], [`Error::WrongStorePassphrase`] (nothing is written, locally
    /// or remotely), the store is unreachable, local failures.
    pub fn join(home: &Home, options: JoinOptions, url: &str, store: &dyn Store) -> Result<Self> {
        if home.has_vault() {
            return Err(Error::AlreadyInitialized { home: home.root().to_owned() });
        }
        let location = store.location();
        let vault_id = read_vault_file(store)?.ok_or_else(|| Error::NoVaultInStore { location: location.clone() })?;
        let epoch = store
            .list("keys/")?
            .iter()
            .filter_map(|path| path.strip_prefix("keys/")?.strip_suffix("/passphrase.age")?.parse::<u32>().ok())
            .max()
            .ok_or_else(|| Error::BadStoreObject {
                location: location.clone(),
                path: "keys/".into(),
                reason: "no passphrase slot: join with the recovery phrase or by pairing".into(),
            })?;
        let slot_path = paths::key_slot(epoch, "passphrase");
        let slot = store.get(&slot_path)?.ok_or_else(|| Error::BadStoreObject {
            location: location.clone(),
            path: slot_path.clone(),
            reason: "listed but missing".into(),
        })?;
        let mut identity = age::scrypt::Identity::new(options.unlock.passphrase.secret());
        identity
            .set_max_work_factor(store_slot_log_n(KdfCost::Standard).max(store_slot_log_n(options.unlock.kdf_cost)));
        let master = age::decrypt(&identity, &slot)
            .map_err(|_| Error::WrongStorePassphrase { location: location.clone(), vault_id: vault_id.to_string() })?;
        let master: [u8; 32] = master.as_slice().try_into().map_err(|_| Error::BadStoreObject {
            location: location.clone(),
            path: slot_path,
            reason: "does not hold a 32-byte key".into(),
        })?;
        let keys = VaultKeys { vault_id, epoch, master_key: MasterKey::new(master) };

        // Learn the recovery recipient from any valid self-enrolled device record.
        let registry = Registry::default();
        let recovery_recipient = store
            .list(paths::DEVICES)?
            .iter()
            .filter_map(|path| Some((path, paths::parse_device_record(path)?)))
            .find_map(|(path, subject)| {
                let bytes = store.get(path).ok()??;
                open_device_record(&bytes, subject, &keys, &registry).ok()
            })
            .map(|record| record.payload.recovery_recipient)
            .ok_or_else(|| Error::BadStoreObject {
                location: location.clone(),
                path: paths::DEVICES.into(),
                reason: "no valid device record".into(),
            })?;

        let create = CreateOptions { device_name: options.device_name, unlock: options.unlock.clone() };
        let vault = Self::create_device(home, &create, &keys, &recovery_recipient)?;
        let store_id = vault.add_store(url)?;
        vault.queue_enrollment(store_id, Role::Joiner, None)?;
        Ok(vault)
    }

    /// Adds a store to sync with: one that holds this vault already (another device put it
    /// there), or an empty one, which then receives the vault file and key slots (the passphrase
    /// slot needs `unlock`). Queues this device's key slot and record; the next push publishes
    /// them, with every other device's data this device holds. Returns the store's local id.
    ///
    /// # Errors
    /// [`Error::StoreVaultMismatch`] for a store of another vault; [`Error::WrongPassphrase`]
    /// when an empty store needs the passphrase and none (or a wrong one) is given; the store is
    /// unreachable; the location is configured already.
    pub fn attach_store(&mut self, url: &str, store: &dyn Store, unlock: Option<&Unlock>) -> Result<i64> {
        if self.stores()?.iter().any(|s| s.url == url) {
            return Err(Error::StoreAlreadyAdded(url.to_owned()));
        }
        let role = match read_vault_file(store)? {
            Some(found) if found != self.vault_id() => {
                return Err(Error::StoreVaultMismatch {
                    location: store.location(),
                    found: found.to_string(),
                    ours: self.vault_id().to_string(),
                });
            }
            Some(_) => Role::Joiner,
            None => {
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
    pub fn detach_store(&mut self, id: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        if tx.execute("DELETE FROM stores WHERE id = ?1", [id])? == 0 {
            return Err(Error::UnknownStore(id));
        }
        for table in ["store_outbox", "store_heads", "store_blobs", "skipped"] {
            tx.execute(&format!("DELETE FROM {table} WHERE store = ?1"), [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a store this device syncs with; returns its local id.
    pub(crate) fn add_store(&self, url: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO stores (url, added_ms) VALUES (?1, ?2)",
            params![url, crate::database::to_sql_u64(now_ms())?],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Seals the enrollment objects for a store into its outbox, in one transaction.
    fn queue_enrollment(
        &self,
        store_id: i64,
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
            };
            let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Corrupt(e.to_string()))?;
            objects.push((paths::VAULT_FILE.into(), json));
            let mut passphrase = age::scrypt::Recipient::new(unlock.passphrase.secret());
            passphrase.set_work_factor(store_slot_log_n(unlock.kdf_cost));
            objects.push((paths::key_slot(keys.epoch, "passphrase"), wrap_key(&passphrase, &keys.master_key)?));
            if let Some(phrase) = recovery {
                let recovery_identity = crate::identity::recovery_identity(phrase)?;
                objects.push((
                    paths::key_slot(keys.epoch, "recovery"),
                    wrap_key(&recovery_identity.to_public(), &keys.master_key)?,
                ));
            } else {
                let recipient: age::x25519::Recipient =
                    recovery_recipient.parse().map_err(|e: &str| Error::Corrupt(format!("recovery recipient: {e}")))?;
                objects.push((paths::key_slot(keys.epoch, "recovery"), wrap_key(&recipient, &keys.master_key)?));
            }
        }
        let own: age::x25519::Recipient =
            device_keys.recipient().parse().map_err(|e: &str| Error::Corrupt(format!("device recipient: {e}")))?;
        objects.push((paths::key_slot(keys.epoch, &device_id.to_string()), wrap_key(&own, &keys.master_key)?));

        let name: String = meta_get(&self.conn, "device_name")?;
        let created_ms: u64 = crate::database::from_sql_u64(meta_get(&self.conn, "created_ms")?)?;
        let payload = DevicePayload {
            device_id: *device_id.as_bytes(),
            name,
            recipient: device_keys.recipient(),
            enrolled_ms: created_ms,
            recovery_recipient,
        };
        let record = seal(
            ObjectKind::Device,
            keys.vault_id,
            device_id,
            ObjectId(device_keys.signing_public()),
            random::bytes()?,
            &SealKeys { epoch: keys.epoch, master_key: &keys.master_key, signing_key: device_keys.signing_key() },
            &encode(&payload),
        )
        .map_err(|e| Error::Corrupt(e.to_string()))?;
        self.conn.execute(
            "UPDATE devices SET record = ?1 WHERE device_id = ?2",
            params![record, &device_id.as_bytes()[..]],
        )?;
        objects.push((paths::device_record(device_id), record));

        let tx = self.conn.unchecked_transaction()?;
        for (path, bytes) in objects {
            tx.execute(
                "INSERT INTO store_outbox (store, path, bytes) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![store_id, path, bytes],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
