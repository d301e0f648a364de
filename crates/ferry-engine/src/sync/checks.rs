//! Key management a person does on purpose: changing the passphrase, confirming the recovery
//! phrase, and checking that a store's key objects match this device's keys (`ferry key
//! verify`, `ferry doctor`).

use super::enroll::{read_vault_file, store_slot_log_n, wrap_key};
use crate::database::{meta_get, meta_set, to_sql_u64};
use crate::identity::{DeviceKeys, VaultKeys};
use crate::unlock::Unlock;
use crate::write::now_ms;
use crate::{Result, Vault};
use ferry_format::RecoveryPhrase;
use ferry_format::objects::paths;
use ferry_store::Store;
use rusqlite::OptionalExtension;

/// What a store's key objects say, checked against this device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoreKeyCheck {
    /// The store holds a vault file.
    pub has_vault: bool,
    /// Its vault and fingerprint are this device's.
    pub fingerprint_matches: bool,
    /// The store's key fingerprint (if it has a vault file).
    pub store_fingerprint: Option<String>,
    /// This device's slot for the current epoch opens to this device's key.
    pub own_slot_opens: bool,
    /// The store has a recovery slot for the current epoch.
    pub recovery_slot: bool,
    /// The store has a passphrase slot for the current epoch (joining with the passphrase).
    pub passphrase_slot: bool,
}

impl StoreKeyCheck {
    /// Everything a device needs is in place.
    pub fn is_ok(&self) -> bool {
        self.has_vault && self.fingerprint_matches && self.own_slot_opens && self.recovery_slot
    }
}

impl Vault {
    /// Changes this device's passphrase and the vault passphrase slot of the current key epoch
    /// (queued for every store: joining with the passphrase then takes the new one).
    ///
    /// # Errors
    /// Local failures; the key file cannot be written.
    pub fn change_passphrase(&mut self, new: &Unlock) -> Result<()> {
        self.ensure_not_revoked()?;
        let keys = VaultKeys::load(&self.conn)?;
        let mut slot = age::scrypt::Recipient::new(new.passphrase.secret());
        slot.set_work_factor(store_slot_log_n(new.kdf_cost));
        let wrapped = wrap_key(&slot, &keys.master_key)?;
        let path = paths::key_slot(&keys.current(), "passphrase");
        let tx = self.conn.unchecked_transaction()?;
        crate::database::meta_set(&tx, "passphrase_epoch", keys.epoch)?;
        for store in self.stores()? {
            tx.execute(
                "INSERT INTO store_outbox (store, path, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, path) DO UPDATE SET bytes = excluded.bytes",
                rusqlite::params![store.id, path, wrapped],
            )?;
        }
        self.local_key.write_wrapped(&self.home.local_key_file(), new)?;
        tx.commit()?;
        Ok(())
    }

    /// Checks that `unlock` is this device's passphrase (before changing it, when the vault was
    /// opened from the keychain).
    ///
    /// # Errors
    /// [`crate::Error::WrongPassphrase`]; I/O.
    pub fn check_passphrase(&self, unlock: &Unlock) -> Result<()> {
        crate::unlock::LocalKey::read_wrapped(&self.home.local_key_file(), self.home.root(), unlock).map(|_| ())
    }

    /// Whether `phrase` is this vault's recovery phrase. A match is remembered (`ferry key
    /// verify` shows when it was last confirmed).
    ///
    /// # Errors
    /// Local failures.
    pub fn confirm_recovery_phrase(&self, phrase: &RecoveryPhrase) -> Result<bool> {
        let ours: String = meta_get(&self.conn, "recovery_recipient")?;
        let matches = crate::identity::recovery_identity(phrase)?.to_public().to_string() == ours;
        if matches {
            meta_set(&self.conn, "recovery_confirmed_ms", to_sql_u64(now_ms())?)?;
        }
        Ok(matches)
    }

    /// When the recovery phrase was last confirmed on this device.
    ///
    /// # Errors
    /// Local failures.
    pub fn recovery_confirmed_ms(&self) -> Result<Option<u64>> {
        let value: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE name = 'recovery_confirmed_ms'", [], |row| row.get(0))
            .optional()?;
        Ok(value.and_then(|v| u64::try_from(v).ok()))
    }

    /// Checks a store's vault file and key slots against this device's keys. Writes nothing.
    ///
    /// # Errors
    /// The store is unreachable; local failures.
    pub fn check_store(&self, store: &dyn Store) -> Result<StoreKeyCheck> {
        let keys = VaultKeys::load(&self.conn)?;
        let found = read_vault_file(store)?;
        let slot = |name: &str| store.get(&paths::key_slot(&keys.current(), name));
        let own_slot_opens = match slot(&self.device_id().to_string())? {
            Some(wrapped) => {
                let device_keys = DeviceKeys::load(&self.conn)?;
                age::decrypt(device_keys.agreement(), &wrapped)
                    .is_ok_and(|key| key.as_slice() == keys.master_key.expose())
            }
            None => false,
        };
        Ok(StoreKeyCheck {
            has_vault: found.is_some(),
            fingerprint_matches: found
                .as_ref()
                .is_some_and(|f| f.vault_id == keys.vault_id && f.fingerprint == keys.fingerprint().to_string()),
            store_fingerprint: found.map(|f| f.fingerprint),
            own_slot_opens,
            recovery_slot: slot("recovery")?.is_some(),
            passphrase_slot: slot("passphrase")?.is_some(),
        })
    }
}
